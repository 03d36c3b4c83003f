"""examples/per_source_counters.py: packets and bytes per IPv4 source address, in an LRU hash map."""

from __future__ import annotations

import per_source_counters as EXAMPLE
import pytest
from example_harness import arp, assert_same, frames, icmp, kernel_and_python, record, tcp, udp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl import XDP_PASS, ip

PROGRAM = EXAMPLE.per_source_counters
SourceStats = EXAMPLE.SourceStats


# ------------------------------------------------------------------------------ specification (Python)

def test_the_first_packet_from_a_source_creates_its_entry() -> None:
    packet = udp(53, src="10.0.0.1")
    assert PROGRAM(packet) == XDP_PASS
    assert dict(EXAMPLE.source_stats.items()) == {ip("10.0.0.1"): SourceStats(packets=1, bytes=len(packet))}


def test_packets_from_the_same_source_add_up() -> None:
    packets = [udp(53, src="10.0.0.1"), tcp(80, src="10.0.0.1", payload=b"x" * 100), icmp(src="10.0.0.1")]
    for p in packets:
        assert PROGRAM(p) == XDP_PASS
    assert EXAMPLE.source_stats[ip("10.0.0.1")] == SourceStats(packets=3, bytes=sum(len(p) for p in packets))


def test_each_source_has_its_own_counters() -> None:
    PROGRAM(udp(53, src="10.0.0.1"))
    PROGRAM(udp(53, src="192.168.1.7"))
    PROGRAM(udp(53, src="192.168.1.7"))
    stats = dict(EXAMPLE.source_stats.items())
    assert stats[ip("10.0.0.1")].packets == 1
    assert stats[ip("192.168.1.7")].packets == 2


@pytest.mark.parametrize("packet", [udp(53, v6=True), tcp(80, v6=True), arp(), bytes(14), udp(53)[:30]],
                         ids=["udp6", "tcp6", "arp", "zeros", "runt"])
def test_ipv6_and_non_ip_frames_are_not_counted(packet: bytes) -> None:
    assert PROGRAM(packet) == XDP_PASS
    assert len(EXAMPLE.source_stats) == 0


def test_counting_continues_from_what_the_control_plane_stored() -> None:
    EXAMPLE.source_stats[ip("10.0.0.1")] = SourceStats(packets=10, bytes=2**64 - 1)
    packet = udp(53, src="10.0.0.1")
    PROGRAM(packet)
    assert EXAMPLE.source_stats[ip("10.0.0.1")] == SourceStats(packets=11, bytes=len(packet) - 1)  # u64 wraps


def test_a_full_table_forgets_the_least_recently_seen_source() -> None:
    capacity = EXAMPLE.source_stats.max_entries
    for address in range(1, capacity + 1):  # the control plane pre-fills the table
        EXAMPLE.source_stats[address] = SourceStats(packets=1, bytes=60)
    PROGRAM(udp(53, src="0.0.0.1"))          # source 1 is seen again: now the most recent
    PROGRAM(udp(53, src="10.0.0.1"))         # a new source evicts the oldest, source 2
    assert ip("10.0.0.1") in EXAMPLE.source_stats
    assert 1 in EXAMPLE.source_stats and 2 not in EXAMPLE.source_stats
    assert len(EXAMPLE.source_stats) == capacity


# ------------------------------------------------------------------------------------------- kernel

SOURCES = ["10.0.0.1", "10.0.0.2", "192.168.1.7"]


@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        sequence = [udp(53, src=s) for s in SOURCES] + [tcp(80, src="10.0.0.1", payload=b"x" * 500), icmp(),
                                                          udp(53, v6=True), arp(), udp(53)[:30]]
        for packet in sequence:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
            assert_same(in_kernel, in_python)
        assert EXAMPLE.source_stats[ip("10.0.0.1")] == SourceStats(packets=3, bytes=42 + 554 + 42)

    def test_the_control_plane_reads_the_kernels_table(self, loaded: object) -> None:
        for _ in range(5):
            loaded.run(udp(53, src="10.9.8.7"))  # type: ignore[attr-defined]
        assert EXAMPLE.source_stats[ip("10.9.8.7")] == SourceStats(packets=5, bytes=5 * 42)

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=frames(),
           table=st.dictionaries(st.sampled_from([ip(s) for s in SOURCES] + [0, 2**32 - 1]),
                                 st.builds(SourceStats, st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
                                 max_size=4))
    def test_differential(self, loaded: object, packet: bytes, table: dict[int, SourceStats]) -> None:
        EXAMPLE.source_stats.clear()
        for source, stats in table.items():
            EXAMPLE.source_stats[source] = stats
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
        record(in_kernel)
        assert_same(in_kernel, in_python)
