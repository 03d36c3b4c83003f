"""Polynomials modulo 2^w over atoms: the value of a bit-vector term in normal form (`normalize`).

An atom is a term the normal form does not see through, named by its Z3 id; a monomial is a product of
atoms; a polynomial is a sum of monomials with coefficients, plus a constant, all modulo 2^width."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Monomial", "Poly", "constant_poly", "make_poly", "sum_poly", "trailing_zeros"]

Monomial = tuple[int, ...]
"""A product of atoms: their ids, sorted (an atom appears once per power)."""


@dataclass(frozen=True)
class Poly:
    """Σ coefficient · monomial + const, modulo 2^width (coefficients kept in [1, 2^width))."""

    width: int
    terms: tuple[tuple[Monomial, int], ...]
    const: int

    @property
    def is_const(self) -> bool:
        return not self.terms


def make_poly(width: int, terms: dict[Monomial, int], const: int) -> Poly:
    mask = (1 << width) - 1
    kept = tuple(sorted((m, c & mask) for m, c in terms.items() if c & mask))
    return Poly(width, kept, const & mask)


def constant_poly(width: int, value: int) -> Poly:
    return Poly(width, (), value & ((1 << width) - 1))


def sum_poly(width: int, polys: Iterable[tuple[int, Poly]]) -> Poly:
    """Σ factor · poly, at `width` (each poly's natural value is taken as it stands)."""
    terms: dict[Monomial, int] = {}
    const = 0
    for factor, p in polys:
        for m, c in p.terms:
            terms[m] = terms.get(m, 0) + factor * c
        const += factor * p.const
    return make_poly(width, terms, const)


def trailing_zeros(value: int) -> int:
    return (value & -value).bit_length() - 1

