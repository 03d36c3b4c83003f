"""SSA construction for structured control flow: environments of locals, flows and their merging.

A *flow* is an open block together with the values the locals have at its end. Branches split one flow
into two; `merge` joins flows into one block whose parameters carry the locals that differ. This is how
the frontend builds SSA without a separate renaming pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from pybpfdsl.frontend.values import HeaderVal, LocalValue, OptionalVal, PacketVal, PayloadVal, Scalar, StructVal
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.builder import IRBuilder
from pybpfdsl.ir.types import IRType, StructType
from pybpfdsl.lang.types import BOOL, u64

Env = dict[str, LocalValue]


@dataclass
class Flow:
    """An open block and the locals' values at its end."""

    block: n.Block
    env: Env


def _same_shape(a: LocalValue, b: LocalValue) -> bool:
    if type(a) is not type(b):
        return False
    match a, b:
        case Scalar(), Scalar():
            return a.type == b.type
        case StructVal(), StructVal():
            return a.cls is b.cls
        case HeaderVal(), HeaderVal():
            return a.spec == b.spec
        case OptionalVal(), OptionalVal():
            return _same_shape(a.inner, b.inner)
    return True


def component_types(v: LocalValue) -> list[IRType]:
    match v:
        case Scalar(type=t):
            return [t]
        case StructVal(cls=c):
            return [StructType(c)]
        case HeaderVal() | PayloadVal():
            return [u64]
        case OptionalVal(inner=i):
            return [BOOL, *component_types(i)]
    return []


def components(v: LocalValue) -> list[n.Value]:
    match v:
        case Scalar(value=value):
            assert value is not None, "materialize constants before splitting"
            return [value]
        case StructVal(value=value):
            return [value]
        case HeaderVal(offset=o) | PayloadVal(offset=o):
            return [o]
        case OptionalVal(inner=i, present=p):
            return [p, *components(i)]
    return []


def rebuild(template: LocalValue, values: list[n.Value], narrowed: bool) -> LocalValue:
    match template:
        case Scalar(type=t):
            return Scalar(t, values[0])
        case StructVal(cls=c):
            return StructVal(c, values[0])
        case HeaderVal(spec=s):
            return HeaderVal(s, values[0])
        case PayloadVal():
            return PayloadVal(values[0])
        case OptionalVal(inner=i):
            inner = rebuild(i, values[1:], narrowed)
            assert isinstance(inner, Scalar | StructVal | HeaderVal)
            return OptionalVal(inner, values[0], narrowed)
    return PacketVal()


def _numbers_where_checked(vals: list[LocalValue]) -> list[LocalValue]:
    """A local that is a number on some paths and, on the others, a number that may be None but was
    checked not to be (`if b is None: b = 0`) is a number on every path."""
    if any(isinstance(v, Scalar) for v in vals) and all(
            isinstance(v, Scalar) or (isinstance(v, OptionalVal) and v.narrowed and isinstance(v.inner, Scalar))
            for v in vals):
        return [v.inner if isinstance(v, OptionalVal) else v for v in vals]
    return vals


class FlowBuilder:
    """Branching and merging on top of an IRBuilder."""

    def __init__(self, builder: IRBuilder, materialize: Callable[[LocalValue], LocalValue]) -> None:
        self.b = builder
        self.materialize = materialize

    def branch(self, cond: n.Value, env: Env, line: int,
               env_true: Env | None = None, env_false: Env | None = None) -> tuple[Flow, Flow]:
        t, f = self.b.new_block("then"), self.b.new_block("else")
        self.b.terminate(n.Branch(cond, n.Edge(t.name), n.Edge(f.name), line=line))
        return Flow(t, dict(env_true if env_true is not None else env)), Flow(
            f, dict(env_false if env_false is not None else env))

    def merge(self, flows: list[Flow], line: int, hint: str = "join") -> Env | None:
        """Continue in one block reached by all `flows`; returns the merged locals (None: unreachable).

        A local defined on only some paths, or holding different kinds on different paths, is dropped:
        using it afterwards is an error that says it is not defined on every path.
        """
        if not flows:
            self.b.set_block(None)
            return None
        if len(flows) == 1:
            self.b.set_block(flows[0].block)
            return flows[0].env
        names = [k for k in flows[0].env if all(k in f.env for f in flows[1:])]
        merged: Env = {}
        carried: list[tuple[str, LocalValue, bool]] = []
        for name in names:
            vals = _numbers_where_checked([f.env[name] for f in flows])
            for f, v in zip(flows, vals):
                f.env[name] = v
            if all(v is vals[0] or v == vals[0] for v in vals[1:]):
                merged[name] = vals[0]
                continue
            if not all(_same_shape(vals[0], v) for v in vals[1:]):
                continue
            narrowed = all(not isinstance(v, OptionalVal) or v.narrowed for v in vals)
            carried.append((name, vals[0], narrowed))
        join = self.b.new_block(hint)
        params: dict[str, list[n.Value]] = {}
        for name, template, _ in carried:
            params[name] = [self.b.value(t, name) for t in component_types(template)]
            join.params.extend(params[name])
        for flow in flows:
            self.b.set_block(flow.block)
            args: list[n.Value] = []
            for name, _, _ in carried:
                value = self.materialize(flow.env[name])
                flow.env[name] = value
                args.extend(components(value))
            self.b.terminate(n.Jump(n.Edge(join.name, tuple(args)), line=line))
        self.b.set_block(join)
        for name, template, narrowed in carried:
            merged[name] = rebuild(template, params[name], narrowed)
        return merged


def narrowed(v: OptionalVal) -> OptionalVal:
    return replace(v, narrowed=True)
