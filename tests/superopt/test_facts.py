"""What a rewrite assumes: the facts (constants, widths) of the registers its proof needs, and no others,
so a neighbour that changes an unrelated register's fact does not void it, and one that changes a
needed fact does."""

from __future__ import annotations

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.optimizer import _needed
from pybpfdsl.superopt.window_check import DEFAULT_PROOF_UNITS, branch_live

MOV_R0_2 = Instruction(0xB7, 0, 0, 0, 2)
JNE_R9 = Instruction(0x55, 9, 0, 5, 0x29)
AND_R4 = Instruction(0x57, 4, 0, 0, 0xFFFF)


def test_a_dropped_constant_move_needs_that_constant_and_nothing_else() -> None:
    # `r0 = 2; if r9 != 0x29` as the jump alone, where r0 holds 2 on entry: the proof needs r0 = 2
    # (passed through), not r3's constant nor r9's width (the jump reads r9 the same in both).
    live = branch_live(1 << 0 | 1 << 9, 1 << 0)
    known, widths = _needed((MOV_R0_2, JNE_R9), (JNE_R9,), live, {0: 2, 3: 7}, {9: 8, 3: 16},
                            DEFAULT_PROOF_UNITS)
    assert known == {0: 2}
    assert widths == {9: 8}  # read on entry by both: kept (the proof may not need it, but it is named)


def test_a_dropped_mask_needs_the_width_of_its_register() -> None:
    known, widths = _needed((AND_R4,), (), 1 << 4, {1: 5}, {4: 16, 2: 8}, DEFAULT_PROOF_UNITS)
    assert (known, widths) == ({}, {4: 16})
