"""How each payload offset is added to the packet pointer (`backend.packet_offsets.OffsetPlanner`).

A loop's index is masked alone by the least all-ones constant over its largest value, which the ranges
refined by the loop's own test give (`PointRanges`); the payload's offset, the same on every iteration, is
added as it is. An index whose range is not known leaves the whole offset to the 0x7FFF mask (no plan).
"""

from __future__ import annotations

import pytest

from pybpfdsl import XDP_PASS, Global, Packet, bounded, u8, u32, xdp
from pybpfdsl.backend.packet_offsets import OffsetPlan, OffsetPlanner
from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, definitions
from pybpfdsl.ir.passes.pipeline import optimize
from pybpfdsl.ir.passes.ranges import value_ranges
from pybpfdsl.lang.headers import MAX_PACKET_OFFSET

limit_g = Global(u32, 5)


@xdp
def reads_up(pkt: Packet) -> int:
    for i in range(16):
        if pkt.payload[i] is None:
            break
    return XDP_PASS


@xdp
def writes_down(pkt: Packet) -> int:
    for i in range(8, 0, -1):
        pkt.payload[i] = u8(i)
    return XDP_PASS


@xdp
def reads_stride(pkt: Packet) -> int:
    for i in range(0, 40, 4):
        if pkt.payload[i] == 1:
            return XDP_PASS
    return XDP_PASS


@xdp
def reads_to_a_global(pkt: Packet) -> int:
    i: u32 = 0
    while bounded(i < limit_g.value, 100):
        if pkt.payload[i] == 1:
            return XDP_PASS
        i += 1
    return XDP_PASS


def _plans(prog) -> list[OffsetPlan | None]:  # type: ignore[no-untyped-def]
    """The plan of each bounds check of a variable offset, as the backend asks for it."""
    program = optimize(prog.lower().program)
    defs = definitions(program)
    planner = OffsetPlanner(program, Cfg.of(program), defs, value_ranges(program))
    return [planner.plan(i.offset, b.name, MAX_PACKET_OFFSET) for b in program.blocks for i in b.instrs
            if isinstance(i, n.InBounds) and not isinstance(defs.get(i.offset), n.Const)
            and "payload" in str(i.offset) + str(defs.get(i.offset))]


@pytest.mark.parametrize(("prog", "mask"), [(reads_up, 15), (writes_down, 15), (reads_stride, 63)],
                         ids=["range16", "range8_down", "range0_40_4"])
def test_a_range_index_is_masked_by_its_own_largest_value(prog, mask: int) -> None:  # type: ignore[no-untyped-def]
    plans = _plans(prog)
    assert plans and all(p is not None for p in plans), plans
    for p in plans:
        assert p is not None
        assert sorted(t.mask for t in p.terms if t.mask is not None) == [mask]
        assert any(t.mask is None for t in p.terms)  # the payload's offset, as it is


def test_an_index_of_unknown_range_is_left_to_the_whole_mask() -> None:
    plans = _plans(reads_to_a_global)
    assert plans and all(p is None for p in plans), plans
