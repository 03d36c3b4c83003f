"""Reading BPF ELF objects, ours and clang's, with pyelftools.

libbpf's view of an object, which this module reproduces for inspection:

* every executable ``SHT_PROGBITS`` section other than ``.text`` holds entry
  programs (its section name, e.g. ``xdp``, says how they attach);
* ``.text`` holds subprograms reachable through bpf-to-bpf calls;
* ``.rel<section>`` entries patch instructions: an lddw against a symbol in
  ``.maps`` loads a map, against ``.bss``/``.data``/``.rodata`` a pointer into
  global data, and a call against a function symbol is a bpf-to-bpf call;
* ``license`` holds the NUL-terminated licence string; ``.maps`` the
  BTF-described map definitions (legacy ``maps`` holds ``struct
  bpf_map_def`` records instead);
* a global variable is a symbol in a global-data section (``.bss``,
  ``.data``, ``.rodata``...), its ``st_value`` the offset inside the section,
  which libbpf exposes as the single value of an array map.

This is the package's one ELF reader: the interpreter, the equivalence prover,
the verifier and the runtime all ask it (sections, symbols, variables, maps,
code), none parses ELF itself.

Long because `BpfElf` decodes each part of an object only when first asked
(the verifier usually wants one section): sections, symbols, relocations, maps,
programs and line info all share its lazily read section and symbol tables, so
a split would pass those tables between modules instead of keeping them in one.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from pybpfdsl.bpf.btf_ext import Btf, BtfExt, FuncInfo, LineInfo, with_insn_indices
from pybpfdsl.bpf.instruction import (
    INSN_SIZE,
    Instruction,
    Relocation,
    RelocKind,
    decode,
    slot_offsets,
)

__all__ = ["EM_BPF", "BpfElf", "ElfError", "ElfFunction", "ElfMap", "ElfProgram", "ElfSymbol", "ProgramNotFound",
           "VariableLocation", "func_info", "line_info", "read_symbols", "section_names",
           "variable_locations"]

EM_BPF = 247
_SHF_EXECINSTR = 0x4
_LEGACY_MAP_DEF = struct.Struct("<IIIII")  # type, key_size, value_size, max_entries, flags
_MAP_SECTIONS = (".maps", "maps")
_STT_NOTYPE, _STT_OBJECT, _STT_FUNC, _STT_SECTION = 0, 1, 2, 3
_STB_GLOBAL = 1
_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym: st_name, st_info, st_other, st_shndx, st_value, st_size
_REL = struct.Struct("<QQ")  # Elf64_Rel (and the start of Elf64_Rela): r_offset, r_info
DATA_SECTIONS = (".bss", ".data")
"""The writable global-data sections a program's variables live in by default."""


class ElfError(ValueError):
    """Not a BPF ELF object (truncated, malformed, for another machine, without programs), or a
    reference inside it does not resolve. The message says what is wrong in a user's words; it does
    not name the file (callers that know the path put it in front)."""


class ProgramNotFound(ElfError, KeyError):
    """The object has no program of the name asked for (or no program at all); the message lists
    what it has. Also a KeyError, which callers of :meth:`BpfElf.program` have always caught."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_MACHINES = {"EM_X86_64": "x86-64", "EM_AARCH64": "AArch64", "EM_386": "x86 (32-bit)", "EM_ARM": "ARM",
             "EM_RISCV": "RISC-V", "EM_PPC64": "PowerPC 64", "EM_S390": "s390", "EM_MIPS": "MIPS"}


@dataclass(frozen=True)
class ElfFunction:
    """A function symbol inside an executable section."""

    name: str
    section: str
    insn_index: int
    """Index of its first instruction in the section's instruction list."""
    slot: int
    """Slot index of its first instruction (``st_value / 8``)."""
    slots: int
    """Length in slots (``st_size / 8``)."""
    is_global: bool


@dataclass(frozen=True)
class ElfSymbol:
    """One named symbol-table entry. `section` is the name of the section it is defined in ("" if
    none: undefined, absolute or common); `bind` and `type` are the raw STB_* and STT_* numbers."""

    name: str
    section: str
    value: int
    size: int
    bind: int
    type: int


@dataclass(frozen=True, slots=True)
class _Symbol:
    """One symbol-table entry as stored (``bind`` and ``type`` the two halves of ``st_info``)."""

    name: str
    bind: int
    type: int
    shndx: int
    value: int
    size: int


