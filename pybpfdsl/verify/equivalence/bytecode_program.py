"""What the bytecode encoding needs from a BPF object: linked instructions, references, state layout.

Built with the same linker as the concrete interpreter (`bpf.linking.link_program`), so both see
the same instruction list; a caller may substitute the instructions (the miscompile suite does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction, Relocation
from pybpfdsl.bpf.linking import link_program
from pybpfdsl.verify.equivalence.symbolic_state import Layout, MapShape

_DATA_PREFIXES = (".bss", ".data", ".rodata")


@dataclass(frozen=True)
class BytecodeProgram:
    name: str
    instructions: tuple[Instruction, ...]
    relocations: Mapping[int, Relocation]
    layout: Layout
    lines: Mapping[int, int]
    """Instruction index → source line (BTF line info; the line of the last annotated instruction)."""
    source_file: str = ""

    def with_instructions(self, insns: list[Instruction] | tuple[Instruction, ...]) -> BytecodeProgram:
        return replace(self, instructions=tuple(insns))

    def line_of(self, index: int) -> int:
        return self.lines.get(index, 0)


def load_program(elf_bytes: bytes, name: str, *, fixed_rodata: bool = True) -> BytecodeProgram:
    """Program `name` (a function or section name) of an object, linked with its subprograms.

    `fixed_rodata`: `.rodata` holds the object's bytes, as a program we compiled and load ourselves finds
    them. Else its initial bytes are inputs, as `.data`'s are: a loader may write its configuration there
    before it loads the object (a libbpf skeleton's `rodata->x = ...`, libxdp's dispatcher), so a proof
    about another's object must hold for every value (the program still cannot store there)."""
    elf = BpfElf.from_bytes(elf_bytes)
    prog = elf.program(name)
    insns, relocs = link_program(elf, prog.name)
    maps = {m.name: MapShape(m.name, m.map_type or 0, m.key_size or 0, m.value_size or 0, m.max_entries or 0)
            for m in elf.maps.values()}
    sections: dict[str, bytes | int] = {}
    initial: dict[str, bytes] = {}
    for sec in elf.section_names:
        if not sec.startswith(_DATA_PREFIXES):
            continue
        contents = elf.section_contents(sec) or b""
        # .bss/.data are user-writable state: their initial bytes are inputs; .rodata is constant (or
        # set by the loader: `fixed_rodata`).
        if sec.startswith(".rodata") and fixed_rodata:
            sections[sec] = len(contents) if elf.is_nobits(sec) else contents
        else:
            sections[sec] = len(contents)
            initial[sec] = contents
    writable = tuple(initial)
    variables = {k: (v.section, v.offset, v.size) for k, v in elf.variable_locations(writable).items()}
    lines: dict[int, int] = {}
    last = 0
    info = {li.insn_index: li for li in prog.line_info}
    source_file = next((li.file for li in prog.line_info), "")
    for index in range(len(prog.instructions)):
        if index in info and info[index].line:
            last = info[index].line
        lines[index] = last
    return BytecodeProgram(prog.name, tuple(insns), relocs, Layout(maps, sections, variables, initial), lines,
                          source_file)
