"""A small reader for the symbol table of 64-bit little-endian ELF objects (what LLVM emits for BPF).

The runtime needs one thing from it: where each global variable lives inside its global-data section
(`.bss`, `.data`, ...), because libbpf exposes a whole section as the single value of one array map.
In a relocatable object a symbol's `st_value` is its offset within its section.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["ElfFormatError", "ElfSymbol", "VariableLocation", "read_symbols", "section_names",
           "variable_locations"]

_ELF_MAGIC: Final = b"\x7fELF"
_ELFCLASS64: Final = 2
_ELFDATA2LSB: Final = 1
_SHT_SYMTAB: Final = 2
_SHN_UNDEF: Final = 0
_SHN_LORESERVE: Final = 0xFF00
_STT_OBJECT: Final = 1

_EHDR: Final = struct.Struct("<16sHHIQQQIHHHHHH")
_SHDR: Final = struct.Struct("<IIQQQQIIQQ")
_SYM: Final = struct.Struct("<IBBHQQ")


class ElfFormatError(ValueError):
    """The bytes are not an ELF64 little-endian object this reader understands."""


@dataclass(frozen=True)
class ElfSymbol:
    """One symbol-table entry. `section` is the name of the section it is defined in ("" if none)."""

    name: str
    section: str
    value: int
    size: int
    bind: int
    type: int


@dataclass(frozen=True)
class VariableLocation:
    """A global variable's place: `size` bytes at `offset` inside global-data section `section`."""

    section: str
    offset: int
    size: int


@dataclass(frozen=True)
class _Section:
    name_off: int
    type: int
    offset: int
    size: int
    link: int
    entsize: int


def _cstring(table: bytes, offset: int) -> str:
    end = table.find(b"\0", offset)
    if end < 0:
        raise ElfFormatError(f"string at {offset} is not terminated")
    return table[offset:end].decode("utf-8", errors="replace")


def _slice(elf: bytes, offset: int, size: int, what: str) -> bytes:
    if offset < 0 or size < 0 or offset + size > len(elf):
        raise ElfFormatError(f"{what} lies outside the file ({offset}+{size} > {len(elf)})")
    return elf[offset:offset + size]


def _sections(elf: bytes) -> tuple[list[_Section], list[str]]:
    if len(elf) < _EHDR.size or elf[:4] != _ELF_MAGIC:
        raise ElfFormatError("not an ELF file")
    if elf[4] != _ELFCLASS64 or elf[5] != _ELFDATA2LSB:
        raise ElfFormatError("only 64-bit little-endian ELF objects are supported")
    fields = _EHDR.unpack_from(elf, 0)
    shoff, shentsize, shnum, shstrndx = fields[6], fields[11], fields[12], fields[13]
    if shentsize != _SHDR.size:
        raise ElfFormatError(f"unexpected section header size {shentsize}")
    sections: list[_Section] = []
    for i in range(shnum):
        raw = _slice(elf, shoff + i * shentsize, shentsize, f"section header {i}")
        name_off, sh_type, _flags, _addr, offset, size, link, _info, _align, entsize = _SHDR.unpack(raw)
        sections.append(_Section(name_off, sh_type, offset, size, link, entsize))
    if not 0 <= shstrndx < len(sections):
        raise ElfFormatError("bad section-name table index")
    strtab_sec = sections[shstrndx]
    shstrtab = _slice(elf, strtab_sec.offset, strtab_sec.size, "section-name table")
    names = [_cstring(shstrtab, s.name_off) for s in sections]
    return sections, names


def section_names(elf: bytes) -> list[str]:
    """The names of all sections, by section index (index 0 is the null section, "")."""
    return _sections(elf)[1]


def read_symbols(elf: bytes) -> list[ElfSymbol]:
    """Every named symbol of the object's symbol table, in table order."""
    sections, names = _sections(elf)
    out: list[ElfSymbol] = []
    for sec in sections:
        if sec.type != _SHT_SYMTAB:
            continue
        if sec.entsize != _SYM.size or not 0 <= sec.link < len(sections):
            raise ElfFormatError("malformed symbol table header")
        table = _slice(elf, sec.offset, sec.size, "symbol table")
        str_sec = sections[sec.link]
        strtab = _slice(elf, str_sec.offset, str_sec.size, "symbol string table")
        for (name_off, info, _other, shndx, value, size) in _SYM.iter_unpack(table):
            name = _cstring(strtab, name_off)
            if not name:
                continue
            section = names[shndx] if _SHN_UNDEF < shndx < min(_SHN_LORESERVE, len(names)) else ""
            out.append(ElfSymbol(name, section, value, size, info >> 4, info & 0xF))
    return out


def variable_locations(elf: bytes, sections: tuple[str, ...] = (".bss", ".data")) -> dict[str, VariableLocation]:
    """Variables defined in the given global-data sections: name → section, offset and size."""
    out: dict[str, VariableLocation] = {}
    for sym in read_symbols(elf):
        # Section symbols (STT_SECTION) are unnamed in LLVM output; accept untyped ones (STT_NOTYPE)
        # too, as hand-written assembly produces them for variables.
        if sym.section in sections and sym.type in (0, _STT_OBJECT):
            out[sym.name] = VariableLocation(sym.section, sym.value, sym.size)
    return out
