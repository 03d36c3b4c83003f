"""Pure-Python mode's shared state and its reading of the typed AST (`type_of`, `const_of`): the
concepts (`expressions` ← `calls` ← `statements`) are mixins over this base, in a line."""

from __future__ import annotations

import ast
from abc import ABC, abstractmethod
from collections.abc import Mapping

from pybpfdsl.frontend.evaluate.running import (
    EvaluationError,
    Frame,
    Signal,
    Value,
    line_of,
    source_text,
)
from pybpfdsl.frontend.likelihood import BranchProfile
from pybpfdsl.frontend.type_facts import Ctx, TypedFunction
from pybpfdsl.lang.helpers import HelperSource, current_helpers
from pybpfdsl.lang.packet import Packet
from pybpfdsl.lang.state import StateObject
from pybpfdsl.lang.types import ScalarType


class EvaluatorBase(ABC):
    """The evaluator's shared state: the typed AST it reads, the packet, the state objects, the helper
    results, and the lowering context (the iterations of enclosing unrolled loops)."""

    def __init__(self, typed: TypedFunction, packet: Packet, state: Mapping[str, StateObject] | None) -> None:
        self.lw = typed  # the typed AST: the only place a type comes from
        self.pkt = packet
        self.state = dict(state or {})
        self.helpers: HelperSource = current_helpers()
        self.ctx: Ctx = ()
        self.profile: BranchProfile | None = None
        """Where each condition's outcome is counted, when the run gathers a profile."""

    # --- the typed AST
    def key(self, node: ast.AST) -> tuple[Ctx, ast.AST]:
        return (self.ctx, node)

    def type_of(self, node: ast.AST) -> ScalarType:
        try:
            return self.lw.facts.types[(self.ctx, node)]
        except KeyError:
            raise EvaluationError(f"no type recorded for `{source_text(node)}` (line {line_of(node)})") from None

    def const_of(self, node: ast.AST) -> int | float:
        try:
            return self.lw.facts.consts[(self.ctx, node)]
        except KeyError:
            raise EvaluationError(f"`{source_text(node)}` (line {line_of(node)}) was not a constant") from None

    # The methods a concept calls in a later one.
    @abstractmethod
    def call(self, node: ast.Call, fr: Frame) -> Value:
        """A call's value."""

    @abstractmethod
    def body(self, stmts: list[ast.stmt], fr: Frame) -> Signal | None:
        """Run statements; how they ended early, if they did."""

