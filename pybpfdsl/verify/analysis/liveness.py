"""Register liveness: which registers may still be read before they are written, at each instruction.

The fixpoint keys its state partitions on packet facts held in *live* registers only (a dead packet
pointer cannot make an access safe or unsafe), the way the kernel ignores dead registers when it
compares states for pruning.
"""

from __future__ import annotations

from collections.abc import Sequence

from pybpfdsl.bpf.abi import HELPER_PROTOTYPES, Helper
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AtomicOp, Kind, Source, source

__all__ = ["call_args", "live_in", "registers_of", "solve_backward"]

ALL = (1 << 11) - 1
CALL_CLOBBERS = 0b111111  # r0..r5


def registers_of(insn: Instruction) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(registers read, registers written) by ``insn``."""
    k = insn.kind
    x = source(insn.opcode) == Source.X
    if k in (Kind.ALU, Kind.SDIV):
        return ((insn.dst, insn.src) if x else (insn.dst,)), (insn.dst,)
    if k in (Kind.MOV, Kind.MOVSX):
        return ((insn.src,) if x else ()), (insn.dst,)
    if k in (Kind.NEG, Kind.END, Kind.BSWAP, Kind.ADDR_SPACE_CAST):
        return (insn.dst,), (insn.dst,)
    if k == Kind.LDDW:
        return (), (insn.dst,)
    if k in (Kind.LDX, Kind.LDX_SX):
        return (insn.src,), (insn.dst,)
    if k == Kind.ST:
        return (insn.dst,), ()
    if k == Kind.STX:
        return (insn.dst, insn.src), ()
    if k == Kind.ATOMIC:
        writes: tuple[int, ...] = ()
        if insn.imm == AtomicOp.CMPXCHG:
            return (insn.dst, insn.src, 0), (0,)
        if insn.imm & 1:
            writes = (insn.src,)
        return (insn.dst, insn.src), writes
    if k == Kind.JCOND:
        return ((insn.dst, insn.src) if x else (insn.dst,)), ()
    if k == Kind.CALL:
        return call_args(insn), (0,)
    if k == Kind.EXIT:
        return (0,), ()
    return (), ()


def call_args(insn: Instruction) -> tuple[int, ...]:
    """The argument registers a call reads: its helper's parameters where the ABI knows the helper (as the
    kernel's liveness reads them), else r1-r5 (bpf-to-bpf calls, kfuncs, variadic helpers). A register a
    call does not read is dead across it: counted live, it kept paths apart at every later join (a packet
    pointer left in r4 before ``bpf_ktime_get_ns()``: xdp-tutorial's grow_parse at -O1)."""
    if not insn.is_helper_call:
        return _ARGS
    try:
        proto = HELPER_PROTOTYPES[Helper(insn.imm)]
    except (ValueError, KeyError):
        return _ARGS
    return _ARGS if proto.variadic else tuple(range(1, len(proto.params) + 1))


_ARGS = (1, 2, 3, 4, 5)


def _uses_defs(insn: Instruction) -> tuple[int, int]:
    if insn.kind == Kind.INVALID:
        return ALL, 0
    reads, writes = registers_of(insn)
    use = 0
    for r in reads:
        use |= 1 << r
    kill = 0
    for r in writes:
        kill |= 1 << r
    if insn.kind == Kind.CALL:
        kill |= CALL_CLOBBERS
    return use, kill


def live_in(insns: tuple[Instruction, ...], succs: list[list[int]]) -> list[int]:
    """Bit ``r`` of entry ``i``: register ``r`` may be read on some path from instruction ``i`` before a write."""
    return solve_backward(succs, [(*_uses_defs(i), 0, 0) for i in insns])


def solve_backward(succs: list[list[int]], facts: Sequence[tuple[int, int, int, int]]) -> list[int]:
    """The least solution of a backward may-problem over bit sets: for each instruction ``i`` with
    ``facts[i] = (use, kill, cond, bit)``, ``in[i] = use | (out & ~kill) | (cond if out & bit)``, ``out``
    being the union of its successors' ``in``. (Liveness has ``cond = 0``; the kernel's precision marks
    an instruction's operands only when its result is marked, hence the conditional part.)"""
    n = len(facts)
    ins = [0] * n
    changed = True
    while changed:
        changed = False
        for i in range(n - 1, -1, -1):
            out = 0
            for t in succs[i]:
                out |= ins[t]
            use, kill, cond, bit = facts[i]
            new = use | (out & ~kill) | (cond if out & bit else 0)
            if new != ins[i]:
                ins[i] = new
                changed = True
    return ins
