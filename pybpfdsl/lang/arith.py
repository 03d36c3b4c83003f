"""Reference semantics of the DSL's arithmetic, shared by every Python-side execution.

Operands are already converted to the operation's type (see `types.common_type`); results are wrapped
to it. Integer division truncates toward zero (C, not Python's floor), `x // 0 == 0` and `x % 0 == x`
(BPF's rule), shift counts are taken modulo the operand width (what the BPF instructions do), and the
float (fixed-point) operations are those of `fixed`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from pybpfdsl.lang import fixed
from pybpfdsl.lang.types import BOOL, FLOAT, Kind, ScalarType


class BinOp(enum.Enum):
    """Binary operations; signedness comes from the operand type."""

    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MOD = "mod"
    AND = "and"
    OR = "or"
    XOR = "xor"
    SHL = "shl"
    SHR = "shr"


class CmpOp(enum.Enum):
    """Comparisons; signedness comes from the operand type."""

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"


def _trunc_div(a: int, b: int) -> int:
    if b == 0:
        return 0
    q = abs(a) // abs(b)
    return -q if (a < 0) != (b < 0) else q


def _trunc_mod(a: int, b: int) -> int:
    if b == 0:
        return a
    return a - _trunc_div(a, b) * b


def _shift_count(t: ScalarType, n: int) -> int:
    return n & (t.bits - 1)


def _shr(t: ScalarType, a: int, n: int) -> int:
    # Operands are held as signed or unsigned Python ints already, so >> is arithmetic or logical to match.
    return a >> _shift_count(t, n)


_INT_OPS: dict[BinOp, Callable[[ScalarType, int, int], int]] = {
    BinOp.ADD: lambda t, a, b: a + b,
    BinOp.SUB: lambda t, a, b: a - b,
    BinOp.MUL: lambda t, a, b: a * b,
    BinOp.DIV: lambda t, a, b: _trunc_div(a, b),
    BinOp.MOD: lambda t, a, b: _trunc_mod(a, b),
    BinOp.AND: lambda t, a, b: a & b,
    BinOp.OR: lambda t, a, b: a | b,
    BinOp.XOR: lambda t, a, b: a ^ b,
    BinOp.SHL: lambda t, a, b: a << _shift_count(t, b),
    BinOp.SHR: _shr,
}

_FIXED_OPS: dict[BinOp, Callable[[int, int], int]] = {
    BinOp.ADD: lambda a, b: a + b,
    BinOp.SUB: lambda a, b: a - b,
    BinOp.MUL: fixed.mul,
}

_COMPARISONS: dict[CmpOp, Callable[[int, int], bool]] = {
    CmpOp.EQ: lambda a, b: a == b,
    CmpOp.NE: lambda a, b: a != b,
    CmpOp.LT: lambda a, b: a < b,
    CmpOp.LE: lambda a, b: a <= b,
    CmpOp.GT: lambda a, b: a > b,
    CmpOp.GE: lambda a, b: a >= b,
}

FIXED_BINOPS = frozenset(_FIXED_OPS)


def binary(op: BinOp, t: ScalarType, a: int, b: int) -> int:
    """`a op b` in type `t` (for float: raw fixed-point operands and result)."""
    if t.kind is Kind.FIXED:
        if op not in _FIXED_OPS:
            raise ValueError(f"{op.value} is not defined on float")
        return fixed.wrap64(_FIXED_OPS[op](a, b))
    if t.kind is Kind.BOOL:
        raise ValueError("arithmetic on bool happens after promotion to i32")
    return t.wrap(_INT_OPS[op](t, a, b))


# Wide enough that folding untyped constants never wraps (only the division rules apply).
_UNBOUNDED = ScalarType("untyped", Kind.INT, 256, True)


def fold_untyped(op: BinOp, a: int, b: int) -> int:
    """Arithmetic on untyped constants (literals, module constants): exact, like Go's untyped constants,
    with the DSL's division rules; shift counts outside 0..63 give 0 (or -1 for a negative `>>`)."""
    match op:
        case BinOp.DIV | BinOp.MOD:
            return binary(op, _UNBOUNDED, a, b)
        case BinOp.SHL:
            return a << b if 0 <= b < 64 else 0
        case BinOp.SHR:
            return a >> b if 0 <= b < 64 else (0 if a >= 0 else -1)
    return {BinOp.ADD: a + b, BinOp.SUB: a - b, BinOp.MUL: a * b, BinOp.AND: a & b, BinOp.OR: a | b,
            BinOp.XOR: a ^ b}[op]


def compare(op: CmpOp, a: int, b: int) -> bool:
    """`a op b` on values already converted to a common type (their Python ints carry the signedness)."""
    return _COMPARISONS[op](a, b)


def negate(t: ScalarType, a: int) -> int:
    return fixed.wrap64(-a) if t.kind is Kind.FIXED else t.wrap(-a)


def invert(t: ScalarType, a: int) -> int:
    return t.wrap(~a)


def convert(value: int, source: ScalarType, target: ScalarType) -> int:
    """Convert a value of type `source` to `target`, as an assignment, argument or `T(x)` call does."""
    if source == target:
        return value
    if target is BOOL:
        return 1 if value != 0 else 0
    if source is FLOAT:
        return target.wrap(fixed.to_int(value))
    if target is FLOAT:
        return fixed.from_int(value)
    return target.wrap(value)
