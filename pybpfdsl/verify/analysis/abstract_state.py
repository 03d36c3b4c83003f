"""The abstract machine state at one program point, and its lattice operations.

Besides registers and stack it holds the packet facts: ``pkt_min`` (the packet is proven at least
that many bytes long) and ``ranges`` (for each packet-pointer id, how many bytes past its base are
proven readable). ``defs`` records, per register, the instructions that may have written it last:
the explanation follows these back from an error to its cause (VeRefine-style chains). ``None``
stands for bottom (an unreachable point) throughout the analysis.

Long because a join is one operation over the state's three kinds of ids (packet-pointer links, NULL-check
links, held locks): each pairing reads and rewrites the other's registers and spills, and a module per
kind would import the State it is imported by. (A split along the ids, with State in a module below
them, is the next step when this grows again.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, cast

from pybpfdsl.verify.analysis import cache as cc
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.values import (
    UNINIT,
    CtxPtr,
    MapValue,
    MapValueOrNull,
    Nid,
    PacketPtr,
    Pid,
    ScalarValue,
    StackPtr,
    Value,
    join_values,
    narrow_values,
    value_le,
    widen_values,
)
from pybpfdsl.verify.domains.scalar import Scalar

__all__ = ["MAYBE_LOCKED", "UNTRACKED", "Frame", "Lock", "State", "entry_state", "join", "le", "narrow",
           "untracked", "widen"]

NREGS = 11

Lock = tuple[str, Nid] | str
MAYBE_LOCKED = "held on some paths only, or different locks"


@lru_cache(maxsize=1 << 14)
def _site(site: int) -> frozenset[int]:
    return frozenset((site,))


FP = 10


@dataclass(frozen=True, slots=True)
class Frame:
    """A caller suspended in a bpf-to-bpf call: its registers (r6-r9 and r10 come back on return) and stack."""

    regs: tuple[Value, ...]
    defs: tuple[frozenset[int], ...]
    stack: stk.Stack
    exposed: int = 0
    """The lowest stack offset the callee was given a pointer to (0: none): the bytes from there to the
    frame's top may have been written by the callee, so they are unknown when it returns."""


@dataclass(slots=True, unsafe_hash=True)
class State:
    """Immutable, as if frozen: every field is ``Final``, so the type checker refuses an assignment, and
    equality and the hash are the fields' as a frozen dataclass' are. Not ``frozen=True``: a frozen
    dataclass sets each field through ``object.__setattr__``, which made a state's construction four
    times as slow, and the analysis makes one per instruction it steps (a few per cent of all its time)."""

    regs: Final[tuple[Value, ...]]
    defs: Final[tuple[frozenset[int], ...]]
    stack: Final[stk.Stack]
    pkt_min: Final[int] = 0
    ranges: Final[tuple[tuple[Pid, int], ...]] = ()
    """Sorted (pid, bytes proven readable from that id's base)."""
    frames: Final[tuple[Frame, ...]] = ()
    """The callers of the function running, outermost first (empty in the entry program). The registers
    and stack above are the current frame's; a stack pointer always points into the current frame."""
    lock: Final[Lock | None] = None
    """The bpf_spin_lock held: (map name, the lookup that gave its value: see ``MapValue.lid``), or
    ``MAYBE_LOCKED`` where paths that disagree on it were joined (then no lock rule can be proven)."""

    def reg(self, r: int) -> Value:
        return self.regs[r]

    def set_reg(self, r: int, v: Value, site: int) -> State:
        regs = list(self.regs)  # (a list copy is about twice as quick as slicing the tuple twice)
        regs[r] = v
        defs = self.defs
        if defs is UNTRACKED:
            return State(tuple(regs), defs, self.stack, self.pkt_min, self.ranges, self.frames, self.lock)
        d = _site(site)
        if defs[r] is not d:
            # (The same definition again, a loop's own update, keeps the very same tuple, so later
            # joins and comparisons of the two states stop at the identity test.)
            new_defs = list(defs)
            new_defs[r] = d
            defs = tuple(new_defs)
        return State(tuple(regs), defs, self.stack, self.pkt_min, self.ranges, self.frames, self.lock)

    def after_call(self, r0: Value, site: int) -> State:
        """The state as a call at ``site`` leaves it: ``r0`` its result, r1-r5 clobbered (uninitialised).
        ``set_reg`` six times over, in one new state rather than six."""
        regs = list(self.regs)
        regs[0] = r0
        regs[1] = regs[2] = regs[3] = regs[4] = regs[5] = UNINIT
        defs = self.defs
        if defs is UNTRACKED:
            return State(tuple(regs), defs, self.stack, self.pkt_min, self.ranges, self.frames, self.lock)
        d = _site(site)
        if any(defs[r] is not d for r in range(6)):
            defs = (d, d, d, d, d, d, *defs[6:])
        return State(tuple(regs), defs, self.stack, self.pkt_min, self.ranges, self.frames, self.lock)

    def with_stack(self, stack: stk.Stack) -> State:
        """The state with ``stack`` (``dataclasses.replace`` costs several times more; stores do this)."""
        return State(self.regs, self.defs, stack, self.pkt_min, self.ranges, self.frames, self.lock)

    def range_of(self, pid: Pid | None) -> int | None:
        if pid is None:
            return None
        for p, n in self.ranges:
            if p == pid:
                return n
        return None

    def with_range(self, pid: Pid, n: int) -> State:
        old = self.range_of(pid)
        if old is not None and old >= n:
            return self
        rest = tuple((p, m) for p, m in self.ranges if p != pid)
        return State(self.regs, self.defs, self.stack, self.pkt_min, (*rest, (pid, n)), self.frames, self.lock)

    def map_values(self, fn: Callable[[Value], Value]) -> State:
        """Apply ``fn`` to every register and spilled value (id renaming, null-check propagation). The
        state itself where ``fn`` changes nothing (most calls: every map lookup unlinks its earlier
        results, which the path seldom holds), so no copy is made and later comparisons stop at identity."""
        old_regs = self.regs
        regs = [fn(v) for v in old_regs]
        changed = {i: w for i, v in stk.spilled_values(self.stack) if (w := fn(v)) is not v}
        frames = tuple([_map_frame(f, fn) for f in self.frames]) if self.frames else ()
        if not changed and all(x is y for x, y in zip(regs, old_regs)) and all(
                x is y for x, y in zip(frames, self.frames)):
            return self
        new_stack = stk.replace_spills(self.stack, changed) if changed else self.stack
        return State(tuple(regs), self.defs, new_stack, self.pkt_min, self.ranges, frames, self.lock)


