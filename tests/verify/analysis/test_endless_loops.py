"""A loop whose every iteration repeats the last in all that decides its jumps is refused as endless at once,
not unrolled to the termination pass's budget.

``l: r0 += 1; if r1 != 0 goto l`` with ``r1 = 1``: the counter ``r0`` differs in every iteration, so no
iteration's state includes an earlier one, and the unrolling ran 150,000 iterations (300,000 simulated
instructions, then as many steps of the kernel's simulated exploration) before it refused the loop as too
long. Nothing reads the counter but its own update (``r0 = 2`` follows the loop), and the test does not
change: the kernel calls it an infinite loop. A counter that is read keeps the loop apart from an endless
one, and a loop bounded by another counter is still unrolled to its end.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import InsnClass, JmpOp, Source, make
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from tests.verify.analysis.kernel_oracle import kernel_verdict
from tests.verify.analysis.opcodes import EXIT, add_imm, mov

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


def _jump_imm(op: JmpOp, dst: int, imm: int, skip: int) -> Instruction:
    """``if rD <op> imm goto +skip``"""
    return Instruction(make(InsnClass.JMP, op, Source.K), dst, 0, skip, imm)


ENDLESS = [mov(0, 0), mov(1, 1), add_imm(0, 1), _jump_imm(JmpOp.JNE, 1, 0, -2), mov(0, 2), EXIT]
"""``r0 = 0; r1 = 1; l: r0 += 1; if r1 != 0 goto l; r0 = 2; exit``"""

BOUNDED = [mov(0, 0), mov(1, 0), add_imm(0, 1), add_imm(1, 1), _jump_imm(JmpOp.JLT, 1, 40, -3), mov(0, 2), EXIT]
"""``r0 = 0; r1 = 0; l: r0 += 1; r1 += 1; if r1 < 40 goto l; r0 = 2; exit``: the same unread counter, in a
loop that ends after 40 iterations."""


def test_a_loop_that_repeats_all_it_tests_is_refused_as_endless_without_unrolling_it() -> None:
    report = verify_instructions(ENDLESS)
    assert not report.ok
    assert [(f.code, f.insn) for f in report.findings if f.is_error] == [(Code.UNBOUNDED_LOOP, 2)], report.format()
    assert report.analysis is not None and report.analysis.processed < 10_000  # (it was 396,301)


def test_an_unread_counter_does_not_hide_the_loops_bound() -> None:
    report = verify_instructions(BOUNDED)
    assert report.ok, report.format()
    assert report.analysis is not None and report.analysis.loop_iterations == {2: 40}


@needs_kernel
@pytest.mark.parametrize(("insns", "loads"), [(ENDLESS, False), (BOUNDED, True)])
def test_the_kernel_agrees(insns: list[Instruction], loads: bool) -> None:
    assert kernel_verdict(insns).ok is loads
