"""Disassembly in the kernel verifier's syntax.

The kernel log is what users of this project read when a program is
rejected, so our listings use the same notation (``r1 = *(u32 *)(r1 +0)``,
``if r2 > r3 goto pc+5``, ``call bpf_map_lookup_elem#1``) and the same
``N: (op) text`` listing lines; text can then be matched line by line against
a verifier log.  Two deliberate extensions:

* Relocated lddw shows the symbol (``r1 = map[acl] ll``); the kernel only
  ever sees the patched fd/pointer.  Every lddw ends in `` ll`` (as in
  llvm-objdump) so the two-slot instruction stands out.
* Encodings the kernel would reject are printed as ``invalid ...`` rather than
  the kernel's ``BUG_xx`` so that decoding arbitrary bytes never raises.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from pybpfdsl.bpf.instruction import (
    Instruction,
    Relocation,
    format_instruction,
    slot_offsets,
)

__all__ = ["disassemble", "format_instruction", "format_listing"]

RelocationsArg = Mapping[int, Relocation] | Iterable[Relocation] | None


def _reloc_map(relocations: RelocationsArg) -> dict[int, Relocation]:
    if relocations is None:
        return {}
    if isinstance(relocations, Mapping):
        return dict(relocations)
    return {r.insn_index: r for r in relocations}


def disassemble(
    insns: Sequence[Instruction],
    relocations: RelocationsArg = None,
    helper_names: bool = True,
) -> list[str]:
    """Verifier-log text for each instruction (one string per list entry).

    ``relocations`` (from :class:`pybpfdsl.bpf.elf.ElfProgram`) are matched by
    ``insn_index``; ``helper_names=False`` prints ``call unknown#N`` style
    for helpers, which is stable across kernel versions.
    """
    relocs = _reloc_map(relocations)
    return [format_instruction(insn, relocs.get(i), helper_names) for i, insn in enumerate(insns)]


def format_listing(
    insns: Sequence[Instruction],
    relocations: RelocationsArg = None,
    helper_names: bool = True,
) -> list[str]:
    """Kernel-style listing lines, ``<slot>: (<opcode hex>) <text>``.

    The index is the *slot* index (lddw advances it by two), as in the
    verifier log, so that ``pc+N`` offsets can be followed by eye.
    """
    texts = disassemble(insns, relocations, helper_names)
    return [
        f"{slot}: ({insn.opcode:02x}) {text}"
        for slot, insn, text in zip(slot_offsets(insns), insns, texts, strict=True)
    ]
