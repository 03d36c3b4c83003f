"""How a test's connectives split the paths, written once for the type checker and the emitter.

A test gives the paths where it holds and those where it does not: the checker's paths are the locals
on each (`typecheck.kinds.Env`), the emitter's the open blocks with theirs (`flow.Flow`). `a and b`
tests `b` only where `a` held, `a or b` only where `a` did not, `not a` swaps the two lists, and
`x is None` narrows an optional. Both passes inherit `ConditionForms` and give how paths meet
(`enter_join`) and the tests of single values.
"""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Generic, TypeVar

from pybpfdsl.frontend.values import PacketVal, pseudo_local

_Path = TypeVar("_Path")


class ConditionForms(ABC, Generic[_Path]):
    """The connectives of a test over a pass's paths."""

    @property
    @abstractmethod
    def env(self) -> Mapping[str, object]:
        """The locals on the current path."""

    def connective(self, node: ast.expr) -> tuple[list[_Path], list[_Path]] | None:
        """The paths where `node` holds and where it does not, if it is `and`, `or`, `not` or a test
        against None; None for any other test (the pass tests the value)."""
        match node:
            case ast.BoolOp(op=ast.And(), values=values):
                true_paths, false_paths = self.condition(values[0])
                for v in values[1:]:
                    if not self.enter_join(true_paths, "and"):
                        return [], false_paths
                    t, f = self.condition(v)
                    true_paths, false_paths = t, false_paths + f
                return true_paths, false_paths
            case ast.BoolOp(op=ast.Or(), values=values):
                true_paths, false_paths = self.condition(values[0])
                for v in values[1:]:
                    if not self.enter_join(false_paths, "or"):
                        return true_paths, []
                    t, f = self.condition(v)
                    true_paths, false_paths = true_paths + t, f
                return true_paths, false_paths
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                t, f = self.condition(operand)
                return f, t
            case ast.Compare(left=left, ops=[ast.Is() | ast.IsNot() as op], comparators=[ast.Constant(value=None)]):
                return self.none_test(left, isinstance(op, ast.Is))
        return None

    def narrow_key(self, node: ast.expr) -> str | None:
        """The local (or packet pseudo-local) a None test narrows."""
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                isinstance(self.env.get(node.value.id), PacketVal):
            return pseudo_local(node.attr)
        return None

    @abstractmethod
    def condition(self, node: ast.expr) -> tuple[list[_Path], list[_Path]]:
        """A test: the paths where it holds and where it does not (each list empty if never)."""

    @abstractmethod
    def enter_join(self, paths: list[_Path], hint: str) -> bool:
        """Continue where `paths` meet (`hint` names the join); False if no path reaches it."""

    @abstractmethod
    def none_test(self, node: ast.expr, is_none: bool) -> tuple[list[_Path], list[_Path]]:
        """`node is None` (or `is not None`): the optional narrowed on each side."""


__all__ = ["ConditionForms"]
