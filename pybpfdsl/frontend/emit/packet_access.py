"""Lowering packet access: header presence, header fields, payload bytes and typed payload reads.

Presence follows the rules in `lang.headers`. Each header's presence and offset is computed once per
path and remembered in a pseudo-local (`<pkt>.ipv4`), so `if pkt.ipv4 is None: return ...` narrows
later uses. Every load is preceded, on every path, by an `InBounds` test covering it.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.resolve import classify, resolve_global
from pybpfdsl.frontend.source import read_function
from pybpfdsl.frontend.values import Callee, DslValue, HeaderVal, OptionalVal, PayloadVal, Scalar, StructVal
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import IRType, StructType
from pybpfdsl.lang import headers as h
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, ScalarType, int_type, u8, u32, u64

MAX_OFFSET = h.MAX_PACKET_OFFSET


def pseudo_local(attr: str) -> str:
    return f"<pkt>.{attr}"


class _Chain:
    """A sequence of tests that all must pass; any failure jumps to the join with the fail values."""

    def __init__(self, lw: EmitterBase, types: list[IRType], fail: list[n.Value]) -> None:
        self.lw = lw
        self.fail = tuple(fail)
        self.join = lw.b.new_block("parsed")
        self.results = [lw.new(t) for t in types]
        self.join.params.extend(self.results)

    def require(self, cond: n.Value) -> None:
        ok = self.lw.b.new_block("ok")
        self.lw.b.terminate(n.Branch(cond, n.Edge(ok.name), n.Edge(self.join.name, self.fail), line=self.lw.line))
        self.lw.b.set_block(ok)

    def give_up(self) -> None:
        self.lw.b.terminate(n.Jump(n.Edge(self.join.name, self.fail), line=self.lw.line))

    def succeed(self, values: list[n.Value]) -> None:
        self.lw.b.terminate(n.Jump(n.Edge(self.join.name, tuple(values)), line=self.lw.line))

    def finish(self) -> list[n.Value]:
        self.lw.b.set_block(self.join)
        return self.results


def _add(lw: EmitterBase, base: n.Value, delta: int) -> n.Value:
    if delta == 0:
        return base
    return lw.b.emit(n.Binary(lw.new(u64), BinOp.ADD, base, lw.const(u64, delta), line=lw.line))


def _in_bounds(lw: EmitterBase, offset: n.Value, width: int) -> n.Value:
    return lw.b.emit(n.InBounds(lw.new(BOOL), offset, width, line=lw.line))


def _load(lw: EmitterBase, base: n.Value, delta: int, width: int) -> n.Value:
    off = _add(lw, base, delta)
    return lw.b.emit(n.LoadPacket(lw.new(int_type(8 * width, False)), off, width, line=lw.line))


def _widen(lw: EmitterBase, v: n.Value, t: ScalarType) -> n.Value:
    if v.type == t:
        return v
    return lw.b.emit(n.Convert(lw.new(t), v, line=lw.line))


def _binop(lw: EmitterBase, op: BinOp, a: n.Value, b: int) -> n.Value:
    assert isinstance(a.type, ScalarType)
    return lw.b.emit(n.Binary(lw.new(a.type), op, a, lw.const(a.type, b), line=lw.line))


def _cmp(lw: EmitterBase, op: CmpOp, a: n.Value, b: int) -> n.Value:
    assert isinstance(a.type, ScalarType)
    return lw.b.emit(n.Compare(lw.new(BOOL), op, a, lw.const(a.type, b), line=lw.line))


def read_field(lw: EmitterBase, base: n.Value, spec: h.FieldSpec) -> n.Value:
    """Load a header field (known to be inside the packet) as its DSL type."""
    if spec.size == 6:
        hi = _widen(lw, _load(lw, base, spec.offset, 4), u64)
        lo = _widen(lw, _load(lw, base, spec.offset + 4, 2), u64)
        raw = lw.b.emit(n.Binary(lw.new(u64), BinOp.OR, _binop(lw, BinOp.SHL, hi, 16), lo, line=lw.line))
    else:
        raw = _load(lw, base, spec.offset, spec.size)
    if spec.shift or spec.mask is not None:
        work = u64 if spec.size > 4 else u32
        raw = _widen(lw, raw, work)
        if spec.shift:
            raw = _binop(lw, BinOp.SHR, raw, spec.shift)
        if spec.mask is not None:
            raw = _binop(lw, BinOp.AND, raw, spec.mask)
    return _widen(lw, raw, spec.type)


def _memo(lw: EmitterBase, attr: str) -> DslValue | None:
    return lw.env.get(pseudo_local(attr))


def ethernet(lw: EmitterBase) -> OptionalVal:
    memo = _memo(lw, "eth")
    if isinstance(memo, OptionalVal):
        return memo
    present = _in_bounds(lw, lw.const(u64, 0), h.ETH_HLEN)
    value = OptionalVal(HeaderVal(h.ETH, lw.const(u64, 0)), present)
    lw.env[pseudo_local("eth")] = value
    return value


def network(lw: EmitterBase, spec: h.HeaderSpec) -> OptionalVal:
    memo = _memo(lw, spec.name)
    if isinstance(memo, OptionalVal):
        return memo
    saved = dict(lw.env)
    chain = _Chain(lw, [BOOL, u64], [lw.const(BOOL, 0), lw.const(u64, 0)])
    zero = lw.const(u64, 0)
    chain.require(_in_bounds(lw, zero, h.ETH_HLEN + spec.length))
    ethertype = read_field(lw, zero, h.ETH.fields[2])
    chain.require(_cmp(lw, CmpOp.EQ, _widen(lw, ethertype, u32), h.L3_ETHERTYPES[spec.name]))
    chain.succeed([lw.const(BOOL, 1), lw.const(u64, h.ETH_HLEN)])
    present, offset = chain.finish()
    lw.env = saved
    value = OptionalVal(HeaderVal(spec, offset), present)
    lw.env[pseudo_local(spec.name)] = value
    return value


def _require_tcp_dataofs(lw: EmitterBase, chain: _Chain, l4: n.Value) -> None:
    dataofs = read_field(lw, l4, h.TCP.fields[4])
    chain.require(_cmp(lw, CmpOp.GE, _widen(lw, dataofs, u32), 5))


def transport(lw: EmitterBase, spec: h.HeaderSpec) -> OptionalVal:
    memo = _memo(lw, spec.name)
    if isinstance(memo, OptionalVal):
        return memo
    proto = h.L4_PROTOCOLS[spec.name]
    saved = dict(lw.env)
    chain = _Chain(lw, [BOOL, u64], [lw.const(BOOL, 0), lw.const(u64, 0)])
    v4 = network(lw, h.IPV4)
    v4_block, v6_block = lw.b.new_block("v4"), lw.b.new_block("v6")
    lw.b.terminate(n.Branch(v4.present, n.Edge(v4_block.name), n.Edge(v6_block.name), line=lw.line))
    # IPv4: fixed header present, ihl >= 5, first fragment, protocol, L4 header inside the packet.
    lw.b.set_block(v4_block)
    l3 = v4.inner.offset  # type: ignore[union-attr]
    ihl = _widen(lw, read_field(lw, l3, h.IPV4.field("ihl")), u64)  # type: ignore[arg-type]
    chain.require(_cmp(lw, CmpOp.GE, ihl, 5))
    frag = read_field(lw, l3, h.IPV4.field("frag"))  # type: ignore[arg-type]
    chain.require(_cmp(lw, CmpOp.EQ, _widen(lw, frag, u32), 0))
    ip_proto = read_field(lw, l3, h.IPV4.field("proto"))  # type: ignore[arg-type]
    chain.require(_cmp(lw, CmpOp.EQ, _widen(lw, ip_proto, u32), proto))
    l4 = lw.b.emit(n.Binary(lw.new(u64), BinOp.ADD, l3, _binop(lw, BinOp.MUL, ihl, 4), line=lw.line))
    chain.require(_in_bounds(lw, l4, spec.length))
    if spec is h.TCP:
        _require_tcp_dataofs(lw, chain, l4)
    chain.succeed([lw.const(BOOL, 1), l4])
    # IPv6: next header is the protocol (extension headers are not followed).
    lw.b.set_block(v6_block)
    v6 = network(lw, h.IPV6)
    chain.require(v6.present)
    l3_6 = v6.inner.offset  # type: ignore[union-attr]
    nh = read_field(lw, l3_6, h.IPV6.field("nh"))  # type: ignore[arg-type]
    chain.require(_cmp(lw, CmpOp.EQ, _widen(lw, nh, u32), proto))
    l4_6 = _add(lw, l3_6, h.IPV6.length)
    chain.require(_in_bounds(lw, l4_6, spec.length))
    if spec is h.TCP:
        _require_tcp_dataofs(lw, chain, l4_6)
    chain.succeed([lw.const(BOOL, 1), l4_6])
    present, offset = chain.finish()
    lw.env = saved
    value = OptionalVal(HeaderVal(spec, offset), present)
    lw.env[pseudo_local(spec.name)] = value
    return value


def payload(lw: EmitterBase) -> PayloadVal:
    """Where the payload starts: after the innermost present header."""
    memo = _memo(lw, "payload")
    if isinstance(memo, PayloadVal):
        return memo
    saved = dict(lw.env)
    chain = _Chain(lw, [u64], [])
    # Innermost header first: (which header, where the payload starts after it).
    steps: list[tuple[h.HeaderSpec, Callable[[EmitterBase, n.Value], n.Value]]] = [
        (h.TCP, _payload_after_tcp),
        (h.UDP, lambda lw_, off: _add(lw_, off, h.UDP.length)),
        (h.IPV4, _payload_after_ipv4),
        (h.IPV6, lambda lw_, off: _add(lw_, off, h.IPV6.length)),
        (h.ETH, lambda lw_, off: _add(lw_, off, h.ETH_HLEN)),
    ]
    for spec, after in steps:
        hdr = _header(lw, spec)
        here, other = lw.b.new_block("has"), lw.b.new_block("hasnot")
        lw.b.terminate(n.Branch(hdr.present, n.Edge(here.name), n.Edge(other.name), line=lw.line))
        lw.b.set_block(here)
        header = hdr.inner
        assert isinstance(header, HeaderVal)
        chain.succeed([after(lw, header.offset)])
        lw.b.set_block(other)
    chain.succeed([lw.const(u64, 0)])
    (offset,) = chain.finish()
    lw.env = saved
    value = PayloadVal(offset)
    lw.env[pseudo_local("payload")] = value
    return value


def _payload_after_tcp(lw: EmitterBase, l4: n.Value) -> n.Value:
    dataofs = _widen(lw, read_field(lw, l4, h.TCP.fields[4]), u64)
    return lw.b.emit(n.Binary(lw.new(u64), BinOp.ADD, l4, _binop(lw, BinOp.MUL, dataofs, 4), line=lw.line))


def _payload_after_ipv4(lw: EmitterBase, l3: n.Value) -> n.Value:
    ihl = _widen(lw, read_field(lw, l3, h.IPV4.field("ihl")), u64)  # type: ignore[arg-type]
    small = _cmp(lw, CmpOp.LT, ihl, 5)
    ihl = lw.b.emit(n.Select(lw.new(u64), small, lw.const(u64, 5), ihl, line=lw.line))
    return lw.b.emit(n.Binary(lw.new(u64), BinOp.ADD, l3, _binop(lw, BinOp.MUL, ihl, 4), line=lw.line))


def _header(lw: EmitterBase, spec: h.HeaderSpec) -> OptionalVal:
    if spec.layer is h.Layer.L4:
        return transport(lw, spec)
    if spec.layer is h.Layer.L3:
        return network(lw, spec)
    return ethernet(lw)


PARSED_ATTRIBUTES = ("eth", "ipv4", "ipv6", "tcp", "udp", "payload")


def parse_headers_up_front(lw: EmitterBase, tree: ast.FunctionDef, packet_name: str) -> None:
    """Parse, in the entry block, every header the function names (`pkt.tcp`, `pkt.payload`, ...).

    Parsing where a header is first used would repeat the parse inside loops, and the kernel verifier
    walks every iteration's branches: a parse per iteration multiplies the paths it must explore. Parsed
    once at entry, the results dominate the whole function and loops only read them.
    """
    used = _headers_named(lw, tree, {packet_name}, set())
    # A transport header's parse reads the network headers, and the payload's reads all of them: parse
    # those first, so every later parse finds them remembered instead of parsing them again. A parse is
    # attributed to the first line that needs it, so line info (and the verifier log) point there.
    for attr, needs in _PARSE_NEEDS.items():
        if attr in used:
            for dependency in needs:
                used[dependency] = min(used.get(dependency, used[attr]), used[attr])
    for attr in PARSED_ATTRIBUTES:  # a fixed order keeps the IR stable
        if attr in used:
            lw.line = used[attr]
            packet_attribute(lw, tree, attr)  # type: ignore[arg-type]


_ADDRESSES = frozenset({"src", "dst", "src_hi", "src_lo", "dst_hi", "dst_lo"})

_PARSE_NEEDS: dict[str, set[str]] = {
    "tcp": {"ipv4", "ipv6"},
    "udp": {"ipv4", "ipv6"},
    "payload": {"eth", "ipv4", "ipv6", "tcp", "udp"},
}


def _headers_named(lw: EmitterBase, tree: ast.FunctionDef, packet_names: set[str],
                   seen: set[int], call_line: int | None = None) -> dict[str, int]:
    """The packet attributes a function names, with the first line naming each, including in the @inline
    helpers it calls (to which the packet is passed under any parameter name: every parameter counts,
    which at worst parses one header more than needed). Uses inside a helper count at `call_line`."""
    used: dict[str, int] = {}

    def note(attr: str, line: int) -> None:
        used[attr] = min(used.get(attr, line), line)

    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr in PARSED_ATTRIBUTES
                and isinstance(node.value, ast.Name) and node.value.id in packet_names):
            note(node.attr, call_line if call_line is not None else node.lineno)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr in _ADDRESSES:
            # An address written may be a pseudo-header field: its TCP/UDP checksum is updated where
            # that header is present, so the write needs their parse (`packet_writes`).
            for attr in ("ipv4", "ipv6", "tcp", "udp"):
                note(attr, call_line if call_line is not None else node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            try:
                target = resolve_global(lw.scope.source.function, node.func.id, DslError)
            except DslError:
                continue  # an unknown name is reported where the call is lowered
            kind, fn = classify(target)
            if kind != "inline" or id(fn) in seen:
                continue
            seen.add(id(fn))
            try:
                helper = read_function(fn)  # type: ignore[arg-type]
            except Exception:
                continue
            inner = _headers_named(lw, helper.tree, {a.arg for a in helper.tree.args.args}, seen,
                                   call_line if call_line is not None else node.lineno)
            for attr, line in inner.items():
                note(attr, line)
    return used


def packet_attribute(lw: EmitterBase, node: ast.Attribute, attr: str) -> DslValue:
    if attr == "len":
        return Scalar(u32, lw.b.emit(n.PacketLen(lw.new(u32, "len"), line=lw.line)))
    if attr == "eth":
        return ethernet(lw)
    if attr in h.L3_ETHERTYPES:
        return network(lw, h.HEADERS[attr])
    if attr in h.L4_PROTOCOLS:
        return transport(lw, h.HEADERS[attr])
    if attr == "payload":
        return payload(lw)
    raise lw.unchecked(node)


def header_field(lw: EmitterBase, node: ast.Attribute, header: HeaderVal, attr: str) -> Scalar:
    spec = header.spec.field(attr)
    if spec is None:
        raise lw.unchecked(node)
    return Scalar(spec.type, read_field(lw, header.offset, spec))


def _checked_offset(lw: EmitterBase, chain: _Chain, base: n.Value, index: Scalar, node: ast.expr) -> n.Value:
    """base + index, failing the chain when the index is negative or too large to be in any packet."""
    idx = lw.scalar_value(lw.convert(index, u64, node))
    if not (index.const is not None and 0 <= int(index.const) <= MAX_OFFSET):
        chain.require(lw.b.emit(n.Compare(lw.new(BOOL), CmpOp.LE, idx, lw.const(u64, MAX_OFFSET), line=lw.line)))
    return lw.b.emit(n.Binary(lw.new(u64), BinOp.ADD, base, idx, line=lw.line))


def payload_byte(lw: EmitterBase, node: ast.Subscript, pl: PayloadVal, index_node: ast.expr) -> OptionalVal:
    index = lw.scalar(index_node)
    if not index.type.is_int:
        raise lw.unchecked(index_node)
    chain = _Chain(lw, [BOOL, u8], [lw.const(BOOL, 0), lw.const(u8, 0)])
    if index.const is not None and int(index.const) < 0:
        chain.give_up()
    else:
        off = _checked_offset(lw, chain, pl.offset, index, index_node)
        chain.require(_in_bounds(lw, off, 1))
        chain.succeed([lw.const(BOOL, 1), _load(lw, off, 0, 1)])
    present, value = chain.finish()
    return OptionalVal(Scalar(u8, value), present)


def payload_method(lw: EmitterBase, node: ast.Call, pl: PayloadVal, attr: str) -> DslValue:
    if attr != "read":
        raise lw.unchecked(node)
    if len(node.args) != 2 or node.keywords:
        raise lw.unchecked(node)
    cls_value = lw.lower_expr(node.args[0])
    if not (isinstance(cls_value, Callee) and cls_value.kind == "struct"):
        raise lw.unchecked(node.args[0])
    cls = cls_value.target
    assert isinstance(cls, type) and issubclass(cls, Struct)
    index = lw.scalar(node.args[1])
    if not index.type.is_int:
        raise lw.unchecked(node.args[1])
    stype = StructType(cls)
    zeros = lw.zero_of(stype)
    chain = _Chain(lw, [BOOL, stype], [lw.const(BOOL, 0), zeros])
    if index.const is not None and int(index.const) < 0:
        chain.give_up()
    else:
        off = _checked_offset(lw, chain, pl.offset, index, node.args[1])
        chain.require(_in_bounds(lw, off, cls.size()))
        fields = []
        for f in cls.fields():
            raw = _load(lw, off, f.offset, f.type.size)
            fields.append(_widen(lw, raw, f.type) if f.type != raw.type else raw)
        record = lw.b.emit(n.MakeStruct(lw.new(stype), tuple(fields), line=lw.line))
        chain.succeed([lw.const(BOOL, 1), record])
    present, value = chain.finish()
    return OptionalVal(StructVal(cls, value), present)
