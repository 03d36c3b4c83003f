"""Abstract register values: a scalar (the domains' reduced product) or a typed pointer with an offset.

The kernel verifier explores paths one at a time, so a register always has one type. We join states
at merge points instead, so a join of two different types must still mean something: it becomes
:class:`OneOf`, the set of the values it may be (one per type, and per map), which the transfer
functions take apart again: an instruction that reads it runs once per alternative, as the kernel
checks each path with its own type (see ``transfer.step``). The join of a map value and the scalar 0
(the "lookup or null" idiom) is :class:`MapValueOrNull`; past ``MAX_ALTERNATIVES`` a join is
:class:`Unknown` (a value almost nothing may be done with).

Pointer offsets are :class:`Scalar` so that variable offsets keep their tnum and ranges. Packet
pointers carry ``pid``/``delta``: every packet pointer with the same ``pid`` shares one concrete
"base" offset (``off - delta``), so a bounds check proved through one of them (kept in the state's
``ranges``) serves all of them — the kernel's packet-pointer ids, re-expressed so that they survive
joins (an id is the instruction that created the variable part, hence equal on both sides of a join).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from pybpfdsl.bpf.abi import MapType
from pybpfdsl.verify.domains.scalar import Scalar

# The domain's reduction is the analysis' hot spot and a fixpoint repeats the same joins many times;
# scalars are immutable and hashable, so caching is exact.
_sjoin = lru_cache(maxsize=1 << 16)(Scalar.join)
_swiden = lru_cache(maxsize=1 << 14)(Scalar.widen)
_snarrow = lru_cache(maxsize=1 << 14)(Scalar.narrow)

__all__ = [
    "AT_END",
    "BEYOND_END",
    "MAY_END",
    "ZERO",
    "CtxPtr",
    "MapInfo",
    "MapPtr",
    "MapValue",
    "MapValueOrNull",
    "Nid",
    "OneOf",
    "PacketEnd",
    "Pid",
    "PacketMeta",
    "PacketPtr",
    "ScalarValue",
    "StackPtr",
    "Uninit",
    "Unknown",
    "Value",
    "describe",
    "is_pointer",
    "alternatives",
    "join_values",
    "narrow_values",
    "offsettable",
    "reach",
    "value_le",
    "widen_values",
]

ZERO = Scalar.const(0)

Pid = int | str | tuple[object, ...]
Nid = int | tuple[object, ...]
"""A lookup result's null id: the lookup's instruction, or ``("n", site, a, b)``, a join's link of id ``a`` on
one side and ``b`` on the other (``abstract_state._link_nulls``)."""
"""A packet-pointer id: the instruction that made the variable offset, a join of two ids, or ``"data"``
(the packet start, while joining pointers at constant offsets: see ``state._link_pairs``)."""


@dataclass(frozen=True, slots=True)
class MapInfo:
    """What the analysis knows of a map: sizes and type (global-data sections are 1-entry arrays)."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int = 1
    lock: int | None = None
    """Offset of the value's ``struct bpf_spin_lock`` when the kernel lets a program take it (one lock, at
    the top level of the value's BTF struct, in a hash or array map); None: bpf_spin_lock is refused."""
    fields: tuple[tuple[int, int, str], ...] = ()
    """(offset, size, type name) of the value's special fields (locks, timers, ...) found in its BTF: the
    kernel refuses any load, store or helper access that overlaps one ("cannot be accessed directly")."""


@dataclass(frozen=True, slots=True)
class Uninit:
    """Never written (or written on only some of the joined paths): reading it is an error."""

    def __str__(self) -> str:
        return "uninit"


@dataclass(frozen=True, slots=True)
class Unknown:
    """The join of incompatible types: it may be any of them, so it may be used as none of them."""

    offsettable: bool = False
    """Every type joined here allows adding a bounded number (a scalar; a context, packet, stack or
    map-value pointer): the kernel, which checks each path with its own type, accepts ``r += 4`` on
    it, though not ``r &= 4`` nor 32-bit arithmetic."""
    reach: int = 0
    """A bound on the offset of the pointer it may be: the kernel refuses arithmetic that takes a
    pointer's offset to ``MAX_REACH``, so this must be known to allow more."""

    def __str__(self) -> str:
        return "unknown (join of different types)"


