"""Symbolic execution with solver-pruned forks and exact state merging, shared by both encodings.

A machine runs a state until it ends (an `Outcome`), reaches a branch on a symbolic condition (a `Fork`
with one alternative per side) or reaches a join point of the control-flow graph (a `Fork` with the one
alternative `True`: a pause, so that states arriving there can meet). The explorer follows an alternative
only when the solver says it can be taken; infeasible paths (for example every failing packet guard of
the backend once the IR's bounds check has passed) are dropped without being executed. Loops are unrolled
by this: a state simply runs on until its condition makes the exit the only feasible way.

Without merging every path runs to its end on its own, so k sequential if-statements cost 2**k paths and
a loop whose body branches is exponential in its iterations. With `Merging`, waiting states are taken in
a weak topological order of the control-flow graph (Bourdoncle), and the states waiting at one program
point with the same shape are first merged into one: every value becomes `If(cond_a, a, b)` and the path
condition `Or(cond_a, cond_b)` (veritesting; Kuznetsov et al., "Efficient state merging in symbolic
execution", PLDI 2012). The order is what makes states meet: a state at a loop head waits until no state
is left inside the loop's body, so each iteration's paths merge before the next one starts, and the exits
of a loop wait until the loop is finished.

Merging is exact — a merged state stands for exactly the union of its parts' inputs, which are disjoint —
so the outcomes of one program keep mutually exclusive conditions and a model of the final query is a
real counterexample. States that cannot merge (different pointer kinds in a register, helper streams
consumed to different positions...) simply wait side by side.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import z3

from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.context import PerContext
from pybpfdsl.verify.equivalence.sampling import perturbed
from pybpfdsl.verify.equivalence.symbolic_state import Effects, Term

S = TypeVar("S")
N = TypeVar("N", bound=Hashable)

OutcomeKind = Literal["return", "fault", "ir_error"]


class Unsupported(Exception):
    """The program does something the encoding does not model (the proof is then 'unknown')."""


# -- traces ----------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class TraceChoice:
    """Where merged paths had run differently: `first` when `when` holds, else `second`."""

    when: Term
    first: tuple[TraceItem, ...]
    second: tuple[TraceItem, ...]


TraceItem = int | TraceChoice
"""A trace entry: a source line (IR), an instruction index (bytecode), or a choice left by a merge."""


def merge_traces(a: Sequence[TraceItem], b: Sequence[TraceItem], when_a: Term) -> list[TraceItem]:
    """The trace of a merged state: the common beginning, then a choice between the two remainders."""
    common = 0
    for x, y in zip(a, b):
        if x is not y and not (isinstance(x, int) and isinstance(y, int) and x == y):
            break
        common += 1
    if common == len(a) == len(b):
        return list(a)
    return [*a[:common], TraceChoice(when_a, tuple(a[common:]), tuple(b[common:]))]


def resolve_trace(trace: Sequence[TraceItem], holds: Callable[[Term], bool]) -> tuple[int, ...]:
    """The trace of the one path through `trace`'s choices that `holds` (a model's verdict) selects."""
    out: list[int] = []
    pending: list[Sequence[TraceItem]] = [trace]
    positions = [0]
    while pending:
        items, i = pending[-1], positions[-1]
        if i == len(items):
            pending.pop()
            positions.pop()
            continue
        positions[-1] = i + 1
        item = items[i]
        if isinstance(item, TraceChoice):
            pending.append(item.first if holds(item.when) else item.second)
            positions.append(0)
        else:
            out.append(item)
    return tuple(out)


# -- outcomes and forks ------------------------------------------------------------------------------


@dataclass
class Outcome:
    """How one path (or a merged set of paths) ends. `trace` lists what it executed (IR: source lines;
    bytecode: instruction indices), with a `TraceChoice` where merged paths differed."""

    kind: OutcomeKind
    action: Term | None
    effects: Effects
    trace: tuple[TraceItem, ...]
    packet: Term = None
    """The packet array at the end (None: never written)."""
    packet_writes: tuple[Term, ...] = ()
    reason: str = ""
    head: Term = None
    """Where the packet starts at the end, from its original start (None: there)."""
    end: Term = None
    """Where the packet ends at the end, from its original start (None: where it ended)."""
    condition: Term = True

    def trace_under(self, holds: Callable[[Term], bool]) -> tuple[int, ...]:
        """The trace of the path a model selects (`holds` evaluates a condition in it)."""
        return resolve_trace(self.trace, holds)


@dataclass
class Fork(Generic[S]):
    """Alternatives of a branch: each a condition and the state (or outcome) that follows from it. One
    alternative with the condition `True` is a pause at a join point."""

    alternatives: list[tuple[Term, S | Outcome]]


def pause(state: S) -> Fork[S]:
    """Stop `state` at a join point, where the explorer may merge it with others."""
    return Fork([(z3.BoolVal(True), state)])


@dataclass
class Exploration:
    outcomes: list[Outcome] = field(default_factory=list)
    solver_checks: int = 0
    merges: int = 0
    """How many times two waiting states became one."""


MAX_PATHS = 20_000
UNBOUNDED = 10**15
"""The budget of an exploration run without one (each feasibility check is still bounded)."""


class PathLimit(Unsupported):
    pass


class TooManyPaths(PathLimit):
    """More outcomes than `max_paths`."""


# -- the control-flow order ---------------------------------------------------------------------------


@dataclass
class _Element(Generic[N]):
    """A vertex of a weak topological order; `body` is set for the head of a component (a loop)."""

    node: N
    body: list[_Element[N]] | None = None


class _Bourdoncle(Generic[N]):
    """Bourdoncle's algorithm ("Efficient chaotic iteration strategies with widenings", 1993)."""

    def __init__(self, successors: Callable[[N], Iterable[N]]) -> None:
        self.successors = successors
        self.dfn: dict[N, int] = {}
        self.stack: list[N] = []
        self.count = 0

    def visit(self, v: N, partition: list[_Element[N]]) -> int:
        self.stack.append(v)
        self.count += 1
        head = self.dfn[v] = self.count
        loop = False
        for w in self.successors(v):
            seen = self.dfn.get(w, 0)
            low = self.visit(w, partition) if seen == 0 else seen
            if low <= head:
                head, loop = low, True
        if head == self.dfn[v]:
            self.dfn[v] = sys.maxsize
            element = self.stack.pop()
            if loop:
                while element != v:
                    self.dfn[element] = 0
                    element = self.stack.pop()
                partition.insert(0, self.component(v))
            else:
                partition.insert(0, _Element(v))
        return head

    def component(self, v: N) -> _Element[N]:
        body: list[_Element[N]] = []
        for w in self.successors(v):
            if self.dfn.get(w, 0) == 0:
                self.visit(w, body)
        return _Element(v, body)


