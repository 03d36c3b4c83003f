"""Regions: single-entry pieces of one function with jumps inside (clang's boolean diamonds), what they
compute, and the proof that a rewrite of one equals it.

A region is a run of instructions entered only at its first one, whose jumps all go forward (a DAG of
blocks, no loop), holding only what a window may hold plus conditional and unconditional jumps. It
leaves by a jump to a place outside it, or by falling off its end; each such place is an *exit*, named
by a label (the section's instruction index of the place: the same label in a region and in its
rewrite means the same place). `RegionCode` is the code with its exits: a jump listed in ``exits``
leaves the region for that label, every other jump lands inside the code (or just past its end).

Its meaning (`run_region_z3`) merges the paths in Z3 (K2's window check over a DAG): per exit, the
condition under which the region leaves there, and the registers and memory it leaves with. Two
regions are equal under a liveness per exit (`prove_region`) when, from the same registers and memory
(and the constants and widths known on entry), they leave by the same exit, with the same memory, and
with the same value in every register live at that exit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pybpfdsl.bpf import semantics as sem
from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.superopt.window_check import Verdict
from pybpfdsl.superopt.window_semantics import ConcreteMemory, in_window, run_z3_branch, step

__all__ = ["RegionCode", "in_region", "prove_region", "run_region_concrete", "run_region_z3"]


def in_region(insn: Instruction) -> bool:
    """What a region may hold: what a window may, and jumps (conditional or not; no call, no exit)."""
    return in_window(insn) or insn.kind in (Kind.JCOND, Kind.JA)


@dataclass(frozen=True)
class RegionCode:
    """Instructions, the region's exits by position (position -> label) and the label of its end."""

    code: tuple[Instruction, ...]
    exits: tuple[tuple[int, int], ...]
    end: int
    """The label of falling off the last instruction (the place right after the region)."""

    def targets(self) -> list[int | None]:
        """Per instruction, the position its jump lands on inside the code (``len(code)``: the end),
        None if it does not jump or leaves the region. Raises SemanticsError for a backward jump or
        one landing inside an instruction or outside the code without an exit label."""
        starts = slot_offsets(self.code)
        index = {s: i for i, s in enumerate(starts)}
        index[sum(i.slots for i in self.code)] = len(self.code)
        out: list[int | None] = []
        leaving = dict(self.exits)
        for i, insn in enumerate(self.code):
            if insn.kind not in (Kind.JCOND, Kind.JA) or i in leaving:
                out.append(None)
                continue
            t = index.get(starts[i] + insn.slots + insn.off)
            if t is None or t <= i:
                raise sem.SemanticsError(f"the jump at {i} does not go forward to a place of the region")
            out.append(t)
        return out


def run_region_concrete(region: RegionCode, regs: Sequence[int],
                        memory: ConcreteMemory) -> tuple[int, list[int], ConcreteMemory]:
    """The exit label, registers and memory after running ``region`` on concrete inputs."""
    ops = sem.INT_OPS
    out = list(regs)
    mem = ConcreteMemory(memory.seed, dict(memory.written))
    mask = (1 << 64) - 1

    def load(addr: int, n: int) -> int:
        return sum(mem.byte((addr + i) & mask) << (8 * i) for i in range(n))

    def store(addr: int, n: int, value: int) -> None:
        for i in range(n):
            mem.written[(addr + i) & mask] = (value >> (8 * i)) & 0xFF

    targets = region.targets()
    leaving = dict(region.exits)
    pc = 0
    while pc < len(region.code):
        insn = region.code[pc]
        taken = True if insn.kind == Kind.JA else step(ops, insn, out, load, store)
        if taken:
            if pc in leaving:
                return leaving[pc], out, mem
            target = targets[pc]
            assert target is not None
            pc = target
        else:
            pc += 1
    return region.end, out, mem


_State = tuple[Any, list[Any], Any]  # path condition, registers, memory


def _merge(old: _State | None, new: _State) -> _State:
    import z3

    if old is None:
        return new
    cond, regs, mem = new
    return (z3.Or(old[0], cond), [z3.If(cond, a, b) for a, b in zip(regs, old[1], strict=True)],
            z3.If(cond, mem, old[2]))


