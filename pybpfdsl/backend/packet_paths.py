"""Packet pointers that keep their proven range through joins, as the kernel verifier keeps them.

The header parse ends in one join whose parameters are a presence flag per header and the headers'
offsets; the program then tests a flag (`if pkt.tcp is not None`) and reads fields at the offset. No
bounds check dominates those reads, yet on every path that reaches one the parse checked the header:
the kernel, which follows each path on its own, knows that, if the read goes through the pointer the
check tested. C programs get this from a pointer variable (`struct tcphdr *tcp`) that is NULL or the
checked pointer. The backend gives each u64 block parameter that such a read needs a *shadow*: a
pointer phi fed, on each edge, with the pointer that edge's value was checked through.

This module decides, from the IR alone, which reads may go through a shadow (or through `data` at a
constant offset), and how many bytes each pointer is proven to cover on the paths where a read runs.
A pointer is one of (`Ptr`): `data` (constant offsets: every check of a constant range proves bytes
after `data`, one register id for the kernel), the pointer a bounds check formed (`check`: fixed
width), a parameter's shadow, or nothing. Its width at a point, given flags known true there, is:

- for `data`: the widest constant check holding there, or what holds on every way into the latest
  block whose parameters decide it (a flag that is a parameter: its edges passing constant false
  cannot be taken; constant true needs nothing more; another value becomes the flag on that edge);
- for a shadow: the least width, over the ways into the parameter's block that the flags allow, of
  the pointer that edge passes;
- for a check's pointer: that check's width.

Everything is sound in the direction that matters: a width is never larger than what holds on every
path the flags allow; when in doubt (a loop, an unknown value) it is 0, and the read keeps its own
guard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, constant_offset, definitions

__all__ = ["Edge", "PathFacts", "Ptr"]

_UNREACHABLE = 1 << 30
"""The width on no path at all (every way in is excluded by the flags)."""
SMALL = 1 << 16
"""Constant parts of offsets beyond this are left to the guarded path."""


@dataclass(frozen=True)
class Ptr:
    """A pointer `off` bytes after its base: `data`, a check's start (`ref` the check's result), a block
    parameter's shadow (`ref` the parameter), or none (no pointer proven on this edge)."""

    kind: Literal["data", "check", "shadow", "none"]
    ref: n.Value | None = None
    off: int = 0

    def plus(self, k: int) -> Ptr:
        return self if self.kind == "none" else Ptr(self.kind, self.ref, self.off + k)


@dataclass(frozen=True)
class Edge:
    """The `index`th edge of `source`'s terminator (0: a jump's, or a branch's true edge)."""

    source: str
    index: int


@dataclass(frozen=True)
class _Range:
    check: n.Value
    base: n.Value | None
    k: int
    width: int


_Point = str | Edge
"""Where a width is asked: at the start of a block, or on an edge."""
_CALLS = (n.MapLookup, n.MapUpdate, n.MapDelete, n.CallHelper, n.RingbufOutput)
_NO_CALL = (n.PureInstr, n.PacketLen, n.InBounds, n.LoadPacket, n.IsNull, n.LoadValue,
            n.StoreValue, n.LoadGlobal, n.StoreGlobal)
"""Operations that call no helper. Anything else counts as a call, packet stores included: the checksum
updates around them keep many values live, and a pointer LLVM spills there loses its range in pybpfdsl's
verifier (`packet_facts` reasons the same way)."""


def _is_call(i: n.Instr) -> bool:
    return isinstance(i, _CALLS) or not isinstance(i, _NO_CALL)


def _breaks(i: n.Instr, data_only: bool) -> bool:
    """Whether `i` ends what earlier checks proved, for reads through `data` at constant offsets
    (`data_only`) or through any pointer. Only a move (`AdjustPacket`) changes the packet, and `data` is
    one register whose range every verifier keeps, in a register or spilled; any other pointer (a
    check's, a shadow) stops at any call, as `_is_call` says why."""
    return isinstance(i, n.AdjustPacket) if data_only else _is_call(i)