@dataclass(frozen=True)
class ControlFlow(Generic[N]):
    """A program's control-flow graph as the explorer schedules it: each node's place in a weak
    topological order, the last place inside each loop (by its head), and the join points."""

    position: Mapping[N, int]
    loop_end: Mapping[N, int]
    joins: frozenset[N]

    @staticmethod
    def of(entry: N, successors: Callable[[N], Sequence[N]]) -> ControlFlow[N]:
        order = _Bourdoncle(successors)
        elements: list[_Element[N]] = []
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 100_000))  # the depth-first search recurses along paths
        try:
            order.visit(entry, elements)
        finally:
            sys.setrecursionlimit(limit)
        position: dict[N, int] = {}
        loop_end: dict[N, int] = {}

        def flatten(items: list[_Element[N]]) -> None:
            for e in items:
                position[e.node] = len(position)
                if e.body is not None:
                    flatten(e.body)
                    loop_end[e.node] = len(position) - 1

        flatten(elements)
        incoming: dict[N, int] = {}
        for node in position:
            for succ in successors(node):
                incoming[succ] = incoming.get(succ, 0) + 1
        joins = frozenset(n for n, k in incoming.items() if k > 1) | frozenset(loop_end)
        return ControlFlow(position, loop_end, joins)


@dataclass(frozen=True)
class Merging(Generic[S]):
    """How an encoding's states merge. `locate` gives a state's node in `flow`, its place inside the node
    (the instruction it resumes at) and whatever else must be equal for two states to merge (call
    frames, a guard already taken); `merge(a, b, when_a)` is the exact merge, or None when a and b have
    different shapes."""

    flow: ControlFlow[Any]
    locate: Callable[[S], tuple[Hashable, int, Hashable]]
    merge: Callable[[S, S, Term], S | None]


# -- the explorer -------------------------------------------------------------------------------------


@dataclass
class _Waiting(Generic[S]):
    state: S
    condition: tuple[Term, ...]
    """The branch conditions taken to get here (a merge replaces their different ends by one `Or`)."""
    witness: z3.ModelRef | None = None
    """Inputs known to satisfy `condition` (a solver model), so a branch they take needs no check."""


def _conjunction(terms: Sequence[Term]) -> Term:
    if not terms:
        return z3.BoolVal(True)
    return terms[0] if len(terms) == 1 else z3.And(*terms)


