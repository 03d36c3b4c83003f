"""`print(flag)` with a bool shows `True` or `False`, as Python's print does, in every execution: pure Python,
the IR interpreter and the kernel's trace line (issue 16 §2). The kernel has no conversion for it, so the
compiled program picks one of the print's formats by the bools' values; our verifier accepts it and the
proof covers each format."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pybpfdsl import XDP_PASS, Global, Packet, u32, u64, xdp
from pybpfdsl.differential import compare, run_ir, run_python
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang import printk
from pybpfdsl.lang.types import BOOL
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.runtime.trace_pipe import drain
from pybpfdsl.verify.analysis.api import verify_program
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled

KERNEL, _ = kernel_bpf_available()
flag = Global(u32, 0)
nonce = Global(u64, 0)


@xdp
def flags(pkt: Packet) -> int:
    big = pkt.len > 50
    print("pbdbool", big, flag.value == 1, True, "n", nonce.value)
    return XDP_PASS


PACKETS = [bytes(60), bytes(40)]


def _text(length: int, flag_value: int, nonce_value: int) -> str:
    # Python's own print of the same values
    return " ".join(map(str, ["pbdbool", length > 50, flag_value == 1, True, "n", nonce_value]))


def test_python_and_the_ir_interpreter_print_true_and_false(capsys: pytest.CaptureFixture[str]) -> None:
    flag.value, nonce.value = 1, 5
    run_python(flags, PACKETS)
    assert capsys.readouterr().out.splitlines() == [_text(60, 1, 5), _text(40, 1, 5)]
    flag.value = 0
    run_ir(flags, PACKETS)
    assert capsys.readouterr().out.splitlines() == [_text(60, 0, 5), _text(40, 0, 5)]


def test_a_bool_is_constant_text_in_each_format() -> None:
    fmt = printk.PrintFormat(("a", printk.Shown(BOOL), printk.Shown(u32)))
    assert fmt.format_for([True]) == "a True %u" and fmt.fmt == "a False %u"
    assert fmt.values == (printk.Shown(u32),) and fmt.text([1, 7]) == "a True 7"
    ops = [op for block in flags.lower().program.blocks for op in block.instrs if isinstance(op, n.TracePrintk)]
    assert sorted(op.fmt for op in ops) == sorted(f"pbdbool {a} {b} True n %llu" for a in ("True", "False")
                                                  for b in ("True", "False"))


def test_executions_agree_and_the_proof_covers() -> None:
    flag.value = 1
    executions = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")
    assert compare(flags, PACKETS, executions) is None
    subject = flags.compile(prove=False).subject
    report = verify_program(subject)
    assert report.ok, report.format()
    result = prove_compiled(subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()


def test_the_kernel_writes_what_python_prints(tracefs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flag.value, nonce.value = 1, random.randrange(1, 1 << 40)
    want = [_text(60, 1, nonce.value), _text(40, 1, nonce.value)]
    run_python(flags, PACKETS)
    assert capsys.readouterr().out.splitlines() == want
    drain(tracefs / "trace_pipe", quiet_seconds=0.05)
    with flags.load() as loaded:
        for packet in PACKETS:
            loaded.run(packet)
    lines = [line.text for line in drain(tracefs / "trace_pipe") if "pbdbool" in line.text]
    assert lines == want
