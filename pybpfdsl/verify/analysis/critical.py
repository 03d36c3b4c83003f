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

from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Source, alu_op, source
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.liveness import ALL, CALL_CLOBBERS, registers_of, solve_backward

__all__ = ["SLOT0", "critical_in", "lookup_keys_in", "slot_bit"]

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


def _key_offset(insns: tuple[Instruction, ...], single: list[bool], call: int) -> int | None:
    """The frame offset ``r2`` holds at ``call`` when the straight-line code just before it sets it as
    ``r2 = r10; r2 += K`` (None when it is not seen so: a place missed costs only partitions)."""
    total = 0
    j = call - 1
    while j >= 0 and single[j + 1]:
        insn = insns[j]
        k = insn.kind
        if k in (Kind.JCOND, Kind.JA, Kind.GOTOL, Kind.MAY_GOTO, Kind.CALL, Kind.EXIT, Kind.INVALID):
            return None
        if 2 in registers_of(insn)[1]:
            if k == Kind.ALU and insn.cls == InsnClass.ALU64 and alu_op(insn.opcode) == AluOp.ADD \
                    and source(insn.opcode) == Source.K:
                total += insn.imm
            elif k == Kind.MOV and insn.cls == InsnClass.ALU64 and source(insn.opcode) == Source.X and insn.src == FP:
                return total
            else:
                return None
        j -= 1
    return None


def lookup_keys_in(insns: tuple[Instruction, ...], succs: list[list[int]]) -> list[int]:
    """Bit ``SLOT0 + i`` of entry ``idx``: stack slot ``i`` may hold, before ``idx``, the key of a later
    ``bpf_map_lookup_elem`` (``r2 = r10 - K``), with no store to the slot between.

    The kernel types an array lookup with a constant key below ``max_entries`` as never NULL (6.14 on), so
    that constant decides whether the result may be used unchecked; the partitions keep states apart by it
    (``key = is_tcp ? 1 : 2`` stored, then one lookup of a per-action counter: xdp-filter's stats, whose
    ``if (!rec)`` removed the kernel still loads). Cached for the last program, like :func:`critical_in`'s
    callers cache theirs (every partitioner of a program asks)."""
    for code, graph, known in _KEYS:
        if code is insns and graph is succs:
            return known
    preds = [0] * (len(insns) + 1)
    for targets in succs:
        for t in targets:
            if 0 <= t < len(insns):
                preds[t] += 1
    single = [n == 1 for n in preds]
    facts = []
    for i, insn in enumerate(insns):
        k = insn.kind
        if k == Kind.CALL and insn.is_helper_call and insn.imm == Helper.MAP_LOOKUP_ELEM:
            off = _key_offset(insns, single, i)
            facts.append((slot_bit(off) if off is not None else 0, 0, 0, 0))
        elif k in (Kind.STX, Kind.ST) and insn.dst == FP:
            facts.append((0, slot_bit(insn.off), 0, 0))
        else:
            facts.append((0, 0, 0, 0))
    out = solve_backward(succs, facts)
    _KEYS[:] = [(insns, succs, out)]
    return out


_KEYS: list[tuple[tuple[Instruction, ...], list[list[int]], list[int]]] = []
"""The last program's (instructions, successors, :func:`lookup_keys_in`), by identity."""
