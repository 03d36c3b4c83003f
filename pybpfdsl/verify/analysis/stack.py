"""The abstract stack: 64 slots of 8 bytes, each byte initialised or not, plus at most one spilled value.

Accesses are required to be naturally aligned (the kernel requires it for the stack: its spill
tracking relies on it), so an access never straddles two slots. A slot remembers the register
value last stored into it when a load can give exactly that value back: a full 8-byte spill (any
type: pointers survive a spill/fill round trip) or a narrower scalar store at the start of a slot (or
of the value 0 anywhere), read back at the same position and size — the kernel's rule, which only
tracks narrow spills at 8-byte-aligned offsets and zeroed bytes elsewhere. Everything else reads back as an unknown
scalar of the access width — provided every byte read was written on every path (``init`` mask).
"""

from __future__ import annotations

from dataclasses import dataclass

from pybpfdsl.verify.analysis import cache as cc
from pybpfdsl.verify.analysis.values import (
    ScalarValue,
    Value,
    join_values,
    narrow_values,
    value_le,
    widen_values,
)

__all__ = ["SLOTS", "STACK_SIZE", "Slot", "Stack", "empty_stack"]

STACK_SIZE = 512
"""MAX_BPF_STACK: bytes below r10 a program may use."""
SLOTS = STACK_SIZE // 8


@dataclass(frozen=True, slots=True)
class Slot:
    init: int
    """Bit ``b`` set: byte ``b`` of the slot (lowest address first) holds written data on every path."""
    spill: Value | None = None
    pos: int = 0
    size: int = 0

    def join(self, other: Slot, op: str = "join", thresholds: tuple[int, ...] = ()) -> Slot:
        spill: Value | None = None
        if self.spill is not None and other.spill is not None and (self.pos, self.size) == (other.pos, other.size):
            if op == "widen":
                spill = widen_values(self.spill, other.spill, thresholds)
            else:
                spill = (join_values if op == "join" else narrow_values)(self.spill, other.spill)
        return Slot(self.init & other.init, spill, self.pos if spill is not None else 0,
                    self.size if spill is not None else 0)

    def le(self, other: Slot) -> bool:
        if other.init & ~self.init:
            return False
        if other.spill is None:
            return True
        return (self.spill is not None and (self.pos, self.size) == (other.pos, other.size)
                and value_le(self.spill, other.spill))


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
    """Store ``size`` bytes at constant ``off``; ``value`` None means "some scalar bytes"."""
    idx, pos = slot_of(off)
    old = stack[idx]
    if size == 8:
        new = Slot(0xFF, value, 0, 8)
    elif isinstance(value, ScalarValue) and (pos == 0 or value.value.const_value == 0):
        # Like the kernel: a narrow scalar store is remembered only at the start of a slot (at other
        # offsets the kernel keeps just "some bytes", or "zero bytes" for a store of 0).
        new = Slot(old.init | _mask(pos, size), ScalarValue(cc.truncate(value.value, size * 8)), pos, size)
    else:
        new = Slot(old.init | _mask(pos, size))
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


def read(stack: Stack, off: int, size: int) -> Value:
    """The value loaded by a ``size``-byte read at constant ``off`` (caller checked initialisation)."""
    idx, pos = slot_of(off)
    slot = stack[idx]
    if slot.spill is not None:
        if (slot.pos, slot.size) == (pos, size):
            return slot.spill
        if isinstance(slot.spill, ScalarValue) and pos == slot.pos and size < slot.size:
            return ScalarValue(cc.truncate(slot.spill.value, size * 8))
    return ScalarValue(cc.sized(size))


def join(a: Stack, b: Stack, op: str = "join", thresholds: tuple[int, ...] = ()) -> Stack:
    if a is b:
        return a
    return tuple(x if x is y else x.join(y, op, thresholds) for x, y in zip(a, b, strict=True))


def le(a: Stack, b: Stack) -> bool:
    return a is b or all(x is y or x.le(y) for x, y in zip(a, b, strict=True))


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
        out[idx] = Slot(s.init, v, s.pos, s.size)
    return tuple(out)
