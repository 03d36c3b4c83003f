"""What a straight-line window does to registers and memory, over either algebra of bpf/semantics.

A window is a run of instructions with no jump, call or exit: register arithmetic, plain 64-bit
constants, loads and stores, and at most one conditional jump, as its last instruction (a branch
window: what it computes then includes whether the jump is taken; where it goes is not its business).
Memory is one flat byte-addressed space (a Z3 array, or a dictionary of bytes over a seeded background
for concrete tests): it allows any aliasing between the base registers, so an equivalence that holds
here holds whatever the pointers are. Whether an access is
*allowed* is not this module's question; the verifier and the kernel answer it for the whole program.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pybpfdsl.bpf import semantics as sem
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AtomicOp, Kind, Mode, PseudoSrc, Size, mode, size

__all__ = ["WINDOW_KINDS", "ConcreteMemory", "candidate_atomic", "ends_in_branch", "in_window", "is_branch",
           "run_concrete", "run_concrete_branch", "run_z3", "run_z3_branch", "step", "supported"]

WINDOW_KINDS = frozenset({Kind.ALU, Kind.NEG, Kind.MOV, Kind.MOVSX, Kind.END, Kind.BSWAP, Kind.LDDW,
                          Kind.LDX, Kind.LDX_SX, Kind.ST, Kind.STX})
"""The kinds a window may hold (ATOMIC, calls, jumps, exit and legacy skb loads end windows)."""


def supported(insn: Instruction) -> bool:
    """Whether ``insn`` has a meaning here (a plain constant, a MEM access, arithmetic without division)."""
    k = insn.kind
    if k not in WINDOW_KINDS:
        return False
    if k == Kind.LDDW:
        return insn.src == PseudoSrc.NONE
    if k in (Kind.LDX, Kind.ST, Kind.STX):
        return mode(insn.opcode) == Mode.MEM
    return insn.dst != 10 and not (k == Kind.MOVSX and insn.off not in (8, 16, 32))


def in_window(insn: Instruction) -> bool:
    """``supported`` and not writing r10 (the frame pointer is read-only)."""
    return supported(insn) and (insn.kind in (Kind.ST, Kind.STX) or insn.dst != 10)


def candidate_atomic(insn: Instruction) -> bool:
    """An atomic add (``lock *(u32|u64 *)(rX +off) += rY``, or its fetching form that leaves the old value in
    rY) that a candidate may hold where its window loaded, added and stored the same cell: one slot for three.
    Windows still end at atomics (the cuts, and so every other window, stay where they were); only a rewrite
    brings one in. Single-threaded it is the load, add and store; concurrently it is one of the orders the
    three instructions allowed. The kernel and our verifier allow it on map values and the stack only, with
    an aligned offset: the gate checks that."""
    return (insn.kind == Kind.ATOMIC and insn.imm in (AtomicOp.ADD, AtomicOp.FETCH_ADD)
            and size(insn.opcode) in (Size.W, Size.DW) and insn.dst != 10 and insn.src != 10)


def is_branch(insn: Instruction) -> bool:
    """A conditional jump (JMP or JMP32 comparison), the one jump a window may end with."""
    return insn.kind == Kind.JCOND


def ends_in_branch(window: Sequence[Instruction]) -> bool:
    return bool(window) and is_branch(window[-1])


def _check_branch_last(insns: Sequence[Instruction]) -> None:
    # A jump inside a window would make what follows it conditional: not a window's meaning.
    if any(is_branch(i) for i in insns[:-1]):
        raise sem.SemanticsError("a conditional jump before the window's last instruction")


@dataclass
class ConcreteMemory:
    """Bytes written so far over a background that is a pure function of the seed and the address."""

    seed: int
    written: dict[int, int] = field(default_factory=dict)

    def byte(self, addr: int) -> int:
        if addr in self.written:
            return self.written[addr]
        # A multiplicative hash: cheap (a test reads many bytes) and fixed by the seed.
        mixed = ((addr ^ (self.seed << 17)) * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        return (mixed >> 47) & 0xFF


def step(ops: sem.BitVecOps[Any, Any], insn: Instruction, regs: list[Any],
          load: Callable[[Any, int], Any], store: Callable[[Any, int, Any], None]) -> Any:
    """Apply ``insn``; for a conditional jump, return whether it is taken (None otherwise)."""
    k = insn.kind
    if k == Kind.JCOND:
        src = sem.jump_operand(ops, insn, regs[insn.src] if sem.reads_source(insn) else None)
        return sem.jump_taken(ops, insn, regs[insn.dst], src)
    if k == Kind.LDDW:
        regs[insn.dst] = sem.lddw_constant(ops, insn)
    elif k in (Kind.LDX, Kind.LDX_SX):
        sz = size(insn.opcode)
        addr = ops.add(regs[insn.src], ops.const(insn.off & 0xFFFFFFFFFFFFFFFF, 64), 64)
        regs[insn.dst] = sem.load_value(ops, load(addr, sz.bytes), sz, signed=k == Kind.LDX_SX)
    elif k == Kind.ATOMIC:
        sz = size(insn.opcode)
        addr = ops.add(regs[insn.dst], ops.const(insn.off & 0xFFFFFFFFFFFFFFFF, 64), 64)
        effect = sem.atomic(ops, AtomicOp(insn.imm), sz, load(addr, sz.bytes), regs[insn.src], regs[0])
        store(addr, sz.bytes, effect.memory)
        if effect.register == "src":
            regs[insn.src] = effect.fetched
        elif effect.register == "r0":
            regs[0] = effect.fetched
    elif k in (Kind.ST, Kind.STX):
        sz = size(insn.opcode)
        addr = ops.add(regs[insn.dst], ops.const(insn.off & 0xFFFFFFFFFFFFFFFF, 64), 64)
        value = ops.const(insn.imm_sext, 64) if k == Kind.ST else regs[insn.src]
        store(addr, sz.bytes, sem.store_value(ops, value, sz))
    else:
        src = sem.alu_operand(ops, insn, regs[insn.src] if sem.reads_source(insn) else None)
        regs[insn.dst] = sem.alu(ops, insn, regs[insn.dst], src)
    return None


def run_concrete(insns: Sequence[Instruction], regs: Sequence[int],
                 memory: ConcreteMemory) -> tuple[list[int], ConcreteMemory]:
    """Registers and memory after the window, from concrete registers and a seeded memory."""
    out, mem, _ = run_concrete_branch(insns, regs, memory)
    return out, mem


def run_concrete_branch(insns: Sequence[Instruction], regs: Sequence[int],
                        memory: ConcreteMemory) -> tuple[list[int], ConcreteMemory, bool | None]:
    """`run_concrete`, and whether a final conditional jump is taken (None without one)."""
    ops = sem.INT_OPS
    out = list(regs)
    mem = ConcreteMemory(memory.seed, dict(memory.written))
    mask = (1 << 64) - 1

    def load(addr: int, n: int) -> int:
        return sum(mem.byte((addr + i) & mask) << (8 * i) for i in range(n))

    def store(addr: int, n: int, value: int) -> None:
        for i in range(n):
            mem.written[(addr + i) & mask] = (value >> (8 * i)) & 0xFF

    _check_branch_last(insns)
    taken = None
    for insn in insns:
        taken = step(ops, insn, out, load, store)
    return out, mem, taken


def run_z3(insns: Sequence[Instruction], regs: Sequence[Any], memory: Any) -> tuple[list[Any], Any]:
    """Registers and memory (a Z3 array from 64-bit addresses to bytes) after the window."""
    out, mem, _ = run_z3_branch(insns, regs, memory)
    return out, mem


def run_z3_branch(insns: Sequence[Instruction], regs: Sequence[Any], memory: Any) -> tuple[list[Any], Any, Any]:
    """`run_z3`, and the condition of a final conditional jump (None without one)."""
    import z3

    ops = sem.Z3_OPS
    out = list(regs)
    mem = [memory]

    def load(addr: Any, n: int) -> Any:
        parts = [z3.Select(mem[0], addr + i) for i in range(n)]
        return parts[0] if n == 1 else z3.Concat(*reversed(parts))

    def store(addr: Any, n: int, value: Any) -> None:
        m = mem[0]
        for i in range(n):
            m = z3.Store(m, addr + i, z3.Extract(8 * i + 7, 8 * i, value))
        mem[0] = m

    _check_branch_last(insns)
    taken = None
    for insn in insns:
        taken = step(ops, insn, out, load, store)
    return out, mem[0], taken
