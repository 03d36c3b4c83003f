"""Tristate numbers: a bit-level abstraction of a ``width``-bit register.

A :class:`Tnum` ``(value, mask)`` stands for every pattern ``x`` with ``x & ~mask == value``: bits set in
``mask`` are unknown, the others are known and equal to ``value`` (so ``value & mask == 0``). The values
form a lattice of finite height (``width + 1`` levels of unknown bits) ordered by "has fewer unknown bits
and agrees on the known ones"; join unions the unknown bits with the bits where the operands disagree,
meet combines the known bits and is empty (``None``) when a bit is known differently. Every transfer
function is sound because it computes, bit by bit, a superset of the bits that can differ between any
two concrete results (carries for add/sub, partial products for mul): the word-level cores
``*_bits`` below use only ``+ - & | ^ ~ << >>`` so the test harness runs the very same code on Z3
bit-vectors and proves ``x ∈ γ(a), y ∈ γ(b) ⇒ x op y ∈ γ(a op# b)`` for all 64-bit inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from pybpfdsl.verify.domains.bits import mask_of, to_signed

__all__ = [
    "Tnum",
    "tnum_add_bits",
    "tnum_and_bits",
    "tnum_arshift_bits",
    "tnum_join_bits",
    "tnum_lshift_bits",
    "tnum_meet_bits",
    "tnum_or_bits",
    "tnum_rshift_bits",
    "tnum_sub_bits",
    "tnum_xor_bits",
]

# --------------------------------------------------------------------------- #
# Word-level cores.  Arguments are (value, mask) pairs and ``full`` = the all-ones word; they must only
# use operators that Z3 bit-vectors share with ints (the harness maps ``>>`` to a logical shift).
# --------------------------------------------------------------------------- #


def tnum_add_bits(av: int, am: int, bv: int, bm: int, full: int) -> tuple[int, int]:
    """(value, mask) of a + b: bits where the min-sum and the max-sum differ, plus the operands' unknowns."""
    sum_known = (av + bv) & full
    sum_max = (sum_known + am + bm) & full  # every unknown bit set: carries reach as far as they can
    mu = (sum_known ^ sum_max) | am | bm
    return sum_known & ~mu & full, mu & full


def tnum_sub_bits(av: int, am: int, bv: int, bm: int, full: int) -> tuple[int, int]:
    """(value, mask) of a - b: bits where the largest and smallest differences disagree, plus unknowns."""
    diff = (av - bv) & full
    hi = (diff + am) & full  # a as large as possible
    lo = (diff - bm) & full  # b as large as possible
    mu = (hi ^ lo) | am | bm
    return diff & ~mu & full, mu & full


def tnum_and_bits(av: int, am: int, bv: int, bm: int, full: int) -> tuple[int, int]:
    """(value, mask) of a & b: known 1 where both are known 1, unknown where both may be 1."""
    v = av & bv
    return v, (av | am) & (bv | bm) & ~v & full


def tnum_or_bits(av: int, am: int, bv: int, bm: int, full: int) -> tuple[int, int]:
    """(value, mask) of a | b: known 1 where either is known 1, unknown where either is unknown."""
    v = av | bv
    return v, (am | bm) & ~v & full


def tnum_xor_bits(av: int, am: int, bv: int, bm: int, full: int) -> tuple[int, int]:
    """(value, mask) of a ^ b: known wherever both are known."""
    mu = am | bm
    return (av ^ bv) & ~mu & full, mu


def tnum_lshift_bits(v: int, m: int, k: int, full: int) -> tuple[int, int]:
    """(value, mask) of a << k (k < width): shifts known and unknown bits alike, zeros come in."""
    return (v << k) & full, (m << k) & full


def tnum_rshift_bits(v: int, m: int, k: int) -> tuple[int, int]:
    """(value, mask) of a >> k, logical (k < width)."""
    return v >> k, m >> k


