"""Random XDP programs the kernel's verifier accepts by construction, for differential testing.

Shape of every program::

    r2 = data; r3 = data_end; r4 = r2 + N
    if r4 > r3 goto short               ; packets shorter than N bytes leave early
    *(u64 *)(r10 - 72) = r2             ; a pointer spill, filled again in the body
    *(u64 *)(r10 - 8k) = imm            ; initialise the stack area the body uses
    r0, r1, r3..r9 = packet bytes / constants / ctx fields
    body: random ALU/ALU32 ops, stack and packet loads/stores, atomics on the stack,
          forward conditional jumps (JMP and JMP32, every condition)
    *(u64 *)(r2 + 8i) = ri              ; every scalar register lands in the packet
    r0 = ra op rb; r0 &= 3; exit
    short: r0 = c; exit

Why the verifier accepts them: r2 stays the packet pointer and every packet access is below N, every
register and stack byte is written before anything reads it (jumps only go forward, over code that
only ever *re*-defines things), divisions by an immediate never divide by zero, immediate shift counts
are below the width, atomics are aligned and on the stack, and the number of branches is small enough
for the verifier to walk every path.  Version-4 instructions (movsx, sdiv/smod, bswap, sign-extending
loads) are emitted only for ``cpu="v4"``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import (
    AluOp,
    AtomicOp,
    Endian,
    InsnClass,
    JmpOp,
    Mode,
    Size,
    Source,
    make,
)

__all__ = ["PACKET_SPAN", "RandomProgram", "generate", "random_packet"]

PACKET_SPAN = 80
"""Bytes of packet every generated program may touch (N above)."""

SCALARS = (0, 1, 3, 4, 5, 6, 7, 8, 9)
"""Registers holding scalars; r2 is the packet pointer and r10 the frame pointer."""

_STACK_SLOTS = 8  # the body's stack area is [r10 - 64, r10)
_SPILL = -72  # where r2 is spilled
_MAX_BRANCHES = 10

_IMM_EDGES = (0, 1, -1, 2, 7, 8, 15, 16, 31, 32, 63, 64, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF,
              -(1 << 31), (1 << 31) - 1, -2, -0x80)
_IMM64_EDGES = (0, 1, (1 << 64) - 1, 1 << 63, (1 << 63) - 1, 0xFFFFFFFF, 1 << 32, 0x80000000,
                0xFFFFFFFF80000000)
_BYTE_EDGES = (0x00, 0xFF, 0x80, 0x7F, 0x01)

_PLAIN_ALU = (AluOp.ADD, AluOp.SUB, AluOp.MUL, AluOp.DIV, AluOp.OR, AluOp.AND, AluOp.LSH, AluOp.RSH,
              AluOp.MOD, AluOp.XOR, AluOp.MOV, AluOp.ARSH)
_CONDITIONS = (JmpOp.JEQ, JmpOp.JNE, JmpOp.JGT, JmpOp.JGE, JmpOp.JLT, JmpOp.JLE, JmpOp.JSGT, JmpOp.JSGE,
               JmpOp.JSLT, JmpOp.JSLE, JmpOp.JSET)
_ATOMICS = (AtomicOp.ADD, AtomicOp.OR, AtomicOp.AND, AtomicOp.XOR, AtomicOp.FETCH_ADD, AtomicOp.FETCH_OR,
            AtomicOp.FETCH_AND, AtomicOp.FETCH_XOR, AtomicOp.XCHG, AtomicOp.CMPXCHG)
_SIZES = (Size.B, Size.H, Size.W, Size.DW)


@dataclass(frozen=True)
class RandomProgram:
    """A generated program and how it was made."""

    instructions: tuple[Instruction, ...]
    cpu: str
    seed: int


@dataclass
class _Jump:
    """A forward conditional jump whose offset is known once the layout is: ``target`` is an op index."""

    insn: Instruction
    target: int


_Op = Instruction | _Jump


class _Builder:
    def __init__(self, rng: random.Random, cpu: str) -> None:
        self.rng = rng
        self.v4 = cpu == "v4"
        self.ops: list[_Op] = []

    # ----------------------------------------------------------------- operands

    def reg(self) -> int:
        return self.rng.choice(SCALARS)

    def imm(self) -> int:
        rng = self.rng
        return rng.choice(_IMM_EDGES) if rng.random() < 0.5 else rng.randint(-(1 << 31), (1 << 31) - 1)

    def nonzero_imm(self) -> int:
        while (value := self.imm()) == 0:
            pass
        return value

    def emit(self, insn: Instruction) -> None:
        self.ops.append(insn)

    # ----------------------------------------------------------------- prologue / epilogue

    def prologue(self) -> None:
        ldxw = make(InsnClass.LDX, Mode.MEM, Size.W)
        self.emit(Instruction(ldxw, 2, 1, 0))  # r2 = data
        self.emit(Instruction(ldxw, 3, 1, 4))  # r3 = data_end
        self.emit(Instruction(make(InsnClass.ALU64, AluOp.MOV, Source.X), 4, 2))
        self.emit(Instruction(make(InsnClass.ALU64, AluOp.ADD, Source.K), 4, 0, 0, PACKET_SPAN))
        self.ops.append(_Jump(Instruction(make(InsnClass.JMP, JmpOp.JGT, Source.X), 4, 3), -1))  # -> short
        self.emit(Instruction(make(InsnClass.STX, Mode.MEM, Size.DW), 10, 2, _SPILL))
        for k in range(1, _STACK_SLOTS + 1):
            self.emit(Instruction(make(InsnClass.ST, Mode.MEM, Size.DW), 10, 0, -8 * k, self.imm()))
        # r1 (the context) last, so ctx fields can still be read into the others.
        for r in (0, 3, 4, 5, 6, 7, 8, 9, 1):
            self.init_register(r)

    def init_register(self, r: int) -> None:
        choice = self.rng.random()
        if choice < 0.5:
            self.packet_load(r)
        elif choice < 0.65:
            self.emit(Instruction.lddw(r, self.rng.choice((*_IMM64_EDGES, self.rng.getrandbits(64)))))
        elif choice < 0.9 or r == 1:
            cls = self.rng.choice((InsnClass.ALU, InsnClass.ALU64))
            self.emit(Instruction(make(cls, AluOp.MOV, Source.K), r, 0, 0, self.imm()))
        else:
            # ingress_ifindex / rx_queue_index (egress_ifindex needs a devmap attach type)
            field = self.rng.choice((12, 16))
            self.emit(Instruction(make(InsnClass.LDX, Mode.MEM, Size.W), r, 1, field))

    def epilogue(self) -> None:
        stxdw = make(InsnClass.STX, Mode.MEM, Size.DW)
        for i, r in enumerate(SCALARS[: PACKET_SPAN // 8]):
            self.emit(Instruction(stxdw, 2, r, 8 * i))
        a, b = self.reg(), self.reg()
        op = self.rng.choice((AluOp.ADD, AluOp.XOR, AluOp.SUB, AluOp.OR))
        self.emit(Instruction(make(InsnClass.ALU64, AluOp.MOV, Source.X), 0, a))
        self.emit(Instruction(make(self.rng.choice((InsnClass.ALU, InsnClass.ALU64)), op, Source.X), 0, b))
        self.emit(Instruction(make(InsnClass.ALU64, AluOp.AND, Source.K), 0, 0, 0, 3))
        self.emit(Instruction(make(InsnClass.JMP, JmpOp.EXIT)))

    def short_exit(self) -> None:
        self.emit(Instruction(make(InsnClass.ALU64, AluOp.MOV, Source.K), 0, 0, 0, self.rng.randint(0, 3)))
        self.emit(Instruction(make(InsnClass.JMP, JmpOp.EXIT)))

    # ----------------------------------------------------------------- body operations

    def alu(self) -> None:
        rng = self.rng
        cls = rng.choice((InsnClass.ALU, InsnClass.ALU64))
        width = 64 if cls == InsnClass.ALU64 else 32
        op = rng.choice((*_PLAIN_ALU, AluOp.NEG))
        dst = self.reg()
        if op == AluOp.NEG:
            self.emit(Instruction(make(cls, op, Source.K), dst))
            return
        if rng.random() < 0.5:
            self.emit(Instruction(make(cls, op, Source.X), dst, self.reg()))
            return
        if op in (AluOp.LSH, AluOp.RSH, AluOp.ARSH):
            imm = rng.randrange(width)  # the verifier rejects immediate shifts >= the width
        elif op in (AluOp.DIV, AluOp.MOD):
            imm = self.nonzero_imm()  # ... and division by an immediate zero
        else:
            imm = self.imm()
        self.emit(Instruction(make(cls, op, Source.K), dst, 0, 0, imm))

    def endian(self) -> None:
        rng = self.rng
        bits = rng.choice((16, 32, 64))
        if self.v4 and rng.random() < 0.4:
            self.emit(Instruction(make(InsnClass.ALU64, AluOp.END, Source.K), self.reg(), 0, 0, bits))
            return
        order = rng.choice((Endian.TO_LE, Endian.TO_BE))
        self.emit(Instruction(make(InsnClass.ALU, AluOp.END, order), self.reg(), 0, 0, bits))

    def movsx(self) -> None:
        cls = self.rng.choice((InsnClass.ALU, InsnClass.ALU64))
        off = self.rng.choice((8, 16, 32) if cls == InsnClass.ALU64 else (8, 16))
        self.emit(Instruction(make(cls, AluOp.MOV, Source.X), self.reg(), self.reg(), off))

    def signed_div(self) -> None:
        rng = self.rng
        cls = rng.choice((InsnClass.ALU, InsnClass.ALU64))
        op = rng.choice((AluOp.DIV, AluOp.MOD))
        if rng.random() < 0.5:
            self.emit(Instruction(make(cls, op, Source.X), self.reg(), self.reg(), 1))
        else:
            self.emit(Instruction(make(cls, op, Source.K), self.reg(), 0, 1, self.nonzero_imm()))

    def stack_slot(self, sz: Size) -> int:
        nbytes = sz.bytes
        return -8 * _STACK_SLOTS + nbytes * self.rng.randrange(8 * _STACK_SLOTS // nbytes)

    def stack_store(self) -> None:
        sz = self.rng.choice(_SIZES)
        off = self.stack_slot(sz)
        if self.rng.random() < 0.7:
            self.emit(Instruction(make(InsnClass.STX, Mode.MEM, sz), 10, self.reg(), off))
        else:
            self.emit(Instruction(make(InsnClass.ST, Mode.MEM, sz), 10, 0, off, self.imm()))

    def load(self, base: int, off: int, sz: Size, dst: int) -> None:
        signed = self.v4 and sz != Size.DW and self.rng.random() < 0.4
        self.emit(Instruction(make(InsnClass.LDX, Mode.MEMSX if signed else Mode.MEM, sz), dst, base, off))

    def stack_load(self) -> None:
        sz = self.rng.choice(_SIZES)
        self.load(10, self.stack_slot(sz), sz, self.reg())

    def packet_load(self, dst: int | None = None) -> None:
        sz = self.rng.choice(_SIZES)
        self.load(2, self.rng.randint(0, PACKET_SPAN - sz.bytes), sz, self.reg() if dst is None else dst)

    def packet_store(self) -> None:
        sz = self.rng.choice(_SIZES)
        off = self.rng.randint(0, PACKET_SPAN - sz.bytes)
        if self.rng.random() < 0.7:
            self.emit(Instruction(make(InsnClass.STX, Mode.MEM, sz), 2, self.reg(), off))
        else:
            self.emit(Instruction(make(InsnClass.ST, Mode.MEM, sz), 2, 0, off, self.imm()))

    def atomic(self) -> None:
        sz = self.rng.choice((Size.W, Size.DW))
        aop = self.rng.choice(_ATOMICS)
        self.emit(Instruction(make(InsnClass.STX, Mode.ATOMIC, sz), 10, self.reg(), self.stack_slot(sz), aop))

    def fill_packet_pointer(self) -> None:
        self.emit(Instruction(make(InsnClass.LDX, Mode.MEM, Size.DW), 2, 10, _SPILL))

    def branch(self, body_end: int) -> None:
        rng = self.rng
        cls = rng.choice((InsnClass.JMP, InsnClass.JMP32))
        op = rng.choice(_CONDITIONS)
        here = len(self.ops)
        target = min(here + 1 + rng.randint(1, 8), body_end)
        if rng.random() < 0.5:
            insn = Instruction(make(cls, op, Source.X), self.reg(), self.reg())
        else:
            insn = Instruction(make(cls, op, Source.K), self.reg(), 0, 0, self.imm())
        self.ops.append(_Jump(insn, target))


def _layout(ops: list[_Op], short_exit: int) -> tuple[Instruction, ...]:
    """Resolve jump targets (op indices; -1 means the short exit) into slot offsets."""
    slots: list[int] = []
    slot = 0
    for op in ops:
        slots.append(slot)
        slot += op.slots if isinstance(op, Instruction) else 1
    slots.append(slot)
    out: list[Instruction] = []
    for i, op in enumerate(ops):
        if isinstance(op, Instruction):
            out.append(op)
            continue
        target = short_exit if op.target < 0 else op.target
        j = op.insn
        out.append(Instruction(j.opcode, j.dst, j.src, slots[target] - slots[i] - 1, j.imm))
    return tuple(out)


def generate(seed: int, cpu: str = "v3", body_length: int = 40) -> RandomProgram:
    """A random program from ``seed`` (same seed and cpu, same program)."""
    rng = random.Random(f"{seed}:{cpu}")
    b = _Builder(rng, cpu)
    b.prologue()
    length = rng.randint(body_length // 2, body_length)
    # Ops are appended one per step except lddw (never in the body), so the body ends at a known index.
    body_start = len(b.ops)
    body_end = body_start + length
    branches = 0
    choices = [(b.alu, 40), (b.endian, 4), (b.stack_store, 8), (b.stack_load, 8), (b.packet_load, 6),
               (b.packet_store, 6), (b.atomic, 6), (b.fill_packet_pointer, 1)]
    if b.v4:
        choices += [(b.movsx, 5), (b.signed_div, 6)]
    actions, weights = zip(*choices)
    while len(b.ops) < body_end:
        if branches < _MAX_BRANCHES and rng.random() < 0.15:
            b.branch(body_end)
            branches += 1
        else:
            rng.choices(actions, weights)[0]()
    b.epilogue()
    short = len(b.ops)
    b.short_exit()
    return RandomProgram(_layout(b.ops, short), cpu, seed)


def random_packet(rng: random.Random) -> bytes:
    """A packet for generated programs: mostly long enough to pass their bounds check, with edge bytes."""
    if rng.random() < 0.12:
        length = rng.randint(14, PACKET_SPAN - 1)
    else:
        length = rng.randint(PACKET_SPAN, PACKET_SPAN + 48)
    return bytes(rng.choice(_BYTE_EDGES) if rng.random() < 0.3 else rng.getrandbits(8) for _ in range(length))
