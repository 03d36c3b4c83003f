"""Random inputs for terms: sample points for the sweep's signatures, and witnesses for branches.

Both need values that exercise what programs test: signs, zero, carries, small lengths and offsets.
A uniformly random 64-bit value is almost never small or negative-and-small, so values are drawn at a
random scale, with a bias towards the edges (`random_value`).
"""

from __future__ import annotations

import random

import z3

from pybpfdsl.verify.equivalence.symbolic_state import Term
from pybpfdsl.verify.equivalence.terms import is_free_constant, subterms

PERTURBATIONS = 8
"""Redraws per base model and group of inputs in `perturbed`."""


def free_constants(terms: list[Term]) -> dict[int, Term]:
    """The free constants (inputs) `terms` mention, by Z3 id."""
    return subterms(terms, is_free_constant)


def perturbed(bases: list[z3.ModelRef], kept: list[Term], target: Term, rng: random.Random) -> z3.ModelRef | None:
    """A model of every formula in `kept` and of `target`, made from one of `bases` (models of `kept`)
    by redrawing `target`'s inputs at random: first those `kept` does not mention (a redraw cannot
    break `kept` then), then all of them. None if no redraw satisfies both.

    A branch on deep fixed-point arithmetic (is the refilled bucket below one token?) goes either way
    for half of all inputs, but a solver takes a tenth of a second to find one, or gives up: the
    inputs that decide it pass through products and quotients the solver bit-blasts."""
    mentioned, own = free_constants(kept), free_constants([target])
    groups = [g for g in ([c for k, c in own.items() if k not in mentioned], list(own.values())) if g]
    for base in bases:
        values = [(c, base.eval(c, model_completion=True)) for c in {**mentioned, **own}.values()]
        for group in groups:
            for _ in range(PERTURBATIONS):
                model = z3.Model()
                for c, value in values:
                    model.update_value(c, value)
                for c in group:
                    model.update_value(c, random_value(c, rng))
                if all(z3.is_true(model.eval(f, model_completion=True)) for f in [*kept, target]):
                    return model
    return None


def random_value(c: Term, rng: random.Random) -> Term:
    """A random value of c's sort: bit-vectors at a random scale (small values, where lengths and
    offsets live, as often as large ones), a third of them negated, and now and then all ones or a
    power of two (signs, zero tests and carries differ there); arrays a different pseudo-random value
    at every index."""
    if z3.is_bv(c):
        width = c.size()
        choice = rng.randrange(8)
        if choice == 0:
            raw = (1 << width) - 1 - rng.getrandbits(min(width, 4))
        elif choice == 1:
            raw = 1 << rng.randrange(width)
        else:
            raw = rng.getrandbits(rng.randint(1, width))
            if rng.randrange(3) == 0:
                raw = -raw  # negative as often as a sign test needs to see both
        return z3.BitVecVal(raw % (1 << width), width)
    if z3.is_bool(c):
        return z3.BoolVal(rng.getrandbits(1) == 1)
    if z3.is_array(c) and z3.is_bv_sort(c.domain()) and z3.is_bv_sort(c.range()):
        i = z3.FreshConst(c.domain(), "i")
        mixed = i * _odd(rng, c.domain().size()) + rng.getrandbits(c.domain().size())
        mixed = mixed ^ z3.LShR(mixed, max(1, c.domain().size() // 2 - 3))
        value = z3.Extract(c.range().size() - 1, 0, mixed) if c.range().size() <= c.domain().size() else \
            z3.ZeroExt(c.range().size() - c.domain().size(), mixed)
        return z3.Lambda([i], value)
    if z3.is_array(c):
        return z3.K(c.domain(), random_value(z3.FreshConst(c.range()), rng))
    raise TypeError(f"no random value for {c.sort()}")


def _odd(rng: random.Random, width: int) -> int:
    return rng.getrandbits(width) | 1
