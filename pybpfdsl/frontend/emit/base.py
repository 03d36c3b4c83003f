"""The emitter's shared state: the IR builder, the function being emitted, its locals, the current line.

The emitter (stage 3 of the frontend, after `resolve` and `typecheck`) is split by
concept into mixins over this base: `statements`, `loops`, `conditions`, `expressions`, `arithmetic`,
`calls`, `state_access`, with packet parsing in `packet_access` and built-ins in `builtin_calls` (free
functions over an `EmitterBase`). Each concept module imports this base and nothing of the others: the
methods one concept calls in another are declared here, abstract, so the modules form no import cycle.
`frontend.lower.Lowerer` combines them. The walk it shares with the checker (which step each form
takes) is the `*_forms` modules' (`frontend/expression_forms.py`, ...), which the base and the mixins
inherit.

Takes one `@xdp` function's typed AST (`TypedFunction`: it emits from those very trees, inlining the
helper parses it holds); keeps, while emitting, the open block, the locals of each path (`flow.Env`),
and checks each scalar it computes against the typed AST (`record`).
"""

from __future__ import annotations

import ast
import math
import warnings
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from types import FunctionType
from typing import TypeVar

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.condition_forms import ConditionForms, Narrowable
from pybpfdsl.frontend.expression_forms import ExpressionForms
from pybpfdsl.frontend.flow import Env, Flow, FlowBuilder
from pybpfdsl.frontend.fold import raw_constant
from pybpfdsl.frontend.function_scope import FunctionScope, InFunction
from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.type_facts import Ctx, TypedFunction
from pybpfdsl.frontend.values import DslValue, HeaderVal, LocalValue, OptionalVal, Scalar
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.builder import IRBuilder
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang import fixed
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslWarning
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import BpfMap, Global, StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import FLOAT, ScalarType

_K = TypeVar("_K")


@dataclass
class LoopContext:
    carried: list[str]
    header: str | None  # None for unrolled loops
    break_flows: list[Flow] = field(default_factory=list)
    continue_flows: list[Flow] = field(default_factory=list)


@dataclass
class Scope(FunctionScope[Env, LoopContext, Flow]):
    """The function being lowered: the program itself or an inlined helper."""

    call_line: int | None = None  # helpers from other files report the call site's line
    source_line: int = 0  # the line of `source` being lowered (what warnings point at), 0 before the first


