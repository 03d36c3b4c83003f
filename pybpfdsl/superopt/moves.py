"""K2's proposal moves (§3.1) over a window of fixed length, ``None`` standing for a removed slot.

Each move changes the current candidate at random: replace an operand, replace an instruction, replace
one by a NOP, exchange a memory access's width and value operand (type 1) or its width alone (type 2),
or replace two adjacent instructions at once. Operands are drawn from what the original window uses
(its registers, immediates and addresses) plus a few constants that often help (0, 1, -1, shift counts),
so the chain searches near the program it is given.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Mode, Size, Source, size

__all__ = ["MOVE_WEIGHTS", "Candidate", "Pools", "pools_of", "propose"]

Candidate = tuple[Instruction | None, ...]

_ALU_OPS = (AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.OR, AluOp.AND, AluOp.LSH, AluOp.RSH, AluOp.XOR,
            AluOp.MOV, AluOp.ARSH)
_CONSTANTS = (0, 1, -1, 2, 4, 8, 16, 24, 32, 48, 56, 0xFF, 0xFFFF)
_SIZES = (Size.B, Size.H, Size.W, Size.DW)


@dataclass(frozen=True)
class Pools:
    """What proposals draw from: the window's registers, immediates and memory addresses."""

    regs: tuple[int, ...]
    imms: tuple[int, ...]
    addresses: tuple[tuple[int, int], ...]
    """(base register, offset) of the window's accesses, and the aligned neighbours of each."""


def pools_of(window: Sequence[Instruction]) -> Pools:
    regs: set[int] = set()
    imms: set[int] = set(_CONSTANTS)
    addrs: set[tuple[int, int]] = set()
    for insn in window:
        k = insn.kind
        if k in (Kind.ST, Kind.STX, Kind.LDX, Kind.LDX_SX):
            base = insn.src if k in (Kind.LDX, Kind.LDX_SX) else insn.dst
            n = size(insn.opcode).bytes
            for off in (insn.off, insn.off - insn.off % 8, insn.off - insn.off % 4, insn.off + n, insn.off - n):
                if -(1 << 15) <= off < 1 << 15:
                    addrs.add((base, off))
            if k != Kind.ST:
                regs.add(insn.dst if k != Kind.STX else insn.src)
            else:
                imms.add(insn.imm)
        else:
            regs.add(insn.dst)
            if k != Kind.LDDW:
                imms.add(insn.imm)
                if insn.opcode & Source.X:
                    regs.add(insn.src)
    regs.discard(10)
    return Pools(tuple(sorted(regs)) or (0,), tuple(sorted(imms)), tuple(sorted(addrs)))


def _alu(rng: random.Random, p: Pools) -> Instruction:
    op = rng.choice(_ALU_OPS)
    cls = InsnClass.ALU64 if rng.random() < 0.7 else InsnClass.ALU
    if rng.random() < 0.5:
        return Instruction(cls | op | Source.X, rng.choice(p.regs), rng.choice((*p.regs, 10)))
    imm = rng.choice(p.imms)
    if op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH):
        imm = imm % (64 if cls == InsnClass.ALU64 else 32)
    return Instruction(cls | op | Source.K, rng.choice(p.regs), 0, 0, imm)


def _memory(rng: random.Random, p: Pools, kind: Kind | None = None, base_off: tuple[int, int] | None = None,
            width: Size | None = None) -> Instruction:
    if not p.addresses:
        return _alu(rng, p)
    base, off = base_off or rng.choice(p.addresses)
    sz = width if width is not None else rng.choice(_SIZES)
    kind = kind or rng.choice((Kind.LDX, Kind.ST, Kind.STX))
    if kind in (Kind.LDX, Kind.LDX_SX):
        return Instruction(InsnClass.LDX | Mode.MEM | sz, rng.choice(p.regs), base, off)
    if kind == Kind.ST:
        return Instruction(InsnClass.ST | Mode.MEM | sz, base, 0, off, rng.choice(p.imms))
    return Instruction(InsnClass.STX | Mode.MEM | sz, base, rng.choice(p.regs), off)


def _random_insn(rng: random.Random, p: Pools) -> Instruction:
    return _memory(rng, p) if p.addresses and rng.random() < 0.35 else _alu(rng, p)