def tnum_arshift_bits(v: int, m: int, k: int, top_bit: int, full: int) -> tuple[int, int]:
    """(value, mask) of a s>> k (k < width); ``top_bit`` = width - 1.

    The sign bit is copied into the vacated bits of ``value`` when it is known 1, and of ``mask`` when it
    is unknown; written with logical shifts only so that Z3 checks the same expression.
    """
    vacated = full & ~(full >> k)
    fill_v = (((v >> top_bit) ^ 1) - 1) & full  # all ones iff the sign bit of value is 1
    fill_m = (((m >> top_bit) ^ 1) - 1) & full
    return (v >> k) | (vacated & fill_v), (m >> k) | (vacated & fill_m)


def tnum_join_bits(av: int, am: int, bv: int, bm: int, full: int) -> tuple[int, int]:
    """(value, mask) of the least tnum containing both: unknown wherever either is unknown or they differ."""
    mu = (am | bm | (av ^ bv)) & full
    return av & ~mu & full, mu


def tnum_meet_bits(av: int, am: int, bv: int, bm: int, full: int) -> tuple[int, int, int]:
    """(value, mask, conflict) of the intersection; empty iff ``conflict != 0`` (a bit known both ways)."""
    conflict = (av ^ bv) & ~am & ~bm & full
    return (av | bv) & full, am & bm, conflict


# --------------------------------------------------------------------------- #
# The domain
# --------------------------------------------------------------------------- #


_UNKNOWN: dict[int, Tnum] = {}
"""The unknown tnum of each width, made once (tnums are immutable; see ``Interval.top``)."""


