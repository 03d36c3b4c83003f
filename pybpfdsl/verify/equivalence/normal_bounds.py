"""Bounds in the normal form (`normalize`): the largest natural value of a polynomial, whether it is
exact (never wraps at its width), its integer range when coefficients above half the width are read as
negative, and the bits it may have. Every width change and comparison rule asks these."""

from __future__ import annotations

from pybpfdsl.verify.equivalence.normal_atoms import NormalizerBase
from pybpfdsl.verify.equivalence.normal_poly import Poly, make_poly, trailing_zeros


class BoundRules(NormalizerBase):
    """What a polynomial's value may be, from its atoms' widths and bounds."""

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
        return make_poly(width, {m: c - full if c > half else c for m, c in p.terms}, p.const)

    def maybe_bits(self, p: Poly) -> int:
        """A mask of the bits that may be one."""
        full = (1 << p.width) - 1
        masks: list[int] = []
        low = p.width
        for m, c in p.terms:
            ub = c
            for a in m:
                ub *= self._atom_max(a)
            t = trailing_zeros(c)
            low = min(low, t)
            masks.append(((1 << ub.bit_length()) - 1) & ~((1 << t) - 1))
        if p.const:
            masks.append(p.const)
            low = min(low, trailing_zeros(p.const))
        union = 0
        disjoint = True
        for mk in masks:
            if union & mk:
                disjoint = False
            union |= mk
        if disjoint and union <= full:
            return union
        top = self.upper(p).bit_length() if self.exact(p) else \
            self.interval(p)[1].bit_length() if self._signed_exact(p) else p.width
        return ((1 << top) - 1) & ~((1 << low) - 1) & full

