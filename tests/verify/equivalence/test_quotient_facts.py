"""The facts the abstraction states about quotients by constants (`nonlinear.NonlinearAbstraction`): each is
true of the real division, and with them a quotient relates to its pieces, which the backend's
one-division float quotient needs (`ir/passes/unsaturated.py`)."""

from __future__ import annotations

import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.nonlinear import NonlinearAbstraction

_MASK = (1 << 64) - 1


def _facts_hold(y: int, c: int, k: int) -> bool:
    """The lemmas `_quotient_facts` states for `(y << k) / c`, evaluated with Python's division."""
    x = (y << k) & _MASK
    q = x // c
    whole = y // c
    rest = (((1 << k) * y - ((c << k) & _MASK) * whole) & _MASK) // c
    split = y >= 1 << (64 - k) or q == (((1 << k) * whole + rest) & _MASK)
    return q <= _MASK // c and split


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.integers(0, _MASK), st.integers(2, _MASK), st.integers(1, 63))
def test_the_facts_hold_for_the_real_division(y: int, c: int, k: int) -> None:
    assert _facts_hold(y, c, k)


def test_the_facts_hold_at_the_edges() -> None:
    for c in (2, 3, 10**9, (1 << 32) - 1, 1 << 32, (1 << 32) + 1, _MASK):
        for k in (1, 31, 32, 33, 63):
            for y in (0, 1, c - 1, c, c + 1, (1 << (64 - k)) - 1, 1 << (64 - k), _MASK):
                assert _facts_hold(y & _MASK, c, k), (y, c, k)


def _abstract_query(claim: z3.BoolRef, assumptions: list[z3.BoolRef]) -> z3.CheckSatResult:
    """Whether `claim` can fail with products and quotients abstracted (and the abstraction's facts)."""
    abstraction = NonlinearAbstraction()
    negated = abstraction.rewrite(z3.Not(claim))
    pairs = abstraction.merge(assumptions, Budget(50_000_000))
    solver = z3.Solver()
    solver.add(*assumptions, z3.substitute(negated, *pairs), *[z3.substitute(f, *pairs) for f in abstraction.lemmas])
    return solver.check()


def test_one_division_is_the_whole_part_and_the_scaled_remainder() -> None:
    # The two forms of a float quotient `a / 10**9` for a below 2**32 (a clock interval capped at one second).
    a = z3.BitVec("a", 64)
    n = z3.BitVecVal(10**9, 64)
    whole = z3.UDiv(a, n)
    two = (whole << 32) + z3.UDiv((a - whole * n) << 32, n)
    one = z3.UDiv(a << 32, n)
    assert _abstract_query(one == two, [z3.ULT(a, 1 << 32)]) == z3.unsat
    # The split needs the bound: past 2**32 the shift loses bits, and the abstraction does not claim it.
    assert _abstract_query(one == two, []) == z3.sat


def test_a_quotient_by_a_constant_above_one_is_never_negative() -> None:
    # The backend uses its magnitude as is (`LlvmAlgebra.abs_`); the prover must see that it may.
    x = z3.BitVec("x", 64)
    q = z3.UDiv(x, z3.BitVecVal(3, 64))
    assert _abstract_query(z3.If(q < 0, -q, q) == q, []) == z3.unsat
    assert _abstract_query(z3.If(x < 0, -x, x) == x, []) == z3.sat
