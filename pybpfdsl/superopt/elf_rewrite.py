"""Write a BPF object back with some instructions of its code sections replaced by fewer ones.

Removing a slot moves every later instruction of its section, so everything that counts slots or bytes
in that section moves with it: jump offsets and pc-relative calls, relocation offsets (``.rel<sec>``),
symbol values and function sizes (``.symtab``), ``.BTF.ext`` func/line/CO-RE records, and the
relocations clang writes against ``.BTF.ext`` itself. The sections are then laid out again, in their
old order and alignment, with the section headers at the end.

What a replacement may be: ``n`` whole instructions with no jump, call, exit or relocation among them
(the search only edits such straight-line windows), replaced by at most as many slots; or such a run
ending in a conditional jump, replaced by one ending in a conditional jump to the same place (the new
jump's offset is the old one's, and is moved like the old one's would be); or a region (jumps inside,
`region`) replaced by code whose jumps land inside it or leave it for old instructions named in
``Replacement.exits``, each aimed at that instruction's new place (a region may hold helper calls, by
id: they move nowhere). Only the first
old slot of a window can be a jump target (a window lies in one basic block), so every old slot of the
window maps to the window's new start. Line info that lands on the same new slot as an earlier record
is dropped: the kernel wants strictly increasing offsets. DWARF (``.debug_*``) is left as it was: no
loader reads it, and its line table now describes the input's layout.

Long because the ELF container, the symbol and relocation tables and ``.BTF.ext`` are one edit: each
alone would leave the object inconsistent.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pybpfdsl.bpf.instruction import INSN_SIZE, Instruction, decode, encode, slot_offsets
from pybpfdsl.bpf.opcode import Kind, PseudoSrc

__all__ = ["ElfRewriteError", "Replacement", "rewrite_code"]

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
SHT_NOBITS = 8
SHT_SYMTAB = 2
SHT_REL = 9
STT_FUNC = 2
SHF_EXECINSTR = 0x4


class ElfRewriteError(ValueError):
    """The object or the requested replacement is not one this rewriter handles."""


@dataclass(frozen=True)
class Replacement:
    """Instructions ``[start, start + count)`` (list indices) of a section become ``code``."""

    start: int
    count: int
    code: tuple[Instruction, ...]
    exits: tuple[tuple[int, int], ...] = ()
    """A region's replacement (`region.RegionCode`): (position in ``code``, old instruction index) of each
    jump that leaves it, pointed at that instruction's new place; its other jumps land inside ``code``
    (or just past its end) and keep their offsets."""


@dataclass
class _Section:
    name: str
    header: list[int]  # the ten Elf64_Shdr fields
    data: bytes

    @property
    def type(self) -> int:
        return self.header[1]


def _read(elf: bytes) -> tuple[list[object], list[_Section]]:
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ElfRewriteError("not a little-endian ELF64 object")
    ehdr = list(_EHDR.unpack_from(elf, 0))
    shoff, shnum, shstrndx = ehdr[6], ehdr[12], ehdr[13]
    headers = [list(_SHDR.unpack_from(elf, shoff + i * _SHDR.size)) for i in range(shnum)]
    strtab = headers[shstrndx]
    names = elf[strtab[4]:strtab[4] + strtab[5]]
    out = []
    for h in headers:
        name = names[h[0]:names.index(b"\0", h[0])].decode()
        data = b"" if h[1] == SHT_NOBITS else elf[h[4]:h[4] + h[5]]
        out.append(_Section(name, h, data))
    return ehdr, out


def _write(ehdr: list[object], sections: list[_Section]) -> bytes:
    """Lay the sections out again in their old file order, each at its alignment."""
    out = bytearray(b"\0" * _EHDR.size)
    order = sorted(range(1, len(sections)), key=lambda i: sections[i].header[4])
    for i in order:
        sec = sections[i]
        align = max(1, sec.header[8])
        if sec.type != SHT_NOBITS:
            out += b"\0" * (-len(out) % align)
            sec.header[4] = len(out)
            out += sec.data
            sec.header[5] = len(sec.data)
        else:
            sec.header[4] = len(out)
    out += b"\0" * (-len(out) % 8)
    ehdr = list(ehdr)
    ehdr[6] = len(out)
    for sec in sections:
        out += _SHDR.pack(*sec.header)
    out[: _EHDR.size] = _EHDR.pack(*ehdr)
    return bytes(out)


class _SlotMap:
    """Old slot -> new slot of one section, for instruction starts and the end."""

    def __init__(self, old: Sequence[Instruction], edits: Sequence[Replacement]) -> None:
        old_slots = [*slot_offsets(old), sum(i.slots for i in old)]
        by_start = {e.start: e for e in edits}
        self.layout: list[tuple[int | None, Instruction]] = []  # (old index or None if new, insn)
        self.anchors: dict[int, int] = {}  # layout position of a new jump -> old index of the jump it replaces
        self.exits: dict[int, int] = {}  # layout position of a region's leaving jump -> old index of its target
        self.map: dict[int, int] = {}
        new_slot = 0
        i = 0
        while i < len(old):
            edit = by_start.get(i)
            if edit is None:
                self.map[old_slots[i]] = new_slot
                self.layout.append((i, old[i]))
                new_slot += old[i].slots
                i += 1
                continue
            for j in range(edit.start, edit.start + edit.count):
                for s in range(old_slots[j], old_slots[j + 1]):
                    self.map[s] = new_slot
            last = edit.start + edit.count - 1
            leaving = dict(edit.exits)
            if edit.exits or any(c.kind in (Kind.JA, Kind.JCOND) for c in edit.code[:-1]):
                self._region(edit, leaving, old_slots)
            for n, c in enumerate(edit.code):
                if n in leaving:
                    self.exits[len(self.layout) + n] = leaving[n]
                    continue
                if c.jump_offset is None and (c.kind not in (Kind.CALL, Kind.EXIT) or c.is_helper_call):
                    continue  # a helper call (by id) is written as it is (a region may hold one)
                if edit.exits or any(c.kind in (Kind.JA, Kind.JCOND) for c in edit.code[:-1]):
                    continue  # a jump inside the region's replacement, checked by _region
                if n != len(edit.code) - 1 or c.kind != Kind.JCOND or old[last].kind != Kind.JCOND \
                        or c.jump_offset != old[last].jump_offset:
                    raise ElfRewriteError(f"replacement at {edit.start}: a jump other than the window's own last one")
                self.anchors[len(self.layout) + n] = last
            self.layout.extend((None, c) for c in edit.code)
            new_slot += sum(c.slots for c in edit.code)
            i += edit.count
        for s in range(old_slots[-1]):
            self.map.setdefault(s, self.map[max(k for k in self.map if k <= s)])
        self.map[old_slots[-1]] = new_slot
        self.old_slots = old_slots
        self.new_end = new_slot
        self.edited = bool(edits)

    @staticmethod
    def _region(edit: Replacement, leaving: Mapping[int, int], old_slots: Sequence[int]) -> None:
        """A region's replacement: only jumps, and each either leaves (to an old instruction outside
        the replaced ones, or just past them) or lands forward inside the replacement or at its end."""
        starts = slot_offsets(edit.code)
        total = sum(c.slots for c in edit.code)
        for n, c in enumerate(edit.code):
            # A helper call (by id) moves nowhere; a pc-relative call would need its offset moved.
            if c.kind in (Kind.EXIT, Kind.GOTOL) or (c.kind == Kind.CALL and not c.is_helper_call) or (
                    c.jump_offset is not None and c.kind not in (Kind.JA, Kind.JCOND, Kind.CALL)):
                raise ElfRewriteError(f"replacement at {edit.start}: an exit, a call of a function or other jump "
                                      "in a region")
            if n in leaving:
                t = leaving[n]
                if not 0 <= t < len(old_slots) or edit.start < t < edit.start + edit.count:
                    raise ElfRewriteError(f"replacement at {edit.start}: an exit into the replaced code")
            elif c.kind in (Kind.JA, Kind.JCOND):
                to = starts[n] + c.slots + c.off
                if not starts[n] < to <= total or (to < total and to not in starts):
                    raise ElfRewriteError(f"replacement at {edit.start}: a jump that lands outside it")

    def byte(self, offset: int) -> int:
        if offset % INSN_SIZE or offset // INSN_SIZE not in self.map:
            raise ElfRewriteError(f"offset {offset} is not an instruction slot of the section")
        return self.map[offset // INSN_SIZE] * INSN_SIZE


def _symbols(symtab: _Section) -> list[list[int]]:
    return [list(_SYM.unpack_from(symtab.data, pos)) for pos in range(0, len(symtab.data), _SYM.size)]


def _relocs(sec: _Section) -> list[tuple[int, int]]:
    return [_REL.unpack_from(sec.data, pos) for pos in range(0, len(sec.data), _REL.size)]


def rewrite_code(elf: bytes, edits: Mapping[str, Sequence[Replacement]]) -> bytes:
    """``elf`` with each named code section's replacements made and everything that counts its slots moved."""
    ehdr, sections = _read(elf)
    index = {s.name: i for i, s in enumerate(sections)}
    symtab = next((s for s in sections if s.type == SHT_SYMTAB), None)
    if symtab is None:
        raise ElfRewriteError("the object has no symbol table")
    syms = _symbols(symtab)
    unknown = set(edits) - set(index)
    if unknown:
        raise ElfRewriteError(f"no section {sorted(unknown)[0]!r}")
    if not any(edits.values()):
        return elf
    # Every code section gets a map (most the identity): a call from one section into another that
    # moved needs its imm fixed too.
    maps = {i: _SlotMap(decode(s.data), sorted(edits.get(s.name, ()), key=lambda r: r.start))
            for i, s in enumerate(sections) if s.header[2] & SHF_EXECINSTR and s.type != SHT_NOBITS}
    old_values = {k: (s[4], s[5]) for k, s in enumerate(syms)}
    for sym in syms:
        m = maps.get(sym[3])
        if m is not None:
            start, size = sym[4], sym[5]
            sym[4] = m.byte(start)
            if sym[1] & 0xF == STT_FUNC and size:
                sym[5] = m.byte(start + size) - sym[4]
    for sec_i, m in maps.items():
        rel_sec = next((s for s in sections if s.type == SHT_REL and s.header[7] == sec_i), None)
        relocs = dict(_relocs(rel_sec)) if rel_sec is not None else {}
        code = _fix_control_flow(m, relocs, syms, old_values, maps)
        sections[sec_i].data = encode(code)
        if rel_sec is not None:
            rel_sec.data = b"".join(_REL.pack(m.byte(off), info) for off, info in _relocs(rel_sec))
    symtab.data = b"".join(_SYM.pack(*s) for s in syms)
    _fix_btf_ext(sections, index, maps)
    return _write(ehdr, sections)


