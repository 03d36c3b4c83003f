"""The bytecode machine's values and memory, mirroring `bpf.interpreter` symbolically.

A register holds a scalar (64-bit term), a `Ptr` into a region or a `MapRef` (what `lddw rX, map`
loads). As in the interpreter, pointers are (region, offset) rather than addresses: the region is
always known on a path (K2's memory-type concretization, §5), so aliasing is only ever between accesses
to the same region. Global-data offsets must be constants (K2's offset concretization); stack offsets too, except in a
frame without spilled pointers, where a variable one selects among the frame's bytes; packet
offsets may be symbolic and are bounds-checked against the symbolic length; a map value may be read and
written at a symbolic offset (bounds-checked against its size, as the kernel verifier does): each byte
is a select over the offsets the access may start at; a map-value pointer is the
map plus the key it was looked up with, so two pointers to one element alias through the map's array.

Stack bytes a program reads before writing them are inputs (`Inputs.stack_byte`), one set per frame
the path creates: the kernel lets a privileged program read never-written stack and promises nothing
about what it finds there, so assuming zeros would prove programs equal that the kernel runs
differently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import z3

from pybpfdsl.bpf.abi import STACK_SIZE
from pybpfdsl.verify.equivalence.paths import Unsupported
from pybpfdsl.verify.equivalence.symbolic_state import (
    Effects,
    MapShape,
    Term,
    bv_to_bytes,
    bytes_to_bv,
    ite,
    union_terms,
)

RegionKind = Literal["packet", "ctx", "stack", "value", "section"]


@dataclass(frozen=True, eq=False)
class Region:
    """Which memory a pointer points into. `name` is the map or section; `key` the map element's key."""

    kind: RegionKind
    name: str = ""
    depth: int = 0
    key: Term = None
    epoch: int = 0
    """For a hash map value: `Effects.epochs` of the map at the lookup (the element it found)."""

    def same(self, other: Region) -> bool:
        """Statically the same region (map-value regions only when their keys are the same term)."""
        if self.kind != other.kind or self.name != other.name or self.depth != other.depth \
                or self.epoch != other.epoch:
            return False
        return self.key is None or other.key is None or bool(self.key.eq(other.key))


@dataclass(frozen=True, eq=False)
class Ptr:
    region: Region
    offset: Term
    found: Term = None
    """For a map lookup's result: whether it is non-null (None: never null)."""
    low32: bool = False
    """Only the pointer's low 32 bits (after a 32-bit move): usable only in a 32-bit subtraction of two
    pointers into the same region, where the unknown base address cancels modulo 2**32 (LLVM computes
    a packet's length as `w = data_end; w -= data`)."""


@dataclass(frozen=True)
class MapRef:
    name: str


@dataclass(frozen=True)
class Unset:
    """A register the kernel leaves uninitialised (r0 and r2-r9 at entry, r1-r5 after a call): its
    verifier rejects a program that reads one, so the encoding never gives it a value."""

    why: str


Val = Term | Ptr | MapRef | Unset

PACKET = Region("packet")
CTX = Region("ctx")


def as_int(term: Term) -> int | None:
    """The term's value as a signed 64-bit Python int when it is a constant."""
    if isinstance(term, int):
        return term
    t = z3.simplify(term)
    if z3.is_bv_value(t):
        value: int = t.as_signed_long()
        return value
    return None


def bv64(value: int) -> Term:
    return z3.BitVecVal(value & ((1 << 64) - 1), 64)


Unwritten = Callable[[int, int], Term]
"""(frame number, stack offset) → the byte a never-written stack slot holds (`Inputs.stack_byte` of one
program)."""


def _zero_stack(frame: int, offset: int) -> Term:
    return z3.BitVecVal(0, 8)


@dataclass
class Memory:
    """The per-path memory besides `Effects`: stacks (one per frame), their pointer spills, the packet.

    `frames` numbers the frame at each call depth in the order the path created them (the main frame
    is 0); `created` counts the frames created so far. A never-written stack byte is
    `unwritten(frame number, offset)`."""

    packet: Term
    stacks: list[dict[int, Term]] = field(default_factory=lambda: [{}])
    spills: list[dict[int, Val]] = field(default_factory=lambda: [{}])
    packet_writes: tuple[Term, ...] = ()
    unwritten: Unwritten = _zero_stack
    frames: list[int] = field(default_factory=lambda: [0])
    created: int = 1
    head: Term = None
    """Where the packet starts now, as an offset from where it started (bpf_xdp_adjust_head moves it);
    packet pointers and the packet array count from the original start. None: 0."""
    end: Term = None
    """Where the packet ends now (bpf_xdp_adjust_tail moves it), from the original start; None: the
    packet length."""

    meta_read: bool = False
    """Whether the path read xdp_md.data_meta (its packet accesses are then not modelled)."""

    def copy(self) -> Memory:
        return Memory(self.packet, [dict(s) for s in self.stacks], [dict(s) for s in self.spills],
                      self.packet_writes, self.unwritten, list(self.frames), self.created, self.head, self.end,
                      self.meta_read)

    def push_frame(self) -> None:
        """A subprogram's frame: a fresh stack whose never-written bytes are new inputs."""
        self.stacks.append({})
        self.spills.append({})
        self.frames.append(self.created)
        self.created += 1

    def pop_frame(self) -> None:
        self.stacks.pop()
        self.spills.pop()
        self.frames.pop()

    def stack_byte(self, depth: int, at: int) -> Term:
        """The byte at offset `at` of the frame at call depth `depth` (an input when never written)."""
        byte = self.stacks[depth].get(at)
        return self.unwritten(self.frames[depth], at) if byte is None else byte


