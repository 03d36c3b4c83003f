"""LLVM-level expansions of the arithmetic BPF cannot do directly, matching `lang.arith` / `lang.fixed`.

* Division and remainder with the DSL's rules (`x / 0 == 0`, `x % 0 == x`, truncation toward zero).
  LLVM's `udiv`/`urem` by zero is undefined behaviour, so the divisor is replaced by 1 first and the
  result patched afterwards. Signed division is done on magnitudes with unsigned instructions, because
  BPF CPUs before v4 have no signed division (LLVM fails with "unsupported signed division").
* Q32.32 multiplication: `sign * ((|a| * |b|) >> 32)` wrapped to 64 bits. The 128-bit product is never
  formed (the BPF backend would turn an i128 multiply into a libcall it cannot link); instead the
  magnitudes are split into 32-bit halves and the shifted product is assembled from four 64-bit products.
* Q32.32 ↔ integer conversions (truncation toward zero, which an arithmetic shift does not give for
  negative numbers).

Every multiplication of two run-time values and every division is emitted as exactly one BPF
instruction whose operands and result are hidden from LLVM's optimizer (`barriers.pinned`). Without that, LLVM
uses what it knows about the operands (ranges, known bits) to factor products (`a*c + b*c` becomes
`(a+b)*c`), narrow them to 32 bits or replace a quotient by a comparison; the bytecode is then correct
but no longer has the IR's shape, and the Z3 equivalence proof must redo LLVM's reasoning with
bit-blasted 64-bit multipliers and dividers, which it cannot do in seconds. With the barrier the proof
treats these operations as uninterpreted functions and only has to match their operands
(`verify/equivalence/nonlinear.py`). The cost is the few instructions LLVM would have saved.

Every function takes the llvmlite builder positioned where the code goes and returns the result value.
"""

from __future__ import annotations

from llvmlite import ir

from pybpfdsl.backend.barriers import pinned

__all__ = [
    "opaque_mul",
    "fixed_div_int",
    "fixed_mul",
    "fixed_to_int64",
    "int64_to_fixed",
    "signed_div",
    "signed_rem",
    "unsigned_div",
    "unsigned_rem",
]

_I64 = ir.IntType(64)
_FRACTION_BITS = 32


def _const(t: ir.IntType, value: int) -> ir.Constant:
    return ir.Constant(t, value)


