"""Candidate regions of a function, and their rewrite by jump threading with constant folding.

clang computes a boolean into a register on each side of a diamond (``r7 = 1; if a == X goto +1;
r7 = 0``), combines such booleans (``r0 |= r7``) and then jumps on the result (``if r0 != 1 goto L``):
eight slots for what two jumps do. A straight-line window cannot see this. Here each path through a
region (`regions_of`) is walked with the constants known on it: a constant computation is not
emitted but remembered, a jump the remembered constants decide is followed without being emitted,
and a jump that compares a remembered register compares its value as an immediate; a register still
only remembered when the path leaves the region is set there if the exit reads it. The paths form a
tree of the jumps that remain (`thread`), laid out with each test's simpler side as its jump (straight
to the exit where nothing is left to do). Paths split at a test run the code after its join once each;
where ways with the same continuation end in the same instructions, those are laid out once and the
others jump there (`_share_tail`), so threading pays only where it removes work. The result is a
candidate only: `region.prove_region` decides whether it equals the region, under the region's
liveness per exit and known constants.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from pybpfdsl.bpf import semantics as sem
from pybpfdsl.bpf.elf import ElfProgram
from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.opcode import AluOp, InsnClass, JmpOp, Kind, Source, jmp_op, source
from pybpfdsl.superopt.region import RegionCode, in_region
from pybpfdsl.superopt.windows import functions_of, transfer, transfer_widths
from pybpfdsl.verify.analysis.liveness import call_args, registers_of

__all__ = ["MAX_REGION", "Region", "reads_on_entry", "regions_of", "thread"]

MAX_REGION = 28
"""Instructions in a region at most, cut anywhere: a few diamonds and the jump that reads them."""

MAX_LONG_REGION = 96
"""Instructions in a region at most that starts and ends a basic block."""

_MAX_PATHS = 32

_CLOBBERED = (0, 1, 2, 3, 4, 5)


def _effects(insn: Instruction) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(registers read, registers written) by ``insn``; a helper call writes r0 and clobbers r1-r5."""
    if insn.kind == Kind.CALL:
        return call_args(insn), _CLOBBERED
    return registers_of(insn)


@dataclass(frozen=True)
class Region:
    """A candidate region of ``section``: its code (labels are the section's instruction indices),
    the registers live at each exit, and the constants and widths known on entry (of the registers it
    names)."""

    section: str
    function: str
    start: int
    original: RegionCode
    live_at: tuple[tuple[int, int], ...]
    known: tuple[tuple[int, int], ...]
    widths: tuple[tuple[int, int], ...]


def reads_on_entry(region: RegionCode, live_at: Mapping[int, int]) -> int:
    """The registers some path through the region reads before writing them, in the region or at the exit
    it leaves by (bit set): those whose values on entry matter."""
    targets = region.targets()
    leaving = dict(region.exits)
    need = [0] * (len(region.code) + 1)
    need[len(region.code)] = live_at.get(region.end, 0)
    for i in range(len(region.code) - 1, -1, -1):
        insn = region.code[i]
        reads, writes = _effects(insn)
        after = 0
        if insn.kind != Kind.JA:
            after |= need[i + 1]
        target = targets[i]
        if target is not None:
            after |= need[target]
        elif i in leaving:
            after |= live_at.get(leaving[i], 0)
        need[i] = sum(1 << r for r in set(reads)) | after & ~sum(1 << r for r in set(writes))
    return need[0]


def _read_first(region: RegionCode, live_at: Mapping[int, int]) -> int:
    """The registers the region names that some path reads before writing, in the region or at the exit
    it leaves by (bit set): the only ones whose facts on entry its proof may need (the threading keeps a
    register that already holds its value on the way out); a neighbour's rewrite may change the others'."""
    named = 0
    for insn in region.code:
        reads, writes = _effects(insn)
        named |= sum(1 << r for r in (*reads, *writes))
    return reads_on_entry(region, live_at) & named


