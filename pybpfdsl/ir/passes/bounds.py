"""What a branch decides holds below it: conditions tested again, and bounds checks of a range a
dominating check already proved (or disproved).

When a branch on `c` is the only way into its target, `c` is known (true on the true edge, false on
the false one) in every block that target dominates, so a later branch or select on `c` is decided.
A known `in_bounds` decides another one at the same base: the same offset and no wider (true), the
same offset and no narrower (false); with constant offsets, any range inside a proved one whose offset
is within `MAX_PACKET_OFFSET` (true).
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, constant_offset, definitions, drop_unreachable
from pybpfdsl.ir.passes.rewrite import copy_program, rename_all
from pybpfdsl.lang.headers import MAX_PACKET_OFFSET


@dataclass(frozen=True)
class _Range:
    base: n.Value | None
    k: int
    width: int


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    cfg = Cfg.of(out)
    defs = definitions(out)
    blocks = {b.name: b for b in out.blocks}
    known: dict[str, dict[n.Value, bool]] = {}
    for name in cfg.order:
        b = blocks[name]
        term = b.terminator
        if isinstance(term, n.Branch) and term.if_true.target != term.if_false.target:
            for edge, holds in ((term.if_true, True), (term.if_false, False)):
                if cfg.only_edge_from(edge.target, name):
                    known.setdefault(edge.target, {})[term.cond] = holds
    ranges = {i.out: _range(i, defs) for b in out.blocks for i in b.instrs if isinstance(i, n.InBounds)}
    if any(isinstance(i, n.AdjustPacket) for b in out.blocks for i in b.instrs):
        ranges = {}  # the packet moves: a range proved before a move says nothing after it
    names: dict[n.Value, n.Value] = {}
    for name in cfg.order:
        facts: dict[n.Value, bool] = {}
        for d in cfg.dominators(name):
            for v, holds in known.get(d, {}).items():
                facts.setdefault(v, holds)
        if not facts:
            continue
        b = blocks[name]
        kept: list[n.Instr] = []
        for i in b.instrs:
            if isinstance(i, n.Select) and i.cond in facts:
                names[i.out] = i.if_true if facts[i.cond] else i.if_false  # it dominates the select's uses
                continue
            kept.append(_decided(i, facts, ranges))
        b.instrs = kept
        term = b.terminator
        if isinstance(term, n.Branch) and term.cond in facts:
            b.terminator = n.Jump(to=term.if_true if facts[term.cond] else term.if_false, line=term.line)
    rename_all(out, names)
    drop_unreachable(out)
    return out


def _range(i: n.InBounds, defs: dict[n.Value, n.Instr]) -> _Range:
    base, k = constant_offset(i.offset, defs)
    return _Range(base, k, i.width)


def _decided(i: n.Instr, facts: dict[n.Value, bool], ranges: dict[n.Value, _Range]) -> n.Instr:
    """An `in_bounds` a known one decides, as a constant; anything else as it is."""
    if not isinstance(i, n.InBounds):
        return i
    mine = ranges.get(i.out)
    if mine is None:  # the program moves the packet (`run`)
        return i
    for v, holds in facts.items():
        other = ranges.get(v)
        if other is None or other.base != mine.base:
            continue
        if holds and _inside(mine, other):
            return n.Const(out=i.out, value=1, line=i.line)
        if not holds and mine.k == other.k and mine.width >= other.width:
            return n.Const(out=i.out, value=0, line=i.line)
    return i


def _inside(mine: _Range, proved: _Range) -> bool:
    """Whether `proved` in the packet implies `mine` is."""
    if mine.k == proved.k:
        return mine.width <= proved.width
    return mine.base is None and proved.k <= mine.k <= MAX_PACKET_OFFSET \
        and mine.k + mine.width <= proved.k + proved.width