@dataclass(slots=True, unsafe_hash=True, init=False)
class ScalarValue:
    """A number. Immutable, as if frozen (its field ``Final``), with its own ``__init__``, as the pointers
    below: a frozen dataclass sets a field through ``object.__setattr__``, and each step makes one."""

    value: Final[Scalar]
    link: Final[int | None]
    """The kernel's scalar id (``r1 = r2`` gives both the id; ``sync_linked_regs``): the instruction of the
    64-bit copy that linked this number to the others with the same ``link``, or None. Every register of one
    state with the same ``link`` holds ``base + plus`` (``plus`` None read as 0) of one concrete base, so a
    comparison that bounds one bounds the others (``transfer._sync_links``). Kept only where the kernel keeps
    the id (a copy; ``r += k`` once, ``0 <= k < 2**31``; a join of equal links): a link the kernel has not
    would bound a register it does not. Never spilled (``stack.write`` drops it), never across a call."""
    plus: Final[int | None]
    """The constant added to the linked copy (the kernel's BPF_ADD_CONST and ``off``); None: none added."""

    def __init__(self, value: Scalar, link: int | None = None, plus: int | None = None) -> None:
        self.value = value
        self.link = link
        self.plus = plus

    def __str__(self) -> str:
        return f"scalar {_scalar_text(self.value)}"


@dataclass(slots=True, unsafe_hash=True, init=False)
class CtxPtr:
    """Pointer into the XDP context (``struct xdp_md``)."""

    off: Final[Scalar]

    def __init__(self, off: Scalar) -> None:
        self.off = off

    def __str__(self) -> str:
        return f"ctx{_off_text(self.off)}"


AT_END: Final = 1
""":attr:`PacketPtr.end`: this register was found ``>= packet_end`` (the kernel's ``AT_PKT_END`` range)."""
BEYOND_END: Final = 2
""":attr:`PacketPtr.end`: this register was found ``> packet_end`` (the kernel's ``BEYOND_PKT_END`` range)."""
MAY_END: Final = 3
""":attr:`PacketPtr.end`: marked on some paths and not on others (a join): the kernel, walking each path on its
own, refuses an access through it on the marked ones and decides a comparison with packet_end only there, so
here no access is allowed and no comparison is decided."""


def end_le(a: int, b: int) -> bool:
    """Whether mark ``a`` is within mark ``b``: equal, ``b`` is :data:`MAY_END` (above every mark and none),
    or BEYOND_END within AT_END (a register past the end is at or past it). None and a mark are apart: one
    allows accesses the other refuses, the other decides jumps the first explores."""
    return a == b or b == MAY_END or (a == BEYOND_END and b == AT_END)


def end_join(a: int, b: int) -> int:
    """The least mark both are within (:func:`end_le`)."""
    if a == b:
        return a
    if a and b and MAY_END not in (a, b):
        return AT_END  # (AT_END and BEYOND_END: marked on every path; the weaker decides fewer jumps)
    return MAY_END


@dataclass(slots=True, unsafe_hash=True, init=False)
class PacketPtr:
    """``data + off``; ``pid``/``delta`` link it to the proven ranges (see the module docstring)."""

    off: Final[Scalar]
    pid: Final[Pid | None]
    delta: Final[int]
    end: Final[int]
    """0, or :data:`AT_END` / :data:`BEYOND_END`: on the edge where ``p >= packet_end`` (``p >
    packet_end``) holds, the kernel marks that register so (``mark_pkt_end``), and then decides a later
    comparison of it with packet_end (``is_pkt_ptr_branch_taken``) and refuses any access through it. Kept
    only where the kernel keeps it too (a copy, a spill and its fill, a join of equal marks): a mark the
    kernel has not would decide a jump it explores (``transfer._packet_edge``); a join of a mark with none
    is :data:`MAY_END`, which decides nothing and allows no access (the kernel refuses it on some path)."""

    def __init__(self, off: Scalar, pid: Pid | None = None, delta: int = 0, end: int = 0) -> None:
        self.off = off
        self.pid = pid
        self.delta = delta
        self.end = end

    def __str__(self) -> str:
        if self.pid is None:
            link = ""
        elif isinstance(self.pid, tuple):  # a join's id: its nesting says nothing to a reader
            link = ", id=joined"
        else:
            link = f", id={self.pid}"
        if self.end:
            link += {BEYOND_END: ", beyond packet_end", AT_END: ", at or beyond packet_end"}.get(
                self.end, ", beyond packet_end on some paths")
        return f"packet{_off_text(self.off)}{link}"


