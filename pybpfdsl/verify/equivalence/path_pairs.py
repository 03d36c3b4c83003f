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
from pybpfdsl.verify.equivalence.terms import substitute, subterms

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
    past = _ReadsPast.where_offsets_differ(returns_a, returns_b, assumptions, normalizer, budget)
    for k, output in enumerate(outputs):
        read = _once(output if past is None else past.resolving(output))
        if _every_pair_equal(pairs, read, solver, normalizer, budget, live, past):
            proven.add(k)
        if budget.exhausted:
            break
    return proven


class _ReadsPast:
    """Reads of the packet inside a path's values taken past the path's stores its condition says
    they miss. A written byte's value holds reads of the packet as the path had written it so far (a
    checksum update reads the checksum's old bytes, a later write reads what an earlier one left):
    where a store's offset is computed from the packet (a record written at len - 6, or at an offset
    read from the payload), the normal forms cannot tell it apart from the checksum at l4 + 6, only
    the path's parse can (the payload starts past the header). Each such read is asked once per path
    whether it may hit the store (a few offsets compared under the path's condition): the bytes are
    then reads of the packet as received, bit-vector questions the solver answers, where the store
    chains left them "unknown" (record_from_end: 17 million units for a byte, unknown)."""

    @staticmethod
    def where_offsets_differ(returns_a: list[Outcome], returns_b: list[Outcome], assumptions: list[Term],
                             normalizer: Normalizer, budget: Budget) -> _ReadsPast | None:
        """A `_ReadsPast` when the second program writes at an offset whose normal form the first
        never writes at (there the normal forms cannot line the bytes up) and neither moves the
        packet's start; else None. (Where a program moves the packet, as vlan_tagging does,
        the bytes pair as well without it, and asking costs: 59.5 million units there, 67 with it.)"""
        if any(not _at_zero(o.head) for o in (*returns_a, *returns_b)):
            return None
        offsets: dict[int, Term] = {}
        for o in returns_a:
            for at in o.packet_writes:
                canonical = normalizer.normalize(at)
                offsets.setdefault(canonical.get_id(), canonical)
        if all(normalizer.normalize(at).get_id() in offsets for o in returns_b for at in o.packet_writes):
            return None
        past = _ReadsPast(assumptions, normalizer, budget)
        past.offsets = offsets
        return past

    def __init__(self, assumptions: list[Term], normalizer: Normalizer, budget: Budget) -> None:
        self.assumptions = assumptions
        self.normalizer = normalizer
        self.budget = budget
        self.solvers: dict[int, z3.Solver] = {}
        self.misses: dict[tuple[int, int, int], bool] = {}
        self.reads: dict[tuple[int, int], Term] = {}
        self.values: dict[tuple[int, int], Term] = {}
        self.pairs: dict[int, Term] = {}
        self.moved: dict[tuple[int, int], Term] = {}
        self.models: dict[int, z3.ModelRef | None] = {}
        self.offsets: dict[int, Term] = {}
        """The normal forms of the offsets the first program writes, by id: the one form each read of
        the packet as received at one of them is given, whichever form its program computed it in
        (LLVM's `len - 6` is 15 bits plus a constant, masked, where the IR's is 16 bits less 6)."""

    def resolved(self, t: Term, o: Outcome) -> Term:
        """`t` with its reads of stored packets taken past the stores that miss them on path `o`, and
        its reads of the packet as received at an offset equal there to a written one (`offsets`) read
        at that one."""
        key = (id(o), t.get_id())
        found = self.values.get(key)
        if found is not None:
            return found
        out = t
        for _ in range(_RESOLVE_ROUNDS):
            reads = list(subterms([out], _is_read_of_store).values())
            pairs = [(r, new) for r in reads if not (new := self._read(r, o)).eq(r)]
            if not pairs:
                break
            out = substitute(out, pairs)
        if self.offsets:
            accesses = subterms([out], _is_access).values()
            offsets = {a.arg(1).get_id(): a.arg(1) for a in accesses}.values()
            out = substitute(out, [(at, new) for at in offsets if not (new := self._offset(at, o)).eq(at)])
        self.values[key] = out
        return out

    def both(self, index: int, a: Outcome, b: Outcome, both: Term) -> Term:
        """The conjunction `both` of pair `index`'s conditions with each condition's own reads resolved
        (`resolved`): each is implied by its condition, and with them the tests one program's value
        makes (a UDP checksum of 0 sent as 0xFFFF) are decided where the other program branched."""
        found = self.pairs.get(index)
        if found is None:
            found = self.pairs[index] = self.normalizer.normalize(
                z3.And(both, self.resolved(a.condition, a), self.resolved(b.condition, b)))
        return found

    def resolving(self, value: Callable[[Outcome], Term]) -> Callable[[Outcome], Term]:
        """`value`, its reads taken past the stores (`resolved`)."""
        return lambda o: self.resolved(value(o), o)

    def _offset(self, at: Term, o: Outcome) -> Term:
        key = (id(o), at.get_id())
        found = self.moved.get(key)
        if found is None:
            found = self.moved[key] = self._written_at(at, o)
        return found

    def _written_at(self, at: Term, o: Outcome) -> Term:
        """The written offset (`offsets`) equal to `at` wherever `o`'s condition holds, else `at`."""
        mine = self.normalizer.normalize(at)
        if mine.get_id() in self.offsets:
            return at
        solver = self._solver(o)
        if id(o) not in self.models:
            sat = self.budget.check(solver, RESOLVE_UNITS) == z3.sat
            self.models[id(o)] = solver.model() if sat else None
        model = self.models[id(o)]
        if model is None:
            return at  # (no model: the condition is unsatisfiable, or undecided in the units)
        value = model.eval(at, model_completion=True)
        for other in self.offsets.values():
            if not model.eval(other, model_completion=True).eq(value):
                continue
            solver.push()
            solver.add(other != at)
            unsat = self.budget.check(solver, RESOLVE_UNITS) == z3.unsat
            solver.pop()
            if unsat:
                return other
        return at

    def _solver(self, o: Outcome) -> z3.Solver:
        solver = self.solvers.get(id(o))
        if solver is None:
            solver = self.solvers[id(o)] = z3.Solver()
            solver.add(*self.assumptions, o.condition)
        return solver

    def _read(self, read: Term, o: Outcome) -> Term:
        key = (id(o), read.get_id())
        found = self.reads.get(key)
        if found is None:
            found = self.reads[key] = self._past(read.arg(0), read.arg(1), o)
        return found

    def _past(self, array: Term, at: Term, o: Outcome) -> Term:
        while z3.is_app_of(array, z3.Z3_OP_STORE):
            offset = array.arg(1)
            if offset.eq(at) or self.normalizer.normalize(offset).eq(self.normalizer.normalize(at)):
                return array.arg(2)
            if not self.normalizer.apart(offset, at) and not self._misses(offset, at, o):
                break
            array = array.arg(0)
        return z3.Select(array, at)

    def _misses(self, offset: Term, at: Term, o: Outcome) -> bool:
        key = (id(o), offset.get_id(), at.get_id())
        found = self.misses.get(key)
        if found is None:
            solver = self._solver(o)
            solver.push()
            solver.add(offset == at)
            found = self.misses[key] = self.budget.check(solver, RESOLVE_UNITS) == z3.unsat
            solver.pop()
        return found


