"""Unsafe (and not-so-unsafe) mutants of compiled programs, made by editing decoded instructions.

Every mutation keeps the instruction count and slot layout, so relocations and BTF line info stay
valid and the mutated code can be patched back into the ELF object and loaded by libbpf (maps and
global data come with it) — the kernel verifier is then the oracle for each mutant.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache

from elftools.elf.elffile import ELFFile

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction, encode, slot_offsets
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Size, Source, alu_op, size, source
from pybpfdsl.verify.analysis import verify_object
from pybpfdsl.verify.analysis.values import MapValueOrNull, PacketEnd, PacketPtr, ScalarValue, StackPtr, is_pointer

JA = 0x05
POINTER_ALU_PER_PROGRAM = 6
"""Pointer-ALU mutants per program (every `ptr += K` would give over a thousand, all alike)."""


@dataclass(frozen=True)
class Mutant:
    name: str
    kind: str
    elf: bytes


@lru_cache(maxsize=64)
def _section_span(elf: bytes, section: str) -> tuple[int, int]:
    f = ELFFile(io.BytesIO(elf))
    sec = f.get_section_by_name(section)
    assert sec is not None
    return int(sec.header["sh_offset"]), int(sec.header["sh_size"])


def patch_section(elf: bytes, section: str, insns: list[Instruction], at: int = 0) -> bytes:
    """Replace the code of ``section`` (or, from byte ``at``, of one function in it) by ``insns``."""
    off, size = _section_span(elf, section)
    code = encode(insns)
    assert at + len(code) <= size
    return elf[:off + at] + code + elf[off + at + len(code):]


@lru_cache(maxsize=64)
def _function_span(elf: bytes, section: str, name: str) -> tuple[int, int]:
    """Byte offset and size of function ``name`` in ``section`` (the whole section for an unknown name)."""
    prog = BpfElf.from_bytes(elf).programs.get(section)
    fn = next((f for f in prog.functions if f.name == name), None) if prog is not None else None
    if fn is None or fn.slots == 0:
        return 0, _section_span(elf, section)[1]
    return fn.slot * 8, fn.slots * 8


def _jump_variants(insns: list[Instruction], i: int) -> Iterator[list[Instruction]]:
    insn = insns[i]
    never = list(insns)
    never[i] = Instruction(JA, 0, 0, 0, 0)  # the check is gone: always fall through
    yield never
    always = list(insns)
    always[i] = Instruction(JA, 0, 0, insn.off, 0)  # the check is gone: always jump
    yield always


def mutants(elf: bytes, section: str, name: str) -> Iterator[Mutant]:
    report = verify_object(elf, section)
    analysis = report.analysis
    assert analysis is not None
    insns = list(report.instructions)
    at, own_bytes = _function_span(elf, report.section, report.name)
    own = next((i for i, s in enumerate(slot_offsets(insns)) if s * 8 >= own_bytes), len(insns))

    def patch(m: list[Instruction]) -> bytes:  # (subprograms the analysis appended are not in this section)
        return patch_section(elf, report.section, m[:own], at)

    in_loop = set()
    pointer_alu = 0
    for head in analysis.cfg.heads:
        in_loop |= analysis.cfg.loop_body(head)
    for i, insn in enumerate(insns[:own]):  # the entry function's own code, not appended subprograms
        s = analysis.pre.get(i)
        if s is None:
            continue
        k = insn.kind
        tag = f"{name}@{i}"
        if k == Kind.JCOND and source(insn.opcode) == Source.X:
            a, b = s.regs[insn.dst], s.regs[insn.src]
            if {type(a), type(b)} == {PacketPtr, PacketEnd}:
                for j, m in enumerate(_jump_variants(insns, i)):
                    patched = patch(m)
                    yield Mutant(f"{tag}:no-bounds-check{j}", "remove bounds check", patched)
        if k == Kind.JCOND and source(insn.opcode) == Source.K and isinstance(s.regs[insn.dst], MapValueOrNull):
            for j, m in enumerate(_jump_variants(insns, i)):
                yield Mutant(f"{tag}:no-null-check{j}", "remove null check", patch(m))
        if k in (Kind.LDX, Kind.STX, Kind.ST):
            base = insn.src if k == Kind.LDX else insn.dst
            ptr = s.regs[base]
            if isinstance(ptr, PacketPtr | StackPtr) or type(ptr).__name__ == "MapValue":
                delta = 1 if size(insn.opcode) == Size.B or not isinstance(ptr, StackPtr) else size(insn.opcode).bytes
                for d in (delta, -delta):
                    m = list(insns)
                    m[i] = replace(insn, off=insn.off + d)
                    yield Mutant(f"{tag}:offset{d:+d}", "shift offset", patch(m))
            if k == Kind.LDX and isinstance(ptr, StackPtr):
                m = list(insns)
                m[i] = replace(insn, off=-504)
                yield Mutant(f"{tag}:uninit-stack", "read uninitialised stack", patch(m))
        if i in in_loop and insn.cls in (InsnClass.ALU, InsnClass.ALU64) and k == Kind.ALU \
                and alu_op(insn.opcode) == AluOp.ADD and source(insn.opcode) == Source.K and insn.imm != 0 \
                and isinstance(s.regs[insn.dst], ScalarValue):
            m = list(insns)
            m[i] = replace(insn, imm=0)
            yield Mutant(f"{tag}:no-increment", "make loop unbounded", patch(m))
        if k == Kind.STX and size(insn.opcode) == Size.DW and isinstance(s.regs[insn.dst], StackPtr) \
                and is_pointer(s.regs[insn.src]):
            m = list(insns)
            m[i] = replace(insn, opcode=0x63)  # the pointer spilled as 4 bytes: "invalid size of register spill"
            yield Mutant(f"{tag}:narrow-spill", "spill part of a pointer", patch(m))
        if k == Kind.ALU and insn.cls == InsnClass.ALU64 and alu_op(insn.opcode) == AluOp.ADD \
                and source(insn.opcode) == Source.K and is_pointer(s.regs[insn.dst]) \
                and pointer_alu < POINTER_ALU_PER_PROGRAM:
            pointer_alu += 1
            for op, what in ((0x57, "and"), (0x04, "add32")):  # ptr &= K; w(ptr) += K
                m = list(insns)
                m[i] = replace(insn, opcode=op)
                yield Mutant(f"{tag}:pointer-{what}", "bitwise or 32-bit ALU on a pointer",
                             patch(m))
        if k == Kind.LDX and s.regs[insn.src].__class__.__name__ == "CtxPtr":
            m = list(insns)
            m[i] = Instruction(0x62, insn.src, 0, insn.off, 0)  # *(u32 *)(ctx + off) = 0
            yield Mutant(f"{tag}:ctx-store", "write through ctx", patch(m))
