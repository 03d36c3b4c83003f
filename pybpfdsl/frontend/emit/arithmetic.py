"""Emitting arithmetic: operators and conversions on scalars.

Takes scalars (typed SSA values or constants, `values.Scalar`); gives the result scalar: folded by the
rules of `fold` when they give a constant, otherwise the IR operation on the operands converted to the
type the operation computes in, which the typed AST gives (`result_type`; a comparison's operand type
is still `fold.compare_type`'s).
"""

from __future__ import annotations

import ast
from dataclasses import replace

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.values import (
    Scalar,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import (
    BOOL,
    FLOAT,
    ScalarType,
    i64,
)


class ArithmeticEmitter(EmitterBase):
    """Operators and conversions: `fold` first, IR where no constant results."""

    def convert(self, v: Scalar, t: ScalarType, node: ast.AST, implicit: bool = False) -> Scalar:
        """Convert to `t`. Implicit conversions (assignments to typed variables) refuse to lose information
        silently: a float into an integer, or a constant that does not fit."""
        if v.type == t:
            return v
        if implicit:
            fold.check_implicit(v, t, self.complaint(node))
        assert not fold.always_saturates(v, t), "the checker refuses a conversion that always saturates"
        if v.const is not None and not fold.saturates_up(v, t):
            return fold.convert_constant(v, t, self.complaint(node))
        value = self.scalar_value(v)
        return Scalar(t, self.b.emit(n.Convert(self.new(t), value, line=self.line)))

    def binary_result_type(self, op: BinOp, a: Scalar, b: Scalar, node: ast.AST) -> ScalarType:
        return self.result_type(node)

    def computed_binary(self, op: BinOp, t: ScalarType, a: Scalar, b: Scalar) -> Scalar:
        out = self.b.emit(n.Binary(self.new(t), op, self.scalar_value(a), self.scalar_value(b), line=self.line))
        return Scalar(t, out)

    def typed_local(self, v: Scalar, t: ScalarType, node: ast.AST) -> Scalar:
        converted = self.materialize(replace(self.convert(v, t, node, implicit=True), literal=False))
        assert isinstance(converted, Scalar)
        return converted

    def select(self, t: ScalarType, cond: Scalar, if_true: Scalar, if_false: Scalar) -> Scalar:
        return Scalar(t, self.b.emit(n.Select(self.new(t), self.scalar_value(cond), self.scalar_value(if_true),
                                              self.scalar_value(if_false), line=self.line)))

    def true_divide(self, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        folded = fold.fold_true_divide(a, b, self.complaint(node))
        if folded is not None:
            return folded
        whole = fold.integral_divisor(a, b)
        if whole is not None:  # `elapsed / 1e9`: an exact integer quotient, as `elapsed / 1_000_000_000`
            b = Scalar(i64, const=whole)
        if b.type.is_fixed:
            if b.const is None:
                raise self.unchecked(node)
            if float(b.const) == 0:
                raise self.unchecked(node)
            reciprocal = 1.0 / float(b.const)
            self.warn_lossy_float(reciprocal, divisor=float(b.const))
            return self.float_binary(BinOp.MUL, a, self.const_scalar(reciprocal, node), node)
        divisor = self.convert(b, i64, node)
        if not a.type.is_fixed:
            # Integer over integer: whole part plus scaled remainder, so a large dividend (a nanosecond
            # clock) does not overflow the way converting it to float first would.
            dividend = self.convert(a, i64, node)
            out = self.op(n.IntQuotient, FLOAT, self.scalar_value(dividend), self.scalar_value(divisor))
            return Scalar(FLOAT, out)
        out = self.op(n.FixedDivInt, FLOAT, self.scalar_value(a), self.scalar_value(divisor))
        return Scalar(FLOAT, out)

    def compare(self, op: CmpOp, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        folded = fold.fold_compare(op, a, b, self.complaint(node))
        if folded is not None:
            return folded
        t = fold.compare_type(a.type, b.type)
        ca, cb = self.convert(a, t, node), self.convert(b, t, node)
        out = self.b.emit(n.Compare(self.new(BOOL), op, self.scalar_value(ca), self.scalar_value(cb), line=self.line))
        return Scalar(BOOL, out)
