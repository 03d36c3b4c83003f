"""Emitting expressions: names, constants, attributes, subscripts, comparisons and `in`.

Takes an expression node; gives its `DslValue` (a typed scalar, folded when constant, or a packet,
header, record, state object or callee), emitting the IR that computes it. Each scalar's type and
constant are checked against the typed AST per node and lowering context (`EmitterBase.record`).
Arithmetic is in `arithmetic`, calls in `calls`, packet access in `packet_access`, maps in `state_access`.
"""

from __future__ import annotations

import ast

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.emit import packet_access
from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.operators import COMPARISONS
from pybpfdsl.frontend.resolve import local_names, resolve_global
from pybpfdsl.frontend.values import (
    Callee,
    ConstTuple,
    DslValue,
    HeaderVal,
    ModuleVal,
    OptionalVal,
    PacketVal,
    PayloadVal,
    Scalar,
    StateVal,
    StructVal,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.state import BpfMap, Global, HashMap, LruHashMap
from pybpfdsl.lang.types import (
    BOOL,
    FLOAT,
)

_CMPOPS = COMPARISONS


class ExpressionEmitter(EmitterBase):
    """Names, constants, attributes, subscripts, comparisons, `in`."""

    def scalar(self, node: ast.expr) -> Scalar:
        return self.as_scalar(self.lower_expr(node), node)

    def as_scalar(self, v: DslValue, node: ast.expr) -> Scalar:
        if isinstance(v, Scalar):
            return v
        if isinstance(v, OptionalVal) and v.narrowed and isinstance(v.inner, Scalar):
            return v.inner
        if isinstance(v, OptionalVal) and isinstance(v.inner, Scalar):
            raise self.unchecked(node)
        raise self.unchecked(node)

    def lower_expr(self, node: ast.expr) -> DslValue:
        self.set_line_expr(node)
        return self.record(node, self.expression_form(node))

    def lookup_name(self, node: ast.expr, name: str) -> DslValue:
        if name in self.env:
            return self.env[name]
        if name in self.scope.var_types or name in local_names(self.scope.source.function):
            raise self.unchecked(node)  # the checker says why `name` has no value here
        value = resolve_global(self.scope.source.function, name, lambda m: self.err(node, m))
        return self.from_python(value, name, node)

    def attribute(self, node: ast.Attribute) -> DslValue:
        base = self.lower_expr(node.value)
        attr = node.attr
        match base:
            case PacketVal():
                return packet_access.packet_attribute(self, node, attr)
            case HeaderVal():
                return packet_access.header_field(self, node, base, attr)
            case OptionalVal(inner=HeaderVal() as h, narrowed=True):
                return packet_access.header_field(self, node, h, attr)
            case OptionalVal(inner=HeaderVal()):
                raise self.unchecked(node)
            case StateVal(obj=Global() as g) if attr == "value":
                assert g.name is not None
                return Scalar(g.type, self.b.emit(n.LoadGlobal(self.new(g.type, g.name), g.name, line=self.line)))
            case StructVal(cls=cls, value=v):
                for f in cls.fields():
                    if f.name == attr:
                        return Scalar(f.type, self.b.emit(n.ExtractField(self.new(f.type), v, attr, line=self.line)))
                raise self.unchecked(node)
            case OptionalVal(inner=StructVal() as sv, narrowed=True):
                return self.attribute_of_struct(node, sv)
            case OptionalVal(inner=StructVal()):
                raise self.unchecked(node)
            case ModuleVal(module=m):
                if not hasattr(m, attr):
                    raise self.unchecked(node)
                return self.from_python(getattr(m, attr), attr, node)
            case StateVal(obj=Global() as g):
                raise self.unchecked(node)
            case PayloadVal() if attr != "read":
                raise self.unchecked(node)
            case Callee() | StateVal() | PayloadVal():
                return Callee("method", (base, attr))
        raise self.unchecked(node)

    def attribute_of_struct(self, node: ast.Attribute, sv: StructVal) -> DslValue:
        for f in sv.cls.fields():
            if f.name == node.attr:
                return Scalar(f.type, self.op(n.ExtractField, f.type, sv.value, node.attr))
        raise self.unchecked(node)

    def comparison(self, node: ast.Compare) -> DslValue:
        ops, rights = node.ops, node.comparators
        if len(ops) == 1 and isinstance(ops[0], ast.In | ast.NotIn):
            result = self.contains(node.left, rights[0], node)
            return self.logical_not(result, node) if isinstance(ops[0], ast.NotIn) else result
        if any(isinstance(o, ast.Is | ast.IsNot | ast.In | ast.NotIn) for o in ops):
            if len(ops) == 1 and isinstance(rights[0], ast.Constant) and rights[0].value is None:
                return self.branchy_value(node)
            raise self.unchecked(node)
        if len(ops) > 1:
            return self.branchy_value(node)
        op = _CMPOPS[type(ops[0])]
        left_value, right_value = self.lower_expr(node.left), self.lower_expr(rights[0])
        if op in (CmpOp.EQ, CmpOp.NE):
            equality = self.optional_equality(op, left_value, right_value, node)
            if equality is not None:
                return equality
        left = self.as_scalar(left_value, node.left)
        right = self.as_scalar(right_value, rights[0])
        special = self.random_threshold(node.left, rights[0], left, right, op, node)
        return special if special is not None else self.compare(op, left, right, node)

    def optional_equality(self, op: CmpOp, a: DslValue, b: DslValue, node: ast.Compare) -> Scalar | None:
        """`x == y` / `x != y` with a side that may be None, by Python's rule (None equals only None), from
        the presence bits, without branches: with one optional side present `p`, `==` is `p and x == y` and
        `!=` is `not p or x != y`; with two, `==` is `not (pa or pb) or (pa and pb and x == y)`.
        (`ExpressionForms.optional_numbers` finds the sides and the decided constants for both passes.)"""
        found = self.optional_numbers(op, a, b, node)
        if found is None:
            return None
        optional, c = found
        if self.decided_whatever_none(op, optional, c):
            return c
        presence = [v.present for v, o in zip((a, b), optional) if o and isinstance(v, OptionalVal)]

        def bits(bop: BinOp, x: n.Value, y: n.Value) -> n.Value:
            return self.op(n.Binary, BOOL, bop, x, y)

        def negate(x: n.Value) -> n.Value:
            return bits(BinOp.XOR, x, self.const(BOOL, 1))

        equal = c if op is CmpOp.EQ else Scalar(BOOL, negate(self.scalar_value(c))) if c.const is None else \
            Scalar(BOOL, const=int(not c.const))
        present = presence[0] if len(presence) == 1 else bits(BinOp.AND, presence[0], presence[1])
        if equal.const == 1:
            values_match = present
        elif equal.const == 0:
            values_match = None  # never equal where present
        else:
            values_match = bits(BinOp.AND, present, self.scalar_value(equal))
        if len(presence) == 1:
            result = values_match if values_match is not None else self.const(BOOL, 0)
        else:
            both_none = negate(bits(BinOp.OR, presence[0], presence[1]))
            result = both_none if values_match is None else bits(BinOp.OR, both_none, values_match)
        return Scalar(BOOL, result if op is CmpOp.EQ else negate(result))

    def random_threshold(self, lnode: ast.expr, rnode: ast.expr, left: Scalar, right: Scalar, op: CmpOp,
                         node: ast.AST) -> Scalar | None:
        """`random() < p` (or <=, >, >=) with a constant p compares the raw 32 random bits with an exact
        threshold (`fold.random_threshold`).
        Which comparisons those are is the checker's decision (`TypeFacts.random_thresholds`)."""
        if (self.ctx, node) not in self.typed.random_thresholds:
            return None
        assert right.const is not None
        threshold = fold.random_threshold(float(right.const), op)
        return self.compare(op, left, Scalar(FLOAT, self.const(FLOAT, threshold)), node)

    def contains(self, item_node: ast.expr, container_node: ast.expr, node: ast.AST) -> Scalar:
        container = self.lower_expr(container_node)
        if isinstance(container, ConstTuple):
            value = self.lower_expr(item_node)
            if isinstance(value, OptionalVal) and not value.narrowed and isinstance(value.inner, Scalar):
                found = self.membership(value.inner, [int(x) for x in container.items], node)  # and present
                if found.const is not None:
                    return found if found.const == 0 else Scalar(BOOL, value.present)
                return Scalar(BOOL, self.op(n.Binary, BOOL, BinOp.AND, value.present, self.scalar_value(found)))
            return self.membership(self.as_scalar(value, item_node), [int(x) for x in container.items], node)
        if isinstance(container, StateVal) and isinstance(container.obj, BpfMap):
            m = container.obj
            key = self.map_key(m, item_node)
            ref = self.lookup(m, key)
            is_null = self.b.emit(n.IsNull(self.new(BOOL), ref, line=self.line))
            return self.logical_not(Scalar(BOOL, is_null), node)
        raise self.unchecked(container_node)

    def subscript(self, node: ast.Subscript, base_node: ast.expr, index: ast.expr) -> DslValue:
        base = self.lower_expr(base_node)
        if isinstance(base, StateVal) and isinstance(base.obj, BpfMap):
            m = base.obj
            if isinstance(m, HashMap | LruHashMap):
                raise self.unchecked(node)
            key = self.map_key(m, index)
            found = self.optional_lookup(m, key)
            inner = found.inner
            if isinstance(inner, Scalar):
                assert inner.value is not None
                zero = self.const(inner.type, 0)
                return Scalar(inner.type, self.op(n.Select, inner.type, found.present, inner.value, zero))
            return inner
        if isinstance(base, PayloadVal):
            return packet_access.payload_byte(self, node, base, index)
        if isinstance(base, ConstTuple):
            i = self.scalar(index)
            if i.const is None or not isinstance(i.const, int) or not -len(base.items) <= i.const < len(base.items):
                raise self.unchecked(index)
            return self.const_scalar(base.items[i.const], node)
        raise self.unchecked(node)
