"""Integer intervals of a fixed width and signedness: the unsigned and signed range views of a register.

An :class:`Interval` ``[lo, hi]`` of ``width`` bits stands for the patterns whose unsigned value (or
two's-complement value, when ``signed``) lies in ``lo..hi``; ``lo > hi`` is the empty interval (bottom).
Join is the hull, meet the intersection, widening jumps unstable bounds to the next threshold or to the
type's extreme value (so each bound moves at most ``len(thresholds) + 1`` times), and narrowing only
refines bounds that sit at an extreme. The transfer functions are sound because each one bounds the
*mathematical* result over the whole input box (corners for monotone operations, per-count joins for
shifts, tnums for bitwise operations) and then maps that range of consecutive integers back into the
``width``-bit view with :func:`wrap_range`, which returns top whenever the range wraps around the
view's boundary. Operations whose meaning depends on signedness (div, mod, shifts right) first split
an operand into the one or two intervals it denotes in the other view, so nothing is assumed about how
the two views relate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from pybpfdsl.verify.domains.bits import mask_of, to_signed
from pybpfdsl.verify.domains.tnum import Tnum

__all__ = [
    "Interval",
    "add",
    "arsh",
    "bit_and",
    "bit_or",
    "bit_xor",
    "from_patterns",
    "lsh",
    "mul",
    "neg",
    "rsh",
    "sdiv",
    "smod",
    "shift_counts",
    "sub",
    "type_max",
    "type_min",
    "udiv",
    "umod",
    "wrap_range",
]


def type_min(width: int, signed: bool) -> int:
    return -(1 << (width - 1)) if signed else 0


def type_max(width: int, signed: bool) -> int:
    return (1 << (width - 1)) - 1 if signed else (1 << width) - 1


_TOPS: dict[tuple[int, bool], Interval] = {}
_BOTTOMS: dict[tuple[int, bool], Interval] = {}
"""The extremes of each kind, made once: intervals are immutable, and the scalar domain asks for these
(every join with bottom, every unknown value) by the hundred thousand, each a dataclass construction."""


@dataclass(slots=True, unsafe_hash=True, init=False)
class Interval:
    """Values ``lo..hi`` of a ``width``-bit register read as unsigned or (``signed``) two's complement.

    Immutable, as if frozen (every field ``Final``; equality and hash are the fields'), with its own
    ``__init__``: see :class:`.tnum.Tnum`."""

    lo: Final[int]
    hi: Final[int]
    width: Final[int]
    signed: Final[bool]

    def __init__(self, lo: int, hi: int, width: int = 64, signed: bool = False) -> None:
        if lo > hi:  # one canonical bottom per kind, so == works
            lo, hi = 1, 0
        elif signed:
            if not (-(1 << (width - 1)) <= lo and hi < 1 << (width - 1)):
                raise ValueError(f"[{lo}, {hi}] outside the {width}-bit signed range")
        elif lo < 0 or hi >> width:
            raise ValueError(f"[{lo}, {hi}] outside the {width}-bit unsigned range")
        self.lo = lo
        self.hi = hi
        self.width = width
        self.signed = signed

    # -- constructors -------------------------------------------------------

    @classmethod
    def top(cls, width: int = 64, signed: bool = False) -> Interval:
        key = (width, signed)
        hit = _TOPS.get(key)
        if hit is None:
            hit = _TOPS[key] = cls(type_min(width, signed), type_max(width, signed), width, signed)
        return hit

    @classmethod
    def bottom(cls, width: int = 64, signed: bool = False) -> Interval:
        key = (width, signed)
        hit = _BOTTOMS.get(key)
        if hit is None:
            hit = _BOTTOMS[key] = cls(1, 0, width, signed)
        return hit

    @classmethod
    def const(cls, pattern: int, width: int = 64, signed: bool = False) -> Interval:
        """The single ``width``-bit pattern, read in this view."""
        v = to_signed(pattern, width) if signed else pattern & mask_of(width)
        return cls(v, v, width, signed)

    def _mk(self, lo: int, hi: int) -> Interval:
        return Interval(lo, hi, self.width, self.signed)

    # -- queries ------------------------------------------------------------

    @property
    def tmin(self) -> int:
        return type_min(self.width, self.signed)

    @property
    def tmax(self) -> int:
        return type_max(self.width, self.signed)

    @property
    def is_bottom(self) -> bool:
        return self.lo > self.hi

    @property
    def is_top(self) -> bool:
        return self.lo == self.tmin and self.hi == self.tmax

    @property
    def is_const(self) -> bool:
        return self.lo == self.hi

    def contains(self, pattern: int) -> bool:
        """Whether the ``width``-bit pattern is a member."""
        v = to_signed(pattern, self.width) if self.signed else pattern & mask_of(self.width)
        return self.lo <= v <= self.hi

    def members(self) -> Iterator[int]:
        """Member patterns (for tests at small widths)."""
        m = mask_of(self.width)
        return (v & m for v in range(self.lo, self.hi + 1))

    def pieces(self) -> list[tuple[int, int]]:
        """The members as one or two ranges of unsigned patterns (a signed range crossing 0 is two)."""
        if self.is_bottom:
            return []
        if not self.signed or self.lo >= 0 or self.hi < 0:
            m = mask_of(self.width)
            return [(self.lo & m, self.hi & m)]
        return [(0, self.hi), (self.lo + (1 << self.width), mask_of(self.width))]

    def split(self, signed: bool) -> list[Interval]:
        """The members exactly, as one or two intervals of the ``signed`` view."""
        if signed == self.signed:
            return [] if self.is_bottom else [self]
        return [p for lo, hi in self.pieces() for p in _pattern_range_in_view(lo, hi, self.width, signed)]

    def view(self, signed: bool) -> Interval:
        """Least interval of the ``signed`` view containing the members (hull of :meth:`split`)."""
        if signed == self.signed:
            return self
        return _hull(self.split(signed), self.width, signed)

    def to_tnum(self) -> Tnum:
        """Least tnum containing every member."""
        ts = [Tnum.from_range(lo, hi, self.width) for lo, hi in self.pieces()]
        if not ts:
            raise ValueError("bottom has no tnum")
        return ts[0] if len(ts) == 1 else ts[0].join(ts[1])

    # -- lattice ------------------------------------------------------------

    def le(self, other: Interval) -> bool:
        return self.is_bottom or (other.lo <= self.lo and self.hi <= other.hi)

    def join(self, other: Interval) -> Interval:
        if self.is_bottom:
            return other
        if other.is_bottom:
            return self
        return self._mk(min(self.lo, other.lo), max(self.hi, other.hi))

    def meet(self, other: Interval) -> Interval:
        return self._mk(max(self.lo, other.lo), min(self.hi, other.hi))

    def widen(self, other: Interval, thresholds: Sequence[int] = ()) -> Interval:
        """Standard widening: a bound that grows jumps to the next threshold beyond it, else to the extreme."""
        if self.is_bottom:
            return other
        if other.is_bottom:
            return self
        lo = self.lo if other.lo >= self.lo else max([t for t in thresholds if t <= other.lo], default=self.tmin)
        hi = self.hi if other.hi <= self.hi else min([t for t in thresholds if t >= other.hi], default=self.tmax)
        return self._mk(max(lo, self.tmin), min(hi, self.tmax))

    def narrow(self, other: Interval) -> Interval:
        """Standard narrowing (for ``other ⊑ self``): only bounds at the type's extremes are refined."""
        if self.is_bottom or other.is_bottom:
            return other
        lo = other.lo if self.lo == self.tmin else self.lo
        hi = other.hi if self.hi == self.tmax else self.hi
        return self._mk(lo, hi)

    def __str__(self) -> str:
        if self.is_bottom:
            return "⊥"
        return f"{self.lo}" if self.is_const else f"[{self.lo}, {self.hi}]"


# --------------------------------------------------------------------------- #
# Moving between integer ranges and views
# --------------------------------------------------------------------------- #


def wrap_range(lo: int, hi: int, width: int, signed: bool) -> Interval:
    """Least interval of the view containing ``x mod 2**width`` for every integer ``x`` in ``lo..hi``.

    The consecutive integers stay consecutive after the reduction unless they cross the view's boundary
    (2**width apart), in which case they cover both ends of the view and only top is sound.
    """
    if lo > hi:
        return Interval.bottom(width, signed)
    span = hi - lo
    if span >= 1 << width:
        return Interval.top(width, signed)
    base = type_min(width, signed)
    start = (lo - base) % (1 << width) + base
    if start + span > type_max(width, signed):
        return Interval.top(width, signed)
    return Interval(start, start + span, width, signed)


def from_patterns(pieces: Sequence[tuple[int, int]], width: int, signed: bool) -> Interval:
    """Least interval of the view containing the unsigned pattern ranges ``pieces``."""
    return _hull([i for lo, hi in pieces for i in _pattern_range_in_view(lo, hi, width, signed)], width, signed)


def _pattern_range_in_view(lo: int, hi: int, width: int, signed: bool) -> list[Interval]:
    """The unsigned patterns ``lo..hi`` as intervals of the view (two if they straddle the sign bit)."""
    if not signed:
        return [Interval(lo, hi, width, False)]
    half = 1 << (width - 1)
    if hi < half or lo >= half:
        return [Interval(to_signed(lo, width), to_signed(hi, width), width, True)]
    return [Interval(lo, half - 1, width, True), Interval(-half, hi - (1 << width), width, True)]


def _hull(items: Sequence[Interval], width: int, signed: bool) -> Interval:
    live = [i for i in items if i.lo <= i.hi]
    if not live:
        return Interval.bottom(width, signed)
    if len(live) == 1:
        return live[0]
    return Interval(min(i.lo for i in live), max(i.hi for i in live), width, signed)


def _check(a: Interval, b: Interval) -> None:
    if (a.width, a.signed) != (b.width, b.signed):
        raise ValueError(f"mixed interval kinds {a!r} and {b!r}")


def _lift(
    op: Callable[[Interval, Interval], Interval], a: Interval, b: Interval, natural_signed: bool
) -> Interval:
    """Apply ``op`` defined on the ``natural_signed`` view piecewise, and read its result in ``a``'s view."""
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    parts = [op(pa, pb) for pa in a.split(natural_signed) for pb in b.split(natural_signed)]
    return _hull([p.view(a.signed) for p in parts], a.width, a.signed)


# --------------------------------------------------------------------------- #
# Transfer functions.  All take two intervals of the same kind and return that kind.
# --------------------------------------------------------------------------- #


def add(a: Interval, b: Interval) -> Interval:
    """a + b: the integer sum range, top if it wraps across the view's boundary."""
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    return wrap_range(a.lo + b.lo, a.hi + b.hi, a.width, a.signed)


def sub(a: Interval, b: Interval) -> Interval:
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    return wrap_range(a.lo - b.hi, a.hi - b.lo, a.width, a.signed)


def neg(a: Interval) -> Interval:
    if a.is_bottom:
        return a
    return wrap_range(-a.hi, -a.lo, a.width, a.signed)


def mul(a: Interval, b: Interval) -> Interval:
    """a * b: products of the corners bound the integer product; multiplication mod 2**w ignores signedness."""
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    corners = [x * y for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    return wrap_range(min(corners), max(corners), a.width, a.signed)


def _udiv_natural(a: Interval, b: Interval) -> Interval:
    parts = []
    if b.lo == 0:  # BPF: x / 0 == 0
        parts.append(Interval(0, 0, a.width))
    if b.hi >= 1:
        parts.append(Interval(a.lo // b.hi, a.hi // max(b.lo, 1), a.width))
    return _hull(parts, a.width, False)


def udiv(a: Interval, b: Interval) -> Interval:
    """Unsigned a / b with BPF's x / 0 == 0."""
    return _lift(_udiv_natural, a, b, natural_signed=False)


def _umod_natural(a: Interval, b: Interval) -> Interval:
    parts = []
    if b.lo == 0:  # BPF: x % 0 == x
        parts.append(a)
    if b.hi >= 1:
        d_lo = max(b.lo, 1)
        if a.hi < d_lo:
            parts.append(a)  # x < d: x % d == x
        elif d_lo == b.hi and a.lo // d_lo == a.hi // d_lo:
            parts.append(Interval(a.lo % d_lo, a.hi % d_lo, a.width))  # one divisor, one quotient
        else:
            parts.append(Interval(0, min(a.hi, b.hi - 1), a.width))
    return _hull(parts, a.width, False)


def umod(a: Interval, b: Interval) -> Interval:
    """Unsigned a % b with BPF's x % 0 == x."""
    return _lift(_umod_natural, a, b, natural_signed=False)


def _nonzero_parts(b: Interval) -> list[tuple[int, int]]:
    """The negative and positive sub-ranges of a signed divisor."""
    parts = []
    if b.lo <= -1:
        parts.append((b.lo, min(b.hi, -1)))
    if b.hi >= 1:
        parts.append((max(b.lo, 1), b.hi))
    return parts


def _trunc_div(x: int, d: int) -> int:
    q = abs(x) // abs(d)
    return q if (x < 0) == (d < 0) else -q


def _sdiv_natural(a: Interval, b: Interval) -> Interval:
    # For a divisor of fixed sign, truncating division is monotone in each argument separately, so the
    # extremes over a box are at its corners.  INT_MIN / -1 gives 2**(w-1), which wrap_range maps back
    # to INT_MIN as BPF does.
    parts = []
    if b.lo <= 0 <= b.hi:
        parts.append(Interval(0, 0, a.width, True))
    for d_lo, d_hi in _nonzero_parts(b):
        qs = [_trunc_div(x, d) for x in (a.lo, a.hi) for d in (d_lo, d_hi)]
        parts.append(wrap_range(min(qs), max(qs), a.width, True))
    return _hull(parts, a.width, True)


def sdiv(a: Interval, b: Interval) -> Interval:
    """Signed a s/ b (v4 ``sdiv``): truncating, x s/ 0 == 0, INT_MIN s/ -1 == INT_MIN."""
    return _lift(_sdiv_natural, a, b, natural_signed=True)


def _smod_natural(a: Interval, b: Interval) -> Interval:
    # The truncated remainder has the dividend's sign and |r| < |d|, |r| <= |x|.
    parts = []
    if b.lo <= 0 <= b.hi:  # x s% 0 == x
        parts.append(a)
    nonzero = _nonzero_parts(b)
    if nonzero:
        d_min = min(min(abs(lo), abs(hi)) for lo, hi in nonzero)
        d_max = max(max(abs(lo), abs(hi)) for lo, hi in nonzero)
        if max(abs(a.lo), abs(a.hi)) < d_min:
            parts.append(a)  # |x| < |d|: x s% d == x
        elif d_min == d_max and (a.lo >= 0 or a.hi <= 0) and (q := _trunc_div(a.lo, d_min)) == _trunc_div(a.hi, d_min):
            parts.append(Interval(a.lo - q * d_min, a.hi - q * d_min, a.width, True))  # one |d|, one quotient
        else:
            m = d_max - 1
            lo = 0 if a.lo >= 0 else max(a.lo, -m)
            hi = 0 if a.hi <= 0 else min(a.hi, m)
            parts.append(Interval(lo, hi, a.width, True))
    return _hull(parts, a.width, True)


def smod(a: Interval, b: Interval) -> Interval:
    """Signed a s% b (v4 ``smod``): truncated remainder, x s% 0 == x."""
    return _lift(_smod_natural, a, b, natural_signed=True)


# Bitwise operations.  Interval endpoints say little about the endpoints of a bitwise result: in
# [1, 2] | [1, 2] the maximum 3 = 1 | 2 is no combination of like endpoints, and bounding by endpoint
# combinations is exactly the kind of shortcut that made kernel 5.x's and/or/xor tracking unsound.
# Instead each operand is abstracted to the least tnum containing it, the tnum operation is exact bit
# by bit, and its smallest/largest member bound the result; the classic unsigned facts
# x & y <= min(x, y) and x | y >= max(x, y) are then intersected in.


def _bitwise(a: Interval, b: Interval, tnum_op: Callable[[Tnum, Tnum], Tnum], extra: Interval | None) -> Interval:
    t = tnum_op(a.to_tnum(), b.to_tnum())
    r = Interval(t.smin, t.smax, a.width, True) if a.signed else Interval(t.umin, t.umax, a.width)
    return r if extra is None else r.meet(extra.view(a.signed))


def bit_and(a: Interval, b: Interval) -> Interval:
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    ua, ub = a.view(False), b.view(False)
    return _bitwise(a, b, Tnum.and_, Interval(0, min(ua.hi, ub.hi), a.width))


def bit_or(a: Interval, b: Interval) -> Interval:
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    ua, ub = a.view(False), b.view(False)
    return _bitwise(a, b, Tnum.or_, Interval(max(ua.lo, ub.lo), mask_of(a.width), a.width))


def bit_xor(a: Interval, b: Interval) -> Interval:
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    return _bitwise(a, b, Tnum.xor, None)


def shift_counts(b: Interval) -> list[int]:
    """The possible masked shift counts ``c & (width - 1)`` for c in b."""
    w = b.width
    counts: set[int] = set()
    for lo, hi in b.pieces():
        if hi - lo + 1 >= w:
            return list(range(w))
        counts.update(c & (w - 1) for c in range(lo, hi + 1))
    return sorted(counts)


def lsh(a: Interval, b: Interval) -> Interval:
    """a << (b & (w-1)): per possible count, the integer range [lo << k, hi << k] wrapped into the view."""
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    parts = [wrap_range(a.lo << k, a.hi << k, a.width, a.signed) for k in shift_counts(b)]
    return _hull(parts, a.width, a.signed)


def rsh(a: Interval, b: Interval) -> Interval:
    """Logical a >> (b & (w-1)), computed on the unsigned pieces of a.

    x >> k falls as k grows, so over the possible counts the extremes are lo >> k_max and hi >> k_min.
    """
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    counts = shift_counts(b)
    k_min, k_max = counts[0], counts[-1]
    parts = [Interval(p.lo >> k_max, p.hi >> k_min, a.width) for p in a.split(False)]
    return _hull([p.view(a.signed) for p in parts], a.width, a.signed)


def arsh(a: Interval, b: Interval) -> Interval:
    """Arithmetic a s>> (b & (w-1)), computed on the signed pieces of a (Python's >> is arithmetic).

    x s>> k moves monotonically toward 0 or -1 as k grows, so each bound's extreme is at k_min or k_max.
    """
    _check(a, b)
    if a.is_bottom or b.is_bottom:
        return Interval.bottom(a.width, a.signed)
    counts = shift_counts(b)
    k_min, k_max = counts[0], counts[-1]
    parts = [
        Interval(min(p.lo >> k_min, p.lo >> k_max), max(p.hi >> k_min, p.hi >> k_max), a.width, True)
        for p in a.split(True)
    ]
    return _hull([p.view(a.signed) for p in parts], a.width, a.signed)
