"""Random inputs: a witness for a branch is a recent model with the branch's inputs redrawn, and is
only ever returned when it satisfies everything it must."""

from __future__ import annotations

import random

import z3

from pybpfdsl.verify.equivalence.sampling import free_constants, perturbed, random_value


def _model(**values: int) -> z3.ModelRef:
    m = z3.Model()
    for name, value in values.items():
        m.update_value(z3.BitVec(name, 64), z3.BitVecVal(value, 64))
    return m


def test_a_branch_on_inputs_the_path_leaves_free_is_taken_by_a_redraw() -> None:
    length, tokens = z3.BitVec("length", 64), z3.BitVec("tokens", 64)
    kept = [z3.UGE(length, 42), z3.ULE(length, 1500)]
    # "Enough tokens for the packet": a quotient and a product between the input and the branch.
    target = z3.UDiv(tokens * 3, 7) > z3.ZeroExt(0, length) * 1000
    found = perturbed([_model(length=60, tokens=0)], kept, target, random.Random(0))
    assert found is not None
    assert all(z3.is_true(found.eval(f, model_completion=True)) for f in [*kept, target])
    assert found.eval(length).as_long() == 60  # the path's own input kept: its conditions still hold


def test_inputs_the_path_mentions_are_redrawn_when_the_others_do_not_suffice() -> None:
    x = z3.BitVec("x", 64)
    kept = [z3.ULT(x, 1 << 40)]
    target = z3.UGT(x, 1000)  # the base has x = 7; every input of the branch is one the path tests
    found = perturbed([_model(x=7)], kept, target, random.Random(0))
    assert found is not None
    assert 1000 < found.eval(x).as_long() < 1 << 40


def test_nothing_is_returned_for_an_infeasible_branch() -> None:
    x, y = z3.BitVec("x", 64), z3.BitVec("y", 64)
    kept = [x == 5]
    assert perturbed([_model(x=5, y=0)], kept, z3.And(x != 5, y == y), random.Random(0)) is None
    assert perturbed([], kept, y == 1, random.Random(0)) is None  # no base model: nothing to start from


def test_random_values_reach_the_edges() -> None:
    rng = random.Random(0)
    x = z3.BitVec("x", 64)
    values = [random_value(x, rng).as_long() for _ in range(400)]
    assert any(v < 256 for v in values)  # small lengths and offsets
    assert any(v >= 1 << 63 for v in values)  # negative
    assert len(set(values)) > 300
    assert sorted(str(c) for c in free_constants([x + 1 == z3.BitVec("y", 64)]).values()) == ["x", "y"]