def _fix_control_flow(m: _SlotMap, relocs: Mapping[int, int], syms: list[list[int]],
                      old_values: Mapping[int, tuple[int, int]], maps: Mapping[int, _SlotMap]) -> list[Instruction]:
    """The new code with every kept jump, call and function reference pointing where it pointed before."""
    fixed: dict[int, Instruction] = {}
    new_jumps: dict[int, Instruction] = {}
    slot = 0
    for pos, (i, insn) in enumerate(m.layout):
        at, slot = slot, slot + insn.slots
        if i is None:
            anchor = m.anchors.get(pos)
            leaves_to = m.exits.get(pos)
            if leaves_to is not None:  # a region's jump out: to the new place of the old instruction
                new_jumps[pos] = _with(insn, off=m.map[m.old_slots[leaves_to]] - at - insn.slots)
            elif anchor is not None:  # a new conditional jump: where the old one pointed, from here
                old_target = m.old_slots[anchor] + 1 + (insn.jump_offset or 0)
                new_jumps[pos] = _with(insn, off=m.map[old_target] - at - 1)
            continue
        old_slot = m.old_slots[i]
        new_slot = m.map[old_slot]
        info = relocs.get(old_slot * INSN_SIZE)
        kind = insn.kind
        if info is not None and (insn.is_pseudo_call or (kind == Kind.LDDW and insn.src == PseudoSrc.FUNC)):
            # libbpf: a call's target is the symbol's slot + imm + 1, a function address's the symbol's
            # byte offset + imm, both in the symbol's section.
            sym_i = info >> 32
            target_map = maps.get(syms[sym_i][3])
            if target_map is None:
                continue
            old_val, new_val = old_values[sym_i][0], syms[sym_i][4]
            if insn.is_pseudo_call:
                target = target_map.map[old_val // INSN_SIZE + insn.imm + 1]
                fixed[i] = _with(insn, imm=target - new_val // INSN_SIZE - 1)
            else:
                target = target_map.map[(old_val + insn.imm) // INSN_SIZE]
                fixed[i] = _with(insn, imm=target * INSN_SIZE - new_val)
        elif insn.jump_offset is not None:
            old_target = old_slot + insn.slots + insn.jump_offset
            if old_target not in m.map:
                raise ElfRewriteError(f"instruction {i} jumps outside its section")
            delta = m.map[old_target] - new_slot - insn.slots
            fixed[i] = _with(insn, imm=delta) if kind in (Kind.GOTOL, Kind.CALL) else _with(insn, off=delta)
    return [new_jumps.get(pos, insn) if i is None else fixed.get(i, insn) for pos, (i, insn) in enumerate(m.layout)]


def _with(insn: Instruction, *, off: int | None = None, imm: int | None = None) -> Instruction:
    if off is not None and not -(1 << 15) <= off < 1 << 15:
        raise ElfRewriteError("a jump offset no longer fits")
    return Instruction(insn.opcode, insn.dst, insn.src, insn.off if off is None else off,
                       insn.imm if imm is None else imm, insn.imm_hi, insn.is_wide)


# ----------------------------------------------------------------------------------------------- .BTF.ext

def _btf_strings(btf: bytes) -> bytes:
    hdr_len, _, _, str_off, str_len = struct.unpack_from("<IIIII", btf, 4)
    return btf[hdr_len + str_off: hdr_len + str_off + str_len]


def _fix_btf_ext(sections: list[_Section], index: Mapping[str, int], maps: Mapping[int, _SlotMap]) -> None:
    if ".BTF.ext" not in index or ".BTF" not in index:
        return
    ext = sections[index[".BTF.ext"]]
    strings = _btf_strings(sections[index[".BTF"]].data)
    data = ext.data
    hdr_len = struct.unpack_from("<I", data, 4)[0]
    areas = [(8, 12)] + [(16, 20)] + ([(24, 28)] if hdr_len >= 32 else [])
    header = bytearray(data[:hdr_len])
    body = bytearray()
    moved: dict[int, int] = {}  # old byte offset in .BTF.ext -> new (for .rel.BTF.ext)
    by_name = {sections[i].name: m for i, m in maps.items() if m.edited}
    for n, (off_field, len_field) in enumerate(areas):
        off = struct.unpack_from("<I", data, off_field)[0]
        length = struct.unpack_from("<I", data, len_field)[0]
        start = hdr_len + off
        new_start = len(body)
        if length:
            rec_size = struct.unpack_from("<I", data, start)[0]
            body += data[start:start + 4]
            pos = start + 4
            while pos + 8 <= start + length:
                sec_off, num = struct.unpack_from("<II", data, pos)
                sec_name = strings[sec_off:strings.index(b"\0", sec_off)].decode()
                m = by_name.get(sec_name)
                head_at = len(body)
                moved[pos] = hdr_len + head_at
                moved[pos + 4] = hdr_len + head_at + 4
                body += data[pos:pos + 8]
                pos += 8
                kept = 0
                last = -1
                for r in range(num):
                    rec = bytearray(data[pos + r * rec_size: pos + (r + 1) * rec_size])
                    if m is not None:
                        new_off = m.byte(struct.unpack_from("<I", rec, 0)[0])
                        if n == 1 and new_off <= last:
                            continue  # the kernel wants line info strictly increasing
                        last = new_off
                        struct.pack_into("<I", rec, 0, new_off)
                    for b in range(0, rec_size, 4):
                        moved[pos + r * rec_size + b] = hdr_len + len(body) + b
                    body += rec
                    kept += 1
                struct.pack_into("<I", body, head_at + 4, kept)
                pos += num * rec_size
        struct.pack_into("<II", header, off_field, new_start, len(body) - new_start)
    ext.data = bytes(header) + bytes(body)
    rel = next((s for s in sections if s.type == SHT_REL and s.header[7] == index[".BTF.ext"]), None)
    if rel is not None:
        rel.data = b"".join(_REL.pack(moved[off], info) for off, info in _relocs(rel) if off in moved)
