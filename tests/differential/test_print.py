"""`print(...)` in a program (issue 16 §5): pure Python and the IR interpreter print the same text, the
program compiles to bpf_trace_printk (our verifier and the kernel's accept it, the proof covers the
trace record), the kernel writes that very text to the trace pipe, and formats the kernel would refuse
are refused at compile time."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, i32, u64, xdp
from pybpfdsl.differential import compare, run_ir, run_python
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.runtime.trace_pipe import drain
from pybpfdsl.verify.analysis.api import verify_program
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled

KERNEL, _ = kernel_bpf_available()
nonce = Global(u64, 0)


@xdp
def chatty(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        print("no ipv4, length", pkt.len)
        return XDP_PASS
    delta = i32(ip4.ttl) - 100
    print("pbd ttl", ip4.ttl, "delta", delta, "100% sure, nonce", nonce.value)
    if ip4.ttl == 1:
        return XDP_DROP
    return XDP_PASS


def _ipv4(ttl: int) -> bytes:
    header = bytes([0x45, 0, 0, 28, 0, 1, 0, 0, ttl, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return bytes(12) + b"\x08\x00" + header + bytes(8)


PACKETS = [_ipv4(64), _ipv4(1), bytes(40)]
TEXT = ["pbd ttl 64 delta -36 100% sure, nonce 7", "pbd ttl 1 delta -99 100% sure, nonce 7", "no ipv4, length 40"]


@pytest.fixture(autouse=True)
def _nonce() -> None:
    nonce.value = 7


def test_python_and_the_ir_interpreter_print_the_same_text(capsys: pytest.CaptureFixture[str]) -> None:
    run_python(chatty, PACKETS)
    assert capsys.readouterr().out.splitlines() == TEXT
    run_ir(chatty, PACKETS)
    assert capsys.readouterr().out.splitlines() == TEXT


def test_executions_agree_on_actions_and_state() -> None:
    executions = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
    assert compare(chatty, PACKETS, executions) is None


def test_print_program_passes_our_verifier_and_is_proven() -> None:
    subject = chatty.compile(prove=False).subject
    report = verify_program(subject)
    assert report.ok, report.format()
    result = prove_compiled(subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()


def test_the_kernel_writes_the_same_text(tracefs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nonce.value = random.randrange(1, 1 << 40)
    run_python(chatty, PACKETS[:1])
    want = capsys.readouterr().out.strip()
    drain(tracefs / "trace_pipe", quiet_seconds=0.05)
    with chatty.load() as loaded:
        loaded.run(PACKETS[0])
    assert want in [line.text for line in drain(tracefs / "trace_pipe")]