def _replace_operand(rng: random.Random, p: Pools, insn: Instruction) -> Instruction:
    k = insn.kind
    if k == Kind.LDDW:
        return insn
    if k in (Kind.LDX, Kind.LDX_SX):
        return Instruction(insn.opcode, rng.choice(p.regs), insn.src, insn.off)
    if k == Kind.ST:
        return Instruction(insn.opcode, insn.dst, 0, insn.off, rng.choice(p.imms))
    if k == Kind.STX:
        return Instruction(insn.opcode, insn.dst, rng.choice(p.regs), insn.off)
    if k in (Kind.END, Kind.BSWAP, Kind.MOVSX, Kind.NEG):
        return Instruction(insn.opcode, rng.choice(p.regs), insn.src, insn.off, insn.imm)
    field = rng.randrange(3)
    if field == 0:
        return Instruction(insn.opcode, rng.choice(p.regs), insn.src, insn.off, insn.imm)
    if insn.opcode & Source.X:
        return Instruction(insn.opcode, insn.dst, rng.choice((*p.regs, 10)), insn.off, 0)
    return Instruction(insn.opcode, insn.dst, 0, insn.off, rng.choice(p.imms))


def _address(insn: Instruction) -> tuple[int, int] | None:
    k = insn.kind
    if k in (Kind.LDX, Kind.LDX_SX):
        return insn.src, insn.off
    if k in (Kind.ST, Kind.STX):
        return insn.dst, insn.off
    return None


def _exchange(rng: random.Random, p: Pools, insn: Instruction, operand: bool) -> Instruction:
    at = _address(insn)
    if at is None:
        return insn
    width = rng.choice(_SIZES)
    if not operand:
        return Instruction((insn.opcode & ~0x18) | width, insn.dst, insn.src, insn.off, insn.imm)
    kind = insn.kind if insn.kind in (Kind.LDX, Kind.LDX_SX) else rng.choice((Kind.ST, Kind.STX))
    return _memory(rng, p, kind, at, width)


Move = Callable[[random.Random, Pools, list[Instruction | None], int], None]


def _m_operand(rng: random.Random, p: Pools, c: list[Instruction | None], i: int) -> None:
    cur = c[i]
    c[i] = _replace_operand(rng, p, cur) if cur is not None else _random_insn(rng, p)


def _m_instruction(rng: random.Random, p: Pools, c: list[Instruction | None], i: int) -> None:
    c[i] = _random_insn(rng, p)


def _m_nop(rng: random.Random, p: Pools, c: list[Instruction | None], i: int) -> None:
    c[i] = None


def _m_mem1(rng: random.Random, p: Pools, c: list[Instruction | None], i: int) -> None:
    cur = c[i]
    c[i] = _exchange(rng, p, cur, True) if cur is not None else _memory(rng, p)


def _m_mem2(rng: random.Random, p: Pools, c: list[Instruction | None], i: int) -> None:
    cur = c[i]
    if cur is not None:
        c[i] = _exchange(rng, p, cur, False)


def _m_two(rng: random.Random, p: Pools, c: list[Instruction | None], i: int) -> None:
    c[i] = _random_insn(rng, p)
    if i + 1 < len(c):
        c[i + 1] = None if rng.random() < 0.5 else _random_insn(rng, p)


MOVE_WEIGHTS: MappingProxyType[str, tuple[float, Move]] = MappingProxyType({
    "operand": (0.3, _m_operand),
    "instruction": (0.15, _m_instruction),
    "nop": (0.2, _m_nop),
    "memory1": (0.15, _m_mem1),
    "memory2": (0.05, _m_mem2),
    "two": (0.15, _m_two),
})
"""Move name -> (probability, move): K2's rules (1)-(6), weights near its Table 8's first setting."""
_NAMES = tuple(MOVE_WEIGHTS)
_WEIGHTS = tuple(w for w, _ in MOVE_WEIGHTS.values())


def propose(rng: random.Random, pools: Pools, current: Candidate) -> Candidate:
    """One move applied to ``current`` at a random position."""
    name = rng.choices(_NAMES, _WEIGHTS)[0]
    out = list(current)
    MOVE_WEIGHTS[name][1](rng, pools, out, rng.randrange(len(out)))
    return tuple(out)
