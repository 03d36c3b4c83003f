"""Endless loops seen early: an iteration that repeats the one before in everything that decides a jump or
an access cannot be followed by one that ends the loop.

The loop pass (:mod:`.loops`) unrolls a loop one iteration at a time; its inclusion test ends a loop whose
state stops changing, but a counter that nothing reads changes in every iteration and kept that test from
firing, so ``l: r0 += 1; if r1 != 0 goto l`` was unrolled to the budget (150,000 iterations, 3 s) before
it was refused. Here a backward analysis finds the registers whose values can matter (strong liveness),
and the comparison ignores the rest.
"""

from __future__ import annotations

from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.cfg import Cfg
from pybpfdsl.verify.analysis.liveness import registers_of, solve_backward
from pybpfdsl.verify.analysis.partitions import Parts
from pybpfdsl.verify.analysis.transfer import Env

REPEAT_AFTER = 16
"""Iterations after which the loop pass (``loops.terminates``) also looks for an iteration that repeats
the last in all but the numbers nothing reads (:func:`repeats`); before, its inclusion test ends the
endless loops it can."""


def repeats(new: Parts, old: Parts, relevant: int) -> bool:
    """Whether every state of ``new`` is one of ``old`` in its ``relevant`` registers (:func:`relevant_in`),
    stack, packet facts, frames and lock. Then every later iteration repeats this one in all that decides
    a jump or an access, so none can end the loop, and unrolling it to the budget cannot show it bounded
    either: ``l: r0 += 1; if r1 != 0 goto l`` with ``r0`` overwritten after the loop ran 150,000 iterations
    (3 s) before. The loop pass's inclusion test does not see it: the counter differs in each iteration."""
    seen = [_relevant_part(s, relevant) for s in old.values()]
    return all(_relevant_part(s, relevant) in seen for s in new.values())


def _relevant_part(s: State, relevant: int) -> tuple[object, ...]:
    regs = tuple(v for i, v in enumerate(s.regs) if relevant >> i & 1)
    return regs, s.stack, s.pkt_min, s.ranges, s.frames, s.lock


def relevant_in(env: Env, cfg: Cfg) -> list[int]:
    """Bit ``r`` of entry ``i``: register ``r``'s value before instruction ``i`` may reach a jump, an access,
    a store, a call or the exit, through arithmetic, copies and loads (strong liveness: a register that only
    feeds its own update, a counter nothing reads, is not relevant, though it is live)."""
    facts: list[tuple[int, int, int, int]] = []
    for insn in env.insns:
        reads, writes = registers_of(insn)
        use = kill = 0
        for r in reads:
            use |= 1 << r
        for r in writes:
            kill |= 1 << r
        k = insn.kind
        if k in (Kind.ALU, Kind.SDIV, Kind.NEG, Kind.END, Kind.BSWAP, Kind.ADDR_SPACE_CAST):
            facts.append((0, 0, use, 1 << insn.dst))  # read only where the result is relevant
        elif k in (Kind.MOV, Kind.MOVSX, Kind.LDDW):
            facts.append((0, kill, use, 1 << insn.dst))
        elif k == Kind.CALL:
            facts.append((_CALL_ARGS, kill | _CALL_CLOBBERS, 0, 0))
        elif k == Kind.INVALID:
            facts.append((_ALL_REGS, 0, 0, 0))
        else:  # loads (their address), stores, jumps, exit: always
            facts.append((use, kill, 0, 0))
    return solve_backward(cfg.succs, facts)


_CALL_ARGS = 0b111110
_CALL_CLOBBERS = 0b111111
_ALL_REGS = (1 << 11) - 1
