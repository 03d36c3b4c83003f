"""Fixed-point numbers: how the DSL's `float` is represented everywhere.

A DSL float is a signed 64-bit integer `raw` that stands for `raw / 2**32` (Q32.32): range
[-2**31, 2**31), resolution 2**-32 (about 2.3e-10). Every execution (pure Python, the IR interpreter, the
bytecode and the kernel) computes with these raw integers, so results agree bit for bit. The functions here
are the reference definition of each operation; the compiler emits integer code that computes the same.

Rounding: constants convert to the nearest representable value (ties away from zero); multiplication,
division and conversion to integers truncate toward zero; addition and subtraction are exact and wrap
like 64-bit integers.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Final

FRACTION_BITS: Final = 32
ONE: Final = 1 << FRACTION_BITS
_MASK64: Final = (1 << 64) - 1


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


def from_int(value: int) -> int:
    """An integer as a fixed-point value (wraps outside the range, like the shift the code performs)."""
    return wrap64(value << FRACTION_BITS)


def to_int(raw: int) -> int:
    """Truncate toward zero to an integer (the caller wraps it to the target type)."""
    return raw >> FRACTION_BITS if raw >= 0 else -((-raw) >> FRACTION_BITS)


def to_float(raw: int) -> float:
    """The Python float nearest to a raw value (for display and for writing float state from Python)."""
    return raw / ONE


def mul(a: int, b: int) -> int:
    """Product, truncated toward zero, wrapped to 64 bits."""
    magnitude = ((abs(a) * abs(b)) >> FRACTION_BITS) & _MASK64
    negative = (a < 0) != (b < 0)
    return wrap64(-magnitude if negative else magnitude)


def mul_int(a: int, n: int) -> int:
    """A fixed-point value times an integer: exact, wrapped to 64 bits."""
    return wrap64(a * n)


def quotient(a: int, n: int) -> int:
    """Two signed 64-bit integers divided, as a float: `a / n` truncated toward zero to Q32.32.

    Computed as whole part plus scaled remainder, `(q << 32) + ((r << 32) mod 2**64) // |n|` on the
    magnitudes, so a large dividend (a nanosecond clock) does not overflow; exact whenever |n| <= 2**32
    and the quotient fits the float range. Division by zero gives 0.
    """
    if n == 0:
        return 0
    magnitude_a, magnitude_n = abs(a), abs(n)
    q, r = divmod(magnitude_a, magnitude_n)
    raw = ((q << FRACTION_BITS) + (((r << FRACTION_BITS) & _MASK64) // magnitude_n)) & _MASK64
    return wrap64(-raw if (a < 0) != (n < 0) else raw)


def div_int(a: int, n: int) -> int:
    """A fixed-point value divided by an integer, truncated toward zero; division by zero gives 0."""
    if n == 0:
        return 0
    q = abs(a) // abs(n)
    return wrap64(-q if (a < 0) != (n < 0) else q)
