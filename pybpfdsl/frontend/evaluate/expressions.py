"""Pure-Python mode's expressions: conditions (with the compiled code's short-circuits), names,
constants (taken from the typed AST where the node was constant), attributes of the packet, headers,
records and Globals, arithmetic in the type the typed AST gives, comparisons, `in`, subscripts of maps,
the payload and constant tuples, and the keys and values of maps converted to their declared types."""

from __future__ import annotations

import ast
import enum
from types import ModuleType

from pybpfdsl.frontend import fold, likelihood
from pybpfdsl.frontend.evaluate.base import EvaluatorBase
from pybpfdsl.frontend.evaluate.running import (
    Callee,
    EvaluationError,
    Frame,
    Method,
    Text,
    TupleValue,
    Value,
    binary_in,
    compare,
    const_num,
    convert,
    folded,
    line_of,
    raw_of,
    source_text,
    truth,
)
from pybpfdsl.frontend.operators import BINARY_OPERATORS, COMPARISONS
from pybpfdsl.frontend.resolve import classify, resolve_global
from pybpfdsl.frontend.values import Scalar
from pybpfdsl.lang import arith, fixed
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.lpm_trie import IPV6_ADDRESS_HALVES, LpmTrie
from pybpfdsl.lang.packet import HeaderView, Packet, Payload
from pybpfdsl.lang.state import BpfMap, Global, HashMap, LruHashMap, RawValue, StateObject
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, FLOAT, ScalarType, i64, u8, u64

_BINOPS = BINARY_OPERATORS
_CMPOPS = COMPARISONS


