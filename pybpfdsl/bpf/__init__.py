"""The eBPF instruction set as data, its meaning, and a bytecode interpreter. Imports nothing else of
pybpfdsl, and neither llvmlite nor libbpf (tests/bpf/test_light_import.py).

Layout follows one module per concept:

* :mod:`~pybpfdsl.bpf.abi` -- the kernel ABI's numbers once: helper ids and prototypes, map types, XDP
  actions, ``struct xdp_md``, flags, stack size and limits
* :mod:`~pybpfdsl.bpf.opcode` -- opcode fields, enums and semantic tables
* :mod:`~pybpfdsl.bpf.instruction` -- :class:`Instruction`, decode/encode, its text, helper ids, relocations
* :mod:`~pybpfdsl.bpf.disasm` -- listings in kernel-verifier syntax
* :mod:`~pybpfdsl.bpf.elf` -- the one reader of BPF ELF objects (needs pyelftools); :mod:`~pybpfdsl.bpf.btf_ext`
  -- ``.BTF`` strings/types and ``.BTF.ext`` line info
* :mod:`~pybpfdsl.bpf.semantics` -- one table of instruction semantics over an algebra (Python ints, Z3)
* the interpreter: :mod:`~pybpfdsl.bpf.interpreter` (the machine), :mod:`~pybpfdsl.bpf.memory` (regions,
  pointers, maps), :mod:`~pybpfdsl.bpf.helper_calls`, :mod:`~pybpfdsl.bpf.helper_results`,
  :mod:`~pybpfdsl.bpf.linking`, :mod:`~pybpfdsl.bpf.image`, :mod:`~pybpfdsl.bpf.faults`
* :mod:`~pybpfdsl.bpf.syscall` -- the layout of the ``bpf()`` program-load call (calling it is the runtime's)

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
