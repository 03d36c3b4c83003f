"""The type-check-and-fold stage on its own (`pybpfdsl.frontend.fold`): the DSL's type rules and constant
folding, without a program or the IR. Untyped constants (literals) fold exactly; typed constants fold in
their type, wrapping as the code computes at run time; the rules that refuse a program raise the error
the caller's `Complaint` builds.
"""

from __future__ import annotations

import pytest

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang import fixed
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, i32, i64, u8, u32, u64


def complain(message: str, hint: str | None = None) -> DslError:
    return DslError(message, hint=hint)


def literal(value: int | float) -> Scalar:
    return fold.constant(value, complain)


def typed(t: ScalarType, value: int | float) -> Scalar:
    return Scalar(t, const=value)


@pytest.mark.parametrize(("op", "a", "b", "expected"), [
    (BinOp.ADD, u8, u8, i32),  # narrow integers are promoted, as in C
    (BinOp.ADD, i32, u64, u64),
    (BinOp.SHL, u8, u64, i32),  # a shift computes in its promoted left operand's type
    (BinOp.SHR, u64, u8, u64),
])
def test_the_type_an_integer_operator_computes_in(op: BinOp, a: ScalarType, b: ScalarType,
                                                   expected: ScalarType) -> None:
    assert fold.binary_type(op, a, b) == expected


def test_untyped_constants_fold_exactly_and_typed_ones_wrap() -> None:
    exact = fold.fold_untyped_binary(BinOp.ADD, literal(0xFFFFFFFF), literal(1), complain)
    assert exact is not None and exact.const == 1 << 32 and exact.literal
    wrapped = fold.fold_typed_binary(BinOp.ADD, u32, typed(u32, 0xFFFFFFFF), typed(u32, 1))
    assert wrapped == Scalar(u32, const=0)
    assert fold.fold_untyped_binary(BinOp.ADD, typed(u32, 1), literal(1), complain) is None


def test_an_untyped_constant_beyond_64_bits_is_refused() -> None:
    with pytest.raises(DslError, match="does not fit in 64 bits"):
        fold.fold_untyped_binary(BinOp.MUL, literal(1 << 62), literal(8), complain)


def test_typed_float_constants_fold_in_fixed_point_wrapping() -> None:
    exact = fold.fold_untyped_float(BinOp.ADD, literal(0.5), literal(1), complain)
    assert exact == Scalar(FLOAT, const=1.5, literal=True)
    wrapped = fold.fold_typed_float(BinOp.ADD, typed(FLOAT, 2147483647.5), typed(FLOAT, 1.0), complain)
    assert wrapped == Scalar(FLOAT, const=-2147483647.5)  # Q32.32 wraps past 2**31, as the code does


def test_operators_floats_do_not_have_are_refused() -> None:
    with pytest.raises(DslError, match="`%` is not defined on floats"):
        fold.check_float_operator(BinOp.MOD, complain)


def test_implicit_conversions_refuse_to_lose_information() -> None:
    with pytest.raises(DslError, match="300 does not fit in u8"):
        fold.check_implicit(literal(300), u8, complain)
    with pytest.raises(DslError, match="a float cannot be stored in a u32 silently"):
        fold.check_implicit(literal(0.5), u32, complain)
    fold.check_implicit(literal(255), u8, complain)  # fits: no complaint


def test_constant_conversions_follow_the_code() -> None:
    assert fold.convert_constant(literal(300), u8, complain) == Scalar(u8, const=44)
    assert fold.convert_constant(literal(3), FLOAT, complain) == Scalar(FLOAT, const=3.0)
    assert fold.convert_constant(typed(u32, 7), FLOAT, complain) == Scalar(FLOAT, const=7.0)
    # A typed constant converts as at run time, saturating: below the range to -2**31 exactly; above it to
    # the largest float, which no double holds, so that conversion is left to the code. (The checker
    # refuses both first: `check_saturation` below.)
    assert fold.convert_constant(typed(i64, -(1 << 40)), FLOAT, complain) == Scalar(FLOAT, const=-2147483648.0)
    assert fold.saturates_up(typed(u32, 0xFFFFFFFF), FLOAT)
    assert not fold.saturates_up(typed(u32, 0x7FFFFFFF), FLOAT)
    with pytest.raises(DslError, match="outside the float range"):
        fold.convert_constant(literal(1 << 31), FLOAT, complain)