def _negations(x: Term, y: Term) -> bool:
    """Whether one term is syntactically the other's negation."""
    return bool((z3.is_not(x) and x.arg(0).eq(y)) or (z3.is_not(y) and y.arg(0).eq(x)))


class _Frontier(Generic[S]):
    """The waiting states by position in the weak topological order."""

    def __init__(self, merging: Merging[S] | None, result: Exploration) -> None:
        self.merging = merging
        self.result = result
        self.stack: list[_Waiting[S]] = []  # without merging: depth-first
        self.at: dict[int, list[tuple[int, Hashable, _Waiting[S]]]] = {}
        self.end_at: dict[int, int] = {}
        if merging is not None:
            flow = merging.flow
            self.end_at = {flow.position[h]: end for h, end in flow.loop_end.items()}

    def __bool__(self) -> bool:
        return bool(self.stack) or bool(self.at)

    def add(self, w: _Waiting[S]) -> None:
        if self.merging is None:
            self.stack.append(w)
            return
        node, sub, extra = self.merging.locate(w.state)
        flow = self.merging.flow
        pos = flow.position.get(node, len(flow.position))
        self.at.setdefault(pos, []).append((sub, (node, sub, extra), w))

    def take(self) -> list[_Waiting[S]]:
        """The states to run next: those at the first place no other waiting state can still reach
        within the current loop iteration, merged where they can be."""
        if self.merging is None:
            return [self.stack.pop()]
        occupied = sorted(self.at)
        chosen = occupied[0]
        for i, pos in enumerate(occupied):
            end = self.end_at.get(pos)
            if end is not None and i + 1 < len(occupied) and occupied[i + 1] <= end:
                continue  # a loop head: the current iteration still has states inside the loop
            chosen = pos
            break
        entries = self.at.pop(chosen)
        first = min(sub for sub, _, _ in entries)
        rest = [e for e in entries if e[0] != first]
        if rest:
            self.at[chosen] = rest
        groups: dict[Hashable, list[_Waiting[S]]] = {}
        for sub, key, w in entries:
            if sub == first:
                groups.setdefault(key, []).append(w)
        out: list[_Waiting[S]] = []
        for members in groups.values():
            out.extend(self._merge_all(members))
        return out

    def _merge_all(self, members: list[_Waiting[S]]) -> list[_Waiting[S]]:
        merged: list[_Waiting[S]] = []
        for w in members:
            for i, m in enumerate(merged):
                joined = self._merge(m, w)
                if joined is not None:
                    merged[i] = joined
                    self.result.merges += 1
                    break
            else:
                merged.append(w)
        return merged

    def _merge(self, a: _Waiting[S], b: _Waiting[S]) -> _Waiting[S] | None:
        assert self.merging is not None
        common = 0
        for x, y in zip(a.condition, b.condition):
            if x is not y and not x.eq(y):
                break
            common += 1
        rest_a, rest_b = a.condition[common:], b.condition[common:]
        only_a = _conjunction(rest_a)
        # Under the common conditions, `only_a` and `only_b` exclude each other (paths are disjoint), so
        # `If(only_a, x_a, x_b)` is exactly x_a on a's inputs and x_b on b's.
        state = self.merging.merge(a.state, b.state, only_a)
        if state is None:
            return None
        prefix = a.condition[:common]
        if len(rest_a) == len(rest_b) == 1 and _negations(rest_a[0], rest_b[0]):
            return _Waiting(state, prefix, a.witness or b.witness)  # the two sides of one branch
        either = z3.simplify(z3.Or(only_a, _conjunction(rest_b)))
        return _Waiting(state, prefix if z3.is_true(either) else (*prefix, either), a.witness or b.witness)