def _z3_step(insn: Instruction, regs: Sequence[Any], memory: Any) -> tuple[list[Any], Any, Any]:
    """Registers and memory after ``insn``, and whether it jumps (None: it does not jump): the window's
    Z3 semantics of one instruction, with ``goto`` (which a window never holds) always taken."""
    if insn.kind == Kind.JA:
        import z3

        return list(regs), memory, z3.BoolVal(True)
    return run_z3_branch([insn], regs, memory)


def run_region_z3(region: RegionCode, regs: Sequence[Any], memory: Any) -> dict[int, _State]:
    """Per exit label, the condition of leaving there and the registers and memory then (paths merged)."""
    import z3

    targets = region.targets()
    leaving = dict(region.exits)
    at: list[_State | None] = [None] * (len(region.code) + 1)
    at[0] = (z3.BoolVal(True), list(regs), memory)
    exits: dict[int, _State] = {}

    def send(state: _State, pos: int | None, label: int | None) -> None:
        if label is not None:
            exits[label] = _merge(exits.get(label), state)
        else:
            assert pos is not None
            at[pos] = _merge(at[pos], state)

    for pc, insn in enumerate(region.code):
        here = at[pc]
        if here is None:
            continue
        cond, cur, mem_in = here
        out, mem_out, taken = _z3_step(insn, cur, mem_in)
        jump_to = (None, leaving[pc]) if pc in leaving else (targets[pc], None)
        if taken is None:
            send((cond, out, mem_out), pc + 1, None)
            continue
        taken = z3.simplify(taken)
        if not z3.is_false(taken):
            send((z3.And(cond, taken), out, mem_out), *jump_to)
        if insn.kind != Kind.JA and not z3.is_true(taken):
            send((z3.And(cond, z3.Not(taken)), out, mem_out), pc + 1, None)
    last = at[len(region.code)]
    if last is not None:
        exits[region.end] = _merge(exits.get(region.end), last)
    return exits


def prove_region(original: RegionCode, candidate: RegionCode, live_at: Mapping[int, int], units: int,
                 known: Mapping[int, int] | None = None, widths: Mapping[int, int] | None = None,
                 entry_live: int | None = None, known_b: Mapping[int, int] | None = None,
                 widths_b: Mapping[int, int] | None = None) -> Verdict:
    """Prove the regions equal: the same exit, the same memory, and the registers live at that exit
    (``live_at``: label -> bit set; an exit missing there has every register live) equal, from equal
    registers and memory meeting the ``known`` constants and ``widths``; within ``units`` Z3 units.

    For a proof between two programs (`lockstep`): only the registers in ``entry_live`` are equal on
    entry (the candidate's others are its own), and the candidate's registers meet ``known_b`` and
    ``widths_b`` (each program's own must-analysis)."""
    import z3

    regs = [z3.BitVec(f"r{i}", 64) for i in range(11)]
    regs_b = regs if entry_live is None else [
        regs[r] if entry_live >> r & 1 or r == 10 else z3.BitVec(f"out_r{r}", 64) for r in range(11)]
    mem = z3.Array("mem", z3.BitVecSort(64), z3.BitVecSort(8))
    try:
        exits_a = run_region_z3(original, regs, mem)
        exits_b = run_region_z3(candidate, regs_b, mem)
    except sem.SemanticsError as exc:
        return Verdict("unknown", reason=str(exc))
    bad = []
    for label in exits_a.keys() | exits_b.keys():
        ca, ra, ma = exits_a.get(label, (z3.BoolVal(False), regs, mem))
        cb, rb, mb = exits_b.get(label, (z3.BoolVal(False), regs, mem))
        live = live_at.get(label, (1 << 11) - 1)
        differ = z3.Or(ma != mb, *(ra[r] != rb[r] for r in range(11) if live >> r & 1))
        bad += [z3.Xor(ca, cb), z3.And(ca, differ)]
    solver = z3.Solver()
    solver.set("rlimit", units)
    solver.add(z3.Or(False, *bad))
    sides = [(regs, known, widths)]
    if entry_live is not None:
        sides.append((regs_b, known_b, widths_b))
    for side, facts, bits in sides:
        for r, v in (facts or {}).items():
            solver.add(side[r] == v)
        for r, w in (bits or {}).items():
            solver.add(z3.LShR(side[r], w) == 0)
    answer = solver.check()
    if answer == z3.unsat:
        return Verdict("proven")
    if answer == z3.sat:
        return Verdict("different", reason="a counterexample leaves otherwise")
    return Verdict("unknown", reason=f"Z3 gave up within {units:,} units: {solver.reason_unknown()}")
