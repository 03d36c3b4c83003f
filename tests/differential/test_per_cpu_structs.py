"""A per-CPU array of Structs agrees in all four executions.

The kernel keeps one copy of each element per CPU and says which CPU a test run used only by where the
value lands; pure Python and the interpreters hold the copy of the CPU they simulate. The comparison
reads every per-CPU array as its per-element total over CPUs (field by field for a Struct), which is
the same whichever CPU ran the packet.
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, PerCpuArray, Struct, u16, u32, u64, xdp
from pybpfdsl.differential import compare, snapshot
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state

KERNEL, _ = kernel_bpf_available()
ALL = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")


class PortStats(Struct):
    packets: u64
    bytes: u64
    last_port: u16


by_port = PerCpuArray(PortStats, 16)


@xdp
def per_port_stats(pkt: Packet) -> int:
    udp = pkt.udp
    port: u16 = 0
    if udp is not None:
        port = udp.dport
    slot = u32(port & 15)
    old = by_port[slot]
    by_port[slot] = PortStats(packets=old.packets + 1, bytes=old.bytes + pkt.len, last_port=port)
    return XDP_DROP if old.packets >= 2 else XDP_PASS


PACKETS = [
    bytes(Ether() / IP(src="10.0.0.1") / UDP(sport=1, dport=53)),
    bytes(Ether() / IP(src="10.0.0.2") / UDP(sport=2, dport=69) / (b"x" * 30)),
    bytes(Ether() / IP(src="10.0.0.3") / TCP(dport=80)),
    bytes(Ether() / IP(src="10.0.0.1") / UDP(sport=1, dport=53) / (b"y" * 7)),
    bytes(Ether() / IP(src="10.0.0.1") / UDP(sport=1, dport=53)),
    bytes(Ether() / IP(src="10.0.0.4") / UDP(sport=4, dport=37)),
]


@pytest.fixture(autouse=True)
def _empty() -> None:
    reset_state(by_port)


def test_per_cpu_struct_array_agrees_in_every_execution() -> None:
    mismatch = compare(per_port_stats, PACKETS * 2, executions=ALL)
    assert mismatch is None, str(mismatch)


def test_snapshot_totals_each_struct_field_over_cpus() -> None:
    # Copies on two CPUs (as after runs on both): one total per element, as the kernel's are read.
    by_port[3] = PortStats(packets=2, bytes=100, last_port=7)
    by_port._cpu_data.setdefault(1, {})[3] = PortStats(packets=1, bytes=50, last_port=0)
    taken = snapshot({"by_port": by_port})["by_port"]
    assert isinstance(taken, dict)
    assert taken[3] == PortStats(packets=3, bytes=150, last_port=7)
    assert taken[4] == PortStats(packets=0, bytes=0, last_port=0)
