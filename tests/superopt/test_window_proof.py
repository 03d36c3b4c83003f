"""Soundness of the window check: a wrong candidate is never proven, whatever the tests said."""

from __future__ import annotations

import random

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.search import SearchBudget, search_window
from pybpfdsl.superopt.window_check import branch_live, prove_window

MOV_R1_0 = Instruction(0xB7, 1, 0, 0, 0)  # r1 = 0
STX_W = Instruction(0x63, 10, 1, -4)  # *(u32 *)(r10 -4) = r1
STX_W8 = Instruction(0x63, 10, 1, -8)  # *(u32 *)(r10 -8) = r1
ST_DW0 = Instruction(0x7A, 10, 0, -8, 0)  # *(u64 *)(r10 -8) = 0
ST_DW1 = Instruction(0x7A, 10, 0, -8, 1)  # *(u64 *)(r10 -8) = 1
LIVE_R1 = 1 << 1


def test_merging_two_zero_stores_is_proven_when_the_register_is_dead() -> None:
    assert prove_window([MOV_R1_0, STX_W, STX_W8], [ST_DW0], live_out=0).proven


def test_the_same_merge_is_refused_when_the_register_is_still_read() -> None:
    verdict = prove_window([MOV_R1_0, STX_W, STX_W8], [ST_DW0], live_out=LIVE_R1)
    assert verdict.status == "different"


def test_a_wrong_constant_in_memory_is_refused() -> None:
    assert prove_window([MOV_R1_0, STX_W, STX_W8], [ST_DW1], live_out=0).status == "different"


def test_a_constant_known_on_entry_is_a_precondition_not_a_guess() -> None:
    # r0 = 2 is redundant only if r0 is known to be 2 on entry.
    mov_r0_2 = Instruction(0xB7, 0, 0, 0, 2)
    assert prove_window([mov_r0_2], [], live_out=1, known={0: 2}).proven
    assert prove_window([mov_r0_2], [], live_out=1, known={0: 3}).status == "different"
    assert prove_window([mov_r0_2], [], live_out=1).status == "different"


def test_the_search_finds_the_merge_and_only_proven_rewrites() -> None:
    window = (MOV_R1_0, STX_W, STX_W8)
    result = search_window(window, 0, random.Random(1), SearchBudget(proposals=200))
    assert result.replacement == (ST_DW0,)
    assert 0 < result.best_at <= 200  # when it was found, in proposals
    result = search_window(window, LIVE_R1, random.Random(1), SearchBudget(proposals=200))
    assert result.replacement is None or prove_window(window, result.replacement, LIVE_R1).proven


def test_the_greedy_moves_fold_pairs_into_one_instruction() -> None:
    zext = (Instruction(0x67, 1, 0, 0, 32), Instruction(0x77, 1, 0, 0, 32))  # r1 <<= 32; r1 >>= 32
    assert search_window(zext, LIVE_R1, random.Random(0), SearchBudget(proposals=20)).replacement == (
        Instruction(0xBC, 1, 1),)  # w1 = w1
    const = (Instruction(0xB7, 1, 0, 0, 8), Instruction(0x67, 1, 0, 0, 2))  # r1 = 8; r1 <<= 2
    assert search_window(const, LIVE_R1, random.Random(0), SearchBudget(proposals=20)).replacement == (
        Instruction(0xB7, 1, 0, 0, 32),)


def test_two_adjacent_byte_loads_become_one_halfword_load() -> None:
    # r2 = *(u8 *)(r1 +12); r1 = *(u8 *)(r1 +13); r1 <<= 8; r1 |= r2  ->  r1 = *(u16 *)(r1 +12)
    window = (Instruction(0x71, 2, 1, 12), Instruction(0x71, 1, 1, 13), Instruction(0x67, 1, 0, 0, 8),
              Instruction(0x4F, 1, 2))
    result = search_window(window, LIVE_R1, random.Random(0), SearchBudget(proposals=50))
    assert result.replacement == (Instruction(0x69, 1, 1, 12),)
    assert search_window(window, LIVE_R1 | 1 << 2, random.Random(0),
                         SearchBudget(proposals=50)).replacement != (Instruction(0x69, 1, 1, 12),)


