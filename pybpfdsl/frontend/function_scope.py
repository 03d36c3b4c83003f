"""The function a frontend pass walks, written once for the type checker and the emitter.

A pass walks the `@xdp` function and, at each call of an `@inline` helper, the helper's body in a scope
of its own: its locals, the types they were declared with, the loops around the current statement, and
where its `return`s went. The checker's paths are its locals (`typecheck.kinds.Env`), the emitter's open
blocks with theirs (`flow.Flow`); each pass's `Scope` adds what only it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.lang.types import ScalarType

_Env = TypeVar("_Env")
_Loop = TypeVar("_Loop")
_Path = TypeVar("_Path")


@dataclass
class FunctionScope(Generic[_Env, _Loop, _Path]):
    """The function being walked: the program itself or an inlined helper."""

    source: FunctionSource
    env: _Env
    var_types: dict[str, ScalarType] = field(default_factory=dict)
    loops: list[_Loop] = field(default_factory=list)
    returns: list[_Path] | None = None
    """For a helper: the path of each `return`, its value under "$ret" (None in the program itself)."""
    return_type: ScalarType | None = None
    """For a helper: the declared return type (None for `-> None`)."""


class InFunction(Generic[_Env]):
    """A pass over a function: its current scope, whose locals are the current path's."""

    scope: FunctionScope[_Env, Any, Any]

    @property
    def env(self) -> _Env:
        """The locals on the current path."""
        return self.scope.env

    @env.setter
    def env(self, value: _Env) -> None:
        self.scope.env = value

    @property
    def current_source(self) -> FunctionSource:
        """The function being walked: the program or an inlined helper."""
        return self.scope.source


__all__ = ["FunctionScope", "InFunction"]
