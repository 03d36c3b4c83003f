"""Fixed-point numbers: how the DSL's `float` is represented everywhere.

A DSL float is a signed 64-bit integer `raw` that stands for `raw / 2**32` (Q32.32): range
[-2**31, 2**31), resolution 2**-32 (about 2.3e-10). Every execution (pure Python, the IR interpreter, the
bytecode and the kernel) computes with these raw integers, so results agree bit for bit. The functions here
define each operation once, over a bit-vector algebra (`lang.algebra`), for every execution: Python ints
here and in the IR interpreter, Z3 in the prover, LLVM instructions in the backend.

Rounding: constants convert to the nearest representable value (ties away from zero); multiplication,
division and conversion to integers truncate toward zero; addition and subtraction are exact and wrap
like 64-bit integers. An integer that becomes a float (a conversion, or an integer quotient) saturates to
the nearest end of the range instead of wrapping: a clock value past 2**31 never turns negative.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Final, TypeVar

from pybpfdsl.lang.algebra import INT_ALGEBRA, Algebra, IntAlgebra, pattern, signed_value

V = TypeVar("V")
B = TypeVar("B")

FRACTION_BITS: Final = 32
ONE: Final = 1 << FRACTION_BITS
_MASK64: Final = (1 << 64) - 1
_LOW_HALF: Final = (1 << FRACTION_BITS) - 1
RAW_MAX: Final = (1 << 63) - 1  # the largest float, just under 2**31
RAW_MIN: Final = -(1 << 63)  # the smallest float, -2**31
WHOLE_MAX: Final = (1 << 31) - 1  # the largest integer a float holds
WHOLE_MIN: Final = -(1 << 31)


def wrap64(value: int) -> int:
    """Reduce to a signed 64-bit integer."""
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def from_float(value: float) -> int:
    """The raw Q32.32 value nearest to a Python float (ties away from zero); raises if out of range."""
    exact = Fraction(value) * ONE
    raw = int(exact + Fraction(1, 2)) if exact >= 0 else -int(-exact + Fraction(1, 2))
    if not -(1 << 63) <= raw < (1 << 63):
        raise OverflowError(f"{value} is outside the fixed-point range [-2**31, 2**31)")
    return raw


def ceil_from_float(value: float) -> int:
    """The smallest raw value not below `value`: used for exact comparisons against random()."""
    exact = Fraction(value) * ONE
    raw = -((-exact.numerator) // exact.denominator)
    return raw


def floor_from_float(value: float) -> int:
    """The largest raw value not above `value`: used for exact comparisons against random()."""
    exact = Fraction(value) * ONE
    return exact.numerator // exact.denominator


def from_int(value: int) -> int:
    """An integer as a fixed-point value, saturating outside the range (as `from_integer` does)."""
    if value > WHOLE_MAX:
        return RAW_MAX
    return max(value, WHOLE_MIN) << FRACTION_BITS


def to_float(raw: int) -> float:
    """The Python float nearest to a raw value (for display and for writing float state from Python)."""
    return raw / ONE


# --------------------------------------------------------------------------- #
# The operations, once, over an algebra (`lang.algebra`): 64-bit patterns in, a 64-bit pattern out
# --------------------------------------------------------------------------- #


def _with_sign(ops: Algebra[V, B], magnitude: V, negative: B) -> V:
    return ops.ite(negative, ops.neg(magnitude, 64), magnitude)


def _signs_differ(ops: Algebra[V, B], a: V, b: V) -> B:
    return ops.bool_xor(ops.negative(a, 64), ops.negative(b, 64))


def unsigned_quotient(ops: Algebra[V, B], a: V, n: V) -> V:
    """`a / n` on unsigned 64-bit values, 0 for n == 0 (the zero case chosen before dividing: each
    division then has the form the bytecode's division instruction has, which the prover abstracts as
    one function, `verify.equivalence.nonlinear`)."""
    return ops.ite(ops.eq(n, ops.const(0, 64), 64), ops.const(0, 64), ops.udiv(a, n, 64))


def multiply(ops: Algebra[V, B], a: V, b: V) -> V:
    """Q32.32 product: |a|*|b| >> 32 truncated to 64 bits, with the product's sign.

    Written from 32-bit halves, (A·B) >> 32 = ah·bh·2³² + ah·bl + al·bh + (al·bl >> 32) mod 2⁶⁴, which
    is exact (the dropped terms are multiples of 2³²) and needs 64-bit multiplications only: the BPF
    backend cannot form a 128-bit product, and the prover bit-blasts one into a far larger circuit. The
    first two terms are ah·B mod 2⁶⁴ (B = bh·2³² + bl), so three multiplications do: ah·B + al·bh +
    (al·bl >> 32).

    A factor known to be a whole number k (k·2³², low half 0: `1000.0`, `-3.0`) collapses the halves:
    the magnitude is |x|·|k| mod 2⁶⁴ and, with the sign put back, the product is x·k mod 2⁶⁴, the same
    bits for every x. Written so, it is one multiply in the bytecode and a term the prover matches at
    once (`RATE * (elapsed / 1e9)` with a whole RATE ran the proof out of its budget).
    """
    for x, factor in ((a, b), (b, a)):
        k = ops.known(factor, 64)
        if k is not None and k & _LOW_HALF == 0:
            return ops.mul(x, ops.const(signed_value(k, 64) >> FRACTION_BITS, 64), 64)
    ma, mb = ops.abs_(a, 64), ops.abs_(b, 64)
    ah, al = ops.lshr(ma, ops.const(FRACTION_BITS, 64), 64), ops.and_(ma, ops.const(_LOW_HALF, 64), 64)
    bh, bl = ops.lshr(mb, ops.const(FRACTION_BITS, 64), 64), ops.and_(mb, ops.const(_LOW_HALF, 64), 64)
    shift = ops.const(FRACTION_BITS, 64)
    whole = ops.add(ops.mul(ah, mb, 64), ops.mul(al, bh, 64), 64)
    magnitude = ops.add(whole, ops.lshr(ops.mul(al, bl, 64), shift, 64), 64)
    return _with_sign(ops, magnitude, _signs_differ(ops, a, b))


def divide_integers(ops: Algebra[V, B], a: V, n: V) -> V:
    """Two signed 64-bit integers divided, as a float: `a / n` truncated toward zero to Q32.32; 0 for n == 0.

    Whole part plus scaled remainder on the magnitudes, `(q << 32) + ((r << 32) mod 2**64) // |n|`, so a
    large dividend (a nanosecond clock) does not overflow; exact whenever |n| <= 2**32. A whole part
    q >= 2**31 does not fit: the result saturates to the largest (or, negative, the smallest) float. The
    remainder is `|a| - q·|n|`, without a second divider.
    """
    ma, mn = ops.abs_(a, 64), ops.abs_(n, 64)
    q = unsigned_quotient(ops, ma, mn)
    r = ops.sub(ma, ops.mul(q, mn, 64), 64)
    shift = ops.const(FRACTION_BITS, 64)
    raw = ops.add(ops.shl(q, shift, 64), unsigned_quotient(ops, ops.shl(r, shift, 64), mn), 64)
    negative = _signs_differ(ops, a, n)
    # Saturated: RAW_MAX, or with the sign applied, RAW_MAX + 1 (2**63) negated, RAW_MIN.
    extreme = ops.add(ops.const(RAW_MAX, 64), ops.zext(ops.bool_value(negative), 1, 64), 64)
    # q >= 2**31 exactly when |a| >= 2**31·|n|, that is when (|a| >> 31) > |n| - 1 (never for n == 0, where
    # the result must stay 0): asked of the dividend, not of the quotient, so the prover compares the
    # comparisons LLVM folds (for a constant divisor) without reasoning through the division.
    too_big = ops.ugt(ops.lshr(ma, ops.const(31, 64), 64), ops.sub(mn, ops.const(1, 64), 64), 64)
    magnitude = ops.ite(too_big, extreme, raw)
    return ops.zero_if_divisor_zero(n, _with_sign(ops, magnitude, negative), 64)


def divide_by_integer(ops: Algebra[V, B], a: V, n: V) -> V:
    """A float divided by a signed 64-bit integer, truncated toward zero; 0 for n == 0."""
    q = unsigned_quotient(ops, ops.abs_(a, 64), ops.abs_(n, 64))
    return ops.zero_if_divisor_zero(n, _with_sign(ops, q, _signs_differ(ops, a, n)), 64)


def truncate(ops: Algebra[V, B], raw: V) -> V:
    """The integer part, truncated toward zero, as 64 bits: the magnitude shifted, then the sign (`raw >> 32`
    would floor a negative value; shifting |raw| logically works for INT64_MIN too)."""
    whole = ops.lshr(ops.abs_(raw, 64), ops.const(FRACTION_BITS, 64), 64)
    return _with_sign(ops, whole, ops.negative(raw, 64))


def from_integer(ops: Algebra[V, B], wide: V, signed: bool = True, bits: int = 64) -> V:
    """An integer of `bits` bits (signed or unsigned), extended to 64, as a float, saturating outside the
    range [-2**31, 2**31): a value too large becomes the largest float (just under 2**31), one too small
    the smallest (-2**31). Types narrower than that (up to i32) always fit: a plain shift, no test."""
    shifted = ops.shl(wide, ops.const(FRACTION_BITS, 64), 64)
    if bits < 32 or (bits == 32 and signed):
        return shifted
    if bits == 32:  # a u32: too large exactly when the shift sets the sign bit
        return ops.ite(ops.negative(shifted, 64), ops.const(RAW_MAX, 64), shifted)
    if not signed:
        return ops.ite(ops.ugt(wide, ops.const(WHOLE_MAX, 64), 64), ops.const(RAW_MAX, 64), shifted)
    low = ops.ite(ops.slt(wide, ops.const(pattern(WHOLE_MIN, 64), 64), 64), ops.const(pattern(RAW_MIN, 64), 64),
                  shifted)
    return ops.ite(ops.sgt(wide, ops.const(WHOLE_MAX, 64), 64), ops.const(RAW_MAX, 64), low)


# --------------------------------------------------------------------------- #
# The same on Python ints (signed 64-bit raw values)
# --------------------------------------------------------------------------- #


def _python(op: Callable[[IntAlgebra, int, int], int], a: int, b: int) -> int:
    return signed_value(op(INT_ALGEBRA, pattern(a, 64), pattern(b, 64)), 64)


def mul(a: int, b: int) -> int:
    """Product, truncated toward zero, wrapped to 64 bits."""
    return _python(multiply, a, b)


def quotient(a: int, n: int) -> int:
    """`divide_integers` of two signed 64-bit integers."""
    return _python(divide_integers, a, n)


def div_int(a: int, n: int) -> int:
    """A fixed-point value divided by an integer, truncated toward zero; division by zero gives 0."""
    return _python(divide_by_integer, a, n)


def to_int(raw: int) -> int:
    """Truncate toward zero to an integer (the caller wraps it to the target type)."""
    return signed_value(truncate(INT_ALGEBRA, pattern(raw, 64)), 64)
