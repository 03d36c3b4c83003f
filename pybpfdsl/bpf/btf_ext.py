"""``.BTF`` types/strings and ``.BTF.ext`` function and line info.

We read BTF for two things: names (the string section, which is also where
line info keeps file names and source-line text) and the layout of
BTF-defined maps in ``.maps`` (key/value sizes, type, max_entries).  Only
what those need is decoded; it is not a general BTF library.

``.BTF`` layout (all little-endian)::

    header:  u16 magic 0xeB9F | u8 version | u8 flags | u32 hdr_len
             u32 type_off | u32 type_len | u32 str_off | u32 str_len
    then at hdr_len + type_off: type records; at hdr_len + str_off: strings.

    type record: u32 name_off | u32 info | u32 size_or_type | kind-specific
        info = kind_flag << 31 | kind << 24 | vlen (low 16 bits)

``.BTF.ext`` layout::

    header:  u16 magic | u8 version | u8 flags | u32 hdr_len
             u32 func_info_off | u32 func_info_len
             u32 line_info_off | u32 line_info_len
             [u32 core_relo_off | u32 core_relo_len]   (hdr_len >= 32)
    each info block, at hdr_len + *_off:
        u32 rec_size
        repeated: u32 sec_name_off | u32 num_info | num_info * rec_size bytes
    func_info record: u32 insn_off (bytes) | u32 type_id
    line_info record: u32 insn_off (bytes) | u32 file_name_off
                      | u32 line_off | u32 line_col (line << 10 | column)

Records are read with their declared ``rec_size`` so that newer producers
appending fields still parse.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from pybpfdsl.bpf.instruction import decode, slot_offsets

__all__ = [
    "BTF_MAGIC",
    "Btf",
    "BtfError",
    "BtfExt",
    "BtfKind",
    "BtfMapDef",
    "BtfType",
    "FuncInfo",
    "LineInfo",
    "with_insn_indices",
]

BTF_MAGIC = 0xEB9F
_HDR = struct.Struct("<HBBI")


class BtfError(ValueError):
    """Malformed ``.BTF`` or ``.BTF.ext`` data."""


class BtfKind(enum.IntEnum):
    """``BTF_KIND_*``: bits 24-28 of a type record's ``info``."""

    UNKN = 0  #: void (only as a referenced id 0)
    INT = 1  #: integer; + u32 encoding/offset/bits
    PTR = 2  #: pointer to ``type``
    ARRAY = 3  #: + u32 elem type, u32 index type, u32 nelems
    STRUCT = 4  #: + vlen members {name_off, type, offset}
    UNION = 5  #: same member layout as STRUCT
    ENUM = 6  #: + vlen {name_off, s32 val}
    FWD = 7  #: forward declaration
    TYPEDEF = 8  #: alias of ``type``
    VOLATILE = 9  #: modifier of ``type``
    CONST = 10  #: modifier of ``type``
    RESTRICT = 11  #: modifier of ``type``
    FUNC = 12  #: function; ``type`` = FUNC_PROTO
    FUNC_PROTO = 13  #: + vlen params {name_off, type}
    VAR = 14  #: global variable; + u32 linkage
    DATASEC = 15  #: section; + vlen {type (VAR), offset, size}
    FLOAT = 16  #: floating point of ``size`` bytes
    DECL_TAG = 17  #: + u32 component_idx
    TYPE_TAG = 18  #: modifier of ``type``
    ENUM64 = 19  #: + vlen {name_off, u32 lo, u32 hi}


# Bytes that follow the 12-byte common record: (fixed part, per-vlen part).
_TRAILER: Mapping[BtfKind, tuple[int, int]] = {
    BtfKind.INT: (4, 0),
    BtfKind.ARRAY: (12, 0),
    BtfKind.STRUCT: (0, 12),
    BtfKind.UNION: (0, 12),
    BtfKind.ENUM: (0, 8),
    BtfKind.FUNC_PROTO: (0, 8),
    BtfKind.VAR: (4, 0),
    BtfKind.DATASEC: (0, 12),
    BtfKind.DECL_TAG: (4, 0),
    BtfKind.ENUM64: (0, 12),
}

# Kinds whose third word is a referenced type rather than a size.
_REFERS = frozenset(
    {
        BtfKind.PTR,
        BtfKind.TYPEDEF,
        BtfKind.VOLATILE,
        BtfKind.CONST,
        BtfKind.RESTRICT,
        BtfKind.FUNC,
        BtfKind.FUNC_PROTO,
        BtfKind.VAR,
        BtfKind.DECL_TAG,
        BtfKind.TYPE_TAG,
    }
)
_MODIFIERS = frozenset({BtfKind.TYPEDEF, BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG})


@dataclass(frozen=True)
class BtfType:
    """One decoded type record; ``members`` are (name, type id, offset) triples.

    For STRUCT/UNION the offset is in bits; for DATASEC it is in bytes (and
    ``name`` is empty: entries name their VAR through the type id); for
    ARRAY there is a single ("", elem type, nelems) entry.
    """

    id: int
    kind: BtfKind
    name: str
    size: int | None = None
    type: int | None = None
    members: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class BtfMapDef:
    """A BTF-defined map from ``.maps``; None where the definition is silent."""

    name: str
    map_type: int | None = None
    key_size: int | None = None
    value_size: int | None = None
    max_entries: int | None = None
    map_flags: int | None = None
    key_type_id: int | None = None
    value_type_id: int | None = None


