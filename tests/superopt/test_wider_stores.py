"""Clang's byte-wise copies (a MAC address, a 32-bit field through the stack) made wider by the greedy step:
two stores of a value and of that value shifted right by their width as one store twice as wide, and two
adjacent copies as one. Each rewrite the search returns is proven; each wrong variant planted here is refused.
"""

from __future__ import annotations

import random

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.search import SearchBudget, search_window
from pybpfdsl.superopt.window_check import prove_window

R1, R2 = 1 << 1, 1 << 2


def _search(window: tuple[Instruction, ...], live: int) -> tuple[Instruction, ...] | None:
    return search_window(window, live, random.Random(0), SearchBudget(proposals=60)).replacement


def test_a_value_stored_byte_by_byte_is_one_halfword_store() -> None:
    # r1 = *(u16 *)(r10 -2); *(u8 *)(r7 +4) = r1; r1 >>= 8; *(u8 *)(r7 +5) = r1
    window = (Instruction(0x69, 1, 10, -2), Instruction(0x73, 7, 1, 4), Instruction(0x77, 1, 0, 0, 8),
              Instruction(0x73, 7, 1, 5))
    assert _search(window, 0) == (Instruction(0x69, 1, 10, -2), Instruction(0x6B, 7, 1, 4))
    # Where the shifted r1 is read after, the shift stays.
    found = _search(window, R1)
    assert found is not None and Instruction(0x77, 1, 0, 0, 8) in found and prove_window(window, found, R1).proven
    # The bytes the other way round (big-endian thinking) are a different packet.
    swapped = (Instruction(0x69, 1, 10, -2), Instruction(0x6B, 7, 1, 4))
    reversed_bytes = (window[0], Instruction(0x73, 7, 1, 5), window[2], Instruction(0x73, 7, 1, 4))
    assert prove_window(reversed_bytes, swapped, 0).status == "different"


def test_a_word_stored_as_four_bytes_becomes_one_word_store_in_steps() -> None:
    # clang's copy of a 32-bit field: the high half's bytes through a copy shifted by 16 and 24, the low half's
    # bytes from the value and the value shifted by 8 (the greedy step merges pairs, then the halfwords).
    load = Instruction(0x61, 1, 10, -12)
    high = (Instruction(0xBF, 2, 1), Instruction(0x77, 2, 0, 0, 16), Instruction(0x73, 7, 2, 8),
            Instruction(0xBF, 2, 1), Instruction(0x77, 2, 0, 0, 24), Instruction(0x73, 7, 2, 9))
    assert _search((load, *high), R1) == (load, *high[:2], Instruction(0x6B, 7, 2, 8))
    halves = (load, *high[:2], Instruction(0x6B, 7, 2, 8), Instruction(0x6B, 7, 1, 6))
    assert _search(halves, 0) == (load, Instruction(0x63, 7, 1, 6))
    # The halves the other way round: refused.
    assert prove_window(halves, (load, Instruction(0x63, 7, 1, 8)), 0).status == "different"


def test_two_adjacent_byte_copies_are_one_halfword_copy() -> None:
    # r2 = *(u8 *)(r1 +4); *(u8 *)(r1 +10) = r2; r2 = *(u8 *)(r1 +5); *(u8 *)(r1 +11) = r2
    window = (Instruction(0x71, 2, 1, 4), Instruction(0x73, 1, 2, 10), Instruction(0x71, 2, 1, 5),
              Instruction(0x73, 1, 2, 11))
    assert _search(window, R1) == (Instruction(0x69, 2, 1, 4), Instruction(0x6B, 1, 2, 10))
    # Where r2 is read after, it must hold byte 5 alone: the one copy is refused.
    assert prove_window(window, (Instruction(0x69, 2, 1, 4), Instruction(0x6B, 1, 2, 10)), R1 | R2).status \
        == "different"


def test_a_copy_whose_first_store_feeds_the_second_load_is_refused() -> None:
    # Byte 4 copied to 5, then (the new) byte 5 to 6: one halfword copy would read the old byte 5.
    window = (Instruction(0x71, 2, 1, 4), Instruction(0x73, 1, 2, 5), Instruction(0x71, 2, 1, 5),
              Instruction(0x73, 1, 2, 6))
    wide = (Instruction(0x69, 2, 1, 4), Instruction(0x6B, 1, 2, 5))
    assert prove_window(window, wide, R1).status == "different"
    found = _search(window, R1)
    assert found != wide and (found is None or prove_window(window, found, R1).proven)

