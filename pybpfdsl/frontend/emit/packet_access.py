"""Lowering packet access: header presence, header fields, payload bytes and typed payload reads.

Presence follows the rules in `lang.headers`. The headers a function names are parsed once, at entry,
in one tree (`packet_parse`), and each result is remembered in a pseudo-local (`<pkt>.ipv4`), so
`if pkt.ipv4 is None: return ...` narrows later uses. Every load is preceded, on every path, by an
`InBounds` test covering it (for a header's fields: the one its parse made).
"""

from __future__ import annotations

import ast

from pybpfdsl.frontend.emit import packet_parse
from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.resolve import classify, resolve_global
from pybpfdsl.frontend.source import read_function
from pybpfdsl.frontend.values import Callee, DslValue, HeaderVal, OptionalVal, PacketVal, PayloadVal, Scalar, StructVal
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.types import IRType, StructType
from pybpfdsl.lang import headers as h
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.errors import DslError
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import BOOL, ScalarType, i64, int_type, u8, u32, u64

MAX_OFFSET = h.MAX_PACKET_OFFSET


pseudo_local = packet_parse.pseudo_local
PARSED_ATTRIBUTES = packet_parse.PARSED_ATTRIBUTES


class Chain:
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


def header(lw: EmitterBase, attr: str) -> OptionalVal:
    """`pkt.<attr>` for a header: parsed at entry (`parse_headers_up_front`), else parsed here."""
    memo = lw.env.get(pseudo_local(attr))
    if not isinstance(memo, OptionalVal):
        packet_parse.parse(lw, _closure({attr}) - _parsed(lw))
        memo = lw.env[pseudo_local(attr)]
    assert isinstance(memo, OptionalVal)
    return memo


def payload(lw: EmitterBase) -> PayloadVal:
    """Where the payload starts: after the innermost present header."""
    memo = lw.env.get(pseudo_local("payload"))
    if not isinstance(memo, PayloadVal):
        packet_parse.parse(lw, _closure({"payload"}) - _parsed(lw))
        memo = lw.env[pseudo_local("payload")]
    assert isinstance(memo, PayloadVal)
    return memo


def _parsed(lw: EmitterBase) -> set[str]:
    return {a for a in PARSED_ATTRIBUTES if pseudo_local(a) in lw.env}


def _closure(attrs: set[str]) -> set[str]:
    """`attrs` with the attributes their parse finds on the way (remembered too, so later uses of them
    parse nothing again)."""
    out = set(attrs)
    for attr in attrs:
        out |= _PARSE_NEEDS.get(attr, set())
    return out


def parse_headers_up_front(lw: EmitterBase, tree: ast.FunctionDef, packet_name: str) -> None:
    """Parse, in the entry block, every header the function names (`pkt.tcp`, `pkt.payload`, ...).

    Parsing where a header is first used would repeat the parse inside loops, and the kernel verifier
    walks every iteration's branches: a parse per iteration multiplies the paths it must explore. Parsed
    once at entry (in one tree, `packet_parse`), the results dominate the whole function and loops only
    read them. The parse is attributed to the first line that needs it, so line info (and the verifier
    log) point there.
    """
    used = _headers_named(lw, tree, {packet_name}, set())
    if used:
        lw.line = min(used.values())
        packet_parse.parse(lw, _closure(set(used)))


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
    if attr in h.HEADERS:
        return header(lw, attr)
    if attr == "payload":
        return payload(lw)
    if attr in ("adjust_head", "adjust_tail"):
        return Callee("method", (PacketVal(), attr))
    raise lw.unchecked(node)


def header_field(lw: EmitterBase, node: ast.Attribute, header: HeaderVal, attr: str) -> Scalar:
    spec = header.spec.field(attr)
    if spec is None:
        raise lw.unchecked(node)
    return Scalar(spec.type, read_field(lw, header.offset, spec))


def _checked_offset(lw: EmitterBase, chain: Chain, base: n.Value, idx: n.Value, known_small: bool) -> n.Value:
    """base + idx (u64), failing the chain when idx is too large to be in any packet."""
    if not known_small:
        chain.require(lw.b.emit(n.Compare(lw.new(BOOL), CmpOp.LE, idx, lw.const(u64, MAX_OFFSET), line=lw.line)))
    return lw.b.emit(n.Binary(lw.new(u64), BinOp.ADD, base, idx, line=lw.line))


def _from_end(lw: EmitterBase, chain: Chain, base: n.Value, back: n.Value) -> n.Value:
    """The packet's length - back (u64), failing the chain when that lies before the payload's start `base`.
    Reaching before the packet's start (back > length, back at most 2**63) wraps to at least 2**63, past
    any packet: the caller's `InBounds` fails it, so no test of its own (which would let LLVM check the
    length where the kernel needs the offset checked)."""
    length = _widen(lw, lw.b.emit(n.PacketLen(lw.new(u32, "len"), line=lw.line)), u64)
    off = lw.b.emit(n.Binary(lw.new(u64), BinOp.SUB, length, back, line=lw.line))
    chain.require(lw.b.emit(n.Compare(lw.new(BOOL), CmpOp.GE, off, base, line=lw.line)))
    return off


