"""Emitting calls: DSL built-ins (`builtin_forms`, `builtin_calls`), type conversions (`u32(x)`), record constructors,
methods of maps, ring buffers and the payload, and @inline helpers, which are inlined in place.

Takes a call node; gives its value. An inlined helper's body is emitted in a scope of its own (its own
locals and types, its returns joined into one value); helpers from other files report the call's line.
"""

from __future__ import annotations

import ast
from dataclasses import replace
from types import FunctionType
from typing import Any

from pybpfdsl.frontend.builtin_forms import BuiltinForms
from pybpfdsl.frontend.emit import builtin_calls, packet_access, packet_writes
from pybpfdsl.frontend.emit.base import EmitterBase, Scope
from pybpfdsl.frontend.flow import Env, Flow
from pybpfdsl.frontend.function_scope import FunctionScope
from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.values import (
    DslValue,
    HeaderVal,
    NoneVal,
    OptionalVal,
    PacketVal,
    PayloadVal,
    Scalar,
    StateVal,
    StructVal,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import StructType
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.fib import FibResult
from pybpfdsl.lang.redirect import CpuMap, DevMap
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import BpfMap
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import FLOAT, ScalarType, u32, u64

_HELPERS = {"prandom_u32": n.Helper.PRANDOM_U32, "now_ns": n.Helper.KTIME_GET_NS, "cpu_id": n.Helper.SMP_PROCESSOR_ID}


class CallEmitter(EmitterBase, BuiltinForms[DslValue, Scalar]):
    """Calls: built-ins, conversions, records, methods, inlined helpers."""

    # --- built-ins: the steps `BuiltinForms` takes
    def random_number(self) -> Scalar:
        bits = self.b.emit(n.Convert(self.new(u64), builtin_calls.helper_call(self, n.Helper.PRANDOM_U32),
                                     line=self.line))
        # 32 random bits read as a Q32.32 number are exactly r / 2**32, a value in [0, 1).
        return Scalar(FLOAT, self.b.emit(n.Reinterpret(self.new(FLOAT, "random"), bits, line=self.line)))

    def helper_result(self, name: str) -> Scalar:
        helper = _HELPERS[name]
        return Scalar(n.HELPER_RESULT[helper], builtin_calls.helper_call(self, helper))

    def randint_type(self, lo: Scalar, hi: Scalar, node: ast.Call) -> ScalarType:
        return self.result_type(node)

    def random_between(self, lo: Scalar, hi: Scalar) -> Scalar:
        lo64, hi64 = self.scalar_value(lo), self.scalar_value(hi)
        one = self.const(u64, 1)
        span = self.b.emit(n.Binary(self.new(u64), BinOp.ADD,
                                    self.b.emit(n.Binary(self.new(u64), BinOp.SUB, hi64, lo64, line=self.line)),
                                    one, line=self.line))
        r = self.b.emit(n.Convert(self.new(u64), builtin_calls.helper_call(self, n.Helper.PRANDOM_U32),
                                  line=self.line))
        scaled = self.b.emit(n.Binary(self.new(u64), BinOp.MUL, r, span, line=self.line))
        offset = self.b.emit(n.Binary(self.new(u64), BinOp.SHR, scaled, self.const(u64, 32), line=self.line))
        return Scalar(u64, self.b.emit(n.Binary(self.new(u64), BinOp.ADD, lo64, offset, line=self.line)))

    def print_call(self, node: ast.Call) -> NoneVal:
        return builtin_calls.print_call(self, node)

    def fib_result(self, dst: Scalar, ifindex: Scalar) -> StructVal:
        return StructVal(FibResult, self.op(n.FibLookup, StructType(FibResult), self.scalar_value(dst),
                                            self.scalar_value(ifindex), hint="fib"))

    def redirect_to(self, ifindex: Scalar) -> Scalar:
        return Scalar(u32, self.op(n.Redirect, u32, self.scalar_value(ifindex), hint="action"))

    def in_register(self, v: Scalar) -> Scalar:
        return replace(v, value=self.scalar_value(v))

    def struct_call(self, node: ast.Call, cls: type[Struct]) -> StructVal:
        fields = cls.fields()
        given = self.struct_arguments(node, cls)
        values = []
        for f in fields:
            if f.name in given:
                v = self.convert(self.scalar(given[f.name]), f.type, given[f.name], implicit=True)
            else:
                v = Scalar(f.type, const=0)
            values.append(self.scalar_value(v))
        out = self.b.emit(n.MakeStruct(self.new(StructType(cls)), tuple(values), line=self.line))
        return StructVal(cls, out)

    def inline_source(self, node: ast.Call, fn: FunctionType) -> FunctionSource:
        return self.typed.inline_sources[(self.ctx, node)]  # the parse the checker typed

    def helper_scope(self, source: FunctionSource, fn: FunctionType) -> Scope:
        return Scope(source, {}, self.local_types.setdefault(fn, {}), returns=[],
                     call_line=None if source.file == self.main.file else self.line)

    def falls_through(self) -> bool:
        return not self.b.terminated

    def return_nothing(self, callee: FunctionScope[Env, Any, Any]) -> None:
        assert self.b.current is not None and callee.returns is not None
        callee.returns.append(Flow(self.b.current, {}))
        self.b.set_block(None)

    def join_returns(self, returns: list[Flow], caller_env: Env) -> Env | None:
        for f in returns:
            f.env = {**caller_env, **f.env}
        return self.flow.merge(returns, self.line, "ret")

    def record_class(self, v: object) -> type[Struct] | None:
        return v.cls if isinstance(v, StructVal) else None

    def passed_whole(self, v: object) -> bool:
        return isinstance(v, HeaderVal | OptionalVal | PayloadVal)

    def method_call(self, node: ast.Call, base: DslValue, attr: str) -> DslValue:
        if isinstance(base, StateVal) and isinstance(base.obj, DevMap | CpuMap):
            return builtin_calls.redirect_map(self, node, base.obj, attr)
        if isinstance(base, StateVal) and isinstance(base.obj, BpfMap):
            return self.map_method(node, base.obj, attr)
        if isinstance(base, PayloadVal):
            return packet_access.payload_method(self, node, base, attr)
        if isinstance(base, PacketVal) and attr in ("adjust_head", "adjust_tail"):
            return packet_writes.move(self, node, attr)
        if isinstance(base, StateVal) and isinstance(base.obj, RingBuf):
            return self.ringbuf_method(node, base.obj, attr)
        raise self.unchecked(node)
