"""Regions: single-entry pieces of one function with jumps inside (clang's boolean diamonds), what they
compute, and the proof that a rewrite of one equals it.

A region is a run of instructions entered only at its first one, whose jumps all go forward (a DAG of
blocks, no loop), holding only what a window may hold plus conditional and unconditional jumps. It
leaves by a jump to a place outside it, or by falling off its end; each such place is an *exit*, named
by a label (the section's instruction index of the place: the same label in a region and in its
rewrite means the same place). `RegionCode` is the code with its exits: a jump listed in ``exits``
leaves the region for that label, every other jump lands inside the code (or just past its end).

A region may also call helpers (`modelled_call`). A helper's effect is what the rest of the kernel
does, which no proof here sees: each call is modelled as uninterpreted functions of the *world* (the
state outside the program: maps, time, the random generator; one more 64-bit value beside the
registers, `WORLD`), its arguments (r1 up to its arity in `bpf.abi`, as the liveness and the lock-step
proof read them) and memory, giving r0, the memory after it (a helper may write through a pointer) and
the world after it (r1-r5 are clobbered: values of the new world, which the verifier forbids reading).
Two regions then agree on the world at an exit only if every path made the same calls, in the same
order, on the same arguments and memory: the proof holds for every meaning of the helpers.

Its meaning (`run_region_z3`) merges the paths in Z3 (K2's window check over a DAG): per exit, the
condition under which the region leaves there, and the registers and memory it leaves with. Two
regions are equal under a liveness per exit (`prove_region`) when, from the same registers, world and
memory (and the constants and widths known on entry), they leave by the same exit, with the same memory
and world, and with the same value in every register live at that exit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pybpfdsl.bpf import semantics as sem
from pybpfdsl.bpf.abi import Helper
from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.superopt.window_check import Verdict
from pybpfdsl.superopt.window_semantics import ConcreteMemory, in_window, run_z3_branch, step
from pybpfdsl.verify.analysis.liveness import call_args

__all__ = ["WORLD", "RegionCode", "in_region", "modelled_call", "prove_region", "run_region_concrete",
           "run_region_z3"]

WORLD = 11
"""The index of the world (the state outside the program) after the 11 registers of a Z3 state."""


def modelled_call(insn: Instruction) -> bool:
    """A helper call a region may hold: by id, and one that returns (not ``bpf_tail_call``, which on
    success leaves the program)."""
    return insn.kind == Kind.CALL and insn.is_helper_call and insn.imm != Helper.TAIL_CALL


def in_region(insn: Instruction) -> bool:
    """What a region may hold: what a window may, jumps (conditional or not) and helper calls that
    return (`modelled_call`); no exit, no call of a subprogram or kfunc."""
    return in_window(insn) or insn.kind in (Kind.JCOND, Kind.JA) or modelled_call(insn)


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
        if insn.kind == Kind.CALL:
            raise sem.SemanticsError("a helper call has no concrete meaning here (only an uninterpreted one)")
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


def _z3_call(insn: Instruction, regs: Sequence[Any], memory: Any) -> tuple[list[Any], Any]:
    """Registers (and world) and memory after a helper call: r0, the memory and the world after it are
    uninterpreted functions of the helper, the world, its arguments and memory; r1-r5 values of the new
    world (the verifier lets nothing read them)."""
    import z3

    bv, mem_sort = z3.BitVecSort(64), z3.ArraySort(z3.BitVecSort(64), z3.BitVecSort(8))
    args = [regs[WORLD], *(regs[r] for r in call_args(insn)), memory]
    domain = [bv] * (len(args) - 1) + [mem_sort]
    name = f"helper{insn.imm}_{len(args) - 2}"
    world = z3.Function(f"{name}_world", *domain, bv)(*args)
    out = list(regs)
    out[0] = z3.Function(f"{name}_r0", *domain, bv)(*args)
    clobbered = z3.Function("clobbered", bv, bv, bv)
    for r in range(1, 6):
        out[r] = clobbered(world, z3.BitVecVal(r, 64))
    out[WORLD] = world
    return out, z3.Function(f"{name}_memory", *domain, mem_sort)(*args)


def _z3_step(insn: Instruction, regs: Sequence[Any], memory: Any) -> tuple[list[Any], Any, Any]:
    """Registers and memory after ``insn``, and whether it jumps (None: it does not jump): the window's
    Z3 semantics of one instruction, with ``goto`` (which a window never holds) always taken, and a
    helper call's uninterpreted meaning (`_z3_call`)."""
    if insn.kind == Kind.JA:
        import z3

        return list(regs), memory, z3.BoolVal(True)
    if insn.kind == Kind.CALL:
        if not modelled_call(insn):
            raise sem.SemanticsError(f"{insn}: only a helper call that returns has a meaning in a region")
        regs_out, mem_out = _z3_call(insn, regs, memory)
        return regs_out, mem_out, None
    regs_out, mem_out, taken = run_z3_branch([insn], regs[:WORLD], memory)
    return [*regs_out, *regs[WORLD:]], mem_out, taken


def run_region_z3(region: RegionCode, regs: Sequence[Any], memory: Any) -> dict[int, _State]:
    """Per exit label, the condition of leaving there and the registers and memory then (paths merged).
    ``regs`` are r0-r10 and, where the region calls helpers, the world (`WORLD`; a fresh one if not
    given); the registers of each exit have it too."""
    import z3

    if len(regs) <= WORLD:
        regs = [*regs, z3.BitVec("world", 64)]
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
    """Prove the regions equal: the same exit, the same memory and world, and the registers live at that exit
    (``live_at``: label -> bit set; an exit missing there has every register live) equal, from equal
    registers and memory meeting the ``known`` constants and ``widths``; within ``units`` Z3 units.

    For a proof between two programs (`lockstep`): only the registers in ``entry_live`` are equal on
    entry (the candidate's others are its own), and the candidate's registers meet ``known_b`` and
    ``widths_b`` (each program's own must-analysis)."""
    import z3

    regs = [*(z3.BitVec(f"r{i}", 64) for i in range(11)), z3.BitVec("world", 64)]
    regs_b = regs if entry_live is None else [
        regs[r] if entry_live >> r & 1 or r >= 10 else z3.BitVec(f"out_r{r}", 64) for r in range(WORLD + 1)]
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
        differ = z3.Or(ma != mb, ra[WORLD] != rb[WORLD], *(ra[r] != rb[r] for r in range(11) if live >> r & 1))
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
