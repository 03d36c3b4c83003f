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

Most of the work is avoided rather than done: a pair whose conditions have a literal and its negation
is dropped without normalizing their conjunction; each path's byte is normalized once under its own
condition, and a pair whose two bytes are then one term needs nothing more; a pair whose bytes differ
in form is first asked whether its conditions can hold together at all, once for every byte (most
cannot, in arithmetic the normal forms do not see). mark_payload: 24.7 million units of pairing before,
7.8 million after.

The same holds for every output compared only where neither program faults (`proven_outputs`): a
packet writer's action, the packet's final bounds and its global data are paired with its bytes
(ipip_decap's action, bounds and .bss fingerprint, 34 IR paths against 30, are proven so).

A pair's question the shared solver does not answer in `INCREMENTAL_PAIR_UNITS` goes to a fresh one:
a solver that has been pushed decides bit-vectors in its incremental core, which gave up on a checksum
updated twice (a UDP port swap through locals, its selects on one side and branches on the other, at any
budget); a fresh one bit-blasts the question whole and answers it in 0.1 to 3 million units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

import z3

from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.normalize import Normalizer
from pybpfdsl.verify.equivalence.paths import Outcome
from pybpfdsl.verify.equivalence.symbolic_state import Term

INCREMENTAL_PAIR_UNITS: Final = 100_000
"""Units of a pair's question on the shared, incremental solver before a fresh one is asked (most take
under 2,000)."""
PAIR_UNITS: Final = 5_000_000
"""Units of a pair's question on a fresh solver: a checksum updated twice (a port swap through locals)
has pairs that take 3 million."""
MAX_PAIRS: Final = 6_000
"""Path pairs at most (the product of the two programs' return paths) for the split to be tried."""


def proven_bytes(returns_a: list[Outcome], returns_b: list[Outcome], offsets: list[Term],
                 read: Callable[[Outcome, Term], Term], assumptions: list[Term], normalizer: Normalizer,
                 budget: Budget) -> set[int]:
    """The ids of the `offsets` at which, for every pair of return paths of the two programs whose
    conditions can hold together, the bytes `read` gives are equal: proven unsatisfiable pair by pair
    within `budget`. A byte some pair leaves open is not in the set."""
    outputs = [byte_at(read, at) for at in offsets]
    proven = proven_outputs(returns_a, returns_b, outputs, assumptions, normalizer, budget)
    return {offsets[k].get_id() for k in proven}


def byte_at(read: Callable[[Outcome, Term], Term], at: Term) -> Callable[[Outcome], Term]:
    """The output `read` gives at `at`."""
    return lambda o: read(o, at)


def proven_outputs(returns_a: list[Outcome], returns_b: list[Outcome], outputs: Sequence[Callable[[Outcome], Term]],
                   assumptions: list[Term], normalizer: Normalizer, budget: Budget) -> set[int]:
    """The indices of the `outputs` (each what one return path leaves in it) equal for every pair of
    return paths of the two programs whose conditions can hold together, proven pair by pair within
    `budget`. Sound for an output compared only where both programs return (no fault, and no IR error:
    that query is proven before)."""
    if len(returns_a) * len(returns_b) > MAX_PAIRS or len(returns_a) * len(returns_b) < 2 or not outputs:
        return set()
    conditions = {id(o): normalizer.normalize(o.condition) for o in (*returns_a, *returns_b)}
    literals = {key: _literals(c) for key, c in conditions.items()}
    pairs: list[tuple[Outcome, Outcome, Term]] = []
    for a in returns_a:
        ca, la = conditions[id(a)], literals[id(a)]
        for b in returns_b:
            if budget.exhausted:
                return set()
            if _contradict(la, literals[id(b)]):
                continue  # a literal of one is negated in the other: no input takes both
            both = normalizer.normalize(z3.And(ca, conditions[id(b)]))
            if not z3.is_false(both):
                pairs.append((a, b, both))
    solver = z3.Solver()
    solver.add(*assumptions)
    proven: set[int] = set()
    live: dict[int, bool] = {}
    """Per pair (by index), whether the solver found its conditions satisfiable together (asked the
    first time the pair's outputs differ in form: most such pairs are contradictory in arithmetic the
    normal forms do not see, once for every output)."""
    for k, output in enumerate(outputs):
        if _every_pair_equal(pairs, _once(output), solver, normalizer, budget, live):
            proven.add(k)
        if budget.exhausted:
            break
    return proven


def _once(value: Callable[[Outcome], Term]) -> Callable[[Outcome], Term]:
    """`value`, computed once per path."""
    known: dict[int, Term] = {}

    def once(o: Outcome) -> Term:
        found = known.get(id(o))
        if found is None:
            found = known[id(o)] = value(o)
        return found
    return once


def _literals(condition: Term) -> tuple[set[int], set[int]]:
    """The ids of a normalized condition's conjuncts, and of the terms its negated conjuncts negate."""
    parts = condition.children() if z3.is_and(condition) else [condition]
    return {p.get_id() for p in parts}, {p.arg(0).get_id() for p in parts if z3.is_not(p)}


def _contradict(a: tuple[set[int], set[int]], b: tuple[set[int], set[int]]) -> bool:
    """Whether one conjunction has a conjunct whose negation is a conjunct of the other."""
    return not a[1].isdisjoint(b[0]) or not b[1].isdisjoint(a[0])


def _every_pair_equal(pairs: list[tuple[Outcome, Outcome, Term]], read: Callable[[Outcome], Term],
                      solver: z3.Solver, normalizer: Normalizer, budget: Budget, live: dict[int, bool]) -> bool:
    # Each path's byte under its own condition first: equal there, it is equal under both (each is the
    # byte wherever its own condition holds); only the pairs whose bytes differ in form are taken apart.
    own: dict[int, Term] = {}

    def alone(o: Outcome) -> Term:
        found = own.get(id(o))
        if found is None:
            found = own[id(o)] = normalizer.normalize_under(read(o), o.condition)
        return found

    for index, (a, b, both) in enumerate(pairs):
        if budget.exhausted:
            return False
        if alone(a).eq(alone(b)):
            continue
        if index not in live:
            live[index] = _check(solver, [both], budget) != z3.unsat
        if not live[index]:
            continue  # no input takes both paths
        mine = normalizer.normalize_under(read(a), both)
        theirs = normalizer.normalize_under(read(b), both)
        if mine.eq(theirs):
            continue
        if _check(solver, [both, mine != theirs], budget) != z3.unsat:
            return False
    return True


def _check(solver: z3.Solver, question: list[Term], budget: Budget) -> z3.CheckSatResult:
    """`question` on top of `solver`'s assertions: on the shared solver within `INCREMENTAL_PAIR_UNITS`,
    then, if it gave up, on a solver that has never been pushed: Z3 then bit-blasts the question whole
    (the incremental core a pushed solver uses gave up on checksum folds within any budget)."""
    solver.push()
    solver.add(*question)
    verdict = budget.check(solver, INCREMENTAL_PAIR_UNITS)
    solver.pop()
    if verdict != z3.unknown:
        return verdict
    fresh = z3.Solver()
    fresh.add(*solver.assertions(), *question)
    return budget.check(fresh, PAIR_UNITS)
