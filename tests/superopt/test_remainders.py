"""A remainder clang computes by dividing a copy (``t = x; t /= K; t *= K; x -= t``) as one ``x %= K``, found by the
greedy step and proven with the units a 64-bit division needs; wrong variants are refused."""

from __future__ import annotations

import random

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.search import SearchBudget, search_window
from pybpfdsl.superopt.window_check import prove_window

R1, R2 = 1 << 1, 1 << 2
# ok_prandom.c: w1 = w0; r2 = r1; r2 /= 100; r2 *= 100; r1 -= r2  (r0 % 100 of a random u32)
WINDOW = (Instruction(0xBC, 1, 0), Instruction(0xBF, 2, 1), Instruction(0x37, 2, 0, 0, 100),
          Instruction(0x27, 2, 0, 0, 100), Instruction(0x1F, 1, 2))


def _search(live: int) -> tuple[Instruction, ...] | None:
    return search_window(WINDOW, live, random.Random(0), SearchBudget(proposals=60)).replacement


def test_the_divided_copy_becomes_one_remainder() -> None:
    assert _search(R1) == (Instruction(0xBC, 1, 0), Instruction(0x97, 1, 0, 0, 100))


def test_it_stays_where_the_quotient_times_the_divisor_is_read_after() -> None:
    found = _search(R1 | R2)
    assert found is None or Instruction(0x97, 1, 0, 0, 100) not in found


def test_a_remainder_by_another_divisor_is_refused() -> None:
    wrong = (Instruction(0xBC, 1, 0), Instruction(0x97, 1, 0, 0, 101))
    assert prove_window(WINDOW, wrong, R1, 20_000_000).status == "different"
