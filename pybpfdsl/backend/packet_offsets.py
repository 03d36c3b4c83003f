"""How a packet offset is added to the packet pointer so that the kernel sees it bounded in the very
register that is added, whatever LLVM does to its computation.

The kernel refuses `pkt + r` unless r's range is known, and it learns ranges only from what happens to r
itself. A plain `off & 0x7FFF` is not enough: LLVM drops the mask where it knows a bound from elsewhere
(a test of another register, a loop's exit test), and loop strength reduction rewrites a loop's index as
the sum of other registers (`r5 = i - 1 + 2**32`, `r9 = 2**32 + 1` - "math between pkt pointer and
4294967296", generated program 40089). A mask by a constant LLVM cannot see (`barriers.hidden`) stays;
but over the whole offset (`payload + i`) in a loop it hides the loop-invariant `data + payload` and makes
a second induction variable, a second loop head to the verifiers (the reverted attempt, da52ab1: our
verifier could no longer show that a payload loop with `break` ends). So the offset is split into the
terms of its sum (`OffsetPlan`):

* a term the kernel bounds by its own computation (a constant, a narrow load, a mask, shifts and sums of
  those) and that no loop varies, or a block parameter no loop varies (a header's offset, computed on
  each path), is added as it is;
* a term a loop varies (its index) is masked alone, with the least all-ones constant over its largest
  value (`& 15` for a `range(16)` index, in the register the loop tests), which changes nothing:
  `PointRanges` shows the term lies there;
* other terms need no loop's care: the whole sum is masked once, by the all-ones constant over its
  largest value (one register, which the program's own test of the offset may share);
* when some term's range is not known (or the terms together may pass the limit), the whole offset is
  masked with `MAX_PACKET_OFFSET` (`OffsetPlan` None; beyond it the check fails anyway).

`PointRanges` is `ir.passes.ranges` (one interval per value) with what the branches dominating a block
tested: a loop's counter is below its bound inside the loop, which the intervals alone cannot say (its
parameter grows from round to round; here it is widened to the constants the program compares with).
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpfdsl.ir import nodes as n
from pybpfdsl.ir.passes.cfg import Cfg
from pybpfdsl.ir.passes.ranges import Interval, Ranges, full
from pybpfdsl.lang.arith import BinOp, CmpOp
from pybpfdsl.lang.types import ScalarType

__all__ = ["OffsetPlan", "OffsetPlanner", "PointRanges", "Term"]

_WIDEN_AFTER = 3
"""Rounds before a loop parameter that still grows is widened to the next constant compared with."""
_MAX_ROUNDS = 40
"""Rounds before giving up (then only the plain intervals are used)."""
_DEPTH = 6
"""How deep the terms of an offset and their computations are followed."""

_Fact = tuple[n.Compare, bool]
"""A comparison and whether it holds (the branch edge it was learnt on)."""


def _integer(v: n.Value) -> ScalarType | None:
    t = v.type
    return t if isinstance(t, ScalarType) and not t.is_fixed and not t.is_bool else None


class PointRanges:
    """Intervals of integer values, refined by the comparisons that hold where they are used."""

    def __init__(self, program: n.Program, cfg: Cfg, defs: dict[n.Value, n.Instr], base: Ranges) -> None:
        self.cfg = cfg
        self.defs = defs
        self.base = base
        self.blocks = {b.name: b for b in program.blocks}
        self.facts: dict[str, tuple[_Fact, ...]] = {}
        for name in cfg.order:
            own: tuple[_Fact, ...] = ()
            preds = cfg.preds[name]
            if len(preds) == 1:
                term = self.blocks[preds[0]].terminator
                if isinstance(term, n.Branch) and term.if_true.target != term.if_false.target:
                    own = self._fact(term.cond, term.if_true.target == name)
            idom = cfg.idom.get(name)
            self.facts[name] = own + (self.facts[idom] if idom is not None else ())
        self.varying = self._varying()
        self.ranges = self._solve()

    def _fact(self, cond: n.Value, holds: bool) -> tuple[_Fact, ...]:
        d = self.defs.get(cond)
        return ((d, holds),) if isinstance(d, n.Compare) and _integer(d.lhs) is not None else ()

    def _varying(self) -> set[n.Value]:
        """The parameters of loop headers that a back edge changes (a loop's counter, an accumulator)."""
        found: set[n.Value] = set()
        for name in self.cfg.order:
            term = self.blocks[name].terminator
            for e in term.edges() if term is not None else ():
                if self.cfg.dominates(e.target, name):  # a back edge
                    found.update(p for p, a in zip(self.blocks[e.target].params, e.args, strict=True) if a != p)
        return found

    # -- the fixpoint ----------------------------------------------------------------

    def _solve(self) -> Ranges:
        thresholds = sorted({c for b in self.blocks.values() for i in b.instrs if isinstance(i, n.Compare)
                             for side in (i.lhs, i.rhs) if isinstance(d := self.defs.get(side), n.Const)
                             for c in (d.value - 1, d.value, d.value + 1)})
        ranges: Ranges = {}
        incoming: Ranges = {}
        for round_ in range(_MAX_ROUNDS):
            changed = False
            for name in self.cfg.order:
                block = self.blocks[name]
                for p in block.params:
                    t = _integer(p)
                    new = incoming.get(p)
                    if t is None or new is None:
                        continue
                    old = ranges.get(p)
                    if old is not None:
                        new = old.union(new)
                        if round_ >= _WIDEN_AFTER and new != old:
                            new = _widened(new, old, thresholds, t)
                    if new != old:
                        ranges[p], changed = new, True
                for i in block.instrs:
                    out = i.result
                    if out is not None and _integer(out) is not None:
                        r = self._eval(i, name, ranges)
                        if ranges.get(out) != r:
                            ranges[out], changed = r, True
                term = block.terminator
                for index, e in enumerate(term.edges() if term is not None else ()):
                    facts = self.facts[name]
                    if isinstance(term, n.Branch):
                        facts = self._fact(term.cond, index == 0) + facts
                    for p, a in zip(self.blocks[e.target].params, e.args, strict=True):
                        if _integer(p) is not None:
                            r = self._refined(a, self._get(a, ranges), facts, ranges)
                            before = incoming.get(p)
                            incoming[p] = r if before is None else before.union(r)
                            changed = changed or incoming[p] != before
            if not changed:
                return ranges
        return dict(self.base)  # not settled: the plain intervals

    def _get(self, v: n.Value, ranges: Ranges) -> Interval:
        r = ranges.get(v) or self.base.get(v)
        if r is None:
            t = _integer(v)
            assert t is not None
            return full(t)
        return r

    def _eval(self, i: n.Instr, block: str, ranges: Ranges) -> Interval:
        """`i`'s result from its operands as they are in `block` (where it is computed), within the plain
        interval of the result (both hold)."""
        out = i.result
        assert out is not None
        t = _integer(out)
        assert t is not None
        whole = self.base.get(out) or full(t)
        facts = self.facts[block]

        def get(v: n.Value) -> Interval:
            return self._refined(v, self._get(v, ranges), facts, ranges)

        if isinstance(i, n.Const):
            return Interval(i.value, i.value)
        r: Interval | None = None
        if isinstance(i, n.Convert) and _integer(i.value) is not None:
            r = get(i.value)
        elif isinstance(i, n.Binary) and _integer(i.lhs) is not None and _integer(i.rhs) is not None:
            r = _binary(i.op, get(i.lhs), get(i.rhs), t.bits)
        if r is None or not r.within(t.min, t.max):
            return whole
        m = r.meet(whole)
        return m if m.lo <= m.hi else r

    def _refined(self, v: n.Value, r: Interval, facts: tuple[_Fact, ...], ranges: Ranges) -> Interval:
        """`r`, the interval of `v`, narrowed by each comparison of `v` in `facts`."""
        for cmp, holds in facts:
            op = cmp.op if holds else _NEGATED[cmp.op]
            if v == cmp.lhs:
                other = self._get(cmp.rhs, ranges)
            elif v == cmp.rhs:
                other, op = self._get(cmp.lhs, ranges), _SWAPPED[op]
            else:
                continue
            r = _narrowed(r, op, other)
        return r

    # -- asking ----------------------------------------------------------------------

    def at(self, v: n.Value, block: str) -> Interval | None:
        """`v`'s interval where `block` runs (None: not an integer)."""
        if _integer(v) is None:
            return None
        return self._refined(v, self._get(v, self.ranges), self.facts.get(block, ()), self.ranges)


_NEGATED = {CmpOp.EQ: CmpOp.NE, CmpOp.NE: CmpOp.EQ, CmpOp.LT: CmpOp.GE, CmpOp.GE: CmpOp.LT,
            CmpOp.LE: CmpOp.GT, CmpOp.GT: CmpOp.LE}
_SWAPPED = {CmpOp.EQ: CmpOp.EQ, CmpOp.NE: CmpOp.NE, CmpOp.LT: CmpOp.GT, CmpOp.GT: CmpOp.LT,
            CmpOp.LE: CmpOp.GE, CmpOp.GE: CmpOp.LE}


def _narrowed(r: Interval, op: CmpOp, other: Interval) -> Interval:
    """`r` where `x op y` holds for x in `r` and some y in `other` (an empty result keeps `r`: that code
    cannot run, and any interval is true of it)."""
    if op is CmpOp.LT:
        m = r.meet(Interval(r.lo, other.hi - 1))
    elif op is CmpOp.LE:
        m = r.meet(Interval(r.lo, other.hi))
    elif op is CmpOp.GT:
        m = r.meet(Interval(other.lo + 1, r.hi))
    elif op is CmpOp.GE:
        m = r.meet(Interval(other.lo, r.hi))
    elif op is CmpOp.EQ:
        m = r.meet(other)
    else:
        return r
    return m if m.lo <= m.hi else r


def _binary(op: BinOp, a: Interval, b: Interval, bits: int) -> Interval | None:
    """The sum, difference, mask or constant shift (by less than `bits`, the type's width) of values in
    `a` and `b`, as mathematical numbers (the caller refuses a result past its type: it may wrap); None
    for other operations."""
    if op is BinOp.ADD:
        return Interval(a.lo + b.lo, a.hi + b.hi)
    if op is BinOp.SUB:
        return Interval(a.lo - b.hi, a.hi - b.lo)
    if op is BinOp.AND and a.lo >= 0 and b.lo >= 0:
        return Interval(0, min(a.hi, b.hi))
    if op in (BinOp.SHL, BinOp.SHR) and a.lo >= 0 and b.lo == b.hi and 0 <= b.lo < bits:
        return Interval(a.lo << b.lo, a.hi << b.lo) if op is BinOp.SHL else Interval(a.lo >> b.lo, a.hi >> b.lo)
    return None


def _widened(grown: Interval, old: Interval, thresholds: list[int], t: ScalarType) -> Interval:
    """`grown` with each bound that moved past `old` pushed out to the next threshold (or the type's end)."""
    lo, hi = grown.lo, grown.hi
    if lo < old.lo:
        lo = max((c for c in thresholds if c <= lo), default=t.min)
        lo = max(lo, t.min)
    if hi > old.hi:
        hi = min((c for c in thresholds if c >= hi), default=t.max)
        hi = min(hi, t.max)
    return Interval(lo, hi)


# -- offsets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Term:
    """One value of an offset's sum: added as it is (`mask` None), or pinned and masked with `mask`."""

    value: n.Value
    mask: int | None


@dataclass(frozen=True)
class OffsetPlan:
    """An offset as the terms the packet pointer is stepped by, and a constant."""

    terms: tuple[Term, ...]
    k: int
    reach: int
    """The largest value the terms and k add up to (what the kernel learns of the pointer)."""


class OffsetPlanner:
    """Plans the offsets of one program (`plan`), remembering which values the kernel bounds itself."""

    def __init__(self, program: n.Program, cfg: Cfg, defs: dict[n.Value, n.Instr], base: Ranges) -> None:
        self.defs = defs
        self.ranges = PointRanges(program, cfg, defs, base)
        self.args_of: dict[n.Value, list[n.Value]] = {}
        blocks = {b.name: b for b in program.blocks}
        for b in program.blocks:
            for e in b.terminator.edges() if b.terminator is not None else ():
                for p, a in zip(blocks[e.target].params, e.args, strict=True):
                    self.args_of.setdefault(p, []).append(a)
        self.tracked: dict[n.Value, bool] = {}
        self.changing: dict[n.Value, bool] = {}

    def plan(self, value: n.Value, block: str, limit: int) -> OffsetPlan | None:
        """How to add the u64 offset `value` (read in `block`) to the packet pointer, each term bounded in
        its register and all together at most `limit`; None when that cannot be shown (mask it whole)."""
        parts: list[n.Value] = []
        k = 0
        work = [(value, 0)]
        while work:
            v, depth = work.pop()
            d = self.defs.get(v)
            if isinstance(d, n.Const):
                k += d.value
            elif isinstance(d, n.Binary) and d.op is BinOp.ADD and depth < _DEPTH:
                work += [(d.rhs, depth + 1), (d.lhs, depth + 1)]
            else:
                parts.append(v)
        terms: list[Term] = []
        reach, highest = k, k
        for v in parts:
            r = self.ranges.at(v, block)
            if r is None or not r.within(0, limit):
                return None
            highest += r.hi
            if self.kernel_bounded(v, 0):
                terms.append(Term(v, None))
                reach += r.hi
            else:
                terms.append(Term(v, _ones(r.hi)))
                reach += _ones(r.hi)
        if highest > limit:
            return None
        if all(t.mask is None for t in terms) or any(self.varies(t.value, 0) for t in terms if t.mask is not None):
            # A loop's index masked alone: the rest (the payload's offset) stays out of the loop, and the
            # index in the register the loop tests, as verifiers follow loops best.
            return OffsetPlan(tuple(terms), k, reach) if reach <= limit else None
        # Else one mask over the whole sum, which the program may test too (one register, two slots).
        whole = _ones(highest)
        return OffsetPlan((Term(value, whole),), 0, whole) if whole <= limit else None

    def varies(self, v: n.Value, depth: int) -> bool:
        """Whether a loop changes `v` (it depends on a loop parameter a back edge changes), as far as the
        operations that compute it are followed."""
        known = self.changing.get(v)
        if known is not None:
            return known
        d = self.defs.get(v)
        if d is None:
            found = v in self.ranges.varying
        elif depth > _DEPTH:
            found = True
        else:
            found = isinstance(d, n.PureInstr) and any(self.varies(x, depth + 1) for x in d.operands())
        self.changing[v] = found
        return found

    def kernel_bounded(self, v: n.Value, depth: int) -> bool:
        """Whether the kernel bounds `v` in its register by following its computation (on each path), with
        no loop changing it (LLVM's loop passes rewrite such values as sums of other registers)."""
        known = self.tracked.get(v)
        if known is not None:
            return known
        if depth > _DEPTH:
            return False
        self.tracked[v] = False  # (a cycle of parameters: not followed)
        found = self._bounded(v, depth)
        self.tracked[v] = found
        return found

    def _bounded(self, v: n.Value, depth: int) -> bool:
        d = self.defs.get(v)
        if d is None:  # a block parameter: bounded on each path into its block
            return v not in self.ranges.varying and all(self.kernel_bounded(a, depth + 1)
                                                        for a in self.args_of.get(v, ()) if a != v)
        if isinstance(d, n.Const | n.LoadPacket):
            return True
        if isinstance(d, n.Convert):
            source = _integer(d.value)
            return source is not None and (not source.signed or source.bits >= _bits(v)) \
                and self.kernel_bounded(d.value, depth + 1)
        if isinstance(d, n.Binary):
            if d.op in (BinOp.AND, BinOp.ADD, BinOp.OR, BinOp.XOR):
                return self.kernel_bounded(d.lhs, depth + 1) and self.kernel_bounded(d.rhs, depth + 1)
            if d.op in (BinOp.MUL, BinOp.SHL, BinOp.SHR) and isinstance(self.defs.get(d.rhs), n.Const):
                return self.kernel_bounded(d.lhs, depth + 1)
        return False


def _ones(hi: int) -> int:
    """The least all-ones number at least `hi` (a mask that keeps every value in [0, hi])."""
    return (1 << hi.bit_length()) - 1


def _bits(v: n.Value) -> int:
    t = _integer(v)
    return t.bits if t is not None else 64