def merge_values(when: Term, a: Val, b: Val) -> Val | None:
    """`a` where `when` holds, else `b`; None when they differ in kind (scalar, map, pointer into a
    different region) and so cannot be one value, or are pointers at different offsets: stack, context,
    global-data and map-value offsets must stay constants, and a merged packet offset would make every
    later access and bounds check through it a disjunction for the solver to split again."""
    if isinstance(a, Unset) and isinstance(b, Unset):
        return a  # uninitialised on both sides, whatever the reason
    if isinstance(a, MapRef | Unset) or isinstance(b, MapRef | Unset):
        # Compared as the same class only: a z3 term's == would build an equation (or fail) instead.
        return a if type(a) is type(b) and a == b else None
    if isinstance(a, Ptr) and isinstance(b, Ptr):
        ra, rb = a.region, b.region
        if (ra.kind, ra.name, ra.depth, ra.epoch, a.low32) != (rb.kind, rb.name, rb.depth, rb.epoch, b.low32) \
                or (ra.key is None) != (rb.key is None) or (a.found is None) != (b.found is None):
            return None
        if a is b:
            return a
        if not a.offset.eq(b.offset):
            return None
        region = ra if ra is rb or ra.key is None else Region(ra.kind, ra.name, ra.depth, ite(when, ra.key, rb.key),
                                                              ra.epoch)
        found = None if a.found is None else ite(when, a.found, b.found)
        return Ptr(region, a.offset, found, a.low32)
    if isinstance(a, Ptr) or isinstance(b, Ptr) or a.sort() != b.sort():
        return None
    return ite(when, a, b)


def merge_memory(when: Term, a: Memory, b: Memory) -> Memory | None:
    """The memory of two merged states (a byte written on one side only is the other side's input byte
    there); None when their frames differ or a stack slot holds a spilled pointer on one side only."""
    if a.frames != b.frames or a.created != b.created:
        return None
    stacks = [{at: ite(when, a.stack_byte(depth, at), b.stack_byte(depth, at)) for at in sorted(fa.keys() | fb.keys())}
              for depth, (fa, fb) in enumerate(zip(a.stacks, b.stacks))]
    spills: list[dict[int, Val]] = []
    for sa, sb in zip(a.spills, b.spills):
        if sa.keys() != sb.keys():
            return None
        merged: dict[int, Val] = {}
        for at, x in sa.items():
            value = merge_values(when, x, sb[at])
            if value is None:
                return None
            merged[at] = value
        spills.append(merged)
    head = a.head if a.head is None and b.head is None else ite(when, _or(a.head, bv64(0)), _or(b.head, bv64(0)))
    if a.end is None and b.end is None:
        end = None
    elif a.end is None or b.end is None:
        return None  # one side never moved the end: its end is the length, which this module does not know
    else:
        end = ite(when, a.end, b.end)
    return Memory(ite(when, a.packet, b.packet), stacks, spills, union_terms(a.packet_writes, b.packet_writes),
                  a.unwritten, list(a.frames), a.created, head, end, a.meta_read or b.meta_read)


def _or(t: Term, default: Term) -> Term:
    return default if t is None else t


class Fault(Exception):
    """The access would fault in the interpreter (the kernel verifier would reject the program)."""


def stack_offset(ptr: Ptr, off: int, count: int) -> int:
    at = as_int(ptr.offset)
    if at is None:
        raise Unsupported("stack access at a symbolic offset")
    at += off
    if at < 0 or at + count > STACK_SIZE:
        raise Fault(f"{count}-byte stack access at offset {at - STACK_SIZE} outside the frame")
    return at


def concrete_offset(ptr: Ptr, off: int, what: str) -> int:
    at = as_int(ptr.offset)
    if at is None:
        raise Unsupported(f"{what} access at a symbolic offset")
    return at + off


def packet_bounds(ptr: Ptr, off: int, count: int, length: Term, head: Term = None) -> Term:
    """The condition under which `count` bytes at `ptr + off` lie inside the packet (from `head`, by
    default 0, to `length`)."""
    at = ptr.offset + off
    return z3.And(at >= (0 if head is None else head), at + count <= length)