def _map_frame(f: Frame, fn: Callable[[Value], Value]) -> Frame:
    regs = [fn(v) for v in f.regs]
    changed = {i: w for i, v in stk.spilled_values(f.stack) if (w := fn(v)) is not v}
    if not changed and all(x is y for x, y in zip(regs, f.regs)):
        return f  # (see State.map_values)
    return Frame(tuple(regs), f.defs, stk.replace_spills(f.stack, changed) if changed else f.stack, f.exposed)


def _combine_frames(a: tuple[Frame, ...], b: tuple[Frame, ...], op: str,
                    thresholds: tuple[int, ...]) -> tuple[Frame, ...]:
    """The callers' frames joined (widened, narrowed) slot by slot: both states are in the same call chain
    (the analysis copies each function per call site), so the frames correspond one to one."""
    if a == b:
        return a
    assert len(a) == len(b), "states of different call chains meet"

    def fn(x: Value, y: Value) -> Value:
        if op == "join":
            return join_values(x, y)
        if op == "widen":
            return widen_values(x, y, thresholds)
        return narrow_values(x, y)

    return tuple(Frame(tuple(x if x is y else fn(x, y) for x, y in zip(fa.regs, fb.regs, strict=True)),
                       tuple(x | y for x, y in zip(fa.defs, fb.defs, strict=True)),
                       stk.join(fa.stack, fb.stack, op, thresholds), min(fa.exposed, fb.exposed))
                 for fa, fb in zip(a, b, strict=True))


def _frames_le(a: tuple[Frame, ...], b: tuple[Frame, ...]) -> bool:
    if a == b:
        return True
    return len(a) == len(b) and all(
        all(x is y or value_le(x, y) for x, y in zip(fa.regs, fb.regs, strict=True)) and stk.le(fa.stack, fb.stack)
        and fa.exposed >= fb.exposed for fa, fb in zip(a, b, strict=True))


UNTRACKED: Final[tuple[frozenset[int], ...]] = tuple(frozenset() for _ in range(NREGS))
"""The definitions of a state whose writers are not recorded (:func:`untracked`): ``set_reg`` and
``after_call`` keep this very tuple. Equal to an entry state's definitions, but told apart by identity."""


def untracked(s: State) -> State:
    """``s`` with no writers recorded from here on (:data:`UNTRACKED`): for the simulation of the kernel's
    exploration (:mod:`.exploration`), which compares states without their writers and reports nothing,
    so the per-register sets it would make at each step are work for nothing."""
    return State(s.regs, UNTRACKED, s.stack, s.pkt_min, s.ranges, s.frames, s.lock)


