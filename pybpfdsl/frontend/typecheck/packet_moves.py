"""Checking `pkt.adjust_head(delta)` and `pkt.adjust_tail(delta)`: moving the packet's start or end.

A move is True when the kernel made it and False when it refused (`lang.xdp_frame`). After it every
header is parsed afresh: `pkt.tcp` reads the packet as it is now, and a local that held a header or the
payload from before the move is gone (using it is an error that says why), since its offsets and
fields describe bytes that may have moved. A move is made in the `@xdp` function itself, where the
locals it makes stale are in view.
"""

from __future__ import annotations

import ast
from types import FunctionType
from typing import Protocol

from pybpfdsl.frontend.typecheck.arithmetic import computed
from pybpfdsl.frontend.typecheck.base import Scope
from pybpfdsl.frontend.typecheck.kinds import Env, Header, Kind, Maybe, Payload
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.types import BOOL, ScalarType, i32

MOVES = ("adjust_head", "adjust_tail")


class _Checker(Protocol):
    scope: Scope
    inline_stack: list[FunctionType]

    @property
    def env(self) -> Env: ...
    def err(self, node: ast.AST, message: str, hint: str | None = None) -> DslError: ...
    def scalar(self, node: ast.expr) -> Scalar[object]: ...
    def convert(self, v: Scalar[object], t: ScalarType, node: ast.AST, implicit: bool = False) -> Scalar[object]: ...


def check_move(checker: _Checker, node: ast.Call, attr: str) -> Kind:
    if checker.inline_stack:
        raise checker.err(node, f"pkt.{attr}() moves the packet, which only the @xdp function itself may do",
                          "call it in the @xdp function, where the headers it makes stale are in view")
    if len(node.args) != 1 or node.keywords:
        raise checker.err(node, f"write `pkt.{attr}(delta)`, with delta the number of bytes to move by")
    delta = checker.scalar(node.args[0])
    if not delta.type.is_int:
        raise checker.err(node.args[0], f"the delta of {attr}() is a whole number of bytes, not {delta.type}")
    checker.convert(delta, i32, node.args[0], implicit=True)
    for name, value in list(checker.env.items()):
        if isinstance(value, Header | Payload) or (isinstance(value, Maybe) and isinstance(value.inner, Header)):
            del checker.env[name]
            if not name.startswith("<pkt>."):
                checker.scope.moved[name] = node.lineno
    return computed(BOOL)
