"""Packet bytes proven path pair by path pair, before the final query.

The final query compares each written byte as two chains of if-then-else over every path of each
program. Where the programs split their paths differently (the IR selects a UDP checksum of 0 as 0xFFFF
inside a value, LLVM branches; the IR parses a header once, LLVM checks its bounds in other steps), the
solver has to match every path of one with the paths of the other inside one formula, and a packet
writer with fifty paths on each side was "unknown" at any budget.

Here each pair of return paths (one of each program) whose conditions can hold together is a question
of its own: both values are brought to their normal form under both conditions (`normalize_under`
decides the selects whose test the other program branched on), most pairs are then one term or their
conditions contradict each other syntactically, and the rest are small questions. A byte whose every
pair is unsatisfiable differs on no input where both programs return: no other input reaches the
packet comparison (`disagreement` compares it only where neither program faults, and the query that
the IR never breaks its own rules is proven before it), so the byte leaves the final query. A pair the
solver does not answer, or answers with a model, leaves the byte in the final query: this step only
ever removes what it has proven.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import z3

from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.paths import Outcome
from pybpfdsl.verify.equivalence.symbolic_state import Term

PAIR_UNITS: Final = 500_000
"""Resource units of one pair's question (most take under 2,000)."""
MAX_PAIRS: Final = 6_000
"""Path pairs at most (the product of the two programs' return paths) for the split to be tried."""


def proven_bytes(returns_a: list[Outcome], returns_b: list[Outcome], offsets: list[Term],
                 read: Callable[[Outcome, Term], Term], assumptions: list[Term], normalizer: Normalizer,
                 budget: Budget) -> set[int]:
    """The ids of the `offsets` at which, for every pair of return paths of the two programs whose
    conditions can hold together, the bytes `read` gives are equal: proven unsatisfiable pair by pair
    within `budget`. A byte some pair leaves open is not in the set."""
    if len(returns_a) * len(returns_b) > MAX_PAIRS or len(returns_a) * len(returns_b) < 2 or not offsets:
        return set()
    pairs: list[tuple[Outcome, Outcome, Term]] = []
    for a in returns_a:
        ca = normalizer.normalize(a.condition)
        for b in returns_b:
            if budget.exhausted:
                return set()
            both = normalizer.normalize(z3.And(ca, normalizer.normalize(b.condition)))
            if not z3.is_false(both):
                pairs.append((a, b, both))
    solver = z3.Solver()
    solver.add(*assumptions)
    proven: set[int] = set()
    reads: dict[tuple[int, int], Term] = {}

    def once(o: Outcome, at: Term) -> Term:
        key = (id(o), at.get_id())
        found = reads.get(key)
        if found is None:
            found = reads[key] = read(o, at)
        return found

    for at in offsets:
        if _every_pair_equal(pairs, at, once, solver, normalizer, budget):
            proven.add(at.get_id())
        if budget.exhausted:
            break
    return proven


def _every_pair_equal(pairs: list[tuple[Outcome, Outcome, Term]], at: Term, read: Callable[[Outcome, Term], Term],
                      solver: z3.Solver, normalizer: Normalizer, budget: Budget) -> bool:
    for a, b, both in pairs:
        if budget.exhausted:
            return False
        mine = normalizer.normalize_under(read(a, at), both)
        theirs = normalizer.normalize_under(read(b, at), both)
        if mine.eq(theirs):
            continue
        solver.push()
        solver.add(both, mine != theirs)
        verdict = budget.check(solver, PAIR_UNITS)
        solver.pop()
        if verdict != z3.unsat:
            return False
    return True
