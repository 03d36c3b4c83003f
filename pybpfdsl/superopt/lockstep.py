"""A whole-object proof that an optimised object equals its input, step for step (translation validation).

The superoptimizer's windows change only straight-line code and the operands of conditional jumps; they never
add, remove or move a call, an exit, a jump or a jump target. Its region pass does change jumps, inside
regions it names (`RegionHints`): each such region is one segment of each program, proven by
`region.prove_region` (its exits lined up in order). Outside them the two programs can be cut at the same
points: every instruction outside a window (calls, exits, jumps, loader-patched and atomic instructions, which
must be the same instruction in both) and every jump target. Between two cuts lies one straight segment in
each (the conditional jump that ends it included). The relation "the registers live here (in the input) are
equal, memory is equal, and each program's registers hold the constants (fit the widths, and equal the other
registers) a must-analysis of that program finds here" holds at the entry of every function; if each pair of
segments keeps it (a Z3 proof, the registers the input leaves dead being free in the output), and each pair of
fixed instructions keeps it (the same instruction on equal inputs; helpers are the same calls on the same
arguments and memory), it holds at every cut, so every exit returns the same r0 with the same memory: the
programs are equal, in lock step. A proof of the whole object that does not explore paths, so it decides
objects the path-exploring prover runs out of budget on.

It trusts the liveness (`windows.live_in`: a helper reads its arguments up to its arity) and the
constants, widths and equalities known on entry to a segment (`windows.known_constants`, `known_widths`,
`known_equal`, of each program on its own: the search's window proofs assume the input's, e.g. ``r0 = 1``
dropped where r0 already holds 1, or ``r4 &= 0xffff`` where every path loaded r4 with 2 bytes, and the
copies pass drops ``r3 = r0`` where r3 already equals r0). Anything it cannot line up
(another call graph, a jump to another place, a moved target), and any segment pair that differs under
the relation, is "unknown", never "proven". The input's liveness is the relation's, so the proof is
meant for one pass of the optimiser (input against that pass's output), chained pass by pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pybpfdsl.bpf.elf import BpfElf, ElfProgram
from pybpfdsl.bpf.instruction import Instruction, Relocation, RelocKind, slot_offsets
from pybpfdsl.bpf.opcode import Kind
from pybpfdsl.bpf.semantics import SemanticsError
from pybpfdsl.superopt.region import RegionCode, modelled_call, prove_region
from pybpfdsl.superopt.window_check import branch_live, live_on
from pybpfdsl.superopt.window_semantics import candidate_atomic, in_window, is_branch, run_z3_branch
from pybpfdsl.superopt.windows import (
    core_relocated_slots,
    known_constants,
    known_equal,
    known_widths,
    live_in,
    succs_of,
)

__all__ = ["LOCKSTEP_UNITS", "LockstepVerdict", "RegionHints", "prove_lockstep"]

LOCKSTEP_UNITS = 20_000_000
"""Z3 resource units for each pair of segments that differ."""

_DATA_PREFIXES = (".data", ".rodata", ".bss", "maps", ".maps", "license", ".BTF")


@dataclass(frozen=True)
class LockstepVerdict:
    """``proven`` or ``unknown`` (with the reason). Never "different": a pair of segments that differs
    under the relation may still belong to equal programs (the relation asks for every register the
    input may read later, and the output may read fewer)."""

    status: str
    reason: str = ""
    segments: int = 0
    """Pairs of segments that differ, each proven (for "proven")."""

    @property
    def proven(self) -> bool:
        return self.status == "proven"


class _Unaligned(Exception):
    """The two programs cannot be cut at the same points."""


def _code_sections(elf: BpfElf) -> dict[str, ElfProgram]:
    out = dict(elf.programs)
    if elf.text is not None and elf.text.instructions:
        out[".text"] = elf.text
    return out


RegionHints = Mapping[str, Sequence[tuple[int, int, int]]]
"""Per section, the regions an optimiser pass replaced: (start in the input, instructions there, instructions
of the replacement), of a pass that made only such edits (so the output's start follows from the ones before)."""


def prove_lockstep(before: bytes, after: bytes, units: int = LOCKSTEP_UNITS,
                   regions: RegionHints | None = None) -> LockstepVerdict:
    """Prove ``after`` equal to ``before`` program by program, segment by segment; each of ``regions``
    (a region's rewrite changes jumps, which no cut can line up) as one segment of each, proven by
    `region.prove_region`."""
    a, b = BpfElf.from_bytes(before), BpfElf.from_bytes(after)
    for name in {*a.section_names, *b.section_names}:
        if name.startswith(_DATA_PREFIXES) and not name.startswith(".BTF.ext") \
                and a.section_data(name) != b.section_data(name):
            return LockstepVerdict("unknown", f"section {name} differs")
    code_a, code_b = _code_sections(a), _code_sections(b)
    if set(code_a) != set(code_b):
        return LockstepVerdict("unknown", "the objects have different code sections")
    core_a, core_b = core_relocated_slots(a), core_relocated_slots(b)
    proven = 0
    for sec, prog_a in code_a.items():
        prog_b = code_b[sec]
        if prog_a.instructions == prog_b.instructions:
            continue
        pairs: list[tuple[int, int, int, int]] = []
        shift = 0
        for start, n_a, n_b in sorted((regions or {}).get(sec, ())):
            pairs.append((start, start + n_a, start - shift, start - shift + n_b))
            shift += n_a - n_b
        try:
            funcs = _function_pairs(prog_a, prog_b)
            for (lo_a, hi_a), (lo_b, hi_b) in funcs:
                mine = [(sa - lo_a, ea - lo_a, sb - lo_b, eb - lo_b) for sa, ea, sb, eb in pairs if lo_a <= sa < hi_a]
                proven += _prove_function(prog_a, prog_b, (lo_a, hi_a), (lo_b, hi_b),
                                          (core_a.get(sec, set()), core_b.get(sec, set())), units, mine)
        except _Unaligned as exc:
            return LockstepVerdict("unknown", f"{sec}: {exc}")
        except _Refuted as exc:
            return LockstepVerdict("unknown", f"{sec}: {exc}")
    return LockstepVerdict("proven", segments=proven)


class _Refuted(Exception):
    pass


def _function_pairs(a: ElfProgram, b: ElfProgram) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    def bounds(p: ElfProgram) -> list[tuple[str, int, int]]:
        fs = sorted(p.functions, key=lambda f: f.insn_index)
        starts = [(f.name, f.insn_index) for f in fs] or [(p.name, 0)]
        if starts[0][1] != 0:
            starts = [("", 0), *starts]
        ends = [s for _, s in starts[1:]] + [len(p.instructions)]
        return [(n, s, e) for (n, s), e in zip(starts, ends, strict=True)]

    fa, fb = bounds(a), bounds(b)
    if [n for n, _, _ in fa] != [n for n, _, _ in fb]:
        raise _Unaligned("the functions differ")
    return [((sa, ea), (sb, eb)) for (_, sa, ea), (_, sb, eb) in zip(fa, fb, strict=True)]


def _target(code: Sequence[Instruction], starts: Sequence[int], i: int) -> int | None:
    """The index a jump at ``i`` goes to (``len(code)`` for the end), None if not an instruction."""
    insn = code[i]
    if insn.jump_offset is None or insn.kind == Kind.CALL:
        return None
    slot = starts[i] + insn.slots + insn.jump_offset
    ends = {s: n for n, s in enumerate(starts)}
    ends[starts[-1] + code[-1].slots if code else 0] = len(code)
    if slot not in ends:
        raise _Unaligned(f"instruction {i} jumps into the middle of an instruction")
    return ends[slot]


def _fixed(code: Sequence[Instruction], patched: set[int]) -> list[int]:
    """Instructions outside every window: the cut points each program must share. An atomic add is inside a
    segment (its meaning is the load, add and store it stands for): the search writes one where the input
    loaded, added and stored, so the output has it where the input has none."""
    return [i for i, insn in enumerate(code) if not (in_window(insn) or candidate_atomic(insn)) or i in patched]


def _same_fixed(x: Instruction, y: Instruction) -> bool:
    if x.kind != y.kind:
        return False
    if is_branch(x):
        return True  # compared by the segment proof; its target by the alignment
    if x.kind == Kind.CALL or x.jump_offset is not None:
        # Pseudo calls and jumps: distances move with the code (the callee and target are checked apart).
        same = (x.opcode, x.dst, x.src) == (y.opcode, y.dst, y.src)
        return same and (x.is_pseudo_call or x.kind != Kind.CALL or x.imm == y.imm)
    return x == y


def _prove_function(pa: ElfProgram, pb: ElfProgram, ra: tuple[int, int], rb: tuple[int, int],
                    core: tuple[set[int], set[int]], units: int,
                    regions: Sequence[tuple[int, int, int, int]] = ()) -> int:
    code_a, code_b = pa.instructions[ra[0]:ra[1]], pb.instructions[rb[0]:rb[1]]
    starts_a, starts_b = slot_offsets(pa.instructions), slot_offsets(pb.instructions)
    patched_a = {r.insn_index - ra[0] for r in pa.relocations if ra[0] <= r.insn_index < ra[1]} \
        | {i - ra[0] for i in range(*ra) if starts_a[i] in core[0]}
    patched_b = {r.insn_index - rb[0] for r in pb.relocations if rb[0] <= r.insn_index < rb[1]} \
        | {i - rb[0] for i in range(*rb) if starts_b[i] in core[1]}
    inside_a = {i for sa, ea, _, _ in regions for i in range(sa, ea)}
    inside_b = {i for _, _, sb, eb in regions for i in range(sb, eb)}
    fixed_a = [i for i in _fixed(code_a, patched_a) if i not in inside_a]
    fixed_b = [i for i in _fixed(code_b, patched_b) if i not in inside_b]
    if len(fixed_a) != len(fixed_b):
        raise _Unaligned("the programs have different calls, jumps or exits")
    local_a, local_b = slot_offsets(code_a), slot_offsets(code_b)
    # Cut points: (i, 0) is the boundary just before instruction i, (i, 1) a fixed instruction itself. A
    # segment the search emptied leaves two boundaries of the input on one place of the output: (t, 0)
    # and (f, 0) may meet, so boundaries and fixed instructions are told apart.
    cut: dict[tuple[int, int], tuple[int, int]] = {}

    def pair(x: tuple[int, int], y: tuple[int, int]) -> None:
        if cut.setdefault(x, y) != y:
            raise _Unaligned(f"input instruction {ra[0] + x[0]} lines up with two output places")

    reloc_a = {r.insn_index - ra[0]: r for r in pa.relocations}
    reloc_b = {r.insn_index - rb[0]: r for r in pb.relocations}
    targets_a: set[int] = set()
    for i, j in zip(fixed_a, fixed_b, strict=True):
        x, y = code_a[i], code_b[j]
        if not _same_fixed(x, y) or (i in patched_a) != (j in patched_b):
            raise _Unaligned(f"input instruction {ra[0] + i} ({x}) against output {rb[0] + j} ({y})")
        rx, ry = reloc_a.get(i), reloc_b.get(j)
        if (rx is None) != (ry is None) or (rx is not None and ry is not None and _reloc_key(rx) != _reloc_key(ry)):
            raise _Unaligned(f"input instruction {ra[0] + i} and output {rb[0] + j} are relocated differently")
        if x.is_pseudo_call and rx is None:
            ta = _callee(pa, ra[0] + i, starts_a)
            tb = _callee(pb, rb[0] + j, starts_b)
            if ta != tb or ta is None:
                raise _Unaligned(f"input instruction {ra[0] + i} calls another function than output {rb[0] + j}")
        pair((i, 0), (j, 0))
        pair((i, 1), (j, 1))
        ta_, tb_ = _target(code_a, local_a, i), _target(code_b, local_b, j)
        if (ta_ is None) != (tb_ is None):
            raise _Unaligned(f"input instruction {ra[0] + i}: one jump against none")
        if ta_ is not None and tb_ is not None:
            pair((ta_, 0), (tb_, 0))
            targets_a.add(ta_)
    pair((0, 0), (0, 0))
    pair((len(code_a), 0), (len(code_b), 0))
    region_at: dict[int, tuple[RegionCode, RegionCode, int]] = {}
    for sa, ea, sb, eb in regions:
        if sa in patched_a or any(i in patched_a for i in range(sa, ea)) or any(i in patched_b for i in range(sb, eb)):
            raise _Unaligned(f"region at {ra[0] + sa}: a loader-patched instruction inside")
        exits_a = _region_exits(code_a, local_a, sa, ea)
        exits_b = _region_exits(code_b, local_b, sb, eb)
        # A place outside every region is, in the output, where the regions before it moved it (the pass
        # made only these edits). The output may leave for fewer of them (a way out no path takes any
        # more: its region proof shows the input never takes it either), never for another place.
        as_a = {_placed(t, regions): t for _, t in exits_a}
        if any(t not in as_a for _, t in exits_b):
            raise _Unaligned(f"region at {ra[0] + sa}: an exit to a place the input's region does not leave for")
        for xb, xa in as_a.items():
            pair((xa, 0), (xb, 0))
            targets_a.add(xa)
        pair((sa, 0), (sb, 0))
        pair((ea, 0), (eb, 0))
        region_at[sa] = (RegionCode(tuple(code_a[sa:ea]), tuple(exits_a), ea),
                         RegionCode(tuple(code_b[sb:eb]), tuple((n, as_a[t]) for n, t in exits_b), ea), sb)
    points = sorted(cut)
    for u, v in itertools.pairwise(points):
        # In order; two boundaries meet only where the output emptied the segment between them.
        if cut[u] > cut[v] or (cut[u] == cut[v] and (u[1], v[1]) != (0, 0)):
            raise _Unaligned("the cut points are not in the same order")
    succs, _ = succs_of(code_a)
    live = live_in(code_a, succs)
    consts = known_constants(code_a, succs, patched_a)
    consts_b = known_constants(code_b, succs_of(code_b)[0], patched_b)
    widths_a = known_widths(code_a, succs, patched_a)
    widths_b = known_widths(code_b, succs_of(code_b)[0], patched_b)
    equal_a = known_equal(code_a, succs, patched_a)
    equal_b = known_equal(code_b, succs_of(code_b)[0], patched_b)
    every = (1 << 11) - 1

    def branch_post(f: int) -> int:
        target = _target(code_a, local_a, f)
        assert target is not None
        return branch_live(live[f + 1] if f + 1 < len(code_a) else 0, live[target] if target < len(code_a) else 0)

    def prove(seg_a: list[Instruction], seg_b: list[Instruction], lo_a: int, lo_b: int, post: int) -> int:
        if seg_a == seg_b:
            return 0
        pre = live[lo_a] if lo_a < len(code_a) else post & every
        known = (consts[lo_a] if lo_a < len(code_a) else {}, consts_b[lo_b] if lo_b < len(code_b) else {})
        widths = (widths_a[lo_a] if lo_a < len(code_a) else {}, widths_b[lo_b] if lo_b < len(code_b) else {})
        equal = (equal_a[lo_a] if lo_a < len(code_a) else {}, equal_b[lo_b] if lo_b < len(code_b) else {})
        _prove_segment(seg_a, seg_b, pre, post, known, units, ra[0] + lo_a, widths, equal)
        return 1

    proven = 0
    for here, there in itertools.pairwise(points):
        if here[1] == 0 and here[0] in region_at:
            region_a, region_b, sb = region_at[here[0]]
            if there != (region_a.end, 0):
                raise _Unaligned(f"region at {ra[0] + here[0]}: a cut inside it")
            labels = {t for _, t in region_a.exits} | {region_a.end}
            live_at = {t: live[t] if t < len(code_a) else every for t in labels}
            verdict = prove_region(region_a, region_b, live_at, units, consts[here[0]], widths_a[here[0]],
                                   live[here[0]], consts_b[sb], widths_b[sb])
            if verdict.status == "different":
                raise _Refuted(f"the region at input instruction {ra[0] + here[0]} differs under the relation")
            if not verdict.proven:
                raise _Unaligned(f"region at {ra[0] + here[0]}: {verdict.reason}")
            proven += 1
            continue
        if here[1] == 0 and there == (here[0], 1):  # a fixed instruction itself
            f, g = here[0], cut[here][0]
            if is_branch(code_a[f]) and f in targets_a:  # jumped to: proven alone (not with what precedes it)
                proven += prove([_no_offset(code_a[f])], [_no_offset(code_b[g])], f, g, branch_post(f))
            continue
        lo_a, lo_b = here[0] + here[1], cut[here][0] + cut[here][1]
        hi_a, hi_b = there[0], cut[there][0]
        seg_a, seg_b = list(code_a[lo_a:hi_a]), list(code_b[lo_b:hi_b])
        if there[1] == 0 and (hi_a, 1) in cut and is_branch(code_a[hi_a]) and hi_a not in targets_a:
            seg_a.append(_no_offset(code_a[hi_a]))
            seg_b.append(_no_offset(code_b[hi_b]))
            post = branch_post(hi_a)
        else:
            post = live[hi_a] if hi_a < len(code_a) else every
        proven += prove(seg_a, seg_b, lo_a, lo_b, post)
    return proven


def _placed(t: int, regions: Sequence[tuple[int, int, int, int]]) -> int:
    """Where input instruction ``t`` (outside every region) is in the output: moved by the regions before it."""
    return t - sum((ea - sa) - (eb - sb) for sa, ea, sb, eb in regions if ea <= t)


def _region_exits(code: Sequence[Instruction], starts: Sequence[int], lo: int, hi: int) -> list[tuple[int, int]]:
    """(position in the region, target) of each jump of ``code[lo:hi]`` that leaves it; every other
    jump must go forward inside it (or to its end)."""
    out = []
    for i in range(lo, hi):
        t = _target(code, starts, i)
        if t is None or code[i].kind not in (Kind.JA, Kind.JCOND):
            # A helper call is part of the region's meaning (`region.modelled_call`); any other call is not.
            if t is not None or code[i].kind == Kind.EXIT or (code[i].kind == Kind.CALL and not modelled_call(code[i])):
                raise _Unaligned(f"instruction {i}: an exit, a call other than a helper's, or another jump in a region")
            continue
        if lo < t <= hi and t > i:
            continue
        if lo <= t < hi:
            raise _Unaligned(f"instruction {i}: a jump backward inside a region")
        out.append((i - lo, t))
    return out


def _reloc_key(r: Relocation) -> tuple[object, ...]:
    if r.kind in (RelocKind.CALL, RelocKind.FUNC):
        if r.symbol == r.section:
            raise _Unaligned(f"a reference into {r.section} that starts no function")
        return r.symbol, r.kind, r.section  # the callee by name: code offsets move
    return r.symbol, r.kind, r.section, r.offset


def _no_offset(insn: Instruction) -> Instruction:
    return Instruction(insn.opcode, insn.dst, insn.src, 0, insn.imm, insn.imm_hi, insn.is_wide)


def _callee(prog: ElfProgram, i: int, starts: Sequence[int]) -> str | None:
    slot = starts[i] + 1 + prog.instructions[i].imm
    return next((f.name for f in prog.functions if f.slot == slot), None)


def _prove_segment(seg_a: list[Instruction], seg_b: list[Instruction], pre: int, post: int,
                   known: tuple[dict[int, int], dict[int, int]], units: int, at: int,
                   widths: tuple[dict[int, int], dict[int, int]] = ({}, {}),
                   equal: tuple[dict[int, int], dict[int, int]] = ({}, {})) -> None:
    import z3

    regs_a = [z3.BitVec(f"r{r}", 64) for r in range(11)]
    # Registers dead on entry (in the input) may hold anything in the output: its own variables.
    regs_b = [regs_a[r] if pre >> r & 1 or r == 10 else z3.BitVec(f"out_r{r}", 64) for r in range(11)]
    mem = z3.Array("mem", z3.BitVecSort(64), z3.BitVecSort(8))
    try:
        out_a, mem_a, jump_a = run_z3_branch(seg_a, regs_a, mem)
        out_b, mem_b, jump_b = run_z3_branch(seg_b, regs_b, mem)
    except SemanticsError as exc:
        raise _Unaligned(f"segment at {at}: {exc}") from exc

    def differ(live: int) -> Any:
        return z3.Or(False, *(out_a[r] != out_b[r] for r in range(11) if live >> r & 1))

    if (jump_a is None) != (jump_b is None):
        raise _Unaligned(f"segment at {at}: one ends in a jump, the other not")
    if jump_a is None:
        bad = [differ(live_on(post, None))]
    else:
        bad = [z3.Xor(jump_a, jump_b), z3.And(jump_a, differ(live_on(post, True))),
               z3.And(z3.Not(jump_a), differ(live_on(post, False)))]
    solver = z3.Solver()
    solver.set("rlimit", units)
    solver.add(z3.Or(*bad, mem_a != mem_b))
    for regs, facts, bits in ((regs_a, known[0], widths[0]), (regs_b, known[1], widths[1])):
        for r, v in facts.items():
            solver.add(regs[r] == v)
        for r, w in bits.items():
            solver.add(z3.LShR(regs[r], w) == 0)
    for regs, same in ((regs_a, equal[0]), (regs_b, equal[1])):
        for r, others in same.items():
            solver.add(*(regs[r] == regs[o] for o in range(11) if others >> o & 1 and o > r))
    answer = solver.check()
    if answer == z3.sat:
        raise _Refuted(f"the segment at input instruction {at} differs under the relation")
    if answer != z3.unsat:
        raise _Unaligned(f"segment at {at}: Z3 gave up within {units:,} units")

