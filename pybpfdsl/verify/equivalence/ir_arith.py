"""The DSL's arithmetic (`lang.arith`, `lang.fixed`) over Z3 bit-vectors.

A scalar of type `t` is a bit-vector of `t.bits` bits (bool: 1 bit); signedness comes from the type,
as in `lang.arith`, where Python ints carry it. Each function mirrors its reference in `lang` line by
line (truncating division, BPF's rules for a zero divisor, shift counts modulo the width, Q32.32
products truncated toward zero), so the property tests in the test suite can compare them directly.
"""

from __future__ import annotations

import z3

from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.fixed import FRACTION_BITS
from pybpfdsl.lang.types import ScalarType
from pybpfdsl.verify.equivalence.state import Term


def resize(x: Term, bits: int, signed: bool) -> Term:
    """Wrap to a narrower width or extend (by `signed`) to a wider one."""
    have = x.size()
    if have == bits:
        return x
    if have > bits:
        return z3.Extract(bits - 1, 0, x)
    return z3.SignExt(bits - have, x) if signed else z3.ZeroExt(bits - have, x)


def _zero(x: Term) -> Term:
    return x == z3.BitVecVal(0, x.size())


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


def _signed_result(magnitude: Term, negative: Term) -> Term:
    return z3.If(negative, -magnitude, magnitude)


def int_binary(op: BinOp, t: ScalarType, a: Term, b: Term) -> Term:
    """`arith.binary` for integer types."""
    w = t.bits
    match op:
        case BinOp.ADD:
            return a + b
        case BinOp.SUB:
            return a - b
        case BinOp.MUL:
            return a * b
        case BinOp.AND:
            return a & b
        case BinOp.OR:
            return a | b
        case BinOp.XOR:
            return a ^ b
        case BinOp.DIV:
            q = a / b if t.signed else z3.UDiv(a, b)  # bvsdiv truncates toward zero, as _trunc_div
            return z3.If(_zero(b), z3.BitVecVal(0, w), q)
        case BinOp.MOD:
            r = z3.SRem(a, b) if t.signed else z3.URem(a, b)
            return z3.If(_zero(b), a, r)
        case BinOp.SHL:
            return a << (b & (w - 1))
        case BinOp.SHR:
            count = b & (w - 1)
            return a >> count if t.signed else z3.LShR(a, count)
    raise ValueError(f"no integer semantics for {op}")


def fixed_mul(a: Term, b: Term) -> Term:
    """`fixed.mul`: |a|*|b| >> 32 truncated to 64 bits, with the product's sign.

    Written from 32-bit halves, (A·B) >> 32 = ah·bh·2³² + ah·bl + al·bh + (al·bl >> 32) mod 2⁶⁴, which
    is exact (the dropped terms are multiples of 2³²) and keeps the query in 64-bit multiplications
    instead of one 128-bit one, which bit-blasts to a far larger circuit.
    """
    ma, mb = abs_value(a), abs_value(b)
    ah, al = z3.LShR(ma, FRACTION_BITS), ma & 0xFFFFFFFF
    bh, bl = z3.LShR(mb, FRACTION_BITS), mb & 0xFFFFFFFF
    magnitude = ((ah * bh) << FRACTION_BITS) + (ah * bl + al * bh) + z3.LShR(al * bl, FRACTION_BITS)
    return _signed_result(magnitude, z3.Xor(a < 0, b < 0))


def fixed_binary(op: BinOp, a: Term, b: Term) -> Term:
    if op is BinOp.ADD:
        return a + b
    if op is BinOp.SUB:
        return a - b
    if op is BinOp.MUL:
        return fixed_mul(a, b)
    raise ValueError(f"{op.value} is not defined on float")


def _bpf_udiv(x: Term, d: Term) -> Term:
    """Unsigned division with BPF's rule (0 for d == 0). Inside `quotient` and `div_int` the zero
    case is overridden anyway; written this way, each division has the form the bytecode's division
    instruction has, which the prover abstracts as one function (`equivalence.nonlinear`)."""
    return z3.If(_zero(d), z3.BitVecVal(0, x.size()), z3.UDiv(x, d))


def quotient(a: Term, n: Term) -> Term:
    """`fixed.quotient`: whole part plus scaled remainder, on the magnitudes, 0 for n == 0."""
    ma, mn = abs_value(a), abs_value(n)
    q = _bpf_udiv(ma, mn)
    r = ma - q * mn  # the remainder, without a second divider circuit
    raw = (q << FRACTION_BITS) + _bpf_udiv(r << FRACTION_BITS, mn)
    return _unless_zero(n, _signed_result(raw, z3.Xor(a < 0, n < 0)))


def div_int(a: Term, n: Term) -> Term:
    """`fixed.div_int`: truncating, 0 for n == 0."""
    q = _bpf_udiv(abs_value(a), abs_value(n))
    return _unless_zero(n, _signed_result(q, z3.Xor(a < 0, n < 0)))


def _unless_zero(n: Term, value: Term) -> Term:
    """`value`, or 0 where the divisor `n` is 0: decided here for a constant divisor, so that the
    result is the signed value itself, whose magnitude `abs_value` sees through."""
    if z3.is_bv_value(n):
        return z3.BitVecVal(0, 64) if n.as_long() == 0 else value
    return z3.If(_zero(n), z3.BitVecVal(0, 64), value)


def to_int(raw: Term) -> Term:
    """`fixed.to_int` as a 64-bit value: truncation toward zero."""
    return z3.If(raw < 0, -z3.LShR(-raw, FRACTION_BITS), z3.LShR(raw, FRACTION_BITS))


def convert(x: Term, source: ScalarType, target: ScalarType) -> Term:
    """`arith.convert` (assignment, argument and `T(x)` conversions)."""
    if source == target:
        return x
    if target.is_bool:
        return z3.If(_zero(x), z3.BitVecVal(0, 1), z3.BitVecVal(1, 1))
    if source.is_fixed:
        return resize(to_int(x), target.bits, signed=True)
    if target.is_fixed:
        return resize(x, 64, source.signed) << FRACTION_BITS
    return resize(x, target.bits, source.signed)


def compare(op: CmpOp, signed: bool, a: Term, b: Term) -> Term:
    """`arith.compare` as a Z3 bool."""
    match op:
        case CmpOp.EQ:
            return a == b
        case CmpOp.NE:
            return a != b
        case CmpOp.LT:
            return a < b if signed else z3.ULT(a, b)
        case CmpOp.LE:
            return a <= b if signed else z3.ULE(a, b)
        case CmpOp.GT:
            return a > b if signed else z3.UGT(a, b)
        case CmpOp.GE:
            return a >= b if signed else z3.UGE(a, b)
    raise ValueError(f"unknown comparison {op}")


def bool_bv(cond: Term) -> Term:
    """A Z3 bool as the IR's 1-bit bool."""
    return z3.If(cond, z3.BitVecVal(1, 1), z3.BitVecVal(0, 1))


def is_true(bit: Term) -> Term:
    return bit == z3.BitVecVal(1, 1)
