"""A pointer moved by a constant only to be dereferenced (xdp-tutorial packet02's ICMP cursor: ``r4 += 6;
r3 = r4; r2 = *(u16 *)(r3 +0)``) folded into the access's offset, ``r2 = *(u16 *)(r4 +6)``: three slots to
one, proven; refused where the moved pointer is read after."""

from __future__ import annotations

import random

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.superopt.search import SearchBudget, search_window
from pybpfdsl.superopt.window_check import branch_live, prove_window

ADD6 = Instruction(0x07, 4, 0, 0, 6)  # r4 += 6
COPY = Instruction(0xBF, 3, 4)  # r3 = r4
LOAD = Instruction(0x69, 2, 3, 0)  # r2 = *(u16 *)(r3 +0)
JSET = Instruction(0x45, 2, 0, 1, 0x100)  # if r2 & 0x100 goto pc+1
FOLDED = Instruction(0x69, 2, 4, 6)  # r2 = *(u16 *)(r4 +6)


def _best(window: tuple[Instruction, ...], live: int) -> tuple[Instruction, ...] | None:
    return search_window(window, live, random.Random(0), SearchBudget(proposals=100)).replacement


def test_the_cursor_add_is_folded_into_the_load() -> None:
    live = branch_live(1 << 6 | 1 << 1, 1 << 6 | 1 << 1)
    assert _best((ADD6, COPY, LOAD, JSET), live) == (FOLDED, JSET)
    assert _best((ADD6, Instruction(0x69, 2, 4, 0)), 1 << 2) == (FOLDED,)
    # A store through the moved pointer takes the offset too.
    assert _best((ADD6, Instruction(0x62, 4, 0, 2, 0)), 0) == (Instruction(0x62, 4, 0, 8, 0),)


def test_the_fold_is_refused_where_the_moved_pointer_is_read_after() -> None:
    assert prove_window((ADD6, Instruction(0x69, 2, 4, 0)), (FOLDED,), 1 << 2 | 1 << 4).status == "different"
    got = _best((ADD6, Instruction(0x69, 2, 4, 0)), 1 << 2 | 1 << 4)
    assert got is None or ADD6 in got
