"""A canonical form for bit-vector terms, so values equal by the algebra of Z/2^w become one Z3 term.

LLVM rewrites linear arithmetic freely: `h * 31 + a + b` is reassociated and strength-reduced
(`(h << 5) - h`), constant products are folded, adjacent byte loads become one wide load with a byte
swap, masks and shifts trade places. Each side of the query then carries a different adder network for
the same value, and the SAT solver has to prove two such networks equal bit by bit, which it rarely does
in time. Here both sides are brought to one normal form first, so equal values are the same term and the
solver never sees the arithmetic twice.

A width-w term's normal form is a polynomial modulo 2^w (`Poly`) over *atoms*: terms this module does
not see through (variables, packet bytes, selects, comparisons, bitwise operations of unknown bits),
each rebuilt from normalized children and embedded by its natural (unsigned) value. Every rewrite is an
identity of modular arithmetic, checked where it needs one by an upper bound on a polynomial's natural
value (non-negative coefficients, atoms at most 2^m - 1): a proof over normal forms is a proof of the
original, and a counterexample is one of the original.

Rules: +, -, negation and bitwise not; products by constants and of two single-monomial factors;
shifts by constants; concat as `hi * 2^m + lo`; zero-extension of a polynomial that cannot wrap (also
one with negative coefficients whose integer range, `interval`, lies within its width: `0xFFFF - w`);
high bits of a bounded sum as an atom of the sum at the narrowest width holding it, cut to the bits it
may have (a checksum's 64-bit sum and its 32-bit copy, folded); an opaque sum cut to its own width as
that sum again, and high bits of a sum with negative coefficients below the cut whose integer stays within
one step (a complemented byte in a word's low half); a constant or-ed or xored into a concatenation piece
by piece; a read of an array past the stores whose offsets provably differ from it (a constant apart,
another residue modulo a power of two, or integer ranges apart);
extracts and low masks as polynomials modulo 2^k, splitting atoms at the cut when that makes the low part
exact; or and xor of operands whose bits cannot overlap as addition; if-then-else with the arms' common
part moved out; comparisons and equalities on the narrowest width that holds both sides exactly, with
constants folded; boolean structure flattened, deduplicated and ordered.

Long because the normal form has rules for each operator (linear sums, shifts, masks, byte swaps, extracts)
over one term representation, and they call one another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import z3
from z3.z3 import _to_expr_ref

from pybpfdsl.verify.equivalence.budget import Budget
from pybpfdsl.verify.equivalence.symbolic_state import Term

Monomial = tuple[int, ...]
"""A product of atoms: their ids, sorted (an atom appears once per power)."""

ITE_PUSH_DEPTH: Final = 6
"""How deep an extract is pushed into nested if-then-else arms before the extract becomes an atom."""
EXTRACT_DEPTH: Final = 40
"""How deep an extract looks through atoms that stand for other terms before it becomes an atom."""


@dataclass(frozen=True)
class Poly:
    """Σ coefficient · monomial + const, modulo 2^width (coefficients kept in [1, 2^width))."""

    width: int
    terms: tuple[tuple[Monomial, int], ...]
    const: int

    @property
    def is_const(self) -> bool:
        return not self.terms


def _make(width: int, terms: dict[Monomial, int], const: int) -> Poly:
    mask = (1 << width) - 1
    kept = tuple(sorted((m, c & mask) for m, c in terms.items() if c & mask))
    return Poly(width, kept, const & mask)


def _constant(width: int, value: int) -> Poly:
    return Poly(width, (), value & ((1 << width) - 1))


def _add(width: int, polys: Iterable[tuple[int, Poly]]) -> Poly:
    """Σ factor · poly, at `width` (each poly's natural value is taken as it stands)."""
    terms: dict[Monomial, int] = {}
    const = 0
    for factor, p in polys:
        for m, c in p.terms:
            terms[m] = terms.get(m, 0) + factor * c
        const += factor * p.const
    return _make(width, terms, const)


def _tz(value: int) -> int:
    return (value & -value).bit_length() - 1


class Normalizer:
    """Normal forms of terms, memoized over the DAG; one instance must serve both sides of a query, so
    that atoms (and the order of a sum, which follows atom ids) are shared."""

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
            subtracted = _make(w, {m: (1 << w) - c for m, c in p.terms if c > half}, 0)
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

    # -- bounds ----------------------------------------------------------------------------------

    def _atom_max(self, a: int) -> int:
        found = self._max.get(a)
        return (1 << self._atoms[a].size()) - 1 if found is None else found

    def upper(self, p: Poly) -> int:
        """An upper bound of the natural (integer) value of Σ c·monomial + const."""
        total = p.const
        for m, c in p.terms:
            prod = c
            for a in m:
                prod *= self._atom_max(a)
            total += prod
        return total

    def exact(self, p: Poly) -> bool:
        """Whether the sum never wraps: its value modulo 2^width is its integer value."""
        return self.upper(p) < (1 << p.width)

    def interval(self, p: Poly) -> tuple[int, int]:
        """Bounds of the integer Σ c·monomial + const with each coefficient above 2^(width-1) read as
        negative (c - 2^width): where both lie in [0, 2^width), that integer is p's value (it does not
        wrap). One's-complement arithmetic is written so: `0xFFFF - w` for `~w` of a 16-bit word, a
        checksum's sum less the words it replaces."""
        half, full = 1 << (p.width - 1), 1 << p.width
        low = high = p.const
        for m, c in p.terms:
            prod = 1
            for a in m:
                prod *= self._atom_max(a)
            if c > half:
                low -= (full - c) * prod
            else:
                high += c * prod
        return low, high

    def _signed_exact(self, p: Poly) -> bool:
        """Whether p's value is its integer with negative coefficients read as such (`interval`)."""
        low, high = self.interval(p)
        return low >= 0 and high < (1 << p.width)

    def _rewidth(self, p: Poly, width: int) -> Poly:
        """A `_signed_exact` p at another width holding the same integer (its negative coefficients
        written modulo 2^width, so narrower than p only where the integer fits)."""
        half, full = 1 << (p.width - 1), 1 << p.width
        return _make(width, {m: c - full if c > half else c for m, c in p.terms}, p.const)

    def maybe_bits(self, p: Poly) -> int:
        """A mask of the bits that may be one."""
        full = (1 << p.width) - 1
        masks: list[int] = []
        low = p.width
        for m, c in p.terms:
            ub = c
            for a in m:
                ub *= self._atom_max(a)
            t = _tz(c)
            low = min(low, t)
            masks.append(((1 << ub.bit_length()) - 1) & ~((1 << t) - 1))
        if p.const:
            masks.append(p.const)
            low = min(low, _tz(p.const))
        union = 0
        disjoint = True
        for mk in masks:
            if union & mk:
                disjoint = False
            union |= mk
        if disjoint and union <= full:
            return union
        top = self.upper(p).bit_length() if self.exact(p) else p.width
        return ((1 << top) - 1) & ~((1 << low) - 1) & full

    # -- width changes ---------------------------------------------------------------------------

    def widen(self, p: Poly, width: int) -> Poly:
        """The natural value of `p` (width ≤ `width`) at `width`."""
        if width == p.width:
            return p
        if not self.exact(p):
            if self._signed_exact(p):
                return self._rewidth(p, width)
            p = self._opaque(p)
        return Poly(width, p.terms, p.const)

    def truncate(self, p: Poly, k: int) -> Poly:
        """p modulo 2^k (k ≤ width)."""
        if k == p.width:
            return p
        parts: list[tuple[int, Poly]] = []
        for m, c in p.terms:
            keep = k - _tz(c)  # c·x modulo 2^k needs x modulo 2^(k - tz(c)) only
            if keep <= 0:
                continue
            if len(m) > 1:
                # A product of atoms keeps its width: its low bits are those of one full-width product
                # (not a narrower product of truncated factors), so that both programs' products
                # stay the same operation (the prover abstracts each product by its width).
                whole = self._opaque(Poly(p.width, ((m, 1),), 0))
                parts.append((c, self._atom_low(whole.terms[0][0][0], keep)))
                continue
            parts.append((c, self._atom_low(m[0], keep)))
        parts.append((1, _constant(k, p.const)))
        return _add(k, parts)

    def _stands_width(self, a: int) -> int | None:
        """The width of the sum an opaque atom stands for (None for another atom)."""
        stands = self._atom_polys.get(a)
        return None if stands is None else stands.width

    def _atom_low(self, a: int, k: int) -> Poly:
        """An atom modulo 2^k, at width k."""
        t = self._atoms[a]
        stands = self._atom_polys.get(a)
        if stands is not None and stands.width == k:
            # An opaque sum taken modulo its own width is that sum again: `(s & 0xFFFF) + c` summed in
            # 64 bits and cut to 16 is the 16-bit `s + c`, as LLVM's fold without the mask computes it.
            return stands
        if t.size() <= k:
            return Poly(k, (((a,), 1),), 0)
        return self.extract_atom(a, k - 1, 0)

    def extract_atom(self, a: int, hi: int, lo: int) -> Poly:
        """Bits hi..lo of an atom, at width hi - lo + 1."""
        t = self._atoms[a]
        if lo == 0 and hi == t.size() - 1:
            return Poly(t.size(), (((a,), 1),), 0)
        key = (a, hi, lo)
        done = self._extracts.get(key)
        if done is None:
            done = self._extracts[key] = self._extract_atom(t, hi, lo)
        return done

    def _extract_atom(self, t: Term, hi: int, lo: int) -> Poly:
        stands = self._atom_polys.get(t.get_id())
        kind = _kind(t)
        if kind == z3.Z3_OP_EXTRACT and stands is None:
            base = t.arg(0)
            _, low = t.params()
            whole = self.poly(base)
            if self._depth >= EXTRACT_DEPTH or self._is_atom_of(whole, base):
                return self._extract_leaf(base, hi + low, lo + low)
            stands = whole
            hi, lo = hi + low, lo + low
        if stands is not None and self._depth < EXTRACT_DEPTH:
            self._depth += 1
            try:
                return self.extract(stands, hi, lo)
            finally:
                self._depth -= 1
        if kind == z3.Z3_OP_ITE and self._ite_depth < ITE_PUSH_DEPTH:
            self._ite_depth += 1
            try:
                then = self.extract(self.poly(t.arg(1)), hi, lo)
                other = self.extract(self.poly(t.arg(2)), hi, lo)
            finally:
                self._ite_depth -= 1
            return self.ite(self.normalize(t.arg(0)), then, other)
        return self.atom(z3.Extract(hi, lo, t))

    def _is_atom_of(self, p: Poly, t: Term) -> bool:
        """Whether p is t itself, or the low bits that stand for a bounded t."""
        if len(p.terms) != 1 or p.const or p.terms[0][1] != 1 or len(p.terms[0][0]) != 1:
            return False
        a = self._atoms[p.terms[0][0][0]]
        return bool(a.eq(t)) or (_kind(a) == z3.Z3_OP_EXTRACT and a.arg(0).eq(t))

    def _extract_leaf(self, base: Term, hi: int, lo: int) -> Poly:
        if lo == 0 and hi == base.size() - 1:
            return self.atom(base)
        out = self.atom(z3.Extract(hi, lo, base))
        bounded = self._bounds.get(base.get_id())
        if bounded is not None:
            key = out.terms[0][0][0]
            self._max[key] = min(self._max.get(key, (1 << (hi - lo + 1)) - 1), bounded[1] >> lo)
        return out

    def extract(self, p: Poly, hi: int, lo: int) -> Poly:
        """Bits hi..lo of p, at width hi - lo + 1."""
        if lo == 0:
            return self.truncate(p, hi + 1)
        if hi + 1 < p.width and any(len(m) == 1 and self._stands_width(m[0]) == hi + 1 for m, _ in p.terms):
            # Bits up to hi depend on p modulo 2^(hi+1) only, where an opaque sum of that width is
            # its polynomial again (`_atom_low`): the high byte of LLVM's 32-bit fold `s + (s >> 16)`
            # is then that of the IR's 16-bit one.
            p = self.truncate(p, hi + 1)
        k = hi - lo + 1
        complement = self._complement(p)
        if complement is not None:  # C - q with q's bits among C's: C ^ q, bit by bit
            mask, q = complement
            return _add(k, [(1, _constant(k, mask >> lo)), (-1, self.extract(q, hi, lo))])
        low_mask = (1 << lo) - 1
        upper: list[tuple[int, Poly]] = []
        lower: list[tuple[int, Poly]] = []
        for m, c in p.terms:
            one = Poly(p.width, ((m, 1),), 0)
            c_hi, c_lo = c >> lo, c & low_mask
            if c_hi:
                upper.append((c_hi, one))
            if not c_lo:
                continue
            if len(m) == 1 and not c_lo & (c_lo - 1) and _tz(c_lo) + self._atoms[m[0]].size() > lo:
                # c_lo·a = 2^t·(a_hi·2^s + a_lo) with s = lo - t: a_hi goes up, 2^t·a_lo stays below.
                t = _tz(c_lo)
                s = lo - t
                size = self._atoms[m[0]].size()
                a_hi = self.extract_atom(m[0], size - 1, s)
                a_lo = self.extract_atom(m[0], s - 1, 0)
                if self.exact(a_hi) and self.exact(a_lo):
                    upper.append((1, Poly(p.width, a_hi.terms, a_hi.const)))
                    lower.append((1 << t, Poly(p.width, a_lo.terms, a_lo.const)))
                    continue
            lower.append((c_lo, one))
        upper.append((1, _constant(p.width, p.const >> lo)))
        lower.append((1, _constant(p.width, p.const & low_mask)))
        below = _add(p.width + lo, lower)  # wide enough to hold the integer sum below the cut
        if self.upper(below) <= low_mask:
            return self.truncate(_add(p.width, upper), k) if k < p.width else _add(p.width, upper)
        signed = self._signed_split(p, lo)
        if signed is not None:
            return self.truncate(signed, k)
        return self._high_bits(p, hi, lo)

    def _signed_split(self, p: Poly, lo: int) -> Poly | None:
        """p >> lo (at p's width, exact in its low width - lo bits) when p = 2^lo·U + L with U's
        coefficients whole and L's integer, negative coefficients read as such (`interval`), within
        one step of 2^lo: `256·x + 255 - y` for a byte y is x above bit 8 (a complemented byte
        written into a word's low half, LLVM's form of `~(x·256 + y)`'s high byte)."""
        w = p.width
        half, full, step = 1 << (w - 1), 1 << w, 1 << lo
        upper: dict[Monomial, int] = {}
        lower: dict[Monomial, int] = {}
        for m, c in p.terms:
            value = c - full if c > half else c
            if value % step:
                if abs(value) >= step:
                    return None  # a large coefficient below the cut: no integer bound worth having
                lower[m] = value
            else:
                upper[m] = value >> lo
        if not lower:
            return None
        low, high = self.interval(_make(w, lower, p.const & (step - 1)))
        if low >> lo != high >> lo:
            return None
        return _make(w, upper, (p.const >> lo) + (low >> lo))

    def _complement(self, p: Poly) -> tuple[int, Poly] | None:
        """(C, q) when p = C - q with every bit q (modulo 2^width) may have set in C: then p is C ^ q,
        and its bits are C's bits less q's (`~w` of a loaded word, byte-swapped)."""
        half = 1 << (p.width - 1)
        if not p.const or not p.terms or any(c <= half for _, c in p.terms):
            return None
        q = _add(p.width, [(1, _constant(p.width, p.const)), (-1, p)])
        if q.const or self.maybe_bits(q) & ~p.const:
            return None
        return p.const, q

    def _high_bits(self, p: Poly, hi: int, lo: int) -> Poly:
        """Bits hi..lo (lo > 0) of p as an atom. Where p's integer is bounded (`interval`), the atom is
        cut to the bits it may have and taken of p at the narrowest width holding it: `T >> 16` of
        a checksum's 64-bit sum and of its 32-bit copy are then one atom (with its bound), as they
        are one number, and the fold `(T & 0xFFFF) + (T >> 16)` is one polynomial on both sides."""
        k = hi - lo + 1
        if self.exact(p) or self._signed_exact(p):
            high = self.upper(p) if self.exact(p) else self.interval(p)[1]
            n = high.bit_length()
            if n <= lo:
                return _constant(k, 0)
            narrow = self._rewidth(p, n) if not self.exact(p) else self.truncate(p, n) if n < p.width else p
            top = min(hi, n - 1)
            out = self.atom(z3.Extract(top, lo, self.term(narrow)))
            key = out.terms[0][0][0]
            self._max[key] = min(self._max.get(key, (1 << (top - lo + 1)) - 1), high >> lo)
            return Poly(k, out.terms, 0)
        return self.atom(z3.Extract(hi, lo, self.term(p)))

    # -- arithmetic ------------------------------------------------------------------------------

    def _mul(self, a: Poly, b: Poly) -> Poly:
        w = a.width
        if b.is_const:
            a, b = b, a
        if a.is_const:
            return _add(w, [(a.const, b)])
        if len(a.terms) == 1 and len(b.terms) == 1:
            (ma, ca), (mb, cb) = a.terms[0], b.terms[0]
            mono = tuple(sorted(ma + mb))
            terms = {mono: ca * cb}
            if a.const:
                terms[mb] = terms.get(mb, 0) + a.const * cb
            if b.const:
                terms[ma] = terms.get(ma, 0) + b.const * ca
            return _make(w, terms, a.const * b.const)
        x, y = sorted((self.term(a), self.term(b)), key=lambda t: t.get_id())
        return self.atom(x * y)

    def ite(self, cond: Term, then: Poly, other: Poly) -> Poly:
        """if cond then `then` else `other` (same width): the common part outside, the rest narrow."""
        w = then.width
        if z3.is_true(cond) or then == other:
            return then
        if z3.is_false(cond):
            return other
        if _kind(cond) == z3.Z3_OP_NOT:
            cond, then, other = cond.arg(0), other, then
        rest_a = dict(then.terms)
        rest_b = dict(other.terms)
        common: dict[Monomial, int] = {}
        for m, c in then.terms:
            if rest_b.get(m) == c:
                common[m] = c
                del rest_a[m], rest_b[m]
        base = min(then.const, other.const)
        a = _make(w, rest_a, then.const - base)
        b = _make(w, rest_b, other.const - base)
        k = w
        if self.exact(a) and self.exact(b):
            k = max(self.upper(a).bit_length(), self.upper(b).bit_length(), 1)
        a, b = Poly(k, a.terms, a.const), Poly(k, b.terms, b.const)
        self._ite_conditions.add(cond.get_id())
        arm = self.atom(z3.If(cond, self.term(a), self.term(b)))
        return _add(w, [(1, _make(w, common, base)), (1, Poly(w, arm.terms, 0))])

    # -- bit-vector nodes ------------------------------------------------------------------------

    def _bv_node(self, t: Term) -> Poly:
        w = t.size()
        if z3.is_bv_value(t):
            return _constant(w, t.as_long())
        if not z3.is_app(t) or t.num_args() == 0:
            bounded = self._bounds.get(t.get_id())
            if bounded is None or bounded[1] >= (1 << w) - 1:
                return self.atom(t)
            low = self.atom(z3.Extract(max(bounded[1].bit_length(), 1) - 1, 0, t))
            self._max[low.terms[0][0][0]] = bounded[1]
            return Poly(w, low.terms, 0)
        kind = _kind(t)
        args = t.children()

        def p(i: int) -> Poly:
            return self._polys[args[i].get_id()]

        if kind == z3.Z3_OP_BADD:
            return _add(w, [(1, p(i)) for i in range(len(args))])
        if kind == z3.Z3_OP_BSUB:
            return _add(w, [(1, p(0)), *[(-1, p(i)) for i in range(1, len(args))]])
        if kind == z3.Z3_OP_BNEG:
            return _add(w, [(-1, p(0))])
        if kind == z3.Z3_OP_BNOT:
            return _add(w, [(-1, p(0)), (1, _constant(w, -1))])
        if kind == z3.Z3_OP_BMUL:
            out = p(0)
            for i in range(1, len(args)):
                out = self._mul(out, p(i))
            return out
        if kind == z3.Z3_OP_CONCAT:
            parts: list[tuple[int, Poly]] = []
            at = 0
            for i in reversed(range(len(args))):
                parts.append((1 << at, self.widen(p(i), w)))
                at += args[i].size()
            return _add(w, parts)
        if kind == z3.Z3_OP_ZERO_EXT:
            return self.widen(p(0), w)
        if kind == z3.Z3_OP_EXTRACT:
            hi, lo = t.params()
            return self.extract(p(0), hi, lo)
        if kind in (z3.Z3_OP_BSHL, z3.Z3_OP_BLSHR) and p(1).is_const:
            k = p(1).const
            if k >= w:
                return _constant(w, 0)
            if kind == z3.Z3_OP_BSHL:
                return _add(w, [(1 << k, p(0))])
            return self.widen(self.extract(p(0), w - 1, k), w) if k else p(0)
        if kind == z3.Z3_OP_BAND:
            return self._and([p(i) for i in range(len(args))], w)
        if kind in (z3.Z3_OP_BOR, z3.Z3_OP_BXOR):
            return self._or(kind, [p(i) for i in range(len(args))], w)
        if kind == z3.Z3_OP_ITE:
            return self.ite(self._others[args[0].get_id()], p(1), p(2))
        if kind == z3.Z3_OP_SELECT and z3.is_bv(args[1]):
            return self._select(t, args[0], p(1))
        return self.atom(self._rebuild(t, args))

    def _select(self, t: Term, array: Term, at: Poly) -> Poly:
        """A read of `array` at `at`, past the stores that provably miss it (their offset differs from
        `at` by a constant, or the two offsets' integer ranges are apart, `interval`) to the store that
        hits it (the same offset) or to one that may: the byte a program wrote at a fixed header offset
        is then that byte whatever it wrote at offsets the parse computed (a TCP checksum at l4 + 16,
        l4 ≥ 34, never hits the IPv4 checksum at 24), and both programs' reads are one term however
        their stores interleave."""
        # The normal form of the array: a merged state's `If` of two equal store chains is one chain.
        array = self._others[array.get_id()]
        while z3.is_app_of(array, z3.Z3_OP_STORE):
            offset = self.poly(array.arg(1))
            if offset == at:
                return self.poly(array.arg(2))
            if not self._apart(offset, at):
                break
            array = array.arg(0)
        return self.atom(z3.Select(array, self.term(at)))

    def apart(self, x: Term, y: Term) -> bool:
        """Whether two bit-vector terms of one width differ whatever their atoms (`_apart`)."""
        self._visit(x)
        self._visit(y)
        return self._apart(self._polys[x.get_id()], self._polys[y.get_id()])

    def _apart(self, x: Poly, y: Poly) -> bool:
        """Whether x ≠ y whatever the atoms: their difference is a constant other than 0, or both are
        integers (`interval`) in ranges that do not meet."""
        difference = _add(x.width, [(1, x), (-1, y)])
        if difference.is_const:
            return difference.const != 0
        # Every coefficient a multiple of 2^t and the constant not: the difference is not 0 modulo 2^t,
        # so not modulo 2^width (4·ihl + 20 is never the byte 30).
        if difference.const and _tz(difference.const) < min(_tz(c) for _, c in difference.terms):
            return True
        ranges = []
        for q in (x, y):
            if not (self.exact(q) or self._signed_exact(q)):
                return False
            ranges.append((q.const, self.upper(q)) if self.exact(q) else self.interval(q))
        (lx, hx), (ly, hy) = ranges
        return hx < ly or hy < lx

    def _and(self, ps: list[Poly], w: int) -> Poly:
        mask = (1 << w) - 1
        rest: list[Poly] = []
        for q in ps:
            if q.is_const:
                mask &= q.const
            else:
                rest.append(q)
        for q in rest:
            mask &= self.maybe_bits(q)
        if mask == 0:
            return _constant(w, 0)
        if not rest:
            return _constant(w, mask)
        if len(rest) == 1:
            q = rest[0]
            parts: list[tuple[int, Poly]] = []
            bit = 0
            while bit < w:
                if not mask >> bit & 1:
                    bit += 1
                    continue
                end = bit
                while end + 1 < w and mask >> (end + 1) & 1:
                    end += 1
                parts.append((1 << bit, self.widen(self.extract(q, end, bit), w)))
                bit = end + 1
            return _add(w, parts)
        terms = sorted({self.term(q).get_id(): self.term(q) for q in rest}.values(), key=lambda x: x.get_id())
        out = terms[0]
        for x in terms[1:]:
            out = out & x
        whole = self.atom(out)
        return self._and([whole, _constant(w, mask)], w) if mask != (1 << w) - 1 else whole

    def _piecewise(self, kind: int, ps: list[Poly], w: int) -> Poly | None:
        """x | c or x ^ c for a concatenation x (atoms at disjoint bits, `_pieces`) and a constant c, as
        the concatenation of each piece with its slice of c (bits outside every piece are c's): a
        64-bit word xor 0xFF is its low byte's complement beside the other bytes, whichever byte order
        it was loaded in, so its 16-bit halves are polynomials of bytes on both sides."""
        if len(ps) != 2 or ps[0].is_const == ps[1].is_const:
            return None
        x, k = (ps[1], ps[0]) if ps[0].is_const else (ps[0], ps[1])
        pieces = self._pieces(x)
        if pieces is None or len(pieces) < 2:
            return None
        c = k.const
        covered = 0
        parts: list[tuple[int, Poly]] = []
        for low, size, a in pieces:
            mask = (1 << size) - 1
            covered |= mask << low
            piece = self._or(kind, [Poly(size, (((a,), 1),), 0), _constant(size, c >> low & mask)], size)
            parts.append((1 << low, self.widen(piece, w)))
        parts.append((1, _constant(w, c & ~covered)))
        return _add(w, parts)

    def _or(self, kind: int, ps: list[Poly], w: int) -> Poly:
        full = (1 << w) - 1
        if kind == z3.Z3_OP_BXOR:
            flips = 0
            rest = []
            for q in ps:
                if q.is_const:
                    flips ^= q.const
                else:
                    rest.append(q)
            if len(rest) == 1 and (flips == full or (flips and not self.maybe_bits(rest[0]) & ~flips)):
                # Every bit x may have is flipped: x ^ m = m - x (no borrow), as ~x = -1 - x.
                return _add(w, [(-1, rest[0]), (1, _constant(w, flips))])
            ps = rest + ([_constant(w, flips)] if flips else [])
        piecewise = self._piecewise(kind, ps, w)
        if piecewise is not None:
            return piecewise
        seen = 0
        disjoint = True
        for q in ps:
            bits = self.maybe_bits(q)
            if seen & bits:
                disjoint = False
                break
            seen |= bits
        if disjoint:
            return _add(w, [(1, q) for q in ps])
        counts: dict[int, tuple[Term, int]] = {}
        for q in ps:
            t = self.term(q)
            counts[t.get_id()] = (t, counts.get(t.get_id(), (t, 0))[1] + 1)
        # x | x is x; x ^ x is 0.
        terms = [t for key, (t, n) in sorted(counts.items()) if kind == z3.Z3_OP_BOR or n % 2]
        if not terms:
            return _constant(w, 0)
        if len(terms) == 1:
            return self.poly(terms[0])
        out = terms[0]
        for x in terms[1:]:
            out = (out | x) if kind == z3.Z3_OP_BOR else (out ^ x)
        return self.atom(out)

    # -- other sorts -----------------------------------------------------------------------------

    def _rebuild(self, t: Term, args: list[Term]) -> Term:
        new = [self._child(a) for a in args]
        if all(a.eq(b) for a, b in zip(new, args)):
            return t
        return t.decl()(*new)

    def _other_node(self, t: Term) -> Term:
        if not z3.is_app(t) or t.num_args() == 0:
            return t
        args = t.children()
        if not z3.is_bool(t):
            if _kind(t) == z3.Z3_OP_ITE:
                return self._bool_ite(self._others[args[0].get_id()], self._child(args[1]), self._child(args[2]))
            return self._rebuild(t, args)
        kind = _kind(t)
        if kind in (z3.Z3_OP_AND, z3.Z3_OP_OR):
            return self._junction(kind, [self._others[a.get_id()] for a in args])
        if kind == z3.Z3_OP_NOT:
            return self._not(self._others[args[0].get_id()])
        if kind == z3.Z3_OP_EQ and z3.is_bv(args[0]):
            return self._equal(self._polys[args[0].get_id()], self._polys[args[1].get_id()])
        if kind == z3.Z3_OP_DISTINCT and len(args) == 2 and z3.is_bv(args[0]):
            return self._not(self._equal(self._polys[args[0].get_id()], self._polys[args[1].get_id()]))
        if kind in _UNSIGNED:
            x, y = (self._polys[a.get_id()] for a in args)
            strict, swap = _UNSIGNED[kind]
            if swap:
                x, y = y, x
            return self._not(self._ule(y, x)) if strict else self._ule(x, y)
        if kind in _SIGNED:
            px, py = (self._polys[a.get_id()] for a in args)
            strict, swap = _SIGNED[kind]
            if swap:
                px, py = py, px
            if self._nonnegative(px) and self._nonnegative(py):  # signed order is unsigned order
                return self._not(self._ule(py, px)) if strict else self._ule(px, py)
            # x <=s y is x + 2^(w-1) <=u y + 2^(w-1). When both shifted sums are exact (a bounded sum
            # minus a constant, compared with a constant), the integer comparison decides or narrows
            # it: `src * 1000003 - 7 < 0` is `src == 0` for a 32-bit src.
            if px.is_const or py.is_const:
                half = _constant(px.width, 1 << (px.width - 1))
                sx, sy = _add(px.width, [(1, px), (1, half)]), _add(py.width, [(1, py), (1, half)])
                if self.exact(sx) and self.exact(sy):
                    return self._not(self._ule(sy, sx)) if strict else self._ule(sx, sy)
            x, y = self.term(px), self.term(py)
            return self._not(y <= x) if strict else x <= y
        if kind == z3.Z3_OP_EQ:
            x, y = sorted((self._child(a) for a in args), key=lambda e: e.get_id())
            if x.eq(y):
                return z3.BoolVal(True)
            return x == y
        if kind == z3.Z3_OP_ITE:
            return self._bool_ite(self._others[args[0].get_id()], self._child(args[1]), self._child(args[2]))
        return self._rebuild(t, args)

    def _bool_ite(self, cond: Term, then: Term, other: Term) -> Term:
        if z3.is_true(cond) or then.eq(other):
            return then
        if z3.is_false(cond):
            return other
        if _kind(cond) == z3.Z3_OP_NOT:
            cond, then, other = cond.arg(0), other, then
        self._ite_conditions.add(cond.get_id())
        return z3.If(cond, then, other)

    def _not(self, x: Term) -> Term:
        if z3.is_true(x):
            return z3.BoolVal(False)
        if z3.is_false(x):
            return z3.BoolVal(True)
        if _kind(x) == z3.Z3_OP_NOT:
            return x.arg(0)
        return z3.Not(x)

    def _junction(self, kind: int, args: list[Term]) -> Term:
        conj = kind == z3.Z3_OP_AND
        items: dict[int, Term] = {}
        for a in args:
            if _kind(a) == kind:
                for b in a.children():
                    items[b.get_id()] = b
            else:
                items[a.get_id()] = a
        kept: list[Term] = []
        for key in sorted(items):
            a = items[key]
            if z3.is_true(a) if conj else z3.is_false(a):
                continue
            if z3.is_false(a) if conj else z3.is_true(a):
                return a
            kept.append(a)
        ids = set(items)
        for a in kept:
            if _kind(a) == z3.Z3_OP_NOT and a.arg(0).get_id() in ids:
                return z3.BoolVal(not conj)
        merged = self._merge_split_compares(conj, kept)
        if merged is not None:
            return self._junction(kind, merged)
        if not kept:
            return z3.BoolVal(conj)
        if len(kept) == 1:
            return kept[0]
        return z3.And(*kept) if conj else z3.Or(*kept)

    def _merge_split_compares(self, conj: bool, items: list[Term]) -> list[Term] | None:
        """Undo z3's splitting of a comparison with a constant at a bit: `x >= c` (c < 2^k) becomes
        `x[hi:k] != 0 or x[k-1:0] >= c` and `x <= c` becomes `x[hi:k] == 0 and x[k-1:0] <= c`."""
        highs: dict[tuple[int, int], tuple[int, int]] = {}
        for i, e in enumerate(items):
            test = e.arg(0) if not conj and _kind(e) == z3.Z3_OP_NOT else e if conj else None
            part = None if test is None else _zero_test(test)
            if part is not None and part[2] > 0:
                base, hi, lo = part
                highs[(base.get_id(), lo)] = (i, hi)
        if not highs:
            return None
        for j, e in enumerate(items):
            low_test = _low_compare(e, conj)
            if low_test is None:
                continue
            base, k, c = low_test
            found = highs.get((base.get_id(), k))
            if found is None:
                continue
            hi = found[1]
            whole = self.poly(z3.Extract(hi, 0, base))
            const = _constant(whole.width, c)
            merged = self._ule(whole, const) if conj else self._ule(const, whole)
            return [x for i, x in enumerate(items) if i not in (found[0], j)] + [merged]
        return None

    def _sides(self, x: Poly, y: Poly) -> tuple[Poly, Poly]:
        """x = y as L = R with positive coefficients on both sides, no constant on the left."""
        w = x.width
        d = _add(w, [(1, x), (-1, y)])
        half = 1 << (w - 1)
        left = {m: c for m, c in d.terms if c < half}
        right = {m: -c for m, c in d.terms if c >= half}
        lp, rp = _make(w, left, 0), _make(w, right, -d.const)
        if lp.is_const or (not rp.is_const and rp.terms[0][0] < lp.terms[0][0]):
            lp, rp = _make(w, right, 0), _make(w, left, d.const)
        return lp, rp

    def _narrow(self, x: Poly, y: Poly) -> tuple[Poly, Poly]:
        """Both at the narrowest width that holds both exactly (their natural values, compared)."""
        if not (self.exact(x) and self.exact(y)):
            return x, y
        k = max(self.upper(x).bit_length(), self.upper(y).bit_length(), 1)
        if k >= x.width:
            return x, y
        return Poly(k, x.terms, x.const), Poly(k, y.terms, y.const)

    def _equal(self, x: Poly, y: Poly) -> Term:
        lp, rp = self._sides(x, y)
        if lp.is_const:
            return z3.BoolVal(lp.const == rp.const)
        if self.exact(lp) and self.exact(rp):
            lower_l, lower_r = lp.const, rp.const
            if self.upper(lp) < lower_r or self.upper(rp) < lower_l:
                return z3.BoolVal(False)
        lp, rp = self._narrow(lp, rp)
        if rp.is_const and len(lp.terms) == 1 and lp.terms[0][1] == 1 and len(lp.terms[0][0]) == 1:
            a = lp.terms[0][0][0]
            folded = self._ite_is(a, rp.const)
            if folded is not None:
                return folded
            stands = self._atom_polys.get(a)
            if stands is not None:  # an opaque sum equal to a constant: the sum modulo its width
                if rp.const >> stands.width:
                    return z3.BoolVal(False)
                return self._equal(stands, _constant(stands.width, rp.const))
        if rp.is_const and not rp.const and (len(lp.terms) > 1 or lp.terms[0][1] != 1) and self.exact(lp):
            # A sum of naturals with positive coefficients is 0 when each monomial is.
            return self._junction(z3.Z3_OP_AND, [self._equal(Poly(lp.width, ((m, 1),), 0), _constant(lp.width, 0))
                                                 for m, _ in lp.terms])
        if rp.is_const and len(lp.terms) > 1:
            pieces = self._pieces(lp)
            if pieces is not None:  # a concatenation equal to a constant: each piece equal to its bits
                covered = 0
                tests: list[Term] = []
                for low, size, a in pieces:
                    covered |= ((1 << size) - 1) << low
                    tests.append(self._equal(Poly(size, (((a,), 1),), 0),
                                             _constant(size, rp.const >> low)))
                if rp.const & ~covered:
                    return z3.BoolVal(False)
                return self._junction(z3.Z3_OP_AND, tests)
        return self.term(lp) == self.term(rp)

    def _pieces(self, p: Poly) -> list[tuple[int, int, int]] | None:
        """(low bit, width, atom) of a sum of atoms shifted to disjoint bits, without a constant."""
        if p.const:
            return None
        out: list[tuple[int, int, int]] = []
        for m, c in p.terms:
            if len(m) != 1 or c & (c - 1):
                return None
            out.append((_tz(c), self._atoms[m[0]].size(), m[0]))
        out.sort()
        at = 0
        for low, size, _ in out:
            if low < at or low + size > p.width:
                return None
            at = low + size
        return out

    def _ite_is(self, a: int, value: int) -> Term | None:
        """`ite(c, k1, k2) == value` for constant arms, as c, not c or false."""
        t = self._atoms[a]
        if _kind(t) != z3.Z3_OP_ITE or not (z3.is_bv_value(t.arg(1)) and z3.is_bv_value(t.arg(2))):
            return None
        k1, k2 = t.arg(1).as_long(), t.arg(2).as_long()
        if k1 == value:
            return z3.BoolVal(True) if k2 == value else t.arg(0)
        return self._not(t.arg(0)) if k2 == value else z3.BoolVal(False)

    def _nonnegative(self, p: Poly) -> bool:
        return self.upper(p) < (1 << (p.width - 1))

    def _ule(self, x: Poly, y: Poly) -> Term:
        if x.is_const and y.is_const:
            return z3.BoolVal(x.const <= y.const)
        if self.exact(x) and self.exact(y):
            # Integers: cancel what both sides hold (each side stays non-negative).
            tx, ty = dict(x.terms), dict(y.terms)
            for m in set(tx) & set(ty):
                both = min(tx[m], ty[m])
                tx[m] -= both
                ty[m] -= both
            base = min(x.const, y.const)
            x, y = _make(x.width, tx, x.const - base), _make(y.width, ty, y.const - base)
            if self.upper(x) <= y.const:
                return z3.BoolVal(True)
            if x.const > self.upper(y):
                return z3.BoolVal(False)
            if x.is_const and y.is_const:
                return z3.BoolVal(x.const <= y.const)
            if x.is_const and not y.const and x.const <= min(c for _, c in y.terms):
                # k <= Σ c·m with every c >= k > 0 and naturals m: some m is not 0.
                return self._not(self._equal(y, _constant(y.width, 0)))
            x, y = self._narrow(x, y)
        elif (y.is_const and y.const == (1 << y.width) - 1) or (x.is_const and x.const == 0):
            return z3.BoolVal(True)
        if y.is_const:  # constants on the left: x <= c is not c + 1 <= x
            return self._not(self._ule(_constant(x.width, y.const + 1), x))
        if x.is_const and len(y.terms) == 1 and y.terms[0][1] == 1 and len(y.terms[0][0]) == 1 and not y.const:
            part = _extract_args(self._atoms[y.terms[0][0][0]])
            if part is not None and part[2] > 0:  # c <= x[hi:lo] is c·2^lo <= x[hi:0]
                base, hi, lo = part
                whole = self.widen(self.poly(z3.Extract(hi, 0, base)), max(hi + 1, x.width))
                return self._ule(_constant(whole.width, x.const << lo), whole)
        return z3.ULE(self.term(x), self.term(y))


def _kind(e: Term) -> int:
    """The operator of an application (cheaper than `e.decl().kind()`, which builds a FuncDeclRef)."""
    ctx = e.ctx_ref()
    ast = e.as_ast()
    if z3.Z3_get_ast_kind(ctx, ast) != z3.Z3_APP_AST:
        return -1
    kind: int = z3.Z3_get_decl_kind(ctx, z3.Z3_get_app_decl(ctx, ast))
    return kind


def _extract_args(t: Term) -> tuple[Term, int, int] | None:
    if z3.is_app(t) and _kind(t) == z3.Z3_OP_EXTRACT:
        hi, lo = t.params()
        return t.arg(0), hi, lo
    return None


def _zero_test(e: Term) -> tuple[Term, int, int] | None:
    """(x, hi, lo) when e is `x[hi:lo] == 0`."""
    if _kind(e) != z3.Z3_OP_EQ or not z3.is_bv(e.arg(0)):
        return None
    for x, y in ((e.arg(0), e.arg(1)), (e.arg(1), e.arg(0))):
        if z3.is_bv_value(y) and y.as_long() == 0:
            return _extract_args(x)
    return None


def _low_compare(e: Term, conj: bool) -> tuple[Term, int, int] | None:
    """(x, k, c) when e is `x[k-1:0] <= c` (conj) or `c <= x[k-1:0]` (not conj), or the equality z3
    leaves for the extreme c."""
    kind = _kind(e)
    negated = kind == z3.Z3_OP_NOT
    if negated:
        e = e.arg(0)
        kind = _kind(e)
    if kind == z3.Z3_OP_ULEQ and negated == conj:  # normal forms keep the constant on the left
        bound, side = e.arg(0), e.arg(1)
        if not z3.is_bv_value(bound):
            return None
        part = _extract_args(side)
        if part is None or part[2] != 0:
            return None
        return part[0], part[1] + 1, bound.as_long() - (1 if conj else 0)
    if negated:
        return None
    if kind == z3.Z3_OP_EQ and z3.is_bv(e.arg(0)):
        for x, y in ((e.arg(0), e.arg(1)), (e.arg(1), e.arg(0))):
            part = _extract_args(x)
            if part is None or part[2] != 0 or not z3.is_bv_value(y):
                continue
            k = part[1] + 1
            extreme = 0 if conj else (1 << k) - 1
            if y.as_long() == extreme:
                return part[0], k, extreme
    return None


_UNSIGNED: Final = {z3.Z3_OP_ULEQ: (False, False), z3.Z3_OP_UGEQ: (False, True),
                    z3.Z3_OP_ULT: (True, False), z3.Z3_OP_UGT: (True, True)}
"""Kind → (strict, swap): `a < b` is `not b <= a`; `a >= b` is `b <= a`."""
_SIGNED: Final = {z3.Z3_OP_SLEQ: (False, False), z3.Z3_OP_SGEQ: (False, True),
                  z3.Z3_OP_SLT: (True, False), z3.Z3_OP_SGT: (True, True)}


def normalize(t: Term, normalizer: Normalizer | None = None) -> Term:
    """`t` in canonical form (a fresh normalizer unless one is given)."""
    return (normalizer or Normalizer()).normalize(t)
