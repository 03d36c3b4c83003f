"""The type checker's shared state: the function being checked, its locals on the current path, whether
the path is reachable, the lowering context, and the typed AST it builds (`type_facts.TypeRecorder`).

The checker (stage 2 of the frontend) walks the AST exactly as the emitter will, path by path: a
statement after a `return` is not checked, a branch a constant test never takes is not checked, an
unrolled loop's body is checked once per item, a range or `while` loop's body once, with the locals it
reassigns as values of their entry types (no constant), and an @inline helper at each call site. It is
split by concept into mixins over this base, in a line: `arithmetic` ← `expressions` ← `conditions` ←
`calls` ← `statements`; the few methods a lower mixin calls in a higher one are declared here. The walk
it shares with the emitter (which step each form takes, and the refusals' words) is the `*_forms`
modules' (`frontend/expression_forms.py`, ...), which the base and the mixins inherit.
"""

from __future__ import annotations

import ast
from abc import abstractmethod
from dataclasses import dataclass, field
from types import FunctionType

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.condition_forms import ConditionForms, Narrowable
from pybpfdsl.frontend.expression_forms import ExpressionForms
from pybpfdsl.frontend.function_scope import FunctionScope, InFunction
from pybpfdsl.frontend.source import FunctionSource, read_function
from pybpfdsl.frontend.type_facts import Ctx, TypeRecorder
from pybpfdsl.frontend.typecheck.kinds import Env, Header, Kind, Maybe, describe, join
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.state import StateObject
from pybpfdsl.lang.types import ScalarType


@dataclass
class Loop:
    """An enclosing loop: the locals at each `break` and `continue` (and end of the body)."""

    breaks: list[Env] = field(default_factory=list)
    continues: list[Env] = field(default_factory=list)


@dataclass
class Scope(FunctionScope[Env, Loop, Env]):
    """The function being checked: the program itself or an inlined helper."""

    moved: dict[str, int] = field(default_factory=dict)
    """Locals that held a header or the payload when the packet moved (`pkt.adjust_head`), and the line."""


class CheckerBase(InFunction[Env], ExpressionForms[Kind, Scalar[object]], ConditionForms[Env, Env]):
    scope: Scope

    def __init__(self, fn: FunctionType) -> None:
        self.main = read_function(fn)
        self.state: dict[str, StateObject] = {}
        self.ctx: Ctx = ()
        self.facts = TypeRecorder()
        self.scope = Scope(self.main, {})
        self.facts.var_types[self.main.function] = self.scope.var_types
        self.inline_stack: list[FunctionType] = []
        self.reachable = True
        """False after a return, break or continue, until paths meet again (the emitter's open block)."""

    def describe(self, v: object) -> str:
        return describe(v)

    def enter_join(self, paths: list[Env], hint: str) -> bool:
        return self.enter(paths)

    def unary_result_type(self, v: Scalar[object], node: ast.AST) -> ScalarType:
        return fold.unary_type(v.type)

    def optional(self, v: object) -> Maybe | None:
        return v if isinstance(v, Maybe) else None

    def optional_header(self, v: object) -> Maybe | None:
        return v if isinstance(v, Maybe) and isinstance(v.inner, Header) else None

    def here(self, env: Env) -> Env:
        return env

    def branch(self, cond: Scalar[object]) -> tuple[Env, Env]:
        return dict(self.env), dict(self.env)

    def presence_branch(self, value: Narrowable, present_env: Env) -> tuple[Env, Env]:
        return present_env, dict(self.env)

    def refusal(self, node: ast.AST, message: str, hint: str | None = None) -> DslError:
        return self.err(node, message, hint)

    def refusal_in(self, source: FunctionSource, node: ast.AST, message: str, hint: str | None = None) -> DslError:
        return source.error(node, message, hint)

    def record(self, node: ast.AST, v: Kind) -> Kind:
        """The typed AST: each expression's type, and its constant where it is the same every time."""
        if isinstance(v, Scalar):
            self.facts.record(self.ctx, node, v)
        return v

    def resume(self, envs: list[Env]) -> None:
        """Continue where `envs` meet (none: unreachable)."""
        merged = join(envs)
        self.reachable = merged is not None
        self.env = merged if merged is not None else {}

    def enter(self, envs: list[Env]) -> bool:
        """Continue in the join of `envs`; False if no path reaches it (then nothing is reachable, and the
        locals are left as they were, as the emitter leaves them)."""
        merged = join(envs)
        if merged is None:
            self.reachable = False
            return False
        self.reachable = True
        self.env = merged
        return True

    # The methods a concept calls in a later one.
    @abstractmethod
    def expr(self, node: ast.expr) -> Kind:
        """Check an expression; record its type (and constant)."""

    @abstractmethod
    def body(self, stmts: list[ast.stmt]) -> None:
        """Check a list of statements."""

    @abstractmethod
    def undefined(self, node: ast.expr, name: str) -> DslError:
        """The error for a name that has no value here."""


__all__ = ["CheckerBase", "Loop", "Scope", "read_function"]
