"""Deliberate single-instruction miscompiles, injected into a program's decoded instructions.

Each mutant changes one instruction (or one relocation, for "wrong map") the way a buggy backend
would; `mutants()` yields them by kind, in program order, so a test can take the first few of each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind, decode, encode
from pybpfdsl.bpf.opcode import OP_MASK, SIZE_MASK, InsnClass, JmpOp, Kind, Size, Source, source
from pybpfdsl.verify.equivalence.bytecode_program import BytecodeProgram

_FLIP = {JmpOp.JEQ: JmpOp.JNE, JmpOp.JNE: JmpOp.JEQ, JmpOp.JGT: JmpOp.JLE, JmpOp.JLE: JmpOp.JGT,
         JmpOp.JGE: JmpOp.JLT, JmpOp.JLT: JmpOp.JGE, JmpOp.JSGT: JmpOp.JSLE, JmpOp.JSLE: JmpOp.JSGT,
         JmpOp.JSGE: JmpOp.JSLT, JmpOp.JSLT: JmpOp.JSGE}
_NARROWER = {Size.DW: Size.W, Size.W: Size.H, Size.H: Size.B, Size.B: Size.H}
_NOP = Instruction(0x05)  # ja +0


@dataclass(frozen=True)
class Mutant:
    kind: str
    index: int
    description: str
    program: BytecodeProgram


def _with(program: BytecodeProgram, index: int, insn: Instruction) -> BytecodeProgram:
    insns = list(program.instructions)
    insns[index] = insn
    # Round-trip through the wire encoding, as a miscompiled object would hold it.
    return program.with_instructions(tuple(decode(encode(insns))))


def mutants(program: BytecodeProgram) -> Iterator[Mutant]:
    insns = program.instructions
    for i, insn in enumerate(insns):
        kind, op = insn.kind, insn.opcode
        nxt = insns[i + 1] if i + 1 < len(insns) else None
        if kind == Kind.MOV and insn.dst == 0 and source(op) == Source.K and nxt is not None and nxt.is_exit:
            yield Mutant("changed return action", i, f"r0 = {insn.imm} → {insn.imm ^ 1}",
                         _with(program, i, replace(insn, imm=insn.imm ^ 1)))
        if kind == Kind.MOV and insn.dst == 0 and source(op) == Source.K:
            yield Mutant("changed return action", i, f"w0 = {insn.imm} → {(insn.imm + 1) % 4}",
                         _with(program, i, replace(insn, imm=(insn.imm + 1) % 4)))
        if kind in (Kind.ALU, Kind.JCOND) and source(op) == Source.K:
            yield Mutant("wrong constant", i, f"imm {insn.imm} → {insn.imm + 1}",
                         _with(program, i, replace(insn, imm=insn.imm + 1)))
        if kind == Kind.JCOND and JmpOp(op & OP_MASK) in _FLIP:
            flipped = (op & ~OP_MASK) | _FLIP[JmpOp(op & OP_MASK)]
            yield Mutant("flipped jump", i, "condition negated", _with(program, i, replace(insn, opcode=flipped)))
            yield Mutant("off-by-one jump", i, f"off {insn.off} → {insn.off + 1}",
                         _with(program, i, replace(insn, off=insn.off + 1)))
        if kind == Kind.JCOND and insn.cls in (InsnClass.JMP, InsnClass.JMP32):
            other = InsnClass.JMP32 if insn.cls == InsnClass.JMP else InsnClass.JMP
            yield Mutant("32- vs 64-bit op", i, f"{insn.cls.name} → {other.name}",
                         _with(program, i, replace(insn, opcode=(op & ~0x07) | other)))
        if kind == Kind.ALU and insn.cls in (InsnClass.ALU, InsnClass.ALU64):
            other = InsnClass.ALU if insn.cls == InsnClass.ALU64 else InsnClass.ALU64
            yield Mutant("32- vs 64-bit op", i, f"{insn.cls.name} → {other.name}",
                         _with(program, i, replace(insn, opcode=(op & ~0x07) | other)))
            if source(op) == Source.X and insn.dst != insn.src:
                yield Mutant("swapped operands", i, f"r{insn.dst} ↔ r{insn.src}",
                             _with(program, i, replace(insn, dst=insn.src, src=insn.dst)))
        if kind == Kind.LDX:
            narrower = _NARROWER[Size(op & SIZE_MASK)]
            yield Mutant("wrong width", i, f"load {Size(op & SIZE_MASK).name} → {narrower.name}",
                         _with(program, i, replace(insn, opcode=(op & ~SIZE_MASK) | narrower)))
        if kind in (Kind.ST, Kind.STX, Kind.ATOMIC):
            yield Mutant("dropped store", i, "store removed", _with(program, i, _NOP))
            yield Mutant("store at wrong offset", i, f"off {insn.off} → {insn.off + 1}",
                         _with(program, i, replace(insn, off=insn.off + 1)))
        if kind == Kind.ATOMIC:
            # A duplicated atomic add is the same as adding twice the value: model it as the add
            # applied with the source doubled (one instruction, so offsets stay put).
            yield Mutant("duplicated store", i, "atomic add → atomic xchg (store applied again)",
                         _with(program, i, replace(insn, imm=0xE1)))
        if kind == Kind.CALL and insn.is_helper_call and insn.imm in (5, 7):
            other = 7 if insn.imm == 5 else 5
            yield Mutant("wrong helper", i, f"helper {insn.imm} → {other}", _with(program, i, replace(insn, imm=other)))
        reloc = program.relocations.get(i)
        if reloc is not None and reloc.kind == RelocKind.MAP:
            others = [m for m in program.layout.maps if m != reloc.symbol]
            if others:
                relocs: dict[int, Relocation] = dict(program.relocations)
                relocs[i] = replace(reloc, symbol=others[0])
                yield Mutant("wrong map", i, f"map {reloc.symbol} → {others[0]}", replace(program, relocations=relocs))