def entry_state() -> State:
    """r1 = ctx, r10 = frame pointer, everything else uninitialised."""
    zero = Scalar.const(0)
    regs: list[Value] = [UNINIT] * NREGS
    regs[1] = CtxPtr(zero)
    regs[FP] = StackPtr(zero)
    return State(tuple(regs), tuple(frozenset() for _ in range(NREGS)), stk.empty_stack())


def _ranges(a: State, b: State, op: str) -> tuple[tuple[Pid, int], ...]:
    if op == "narrow":
        return b.ranges
    if not a.ranges or not b.ranges:
        return ()
    db = dict(b.ranges)
    out = []
    for p, n in a.ranges:
        if p in db:
            m = db[p]
            if op == "widen":
                out.append((p, n if m >= n else 0))
            else:
                out.append((p, min(n, m)))
    return tuple(out)


_LINKABLE = frozenset({PacketPtr, MapValue, MapValueOrNull})


def _linkable_places(a: State, b: State) -> list[tuple[int, Value, Value]]:
    """The places whose values differ between ``a`` and ``b`` with a packet pointer or a map value on one
    side, as (place, value in ``a``, value in ``b``): register ``i`` is place ``i``, the spill at stack slot
    ``i`` (spilled on both sides) place ``100 + i``. What every linking of ids at a join starts from:
    :func:`_link_pairs` and :func:`_link_nulls` link only such places, so without one they return the states
    as they are (most joins: the places that differ hold numbers), and with some, this one pass serves the
    four kinds of link they look for."""
    linkable = _LINKABLE
    out = [(i, x, y) for i, (x, y) in enumerate(zip(a.regs, b.regs, strict=True))
           if x is not y and (type(x) in linkable or type(y) in linkable)]
    if a.stack is b.stack:
        return out
    spills_b = stk.spilled_values(b.stack)
    if not spills_b:
        return out
    by_slot = dict(spills_b)
    for i, v in stk.spilled_values(a.stack):
        w = by_slot.get(i)
        if w is not None and v is not w and (type(v) in linkable or type(w) in linkable):
            out.append((100 + i, v, w))
    return out


def _unchecked_pair(x: Value, y: Value) -> bool:
    """Lookup results of one map, not yet checked for NULL, from different lookups on the two sides."""
    return (type(x) is MapValueOrNull and type(y) is MapValueOrNull and x.nid is not None and y.nid is not None
            and x.nid != y.nid and x.map == y.map)


MAX_PID_DEPTH = 3
"""Joined ids nest; past this depth the link is dropped, so loop-head joins stabilise."""


def _depth(pid: Pid) -> int:
    if isinstance(pid, tuple) and pid[0] == "n":  # a null id: ("n", site, a, b)
        return 1 + max(_depth(p) for p in pid[2:4])  # type: ignore[arg-type]
    if isinstance(pid, tuple) and pid[0] == "s":  # a null id: ("s", site, side, map, offset)
        return 1
    return 1 + max(_depth(p) for p in pid[1:3]) if isinstance(pid, tuple) else 0  # type: ignore[arg-type]