@dataclass(slots=True, unsafe_hash=True, init=False)
class Tnum:
    """A tristate number of ``width`` bits: ``value`` = known bits, ``mask`` = unknown bits.

    Immutable, as if frozen (every field ``Final``; equality and hash are the fields'), with its own
    ``__init__``: a frozen dataclass sets each field through ``object.__setattr__`` and then calls
    ``__post_init__``, which made a construction (the analysis makes millions) about three times as slow."""

    value: Final[int]
    mask: Final[int]
    width: Final[int]

    def __init__(self, value: int, mask: int, width: int = 64) -> None:
        full = (1 << width) - 1
        if value & mask or value & ~full or mask & ~full:
            raise ValueError(f"malformed tnum value={value:#x} mask={mask:#x} width={width}")
        self.value = value
        self.mask = mask
        self.width = width

    # -- constructors -------------------------------------------------------

    @classmethod
    def const(cls, x: int, width: int = 64) -> Tnum:
        """The single pattern ``x`` (reduced modulo ``2**width``)."""
        return cls(x & mask_of(width), 0, width)

    @classmethod
    def unknown(cls, width: int = 64) -> Tnum:
        """Every pattern (top)."""
        hit = _UNKNOWN.get(width)
        if hit is None:
            hit = _UNKNOWN[width] = cls(0, mask_of(width), width)
        return hit

    @classmethod
    def from_range(cls, lo: int, hi: int, width: int = 64) -> Tnum:
        """Least tnum containing the unsigned patterns ``lo..hi``: their common high-order prefix is known."""
        if not 0 <= lo <= hi <= mask_of(width):
            raise ValueError(f"bad unsigned range [{lo}, {hi}] at width {width}")
        unknown = mask_of((lo ^ hi).bit_length())
        return cls(lo & ~unknown, unknown, width)

    # -- queries ------------------------------------------------------------

    @property
    def full(self) -> int:
        return mask_of(self.width)

    @property
    def is_const(self) -> bool:
        return self.mask == 0

    @property
    def is_top(self) -> bool:
        return self.mask == self.full

    def contains(self, x: int) -> bool:
        """Whether the ``width``-bit pattern ``x`` is a member."""
        return (x & self.full & ~self.mask) == self.value

    @property
    def umin(self) -> int:
        return self.value

    @property
    def umax(self) -> int:
        return self.value | self.mask

    @property
    def smin(self) -> int:
        """Least member as a signed number: sign bit set if it can be, other unknown bits clear."""
        sign = 1 << (self.width - 1)
        return to_signed(self.value | (self.mask & sign), self.width)

    @property
    def smax(self) -> int:
        sign = 1 << (self.width - 1)
        return to_signed(self.value | (self.mask & ~sign), self.width)

    def members(self) -> Iterator[int]:
        """Every concrete pattern (2**popcount(mask) of them; for tests at small widths)."""
        bits = [1 << i for i in range(self.width) if self.mask >> i & 1]
        for n in range(1 << len(bits)):
            yield self.value | sum(b for i, b in enumerate(bits) if n >> i & 1)

    def min_ge(self, x: int) -> int | None:
        """Least member ``>= x`` (unsigned), or None.  Used to tighten interval bounds and detect emptiness."""
        full = self.full
        if x <= self.value:
            return self.value
        if x > self.umax:
            return None
        bad = (x ^ self.value) & ~self.mask & full
        if bad == 0:
            return x
        h = bad.bit_length() - 1
        if self.value >> h & 1:
            i = h  # x has 0 where a known 1 must be: raise bit h, keep x above it
        else:
            # x has 1 where a known 0 must be: raise the lowest unknown bit above h that x leaves 0.
            free = self.mask & ~x & full & ~mask_of(h + 1)
            if free == 0:
                return None
            i = (free & -free).bit_length() - 1
        above = x & ~mask_of(i + 1)
        return above | (1 << i) | (self.value & mask_of(i))

    def max_le(self, x: int) -> int | None:
        """Greatest member ``<= x`` (unsigned), or None; the mirror image of :meth:`min_ge`."""
        full = self.full
        mirrored = Tnum(~(self.value | self.mask) & full, self.mask, self.width)
        y = mirrored.min_ge(~min(x, full) & full) if x >= 0 else None
        return None if y is None else ~y & full

    # -- lattice ------------------------------------------------------------

    def le(self, other: Tnum) -> bool:
        """Inclusion: every member of self is a member of other."""
        return self.mask & ~other.mask == 0 and (self.value ^ other.value) & ~other.mask == 0

    def join(self, other: Tnum) -> Tnum:
        v, m = tnum_join_bits(self.value, self.mask, other.value, other.mask, self.full)
        return Tnum(v, m, self.width)

    def meet(self, other: Tnum) -> Tnum | None:
        """Intersection; None when empty."""
        v, m, conflict = tnum_meet_bits(self.value, self.mask, other.value, other.mask, self.full)
        return None if conflict else Tnum(v, m, self.width)

    def widen(self, other: Tnum) -> Tnum:
        """The lattice has finite height (at most ``width`` joins change it), so widening is join."""
        return self.join(other)

    def narrow(self, other: Tnum) -> Tnum:
        """Meet, keeping self where the meet is empty (narrowing never loses the fixpoint's members)."""
        return self.meet(other) or self

    # -- arithmetic and bitwise ----------------------------------------------

    def _mk(self, vm: tuple[int, int]) -> Tnum:
        return Tnum(vm[0], vm[1], self.width)

    def add(self, other: Tnum) -> Tnum:
        return self._mk(tnum_add_bits(self.value, self.mask, other.value, other.mask, self.full))

    def sub(self, other: Tnum) -> Tnum:
        return self._mk(tnum_sub_bits(self.value, self.mask, other.value, other.mask, self.full))

    def neg(self) -> Tnum:
        return Tnum.const(0, self.width).sub(self)

    def and_(self, other: Tnum) -> Tnum:
        return self._mk(tnum_and_bits(self.value, self.mask, other.value, other.mask, self.full))

    def or_(self, other: Tnum) -> Tnum:
        return self._mk(tnum_or_bits(self.value, self.mask, other.value, other.mask, self.full))

    def xor(self, other: Tnum) -> Tnum:
        return self._mk(tnum_xor_bits(self.value, self.mask, other.value, other.mask, self.full))

    def mul(self, other: Tnum) -> Tnum:
        """Product as a sum of shifted partial products.

        With x = av + xm (xm ⊆ am) and y = bv + ym: x*y = av*bv + Σ_{i: av_i=1} (ym << i)
        + Σ_{i: am_i=1} x_i*(y << i).  The first term is known; each partial product of the second kind is
        in Tnum(0, bm << i) and of the third in Tnum(0, (bv|bm) << i) (it is 0 or y << i), and tnum
        addition is sound, so the accumulated sum contains every product.
        """
        full, w = self.full, self.width
        acc = Tnum.const(self.value * other.value, w)
        b_bits = other.value | other.mask
        for i in range(w):
            bit = 1 << i
            if self.value & bit and other.mask:
                acc = acc.add(Tnum(0, (other.mask << i) & full, w))
            elif self.mask & bit and b_bits:
                acc = acc.add(Tnum(0, (b_bits << i) & full, w))
        return acc

    def lshift(self, k: int) -> Tnum:
        """Shift left by the constant ``k`` (masked to ``width - 1`` like BPF)."""
        return self._mk(tnum_lshift_bits(self.value, self.mask, k & (self.width - 1), self.full))

    def rshift(self, k: int) -> Tnum:
        return self._mk(tnum_rshift_bits(self.value, self.mask, k & (self.width - 1)))

    def arshift(self, k: int) -> Tnum:
        k &= self.width - 1
        return self._mk(tnum_arshift_bits(self.value, self.mask, k, self.width - 1, self.full))

    def shift_counts(self) -> list[int]:
        """Possible shift counts ``c & (width - 1)`` for c in γ(self) (at most ``width`` of them)."""
        low = Tnum(self.value & (self.width - 1), self.mask & (self.width - 1), self.width)
        return sorted(low.members())

    def lshift_by(self, count: Tnum) -> Tnum:
        """Shift left by a tnum count: the join of the shifts by every possible masked count."""
        return _join_all(self.lshift(k) for k in count.shift_counts())

    def rshift_by(self, count: Tnum) -> Tnum:
        return _join_all(self.rshift(k) for k in count.shift_counts())

    def arshift_by(self, count: Tnum) -> Tnum:
        return _join_all(self.arshift(k) for k in count.shift_counts())

    # -- width changes ---------------------------------------------------------

    def subreg(self, bits: int) -> Tnum:
        """The low ``bits`` bits as a ``bits``-wide tnum (the kernel's cast to a 32-bit subregister)."""
        low = mask_of(bits)
        return Tnum(self.value & low, self.mask & low, bits)

    def zero_extend(self, width: int) -> Tnum:
        """The same bits in a wider register whose upper bits are known 0."""
        return Tnum(self.value, self.mask, width)

    def sign_extend(self, width: int) -> Tnum:
        """Widen to ``width`` bits copying the sign bit (known 0, known 1 or unknown) into the new bits."""
        wide = self.zero_extend(width)
        pad = width - self.width
        return wide.lshift(pad).arshift(pad) if pad else wide

    def with_subreg(self, low: Tnum) -> Tnum:
        """Self with its low ``low.width`` bits replaced by ``low`` (upper bits kept)."""
        keep = self.full & ~mask_of(low.width)
        return Tnum((self.value & keep) | low.value, (self.mask & keep) | low.mask, self.width)

    def bswap(self, bits: int) -> Tnum:
        """Reverse the bytes of the low ``bits`` bits (known and unknown bits move together), zero-extended."""
        nbytes = bits // 8

        def swap(x: int) -> int:
            return int.from_bytes((x & mask_of(bits)).to_bytes(nbytes, "little"), "big")

        return Tnum(swap(self.value), swap(self.mask), self.width)

    def __str__(self) -> str:
        if self.is_const:
            return hex(self.value)
        return f"({self.value:#x}; {self.mask:#x})"


def _join_all(items: Iterator[Tnum]) -> Tnum:
    result: Tnum | None = None
    for t in items:
        result = t if result is None else result.join(t)
    if result is None:
        raise ValueError("join of no tnums")
    return result
