"""State partitions: the analysis keeps up to ``MAX_PARTS`` states per program point, told apart by
their packet facts and live constants (a bounded trace partitioning), before it joins them into one."""

from __future__ import annotations

from dataclasses import dataclass, field

from pybpfdsl.bpf.instruction import Instruction
from pybpfdsl.bpf.opcode import Kind, Source, source
from pybpfdsl.verify.analysis import abstract_state as st
from pybpfdsl.verify.analysis import stack as stk
from pybpfdsl.verify.analysis.abstract_state import State
from pybpfdsl.verify.analysis.critical import SLOT0, critical_in
from pybpfdsl.verify.analysis.values import MapPtr, PacketPtr, ScalarValue, StackPtr

__all__ = ["MAX_PARTS", "OVERFLOW", "Partitioner", "Parts", "forget", "joined", "partition_key"]

MAX_PARTS = 8
"""Partitions kept per program point before further states are joined into one (see :func:`partition_key`)."""
PARTITION_CONSTANTS = True
"""Also keep apart states whose live registers hold different constants (``off = is_ip ? 14 : 0``):
the kernel follows each such path with the constant known."""


Parts = dict[object, State]
"""The states at one program point, by partition key (see :func:`partition_key`); their union is the invariant."""

OVERFLOW = ("overflow",)
"""The key of the partition that takes every state once a point has ``MAX_PARTS`` partitions."""


def partition_key(s: State, live: int = (1 << 11) - 1, critical: int = 0) -> object:
    """The packet facts of a state: states that differ in them are kept apart (up to ``MAX_PARTS``).

    The kernel explores paths one by one, so after ``if (a) check 34 bytes else check 38 bytes`` each
    path keeps its own proven length (and its pointers their constant offsets); a join keeps only the
    smaller. Keeping one state per distinct (proven length, packet-pointer shape of the live registers
    and the spills, proven ranges of the ids they use) — a bounded trace partitioning — gives back that
    precision where packet code needs it, and only there: states with equal packet facts are joined.
    Constants spilled to the stack count where ``critical`` (:func:`.critical.critical_in`) says a jump
    tests them after a fill (a flag kept on the stack across helper calls in a loop); the partitioner asks
    for them only in its coarser keys (see :meth:`Partitioner._key`).
    """
    shape: list[tuple[int, object, object, int]] = []
    consts: list[tuple[int, int]] = []
    i = -1
    for v in s.regs:
        i += 1
        if not live >> i & 1:
            continue
        # type() rather than isinstance(): the value classes are final, and this is the hot path
        if type(v) is ScalarValue:
            # (``const_value`` written out: the mask first, most registers hold no constant)
            if PARTITION_CONSTANTS and not (c := v.value).tnum.mask and not c.is_bottom:
                consts.append((i, c.tnum.value))
        elif type(v) is PacketPtr:
            shape.append((i, v.off.const_value, v.pid, v.delta))
        elif type(v) is MapPtr:  # one helper call for two maps (LLVM merges them): each map its path,
            consts.append((200 + i, hash(v.map)))
        elif type(v) is StackPtr and not (c := v.off).tnum.mask and not c.is_bottom:  # and its key its own place
            consts.append((300 + i, c.tnum.value))
    spills = stk.spilled_values(s.stack)
    if spills:
        for i, v in spills:
            if type(v) is PacketPtr:
                shape.append((100 + i, v.off.const_value, v.pid, v.delta))
            elif (type(v) is ScalarValue and critical >> (SLOT0 + i) & 1 and not (c := v.value).tnum.mask
                  and not c.is_bottom):
                consts.append((SLOT0 + i, c.tnum.value))
    if not shape:
        return (s.pkt_min, (), (), tuple(consts))
    used = {pid for _, _, pid, _ in shape}
    return (s.pkt_min, tuple(r for r in s.ranges if r[0] in used), tuple(shape), tuple(consts))


def joined(parts: Parts | None) -> State | None:
    """The join of the partitions (None if there are none).

    Memoized by the identity of the states (see :data:`_JOINED`): the driver and the loop pass each ask
    for the join at every point of the same final partitions, and a join of several states is costly."""
    if not parts:
        return None
    if len(parts) == 1:
        for s in parts.values():
            return s
    states = tuple(parts.values())
    key = tuple(map(id, states))
    hit = _JOINED.get(key)
    if hit is not None and _same_objects(hit[0], states):
        return hit[1]
    out: State | None = None
    for s in states:
        out = st.join(out, s)
    if len(_JOINED) >= _JOINED_MAX:
        _JOINED.clear()
    _JOINED[key] = (states, out)
    return out


