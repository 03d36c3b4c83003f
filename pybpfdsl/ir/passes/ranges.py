"""Value ranges: for each integer value of a program, an interval its value always lies in.

An interval `[lo, hi]` bounds a value as its type reads it (a signed type's values as signed numbers).
Constants, widening conversions, packet loads and the packet's length, masks, shifts, bitwise or and xor
of non-negative values, sums and products that do not wrap, and `min`/`max` written as a select on a
comparison of its own arms narrow a type's full range; anything else has it. Block parameters take the
union of what their edges pass, iterated to a fixpoint (loops that keep growing a parameter give it its
type's range after `MAX_ROUNDS`).

A select `c ? x : y` on `c = cmp op a, b` knows more about each arm than its range: on the true side
`a op b` holds, on the false side its negation, which bounds an arm that is `a` or `b` by the other (so
`min(x, 10**9)`, written by the frontend as `select (cmp lt K, x), K, x`, lies in [0, 10**9]).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import ScalarType

PACKET_LEN_MAX = (1 << 31) - 1
"""What the packet's length stays below: an XDP buffer's linear data (data_end - data) is a page or a few;
the provers assume at most 0xFFFF bytes, the interpreters run real frames."""
MAX_ROUNDS = 8
"""Fixpoint rounds over the blocks before a still-growing parameter is given its type's range."""


@dataclass(frozen=True)
class Interval:
    lo: int
    hi: int

    def union(self, other: Interval) -> Interval:
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    def meet(self, other: Interval) -> Interval:
        return Interval(max(self.lo, other.lo), min(self.hi, other.hi))

    def within(self, lo: int, hi: int) -> bool:
        return lo <= self.lo and self.hi <= hi


def full(t: ScalarType) -> Interval:
    return Interval(t.min, t.max)


def _integer(v: n.Value) -> ScalarType | None:
    t = v.type
    return t if isinstance(t, ScalarType) and not t.is_fixed and not t.is_bool else None


Ranges = dict[n.Value, Interval]


def value_ranges(program: n.Program) -> Ranges:
    """An interval for every integer value of `program` (block parameters included)."""
    cfg = Cfg.of(program)
    blocks = {b.name: b for b in program.blocks}
    defs = {i.result: i for b in program.blocks for i in b.instrs if i.result is not None}
    ranges: Ranges = {}
    incoming: Ranges = {}
    for _ in range(MAX_ROUNDS):
        before = dict(ranges)
        _round(cfg, blocks, defs, ranges, incoming)
        if ranges == before:
            return ranges
    # Not settled: every parameter gets its type's range, and the instructions follow from that.
    params = {p for b in program.blocks for p in b.params if _integer(p) is not None}
    for p in params:
        ranges[p] = _full_of(p)
    _round(cfg, blocks, defs, ranges, {}, frozen=params)
    return ranges


def _round(cfg: Cfg, blocks: dict[str, n.Block], defs: dict[n.Value, n.Instr], ranges: Ranges,
           incoming: Ranges, frozen: set[n.Value] | None = None) -> None:
    """One pass over the blocks in reverse postorder; `incoming` gathers what the edges pass each parameter
    (kept from round to round, so a loop's back edge counts from the second round on)."""
    for name in cfg.order:
        b = blocks[name]
        for p in b.params:
            if frozen is None and p in incoming:
                ranges[p] = incoming[p]
        for i in b.instrs:
            out = i.result
            t = _integer(out) if out is not None else None
            if out is not None and t is not None:
                ranges[out] = _of(i, t, lambda v: ranges.get(v) or _full_of(v), defs).meet(full(t))
        term = b.terminator
        for e in term.edges() if term is not None else ():
            for p, a in zip(blocks[e.target].params, e.args, strict=True):
                if _integer(p) is not None:
                    r = ranges.get(a) or _full_of(a)
                    incoming[p] = r if p not in incoming else incoming[p].union(r)


def _full_of(v: n.Value) -> Interval:
    t = _integer(v)
    assert t is not None
    return full(t)


