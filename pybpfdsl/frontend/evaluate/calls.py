"""Pure-Python mode's calls: built-ins (each helper called exactly once, as in the IR), conversions,
record constructors (fields in declaration order), @inline helpers run from the parse the typed AST
holds for the call (arguments in parameter order), `m.get` (the default after the lookup) and
`payload.read`."""

from __future__ import annotations

import ast
import ipaddress
from types import FunctionType

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.evaluate.expressions import ExpressionEvaluator
from pybpfdsl.frontend.evaluate.running import (
    Callee,
    EvaluationError,
    Frame,
    Method,
    Return,
    Text,
    Value,
    compare,
    convert,
    line_of,
    raw_of,
    source_text,
    truth,
)
from pybpfdsl.frontend.resolve import annotation_type, eval_static, scalar_type
from pybpfdsl.frontend.source import FunctionSource
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang import arith, fib, printk
from pybpfdsl.lang.actions import XdpAction
from pybpfdsl.lang.arith import CmpOp
from pybpfdsl.lang.packet import HeaderView, Packet, Payload
from pybpfdsl.lang.redirect import CpuMap, DevMap, redirect_to
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import BpfMap
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, ScalarType, i32, u32, u64

_U32_MASK = 0xFFFFFFFF
_U64_MASK = (1 << 64) - 1


