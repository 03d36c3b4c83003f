"""Jumps to an exit sent to a tail that sets the value r0 already holds: the early return's constant dies.

clang sets the return value of an early exit before the test that leaves (``r0 = 2; ...; if r3 > r2 goto
<exit>``) and the same value again at the end (``r0 = 2; exit``). Where r0 holds that constant on every path
to the jump (`windows.known_constants`), the jump may go to the tail ``r0 = 2; exit`` instead of the bare
exit: the program returns the same, and the first ``r0 = 2`` is then dead wherever no other path read it.
No window sees this (the jump's target changes), and the region threading keeps a region's exits where they
were. Likewise a jump to a tail ``r0 = K; exit`` or ``r0 = rX; exit`` whose value r0 already holds on the
way the jump takes (known, or tested by the jump: the lookup's ``if r0 == 0 goto out`` where ``out: r0 = r1``
and r1 holds 0) may go to the exit itself, and ``r1 = 0`` dies. The pass makes the retargets of a function
only where they leave an ``rX = K`` dead, and drops it: a slot for each. Jumps go forward only (a backward
jump is a loop to the kernel's check). Proven by the path prover; the lock-step proof lines up jump targets,
so it does not decide these (`api` then searches again without the pass).
"""

from __future__ import annotations

from collections.abc import Sequence

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, JmpOp, Kind, Source
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.windows import FunctionCode, core_relocated_slots, functions_of, live_in

__all__ = ["TailEdit", "exit_tails"]

_MOV64_K = InsnClass.ALU64 | AluOp.MOV | Source.K
_MOV64_X = InsnClass.ALU64 | AluOp.MOV | Source.X
_MASK = (1 << 64) - 1
TailEdit = tuple[str, int, tuple[Instruction, ...], tuple[Instruction, ...], tuple[tuple[int, int], ...]]
"""(function, start, before, after, exits) of one edit: a retargeted jump (its exit: the tail's index) or a
dropped ``r0 = K``. The edits of a pass stand or fall together: a drop without its retargets is wrong."""


def _tails(fn: FunctionCode) -> dict[int, int]:
    """Constant -> index of the first ``r0 = K`` directly followed by ``exit`` (not loader-patched)."""
    out: dict[int, int] = {}
    code = fn.code
    for m in range(len(code) - 1):
        if code[m].opcode == _MOV64_K and code[m].dst == 0 and code[m + 1].kind == Kind.EXIT \
                and m not in fn.patched and m + 1 not in fn.patched:
            out.setdefault(code[m].imm_sext & _MASK, m)
    return out


def _taken_r0(fn: FunctionCode, j: int) -> int | None:
    """r0's value on the way jump ``j`` takes, if one constant: known on every path to it, or tested equal
    by the jump itself (``if r0 == 0 goto``, the lookup's NULL test)."""
    insn = fn.code[j]
    if insn.kind == Kind.JCOND and insn.opcode == InsnClass.JMP | JmpOp.JEQ | Source.K and insn.dst == 0:
        return insn.imm_sext & _MASK
    value = fn.consts[j].get(0)
    return None if value is None else value & _MASK


def _function_edits(fn: FunctionCode) -> tuple[list[Replacement], list[TailEdit]]:
    code = fn.code
    tails = _tails(fn)
    moves: dict[int, int] = {}  # jump index -> new target index
    for j, insn in enumerate(code):
        if insn.kind not in (Kind.JCOND, Kind.JA) or j in fn.patched or len(fn.succs[j]) < 1:
            continue
        target = fn.succs[j][-1]
        value = _taken_r0(fn, j)
        if (target == j + 1 and insn.kind == Kind.JCOND) or value is None:
            continue
        if code[target].kind == Kind.EXIT:
            m = tails.get(value)
            if m is not None and j < m != target:
                moves[j] = m
            continue
        # A tail ``r0 = K; exit`` or ``r0 = rX; exit`` setting the value r0 already holds on this way: the
        # jump may go to its exit (clang's ``r1 = 0; if r0 == 0 goto out; ...; out: r0 = r1; exit``).
        tail = code[target]
        if target + 1 >= len(code) or code[target + 1].kind != Kind.EXIT or tail.dst != 0 \
                or target in fn.patched or target + 1 in fn.patched:
            continue
        if tail.opcode == _MOV64_K:
            given: int | None = tail.imm_sext & _MASK
        elif tail.opcode == _MOV64_X and tail.off == 0:
            given = value if tail.src == 0 else fn.consts[j].get(tail.src)
        else:
            continue
        if given is not None and given & _MASK == value and j < target + 1:
            moves[j] = target + 1
    if not moves:
        return [], []
    # The new successors: liveness after the retargets shows which ``rX = K`` no path reads any more.
    succs = [list(s) for s in fn.succs]
    for j, m in moves.items():
        succs[j] = [*succs[j][:-1], m]
    before, after = fn.live, live_in(tuple(code), succs)
    dead = [i for i, insn in enumerate(code)
            if insn.opcode == _MOV64_K and insn.dst != 10 and i not in fn.patched and i not in moves.values()
            and _live_out(before, fn.succs, i) >> insn.dst & 1 and not _live_out(after, succs, i) >> insn.dst & 1]
    if not dead:
        return [], []
    reps = [Replacement(fn.lo + j, 1, (code[j],), ((0, fn.lo + m),)) for j, m in sorted(moves.items())]
    reps += [Replacement(fn.lo + i, 1, ()) for i in dead]
    log: list[TailEdit] = [(fn.name, fn.lo + j, (code[j],), (code[j],), ((0, fn.lo + m),))
                           for j, m in sorted(moves.items())]
    log += [(fn.name, fn.lo + i, (code[i],), (), ()) for i in dead]
    return sorted(reps, key=lambda r: r.start), log


def _live_out(live: Sequence[int], succs: Sequence[Sequence[int]], i: int) -> int:
    out = 0
    for s in succs[i]:
        out |= live[s]
    return out


def exit_tails(elf_bytes: bytes, sections: Sequence[str]) -> tuple[bytes, list[tuple[str, TailEdit]]]:
    """The object with every function's paying retargets made and the ``r0 = K`` they leave dead dropped,
    and (section, edit) of each change."""
    elf = BpfElf.from_bytes(elf_bytes)
    core = core_relocated_slots(elf)
    edits: dict[str, list[Replacement]] = {}
    made: list[tuple[str, TailEdit]] = []
    for sec in sections:
        prog = elf.program(sec) if sec != ".text" else elf.text
        assert prog is not None
        for fn in functions_of(prog, core.get(sec, set())):
            reps, log = _function_edits(fn)
            edits.setdefault(sec, []).extend(reps)
            made += [(sec, e) for e in log]
    if not made:
        return elf_bytes, []
    return rewrite_code(elf_bytes, edits), made
