"""bpf_spin_lock: the kernel's rules for the one lock a program may hold, and where a map value's lock is.

The kernel (``process_spin_lock`` and its callers) accepts ``bpf_spin_lock(p)`` only when ``p`` is a
map value pointer, not NULL, at a constant offset that is the offset of the ``struct bpf_spin_lock``
its map's BTF declares; it tracks the lock held by the map and the register id of the lookup that
gave ``p``; it refuses a second lock while one is held, an unlock with none held or of another lock,
any other helper call while one is held, and an exit that leaves it held. Loads, stores and helper
accesses that overlap a lock (or any other special field of the value) are refused whether it is held
or not. Here the lock held is ``State.lock`` and the lookup's id ``MapValue.lid`` (the lookup's
instruction, which a new run of that lookup takes away from the values it gave before: see
``abstract_state.unlink_null_id``). Where we cannot tell which lock a state holds (paths that disagree
were joined, a value of unknown origin) the program is refused: never accepted on a guess.
"""

from __future__ import annotations

from pybpfdsl.bpf.abi import Helper, MapType
from pybpfdsl.bpf.btf_ext import Btf, BtfKind
from pybpfdsl.verify.analysis.abstract_state import MAYBE_LOCKED, State
from pybpfdsl.verify.analysis.checks import Code, Sink
from pybpfdsl.verify.analysis.values import MapInfo, MapValue, Nid, Value

__all__ = ["LOCK_HELPERS", "check_unlocked", "special_fields", "spin_lock", "spin_unlock"]

LOCK_HELPERS = frozenset({Helper.SPIN_LOCK, Helper.SPIN_UNLOCK})

SPECIAL_STRUCTS = frozenset({"bpf_spin_lock", "bpf_res_spin_lock", "bpf_timer", "bpf_wq", "bpf_list_head",
                             "bpf_list_node", "bpf_rb_root", "bpf_rb_node", "bpf_refcount", "bpf_task_work"})
"""Struct types the kernel treats as fields of their own in a map value (``btf_parse_fields``): a program
may not read or write their bytes itself. Finding one the kernel would not (nested deeper than it looks)
only refuses more."""

LOCK_MAP_TYPES = frozenset({MapType.HASH, MapType.ARRAY})
"""The XDP-usable map types whose values may hold a bpf_spin_lock (others fail at map creation)."""


def special_fields(btf: Btf | None, value_type_id: int | None,
                   map_type: int | None) -> tuple[int | None, tuple[tuple[int, int, str], ...]]:
    """(offset of the lock a program may take, or None; every special field as (offset, size, name))."""
    if btf is None or value_type_id is None:
        return None, ()
    found: list[tuple[int, int, str, bool]] = []

    def walk(type_id: int, base: int, top: bool, depth: int) -> None:
        t = btf.resolve(type_id)
        if depth > 8:
            return
        if t.kind in (BtfKind.STRUCT, BtfKind.UNION):
            if t.name in SPECIAL_STRUCTS:
                found.append((base, t.size or 0, t.name, top))
                return
            for _, member, bit_off in t.members:
                walk(member, base + bit_off // 8, False, depth + 1)
        elif t.kind == BtfKind.ARRAY:
            _, elem, n = t.members[0]
            size = btf.size_of(elem)
            for i in range(min(n, 64)):
                walk(elem, base + i * size, False, depth + 1)

    t = btf.resolve(value_type_id)
    if t.kind in (BtfKind.STRUCT, BtfKind.UNION) and t.name not in SPECIAL_STRUCTS:
        for _, member, bit_off in t.members:
            m = btf.resolve(member)
            if m.kind in (BtfKind.STRUCT, BtfKind.UNION) and m.name in SPECIAL_STRUCTS:
                found.append((bit_off // 8, m.size or 0, m.name, True))
            else:
                walk(member, bit_off // 8, False, 1)
    else:
        walk(value_type_id, 0, True, 0)
    locks = [f for f in found if f[2] in ("bpf_spin_lock", "bpf_res_spin_lock")]
    lock = None
    if len(locks) == 1 and locks[0][2] == "bpf_spin_lock" and locks[0][3] and map_type in LOCK_MAP_TYPES:
        lock = locks[0][0]
    return lock, tuple(sorted({(off, size, name) for off, size, name, _ in found}))


def check_unlocked(s: State, idx: int, sink: Sink, what: str) -> None:
    """``what`` (a call, an exit) is refused while a lock may be held."""
    if s.lock is not None:
        held = "a bpf_spin_lock may be held here" if s.lock == MAYBE_LOCKED else "a bpf_spin_lock is held here"
        sink.report(Code.LOCK, idx, f"{what} while holding a lock is not allowed ({held}): "
                    "call bpf_spin_unlock first")


def _lock_of(v: Value, helper: str) -> tuple[tuple[str, Nid] | None, str | None]:
    """The lock ``v`` names ((map, lookup id), None) or why it names none (None, message)."""
    if not isinstance(v, MapValue):
        return None, f"{helper}: r1 must point to the bpf_spin_lock of a map value, not {v}"
    m: MapInfo = v.map
    if m.lock is None:
        return None, (f"{helper}: map {m.name} has no bpf_spin_lock a program may take (one struct "
                      "bpf_spin_lock at the top of the value's BTF type, in a hash or array map)")
    c = v.off.const_value
    if c is None:
        return None, f"{helper}: r1 ({v}) is not at a constant offset"
    if c != m.lock:
        return None, f"{helper}: r1 ({v}) does not point to map {m.name}'s bpf_spin_lock at offset {m.lock}"
    if v.lid is None:
        return None, (f"{helper}: which lookup r1 ({v}) comes from is not known here, so the kernel's "
                      "pairing of lock and unlock cannot be checked")
    return (m.name, v.lid), None


def spin_lock(s: State, idx: int, sink: Sink) -> State:
    lock, problem = _lock_of(s.regs[1], "bpf_spin_lock")
    if problem is not None:
        sink.report(Code.LOCK, idx, problem, 1)
    if s.lock is not None:
        sink.report(Code.LOCK, idx, "bpf_spin_lock while a lock may already be held: one lock at a time", 1)
    return State(s.regs, s.defs, s.stack, s.pkt_min, s.ranges, s.frames, lock or MAYBE_LOCKED)


def spin_unlock(s: State, idx: int, sink: Sink) -> State:
    lock, problem = _lock_of(s.regs[1], "bpf_spin_unlock")
    if problem is not None:
        sink.report(Code.LOCK, idx, problem, 1)
    elif s.lock is None:
        sink.report(Code.LOCK, idx, "bpf_spin_unlock without a lock held", 1)
    elif s.lock != lock:
        held = "a lock may or may not be held" if s.lock == MAYBE_LOCKED else f"the lock held is {s.lock[0]}'s"
        sink.report(Code.LOCK, idx, f"bpf_spin_unlock of a different lock than the one taken ({held}, "
                    "through the value of another lookup or path)", 1)
    return State(s.regs, s.defs, s.stack, s.pkt_min, s.ranges, s.frames, None)
