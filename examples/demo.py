"""`make demo`: compile every example, check it with our verifier, prove it with Z3, load it through the
kernel verifier, run packets in the kernel and in pure Python, and print what happened.

First one example in detail (the port ACL: a rule added from Python while the program runs in the kernel),
then a table of every example.

For each example program the table shows the size at each stage (Python lines, IR instructions, BPF
instructions, instructions after the kernel's rewrites, x86 instructions of the JIT image), how long
compiling and loading took, the actions the kernel returned for a few packets, whether pure Python agreed
and how that was checked, and the kernel's run time per packet (BPF_PROG_TEST_RUN, averaged over 1,000
repeats).

Programs that call `random()` or `now_ns()` cannot be compared packet by packet with the kernel, whose
helpers no test can fix: those that use `random()` are compared with the kernel statistically (how often
each packet gets each action over many rounds), those that read the clock with fixed helper results
(pure Python against the bytecode interpreter running the object the kernel loads).
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)  # no "MAC address not found" noise
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from pybpfdsl import DslError, XdpAction, XdpProgram  # noqa: E402
from pybpfdsl.differential import compare, compare_statistically, uses_helpers  # noqa: E402
from pybpfdsl.ir.nodes import Helper  # noqa: E402
from pybpfdsl.runtime.libbpf import kernel_bpf_available  # noqa: E402
from pybpfdsl.testing import FixedHelpers, reset_state  # noqa: E402

PACKETS: list[tuple[str, bytes]] = [
    ("udp :53", bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=53) / Raw(b"\x00" * 16))),
    ("tcp :80", bytes(Ether() / IP(src="10.0.0.3", dst="10.0.0.2") / TCP(sport=5000, dport=80, flags="S"))),
    ("udp6 :8080", bytes(Ether() / IPv6() / UDP(sport=1, dport=8080) / Raw(b"hello world!"))),
    ("arp-ish", bytes(Ether(type=0x0806) / Raw(b"\x00" * 28))),
]


def programs() -> list[tuple[str, XdpProgram]]:
    found = []
    for path in sorted(HERE.glob("*.py")):
        if path.stem in ("demo", "__init__"):
            continue
        module = importlib.import_module(f"examples.{path.stem}")
        for value in vars(module).values():
            if isinstance(value, XdpProgram) and value.function.__module__ == module.__name__:
                found.append((path.stem, value))
    return found


STAT_ROUNDS = 200
"""Rounds of the statistical comparison (each packet this many times, in the kernel and in Python)."""
FIXED_ROUNDS = 10
"""Rounds of the comparison with fixed helper results (the interpreters are slower than the kernel)."""


def agreement(prog: XdpProgram, kernel: list[int]) -> str:
    """Whether pure Python agrees with what runs in the kernel, and how that was checked: "exact" (the
    same actions, packet by packet), "stat" (random(): the same action frequencies, within chance, over
    STAT_ROUNDS rounds) or "fixed" (the clock: pure Python, the IR and the bytecode interpreter running
    the compiled object agree with the same fixed helper results)."""
    packets = [p for _, p in PACKETS]
    if uses_helpers(prog, (Helper.KTIME_GET_NS, Helper.SMP_PROCESSOR_ID)):
        # The kernel's clock moves in microseconds where Python's moves in milliseconds: no statistics
        # would make a rate limiter's refills agree. The same helper results, given to every execution
        # but the kernel, do. One millisecond between readings exercises the refill.
        mismatch = compare(prog, packets * FIXED_ROUNDS, executions=("python", "ir", "bytecode"),
                           helpers=lambda: FixedHelpers(seed=1, clock_ns=10**9, clock_step_ns=10**6))
        return "yes fixed" if mismatch is None else "DIFFERS fixed"
    if uses_helpers(prog):
        return "yes stat" if compare_statistically(prog, packets, STAT_ROUNDS) is None else "DIFFERS stat"
    python = [prog(p) for p in packets]
    return "yes exact" if python == kernel else "DIFFERS exact"


def action_name(action: int) -> str:
    try:
        return XdpAction(action).name
    except ValueError:
        return str(action)


def walkthrough() -> None:
    """The port ACL, step by step: compile, show the bytecode of one Python line, load, deny a port live."""
    from examples import port_acl as acl

    reset_state(acl)
    prog = acl.port_acl_filter
    compiled = prog.compile()
    print(f"1. compile examples/port_acl.py:{prog.name}: {compiled.stats['dsl_loc']} Python lines -> "
          f"{compiled.stats['ir_insns']} IR instructions -> {compiled.stats['bpf_insns']} BPF instructions")
    report = compiled.verification
    print(f"2. our verifier: {'safe' if report.ok else 'REJECTED'} ({report.processed} states in "
          f"{report.seconds * 1000:.0f} ms); Z3, bytecode against the IR: {compiled.proof_summary()}")
    udp53, tcp80 = PACKETS[0][1], PACKETS[1][1]
    with prog.load() as loaded:
        print(f"3. the kernel verifier accepted it: {loaded.xlated_insns} instructions after the kernel's rewrites, "
              f"{loaded.jited_insns} x86 instructions after the JIT")
        before = [action_name(loaded.run(p).action) for p in (udp53, tcp80)]
        acl.deny_port(53)  # a control-plane write: goes straight into the kernel map
        after = [action_name(loaded.run(p).action) for p in (udp53, tcp80)]
        print(f"4. udp :53 and tcp :80 before denying port 53: {before}; after: {after}")
        print(f"5. live state read from the kernel: port_acl = {dict(acl.port_acl.items())}, "
              f"denied_packets = {acl.denied_packets.value}")
    python_after = [action_name(prog(p)) for p in (udp53, tcp80)]
    print(f"6. the same function in pure Python (same state, copied back at close): {python_after}\n")
    reset_state(acl)


def main() -> int:
    ok, reason = kernel_bpf_available()
    print(f"kernel BPF: {'available' if ok else 'NOT available: ' + reason}\n")
    if ok:
        walkthrough()
    header = (f"{'example':<22}{'py':>4}{'ir':>6}{'bpf':>6}{'xlat':>6}{'jit':>6}{'compile':>9}{'verify':>8}"
              f"{'proof':>10}{'load':>7}  {'actions (kernel) on: ' + ', '.join(n for n, _ in PACKETS):<60}"
              f"{'py=kern':>14}{'ns/pkt':>8}")
    print(header)
    print("-" * len(header))
    failures = 0
    for stem, prog in programs():
        module = sys.modules[prog.function.__module__]
        reset_state(module)
        try:
            compiled = prog.compile()
        except DslError as exc:
            print(f"{stem:<22}compile error:\n{exc}")
            failures += 1
            continue
        stats = compiled.stats
        if not ok:
            print(f"{stem:<22}{stats['dsl_loc']:>4}{stats['ir_insns']:>6}{stats['bpf_insns']:>6}   (no kernel)")
            continue
        started = time.perf_counter()
        with prog.load() as loaded:
            load_ms = (time.perf_counter() - started) * 1000
            kernel = [loaded.run(p).action for _, p in PACKETS]
            timing = loaded.run(PACKETS[0][1], repeat=1000).duration_ns
            xlated, jited = loaded.xlated_insns, loaded.jited_insns
        reset_state(module)
        agree = agreement(prog, kernel)
        if agree.startswith("DIFFERS"):
            failures += 1
        actions = ", ".join(action_name(a) for a in kernel)
        safe = "safe" if compiled.verification.ok else "REJECT"
        proof = compiled.proof.status
        print(f"{stem:<22}{stats['dsl_loc']:>4}{stats['ir_insns']:>6}{stats['bpf_insns']:>6}{xlated:>6}"
              f"{jited if jited is not None else '-':>6}{stats['compile_seconds'] * 1000:>7.0f}ms{safe:>8}"
              f"{proof:>10}{load_ms:>5.0f}ms  {actions:<60}{agree:>14}{timing:>8}")
        reset_state(module)
    print("\npy/ir/bpf: Python lines, IR instructions, BPF instruction slots; xlat/jit: after the kernel's"
          " rewrites / x86 instructions; load includes the kernel verifier.")
    print("verify: pybpfdsl's own safety verifier; proof: Z3 on bytecode vs IR ('unknown': not proven within its"
          " budget; attach refuses such a program unless told otherwise). Verdicts are cached: a second run is"
          " quicker.")
    print("py=kern: exact: pure Python returned the kernel's actions; stat (programs using random()): the same"
          f" action frequencies over {STAT_ROUNDS} rounds, within chance;\n         fixed (programs reading the"
          " clock, which no test can fix in the kernel): pure Python, the IR and the bytecode interpreter running"
          " the loaded object agree, given the same helper results.")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
