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

The rules live in one layer each, a class over the one below: `normal_poly` (the polynomials),
`normal_atoms` (the walk and the atoms), `normal_bounds`, `normal_widths`, `normal_bits` (bit-vector
operators), `normal_booleans` (comparisons and boolean structure); `Normalizer` is the last of them.
"""

from __future__ import annotations

from pybpfdsl.verify.equivalence.normal_booleans import BooleanRules
from pybpfdsl.verify.equivalence.normal_poly import Poly
from pybpfdsl.verify.equivalence.symbolic_state import Term

__all__ = ["Normalizer", "Poly", "normalize"]


class Normalizer(BooleanRules):
    """Normal forms of terms, memoized over the DAG; one instance must serve both sides of a query, so
    that atoms (and the order of a sum, which follows atom ids) are shared. `normalize(t)` is the
    canonical term equal to `t`; `normalize_under(t, condition)` one equal to it where `condition` holds."""


def normalize(t: Term, normalizer: Normalizer | None = None) -> Term:
    """`t` in canonical form (a fresh normalizer unless one is given)."""
    return (normalizer or Normalizer()).normalize(t)