class PathFacts:
    """The ranges a program's bounds checks prove, along paths; see the module's docstring."""

    def __init__(self, program: n.Program) -> None:
        self.cfg = Cfg.of(program)
        self.defs = definitions(program)
        self.blocks = {b.name: b for b in program.blocks if b.name in self.cfg.preds or b is program.entry}
        self.ranges: dict[n.Value, _Range] = {}
        self.home: dict[n.Value, str] = {}  # the block defining each value
        self.param_index: dict[n.Value, int] = {}
        self.edges_into: dict[str, list[tuple[Edge, tuple[n.Value, ...]]]] = {}
        self.holding: dict[str, list[_Range]] = {}
        self.truths: dict[str, list[n.Value]] = {}
        self.depth: dict[str, int] = {}
        for name in self.cfg.order:
            self.depth[name] = 0 if name not in self.cfg.idom else self.depth[self.cfg.idom[name]] + 1
        for name, b in self.blocks.items():
            for i, p in enumerate(b.params):
                self.home[p] = name
                self.param_index[p] = i
            for instr in b.instrs:
                if instr.result is not None:
                    self.home[instr.result] = name
                if isinstance(instr, n.InBounds):
                    base, k = constant_offset(instr.offset, self.defs)
                    if k < SMALL:
                        self.ranges[instr.out] = _Range(instr.out, base, k, instr.width)
        for name in self.cfg.order:
            term = self.blocks[name].terminator
            if term is None:
                continue
            for index, e in enumerate(term.edges()):
                self.edges_into.setdefault(e.target, []).append((Edge(name, index), e.args))
            if isinstance(term, n.Branch) and term.if_true.target != term.if_false.target:
                target = term.if_true.target
                if self.cfg.only_edge_from(target, name):
                    self.truths.setdefault(target, []).append(term.cond)
                    if term.cond in self.ranges:
                        self.holding.setdefault(target, []).append(self.ranges[term.cond])
        self._between: dict[tuple[str, _Point, bool], bool] = {}
        self._moved: dict[str, bool] = {}
        self._memo: dict[tuple[Ptr, _Point, frozenset[n.Value]], int] = {}

    # -- what holds at a point ----------------------------------------------------------

    def _block(self, point: _Point) -> str:
        return point if isinstance(point, str) else point.source

    def _own(self, point: _Point) -> tuple[list[_Range], list[n.Value]]:
        """The check and the condition an edge itself adds (a branch's true edge to its own target)."""
        if isinstance(point, str):
            return [], []
        term = self.blocks[point.source].terminator
        if isinstance(term, n.Branch) and point.index == 0 and term.if_true.target != term.if_false.target:
            r = self.ranges.get(term.cond)
            return ([r] if r is not None else []), [term.cond]
        return [], []

    def _ranges_at(self, point: _Point) -> list[_Range]:
        """The checks holding at `point` with no helper call (or packet move) since: a call may make
        LLVM spill the checked pointer, and a move makes the kernel forget every packet range."""
        out = list(self._own(point)[0])
        for d in self.cfg.dominators(self._block(point)):
            if self._call_between(d, point, data_only=True):
                break  # a dominator further up has the same move between it and `point`
            crossed = self._call_between(d, point, data_only=False)
            out.extend(r for r in self.holding.get(d, ()) if r.base is None or not crossed)
        return out

    def _call_between(self, start: str, point: _Point, data_only: bool) -> bool:
        """Whether a call that `_breaks` reads (through `data` only, or any) may run after `start` (which
        dominates `point`) is entered and before `point`: a block's start, or an edge (after all of its
        source's instructions)."""
        target = self._block(point)
        key = (start, point, data_only)
        if key not in self._between:
            found = isinstance(point, Edge) and any(_breaks(i, data_only) for i in self.blocks[target].instrs)
            seen: set[str] = set()
            work = [] if target == start else list(self.cfg.preds.get(target, ()))
            while work and not found:
                name = work.pop()
                if name in seen:
                    continue
                seen.add(name)
                found = any(_breaks(i, data_only) for i in self.blocks[name].instrs)
                if name != start:
                    work.extend(self.cfg.preds.get(name, ()))
            self._between[key] = found
        return self._between[key]

    def _truths_at(self, point: _Point) -> set[n.Value]:
        out = set(self._own(point)[1])
        for d in self.cfg.dominators(self._block(point)):
            out.update(self.truths.get(d, ()))
        return out

    # -- pointers and widths -------------------------------------------------------------

    def pointer_for(self, value: n.Value, point: _Point) -> Ptr:
        """The pointer through which `value` (a u64 offset) is reached at `point`: `data` for a constant,
        else the widest check holding there on its base, else its base's shadow (a parameter)."""
        base, k = constant_offset(value, self.defs)
        if k >= SMALL:
            return Ptr("none")
        if base is None:
            return Ptr("data", None, k)
        best: _Range | None = None
        for r in self._ranges_at(point):
            if r.base == base and r.k <= k and (best is None or r.k + r.width > best.k + best.width):
                best = r
        if best is not None:
            return Ptr("check", best.check, k - best.k)
        if base in self.param_index:
            return Ptr("shadow", base, k)
        return Ptr("none")

    def width(self, ptr: Ptr, point: _Point, flags: frozenset[n.Value] = frozenset()) -> int:
        """Bytes proven in the packet from `ptr` on every path to `point` on which `flags` are true."""
        if ptr.kind == "none":
            return 0
        if ptr.kind == "check":
            assert ptr.ref is not None
            return self.ranges[ptr.ref].width - ptr.off
        return self._base_width(Ptr(ptr.kind, ptr.ref), point, flags) - ptr.off

    def _base_width(self, ptr: Ptr, point: _Point, flags: frozenset[n.Value]) -> int:
        key = (ptr, point, flags)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = 0  # a cycle (a loop) proves nothing
        direct = 0
        if ptr.kind == "data":
            direct = max((r.k + r.width for r in self._ranges_at(point) if r.base is None), default=0)
        result = max(direct, self._through_join(ptr, point, flags | self._truths_at(point)))
        self._memo[key] = result
        return result

    def _through_join(self, ptr: Ptr, point: _Point, flags: frozenset[n.Value]) -> int:
        """The least width over the ways into the latest block whose parameters are `ptr`'s base or
        one of `flags` (0 when there is none)."""
        homes = {self.home[f] for f in flags if f in self.param_index}
        if ptr.kind == "shadow":
            assert ptr.ref is not None
            homes.add(self.home[ptr.ref])
        if not homes:
            return 0
        join = max(homes, key=lambda b: self.depth.get(b, -1))
        if self._call_between(join, point, data_only=ptr.kind == "data"):
            return 0  # what the ways into `join` proved may not hold after the call
        if ptr.kind == "data" and self.moved_on_way_in(join):
            return 0  # `join` reads `data` afresh: the ranges its ways in proved were of other registers
        least = _UNREACHABLE
        for edge, args in self.edges_into.get(join, ()):
            carried: set[n.Value] = set()
            possible = True
            for f in flags:
                if self.home.get(f) == join and f in self.param_index:
                    passed = args[self.param_index[f]]
                    const = self.defs.get(passed)
                    if isinstance(const, n.Const):
                        possible = possible and const.value != 0
                    else:
                        carried.add(passed)
                elif self._available_before(f, join):
                    carried.add(f)
            if not possible:
                continue
            through = ptr
            if ptr.kind == "shadow" and self.home[ptr.ref] == join:  # type: ignore[index]
                through = self.pointer_for(args[self.param_index[ptr.ref]], edge)  # type: ignore[index]
            least = min(least, self.width(through, edge, frozenset(carried)))
            if least == 0:
                break
        return least

    def _available_before(self, v: n.Value, join: str) -> bool:
        home = self.home.get(v)
        return home is not None and home != join and self.cfg.dominates(home, join)

    # -- calls ----------------------------------------------------------------------------

    def moved_on_way_in(self, block: str) -> bool:
        """Whether the packet may be moved (`AdjustPacket`) after `block`'s immediate dominator ends and
        before `block` starts (on a way in that does not pass through that dominator again). Only then
        does the lowering read `data` and `data_end` afresh at `block`: the kernel forgets packet ranges
        only at a move, and a fresh `data` register starts with none."""
        if block not in self._moved:
            idom = self.cfg.idom.get(block)  # None for the entry: the prologue read them
            seen: set[str] = set()
            work = [p for p in self.cfg.preds.get(block, ()) if p != idom]
            found = False
            while work and not found:
                name = work.pop()
                if name in seen:
                    continue
                seen.add(name)
                found = any(isinstance(i, n.AdjustPacket) for i in self.blocks[name].instrs)
                work.extend(p for p in self.cfg.preds.get(name, ()) if p != idom)
            self._moved[block] = found
        return self._moved[block]

    def call_may_precede(self, block: str, op: n.LoadPacket, data_only: bool) -> bool:
        """Whether a call that `_breaks` reads (through `data` only, or any) runs in `block` before `op`
        (a packet access there); the calls before `block` are the widths' concern (`_ranges_at`)."""
        for i in self.blocks[block].instrs:
            if i is op or (isinstance(i, n.StorePacket | n.LoadPacket) and i.offset == op.offset
                           and i.width == op.width):
                return False
            if _breaks(i, data_only):
                return True
        return True