class ExpressionEvaluator(EvaluatorBase):
    """Conditions, expressions, attributes, comparisons, `in`, subscripts, map keys and the payload."""

    # --- conditions
    def condition(self, node: ast.expr, fr: Frame) -> bool:
        """Whether a test holds, with the short-circuits of the compiled jumps (`likely(c)` and
        `unlikely(c)` are `c`); with a profile attached, each outcome is counted."""
        hinted = likelihood.spelled(node, fr.source.function)
        if hinted is not None:
            return self.condition(hinted[1].args[0], fr)
        held = self.plain_condition(node, fr)
        if self.profile is not None:
            self.profile.record(self.key(node), held)
        return held

    def plain_condition(self, node: ast.expr, fr: Frame) -> bool:
        match node:
            case ast.BoolOp(op=ast.And(), values=values):
                return all(self.condition(v, fr) for v in values)
            case ast.BoolOp(op=ast.Or(), values=values):
                return any(self.condition(v, fr) for v in values)
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not self.condition(operand, fr)
            case ast.Compare(left=left, ops=[ast.Is() | ast.IsNot() as op], comparators=[ast.Constant(value=None)]):
                return (self.expr(left, fr) is None) == isinstance(op, ast.Is)
        value = self.expr(node, fr)
        if value is None:
            return False  # an absent header (`if pkt.tcp:`)
        if isinstance(value, HeaderView):
            return True
        if isinstance(value, Scalar):
            return truth(value)
        raise EvaluationError(f"`{source_text(node)}` cannot be used as a condition")

    # --- expressions
    def scalar(self, node: ast.expr, fr: Frame) -> Scalar[int]:
        v = self.expr(node, fr)
        if not isinstance(v, Scalar):
            raise EvaluationError(f"`{source_text(node)}` (line {line_of(node)}) is not a number here: {v!r}")
        return v

    def expr(self, node: ast.expr, fr: Frame) -> Value:
        key = (self.ctx, node)
        consts = self.lw.facts.consts
        if key in consts and self.foldable(node, fr):
            return folded(Scalar(self.lw.facts.types[key], const=consts[key], literal=key in self.lw.facts.literals))
        v = self.expr_inner(node, fr)
        if isinstance(v, Scalar) and key in self.lw.facts.types:
            v = Scalar(v.type, v.value, consts.get(key), key in self.lw.facts.literals)
        return v

    def foldable(self, node: ast.expr, fr: Frame) -> bool:
        """Whether a node recorded as constant can take its constant without being evaluated: not when
        its subexpressions ran code that the constant result does not show (`f() or True`)."""
        match node:
            case ast.BoolOp() | ast.IfExp() | ast.UnaryOp(op=ast.Not()):
                return False
            case ast.Compare(ops=ops):
                return len(ops) == 1 and not isinstance(ops[0], ast.Is | ast.IsNot)
            case ast.Call(func=func):
                callee = self.expr(func, fr)
                return isinstance(callee, Callee) and callee.kind in ("builtin", "type")
        return True

    def expr_inner(self, node: ast.expr, fr: Frame) -> Value:
        match node:
            case ast.Constant(value=value):
                if value is None:
                    return None
                if isinstance(value, str):
                    return Text(value)
                if isinstance(value, int | float):
                    return const_num(value)
            case ast.Name(id=name):
                if name in fr.env:
                    return fr.env[name]
                return self.from_python(resolve_global(fr.source.function, name, lambda m: DslError(m)))
            case ast.Attribute():
                return self.attribute(node, fr)
            case ast.BinOp(left=left, op=ast.Div(), right=right):
                return self.true_divide(self.scalar(left, fr), self.scalar(right, fr))
            case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINOPS:
                a, b = self.scalar(left, fr), self.scalar(right, fr)
                return binary_in(_BINOPS[type(op)], self.type_of(node), a, b)
            case ast.UnaryOp(op=ast.Not()):
                return Scalar(BOOL, int(self.condition(node, fr)))
            case ast.UnaryOp(op=ast.UAdd(), operand=operand):
                return self.scalar(operand, fr)
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                v, t = self.scalar(operand, fr), self.type_of(node)
                return Scalar(t, arith.negate(t, raw_of(convert(v, t))))
            case ast.UnaryOp(op=ast.Invert(), operand=operand):
                v, t = self.scalar(operand, fr), self.type_of(node)
                return Scalar(t, arith.binary(BinOp.XOR, t, raw_of(convert(v, t)), t.wrap(-1)))
            case ast.Compare():
                return self.comparison(node, fr)
            case ast.BoolOp():
                return Scalar(BOOL, int(self.condition(node, fr)))
            case ast.IfExp(test=test, body=then, orelse=orelse):
                arm = self.expr(then if self.condition(test, fr) else orelse, fr)
                return convert(arm, self.type_of(node)) if isinstance(arm, Scalar) else arm
            case ast.Call():
                return self.call(node, fr)
            case ast.Subscript(value=base, slice=index):
                return self.subscript(node, base, index, fr)
            case ast.Tuple(elts=elts):
                return TupleValue(tuple(self.const_of(e) for e in elts))
        raise EvaluationError(f"unsupported expression `{source_text(node)}` (line {line_of(node)})")

    def from_python(self, value: object) -> Value:
        kind, value = classify(value)
        match kind:
            case "state":
                assert isinstance(value, StateObject)
                return self.state.get(value.name, value) if value.name is not None else value
            case "constant":
                assert isinstance(value, int | float)
                return const_num(value)
            case "tuple":
                assert isinstance(value, tuple)
                return TupleValue(value)
            case "module":
                assert isinstance(value, ModuleType | enum.EnumMeta)  # a module, or an enum's constants
                return value
            case "string":
                assert isinstance(value, str)
                return Text(value)
            case "builtin" | "type" | "struct" | "inline":
                return Callee(kind, value)
        raise EvaluationError(f"{value!r} cannot be used in a DSL function")

    def attribute(self, node: ast.Attribute, fr: Frame) -> Value:
        base = self.expr(node.value, fr)
        attr = node.attr
        match base:
            case Packet():
                if attr == "len":
                    return Scalar(self.type_of(node), base.len)
                if attr in ("eth", "ipv4", "ipv6", "tcp", "udp"):
                    header: HeaderView | None = getattr(base, attr)
                    return header
                if attr == "payload":
                    return base.payload
                if attr in ("adjust_head", "adjust_tail"):
                    return Method(base, attr)
            case HeaderView() | Struct():
                return Scalar(self.type_of(node), int(getattr(base, attr)))
            case Global() if attr == "value":
                return Scalar(base.type, base.raw_get())
            case ModuleType() | enum.EnumMeta():
                return self.from_python(getattr(base, attr))
            case Callee() | StateObject() | Payload():
                return Method(base, attr)
        raise EvaluationError(f"`{source_text(node)}`: {base!r} has no attribute {attr}")

    def true_divide(self, a: Scalar[int], b: Scalar[int]) -> Scalar[int]:
        whole = fold.integral_divisor(a, b)
        if whole is not None:  # `elapsed / 1e9`: an exact integer quotient (see fold.integral_divisor)
            b = Scalar(i64, whole, whole)
        if b.type.is_fixed:
            if b.const is None:
                raise EvaluationError("division by a float computed at run time")
            reciprocal = 1.0 / float(b.const)  # multiply by the constant reciprocal, rounded to nearest
            return binary_in(BinOp.MUL, FLOAT, a, Scalar(FLOAT, fixed.from_float(reciprocal), reciprocal))
        if not a.type.is_fixed:  # integer over integer: see lang.fixed.quotient
            return Scalar(FLOAT, fixed.quotient(raw_of(convert(a, i64)), raw_of(convert(b, i64))))
        return Scalar(FLOAT, fixed.div_int(raw_of(a), raw_of(convert(b, i64))))

    def comparison(self, node: ast.Compare, fr: Frame) -> Scalar[int]:
        ops, rights = node.ops, node.comparators
        if len(ops) == 1 and isinstance(ops[0], ast.In | ast.NotIn):
            found = self.contains(node.left, rights[0], fr)
            return Scalar(BOOL, int(found != isinstance(ops[0], ast.NotIn)))
        if len(ops) == 1 and isinstance(ops[0], ast.Is | ast.IsNot):
            return Scalar(BOOL, int(self.condition(node, fr)))
        if len(ops) > 1:
            left = self.scalar(node.left, fr)
            for cmp, right_node in zip(ops, rights, strict=True):
                right = self.scalar(right_node, fr)
                if not compare(_CMPOPS[type(cmp)], left, right):
                    return Scalar(BOOL, 0)
                left = right
            return Scalar(BOOL, 1)
        op = _CMPOPS[type(ops[0])]
        if op in (CmpOp.EQ, CmpOp.NE):
            left_value, right_value = self.expr(node.left, fr), self.expr(rights[0], fr)
            if left_value is None or right_value is None:  # Python's rule: None equals only None
                return Scalar(BOOL, int((left_value is None and right_value is None) == (op is CmpOp.EQ)))
            if not isinstance(left_value, Scalar) or not isinstance(right_value, Scalar):
                raise EvaluationError(f"`{source_text(node)}` (line {line_of(node)}) compares a non-number")
            return Scalar(BOOL, int(compare(op, left_value, right_value)))
        left = self.scalar(node.left, fr)
        right = self.scalar(rights[0], fr)
        if self.key(node) in self.lw.facts.random_thresholds:
            # `random() op p`: the raw 32 random bits against an exact threshold, where the checker decided so.
            assert right.const is not None
            threshold = Scalar(FLOAT, fold.random_threshold(float(right.const), op))
            return Scalar(BOOL, int(compare(op, left, threshold)))
        return Scalar(BOOL, int(compare(op, left, right)))

    def contains(self, item_node: ast.expr, container_node: ast.expr, fr: Frame) -> bool:
        container = self.expr(container_node, fr)  # the container is lowered first
        if isinstance(container, TupleValue):
            value = self.expr(item_node, fr)
            if value is None:
                return False  # None is in no tuple of numbers
            item = self.scalar(item_node, fr) if not isinstance(value, Scalar) else value
            return any(compare(CmpOp.EQ, item, const_num(int(x))) for x in container.items)
        if isinstance(container, BpfMap):
            return container.raw_lookup(self.map_key(container, item_node, fr)) is not None
        raise EvaluationError(f"`in` over {container!r}")


    # --- maps and the payload
    def map_of(self, node: ast.expr, fr: Frame) -> BpfMap:
        m = self.expr(node, fr)
        if not isinstance(m, BpfMap):
            raise EvaluationError(f"`{source_text(node)}` is not a map")
        return m

    def map_key(self, m: BpfMap, node: ast.expr, fr: Frame) -> RawValue:
        if isinstance(m, LpmTrie) and m.takes_ipv6_addresses and isinstance(node, ast.Attribute) \
                and node.attr in IPV6_ADDRESS_HALVES:
            header = self.expr(node.value, fr)
            if not isinstance(header, HeaderView):
                raise EvaluationError(f"`{source_text(node)}` is not an IPv6 header's address")
            hi, lo = IPV6_ADDRESS_HALVES[node.attr]
            return m.key_of_halves(int(getattr(header, hi)), int(getattr(header, lo)))  # as the emitter builds it
        if isinstance(m, LpmTrie) and m.address_type is not None:
            v = self.expr(node, fr)
            if isinstance(v, Struct):
                return v
            if not isinstance(v, Scalar):
                raise EvaluationError(f"`{source_text(node)}` is not an address")
            raw = raw_of(convert(v, m.address_type))
            assert isinstance(raw, int)
            return m.key_of_address(raw)  # as the emitter builds it
        return self.map_item(m.key_type, node, fr)

    def map_value(self, m: BpfMap, node: ast.expr, fr: Frame) -> RawValue:
        return self.map_item(m.value_type, node, fr)

    def map_item(self, t: ScalarType | type[Struct], node: ast.expr, fr: Frame) -> RawValue:
        """A key or value converted to the map's declared type."""
        v = self.expr(node, fr)
        if isinstance(t, ScalarType):
            if not isinstance(v, Scalar):
                raise EvaluationError(f"`{source_text(node)}` is not a number")
            return raw_of(convert(v, t))
        if not isinstance(v, Struct):
            raise EvaluationError(f"`{source_text(node)}` is not a record")
        return v

    def wrap_value(self, m: BpfMap, raw: RawValue) -> Scalar[int] | Struct:
        vt = m.value_type
        if isinstance(vt, ScalarType):
            assert isinstance(raw, int)
            return Scalar(vt, raw)
        assert isinstance(raw, Struct)
        return raw


    def subscript(self, node: ast.Subscript, base_node: ast.expr, index: ast.expr, fr: Frame) -> Value:
        base = self.expr(base_node, fr)
        if isinstance(base, BpfMap):
            if isinstance(base, HashMap | LruHashMap):
                raise EvaluationError("m[key] on a hash map")
            raw = base.raw_lookup(self.map_key(base, index, fr))
            if raw is None:
                vt = base.value_type
                raw = 0 if isinstance(vt, ScalarType) else vt()
            return self.wrap_value(base, raw)
        if isinstance(base, Payload):
            byte = base[self.payload_index(index, fr)]
            return None if byte is None else Scalar(u8, byte)
        if isinstance(base, TupleValue):
            return const_num(base.items[int(self.const_of(index))])
        raise EvaluationError(f"`{source_text(node)}` cannot be indexed")

    def payload_index(self, index_node: ast.expr, fr: Frame) -> int:
        """A payload index's value as a number (a signed type's negative value counts from the payload's end:
        `lang.packet.payload_position`, the rule the compiled bounds checks follow)."""
        index = self.scalar(index_node, fr)
        if index.const is not None:
            return int(index.const)
        return raw_of(index) if index.type.signed else raw_of(convert(index, u64))