@dataclass(frozen=True, slots=True)
class PacketEnd:
    def __str__(self) -> str:
        return "packet_end"


@dataclass(frozen=True, slots=True)
class PacketMeta:
    """``data_meta``: comparisons are allowed, accesses are not modelled (so rejected)."""

    off: Scalar

    def __str__(self) -> str:
        return f"packet_meta{_off_text(self.off)}"


@dataclass(slots=True, unsafe_hash=True, init=False)
class StackPtr:
    """``r10 + off`` (off is negative inside the frame)."""

    off: Final[Scalar]

    def __init__(self, off: Scalar) -> None:
        self.off = off

    def __str__(self) -> str:
        return f"stack{_off_text(self.off)}"


@dataclass(frozen=True, slots=True)
class MapPtr:
    """The map itself (the argument of lookups), as loaded by ``lddw`` of a map."""

    map: MapInfo

    def __str__(self) -> str:
        return f"map_ptr({self.map.name})"


@dataclass(frozen=True, slots=True)
class MapValue:
    map: MapInfo
    off: Scalar
    lid: Nid | None = None
    """For a map with a spin lock: the lookup (instruction) this value came from, the kernel's register id
    that names the lock taken through it (bpf_spin_unlock must name the same one); None: not known."""

    def __str__(self) -> str:
        return f"map_value({self.map.name}, size={self.map.value_size}){_off_text(self.off)}"


@dataclass(frozen=True, slots=True)
class MapValueOrNull:
    """A lookup result not yet compared with 0; ``nid`` (the lookup's instruction) links its copies."""

    map: MapInfo
    off: Scalar
    nid: Nid | None

    def __str__(self) -> str:
        link = "" if self.nid is None else f", id={self.nid}"
        return f"map_value_or_null({self.map.name}{link}){_off_text(self.off)}"


@dataclass(frozen=True, slots=True)
class OneOf:
    """A register (or spill) that holds a different type, or points into a different map, on different
    paths: each alternative is kept (at most one per :func:`_kind`, sorted by it, two or more).

    The kernel follows each path with its own type, so an instruction that reads this value is
    checked once per alternative (``transfer.step`` splits the state). Alternatives carry no packet
    or null ids: the state's id bookkeeping (renaming, null-check propagation) does not look inside
    a ``OneOf``, so an id here could be stale; without one a packet pointer is checked against the
    packet's proven length only, and a lookup result's copies are not told of its NULL check."""

    alts: tuple[Value, ...]

    def __str__(self) -> str:
        return "one of (" + " | ".join(str(a) for a in self.alts) + ")"


Value = (Uninit | Unknown | ScalarValue | CtxPtr | PacketPtr | PacketEnd | PacketMeta | StackPtr | MapPtr
         | MapValue | MapValueOrNull | OneOf)

UNINIT = Uninit()
UNKNOWN = Unknown()


MAX_REACH = 1 << 29
"""BPF_MAX_VAR_OFF: the kernel refuses a pointer whose offset reaches it (checks.BPF_MAX_VAR_OFF)."""


def reach(v: Value) -> int:
    """A bound on ``|offset|`` of ``v`` if it is a pointer (0 for a number; MAX_REACH if unknown)."""
    if isinstance(v, Unknown):
        return v.reach
    if isinstance(v, OneOf):
        return max(reach(a) for a in v.alts)
    if isinstance(v, ScalarValue):
        return 0
    off = getattr(v, "off", None)
    if isinstance(off, Scalar):
        return min(MAX_REACH, max(abs(off.s64.lo), abs(off.s64.hi)))
    return MAX_REACH


def offsettable(v: Value) -> bool:
    """Whether the kernel accepts adding a bounded number to ``v`` (see :attr:`Unknown.offsettable`)."""
    if isinstance(v, Unknown):
        return v.offsettable
    if isinstance(v, OneOf):
        return all(offsettable(a) for a in v.alts)
    return isinstance(v, ScalarValue | CtxPtr | PacketPtr | PacketMeta | StackPtr | MapValue)


