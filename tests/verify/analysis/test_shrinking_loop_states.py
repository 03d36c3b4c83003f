"""A loop iteration whose states are strictly included in the last one's is unrolled further, not refused as
endless: only an iteration that repeats the last exactly shows that nothing bounds the loop.

The loop pass unrolls each loop from the fixpoint's states at its entry. When those states join many
iterations of an enclosing loop (more values of its counter than the partitions hold), the counter enters
as a range, ``[2, 40]``; one more iteration takes 2 off and drops what the exit test removes, ``[2, 38]``,
a state the first iteration covers. The loop pass called that endless ("iteration 2 starts from a state an
earlier iteration already covered"), yet the ranges shrink with every iteration until the back edge cannot
be taken: the kernel, which follows each path with its counter known, loads the program. An iteration that
covers the last only by shrinking it is a step towards the end (or to a repeat, or to the unrolling budget,
which are refusals still). Generated programs 42074 and 43129 (tests/generated/test_known_bugs_session16.py)
were refused so. A loop whose iterations go on narrowing (a counter from an unknown number, counting down)
is refused after ``NARROWING_ITERATIONS`` of them, as the kernel refuses it (too large), without unrolling it
to the budget: each narrowing step of a wide range is costly.
"""

from __future__ import annotations

import pytest

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import InsnClass, JmpOp, Source, make
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import Code, verify_instructions
from pybpfdsl.verify.analysis.loops import NARROWING_ITERATIONS
from tests.verify.analysis.kernel_oracle import kernel_verdict
from tests.verify.analysis.opcodes import EXIT, PRANDOM, add_imm, ja, mov, mov_reg

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")


def _jump_imm(op: JmpOp, dst: int, imm: int, skip: int) -> Instruction:
    """``if rD <op> imm goto +skip``"""
    return Instruction(make(InsnClass.JMP, op, Source.K), dst, 0, skip, imm)


def two_back_edges(step: int) -> list[Instruction]:
    """A counted loop with two back edges, as LLVM lays out ``for`` loops whose body is skipped on some
    paths (generated program 42074): the path that skips the body goes back to the test's successor, the
    other to the loop's top; ``step`` is added to the counter ``r7`` (from 40) on both."""
    return [
        PRANDOM,                               # 0: r0 = an unknown number
        mov_reg(6, 0),                         # 1: r6 = r0
        mov(7, 40),                            # 2: r7 = 40
        mov(1, 0),                             # 3: top: r1 = 0
        ja(2),                                 # 4: goto 7
        _jump_imm(JmpOp.JNE, 6, 0, 1),         # 5: next: if r6 != 0 goto 7 (skip the body)
        ja(-4),                                # 6: goto 3 (the body)
        add_imm(7, step),                      # 7: r7 += step
        _jump_imm(JmpOp.JSGT, 7, 1, -4),       # 8: if r7 s> 1 goto 5
        mov(0, 2),                             # 9: r0 = XDP_PASS
        EXIT,
    ]


COUNTED = two_back_edges(-2)
"""Ends after 20 iterations on every path."""
ENDLESS = two_back_edges(0)
"""The counter never changes: endless."""
FROM_UNKNOWN = [PRANDOM, mov_reg(7, 0), add_imm(7, -1), _jump_imm(JmpOp.JSGT, 7, 1, -2), mov(0, 2), EXIT]
"""``r7 = an unknown number; l: r7 -= 1; if r7 s> 1 goto l``: ends on every path, after up to 2**63 iterations
(the kernel: "BPF program is too large")."""


def test_a_loop_whose_counter_enters_as_a_range_is_shown_to_end() -> None:
    report = verify_instructions(COUNTED)
    assert report.ok, report.format()


def test_a_loop_whose_iterations_repeat_is_still_refused_as_endless() -> None:
    report = verify_instructions(ENDLESS)
    assert not report.ok
    assert {f.code for f in report.findings if f.is_error} == {Code.UNBOUNDED_LOOP}, report.format()
    assert "would start from the state iteration" in report.format()


def test_a_loop_that_only_narrows_its_ranges_is_refused_without_unrolling_it_to_the_budget() -> None:
    report = verify_instructions(FROM_UNKNOWN)
    assert not report.ok
    errors = [f for f in report.findings if f.is_error]
    assert [(f.code, f.insn) for f in errors] == [(Code.UNBOUNDED_LOOP, 2)], report.format()
    assert "only narrower" in errors[0].message
    # about 2 instructions per iteration; unrolled to the budget it was 300,000, then as many simulated steps
    assert report.analysis is not None and report.analysis.processed < 10 * NARROWING_ITERATIONS


@needs_kernel
@pytest.mark.parametrize(("insns", "loads"), [(COUNTED, True), (ENDLESS, False), (FROM_UNKNOWN, False)])
def test_the_kernel_agrees(insns: list[Instruction], loads: bool) -> None:
    assert kernel_verdict(insns).ok is loads
