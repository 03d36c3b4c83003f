"""LruHashMap on the Python side evicts exactly the least recently used entry, where a lookup and an
update (also of an existing key) both make an entry the most recently used, as the kernel's LRU hash map
does. The bytecode interpreter follows the same order, so pure Python, the IR and the bytecode agree on a
full map. (The kernel's own LRU is approximate, so a full map is not compared with the kernel.) Found
by the generated-program tests (tests/generated): updates did not count as a use."""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, LruHashMap, Packet, u32, xdp
from pybpfdsl.differential import compare
from pybpfdsl.testing import reset_state

recent = LruHashMap(u32, u32, 4)
ETH = bytes(12) + b"\x88\xb5"  # an EtherType the parser does not know: the payload starts at byte 14


@xdp
def remember(pkt: Packet) -> int:
    b = pkt.payload[0]
    if b is None:
        return XDP_PASS
    if b & 0x80:
        return XDP_DROP if recent.get(u32(b & 7), 0) > 0 else XDP_PASS   # a lookup is a use
    recent[u32(b & 7)] = pkt.len                                          # so is an update
    return XDP_PASS


def test_an_update_makes_an_entry_the_most_recently_used() -> None:
    reset_state(recent)
    recent[0] = 1
    recent[1] = 1
    recent[2] = 1
    recent[3] = 1
    recent[0] = 2      # 0 is now the most recently used: 1 is the least
    recent[4] = 1
    assert sorted(recent.keys()) == [0, 2, 3, 4]


def test_a_lookup_makes_an_entry_the_most_recently_used() -> None:
    reset_state(recent)
    for k in range(4):
        recent[k] = 1
    assert recent.get(0) == 1
    recent[4] = 1
    assert sorted(recent.keys()) == [0, 2, 3, 4]


def test_the_executions_evict_alike() -> None:
    reset_state(recent)
    keys = [0, 1, 2, 3, 0, 4, 5, 0x81, 6, 2, 7, 0x80, 1, 3]
    packets = [ETH + bytes([k]) for k in keys]
    assert compare(remember, packets, executions=("python", "ir", "bytecode")) is None
    for p in packets:
        remember(p)
    assert sorted(recent.keys()) == [1, 2, 3, 7]
