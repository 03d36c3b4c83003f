"""Masks that change nothing a value's range allows: `and x, K` is `x` when `K` keeps every bit `x` may
have, and the constant 0 when it clears them all (`x` in [0, 2**b) by `ranges.py`; `K` has all, or
none, of the low b bits).

A write of a 6-byte field is a read-modify-write of 8 bytes whose top two are kept
(`(old & 0xFFFF000000000000) | (new & 0xFFFFFFFFFFFF)`); the old value was read 6 bytes wide, so the
kept part is 0 and the new value already fits: the read goes (`dce`), and with it the bounds check the
backend makes for it.
"""

from __future__ import annotations

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import definitions
from pybpfdsl.ir.passes.ranges import Ranges, value_ranges
from pybpfdsl.ir.passes.rewrite import Fresh, copy_program, rename_all
from pybpfdsl.lang.arith import BinOp
from pybpfdsl.lang.types import ScalarType


def run(program: n.Program) -> n.Program:
    out = copy_program(program)
    defs = definitions(out)
    if not any(_is_and(i) for b in out.blocks for i in b.instrs):
        return out
    ranges = value_ranges(out)
    fresh = Fresh(out)
    names: dict[n.Value, n.Value] = {}
    for b in out.blocks:
        kept: list[n.Instr] = []
        for i in b.instrs:
            decided = _decided(i, defs, ranges) if isinstance(i, n.Binary) and _is_and(i) else None
            if decided is None or not isinstance(i, n.Binary):
                kept.append(i)
            elif isinstance(decided, n.Value):
                names[i.out] = decided
            else:  # every bit cleared: the constant 0 in the and's place
                zero = fresh.value(i.out.type, i.out.hint)
                kept.append(n.Const(zero, 0, line=i.line))
                names[i.out] = zero
        b.instrs = kept
    rename_all(out, names)
    return out


def _is_and(i: n.Instr) -> bool:
    t = i.out.type if isinstance(i, n.Binary) else None
    return isinstance(i, n.Binary) and i.op is BinOp.AND and isinstance(t, ScalarType) and not t.is_fixed \
        and not t.is_bool


def _decided(i: n.Binary, defs: dict[n.Value, n.Instr], ranges: Ranges) -> n.Value | int | None:
    """What `i` (an `and`) is: one of its operands, 0, or None when its range does not decide it."""
    assert isinstance(i.out.type, ScalarType)
    width = (1 << i.out.type.bits) - 1
    for x, mask in ((i.lhs, i.rhs), (i.rhs, i.lhs)):
        k = defs.get(mask)
        r = ranges.get(x)
        if not isinstance(k, n.Const) or r is None:
            continue
        if r.lo < 0:
            continue
        low = (1 << r.hi.bit_length()) - 1  # every bit x may have
        bits = k.value & width
        if bits & low == low:
            return x
        if bits & low == 0:
            return 0
    return None