def is_pointer(v: Value) -> bool:
    """A pointer on every path (a :class:`OneOf` is taken apart before any instruction uses it)."""
    return not isinstance(v, ScalarValue | Uninit | Unknown | OneOf)


def alternatives(v: Value) -> tuple[Value, ...]:
    """The values ``v`` may be: its alternatives if it is a :class:`OneOf`, else ``v`` alone."""
    return v.alts if isinstance(v, OneOf) else (v,)


def _scalar_text(s: Scalar) -> str:
    if s.is_bottom:
        return "⊥"
    c = s.const_value
    if c is not None:
        signed = c - (1 << 64) if c >= 1 << 63 else c
        return str(signed)
    u, sv = s.u64, s.s64
    text = f"[{u.lo}, {u.hi}]" if u.hi < 1 << 63 else f"s[{sv.lo}, {sv.hi}]"
    if s.tnum.mask != (1 << 64) - 1:
        text += f" bits={s.tnum}"
    return text


def _off_text(off: Scalar) -> str:
    c = off.const_value
    if c is not None:
        signed = c - (1 << 64) if c >= 1 << 63 else c
        return "" if signed == 0 else f"{signed:+d}"
    return f"+{_scalar_text(off)}"


def describe(v: Value) -> str:
    """One-line text for explanations: the type and its range, VeRefine-style (``packet+14``)."""
    return str(v)


# --------------------------------------------------------------------------- #
# Lattice
# --------------------------------------------------------------------------- #


VALUE_MAP_TYPES = frozenset({MapType.UNSPEC, MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY,
                             MapType.LRU_HASH, MapType.LRU_PERCPU_HASH, MapType.LPM_TRIE})
"""Map types whose values are plain memory (hash, array, per-CPU, LRU, LPM trie; 0: a join of several):
values of different such maps may be joined (see :func:`_merge_maps`)."""


def _map_names(m: MapInfo) -> frozenset[str]:
    return frozenset(m.name.split("|"))


def _merge_maps(a: MapInfo, b: MapInfo) -> MapInfo | None:
    """The map of a value that points into ``a``'s value on some paths and ``b``'s on others: the kernel
    checks each path against its own map, so an access must fit the smaller value (None: not joined)."""
    if a == b:
        return a
    if a.map_type not in VALUE_MAP_TYPES or b.map_type not in VALUE_MAP_TYPES:
        return None
    joined_type = a.map_type if a.map_type == b.map_type else MapType.UNSPEC
    # No lock may be taken through it (which map's?); the special fields of both stay out of reach.
    return MapInfo("|".join(sorted(_map_names(a) | _map_names(b))), joined_type,
                   max(a.key_size, b.key_size), min(a.value_size, b.value_size), min(a.max_entries, b.max_entries),
                   None, tuple(sorted(set(a.fields) | set(b.fields))))


def _map_le(a: MapInfo, b: MapInfo) -> bool:
    """Whether ``b`` (perhaps a join of maps) allows no access that ``a`` refuses."""
    return a == b or (b.map_type in (MapType.UNSPEC, a.map_type) and a.map_type in VALUE_MAP_TYPES
                      and _map_names(a) <= _map_names(b) and b.value_size <= a.value_size
                      and b.lock in (None, a.lock) and set(a.fields) <= set(b.fields))


def _null_join(mv: MapValue | MapValueOrNull, other: Value) -> Value | None:
    """map value ⊔ 0 (or ⊔ another maybe-null value of the same map) is a maybe-null value."""
    if isinstance(other, ScalarValue):
        if other.value.const_value != 0:
            return None
        # No id: the other copies of ``mv`` are not NULL on the path where this is 0, so a NULL check of
        # this one tells them nothing (``abstract_state._link_nulls`` links what may be linked).
        return MapValueOrNull(mv.map, mv.off, None)
    if isinstance(other, MapValue | MapValueOrNull) and other.map == mv.map:
        nid = mv.nid if isinstance(mv, MapValueOrNull) and isinstance(other, MapValueOrNull) else None
        if isinstance(other, MapValueOrNull) and other.nid != nid:
            nid = None
        return MapValueOrNull(mv.map, mv.off.join(other.off), nid)
    return None