@dataclass(frozen=True)
class Btf:
    """Decoded ``.BTF`` section: the string table and the type records."""

    strings: bytes
    types: tuple[BtfType, ...] = field(repr=False)
    """Indexed by type id; ``types[0]`` is void."""

    @classmethod
    def parse(cls, data: bytes) -> Btf:
        """Decode a raw ``.BTF`` section."""
        if len(data) < 24:
            raise BtfError("BTF data shorter than its header")
        magic, _version, _flags, hdr_len = _HDR.unpack_from(data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        strings = data[hdr_len + str_off : hdr_len + str_off + str_len]
        raw = data[hdr_len + type_off : hdr_len + type_off + type_len]
        return cls(strings, _parse_types(raw, strings))

    def string(self, offset: int) -> str:
        """NUL-terminated string at ``offset`` of the string section."""
        return _cstr(self.strings, offset)

    def resolve(self, type_id: int) -> BtfType:
        """Follow typedefs and qualifiers to the underlying type."""
        t = self.types[type_id]
        for _ in range(len(self.types)):  # bounded: cycles are malformed BTF
            if t.kind not in _MODIFIERS or t.type is None:
                return t
            t = self.types[t.type]
        raise BtfError(f"type {type_id}: modifier cycle")

    def size_of(self, type_id: int) -> int:
        """Byte size of a type (pointers are 8 bytes on BPF)."""
        t = self.resolve(type_id)
        if t.kind == BtfKind.PTR:
            return 8
        if t.kind == BtfKind.ARRAY:
            _, elem, nelems = t.members[0]
            return nelems * self.size_of(elem)
        if t.kind == BtfKind.VAR and t.type is not None:
            return self.size_of(t.type)
        if t.size is None:
            raise BtfError(f"type {type_id} ({t.kind.name}) has no size")
        return t.size

    def by_name(self, name: str, kind: BtfKind | None = None) -> list[BtfType]:
        """All types called ``name`` (optionally of one kind)."""
        return [t for t in self.types if t.name == name and (kind is None or t.kind == kind)]

    def map_definitions(self) -> dict[str, BtfMapDef]:
        """Maps declared in the ``.maps`` DATASEC, by variable name.

        libbpf's convention: ``__uint(name, N)`` is a pointer to an ``int[N]``
        (N is the array length), ``__type(key, T)`` a pointer to ``T``.
        """
        out: dict[str, BtfMapDef] = {}
        for sec in self.by_name(".maps", BtfKind.DATASEC):
            for _, var_id, _offset in sec.members:
                var = self.types[var_id]
                if var.kind != BtfKind.VAR or var.type is None:
                    continue
                out[var.name] = self._map_def(var.name, self.resolve(var.type))
        return out

    def _map_def(self, name: str, struct_t: BtfType) -> BtfMapDef:
        ints: dict[str, int] = {}
        types: dict[str, int] = {}
        for member, mtype, _bit_off in struct_t.members:
            target = self.resolve(mtype)
            if target.kind != BtfKind.PTR or target.type is None:
                continue
            pointee = self.resolve(target.type)
            if pointee.kind == BtfKind.ARRAY:  # __uint(member, N)
                ints[member] = pointee.members[0][2]
            types[member] = target.type
        key_size = ints.get("key_size")
        value_size = ints.get("value_size")
        if key_size is None and "key" in types:
            key_size = self.size_of(types["key"])
        if value_size is None and "value" in types:
            value_size = self.size_of(types["value"])
        return BtfMapDef(
            name,
            map_type=ints.get("type"),
            key_size=key_size,
            value_size=value_size,
            max_entries=ints.get("max_entries"),
            map_flags=ints.get("map_flags"),
            key_type_id=types.get("key"),
            value_type_id=types.get("value"),
        )


def _cstr(table: bytes, offset: int) -> str:
    if not 0 <= offset < len(table):
        return ""
    end = table.find(b"\0", offset)
    return table[offset : end if end >= 0 else len(table)].decode("utf-8", "replace")


def _parse_types(raw: bytes, strings: bytes) -> tuple[BtfType, ...]:
    types = [BtfType(0, BtfKind.UNKN, "")]
    pos = 0
    while pos + 12 <= len(raw):
        name_off, info, size_or_type = struct.unpack_from("<III", raw, pos)
        pos += 12
        try:
            kind = BtfKind((info >> 24) & 0x1F)
        except ValueError as exc:
            raise BtfError(f"unknown BTF kind {(info >> 24) & 0x1F} at type {len(types)}") from exc
        vlen = info & 0xFFFF
        fixed, per = _TRAILER.get(kind, (0, 0))
        trailer = raw[pos : pos + fixed + per * vlen]
        pos += fixed + per * vlen
        members: list[tuple[str, int, int]] = []
        if kind == BtfKind.ARRAY:
            elem, _index, nelems = struct.unpack_from("<III", trailer, 0)
            members.append(("", elem, nelems))
        elif kind in (BtfKind.STRUCT, BtfKind.UNION, BtfKind.DATASEC):
            for i in range(vlen):
                a, b, c = struct.unpack_from("<III", trailer, i * 12)
                if kind == BtfKind.DATASEC:  # {type, offset, size}
                    members.append(("", a, b))
                else:  # {name_off, type, offset}
                    # kind_flag set: offset packs bitfield size in the top byte
                    members.append((_cstr(strings, a), b, c & 0xFFFFFF if info >> 31 else c))
        elif kind == BtfKind.FUNC_PROTO:
            for i in range(vlen):
                a, b = struct.unpack_from("<II", trailer, i * 8)
                members.append((_cstr(strings, a), b, 0))
        refers = kind in _REFERS
        types.append(
            BtfType(
                len(types),
                kind,
                _cstr(strings, name_off),
                size=None if refers else size_or_type,
                type=size_or_type if refers else None,
                members=tuple(members),
            )
        )
    return tuple(types)


# --------------------------------------------------------------------------- #
# .BTF.ext
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class LineInfo:
    """Source position of the instruction starting at ``slot``."""

    insn_index: int
    """Index into the section's decoded instruction list (lddw counts once),
    i.e. into :attr:`pybpfdsl.bpf.elf.ElfProgram.instructions`."""
    file: str
    line: int
    column: int
    text: str
    """The source line as the producer embedded it (may be empty)."""
    slot: int = 0
    """Slot index (``insn_off / 8``), the numbering the kernel log uses."""


@dataclass(frozen=True)
class FuncInfo:
    """A function starting at ``slot``, with its BTF FUNC type."""

    slot: int
    type_id: int
    name: str


@dataclass(frozen=True)
class BtfExt:
    """Decoded ``.BTF.ext``: per-section records, in slots (not yet indices)."""

    func_info: Mapping[str, tuple[FuncInfo, ...]]
    line_info: Mapping[str, tuple[LineInfo, ...]]

    @classmethod
    def parse(cls, data: bytes, btf: Btf) -> BtfExt:
        """Decode a raw ``.BTF.ext`` section; names resolve through ``btf``."""
        if len(data) < 24:
            raise BtfError("BTF.ext data shorter than its header")
        magic, _version, _flags, hdr_len = _HDR.unpack_from(data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF.ext magic {magic:#x}")
        func_off, func_len, line_off, line_len = struct.unpack_from("<IIII", data, 8)
        funcs: dict[str, tuple[FuncInfo, ...]] = {}
        for sec, recs in _info_blocks(data, hdr_len + func_off, func_len, 8, btf):
            out_f = []
            for rec in recs:
                insn_off, type_id = struct.unpack_from("<II", rec, 0)
                name = btf.types[type_id].name if type_id < len(btf.types) else ""
                out_f.append(FuncInfo(insn_off // 8, type_id, name))
            funcs[sec] = tuple(out_f)
        lines: dict[str, tuple[LineInfo, ...]] = {}
        for sec, recs in _info_blocks(data, hdr_len + line_off, line_len, 16, btf):
            out_l = []
            for rec in recs:
                insn_off, file_off, text_off, line_col = struct.unpack_from("<IIII", rec, 0)
                out_l.append(
                    LineInfo(
                        insn_index=insn_off // 8,
                        file=btf.string(file_off),
                        line=line_col >> 10,
                        column=line_col & 0x3FF,
                        text=btf.string(text_off),
                        slot=insn_off // 8,
                    )
                )
            lines[sec] = tuple(out_l)
        return cls(funcs, lines)


def _info_blocks(data: bytes, start: int, length: int, min_rec: int, btf: Btf) -> list[tuple[str, list[bytes]]]:
    """Split one func/line info area into (section name, raw records)."""
    if length == 0:
        return []
    end = start + length
    if end > len(data) or length < 4:
        raise BtfError("BTF.ext info area out of bounds")
    (rec_size,) = struct.unpack_from("<I", data, start)
    if rec_size < min_rec:
        raise BtfError(f"BTF.ext record size {rec_size} < {min_rec}")
    pos = start + 4
    out: list[tuple[str, list[bytes]]] = []
    while pos + 8 <= end:
        sec_off, num = struct.unpack_from("<II", data, pos)
        pos += 8
        if pos + num * rec_size > end:
            raise BtfError("BTF.ext records run past their area")
        recs = [data[pos + i * rec_size : pos + (i + 1) * rec_size] for i in range(num)]
        pos += num * rec_size
        out.append((btf.string(sec_off), recs))
    return out


def with_insn_indices(infos: tuple[LineInfo, ...], code: bytes) -> tuple[LineInfo, ...]:
    """Fill in ``insn_index`` (list index) from ``slot`` for one section's code."""
    slot_to_index = {slot: i for i, slot in enumerate(slot_offsets(decode(code)))}
    return tuple(
        LineInfo(slot_to_index.get(li.slot, li.slot), li.file, li.line, li.column, li.text, li.slot) for li in infos
    )
