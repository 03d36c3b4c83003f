"""Checking arithmetic: operators and conversions on scalars, by the type rules of `fold`.

Takes scalars; gives the result scalar: the folded constant where `fold` gives one, otherwise a new
value of the type `fold` says the operation computes in. The same steps as `emit.arithmetic`, without
the IR (and without its warnings, which the emitter gives where it materializes the constant).
"""

from __future__ import annotations

import ast
from dataclasses import replace

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.typecheck.base import CheckerBase
from pybpfdsl.frontend.typecheck.kinds import Token
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, i64


def computed(t: ScalarType) -> Scalar[object]:
    """A value of type `t` computed at run time."""
    return Scalar(t, Token())


class ArithmeticChecker(CheckerBase):
    """Operators and conversions."""

    def convert(self, v: Scalar[object], t: ScalarType, node: ast.AST, implicit: bool = False) -> Scalar[object]:
        """Convert to `t`; implicit conversions refuse to lose information silently."""
        if v.type == t:
            return v
        if implicit:
            fold.check_implicit(v, t, self.complaint(node))
        fold.check_saturation(v, t, self.complaint(node))
        if v.const is not None and not fold.saturates_up(v, t):
            return fold.convert_constant(v, t, self.complaint(node))
        return computed(t)

    def binary_result_type(self, op: BinOp, a: Scalar[object], b: Scalar[object], node: ast.AST) -> ScalarType:
        return fold.binary_type(op, a.type, b.type)

    def computed_binary(self, op: BinOp, t: ScalarType, a: Scalar[object], b: Scalar[object]) -> Scalar[object]:
        return computed(t)

    def select(self, t: ScalarType, cond: Scalar[object], if_true: Scalar[object],
               if_false: Scalar[object]) -> Scalar[object]:
        return computed(t)

    def true_divide(self, a: Scalar[object], b: Scalar[object], node: ast.AST) -> Scalar[object]:
        folded = fold.fold_true_divide(a, b, self.complaint(node))
        if folded is not None:
            return folded
        whole = fold.integral_divisor(a, b)
        if whole is not None:  # `elapsed / 1e9`: an exact integer quotient
            b = Scalar(i64, const=whole)
        if b.type.is_fixed:
            if b.const is None:
                raise self.err(node, "dividing by a float computed at run time is not supported",
                               "divide by a constant or by an integer, or multiply by a precomputed reciprocal")
            if float(b.const) == 0:
                raise self.err(node, "division by zero")
            reciprocal = 1.0 / float(b.const)
            return self.float_binary(BinOp.MUL, a, fold.constant(reciprocal, self.complaint(node)), node)
        self.convert(b, i64, node)
        if not a.type.is_fixed:
            self.convert(a, i64, node)
        return computed(FLOAT)

    def compare(self, op: CmpOp, a: Scalar[object], b: Scalar[object], node: ast.AST) -> Scalar[object]:
        folded = fold.fold_compare(op, a, b, self.complaint(node))
        if folded is not None:
            return folded
        t = fold.compare_type(a.type, b.type)
        self.convert(a, t, node)
        self.convert(b, t, node)
        return computed(BOOL)

    def typed_local(self, v: Scalar[object], t: ScalarType, node: ast.AST) -> Scalar[object]:
        return self.typed(v, t, node, implicit=True)

    def typed(self, v: Scalar[object], t: ScalarType, node: ast.AST, implicit: bool = False) -> Scalar[object]:
        """`v` converted to `t` and kept in a register as a typed value (not a literal)."""
        converted = self.convert(v, t, node, implicit)
        return replace(converted, literal=False, value=converted.value or Token())