def opaque_mul(b: ir.IRBuilder, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`lhs * rhs` as one multiply instruction on exactly these operands (a constant operand stays
    visible: strength reduction of a constant product is linear and cheap to prove)."""
    if isinstance(lhs, ir.Constant) or isinstance(rhs, ir.Constant):
        return b.mul(lhs, rhs)
    return pinned(b, b.mul(pinned(b, lhs), pinned(b, rhs)))  # operands too: no range facts


def _zero_guard(b: ir.IRBuilder, divisor: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(divisor == 0, a divisor that is never 0) so the division itself is always defined."""
    t = divisor.type
    is_zero = b.icmp_unsigned("==", divisor, _const(t, 0), name="divisor_is_zero")
    safe = b.select(is_zero, _const(t, 1), divisor, name="safe_divisor")
    return is_zero, safe


def unsigned_div(b: ir.IRBuilder, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`lhs / rhs` unsigned; division by zero gives 0."""
    is_zero, safe = _zero_guard(b, rhs)
    quotient = pinned(b, b.udiv(pinned(b, lhs), pinned(b, safe)))
    return b.select(is_zero, _const(lhs.type, 0), quotient)


def unsigned_rem(b: ir.IRBuilder, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`lhs % rhs` unsigned; remainder by zero gives `lhs`."""
    is_zero, safe = _zero_guard(b, rhs)
    remainder = pinned(b, b.urem(pinned(b, lhs), pinned(b, safe)))
    return b.select(is_zero, lhs, remainder)


def _sign_and_magnitude(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value]:
    """(x < 0, |x| as an unsigned number); |INT_MIN| is 2**(n-1), which fits unsigned."""
    zero = _const(x.type, 0)
    negative = b.icmp_signed("<", x, zero)
    magnitude = b.select(negative, b.sub(zero, x), x)
    return negative, magnitude


def _apply_sign(b: ir.IRBuilder, negative: ir.Value, magnitude: ir.Value) -> ir.Value:
    return b.select(negative, b.sub(_const(magnitude.type, 0), magnitude), magnitude)


def signed_div(b: ir.IRBuilder, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`lhs / rhs` signed, truncated toward zero; `/0` gives 0 and `INT_MIN / -1` wraps to INT_MIN."""
    lhs_negative, lhs_magnitude = _sign_and_magnitude(b, lhs)
    rhs_negative, rhs_magnitude = _sign_and_magnitude(b, rhs)
    quotient = unsigned_div(b, lhs_magnitude, rhs_magnitude)
    return _apply_sign(b, b.xor(lhs_negative, rhs_negative), quotient)


def signed_rem(b: ir.IRBuilder, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`lhs % rhs` signed: the remainder takes the dividend's sign; `%0` gives `lhs`."""
    lhs_negative, lhs_magnitude = _sign_and_magnitude(b, lhs)
    _, rhs_magnitude = _sign_and_magnitude(b, rhs)
    # By zero, unsigned_rem returns |lhs|, and restoring the sign gives lhs back (INT_MIN included).
    remainder = unsigned_rem(b, lhs_magnitude, rhs_magnitude)
    return _apply_sign(b, lhs_negative, remainder)


def _sign_and_halves(b: ir.IRBuilder, x: ir.Value) -> tuple[ir.Value, ir.Value, ir.Value]:
    """(x < 0, high and low 32 bits of |x|). A constant is split here, so its partial products are
    products by constants, which LLVM may strength-reduce (only run-time products are pinned)."""
    if isinstance(x, ir.Constant) and isinstance(x.constant, int):
        value = x.constant - (1 << 64) if x.constant >= 1 << 63 else x.constant
        magnitude = abs(value) & ((1 << 64) - 1)
        return (_const(ir.IntType(1), int(value < 0)), _const(_I64, magnitude >> _FRACTION_BITS),
                _const(_I64, magnitude & 0xFFFF_FFFF))
    negative, magnitude = _sign_and_magnitude(b, x)
    return (negative, b.lshr(magnitude, _const(_I64, _FRACTION_BITS)),
            b.and_(magnitude, _const(_I64, 0xFFFF_FFFF)))


def fixed_mul(b: ir.IRBuilder, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """Q32.32 product, bit for bit `lang.fixed.mul`, with 64-bit operations only.

    With A = ah·2³² + al and B = bh·2³² + bl (32-bit halves of the magnitudes),
    (A·B) >> 32 = ah·bh·2³² + ah·bl + al·bh + ((al·bl) >> 32) exactly, because the other terms are
    multiples of 2³²; each partial product fits 64 bits and the sum is only needed modulo 2⁶⁴.
    """
    lhs_negative, a_high, a_low = _sign_and_halves(b, lhs)
    rhs_negative, c_high, c_low = _sign_and_halves(b, rhs)
    shift = _const(_I64, _FRACTION_BITS)
    high_high = b.shl(opaque_mul(b, a_high, c_high), shift)
    cross = b.add(opaque_mul(b, a_high, c_low), opaque_mul(b, a_low, c_high))
    low_low = b.lshr(opaque_mul(b, a_low, c_low), shift)
    magnitude = b.add(b.add(high_high, cross), low_low, name="fixed_mul_magnitude")
    return _apply_sign(b, b.xor(lhs_negative, rhs_negative), magnitude)


def fixed_div_int(b: ir.IRBuilder, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`lang.fixed.div_int`: a raw Q32.32 value over an i64, truncated toward zero; `/0` gives 0.

    This is exactly truncating signed 64-bit division of the raw value.
    """
    return signed_div(b, lhs, rhs)


def int_quotient(b: ir.IRBuilder, lhs: ir.Value, rhs: ir.Value) -> ir.Value:
    """`lang.fixed.quotient`: i64 / i64 as Q32.32, whole part plus scaled remainder (no 128-bit
    intermediate); `/0` gives 0 through the zero-guarded unsigned division."""
    a_negative, a_magnitude = _sign_and_magnitude(b, lhs)
    n_negative, n_magnitude = _sign_and_magnitude(b, rhs)
    whole = unsigned_div(b, a_magnitude, n_magnitude)
    remainder = b.sub(a_magnitude, opaque_mul(b, whole, n_magnitude))
    shift = _const(_I64, _FRACTION_BITS)
    fraction = unsigned_div(b, b.shl(remainder, shift), n_magnitude)
    magnitude = b.add(b.shl(whole, shift), fraction)
    return _apply_sign(b, b.xor(a_negative, n_negative), magnitude)


def fixed_to_int64(b: ir.IRBuilder, raw: ir.Value) -> ir.Value:
    """`lang.fixed.to_int`: the integer part, truncated toward zero, as i64.

    `raw >> 32` would floor negative values; shifting the magnitude (logically, so |INT64_MIN| works)
    and restoring the sign truncates instead.
    """
    negative, magnitude = _sign_and_magnitude(b, raw)
    integer = b.lshr(magnitude, _const(_I64, _FRACTION_BITS))
    return _apply_sign(b, negative, integer)


def int64_to_fixed(b: ir.IRBuilder, value: ir.Value) -> ir.Value:
    """`lang.fixed.from_int` of a value already extended to i64 (wraps like the reference)."""
    return b.shl(value, _const(_I64, _FRACTION_BITS))
