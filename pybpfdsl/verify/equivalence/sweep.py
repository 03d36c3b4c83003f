"""Equal subterms of the two sides, proposed by simulation and proven one at a time (SAT sweeping).

LLVM often computes a value in a different way from the IR: a product's sign as `(a ^ b) <s 0`
rather than `(a < 0) != (b < 0)`, a magnitude that it knows to be non-negative without the |x|. The
outputs are then equal, but the final query compares them only as wholes. The solver bit-blasts both
sides and has to rediscover every internal correspondence, and for the token-bucket refill that
takes seconds per output byte, even when the one subterm that differs is easy to prove equal on its own
(0.1 s).

Equivalence checkers for circuits face the same problem and solve it by sweeping. Random simulation
proposes pairs of internal nodes, one from each side, that take the same value at every sample
point. A small solver question then proves or refutes each pair, and each proven pair is merged, so
later questions and the final query see one term where there were two. Candidates are visited
bottom-up (deeper terms after their subterms), so that merging an inner pair makes the outer questions
easier.

A pair is merged only when it is proven equal for every input (under the query's assumptions and the
lemmas about the abstract functions). Substituting one side's term by the other's therefore leaves
the query equisatisfiable, and an unsatisfiable result is still a proof.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import z3

from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.nonlinear import SAMPLE_UNITS, closed, compare_terms
from pybpfdsl.verify.equivalence.sampling import free_constants, random_value
from pybpfdsl.verify.equivalence.symbolic_state import Term
from pybpfdsl.verify.equivalence.terms import is_application, is_sweep_anchor, substitute, subterms

V = TypeVar("V")

SWEEP_POINTS = 6
"""Sample points per candidate: enough that unequal terms rarely share a signature."""
SWEEP_CHECK_UNITS = 1_000_000
"""Resource units of one pair's solver question in the first pass (most take under 300,000); an
undecided pair is simply not merged."""
SWEEP_GROWTH = 4
"""Factor of the units per question from one pass to the next."""
SWEEP_PASSES = 3
"""Passes at most (1, 4 and 16 million units per question: scaled_float_to_int's hardest question
takes 9 million): an undecided question the final query does not need would otherwise grow its units
until the budget is gone."""
SWEEP_TRIES = 2
"""Candidates from the other side tried per term (most signatures match one term or none)."""
SWEEP_LEARNED = 64
"""Counterexamples of failed questions added as sample points, at most."""
SAMPLE_REDRAWS = 32
"""Random redraws of the assumptions' constants per sample point before a solver picks them."""


@dataclass(frozen=True)
class Swept:
    """Stages of pairs (term, equal term): substituting each stage in turn (`substitute`) into a
    query over both sides replaces terms by equal ones. `side_a`, `side_b` and `lemmas` are the
    inputs so rewritten. `undecided`: questions the last pass left open (a pass that ran out of time
    or questions that did)."""

    stages: list[list[tuple[Term, Term]]]
    side_a: list[Term]
    side_b: list[Term]
    lemmas: list[Term]
    passes: int
    undecided: int

    @property
    def pairs(self) -> int:
        return sum(len(stage) for stage in self.stages)


def sweep(side_a: list[Term], side_b: list[Term], assumptions: list[Term], lemmas: list[Term],
          budget: Budget) -> Swept:
    """Equal terms of the two sides, merged in stages (`Swept`).

    Only terms that occur on one side alone take part: within one side too, because one program's
    value may have several forms (normalized under different path conditions), and the other side's
    form must meet all of them. `assumptions` hold for every input; `lemmas` are what the query
    asserts about its abstract functions.

    Every question and sample is paid from `budget` (resource units). A question left undecided in
    its units would leave the terms above it unmerged, so while some were (up to `SWEEP_PASSES`),
    another pass runs over the merged sides with `SWEEP_GROWTH` times the units per question."""
    stages: list[list[tuple[Term, Term]]] = []
    check_units = SWEEP_CHECK_UNITS
    passes = undecided = 0
    while not budget.exhausted and passes < SWEEP_PASSES:
        pairs, undecided = _pass(side_a, side_b, assumptions, lemmas, budget, check_units)
        passes += 1
        if pairs:
            stages.append(pairs)
            side_a = [substitute(t, pairs) for t in side_a]
            side_b = [substitute(t, pairs) for t in side_b]
            lemmas = [substitute(t, pairs) for t in lemmas]
        if not undecided:
            break
        check_units *= SWEEP_GROWTH
    return Swept(stages, side_a, side_b, lemmas, passes, undecided)


