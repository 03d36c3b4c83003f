"""Outputs proven path pair by path pair (`path_pairs.proven_outputs`): equal wherever both programs'
paths can be taken together, and never "proven" where some pair differs."""

from __future__ import annotations

from typing import Any

import z3

from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.path_pairs import proven_outputs
from pybpfdsl.verify.equivalence.paths import Outcome


def _path(condition: z3.BoolRef, action: Any) -> Outcome:
    o = Outcome("return", action, None, ())  # type: ignore[arg-type]  # (effects: not read here)
    o.condition = condition
    return o


def _action(o: Outcome) -> z3.ExprRef:
    assert o.action is not None
    return o.action


def test_a_select_on_one_side_is_paths_on_the_other() -> None:
    """One program selects its action (`If(x < 10, 1, 2)` on one path), the other branches (two paths);
    a third path of each returns 3 past a length test: every pair whose conditions can hold together
    agrees."""
    x, n = z3.BitVec("x", 32), z3.BitVec("n", 32)
    small, short = z3.ULT(x, 10), z3.ULT(n, 14)
    one = z3.BitVecVal(1, 32)
    a = [_path(z3.Not(short), z3.If(small, one, z3.BitVecVal(2, 32))), _path(short, z3.BitVecVal(3, 32))]
    b = [_path(z3.And(z3.Not(short), small), one), _path(z3.And(z3.Not(short), z3.Not(small)), z3.BitVecVal(2, 32)),
         _path(z3.ULE(n, 13), z3.BitVecVal(3, 32))]  # `n <= 13`: the same test written otherwise
    assert proven_outputs(a, b, [_action], [], Normalizer(), Budget(10_000_000)) == {0}


def test_a_pair_that_differs_is_never_proven() -> None:
    """The same programs with the second one's boundary moved (`x < 11`): on x = 10 the actions differ."""
    x, n = z3.BitVec("x", 32), z3.BitVec("n", 32)
    short = z3.ULT(n, 14)
    one, two = z3.BitVecVal(1, 32), z3.BitVecVal(2, 32)
    a = [_path(z3.Not(short), z3.If(z3.ULT(x, 10), one, two)), _path(short, z3.BitVecVal(3, 32))]
    b = [_path(z3.And(z3.Not(short), z3.ULT(x, 11)), one), _path(z3.And(z3.Not(short), z3.UGE(x, 11)), two),
         _path(short, z3.BitVecVal(3, 32))]
    assert proven_outputs(a, b, [_action], [], Normalizer(), Budget(10_000_000)) == set()