def regions_of(prog: ElfProgram, core_slots: Set[int] = frozenset(), max_len: int = MAX_REGION,
               long_len: int = MAX_LONG_REGION) -> list[Region]:
    """Every region of ``prog`` of at most ``max_len`` instructions that holds a jump landing inside it
    (a diamond or a skip), entered only at its first instruction, with forward jumps only; and the longer
    ones, up to ``long_len``, that start a basic block and end one (fewer: each costs a walk)."""
    out: list[Region] = []
    for fn in functions_of(prog, core_slots):
        code, succs, live, lo = fn.code, fn.succs, fn.live, fn.lo
        consts, widths = fn.consts, fn.widths
        preds: list[list[int]] = [[] for _ in code]
        for i, ss in enumerate(succs):
            for t in ss:
                preds[t].append(i)
        usable = [in_region(insn) and i not in fn.patched for i, insn in enumerate(code)]
        jumps = [i for i, insn in enumerate(code) if insn.kind in (Kind.JCOND, Kind.JA)]
        leader = [i == 0 or i in fn.targets or not usable[i - 1] or code[i - 1].kind in (Kind.JCOND, Kind.JA)
                  for i in range(len(code))]
        for s in range(len(code)):
            if not usable[s] or not any(s <= j < s + max_len for j in jumps):
                continue
            nearest = len(code) + 8  # the nearest place a jump of the region goes to
            for e in range(s + 1, min(len(code), s + (long_len if leader[s] else max_len)) + 1):
                i = e - 1
                if not usable[i] or any(p < s or p >= i for p in preds[i] if i != s):
                    break
                insn = code[i]
                if insn.kind in (Kind.JCOND, Kind.JA):
                    target = succs[i][-1] if succs[i] else None
                    if target is None or s <= target <= i:
                        break  # a loop inside (a jump back before the region leaves it: an exit)
                    nearest = min(nearest, target)
                # A jump lands inside or just past: a diamond or a skip.
                if nearest >= e + 8 or e - s < 3 or (e - s > max_len and not (e == len(code) or leader[e])):
                    continue
                region = _region(prog, fn.name, lo, code[s:e], s, succs, live, consts[s], widths[s])
                if region is not None:
                    out.append(region)
    return out


def _region(prog: ElfProgram, function: str, lo: int, code: Sequence[Instruction], s: int,
            succs: list[list[int]], live: list[int], known: Mapping[int, int],
            widths: Mapping[int, int]) -> Region | None:
    e = s + len(code)
    exits: list[tuple[int, int]] = []
    inside = False
    for n, insn in enumerate(code):
        i = s + n
        if insn.kind in (Kind.JCOND, Kind.JA):
            target = succs[i][-1]
            if target > e or target < s:
                exits.append((n, lo + target))
            else:
                inside = True
    if not inside:
        return None
    labels = {t for _, t in exits} | {lo + e}
    live_at = tuple(sorted((t, live[t - lo] if t - lo < len(live) else 0) for t in labels))
    original = RegionCode(tuple(code), tuple(exits), lo + e)
    need = _read_first(original, dict(live_at))
    return Region(prog.section, function, lo + s, original, live_at,
                  tuple(sorted((r, v) for r, v in known.items() if need >> r & 1)),
                  tuple(sorted((r, v) for r, v in widths.items() if need >> r & 1)))


# ------------------------------------------------------------------------------------------- threading

@dataclass(frozen=True)
class _Leaf:
    code: tuple[Instruction, ...]
    label: int


@dataclass(frozen=True)
class _Test:
    code: tuple[Instruction, ...]
    jump: Instruction
    taken: _Leaf | _Test | _Then
    fall: _Leaf | _Test | _Then


@dataclass(frozen=True)
class _Then:
    """``code``, then on to a node other ways reach too (a tail they share, `_share_tail`)."""

    code: tuple[Instruction, ...]
    to: _Leaf | _Test | _Then


_Node = _Leaf | _Test | _Then

_NEGATION = {JmpOp.JEQ: JmpOp.JNE, JmpOp.JNE: JmpOp.JEQ, JmpOp.JGT: JmpOp.JLE, JmpOp.JLE: JmpOp.JGT,
             JmpOp.JGE: JmpOp.JLT, JmpOp.JLT: JmpOp.JGE, JmpOp.JSGT: JmpOp.JSLE, JmpOp.JSLE: JmpOp.JSGT,
             JmpOp.JSGE: JmpOp.JSLT, JmpOp.JSLT: JmpOp.JSGE}