def _link_pairs(a: State, b: State, site: int | None = None,
                places: list[tuple[int, Value, Value]] | None = None) -> tuple[State, State]:
    """Before a join: packet pointers linked to different ids on the two sides get a common new id.

    A pointer at the same place (register or spill slot) with id ``pa``/delta ``da`` on one side and
    ``pb``/``db`` on the other gets delta ``m = min(da, db)`` under the new id (the delta is the kernel's fixed
    offset, ``reg->off``: a read at ``p - 1`` is allowed only where it is at least 1 on every path); its base
    is ``base_a + (da - m)`` on one side and ``base_b + (db - m)`` on the other, so the new proven range is
    ``min(range[pa] - (da - m), range[pb] - (db - m))``. Pointers with the same (pa, pb, da - db) share the base.

    A pointer at a constant offset ``c`` with no id counts as linked to the packet's start (id
    ``DATA``, delta ``c``, proven range the packet's checked length): two paths with the header at
    14 or 18 bytes then join into one pointer whose later bounds check still covers its reads, as the
    kernel's per-path constant offsets do. ``places``: :func:`_linkable_places` of the two states, if known.
    """
    # Only packet pointers that differ can need a link (the same pointer on both sides has one id and
    # delta already); most joins have none, and then nothing below needs to be built.
    if places is None:
        places = _linkable_places(a, b)
    pairs = cast(list[tuple[int, PacketPtr, PacketPtr]],
                 [p for p in places if type(p[1]) is PacketPtr and type(p[2]) is PacketPtr])
    if not pairs:
        return a, b
    ra, rb = dict(a.ranges), dict(b.ranges)
    ra[DATA], rb[DATA] = a.pkt_min, b.pkt_min
    names: dict[tuple[Pid, Pid, int], tuple[object, ...]] = {}
    new_ranges: dict[Pid, int] = {}
    rewrite_a: dict[int, Value] = {}
    rewrite_b: dict[int, Value] = {}
    for pos, x, y in pairs:
        x, y = _from_data(x), _from_data(y)
        if x.pid is None or y.pid is None:
            continue
        if x.pid == y.pid and x.delta == y.delta:
            continue
        if x.pid not in ra or y.pid not in rb:
            continue
        dd = x.delta - y.delta
        key = (x.pid, y.pid, dd)
        name = names.get(key)
        if name is None:
            if site is not None:
                name = _fresh(site, a, b, names)
            else:
                name = ("j", x.pid, y.pid, dd)
                if _depth(name) > MAX_PID_DEPTH:
                    continue
            names[key] = name
            low = min(x.delta, y.delta)
            new_ranges[name] = max(0, min(ra[x.pid] - (x.delta - low), rb[y.pid] - (y.delta - low)))
        # The smaller fixed offset of the two (the kernel's reg->off on each path): an access below the pointer
        # (``*(p - 1)``) must be at or above the packet start from the base on both paths.
        low = min(x.delta, y.delta)
        rewrite_a[pos] = PacketPtr(x.off, name, low)
        rewrite_b[pos] = PacketPtr(y.off, name, low)
    if not names:
        return a, b
    return _apply(a, rewrite_a, new_ranges), _apply(b, rewrite_b, new_ranges)


def _link_nulls(a: State, b: State, site: int,
                places: list[tuple[int, Value, Value]] | None = None) -> tuple[State, State]:
    """Before a join: lookup results not yet checked for NULL that are linked to different lookups on the
    two sides (``nid`` A here, B there) get a common new id, so that a NULL check of one copy still
    tells the others (katran's balancer at -O1 checks a spilled copy of a result from one of two lookups,
    then reloads it). The new id ``("n", site, A, B)`` is taken only if neither state uses it already
    (else it might link values that are different on some path); ids nest at most ``MAX_PID_DEPTH`` deep.
    The same (A, B) at two places is one value on each side, hence one value after the join too.
    ``places``: :func:`_linkable_places` of the two states, if known (a link of packet pointers made since
    changes none of the places looked at here)."""
    if places is None:
        places = _linkable_places(a, b)
    pairs = cast(list[tuple[int, MapValueOrNull, MapValueOrNull]], [p for p in places if _unchecked_pair(p[1], p[2])])
    sides = [p for p in places if _side(p[1], p[2])]
    locked = cast(list[tuple[int, MapValue, MapValue]], [p for p in places if _lock_pair(p[1], p[2])])
    if not pairs and not sides and not locked:
        return a, b
    taken = _nids(a) | _nids(b)
    nids_a, nids_b = _nids(a), _nids(b)
    partners_a, partners_b = _partners(a, b), _partners(b, a)
    rewrite_a: dict[int, Value] = {}
    rewrite_b: dict[int, Value] = {}
    for pos, x, y in pairs:
        assert x.nid is not None and y.nid is not None
        name = _absorbed(x.nid, y.nid, nids_a, nids_b, partners_a, partners_b) or ("n", site, x.nid, y.nid)
        if name not in (x.nid, y.nid) and (name in taken or _depth(name) > MAX_PID_DEPTH):
            continue
        rewrite_a[pos] = MapValueOrNull(x.map, x.off, name)
        rewrite_b[pos] = MapValueOrNull(y.map, y.off, name)
    for pos, u, w in sides:
        # A map value on one side and NULL on the other: whatever a NULL check of one such place finds
        # tells which side the path came from, so every place of the same pattern (map, offset, side)
        # learns it too, though they need not hold the same pointer.
        mv = w if _is_null(u) else u
        if isinstance(mv, MapValueOrNull):
            # A lookup's result on one side, NULL on the other: every place with that id here and NULL
            # there is one value on each side.
            assert mv.nid is not None
            x_nid, y_nid = (mv.nid, NULL_SIDE) if mv is u else (NULL_SIDE, mv.nid)
            name = (_absorbed(x_nid, y_nid, nids_a, nids_b, partners_a, partners_b)
                    or ("n", site, x_nid, y_nid))
            if name != mv.nid and (name in taken or _depth(name) > MAX_PID_DEPTH):
                continue
            rewrite_a[pos] = rewrite_b[pos] = MapValueOrNull(mv.map, mv.off, name)
            continue
        assert isinstance(mv, MapValue)
        name = ("s", site, mv is u, mv.map, mv.off)
        if name in taken:
            continue
        rewrite_a[pos] = MapValueOrNull(mv.map, mv.off, name)
        rewrite_b[pos] = MapValueOrNull(mv.map, mv.off, name)
    held = {x for lock in (a.lock, b.lock) if isinstance(lock, tuple) for x in (lock[1],)}
    for pos, va, vb in locked:
        # Values of a map with a lock, from different lookups on the two sides (xdp-trafficgen's flow
        # state: looked up, or inserted and looked up again): as for the results above, their lookup ids
        # linked, so that the lock taken through one names the same lock as the unlock through another.
        assert va.lid is not None and vb.lid is not None
        name = ("n", site, va.lid, vb.lid)
        if name in taken or _depth(name) > MAX_PID_DEPTH or va.lid in held or vb.lid in held:
            continue
        rewrite_a[pos] = MapValue(va.map, va.off, name)
        rewrite_b[pos] = MapValue(vb.map, vb.off, name)
    if not rewrite_a:
        return a, b
    return _apply(a, rewrite_a, {}), _apply(b, rewrite_b, {})