def _cstring(table: bytes, offset: int) -> str:
    """The NUL-terminated string at ``offset`` of a string table ("" past its end or unterminated, as
    pyelftools reads it)."""
    end = table.find(b"\0", offset)
    if offset >= len(table) or end < 0:
        return ""
    return table[offset:end].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class VariableLocation:
    """A global variable's place: `size` bytes at `offset` inside global-data section `section`."""

    section: str
    offset: int
    size: int


@dataclass(frozen=True)
class ElfMap:
    """A map definition: a symbol in ``.maps`` (or legacy ``maps``)."""

    name: str
    section: str
    offset: int
    map_type: int | None = None
    key_size: int | None = None
    value_size: int | None = None
    max_entries: int | None = None
    map_flags: int | None = None


@dataclass(frozen=True)
class ElfProgram:
    """The code of one executable section (or one function of it)."""

    section: str
    name: str
    """The function symbol at the start of the code (the section name if the
    section has no function symbols)."""
    instructions: tuple[Instruction, ...]
    relocations: tuple[Relocation, ...] = ()
    functions: tuple[ElfFunction, ...] = ()
    line_info: tuple[LineInfo, ...] = field(default=(), repr=False)

    @property
    def slots(self) -> int:
        """Total length in 8-byte slots."""
        return sum(i.slots for i in self.instructions)

    def relocation_at(self, insn_index: int) -> Relocation | None:
        """The relocation patching instruction ``insn_index``, if any."""
        return next((r for r in self.relocations if r.insn_index == insn_index), None)

    def function(self, name: str) -> ElfProgram:
        """Just the instructions of function ``name``, indices rebased to 0."""
        fn = next((f for f in self.functions if f.name == name), None)
        if fn is None:
            raise KeyError(f"no function {name!r} in section {self.section!r}")
        if fn.insn_index == 0 and fn.slots in (0, self.slots):
            return replace(self, name=name)
        slot_lo, slot_hi = fn.slot, fn.slot + fn.slots
        starts = slot_offsets(self.instructions)
        keep = [i for i, s in enumerate(starts) if slot_lo <= s < slot_hi]
        lo = keep[0] if keep else fn.insn_index
        hi = keep[-1] + 1 if keep else fn.insn_index
        return ElfProgram(
            self.section,
            name,
            self.instructions[lo:hi],
            tuple(
                replace(r, insn_index=r.insn_index - lo, slot=r.slot - slot_lo)
                for r in self.relocations
                if lo <= r.insn_index < hi
            ),
            (replace(fn, insn_index=0, slot=0),),
            tuple(
                replace(li, insn_index=li.insn_index - lo, slot=li.slot - slot_lo)
                for li in self.line_info
                if lo <= li.insn_index < hi
            ),
        )


