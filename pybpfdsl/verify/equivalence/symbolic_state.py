"""The symbolic machine state both encodings run against: inputs, map/global/ring-buffer effects.

One `Inputs` instance is shared by the two programs being compared, so they read the same packet, the
same initial maps and globals and the same helper results. `Effects` is the part of the state a program
changes (maps, global-data sections, ring buffers); its operations are written once here and used by
both the IR and the bytecode encoding, so the two cannot model a map differently (K2 §4.3: maps as
symbolic arrays, keys compared by value, not by the address they were read from).

Modelling decisions (each is also what the replay interpreters do, so counterexamples reproduce):
- the packet is an array from 64-bit offsets to bytes with a symbolic length in
  [MIN_PACKET_LEN, MAX_PACKET_LEN] (the kernel runs XDP on no frame shorter than an Ethernet header);
- a map is two arrays over its key bits: `present` (hash maps; for arrays presence is `key < max`) and
  `value`; a hash map (not LRU) has `room`, the number of entries it can still take (an input in
  [0, max_entries]): inserting a new key fails (E2BIG) when it is 0, as the kernel's and the DSL's do;
  an update of an LRU map may evict any other entries, full or not (the kernel's LRU lists are per CPU
  and approximate): which ones is an input, one set per update in update order (`Inputs.kept`),
  shared by the two programs the way helper results are, so a program that updates as its IR does
  evicts what its IR does;
- global-data sections are lists of byte terms (offsets into them are always constants); their initial
  bytes are inputs (user space writes them), except that where two objects compared hold different
  initial bytes (`.data`, `.rodata`) each program starts from its own object's, and such a byte is an
  output only where a program changes it (a difference nobody reads or writes is no difference);
- helper results (prandom, ktime) are streams of fresh variables consumed in call order; the CPU number
  is one variable; ring-buffer outputs always succeed and are logged in order;
- the packet's start and end move (bpf_xdp_adjust_head/tail) within a frame the driver chose: how much
  headroom there is before the packet and where the frame ends (`xdp_frame`) are inputs shared by both
  programs, as is how much metadata the driver put before it (`meta_len`: xdp_md.data_meta); bytes
  the start moves back over are the packet array's (inputs), bytes the end grows over are 0 as the
  kernel clears them; start and end are outputs. Counterexamples prefer BPF_PROG_TEST_RUN's frame
  (`TEST_RUN_FRAME`, no metadata), which the interpreters run;
- where XDP_REDIRECT goes (bpf_redirect's device, bpf_redirect_map's element: `redirect`) is an output
  seen with the action XDP_REDIRECT (before any call, an input); the elements of the maps
  bpf_redirect_map reads are inputs like any map's;
  bpf_fib_lookup's answers are unknown functions of what it is passed, one per call number (`fib`);
  bpf_csum_diff and bpf_xdp_load_bytes are exact; bpf_trace_printk's text is an output (`TRACE_OUTPUT`)
  that no replay shows, so a difference only there is never a counterexample, and its result (the
  text's length) is not modelled;
- stack bytes a bytecode program reads before writing are inputs of that program alone (`stack_byte`):
  the kernel promises nothing about them, and two programs compared find unrelated garbage;
- where a bytecode program uses a pointer as a number (stores it outside a stack slot, adds it
  atomically, reads part of a spilled one), the number is an address of that program alone
  (`address`): anywhere in `ADDRESSES`, one per object.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

import z3

from pybpfdsl.bpf.abi import ARRAY_MAP_TYPES, LRU_MAP_TYPES, STACK_SIZE, MapType, XdpMd
from pybpfdsl.bpf.memory import KERNEL_ADDRESSES

Term = Any
"""A Z3 expression (z3 has no type stubs)."""

MAX_PACKET_LEN: Final = 0xFFFF
"""Longest packet considered: more than the linear data of any XDP frame (BPF_PROG_TEST_RUN on a 4 KiB-page
kernel shows a program at most 3,520 linear bytes; generic XDP on a large-MTU device can show more)."""
ADDRESSES: Final = KERNEL_ADDRESSES
"""Where the kernel's objects lie (the bytecode interpreter's fake addresses too)."""
MIN_PACKET_LEN: Final = 14
"""Shortest packet considered: an Ethernet header. BPF_PROG_TEST_RUN refuses shorter frames (EINVAL) and
no driver passes one to XDP, so a difference only on shorter packets is no difference in the kernel."""

TRACE_OUTPUT: Final = "(bpf_trace_printk)"
"""Where bpf_trace_printk's records go: one more ring buffer, whose records the interpreters do not keep
(a difference only there is never confirmed by a replay, so never a counterexample)."""
TEST_RUN_FRAME: Final = (216, 3520)
"""The headroom and frame end of BPF_PROG_TEST_RUN's XDP frame on a 4 KiB-page kernel (and of the
bytecode interpreter): 256 bytes before the packet less a 40-byte struct xdp_frame; the 4 KiB page less
the headroom and a 320-byte skb_shared_info."""

ARRAY_TYPES: Final = ARRAY_MAP_TYPES
LRU_TYPES: Final = LRU_MAP_TYPES
RINGBUF_TYPE: Final = MapType.RINGBUF
BOUNDED_KEY_TYPES: Final = frozenset({MapType.DEVMAP, MapType.CPUMAP, MapType.XSKMAP})
"""DEVMAP, CPUMAP, XSKMAP: array-like, a slot may be empty, and no key from max_entries on is held."""
REDIRECT_TYPES: Final = BOUNDED_KEY_TYPES | {MapType.DEVMAP_HASH}
"""The maps bpf_redirect_map reads: DEVMAP, CPUMAP, XSKMAP and DEVMAP_HASH (user space fills them)."""
FIB_CALL_BITS: Final = 32 + 8 * 64
"""Width of a bpf_fib_lookup call's question (flags, the 64-byte struct) and answer (the int result,
the struct written back): see `fib`."""
REDIRECT_STATE_BITS: Final = 98
"""Width of the redirect state (`redirect`: a 66-bit target above a 32-bit index)."""


def bytes_to_bv(parts: list[Term]) -> Term:
    """Little-endian byte terms as one bit-vector (first byte lowest).

    The bytes of a stored value are slices of it, and a load of all of them is that value again: runs
    of adjacent slices of one term are joined back into it (or into one wider slice). Bytes that are
    selects on one condition (a merged state's) are joined arm by arm under it. So a value stored and
    loaded back, or written by a store of another width, is one term for the normal forms and for
    every later comparison, not a concatenation of eight byte questions."""
    if len(parts) == 1:
        return parts[0]
    condition = _shared_condition(parts)
    if condition is not None:
        return z3.If(condition, bytes_to_bv([_arm(p, condition, 1) for p in parts]),
                     bytes_to_bv([_arm(p, condition, 2) for p in parts]))
    runs: list[tuple[Term, int, int]] = []  # (base, hi, lo): the bytes so far as slices, lowest first
    for part in parts:
        base, hi, lo = _slice(part)
        if runs and runs[-1][0].eq(base) and runs[-1][1] + 1 == lo:
            runs[-1] = (base, hi, runs[-1][2])
        else:
            runs.append((base, hi, lo))
    pieces = [base if lo == 0 and hi == base.size() - 1 else z3.Extract(hi, lo, base) for base, hi, lo in runs]
    return pieces[0] if len(pieces) == 1 else z3.Concat(*reversed(pieces))


def _slice(t: Term) -> tuple[Term, int, int]:
    """(base, hi, lo) with t = bits hi..lo of base (t itself when it is not a slice)."""
    if z3.is_app_of(t, z3.Z3_OP_EXTRACT):
        hi, lo = t.params()
        return t.arg(0), hi, lo
    return t, t.size() - 1, 0


def _shared_condition(parts: list[Term]) -> Term | None:
    """The condition every select among `parts` tests, if there are selects and they all test one."""
    conditions = [p.arg(0) for p in parts if z3.is_app_of(p, z3.Z3_OP_ITE)]
    if conditions and all(c.eq(conditions[0]) for c in conditions[1:]):
        return conditions[0]
    return None


def _arm(t: Term, condition: Term, i: int) -> Term:
    """t's value where `condition` holds (i = 1) or fails (i = 2), for a select on it or any other t."""
    return t.arg(i) if z3.is_app_of(t, z3.Z3_OP_ITE) and t.arg(0).eq(condition) else t


def bv_to_bytes(value: Term, count: int) -> list[Term]:
    """The `count` little-endian bytes of a bit-vector."""
    return [z3.Extract(8 * i + 7, 8 * i, value) for i in range(count)]


def const_bytes(data: bytes) -> list[Term]:
    return [z3.BitVecVal(b, 8) for b in data]


def ite(when: Term, a: Term, b: Term) -> Term:
    """`a` where `when` holds, else `b`: the merge of one value of two states (`a` itself when equal)."""
    if a is b or a.eq(b):
        return a
    return z3.If(when, a, b)


def _union(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The keys of two dicts, `a`'s in its order then `b`'s others: not a set's order, which follows the
    strings' hashes (salted per process), since the order merged terms are built in decides their Z3
    ids and so the solver's work (a proof's units changed with PYTHONHASHSEED)."""
    return [*a, *(k for k in b if k not in a)]


def union_terms(a: tuple[Term, ...], b: tuple[Term, ...]) -> tuple[Term, ...]:
    """`a`, then the terms of `b` not already in it (z3 shares equal terms, so ids compare them)."""
    if not b or a is b:
        return a
    ids = {t.get_id() for t in a}
    return (*a, *(t for t in b if t.get_id() not in ids))


@dataclass(frozen=True)
class MapShape:
    """A map as both programs declare it (sizes in bytes)."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int

    @property
    def is_array(self) -> bool:
        return self.map_type in ARRAY_TYPES

    @property
    def is_ringbuf(self) -> bool:
        return self.map_type == RINGBUF_TYPE

    @property
    def has_room(self) -> bool:
        """Whether inserting a new key can fail for lack of room (hash maps that do not evict; not the
        maps bpf_redirect_map reads, which programs cannot update)."""
        return not self.is_array and not self.is_ringbuf and self.map_type not in LRU_TYPES | REDIRECT_TYPES


@dataclass(frozen=True)
class Layout:
    """Where state lives: map shapes, global-data sections and the globals inside them.

    `sections` maps a section name to its initial bytes when they are fixed (`.rodata`) or to its size
    when user space may change them (`.bss`, `.data`: their initial bytes are inputs).
    """

    maps: dict[str, MapShape]
    sections: dict[str, bytes | int]
    variables: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    initial: dict[str, bytes] = field(default_factory=dict, compare=False)
    """The object's bytes of each user-writable section (`.data` as the ELF has it, `.bss` zeros): what
    a program finds when its object is loaded as it is. Two objects whose bytes differ start apart
    (`Inputs`); otherwise these bytes are not assumed."""

    def section_size(self, name: str) -> int:
        s = self.sections[name]
        return s if isinstance(s, int) else len(s)

    def words(self, section: str) -> list[tuple[int, int]]:
        """(offset, size) of the section's units: each global variable (of at most 8 bytes, not
        overlapping an earlier one) is one word, every other byte is one alone. Initial values are
        inputs per word and outputs are observed per word, so a global is one term, as in the program,
        not eight bytes the normal forms and the solver would have to put back together."""
        size = self.section_size(section)
        owner: dict[int, tuple[int, int]] = {}
        for sec, offset, width in sorted(self.variables.values()):
            span = range(offset, offset + width)
            if sec == section and 1 <= width <= 8 and offset + width <= size and not any(i in owner for i in span):
                owner.update(dict.fromkeys(span, (offset, width)))
        out: list[tuple[int, int]] = []
        i = 0
        while i < size:
            offset, width = owner.get(i, (i, 1))
            out.append((offset, width))
            i = offset + width
        return out


class Inputs:
    """Every input of one comparison, as Z3 constants, created on first use."""

    def __init__(self, layout: Layout, other: Layout | None = None) -> None:
        """`other`: the second program's layout when it comes from another object (same sections and
        sizes); where the two objects' initial global data differ, each program starts from its own."""
        self.layout = layout
        self.packet = z3.Array("packet", z3.BitVecSort(64), z3.BitVecSort(8))
        self.length = z3.BitVec("packet_len", 64)
        self.cpu = z3.BitVec("cpu_id", 32)
        self.ctx: dict[int, Term] = {at: z3.BitVec(f"xdp_md_{at.name.lower()}", 32)
                    for at in (XdpMd.INGRESS_IFINDEX, XdpMd.RX_QUEUE_INDEX, XdpMd.EGRESS_IFINDEX)}
        self.assumptions: list[Term] = [z3.ULE(self.length, MAX_PACKET_LEN), z3.UGE(self.length, MIN_PACKET_LEN)]
        self.present: dict[str, Term] = {}
        self.values: dict[str, Term] = {}
        self.rooms: dict[str, Term] = {}
        """Per hash map that does not evict: how many more entries it takes at the start."""
        for shape in layout.maps.values():
            if shape.is_ringbuf:
                continue
            ks, vs = z3.BitVecSort(8 * shape.key_size), z3.BitVecSort(8 * shape.value_size)
            self.values[shape.name] = z3.Array(f"map_{shape.name}_value", ks, vs)
            if not shape.is_array:
                self.present[shape.name] = z3.Array(f"map_{shape.name}_present", ks, z3.BoolSort())
            if shape.has_room:
                room = self.rooms[shape.name] = z3.BitVec(f"map_{shape.name}_room", 32)
                self.assumptions.append(z3.ULE(room, shape.max_entries))
        self.sections: dict[str, tuple[Term, ...]] = {}
        self.apart: dict[str, tuple[Term, ...]] = {}
        """The second program's initial bytes of each section whose initial bytes differ between two
        objects (`other`); `sections` then holds the first's."""
        for name, init in layout.sections.items():
            if isinstance(init, bytes):
                self.sections[name] = tuple(const_bytes(init))
                theirs = other.sections.get(name) if other is not None else init
                if isinstance(theirs, bytes) and theirs != init:
                    self.apart[name] = tuple(const_bytes(theirs))
                continue
            mine = layout.initial.get(name)
            yours = other.initial.get(name) if other is not None else None
            data: list[Term] = []
            second: list[Term] = []
            for offset, size in layout.words(name):
                if mine is not None and yours is not None and mine[offset:offset + size] != yours[offset:offset + size]:
                    # Loaded as they are, the two objects hold different values here: each its own
                    # (user space could make them equal, and then nothing tells the programs apart).
                    data += const_bytes(mine[offset:offset + size])
                    second += const_bytes(yours[offset:offset + size])
                    continue
                word = z3.BitVec(f"{name}[{offset}]" if size == 1 else f"{name}[{offset}:{offset + size}]",
                                 8 * size)
                parts = [word] if size == 1 else bv_to_bytes(word, size)
                data += parts
                second += parts
            self.sections[name] = tuple(data)
            if second != data:
                self.apart[name] = tuple(second)
        self.streams: dict[str, list[Term]] = {"prandom": [], "ktime": [], "printk": []}
        self.widths = {"prandom": 32, "ktime": 64, "printk": 64}
        self.redirect = z3.BitVec("redirect_state", REDIRECT_STATE_BITS)
        """Where an XDP_REDIRECT goes when the program never calls bpf_redirect or bpf_redirect_map (and
        the index they found), as `redirect` encodes it: the per-CPU state an earlier run left."""
        self.metadata: Term | None = None
        """How many metadata bytes lie before the packet (-1: the driver keeps none), once used."""
        self.frame: tuple[Term, Term] | None = None
        """(headroom, frame end) once a program moves the packet's start or end (`xdp_frame`)."""
        self.fib: list[Term] = []
        """bpf_fib_lookup's answer functions, by call number (`fib_answer`)."""
        self.fib_calls: list[tuple[Term, Term]] = []
        """Every (question, answer) of bpf_fib_lookup either program may ask: what a counterexample's
        routes are made of."""
        self.sides = 0
        self.stack: dict[tuple[int, int, int], Term] = {}
        self.addresses: list[Term] = []
        self.evictions: dict[tuple[str, int], Term] = {}
        """(LRU map, update number) → the entries that survive that update (`kept`)."""
        """(side, frame, offset) → the never-written stack byte a program read there (`stack_byte`)."""

    def address(self, side: int, what: str, key: Term = None) -> Term:
        """The address at which program `side` finds object `what` (a map value: of the element under
        `key`): unknown, in `ADDRESSES`."""
        name = f"address{side}_{what}"
        if key is None:
            base = z3.BitVec(name, 64)
        else:
            base = z3.Function(name, key.sort(), z3.BitVecSort(64))(key)
        if not any(base.eq(t) for t in self.addresses):
            self.addresses.append(base)
            self.assumptions.append(z3.And(z3.UGE(base, ADDRESSES[0]), z3.ULE(base, ADDRESSES[1])))
        return base

    def xdp_frame(self) -> tuple[Term, Term]:
        """How far the packet's start may move back (the headroom bpf_xdp_adjust_head may take) and how
        far from its original start its end may move (bpf_xdp_adjust_tail's limit): the driver's
        choice, the same for both programs compared. BPF_PROG_TEST_RUN's are `TEST_RUN_FRAME`."""
        if self.frame is None:
            headroom, end = z3.BitVec("xdp_headroom", 64), z3.BitVec("xdp_frame_end", 64)
            self.frame = (headroom, end)
            self.assumptions += [z3.ULE(headroom, MAX_PACKET_LEN), z3.ULE(self.length, end),
                                 z3.ULE(end, 2 * MAX_PACKET_LEN)]
        return self.frame

    def meta_len(self) -> Term:
        """How many bytes of metadata the driver put before the packet (xdp_md.data_meta = data - it):
        up to 32, in words; -1 for a driver without metadata, whose data_meta is data + 1. Within the
        headroom (`xdp_frame`); BPF_PROG_TEST_RUN's is 0."""
        if self.metadata is None:
            headroom, _ = self.xdp_frame()
            m = self.metadata = z3.BitVec("xdp_meta_len", 64)
            self.assumptions.append(z3.Or(m == -1, z3.And(z3.ULE(m, 32), m & 3 == 0, z3.ULE(m, headroom))))
        return self.metadata

    def replay_preferences(self) -> list[Term]:
        """Constraints under which the interpreters replay a counterexample as the solver sees it (the
        frame BPF_PROG_TEST_RUN gives, zeros in its headroom), for a model to satisfy where it can."""
        if self.frame is None:
            return []
        headroom, end = self.frame
        room, length = TEST_RUN_FRAME
        return [headroom == room, end == length, *([] if self.metadata is None else [self.metadata == 0]),
                *[z3.Select(self.packet, z3.BitVecVal(-i, 64)) == 0 for i in range(1, room + 1)]]

    def new_side(self) -> int:
        """A number for one more bytecode program reading these inputs (0 for the first): its own
        never-written stack bytes."""
        self.sides += 1
        return self.sides - 1

    def stack_byte(self, side: int, frame: int, offset: int) -> Term:
        """What program `side` finds at byte `offset` (0-511) of the `frame`-th stack frame it creates
        (0: the main frame) when it never wrote there: anything (the kernel promises nothing)."""
        key = (side, frame, offset)
        byte = self.stack.get(key)
        if byte is None:
            byte = self.stack[key] = z3.BitVec(f"stack{side}_{frame}[{offset - STACK_SIZE}]", 8)
        return byte

    def kept(self, shape: MapShape, index: int) -> Term:
        """Which entries of LRU map `shape` survive its update number `index` (0-based, in update order
        on a run): anything (the kernel evicts as its per-CPU lists have it, before the map is full too)."""
        kept = self.evictions.get((shape.name, index))
        if kept is None:
            kept = self.evictions[(shape.name, index)] = z3.Array(
                f"map_{shape.name}_kept_{index}", z3.BitVecSort(8 * shape.key_size), z3.BoolSort())
        return kept

    def helper(self, stream: str, index: int) -> Term:
        """Result `index` (0-based, in call order) of a helper stream."""
        values = self.streams[stream]
        while len(values) <= index:
            values.append(z3.BitVec(f"{stream}_{len(values)}", self.widths[stream]))
        return values[index]

    def fib_answer(self, index: int) -> Term:
        """What bpf_fib_lookup call number `index` (0-based, in call order) answers, as a function of
        its question (`fib`): the FIB and neighbour tables the kernel holds then, the same for both
        programs compared, as helper streams are."""
        while len(self.fib) <= index:
            bits = z3.BitVecSort(FIB_CALL_BITS)
            self.fib.append(z3.Function(f"fib_lookup_{len(self.fib)}", bits, bits))
        return self.fib[index]

    def initial_sections(self, side: int | None = None) -> dict[str, tuple[Term, ...]]:
        """The global data program `side` starts from (the second's differs where `apart` says)."""
        return self.sections | self.apart if side == 1 else dict(self.sections)

    def initial_effects(self, side: int | None = None) -> Effects:
        maps = {name: MapState(self.present.get(name), value) for name, value in self.values.items()}
        rings = {name: () for name, s in self.layout.maps.items() if s.is_ringbuf} | {TRACE_OUTPUT: ()}
        calls = {"prandom": 0, "ktime": 0, "fib": 0} | {_evictions(s): 0 for s in self.layout.maps.values()
                                                if s.map_type in LRU_TYPES}
        return Effects(maps, self.initial_sections(side), rings, dict.fromkeys(maps, ()), calls, rooms=dict(self.rooms),
                       redirect=self.redirect)


def _evictions(shape: MapShape) -> str:
    """The name under which `Effects.calls` counts the updates of LRU map `shape` (each evicts)."""
    return f"evict:{shape.name}"


@dataclass(frozen=True)
class MapState:
    present: Term | None
    value: Term


@dataclass
class Effects:
    """The state a program changes, on one path (or merged paths). Copied when a path forks (terms are
    immutable)."""

    maps: dict[str, MapState]
    sections: dict[str, tuple[Term, ...]]
    rings: dict[str, tuple[Term, ...]]
    written: dict[str, tuple[Term, ...]]
    """Keys each map was written under (updates, deletes and stores through value pointers)."""
    calls: dict[str, int]
    seen: dict[str, tuple[Term, ...]] = field(default_factory=dict)
    """Keys each map was asked about: the initial entries a counterexample has to spell out."""
    rooms: dict[str, Term] = field(default_factory=dict)
    """How many more entries each hash map that does not evict takes (`MapShape.has_room`)."""
    epochs: dict[str, int] = field(default_factory=dict)
    """Per hash map, a number that changes with every update or delete: the kernel then links in a new
    element, and a value pointer looked up before still points at the old one."""
    redirect: Term = None
    """Where XDP_REDIRECT goes, as bpf_redirect and bpf_redirect_map last set it (`redirect`; at the
    start an input, `Inputs.redirect`)."""

    def copy(self) -> Effects:
        return Effects(dict(self.maps), dict(self.sections), dict(self.rings), dict(self.written), dict(self.calls),
                       dict(self.seen), dict(self.rooms), dict(self.epochs), self.redirect)

    def merged(self, other: Effects, when: Term) -> Effects | None:
        """The effects of two merged states: `self`'s where `when` holds, else `other`'s. None when no
        exact merge exists: helper streams consumed to different positions (the next result would be a
        different variable on each side) or ring buffers holding different numbers of records."""
        if self.calls != other.calls:
            return None
        rings: dict[str, tuple[Term, ...]] = {}
        for name, records in self.rings.items():
            theirs = other.rings[name]
            if len(records) != len(theirs) or any(x.size() != y.size() for x, y in zip(records, theirs)):
                return None
            rings[name] = tuple(ite(when, x, y) for x, y in zip(records, theirs))
        maps: dict[str, MapState] = {}
        for name, mine in self.maps.items():
            yours = other.maps[name]
            if mine is yours:
                maps[name] = mine
                continue
            present = None if mine.present is None else ite(when, mine.present, yours.present)
            maps[name] = MapState(present, ite(when, mine.value, yours.value))
        sections = {name: data if data is other.sections[name] else
                    tuple(ite(when, x, y) for x, y in zip(data, other.sections[name]))
                    for name, data in self.sections.items()}
        written = {name: union_terms(self.written.get(name, ()), other.written.get(name, ()))
                   for name in _union(self.written, other.written)}
        seen = {name: union_terms(self.seen.get(name, ()), other.seen.get(name, ()))
                for name in _union(self.seen, other.seen)}
        rooms = {name: ite(when, room, other.rooms[name]) for name, room in self.rooms.items()}
        # Where one side replaced elements, a pointer from before is stale on the merged state too.
        epochs = {name: e if e == other.epochs.get(name, 0) else max(e, other.epochs.get(name, 0)) + 1
                  for name in _union(self.epochs, other.epochs) for e in [self.epochs.get(name, 0)]}
        return Effects(maps, sections, rings, written, dict(self.calls), seen, rooms, epochs,
                       ite(when, self.redirect, other.redirect))

    # -- helpers -------------------------------------------------------------------------------

    def next_helper(self, inputs: Inputs, stream: str) -> Term:
        index = self.calls[stream]
        self.calls[stream] = index + 1
        return inputs.helper(stream, index)

    # -- maps ------------------------------------------------------------------------------------

    def present(self, shape: MapShape, key: Term) -> Term:
        self.seen[shape.name] = (*self.seen.get(shape.name, ()), key)
        state = self.maps[shape.name]
        below = z3.ULT(key, z3.BitVecVal(shape.max_entries, 8 * shape.key_size))
        if state.present is None:  # arrays: every index below max_entries exists
            return below
        if shape.map_type in BOUNDED_KEY_TYPES:
            return z3.And(below, z3.Select(state.present, key))
        return z3.Select(state.present, key)

    def value(self, shape: MapShape, key: Term) -> Term:
        return z3.Select(self.maps[shape.name].value, key)

    def _note(self, shape: MapShape, key: Term) -> None:
        self.written[shape.name] = (*self.written[shape.name], key)

    def write_value(self, shape: MapShape, key: Term, value: Term, when: Term = True) -> None:
        """Store `value` under `key` (the key must be present: a store through a value pointer)."""
        state = self.maps[shape.name]
        new = z3.Store(state.value, key, value)
        self.maps[shape.name] = replace(state, value=new if when is True else z3.If(when, new, state.value))
        self._note(shape, key)

    def fits(self, shape: MapShape, key: Term) -> Term:
        """Whether the map has room for `key`: it is there already, or the map is not full."""
        room = self.rooms.get(shape.name)
        if room is None:
            return z3.BoolVal(True)
        return z3.Or(self.present(shape, key), room != 0)

    def insert(self, inputs: Inputs, shape: MapShape, key: Term, value: Term, when: Term) -> None:
        """Make `key` present with `value` when `when` holds (an update that succeeded; for a map with
        `rooms`, `when` implies `fits`). An LRU map's update may evict other entries (`Inputs.kept`)."""
        state = self.maps[shape.name]
        present = state.present
        room = self.rooms.get(shape.name)
        if present is not None and room is not None:
            taken = z3.And(when, z3.Not(z3.Select(present, key)))
            self.rooms[shape.name] = z3.If(taken, room - 1, room)
        if present is not None:
            survivors = present
            if shape.map_type in LRU_TYPES:
                # The kernel takes a free element (evicting when its lists are short) before it looks
                # at the key, whatever the update finds: the survivors of every update are an input.
                kept = inputs.kept(shape, self.calls[_evictions(shape)])
                self.calls[_evictions(shape)] += 1
                k = z3.Const(f"{shape.name}_key", present.domain())
                survivors = z3.Lambda([k], z3.And(z3.Select(present, k), z3.Select(kept, k)))
            present = z3.If(when, z3.Store(survivors, key, z3.BoolVal(True)), survivors)
            self.epochs[shape.name] = self.epochs.get(shape.name, 0) + 1
        self.maps[shape.name] = MapState(present, z3.If(when, z3.Store(state.value, key, value), state.value))
        self._note(shape, key)

    def remove(self, shape: MapShape, key: Term) -> None:
        state = self.maps[shape.name]
        assert state.present is not None, "array elements cannot be deleted"
        room = self.rooms.get(shape.name)
        if room is not None:
            self.rooms[shape.name] = z3.If(z3.Select(state.present, key), room + 1, room)
        self.epochs[shape.name] = self.epochs.get(shape.name, 0) + 1
        self.maps[shape.name] = replace(state, present=z3.Store(state.present, key, z3.BoolVal(False)))
        self._note(shape, key)

    # -- global data -----------------------------------------------------------------------------

    def read_section(self, name: str, offset: int, count: int) -> list[Term]:
        data = self.sections[name]
        if offset < 0 or offset + count > len(data):
            raise IndexError(f"{count} bytes at {offset} outside section {name} ({len(data)} bytes)")
        return list(data[offset:offset + count])

    def write_section(self, name: str, offset: int, parts: list[Term]) -> None:
        data = list(self.sections[name])
        if offset < 0 or offset + len(parts) > len(data):
            raise IndexError(f"{len(parts)} bytes at {offset} outside section {name} ({len(data)} bytes)")
        data[offset:offset + len(parts)] = parts
        self.sections[name] = tuple(data)

    # -- ring buffers ----------------------------------------------------------------------------

    def output(self, ring: str, record: Term) -> None:
        self.rings[ring] = (*self.rings[ring], record)