def _lock_pair(x: Value, y: Value) -> bool:
    """Values of one map (with a lock) from different lookups on the two sides."""
    return (type(x) is MapValue and type(y) is MapValue and x.lid is not None and y.lid is not None
            and x.lid != y.lid and x.map == y.map)


def _partners(a: State, b: State) -> dict[Nid, set[object]]:
    """For each null id of ``a``'s registers and spills: what ``b`` holds at the same places (its null id,
    ``NULL_SIDE`` for 0, ``None`` for anything else)."""
    out: dict[Nid, set[object]] = {}
    spills_b = dict(stk.spilled_values(b.stack))
    places = [*((x, b.regs[i]) for i, x in enumerate(a.regs)),
              *((v, spills_b.get(i)) for i, v in stk.spilled_values(a.stack))]
    for x, y in places:
        if type(x) is not MapValueOrNull or x.nid is None:
            continue
        key: object = None
        if type(y) is MapValueOrNull and y.nid is not None and y.map == x.map:
            key = y.nid
        elif y is not None and _is_null(y):
            key = NULL_SIDE
        out.setdefault(x.nid, set()).add(key)
    return out


def _lookups(nid: Nid) -> frozenset[int]:
    """The lookups whose results a null id stands for (a new run of any of them unlinks it)."""
    if isinstance(nid, int):
        return frozenset((nid,)) if nid >= 0 else frozenset()
    if nid[0] == "n":
        return _lookups(nid[2]) | _lookups(nid[3])  # type: ignore[arg-type]
    return frozenset()


def _absorbed(x: Nid, y: Nid, nids_a: set[Nid], nids_b: set[Nid], partners_a: dict[Nid, set[object]],
              partners_b: dict[Nid, set[object]]) -> Nid | None:
    """An id of one side that may name the link of ``x`` (side a) and ``y`` (side b), instead of a new,
    deeper one: ``x`` if the other side never uses it, every place with ``x`` holds ``y`` on the other
    side, and ``x`` already stands for ``y``'s lookups (so that a new run of one of them still unlinks
    it); or the same with the sides swapped. The places so named are one value on each side, and no
    other place keeps that id: the link a new name would make, without the nesting (which, capped at
    ``MAX_PID_DEPTH``, dropped links along a chain of joins at one place: katran's balancer at -O1)."""
    if x != NULL_SIDE and x not in nids_b and partners_a.get(x) == {y} and _lookups(y) <= _lookups(x):
        return x
    if y != NULL_SIDE and y not in nids_a and partners_b.get(y) == {x} and _lookups(x) <= _lookups(y):
        return y
    return None


NULL_SIDE = -1
"""In a linked null id ``("n", site, a, b)``: the side where every place so linked is NULL."""


def _is_null(v: Value) -> bool:
    return type(v) is ScalarValue and v.value.const_value == 0