def forget() -> None:
    """Drop the memo of :func:`joined` (the driver calls this when an analysis ends: its states are not
    asked for again, and kept they would only be more objects for the cycle collector to walk)."""
    _JOINED.clear()


def _same_objects(a: tuple[State, ...], b: tuple[State, ...]) -> bool:
    """Whether the two tuples hold the very same state objects, in order."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))


_JOINED: dict[tuple[int, ...], tuple[tuple[State, ...], State | None]] = {}
"""Ids of the states joined → (those states, their join). The entry holds the states, so no id of
it is reused while it exists, and a hit is checked against them by identity (the join is a pure function
of the states, which are immutable: exact)."""
_JOINED_MAX = 1 << 14


_TESTED: list[tuple[tuple[Instruction, ...], list[list[int]], list[int]]] = []
"""The last program's (instructions, successors, :func:`.critical.critical_in`), by identity."""


def _tested_of(insns: tuple[Instruction, ...], succs: list[list[int]]) -> list[int]:
    for i, s, out in _TESTED:
        if i is insns and s is succs:
            return out
    out = critical_in(insns, succs)
    _TESTED[:] = [(insns, succs, out)]
    return out


def _jump_regs(insn: Instruction) -> int:
    """The registers a conditional jump tests (0 for any other instruction)."""
    if insn.kind != Kind.JCOND:
        return 0
    return 1 << insn.dst | (1 << insn.src if source(insn.opcode) == Source.X else 0)


def _coarser(key: object, level: int, tested: int = 0, own: int = 0) -> object:
    """``key`` (of :func:`partition_key`) at a coarser ``level``: 1 drops the proven packet ranges and
    length (states that differ only there are joined, keeping their constants and pointer shapes apart:
    ``ok = 0`` on a path whose bounds check failed and ``ok = 1`` on the one that passed it, xdp-tutorial's
    grow_parse at -O1); 2 keeps the packet facts and of the constants only the *critical* ones; 3 keeps
    only those; 4 keeps the packet facts and the constants the point's own jump tests (``own``), 5 the checked
    length and those constants, 6 the packet facts alone, 7 only the checked length. Critical are what later checks
    hinge on: the constants of the registers and stack slots in ``tested`` (see :func:`.critical.critical_in`)
    and the live stack pointers and maps (a flag ``is_tcp`` set where the TCP header was checked, tested after
    a dozen header paths joined; LLVM's one ``bpf_trace_printk`` call for nine paths that each put the format
    at their own stack offset). Levels 4 to 7 are for points where more combinations of critical constants
    meet than the partitions hold (a header-presence flag and header offsets in registers and on the stack,
    around inlined helpers: generated program 30121): a partition per packet shape, or per checked length,
    still keeps each flag with the length checked where it was set (and a pointer apart from the number the
    same register holds on the path whose check failed: xdp-filter's TCP filters at -O1), where joining
    them all kept neither."""
    k: tuple[object, ...] = key  # type: ignore[assignment]
    # (pkt_min, ranges, shape, constants); anything after them stays (a test salts the keys so)
    if level == 1:
        return ("ranges dropped", *k[2:])
    consts: tuple[tuple[int, int], ...] = k[3]  # type: ignore[assignment]
    critical = tuple(c for c in consts if c[0] >= 200 or tested >> c[0] & 1)
    if level == 2:
        return ("constants dropped", *k[:3], critical, *k[4:])
    if level == 3:
        return ("critical", critical, *k[4:])
    # Levels 4 and 5 keep the constants of the registers the point's own jump tests (``own``): what decides
    # where each state goes next, a loop latch's ``if flag != 0 goto loop`` (xdp-tools' IPv6 extension-header
    # loop at -O1: test_latch_flag_partitions.py); 6 and 7 drop them too, for a jump on a register with many
    # constants (test_spilled_flags.py's ``r8``, one of 40).
    if level <= 5:
        decided = tuple(c for c in consts if c[0] < 11 and own >> c[0] & 1)
        if level == 4:
            return ("packet facts + decided", *k[:3], decided, *k[4:])
        return ("checked length + decided", k[0], decided, *k[4:])
    if level == 6:
        return ("packet facts", *k[:3], *k[4:])
    return ("checked length", k[0], *k[4:])


COARSEST = 7
"""The last level of :func:`_coarser`; past it a point's partitions collapse into one."""
HEAD_LEVEL = 6
"""The last level of :func:`_coarser` at a loop head (see :attr:`Partitioner.heads`), which skips the levels of
the checked length alone (5 and 7)."""
CRITICAL_LEVEL = 3
"""The first level of :func:`_coarser` whose keys are critical facts only (3 to 7)."""
CRITICAL_PARTS = 2
"""The last levels keep up to this many times ``max_parts`` partitions: its keys are few facts, each
one a later check depends on (nine stack offsets of one call's argument are nine kernel paths)."""


