"""Jumps to an exit sent to a tail that sets the value r0 already holds: the early return's constant dies.

clang sets the return value of an early exit before the test that leaves (``r0 = 2; ...; if r3 > r2 goto
<exit>``) and the same value again at the end (``r0 = 2; exit``). Where r0 holds that constant on every path
to the jump (`windows.known_constants`), the jump may go to the tail ``r0 = 2; exit`` instead of the bare
exit: the program returns the same, and the first ``r0 = 2`` is then dead wherever no other path read it.
No window sees this (the jump's target changes), and the region threading keeps a region's exits where they
were. The pass makes the retargets of a function only where they leave an ``r0 = K`` dead, and drops it:
a slot for each. Jumps go forward only (a backward jump is a loop to the kernel's check). Proven by the
path prover; the lock-step proof lines up jump targets, so it does not decide these (`api` then searches
again without the pass).
"""

from __future__ import annotations

from collections.abc import Sequence

from pybpfdsl.bpf.elf import BpfElf
from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, Source
from pybpfdsl.superopt.elf_rewrite import Replacement, rewrite_code
from pybpfdsl.superopt.windows import FunctionCode, core_relocated_slots, functions_of, live_in

__all__ = ["TailEdit", "exit_tails"]

_MOV64_K = InsnClass.ALU64 | AluOp.MOV | Source.K
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
            out.setdefault(code[m].imm_sext & (1 << 64) - 1, m)
    return out


def _function_edits(fn: FunctionCode) -> tuple[list[Replacement], list[TailEdit]]:
    code = fn.code
    tails = _tails(fn)
    if not tails:
        return [], []
    moves: dict[int, int] = {}  # jump index -> new target index
    for j, insn in enumerate(code):
        if insn.kind not in (Kind.JCOND, Kind.JA) or j in fn.patched or len(fn.succs[j]) < 1:
            continue
        target = fn.succs[j][-1]
        if target == j + 1 and insn.kind == Kind.JCOND:
            continue
        value = fn.consts[j].get(0)
        if code[target].kind != Kind.EXIT or value is None:
            continue
        m = tails.get(value & (1 << 64) - 1)
        if m is not None and j < m != target:
            moves[j] = m
    if not moves:
        return [], []
    # The new successors: liveness after the retargets shows which `r0 = K` no path reads any more.
    succs = [list(s) for s in fn.succs]
    for j, m in moves.items():
        succs[j] = [*succs[j][:-1], m]
    before, after = fn.live, live_in(tuple(code), succs)
    dead = [i for i, insn in enumerate(code)
            if insn.opcode == _MOV64_K and insn.dst == 0 and i not in fn.patched and i not in moves.values()
            and _live_out(before, fn.succs, i) & 1 and not _live_out(after, succs, i) & 1]
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