def _is_read_of_store(a: z3.Ast, ctx: z3.Context) -> bool:
    if z3.Z3_get_ast_kind(ctx.ref(), a) != z3.Z3_APP_AST:
        return False
    app = z3.Z3_to_app(ctx.ref(), a)
    decl = z3.Z3_get_app_decl(ctx.ref(), app)
    if z3.Z3_get_decl_kind(ctx.ref(), decl) != z3.Z3_OP_SELECT:
        return False
    array = z3.Z3_get_app_arg(ctx.ref(), app, 0)
    if z3.Z3_get_ast_kind(ctx.ref(), array) != z3.Z3_APP_AST:
        return False
    inner = z3.Z3_get_app_decl(ctx.ref(), z3.Z3_to_app(ctx.ref(), array))
    return bool(z3.Z3_get_decl_kind(ctx.ref(), inner) == z3.Z3_OP_STORE)


def _at_zero(head: Term) -> bool:
    """Whether a path's packet start is where it started (None: never moved)."""
    return head is None or (z3.is_bv_value(head) and head.as_long() == 0)


def _is_access(a: z3.Ast, ctx: z3.Context) -> bool:
    """A read or a store of an array (its offset is its second argument)."""
    if z3.Z3_get_ast_kind(ctx.ref(), a) != z3.Z3_APP_AST:
        return False
    kind = z3.Z3_get_decl_kind(ctx.ref(), z3.Z3_get_app_decl(ctx.ref(), z3.Z3_to_app(ctx.ref(), a)))
    return bool(kind in (z3.Z3_OP_SELECT, z3.Z3_OP_STORE))


RESOLVE_UNITS: Final = 200_000
"""Units of one question whether a store may hit a read (offsets compared under a path's condition)."""
_RESOLVE_ROUNDS: Final = 8
"""Rounds of reads taken past stores (a round's new reads are of values stored earlier)."""


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
                      solver: z3.Solver, normalizer: Normalizer, budget: Budget, live: dict[int, bool],
                      past: _ReadsPast | None) -> bool:
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
        if past is not None:
            both = past.both(index, a, b, both)
        mine = normalizer.normalize_under(read(a), both)
        theirs = normalizer.normalize_under(read(b), both)
        if mine.eq(theirs):
            continue
        if past is not None and _apart_only_in_their_own_parts(mine, theirs, budget):
            continue
        if _check(solver, [both, mine != theirs], budget) != z3.unsat:
            return False
    return True


def _apart_only_in_their_own_parts(mine: Term, theirs: Term, budget: Budget) -> bool:
    """Whether `mine` and `theirs` are equal whatever the largest parts they share are: each such
    part (a checksum's sum, a read of the packet) a free variable, and no condition. Unsat there is
    unsat with the parts' definitions and the pair's condition (every model of the question gives the
    variables the parts' values): where the two values differ only in how they fold one sum (the IR in
    64 bits, LLVM in 32), the question is a few adders, where whole it bit-blasts every read of the
    packet and every store (record_from_end: unknown at 5 million units)."""
    shared = _largest_shared_parts(mine, theirs)
    if not shared:
        return False
    parts = [(t, z3.FreshConst(t.sort(), "part")) for t in shared]
    solver = z3.Solver()
    solver.add(substitute(mine, parts) != substitute(theirs, parts))
    return bool(budget.check(solver, SHARED_PARTS_UNITS) == z3.unsat)


def _largest_shared_parts(mine: Term, theirs: Term) -> list[Term]:
    """The bit-vector subterms of both `mine` and `theirs` that are not a constant and have a parent
    outside the other (the largest parts the two values share)."""
    a, b = subterms([mine]), subterms([theirs])
    both = {k for k in a if k in b}
    largest: dict[int, Term] = {}
    for side in (a, b):
        for key, t in side.items():
            if key in both:
                continue
            for child in t.children():
                ck = child.get_id()
                if ck in both and z3.is_bv(child) and not z3.is_bv_value(child):
                    largest[ck] = child
    return list(largest.values())


SHARED_PARTS_UNITS: Final = 300_000
"""Units of the question with the values' shared parts free (`_apart_only_in_their_own_parts`)."""


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
