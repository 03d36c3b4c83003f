"""The Z3 instance of the DSL's arithmetic algebra (`lang.algebra`), for the prover's IR encoding.

One class serves both definitions written over bit vectors: `bpf.semantics` (the instruction set, for the
bytecode encoding) and `lang.arith` / `lang.fixed` (the DSL, for the IR encoding). A scalar of type `t` is
a bit-vector of `t.bits` bits (bool: 1 bit). Beyond `bpf.semantics.Z3Ops` it has the comparisons the DSL
names, and two choices of term shape that the prover relies on: `abs_` sees through a sign already
applied, and a quotient's zero case for a zero divisor is written out (see their docstrings).
"""

from __future__ import annotations

import z3

from pybpfdsl.bpf.semantics import Z3Ops
from pybpfdsl.verify.equivalence.symbolic_state import Term


def abs_value(x: Term) -> Term:
    """|x| of a signed 64-bit value as an unsigned 64-bit value (|INT_MIN| = 2**63 fits).

    Of a value with a sign applied, `If(c, -m, m)`, it is |m| whatever c (|-m| = |m| in two's
    complement, INT_MIN included). A product of a quotient takes the quotient's magnitude so, and LLVM
    drops the sign the same way; left as |If(c, -m, m)|, matching the two forms took seconds per half."""
    if z3.is_app_of(x, z3.Z3_OP_ITE):
        _, then, other = x.children()
        if then.eq(-other) or other.eq(-then):
            return abs_value(other if then.eq(-other) else then)
    return z3.If(x < 0, -x, x)


def sign_of(shifted: Term) -> Term | None:
    """x, when `shifted` is `x >>s (width - 1)` (0 or all ones by x's sign)."""
    if not z3.is_app(shifted) or shifted.decl().kind() != z3.Z3_OP_BASHR:
        return None
    x, amount = shifted.children()
    if z3.is_bv_value(amount) and amount.as_long() == x.size() - 1:
        return x
    return None


def magnitude_idiom(e: Term) -> Term | None:
    """x, when `e` is LLVM's branch-free |x|, `(x ^ (x >>s (w - 1))) - (x >>s (w - 1))` (either order of
    the xor): the same value as `abs_value(x)` for every x, INT_MIN included."""
    if not z3.is_app_of(e, z3.Z3_OP_BSUB) or e.num_args() != 2:
        return None
    mixed, sign = e.children()
    x = sign_of(sign)
    if x is None or not z3.is_app_of(mixed, z3.Z3_OP_BXOR) or mixed.num_args() != 2:
        return None
    a, b = mixed.children()
    return x if (a.eq(x) and b.eq(sign)) or (a.eq(sign) and b.eq(x)) else None


class Z3Algebra(Z3Ops):
    """Z3 bit-vectors of the width passed alongside; truth values are `z3.BoolRef`."""

    def __init__(self) -> None:
        super().__init__()
        self._z3 = z3

    def known(self, a: Term, width: int) -> int | None:
        return a.as_long() if z3.is_bv_value(a) else None

    def ne(self, a: Term, b: Term, width: int) -> Term:
        return a != b

    def ugt(self, a: Term, b: Term, width: int) -> Term:
        return z3.UGT(a, b)

    def uge(self, a: Term, b: Term, width: int) -> Term:
        return z3.UGE(a, b)

    def sgt(self, a: Term, b: Term, width: int) -> Term:
        return a > b

    def sge(self, a: Term, b: Term, width: int) -> Term:
        return a >= b

    def abs_(self, a: Term, width: int) -> Term:
        return abs_value(a)

    def negative(self, a: Term, width: int) -> Term:
        return a < 0  # with a Python int: `a < BitVecVal(0)` would build the reflected `0 > a`

    def bool_xor(self, a: Term, b: Term) -> Term:
        return z3.Xor(a, b)

    def bool_value(self, cond: Term) -> Term:
        return bool_bv(cond)

    def zero_if_divisor_zero(self, divisor: Term, value: Term, width: int) -> Term:
        """`value`, or 0 where `divisor` is 0: decided here for a constant divisor, so that the result is
        the signed value itself, whose magnitude `abs_value` sees through."""
        if z3.is_bv_value(divisor):
            return z3.BitVecVal(0, width) if divisor.as_long() == 0 else value
        return z3.If(divisor == z3.BitVecVal(0, divisor.size()), z3.BitVecVal(0, width), value)


Z3_ALGEBRA = Z3Algebra()
"""The shared instance (it has no state)."""


def resize(x: Term, bits: int, signed: bool) -> Term:
    """Wrap to a narrower width or extend (by `signed`) to a wider one."""
    have = x.size()
    if have == bits:
        return x
    if have > bits:
        return z3.Extract(bits - 1, 0, x)
    return z3.SignExt(bits - have, x) if signed else z3.ZeroExt(bits - have, x)


def bool_bv(cond: Term) -> Term:
    """A Z3 bool as the IR's 1-bit bool."""
    return z3.If(cond, z3.BitVecVal(1, 1), z3.BitVecVal(0, 1))


def is_true(bit: Term) -> Term:
    return bit == z3.BitVecVal(1, 1)