def _side(x: Value, y: Value) -> bool:
    """A map value (of a map without a lock: the places so linked need not hold one pointer, and a lock's
    value names its lock by its id), or a lookup result with its id, against NULL."""
    return (((type(x) is MapValue and x.map.lock is None) or (type(x) is MapValueOrNull and x.nid is not None))
            and _is_null(y)) or (((type(y) is MapValue and y.map.lock is None)
                                  or (type(y) is MapValueOrNull and y.nid is not None)) and _is_null(x))


def _nids(s: State) -> set[Nid]:
    """Every null id the state's registers and spills (and its callers') use, with the lookup ids of map
    values (``MapValue.lid``) and of the lock held."""
    out: set[Nid] = set()
    if isinstance(s.lock, tuple):
        out.add(s.lock[1])
    for regs, stack in ((s.regs, s.stack), *((f.regs, f.stack) for f in s.frames)):
        for v in (*regs, *(v for _, v in stk.spilled_values(stack))):
            if isinstance(v, MapValueOrNull) and v.nid is not None:
                out.add(v.nid)
            elif isinstance(v, MapValue) and v.lid is not None:
                out.add(v.lid)
    return out


def has_nid(nid: Nid | None, lookup: int) -> bool:
    """Whether null id ``nid`` stands for (among others) the result of the lookup at ``lookup``."""
    if isinstance(nid, tuple) and nid[0] == "n":
        return has_nid(nid[2], lookup) or has_nid(nid[3], lookup)  # type: ignore[arg-type]
    return nid == lookup


DATA = "data"
"""The pseudo id of packet pointers at a constant offset (their base: the packet's start)."""


def _from_data(p: PacketPtr) -> PacketPtr:
    """``p`` as linked to ``DATA`` if it has no id and a constant offset (else unchanged)."""
    c = p.off.const_value
    if p.pid is not None or c is None or c >= 1 << 63:
        return p
    return PacketPtr(p.off, DATA, c)


def restart_checked_length(s: State, site: int) -> State:
    """``s`` as a load of ``ctx->data`` at instruction ``site`` leaves it: the kernel's new pointer has
    range 0 whatever earlier checks proved (a range belongs to the registers that held the checked
    pointer's id when the check ran), but the checked length ``pkt_min``, which serves every pointer at a
    constant offset, would hand it the old checks. So the pointers held now at constant offsets move to an
    id of their own that keeps the length they had, and the checked length starts again from 0. (Inside a
    ``OneOf`` a pointer has no id: it is checked against the new length, which only costs precision.)"""
    if s.pkt_min == 0:
        return s
    taken = _pids(s)
    i = 0
    while ("reload", site, i) in taken:
        i += 1
    pid: Pid = ("reload", site, i)
    moved = False

    def detach(v: Value) -> Value:
        nonlocal moved
        if isinstance(v, PacketPtr) and v.pid is None and (c := v.off.const_value) is not None and c < 1 << 63:
            moved = True
            return PacketPtr(v.off, pid, c)
        return v

    out = s.map_values(detach)
    ranges = (*out.ranges, (pid, s.pkt_min)) if moved else out.ranges
    return State(out.regs, out.defs, out.stack, 0, ranges, out.frames, out.lock)


def _pids(s: State) -> set[Pid]:
    """Every packet-pointer id the state uses: in its ranges, registers and spills, and its callers'."""
    out = {p for p, _ in s.ranges}
    for regs, stack in ((s.regs, s.stack), *((f.regs, f.stack) for f in s.frames)):
        for v in (*regs, *(v for _, v in stk.spilled_values(stack))):
            if isinstance(v, PacketPtr) and v.pid is not None:
                out.add(v.pid)
    return out


def _fresh(site: int, a: State, b: State, names: dict[tuple[Pid, Pid, int], tuple[object, ...]]) -> tuple[object, ...]:
    """A name for a new link at the join at instruction ``site``, used by neither state: names are
    only meaningful within a state, so a bounded set per site serves every pass through it (nested
    names grew with each join of a long header-parsing chain and had to be cut off)."""
    taken = _pids(a) | _pids(b) | set(names.values())
    i = 0
    while ("j", site, i) in taken:
        i += 1
    return ("j", site, i)


