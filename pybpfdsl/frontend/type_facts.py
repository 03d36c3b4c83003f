"""The typed AST: what stage 2 (`typecheck`) found about each expression, which pure-Python mode reads.

Takes, while the checker walks the AST, each expression's scalar (`TypeRecorder.record`), the result
of each `op=` statement (on a local, a Global or a map value: it has no expression node), each local's
type, each inlined call's helper parse, each `random() < p` compared by its raw bits and each `op=`
on state that is an atomic add; gives the frozen `TypeFacts`: the DSL type of each expression, its
constant where it is the same one every time the node is checked, whether that constant is untyped,
the locals' types per function, the helper parse each call inlines, the comparisons made on the raw
random bits, the updates that are atomic adds and each print's format (`lang.printk.PrintFormat`, which
the emitter compiles and pure Python renders). Keys are (lowering context, node): an unrolled
loop's body is checked once per item, perhaps with different types or constants (`Ctx`).

The types sit in tables keyed by node rather than on the nodes, so the user's AST stays Python's own.
`TypedFunction` is a function's parse with its tables; the emitter emits from the same trees, reads the
decisions recorded here, and checks each scalar it computes against them (`TypeFacts.disagreement`).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from types import FunctionType

from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang.printk import PrintFormat
from pybpfdsl.lang.types import ScalarType

Ctx = tuple[tuple[ast.AST, int], ...]
"""Where a node is checked: the (loop, iteration) pairs of the enclosing unrolled `for x in (…)` loops."""
Key = tuple[Ctx, ast.AST]


@dataclass(frozen=True)
class TypeFacts:
    """Each expression's type and constant, per lowering context. Augmented assignments to locals are
    recorded under their statement node (the operation's result)."""

    types: dict[Key, ScalarType] = field(default_factory=dict)
    consts: dict[Key, int | float] = field(default_factory=dict)
    literals: set[Key] = field(default_factory=set)  # untyped constants
    const_seen: set[Key] = field(default_factory=set)  # constant at least once (perhaps not every time)
    var_types: dict[FunctionType, dict[str, ScalarType]] = field(default_factory=dict)
    # The helper source each inline call was lowered from (each call parses the helper anew).
    inline_sources: dict[Key, FunctionSource] = field(default_factory=dict)
    # Comparisons `random() < p` lowered as the raw random bits against a threshold (`fold.random_threshold`).
    random_thresholds: set[Key] = field(default_factory=set)
    # `op=` statements on a Global or a map value lowered as an atomic add of the converted operand.
    atomic_adds: set[Key] = field(default_factory=set)
    # Each `print(...)` call's format: the one description the kernel's text and pure Python's come from.
    print_formats: dict[Key, PrintFormat] = field(default_factory=dict)
    # `while cond:` loops without `bounded(...)` whose iterations the checker counted: their bound.
    while_bounds: dict[Key, int] = field(default_factory=dict)

    def disagreement(self, ctx: Ctx, node: ast.AST, v: Scalar[object]) -> str | None:
        """What is wrong with a scalar the emitter computed for `node`, by this typed AST (None: it
        agrees): another type, another constant, a constant where the checker never had one, an
        untyped constant where the checker had a typed one."""
        key = (ctx, node)
        known = self.types.get(key)
        if known != v.type:
            problem = f"type {v.type}, checked {known}"
        elif key in self.consts and self.consts[key] != v.const:
            problem = f"constant {v.const!r}, checked {self.consts[key]!r}"
        elif key not in self.consts and v.const is not None and key not in self.const_seen:
            problem = f"constant {v.const!r}, checked none"
        elif v.literal and key not in self.literals:
            problem = "an untyped constant, checked a typed one"
        else:
            return None
        where = f"line {getattr(node, 'lineno', '?')} `{ast.unparse(node)[:60]}`"
        return f"the emitter and the type checker disagree at {where}: {problem}"


class TypeRecorder:
    """Collects `TypeFacts` while the emitter checks and emits."""

    def __init__(self) -> None:
        self.facts = TypeFacts()
        self._not_const: set[Key] = set()

    @property
    def var_types(self) -> dict[FunctionType, dict[str, ScalarType]]:
        return self.facts.var_types

    @property
    def inline_sources(self) -> dict[Key, FunctionSource]:
        return self.facts.inline_sources

    def random_threshold(self, ctx: Ctx, node: ast.AST) -> None:
        """`random() < p` at `node` compares the raw random bits with a threshold."""
        self.facts.random_thresholds.add((ctx, node))

    def atomic_add(self, ctx: Ctx, node: ast.AST) -> None:
        """The `op=` statement `node` updates its state with an atomic add."""
        self.facts.atomic_adds.add((ctx, node))

    def print_format(self, ctx: Ctx, node: ast.Call, fmt: PrintFormat) -> None:
        """The `print` call `node` has format `fmt`."""
        self.facts.print_formats[(ctx, node)] = fmt

    def while_bound(self, ctx: Ctx, node: ast.While, count: int) -> None:
        """The `while` loop `node` (written without `bounded`) runs at most `count` times."""
        self.facts.while_bounds[(ctx, node)] = count

    def record(self, ctx: Ctx, node: ast.AST, v: Scalar[object]) -> None:
        """A scalar's type, and its constant while it is the same one every time the node is checked in
        this context."""
        key = (ctx, node)
        types, consts = self.facts.types, self.facts.consts
        types[key] = v.type
        if v.const is not None and key not in self._not_const:
            if key in consts and consts[key] != v.const:
                self._not_const.add(key)
                del consts[key]
            else:
                consts[key] = v.const
        elif v.const is None:
            self._not_const.add(key)
            consts.pop(key, None)
        if v.const is not None:
            self.facts.const_seen.add(key)
        if v.literal:
            self.facts.literals.add(key)


@dataclass(frozen=True)
class TypedFunction:
    """The type checker's product for one @xdp function: its parse and the typed AST over it (and over
    the parse of each helper it inlines). The emitter emits from these very trees."""

    source: FunctionSource
    facts: TypeFacts

