"""The DSL's arithmetic, written once over a bit-vector algebra (`lang.algebra`) for every execution.

Pure Python and the IR interpreter run it on Python ints (`INT_ALGEBRA`, through `binary`, `compare` and
`convert` below), the prover's IR encoding on Z3 bit-vectors, the backend on LLVM instructions: the four
executions agree because there is one definition.

Operands are already converted to the operation's type (see `types.common_type`); results wrap to it.
Integer division truncates toward zero (C, not Python's floor), `x // 0 == 0` and `x % 0 == x` (BPF's
rule), shift counts are taken modulo the operand width (what the BPF instructions do), and the float
(fixed-point) operations are those of `fixed`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, TypeVar

from pybpfdsl.lang import fixed
from pybpfdsl.lang.algebra import INT_ALGEBRA, Algebra, pattern
from pybpfdsl.lang.types import Kind, ScalarType

V = TypeVar("V")
B = TypeVar("B")


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


# --------------------------------------------------------------------------- #
# The definition, over an algebra: operands and results are `t.bits`-bit patterns
# --------------------------------------------------------------------------- #

_Binary = Callable[[Algebra[Any, Any], ScalarType, Any, Any], Any]


def _div(ops: Algebra[V, B], t: ScalarType, a: V, b: V) -> V:
    w = t.bits
    q = ops.sdiv(a, b, w) if t.signed else ops.udiv(a, b, w)
    return ops.ite(ops.eq(b, ops.const(0, w), w), ops.const(0, w), q)


def _mod(ops: Algebra[V, B], t: ScalarType, a: V, b: V) -> V:
    w = t.bits
    r = ops.srem(a, b, w) if t.signed else ops.urem(a, b, w)
    return ops.ite(ops.eq(b, ops.const(0, w), w), a, r)


def _shift_count(ops: Algebra[V, B], t: ScalarType, n: V) -> V:
    return ops.and_(n, ops.const(t.bits - 1, t.bits), t.bits)


def _shr(ops: Algebra[V, B], t: ScalarType, a: V, n: V) -> V:
    count = _shift_count(ops, t, n)
    return ops.ashr(a, count, t.bits) if t.signed else ops.lshr(a, count, t.bits)


_INT_OPS: dict[BinOp, _Binary] = {
    BinOp.ADD: lambda o, t, a, b: o.add(a, b, t.bits),
    BinOp.SUB: lambda o, t, a, b: o.sub(a, b, t.bits),
    BinOp.MUL: lambda o, t, a, b: o.mul(a, b, t.bits),
    BinOp.DIV: _div,
    BinOp.MOD: _mod,
    BinOp.AND: lambda o, t, a, b: o.and_(a, b, t.bits),
    BinOp.OR: lambda o, t, a, b: o.or_(a, b, t.bits),
    BinOp.XOR: lambda o, t, a, b: o.xor(a, b, t.bits),
    BinOp.SHL: lambda o, t, a, b: o.shl(a, _shift_count(o, t, b), t.bits),
    BinOp.SHR: _shr,
}

_BOOL_OPS: dict[BinOp, _Binary] = {op: _INT_OPS[op] for op in (BinOp.AND, BinOp.OR, BinOp.XOR)}
"""bool is 1 bit: only the bitwise operations are defined on it (arithmetic promotes it to i32 first)."""

_FIXED_OPS: dict[BinOp, _Binary] = {
    BinOp.ADD: lambda o, t, a, b: o.add(a, b, 64),  # exact, wraps like i64
    BinOp.SUB: lambda o, t, a, b: o.sub(a, b, 64),
    BinOp.MUL: lambda o, t, a, b: fixed.multiply(o, a, b),
}

FIXED_BINOPS = frozenset(_FIXED_OPS)

_TABLES: dict[Kind, dict[BinOp, _Binary]] = {Kind.INT: _INT_OPS, Kind.BOOL: _BOOL_OPS, Kind.FIXED: _FIXED_OPS}


def binary_in(ops: Algebra[V, B], op: BinOp, t: ScalarType, a: V, b: V) -> V:
    """`a op b` in type `t` (for float: raw fixed-point operands and result)."""
    fn = _TABLES[t.kind].get(op)
    if fn is None:
        raise ValueError(f"{op.value} is not defined on {t}")
    result: V = fn(ops, t, a, b)
    return result


_Predicate = Callable[[Algebra[Any, Any], Any, Any, int], Any]

_PREDICATES: dict[tuple[CmpOp, bool], _Predicate] = {
    **{(CmpOp.EQ, s): (lambda o, a, b, w: o.eq(a, b, w)) for s in (False, True)},
    **{(CmpOp.NE, s): (lambda o, a, b, w: o.ne(a, b, w)) for s in (False, True)},
    (CmpOp.LT, False): lambda o, a, b, w: o.ult(a, b, w),
    (CmpOp.LE, False): lambda o, a, b, w: o.ule(a, b, w),
    (CmpOp.GT, False): lambda o, a, b, w: o.ugt(a, b, w),
    (CmpOp.GE, False): lambda o, a, b, w: o.uge(a, b, w),
    (CmpOp.LT, True): lambda o, a, b, w: o.slt(a, b, w),
    (CmpOp.LE, True): lambda o, a, b, w: o.sle(a, b, w),
    (CmpOp.GT, True): lambda o, a, b, w: o.sgt(a, b, w),
    (CmpOp.GE, True): lambda o, a, b, w: o.sge(a, b, w),
}
"""float compares as the signed 64-bit integer it is; bool unsigned (False < True)."""


def compare_in(ops: Algebra[V, B], op: CmpOp, t: ScalarType, a: V, b: V) -> B:
    """Whether `a op b` holds, both of type `t`."""
    result: B = _PREDICATES[(op, t.signed)](ops, a, b, t.bits)
    return result


def _resize(ops: Algebra[V, B], x: V, bits: int, to: int, signed: bool) -> V:
    """Wrap to a narrower width, or extend (by `signed`) to a wider one."""
    if bits == to:
        return x
    if bits > to:
        return ops.trunc(x, bits, to)
    return ops.sext(x, bits, to) if signed else ops.zext(x, bits, to)


def convert_in(ops: Algebra[V, B], x: V, source: ScalarType, target: ScalarType) -> V:
    """Convert a value of type `source` to `target`, as an assignment, argument or `T(x)` call does:
    integers wrap or extend by the source's signedness, anything non-zero is true, floats truncate
    toward zero."""
    if source == target:
        return x
    if target.is_bool:
        return ops.ite(ops.eq(x, ops.const(0, source.bits), source.bits), ops.const(0, 1), ops.const(1, 1))
    if source.is_fixed:
        return _resize(ops, fixed.truncate(ops, x), 64, target.bits, signed=True)
    if target.is_fixed:
        return fixed.from_integer(ops, _resize(ops, x, source.bits, 64, source.signed), source.signed, source.bits)
    return _resize(ops, x, source.bits, target.bits, source.signed)


# --------------------------------------------------------------------------- #
# The same on Python ints, each in its type's representation (signed types as signed ints)
# --------------------------------------------------------------------------- #


def binary(op: BinOp, t: ScalarType, a: int, b: int) -> int:
    """`a op b` in type `t` (for float: raw fixed-point operands and result)."""
    return t.wrap(binary_in(INT_ALGEBRA, op, t, pattern(a, t.bits), pattern(b, t.bits)))


def compare(op: CmpOp, t: ScalarType, a: int, b: int) -> bool:
    """`a op b` on two values of type `t`."""
    return compare_in(INT_ALGEBRA, op, t, pattern(a, t.bits), pattern(b, t.bits))


def convert(value: int, source: ScalarType, target: ScalarType) -> int:
    """Convert a value of type `source` to `target`, as an assignment, argument or `T(x)` call does."""
    if source == target:
        return value
    return target.wrap(convert_in(INT_ALGEBRA, pattern(value, source.bits), source, target))


def negate(t: ScalarType, a: int) -> int:
    """Unary minus in type `t`: `0 - a`, as the compiler emits it."""
    return binary(BinOp.SUB, t, 0, a)


# --------------------------------------------------------------------------- #
# Untyped constants: exact, like Go's
# --------------------------------------------------------------------------- #

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


def fold_untyped_float(op: BinOp, a: float, b: float) -> float:
    """`a op b` on untyped constants one of which is a float: in double precision (the caller checks the
    result fits the float range)."""
    return {BinOp.ADD: a + b, BinOp.SUB: a - b, BinOp.MUL: a * b}[op]


_EXACT: dict[CmpOp, Callable[[Any, Any], bool]] = {
    CmpOp.EQ: lambda a, b: a == b,
    CmpOp.NE: lambda a, b: a != b,
    CmpOp.LT: lambda a, b: a < b,
    CmpOp.LE: lambda a, b: a <= b,
    CmpOp.GT: lambda a, b: a > b,
    CmpOp.GE: lambda a, b: a >= b,
}


def compare_untyped(op: CmpOp, a: int | float, b: int | float) -> bool:
    """`a op b` on untyped constants (ints or floats): exactly."""
    return _EXACT[op](a, b)