def test_a_register_copy_is_folded_into_its_definition_or_its_readers() -> None:
    # r1 = *(u32 *)(r10 -4); r0 = r1  ->  r0 = *(u32 *)(r10 -4), only where r1 is dead after.
    window = (Instruction(0x61, 1, 10, -4), Instruction(0xBF, 0, 1))
    assert search_window(window, 1, random.Random(0), SearchBudget(proposals=20)).replacement == (
        Instruction(0x61, 0, 10, -4),)
    assert search_window(window, 1 | LIVE_R1, random.Random(0), SearchBudget(proposals=20)).replacement is None
    # r3 = r4; r2 = *(u16 *)(r3 +0)  ->  r2 = *(u16 *)(r4 +0), where r3 is dead after.
    window = (Instruction(0xBF, 3, 4), Instruction(0x69, 2, 3, 0))
    assert search_window(window, 1 << 2, random.Random(0), SearchBudget(proposals=20)).replacement == (
        Instruction(0x69, 2, 4, 0),)


def test_a_pointer_made_only_to_be_dereferenced_is_folded_into_the_offset() -> None:
    # r4 = r1; r4 += 23; r4 = *(u8 *)(r4 +0)  ->  r4 = *(u8 *)(r1 +23)
    window = (Instruction(0xBF, 4, 1), Instruction(0x07, 4, 0, 0, 23), Instruction(0x71, 4, 4, 0))
    assert search_window(window, 1 << 4, random.Random(0), SearchBudget(proposals=20)).replacement == (
        Instruction(0x71, 4, 1, 23),)
    # The same with the pointer stored as well: it must stay.
    window = (*window[:2], Instruction(0x7B, 10, 4, -8), Instruction(0x71, 3, 4, 0))
    found = search_window(window, 1 << 3, random.Random(0), SearchBudget(proposals=20)).replacement
    assert found is None or prove_window(window, found, 1 << 3).proven


def test_stores_of_a_register_known_constant_become_immediates_even_where_the_register_stays_live() -> None:
    # r7 is 0 on entry and read after the window (more stores of it follow): no slot is saved here, but
    # the stores no longer read r7, so the pass after can drop `r7 = 0` once no window reads it.
    window = (Instruction(0x7B, 10, 7, -16), Instruction(0x7B, 10, 7, -24), Instruction(0xBF, 8, 2))
    live = 1 << 7 | 1 << 8
    found = search_window(window, live, random.Random(0), SearchBudget(proposals=40), known={7: 0}).replacement
    assert found == (Instruction(0x7A, 10, 0, -16, 0), Instruction(0x7A, 10, 0, -24, 0), window[2])
    # Without the fact, r7 is any value: nothing is rewritten.
    assert search_window(window, live, random.Random(0), SearchBudget(proposals=40)).replacement is None


def test_a_sign_test_of_a_value_shifted_up_by_32_becomes_a_32_bit_jump() -> None:
    # r3 = r2; r3 <<= 32; r7 = 0; if r3 s< 0 goto +5  ->  r7 = 0; if w2 s< 0 goto +5 (r3 dead both ways).
    window = (Instruction(0xBF, 3, 2), Instruction(0x67, 3, 0, 0, 32), Instruction(0xB7, 7, 0, 0, 0),
              Instruction(0xC5, 3, 0, 5, 0))
    live = branch_live(1 << 2 | 1 << 7, 1 << 7)
    found = search_window(window, live, random.Random(0), SearchBudget(proposals=60)).replacement
    assert found == (window[2], Instruction(0xC6, 2, 0, 5, 0))
    # Where r3 is read after the jump, the shift stays; a 64-bit compare of the unshifted value is wrong.
    kept = search_window(window, branch_live(1 << 3, 0), random.Random(0), SearchBudget(proposals=60)).replacement
    assert kept is None or prove_window(window, kept, branch_live(1 << 3, 0)).proven
    assert prove_window(window, (window[2], Instruction(0xC5, 2, 0, 5, 0)), live).status == "different"
