"""Fixtures of the command-line tests: small DSL files written into tmp_path, and ways to run the CLI.

`cli(*args)` runs `python -m pybpfdsl ARGS` in a subprocess (stdout and stderr are pipes, so the output
must be plain); `call(*args)` runs `pybpfdsl.cli.main` in this process and captures its output.
Tests that load programs need bpf(): they are marked with `needs_bpf`, which skips them with the reason
where the kernel (or libbpf) is unavailable.
"""

from __future__ import annotations

import dataclasses
import io
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pybpfdsl.cli import main
from pybpfdsl.program import CompiledProgram, XdpProgram
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.equivalence import prove as prove_module
from pybpfdsl.verify.subject import Subject

BPF_OK, BPF_REASON = kernel_bpf_available()
needs_bpf = pytest.mark.skipif(not BPF_OK, reason=f"bpf() unavailable: {BPF_REASON}")

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

COUNTER_SRC = '''
from pybpfdsl import XDP_DROP, XDP_PASS, Array, Global, HashMap, Packet, u16, u64, xdp

dropped = Global(u64, 0)
per_port = HashMap(u16, u64, max_entries=64)
slots = Array(u64, 8)

per_port[80] = 5
slots[2] = 9


@xdp
def drop_telnet(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    if tcp.dport == 23:
        dropped.value += 1
        slots[1] += 1
        return XDP_DROP
    per_port[tcp.dport] = per_port.get(tcp.dport, 0) + 1
    return XDP_PASS
'''

TWO_PROGRAMS_SRC = '''
from pybpfdsl import XDP_DROP, XDP_PASS, Packet, xdp


@xdp
def allow_all(pkt: Packet) -> int:
    return XDP_PASS


@xdp(name="deny")
def deny_all(pkt: Packet) -> int:
    return XDP_DROP
'''

DSL_ERROR_SRC = '''
from pybpfdsl import XDP_PASS, Packet, xdp


@xdp
def broken(pkt: Packet) -> int:
    items = [1, 2]
    return XDP_PASS
'''

SYNTAX_ERROR_SRC = '''
from pybpfdsl import XDP_PASS, Packet, xdp

@xdp
def broken(pkt: Packet) -> int
    return XDP_PASS
'''

IMPORT_ERROR_SRC = '''
from pybpfdsl import XDP_PASS, Packet, xdp

LIMIT = undefined_name + 1
'''


def _ether(ethertype: int, payload: bytes) -> bytes:
    return bytes.fromhex("ffffffffffff" "020000000001") + ethertype.to_bytes(2, "big") + payload


def tcp_packet(dport: int) -> bytes:
    """An Ethernet/IPv4/TCP SYN to `dport` (checksums zero: the programs do not look at them)."""
    tcp = (1234).to_bytes(2, "big") + dport.to_bytes(2, "big") + bytes(8) + bytes([0x50, 0x02]) + bytes(6)
    ip = bytes([0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return _ether(0x0800, ip + tcp)


TELNET_HEX = tcp_packet(23).hex()
HTTP_HEX = tcp_packet(80).hex()


@dataclass
class Result:
    code: int
    out: str
    err: str


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source).lstrip())
    return path


@pytest.fixture(scope="session")
def counter_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One file for the session: the object records its path (line info), so at one path it is the same
    # object in every test, proved once (the proof cache is keyed by its bytes). Tests only read it.
    return write(tmp_path_factory.mktemp("counter"), "counter.py", COUNTER_SRC)


@pytest.fixture
def two_file(tmp_path: Path) -> Path:
    return write(tmp_path, "two.py", TWO_PROGRAMS_SRC)