@dataclass
class Partitioner:
    """Where a state goes among the partitions of a point (``max_parts`` 1: no partitioning)."""

    max_parts: int
    live: list[int]
    tested: list[int] | None = None
    """Per point, the registers and slots whose constants the last levels keep (:func:`.critical.critical_in`); set by
    :meth:`learn`, which the fixpoint calls before it propagates (the program is not known here before)."""
    coarse: dict[int, int] = field(default_factory=dict)
    """Points whose partitions are told apart by a coarser key (point → level of :func:`_coarser`: see :meth:`add`)."""
    own: list[int] = field(default_factory=list)
    """Per point, the registers its own conditional jump tests (set by :meth:`learn`; see :func:`_coarser`)."""
    rekeyed: bool = False
    """Set when :meth:`add` regrouped a point's partitions: every one of them is a new state to propagate."""

    def _key(self, s: State, t: int) -> object:
        level = self.coarse.get(t)
        if level is None:
            # The finest key leaves the spilled constants out: states there are told apart by every live
            # register's constant and by their packet facts already, and a program that keeps many
            # constants on its stack (katran's balancer) stepped 17% more instructions for nothing. The coarser
            # keys, which keep only the critical facts, take them in (see :func:`partition_key`).
            return partition_key(s, self.live[t])
        tested = self._tested(t)
        return _coarser(partition_key(s, self.live[t], tested), level, tested, self._own(t))

    heads: frozenset[int] = frozenset()
    """Loop heads: their partitions stop at the packet facts (level 6) and then collapse (set by :meth:`learn`).
    A loop entered in one partition per checked length is what the loops' cost estimate (:mod:`.loops`)
    reads as that many paths the kernel walks through the loop one by one (the loop programs of
    test_unsound_accepts.py got a second complexity finding); the last level serves the joins of header
    paths, not loop entries."""

    def learn(self, insns: tuple[Instruction, ...], succs: list[list[int]],
              heads: frozenset[int] | set[int] = frozenset()) -> None:
        """Find the program's tested registers (:attr:`tested`), once (and once per program for every
        partitioner of it: ``driver._past_loops`` makes one per run, up to a hundred), and note its loop heads."""
        if self.tested is None:
            self.tested = _tested_of(insns, succs)
            self.own = [_jump_regs(i) for i in insns]
        self.heads = frozenset(heads)

    def _tested(self, t: int) -> int:
        return 0 if self.tested is None else self.tested[t]

    def _own(self, t: int) -> int:
        return self.own[t] if self.own else 0

    def _cap(self, level: int) -> int:
        return self.max_parts * CRITICAL_PARTS if level >= CRITICAL_LEVEL else self.max_parts

    def add(self, parts: Parts, t: int, s: State) -> object:
        """The key ``s`` goes to in ``parts`` at point ``t``: its own while the point has room; when it is
        full, the partitions are regrouped by a coarser key (:func:`_coarser`, level by level) if that fits,
        else the point collapses: every partition is joined into one (under ``OVERFLOW``) that takes every
        later state. (Merging a state into the nearest partition instead kept more paths apart, but its
        partitions drift from their keys and re-widen one another: mutants of the loops example and the
        issue's 64-iteration loop ran for many minutes.)"""
        if OVERFLOW in parts:
            return OVERFLOW
        key = self._key(s, t) if self.max_parts > 1 else OVERFLOW
        if key in parts or len(parts) < self._cap(self.coarse.get(t, 0)):
            return key
        states = [*parts.values(), s]
        last = HEAD_LEVEL if t in self.heads else COARSEST
        for level in range(self.coarse.get(t, 0) + 1, last + 1):
            if last == HEAD_LEVEL and level == 5:
                continue
            tested = self._tested(t)
            keys = [_coarser(partition_key(old, self.live[t], tested), level, tested, self._own(t)) for old in states]
            if len(set(keys)) > self._cap(level):
                continue
            groups: Parts = {}
            for k, old in zip(keys[:-1], states[:-1], strict=True):
                g = st.join(groups.get(k), old, t)
                assert g is not None
                groups[k] = g
            self.coarse[t] = level
            parts.clear()
            parts.update(groups)
            self.rekeyed = True
            return keys[-1]
        merged = joined(parts)
        parts.clear()
        assert merged is not None
        parts[OVERFLOW] = merged
        return OVERFLOW

    def put(self, parts: Parts, t: int, s: State) -> None:
        """Add ``s`` to ``parts`` by joining it into its partition."""
        k = self.add(parts, t, s)
        old = parts.get(k)
        new = s if old is None else st.join(old, s, t)
        assert new is not None
        parts[k] = new
