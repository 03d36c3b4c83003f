"""The normal form's frame (`normalize`): a memoized walk of the term DAG, children first, and the atoms
a polynomial is built over, with the way back from a polynomial to a term.

The rules for each kind of node live in the layers above (`normal_bounds`, `normal_widths`,
`normal_bits`, `normal_booleans`); this base class names the few of them the others call, so that
each layer reads as one concept and the final `Normalizer` is their sum.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field

import z3
from z3.z3 import _to_expr_ref

from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.normal_poly import Monomial, Poly, make_poly
from pybpfdsl.verify.equivalence.symbolic_state import Term


@dataclass
class StoreRun:
    """Consecutive stores of one array chain, bottom up, whose offsets are one polynomial plus
    different constants or the same one (`key`: width and non-constant terms), so that a read at that
    polynomial plus c hits the topmost store at c below it and provably misses every other."""

    key: tuple[int, tuple[tuple[Monomial, int], ...]]
    below: Term
    """The array under the run's lowest store."""
    stores: list[Term] = field(default_factory=list)
    at: dict[int, list[int]] = field(default_factory=dict)
    """Each constant's depths in `stores`, ascending."""


class NormalizerBase(ABC):
    """What every layer of `normalize.Normalizer` builds on: the memo tables, the walk, the atoms (one
    instance serves both sides of a query, so that atoms and the order of a sum are shared)."""

    def __init__(self, bounds: Iterable[tuple[Term, int]] = ()) -> None:
        """`bounds`: variables with an upper bound the query assumes (the packet length): each is
        taken as its low bits, which is its value wherever the assumption holds."""
        self._bounds = {t.get_id(): (t, b) for t, b in bounds}
        self._max: dict[int, int] = {}
        self._polys: dict[int, Poly] = {}
        self._others: dict[int, Term] = {}
        self._atoms: dict[int, Term] = {}
        self._atom_polys: dict[int, Poly] = {}
        """Atoms that stand for a polynomial (an opaque sum, e.g. one that may wrap where it is widened)."""
        self._built: dict[Poly, Term] = {}
        self._keep: list[Term] = []
        self._extracts: dict[tuple[int, int, int], Poly] = {}
        self._fact_cache: dict[int, list[tuple[int, Term, Term]]] = {}
        self._ite_conditions: set[int] = set()
        self._ite_results: dict[Poly, tuple[int, Poly, Poly]] = {}
        """Each if-then-else's normal form: its condition's id and its two arms (`normal_bits.ite`)."""
        self._runs: dict[int, tuple[StoreRun, int]] = {}
        self._flat: dict[int, tuple[Term, dict[int, Term]]] = {}
        """Each conjunction or disjunction in normal form: its items by id (`normal_booleans._junction`)."""
        self._split_cache: dict[tuple[int, bool], tuple[Term, tuple[Term, int, int] | None,
                                                         tuple[Term, int, int] | None]] = {}
        """Each junction item's split-comparison parts (`normal_booleans._split_parts`)."""
        """Each store of an array chain seen by a read: its run of stores at one base (`normal_bits.past_stores`)."""
        self._depth = 0
        self._ite_depth = 0
        self.budget: Budget | None = None
        """When set, each normalized node is paid from it (`budget.STEP_COSTS`), and normalizing past
        its end raises `budget.OutOfBudget`: normal forms of merged loops can be large."""

    # -- public ----------------------------------------------------------------------------------

    def normalize(self, t: Term) -> Term:
        """The canonical term equal to `t` (of any sort)."""
        if isinstance(t, bool):
            return z3.BoolVal(t)
        self._visit(t)
        if z3.is_bv(t):
            return self.term(self._polys[t.get_id()])
        return self._others[t.get_id()]

    def normalize_under(self, t: Term, condition: Term) -> Term:
        """A canonical term equal to `t` wherever `condition` holds: the literals `condition` is a
        conjunction of are decided inside `t` (an if-then-else on one of them keeps one arm; an atom
        the condition fixes to a constant is that constant)."""
        value = self.normalize(t)
        if isinstance(condition, bool):
            return value
        # Only literals some if-then-else tests, and atoms fixed to a constant, change anything.
        facts = [(x, y) for key, x, y in self._facts(condition) if key in self._ite_conditions or key < 0]
        if not facts:
            return value
        ctx = value.ctx
        sources, targets = (z3.Ast * len(facts))(), (z3.Ast * len(facts))()
        for i, (x, y) in enumerate(facts):
            sources[i], targets[i] = x.as_ast(), y.as_ast()
        # z3.substitute checks every pair's sorts in Python, which costs more than the substitution.
        decided = _to_expr_ref(z3.Z3_substitute(ctx.ref(), value.as_ast(), len(facts), sources, targets), ctx)
        return value if decided.eq(value) else self.normalize(decided)

    def _facts(self, condition: Term) -> list[tuple[int, Term, Term]]:
        """(key, literal or atom, its value) for each conjunct; key < 0 for an atom fixed to a constant."""
        cond = self.normalize(condition)
        key = cond.get_id()
        found = self._fact_cache.get(key)
        if found is not None:
            return found
        facts: list[tuple[int, Term, Term]] = []
        for lit in cond.children() if z3.is_and(cond) else [cond]:
            if z3.is_true(lit) or z3.is_false(lit):
                continue
            if z3.is_not(lit):
                facts.append((lit.arg(0).get_id(), lit.arg(0), z3.BoolVal(False)))
                continue
            facts.append((lit.get_id(), lit, z3.BoolVal(True)))
            if z3.is_eq(lit) and z3.is_bv(lit.arg(0)):
                x, y = lit.arg(0), lit.arg(1)
                if z3.is_bv_value(x):
                    x, y = y, x
                if z3.is_bv_value(y) and not z3.is_bv_value(x):
                    facts.append((-1, x, y))
        self._keep.append(cond)
        self._fact_cache[key] = facts
        return facts

    def poly(self, t: Term) -> Poly:
        self._visit(t)
        return self._polys[t.get_id()]

    # -- traversal -------------------------------------------------------------------------------

    def _done(self, t: Term) -> bool:
        key = t.get_id()
        return key in self._polys or key in self._others

    def _visit(self, root: Term) -> None:
        """Normalize every node below `root` children first (iteratively: the DAGs are deep)."""
        if self._done(root):
            return
        stack: list[tuple[Term, bool]] = [(root, False)]
        while stack:
            if self.budget is not None:
                self.budget.charge("normalize")
                self.budget.require("normalizing the outputs")
            t, expanded = stack.pop()
            if self._done(t):
                continue
            if expanded or not z3.is_app(t):
                self._keep.append(t)
                if z3.is_bv(t):
                    self._polys[t.get_id()] = self._bv_node(t)
                else:
                    self._others[t.get_id()] = self._other_node(t)
                continue
            stack.append((t, True))
            for c in t.children():
                if not self._done(c):
                    stack.append((c, False))

    def _child(self, t: Term) -> Term:
        """An already visited child as a canonical term."""
        if z3.is_bv(t):
            return self.term(self._polys[t.get_id()])
        return self._others[t.get_id()]

    # -- atoms and rebuilding --------------------------------------------------------------------

    def atom(self, t: Term, stands_for: Poly | None = None) -> Poly:
        """`t` (canonical already) as an atom of its own width."""
        key = t.get_id()
        out = Poly(t.size(), (((key,), 1),), 0)
        if key not in self._atoms:
            self._atoms[key] = t
            self._keep.append(t)
            if stands_for is not None:
                self._atom_polys[key] = stands_for
            if not self._done(t):  # an atom is its own normal form
                self._polys[key] = out
        return out

    def _opaque(self, p: Poly) -> Poly:
        """`p` as one atom of its width (for a context that needs its natural value)."""
        if len(p.terms) == 1 and p.const == 0 and p.terms[0][1] == 1 and len(p.terms[0][0]) == 1:
            a = p.terms[0][0][0]
            if self._atoms[a].size() == p.width:
                return p
        return self.atom(self.term(p), p)

    def _embed(self, atom: int, width: int) -> Term:
        t = self._atoms[atom]
        m = t.size()
        return t if m == width else z3.ZeroExt(width - m, t)

    def term(self, p: Poly) -> Term:
        """The canonical Z3 term of a polynomial (deterministic: follows atom ids)."""
        done = self._built.get(p)
        if done is not None:
            return done
        w = p.width
        out = self._as_concat(p)
        if out is None:
            # A coefficient above 2^(w-1) is written as a subtraction: `x * (2^64 - 256)` would
            # bit-blast to a multiplier with 56 adders, `-(x * 256)` is a shift and a negation.
            # What is subtracted is one term, the canonical term of its own polynomial, so that
            # `-a - b` is `-(a + b)` with the very `a + b` that stands elsewhere: a comparison
            # that cuts shared terms (`nonlinear.compare_terms`) then keeps the two related.
            half = 1 << (w - 1)
            added = [(m, c) for m, c in p.terms if c <= half]
            subtracted = make_poly(w, {m: (1 << w) - c for m, c in p.terms if c > half}, 0)
            parts = [self._monomial(m, c, w) for m, c in added]
            if p.const or not (parts or subtracted.terms):
                parts.append(z3.BitVecVal(p.const, w))
            out = parts[0] if parts else None
            for part in parts[1:]:
                out = out + part
            if subtracted.terms:
                negated = self.term(subtracted)
                out = -negated if out is None else out - negated
            assert out is not None
        self._built[p] = out
        self._keep.append(out)
        if not self._done(out):  # normalizing a normal form gives it back
            self._polys[out.get_id()] = p
        return out

    def _monomial(self, m: Monomial, c: int, w: int) -> Term:
        factors = [self._embed(a, w) for a in m]
        prod = factors[0]
        for f in factors[1:]:
            prod = prod * f
        return prod if c == 1 else z3.BitVecVal(c, w) * prod

    def _as_concat(self, p: Poly) -> Term | None:
        """A sum of atoms at disjoint bit positions (shifted by powers of two) as a concatenation."""
        if not p.terms or (len(p.terms) == 1 and p.const == 0 and p.terms[0][1] == 1):
            return None
        pieces = self._pieces(p)
        if pieces is None:
            return None
        at = 0
        out: list[Term] = []
        for low, size, a in pieces:
            t = self._atoms[a]
            if low > at:
                out.append(z3.BitVecVal(0, low - at))
            out.append(t)
            at = low + size
        if at < p.width:
            out.append(z3.BitVecVal(0, p.width - at))
        out.reverse()
        return out[0] if len(out) == 1 else z3.Concat(*out)

    # -- rules of the layers above, which the frame and the other layers call ---------------------

    @abstractmethod
    def _bv_node(self, t: Term) -> Poly:
        """The normal form of a bit-vector node whose children are normalized (`normal_bits`)."""

    @abstractmethod
    def _other_node(self, t: Term) -> Term:
        """The normal form of a node of another sort, children normalized (`normal_booleans`)."""

    @abstractmethod
    def ite(self, cond: Term, then: Poly, other: Poly) -> Poly:
        """if cond then `then` else `other` (`normal_bits`)."""

    @abstractmethod
    def _equal(self, x: Poly, y: Poly) -> Term:
        """x == y, canonical (`normal_booleans`)."""

    @abstractmethod
    def _pieces(self, p: Poly) -> list[tuple[int, int, int]] | None:
        """(low bit, width, atom) of a sum of atoms at disjoint bits (`normal_booleans`)."""

    @abstractmethod
    def _rebuild(self, t: Term, args: list[Term]) -> Term:
        """`t` over its normalized children (`normal_booleans`)."""