class BpfElf:
    """A parsed BPF relocatable object."""

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        if not self.data:
            raise ElfError("not a BPF object: the file is empty")
        if not self.data.startswith(b"\x7fELF"):
            raise ElfError("not a BPF object: not an ELF file (it does not start with the ELF magic bytes)")
        try:
            self._elf = ELFFile(io.BytesIO(self.data))
        except Exception as exc:  # pyelftools raises its own ELFError, struct errors and others
            raise ElfError(f"not a BPF object: malformed or truncated ELF header ({exc})") from exc
        machine = self._elf.header["e_machine"]
        if machine not in ("EM_BPF", EM_BPF):
            what = _MACHINES.get(str(machine), str(machine))
            raise ElfError(f"not a BPF object: an ELF file for {what} ({machine}), not for BPF (EM_BPF)")
        if not self._elf.little_endian:
            raise ElfError("big-endian BPF objects are not supported")
        self._sections: list[Any] = self._read_section_headers()
        self._decoded: dict[str, ElfProgram] = {}
        """Executable sections decoded so far (see :meth:`_section_code`)."""

    def _read_section_headers(self) -> list[Any]:
        """The section headers, each checked to lie inside the file (pyelftools reads lazily and
        would otherwise fail later, deep inside some property, or return short data silently)."""
        size = len(self.data)
        header = self._elf.header
        table_end = int(header["e_shoff"]) + int(header["e_shnum"]) * int(header["e_shentsize"])
        if table_end > size:
            raise ElfError(f"truncated or malformed ELF: its section headers end at byte {table_end}, "
                           f"but the file has only {size} bytes")
        try:
            sections = list(self._elf.iter_sections())
        except Exception as exc:
            raise ElfError(f"truncated or malformed ELF: cannot read its section headers ({exc})") from exc
        for sec in sections[1:]:
            if sec.header["sh_type"] == "SHT_NOBITS":
                continue
            start, length = int(sec.header["sh_offset"]), int(sec.header["sh_size"])
            if start + length > size:
                raise ElfError(f"truncated or malformed ELF: section {sec.name!r} (bytes {start}..{start + length}) "
                               f"runs past the end of the file ({size} bytes)")
        return sections

    def check(self) -> BpfElf:
        """Read everything the other methods read lazily (symbols, BTF, maps, code and relocations),
        so that a malformed part raises :class:`ElfError` here rather than in the middle of a
        later question. Returns ``self``."""
        for what, read in (("symbol table", lambda: list(self._symbols())), ("BTF (.BTF)", lambda: self.btf),
                           ("BTF line info (.BTF.ext)", lambda: self.btf_ext), ("map definitions", lambda: self.maps),
                           ("code or relocations", lambda: self._code)):
            try:
                read()
            except ElfError:
                raise
            except Exception as exc:
                raise ElfError(f"malformed {what}: {exc}") from exc
        return self

    @classmethod
    def from_bytes(cls, data: bytes) -> BpfElf:
        """Parse an object held in memory."""
        return cls(data)

    @classmethod
    def from_path(cls, path: str | Path) -> BpfElf:
        """Parse an object file."""
        return cls(Path(path).read_bytes())

    # ------------------------------------------------------------------ #
    # Sections and symbols
    # ------------------------------------------------------------------ #

    @property
    def section_names(self) -> list[str]:
        """All section names in file order (index 0, the null section, skipped)."""
        return [s.name for s in self._sections[1:]]

    def section_data(self, name: str) -> bytes | None:
        """Raw contents of a section (None if absent; empty for NOBITS)."""
        sec = self._by_name.get(name)
        if sec is None:
            return None
        if sec.header["sh_type"] == "SHT_NOBITS":
            return b""
        data: bytes = sec.data()
        return data

    def section_contents(self, name: str) -> bytes | None:
        """What a section holds when loaded: its bytes, or zeros of its size for a NOBITS section
        (``.bss``); None if absent."""
        sec = self._by_name.get(name)
        if sec is None:
            return None
        if sec.header["sh_type"] == "SHT_NOBITS":
            return bytes(int(sec.header["sh_size"]))
        data: bytes = sec.data()
        return data

    def is_nobits(self, name: str) -> bool:
        """Whether section ``name`` exists and takes no room in the file (``.bss``: zeros when loaded)."""
        sec = self._by_name.get(name)
        return sec is not None and sec.header["sh_type"] == "SHT_NOBITS"

    @cached_property
    def section_sizes(self) -> dict[str, int]:
        """Every section's size in bytes (``sh_size``, also for NOBITS), by name."""
        return {s.name: int(s.header["sh_size"]) for s in self._sections[1:]}

    @cached_property
    def symbols(self) -> tuple[ElfSymbol, ...]:
        """Every named symbol of the symbol table, in table order."""
        out = []
        for sym in self._symbols():
            if not sym.name:
                continue
            out.append(ElfSymbol(sym.name, self._section_of(sym), sym.value, sym.size, sym.bind, sym.type))
        return tuple(out)

    def variable_locations(self, sections: tuple[str, ...] = DATA_SECTIONS) -> dict[str, VariableLocation]:
        """Variables defined in the given global-data sections: name → section, offset and size."""
        # Section symbols (STT_SECTION) are unnamed in LLVM output; accept untyped ones (STT_NOTYPE)
        # too, as hand-written assembly produces them for variables.
        return {sym.name: VariableLocation(sym.section, sym.value, sym.size) for sym in self.symbols
                if sym.section in sections and sym.type in (_STT_NOTYPE, _STT_OBJECT)}

    def _is_exec(self, sec: Any) -> bool:
        return bool(sec.header["sh_type"] == "SHT_PROGBITS" and sec.header["sh_flags"] & _SHF_EXECINSTR)

    def _symbols(self) -> Iterator[_Symbol]:
        yield from self._symbol_list

    @cached_property
    def _symbol_list(self) -> list[_Symbol]:
        """The symbols, parsed once, straight from the table's bytes: pyelftools parses the table again on
        every walk, and its parser of one entry costs more than a clang object's whole decode."""
        symtab = self._symtab
        if symtab is None:
            return []
        entsize = int(symtab.header["sh_entsize"])
        if entsize < _SYM.size:
            raise ElfError(f"malformed symbol table: entries of {entsize} bytes (an Elf64_Sym has {_SYM.size})")
        data: bytes = symtab.data()
        strings = self._string_table(int(symtab.header["sh_link"]))
        out = []
        for pos in range(0, len(data) // entsize * entsize, entsize):
            name, info, _other, shndx, value, size = _SYM.unpack_from(data, pos)
            out.append(_Symbol(_cstring(strings, name), info >> 4, info & 0xF, shndx, value, size))
        return out

    def _string_table(self, index: int) -> bytes:
        if not 0 < index < len(self._sections):
            return b""
        data: bytes = self._sections[index].data()
        return data

    @cached_property
    def _by_name(self) -> dict[str, Any]:
        """Sections by name, the last of a name winning as in pyelftools' ``get_section_by_name`` (which
        parses the section's header again on every call: once per relocation)."""
        return {sec.name: sec for sec in self._sections}

    @cached_property
    def _symtab(self) -> SymbolTableSection | None:
        symtab = self._by_name.get(".symtab")
        return symtab if isinstance(symtab, SymbolTableSection) else None

    def _section_of(self, sym: _Symbol) -> str:
        shndx = sym.shndx
        if not 0 < shndx < len(self._sections):
            return ""
        name: str = self._sections[shndx].name
        return name

    def _symbol_name(self, sym: _Symbol) -> str:
        if sym.type == _STT_SECTION:
            return self._section_of(sym)
        name: str = sym.name
        return name

    @cached_property
    def license(self) -> str | None:
        """Contents of the ``license`` section up to the first NUL."""
        data = self.section_data("license")
        return None if data is None else data.split(b"\0", 1)[0].decode("utf-8", "replace")

    @cached_property
    def btf(self) -> Btf | None:
        """Decoded ``.BTF``, if present."""
        data = self.section_data(".BTF")
        return None if data is None else Btf.parse(data)

    @cached_property
    def btf_ext(self) -> BtfExt | None:
        """Decoded ``.BTF.ext``, if present (needs ``.BTF`` for names)."""
        data = self.section_data(".BTF.ext")
        btf = self.btf
        return None if data is None or btf is None else BtfExt.parse(data, btf)

    # ------------------------------------------------------------------ #
    # Maps
    # ------------------------------------------------------------------ #

    @cached_property
    def maps(self) -> dict[str, ElfMap]:
        """Map definitions by name, in symbol order.

        Sizes come from BTF for ``.maps`` and from the ``bpf_map_def`` record
        for legacy ``maps``; fields the object does not state are None.
        """
        btf_defs = self.btf.map_definitions() if self.btf is not None else {}
        out: dict[str, ElfMap] = {}
        for sym in sorted(self._symbols(), key=lambda s: s.value):
            section = self._section_of(sym)
            if section not in _MAP_SECTIONS or sym.type == _STT_SECTION or not sym.name:
                continue
            offset = sym.value
            if section == "maps":
                raw = self.section_data("maps") or b""
                fields: tuple[int | None, ...] = (None,) * 5
                if offset + _LEGACY_MAP_DEF.size <= len(raw):
                    fields = _LEGACY_MAP_DEF.unpack_from(raw, offset)
                out[sym.name] = ElfMap(sym.name, section, offset, *fields)
                continue
            d = btf_defs.get(sym.name)
            if d is None:
                out[sym.name] = ElfMap(sym.name, section, offset)
            else:
                out[sym.name] = ElfMap(
                    sym.name, section, offset, d.map_type, d.key_size, d.value_size, d.max_entries, d.map_flags
                )
        return out

    # ------------------------------------------------------------------ #
    # Programs
    # ------------------------------------------------------------------ #

    @cached_property
    def _exec_sections(self) -> dict[str, int]:
        """Every executable section, ``.text`` included, in file order: name → section index (the last
        section of a name wins, as the name's program)."""
        out: dict[str, int] = {}
        for idx, sec in enumerate(self._sections):
            if self._is_exec(sec):
                out[sec.name] = idx
        return out

    @property
    def _code(self) -> dict[str, ElfProgram]:
        """Every executable section, ``.text`` included, in file order."""
        return {name: self._section_code(name) for name in self._exec_sections}

    def _section_code(self, name: str) -> ElfProgram:
        """The code of executable section ``name``, decoded on first use: a question about one program
        decodes only its section (and ``.text`` if it calls into it), with its relocations and line info."""
        hit = self._decoded.get(name)
        if hit is not None:
            return hit
        idx = self._exec_sections[name]
        code: bytes = self._sections[idx].data()
        insns = tuple(decode(code))
        starts = slot_offsets(insns)
        index_of = {slot: i for i, slot in enumerate(starts)}
        functions = tuple(replace(f, insn_index=index_of.get(f.slot, f.insn_index))
                          for f in self._functions_by_section().get(name, []))
        first = next((f.name for f in functions if f.slot == 0), name)
        infos = self.btf_ext.line_info.get(name, ()) if self.btf_ext is not None else ()
        # (``with_insn_indices`` for the code decoded here, without decoding it a second time)
        lines = tuple(LineInfo(index_of.get(li.slot, li.slot), li.file, li.line, li.column, li.text, li.slot)
                      for li in infos)
        out = self._decoded[name] = ElfProgram(
            name, first, insns, tuple(self._relocations(idx, insns, index_of)), functions, lines)
        return out

    def _functions_by_section(self) -> dict[str, list[ElfFunction]]:
        return self._functions

    @cached_property
    def _functions(self) -> dict[str, list[ElfFunction]]:
        """Function symbols by section, sorted by slot (see :meth:`_functions_by_section`)."""
        out: dict[str, list[ElfFunction]] = {}
        for sym in self._symbols():
            if sym.type != _STT_FUNC:
                continue
            section = self._section_of(sym)
            slot = sym.value // INSN_SIZE
            out.setdefault(section, []).append(
                ElfFunction(
                    sym.name,
                    section,
                    slot,  # replaced by the list index once the code is decoded
                    slot,
                    sym.size // INSN_SIZE,
                    sym.bind == _STB_GLOBAL,
                )
            )
        for funcs in out.values():
            funcs.sort(key=lambda f: f.slot)
        return out

    def _relocations(
        self, sec_idx: int, insns: tuple[Instruction, ...], index_of: Mapping[int, int]
    ) -> Iterator[Relocation]:
        symtab = self._symtab
        if symtab is None:
            return
        for rel_sec in self._sections:
            if rel_sec.header["sh_type"] not in ("SHT_REL", "SHT_RELA") or rel_sec.header["sh_info"] != sec_idx:
                continue
            # Read straight from the bytes (an Elf64_Rel, or the Elf64_Rela that starts with one): pyelftools
            # parses each entry with its generic parser, several times the cost of the rest of the decode.
            entsize = int(rel_sec.header["sh_entsize"])
            if entsize < _REL.size:
                raise ElfError(f"{rel_sec.name}: entries of {entsize} bytes (an Elf64_Rel has {_REL.size})")
            data: bytes = rel_sec.data()
            for pos in range(0, len(data) // entsize * entsize, entsize):
                r_offset, r_info = _REL.unpack_from(data, pos)
                slot = r_offset // INSN_SIZE
                if slot not in index_of:
                    raise ElfError(f"{rel_sec.name}: offset {r_offset:#x} is not an instruction start")
                index = index_of[slot]
                sym = self._symbol_list[r_info >> 32]
                yield self._relocation(index, slot, insns[index], sym, r_info & 0xFFFFFFFF)

    def _relocation(self, index: int, slot: int, insn: Instruction, sym: _Symbol, rtype: int) -> Relocation:
        section = self._section_of(sym)
        name = self._symbol_name(sym)
        value = sym.value
        target = self._by_name.get(section) if section else None
        if not section:
            kind = RelocKind.EXTERN
            offset = 0
        elif section in _MAP_SECTIONS:
            kind = RelocKind.MAP
            offset = value
        elif target is not None and self._is_exec(target):
            kind = RelocKind.CALL if insn.is_call else RelocKind.FUNC
            if insn.is_call:
                # libbpf: callee slot = symbol slot + imm + 1 (imm is -1 for a
                # call through a function symbol, the pc-relative distance
                # for one through the section symbol).
                offset = value + (insn.imm + 1) * INSN_SIZE
            else:
                offset = value + insn.imm
            callee = self._function_at(section, offset)
            if callee is not None:
                name = callee
        elif target is not None and target.header["sh_type"] in ("SHT_PROGBITS", "SHT_NOBITS"):
            kind = RelocKind.DATA
            offset = value + insn.imm if insn.is_wide else value
        else:
            kind = RelocKind.OTHER
            offset = value
        return Relocation(index, slot, name, kind, section, offset, rtype)

    def _function_at(self, section: str, byte_offset: int) -> str | None:
        for f in self._functions_by_section().get(section, []):
            if f.slot * INSN_SIZE == byte_offset:
                return f.name
        return None

    @property
    def programs(self) -> dict[str, ElfProgram]:
        """Entry-program sections by section name (``.text`` excluded)."""
        return {name: self._section_code(name) for name in self.program_sections}

    @property
    def program_sections(self) -> list[str]:
        """The names of the entry-program sections (``.text`` excluded), in file order, none decoded."""
        return [name for name in self._exec_sections if name != ".text"]

    @property
    def text(self) -> ElfProgram | None:
        """The ``.text`` section (subprograms), if any."""
        return self._section_code(".text") if ".text" in self._exec_sections else None

    @property
    def functions(self) -> list[ElfFunction]:
        """Every function symbol in every executable section."""
        return [f for prog in self._code.values() for f in prog.functions]

    def program(self, name_or_section: str) -> ElfProgram:
        """A program by section name, or by function name (then just its code).

        :class:`ProgramNotFound` (a KeyError) when there is none."""
        if name_or_section in self._exec_sections:
            return self._section_code(name_or_section)
        functions = self._functions_by_section()
        for section in self._exec_sections:
            if any(f.name == name_or_section for f in functions.get(section, ())):
                return self._section_code(section).function(name_or_section)
        known = sorted({*self._code, *(f.name for f in self.functions)})
        raise ProgramNotFound(f"no program or function {name_or_section!r}; have {known}")

    def entry_program(self, name_or_section: str | None = None) -> ElfProgram:
        """The program ``name_or_section`` names (as :meth:`program`), or the first entry program.

        :class:`ProgramNotFound` when the object has no program section, or none of that name; the
        message lists the object's programs (or sections) so the user can choose."""
        entries = self.program_sections
        if not entries:
            sections = ", ".join(self.section_names) or "none"
            raise ProgramNotFound("no BPF program in the object: no executable section other than .text "
                                  f"(its sections: {sections})")
        if name_or_section is None:
            return self._section_code(entries[0])
        try:
            return self.program(name_or_section)
        except ProgramNotFound:
            have = ", ".join(f"{p.section} ({p.name})" if p.name != p.section else p.section
                             for p in self.programs.values())
            raise ProgramNotFound(f"no program or function {name_or_section!r} in the object; its programs: "
                                  f"{have}") from None


# Whole-object questions on bytes, for callers that ask one thing of an object.


def section_names(data: bytes) -> list[str]:
    """The names of all sections, by section index (index 0 is the null section, "")."""
    return ["", *BpfElf(data).section_names]


def read_symbols(data: bytes) -> list[ElfSymbol]:
    """Every named symbol of the object's symbol table, in table order."""
    return list(BpfElf(data).symbols)


def variable_locations(data: bytes, sections: tuple[str, ...] = DATA_SECTIONS) -> dict[str, VariableLocation]:
    """Variables defined in the given global-data sections of an object: name → section, offset and size."""
    return BpfElf(data).variable_locations(sections)


def line_info(data: bytes) -> dict[str, list[LineInfo]]:
    """Line info of every program section of an object, by section name; ``insn_index`` indexes the
    section's decoded instruction list. An object without ``.BTF.ext`` gives an empty dict."""
    elf = BpfElf(data)
    ext = elf.btf_ext
    if ext is None:
        return {}
    return {sec: list(with_insn_indices(infos, elf.section_data(sec) or b"")) for sec, infos in ext.line_info.items()}


def func_info(data: bytes) -> dict[str, list[FuncInfo]]:
    """Function info (start slot, BTF FUNC id and name) of an object, by section name."""
    ext = BpfElf(data).btf_ext
    return {} if ext is None else {sec: list(fi) for sec, fi in ext.func_info.items()}
