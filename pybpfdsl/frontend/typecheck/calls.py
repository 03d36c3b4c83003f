"""Checking calls: DSL built-ins, type conversions (`u32(x)`), record constructors, methods of maps,
ring buffers and the payload, and @inline helpers, typed at each call site.

Takes a call node; gives its value's kind. An @inline helper's body is checked at each call, from a
fresh parse of its source (the typed AST keeps that parse per call site, `TypedAst.inline_sources`, and
the emitter inlines the very same tree), in a scope of its own: its own locals and declared types, its
returns joined into one value of its declared return type.
"""

from __future__ import annotations

import ast
from types import FunctionType
from typing import Any

from pybpfdsl.frontend.builtin_forms import BuiltinForms
from pybpfdsl.frontend.function_scope import FunctionScope
from pybpfdsl.frontend.source import FunctionSource, read_function
from pybpfdsl.frontend.typecheck import packet_moves
from pybpfdsl.frontend.typecheck.arithmetic import computed
from pybpfdsl.frontend.typecheck.base import Scope
from pybpfdsl.frontend.typecheck.conditions import ConditionChecker
from pybpfdsl.frontend.typecheck.kinds import Env, Header, Kind, Maybe, Payload, Record, describe, join
from pybpfdsl.frontend.values import (
    PARSED_ATTRIBUTES,
    Callee,
    NoneVal,
    PacketVal,
    Scalar,
    StateVal,
    StringVal,
)
from pybpfdsl.lang import builtins as dsl_builtins
from pybpfdsl.lang import printk
from pybpfdsl.lang.fib import FibResult
from pybpfdsl.lang.redirect import MISS_ACTIONS, CpuMap, DevMap
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import BpfMap
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, common_type, promote, u32, u64

_HELPER_RESULTS = {"prandom_u32": u32, "now_ns": u64, "cpu_id": u32}


