"""Common subexpressions: an operation computed again where an identical one dominates it reads the first
one's result (a header field loaded twice is loaded once; equal constants are one constant).

Candidates are the pure operations and the packet reads (`packet_len`, `in_bounds`, `load_packet`).
A packet read is one only in a program none of whose operations may write the packet (every operation
is one of `PACKET_UNCHANGED`; an operation added later counts as a writer until it is listed): then the
same read at a dominated point gives the same value, and a load is valid wherever an identical
dominating load was.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg
from pybpfdsl.ir.passes.rewrite import copy_program, rename, rename_all

PACKET_READS: tuple[type, ...] = (n.PacketLen, n.InBounds, n.LoadPacket)
PACKET_UNCHANGED: tuple[type, ...] = (
    n.PureInstr, *PACKET_READS, n.MapLookup, n.IsNull, n.LoadValue, n.StoreValue, n.MapUpdate, n.MapDelete,
    n.LoadGlobal, n.StoreGlobal, n.CallHelper, n.RingbufOutput)
"""Operations that leave the packet's bytes and length as they are."""


def _key(i: n.Instr) -> tuple[Any, ...]:
    return (type(i), i.result.type if i.result is not None else None,
            *(getattr(i, f.name) for f in fields(i) if f.name not in ("out", "line")))


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    unchanged = all(isinstance(i, PACKET_UNCHANGED) for b in out.blocks for i in b.instrs)
    candidates: tuple[type, ...] = (n.PureInstr, *PACKET_READS) if unchanged else (n.PureInstr,)
    cfg = Cfg.of(out)
    blocks = {b.name: b for b in out.blocks}
    names: dict[n.Value, n.Value] = {}
    tables: dict[str, dict[tuple[Any, ...], n.Value]] = {}
    for name in cfg.order:
        idom = cfg.idom.get(name)
        table = dict(tables[idom]) if idom is not None else {}
        b = blocks[name]
        kept: list[n.Instr] = []
        for i in b.instrs:
            i = rename(i, names)
            if isinstance(i, candidates) and i.result is not None:
                key = _key(i)
                if key in table:
                    names[i.result] = table[key]
                    continue
                table[key] = i.result
            kept.append(i)
        b.instrs = kept
        tables[name] = table
    rename_all(out, names)
    return out
