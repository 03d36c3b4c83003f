"""Where the search may work: straight-line runs of a function's code, and what is live after each.

A run is cut at every jump target (so a window lies in one basic block and only its first instruction
can be jumped to), at jumps, calls and exits, and at any instruction a loader patches (a relocation, a
CO-RE record) or whose meaning the window model lacks (atomics, legacy packet loads). A conditional
jump ends the run it closes (a branch run): its liveness is that of each way out (`branch_live`), so
a window ending there may drop what only one successor reads, or compare with an immediate instead of a
register set just for the jump. Liveness is per function: a subprogram's exit reads r0 only, a call
clobbers r0-r5 and reads r1 up to its helper's arity (the kernel checks no more; a subprogram, kfunc or
variadic helper reads r1-r5).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass
from functools import cached_property

from pybpfdsl.bpf.elf import BpfElf, ElfProgram
from pybpfdsl.bpf.instruction import Instruction, slot_offsets
from pybpfdsl.bpf.opcode import AluOp, InsnClass, Kind, PseudoSrc, Source, alu_op, size, source
from pybpfdsl.bpf.semantics import SemanticsError
from pybpfdsl.superopt.window_check import branch_live
from pybpfdsl.superopt.window_semantics import ConcreteMemory, in_window, is_branch, run_concrete
from pybpfdsl.verify.analysis.liveness import call_args, registers_of, solve_backward

__all__ = ["Run", "call_reads", "core_relocated_slots", "facts_at", "known_constants", "known_equal", "known_widths",
           "live_in", "must_forward", "runs_of", "succs_of", "transfer", "transfer_equal", "transfer_widths",
           "written_registers"]


@dataclass(frozen=True)
class Run:
    """Instructions ``[start, start + len(code))`` of ``section`` (list indices), all windowable."""

    section: str
    function: str
    start: int
    code: tuple[Instruction, ...]
    live_after: tuple[int, ...]
    """Bit set of registers live after each instruction of the run."""
    known_before: tuple[tuple[tuple[int, int], ...], ...] = ()
    """(register, value) pairs known on every path to each instruction of the run (K2's concrete values)."""

    widths_before: tuple[tuple[tuple[int, int], ...], ...] = ()
    """(register, bits) pairs: the register is below 2**bits on every path to each instruction (a zero-
    extended load or 32-bit result from another block, which the window alone cannot see)."""

    def known_at(self, i: int) -> dict[int, int]:
        return dict(self.known_before[i]) if self.known_before else {}

    def widths_at(self, i: int) -> dict[int, int]:
        return dict(self.widths_before[i]) if self.widths_before else {}


def core_relocated_slots(elf: BpfElf) -> dict[str, set[int]]:
    """Per section, the slots libbpf patches from CO-RE records (``.BTF.ext``'s third area)."""
    ext, btf = elf.section_data(".BTF.ext"), elf.section_data(".BTF")
    out: dict[str, set[int]] = {}
    if not ext or not btf or struct.unpack_from("<I", ext, 4)[0] < 32:
        return out
    hdr_len = struct.unpack_from("<I", ext, 4)[0]
    off, length = struct.unpack_from("<II", ext, 24)
    b_hdr, _, _, s_off, _ = struct.unpack_from("<IIIII", btf, 4)
    strings = btf[b_hdr + s_off:]
    pos, end = hdr_len + off, hdr_len + off + length
    if not length:
        return out
    rec = struct.unpack_from("<I", ext, pos)[0]
    pos += 4
    while pos + 8 <= end:
        name_off, num = struct.unpack_from("<II", ext, pos)
        name = strings[name_off:strings.index(b"\0", name_off)].decode()
        pos += 8
        for r in range(num):
            out.setdefault(name, set()).add(struct.unpack_from("<I", ext, pos + r * rec)[0] // 8)
        pos += num * rec
    return out


def succs_of(code: Sequence[Instruction]) -> tuple[list[list[int]], set[int]]:
    starts = slot_offsets(code)
    index_of = {s: i for i, s in enumerate(starts)}
    succs: list[list[int]] = []
    targets: set[int] = set()
    for i, insn in enumerate(code):
        k = insn.kind
        out: list[int] = []
        if k not in (Kind.EXIT, Kind.JA, Kind.GOTOL) and i + 1 < len(code):
            out.append(i + 1)
        if k in (Kind.JA, Kind.GOTOL, Kind.JCOND, Kind.MAY_GOTO):
            t = index_of.get(starts[i] + insn.slots + (insn.jump_offset or 0))
            if t is not None:
                out.append(t)
                targets.add(t)
        succs.append(out)
    return succs, targets


_ALL = (1 << 11) - 1
_CLOBBERS = 0b111111  # r0-r5


def call_reads(insn: Instruction) -> int:
    """The argument registers a call reads, as a bit set: the verifier's rule (`liveness.call_args`: its
    helper's parameters where the ABI knows the helper, else r1-r5)."""
    return sum(1 << r for r in call_args(insn))


def _uses_defs(insn: Instruction) -> tuple[int, int, int, int]:
    if insn.kind == Kind.INVALID:
        return _ALL, 0, 0, 0
    if insn.kind == Kind.CALL:
        return call_reads(insn), _CLOBBERS, 0, 0
    if insn.kind in (Kind.LD_ABS, Kind.LD_IND):  # read the packet through r6; set r0, clobber r1-r5
        return 1 << 6 | (1 << insn.src if insn.kind == Kind.LD_IND else 0), _CLOBBERS, 0, 0
    reads, writes = registers_of(insn)
    return sum(1 << r for r in set(reads)), sum(1 << r for r in set(writes)), 0, 0


def live_in(code: Sequence[Instruction], succs: list[list[int]]) -> list[int]:
    """Bit ``r`` of entry ``i``: register ``r`` may be read on some path from ``i`` before it is written."""
    return solve_backward(succs, [_uses_defs(i) for i in code])


_Facts = dict[int, int] | None  # None: not reached yet


def written_registers(insn: Instruction) -> tuple[int, ...]:
    """The registers ``insn`` leaves holding a new value: its writes, and r0-r5 for a call (its clobbers) or a
    legacy packet load (sets r0 and may clobber r1-r5). What every forward fact of this module ends."""
    if insn.kind in (Kind.CALL, Kind.LD_ABS, Kind.LD_IND):
        return (0, 1, 2, 3, 4, 5)
    return registers_of(insn)[1]


def transfer(insn: Instruction, facts: Mapping[int, int]) -> dict[int, int]:
    """The constants known after ``insn``, given those known before it."""
    out = dict(facts)
    k = insn.kind
    if k == Kind.INVALID:
        return {}
    reads, writes = registers_of(insn)[0], written_registers(insn)
    for r in writes:
        out.pop(r, None)
    if k in (Kind.ALU, Kind.MOV, Kind.NEG, Kind.END, Kind.BSWAP, Kind.MOVSX, Kind.SDIV) \
            and all(r in facts for r in reads) and insn.dst != 10:
        try:
            value, _ = run_concrete((insn,), [facts.get(r, 0) for r in range(11)], ConcreteMemory(0))
            out[insn.dst] = value[insn.dst]
        except (SemanticsError, ValueError):
            pass
    elif k == Kind.LDDW and insn.src == PseudoSrc.NONE:
        out[insn.dst] = insn.imm64
    return out


def transfer_widths(insn: Instruction, widths: Mapping[int, int]) -> dict[int, int]:
    """The registers known to fit in fewer than 64 bits after ``insn`` (register -> bits), given those
    before it. Only results whose upper bits the instruction itself clears: a load of 1 or 2 bytes, a
    32-bit operation (zero-extends), a byte swap of 16 or 32 bits, a move of a non-negative constant or
    of a narrow register, an AND with a narrow operand, a right shift by a constant."""
    k = insn.kind
    if k == Kind.INVALID:
        return {}
    out = dict(widths)
    writes = written_registers(insn)
    for r in writes:
        out.pop(r, None)
    if insn.dst == 10 or insn.dst not in writes:
        return out
    w: int | None = None
    x = source(insn.opcode) == Source.X
    if k == Kind.LDX and size(insn.opcode).bytes < 4:
        # Not 4 bytes: a 4-byte load from the context (xdp_md's data, data_end) is one the kernel makes
        # a 64-bit pointer load, which the window semantics (a plain load) cannot tell from a u32 field.
        w = size(insn.opcode).bytes * 8
    elif k in (Kind.END, Kind.BSWAP):
        w = insn.imm if insn.imm in (16, 32) else None
    elif insn.cls == InsnClass.ALU and k in (Kind.ALU, Kind.MOV, Kind.NEG, Kind.SDIV, Kind.MOVSX):
        w = 32
    elif insn.cls == InsnClass.ALU64 and k == Kind.MOV:
        w = widths.get(insn.src) if x else (insn.imm.bit_length() if insn.imm >= 0 else None)
    elif insn.cls == InsnClass.ALU64 and k == Kind.ALU:
        op = alu_op(insn.opcode)
        mine = widths.get(insn.dst)
        other = widths.get(insn.src) if x else (insn.imm.bit_length() if insn.imm >= 0 else None)
        if op == AluOp.AND:
            w = min((v for v in (mine, other) if v is not None), default=None)
        elif op in (AluOp.OR, AluOp.XOR) and mine is not None and other is not None:
            w = max(mine, other)
        elif op == AluOp.RSH and not x:
            w = max(0, (64 if mine is None else mine) - (insn.imm & 63))
    if w is not None and w < 64:
        out[insn.dst] = w
    return out


def transfer_equal(insn: Instruction, equal: Mapping[int, int]) -> dict[int, int]:
    """The registers known to hold the same 64-bit value after ``insn`` (register -> bit set of the others
    equal to it), given those before it: a 64-bit register move makes its destination equal to its
    source (and to whatever equals the source); any other write ends the written register's equalities."""
    k = insn.kind
    if k == Kind.INVALID:
        return {}
    writes = written_registers(insn)
    gone = sum(1 << r for r in writes)
    out = {r: m & ~gone for r, m in equal.items() if not gone >> r & 1 and m & ~gone}
    if k == Kind.MOV and insn.cls == InsnClass.ALU64 and source(insn.opcode) == Source.X and insn.off == 0 \
            and insn.dst != insn.src and insn.dst != 10:
        group = out.get(insn.src, 0) | 1 << insn.src
        out[insn.dst] = group
        for r in range(11):
            if group >> r & 1:
                out[r] = out.get(r, 0) | 1 << insn.dst
    return out


def must_forward(code: Sequence[Instruction], succs: list[list[int]], patched: set[int],
                  step: Callable[[Instruction, dict[int, int]], dict[int, int]],
                  meet: Callable[[int, int], int | None]) -> list[dict[int, int]]:
    """A must-analysis from the entry, where nothing is known: per instruction, the registers with a fact on
    every path to it. ``step`` is an instruction's transfer; ``meet`` joins a register's two facts at a join
    (None: nothing known). A patched instruction's result has no fact: what the loader patches in (an
    address, a CO-RE offset) is no value of ours."""
    facts: list[_Facts] = [None] * len(code)
    facts[0] = {}
    work = [0]
    while work:
        i = work.pop()
        cur = facts[i]
        assert cur is not None
        out = step(code[i], cur)
        if i in patched:
            out = {r: v for r, v in out.items() if r not in registers_of(code[i])[1]}
        for t in succs[i]:
            old = facts[t]
            if old is None:
                new = out
            else:
                met = {r: meet(v, out[r]) for r, v in old.items() if r in out}
                new = {r: v for r, v in met.items() if v is not None}
            if old is None or new != old:
                facts[t] = new
                work.append(t)
    return [f or {} for f in facts]


def known_widths(code: Sequence[Instruction], succs: list[list[int]], patched: set[int]) -> list[dict[int, int]]:
    """Registers below 2**bits on every path to each instruction (at a join the wider of the two)."""
    return must_forward(code, succs, patched, transfer_widths, max)


def known_equal(code: Sequence[Instruction], succs: list[list[int]], patched: set[int]) -> list[dict[int, int]]:
    """Registers holding the same value as others on every path to each instruction (register -> bit set
    of those others; at a join the pairs both ways in have)."""
    return must_forward(code, succs, patched, transfer_equal, lambda a, b: (a & b) or None)


def known_constants(code: Sequence[Instruction], succs: list[list[int]], patched: set[int]) -> list[dict[int, int]]:
    """Registers holding one constant on every path to each instruction."""
    return must_forward(code, succs, patched, transfer, lambda a, b: a if a == b else None)


@dataclass(frozen=True)
class FunctionCode:
    """One function of a whole-section program, with the flow facts the window and region finders read:
    its successors, the instructions not to rewrite (relocated or core, as indices into ``code``) and,
    computed when first asked, liveness and the constants and widths known on every path."""

    lo: int
    name: str
    code: Sequence[Instruction]
    succs: list[list[int]]
    targets: set[int]
    patched: set[int]

    @cached_property
    def live(self) -> list[int]:
        return live_in(tuple(self.code), self.succs)

    @cached_property
    def consts(self) -> list[dict[int, int]]:
        return known_constants(self.code, self.succs, self.patched)

    @cached_property
    def widths(self) -> list[dict[int, int]]:
        return known_widths(self.code, self.succs, self.patched)

    @cached_property
    def equal(self) -> list[dict[int, int]]:
        return known_equal(self.code, self.succs, self.patched)


def functions_of(prog: ElfProgram, core_slots: Set[int] = frozenset()) -> Iterator[FunctionCode]:
    """The non-empty functions of a whole-section ``prog``, in order (instructions carrying a relocation or
    in ``core_slots`` are patched: no rewrite may touch them)."""
    starts = slot_offsets(prog.instructions)
    patched = {r.insn_index for r in prog.relocations} | {i for i, s in enumerate(starts) if s in core_slots}
    bounds = [*sorted({f.insn_index for f in prog.functions} | {0}), len(prog.instructions)]
    names = {f.insn_index: f.name for f in prog.functions}
    for lo, hi in itertools.pairwise(bounds):
        code = prog.instructions[lo:hi]
        if code:
            succs, targets = succs_of(code)
            yield FunctionCode(lo, names.get(lo, prog.name), code, succs, targets,
                               {p - lo for p in patched if lo <= p < hi})


def facts_at(prog: ElfProgram, core_slots: Set[int] = frozenset()) -> dict[int, tuple[dict[int, int], dict[int, int]]]:
    """Per instruction of a whole-section ``prog`` (its index), the constants and widths known on every
    path to it (`known_constants`, `known_widths`, function by function)."""
    out: dict[int, tuple[dict[int, int], dict[int, int]]] = {}
    for fn in functions_of(prog, core_slots):
        for i, (c, w) in enumerate(zip(fn.consts, fn.widths, strict=True)):
            out[fn.lo + i] = c, w
    return out


def runs_of(prog: ElfProgram, core_slots: Set[int] = frozenset()) -> list[Run]:
    """The windowable runs of every function of a whole-section ``prog``."""
    out: list[Run] = []
    for fn in functions_of(prog, core_slots):
        code, succs, live, lo = fn.code, fn.succs, fn.live, fn.lo
        consts, widths = fn.consts, fn.widths
        after = [0] * len(code)
        branch: set[int] = set()
        for i in range(len(code)):
            for t in succs[i]:
                after[i] |= live[t]
            if is_branch(code[i]) and len(succs[i]) == 2 and succs[i][0] == i + 1:
                after[i] = branch_live(live[i + 1], live[succs[i][1]])
                branch.add(i)
        pieces: list[list[int]] = [[]]
        for i, insn in enumerate(code):
            usable = (in_window(insn) or i in branch) and i not in fn.patched
            if i in fn.targets or not usable:
                pieces.append([])
            if usable:
                pieces[-1].append(i)
            if i in branch:
                pieces.append([])
        for run in pieces:
            if run:
                out.append(Run(prog.section, fn.name, lo + run[0],
                               tuple(code[j] for j in run), tuple(after[j] for j in run),
                               tuple(tuple(sorted(consts[j].items())) for j in run),
                               tuple(tuple(sorted(widths[j].items())) for j in run)))
    return out