def _pass(side_a: list[Term], side_b: list[Term], assumptions: list[Term], lemmas: list[Term],
          budget: Budget, check_units: int) -> tuple[list[tuple[Term, Term]], int]:
    """One bottom-up pass: the pairs found, and how many questions were left undecided."""
    depth = _Fold(lambda t, children: 1 + max(children, default=0))
    left, right = subterms(side_a), subterms(side_b)
    # Only terms above an abstract function's application or a costly product by a constant
    # (`is_sweep_anchor`) are swept. The rest (header parsing, bounds checks) the normal forms already
    # make equal, and random packets rarely take the parsing paths that would tell its unequal terms
    # apart, so sweeping it only costs solver questions that fail.
    above = _Fold(lambda t, children: is_sweep_anchor(t.as_ast(), t.ctx) or any(children))
    # And the conditions of selects among them (a product's sign: LLVM tests it as `(a ^ b) <s 0`
    # where the IR has `(a < 0) == (b < 0)`).
    relevant = {k for k, t in [*left.items(), *right.items()] if above.of(t)}
    relevant |= {t.arg(0).get_id() for k, t in [*left.items(), *right.items()]
                 if k in relevant and z3.is_app(t) and t.decl().kind() == z3.Z3_OP_ITE}
    only_a = [t for k, t in left.items() if k not in right and k in relevant and _candidate(t)]
    only_b = [t for k, t in right.items() if k not in left and k in relevant and _candidate(t)]
    if not only_a or not only_b:
        return [], 0
    everything = [*side_a, *side_b]
    applications = sorted(subterms(everything, is_application).values(), key=depth.of)
    simulation = _Simulation(list(free_constants([*everything, *assumptions]).values()), applications, assumptions,
                             budget)
    matcher = _Matcher(simulation, [*assumptions, *lemmas], budget, check_units)
    pairs: list[tuple[Term, Term]] = []
    # Bottom-up, side a first at equal height: a representative is the first of its class.
    order = sorted(((depth.of(t), side, i) for side, terms in enumerate((only_a, only_b)) for i, t in enumerate(terms)))
    for _, side, i in order:
        if budget.exhausted:
            break
        t = (only_a, only_b)[side][i]
        match = matcher.match(substitute(t, pairs))
        if match is not None:
            pairs.append((t, match))
    return closed(pairs), matcher.undecided


class _Matcher:
    """Classes of representatives by signature, and the questions that merge a term into one."""

    def __init__(self, simulation: _Simulation, facts: list[Term], budget: Budget, check_units: int) -> None:
        self._simulation = simulation
        self._solver = z3.Solver()
        self._solver.add(*facts)
        self._budget = budget
        self._check_units = check_units
        self._classes: dict[tuple[str, tuple[int, ...]], list[Term]] = {}
        self.undecided = 0

    def match(self, t: Term) -> Term | None:
        """A term proven equal to t: a representative, or the negation of one (LLVM writes `s - x` as
        `s + (-x)` and selects between a magnitude and its negation either way round); None if there
        is none (t then joins its class as a representative). A refuted question's counterexample
        becomes a sample point, which regroups every class it separates (sparing their failing
        questions), and t is looked up again."""
        simulation, classes = self._simulation, self._classes
        tried: set[int] = set()
        while True:
            signature = simulation.signature(t)
            if signature is None:
                return None
            representatives = classes.setdefault(signature, [])
            candidates = list(representatives)
            if z3.is_bv(t):
                width = t.size()
                negated = (signature[0], tuple(-v % (1 << width) for v in signature[1]))
                candidates += [-r for r in classes.get(negated, [])]
            learned = False
            for value in [c for c in candidates if c.get_id() not in tried][:SWEEP_TRIES]:
                if t.eq(value):
                    return value
                self._budget.charge("question")
                verdict = compare_terms(self._solver, value, t, self._budget, self._check_units) \
                    if not self._budget.exhausted else None
                tried.add(value.get_id())
                if verdict is True:
                    return value
                if verdict is None:
                    self.undecided += 1
                elif simulation.learned < SWEEP_LEARNED:
                    simulation.learn(verdict)
                    regrouped = simulation.regroup(classes)
                    classes.clear()
                    classes.update(regrouped)
                    learned = True
                    break
            if not learned:
                representatives.append(t)
                return None


def _candidate(t: Term) -> bool:
    """A computed bit-vector or Boolean (not a variable or a constant)."""
    return bool(z3.is_app(t) and t.num_args() > 0 and (z3.is_bv(t) or z3.is_bool(t))
                and not z3.is_bv_value(t) and not z3.is_true(t) and not z3.is_false(t))


