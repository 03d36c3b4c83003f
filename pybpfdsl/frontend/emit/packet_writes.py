"""Lowering packet writes: header fields, with the checksums covering them updated, and payload bytes.

A field write follows `lang.checksum` step by step, so the compiled program writes the bytes pure
Python writes: the field's region (whole 16-bit words when a checksum may cover it) is loaded, the
field's bits replaced, the region stored; then each covering checksum is loaded, updated by RFC 1624
(one's-complement sums over the region's old and new words) and stored. The TCP and UDP checksums of a
pseudo-header field (an address) are updated only where that header is present: a branch on its
presence, parsed at entry like every header the function uses (`packet_access.parse_headers_up_front`).
Arithmetic is in u64 (the IR's rules ask for 32 or 64 bits).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from functools import partial

from pybpfdsl.frontend.emit import packet_access
from pybpfdsl.frontend.emit.base import EmitterBase
from pybpfdsl.frontend.field_moves import keeps_checksums
from pybpfdsl.frontend.values import HeaderVal, OptionalVal, PayloadVal, Scalar, StructVal
from pybpfdsl.ir import nodes as n
from pybpfdsl.lang import headers as h
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.checksum import CHECKSUM_OFFSET, Region, covering, offloaded, region_of
from pybpfdsl.lang.types import BOOL, ScalarType, i32, int_type, u8, u64

__all__ = ["field_assign", "field_aug", "move", "payload_store", "payload_write", "swap"]


def _header_of(lw: EmitterBase, target: ast.Attribute) -> tuple[HeaderVal, h.FieldSpec]:
    base = lw.lower_expr(target.value)
    header = base.inner if isinstance(base, OptionalVal) and base.narrowed else base
    if not isinstance(header, HeaderVal):
        raise lw.unchecked(target)
    spec = header.spec.field(target.attr)
    if spec is None:
        raise lw.unchecked(target)
    return header, spec


def field_assign(lw: EmitterBase, target: ast.Attribute, value_node: ast.expr) -> None:
    """`hdr.field = value`."""
    header, spec = _header_of(lw, target)
    value = lw.convert(lw.scalar(value_node), spec.type, value_node, implicit=True)
    write_field(lw, header, spec, lw.scalar_value(value))


def field_aug(lw: EmitterBase, target: ast.Attribute, op: BinOp, value_node: ast.expr, s: ast.stmt) -> None:
    """`hdr.field op= value`: the field read, the operation in the type the checker recorded, written back."""
    header, spec = _header_of(lw, target)
    old = packet_access.header_field(lw, target, header, spec.name)
    result = lw.binary(op, old, lw.scalar(value_node), s)
    lw.record(s, result)
    write_field(lw, header, spec, lw.scalar_value(lw.convert(result, spec.type, s)))


def swap(lw: EmitterBase, targets: ast.Tuple | ast.List, value: ast.expr) -> None:
    """`a, b = x, y` over header fields: every value is computed before any field is written; a move of
    one header's fields among themselves that keeps the checksums' sums updates none
    (`lang.checksum.sums_unchanged`)."""
    assert isinstance(value, ast.Tuple | ast.List)
    pending: list[tuple[HeaderVal, h.FieldSpec, n.Value]] = []
    for t, v in zip(targets.elts, value.elts):
        if not isinstance(t, ast.Attribute):
            raise lw.unchecked(t)
        header, spec = _header_of(lw, t)
        pending.append((header, spec, lw.scalar_value(lw.convert(lw.scalar(v), spec.type, v, implicit=True))))
    keep = keeps_checksums(pending[0][0].spec, targets, value)
    for header, spec, computed in pending:
        write_field(lw, header, spec, computed, update_checksums=not keep)


def _u64(lw: EmitterBase, v: n.Value) -> n.Value:
    return v if v.type == u64 else lw.b.emit(n.Convert(lw.new(u64), v, line=lw.line))


def _op(lw: EmitterBase, op: BinOp, a: n.Value, b: n.Value | int) -> n.Value:
    rhs = lw.const(u64, b) if isinstance(b, int) else b
    return lw.b.emit(n.Binary(lw.new(u64), op, a, rhs, line=lw.line))


def _offset(lw: EmitterBase, base: n.Value, k: int) -> n.Value:
    return base if k == 0 else _op(lw, BinOp.ADD, base, k)


def _load(lw: EmitterBase, base: n.Value, k: int, size: int) -> n.Value:
    """`size` bytes (1, 2, 4, 6 or 8) at base + k, big-endian, as a u64."""
    if size == 6:
        hi, lo = _load(lw, base, k, 4), _load(lw, base, k + 4, 2)
        return _op(lw, BinOp.OR, _op(lw, BinOp.SHL, hi, 16), lo)
    t = int_type(8 * size, False)
    return _u64(lw, lw.b.emit(n.LoadPacket(lw.new(t), _offset(lw, base, k), size, line=lw.line)))


def _store(lw: EmitterBase, base: n.Value, k: int, size: int, value: n.Value) -> None:
    """The low `size` bytes of the u64 `value` at base + k, big-endian."""
    if size == 6:
        _store(lw, base, k, 4, _op(lw, BinOp.SHR, value, 16))
        _store(lw, base, k + 4, 2, value)
        return
    t: ScalarType = int_type(8 * size, False)
    narrow = value if t == u64 else lw.b.emit(n.Convert(lw.new(t), value, line=lw.line))
    lw.b.append(n.StorePacket(_offset(lw, base, k), narrow, size, line=lw.line))


def _words(lw: EmitterBase, region: Region, contents: n.Value) -> list[n.Value]:
    count = region.size // 2
    return [_op(lw, BinOp.AND, _op(lw, BinOp.SHR, contents, 16 * (count - 1 - k)) if k < count - 1 else contents,
                0xFFFF) for k in range(count)]


def write_field(lw: EmitterBase, header: HeaderVal, spec: h.FieldSpec, value: n.Value,
                update_checksums: bool = True) -> None:
    """Write `value` (of the field's type) into `spec` of `header`, updating the checksums covering it
    (unless not `update_checksums`)."""
    skipped = offloaded(lw.main.function.__globals__)
    covers = tuple(name for name in covering(header.spec.name, spec.name)
                   if name not in skipped and update_checksums)
    region = region_of(spec, word_aligned=bool(covers))
    old = _load(lw, header.offset, region.offset, region.size)
    kept = _op(lw, BinOp.AND, old, ~(region.mask << region.shift) & ((1 << 64) - 1))
    bits = _op(lw, BinOp.AND, _u64(lw, value), region.mask)
    new = _op(lw, BinOp.OR, kept, _op(lw, BinOp.SHL, bits, region.shift) if region.shift else bits)
    _store(lw, header.offset, region.offset, region.size, new)
    if not covers:
        return
    delta: n.Value | None = None
    for old_word, new_word in zip(_words(lw, region, old), _words(lw, region, new)):
        delta = _changed(lw, delta, old_word, new_word)
    assert delta is not None
    for name in covers:
        if name == header.spec.name:
            _update_checksum(lw, header.offset, name, delta)
            continue
        _if_present(lw, name, partial(_update_checksum, lw, name=name, delta=delta))


def _changed(lw: EmitterBase, delta: n.Value | None, old_word: n.Value, new_word: n.Value) -> n.Value:
    """`delta + ~old_word + new_word` (16-bit words in a u64): the part of RFC 1624 eqn. 3 one changed
    word adds. The sum runs as the words are written, so only it stays live until the checksum is
    updated: a list of every old and new word of a 32-byte record kept live across the update made LLVM
    spill them past the 512-byte BPF stack."""
    term = _op(lw, BinOp.ADD, _op(lw, BinOp.XOR, old_word, 0xFFFF), new_word)
    return term if delta is None else _op(lw, BinOp.ADD, delta, term)


def _update_checksum(lw: EmitterBase, base: n.Value, name: str, delta: n.Value) -> None:
    """RFC 1624 eqn. 3, as `lang.checksum.updated_checksum`; `delta` is the changed words' part
    (`_changed`). At most a few hundred words are summed, far from a u64's carry."""
    at = CHECKSUM_OFFSET[name]
    hc = _load(lw, base, at, 2)
    total = _op(lw, BinOp.ADD, _op(lw, BinOp.XOR, hc, 0xFFFF), delta)
    for _ in range(2):
        total = _op(lw, BinOp.ADD, _op(lw, BinOp.AND, total, 0xFFFF), _op(lw, BinOp.SHR, total, 16))
    updated = _op(lw, BinOp.XOR, _op(lw, BinOp.AND, total, 0xFFFF), 0xFFFF)
    if name == "udp":  # 0 means "no checksum" and stays 0; a computed 0 is sent as 0xFFFF
        zero = lw.const(u64, 0)
        computed_zero = lw.b.emit(n.Compare(lw.new(BOOL), CmpOp.EQ, updated, zero, line=lw.line))
        updated = lw.b.emit(n.Select(lw.new(u64), computed_zero, lw.const(u64, 0xFFFF), updated, line=lw.line))
        none = lw.b.emit(n.Compare(lw.new(BOOL), CmpOp.EQ, hc, zero, line=lw.line))
        updated = lw.b.emit(n.Select(lw.new(u64), none, zero, updated, line=lw.line))
    _store(lw, base, at, 2, updated)


def payload_store(lw: EmitterBase, target: ast.Subscript, value_node: ast.expr) -> None:
    """`pkt.payload[i] = b`: written where the byte is in the packet, nothing otherwise."""
    pl = lw.lower_expr(target.value)
    if not isinstance(pl, PayloadVal):
        raise lw.unchecked(target)
    index = lw.scalar(target.slice)
    byte = lw.scalar_value(lw.convert(lw.scalar(value_node), u8, value_node, implicit=True))
    chain = packet_access.Chain(lw, [], [])  # nothing written where the byte is outside the payload
    off = packet_access.payload_position(lw, chain, pl.offset, index, target.slice, 1)
    old = _load(lw, off, 0, 1)
    lw.b.append(n.StorePacket(off, byte, 1, line=lw.line))
    # The byte is the high half of its checksum word at an even offset, the low half at an odd one.
    odd = _op(lw, BinOp.AND, off, 1)
    shift = _op(lw, BinOp.SHL, _op(lw, BinOp.XOR, odd, 1), 3)
    delta = _changed(lw, None, _op(lw, BinOp.SHL, old, shift), _op(lw, BinOp.SHL, _u64(lw, byte), shift))
    for name in sorted({"tcp", "udp"} - offloaded(lw.main.function.__globals__)):
        _if_present(lw, name, partial(_update_checksum, lw, name=name, delta=delta))
    chain.succeed([])
    chain.finish()


def _if_present(lw: EmitterBase, name: str, then: Callable[[n.Value], None]) -> None:
    """`then(offset of header name)` on the paths where that header is present."""
    other = packet_access.header(lw, name)
    inner = other.inner
    assert isinstance(inner, HeaderVal)
    yes, done = lw.b.new_block(f"{name}_checksum"), lw.b.new_block(f"{name}_checksum_done")
    lw.b.terminate(n.Branch(other.present, n.Edge(yes.name), n.Edge(done.name), line=lw.line))
    lw.b.set_block(yes)
    then(inner.offset)
    lw.b.terminate(n.Jump(n.Edge(done.name), line=lw.line))
    lw.b.set_block(done)




def payload_write(lw: EmitterBase, call: ast.Call) -> None:
    """`pkt.payload.write(offset, record)`: every field big-endian, byte by byte, when the whole record
    is inside the packet (nothing otherwise); then one TCP/UDP checksum update over all the bytes, as
    `lang.checksum.write_payload_bytes`."""
    assert isinstance(call.func, ast.Attribute)
    pl = lw.lower_expr(call.func.value)
    if not isinstance(pl, PayloadVal):
        raise lw.unchecked(call)
    index = lw.scalar(call.args[0])
    record = lw.lower_expr(call.args[1])
    if isinstance(record, OptionalVal) and record.narrowed:
        record = record.inner
    if not isinstance(record, StructVal):
        raise lw.unchecked(call.args[1])
    chain = packet_access.Chain(lw, [], [])  # nothing written unless the whole record is in the payload
    off = packet_access.payload_position(lw, chain, pl.offset, index, call.args[0], record.cls.size())
    delta = _record_stored(lw, record, off)
    for name in sorted({"tcp", "udp"} - offloaded(lw.main.function.__globals__)):
        _if_present(lw, name, partial(_update_checksum, lw, name=name, delta=delta))
    chain.succeed([])
    chain.finish()


def _record_stored(lw: EmitterBase, record: StructVal, off: n.Value) -> n.Value:
    """Store each field of `record` at `off` + its offset, one packet store per field; return the
    checksum change (`_changed`) of all its bytes, as `lang.checksum.write_payload_bytes` sums them.

    A byte at an even packet offset is the high half of its checksum word (shifted by 8), at an odd one
    the low half. Bytes an even distance apart share a half, so the old and the new bytes are summed
    per half and shifted once: the same integer as the byte-by-byte sum, with few live values. (One
    store per byte, each at its own address, had LLVM hoist 32 addresses out of a loop and spill them
    past the 512-byte BPF stack.)"""
    old_halves: list[n.Value | None] = [None, None]
    new_halves: list[n.Value | None] = [None, None]
    count = 0
    for f in record.cls.fields():
        ft: ScalarType = f.type
        value = _u64(lw, lw.b.emit(n.ExtractField(lw.new(ft), record.value, f.name, line=lw.line)))
        at = _offset(lw, off, f.offset)
        old = _load(lw, at, 0, ft.size)
        _store(lw, at, 0, ft.size, value)
        for j in range(ft.size):
            half = (f.offset + j) & 1
            shift = 8 * (ft.size - 1 - j)
            for sums, contents in ((old_halves, old), (new_halves, value)):
                byte = _op(lw, BinOp.AND, _op(lw, BinOp.SHR, contents, shift) if shift else contents, 0xFF)
                previous = sums[half]
                sums[half] = byte if previous is None else _op(lw, BinOp.ADD, previous, byte)
            count += 1
    even_shift = _op(lw, BinOp.SHL, _op(lw, BinOp.XOR, _op(lw, BinOp.AND, off, 1), 1), 3)
    shifts = even_shift, _op(lw, BinOp.XOR, even_shift, 8)

    def shifted(sums: list[n.Value | None]) -> n.Value:
        parts = [_op(lw, BinOp.SHL, v, shifts[half]) for half, v in enumerate(sums) if v is not None]
        return parts[0] if len(parts) == 1 else _op(lw, BinOp.ADD, parts[0], parts[1])

    # sum(~(old << shift) & 0xFFFF) is count * 0xFFFF minus the shifted old bytes (each is at most 0xFF00)
    kept = _op(lw, BinOp.SUB, lw.const(u64, count * 0xFFFF), shifted(old_halves))
    return _op(lw, BinOp.ADD, kept, shifted(new_halves))


def move(lw: EmitterBase, node: ast.Call, attr: str) -> Scalar:
    """`pkt.adjust_head(delta)` / `pkt.adjust_tail(delta)`: the move, then every header forgotten (the
    checker made the locals that held one unusable), so a later `pkt.tcp` parses the packet afresh."""
    delta = lw.scalar_value(lw.convert(lw.scalar(node.args[0]), i32, node.args[0], implicit=True))
    moved = lw.b.emit(n.AdjustPacket(lw.new(BOOL, "moved"), delta, attr == "adjust_head", line=lw.line))
    for name, value in list(lw.env.items()):
        if isinstance(value, HeaderVal | PayloadVal) or (isinstance(value, OptionalVal)
                                                          and isinstance(value.inner, HeaderVal)):
            del lw.env[name]
    return Scalar(BOOL, moved)
