"""Windows that end in a conditional jump: the jump must be decided the same way, and registers need
agree only where they are live on the way the jump went."""

from __future__ import annotations

import random

import pytest

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.bpf.semantics import SemanticsError
from pybpfdsl.superopt.elf_rewrite import ElfRewriteError, Replacement, rewrite_code
from pybpfdsl.superopt.search import SearchBudget, search_window
from pybpfdsl.superopt.window_check import branch_live, prove_window
from pybpfdsl.superopt.window_semantics import ConcreteMemory, is_branch, run_concrete_branch

MOV_R3_2 = Instruction(0xB7, 3, 0, 0, 2)  # r3 = 2
JGT_R3_R2 = Instruction(0x2D, 3, 2, 6)  # if r3 > r2 goto +6
JLT_R2_2 = Instruction(0xA5, 2, 0, 6, 2)  # if r2 < 2 goto +6
JLE_R2_2 = Instruction(0xB5, 2, 0, 6, 2)  # if r2 <= 2 goto +6
R0, R2, R3 = 1, 1 << 2, 1 << 3


def test_a_register_compare_becomes_an_immediate_compare_when_the_register_is_dead() -> None:
    assert prove_window([MOV_R3_2, JGT_R3_R2], [JLT_R2_2], branch_live(R2, R0)).proven


def test_the_setup_must_stay_where_either_successor_reads_it() -> None:
    # r3 read at the target only, or on the fallthrough only: either way it cannot be dropped.
    assert prove_window([MOV_R3_2, JGT_R3_R2], [JLT_R2_2], branch_live(R2, R0 | R3)).status == "different"
    assert prove_window([MOV_R3_2, JGT_R3_R2], [JLT_R2_2], branch_live(R2 | R3, R0)).status == "different"


def test_a_jump_decided_differently_is_refused() -> None:
    # r2 == 2: the original falls through, r2 <= 2 jumps.
    assert prove_window([MOV_R3_2, JGT_R3_R2], [JLE_R2_2], branch_live(0, 0)).status == "different"


def test_registers_need_only_agree_on_the_way_taken() -> None:
    # r0 = 1; if r2 < 2 goto  ->  if r2 < 2 goto: right only where r0 is not read after the jump is taken...
    window = [Instruction(0xB7, 0, 0, 0, 1), JLT_R2_2]
    assert prove_window(window, [JLT_R2_2], branch_live(0, R0)).status == "different"
    # ... and r0 = 1 must stay when the fallthrough reads it.
    assert prove_window(window, [JLT_R2_2], branch_live(R0, 0)).status == "different"
    assert prove_window(window, [JLT_R2_2], branch_live(0, 0)).proven


def test_the_search_finds_the_immediate_compare_and_the_bit_test() -> None:
    found = search_window((MOV_R3_2, JGT_R3_R2), branch_live(R2, R0), random.Random(0), SearchBudget(proposals=50))
    assert found.replacement == (JLT_R2_2,)
    # r2 = r1; r2 &= 4; if r2 != 0 goto +3  ->  if r1 & 4 goto +3
    window = (Instruction(0xBF, 2, 1), Instruction(0x57, 2, 0, 0, 4), Instruction(0x55, 2, 0, 3, 0))
    found = search_window(window, branch_live(1 << 1, 1 << 1), random.Random(0), SearchBudget(proposals=50))
    assert found.replacement == (Instruction(0x45, 1, 0, 3, 4),)
    assert search_window(window, branch_live(1 << 1, R2), random.Random(0),
                         SearchBudget(proposals=50)).replacement != (Instruction(0x45, 1, 0, 3, 4),)


def test_a_jump_may_only_end_a_window() -> None:
    with pytest.raises(SemanticsError):
        run_concrete_branch([JLT_R2_2, MOV_R3_2], [0] * 11, ConcreteMemory(0))


def test_the_rewritten_jump_keeps_its_target(sample_elf: bytes) -> None:
    prog = BpfElf.from_bytes(sample_elf).programs["xdp"]
    code = prog.instructions
    patched = {r.insn_index for r in prog.relocations}
    at = next(i for i, insn in enumerate(code) if is_branch(insn) and i > 0 and i - 1 not in patched
              and insn.off > 0 and code[i - 1].kind in (Kind.ALU, Kind.MOV))
    jump = code[at]
    starts = slot_offsets(code)
    old_target = starts.index(starts[at] + 1 + jump.off)
    # Drop the instruction before the jump (not a proven rewrite: only the bookkeeping is tested here).
    moved = BpfElf.from_bytes(rewrite_code(sample_elf, {"xdp": [Replacement(at - 1, 2, (jump,))]})).programs["xdp"]
    new, new_starts = moved.instructions, slot_offsets(moved.instructions)
    assert new[at - 1].opcode == jump.opcode
    assert new_starts[at - 1] + 1 + new[at - 1].off == new_starts[old_target - 1]  # the same instruction
    assert new[old_target - 1].opcode == code[old_target].opcode
    with pytest.raises(ElfRewriteError):  # a jump anywhere else in a replacement
        rewrite_code(sample_elf, {"xdp": [Replacement(at - 1, 2, (jump, code[at - 1]))]})