def _canonical(s: State, site: int) -> State:
    """``s`` with the links named at the join at ``site`` renumbered ``("j", site, 0)``, ``1``, ... in the
    order they first appear (registers, spills, the callers' frames), and the ranges of such names that no
    pointer holds any more dropped.

    A link's name means something only within its state (which pointers share a base), so two states that
    differ by the names alone are one state, and they must compare equal: else a loop head's fixpoint never
    settles. (Generated program 967: each join at its loop head linked a packet pointer under a name the
    two sides did not use, so the result alternated between ``("j", h, 1)`` and ``("j", h, 2)`` for ever.)
    The renaming is one to one on this site's names and leaves every other name alone, so it links and
    unlinks nothing, and each range stays with its pointers."""
    names: dict[Pid, Pid] = {}

    def note(v: Value) -> None:
        pid = v.pid if isinstance(v, PacketPtr) else None
        if isinstance(pid, tuple) and len(pid) == 3 and pid[1] == site and pid not in names:
            names[pid] = ("j", site, len(names))

    for regs, stack in ((s.regs, s.stack), *((f.regs, f.stack) for f in s.frames)):
        for v in regs:
            note(v)
        for _, v in stk.spilled_values(stack):
            note(v)
    ranges = tuple((names.get(p, p), n) for p, n in s.ranges
                   if not (isinstance(p, tuple) and len(p) == 3 and p[1] == site) or p in names)
    if all(k == v for k, v in names.items()) and len(ranges) == len(s.ranges):
        return s

    def rename(v: Value) -> Value:
        if isinstance(v, PacketPtr) and v.pid in names:
            return PacketPtr(v.off, names[v.pid], v.delta)
        return v

    out = s.map_values(rename) if any(k != v for k, v in names.items()) else s
    return State(out.regs, out.defs, out.stack, out.pkt_min, ranges, out.frames, out.lock)


def _apply(s: State, rewrite: dict[int, Value], new_ranges: dict[Pid, int]) -> State:
    regs = list(s.regs)
    spills: dict[int, Value] = {}
    for i, v in rewrite.items():
        if i >= 100:
            spills[i - 100] = v
        else:
            regs[i] = v
    new_stack = stk.replace_spills(s.stack, spills) if spills else s.stack
    ranges = s.ranges + tuple(new_ranges.items()) if new_ranges else s.ranges
    return State(tuple(regs), s.defs, new_stack, s.pkt_min, ranges, s.frames, s.lock)


def _combine(a: State | None, b: State | None, op: str, thresholds: tuple[int, ...] = (),
             site: int | None = None) -> State | None:
    if a is None:
        return b
    if b is None:
        return a if op != "narrow" else None
    linked = False
    if op != "narrow" and (places := _linkable_places(a, b)):
        a0 = a
        a, b = _link_pairs(a, b, site, places)
        linked = a is not a0
        if site is not None:
            a, b = _link_nulls(a, b, site, places)

    if op == "join":
        jv = cc.join_values
        regs = tuple([x if x is y else jv(x, y) for x, y in zip(a.regs, b.regs, strict=True)])
    elif op == "widen":
        regs = tuple([x if x is y else widen_values(x, y, thresholds) for x, y in zip(a.regs, b.regs, strict=True)])
    else:
        regs = tuple([x if x is y else narrow_values(x, y) for x, y in zip(a.regs, b.regs, strict=True)])
    # The definitions: ``a``'s own where they already hold ``b``'s (the same sets, so later tests of
    # the joined state against ``a`` stop at the identity test).
    defs = a.defs if a.defs is b.defs else tuple(
        [x if x is y or y <= x else x | y for x, y in zip(a.defs, b.defs, strict=True)])
    if op == "widen":
        pkt_min = a.pkt_min if b.pkt_min >= a.pkt_min else 0
    elif op == "narrow":
        pkt_min = b.pkt_min
    else:
        pkt_min = min(a.pkt_min, b.pkt_min)
    if a.lock == b.lock:
        lock = a.lock
    else:  # narrowing keeps the newer state's (computed from a sound state); a join cannot say which
        lock = b.lock if op == "narrow" else MAYBE_LOCKED
    out = _drop_dangling(State(regs, defs, stk.join(a.stack, b.stack, op, thresholds), pkt_min,
                               _ranges(a, b, op), _combine_frames(a.frames, b.frames, op, thresholds), lock))
    return _canonical(out, site) if linked and site is not None else out


def _drop_dangling(s: State) -> State:
    """Packet/null ids whose proven range was lost in the join are just unlinked (sound, less precise)."""
    live: set[Pid] | None = None
    for v in s.regs:  # (most states hold no linked packet pointer, and need no set of live ids)
        if type(v) is PacketPtr and v.pid is not None:
            if live is None:
                live = {p for p, _ in s.ranges}
            if v.pid not in live:
                break
    else:
        return s
    assert live is not None

    def unlink(v: Value) -> Value:
        if isinstance(v, PacketPtr) and v.pid is not None and v.pid not in live:
            return PacketPtr(v.off, None, 0)
        return v

    return s.map_values(unlink)