def payload_position(lw: EmitterBase, chain: Chain, base: n.Value, index: Scalar, node: ast.expr,
                     width: int) -> n.Value:
    """The packet offset of the `width` bytes at payload index `index`, as `lang.packet.payload_position`
    defines it: the payload's start `base` + index for an index >= 0, the packet's length + index for a
    negative one (as Python counts from a sequence's end); the chain fails where the bytes are not all in
    the payload, with an `InBounds` (the caller's loads and stores are covered by it)."""
    off = _position(lw, chain, base, index, node)
    if width > 1:
        # Every byte's offset at most MAX_OFFSET, not only the first's (`InBounds`' rule): the loads and
        # stores of a record's fields are at its offset + theirs, each within the IR's packet rule.
        last = MAX_OFFSET - (width - 1)
        chain.require(lw.b.emit(n.Compare(lw.new(BOOL), CmpOp.LE, off, lw.const(u64, last), line=lw.line)))
    chain.require(_in_bounds(lw, off, width))
    return off


def _position(lw: EmitterBase, chain: Chain, base: n.Value, index: Scalar, node: ast.expr) -> n.Value:
    if index.const is not None:
        c = int(index.const)
        if c < 0:
            return _from_end(lw, chain, base, lw.const(u64, -c))
        return _checked_offset(lw, chain, base, lw.const(u64, c), c <= MAX_OFFSET)
    idx = lw.scalar_value(lw.convert(index, u64, node))  # a negative index sign-extended
    if not index.type.signed:
        return _checked_offset(lw, chain, base, idx, False)
    if _never_negative(lw, index):  # a loop over positions, `for i in range(64)`: its counter's i32
        return _checked_offset(lw, chain, base, idx, False)
    signed = lw.scalar_value(lw.convert(index, i64, node))
    negative = lw.b.emit(n.Compare(lw.new(BOOL), CmpOp.LT, signed, lw.const(i64, 0), line=lw.line))
    from_end, from_start = lw.b.new_block("payload_from_end"), lw.b.new_block("payload_from_start")
    known = lw.b.new_block("payload_position")
    off = lw.new(u64)
    known.params.append(off)
    lw.b.terminate(n.Branch(negative, n.Edge(from_end.name), n.Edge(from_start.name), line=lw.line))
    lw.b.set_block(from_start)
    lw.b.terminate(n.Jump(n.Edge(known.name, (_checked_offset(lw, chain, base, idx, False),)), line=lw.line))
    lw.b.set_block(from_end)
    back = lw.b.emit(n.Binary(lw.new(u64), BinOp.SUB, lw.const(u64, 0), idx, line=lw.line))
    lw.b.terminate(n.Jump(n.Edge(known.name, (_from_end(lw, chain, base, back),)), line=lw.line))
    lw.b.set_block(known)
    return off


def _never_negative(lw: EmitterBase, index: Scalar) -> bool:
    """Whether `index` is the counter of a `for ... in range(...)` loop being lowered, as the loop gives it
    to its body, with none of the range's values negative: its sign needs no test (which would cost every
    iteration a branch, and the kernel verifier a path per access)."""
    if index.value is None:
        return False
    for loop, name in lw.loop_counters.values():
        counter = lw.env.get(name)
        if not (isinstance(loop, ast.For) and isinstance(loop.iter, ast.Call) and isinstance(counter, Scalar)
                and counter.value is index.value):
            continue
        bounds = [lw.typed.consts.get((lw.ctx, a)) for a in loop.iter.args]
        if not all(isinstance(b, int) for b in bounds) or not 1 <= len(bounds) <= 3:
            return False
        values = [int(b) for b in bounds if isinstance(b, int)]
        first, stop, step = (0, values[0], 1) if len(values) == 1 else (
            values[0], values[1], values[2] if len(values) == 3 else 1)
        taken = range(first, stop, step)
        return step != 0 and (len(taken) == 0 or min(taken[0], taken[-1]) >= 0)
    return False


def payload_byte(lw: EmitterBase, node: ast.Subscript, pl: PayloadVal, index_node: ast.expr) -> OptionalVal:
    index = lw.scalar(index_node)
    if not index.type.is_int:
        raise lw.unchecked(index_node)
    chain = Chain(lw, [BOOL, u8], [lw.const(BOOL, 0), lw.const(u8, 0)])
    off = payload_position(lw, chain, pl.offset, index, index_node, 1)
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
    chain = Chain(lw, [BOOL, stype], [lw.const(BOOL, 0), zeros])
    off = payload_position(lw, chain, pl.offset, index, node.args[1], cls.size())
    fields = []
    for f in cls.fields():
        raw = _load(lw, off, f.offset, f.type.size)
        if f.type.is_fixed:  # a float field's 8 bytes are its Q32.32 bits (Struct.from_bytes), not a number
            fields.append(lw.b.emit(n.Reinterpret(lw.new(f.type), _widen(lw, raw, u64), line=lw.line)))
        else:
            fields.append(_widen(lw, raw, f.type) if f.type != raw.type else raw)
    record = lw.b.emit(n.MakeStruct(lw.new(stype), tuple(fields), line=lw.line))
    chain.succeed([lw.const(BOOL, 1), record])
    present, value = chain.finish()
    return OptionalVal(StructVal(cls, value), present)
