"""The fixed-point reference: each operation against exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.algebra import INT_ALGEBRA, IntAlgebra
from pybpfdsl.lang.types import FLOAT, ScalarType, i8, i16, i32, i64, u8, u16, u32, u64

i64s = st.integers(-(2**63), 2**63 - 1)


def truncate(x: Fraction) -> int:
    return int(x)  # int() of a Fraction truncates toward zero


def saturate(raw: int) -> int:
    return min(max(raw, fixed.RAW_MIN), fixed.RAW_MAX)


@given(i64s, st.integers(-(2**32), 2**32).filter(lambda n: n != 0))
def test_integer_quotient_is_exact_when_the_divisor_fits_32_bits(a: int, n: int) -> None:
    """Exact (truncated toward zero) inside the float range, saturated outside it: `elapsed / 1e9` never
    wraps."""
    assert fixed.quotient(a, n) == saturate(truncate(Fraction(a * 2**32, n)))


@given(st.integers(0, 2**63 - 1), st.sampled_from([10**3, 10**6, 10**9, 1, 3, 7, 2**32, 2**32 - 1]))
def test_a_clock_over_an_integral_constant_is_exact(ns: int, scale: int) -> None:
    """The rule `x / 1e9` follows: whole quotient and scaled remainder, against exact rationals."""
    q, r = divmod(ns, scale)
    expected = fixed.RAW_MAX if q > fixed.WHOLE_MAX else (q << 32) + (r << 32) // scale
    assert fixed.quotient(ns, scale) == expected == saturate(truncate(Fraction(ns * 2**32, scale)))


@given(st.integers(-(2**64), 2**64))
def test_an_integer_becomes_a_float_saturating(value: int) -> None:
    assert fixed.from_int(value) == saturate(value * 2**32)


def test_integer_quotient_of_a_nanosecond_clock() -> None:
    assert fixed.to_float(fixed.quotient(3_000_000_000, 1_000_000_000)) == 3.0
    assert fixed.to_float(fixed.quotient(-7, 2)) == -3.5


def test_division_by_zero_gives_zero() -> None:
    assert fixed.quotient(5, 0) == 0
    assert fixed.div_int(fixed.ONE, 0) == 0


@given(i64s, i64s)
def test_multiplication_truncates_the_exact_product_toward_zero(a: int, b: int) -> None:
    exact = truncate(Fraction(a * b, 2**32))
    assert fixed.mul(a, b) == fixed.wrap64(exact)


@given(st.floats(min_value=-(2.0**31) + 1, max_value=2.0**31 - 1, allow_nan=False))
def test_constants_round_to_the_nearest_raw_value(x: float) -> None:
    raw = fixed.from_float(x)
    assert abs(Fraction(raw, 2**32) - Fraction(x)) <= Fraction(1, 2**33)


@given(st.floats(min_value=0.0, max_value=1.0, allow_nan=False))
def test_random_threshold_is_the_exact_count_of_32_bit_values_below_p(p: float) -> None:
    threshold = fixed.ceil_from_float(p)
    # r / 2**32 < p  <=>  r < threshold, for every 32-bit r
    for r in (threshold - 1, threshold):
        if 0 <= r < 2**32:
            assert (Fraction(r, 2**32) < Fraction(p)) == (r < threshold)


@given(st.sampled_from([i8, i16, i32, i64, u8, u16, u32, u64]), st.data())
def test_every_integer_type_converts_to_float_saturating(t: ScalarType, data: st.DataObject) -> None:
    """The conversion the code performs (`lang.arith.convert`, over the algebra), by the source's sign."""
    value = data.draw(st.one_of(st.integers(t.min, t.max), st.sampled_from([t.min, t.max, 0, -1 if t.signed else 1])))
    assert arith.convert(value, t, FLOAT) == saturate(value * 2**32)


class _Opaque(IntAlgebra):
    """Python ints, no operand known: `fixed.multiply` takes its general form (halves, magnitudes, sign)."""

    def known(self, a: int, width: int) -> int | None:
        return None


@given(st.integers(-(1 << 63), (1 << 63) - 1), st.integers(-(1 << 31), (1 << 31) - 1), st.booleans())
def test_a_whole_number_factor_gives_the_bits_of_the_general_product(a: int, k: int, left: bool) -> None:
    """`fixed.multiply` by a factor k·2**32 is the raw integer times k (one multiply, what the bytecode
    and the prover see for a constant like 1000.0): the same bits as the general form for every value,
    including the ends of the range and k = -2**31."""
    x, whole = a & (2**64 - 1), (k << 32) & (2**64 - 1)
    operands = (whole, x) if left else (x, whole)
    assert fixed.multiply(INT_ALGEBRA, *operands) == fixed.multiply(_Opaque(), *operands)


def test_a_whole_number_factor_at_the_ends_of_the_range() -> None:
    for a in (0, 1, -1, (1 << 63) - 1, -(1 << 63), 1 << 32, -(1 << 32)):
        for k in (0, 1, -1, 1000, -3, (1 << 31) - 1, -(1 << 31)):
            x, whole = a & (2**64 - 1), (k << 32) & (2**64 - 1)
            assert fixed.multiply(INT_ALGEBRA, x, whole) == fixed.multiply(_Opaque(), x, whole), (a, k)