class _Simulation:
    """Values of terms (`signature`) at a few random points: every free constant random (the
    assumptions' constants re-chosen by a solver where the random ones break them), every abstract
    function application random too, but one value per function and arguments, as for a function."""

    def __init__(self, constants: list[Term], applications: list[Term], assumptions: list[Term],
                 budget: Budget) -> None:
        rng = random.Random(0)
        self.learned = 0
        self._budget = budget
        self.models = [self._point(constants, applications, assumptions, rng, i, budget) for i in range(SWEEP_POINTS)]
        self._cache: dict[int, tuple[Term, tuple[str, tuple[int, ...]] | None]] = {}

    @staticmethod
    def _point(constants: list[Term], applications: list[Term], assumptions: list[Term], rng: random.Random,
               seed: int, budget: Budget) -> z3.ModelRef:
        model = z3.Model()
        for c in constants:
            model.update_value(c, random_value(c, rng))
        constrained = free_constants(assumptions).values()
        # Redraw the assumptions' constants (the packet length) until they hold, then ask a solver.
        for _ in range(SAMPLE_REDRAWS):
            if all(z3.is_true(model.eval(f, model_completion=True)) for f in assumptions):
                break
            for c in constrained:
                model.update_value(c, random_value(c, rng))
        else:
            solver = z3.Solver()
            solver.set("random_seed", seed)
            solver.add(*assumptions)
            # Otherwise a sample off the assumptions: a weaker filter only.
            if budget.check(solver, SAMPLE_UNITS) == z3.sat:
                found = solver.model()
                for c in constrained:
                    model.update_value(c, found.eval(c, model_completion=True))
        ctx = model.ctx
        interpretations: dict[int, z3.FuncInterp] = {}
        entries: set[tuple[int, tuple[int, ...]]] = set()
        for app in applications:  # bottom-up: an application's arguments are evaluated with the earlier ones
            f = app.decl()
            fi = interpretations.get(f.get_id())
            if fi is None:
                fi = z3.FuncInterp(z3.Z3_add_func_interp(ctx.ref(), model.model, f.ast,
                                                         random_value(app, rng).as_ast()), ctx)
                interpretations[f.get_id()] = fi
            arguments = [model.eval(a, model_completion=True) for a in app.children()]
            if not all(z3.is_bv_value(a) for a in arguments):
                continue
            key = (f.get_id(), tuple(a.as_long() for a in arguments))
            if key in entries:
                continue  # equal arguments, equal value: applications that merge agree everywhere
            entries.add(key)
            vector = z3.AstVector(ctx=ctx)
            for a in arguments:
                vector.push(a)
            z3.Z3_func_interp_add_entry(ctx.ref(), fi.f, vector.vector, random_value(app, rng).as_ast())
        return model

    def learn(self, model: z3.ModelRef) -> None:
        """Add a point (a solver's model: every constant and function it does not fix is completed)."""
        self.models.append(model)
        self.learned += 1
        self._cache.clear()

    def regroup(self, classes: dict[tuple[str, tuple[int, ...]], list[Term]]
                ) -> dict[tuple[str, tuple[int, ...]], list[Term]]:
        """The representatives regrouped by their signatures over the current points."""
        out: dict[tuple[str, tuple[int, ...]], list[Term]] = {}
        for representatives in classes.values():
            for t in representatives:
                signature = self.signature(t)
                if signature is not None:
                    out.setdefault(signature, []).append(t)
        return out

    def signature(self, t: Term) -> tuple[str, tuple[int, ...]] | None:
        """The sort and the values at the points; None where a value is not a constant, and for a
        condition that is constant at every point (a path condition: it would match every other)."""
        key = t.get_id()
        known = self._cache.get(key)
        if known is not None and known[0].eq(t):
            return known[1]
        self._budget.charge("sample", len(self.models))
        values: list[int] = []
        out: tuple[str, tuple[int, ...]] | None = None
        for model in self.models:
            value = model.eval(t, model_completion=True)
            if z3.is_bv_value(value):
                values.append(value.as_long())
            elif z3.is_true(value) or z3.is_false(value):
                values.append(int(z3.is_true(value)))
            else:
                break
        else:
            if not (z3.is_bool(t) and len(set(values)) == 1):
                out = (str(t.sort()), tuple(values))
        self._cache[key] = (t, out)
        return out


class _Fold(Generic[V]):
    """A value per term computed from the term and its children's values (`combine`), once per node
    of the DAG, without recursion (the DAGs are deep)."""

    def __init__(self, combine: Callable[[Term, list[V]], V]) -> None:
        self._combine = combine
        self._known: dict[int, V] = {}

    def of(self, root: Term) -> V:
        stack = [root]
        while stack:
            t = stack[-1]
            if t.get_id() in self._known:
                stack.pop()
                continue
            children = t.children() if z3.is_app(t) else []
            missing = [c for c in children if c.get_id() not in self._known]
            if missing:
                stack.extend(missing)
                continue
            self._known[t.get_id()] = self._combine(t, [self._known[c.get_id()] for c in children])
            stack.pop()
        return self._known[root.get_id()]
