"""What the kernel compares when it checks whether a stored state prunes a new one, approximated
statically: the numbers it keeps precise, and the stack slots still to be read.

Precision: the kernel compares a stored state with a new one on the numbers it marked *precise*
only (``mark_chain_precision``): the operands of a jump that went one way only (a decided jump),
a number added to a pointer by register (``r1 += r3``: ``adjust_reg_min_max_vals`` marks it, so
headers of different lengths keep the states that reached the same instruction apart), helper
arguments that must be constants or sizes, and whatever they were computed from, back through
registers and stack spills. Every other number may differ: the stored state prunes the new one
anyway. (An XDP program's return value is not marked: the kernel does not check it.) The kernel
finds them path by path; :func:`precise_in` and :class:`Precision` find, from the uses seen on some path,
the registers and stack slots whose value may reach one: a superset of the kernel's marks on every path.

Stack liveness: a slot that no path reads again before overwriting it is not compared
(:func:`stack_live_in`).
"""

from __future__ import annotations

from pybpfdsl.bpf.opcode import Kind, Source, source
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.liveness import solve_backward
from pybpfdsl.verify.analysis.transfer import Env
from pybpfdsl.verify.analysis.values import OneOf, ScalarValue, StackPtr, Unknown, Value
from pybpfdsl.verify.domains.scalar import Scalar

__all__ = ["TOP", "Precision", "precise_in", "stack_live_in"]

FP = 10
_SLOT0 = 11
"""Bit ``11 + i``: stack slot ``i`` (see :mod:`.stack`)."""
_ARGS = 0b111110
_CALL_CLOBBERS = 0b111111
TOP = ScalarValue(Scalar.top())


def _slot_bit(off: int) -> int:
    if not -stk.STACK_SIZE <= off < 0:
        return 0
    return 1 << (_SLOT0 + stk.slot_of(off)[0])


def precise_in(env: Env, succs: list[list[int]], decided: frozenset[int] = frozenset()) -> list[int]:
    """Bit ``r`` (a register) or ``11 + i`` (stack slot ``i``) of entry ``idx``: that number, before
    instruction ``idx``, may be marked precise by the kernel on some path from there; ``decided``:
    the conditional jumps on numbers that went one way only on some path (the others' operands are
    not marked: a jump that may go both ways on every path proves nothing about them). (The numbers
    added to pointers are marked as the exploration meets them: :meth:`Precision.mark`.)"""
    return solve_backward(succs, _precision_facts(env, decided))


def _precision_facts(env: Env, decided: frozenset[int]) -> list[tuple[int, int, int, int]]:
    """The facts of :func:`precise_in`'s backward problem, per instruction: (always used, killed, used
    when dst is precise after, dst bit)."""
    gen_kill: list[tuple[int, int, int, int]] = []
    for i, insn in enumerate(env.insns):
        kind = env.kinds[i]
        dst, src = 1 << insn.dst, 1 << insn.src
        by_reg = source(insn.opcode) == Source.X
        if kind in (Kind.ALU, Kind.SDIV, Kind.NEG, Kind.MOV, Kind.MOVSX, Kind.END, Kind.BSWAP):
            if kind == Kind.MOV or kind == Kind.MOVSX:
                gen_kill.append((0, dst, src if by_reg else 0, dst))
                continue
            # (A number added to a pointer is not marked: the pointer's own offset range is compared.)
            gen_kill.append((0, 0, dst | (src if by_reg else 0), dst))
        elif kind in (Kind.LDX, Kind.LDX_SX):
            from_stack = _slot_bit(insn.off) if insn.src == FP else 0
            gen_kill.append((0, dst, from_stack, dst))
        elif kind in (Kind.STX, Kind.ST):
            slot = _slot_bit(insn.off) if insn.dst == FP else 0
            value = src if kind == Kind.STX else 0
            gen_kill.append((0, slot, value, slot))
        elif kind == Kind.JCOND and i in decided:
            gen_kill.append((_jump_operands(insn.dst, insn.src, by_reg), 0, 0, 0))
        elif kind == Kind.CALL:
            gen_kill.append((_ARGS, _CALL_CLOBBERS, 0, 0))
        else:
            gen_kill.append((0, 0, 0, 0))
    return gen_kill


def _jump_operands(dst: int, src: int, by_reg: bool) -> int:
    return 1 << dst | (1 << src if by_reg else 0)