@pytest.fixture
def cli() -> Callable[..., Result]:
    def run(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
        full_env = dict(os.environ)
        full_env.pop("NO_COLOR", None)
        full_env.update(env or {})
        proc = subprocess.run([sys.executable, "-m", "pybpfdsl", *map(str, args)], capture_output=True,
                              text=True, env=full_env, timeout=timeout, check=False)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def call(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    def run(*args: str | Path) -> Result:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors and --help
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def _corrupt_first_insn(elf: bytes) -> bytes:
    from elftools.elf.elffile import ELFFile

    section = ELFFile(io.BytesIO(elf)).get_section_by_name("xdp")
    assert section is not None
    offset = int(section["sh_offset"])
    bad = bytes([0x79, 0x90, 0, 0, 0, 0, 0, 0])  # r0 = *(u64 *)(r9 +0): r9 was never written
    return elf[:offset] + bad + elf[offset + 8:]


@pytest.fixture
def rejected_by_verifier(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`compile()` gives an object the kernel verifier rejects (its first instruction reads r9, never
    written), carrying the verdicts of both our checks on the program before it was corrupted: the
    tests are about the kernel's verdict, which neither our verifier nor the proof may pre-empt."""
    # The proof gets a larger budget: it must not be what refuses the program.
    monkeypatch.setattr(prove_module, "COMPILE_BUDGET", prove_module.DEFAULT_BUDGET)
    original = XdpProgram.compile
    uncorrupted: dict[bytes, bytes] = {}
    prove_on_compile = prove_module.prove_on_compile

    def compile_broken(self: XdpProgram, **kwargs: object) -> CompiledProgram:
        compiled = original(self, **kwargs)  # type: ignore[arg-type]
        broken = dataclasses.replace(compiled, elf=_corrupt_first_insn(compiled.elf))
        uncorrupted[broken.elf] = compiled.elf
        return broken

    def prove_before_corruption(subject: Subject, *args: Any, **kwargs: Any) -> Any:
        # Only where a proof is asked for (the gate of `attach`), and of the object before the corruption.
        elf = uncorrupted.get(subject.elf, subject.elf)
        return prove_on_compile(dataclasses.replace(subject, elf=elf), *args, **kwargs)

    monkeypatch.setattr(XdpProgram, "compile", compile_broken)
    monkeypatch.setattr(prove_module, "prove_on_compile", prove_before_corruption)
    yield


@pytest.fixture
def rejected_by_our_verifier(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`compile()` gives the same corrupted object, with the verdict of our safety verifier on it
    (rejected: a read through an uninitialised register); a proof, if asked for, is of the program
    before the corruption."""
    from pybpfdsl.verify.analysis.api import verify_program

    original = XdpProgram.compile

    def compile_unsafe(self: XdpProgram, **kwargs: object) -> CompiledProgram:
        compiled = original(self, **{**kwargs, "verify": False})  # type: ignore[arg-type]
        broken = dataclasses.replace(compiled, elf=_corrupt_first_insn(compiled.elf))
        if kwargs.get("verify", True):
            object.__setattr__(broken, "verification", verify_program(broken.subject))  # frozen: as compile does
        return broken

    monkeypatch.setattr(XdpProgram, "compile", compile_unsafe)
    yield


@pytest.fixture
def proofs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the programs proved (IR against bytecode) while the test runs, in order."""
    proved: list[str] = []
    original = prove_module.prove_on_compile

    def recording(subject: Subject, *args: Any, **kwargs: Any) -> Any:
        proved.append(subject.program.name)
        return original(subject, *args, **kwargs)

    monkeypatch.setattr(prove_module, "prove_on_compile", recording)
    return proved


@pytest.fixture
def proof_verdict(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], None]:
    """`proof_verdict(status, reason)`: every proof asked for from now on has that verdict (a stand-in
    for a program the prover cannot prove, without spending a budget)."""

    def set_verdict(status: str, reason: str) -> None:
        def fixed(subject: Subject, *args: Any, **kwargs: Any) -> Any:
            return prove_module.ProofResult(status, 0.01, {}, reason)  # type: ignore[arg-type]

        monkeypatch.setattr(prove_module, "prove_on_compile", fixed)

    return set_verdict
