"""A BPF object made ready to run many times: its program linked once, its map shapes and the initial
bytes of the global-data sections it refers to (:class:`BytecodeImage`), with fresh maps per execution.

It keeps the program decoded once (the machine's ``_Code``), so a run costs only the run."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from pybpfdsl.bpf.helper_results import HelperResults
from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind
from pybpfdsl.bpf.interpreter import DEFAULT_STEP_LIMIT, ExecutionResult, XdpContext, _Code, _run
from pybpfdsl.bpf.linking import link_program
from pybpfdsl.bpf.memory import InterpMap

__all__ = ["BytecodeImage"]


@dataclass(frozen=True)
class _MapSpec:
    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int


@dataclass(frozen=True)
class BytecodeImage:
    """What running a BPF object needs, parsed once: code, references, map shapes, section contents."""

    name: str
    instructions: tuple[Instruction, ...]
    relocations: Mapping[int, Relocation]
    maps: tuple[_MapSpec, ...]
    sections: Mapping[str, bytes]
    variables: Mapping[str, tuple[str, int, int]]
    """Global variable name -> (section, offset, size)."""

    @classmethod
    def from_elf(cls, elf_bytes: bytes, name: str) -> BytecodeImage:
        return _image(elf_bytes, name)

    def fresh_maps(self) -> dict[str, InterpMap]:
        """New maps for one execution: every map empty (arrays zeroed), sections at their initial bytes."""
        out: dict[str, InterpMap] = {}
        for spec in self.maps:
            out[spec.name] = InterpMap(spec.name, spec.map_type, spec.key_size, spec.value_size, spec.max_entries)
        for sec, contents in self.sections.items():
            out[sec] = InterpMap.section(sec, contents, readonly=sec.startswith(".rodata"))
        return out

    @functools.cached_property
    def _code(self) -> _Code:
        return _Code(self.instructions)

    def run(self, packet: bytes, maps: Mapping[str, InterpMap], *, ctx: XdpContext | None = None,
            step_limit: int = DEFAULT_STEP_LIMIT, helpers: HelperResults | None = None) -> ExecutionResult:
        return _run(self._code, packet, self.relocations, maps, {}, (), ctx, step_limit, (), helpers)


@functools.lru_cache(maxsize=64)
def _image(elf_bytes: bytes, name: str) -> BytecodeImage:
    from pybpfdsl.bpf.elf import BpfElf

    elf = BpfElf.from_bytes(elf_bytes)
    insns, relocs = link_program(elf, name)
    specs = tuple(
        _MapSpec(m.name, m.map_type or 0, m.key_size or 0, m.value_size or 0, m.max_entries or 0)
        for m in elf.maps.values()
    )
    wanted = {r.section for r in relocs.values() if r.kind == RelocKind.DATA}
    sections = {sec: elf.section_contents(sec) or b"" for sec in sorted(wanted)}
    variables = {k: (v.section, v.offset, v.size) for k, v in elf.variable_locations(tuple(sections)).items()}
    return BytecodeImage(name, tuple(insns), relocs, specs, sections, variables)
