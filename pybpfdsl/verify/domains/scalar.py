"""Scalars: the reduced product of a tnum and four intervals (unsigned/signed, full register/low half).

A :class:`Scalar` of ``width`` bits (64 by default, with a ``width // 2``-bit low half standing for the
32-bit subregister) is the conjunction of five facts about one register: its bits (``tnum``), its
unsigned and signed value (``u64``, ``s64``) and the unsigned and signed value of its low half (``u32``,
``s32``); γ is the intersection of the five components' γ. Each transfer function applies the matching
operation to every component independently — sound because each component operation is — and then
:meth:`Scalar.reduce` lets the components tighten one another, the way the kernel's ``reg_bounds_sync``
does: every reduction step intersects a component with a set that provably contains all members, so
reduction never loses a value; it reports bottom (empty) rather than leaving contradictory bounds.
32-bit operations run the same code on the low half as a ``width // 2``-bit scalar and zero-extend the
result; 32-bit jumps refine only the low-half components, and the reduction alone carries what is
sound back into the 64-bit view.

Long because each ALU operation (about twenty) needs its transfer on all five components plus the
reduction between them, and the reduction is what the operations share.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from pybpfdsl.bpf.opcode import JMP_OPS, AluOp, JmpOp
from pybpfdsl.verify.domains import interval as iv
from pybpfdsl.verify.domains.bits import mask_of, to_signed
from pybpfdsl.verify.domains.interval import Interval, from_patterns, wrap_range
from pybpfdsl.verify.domains.tnum import Tnum

__all__ = [
    "ALU_BINARY",
    "Scalar",
    "add",
    "alu",
    "arsh",
    "bit_and",
    "bit_or",
    "bit_xor",
    "bswap",
    "end",
    "lsh",
    "mov",
    "movsx",
    "mul",
    "neg",
    "refine",
    "rsh",
    "sdiv",
    "smod",
    "sub",
    "truncate",
    "udiv",
    "umod",
]

_MAX_REDUCE_ROUNDS = 8

_REDUCED: dict[Scalar, Scalar] = {}
"""Scalar → its reduction (:meth:`Scalar.reduce` is a pure function of the scalar, so this is exact)."""
_REDUCED_MAX = 1 << 16
"""Entries kept before the memo starts over (bounds the memory of a long-running process)."""


_TOPS: dict[int, Scalar] = {}
_BOTTOMS: dict[int, Scalar] = {}
"""Top and bottom of each width, made once (scalars are immutable; see ``Interval.top``)."""


@dataclass(slots=True, init=False)
class Scalar:
    """A register value: tnum × u64 × s64 × u32 × s32 (the last two over the low ``width // 2`` bits).

    Immutable, as if frozen (every field but the hash's memo ``Final``; see ``__eq__`` and ``__hash__``),
    with its own ``__init__``: see :class:`.tnum.Tnum`."""

    tnum: Final[Tnum]
    u64: Final[Interval]
    s64: Final[Interval]
    u32: Final[Interval]
    s32: Final[Interval]
    _hash: int = field(init=False, compare=False, repr=False)
    """The hash, once computed (0: not yet): see :meth:`__hash__`."""

    def __init__(self, tnum: Tnum, u64: Interval, s64: Interval, u32: Interval, s32: Interval) -> None:
        self.tnum = tnum
        self.u64 = u64
        self.s64 = s64
        self.u32 = u32
        self.s32 = s32
        self._hash = 0

    # -- constructors -------------------------------------------------------

    @classmethod
    def make(
        cls,
        width: int = 64,
        *,
        tnum: Tnum | None = None,
        u64: Interval | None = None,
        s64: Interval | None = None,
        u32: Interval | None = None,
        s32: Interval | None = None,
    ) -> Scalar:
        """The reduced scalar satisfying the given facts (missing ones are top)."""
        h = width // 2
        return cls(
            tnum or Tnum.unknown(width),
            u64 or Interval.top(width, False),
            s64 or Interval.top(width, True),
            u32 or Interval.top(h, False),
            s32 or Interval.top(h, True),
        ).reduce()

    @classmethod
    def top(cls, width: int = 64) -> Scalar:
        hit = _TOPS.get(width)
        if hit is None:
            h = width // 2
            hit = _TOPS[width] = cls(Tnum.unknown(width), Interval.top(width), Interval.top(width, True),
                                     Interval.top(h), Interval.top(h, True))
        return hit

    @classmethod
    def bottom(cls, width: int = 64) -> Scalar:
        hit = _BOTTOMS.get(width)
        if hit is None:
            h = width // 2
            hit = _BOTTOMS[width] = cls(Tnum.unknown(width), Interval.bottom(width), Interval.bottom(width, True),
                                        Interval.bottom(h), Interval.bottom(h, True))
        return hit

    @classmethod
    def const(cls, x: int, width: int = 64) -> Scalar:
        return cls.make(width, tnum=Tnum.const(x, width))

    @classmethod
    def urange(cls, lo: int, hi: int, width: int = 64) -> Scalar:
        return cls.make(width, u64=Interval(lo, hi, width, False))

    @classmethod
    def srange(cls, lo: int, hi: int, width: int = 64) -> Scalar:
        return cls.make(width, s64=Interval(lo, hi, width, True))

    # -- queries ------------------------------------------------------------

    @property
    def width(self) -> int:
        return self.tnum.width

    @property
    def half(self) -> int:
        return self.width // 2

    @property
    def is_bottom(self) -> bool:
        # Written out (not through Interval.is_bottom): the analysis asks this millions of times.
        u, s, u32, s32 = self.u64, self.s64, self.u32, self.s32
        return u.lo > u.hi or s.lo > s.hi or u32.lo > u32.hi or s32.lo > s32.hi

    @property
    def is_top(self) -> bool:
        return self == Scalar.top(self.width)

    @property
    def is_const(self) -> bool:
        return self.tnum.mask == 0 and not self.is_bottom

    @property
    def const_value(self) -> int | None:
        """The single member's pattern, if there is exactly one."""
        t = self.tnum
        if t.mask or self.is_bottom:  # the mask first: most scalars asked are not constants
            return None
        return t.value

    def contains(self, x: int) -> bool:
        """Whether the ``width``-bit pattern ``x`` is a member (satisfies all five components)."""
        return (
            self.tnum.contains(x)
            and self.u64.contains(x)
            and self.s64.contains(x)
            and self.u32.contains(x)
            and self.s32.contains(x)
        )

    def __str__(self) -> str:
        if self.is_bottom:
            return "⊥"
        if self.is_const:
            return f"{self.tnum.value:#x}"
        return f"scalar(u64={self.u64}, s64={self.s64}, u32={self.u32}, s32={self.s32}, var_off={self.tnum})"

    # -- lattice ------------------------------------------------------------

    def le(self, other: Scalar) -> bool:
        """Componentwise inclusion (implies γ(self) ⊆ γ(other))."""
        # Tnum.le and Interval.le written out (no component of a non-bottom scalar is bottom): the
        # fixpoint's and the exploration's inclusion tests run this millions of times.
        u, s, u32, s32 = self.u64, self.s64, self.u32, self.s32
        if u.lo > u.hi or s.lo > s.hi or u32.lo > u32.hi or s32.lo > s32.hi:
            return True
        t, ot = self.tnum, other.tnum
        if t.mask & ~ot.mask or (t.value ^ ot.value) & ~ot.mask:
            return False
        o = other.u64
        if not (o.lo <= u.lo and u.hi <= o.hi):
            return False
        o = other.s64
        if not (o.lo <= s.lo and s.hi <= o.hi):
            return False
        o = other.u32
        if not (o.lo <= u32.lo and u32.hi <= o.hi):
            return False
        o = other.s32
        return o.lo <= s32.lo and s32.hi <= o.hi

    def join(self, other: Scalar) -> Scalar:
        if self.is_bottom:
            return other
        if other.is_bottom:
            return self
        return Scalar(
            self.tnum.join(other.tnum),
            self.u64.join(other.u64),
            self.s64.join(other.s64),
            self.u32.join(other.u32),
            self.s32.join(other.s32),
        ).reduce()

    def meet(self, other: Scalar) -> Scalar:
        t = self.tnum.meet(other.tnum)
        if t is None:
            return Scalar.bottom(self.width)
        return Scalar(
            t,
            self.u64.meet(other.u64),
            self.s64.meet(other.s64),
            self.u32.meet(other.u32),
            self.s32.meet(other.s32),
        ).reduce()

    def widen(self, other: Scalar, thresholds: Sequence[int] = ()) -> Scalar:
        """Componentwise widening, deliberately *not* reduced: reduction could undo a widening step and
        break termination.  ``thresholds`` are values tried before the extremes in each interval view."""
        if self.is_bottom:
            return other
        if other.is_bottom:
            return self

        def fit(i: Interval) -> list[int]:
            return [t for t in thresholds if i.tmin <= t <= i.tmax]

        return Scalar(
            self.tnum.widen(other.tnum),
            self.u64.widen(other.u64, fit(self.u64)),
            self.s64.widen(other.s64, fit(self.s64)),
            self.u32.widen(other.u32, fit(self.u32)),
            self.s32.widen(other.s32, fit(self.s32)),
        )

    def narrow(self, other: Scalar) -> Scalar:
        """Componentwise narrowing (for ``other ⊑ self``); not reduced, so descending chains stay short."""
        if self.is_bottom or other.is_bottom:
            return other
        result = Scalar(
            self.tnum.narrow(other.tnum),
            self.u64.narrow(other.u64),
            self.s64.narrow(other.s64),
            self.u32.narrow(other.u32),
            self.s32.narrow(other.s32),
        )
        return Scalar.bottom(self.width) if result.is_bottom else result

    # -- reduction ------------------------------------------------------------

    def __hash__(self) -> int:
        # One flat tuple of the bounds rather than the dataclass' hash of hashes, computed once per
        # scalar: scalars key the analysis' caches (and the values and states that hold them), so this
        # runs millions of times. Equal scalars have equal fields, hence hashes.
        h = self._hash
        if not h:
            t, u, s, u32, s32 = self.tnum, self.u64, self.s64, self.u32, self.s32
            h = hash((t.value, t.mask, u.lo, u.hi, s.lo, s.hi, u32.lo, u32.hi, s32.lo, s32.hi)) or 1
            self._hash = h
        return h

    def __eq__(self, other: object) -> bool:
        # The dataclass' field-by-field equality written out flat (it builds a tuple of the components,
        # and each component a tuple of its fields): the caches of the scalar operations compare their
        # keys on every hit, and the transfer functions' hits come by the hundred thousand. The cached
        # hashes, where both are known, tell most unequal scalars apart at once.
        if self is other:
            return True
        if type(other) is not Scalar:
            return NotImplemented
        h, g = self._hash, other._hash
        if h and g and h != g:
            return False
        t, o = self.tnum, other.tnum
        if t is not o and (t.value != o.value or t.mask != o.mask or t.width != o.width):
            return False
        return (_same_interval(self.u64, other.u64) and _same_interval(self.s64, other.s64)
                and _same_interval(self.u32, other.u32) and _same_interval(self.s32, other.s32))

    def reduce(self) -> Scalar:
        """Tighten every component with the others until nothing changes; canonical bottom if empty.

        Memoized (see :data:`_REDUCED`): a reduction costs about a millisecond, and the analysis asks for
        the same one again and again (the same joins and operations on every path and pass)."""
        t = self.tnum
        if t.mask == 0:  # a single candidate: the reduction keeps it, exactly, or finds it excluded
            return _reduced_const(t) if self.contains(t.value) else Scalar.bottom(t.width)
        hit = _REDUCED.get(self)
        if hit is not None:
            return hit
        out, fixed = self._reduce()
        if len(_REDUCED) >= _REDUCED_MAX:
            _REDUCED.clear()
        _REDUCED[self] = out
        if fixed:  # a reduced scalar reduces to itself (not so after _MAX_REDUCE_ROUNDS rounds)
            _REDUCED[out] = out
        return out

    def _reduce(self) -> tuple[Scalar, bool]:
        """The reduction, and whether it reached a fixpoint."""
        if self.is_bottom:
            return Scalar.bottom(self.width), True
        cur = self
        for _ in range(_MAX_REDUCE_ROUNDS):
            nxt = _reduce_round(cur)
            if nxt is None:
                return Scalar.bottom(self.width), True
            if nxt == cur:
                return cur, True
            cur = nxt
        return cur, False

    # -- the low half ------------------------------------------------------------

    def subreg(self) -> Scalar:
        """The low half as a ``width // 2``-bit scalar (what ALU32/JMP32 operate on)."""
        return _low_part(self, self.half)

    def with_subreg_facts(self, low: Scalar) -> Scalar:
        """Self intersected with facts about its low half (a refined :meth:`subreg`), then reduced."""
        if low.is_bottom:
            return Scalar.bottom(self.width)
        t = self.tnum.meet(Tnum.unknown(self.width).with_subreg(low.tnum))
        if t is None:
            return Scalar.bottom(self.width)
        return Scalar(t, self.u64, self.s64, self.u32.meet(low.u64), self.s32.meet(low.s64)).reduce()


def _same_interval(a: Interval, b: Interval) -> bool:
    """``a == b`` (see :meth:`Scalar.__eq__`)."""
    return a is b or (a.lo == b.lo and a.hi == b.hi and a.width == b.width and a.signed == b.signed)


# --------------------------------------------------------------------------- #
# Reduction (the analogue of the kernel's reg_bounds_sync)
# --------------------------------------------------------------------------- #


def _reduced_const(t: Tnum) -> Scalar:
    """The reduced scalar whose only member is ``t``'s value: every view its one value."""
    w, x = t.width, t.value
    h = w // 2
    low = x & ((1 << h) - 1)
    sx = x - (1 << w) if x >> (w - 1) else x  # to_signed, written out: a counted loop makes one per step
    slow = low - (1 << h) if low >> (h - 1) else low
    return Scalar(t, Interval(x, x, w, False), Interval(sx, sx, w, True), Interval(low, low, h, False),
                  Interval(slow, slow, h, True))


def _tighten_by_tnum(i: Interval, t: Tnum) -> Interval:
    """Move each bound of ``i`` to the nearest member of ``t`` (per unsigned piece); bottom if none.

    Intersecting with [t.umin, t.umax] alone misses that e.g. {0, 4} ∩ [1, 3] is empty; this is the
    "tnum ∩ range is empty" case that fuzzers found the kernel left as inconsistent bounds.
    """
    pieces = []
    for lo, hi in i.pieces():
        nlo, nhi = t.min_ge(lo), t.max_le(hi)
        if nlo is not None and nhi is not None and nlo <= nhi:
            pieces.append((nlo, nhi))
    return from_patterns(pieces, i.width, i.signed)


def _meet_views(x: Interval, y: Interval) -> Interval:
    """x ∩ γ(y) read in x's view: intersect x with each exact piece of y and take the hull.

    E.g. s64 = [-5, 5] is {0..5} ∪ {2**64-5..2**64-1} unsigned, so with u64 = [0, 100] it gives [0, 5],
    which a plain hull (top) would miss.
    """
    return from_patterns(
        [(q.lo, q.hi) for p in y.split(x.signed) for q in x.meet(p).split(False)], x.width, x.signed
    )


def _first_with_low(lo: int, low_lo: int, low_hi: int, h: int) -> int:
    """Least x >= lo whose low h bits lie in low_lo..low_hi (any integer lo, Python's floor shifts)."""
    base = lo >> h << h
    low = lo - base
    if low < low_lo:
        return base + low_lo
    if low <= low_hi:
        return lo
    return base + (1 << h) + low_lo


def _last_with_low(hi: int, low_lo: int, low_hi: int, h: int) -> int:
    base = hi >> h << h
    low = hi - base
    if low > low_hi:
        return base + low_hi
    if low >= low_lo:
        return hi
    return base - (1 << h) + low_hi


def _tighten_by_low(i: Interval, lows: Sequence[Interval], h: int) -> Interval:
    """Shrink a full-width interval to values whose low half lies in one of ``lows``.

    A 32-bit range constrains only the low half, so it cannot simply be copied into the 64-bit range
    (u32 = [0, 5] allows 0x1_0000_0003): only when the upper half is known — here, when both bounds of
    the 64-bit range share their upper half — does it pin the 64-bit range down to [hi32:lo, hi32:hi].
    In general we only move each 64-bit bound to the nearest value whose low half is allowed, which
    removes no member and covers the known-upper-half case exactly.
    """
    if i.is_bottom or not lows:
        return Interval.bottom(i.width, i.signed)
    lo = min(_first_with_low(i.lo, q.lo, q.hi, h) for q in lows)
    hi = max(_last_with_low(i.hi, q.lo, q.hi, h) for q in lows)
    return Interval(max(i.lo, lo), min(i.hi, hi), i.width, i.signed)


def _reduce_round(x: Scalar) -> Scalar | None:
    w, h = x.width, x.half
    t, u, s, u32, s32 = x.tnum, x.u64, x.s64, x.u32, x.s32
    # tnum -> ranges
    u, s = _tighten_by_tnum(u, t), _tighten_by_tnum(s, t)
    low_t = t.subreg(h)
    u32, s32 = _tighten_by_tnum(u32, low_t), _tighten_by_tnum(s32, low_t)
    # unsigned <-> signed, at each width
    u = _meet_views(u, s)
    s = _meet_views(s, u)
    u32 = _meet_views(u32, s32)
    s32 = _meet_views(s32, u32)
    if u.is_bottom or s.is_bottom or u32.is_bottom or s32.is_bottom:
        return None
    # 64 -> 32: the low halves of a run of consecutive integers form one run modulo 2**h
    for r in (u, s):
        u32 = u32.meet(wrap_range(r.lo, r.hi, h, False))
        s32 = s32.meet(wrap_range(r.lo, r.hi, h, True))
    # 32 -> 64: only by moving bounds to values with an allowed low half (see _tighten_by_low)
    lows = [q for p in s32.split(False) if not (q := u32.meet(p)).is_bottom]
    u, s = _tighten_by_low(u, lows, h), _tighten_by_low(s, lows, h)
    if u.is_bottom or s.is_bottom or u32.is_bottom or s32.is_bottom:
        return None
    # ranges -> tnum
    low_range_t = u32.to_tnum().meet(s32.to_tnum())
    if low_range_t is None:
        return None
    for other in (u.to_tnum(), s.to_tnum(), Tnum.unknown(w).with_subreg(low_range_t)):
        met = t.meet(other)
        if met is None:
            return None
        t = met
    return Scalar(t, u, s, u32, s32)


# --------------------------------------------------------------------------- #
# Changing width
# --------------------------------------------------------------------------- #


def _low_part(a: Scalar, bits: int) -> Scalar:
    """The low ``bits`` bits of ``a`` as a ``bits``-wide scalar."""
    if a.is_bottom:
        return Scalar.bottom(bits)
    u = Interval.top(bits, False)
    s = Interval.top(bits, True)
    sources = [a.u64, a.s64] + ([a.u32, a.s32] if bits <= a.half else [])
    for r in sources:
        u = u.meet(wrap_range(r.lo, r.hi, bits, False))
        s = s.meet(wrap_range(r.lo, r.hi, bits, True))
    return Scalar.make(bits, tnum=a.tnum.subreg(bits), u64=u, s64=s)


def _extend(low: Scalar, width: int, signed: bool) -> Scalar:
    """``low`` zero- or sign-extended to ``width`` bits (its width must be at most ``width``)."""
    if low.is_bottom:
        return Scalar.bottom(width)
    k, h = low.width, width // 2
    src = low.s64 if signed else low.u64  # the extended value equals this number
    u32: Interval | None = None
    s32: Interval | None = None
    if k == h:
        u32, s32 = low.u64, low.s64
    elif k < h:
        s32 = Interval(src.lo, src.hi, h, True)
        u32 = None if signed else Interval(src.lo, src.hi, h, False)
    tnum = low.tnum.sign_extend(width) if signed else low.tnum.zero_extend(width)
    full = Interval(src.lo, src.hi, width, signed)
    if signed:
        return Scalar.make(width, tnum=tnum, s64=full, u32=u32, s32=s32)
    return Scalar.make(width, tnum=tnum, u64=full, s64=Interval(src.lo, src.hi, width, True), u32=u32, s32=s32)


def truncate(a: Scalar, bits: int) -> Scalar:
    """Keep the low ``bits`` bits, zero-extended (``mov32``, ``le16``/``le32`` on a little-endian host)."""
    return a if bits == a.width else _extend(_low_part(a, bits), a.width, False)


def movsx(a: Scalar, bits: int, alu32: bool = False) -> Scalar:
    """Sign-extend the low ``bits`` bits into the register (ALU64) or into the low half, then zero-extend."""
    if alu32:
        return _extend(_extend(_low_part(a, bits), a.half, True), a.width, False)
    return _extend(_low_part(a, bits), a.width, True)


def bswap(a: Scalar, bits: int) -> Scalar:
    """Byte-swap the low ``bits`` bits, zero-extended (ALU64 ``bswap``; ``be`` on a little-endian host).

    The tnum permutes exactly; the ranges are recomputed from it by the reduction.
    """
    if a.is_bottom:
        return a
    return Scalar.make(a.width, tnum=a.tnum.bswap(bits))


def end(a: Scalar, to_be: bool, bits: int) -> Scalar:
    """ALU END on a little-endian host: ``le`` truncates, ``be`` swaps."""
    return bswap(a, bits) if to_be else truncate(a, bits)


# --------------------------------------------------------------------------- #
# ALU transfer functions.  Each applies the component operations and reduces.  The low-half intervals
# are computed directly only where the low half of the result depends on the low halves of the operands
# alone (add, sub, mul, neg, and, or, xor); elsewhere they start at top and the reduction derives them.
# --------------------------------------------------------------------------- #


def _combine(
    a: Scalar,
    b: Scalar,
    t: Tnum,
    op: Callable[[Interval, Interval], Interval],
    low_too: bool,
) -> Scalar:
    h = a.half
    return Scalar(
        t,
        op(a.u64, b.u64),
        op(a.s64, b.s64),
        op(a.u32, b.u32) if low_too else Interval.top(h),
        op(a.s32, b.s32) if low_too else Interval.top(h, True),
    ).reduce()


def _either_bottom(a: Scalar, b: Scalar) -> bool:
    if a.width != b.width:
        raise ValueError(f"operands of widths {a.width} and {b.width}")
    return a.is_bottom or b.is_bottom


def add(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.add(b.tnum), iv.add, True)


def sub(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.sub(b.tnum), iv.sub, True)


def mul(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.mul(b.tnum), iv.mul, True)


def bit_and(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.and_(b.tnum), iv.bit_and, True)


def bit_or(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.or_(b.tnum), iv.bit_or, True)


def bit_xor(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.xor(b.tnum), iv.bit_xor, True)


def udiv(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, Tnum.unknown(a.width), iv.udiv, False)


def umod(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, Tnum.unknown(a.width), iv.umod, False)


def sdiv(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, Tnum.unknown(a.width), iv.sdiv, False)


def smod(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, Tnum.unknown(a.width), iv.smod, False)


def lsh(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.lshift_by(b.tnum), iv.lsh, False)


def rsh(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.rshift_by(b.tnum), iv.rsh, False)


def arsh(a: Scalar, b: Scalar) -> Scalar:
    if _either_bottom(a, b):
        return Scalar.bottom(a.width)
    return _combine(a, b, a.tnum.arshift_by(b.tnum), iv.arsh, False)


def neg(a: Scalar) -> Scalar:
    if a.is_bottom:
        return a
    return Scalar(a.tnum.neg(), iv.neg(a.u64), iv.neg(a.s64), iv.neg(a.u32), iv.neg(a.s32)).reduce()


def mov(a: Scalar, b: Scalar) -> Scalar:
    """dst = src: the source's value (``a`` is ignored; present so that MOV fits :data:`ALU_BINARY`)."""
    return b


ALU_BINARY: dict[tuple[AluOp, bool], Callable[[Scalar, Scalar], Scalar]] = {
    (AluOp.ADD, False): add,
    (AluOp.SUB, False): sub,
    (AluOp.MUL, False): mul,
    (AluOp.DIV, False): udiv,
    (AluOp.DIV, True): sdiv,
    (AluOp.MOD, False): umod,
    (AluOp.MOD, True): smod,
    (AluOp.OR, False): bit_or,
    (AluOp.AND, False): bit_and,
    (AluOp.XOR, False): bit_xor,
    (AluOp.LSH, False): lsh,
    (AluOp.RSH, False): rsh,
    (AluOp.ARSH, False): arsh,
    (AluOp.NEG, False): lambda a, _b: neg(a),
    (AluOp.MOV, False): mov,
}
"""Transfer function per (operation, signed): ``signed`` is the DIV/MOD ``off == 1`` variant."""


_EXACT_ON_CONSTANTS: dict[AluOp, Callable[[int, int], int]] = {
    AluOp.ADD: lambda x, y: x + y,
    AluOp.SUB: lambda x, y: x - y,
    AluOp.MUL: lambda x, y: x * y,
    AluOp.OR: lambda x, y: x | y,
    AluOp.AND: lambda x, y: x & y,
    AluOp.XOR: lambda x, y: x ^ y,
    AluOp.MOV: lambda x, y: y,
}
"""The operations whose result on two constants is the same pattern modulo ``2**width`` for every
width (so also for the low halves ALU32 works on): computed directly (see :func:`alu`)."""


def alu(op: AluOp, a: Scalar, b: Scalar, *, alu32: bool = False, signed: bool = False) -> Scalar:
    """``a op b`` for ALU64, or for ALU32: the operation on the low halves, zero-extended.

    NEG ignores ``b``; MOV returns ``b`` (zero-extended from its low half for ALU32). END and movsx have
    their own functions (:func:`end`, :func:`bswap`, :func:`movsx`).
    """
    exact = _EXACT_ON_CONSTANTS.get(op)
    if exact is not None and not a.tnum.mask and not b.tnum.mask and not a.is_bottom and not b.is_bottom:
        # Two constants: the result is the one concrete result (what the componentwise operations and
        # the reduction arrive at, at some hundred times the cost; a counted loop does this every step).
        w = a.width
        m = (1 << (w // 2 if alu32 else w)) - 1
        return _reduced_const(Tnum(exact(a.tnum.value & m, b.tnum.value & m) & m, 0, w))
    fn = ALU_BINARY.get((op, signed and op in (AluOp.DIV, AluOp.MOD)))
    if fn is None:
        raise ValueError(f"no binary transfer function for {op.name}")
    if not alu32:
        return fn(a, b)
    return _extend(fn(a.subreg(), b.subreg()), a.width, False)


# --------------------------------------------------------------------------- #
# Branch refinement
# --------------------------------------------------------------------------- #


def _exclude(a: Scalar, c: int) -> Scalar:
    """a minus the pattern c, where that only trims an interval end (x != c)."""
    u, s = a.u64, a.s64
    cu, cs = c & mask_of(a.width), to_signed(c, a.width)
    if u.lo == cu:
        u = Interval(u.lo + 1, u.hi, u.width)
    elif u.hi == cu:
        u = Interval(u.lo, u.hi - 1, u.width)
    if s.lo == cs:
        s = Interval(s.lo + 1, s.hi, s.width, True)
    elif s.hi == cs:
        s = Interval(s.lo, s.hi - 1, s.width, True)
    return Scalar(a.tnum, u, s, a.u32, a.s32).reduce()


def _with_range(a: Scalar, lo: int, hi: int, signed: bool) -> Scalar:
    """a with its full-width unsigned (or signed) range intersected with [lo, hi]."""
    if signed:
        return Scalar(a.tnum, a.u64, a.s64.meet(Interval(lo, hi, a.width, True)), a.u32, a.s32).reduce()
    return Scalar(a.tnum, a.u64.meet(Interval(lo, hi, a.width)), a.s64, a.u32, a.s32).reduce()


def _with_tnum(a: Scalar, t: Tnum) -> Scalar:
    met = a.tnum.meet(t)
    return Scalar.bottom(a.width) if met is None else Scalar(met, a.u64, a.s64, a.u32, a.s32).reduce()


def _single_bit(c: int) -> bool:
    return c != 0 and c & (c - 1) == 0


def _refine_holds(op: JmpOp, a: Scalar, b: Scalar) -> tuple[Scalar, Scalar]:
    """Refine a full-width comparison assumed true (JSET here means ``a & b != 0``)."""
    w = a.width
    full = mask_of(w)
    if op == JmpOp.JEQ:
        m = a.meet(b)
        return m, m
    if op == JmpOp.JNE:
        a2 = _exclude(a, b.tnum.value) if b.is_const else a
        b2 = _exclude(b, a.tnum.value) if a.is_const else b
        return a2, b2
    if op == JmpOp.JSET:
        if a.tnum.and_(b.tnum) == Tnum.const(0, w):
            return Scalar.bottom(w), Scalar.bottom(w)
        a2, b2 = _exclude(a, 0), _exclude(b, 0)  # a & b != 0 needs both non-zero
        if b.is_const and _single_bit(c := b.tnum.value):  # testing one bit: it must be set
            a2 = _with_tnum(a2, Tnum(c, full & ~c, w))
        if a.is_const and _single_bit(c := a.tnum.value):
            b2 = _with_tnum(b2, Tnum(c, full & ~c, w))
        return a2, b2
    signed = JMP_OPS[op].signed
    ra, rb = (a.s64, b.s64) if signed else (a.u64, b.u64)
    lo, hi = ra.tmin, ra.tmax
    if op in (JmpOp.JGT, JmpOp.JSGT):  # a > b
        return _with_range(a, rb.lo + 1, hi, signed), _with_range(b, lo, ra.hi - 1, signed)
    if op in (JmpOp.JGE, JmpOp.JSGE):
        return _with_range(a, rb.lo, hi, signed), _with_range(b, lo, ra.hi, signed)
    if op in (JmpOp.JLT, JmpOp.JSLT):  # a < b
        return _with_range(a, lo, rb.hi - 1, signed), _with_range(b, ra.lo + 1, hi, signed)
    if op in (JmpOp.JLE, JmpOp.JSLE):
        return _with_range(a, lo, rb.hi, signed), _with_range(b, ra.lo, hi, signed)
    raise ValueError(f"{op.name} is not a conditional jump")


def _refine_jset_clear(a: Scalar, b: Scalar) -> tuple[Scalar, Scalar]:
    """Refine ``a & b == 0``: a bit known 1 in one operand is 0 in the other."""
    full = mask_of(a.width)
    return (_with_tnum(a, Tnum(0, full & ~b.tnum.value, a.width)),
            _with_tnum(b, Tnum(0, full & ~a.tnum.value, a.width)))


def _refine_full(op: JmpOp, a: Scalar, b: Scalar, taken: bool) -> tuple[Scalar, Scalar] | None:
    if a.is_bottom or b.is_bottom:
        return None
    if op == JmpOp.JSET and not taken:
        a2, b2 = _refine_jset_clear(a, b)
    else:
        if not taken:
            negation = JMP_OPS[op].negation
            if negation is None:
                raise ValueError(f"{op.name} is not a conditional jump")
            op = negation
        a2, b2 = _refine_holds(op, a, b)
    if a2.is_bottom or b2.is_bottom:
        return None
    return a2, b2


def refine(op: JmpOp, is_jmp32: bool, a: Scalar, b: Scalar, taken: bool) -> tuple[Scalar, Scalar] | None:
    """The operands on the edge where ``if a op b`` is ``taken`` (or not); None if that edge is infeasible.

    For JMP32 the comparison is refined on the low halves only and written back into the low-half
    components; the reduction then moves to the 64-bit view only what the low half soundly implies.
    """
    if op not in JMP_OPS:
        raise ValueError(f"{op.name} is not a conditional jump")
    if not is_jmp32:
        return _refine_full(op, a, b, taken)
    if _either_bottom(a, b):
        return None
    low = _refine_full(op, a.subreg(), b.subreg(), taken)
    if low is None:
        return None
    a2, b2 = a.with_subreg_facts(low[0]), b.with_subreg_facts(low[1])
    if a2.is_bottom or b2.is_bottom:
        return None
    return a2, b2
