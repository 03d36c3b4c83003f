"""The fixed-point reference: each operation against exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from pybpfdsl.lang import fixed

i64s = st.integers(-(2**63), 2**63 - 1)


def truncate(x: Fraction) -> int:
    return int(x)  # int() of a Fraction truncates toward zero


@given(i64s, st.integers(-(2**32), 2**32).filter(lambda n: n != 0))
def test_integer_quotient_is_exact_when_the_divisor_fits_32_bits(a: int, n: int) -> None:
    exact = truncate(Fraction(a * 2**32, n))
    if -(2**63) <= exact < 2**63:
        assert fixed.quotient(a, n) == exact


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
