"""Deliberate single-instruction miscompiles, injected into a program's decoded instructions.

Each mutant changes one instruction (or one relocation, for "wrong map") the way a buggy backend
would; `mutants()` yields them by kind, in program order, so a test can take the first few of each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind, decode, encode
from pybpfdsl.bpf.opcode import OP_MASK, SIZE_MASK, AluOp, InsnClass, JmpOp, Kind, Size, Source, source
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


@dataclass(frozen=True)
class Edit:
    """One instruction replaced by another of the same width: what both `mutants` and the ground-truth
    harness (which patches the edit back into the ELF object) apply."""

    kind: str
    index: int
    description: str
    insn: Instruction


# Each ALU operation's look-alike: the operation a backend confuses it with.
_ALU_SWAP = {AluOp.ADD: AluOp.SUB, AluOp.SUB: AluOp.ADD, AluOp.AND: AluOp.OR, AluOp.OR: AluOp.AND,
             AluOp.XOR: AluOp.OR, AluOp.LSH: AluOp.RSH, AluOp.RSH: AluOp.ARSH, AluOp.ARSH: AluOp.RSH,
             AluOp.MUL: AluOp.ADD, AluOp.DIV: AluOp.MOD, AluOp.MOD: AluOp.DIV}
_WIDER_STORE = {Size.B: Size.H, Size.H: Size.W, Size.W: Size.DW, Size.DW: Size.W}
_IMM_MAX = (1 << 31) - 1
_OFF_MAX = (1 << 15) - 1


def _extra_edits(i: int, insn: Instruction) -> Iterator[Edit]:
    """The kinds the ground-truth harness adds: more constants, ALU ops, offsets and widths."""
    kind, op = insn.kind, insn.opcode
    if kind == Kind.MOV and source(op) == Source.K and insn.dst != 0 and insn.imm < _IMM_MAX:
        yield Edit("wrong constant", i, f"mov imm {insn.imm} → {insn.imm + 1}", replace(insn, imm=insn.imm + 1))
    if kind == Kind.ALU and insn.cls in (InsnClass.ALU, InsnClass.ALU64) and AluOp(op & OP_MASK) in _ALU_SWAP:
        other = _ALU_SWAP[AluOp(op & OP_MASK)]
        yield Edit("changed ALU op", i, f"{AluOp(op & OP_MASK).name} → {other.name}",
                   replace(insn, opcode=(op & ~OP_MASK) | other))
    if kind == Kind.JCOND and source(op) == Source.X and insn.dst != insn.src:
        yield Edit("swapped operands", i, f"jump r{insn.dst} ↔ r{insn.src}", replace(insn, dst=insn.src, src=insn.dst))
    if kind == Kind.LDX and insn.off < _OFF_MAX:
        yield Edit("load at wrong offset", i, f"off {insn.off} → {insn.off + 1}", replace(insn, off=insn.off + 1))
    if kind in (Kind.ST, Kind.STX):
        wider = _WIDER_STORE[Size(op & SIZE_MASK)]
        yield Edit("wrong width", i, f"store {Size(op & SIZE_MASK).name} → {wider.name}",
                   replace(insn, opcode=(op & ~SIZE_MASK) | wider))


def edits(insns: Sequence[Instruction], extended: bool = False) -> Iterator[Edit]:
    """Every single-instruction edit of `insns`, in program order; `extended` adds the kinds of
    `_extra_edits` (changed ALU op, load offsets, store widths, more constants)."""
    for i, insn in enumerate(insns):
        kind, op = insn.kind, insn.opcode
        nxt = insns[i + 1] if i + 1 < len(insns) else None
        if kind == Kind.MOV and insn.dst == 0 and source(op) == Source.K and nxt is not None and nxt.is_exit:
            yield Edit("changed return action", i, f"r0 = {insn.imm} → {insn.imm ^ 1}", replace(insn, imm=insn.imm ^ 1))
        if kind == Kind.MOV and insn.dst == 0 and source(op) == Source.K:
            yield Edit("changed return action", i, f"w0 = {insn.imm} → {(insn.imm + 1) % 4}",
                       replace(insn, imm=(insn.imm + 1) % 4))
        if kind in (Kind.ALU, Kind.JCOND) and source(op) == Source.K and insn.imm < _IMM_MAX:
            yield Edit("wrong constant", i, f"imm {insn.imm} → {insn.imm + 1}", replace(insn, imm=insn.imm + 1))
        if kind == Kind.JCOND and JmpOp(op & OP_MASK) in _FLIP:
            flipped = (op & ~OP_MASK) | _FLIP[JmpOp(op & OP_MASK)]
            yield Edit("flipped jump", i, "condition negated", replace(insn, opcode=flipped))
            if insn.off < _OFF_MAX:
                yield Edit("off-by-one jump", i, f"off {insn.off} → {insn.off + 1}", replace(insn, off=insn.off + 1))
        if kind == Kind.JCOND and insn.cls in (InsnClass.JMP, InsnClass.JMP32):
            other = InsnClass.JMP32 if insn.cls == InsnClass.JMP else InsnClass.JMP
            yield Edit("32- vs 64-bit op", i, f"{insn.cls.name} → {other.name}",
                       replace(insn, opcode=(op & ~0x07) | other))
        if kind == Kind.ALU and insn.cls in (InsnClass.ALU, InsnClass.ALU64):
            other = InsnClass.ALU if insn.cls == InsnClass.ALU64 else InsnClass.ALU64
            yield Edit("32- vs 64-bit op", i, f"{insn.cls.name} → {other.name}",
                       replace(insn, opcode=(op & ~0x07) | other))
            if source(op) == Source.X and insn.dst != insn.src:
                yield Edit("swapped operands", i, f"r{insn.dst} ↔ r{insn.src}",
                           replace(insn, dst=insn.src, src=insn.dst))
        if kind == Kind.LDX:
            narrower = _NARROWER[Size(op & SIZE_MASK)]
            yield Edit("wrong width", i, f"load {Size(op & SIZE_MASK).name} → {narrower.name}",
                       replace(insn, opcode=(op & ~SIZE_MASK) | narrower))
        if kind in (Kind.ST, Kind.STX, Kind.ATOMIC):
            yield Edit("dropped store", i, "store removed", _NOP)
            if insn.off < _OFF_MAX:
                yield Edit("store at wrong offset", i, f"off {insn.off} → {insn.off + 1}",
                           replace(insn, off=insn.off + 1))
        if kind == Kind.ATOMIC:
            # A duplicated atomic add is the same as adding twice the value: model it as the add
            # applied with the source doubled (one instruction, so offsets stay put).
            yield Edit("duplicated store", i, "atomic add → atomic xchg (store applied again)", replace(insn, imm=0xE1))
        if kind == Kind.CALL and insn.is_helper_call and insn.imm in (5, 7):
            helper = 7 if insn.imm == 5 else 5
            yield Edit("wrong helper", i, f"helper {insn.imm} → {helper}", replace(insn, imm=helper))
        if extended:
            yield from _extra_edits(i, insn)


def mutants(program: BytecodeProgram) -> Iterator[Mutant]:
    insns = program.instructions
    by_index: dict[int, list[Edit]] = {}
    for e in edits(insns):
        by_index.setdefault(e.index, []).append(e)
    for i in range(len(insns)):
        for e in by_index.get(i, ()):
            yield Mutant(e.kind, i, e.description, _with(program, i, e.insn))
        reloc = program.relocations.get(i)
        if reloc is not None and reloc.kind == RelocKind.MAP:
            others = [m for m in program.layout.maps if m != reloc.symbol]
            if others:
                relocs: dict[int, Relocation] = dict(program.relocations)
                relocs[i] = replace(reloc, symbol=others[0])
                yield Mutant("wrong map", i, f"map {reloc.symbol} → {others[0]}", replace(program, relocations=relocs))
