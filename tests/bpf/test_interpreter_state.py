"""The bytecode interpreter copies in only the map elements a packet touches.

`run_bytecode` runs a compiled program against the Python state objects; with a 65,536-element array a
packet that touches one element must not copy the other 65,535 in (each a region of memory) nor write
them back. Work is counted in regions made and state-object reads and writes, never in seconds.
"""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, Array, Packet, PerCpuArray, Struct, u16, u32, u64, xdp
from pybpfdsl.bpf.memory import Region
from pybpfdsl.lang.state import RawValue, ValueType
from pybpfdsl.state_transfer import run_bytecode
from pybpfdsl.testing import on_cpu, reset_state

SIZE = 65_536


class CountingArray(Array):
    """An Array that counts the element reads and writes the executions ask of it."""

    def __init__(self, value: ValueType, size: int) -> None:
        super().__init__(value, size)
        self.reads = 0
        self.writes = 0

    def raw_lookup(self, key: RawValue) -> RawValue | None:
        self.reads += 1
        return super().raw_lookup(key)

    def raw_update(self, key: RawValue, value: RawValue) -> bool:
        self.writes += 1
        return super().raw_update(key, value)


class Tally(Struct):
    packets: u64
    last_port: u16


per_port = CountingArray(u64, SIZE)
per_port_tally = PerCpuArray(Tally, SIZE)


@xdp
def count_port(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    port = u32(udp.dport)
    per_port[port] += 1
    old = per_port_tally[port]
    per_port_tally[port] = Tally(packets=old.packets + 1, last_port=udp.dport)
    return XDP_DROP if per_port[port] > 2 else XDP_PASS


def _udp(dport: int) -> bytes:
    eth = b"\xff" * 6 + b"\x00" * 6 + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    udp = (1234).to_bytes(2, "big") + dport.to_bytes(2, "big") + (8).to_bytes(2, "big") + b"\x00\x00"
    return eth + ip + udp


def test_a_packet_copies_only_the_elements_it_touches() -> None:
    reset_state(per_port, per_port_tally)
    compiled = count_port.compile(prove=False)
    per_port.reads = per_port.writes = 0
    before = Region.created
    actions = [run_bytecode(compiled, _udp(port))[0] for port in (53, 53, 8080, 53)]
    made = Region.created - before
    assert actions == [XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP]
    # Per packet: the packet, the context, a stack and the two elements touched (one spare).
    assert made <= 4 * 6, f"{made} regions made for 4 packets over two {SIZE}-element arrays"
    assert per_port.reads <= 4 and per_port.writes <= 4, (per_port.reads, per_port.writes)
    # What the packets wrote reached the Python objects, and nothing else changed.
    assert per_port[53] == 3 and per_port[8080] == 1 and per_port[54] == 0
    assert per_port_tally.per_cpu(53) == [Tally(packets=3, last_port=53)]
    assert per_port_tally.per_cpu(7) == [Tally(packets=0, last_port=0)]


def test_a_packet_sees_the_state_objects_values_and_its_cpus_copy() -> None:
    reset_state(per_port, per_port_tally)
    compiled = count_port.compile(prove=False)
    per_port[SIZE - 1] = 2
    per_port_tally[SIZE - 1] = Tally(packets=5, last_port=1)
    assert run_bytecode(compiled, _udp(SIZE - 1))[0] == XDP_DROP  # 2 + 1 > 2
    assert per_port_tally[SIZE - 1] == [Tally(packets=6, last_port=SIZE - 1)]
    with on_cpu(1, per_port_tally):
        assert run_bytecode(compiled, _udp(SIZE - 1))[0] == XDP_DROP
    assert per_port_tally.per_cpu(SIZE - 1) == [Tally(packets=6, last_port=SIZE - 1),
                                                Tally(packets=1, last_port=SIZE - 1)]