def read(mem: Memory, fx: Effects, shapes: dict[str, MapShape], ptr: Ptr, off: int, count: int) -> list[Term]:
    """Bytes at `ptr + off` (packet bounds and null checks are the caller's guards)."""
    r = ptr.region
    if r.kind == "packet":
        at = ptr.offset + off
        return [z3.Select(mem.packet, at + i) for i in range(count)]
    if r.kind == "stack":
        if as_int(ptr.offset) is None:
            _no_spills(mem, r.depth)
            frame = [mem.stack_byte(r.depth, j) for j in range(STACK_SIZE)]
            return select_bytes(frame, ptr.offset + off, count)
        at = stack_offset(ptr, off, count)
        return [mem.stack_byte(r.depth, at + i) for i in range(count)]
    if r.kind == "section":
        try:
            return fx.read_section(r.name, concrete_offset(ptr, off, "global data"), count)
        except IndexError as exc:
            raise Fault(str(exc)) from None
    if r.kind == "value":
        size = shapes[r.name].value_size
        _fresh(fx, r)
        data = bv_to_bytes(z3.Select(fx.maps[r.name].value, r.key), size)
        at = as_int(ptr.offset)
        if at is None:
            return select_bytes(data, ptr.offset + off, count)
        at += off
        if at < 0 or at + count > size:
            raise Fault(f"{count}-byte access at {at} outside a {size}-byte value of map {r.name}")
        return data[at:at + count]
    raise Fault(f"read from {r.kind} memory")


def _no_spills(mem: Memory, depth: int) -> None:
    if mem.spills[depth]:
        raise Unsupported("stack access at a variable offset in a frame holding a spilled pointer")


def value_bounds(ptr: Ptr, off: int, count: int, size: int) -> Term:
    """The condition under which `count` bytes at `ptr + off` lie inside a `size`-byte map value (the
    kernel verifier proves it for every access at a variable offset; a fault where it fails)."""
    if count > size:
        return z3.BoolVal(False)
    return z3.ULE(ptr.offset + off, size - count)


def select_bytes(data: list[Term], at: Term, count: int) -> list[Term]:
    """The `count` bytes of `data` from the symbolic offset `at` (which the caller's guard keeps in
    [0, len(data) - count]): per byte, a select over the offsets it may start at."""
    last = len(data) - count
    out: list[Term] = []
    for i in range(count):
        byte = data[last + i]
        for j in range(last - 1, -1, -1):
            byte = ite(at == j, data[j + i], byte)
        out.append(byte)
    return out


def store_bytes(data: list[Term], at: Term, parts: list[Term]) -> list[Term]:
    """`data` with `parts` written at the symbolic offset `at` (kept inside `data` by the caller's
    guard): byte j is part i where `at` is j - i, else what it was."""
    out: list[Term] = []
    for j, old in enumerate(data):
        byte = old
        for i in range(len(parts) - 1, -1, -1):
            if 0 <= j - i <= len(data) - len(parts):
                byte = z3.If(at == j - i, parts[i], byte)
        out.append(byte)
    return out


def _fresh(fx: Effects, r: Region) -> None:
    if r.epoch != fx.epochs.get(r.name, 0):
        raise Unsupported(f"access through a pointer into map {r.name} looked up before an update or delete of "
                          "the map (the kernel may have replaced the element: not modelled)")


def write(mem: Memory, fx: Effects, shapes: dict[str, MapShape], ptr: Ptr, off: int, parts: list[Term]) -> None:
    r = ptr.region
    count = len(parts)
    if r.kind == "packet":
        at = ptr.offset + off
        for i, b in enumerate(parts):
            mem.packet = z3.Store(mem.packet, at + i, b)
            mem.packet_writes = (*mem.packet_writes, at + i)
        return
    if r.kind == "stack" and as_int(ptr.offset) is None:
        _no_spills(mem, r.depth)
        old = [mem.stack_byte(r.depth, j) for j in range(STACK_SIZE)]
        mem.stacks[r.depth] = dict(enumerate(store_bytes(old, ptr.offset + off, parts)))
        return
    if r.kind == "stack":
        at = stack_offset(ptr, off, count)
        frame = mem.stacks[r.depth]
        for i, b in enumerate(parts):
            frame[at + i] = b
        spills = mem.spills[r.depth]
        for p in [p for p in spills if p < at + count and p + 8 > at]:
            del spills[p]
        return
    if r.kind == "section":
        if r.name.startswith(".rodata"):
            raise Fault(f"write to read-only {r.name}")
        try:
            fx.write_section(r.name, concrete_offset(ptr, off, "global data"), parts)
        except IndexError as exc:
            raise Fault(str(exc)) from None
        return
    if r.kind == "value":
        size = shapes[r.name].value_size
        _fresh(fx, r)
        current = bv_to_bytes(z3.Select(fx.maps[r.name].value, r.key), size)
        at = as_int(ptr.offset)
        if at is None:
            current = store_bytes(current, ptr.offset + off, parts)
        else:
            at += off
            if at < 0 or at + count > size:
                raise Fault(f"{count}-byte access at {at} outside a {size}-byte value of map {r.name}")
            current[at:at + count] = parts
        fx.write_value(shapes[r.name], r.key, bytes_to_bv(current))
        return
    raise Fault(f"write to {r.kind} memory")

