"""Linking a program of a BPF object for execution: the program followed by its subprograms (``.text``),
bpf-to-bpf calls patched to pc-relative, and the map and data references left for the run to resolve.

The concrete interpreter, the symbolic bytecode model and our verifier all link with this, so they see
the same instructions at the same indices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind, slot_offsets

if TYPE_CHECKING:
    from pybpfdsl.bpf.elf import BpfElf

__all__ = ["link_program"]


def link_program(elf: BpfElf, name: str) -> tuple[list[Instruction], dict[int, Relocation]]:
    """The program ``name`` followed by ``.text`` (its subprograms), calls patched to pc-relative.

    Returns the instructions and the relocations that remain (map and data references), keyed by the
    index into the returned list.
    """
    main = elf.program(name)
    text = elf.text
    parts = [main] if text is None or not text.instructions or text is main else [main, text]
    insns: list[Instruction] = []
    base_index: dict[str, int] = {}
    base_slot: dict[str, int] = {}
    for part in parts:
        base_index[part.section] = len(insns)
        base_slot[part.section] = sum(i.slots for i in insns)
        insns.extend(part.instructions)
    starts = slot_offsets(insns)
    relocs: dict[int, Relocation] = {}
    for part in parts:
        for r in part.relocations:
            index = base_index[part.section] + r.insn_index
            if r.kind == RelocKind.CALL and r.section in base_slot:
                target = base_slot[r.section] + r.offset // 8
                call = insns[index]
                insns[index] = Instruction(call.opcode, call.dst, call.src, call.off, target - (starts[index] + 1))
            else:
                relocs[index] = r
    return insns, relocs