class _Feasibility:
    """Decides whether a branch can be taken, with two solvers. An incremental one, whose assertion stack
    follows the condition of the state being run (one level per branch condition) as a depth-first
    search would have it, answers the checks of most programs in a fraction of a millisecond. Merged
    path conditions, though, are disjunctions over many paths, which its core decides slowly; bit-blasting
    them (packet arrays turned into functions, then Ackermann's reduction) is much faster. So a check goes
    to the incremental solver with a short budget first, then to a fresh bit-blasting one; once the
    incremental solver has run out of budget a few times, the order turns around. (Conditions the
    bit-blaster does not handle, such as maps' presence arrays, always go to the incremental solver.)
    Before the bit-blaster, a recent model with the branch's inputs redrawn at random may already take
    the branch (`sampling.perturbed`): the token buckets' "below one token?" goes either way for half
    of all inputs, and the bit-blaster gave up on it after 0.1 s each time.

    Each check runs within `check_units` (the first, incremental one within `INCREMENTAL_FIRST_UNITS`)
    and what is left of `budget`: resource units, so which checks give up, and with it which paths are
    followed, is the same on any machine."""

    def __init__(self, assumptions: list[Term], budget: Budget, check_units: int,
                 abstract: Callable[[Term], Term] | None, result: Exploration) -> None:
        self.budget = budget
        self.check_units = check_units
        self.assumptions = assumptions
        self.solver = z3.Solver()
        self.solver.add(*assumptions)
        self.abstract = abstract
        self.abstracted: dict[int, tuple[Term, Term]] = {}
        self.asserted: list[Term] = []
        self.result = result
        self.models: list[z3.ModelRef] = []
        """Recent models, most recent last: inputs of one branch often take a sibling's branch too."""
        self.incremental_timeouts = 0
        self.remember = True
        self.rng = random.Random(0)

    def _checked(self, term: Term) -> Term:
        """`term` as the solver sees it (rewritten by `abstract`, once per term)."""
        if self.abstract is None:
            return term
        known = self.abstracted.get(term.get_id())
        if known is None:
            known = self.abstracted[term.get_id()] = (term, self.abstract(term))  # keeps `term` (its id) alive
        return known[1]

    def enter(self, condition: Sequence[Term]) -> None:
        common = 0
        for x, y in zip(self.asserted, condition):
            if x is not y:
                break
            common += 1
        for _ in range(len(self.asserted) - common):
            self.solver.pop()
        del self.asserted[common:]
        for term in condition[common:]:
            self.solver.push()
            self.solver.add(self._checked(term))
            self.asserted.append(term)

    def possible(self, w: _Waiting[Any], cond: Term) -> tuple[bool, z3.ModelRef | None]:
        """Whether `cond` can hold on `w`'s inputs (unknown counts as yes), and inputs where it does.
        The state's witness and recent models answer first; a solver only when none takes the branch."""
        if w.witness is not None and _holds(w.witness, cond):
            return True, w.witness
        for cached in reversed(self.models) if self.remember else ():
            if cached is not w.witness and _holds(cached, cond) and _holds(cached, _conjunction(w.condition)):
                return True, cached
        self.result.solver_checks += 1
        # A branch the solvers cannot decide quickly (deep fixed-point arithmetic) is simply followed: an
        # infeasible path costs a little in the final query, but never soundness.
        verdict: z3.CheckSatResult | None = None
        model: z3.ModelRef | None = None
        trusted = self.abstract is None  # the incremental solver's models satisfy the conditions checked
        if self.incremental_timeouts < _INCREMENTAL_TIMEOUTS:
            verdict, model = self._incremental(w.condition, cond, min(self.check_units, INCREMENTAL_FIRST_UNITS))
            if verdict == z3.unknown:
                self.incremental_timeouts += 1
                verdict = None
        if verdict is None:
            # Hard for the incremental solver: deep arithmetic, where a solver gives up as often as not,
            # but which half of all inputs satisfies. A recent model with the branch's inputs redrawn
            # may take it (`sampling.perturbed`; checked on the conditions themselves, so trusted).
            model = self._perturbed(w.condition, cond)
            verdict = z3.sat if model is not None else None
        if verdict is None:
            verdict, model = self._bit_blasted([*w.condition, cond])
            trusted = False
        if verdict is None:
            verdict, model = self._incremental(w.condition, cond, self.check_units)
            trusted = self.abstract is None
        if model is not None and not trusted and not (_holds(model, cond) and _holds(model, _conjunction(w.condition))):
            model = None  # not a model of the conditions themselves (an abstraction's, or a partial one)
        if model is not None and self.remember:
            self.models = [*self.models[-(_REMEMBERED_MODELS - 1):], model]
        return verdict != z3.unsat, model

    def _perturbed(self, condition: Sequence[Term], cond: Term) -> z3.ModelRef | None:
        kept = [*self.assumptions, *condition]
        bases = [m for m in reversed(self.models) if all(_holds(m, f) for f in kept)][:_PERTURBED_BASES]
        return perturbed(bases, kept, cond, self.rng) if bases else None

    def _incremental(self, condition: Sequence[Term], cond: Term,
                     units: int) -> tuple[z3.CheckSatResult, z3.ModelRef | None]:
        self.enter(condition)
        self.solver.push()
        self.solver.add(self._checked(cond))
        verdict = self.budget.check(self.solver, units)
        model = self.solver.model() if verdict == z3.sat else None
        self.solver.pop()
        return verdict, model

    def _bit_blasted(self, terms: list[Term]) -> tuple[z3.CheckSatResult | None, z3.ModelRef | None]:
        """The verdict of the bit-blasting solver, or None when it does not handle the terms."""
        solver = _BIT_BLAST.get().solver()
        solver.add(*self.assumptions, *(self._checked(t) for t in terms))
        verdict = self.budget.check(solver, self.check_units)
        if verdict == z3.unknown:
            reason = solver.reason_unknown()
            out_of_units = "resource" in reason or "cancel" in reason or self.budget.exhausted
            return (verdict, None) if out_of_units else (None, None)
        try:
            return verdict, solver.model() if verdict == z3.sat else None
        except z3.Z3Exception:
            return verdict, None


