"""`pybpfdsl run`: run a program on packets, in the kernel (BPF_PROG_TEST_RUN) or in pure Python."""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pybpfdsl.cli_commands.common import EXIT_USAGE, CliError, is_object_target, load_object, load_target
from pybpfdsl.cli_commands.object_view import loaded_object, object_state, xdp_program_of
from pybpfdsl.cli_commands.state_view import StateEntry, snapshot, state_table
from pybpfdsl.cli_output import Style, Table, print_json, style_for
from pybpfdsl.lang.actions import XdpAction

__all__ = ["PacketResult", "action_name", "cmd_run", "parse_hex"]

ETH_HLEN = 14
_SEPARATORS = re.compile(r"[\s:\-_.]")


def action_name(action: int) -> str:
    try:
        return f"XDP_{XdpAction(action).name}"
    except ValueError:
        return f"unknown({action})"


_ACTION_STYLE = {"XDP_PASS": "green", "XDP_DROP": "red", "XDP_ABORTED": "magenta",
                 "XDP_TX": "yellow", "XDP_REDIRECT": "blue"}


def colour_action(st: Style, name: str) -> str:
    return st(name, _ACTION_STYLE.get(name, "bold"))


def parse_hex(text: str) -> bytes:
    """Bytes from hex text; whitespace, ':', '-', '.' and '_' separators and a leading 0x are ignored."""
    cleaned = text.strip()
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    cleaned = _SEPARATORS.sub("", cleaned)
    if not cleaned:
        raise CliError("--packet: empty packet", EXIT_USAGE)
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        bad = next((ch for ch in cleaned if ch not in "0123456789abcdefABCDEF"), None)
        why = f"invalid character {bad!r}" if bad is not None else f"odd number of hex digits ({len(cleaned)})"
        raise CliError(f"--packet: not a hex string: {why}", EXIT_USAGE) from None


def read_pcap(path: str) -> list[bytes]:
    if not Path(path).is_file():
        raise CliError(f"--pcap: {path}: no such file", EXIT_USAGE)
    try:
        from scapy.utils import rdpcap
    except ImportError:
        raise CliError("--pcap needs scapy (pip install scapy)") from None
    try:
        packets = rdpcap(path)
    except Exception as exc:
        raise CliError(f"--pcap: cannot read {path}: {exc}") from None
    return [bytes(p) for p in packets]


@dataclass(frozen=True)
class PacketResult:
    index: int
    length: int
    action: int
    duration_ns: int
    modified: bool
    output: bytes

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "length": self.length,
            "action": action_name(self.action),
            "action_value": self.action,
            "duration_ns": self.duration_ns,
            "modified": self.modified,
        }
        if self.modified:
            out["output_length"] = len(self.output)
            out["output_hex"] = self.output.hex()
        return out


def _run_kernel(program: Any, packets: list[bytes], repeat: int) -> tuple[list[PacketResult], Any]:
    results: list[PacketResult] = []
    loaded = program.load()
    try:
        for i, data in enumerate(packets):
            r = loaded.run(data, repeat)
            results.append(PacketResult(i, len(data), r.action, r.duration_ns, r.packet != data, r.packet))
    finally:
        loaded.close()
    return results, loaded


def _run_python(program: Any, packets: list[bytes], repeat: int) -> list[PacketResult]:
    from pybpfdsl.frontend.evaluate import run_python
    from pybpfdsl.lang.packet import Packet

    lowered = program.lower()
    results: list[PacketResult] = []
    for i, data in enumerate(packets):
        action = 0
        out = data
        started = time.perf_counter_ns()
        for _ in range(repeat):
            pkt = Packet(data)
            action = run_python(lowered, pkt)
            out = bytes(pkt.data)
        elapsed = (time.perf_counter_ns() - started) // repeat
        results.append(PacketResult(i, len(data), action, elapsed, out != data, out))
    return results


def cmd_run(args: argparse.Namespace) -> int:
    packets: list[bytes] = []
    if args.pcap:
        packets = read_pcap(args.pcap)
        if not packets:
            raise CliError(f"--pcap: {args.pcap} holds no packets")
    else:
        packets = [parse_hex(h) for h in args.packet]
    if not args.python:
        for i, data in enumerate(packets):
            if len(data) < ETH_HLEN:
                raise CliError(f"packet {i} is {len(data)} bytes; kernel test runs need at least {ETH_HLEN} "
                               "(an Ethernet header)", EXIT_USAGE)
    if is_object_target(args.target):
        return _run_object(args, packets)
    if args.section:
        raise CliError("--section applies to object files; name a DSL program as FILE.py:FUNC", EXIT_USAGE)
    target = load_target(args.target)
    program = target.program
    if args.python:
        results = _run_python(program, packets, args.repeat)
    else:
        program.compile(prove=False)  # DSL errors before touching the kernel; a test run proves nothing
        results, _ = _run_kernel(program, packets, args.repeat)
    state = snapshot(program.lower().state).entries if args.state else None
    where = "pure Python" if args.python else "kernel (BPF_PROG_TEST_RUN)"
    return _show(args, target.label, where, len(packets), results, state)


def _run_object(args: argparse.Namespace, packets: list[bytes]) -> int:
    """`run FILE.o`: load the object (as libbpf does), run its XDP program on each packet in the kernel."""
    from pybpfdsl.runtime.kernel_run import run_xdp

    if args.python:
        raise CliError(f"{args.target} is a BPF object: --python runs a DSL program's Python; leave it out to run "
                       "the object in the kernel", EXIT_USAGE)
    obj = xdp_program_of(load_object(args.target, args.section), args.section)
    results: list[PacketResult] = []
    with loaded_object(obj) as loaded:
        fd = loaded.program_fd(obj.program.name)
        for i, data in enumerate(packets):
            r = run_xdp(fd, data, args.repeat)
            results.append(PacketResult(i, len(data), r.action, r.duration_ns, r.packet != data, r.packet))
        state = object_state(obj, loaded, show_all=False) if args.state else None
    return _show(args, obj.label, "kernel (BPF_PROG_TEST_RUN)", len(packets), results, state)


def _show(args: argparse.Namespace, label: str, where: str, count: int, results: list[PacketResult],
          state: list[StateEntry] | None) -> int:
    if args.json:
        if state is None:
            print_json([r.to_json() for r in results])
        else:
            print_json({"results": [r.to_json() for r in results], "state": [e.to_json() for e in state]})
        return 0
    st = style_for()
    timing = "avg ns" if args.repeat > 1 else "ns"
    print(f"{label} in {where}, {count} packet{'s' if count != 1 else ''}"
          + (f", {args.repeat} runs each" if args.repeat > 1 else ""))
    table = Table(["#", "LEN", "ACTION", timing.upper(), "MODIFIED"], [">", ">", "<", ">", "<"])
    for r in results:
        modified = "no"
        if r.modified:
            modified = "yes" if len(r.output) == r.length else f"yes ({len(r.output)} bytes)"
        table.add(r.index, r.length, colour_action(st, action_name(r.action)), r.duration_ns, modified)
    print(table.render(st))
    counts = Counter(action_name(r.action) for r in results)
    if len(results) > 1:
        print("totals: " + ", ".join(f"{colour_action(st, name)} {n}" for name, n in sorted(counts.items())))
    if state is not None:
        print()
        print(state_table(state).render(st))
    return 0
