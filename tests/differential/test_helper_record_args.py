"""A record that may be None (`m.get(k)`, `pkt.payload.read(Rec, off)`), once checked `is not None`, is
passed to an @inline helper's record parameter, the same in the four executions; unchecked it is refused
with the check to write (tests/frontend/bad_programs/python_meaning.py)."""

from __future__ import annotations

import sys

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, HashMap, Packet, Struct, inline, u16, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")


class Pair(Struct):
    a: u32
    b: u32


class Head(Struct):
    kind: u16
    size: u16


pairs = HashMap(u32, Pair, 16)
seen = HashMap(Pair, u32, 16)
sizes = HashMap(u16, u32, 16)


@inline
def count(p: Pair) -> None:
    seen[p] = p.a + p.b


@inline
def note(h: Head) -> u32:
    sizes[h.kind] = u32(h.size)
    return u32(h.size)


@xdp
def record_args(pkt: Packet) -> int:
    r = pairs.get(pkt.len & 3)
    if r is not None:
        count(r)
    h = pkt.payload.read(Head, 0)
    if h is None:
        return XDP_PASS
    return XDP_DROP if note(h) > 100 else XDP_PASS


@pytest.fixture(autouse=True)
def clean_state() -> None:
    reset_state(sys.modules[__name__])


def test_checked_records_are_helper_arguments_in_every_execution() -> None:
    pairs[0] = Pair(a=1, b=2)
    pairs[2] = Pair(a=5, b=6)
    packets = [bytes(14), bytes(16) + b"\x00\x07\x01\x00", bytes(17) + b"\x00\x07\x00\x10", bytes(18) + b"\x00\x01"]
    assert compare(record_args, packets, executions=EXECUTIONS) is None
    assert record_args(bytes(14) + b"\x00\x07\x01\x00") == XDP_DROP  # 18 bytes: key 2; size 256
    assert seen[Pair(a=5, b=6)] == 11 and sizes[7] == 256
