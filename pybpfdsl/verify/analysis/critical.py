"""The critical places of each program point: the registers and stack slots whose value may reach a
conditional jump on some path (itself, a copy, a spill filled back, or an operand of arithmetic on it).

A constant in such a place is a fact a later check hinges on: a flag ``is_ipv6 = 1`` set where the IPv6
header was checked, tested after a dozen header paths joined (or spilled to the stack across helper calls
and filled back before its test). The kernel checks each path with its flag known; the partitions
(:mod:`.partitions`) keep states apart by these constants when they have to coarsen their keys.

A may-analysis for precision only: a place missed (a fill through a copy of ``r10``) costs partitions, a
place too many costs room, neither soundness (every partition is a sound state).
"""

from __future__ import annotations

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import Kind, Source, source
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.liveness import ALL, CALL_CLOBBERS, registers_of, solve_backward

__all__ = ["SLOT0", "critical_in", "slot_bit"]

FP = 10
SLOT0 = 11
"""Bit ``SLOT0 + i`` of a mask: stack slot ``i`` (see :mod:`.stack`); bits below it are registers."""


def slot_bit(off: int) -> int:
    """The bit of the stack slot holding frame offset ``off`` (0 outside the frame)."""
    if not -stk.STACK_SIZE <= off < 0:
        return 0
    return 1 << (SLOT0 + stk.slot_of(off)[0])


def _facts(insn: Instruction) -> tuple[int, int, int, int]:
    """(use, kill, cond, bit) of :func:`critical_in`'s backward problem for ``insn``."""
    k = insn.kind
    by_reg = source(insn.opcode) == Source.X
    dst, src = 1 << insn.dst, 1 << insn.src
    if k == Kind.JCOND:
        return dst | (src if by_reg else 0), 0, 0, 0
    if k in (Kind.MOV, Kind.MOVSX):
        return 0, dst, src if by_reg else 0, dst  # a copy tested: the original is
    if k in (Kind.ALU, Kind.SDIV, Kind.NEG, Kind.END, Kind.BSWAP):
        if by_reg and insn.dst == insn.src:
            return 0, dst, 0, 0  # ``r4 ^= r4``: a new value
        # ``w4 ^= 1; if w4 == 0``: a constant before the update is one after it; and ``w8 |= w5; if w8``
        # tests w5's constant too
        return 0, 0, src if by_reg else 0, dst
    if k in (Kind.LDX, Kind.LDX_SX) and insn.src == FP:
        return 0, dst, slot_bit(insn.off), dst  # a spill filled back and tested: the spill is
    if k in (Kind.STX, Kind.ST) and insn.dst == FP:
        slot = slot_bit(insn.off)  # the store replaces the slot's spill (or drops it)
        return 0, slot, src if k == Kind.STX else 0, slot
    if k == Kind.INVALID:
        return 0, ALL, 0, 0
    kill = 0
    for r in registers_of(insn)[1]:
        kill |= 1 << r
    return 0, kill | (CALL_CLOBBERS if k == Kind.CALL else 0), 0, 0


def critical_in(insns: tuple[Instruction, ...], succs: list[list[int]]) -> list[int]:
    """Bit ``r`` (a register) or ``SLOT0 + i`` (stack slot ``i``) of entry ``idx``: that place's value before
    instruction ``idx`` may reach a conditional jump on some path."""
    return solve_backward(succs, [_facts(i) for i in insns])