class Precision:
    """:func:`precise_in` kept up to date while jumps are decided one at a time (the exploration decides
    a few dozen, each a new solution). A decided jump only adds uses, so the new least solution lies
    above the old one, and the iteration started from the old one reaches it, changing only the points
    the jump's operands flow back to: a worklist from the jump does that, where solving again from
    nothing walked the whole program to a fixpoint each time. The same solution, exactly."""

    def __init__(self, env: Env, succs: list[list[int]]) -> None:
        self._env = env
        self._succs = succs
        self._facts = _precision_facts(env, frozenset())
        self._preds: list[list[int]] = [[] for _ in succs]
        for i, ts in enumerate(succs):
            for t in ts:
                self._preds[t].append(i)
        self.bits = solve_backward(succs, self._facts)
        """``precise_in(env, succs, decided)`` for the jumps decided so far."""

    def decide(self, idx: int) -> None:
        """The conditional jump at ``idx`` (on numbers) went one way only on some path."""
        insn = self._env.insns[idx]
        self.mark(idx, _jump_operands(insn.dst, insn.src, source(insn.opcode) == Source.X))

    def mark(self, idx: int, regs: int) -> None:
        """The registers ``regs`` (bits) are marked precise by instruction ``idx`` on some path: a decided
        jump's operands, or the number an ALU instruction adds to a pointer."""
        facts, bits, succs, preds = self._facts, self.bits, self._succs, self._preds
        use, kill, cond, bit = facts[idx]
        if use | regs == use:
            return
        facts[idx] = (use | regs, kill, cond, bit)
        todo = [idx]
        while todo:
            i = todo.pop()
            out = 0
            for t in succs[i]:
                out |= bits[t]
            use, kill, cond, bit = facts[i]
            new = use | (out & ~kill) | (cond if out & bit else 0)
            if new != bits[i]:
                bits[i] = new
                todo.extend(preds[i])

ALL_SLOTS = (1 << stk.SLOTS) - 1
HELPER_REACH = 64
"""Bytes from a stack pointer passed to a helper that it may read (map keys and values, buffers)."""


def _stack_slots(v: Value | None, lo: int, hi: int) -> int:
    """Slots ``[off + lo, off + hi)`` of a stack pointer ``v``; every slot if ``v`` may point into the
    stack at an unknown offset, none if it is not a stack pointer."""
    if isinstance(v, OneOf):
        out = 0
        for alt in v.alts:
            out |= _stack_slots(alt, lo, hi)
        return out
    if isinstance(v, Unknown):
        return ALL_SLOTS
    if not isinstance(v, StackPtr):
        return 0
    off = v.off.s64
    if off.hi - off.lo > stk.STACK_SIZE:
        return ALL_SLOTS
    out = 0
    for byte in range(max(off.lo + lo, -stk.STACK_SIZE), min(off.hi + hi, 0)):
        out |= 1 << stk.slot_of(byte)[0]
    return out


def stack_live_in(env: Env, succs: list[list[int]], pre: dict[int, State]) -> list[int]:
    """Bit ``i`` of entry ``idx``: stack slot ``i`` may be read on some path from instruction ``idx``
    before it is written whole. The kernel does not compare slots that are dead (nothing reads them
    again), so two states that differ only there are the same to it."""
    use_kill: list[tuple[int, int, int, int]] = []
    for i, insn in enumerate(env.insns):
        kind = env.kinds[i]
        here = pre.get(i)
        use = kill = 0
        if here is None:
            pass
        elif kind in (Kind.LDX, Kind.LDX_SX):
            use = _stack_slots(here.regs[insn.src], insn.off, insn.off + 1)
        elif kind == Kind.ATOMIC:
            use = _stack_slots(here.regs[insn.dst], insn.off, insn.off + 1)
        elif kind in (Kind.STX, Kind.ST) and insn.dst == FP and insn.opcode & 0x18 == 0x18 and insn.off % 8 == 0:
            kill = _slot_bit(insn.off) >> _SLOT0  # an aligned 8-byte store replaces the whole slot
        elif kind == Kind.CALL:
            if insn.is_pseudo_call or i in env.call_entry:
                use = ALL_SLOTS  # the callee may read the caller's stack through any pointer
            for r in range(1, 6):
                use |= _stack_slots(here.regs[r], 0, HELPER_REACH)
        use_kill.append((use, kill, 0, 0))
    return solve_backward(succs, use_kill)