class EmitterBase(InFunction[Env], ExpressionForms[DslValue, Scalar], ConditionForms[Flow, Env]):
    scope: Scope

    def __init__(self, typed: TypedFunction, program_name: str) -> None:
        self.main = typed.source
        self.typed = typed.facts
        """The typed AST (stage 2): the helper parses to inline, and what `record` checks against."""
        self.name = program_name
        self.b = IRBuilder()
        self.flow = FlowBuilder(self.b, self.materialize)
        self.state: dict[str, StateObject] = {}
        self.ctx: Ctx = ()
        self.scope = Scope(self.main, {})
        self.local_types: dict[FunctionType, dict[str, ScalarType]] = {self.main.function: self.scope.var_types}
        """The locals' types per function as the emitter meets their assignments (checked against the
        typed AST's at the end)."""
        self.inline_stack: list[FunctionType] = []
        self.line = self.main.first_line
        self.lossy_floats_warned: set[tuple[str, int, float]] = set()
        """(file, line, constant) of the lossy float constants warned about: once each per compile."""
        self.hint_ranks: dict[str, int] = {}
        """Block → the strength of the likelihood hint on its branch (`ConditionEmitter.mark_rare`)."""
        self.loop_counters: dict[int, tuple[ast.AST, str]] = {}
        """Loop statement (by identity; the node is kept so its id is not reused) → its hidden counter."""

    def loop_counter(self, kind: str, loop: ast.AST) -> str:
        """The hidden counter of a `for`/`while` statement, numbered in the order loops are first lowered:
        the same names on every run (a name from the node's id changed the IR text from run to run), and
        one per statement however often it is inlined."""
        known = self.loop_counters.get(id(loop))
        if known is None:
            known = (loop, f"${kind}{len(self.loop_counters)}")
            self.loop_counters[id(loop)] = known
        return known[1]

    def result_type(self, node: ast.AST) -> ScalarType:
        """The type the typed AST gives `node`'s value (an expression, or an `op=` statement's operation):
        the type an operation computes in is read here, never decided by the emitter."""
        return self.typed.types[(self.ctx, node)]

    def unchecked(self, node: ast.AST) -> AssertionError:
        """A program the emitter cannot emit, which the type checker (stage 2) refuses before emission,
        with the user's message: reaching one here is a compiler bug, not the user's error."""
        try:
            text = ast.unparse(node)[:60]
        except Exception:  # pragma: no cover - only for the message
            text = type(node).__name__
        return AssertionError(f"line {getattr(node, 'lineno', '?')}: the type checker let through `{text}`, "
                              "which the emitter cannot emit")

    def expr(self, node: ast.expr) -> DslValue:
        """`lower_expr`, by the name the steps shared with the checker (`ExpressionForms`) call it."""
        return self.lower_expr(node)

    def unusable(self, node: ast.expr, name: str, value: object) -> AssertionError:
        return self.unchecked(node)

    def enter_join(self, paths: list[Flow], hint: str) -> bool:
        env = self.flow.merge(paths, self.line, hint)
        if env is None:
            return False
        self.env = env
        return True

    def unary_result_type(self, v: Scalar, node: ast.AST) -> ScalarType:
        return self.result_type(node)

    def optional(self, v: object) -> OptionalVal | None:
        return v if isinstance(v, OptionalVal) else None

    def optional_header(self, v: object) -> OptionalVal | None:
        return v if isinstance(v, OptionalVal) and isinstance(v.inner, HeaderVal) else None

    def here(self, env: Env) -> Flow:
        assert self.b.current is not None
        return Flow(self.b.current, env)

    def branch(self, cond: Scalar) -> tuple[Flow, Flow]:
        return self.flow.branch(self.scalar_value(cond), self.env, self.line)

    def presence_branch(self, value: Narrowable, present_env: Env) -> tuple[Flow, Flow]:
        assert isinstance(value, OptionalVal)
        return self.flow.branch(value.present, self.env, self.line, env_true=present_env)

    def refusal(self, node: ast.AST, message: str, hint: str | None = None) -> AssertionError:
        """The checker has refused what the emitter would refuse here, so reaching it is a bug."""
        return self.unchecked(node)

    def refusal_in(self, source: FunctionSource, node: ast.AST, message: str,
                   hint: str | None = None) -> AssertionError:
        return self.unchecked(node)

    def set_line(self, node: ast.AST) -> None:
        self.scope.source_line = getattr(node, "lineno", self.scope.source_line)
        if self.scope.call_line is not None:
            self.line = self.scope.call_line
        else:
            self.line = getattr(node, "lineno", self.line)

    def set_line_expr(self, node: ast.AST) -> None:
        self.scope.source_line = getattr(node, "lineno", self.scope.source_line)
        if self.scope.call_line is None and hasattr(node, "lineno"):
            self.line = node.lineno

    def new(self, t: object, hint: str = "") -> n.Value:
        return self.b.value(t, hint)  # type: ignore[arg-type]

    def op(self, cls: Callable[..., n.Instr], t: object, *operands: object, hint: str = "") -> n.Value:
        """Emit `cls(fresh value of type t, *operands)` at the current line and return the value."""
        return self.b.emit(cls(self.new(t, hint), *operands, line=self.line))

    def const(self, t: ScalarType, value: int) -> n.Value:
        return self.b.emit(n.Const(self.new(t), value, line=self.line))

    def materialize(self, v: LocalValue) -> LocalValue:
        if isinstance(v, Scalar) and v.value is None:
            return replace(v, value=self.scalar_value(v))
        return v

    def scalar_value(self, s: Scalar) -> n.Value:
        if s.value is not None:
            return s.value
        if s.type.is_fixed and isinstance(s.const, float):
            self.warn_lossy_float(s.const)
        return self.const(FLOAT if s.type.is_fixed else s.type, raw_constant(s))

    def warn_lossy_float(self, value: float, divisor: float | None = None) -> None:
        """Warn, at the user's line, when the Q32.32 value of a float constant the code uses is more than
        1% off the number written (`1e-9`, or the reciprocal the code multiplies by for `/ 1e9`). Rounding
        is the language's rule, not an error; but a constant this small is almost always a unit
        conversion (ns to s) that an integer divisor computes exactly."""
        file, line = self.scope.source.file, self.scope.source_line or self.scope.source.first_line
        if (file, line, value) in self.lossy_floats_warned:
            return
        loss = fold.lossy_rounding(value)
        if loss is None:
            return
        self.lossy_floats_warned.add((file, line, value))
        raw = fixed.from_float(value)
        becomes = f"{raw}·2⁻³² = {raw / fixed.ONE:.6g}" if raw else "0"
        what = (f"the float constant {value!r}" if divisor is None
                else f"dividing by {divisor!r} multiplies by its reciprocal {value!r}, which")
        inverse = 1 / value
        scale = round(inverse) if math.isfinite(inverse) else 0
        exact = scale != 0 and abs(inverse - scale) <= 1e-12 * abs(scale) and abs(scale) < 1 << 63
        fix = (f"to scale a value by it, divide by the integer instead: `x / {scale}` is exact" if exact else
               "scale the computation so the constant is not this small (another unit, or an integer divisor)")
        warnings.warn_explicit(f"{what} becomes {becomes} in Q32.32 fixed point ({float(loss):.1%} off); {fix}",
                               DslWarning, file, line)

    def record(self, node: ast.AST, v: DslValue) -> DslValue:
        """Check an expression's scalar against the typed AST (a difference is a compiler bug)."""
        if isinstance(v, Scalar):
            problem = self.typed.disagreement(self.ctx, node, v)
            if problem is not None:
                raise AssertionError(problem)
        return v

    # The methods one concept calls in another (defined in the concept's module).
    @abstractmethod
    def as_scalar(self, v: DslValue, node: ast.expr) -> Scalar:
        """The scalar a value is, or an error saying why it is not a number here."""

    @abstractmethod
    def compare(self, op: CmpOp, a: Scalar, b: Scalar, node: ast.AST) -> Scalar:
        """`a op b` for a comparison: folded, or emitted in the common type."""

    @abstractmethod
    def convert(self, v: Scalar, t: ScalarType, node: ast.AST, implicit: bool = False) -> Scalar:
        """Convert to `t` (implicit conversions refuse to lose information silently)."""

    @abstractmethod
    def global_aug(self, g: Global, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        """`g.value op= x`."""

    @abstractmethod
    def logical_not(self, v: Scalar, node: ast.AST) -> Scalar:
        """The negation of a bool."""

    @abstractmethod
    def lookup(self, m: BpfMap, key: n.Value) -> n.Value:
        """A reference to a map's value for `key` (null when absent)."""

    @abstractmethod
    def body(self, body: list[ast.stmt]) -> None:
        """Emit a list of statements."""

    @abstractmethod
    def lower_expr(self, node: ast.expr) -> DslValue:
        """Emit an expression, its scalar checked against the typed AST."""

    @abstractmethod
    def map_aug(self, m: BpfMap, index: ast.expr, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        """`m[k] op= x`."""

    @abstractmethod
    def map_key(self, m: BpfMap, node: ast.expr) -> n.Value:
        """A key expression converted to the map's key type."""

    @abstractmethod
    def map_method(self, node: ast.Call, m: BpfMap, attr: str) -> DslValue:
        """`m.get(...)` and the refusal of other map methods."""

    @abstractmethod
    def map_of(self, node: ast.expr) -> BpfMap:
        """The map an expression names."""

    @abstractmethod
    def map_value(self, m: BpfMap, node: ast.expr) -> n.Value:
        """A value expression converted to the map's value type."""

    @abstractmethod
    def membership(self, v: Scalar, constants: list[int], node: ast.AST) -> Scalar:
        """`v` equals one of `constants`."""

    @abstractmethod
    def optional_lookup(self, m: BpfMap, key: n.Value) -> OptionalVal:
        """`m.get(k)` without a default: the value, or None."""

    @abstractmethod
    def resume(self, flows: list[Flow], hint: str) -> None:
        """Continue after a construct in the join of `flows` (nothing reachable: no block)."""

    @abstractmethod
    def ringbuf_method(self, node: ast.Call, rb: RingBuf[Struct], attr: str) -> Scalar:
        """`rb.output(record)`."""

    @abstractmethod
    def zero_of(self, t: ScalarType | StructType) -> n.Value:
        """The zero of a scalar or record type."""