class CallChecker(ConditionChecker, BuiltinForms[Kind, Scalar[object]]):
    """Calls: built-ins, conversions, records, methods, @inline helpers."""

    # --- built-ins: the steps `BuiltinForms` takes
    def random_number(self) -> Scalar[object]:
        return computed(FLOAT)

    def helper_result(self, name: str) -> Scalar[object]:
        return computed(_HELPER_RESULTS[name])

    def randint_type(self, lo: Scalar[object], hi: Scalar[object], node: ast.Call) -> ScalarType:
        return promote(common_type(lo.type, hi.type))

    def random_between(self, lo: Scalar[object], hi: Scalar[object]) -> Scalar[object]:
        return computed(u64)

    def fib_result(self, dst: Scalar[object], ifindex: Scalar[object]) -> Record:
        return Record(FibResult)

    def redirect_to(self, ifindex: Scalar[object]) -> Scalar[object]:
        return computed(u32)  # the action: XDP_REDIRECT

    def in_register(self, v: Scalar[object]) -> Scalar[object]:
        return v

    def print_call(self, node: ast.Call) -> NoneVal:
        """`print(...)`: constant strings and integers, at most MAX_VALUES of them not constant. Its format
        is decided here, once, and recorded for the emitter and pure Python (`TypeFacts.print_formats`)."""
        if node.keywords:
            raise self.err(node, "print takes only the values to show (no sep=, end=, file= or flush=)",
                           "the kernel's trace line is the values separated by spaces")
        parts: list[str | printk.Shown] = []
        for arg in node.args:
            v = self.expr(arg)
            if isinstance(v, StringVal):
                parts.append(v.text)
                continue
            s = self.as_scalar(v, arg)
            if s.type.is_fixed:
                raise self.err(arg, "print shows integers and constant strings, not floats",
                               "bpf_trace_printk has no float conversion: print i64(x * 1000), or u32(x)")
            number = printk.literal(arg)
            parts.append(number if number is not None else printk.Shown(s.type))
        fmt = printk.PrintFormat(tuple(parts))
        problem = fmt.problem()
        if problem is not None:
            raise self.err(node, *problem)
        self.facts.print_format(self.ctx, node, fmt)
        return NoneVal()

    # --- conversions and records
    def struct_call(self, node: ast.Call, cls: type[Struct]) -> Record:
        given = self.struct_arguments(node, cls)
        for f in cls.fields():  # in declaration order, as the emitter evaluates them
            if f.name in given:
                self.convert(self.scalar(given[f.name]), f.type, given[f.name], implicit=True)
        return Record(cls)

    # --- @inline helpers
    def inline_source(self, node: ast.Call, fn: FunctionType) -> FunctionSource:
        source = read_function(fn)
        self.facts.inline_sources[(self.ctx, node)] = source
        return source

    def helper_scope(self, source: FunctionSource, fn: FunctionType) -> Scope:
        return Scope(source, {}, self.facts.var_types.setdefault(fn, {}), returns=[])

    def falls_through(self) -> bool:
        return self.reachable

    def return_nothing(self, callee: FunctionScope[Env, Any, Any]) -> None:
        assert callee.returns is not None
        callee.returns.append({})
        self.reachable = False

    def join_returns(self, returns: list[Env], caller_env: Env) -> Env | None:
        merged = join([{**caller_env, **r} for r in returns])
        self.reachable = merged is not None
        return merged

    def record_class(self, v: object) -> type[Struct] | None:
        return v.cls if isinstance(v, Record) else None

    def passed_whole(self, v: object) -> bool:
        return isinstance(v, Header | Maybe | Payload)

    # --- methods
    def method_call(self, node: ast.Call, base: Kind, attr: str) -> Kind:
        if isinstance(base, StateVal) and isinstance(base.obj, BpfMap):
            return self.map_method(node, base.obj, attr)
        if isinstance(base, Payload):
            return self.payload_method(node, attr)
        if isinstance(base, PacketVal) and attr in packet_moves.MOVES:
            return packet_moves.check_move(self, node, attr)
        if isinstance(base, StateVal) and isinstance(base.obj, RingBuf):
            return self.ringbuf_method(node, base.obj, attr)
        if isinstance(base, Callee) and base.kind == "builtin" and isinstance(base.target, str):
            # `random.random()` after `from pybpfdsl import *`: the DSL's random() hides Python's module.
            call = attr if hasattr(dsl_builtins, attr) and not attr.startswith("_") else base.target
            raise self.err(node, f"`{base.target}` here is the DSL's {base.target}(), which has no method `{attr}`",
                           f"call `{call}(...)` (pybpfdsl's; Python's module of that name cannot be used)")
        raise self.err(node, f"{describe(base)} has no method `{attr}`")

    def map_method(self, node: ast.Call, m: BpfMap, attr: str) -> Kind:
        if isinstance(m, DevMap | CpuMap):
            return self.redirect_method(node, m, attr)
        if attr == "get":
            if not 1 <= len(node.args) <= 2 or node.keywords:
                raise self.err(node, "write `m.get(key)` or `m.get(key, default)`")
            self.map_key(m, node.args[0])
            found = self.map_value_kind(m)
            if len(node.args) == 1:
                return Maybe(found)
            default_node = node.args[1]
            vt = m.value_type
            if not isinstance(vt, ScalarType):
                default = self.expr(default_node)
                if not isinstance(default, Record) or default.cls is not vt:
                    raise self.err(default_node, f"the default must be a {vt.__name__} record")
                return Record(vt)
            self.convert(self.scalar(default_node), vt, default_node, implicit=True)
            return computed(vt)
        if attr in ("items", "keys", "values"):
            raise self.err(node, "iterating a map inside the program is not supported",
                           "read maps from Python (the control plane) instead")
        raise self.err(node, f"{m.kind_name} has no method `{attr}` in a DSL function",
                       "use m[k], m.get(k, default), m[k] = v, del m[k], k in m")

    def redirect_method(self, node: ast.Call, m: DevMap | CpuMap, attr: str) -> Kind:
        """`ports.redirect(key)` or `ports.redirect(key, XDP_PASS)`: the action (bpf_redirect_map)."""
        usage = f"write `return {m.name}.redirect(key)` or `return {m.name}.redirect(key, XDP_PASS)`"
        if attr != "redirect":
            raise self.err(node, f"a {m.kind_name} has no method `{attr}` in a DSL function; the program can "
                           "only redirect through it", usage + "; fill it from Python: " + f"`{m.name}[0] = ...`")
        if not 1 <= len(node.args) <= 2 or node.keywords:
            raise self.err(node, f"{m.name}.redirect takes a key and optionally the action for an empty slot", usage)
        self.convert(self.scalar(node.args[0]), u32, node.args[0], implicit=True)
        if len(node.args) == 2:
            miss = self.scalar(node.args[1])
            if miss.const is None or int(miss.const) not in MISS_ACTIONS:
                raise self.err(node.args[1], "the action for an empty slot must be a constant XDP_ABORTED, "
                               "XDP_DROP, XDP_PASS or XDP_TX", "the kernel takes it from the flags' low two bits")
        return computed(u32)

    def payload_method(self, node: ast.Call, attr: str) -> Kind:
        if attr != "read":
            raise self.err(node, f"the payload has no method `{attr}`",
                           "use pkt.payload[i] or pkt.payload.read(T, offset)")
        if len(node.args) != 2 or node.keywords:
            raise self.err(node, "write `pkt.payload.read(StructType, offset)`")
        cls_value = self.expr(node.args[0])
        if not (isinstance(cls_value, Callee) and cls_value.kind == "struct"):
            raise self.err(node.args[0], "the first argument of read() must be a Struct class")
        cls = cls_value.target
        assert isinstance(cls, type) and issubclass(cls, Struct)
        index = self.scalar(node.args[1])
        if not index.type.is_int:
            raise self.err(node.args[1], "the offset must be an integer")
        if not (index.const is not None and int(index.const) < 0):
            self.convert(index, u64, node.args[1])
        return Maybe(Record(cls))

    def ringbuf_method(self, node: ast.Call, rb: RingBuf[Struct], attr: str) -> Scalar[object]:
        """`events.output(Record(...))`: True when the record was written, False when the buffer was full."""
        name, cls = rb.name, rb.record.__name__
        if attr != "output":
            raise self.err(node, f"RingBuf has no method `{attr}` in a DSL function",
                           f"write `{name}.output({cls}(...))`; read records from Python with `{name}.poll()`")
        if len(node.args) != 1 or node.keywords:
            raise self.err(node, f"`{name}.output` takes exactly one {cls} record",
                           f"write `{name}.output({cls}(field=..., ...))`")
        record = self.present_record(self.expr(node.args[0]))
        if not isinstance(record, Record) or record.cls is not rb.record:
            unchecked = isinstance(record, Maybe) and isinstance(record.inner, Record) \
                and record.inner.cls is rb.record
            raise self.err(node.args[0], f"{name} holds {cls} records, not {describe(record)}",
                           f"check first: `if {ast.unparse(node.args[0])} is not None: ...`" if unchecked
                           else f"build one: `{name}.output({cls}(...))`")
        return computed(BOOL)


__all__ = ["CallChecker", "PARSED_ATTRIBUTES"]