_BIT_BLAST = PerContext(lambda: z3.Then("simplify", "bvarray2uf", "ackermannize_bv", "qfbv"))
"""A tactic is built in one Z3 context: one per proof's (`context`)."""
_REMEMBERED_MODELS = 4
_PERTURBED_BASES = 2
_INCREMENTAL_TIMEOUTS = 3
CHECK_UNITS = 300_000
"""Resource units of one feasibility check (about 0.1 s here): a branch undecided in them is followed."""
INCREMENTAL_FIRST_UNITS = 30_000
"""Units of the incremental solver's first try at a check, before the bit-blaster (about 10 ms here)."""


def _holds(model: z3.ModelRef, cond: Term) -> bool:
    return bool(z3.is_true(model.eval(cond, model_completion=True)))


MERGE_AFTER_PATHS = 64
"""Paths explored one by one before an encoding switches to merging (few paths: separate paths give
the simpler query; many: merging keeps their number from growing exponentially)."""


def explore_merging(run: Callable[[bool, int], Exploration], merge_after: int | None) -> Exploration:
    """`run(merge, max_paths)` under a merging policy: never (`None`), always (0), or once the program
    has more than `merge_after` paths. Should merging lead where an encoding cannot follow (a merged
    scalar later used as a stack offset), the paths are run apart after all."""
    if merge_after is None:
        return run(False, MAX_PATHS)
    if merge_after > 0:
        try:
            return run(False, merge_after)
        except TooManyPaths:
            pass
    try:
        return run(True, MAX_PATHS)
    except PathLimit:
        raise
    except Unsupported:
        return run(False, MAX_PATHS)


def explore(initial: S, step: Callable[[S], Outcome | Fork[S]], assumptions: list[Term],
            merging: Merging[S] | None = None, max_paths: int = MAX_PATHS, check_units: int = CHECK_UNITS,
            budget: Budget | None = None, abstract: Callable[[Term], Term] | None = None) -> Exploration:
    """Every feasible path from `initial`, merged where `merging` allows. `step` runs a state to its next
    fork, pause or end; each outcome's `condition` is the (merged) condition of the inputs that end there.
    `abstract`, when given, rewrites each condition before the solver checks feasibility. Each step and
    each feasibility check is paid from `budget` (without one, only each check is bounded); raises
    `OutOfBudget` when it runs out."""
    budget = budget if budget is not None else Budget(UNBOUNDED)
    result = Exploration()
    feasibility = _Feasibility(assumptions, budget, check_units, abstract, result)
    feasibility.remember = merging is not None  # depth-first, siblings rarely share a model
    frontier = _Frontier(merging, result)
    frontier.add(_Waiting(initial, ()))

    def finish(outcome: Outcome, condition: tuple[Term, ...]) -> None:
        outcome.condition = _conjunction(condition)
        result.outcomes.append(outcome)
        if len(result.outcomes) > max_paths:
            raise TooManyPaths(f"more than {max_paths} paths")

    while frontier:
        for w in frontier.take():
            budget.charge("explore")
            budget.require("exploring paths")
            nxt = step(w.state)
            if isinstance(nxt, Outcome):
                finish(nxt, w.condition)
                continue
            live: list[tuple[Term, S | Outcome]] = []
            for cond, succ in nxt.alternatives:
                # Simplified only to see a constant: z3's simplifier splits a xor into bytes, after
                # which the normal form no longer sees LLVM's |x| idiom in the condition.
                simple = z3.simplify(cond)
                if not z3.is_false(simple):
                    live.append((simple if z3.is_true(simple) else cond, succ))
            for cond, succ in live:
                if z3.is_true(cond):
                    condition, witness = w.condition, w.witness
                else:
                    possible, witness = feasibility.possible(w, cond)
                    if not possible:
                        continue
                    condition = (*w.condition, cond)
                if isinstance(succ, Outcome):
                    finish(succ, condition)
                else:
                    frontier.add(_Waiting(succ, condition, witness))
    return result
