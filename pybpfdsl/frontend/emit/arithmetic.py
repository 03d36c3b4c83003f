"""Emitting arithmetic: the DSL's type rules and constant folding for operators and conversions.

Takes scalars (typed SSA values or constants, `values.Scalar`); gives the result scalar: folded when
both operands are constant (untyped constants exactly, typed ones in their type, as the code would
compute), otherwise the IR operation on the operands converted to the common type. Implicit conversions
refuse to lose information silently.
"""

from __future__ import annotations

import ast

from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.operators import BINARY_OPERATORS
from pybpfdsl.frontend.values import (
    DslValue,
    Scalar,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import (
    BOOL,
    FLOAT,
    ScalarType,
    common_type,
    i64,
    literal_type,
    promote,
)

_SYMBOL: dict[BinOp, str] = {
    BinOp.ADD: "+", BinOp.SUB: "-", BinOp.MUL: "*", BinOp.DIV: "//", BinOp.MOD: "%", BinOp.AND: "&",
    BinOp.OR: "|", BinOp.XOR: "^", BinOp.SHL: "<<", BinOp.SHR: ">>",
}
_BINOPS = BINARY_OPERATORS


class ArithmeticEmitter(EmitterBase):
    def binop_of(self, op: ast.operator, node: ast.AST) -> BinOp:
        if type(op) in _BINOPS:
            return _BINOPS[type(op)]
        if isinstance(op, ast.Div):
            raise self.err(node, "`/=` is not supported", "write `x = x / y` with x a float")
        raise self.err(node, f"the operator {type(op).__name__} is not supported")

    def convert(self, v: Scalar, t: ScalarType, node: ast.AST, implicit: bool = False) -> Scalar:
        """Convert to `t`. Implicit conversions (assignments to typed variables) refuse to lose information
        silently: a float into an integer, or a constant that does not fit."""
        if v.type == t:
            return v
        if implicit:
            if v.type.is_fixed and not t.is_fixed:
                raise self.err(node, f"a float cannot be stored in a {t} silently",
                               f"convert explicitly: `{t}(...)` truncates toward zero")
            if v.const is not None and t.is_int and isinstance(v.const, int) and not t.min <= v.const <= t.max:
                raise self.err(node, f"{v.const} does not fit in {t}",
                               f"use a wider type, or write `{t}({v.const})` to wrap it on purpose")
        if v.const is not None:
            if t.is_fixed:
                if isinstance(v.const, float):
                    return Scalar(FLOAT, const=v.const)
                if v.literal:  # an untyped constant converts exactly, and must fit
                    if not -(1 << 31) <= v.const < 1 << 31:
                        raise self.err(node, f"{v.const} is outside the float range [-2**31, 2**31)",
                                       "DSL floats are Q32.32 fixed-point numbers; see docs/language.md")
                    return Scalar(FLOAT, const=float(v.const))
                # A typed constant converts as the code would at run time: outside the range it wraps.
                return Scalar(FLOAT, const=fixed.to_float(arith.convert(int(v.const), v.type, FLOAT)))
            if isinstance(v.const, float):
                raw = fixed.from_float(v.const)
                return Scalar(t, const=arith.convert(raw, FLOAT, t))
            return Scalar(t, const=t.wrap(int(v.const)) if not t.is_bool else int(v.const != 0))
        value = self.scalar_value(v)
        return Scalar(t, self.b.emit(n.Convert(self.new(t), value, line=self.line)))

    def binary(self, op: BinOp, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        if a.type.is_fixed or b.type.is_fixed:
            return self.float_binary(op, a, b, node)
        if a.const is not None and b.const is not None and _untyped(a) and _untyped(b):
            r = arith.fold_untyped(op, int(a.const), int(b.const))
            try:
                return Scalar(literal_type(r), const=r, literal=True)
            except OverflowError:
                raise self.err(node, f"the constant {r} does not fit in 64 bits") from None
        if op in (BinOp.SHL, BinOp.SHR):
            t = promote(a.type)
        else:
            t = common_type(a.type, b.type)
        ca, cb = self.convert(a, t, node), self.convert(b, t, node)
        if ca.const is not None and cb.const is not None:
            return Scalar(t, const=arith.binary(op, t, int(ca.const), int(cb.const)))
        out = self.b.emit(n.Binary(self.new(t), op, self.scalar_value(ca), self.scalar_value(cb), line=self.line))
        return Scalar(t, out)

    def float_binary(self, op: BinOp, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        if op not in arith.FIXED_BINOPS:
            raise self.err(node, f"`{_SYMBOL[op]}` is not defined on floats",
                           "use +, -, * and / on floats; convert to an integer type for the others")
        if a.const is not None and b.const is not None and _untyped(a) and _untyped(b):
            r = {BinOp.ADD: float(a.const) + float(b.const), BinOp.SUB: float(a.const) - float(b.const),
                 BinOp.MUL: float(a.const) * float(b.const)}[op]
            return self.const_scalar(r, node)
        ca, cb = self.convert(a, FLOAT, node), self.convert(b, FLOAT, node)
        if ca.const is not None and cb.const is not None:
            # Typed constants fold as the code computes: in Q32.32, wrapping (not in double precision).
            ra, rb = self.fixed_raw(ca, node), self.fixed_raw(cb, node)
            folded = _exact_float({BinOp.ADD: fixed.wrap64(ra + rb), BinOp.SUB: fixed.wrap64(ra - rb),
                                   BinOp.MUL: fixed.mul(ra, rb)}[op])
            if folded is not None:
                return Scalar(FLOAT, const=folded)
        out = self.b.emit(n.Binary(self.new(FLOAT), op, self.scalar_value(ca), self.scalar_value(cb), line=self.line))
        return Scalar(FLOAT, out)

    def fixed_raw(self, v: Scalar, node: ast.AST) -> int:
        """The Q32.32 raw value of a float constant."""
        assert v.const is not None
        try:
            return fixed.from_float(float(v.const))
        except (OverflowError, ValueError):
            raise self.err(node, f"{v.const} is outside the float range [-2**31, 2**31)",
                           "DSL floats are Q32.32 fixed-point numbers; see docs/language.md") from None

    def true_divide(self, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        if a.const is not None and b.const is not None and _untyped(a) and _untyped(b):
            if float(b.const) == 0:
                raise self.err(node, "division by zero in a constant expression")
            return self.const_scalar(float(a.const) / float(b.const), node)
        if a.const is not None and b.const is not None and not b.type.is_fixed:
            # Typed constants fold as the code computes (a quotient truncated to Q32.32; x / 0 == 0).
            const_divisor = self.convert(b, i64, node).const
            assert isinstance(const_divisor, int)
            if a.type.is_fixed:
                folded = _exact_float(fixed.div_int(self.fixed_raw(a, node), const_divisor))
            else:
                const_dividend = self.convert(a, i64, node).const
                assert isinstance(const_dividend, int)
                folded = _exact_float(fixed.quotient(const_dividend, const_divisor))
            if folded is not None:
                return Scalar(FLOAT, const=folded)
        if b.type.is_fixed:
            if b.const is None:
                raise self.err(node, "dividing by a float computed at run time is not supported",
                               "divide by a constant or by an integer, or multiply by a precomputed reciprocal")
            if float(b.const) == 0:
                raise self.err(node, "division by zero")
            return self.float_binary(BinOp.MUL, a, self.const_scalar(1.0 / float(b.const), node), node)
        divisor = self.convert(b, i64, node)
        if not a.type.is_fixed:
            # Integer over integer: whole part plus scaled remainder, so a large dividend (a nanosecond
            # clock) does not overflow the way converting it to float first would.
            dividend = self.convert(a, i64, node)
            out = self.op(n.IntQuotient, FLOAT, self.scalar_value(dividend), self.scalar_value(divisor))
            return Scalar(FLOAT, out)
        out = self.op(n.FixedDivInt, FLOAT, self.scalar_value(a), self.scalar_value(divisor))
        return Scalar(FLOAT, out)

    def power(self, node: ast.BinOp) -> Scalar:
        a, b = self.scalar(node.left), self.scalar(node.right)
        if a.const is not None and b.const is not None and _untyped(a) and _untyped(b):
            if isinstance(a.const, int) and isinstance(b.const, int) and b.const >= 0:
                return self.const_scalar(a.const ** b.const, node)
            try:
                return self.const_scalar(float(a.const) ** float(b.const), node)
            except (ZeroDivisionError, OverflowError):
                raise self.err(node, f"{a.const} ** {b.const} has no value in the DSL") from None
        raise self.err(node, "`**` works only on constants", "multiply explicitly: `x * x`")

    def negate(self, v: Scalar, node: ast.AST) -> Scalar:
        if v.const is not None and _untyped(v):
            return self.const_scalar(-v.const, node)
        t = v.type if v.type.is_fixed else promote(v.type)
        cv = self.convert(v, t, node)
        zero = Scalar(t, const=0.0 if t.is_fixed else 0)
        if t.is_fixed:
            return self.float_binary(BinOp.SUB, zero, cv, node)
        return self.binary(BinOp.SUB, zero, cv, node)

    def unary(self, op: ast.unaryop, operand: ast.expr, node: ast.expr) -> DslValue:
        if isinstance(op, ast.Not):
            return self.branchy_value(node)
        v = self.scalar(operand)
        if isinstance(op, ast.UAdd):
            return v
        if isinstance(op, ast.USub):
            return self.negate(v, node)
        if v.type.is_fixed:
            raise self.err(node, "`~` is not defined on floats")
        t = promote(v.type)
        if v.const is not None and _untyped(v):
            return self.const_scalar(~int(v.const), node)
        return self.binary(BinOp.XOR, self.convert(v, t, node), Scalar(t, const=t.wrap(-1)), node)

    def compare(self, op: CmpOp, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        if a.type.is_fixed or b.type.is_fixed:
            t = FLOAT
        else:
            t = common_type(a.type, b.type)
        if a.const is not None and b.const is not None:
            if t.is_fixed and _untyped(a) and _untyped(b):
                return Scalar(BOOL, const=int(arith.compare(op, float(a.const), float(b.const))))  # type: ignore[arg-type]
            if t.is_fixed:  # typed constants compare as the code would: converted (wrapping) first
                fa, fb = self.convert(a, t, node).const, self.convert(b, t, node).const
                assert fa is not None and fb is not None
                return Scalar(BOOL, const=int(arith.compare(op, float(fa), float(fb))))  # type: ignore[arg-type]
            if _untyped(a) and _untyped(b):
                return Scalar(BOOL, const=int(arith.compare(op, int(a.const), int(b.const))))
        ca, cb = self.convert(a, t, node), self.convert(b, t, node)
        out = self.b.emit(n.Compare(self.new(BOOL), op, self.scalar_value(ca), self.scalar_value(cb), line=self.line))
        return Scalar(BOOL, out)


def _exact_float(raw: int) -> float | None:
    """The Python float equal to a Q32.32 raw value, or None when a double cannot hold it exactly."""
    value = fixed.to_float(raw)
    return value if fixed.from_float(value) == raw else None


def _untyped(s: Scalar) -> bool:
    """Untyped constants fold exactly; explicitly typed ones (u8(3), typed locals) fold in their type."""
    return s.const is not None and s.literal