def _of(i: n.Instr, t: ScalarType, get: Callable[[n.Value], Interval], defs: dict[n.Value, n.Instr]) -> Interval:
    """The interval of `i`'s result, of integer type `t`, from its operands' intervals."""
    if isinstance(i, n.Const):
        return Interval(i.value, i.value)
    if isinstance(i, n.PacketLen):
        return Interval(0, PACKET_LEN_MAX)
    if isinstance(i, n.Convert):
        source = i.value.type
        if isinstance(source, ScalarType) and source.is_bool:
            return Interval(0, 1)
        if _integer(i.value) is not None:
            r = get(i.value)
            return r if r.within(t.min, t.max) else full(t)
        return full(t)
    if isinstance(i, n.Binary):
        return _binary(i.op, t, get(i.lhs), get(i.rhs))
    if isinstance(i, n.Select):
        return _select(i, get, defs)
    return full(t)


def _binary(op: BinOp, t: ScalarType, a: Interval, b: Interval) -> Interval:
    whole = full(t)
    if op is BinOp.ADD:
        r = Interval(a.lo + b.lo, a.hi + b.hi)
    elif op is BinOp.SUB:
        r = Interval(a.lo - b.hi, a.hi - b.lo)
    elif op is BinOp.MUL:
        corners = [x * y for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
        r = Interval(min(corners), max(corners))
    elif op is BinOp.AND and a.lo >= 0 and b.lo >= 0:
        r = Interval(0, min(a.hi, b.hi))
    elif op is BinOp.SHR and a.lo >= 0 and b.lo == b.hi and 0 <= b.lo < t.bits:
        r = Interval(a.lo >> b.lo, a.hi >> b.lo)
    elif op is BinOp.SHL and a.lo >= 0 and b.lo == b.hi and 0 <= b.lo < t.bits:
        r = Interval(a.lo << b.lo, a.hi << b.lo)  # past the type's top it wraps: refused below
    elif op in (BinOp.OR, BinOp.XOR) and a.lo >= 0 and b.lo >= 0:
        r = Interval(0, (1 << max(a.hi, b.hi).bit_length()) - 1)  # no bit above the larger operand's
    elif op is BinOp.DIV and a.lo >= 0 and b.lo >= 0:
        r = Interval(0, a.hi)  # a quotient of non-negative numbers is at most the dividend (by 0: 0)
    elif op is BinOp.MOD and a.lo >= 0 and b.lo >= 0:
        # by 0 the remainder is the dividend (the IR's rule), so only a divisor that cannot be 0 caps it
        r = Interval(0, a.hi) if b.lo == 0 else Interval(0, min(a.hi, b.hi - 1))
    else:
        return whole
    return r if r.within(whole.lo, whole.hi) else whole  # it may wrap: nothing known


def _select(i: n.Select, get: Callable[[n.Value], Interval], defs: dict[n.Value, n.Instr]) -> Interval:
    yes, no = get(i.if_true), get(i.if_false)
    cond = defs.get(i.cond)
    if isinstance(cond, n.Compare) and _integer(cond.lhs) is not None:
        yes = _refined(i.if_true, yes, cond, True, get)
        no = _refined(i.if_false, no, cond, False, get)
    return yes.union(no)


_NEGATED = {CmpOp.EQ: CmpOp.NE, CmpOp.NE: CmpOp.EQ, CmpOp.LT: CmpOp.GE, CmpOp.GE: CmpOp.LT,
            CmpOp.LE: CmpOp.GT, CmpOp.GT: CmpOp.LE}
_SWAPPED = {CmpOp.EQ: CmpOp.EQ, CmpOp.NE: CmpOp.NE, CmpOp.LT: CmpOp.GT, CmpOp.GT: CmpOp.LT,
            CmpOp.LE: CmpOp.GE, CmpOp.GE: CmpOp.LE}


def _refined(arm: n.Value, r: Interval, cond: n.Compare, holds: bool, get: Callable[[n.Value], Interval]
             ) -> Interval:
    """`r`, the interval of `arm`, narrowed by what `cond` (true when `holds`) says of `arm`."""
    op = cond.op if holds else _NEGATED[cond.op]
    if arm == cond.lhs:
        other = get(cond.rhs)
    elif arm == cond.rhs:
        other, op = get(cond.lhs), _SWAPPED[op]
    else:
        return r
    # `arm op other` holds, for some value of `other` in its interval
    if op is CmpOp.LT:
        return r.meet(Interval(r.lo, other.hi - 1))
    if op is CmpOp.LE:
        return r.meet(Interval(r.lo, other.hi))
    if op is CmpOp.GT:
        return r.meet(Interval(other.lo + 1, r.hi))
    if op is CmpOp.GE:
        return r.meet(Interval(other.lo, r.hi))
    if op is CmpOp.EQ:
        return r.meet(other)
    return r
