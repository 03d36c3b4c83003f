"""A proof's unit charge follows the work it does, so that a budget in units bounds its time on a given
machine: no normal-form step walks a term without paying for it. Work is counted in steps (term nodes a
walk visits), never in seconds.

The case that broke it: `pkt.adjust_tail(4000)` leaves 4,000 stores of a zero byte at len + i, and
every read of a byte walked the stores above it unpaid, 8 million steps for the outputs alone: the
proof ran for minutes at 4M units and was "unknown" at any budget that finished."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import z3

from pybpfdsl import XDP_ABORTED, Packet, xdp
from pybpfdsl.verify.equivalence.budget import STEP_COSTS, Budget
from pybpfdsl.verify.equivalence.nonlinear import shared_cut_points
from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.prove import prove_compiled
from pybpfdsl.verify.equivalence.symbolic_state import Term

PACKET = z3.Array("packet", z3.BitVecSort(64), z3.BitVecSort(8))
END = z3.BitVec("end", 64)
OTHER = z3.BitVec("other", 64)


@xdp
def grow_tail(pkt: Packet) -> int:
    moved: bool = pkt.adjust_tail(4000)  # noqa: F841 (the program of the report, as written)
    return XDP_ABORTED


@contextmanager
def _counted_children() -> Iterator[list[int]]:
    """Counts the children of terms read (`ExprRef.arg`): each step of a walk down a term reads one or
    two, so the count is the walks' work."""
    count = [0]
    original = z3.ExprRef.arg

    def arg(self: z3.ExprRef, i: int) -> z3.ExprRef:
        count[0] += 1
        return original(self, i)

    z3.ExprRef.arg = arg
    try:
        yield count
    finally:
        z3.ExprRef.arg = original


def _grown(n: int) -> Term:
    """The packet after `n` zero bytes stored at end + i, as adjust_tail leaves it."""
    packet = PACKET
    for i in range(n):
        packet = z3.Store(packet, END + i, z3.BitVecVal(0, 8))
    return packet


def _read_every_byte(n: int) -> tuple[int, int]:
    """(children read, normalize steps charged) to read each of the `n` grown bytes in normal form."""
    packet = _grown(n)
    norm = Normalizer()
    norm.budget = Budget(10**12)
    with _counted_children() as count:
        for i in range(n):
            assert norm.normalize(z3.Select(packet, END + i)).eq(z3.BitVecVal(0, 8))
    return count[0], norm.budget._charged // STEP_COSTS["normalize"]


def test_reading_every_byte_of_a_grown_tail_is_linear_in_its_length_and_every_step_is_charged() -> None:
    small_work, small_charged = _read_every_byte(250)
    large_work, large_charged = _read_every_byte(1000)
    # 4x the bytes: about 4x the work (quadratic, it was 16x), and the charge grows with it.
    assert large_work < 6 * small_work
    assert large_charged < 6 * small_charged
    for work, charged in ((small_work, small_charged), (large_work, large_charged)):
        assert work < 10 * charged


def test_a_read_past_a_run_of_stores_is_the_topmost_store_at_its_offset() -> None:
    packet = z3.Store(z3.Store(z3.Store(PACKET, END, z3.BitVecVal(1, 8)), END + 1, z3.BitVecVal(2, 8)),
                      END, z3.BitVecVal(3, 8))
    norm = Normalizer()
    assert norm.normalize(z3.Select(packet, END)).eq(z3.BitVecVal(3, 8))
    assert norm.normalize(z3.Select(packet, END + 1)).eq(z3.BitVecVal(2, 8))
    # Below the run: a read at another constant misses every store of it.
    assert norm.normalize(z3.Select(packet, END + 2)).eq(norm.normalize(z3.Select(PACKET, END + 2)))
    # A read at another base stops at the topmost store it may hit.
    mixed = z3.Select(packet, OTHER)
    assert norm.normalize(mixed).eq(norm.normalize(mixed))
    solver = z3.Solver()
    solver.add(norm.normalize(mixed) != mixed)
    assert solver.check() == z3.unsat


def test_an_if_then_else_arm_on_the_same_condition_is_decided() -> None:
    """A chain over paths repeats their conditions: if not c then x else (if c then y else x) is
    if c then y else x, one term with the single path's chain."""
    c = z3.ULE(END + 100, OTHER)
    x, y = z3.Select(PACKET, END), z3.BitVecVal(0, 8)
    norm = Normalizer()
    chained = norm.normalize(z3.If(z3.Not(c), x, z3.If(c, y, x)))
    assert chained.eq(norm.normalize(z3.If(c, y, x)))
    flag = z3.Bool("flag")
    assert norm.normalize(z3.If(flag, z3.If(flag, c, z3.Not(c)), flag)).eq(norm.normalize(z3.If(flag, c, flag)))


def test_a_grown_tail_proves_within_a_unit_budget() -> None:
    result = prove_compiled(grow_tail.compile(prove=False).subject, budget=12_000_000)
    assert result.status == "proven", result.reason


def test_a_grown_tail_out_of_budget_stops_in_proportion_to_the_budget() -> None:
    """Doubling the budget at most about doubles the work done before it runs out (it was 7x, then
    minutes: the walks past the tail's stores were not charged)."""
    subject = grow_tail.compile(prove=False).subject
    work = []
    for units in (1_000_000, 2_000_000):
        with _counted_children() as count:
            result = prove_compiled(subject, budget=units)
        assert result.status == "unknown" and "budget" in result.reason
        work.append(count[0])
    assert work[1] < 3 * work[0]


def _nested_condition_charge(n: int) -> int:
    """Units charged to normalize a path condition of `n` branches, nested as exploration builds it."""
    flags = z3.Bools(" ".join(f"b{i}" for i in range(n)))
    condition: Term = z3.BoolVal(True)
    for flag in flags:
        condition = z3.And(condition, flag)
    norm = Normalizer()
    norm.budget = Budget(10**12)
    norm.normalize(condition)
    return norm.budget._charged


def test_a_long_path_condition_is_charged_for_every_literal_it_flattens() -> None:
    """Each level of a nested path condition is flattened whole (its normal form lists all its
    literals): n levels touch about n^2/2 literals, and the charge grows with them, not with the n
    nodes (it was 60 units a node: 4x the branches cost 4x the units and 16x the work)."""
    assert _nested_condition_charge(400) > 6 * _nested_condition_charge(100)


def test_a_question_pays_for_the_walk_over_its_two_sides() -> None:
    """A merge or sweep question walks both sides for their shared parts before asking the solver:
    the walk is paid node by node, so a question over large terms costs more than one over small."""

    def question_charge(n: int) -> int:
        x = y = z3.BitVec("x0", 64)
        for i in range(1, n):
            x = x * 3 + z3.BitVec(f"x{i}", 64)
            y = y * 5 + z3.BitVec(f"x{i}", 64)
        budget = Budget(10**12)
        shared_cut_points(x, y, budget)
        return budget._charged

    assert question_charge(400) > 3 * question_charge(100) > 0
