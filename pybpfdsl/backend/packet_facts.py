"""Which packet bounds checks cover a packet load, so the load needs no guard of its own.

An IR `in_bounds off, W` whose result a branch tests establishes, on the branch's true edge, that the W
bytes at `off` are in the packet. When that edge is the only way into its target, the fact holds in
every block the target dominates. A load at `off + k` (k a constant) of w bytes with k + w <= W is then
lowered from the very pointer the check tested (`start + k`), which is what the kernel verifier needs
to know the access is in range: no second compare, no second `return XDP_ABORTED`. Loads no check
covers keep their own guard (`lower._load_packet`).

Loads no check dominates may still be proven by the checks on every path to them (a header read after
the parse's join, under `if pkt.tcp is not None`): `packet_paths` finds those, and the pointer they read
through (`data` at a constant offset, or a block parameter's *shadow*: a pointer phi beside it, fed on
each edge with the pointer that edge's value was checked through).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llvmlite import ir

from pybpfdsl.backend.packet_offsets import OffsetPlan, OffsetPlanner
from pybpfdsl.backend.packet_paths import Edge, PathFacts, Ptr
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, constant_offset, definitions, successors
from pybpfdsl.ir.passes.ranges import Ranges, value_ranges

_CALLS = (n.MapLookup, n.MapUpdate, n.MapDelete, n.CallHelper, n.RingbufOutput)
_NO_CALL = (n.PureInstr, n.PacketLen, n.InBounds, n.LoadPacket, n.IsNull, n.LoadValue, n.StoreValue, n.LoadGlobal,
            n.StoreGlobal)
"""Operations that call no helper (anything else, including operations added later, counts as a call)."""
_SMALL = 1 << 16  # constant parts of offsets beyond this are left to the guarded path


@dataclass(frozen=True)
class Checked:
    """One lowered bounds check: `width` bytes from `base + k` are in the packet at `start`."""

    base: n.Value | None
    k: int
    width: int
    start: ir.Value
    end: ir.Value | None = None
    """The pointer compared with data_end (`start + width`): a later check of more bytes from the same
    base steps on from it (`reaching`)."""


@dataclass
class PacketFacts:
    """The checks lowered so far and the blocks in which each one holds."""

    program: n.Program
    cfg: Cfg = field(init=False)
    defs: dict[n.Value, n.Instr] = field(init=False)
    checks: dict[n.Value, Checked] = field(default_factory=dict)
    holding: dict[str, list[Checked]] = field(default_factory=dict)
    crossing: dict[tuple[str, str], bool] = field(default_factory=dict)

    paths: PathFacts = field(init=False)
    moves_packet: bool = field(init=False)
    """Whether the program moves the packet (`AdjustPacket`)."""
    plans: dict[tuple[str, n.Value, int], Ptr] = field(init=False)
    """(block, offset, width) of a packet access no dominating check covers -> the pointer it reads."""
    shadowed: set[n.Value] = field(init=False)
    """The block parameters that get a shadow pointer."""
    starts: dict[n.Value, ir.Value] = field(default_factory=dict)
    shadows: dict[n.Value, ir.Value] = field(default_factory=dict)
    ranges: Ranges | None = None
    """The program's value ranges (`ir.passes.ranges`), computed when first asked for."""
    planner: OffsetPlanner | None = None
    """How offsets are added to the packet pointer (`packet_offsets`), made when first asked for."""

    def __post_init__(self) -> None:
        self.cfg = Cfg.of(self.program)
        self.defs = definitions(self.program)
        self.paths = PathFacts(self.program)
        self.moves_packet = any(isinstance(i, n.AdjustPacket) for b in self.program.blocks for i in b.instrs)
        self.plans, self.shadowed = self._plan()

    def _plan(self) -> tuple[dict[tuple[str, n.Value, int], Ptr], set[n.Value]]:
        """The packet accesses proven along paths, and the parameters whose shadows they need."""
        plans: dict[tuple[str, n.Value, int], Ptr] = {}
        for name in self.cfg.order:
            for i in self.paths.blocks[name].instrs:
                if not isinstance(i, n.LoadPacket | n.StorePacket):
                    continue
                ptr = self.paths.pointer_for(i.offset, name)
                if ptr.kind in ("data", "shadow") and self.paths.width(ptr, name) >= i.width:
                    probe = i if isinstance(i, n.LoadPacket) else n.LoadPacket(i.value, i.offset, i.width)
                    if not self.paths.call_may_precede(name, probe, data_only=ptr.kind == "data"):
                        plans[(name, i.offset, i.width)] = ptr
        shadowed: set[n.Value] = set()
        work = [p.ref for p in plans.values() if p.kind == "shadow" and p.ref is not None]
        while work:
            param = work.pop()
            if param in shadowed:
                continue
            shadowed.add(param)
            for edge, args in self.paths.edges_into.get(self.paths.home[param], ()):
                fed = self.paths.pointer_for(args[self.paths.param_index[param]], edge)
                if fed.kind == "shadow" and fed.ref is not None:
                    work.append(fed.ref)
        return plans, shadowed

    def moved_on_way_in(self, block: str) -> bool:
        """Whether `block` reads `data` and `data_end` afresh (`PathFacts.moved_on_way_in`)."""
        return self.paths.moved_on_way_in(block)

    # -- lowering the pointers the plans read through ------------------------------------

    def make_shadows(self, b: ir.IRBuilder, block: n.Block) -> None:
        """Pointer phis for `block`'s shadowed parameters (at its start, with its other phis)."""
        for p in block.params:
            if p in self.shadowed:
                self.shadows[p] = b.phi(ir.PointerType(), name=f"{p.hint or 'p'}.ptr")

    def shadow_phis(self, block: str) -> list[ir.Value]:
        """`block`'s shadow phis, in parameter order (after its other phis in the incoming lists)."""
        return [self.shadows[p] for p in self.paths.blocks[block].params if p in self.shadowed]

    def edge_pointers(self, b: ir.IRBuilder, data: ir.Value, source: str, index: int, target: str,
                      args: tuple[n.Value, ...]) -> tuple[ir.Value, ...]:
        """What the edge (`source`'s `index`th, to `target` with `args`) feeds its shadow phis."""
        block = self.paths.blocks[target]
        return tuple(self.pointer(b, data, self.paths.pointer_for(a, Edge(source, index)))
                     for p, a in zip(block.params, args, strict=True) if p in self.shadowed)

    def pointer(self, b: ir.IRBuilder, data: ir.Value, ptr: Ptr) -> ir.Value:
        if ptr.kind == "data":
            base = data
        elif ptr.kind == "check" and ptr.ref in self.starts:
            base = self.starts[ptr.ref]
        elif ptr.kind == "shadow" and ptr.ref in self.shadows:
            base = self.shadows[ptr.ref]
        else:
            return data  # on no path the flags allow: any packet pointer will do
        if ptr.off == 0:
            return base
        return b.gep(base, [ir.Constant(ir.IntType(64), ptr.off)], source_etype=ir.IntType(8))

    def planned(self, block: str, op: n.LoadPacket) -> Ptr | None:
        """The pointer a path-proven access reads through (None: it needs a dominating check or a guard)."""
        return self.plans.get((block, op.offset, op.width))

    def _calls_between(self, start: str, end: str) -> bool:
        """Whether a helper call may run between entering `start` and reaching `end` (a block `start`
        dominates). A checked pointer live across a call is spilled to the stack, and pybpfdsl's verifier
        (unlike the kernel's) loses its range there, so such loads keep their own guard."""
        key = (start, end)
        if key not in self.crossing:
            blocks = {b.name: b for b in self.program.blocks}
            seen, work, found = {start}, [start], False
            while work and not found:
                name = work.pop()
                found = any(isinstance(i, _CALLS) or not isinstance(i, _NO_CALL) for i in blocks[name].instrs)
                if name == end:
                    continue
                for s in successors(blocks[name]):
                    if s not in seen and self.cfg.dominates(start, s) and self._reaches(s, end):
                        seen.add(s)
                        work.append(s)
            self.crossing[key] = found
        return self.crossing[key]

    def _reaches(self, a: str, b: str) -> bool:
        blocks = {x.name: x for x in self.program.blocks}
        seen, work = {a}, [a]
        while work:
            name = work.pop()
            if name == b:
                return True
            for s in successors(blocks[name]):
                if s not in seen:
                    seen.add(s)
                    work.append(s)
        return False

    def checked(self, op: n.InBounds, start: ir.Value, end: ir.Value | None = None) -> None:
        base, k = constant_offset(op.offset, self.defs)
        self.starts[op.out] = start
        if k < _SMALL:
            self.checks[op.out] = Checked(base, k, op.width, start, end)

    def checked_from_base(self, op: n.InBounds, base_ptr: ir.Value, k: int, start: ir.Value,
                          end: ir.Value | None = None) -> None:
        """`op` (of `base + k`) was lowered as a check of `k + op.width` bytes from `base_ptr`, the pointer
        to `base`: every load in that span reads at a constant offset from this one register."""
        base, _ = constant_offset(op.offset, self.defs)
        self.starts[op.out] = start
        self.checks[op.out] = Checked(base, 0, k + op.width, base_ptr, end)

    def reaching(self, block: str, base: n.Value | None) -> Checked | None:
        """The check of `base` (None: of constant offsets) holding in `block` that reaches furthest, with no
        helper call since (which would need its pointers kept across the call): a wider check of the same
        base steps its end pointer on from that one's (`r += 40` instead of `r = data; r += 54`), and reads
        through its start, one register whose range the kernel verifier then extends."""
        best: Checked | None = None
        for d in self.cfg.dominators(block):
            for c in self.holding.get(d, ()):
                if c.base == base and c.end is not None and not self._calls_between(d, block) \
                        and (best is None or c.k + c.width > best.k + best.width):
                    best = c
        return best

    def base_below(self, offset: n.Value, limit: int) -> tuple[n.Value, int] | None:
        """`offset` as (base, k), base + k with 0 < k, when base's range is within [0, limit - k]; None
        otherwise (a constant offset, or a base that may be large)."""
        base, k = constant_offset(offset, self.defs)
        if base is None or not 0 < k < _SMALL:
            return None
        if self.ranges is None:
            self.ranges = value_ranges(self.program)
        r = self.ranges.get(base)
        return (base, k) if r is not None and r.within(0, limit - k) else None

    def offset_plan(self, value: n.Value, block: str, limit: int) -> OffsetPlan | None:
        """The terms the u64 offset `value` (at most `limit` in `block`) is added to `data` as, each bounded
        in its own register (`packet_offsets`); None: mask it whole."""
        if self.planner is None:
            if self.ranges is None:
                self.ranges = value_ranges(self.program)
            self.planner = OffsetPlanner(self.program, self.cfg, self.defs, self.ranges)
        return self.planner.plan(value, block, limit)

    def branched(self, block: str, term: n.Branch) -> None:
        """Note what holds on the true edge of `term` (ending `block`)."""
        check = self.checks.get(term.cond)
        target = term.if_true.target
        if check is not None and target != term.if_false.target and self.cfg.only_edge_from(target, block):
            self.holding.setdefault(target, []).append(check)

    def split(self, offset: n.Value) -> tuple[n.Value | None, int]:
        """`offset` as (base, k): base + k, k a constant (base None: the constant k)."""
        return constant_offset(offset, self.defs)

    def covering(self, block: str, op: n.LoadPacket) -> tuple[ir.Value, int] | None:
        """(checked pointer, offset from it) of a check that covers `op` in `block`, if one does."""
        base, k = constant_offset(op.offset, self.defs)
        if k >= _SMALL:
            return None
        for d in self.cfg.dominators(block):
            for c in self.holding.get(d, ()):
                if c.base == base and c.k <= k and k + op.width <= c.k + c.width \
                        and not self._calls_between(d, block):
                    return c.start, k - c.k
        return None