class CallEvaluator(ExpressionEvaluator):
    """Calls: built-ins, conversions, records, @inline helpers, map and payload methods."""

    # --- calls
    def call(self, node: ast.Call, fr: Frame) -> Value:
        callee = self.expr(node.func, fr)
        match callee:
            case Callee(kind="builtin", target=str() as name):
                return self.builtin(node, name, fr)
            case Callee(kind="type", target=target):
                return self.type_call(node, target, fr)
            case Callee(kind="struct", target=type() as cls) if issubclass(cls, Struct):
                return self.struct_call(node, cls, fr)
            case Callee(kind="inline", target=FunctionType() as fn):
                return self.inline_call(node, fn, fr)
            case Method(base=DevMap() | CpuMap() as ports, attr="redirect"):
                key = raw_of(convert(self.scalar(node.args[0], fr), u32))
                miss = raw_of(self.scalar(node.args[1], fr)) if len(node.args) == 2 else int(XdpAction.ABORTED)
                return Scalar(u32, ports.redirect(key, miss))
            case Method(base=BpfMap() as m, attr="get"):
                return self.map_get(node, m, fr)
            case Method(base=Payload() as payload, attr="read"):
                return self.payload_read(node, payload, fr)
            case Method(base=Packet() as pkt, attr="adjust_head" | "adjust_tail" as attr):
                delta = raw_of(convert(self.scalar(node.args[0], fr), i32))
                moved = pkt.adjust_head(delta) if attr == "adjust_head" else pkt.adjust_tail(delta)
                return Scalar(BOOL, int(moved))
            case Method(base=RingBuf() as rb, attr="output"):
                record = self.expr(node.args[0], fr)  # the frontend checked: one record of rb's type
                assert isinstance(record, Struct)
                return Scalar(BOOL, int(rb.raw_output(record)))
        raise EvaluationError(f"cannot call `{source_text(node.func)}`")

    def builtin(self, node: ast.Call, name: str, fr: Frame) -> Value:
        h = self.helpers
        match name:
            case "random":
                # 32 random bits read as Q32.32 (the recorded float type): exactly r / 2**32.
                return Scalar(self.type_of(node), h.prandom_u32() & _U32_MASK)
            case "randint":
                lo, hi = self.scalar(node.args[0], fr), self.scalar(node.args[1], fr)
                lo64, hi64 = raw_of(convert(lo, u64)), raw_of(convert(hi, u64))
                span = u64.wrap(u64.wrap(hi64 - lo64) + 1)
                r = h.prandom_u32() & _U32_MASK
                total = u64.wrap(lo64 + (u64.wrap(r * span) >> 32))
                return convert(Scalar(u64, total), self.type_of(node))
            case "prandom_u32":
                return Scalar(self.type_of(node), h.prandom_u32() & _U32_MASK)
            case "now_ns":
                return Scalar(self.type_of(node), h.ktime_get_ns() & _U64_MASK)
            case "cpu_id":
                return Scalar(self.type_of(node), h.cpu_id() & _U32_MASK)
            case "print":
                self.print_call(node, fr)
                return None
            case "fib_lookup":
                dst, ifindex = (raw_of(convert(self.scalar(a, fr), u32)) for a in node.args)
                return fib.lookup(dst, ifindex)
            case "redirect":
                return Scalar(u32, redirect_to(raw_of(convert(self.scalar(node.args[0], fr), u32))))
            case "ip":
                text = self.expr(node.args[0], fr)
                assert isinstance(text, Text)
                return Scalar(u32, int(ipaddress.IPv4Address(text.text)))
            case "min" | "max":
                values = [self.scalar(a, fr) for a in node.args]
                best = values[0]
                for v in values[1:]:
                    t = fold.compare_type(best.type, v.type)
                    a, b = convert(best, t), convert(v, t)
                    take_b = compare(CmpOp.LT if name == "min" else CmpOp.GT, b, a)
                    best = Scalar(t, raw_of(b) if take_b else raw_of(a))
                return best
            case "abs":
                v = self.scalar(node.args[0], fr)
                t = self.type_of(node)
                v = convert(v, t)
                if not t.signed:
                    return v
                negative = compare(CmpOp.LT, v, Scalar(t, 0, 0.0 if t.is_fixed else 0))
                return Scalar(t, arith.negate(t, raw_of(v)) if negative else raw_of(v))
        raise EvaluationError(f"{name}() cannot be called here")

    def print_call(self, node: ast.Call, fr: Frame) -> None:
        """The text bpf_trace_printk would write for this `print`, on stdout: the checker's format
        (`TypeFacts.print_formats`), each value converted to the 64-bit type the compiled program passes."""
        fmt = self.lw.facts.print_formats.get(self.key(node))
        if fmt is None:
            raise EvaluationError(f"no print format recorded for `{source_text(node)}` (line {line_of(node)})")
        values = []
        for arg, part in zip(node.args, fmt.parts, strict=True):
            v = self.expr(arg, fr)  # once each, in order, as the compiled program evaluates them
            if isinstance(part, printk.Shown):
                if not isinstance(v, Scalar):
                    raise EvaluationError(f"`{source_text(arg)}` (line {line_of(arg)}) is not a number here: {v!r}")
                values.append(raw_of(convert(v, part.passed)))
        print(fmt.text(values))

    def type_call(self, node: ast.Call, target: object, fr: Frame) -> Scalar[int]:
        t = scalar_type(target)
        if t is None:
            raise EvaluationError(f"{target!r} is not a DSL type")
        v = self.scalar(node.args[0], fr)
        if t is BOOL:
            return Scalar(BOOL, int(truth(v)))
        return convert(v, t)

    def struct_call(self, node: ast.Call, cls: type[Struct], fr: Frame) -> Struct:
        fields = cls.fields()
        given: dict[str, ast.expr] = {f.name: a for f, a in zip(fields, node.args, strict=False)}
        for k in node.keywords:
            assert k.arg is not None
            given[k.arg] = k.value
        values = []
        for f in fields:  # evaluated in declaration order, as the compiler does
            values.append(raw_of(convert(self.scalar(given[f.name], fr), f.type)) if f.name in given else 0)
        return cls.of_raw(*values)

    def inline_call(self, node: ast.Call, fn: FunctionType, fr: Frame) -> Value:
        try:
            source = self.lw.facts.inline_sources[(self.ctx, node)]
        except KeyError:
            raise EvaluationError(f"no helper source recorded for the call at line {line_of(node)}") from None
        tree = source.tree
        params = tree.args.args
        arg_nodes: dict[str, ast.expr] = {p.arg: a for p, a in zip(params, node.args, strict=False)}
        for k in node.keywords:
            assert k.arg is not None
            arg_nodes[k.arg] = k.value
        var_types = self.lw.facts.var_types.get(fn, {})
        env: dict[str, Value] = {}
        for p in params:  # in parameter order
            value = self.expr(arg_nodes[p.arg], fr)
            env[p.arg] = self.bind_param(p, value, arg_nodes[p.arg], source)
        ret = tree.returns
        return_type = None if ret is None or (isinstance(ret, ast.Constant) and ret.value is None) else \
            annotation_type(source, ret)
        callee = Frame(source, env, var_types, helper=True, return_type=return_type)
        signal = self.body(tree.body, callee)
        if isinstance(signal, Return):
            return signal.value
        return None

    def bind_param(self, p: ast.arg, value: Value, node: ast.expr, source: FunctionSource) -> Value:
        assert p.annotation is not None
        ann = eval_static(source, p.annotation)
        if ann is Packet or (isinstance(ann, type) and issubclass(ann, Struct)):
            return value
        was_optional = isinstance(value, Scalar) and self.key(node) not in self.lw.facts.types
        if (value is None or isinstance(value, HeaderView | Payload) or was_optional) \
                and not isinstance(ann, ScalarType):
            return value  # a header, the payload or an optional value passes as it is
        t = scalar_type(ann)
        if t is None or not isinstance(value, Scalar):
            raise EvaluationError(f"cannot bind parameter {p.arg} to {value!r}")
        return convert(value, t)


    def map_get(self, node: ast.Call, m: BpfMap, fr: Frame) -> Value:
        raw = m.raw_lookup(self.map_key(m, node.args[0], fr))
        if len(node.args) == 1:
            return None if raw is None else self.wrap_value(m, raw)
        vt = m.value_type
        default = self.map_item(vt, node.args[1], fr)  # evaluated after the lookup
        return self.wrap_value(m, raw if raw is not None else default)


    def payload_read(self, node: ast.Call, payload: Payload, fr: Frame) -> Struct | None:
        cls = self.expr(node.args[0], fr)
        if not (isinstance(cls, Callee) and isinstance(cls.target, type) and issubclass(cls.target, Struct)):
            raise EvaluationError("read() needs a Struct class")
        record_cls: type[Struct] = cls.target
        return payload.read(record_cls, self.payload_index(node.args[1], fr))

