"""Stage 2 of the frontend, type-check and fold: the DSL's type rules and constant folding over scalars.

Takes scalars (`values.Scalar`: a DSL type, and a compile-time constant where there is one; the
emitter's and pure-Python mode's alike, as `Scalar[object]`) and the operation applied to them; gives
the result's type, and the folded constant where the operands are constant. Untyped constants
(literals, module constants and arithmetic on them) fold exactly, like Go's untyped constants; typed
ones (`u8(3)`, a typed local) fold in their type, wrapping as the code would compute at run time. A
rule that refuses a program raises the `DslError` its `Complaint` builds (the caller binds it to the
node, so the error points at the user's line).

No IR here: the type checker (`typecheck`) asks these rules for the typed AST, and the emitter
(`emit.arithmetic`) asks them again and emits an operation only where they give no constant (its
results must agree with the typed AST). Pure-Python mode has no copies of them: it reads the typed AST
and asks these rules for constants and for a comparison's operand type.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Final, Protocol, TypeVar

from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, common_type, i64, literal_type, promote

SYMBOL: dict[BinOp, str] = {
    BinOp.ADD: "+", BinOp.SUB: "-", BinOp.MUL: "*", BinOp.DIV: "//", BinOp.MOD: "%", BinOp.AND: "&",
    BinOp.OR: "|", BinOp.XOR: "^", BinOp.SHL: "<<", BinOp.SHR: ">>",
}
"""How the user writes each operator, for error messages."""
_V = TypeVar("_V")
_FLOAT_RANGE = "DSL floats are Q32.32 fixed-point numbers; see docs/language.md"


class Complaint(Protocol):
    """The error for the node being checked: `raise complain("what is wrong", "what to write")`."""

    def __call__(self, message: str, hint: str | None = None) -> DslError: ...


def untyped(s: Scalar[object]) -> bool:
    """Untyped constants fold exactly; explicitly typed ones (u8(3), typed locals) fold in their type."""
    return s.const is not None and s.literal


def exact_float(raw: int) -> float | None:
    """The Python float equal to a Q32.32 raw value, or None when a double cannot hold it exactly."""
    value = fixed.to_float(raw)
    try:
        return value if fixed.from_float(value) == raw else None
    except OverflowError:  # the largest float (a saturated result) rounds to 2**31 as a double
        return None


def constant(value: object, complain: Complaint) -> Scalar:
    """The scalar of a Python constant: bools are typed, ints and floats untyped literals."""
    if isinstance(value, bool):
        return Scalar(BOOL, const=int(value))
    if isinstance(value, int):
        try:
            return Scalar(literal_type(value), const=value, literal=True)
        except OverflowError:
            raise complain(f"{value} does not fit in 64 bits") from None
    if isinstance(value, float):
        try:
            fixed.from_float(value)
        except (OverflowError, ValueError):
            raise complain(f"{value} is outside the float range [-2**31, 2**31)", _FLOAT_RANGE) from None
        return Scalar(FLOAT, const=value, literal=True)
    if isinstance(value, bytes):
        raise complain(f"the constant {value!r} is not supported (bytes)",
                       "compare byte by byte (`pkt.payload[0] == 0x01`), or read a Struct of the bytes' fields "
                       "(`pkt.payload.read(Header, 0)`)")
    raise complain(f"the constant {value!r} is not supported", "use integers, floats and bools")


def raw_constant(s: Scalar[object]) -> int:
    """The raw value the code materializes for a constant: a float's Q32.32 integer, an integer wrapped
    to its type (the emitter's `Const` operand, pure-Python mode's value)."""
    assert s.const is not None
    if s.type.is_fixed:
        return fixed.from_float(s.const) if isinstance(s.const, float) else fixed.from_int(int(s.const))
    return s.type.wrap(int(s.const))


LOSSY_ROUNDING = Fraction(1, 100)
"""A float constant whose Q32.32 value is further than this (relative) from the number written is worth a
warning: `1e-9` becomes 4·2⁻³², 7% less."""


def lossy_rounding(value: float) -> Fraction | None:
    """How much (relative to `value`) rounding a float constant to Q32.32 changes it, when that is more
    than `LOSSY_ROUNDING`; None when the rounding is harmless (or the value is 0 or out of range, which
    are not rounding questions)."""
    try:
        raw = fixed.from_float(value)
    except (OverflowError, ValueError):
        return None
    if value == 0:
        return None
    exact = Fraction(value)
    loss = abs(Fraction(raw, fixed.ONE) - exact) / abs(exact)
    return loss if loss > LOSSY_ROUNDING else None


def fixed_raw(v: Scalar[object], complain: Complaint) -> int:
    """The Q32.32 raw value of a float constant."""
    assert v.const is not None
    try:
        return fixed.from_float(float(v.const))
    except (OverflowError, ValueError):
        raise complain(f"{v.const} is outside the float range [-2**31, 2**31)", _FLOAT_RANGE) from None


# ----------------------------------------------------------------- conversions
def check_implicit(v: Scalar[object], t: ScalarType, complain: Complaint) -> None:
    """An implicit conversion (an assignment to a typed variable, a parameter, a map key) refuses to lose
    information silently: a float into an integer, or a constant that does not fit."""
    if v.type.is_fixed and not t.is_fixed:
        raise complain(f"a float cannot be stored in a {t} silently",
                       f"convert explicitly: `{t}(...)` truncates toward zero")
    if v.const is not None and t.is_int and isinstance(v.const, int) and not t.min <= v.const <= t.max:
        raise complain(f"{v.const} does not fit in {t}",
                       f"use a wider type, or write `{t}({v.const})` to wrap it on purpose")


def always_saturates(v: Scalar[object], t: ScalarType) -> bool:
    """A typed integer constant outside [-2**31, 2**31) converted to float: it saturates every time."""
    return (t.is_fixed and v.const is not None and not v.type.is_fixed and not v.literal
            and not fixed.WHOLE_MIN <= int(v.const) <= fixed.WHOLE_MAX)


SATURATION_FIX: Final = ("divide first: an integer divided by an integer or by an integral float constant is "
                         "exact (`x / 1e9`, `x / 1000`); or keep the computation in a wider integer type "
                         "(i64, u64) and convert a result that fits")
"""The hint of a conversion to float that always saturates."""


def check_saturation(v: Scalar[object], t: ScalarType, complain: Complaint) -> None:
    """Refuse a conversion to float that saturates every time it runs (a typed integer constant outside the
    float range, `float(u64(5_000_000_000))`, or a local holding one): the value it gives is never the
    number written, which is almost always a unit mistake (nanoseconds used as seconds). A conversion
    that only may saturate (a value known at run time) saturates, the same in every execution."""
    if always_saturates(v, t):
        assert v.const is not None
        end = "the largest float (just under 2**31)" if int(v.const) > 0 else "-2**31"
        raise complain(f"the {v.type} value {v.const} is outside the float range [-2**31, 2**31): converting "
                       f"it to a float always gives {end}", SATURATION_FIX)


def check_quotient(dividend: int, divisor: int, complain: Complaint) -> None:
    """Refuse an integer quotient of constants whose whole part is outside the float range: it saturates
    every time (`u64(5_000_000_000_000) / 1000`)."""
    if divisor != 0 and not fixed.WHOLE_MIN <= Fraction(dividend, divisor) < fixed.WHOLE_MAX + 1:
        raise complain(f"{dividend} / {divisor} is outside the float range [-2**31, 2**31): the quotient "
                       f"always saturates", SATURATION_FIX)


def saturates_up(v: Scalar[object], t: ScalarType) -> bool:
    """A typed integer constant above 2**31 converted to float: it saturates to the largest float, just
    under 2**31, which no double holds, so the conversion is not folded (the code computes it)."""
    return (t.is_fixed and v.const is not None and not v.type.is_fixed and not v.literal
            and int(v.const) > fixed.WHOLE_MAX)


def convert_constant(v: Scalar[_V], t: ScalarType, complain: Complaint) -> Scalar[_V]:
    """A constant converted to `t` (explicitly, or after `check_implicit`)."""
    assert v.const is not None
    if v.type == t:
        return v
    if t.is_fixed:
        if isinstance(v.const, float):
            return Scalar(FLOAT, const=v.const)
        if v.literal:  # an untyped constant converts exactly, and must fit
            if not -(1 << 31) <= v.const < 1 << 31:
                raise complain(f"{v.const} is outside the float range [-2**31, 2**31)", _FLOAT_RANGE)
            return Scalar(FLOAT, const=float(v.const))
        # A typed constant converts as the code would at run time: outside the range it saturates (the
        # largest float has no double, so that one is left to the code: see `saturates_up`).
        assert not saturates_up(v, t)
        return Scalar(FLOAT, const=fixed.to_float(arith.convert(int(v.const), v.type, FLOAT)))
    if isinstance(v.const, float):
        raw = fixed.from_float(v.const)
        return Scalar(t, const=arith.convert(raw, FLOAT, t))
    return Scalar(t, const=t.wrap(int(v.const)) if not t.is_bool else int(v.const != 0))


# ----------------------------------------------------------------- integer operators
def binary_type(op: BinOp, a: ScalarType, b: ScalarType) -> ScalarType:
    """The type an integer operator computes in: the promoted left operand for shifts, else the common type."""
    return promote(a) if op in (BinOp.SHL, BinOp.SHR) else common_type(a, b)


def fold_untyped_binary(op: BinOp, a: Scalar[object], b: Scalar[object], complain: Complaint) -> Scalar | None:
    """`a op b` on two untyped integer constants, exactly (None unless both are)."""
    if not (a.const is not None and b.const is not None and untyped(a) and untyped(b)):
        return None
    r = arith.fold_untyped(op, int(a.const), int(b.const))
    try:
        return Scalar(literal_type(r), const=r, literal=True)
    except OverflowError:
        raise complain(f"the constant {r} does not fit in 64 bits") from None


def fold_typed_binary(op: BinOp, t: ScalarType, a: Scalar[object], b: Scalar[object]) -> Scalar | None:
    """`a op b` on two constants already converted to `t`, wrapping in `t` (None unless both are constant)."""
    if a.const is None or b.const is None:
        return None
    return Scalar(t, const=arith.binary(op, t, int(a.const), int(b.const)))


# ----------------------------------------------------------------- float operators
def check_float_operator(op: BinOp, complain: Complaint) -> None:
    if op not in arith.FIXED_BINOPS:
        raise complain(f"`{SYMBOL[op]}` is not defined on floats",
                       "use +, -, * and / on floats; convert to an integer type for the others")


def fold_untyped_float(op: BinOp, a: Scalar[object], b: Scalar[object], complain: Complaint) -> Scalar | None:
    """`a op b` on two untyped constants, one a float: in double precision, then checked to fit."""
    if not (a.const is not None and b.const is not None and untyped(a) and untyped(b)):
        return None
    return constant(arith.fold_untyped_float(op, float(a.const), float(b.const)), complain)


def fold_typed_float(op: BinOp, a: Scalar[object], b: Scalar[object], complain: Complaint) -> Scalar | None:
    """`a op b` on two float constants: as the code computes, in Q32.32, wrapping (not in double
    precision); None when either is not constant or a double cannot hold the result exactly."""
    if a.const is None or b.const is None:
        return None
    ra, rb = fixed_raw(a, complain), fixed_raw(b, complain)
    folded = exact_float(arith.binary(op, FLOAT, ra, rb))
    return Scalar(FLOAT, const=folded) if folded is not None else None


# An integral float divisor up to this size divides exactly (`lang.fixed.divide_integers`).
_EXACT_DIVISOR: Final = 1 << 32


def integral_divisor(a: Scalar[object], b: Scalar[object]) -> int | None:
    """The integer `b` stands for when `a / b` divides an integer by an integral float constant (`elapsed /
    1e9`, `x / 1000.0`): the code divides by that integer exactly, as `x / 1_000_000_000` would, rather
    than converting `x` to a float first (which saturates past 2**31) and multiplying by a rounded
    reciprocal. None otherwise (a float dividend, a fractional or run-time divisor, two untyped
    constants, which fold in double precision, or |b| > 2**32)."""
    if a.type.is_fixed or not b.type.is_fixed or b.const is None or (untyped(a) and untyped(b)):
        return None
    divisor = float(b.const)
    if not divisor.is_integer() or divisor == 0 or abs(divisor) > _EXACT_DIVISOR:
        return None
    return int(divisor)


def fold_true_divide(a: Scalar[object], b: Scalar[object], complain: Complaint) -> Scalar | None:
    """`a / b` on constants: untyped ones in double precision (a zero divisor refused), typed ones as the
    code computes (a quotient truncated to Q32.32; x / 0 == 0). None when it does not fold."""
    if a.const is None or b.const is None:
        return None
    if untyped(a) and untyped(b):
        if float(b.const) == 0:
            raise complain("division by zero in a constant expression")
        return constant(float(a.const) / float(b.const), complain)
    whole = integral_divisor(a, b)
    if b.type.is_fixed and whole is None:
        return None
    const_divisor = whole if whole is not None else convert_constant(b, i64, complain).const
    assert isinstance(const_divisor, int)
    if a.type.is_fixed:
        folded = exact_float(fixed.div_int(fixed_raw(a, complain), const_divisor))
    else:
        const_dividend = convert_constant(a, i64, complain).const
        assert isinstance(const_dividend, int)
        check_quotient(const_dividend, const_divisor, complain)
        folded = exact_float(fixed.quotient(const_dividend, const_divisor))
    return Scalar(FLOAT, const=folded) if folded is not None else None


def fold_power(a: Scalar[object], b: Scalar[object], complain: Complaint) -> Scalar:
    """`a ** b`: defined on untyped constants only."""
    if a.const is not None and b.const is not None and untyped(a) and untyped(b):
        if isinstance(a.const, int) and isinstance(b.const, int) and b.const >= 0:
            return constant(a.const ** b.const, complain)
        try:
            return constant(float(a.const) ** float(b.const), complain)
        except (ZeroDivisionError, OverflowError):
            raise complain(f"{a.const} ** {b.const} has no value in the DSL") from None
    raise complain("`**` works only on constants", "multiply explicitly: `x * x`")


# ----------------------------------------------------------------- comparisons
def compare_type(a: ScalarType, b: ScalarType) -> ScalarType:
    """The type two operands are compared in."""
    return FLOAT if a.is_fixed or b.is_fixed else common_type(a, b)


def fold_compare(op: CmpOp, a: Scalar[object], b: Scalar[object], complain: Complaint) -> Scalar | None:
    """`a op b` on constants: untyped ones exactly, typed floats as the code would (converted, wrapping,
    first). None when it does not fold (typed integer constants are compared by the code)."""
    if a.const is None or b.const is None:
        return None
    t = compare_type(a.type, b.type)
    if t.is_fixed and untyped(a) and untyped(b):
        return Scalar(BOOL, const=int(arith.compare_untyped(op, float(a.const), float(b.const))))
    if t.is_fixed:
        check_saturation(a, t, complain)
        check_saturation(b, t, complain)
        if saturates_up(a, t) or saturates_up(b, t):
            return None
        fa, fb = convert_constant(a, t, complain).const, convert_constant(b, t, complain).const
        assert fa is not None and fb is not None
        return Scalar(BOOL, const=int(arith.compare_untyped(op, float(fa), float(fb))))
    if untyped(a) and untyped(b):
        return Scalar(BOOL, const=int(arith.compare_untyped(op, int(a.const), int(b.const))))
    return None


RANDOM_THRESHOLD_OPS = frozenset({CmpOp.LT, CmpOp.LE, CmpOp.GT, CmpOp.GE})
"""The comparisons `random() op p` that compare the raw random bits with an exact threshold."""


def random_threshold(p: float, op: CmpOp = CmpOp.LT) -> int:
    """The raw Q32.32 value `random() op p` compares the 32 random bits r with so that the comparison is
    exact for the real number p: r/2**32 < p ⟺ r < ceil(p·2**32) (and `>=` is its complement), and
    r/2**32 <= p ⟺ r <= floor(p·2**32) (and `>` its complement). Clamped to 64 bits. One rule for all
    four, so `random() < p` and `random() >= p` are never both true (p rounded to nearest once made them
    so for r = ceil(p·2**32) - 1 when p·2**32 rounded up)."""
    raw = fixed.ceil_from_float(p) if op in (CmpOp.LT, CmpOp.GE) else fixed.floor_from_float(p)
    return max(min(raw, (1 << 63) - 1), -(1 << 63))


# ----------------------------------------------------------------- joins and built-ins
def join_type(types: list[ScalarType]) -> ScalarType:
    """The type of a value that is one of several (`a if c else b`, `x and y`): float if any is, bool if
    all are, else the common type."""
    t = types[0]
    for other in types[1:]:
        if t.is_fixed or other.is_fixed:
            t = FLOAT
        elif not (t == other and t.is_bool):
            t = common_type(t, other)
    return t


def fold_min_max(name: str, values: Sequence[Scalar[object]], complain: Complaint) -> Scalar | None:
    """`min(...)`/`max(...)` of integer constants: in their common type where the result fits it, else
    untyped. None when any is not constant or is a float."""
    if not all(v.const is not None for v in values) or any(v.type.is_fixed for v in values):
        return None
    pick = min if name == "min" else max
    result = pick(int(v.const) for v in values)  # type: ignore[arg-type]
    t = values[0].type
    for v in values[1:]:
        t = common_type(t, v.type)
    return Scalar(t, const=result) if t.min <= result <= t.max else constant(result, complain)


def unary_type(t: ScalarType) -> ScalarType:
    """The type unary minus and `abs()` compute in: a float stays a float, an integer is promoted."""
    return t if t.is_fixed else promote(t)


def fold_abs(v: Scalar[object], complain: Complaint) -> Scalar | None:
    """`abs(v)` of a constant: an untyped one exactly, a typed integer in its promoted type, as the code
    computes (the most negative value wraps). None otherwise (typed float constants are computed)."""
    if v.const is not None and v.literal:
        return constant(abs(v.const), complain)
    t = unary_type(v.type)
    if v.const is not None and not t.is_fixed:
        c = convert_constant(v, t, complain).const
        assert isinstance(c, int)
        return Scalar(t, const=t.wrap(abs(c)))
    return None