def join(a: State | None, b: State | None, site: int | None = None) -> State | None:
    """``site``: the instruction the states meet at, which names the links made (else nested names)."""
    return _combine(a, b, "join", site=site)


def widen(a: State | None, b: State | None, thresholds: tuple[int, ...] = (), site: int | None = None) -> State | None:
    return _combine(a, b, "widen", thresholds, site)


def narrow(a: State | None, b: State | None) -> State | None:
    return _combine(a, b, "narrow")


def le(a: State | None, b: State | None) -> bool:
    if a is None or a is b:
        return True
    if b is None:
        return False
    if a.pkt_min < b.pkt_min:
        return False
    if a.lock != b.lock and b.lock != MAYBE_LOCKED:
        return False
    if b.ranges and a.ranges is not b.ranges:
        ra = dict(a.ranges)
        if any(ra.get(p, -1) < n for p, n in b.ranges):
            return False
    # The cheap tests first (a conjunction: the order changes only the time).
    if a.defs is not b.defs:
        for dx, dy in zip(a.defs, b.defs, strict=True):
            if dx is not dy and not dx <= dy:
                return False
    # From the last register down: the callee-saved ones (r6-r9) are the ones paths most often disagree
    # on (the constants that key the partitions), r10 never does.
    ar, br = a.regs, b.regs
    for i in range(len(ar) - 1, -1, -1):
        x, y = ar[i], br[i]
        if x is not y and not value_le(x, y):
            return False
    sa, sb = a.stack, b.stack
    if sa is not sb:
        hit = _STACK_LE.get((id(sa), id(sb)))
        if hit is not None and hit[0] is sa and hit[1] is sb:
            if not hit[2]:
                return False
        else:
            out = stk.le(sa, sb)
            if len(_STACK_LE) >= _STACK_LE_MAX:
                _STACK_LE.clear()
            _STACK_LE[id(sa), id(sb)] = (sa, sb, out)
            if not out:
                return False
    return a.frames is b.frames or _frames_le(a.frames, b.frames)


_STACK_LE: dict[tuple[int, int], tuple[stk.Stack, stk.Stack, bool]] = {}
"""(id of a stack, id of another) → (the two, whether the first is included in the second), for :func:`le`:
a fixpoint compares each new state with every partition of its point, and the new states of a path share
their stack until a store, the partitions theirs until a join changes it, so the same two stacks are compared
again and again (nine times in ten on generated program 10). The entry keeps both alive, so their ids are not
reused while it exists."""
_STACK_LE_MAX = 1 << 14


def unlink_null_id(s: State, nid: int) -> State:
    """A lookup at ``nid`` runs again: earlier results of it are a different value from now on."""
    if not any(_linked_to(v, nid) for regs, stack in ((s.regs, s.stack), *((f.regs, f.stack) for f in s.frames))
               for v in (*regs, *(w for _, w in stk.spilled_values(stack)))):
        return s  # (what the walk below finds when no value is linked to that lookup: the common case)

    def fn(v: Value) -> Value:
        if isinstance(v, MapValueOrNull) and has_nid(v.nid, nid):
            return MapValueOrNull(v.map, v.off, None)
        if isinstance(v, MapValue) and has_nid(v.lid, nid):  # the kernel gives the new value a new id
            return MapValue(v.map, v.off)
        return v

    return s.map_values(fn)


def _linked_to(v: Value, nid: int) -> bool:
    """Whether ``v`` is a lookup result or a map value linked to the lookup at ``nid`` (see :func:`unlink_null_id`)."""
    t = type(v)
    if t is MapValueOrNull:
        return has_nid(cast(MapValueOrNull, v).nid, nid)
    return t is MapValue and has_nid(cast(MapValue, v).lid, nid)


def unlink_packet_id(s: State, pid: Pid) -> State:
    """A new variable packet offset is made at ``pid``: pointers from an earlier visit lose the link."""
    if not s.frames and not any(p == pid for p, _ in s.ranges) and not any(
            type(v) is PacketPtr and v.pid == pid for v in s.regs) and not any(
            type(v) is PacketPtr and v.pid == pid for _, v in stk.spilled_values(s.stack)):
        return s  # (what the walk below gives when no pointer or range has that id: the first visit)

    def fn(v: Value) -> Value:
        if isinstance(v, PacketPtr) and v.pid == pid:
            return PacketPtr(v.off, None, 0)
        return v

    s = s.map_values(fn)
    return State(s.regs, s.defs, s.stack, s.pkt_min, tuple((p, n) for p, n in s.ranges if p != pid), s.frames, s.lock)