MAX_ALTERNATIVES = 6
"""Alternatives a :class:`OneOf` keeps; past them the map values of plain maps are merged into one (see
:func:`_merge_maps`), and if that is not enough the value is :class:`Unknown`."""


def _kind(v: Value) -> str:
    """What tells a :class:`OneOf`'s alternatives apart: the type, and the map of map pointers and values."""
    if isinstance(v, MapPtr):
        return "map:" + v.map.name
    if isinstance(v, MapValue | MapValueOrNull):
        return "val:" + v.map.name
    return type(v).__name__


def _unlinked(v: Value) -> Value:
    """``v`` without packet or null ids (nor a packet_end mark, which a later check may clear), as an
    alternative of a :class:`OneOf` (see there)."""
    if isinstance(v, PacketPtr) and (v.pid is not None or v.end):
        return PacketPtr(v.off)
    if isinstance(v, MapValueOrNull) and v.nid is not None:
        return MapValueOrNull(v.map, v.off, None)
    if type(v) is ScalarValue and v.link is not None:
        return ScalarValue(v.value)
    if isinstance(v, MapValue) and v.lid is not None:
        return MapValue(v.map, v.off)
    return v


def _merge_values(vals: list[Value]) -> list[Value]:
    """The values into plain maps merged into one (checked against the smallest value), the rest kept."""
    plain = [v for v in vals if isinstance(v, MapValue | MapValueOrNull) and v.map.map_type in VALUE_MAP_TYPES]
    if len(plain) < 2:
        return vals
    m: MapInfo | None = plain[0].map
    off = plain[0].off
    for v in plain[1:]:
        assert isinstance(v, MapValue | MapValueOrNull) and m is not None
        m = _merge_maps(m, v.map)
        off = _sjoin(off, v.off)
    assert m is not None
    merged: Value = (MapValueOrNull(m, off, None) if any(isinstance(v, MapValueOrNull) for v in plain)
                     else MapValue(m, off))
    return [v for v in vals if v not in plain] + [merged]


def _one_of(a: Value, b: Value, op: str, thresholds: tuple[int, ...]) -> Value:
    """``a`` and ``b`` (of different types, or one a :class:`OneOf`) as one :class:`OneOf`: alternatives of
    the same kind combined, the others kept."""
    by_kind: dict[str, Value] = {}
    for x in (*alternatives(a), *alternatives(b)):
        x = _unlinked(x)
        k = _kind(x)
        old = by_kind.get(k)
        by_kind[k] = x if old is None else _combine(old, x, op, thresholds)
    vals = list(by_kind.values())
    if len(vals) > MAX_ALTERNATIVES:
        vals = _merge_values(vals)
    if len(vals) > MAX_ALTERNATIVES or any(isinstance(v, Unknown | Uninit | OneOf) for v in vals):
        ok = all(offsettable(v) for v in vals)
        far = max(reach(v) for v in vals) if ok else 0
        if op == "widen" and ok and far > reach(a):
            far = MAX_REACH
        return Unknown(ok, far) if not any(isinstance(v, Uninit) for v in vals) else UNINIT
    if len(vals) == 1:
        return vals[0]
    return OneOf(tuple(sorted(vals, key=_kind)))


