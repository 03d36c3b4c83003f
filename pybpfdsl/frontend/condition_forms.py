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
from copy import copy
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from pybpfdsl.frontend.values import NoneVal, PacketVal, Scalar, pseudo_local

_Path = TypeVar("_Path")
_Env = TypeVar("_Env", bound=dict[str, Any])


class Narrowable(Protocol):
    """A value that may be None (`typecheck.kinds.Maybe`, `values.OptionalVal`): a frozen dataclass."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def inner(self) -> object:
        """What it is when it is not None."""

    @property
    def narrowed(self) -> bool:
        """Whether a check proved it present."""

    def narrow(self) -> object:
        """The same value, proved present."""


class ConditionForms(ABC, Generic[_Path, _Env]):
    """The connectives of a test over a pass's paths (`_Path`), each with its locals (`_Env`)."""

    @property
    @abstractmethod
    def env(self) -> _Env:
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
            case ast.Compare(left=ast.Name(id=name) as left, ops=[ast.Eq() | ast.NotEq() as op],
                             comparators=[ast.Constant(value=int() | float() as constant)]) \
                    if not isinstance(constant, bool) and self.maybe_number(self.env.get(name)):
                # `b == 0x45` on a local that may be None: None equals no number, so where it holds `b` is
                # present, and the test narrows it there (as `b is not None and b == 0x45` would).
                present, absent = self.none_test(left, is_none=False)
                if not self.enter_join(present, "present"):
                    return ([], absent) if isinstance(op, ast.Eq) else (absent, [])
                t, f = self.plain_condition(node)
                return (t, f + absent) if isinstance(op, ast.Eq) else (t + absent, f)
        return None

    def maybe_number(self, v: object) -> bool:
        """Whether `v` is a number that may be None, not yet checked."""
        optional = self.optional(v)
        return optional is not None and not optional.narrowed and isinstance(optional.inner, Scalar)

    def plain_condition(self, node: ast.expr) -> tuple[list[_Path], list[_Path]]:
        """A test without a likelihood hint: a connective, a parsed header (present or not), or a value's
        truth (a constant one takes one side only)."""
        paths = self.connective(node)
        if paths is not None:
            return paths
        value = self.expr(node)
        header = self.optional_header(value)
        if header is not None:
            return self.narrow(node, header, is_none=False)
        cond = self.truth(value, node)
        if cond.const is not None:
            here = self.here(self.env)
            return ([here], []) if cond.const else ([], [here])
        yes, no = self.branch(cond)
        return [yes], [no]

    def none_test(self, node: ast.expr, is_none: bool) -> tuple[list[_Path], list[_Path]]:
        """`node is None` (or `is not None`): the optional narrowed on each side."""
        value = self.expr(node)
        if isinstance(value, NoneVal):
            raise self.refusal(node, "comparing None with None")
        optional = self.optional(value)
        if optional is None:
            here = self.here(self.env)  # never None: the test is constant
            return ([], [here]) if is_none else ([here], [])
        return self.narrow(node, optional, is_none)

    def narrow(self, node: ast.expr, value: Narrowable, is_none: bool) -> tuple[list[_Path], list[_Path]]:
        """The paths where the optional `value` (`node`'s) is None and where it is not, the local it is
        (`narrow_key`) narrowed on the second; one side only where a check already proved it present."""
        key = self.narrow_key(node)
        present_env = copy(self.env)
        if key is not None:
            present_env[key] = value.narrow()
        if value.narrowed:
            here = self.here(present_env)
            return ([], [here]) if is_none else ([here], [])
        present, absent = self.presence_branch(value, present_env)
        return ([absent], [present]) if is_none else ([present], [absent])

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
    def expr(self, node: ast.expr) -> object:
        """An expression's value."""

    @abstractmethod
    def truth(self, v: Any, node: ast.expr) -> Scalar[Any]:
        """The truth of a value as a bool scalar."""

    @abstractmethod
    def refusal(self, node: ast.AST, message: str, hint: str | None = None) -> Exception:
        """What a program this pass cannot take raises."""

    @abstractmethod
    def optional(self, v: object) -> Narrowable | None:
        """`v` if it may be None."""

    @abstractmethod
    def optional_header(self, v: object) -> Narrowable | None:
        """`v` if it is a header that may be absent (`pkt.tcp`)."""

    @abstractmethod
    def here(self, env: _Env) -> _Path:
        """The current path, with the locals `env`."""

    @abstractmethod
    def branch(self, cond: Scalar[Any]) -> tuple[_Path, _Path]:
        """The paths where the bool `cond` holds and where it does not."""

    @abstractmethod
    def presence_branch(self, value: Narrowable, present_env: _Env) -> tuple[_Path, _Path]:
        """The paths where `value` is present (with the locals `present_env`) and where it is None."""


__all__ = ["ConditionForms"]
