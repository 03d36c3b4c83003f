"""Emitting state access: Globals (`g.value`, atomic `+=`), map lookups, updates, deletes and in-place
updates (`m[k] += n`), `m.get(k[, default])`, and ring buffer output.

Takes the state object an expression named (registered by `resolve`) and the key/value expressions;
gives IR map and global operations. A lookup's result is a value that may be None (`OptionalVal`).
"""

from __future__ import annotations

import ast

from pybpfdsl.frontend import fold
from pybpfdsl.frontend.emit import packet_access
from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.values import (
    DslValue,
    HeaderVal,
    OptionalVal,
    Scalar,
    StateVal,
    StructVal,
)
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import MapValueRef, StructType, value_ir_type
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.lpm_trie import IPV6_ADDRESS_HALVES, LpmTrie
from pybpfdsl.lang.ringbuf import RingBuf
from pybpfdsl.lang.state import Array, BpfMap, Global, HashMap, LruHashMap
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import (
    BOOL,
    ScalarType,
    i64,
    u8,
    u32,
)


class StateEmitter(EmitterBase):
    """Globals, maps and ring buffers."""

    def global_aug(self, g: Global, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        assert g.name is not None
        operand = self.scalar(value_node)
        if (self.ctx, s) in self.typed.atomic_adds:  # the checker's decision (32/64-bit or float, + or -)
            delta = self.convert(operand, g.type, value_node, implicit=False)
            if op is BinOp.SUB:
                delta = self.negate(delta, s)
            self.b.append(n.StoreGlobal(g.name, self.scalar_value(delta), atomic_add=True, line=self.line))
            return
        old = Scalar(g.type, self.b.emit(n.LoadGlobal(self.new(g.type), g.name, line=self.line)))
        new = self.convert(self.aug_result(s, self.binary(op, old, operand, s)), g.type, s)
        self.b.append(n.StoreGlobal(g.name, self.scalar_value(new), line=self.line))

    def aug_result(self, s: ast.stmt, result: Scalar) -> Scalar:
        """The type `op=` computes in, checked against the typed AST's under its statement (it has no
        expression node)."""
        self.record(s, result)
        return result

    def delete(self, t: ast.expr) -> None:
        if not isinstance(t, ast.Subscript):
            raise self.unchecked(t)
        m = self.map_of(t.value)
        if isinstance(m, Array):
            raise self.unchecked(t)
        key = self.map_key(m, t.slice)
        assert m.name is not None
        self.b.emit(n.MapDelete(self.new(i64), m.name, key, line=self.line))

    def ringbuf_method(self, node: ast.Call, rb: RingBuf[Struct], attr: str) -> Scalar:
        """`events.output(Record(...))`: True when the record was written, False when the buffer was full."""
        name = rb.name
        if attr != "output":
            raise self.unchecked(node)
        if len(node.args) != 1 or node.keywords:
            raise self.unchecked(node)
        record = present_record(self.lower_expr(node.args[0]))
        if not isinstance(record, StructVal) or record.cls is not rb.record:
            raise self.unchecked(node.args[0])
        assert name is not None
        return Scalar(BOOL, self.op(n.RingbufOutput, BOOL, name, record.value, hint="written"))

    def map_of(self, node: ast.expr) -> BpfMap:
        v = self.lower_expr(node)
        if isinstance(v, StateVal) and isinstance(v.obj, BpfMap):
            return v.obj
        raise self.unchecked(node)

    def map_key(self, m: BpfMap, node: ast.expr) -> n.Value:
        if isinstance(m, LpmTrie) and m.takes_ipv6_addresses and isinstance(node, ast.Attribute) \
                and node.attr in IPV6_ADDRESS_HALVES:
            return self.ipv6_address_key(m, node)
        v = present_record(self.lower_expr(node))
        kt = m.key_type
        if isinstance(m, LpmTrie) and m.address_type is not None and not isinstance(v, StructVal):
            return self.address_key(m, m.address_type, self.as_scalar(v, node), node)
        if isinstance(kt, ScalarType):
            s = self.as_scalar(v, node)
            if s.type.is_fixed and not kt.is_fixed:
                raise self.unchecked(node)
            return self.scalar_value(self.convert(s, kt, node, implicit=True))
        if isinstance(v, StructVal) and v.cls is kt:
            return v.value
        raise self.unchecked(node)

    def address_key(self, m: LpmTrie, at: ScalarType, v: Scalar, node: ast.expr) -> n.Value:
        """`acl.get(ip4.src)`: an address as an LPM trie's full-length key, its prefix length and then its
        bytes, the most significant first (network order), as `LpmTrie.key_of_address` builds it."""
        if v.type.is_fixed:
            raise self.unchecked(node)
        return self.prefix_key(m, [self.convert(v, at, node, implicit=True)], node)

    def ipv6_address_key(self, m: LpmTrie, node: ast.Attribute) -> n.Value:
        """`acl6.get(ip6.src)`: an IPv6 header's address as its /128 key, the bytes of the halves the DSL
        reads it as (`src_hi`, then `src_lo`), as `LpmTrie.key_of_halves` builds it."""
        base = self.lower_expr(node.value)
        header = base.inner if isinstance(base, OptionalVal) and base.narrowed else base
        if not isinstance(header, HeaderVal):
            raise self.unchecked(node)
        halves = [packet_access.header_field(self, node, header, half) for half in IPV6_ADDRESS_HALVES[node.attr]]
        return self.prefix_key(m, halves, node)

    def prefix_key(self, m: LpmTrie, parts: list[Scalar], node: ast.expr) -> n.Value:
        """A full-length key: the prefix length, then the bytes of `parts`, each most significant first."""
        fields = [self.scalar_value(Scalar(u32, const=m.max_prefixlen))]
        for part in parts:
            t = part.type  # the shifts are the key's, in the part's own type (not the typed AST's node)
            for shift in range(t.bits - 8, -1, -8):
                byte = part
                if shift:
                    count = Scalar(t, const=shift)
                    folded = fold.fold_typed_binary(BinOp.SHR, t, part, count)
                    byte = folded if folded is not None else Scalar(t, self.b.emit(n.Binary(
                        self.new(t), BinOp.SHR, self.scalar_value(part), self.scalar_value(count), line=self.line)))
                fields.append(self.scalar_value(self.convert(byte, u8, node)))
        return self.b.emit(n.MakeStruct(self.new(StructType(m.prefix_type)), tuple(fields), line=self.line))

    def map_value(self, m: BpfMap, node: ast.expr) -> n.Value:
        v = present_record(self.lower_expr(node))
        vt = m.value_type
        if isinstance(vt, ScalarType):
            return self.scalar_value(self.convert(self.as_scalar(v, node), vt, node, implicit=True))
        if isinstance(v, StructVal) and v.cls is vt:
            return v.value
        raise self.unchecked(node)

    def lookup(self, m: BpfMap, key: n.Value) -> n.Value:
        assert m.name is not None
        return self.b.emit(n.MapLookup(self.new(MapValueRef(m.name), m.name), m.name, key, line=self.line))

    def load_map_value(self, m: BpfMap, ref: n.Value) -> Scalar | StructVal:
        vt = value_ir_type(m.value_type)
        out = self.b.emit(n.LoadValue(self.new(vt), ref, line=self.line))
        if isinstance(vt, StructType):
            return StructVal(vt.cls, out)
        return Scalar(vt, out)

    def optional_lookup(self, m: BpfMap, key: n.Value) -> OptionalVal:
        """m.get(k) without a default: the value, or None."""
        ref = self.lookup(m, key)
        is_null = self.b.emit(n.IsNull(self.new(BOOL), ref, line=self.line))
        vt = value_ir_type(m.value_type)
        join = self.b.new_block("got")
        present = self.new(BOOL, "found")
        value = self.new(vt, "value")
        join.params.extend([present, value])
        zero = self.zero_of(vt)
        false = self.const(BOOL, 0)
        hit = self.b.new_block("hit")
        self.b.terminate(n.Branch(is_null, n.Edge(join.name, (false, zero)), n.Edge(hit.name), line=self.line))
        self.b.set_block(hit)
        loaded = self.load_map_value(m, ref)
        loaded_value = loaded.value
        assert loaded_value is not None
        self.b.terminate(n.Jump(n.Edge(join.name, (self.const(BOOL, 1), loaded_value)), line=self.line))
        self.b.set_block(join)
        inner: Scalar | StructVal = StructVal(vt.cls, value) if isinstance(vt, StructType) else Scalar(vt, value)
        return OptionalVal(inner, present)

    def zero_of(self, t: ScalarType | StructType) -> n.Value:
        if isinstance(t, StructType):
            zeros = tuple(self.const(f.type, 0) for f in t.cls.fields())
            return self.b.emit(n.MakeStruct(self.new(t), zeros, line=self.line))
        return self.const(t, 0)

    def map_method(self, node: ast.Call, m: BpfMap, attr: str) -> DslValue:
        if attr == "get":
            if not 1 <= len(node.args) <= 2 or node.keywords:
                raise self.unchecked(node)
            key = self.map_key(m, node.args[0])
            found = self.optional_lookup(m, key)
            if len(node.args) == 1:
                return found
            default_node = node.args[1]
            vt = value_ir_type(m.value_type)
            if isinstance(vt, StructType):
                default = self.lower_expr(default_node)
                if not isinstance(default, StructVal) or default.cls is not vt.cls:
                    raise self.unchecked(default_node)
                found_record = found.inner
                assert isinstance(found_record, StructVal)
                out = self.op(n.Select, vt, found.present, found_record.value, default.value)
                return StructVal(vt.cls, out)
            d = self.convert(self.scalar(default_node), vt, default_node, implicit=True)
            inner = found.inner
            assert isinstance(inner, Scalar) and inner.value is not None
            out = self.b.emit(n.Select(self.new(vt), found.present, inner.value, self.scalar_value(d), line=self.line))
            return Scalar(vt, out)
        if attr in ("items", "keys", "values"):
            raise self.unchecked(node)
        raise self.unchecked(node)

    def map_aug(self, m: BpfMap, index: ast.expr, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
        """`m[k] += n`: add in place (atomically when the kernel allows); a missing hash key starts at 0."""
        vt = m.value_type
        if not isinstance(vt, ScalarType):
            raise self.unchecked(s)
        key = self.map_key(m, index)
        operand = self.scalar(value_node)
        ref = self.lookup(m, key)
        is_null = self.b.emit(n.IsNull(self.new(BOOL), ref, line=self.line))
        hit, miss, done = self.b.new_block("hit"), self.b.new_block("miss"), self.b.new_block("updated")
        self.b.terminate(n.Branch(is_null, n.Edge(miss.name), n.Edge(hit.name), line=self.line))
        self.b.set_block(hit)
        env = dict(self.env)
        if (self.ctx, s) in self.typed.atomic_adds:  # the checker's decision (32/64-bit or float, +)
            delta = self.convert(operand, vt, s)
            self.b.append(n.StoreValue(ref, self.scalar_value(delta), atomic_add=True, line=self.line))
        else:
            old = Scalar(vt, self.b.emit(n.LoadValue(self.new(vt), ref, line=self.line)))
            new = self.convert(self.aug_result(s, self.binary(op, old, operand, s)), vt, s)
            self.b.append(n.StoreValue(ref, self.scalar_value(new), line=self.line))
        self.b.terminate(n.Jump(n.Edge(done.name), line=self.line))
        self.b.set_block(miss)
        if isinstance(m, HashMap | LruHashMap):
            zero = Scalar(vt, const=0.0 if vt.is_fixed else 0)
            first = self.convert(self.aug_result(s, self.binary(op, zero, operand, s)), vt, s)
            assert m.name is not None
            self.b.emit(n.MapUpdate(self.new(i64), m.name, key, self.scalar_value(first), line=self.line))
        self.b.terminate(n.Jump(n.Edge(done.name), line=self.line))
        self.b.set_block(done)
        self.env = env


def present_record(v: DslValue) -> DslValue:
    """A record a check proved present (`if r is not None:`) is the record, as a whole value too."""
    return v.inner if isinstance(v, OptionalVal) and v.narrowed and isinstance(v.inner, StructVal) else v
