"""K2's memory-exchange rewrites found by the greedy step, the stack rules the kernel adds, and sign extension.

Each rewrite the search returns must be proven; each wrong one planted here must be refused by the proof,
and each the kernel would refuse (a misaligned or out-of-frame stack access) must never be proposed.
"""

from __future__ import annotations

import random

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.search import SearchBudget, search_window
from pybpfdsl.superopt.window_check import prove_window, stack_safe

R1, R2 = 1 << 1, 1 << 2


def _search(window: tuple[Instruction, ...], live: int) -> tuple[Instruction, ...] | None:
    return search_window(window, live, random.Random(0), SearchBudget(proposals=60)).replacement


def test_a_64_bit_constant_store_becomes_two_32_bit_immediate_stores_where_its_register_is_dead() -> None:
    window = (Instruction.lddw(1, 0x400000003), Instruction(0x7B, 10, 1, -16))  # 3 slots
    halves = (Instruction(0x62, 10, 0, -16, 3), Instruction(0x62, 10, 0, -12, 4))  # 2 slots
    assert _search(window, 0) == halves
    assert _search(window, R1) is None  # r1 still read after: the lddw stays
    # The halves swapped (big-endian thinking) are wrong, and the proof says so.
    swapped = (Instruction(0x62, 10, 0, -16, 4), Instruction(0x62, 10, 0, -12, 3))
    assert prove_window(window, swapped, 0).status == "different"


def test_a_narrow_store_into_a_constant_store_is_folded_into_its_value() -> None:
    # *(u64 *)(r10 -16) = 0; *(u64 *)(r10 -8) = 0; *(u8 *)(r10 -13) = 7: byte 3 of the first store is 7.
    window = (Instruction(0x7A, 10, 0, -16, 0), Instruction(0x7A, 10, 0, -8, 0), Instruction(0x72, 10, 0, -13, 7))
    assert _search(window, 0) == (Instruction(0x7A, 10, 0, -16, 7 << 24), Instruction(0x7A, 10, 0, -8, 0))
    # The byte put at the wrong place in the value: refused.
    assert prove_window(window, (Instruction(0x7A, 10, 0, -16, 7 << 16), window[1]), 0).status == "different"
    # A load between the two stores sees the first value: nothing is folded.
    read = (window[0], Instruction(0x71, 2, 10, -13), window[2])
    found = _search(read, R2)
    assert found is None or prove_window(read, found, R2).proven


def test_stack_accesses_the_kernel_refuses_are_never_candidates() -> None:
    assert not stack_safe([Instruction(0x62, 10, 0, -62, 0)])  # *(u32 *)(r10 -62) = 0: misaligned
    assert not stack_safe([Instruction(0x79, 2, 10, -4)])  # 8 bytes at r10-4: past the frame's top
    assert not stack_safe([Instruction(0x72, 10, 0, -513, 0)])  # below the 512-byte frame
    # Through a register the window set to r10 plus a constant.
    assert not stack_safe([Instruction(0xBF, 2, 10), Instruction(0x07, 2, 0, 0, -6), Instruction(0x62, 2, 0, 0, 0)])
    assert stack_safe([Instruction(0xBF, 2, 10), Instruction(0x07, 2, 0, 0, -8), Instruction(0x62, 2, 0, 0, 0)])
    assert stack_safe([Instruction(0x62, 1, 0, -62, 0)])  # not the stack: the kernel lets packets be unaligned
    # Two halfword zeros at -62 and -60 make a word at -62, which the proof accepts and the kernel refuses:
    # the search does not offer it; at -64 and -62 it does.
    misaligned = (Instruction(0x6A, 10, 0, -62, 0), Instruction(0x6A, 10, 0, -60, 0))
    assert prove_window(misaligned, (Instruction(0x62, 10, 0, -62, 0),), 0).proven
    assert _search(misaligned, 0) is None
    aligned = (Instruction(0x6A, 10, 0, -64, 0), Instruction(0x6A, 10, 0, -62, 0))
    assert _search(aligned, 0) == (Instruction(0x62, 10, 0, -64, 0),)


def test_a_shift_pair_sign_extension_becomes_one_instruction() -> None:
    # r2 = *(u32 *)(r10 -4); r2 <<= 32; r2 s>>= 32  ->  r2 = *(s32 *)(r10 -4)
    window = (Instruction(0x61, 2, 10, -4), Instruction(0x67, 2, 0, 0, 32), Instruction(0xC7, 2, 0, 0, 32))
    assert _search(window, R2) == (Instruction(0x81, 2, 10, -4),)
    # r1 <<= 48; r1 s>>= 48  ->  r1 = (s16)r1
    pair = (Instruction(0x67, 1, 0, 0, 48), Instruction(0xC7, 1, 0, 0, 48))
    assert _search(pair, R1) == (Instruction(0xBF, 1, 1, 16),)
    # Extending from the wrong width is refused.
    assert prove_window(pair, (Instruction(0xBF, 1, 1, 32),), R1).status == "different"
