"""The eBPF instruction set: opcodes, instructions, disassembly, ELF objects.

Layout follows one module per concept:

* :mod:`~pybpfdsl.bpf.opcode` -- opcode fields, enums and semantic tables
* :mod:`~pybpfdsl.bpf.instruction` -- :class:`Instruction`, decode/encode,
  helper ids, relocations
* :mod:`~pybpfdsl.bpf.disasm` -- kernel-verifier-syntax disassembly
* :mod:`~pybpfdsl.bpf.elf` -- reading BPF ELF objects (needs pyelftools)
* :mod:`~pybpfdsl.bpf.btf_ext` -- ``.BTF`` strings/types and ``.BTF.ext``
  line info

:mod:`~pybpfdsl.bpf.elf` is not imported here so that the pure ISA modules
work without pyelftools installed.
"""

from pybpfdsl.bpf.disasm import disassemble, format_instruction, format_listing
from pybpfdsl.bpf.instruction import (
    HELPER_IDS,
    HELPERS,
    INSN_SIZE,
    DecodeError,
    Instruction,
    Relocation,
    RelocKind,
    decode,
    encode,
    helper_name,
    slot_offsets,
)
from pybpfdsl.bpf.opcode import (
    AluOp,
    AtomicOp,
    CallKind,
    Endian,
    InsnClass,
    JmpOp,
    Kind,
    Mode,
    PseudoSrc,
    Size,
    Source,
)

__all__ = [
    "HELPERS",
    "HELPER_IDS",
    "INSN_SIZE",
    "AluOp",
    "AtomicOp",
    "CallKind",
    "DecodeError",
    "Endian",
    "InsnClass",
    "Instruction",
    "JmpOp",
    "Kind",
    "Mode",
    "PseudoSrc",
    "RelocKind",
    "Relocation",
    "Size",
    "Source",
    "decode",
    "disassemble",
    "encode",
    "format_instruction",
    "format_listing",
    "helper_name",
    "slot_offsets",
]