def _combine(a: Value, b: Value, op: str, thresholds: tuple[int, ...] = ()) -> Value:
    """Join (``op == "join"``) or widen/narrow the two values field by field when types agree."""

    def sc(x: Scalar, y: Scalar) -> Scalar:
        if op == "join":
            return _sjoin(x, y)
        if op == "widen":
            return _swiden(x, y, thresholds)
        return _snarrow(x, y)

    if a == b:
        return a
    if isinstance(a, Uninit) or isinstance(b, Uninit):
        return UNINIT
    if isinstance(a, ScalarValue) and isinstance(b, ScalarValue):
        if a.link is not None and a.link == b.link and a.plus == b.plus:  # the same relation on both paths
            return ScalarValue(sc(a.value, b.value), a.link, a.plus)
        return ScalarValue(sc(a.value, b.value))
    if isinstance(a, PacketPtr) and isinstance(b, PacketPtr):
        same = a.pid == b.pid and a.delta == b.delta
        # (a mark on one path only: no access through it, no jump decided by it, as on some path each)
        return PacketPtr(sc(a.off, b.off), a.pid if same else None, a.delta if same else 0, end_join(a.end, b.end))
    if isinstance(a, CtxPtr) and isinstance(b, CtxPtr):
        return CtxPtr(sc(a.off, b.off))
    if isinstance(a, StackPtr) and isinstance(b, StackPtr):
        return StackPtr(sc(a.off, b.off))
    if isinstance(a, PacketMeta) and isinstance(b, PacketMeta):
        return PacketMeta(sc(a.off, b.off))
    if isinstance(a, MapValue) and isinstance(b, MapValue) and a.map == b.map:
        return MapValue(a.map, sc(a.off, b.off), a.lid if a.lid == b.lid else None)
    if isinstance(a, MapValueOrNull) and isinstance(b, MapValueOrNull) and a.map == b.map:
        return MapValueOrNull(a.map, sc(a.off, b.off), a.nid if a.nid == b.nid else None)
    if not isinstance(a, OneOf | Unknown) and not isinstance(b, OneOf | Unknown):
        for x, y in ((a, b), (b, a)):
            if isinstance(x, MapValue | MapValueOrNull):
                joined = _null_join(x, y)
                if joined is not None:
                    return joined
    if not isinstance(a, Unknown) and not isinstance(b, Unknown):
        return _one_of(a, b, op, thresholds)
    ok = offsettable(a) and offsettable(b)
    far = max(reach(a), reach(b)) if ok else 0
    if op == "widen" and ok and far > reach(a):
        far = MAX_REACH  # a loop that keeps moving the pointer: no bound (no further additions allowed)
    return Unknown(ok, far)


def join_values(a: Value, b: Value) -> Value:
    return _combine(a, b, "join")


def widen_values(a: Value, b: Value, thresholds: tuple[int, ...] = ()) -> Value:
    """Widening; ``thresholds`` (the program's comparison constants) are tried before the extremes."""
    return _combine(a, b, "widen", thresholds)


def narrow_values(a: Value, b: Value) -> Value:
    """Narrowing keeps the new value when types differ: it is computed from a sound state."""
    if type(a) is not type(b) or isinstance(a, OneOf):
        return b
    return _combine(a, b, "narrow")


def value_le(a: Value, b: Value) -> bool:
    """``a ⊑ b``: used for the fixpoint's stability test (sound to answer False when unsure)."""
    if type(a) is ScalarValue and type(b) is ScalarValue:  # the most frequent pair, first (le is reflexive)
        return a.value.le(b.value) and (b.link is None or (a.link == b.link and a.plus == b.plus))
    if a == b or isinstance(b, Uninit):
        return True
    if isinstance(a, OneOf):
        return all(value_le(x, b) for x in a.alts)
    if isinstance(b, OneOf):
        return any(value_le(a, y) for y in b.alts)
    if isinstance(b, Unknown):
        return not isinstance(a, Uninit) and (not b.offsettable or (offsettable(a) and reach(a) <= b.reach))
    if isinstance(a, ScalarValue) and isinstance(b, ScalarValue):
        return a.value.le(b.value)
    if isinstance(a, PacketPtr) and isinstance(b, PacketPtr):
        return (a.off.le(b.off) and (b.pid is None or (a.pid == b.pid and a.delta == b.delta))
                and end_le(a.end, b.end))
    if isinstance(a, CtxPtr | StackPtr | PacketMeta) and type(a) is type(b):
        return a.off.le(b.off)
    if isinstance(a, MapValue) and isinstance(b, MapValue | MapValueOrNull):
        return (_map_le(a.map, b.map) and a.off.le(b.off) and isinstance(b, MapValue)
                and (b.lid is None or a.lid == b.lid)) or (
            isinstance(b, MapValueOrNull) and b.nid is None and _map_le(a.map, b.map) and a.off.le(b.off))
    if isinstance(a, MapValueOrNull) and isinstance(b, MapValueOrNull):
        return _map_le(a.map, b.map) and a.off.le(b.off) and (b.nid is None or a.nid == b.nid)
    if isinstance(a, ScalarValue) and isinstance(b, MapValueOrNull):
        return a.value.const_value == 0 and b.nid is None
    return False