_SWAPPED = {JmpOp.JEQ: JmpOp.JEQ, JmpOp.JNE: JmpOp.JNE, JmpOp.JSET: JmpOp.JSET, JmpOp.JGT: JmpOp.JLT,
            JmpOp.JLT: JmpOp.JGT, JmpOp.JGE: JmpOp.JLE, JmpOp.JLE: JmpOp.JGE, JmpOp.JSGT: JmpOp.JSLT,
            JmpOp.JSLT: JmpOp.JSGT, JmpOp.JSGE: JmpOp.JSLE, JmpOp.JSLE: JmpOp.JSGE}
_JA = Instruction(InsnClass.JMP | JmpOp.JA)
_M64 = (1 << 64) - 1


def _signed32(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


def _set(reg: int, value: int) -> Instruction:
    """``reg = value``: one slot where an immediate holds it, else a 64-bit constant."""
    value &= _M64
    if value < 1 << 31 or value >= _M64 + 1 - (1 << 31):
        return Instruction(InsnClass.ALU64 | AluOp.MOV | Source.K, reg, 0, 0, _signed32(value & 0xFFFFFFFF))
    if value < 1 << 32:
        return Instruction(InsnClass.ALU | AluOp.MOV | Source.K, reg, 0, 0, _signed32(value))
    return Instruction.lddw(reg, value)


def _imm_for(jump: Instruction, value: int) -> int | None:
    """The immediate a jump of ``jump``'s class compares like ``value`` (sign-extended by JMP, the low
    32 bits by JMP32), if there is one."""
    value &= _M64
    if jump.cls == InsnClass.JMP32:
        return _signed32(value & 0xFFFFFFFF)
    if value < 1 << 31 or value >= _M64 + 1 - (1 << 31):
        return _signed32(value & 0xFFFFFFFF)
    return None


_UNSIGNED = {JmpOp.JSGT: JmpOp.JGT, JmpOp.JSGE: JmpOp.JGE, JmpOp.JSLT: JmpOp.JLT, JmpOp.JSLE: JmpOp.JLE}


def _with_imm(insn: Instruction, op: JmpOp, reg: int, value: int, widths: Mapping[int, int]) -> Instruction:
    """``insn`` comparing ``reg`` (with ``op``) against ``value`` as an immediate, where one holds it: the
    jump's own class, or JMP32 where ``reg`` and ``value`` both fit in 32 bits (clang's ``r2 = 0xffffffa5
    ll; if r1 s> r2`` on a zero-extended r1: two non-negative values, so a signed comparison is the
    unsigned one, and the low halves decide it); else ``insn`` as it is."""
    imm = _imm_for(insn, value)
    if imm is not None:
        return Instruction(insn.cls | op | Source.K, reg, 0, insn.off, imm)
    value &= _M64
    if insn.cls == InsnClass.JMP and value < 1 << 32 and widths.get(reg, 64) <= 32:
        return Instruction(InsnClass.JMP32 | _UNSIGNED.get(op, op) | Source.K, reg, 0, insn.off, _signed32(value))
    return insn


def _decided(insn: Instruction, consts: Mapping[int, int]) -> bool | None:
    x = source(insn.opcode) == Source.X
    if insn.dst not in consts or (x and insn.src not in consts):
        return None
    ops = sem.INT_OPS
    src = sem.jump_operand(ops, insn, consts.get(insn.src) if x else None)
    return bool(sem.jump_taken(ops, insn, consts[insn.dst], src))


_Seen = tuple[int, int, int, int, bool]
"""A jump decided on the path: (class and source, op, dst, src or imm, taken)."""


def _fact(insn: Instruction, taken: bool) -> _Seen:
    x = source(insn.opcode) == Source.X
    return insn.opcode & 0x0F, insn.opcode & 0xF0, insn.dst, insn.src if x else insn.imm, taken


def _recalled(insn: Instruction, seen: frozenset[_Seen]) -> bool | None:
    """The way a jump goes where the path already decided the same comparison (or its negation) of
    registers not written since (``if r3 == r7 ...; if r3 != r7``)."""
    op = jmp_op(insn.opcode)
    if op is None:
        return None
    cls_here, _, dst_here, operand_here, _ = _fact(insn, True)
    forms = [(cls_here, op, dst_here, operand_here)]
    if cls_here & Source.X and op in _SWAPPED:  # ``r5 > r1`` is ``r1 < r5``
        forms.append((cls_here, _SWAPPED[op], operand_here, dst_here))
    for cls, o, dst, operand, taken in seen:
        for c, form_op, d, x in forms:
            if (cls, dst, operand) != (c, d, x):
                continue
            if o == form_op:
                return taken
            if form_op in _NEGATION and o == _NEGATION[form_op]:
                return not taken
    return None


def _forget(seen: frozenset[_Seen], writes: Sequence[int]) -> frozenset[_Seen]:
    if not seen or not writes:
        return seen
    return frozenset(f for f in seen if f[2] not in writes and not (f[0] & Source.X and f[3] in writes))


class _TooBig(Exception):
    pass


class _Walk:
    def __init__(self, region: RegionCode, live_at: Mapping[int, int], keep: int = 0) -> None:
        self.keep = keep
        """Registers whose constants are set where the region sets them (not sunk to its exits)."""
        self.code = region.code
        self.targets = region.targets()
        self.leaving = dict(region.exits)
        self.end = region.end
        self.live_at = live_at
        self.paths = 0

    def leave(self, prefix: list[Instruction], label: int, consts: dict[int, int], held: dict[int, int]) -> _Leaf:
        self.paths += 1
        if self.paths > _MAX_PATHS:
            raise _TooBig
        live = self.live_at.get(label, (1 << 11) - 1)
        return _Leaf((*prefix, *(_set(r, consts[r]) for r in _dirty(consts, held) if live >> r & 1)), label)

    def walk(self, pc: int, consts: dict[int, int], held: dict[int, int],
             seen: frozenset[_Seen] = frozenset(), widths: Mapping[int, int] | None = None) -> _Node:
        """The tree of the paths from ``pc``: ``consts`` the values known there, ``held`` those the
        registers really hold (a remembered value not held yet is set where something reads it), ``widths``
        the registers known narrow there (`windows.transfer_widths`)."""
        prefix: list[Instruction] = []
        widths = dict(widths or {})
        consts, held = dict(consts), dict(held)
        while True:
            if pc == len(self.code):
                return self.leave(prefix, self.end, consts, held)
            insn = self.code[pc]
            if insn.kind == Kind.JA:
                if pc in self.leaving:
                    return self.leave(prefix, self.leaving[pc], consts, held)
                target = self.targets[pc]
                assert target is not None
                pc = target
                continue
            if insn.kind == Kind.JCOND:
                decided = _decided(insn, consts)
                if decided is None:
                    decided = _recalled(insn, seen)
                if decided is None:
                    return self.test(prefix, pc, consts, held, seen, widths)
                if not decided:
                    pc += 1
                    continue
                if pc in self.leaving:
                    return self.leave(prefix, self.leaving[pc], consts, held)
                target = self.targets[pc]
                assert target is not None
                pc = target
                continue
            after = transfer(insn, consts)
            reads, writes = _effects(insn)
            if not (insn.kind not in (Kind.ST, Kind.STX, Kind.LDX, Kind.LDX_SX) and insn.dst in after
                    and insn.dst in writes and not self.keep >> insn.dst & 1):
                for r in sorted(set(reads) & set(_dirty(consts, held))):
                    prefix.append(_set(r, consts[r]))
                    held[r] = consts[r]
                prefix.append(insn)
                for r in writes:
                    if r in after:
                        held[r] = after[r]
                    else:
                        held.pop(r, None)
            consts = after  # a constant result is remembered, not emitted
            widths = transfer_widths(insn, widths)
            seen = _forget(seen, writes)
            pc += 1

    def test(self, prefix: list[Instruction], pc: int, consts: dict[int, int], held: dict[int, int],
             seen: frozenset[_Seen], widths: Mapping[int, int]) -> _Node:
        insn = self.code[pc]
        op = jmp_op(insn.opcode)
        assert op is not None
        jump = insn
        dirty = _dirty(consts, held)
        if source(insn.opcode) == Source.X:
            if insn.src in consts and insn.src != 10:  # compare with the value as an immediate
                jump = _with_imm(insn, op, insn.dst, consts[insn.src], widths)
            elif insn.dst in dirty and insn.src != 10 and op in _SWAPPED:
                jump = _with_imm(insn, _SWAPPED[op], insn.src, consts[insn.dst], widths)
        prefix = list(prefix)
        held = dict(held)
        for r in sorted(set(registers_of(jump)[0]) & set(dirty)):
            prefix.append(_set(r, consts[r]))
            held[r] = consts[r]
        sides = [(dict(consts), dict(held)), (dict(consts), dict(held))]  # taken, fallthrough
        if jump.cls == InsnClass.JMP and source(jump.opcode) == Source.K and op in (JmpOp.JEQ, JmpOp.JNE) \
                and jmp_op(jump.opcode) == op:
            # What the jump tells: on the way where the register equals the immediate, it holds it.
            known, holds = sides[0 if op == JmpOp.JEQ else 1]
            known[jump.dst] = holds[jump.dst] = jump.imm & _M64
        if pc in self.leaving:
            taken: _Node = self.leave([], self.leaving[pc], *sides[0])
        else:
            target = self.targets[pc]
            assert target is not None
            taken = self.walk(target, *sides[0], seen | {_fact(insn, True)}, widths)
        fall = self.walk(pc + 1, *sides[1], seen | {_fact(insn, False)}, widths)
        return _Test(tuple(prefix), jump, taken, fall)


def _dirty(consts: Mapping[int, int], held: Mapping[int, int]) -> list[int]:
    """The registers whose known value they do not hold (computed, not set yet)."""
    return sorted(r for r, v in consts.items() if held.get(r) != v)


def _hoisted(node: _Node) -> _Node:
    """The tree with the instructions both sides of a test do first (or could do first) done once before
    it, where they do not write what the test reads (clang's ``r3 = r0`` on every way out of a diamond)."""
    if not isinstance(node, _Test):
        return node
    taken, fall = _hoisted(node.taken), _hoisted(node.fall)
    code = list(node.code)
    reads = set(registers_of(node.jump)[0])
    while True:
        # The first instruction of the taken side that both sides hold and could do first (clang's
        # ``r6 -= r7`` on both arms of a null check, after other work on each).
        for i, insn in enumerate(taken.code):
            if set(_effects(insn)[1]) & reads or not _to_front(taken.code, i):
                continue
            j = next((j for j, other in enumerate(fall.code) if other == insn and _to_front(fall.code, j)), None)
            if j is not None:
                code.append(insn)
                taken = _with_code(taken, taken.code[:i] + taken.code[i + 1:])
                fall = _with_code(fall, fall.code[:j] + fall.code[j + 1:])
                break
        else:
            return _Test(tuple(code), node.jump, taken, fall)


_REGISTERS_ONLY = (Kind.ALU, Kind.MOV, Kind.NEG, Kind.END, Kind.BSWAP, Kind.MOVSX, Kind.LDDW)


def _to_front(code: Sequence[Instruction], k: int) -> bool:
    """Whether ``code[k]`` may be done before ``code[:k]``: the first instruction, or one that touches only
    registers (no memory) none of those read or write, reading none they write."""
    if k == 0:
        return True
    if code[k].kind not in _REGISTERS_ONLY:
        return False
    reads, writes = (set(rs) for rs in _effects(code[k]))
    for insn in code[:k]:
        their_reads, their_writes = (set(rs) for rs in _effects(insn))
        if reads & their_writes or writes & (their_reads | their_writes):
            return False
    return True


def _with_code(node: _Node, code: tuple[Instruction, ...]) -> _Node:
    if isinstance(node, _Leaf):
        return _Leaf(code, node.label)
    if isinstance(node, _Then):
        return _Then(code, node.to)
    return _Test(code, node.jump, node.taken, node.fall)


def _empty(node: _Node) -> bool:
    return isinstance(node, _Leaf) and not node.code


# ------------------------------------------------------------------------------------------- shared tails

def _successors(node: _Node) -> tuple[_Node, ...]:
    if isinstance(node, _Test):
        return node.fall, node.taken
    if isinstance(node, _Then):
        return (node.to,)
    return ()


def _nodes(root: _Node) -> list[_Node]:
    """The distinct nodes of the tree (equal subtrees once), parents first, in a fixed order."""
    seen: dict[_Node, None] = {}

    def visit(node: _Node) -> None:
        if node not in seen:
            seen[node] = None
            for child in _successors(node):
                visit(child)

    visit(root)
    return list(seen)


def _continuation(node: _Node) -> tuple[object, ...]:
    """What a node does after its code: two nodes with the same continuation and the same last instructions
    may share those (`_share_tail`)."""
    if isinstance(node, _Leaf):
        return ("exit", node.label)
    if isinstance(node, _Then):
        return ("then", node.to)
    return ("test", node.jump, node.taken, node.fall)


def _common_suffix(a: Sequence[Instruction], b: Sequence[Instruction]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _tail_candidates(root: _Node) -> list[tuple[int, tuple[Instruction, ...], list[_Node]]]:
    """(estimated slots saved, suffix, nodes ending in it) for every instruction suffix that nodes of the
    same continuation share, the most promising first. Paths the threading split run the same code
    again after their decided jumps (a map's lookup on each way): once is enough."""
    groups: dict[tuple[object, ...], list[_Node]] = {}
    for node in _nodes(root):
        if node.code:
            groups.setdefault(_continuation(node), []).append(node)
    found: dict[tuple[Instruction, ...], tuple[int, tuple[Instruction, ...], list[_Node]]] = {}
    for members in groups.values():
        for a, b in itertools.combinations(members, 2):
            n = _common_suffix(a.code, b.code)
            if not n:
                continue
            suffix = a.code[-n:]
            sharing = [m for m in members if m.code[-n:] == suffix]
            # Each node keeping a prefix jumps to the shared tail (one of them may fall into it).
            gain = (len(sharing) - 1) * sum(i.slots for i in suffix) - sum(len(m.code) > n for m in sharing) + 1
            if gain > 0 and (suffix not in found or found[suffix][0] < gain):
                found[suffix] = (gain, suffix, sharing)
    return sorted(found.values(), key=lambda f: (-f[0], len(f[1])))


def _share_tail(root: _Node, suffix: tuple[Instruction, ...], sharing: Sequence[_Node]) -> _Node:
    """The tree with ``suffix`` of the ``sharing`` nodes (one continuation) made once, each of them
    going on to it after the rest of its code."""
    shared = _with_code(sharing[0], suffix)
    replace: dict[_Node, _Node] = {
        m: shared if len(m.code) == len(suffix) else _Then(m.code[:len(m.code) - len(suffix)], shared) for m in sharing}
    done: dict[_Node, _Node] = {}

    def rebuilt(node: _Node) -> _Node:
        if node in replace:
            return replace[node]
        if node in done:
            return done[node]
        out: _Node = node
        if isinstance(node, _Test):
            out = _Test(node.code, node.jump, rebuilt(node.taken), rebuilt(node.fall))
        elif isinstance(node, _Then):
            out = _Then(node.code, rebuilt(node.to))
        done[node] = out
        return out

    return rebuilt(root)


def _with_tails_shared(root: _Node, end: int) -> RegionCode:
    """The cheapest layout found by sharing tails one at a time (`_share_tail`), each kept only where the
    laid-out code is smaller."""
    best = _layout(root, end)
    improved = True
    while improved:
        improved = False
        for _, suffix, sharing in _tail_candidates(root):
            candidate = _share_tail(root, suffix, sharing)
            code = _layout(candidate, end)
            if _slots(code) < _slots(best):
                root, best, improved = candidate, code, True
                break
    return best


def _slots(code: RegionCode) -> int:
    return sum(i.slots for i in code.code)


# ------------------------------------------------------------------------------------------- layout

def _layout(root: _Node, end: int) -> RegionCode:
    """The tree (a DAG where tails are shared) as code: each test's fallthrough next, its taken side later
    (or its exit directly when nothing is left to do there); a test whose two sides are the same is
    dropped; a node reached from several places is placed once, after all of them (jumps go forward)."""
    nodes = _nodes(root)
    waiting: dict[_Node, int] = dict.fromkeys(nodes, 0)  # references from nodes not placed yet
    for node in nodes:
        for child in set(_successors(node)):
            waiting[child] += 1
    out: list[Instruction] = []
    refs: list[tuple[str, int] | None] = []  # ("label", exit) or ("block", id)
    ids = {node: n for n, node in enumerate(nodes)}
    block_at: dict[int, int] = {}
    ready: list[_Node] = [root]

    def reach(node: _Node) -> bool:
        """One reference to ``node`` placed: whether every one is (it may be placed now)."""
        waiting[node] -= 1
        return waiting[node] == 0

    def place(node: _Node) -> None:
        while True:
            block_at[ids[node]] = len(out)
            out.extend(node.code)
            refs.extend([None] * len(node.code))
            if isinstance(node, _Leaf):
                out.append(_JA)
                refs.append(("label", node.label))
                return
            if isinstance(node, _Then):
                nxt: _Node = node.to
            else:
                jump, taken, fall = node.jump, node.taken, node.fall
                if taken == fall:
                    nxt = fall
                else:
                    op = jmp_op(jump.opcode)
                    # The simpler side becomes the jump: an exit with nothing to do, else the one not at the end.
                    swap = (_empty(fall) and not _empty(taken)) or (
                        _empty(fall) and isinstance(taken, _Leaf) and not taken.code and taken.label == end)
                    if swap and op in _NEGATION:
                        jump = Instruction((jump.opcode & ~0xF0) | _NEGATION[op], jump.dst, jump.src, jump.off,
                                           jump.imm)
                        taken, fall = fall, taken
                    out.append(jump)
                    if _empty(taken):
                        assert isinstance(taken, _Leaf)
                        refs.append(("label", taken.label))
                        reach(taken)
                    else:
                        refs.append(("block", ids[taken]))
                        if reach(taken):
                            ready.append(taken)
                    nxt = fall
            if _empty(nxt):
                assert isinstance(nxt, _Leaf)
                reach(nxt)
                out.append(_JA)
                refs.append(("label", nxt.label))
                return
            if not reach(nxt):  # another way still leads here: placed after it, jumped to from here
                out.append(_JA)
                refs.append(("block", ids[nxt]))
                return
            node = nxt

    while ready:
        place(ready.pop(0))
    # Unconditional jumps to the next instruction go (the last one's to the region's end, too).
    keep = []
    for p, (insn, ref) in enumerate(zip(out, refs, strict=True)):
        redundant = insn.kind == Kind.JA and ref is not None and (
            (ref[0] == "block" and block_at[ref[1]] == p + 1) or (ref == ("label", end) and p == len(out) - 1))
        if not redundant:
            keep.append(p)
    new_index = {p: n for n, p in enumerate(keep)}
    code = [out[p] for p in keep]
    slots = slot_offsets(code)
    total = sum(i.slots for i in code)
    final: list[Instruction] = []
    exits: list[tuple[int, int]] = []
    for n, p in enumerate(keep):
        insn, ref = out[p], refs[p]
        if ref is None:
            final.append(insn)
        elif ref[0] == "label":
            exits.append((n, ref[1]))
            final.append(Instruction(insn.opcode, insn.dst, insn.src, 0, insn.imm))
        else:
            to = block_at[ref[1]]
            # A block's first instruction may have been a dropped jump: it lands on the next kept one.
            while to < len(out) and to not in new_index:
                to += 1
            there = slots[new_index[to]] if to < len(out) else total
            final.append(Instruction(insn.opcode, insn.dst, insn.src, there - slots[n] - insn.slots, insn.imm))
    return RegionCode(tuple(final), tuple(exits), end)


def thread(region: Region) -> RegionCode | None:
    """The region with every path's constants folded and the jumps they decide gone (None when its
    paths are too many)."""
    # Two ways with registers live at an exit: their constants sunk to the exits that read them (one
    # move per way out), or set where the region sets them (clang's ``r0 = 1`` before the tests, when
    # most ways out want it); the cheaper.
    live = 0
    for _, bits in region.live_at:
        live |= bits
    best: RegionCode | None = None
    for keep in dict.fromkeys((0, live)):
        try:
            walker = _Walk(region.original, dict(region.live_at), keep)
            root = walker.walk(0, dict(region.known), dict(region.known), widths=dict(region.widths))
        except (_TooBig, sem.SemanticsError):
            continue
        code = _with_tails_shared(_hoisted(root), region.original.end)
        if best is None or sum(i.slots for i in code.code) < sum(i.slots for i in best.code):
            best = code
    return best