def test_a_conversion_that_always_saturates_is_refused_with_the_fix() -> None:
    """Issue 16 §1: where the value is known (a typed constant), a conversion to float outside the range
    would saturate every time it runs; one that fits, or a value known only at run time, is left alone."""
    for v in (typed(u32, 0xFFFFFFFF), typed(u64, 5 * 10**9), typed(i64, -(1 << 31) - 1)):
        with pytest.raises(DslError, match="outside the float range") as info:
            fold.check_saturation(v, FLOAT, complain)
        assert info.value.hint is not None and "divide first" in info.value.hint and "x / 1e9" in info.value.hint
    fold.check_saturation(typed(u32, 0x7FFFFFFF), FLOAT, complain)
    fold.check_saturation(typed(i64, -(1 << 31)), FLOAT, complain)
    fold.check_saturation(typed(u64, 5 * 10**9), u64, complain)  # not a conversion to float
    fold.check_saturation(Scalar(u64), FLOAT, complain)  # a run-time value: it may saturate, and does so
    with pytest.raises(DslError, match="always gives the largest float"):
        fold.fold_compare(CmpOp.GT, typed(FLOAT, 0.0), typed(u32, 0xFFFFFFFF), complain)
    with pytest.raises(DslError, match="the quotient always saturates"):
        fold.fold_true_divide(typed(u64, 5 * 10**12), literal(1000), complain)
    with pytest.raises(DslError, match="the quotient always saturates"):
        fold.fold_true_divide(typed(i64, -(1 << 33)), literal(2.0), complain)
    assert fold.fold_true_divide(typed(i64, -(1 << 32)), literal(2), complain) == Scalar(FLOAT, const=-(2.0**31))


def test_comparisons_fold_untyped_constants_and_leave_typed_integers_to_the_code() -> None:
    assert fold.fold_compare(CmpOp.LT, literal(-1), literal(4), complain) == Scalar(BOOL, const=1)
    assert fold.fold_compare(CmpOp.LT, typed(u8, 3), typed(u8, 4), complain) is None
    assert fold.compare_type(u8, FLOAT) == FLOAT


def test_true_division_of_constants() -> None:
    with pytest.raises(DslError, match="division by zero in a constant expression"):
        fold.fold_true_divide(literal(1), literal(0), complain)
    assert fold.fold_true_divide(typed(u32, 7), typed(u32, 0), complain) == Scalar(FLOAT, const=0.0)  # x / 0 == 0
    assert fold.fold_true_divide(typed(u32, 7), typed(u32, 2), complain) == Scalar(FLOAT, const=3.5)


def test_an_integer_over_an_integral_float_constant_divides_by_the_integer() -> None:
    """`elapsed / 1e9` divides by 1_000_000_000 exactly (no reciprocal rounded to Q32.32)."""
    nanoseconds = typed(u64, 5 * 10**9 + 1)  # past 2**32: converting it to a float first would saturate
    expected = fixed.to_float(fixed.quotient(5 * 10**9 + 1, 10**9))
    assert fold.fold_true_divide(nanoseconds, literal(1e9), complain) == Scalar(FLOAT, const=expected)
    assert fold.integral_divisor(typed(u64, 1), literal(1000.0)) == 1000
    assert fold.integral_divisor(typed(u64, 1), literal(-4.0)) == -4
    assert fold.integral_divisor(typed(u64, 1), literal(2.5)) is None  # not integral: the reciprocal
    assert fold.integral_divisor(typed(FLOAT, 1.0), literal(1e9)) is None  # a float dividend
    assert fold.integral_divisor(literal(3), literal(2.0)) is None  # two literals fold in double precision


def test_power_is_for_constants_only() -> None:
    assert fold.fold_power(literal(2), literal(10), complain) == Scalar(i32, const=1024, literal=True)
    with pytest.raises(DslError, match="works only on constants"):
        fold.fold_power(typed(u32, 2), literal(2), complain)


def test_joined_values_and_built_ins() -> None:
    assert fold.join_type([BOOL, BOOL]) == BOOL
    assert fold.join_type([BOOL, u8]) == i32
    assert fold.join_type([u8, FLOAT, i64]) == FLOAT
    assert fold.fold_min_max("max", [typed(u8, 3), literal(7)], complain) == Scalar(i32, const=7)
    assert fold.fold_abs(typed(i32, -(1 << 31)), complain) == Scalar(i32, const=-(1 << 31))  # wraps, as the code
    assert fold.fold_abs(literal(-5), complain) == Scalar(i32, const=5, literal=True)
