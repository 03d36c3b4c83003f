"""The typed AST: what stage 2 (`typecheck`) found about each expression, which pure-Python mode reads.

Takes, while the checker walks the AST, each expression's scalar (`TypeRecorder.record`), the result
of each `op=` statement (on a local, a Global or a map value: it has no expression node), each local's
type, each inlined call's helper parse, each `random() < p` compared by its raw bits and each `op=`
on state that is an atomic add; gives the frozen `TypeFacts`: the DSL type of each expression, its
constant where it is the same one every time the node is checked, whether that constant is untyped,
the locals' types per function, the helper parse each call inlines, the comparisons made on the raw
random bits and the updates that are atomic adds. Keys are (lowering context, node): an unrolled
loop's body is checked once per item, perhaps with different types or constants (`Ctx`).

The types sit in tables keyed by node rather than on the nodes, so the user's AST stays Python's own.
`TypedFunction` is a function's parse with its tables; the emitter emits from the same trees, records
its own decisions with a `TypeRecorder` too, and `disagreements` compares the two (they must be equal).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from types import FunctionType

from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.values import Scalar
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
    var_types: dict[FunctionType, dict[str, ScalarType]] = field(default_factory=dict)
    # The helper source each inline call was lowered from (each call parses the helper anew).
    inline_sources: dict[Key, FunctionSource] = field(default_factory=dict)
    # Comparisons `random() < p` lowered as the raw random bits against a threshold (`fold.random_threshold`).
    random_thresholds: set[Key] = field(default_factory=set)
    # `op=` statements on a Global or a map value lowered as an atomic add of the converted operand.
    atomic_adds: set[Key] = field(default_factory=set)


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
        if v.literal:
            self.facts.literals.add(key)


@dataclass(frozen=True)
class TypedFunction:
    """The type checker's product for one @xdp function: its parse and the typed AST over it (and over
    the parse of each helper it inlines). The emitter emits from these very trees."""

    source: FunctionSource
    facts: TypeFacts


def disagreements(checked: TypeFacts, emitted: TypeFacts) -> list[str]:
    """Where two typed ASTs of one function differ (the checker's, and the one the emitter would have
    recorded from its own decisions): empty when they agree."""
    out: list[str] = []

    def where(key: Key) -> str:
        ctx, node = key
        return f"line {getattr(node, 'lineno', '?')} `{ast.unparse(node)[:60]}` (context {[i for _, i in ctx]})"

    for label, a, b in (("type", checked.types, emitted.types), ("constant", checked.consts, emitted.consts)):
        for key in a.keys() | b.keys():
            if a.get(key) != b.get(key) or (key in a) != (key in b):
                out.append(f"{label} of {where(key)}: checked {a.get(key)!r}, emitted {b.get(key)!r}")
    for label, x, y in (("untyped constant", checked.literals, emitted.literals),
                        ("random threshold", checked.random_thresholds, emitted.random_thresholds),
                        ("atomic add", checked.atomic_adds, emitted.atomic_adds)):
        for key in x ^ y:
            out.append(f"{label} at {where(key)}: checked {key in x}, emitted {key in y}")
    if checked.inline_sources.keys() != emitted.inline_sources.keys():
        out.append("the inlined calls differ")
    if checked.var_types != emitted.var_types:
        out.append(f"the locals' types differ: checked {checked.var_types}, emitted {emitted.var_types}")
    return out
