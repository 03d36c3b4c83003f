"""Width changes in the normal form (`normalize`): zero-extension of a polynomial that cannot wrap,
truncation and extracts as polynomials modulo 2^k (splitting atoms at the cut when that makes the low
part exact), high bits of a bounded sum as an atom of the sum at the narrowest width holding it, and
extracts pushed through the atoms that stand for other terms and into if-then-else arms (also past a
constant added to one). A sum that may wrap and its complement (~q = 2^k - 1 - q) share one atom when
widened, whichever of the two each program widens (`_complement_first`)."""

from __future__ import annotations

from typing import Final

import z3

from pybpfdsl.verify.equivalence.normal_bounds import BoundRules
from pybpfdsl.verify.equivalence.normal_poly import Monomial, Poly, constant_poly, make_poly, sum_poly, trailing_zeros
from pybpfdsl.verify.equivalence.symbolic_state import Term
from pybpfdsl.verify.equivalence.terms import op_kind

ITE_PUSH_DEPTH: Final = 6
"""How deep an extract is pushed into nested if-then-else arms before the extract becomes an atom."""
COMPLEMENT_WIDTH: Final = 16
"""The widest sum (a checksum's word) whose widening shares one atom with its complement's."""
EXTRACT_DEPTH: Final = 40
"""How deep an extract looks through atoms that stand for other terms before it becomes an atom."""


class WidthRules(BoundRules):
    """A polynomial at another width, or some of its bits."""

    def widen(self, p: Poly, width: int) -> Poly:
        """The natural value of `p` (width ≤ `width`) at `width`."""
        if width == p.width:
            return p
        if not self.exact(p):
            if self._signed_exact(p):
                return self._rewidth(p, width)
            flipped = sum_poly(p.width, [(-1, p), (1, constant_poly(p.width, -1))])
            if p.width <= COMPLEMENT_WIDTH and _complement_first(flipped, p):
                # ~q widened is 2^k - 1 - q widened: one atom for q and its complement (the IR
                # complements a checksum's low byte after widening it, LLVM before). Only for bytes
                # and words: a product's wide sum keeps its own atom, which the abstraction matches.
                q = self._opaque(flipped)
                return sum_poly(width, [(-1, Poly(width, q.terms, q.const)),
                                        (1, constant_poly(width, (1 << p.width) - 1))])
            p = self._opaque(p)
        return Poly(width, p.terms, p.const)

    def truncate(self, p: Poly, k: int) -> Poly:
        """p modulo 2^k (k ≤ width)."""
        if k == p.width:
            return p
        parts: list[tuple[int, Poly]] = []
        for m, c in p.terms:
            keep = k - trailing_zeros(c)  # c·x modulo 2^k needs x modulo 2^(k - tz(c)) only
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
        parts.append((1, constant_poly(k, p.const)))
        return sum_poly(k, parts)

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
        kind = op_kind(t)
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
        return bool(a.eq(t)) or (op_kind(a) == z3.Z3_OP_EXTRACT and a.arg(0).eq(t))

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
        shifted = self._shifted_ite(p)
        if shifted is not None:
            # Bits of `if c then x else y` plus a constant are those of each arm plus it: each arm's
            # bits then take the form the other program gives them on its own path (the IR selects a
            # checksum of 0 as 0xFFFF, LLVM branches).
            cond, then, other = shifted
            self._ite_depth += 1
            try:
                return self.ite(cond, self.extract(then, hi, lo), self.extract(other, hi, lo))
            finally:
                self._ite_depth -= 1
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
            return sum_poly(k, [(1, constant_poly(k, mask >> lo)), (-1, self.extract(q, hi, lo))])
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
            if len(m) == 1 and not c_lo & (c_lo - 1) and trailing_zeros(c_lo) + self._atoms[m[0]].size() > lo:
                # c_lo·a = 2^t·(a_hi·2^s + a_lo) with s = lo - t: a_hi goes up, 2^t·a_lo stays below.
                t = trailing_zeros(c_lo)
                s = lo - t
                size = self._atoms[m[0]].size()
                a_hi = self.extract_atom(m[0], size - 1, s)
                a_lo = self.extract_atom(m[0], s - 1, 0)
                if self.exact(a_hi) and self.exact(a_lo):
                    upper.append((1, Poly(p.width, a_hi.terms, a_hi.const)))
                    lower.append((1 << t, Poly(p.width, a_lo.terms, a_lo.const)))
                    continue
            lower.append((c_lo, one))
        upper.append((1, constant_poly(p.width, p.const >> lo)))
        lower.append((1, constant_poly(p.width, p.const & low_mask)))
        below = sum_poly(p.width + lo, lower)  # wide enough to hold the integer sum below the cut
        if self.upper(below) <= low_mask:
            return self.truncate(sum_poly(p.width, upper), k) if k < p.width else sum_poly(p.width, upper)
        signed = self._signed_split(p, lo)
        if signed is not None:
            return self.truncate(signed, k)
        return self._high_bits(p, hi, lo)

    def _shifted_ite(self, p: Poly) -> tuple[Term, Poly, Poly] | None:
        """(c, x + k, y + k) when p is an if-then-else atom `ite(c, x, y)` of p's width plus a constant k."""
        if not p.const or len(p.terms) != 1 or p.terms[0][1] != 1 or len(p.terms[0][0]) != 1:
            return None
        t = self._atoms[p.terms[0][0][0]]
        if op_kind(t) != z3.Z3_OP_ITE or t.size() != p.width or self._ite_depth >= ITE_PUSH_DEPTH:
            return None
        k = constant_poly(p.width, p.const)
        return (self.normalize(t.arg(0)), sum_poly(p.width, [(1, self.poly(t.arg(1))), (1, k)]),
                sum_poly(p.width, [(1, self.poly(t.arg(2))), (1, k)]))

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
        low, high = self.interval(make_poly(w, lower, p.const & (step - 1)))
        if low >> lo != high >> lo:
            return None
        return make_poly(w, upper, (p.const >> lo) + (low >> lo))

    def _complement(self, p: Poly) -> tuple[int, Poly] | None:
        """(C, q) when p = C - q with every bit q (modulo 2^width) may have set in C: then p is C ^ q,
        and its bits are C's bits less q's (`~w` of a loaded word, byte-swapped)."""
        half = 1 << (p.width - 1)
        if not p.const or not p.terms or any(c <= half for _, c in p.terms):
            return None
        q = sum_poly(p.width, [(1, constant_poly(p.width, p.const)), (-1, p)])
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
                return constant_poly(k, 0)
            narrow = self._rewidth(p, n) if not self.exact(p) else self.truncate(p, n) if n < p.width else p
            top = min(hi, n - 1)
            out = self.atom(z3.Extract(top, lo, self.term(narrow)))
            key = out.terms[0][0][0]
            self._max[key] = min(self._max.get(key, (1 << (top - lo + 1)) - 1), high >> lo)
            return Poly(k, out.terms, 0)
        return self.atom(z3.Extract(hi, lo, self.term(p)))



def _complement_first(flipped: Poly, p: Poly) -> bool:
    """Whether `flipped` (~p) rather than p is the one of the two an opaque atom stands for: the one
    whose first coefficient is at most half the width's range (a tie goes by the constant)."""
    half = 1 << (p.width - 1)
    if not p.terms:
        return False
    mine, theirs = p.terms[0][1], flipped.terms[0][1]
    if (mine <= half) != (theirs <= half):
        return theirs <= half
    return flipped.const < p.const
