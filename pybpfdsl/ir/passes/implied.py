"""A bounds check skipped when the next one implies it and both fail the same way.

The shape is a header check followed by a read past the header, each returning the same when it fails
(`udp = pkt.udp; if udp is None: return XDP_PASS` then `pkt.payload[0]`, None, `return XDP_PASS`):

    ^x:  %c1 = in_bounds %b, 8;  branch %c1, ^a, ^fail
    ^a:  %o = add %b, 8;  %c2 = in_bounds %o, 1;  branch %c2, ^ok, ^fail2

The bytes `%c2` tests end at or after those `%c1` tests and start no earlier, from the same base, so
`%c2` true means `%c1` true; when `%c1` is false, `%c2` is too. If `^fail` and `^fail2` do the same
(one block and the same arguments, or two blocks that only return one constant), `^x` can branch on
`%c2` directly: `^a`'s instructions (pure, only `^x` leads there) move up into `^x`. The base must stay
far enough below 2**64 (its range, `ranges.py`) that neither offset wraps.

When `^a` also reads the packet (the first check guards a read, the second the next one:
`tci_high = pkt.payload[0]` then `pkt.payload[1]`), its reads cannot move above a check: only what
`%c2`'s offset is computed from (pure instructions) and `%c2` itself move up, `^x` branches on `%c2`
to `^a`, and `^a` jumps on (its reads are covered by `%c2`, which reaches at least as far as `%c1`).
This form also holds in a program that moves the packet (`adjust_packet`): `%c1` is tested in `^x`
after everything else in it that touches the packet, and `^a` moves nothing, so both checks are about
the same packet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg, constant_offset, definitions, drop_unreachable
from pybpfdsl.ir.passes.ranges import value_ranges
from pybpfdsl.ir.passes.rewrite import copy_program

_SMALL = 1 << 16
"""Constant parts of offsets this pass reasons about (larger ones are left alone)."""


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    # Where the packet moves, checks at different points are about different packets: only the local
    # form (`_hoistable`), whose two checks nothing moves the packet between, applies.
    moves = any(isinstance(i, n.AdjustPacket) for b in out.blocks for i in b.instrs)
    cfg = Cfg.of(out)
    blocks = {b.name: b for b in out.blocks}
    defs = definitions(out)
    ranges = None
    changed = False
    for name in cfg.order:
        x = blocks[name]
        first = x.terminator
        if not isinstance(first, n.Branch) or first.if_true.target == first.if_false.target:
            continue
        a = blocks[first.if_true.target]
        second = a.terminator
        pure = not moves and all(isinstance(i, n.PureInstr | n.InBounds) for i in a.instrs)
        if (first.if_true.args or a.params or a is x or cfg.preds.get(a.name) != (name,)
                or not isinstance(second, n.Branch)):
            continue
        c1, c2 = defs.get(first.cond), defs.get(second.cond)
        if not (isinstance(c1, n.InBounds) and isinstance(c2, n.InBounds)):
            continue
        hoisted = None if pure else _hoistable(x, a, c1, c2, second, defs)
        if not pure and hoisted is None:
            continue
        if not _same_failure(first.if_false, second.if_false, blocks):
            continue
        (b1, k1), (b2, k2) = constant_offset(c1.offset, defs), constant_offset(c2.offset, defs)
        if b1 != b2 or not (0 <= k1 <= k2 < _SMALL and k1 + c1.width <= k2 + c2.width):
            continue
        if b1 is not None:
            ranges = value_ranges(out) if ranges is None else ranges
            r = ranges.get(b1)
            if r is None or not r.within(0, (1 << 63) - 1):
                continue
        if hoisted is None:
            x.instrs = [*x.instrs, *a.instrs]
            x.terminator = second
            a.instrs = []
        else:
            x.instrs = [*x.instrs, *hoisted, c2]
            x.terminator = replace(first, cond=c2.out)
            moved = {id(i) for i in (*hoisted, c2)}
            a.instrs = [i for i in a.instrs if id(i) not in moved]
            a.terminator = n.Jump(line=second.line, to=second.if_true)
        changed = True
        break  # one rewrite per run (the pipeline repeats): the CFG and definitions changed
    if changed:
        drop_unreachable(out)
    return out


_TOUCHES_NOTHING = (n.PureInstr, n.InBounds, n.LoadPacket)
"""What may stand between the two checks of the local form: nothing that moves the packet, writes
anything or calls anything."""


def _hoistable(x: n.Block, a: n.Block, c1: n.InBounds, c2: n.InBounds, second: n.Branch,
               defs: Mapping[n.Value, n.Instr]) -> list[n.Instr] | None:
    """The instructions of `^a` that `c2`'s offset is computed from, in order (all pure), when `c1` is
    tested in `^x` after everything there that touches the packet, `^a` holds only pure instructions,
    checks and packet reads, and `c2` is one of them; else None."""
    if second.if_true.target == second.if_false.target:
        return None
    if not any(i is c1 for i in x.instrs) or not any(i is c2 for i in a.instrs):
        return None
    after_c1 = x.instrs[next(k for k, i in enumerate(x.instrs) if i is c1) + 1:]
    if not all(isinstance(i, _TOUCHES_NOTHING) for i in (*after_c1, *a.instrs)):
        return None
    in_a = {id(i) for i in a.instrs}
    needed: set[int] = set()
    pending = [c2.offset]
    while pending:
        i = defs.get(pending.pop())
        if i is None or id(i) not in in_a or id(i) in needed:
            continue  # defined above `^a` (it dominates `^x`'s end too) or already taken
        if not isinstance(i, n.PureInstr):
            return None  # a packet read or a check: it cannot move above the check that guards it
        needed.add(id(i))
        pending += i.operands()
    return [i for i in a.instrs if id(i) in needed]


def _same_failure(e1: n.Edge, e2: n.Edge, blocks: dict[str, n.Block]) -> bool:
    """Whether following `e1` and following `e2` do the same: one target with the same arguments, or two
    targets without parameters that each return the same constant and do nothing else."""
    if e1.target == e2.target:
        return e1.args == e2.args
    returned = [_returned_constant(blocks[e.target]) for e in (e1, e2)]
    return returned[0] is not None and returned[0] == returned[1]


def _returned_constant(b: n.Block) -> tuple[object, int] | None:
    """(type, value) of the constant `b` returns when that is all it does."""
    term = b.terminator
    if b.params or not isinstance(term, n.Return) or len(b.instrs) != 1:
        return None
    (i,) = b.instrs
    if not isinstance(i, n.Const) or term.value != i.out:
        return None
    return i.out.type, i.value
