"""The abstract stack: 64 slots of 8 bytes, each byte initialised or not, plus at most one spilled value.

Accesses are required to be naturally aligned (the kernel requires it for the stack: its spill
tracking relies on it), so an access never straddles two slots. Each slot follows the kernel's byte
types (``STACK_SPILL``, ``STACK_ZERO``, ``STACK_MISC``, ``STACK_INVALID``) as they hold on every path:

* a scalar stored at the start of a slot (register or immediate, any size) is a *spill*: its bytes
  ``[0, size)`` give the value back to a read at the start of the slot of at most that size;
  a pointer is spilled only whole (8 bytes) and read back only whole;
* any other store makes its bytes "zero" (a store of the constant 0) or "some bytes", and drops the
  slot's spill (its bytes become "some bytes");
* a read that is not such a fill is 0 when every byte read is zero (or a spilled 0, alone), else an
  unknown number of the access width.

This is exactly what the kernel keeps (tests/verify/analysis/test_precision.py checks it byte by
byte against the kernel): ``*(u32 *)(r10 - 4) = 2`` read back is an unknown number for the kernel too,
so tracking more would accept programs whose safety the kernel cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from pybpfdsl.bpf import abi
from pybpfdsl.verify.analysis import cache as cc
from pybpfdsl.verify.analysis.values import (
    ScalarValue,
    Value,
    narrow_values,
    value_le,
    widen_values,
)

__all__ = ["SLOTS", "STACK_SIZE", "Slot", "Stack", "empty_stack"]

STACK_SIZE = abi.STACK_SIZE
"""MAX_BPF_STACK: bytes below r10 a program may use."""
SLOTS = STACK_SIZE // 8

_ZERO = ScalarValue(cc.const(0))


@dataclass(slots=True, unsafe_hash=True, init=False)
class Slot:
    """Immutable, as if frozen (every field ``Final``), with its own ``__init__``: a frozen dataclass sets
    each field through ``object.__setattr__``, and every store makes a slot."""

    init: Final[int]
    """Bit ``b`` set: byte ``b`` of the slot (lowest address first) holds written data on every path."""
    spill: Final[Value | None]
    """The value spilled at the start of the slot (bytes ``[0, size)``), the same on every path."""
    size: Final[int]
    zero: Final[int]
    """Bit ``b`` set: byte ``b`` is a stored zero (the kernel's ``STACK_ZERO``) on every path; never a
    byte of the spill."""

    def __init__(self, init: int, spill: Value | None = None, size: int = 0, zero: int = 0) -> None:
        self.init = init
        self.spill = spill
        self.size = size
        self.zero = zero

    @property
    def pos(self) -> int:
        """Where the spill starts: always the start of the slot (the kernel spills nowhere else)."""
        return 0

    def join(self, other: Slot, op: str = "join", thresholds: tuple[int, ...] = ()) -> Slot:
        if self == other:  # what the code below gives too (every value operation returns x for (x, x))
            return self
        init, zero = self.init & other.init, self.zero & other.zero
        a, b = self.spill, other.spill
        if a is not None and b is not None and self.size == other.size:
            return Slot(init, _combine(a, b, op, thresholds), self.size, zero)
        if _pointer(a) or _pointer(b):
            # A pointer spilled on one path only: the slot still refuses a partial read (the kernel
            # does on that path), and a whole read gives a pointer or a number.
            return Slot(init, _combine(self.whole(), other.whole(), op, thresholds), 8, zero)
        return Slot(init, None, 0, zero)

    def whole(self) -> Value:
        """What an 8-byte read of the slot gives (initialisation aside)."""
        if self.spill is not None and self.size == 8:
            return self.spill
        return _read_bytes(self, 0, 8)

    def le(self, other: Slot) -> bool:
        if other.init & ~self.init or other.zero & ~self.zero:
            return False
        if other.spill is None:
            return not _pointer(self.spill)
        return self.spill is not None and self.size == other.size and value_le(self.spill, other.spill)


def _pointer(v: Value | None) -> bool:
    return v is not None and not isinstance(v, ScalarValue)


def _combine(a: Value, b: Value, op: str, thresholds: tuple[int, ...]) -> Value:
    if op == "widen":
        return widen_values(a, b, thresholds)
    return (cc.join_values if op == "join" else narrow_values)(a, b)


EMPTY_SLOT = Slot(0)

Stack = tuple[Slot, ...]
"""Slot ``i`` covers ``r10 - 512 + 8*i`` up to ``+8``."""


def empty_stack() -> Stack:
    return (EMPTY_SLOT,) * SLOTS


def slot_of(off: int) -> tuple[int, int]:
    """(slot index, byte within slot) of frame offset ``off`` (``-512 <= off < 0``)."""
    base = off + STACK_SIZE
    return base // 8, base % 8


def _mask(pos: int, size: int) -> int:
    return ((1 << size) - 1) << pos


def write(stack: Stack, off: int, size: int, value: Value | None) -> Stack:
    """Store ``size`` bytes at constant ``off``; ``value`` None means "some scalar bytes".

    ``value`` is the whole register (or the sign-extended immediate), not truncated to ``size``: the
    kernel keeps it so, and decides on it whether a spill is a spilled 0."""
    idx, pos = slot_of(off)
    old = stack[idx]
    bytes_ = _mask(pos, size)
    if type(value) is ScalarValue and value.link is not None:
        # (the kernel keeps a spilled number's id; we do not, so the copy at the link's instruction, run
        # again in a loop, need only unlink the registers: ``transfer._unlink_scalars``)
        value = ScalarValue(value.value)
    if pos == 0 and value is not None and (size == 8 or isinstance(value, ScalarValue)):
        # A spill (the kernel's, for privileged loaders: a scalar of any size, a pointer whole); bytes
        # past a narrow spill keep their type, except an older spill's, which become "some bytes". The
        # register is kept whole, as the kernel keeps it (a read truncates it).
        new = Slot(old.init | bytes_, value, size, old.zero & ~bytes_)
    else:
        zero = isinstance(value, ScalarValue) and value.value.const_value == 0
        new = Slot(old.init | bytes_, None, 0, old.zero | bytes_ if zero else old.zero & ~bytes_)
    return (*stack[:idx], new, *stack[idx + 1:])


def write_unknown_range(stack: Stack, lo: int, hi: int) -> Stack:
    """A store somewhere in ``[lo, hi)``: no byte becomes initialised for sure, spills there are lost."""
    out = list(stack)
    for idx in range(max(0, slot_of(lo)[0]), min(SLOTS, slot_of(hi - 1)[0] + 1)):
        out[idx] = Slot(out[idx].init)
    return tuple(out)


def initialised(stack: Stack, lo: int, hi: int) -> bool:
    """Whether every byte of ``[lo, hi)`` is initialised."""
    for off in range(lo, hi):
        idx, pos = slot_of(off)
        if not stack[idx].init >> pos & 1:
            return False
    return True


def _read_bytes(slot: Slot, pos: int, size: int) -> Value:
    """A read that is not a fill: 0 if every byte is a stored zero or every byte a spilled 0 (the kernel
    does not mix the two), else an unknown number."""
    bytes_ = _mask(pos, size)
    if slot.zero & bytes_ == bytes_:
        return _ZERO
    if pos + size <= slot.size and isinstance(slot.spill, ScalarValue) and slot.spill.value.const_value == 0:
        return _ZERO
    return ScalarValue(cc.sized(size))


def read(stack: Stack, off: int, size: int) -> Value:
    """The value loaded by a ``size``-byte read at constant ``off`` (caller checked initialisation)."""
    idx, pos = slot_of(off)
    slot = stack[idx]
    if slot.spill is not None and pos == 0:
        if size == 8 and slot.size == 8:
            return slot.spill
        if size <= slot.size and isinstance(slot.spill, ScalarValue):
            return ScalarValue(cc.truncate(slot.spill.value, size * 8))
    return _read_bytes(slot, pos, size)


def join(a: Stack, b: Stack, op: str = "join", thresholds: tuple[int, ...] = ()) -> Stack:
    """Slot by slot; ``a`` itself when no slot changed (states that share a stack keep sharing it, so
    later joins and comparisons of them stop at the identity test)."""
    if a is b:
        return a
    out = None
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if x is y:
            continue
        z = x.join(y, op, thresholds)
        if z is x or z == x:
            continue
        if out is None:
            out = list(a)
        out[i] = z
    return a if out is None else tuple(out)


def le(a: Stack, b: Stack) -> bool:
    # A plain loop: this runs millions of times per corpus, and a generator inside all() cost 2-3% of it.
    if a is b:
        return True
    for x, y in zip(a, b, strict=True):  # noqa: SIM110 - see above
        if x is not y and not x.le(y):
            return False
    return True


_SPILLS: dict[int, tuple[Stack, list[tuple[int, Value]]]] = {}


def spilled_values(stack: Stack) -> list[tuple[int, Value]]:
    """(slot index, value) of every spill: the explanation lists them, id renaming walks them.

    Cached by the stack's identity (stacks are immutable and shared between many states); the entry
    keeps the stack alive, so an id is never reused while its entry exists."""
    hit = _SPILLS.get(id(stack))
    if hit is not None and hit[0] is stack:
        return hit[1]
    out = [(i, s.spill) for i, s in enumerate(stack) if s.spill is not None]
    if len(_SPILLS) > 8192:
        _SPILLS.clear()
    _SPILLS[id(stack)] = (stack, out)
    return out


def replace_spills(stack: Stack, fn: dict[int, Value]) -> Stack:
    out = list(stack)
    for idx, v in fn.items():
        s = out[idx]
        out[idx] = Slot(s.init, v, s.size, s.zero)
    return tuple(out)
