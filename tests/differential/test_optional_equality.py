"""`==`, `!=`, `in`, `not in` and `match` on a number that may be None (a payload byte, `m.get(k)`)
have Python's meaning in the four executions (pure Python, the IR and bytecode interpreters, the kernel)
and in the proof: None equals only None, so `b == 0x45` is False and `b != 0x45` True where `b` is None,
two lookups that both miss are equal, None is in no tuple and matches only `case _`."""

from __future__ import annotations

import sys

import pytest

from pybpfdsl import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, Global, HashMap, Packet, u32, u64, xdp
from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

counts = HashMap(u32, u32, 16)
seen = Global(u64, 0)


@xdp
def first_byte(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b == 0x45:                    # None past the packet's end: not equal
        return XDP_DROP
    if pkt.payload[1] != 7:          # None: not equal, so `!=` holds
        return XDP_TX
    return XDP_PASS


@xdp
def lookups(pkt: Packet) -> int:
    key = u32(pkt.len & 3)
    same = counts.get(key) == counts.get(key + 1)     # both missing: None == None
    differ = counts.get(key) != 5
    seen.value = u64(same) << 1 | u64(differ)
    if same and differ:
        return XDP_ABORTED
    return XDP_TX if same else XDP_PASS


@xdp
def scan_for_marker(pkt: Packet) -> int:
    found: u32 = 0
    for i in range(8):
        if pkt.payload[i] == 0xFF or 0xEE == pkt.payload[i]:  # noqa: SIM300  (the optional on either side)
            found += 1
    seen.value = found
    return XDP_DROP if found > 1 else XDP_PASS


@xdp
def byte_in_tuple(pkt: Packet) -> int:
    if pkt.payload[2] in (0x45, 0x60):       # None is in no tuple of numbers
        return XDP_DROP
    if counts.get(u32(pkt.len)) not in (5, 6):  # a missing key: not in, so `not in` holds
        return XDP_TX
    return XDP_PASS


@xdp
def match_a_byte(pkt: Packet) -> int:
    match pkt.payload[1]:                     # None matches no constant: only `case _`
        case 0:
            return XDP_DROP
        case 7 | 8:
            return XDP_TX
        case _ if pkt.len > 15:
            return XDP_ABORTED
    return XDP_PASS


@xdp
def narrowed_by_equality(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b == 0x45:
        seen.value = b >> 4                   # equal to a number: present, so a number here
        return XDP_DROP
    if b != 7:
        return XDP_TX
    seen.value = b + 100                      # `b != 7` failed: b is 7 here
    return XDP_PASS


PROGRAMS = (first_byte, lookups, scan_for_marker, byte_in_tuple, match_a_byte, narrowed_by_equality)
PACKETS = [bytes(14), bytes(14) + b"\x45", bytes(14) + b"\x01\x07", bytes(14) + b"\x01\x08",
           bytes(14) + b"\x01", bytes(14) + b"\xff\x00\xee\xff", bytes(17), bytes(18) + b"\xff" * 8]


@pytest.fixture(autouse=True)
def clean_state() -> None:
    reset_state(sys.modules[__name__])


def test_python_meaning() -> None:
    assert [first_byte(p) for p in PACKETS[:5]] == [XDP_TX, XDP_DROP, XDP_PASS, XDP_TX, XDP_TX]
    assert lookups(bytes(16)) == XDP_ABORTED and seen.value == 0b11   # both missing, and None != 5
    counts[0] = 5
    assert lookups(bytes(16)) == XDP_PASS and seen.value == 0b00      # 5 against None; 5 == 5
    counts[1] = 5
    assert lookups(bytes(16)) == XDP_TX and seen.value == 0b10        # 5 == 5
    counts[1] = 6
    assert lookups(bytes(17)) == XDP_PASS and seen.value == 0b01      # 6 against a missing key 2; 6 != 5
    assert scan_for_marker(bytes(14) + b"\xff\x00\xee") == XDP_DROP and seen.value == 2
    assert byte_in_tuple(bytes(14) + b"\x00\x00\x60") == XDP_DROP
    assert byte_in_tuple(bytes(15)) == XDP_TX            # no byte 2, no key 15
    counts[15] = 6
    assert byte_in_tuple(bytes(15)) == XDP_PASS
    assert [match_a_byte(p) for p in PACKETS[:5]] == [XDP_PASS, XDP_PASS, XDP_TX, XDP_TX, XDP_PASS]
    assert [narrowed_by_equality(p) for p in PACKETS[:4]] == [XDP_TX, XDP_DROP, XDP_TX, XDP_TX]
    assert seen.value == 4
    assert narrowed_by_equality(bytes(14) + b"\x07") == XDP_PASS and seen.value == 107
    assert match_a_byte(bytes(16)) == XDP_DROP and match_a_byte(bytes(15) + b"\x09") == XDP_ABORTED


@pytest.mark.parametrize("fill", [{}, {0: 5}, {0: 5, 1: 5}, {1: 6, 2: 6}, {0: 1, 1: 2, 2: 3, 3: 4}])
def test_every_execution_agrees(fill: dict[int, int]) -> None:
    for prog in PROGRAMS:
        reset_state(sys.modules[__name__])
        for k, v in fill.items():
            counts[k] = v
        assert compare(prog, PACKETS, executions=EXECUTIONS) is None, prog.name


def test_proven() -> None:
    for prog in PROGRAMS:
        proof = prog.compile(prove=True).proof
        assert proof.status == "proven", (prog.name, proof)
