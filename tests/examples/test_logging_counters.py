"""examples/logging_counters.py: every UDP datagram and TCP segment is one request; bytes are frame lengths."""

from __future__ import annotations

import logging_counters as EXAMPLE
import pytest
from example_harness import arp, assert_same, frames, icmp, kernel_and_python, later_fragment, record, tcp, udp
from hypothesis import HealthCheck, given, settings

from pybpfdsl import XDP_PASS

PROGRAM = EXAMPLE.logging_counters


# ------------------------------------------------------------------------------ specification (Python)

def test_a_udp_datagram_is_one_request_of_its_frame_length() -> None:
    packet = udp(9000, payload=b"hello")
    assert PROGRAM(packet) == XDP_PASS
    assert EXAMPLE.requests.value == 1
    assert EXAMPLE.request_bytes.value == len(packet)


@pytest.mark.parametrize("packet", [
    tcp(80, flags="S"),
    tcp(80, flags="A"),                            # a bare ACK counts too (documented)
    tcp(443, payload=b"GET / HTTP/1.1\r\n\r\n", flags="PA"),
    udp(53, v6=True),
    tcp(8080, v6=True),
], ids=["tcp-syn", "tcp-ack", "tcp-data", "udp-ipv6", "tcp-ipv6"])
def test_tcp_segments_and_ipv6_count(packet: bytes) -> None:
    assert PROGRAM(packet) == XDP_PASS
    assert (EXAMPLE.requests.value, EXAMPLE.request_bytes.value) == (1, len(packet))


@pytest.mark.parametrize("packet", [arp(), icmp(), later_fragment(), udp(9000)[:40]],
                         ids=["arp", "icmp", "later-fragment", "truncated-udp"])
def test_frames_without_udp_or_tcp_are_not_requests(packet: bytes) -> None:
    assert PROGRAM(packet) == XDP_PASS
    assert (EXAMPLE.requests.value, EXAMPLE.request_bytes.value) == (0, 0)


def test_counters_add_up_over_a_sequence() -> None:
    packets = [udp(9000, payload=b"x" * n) for n in (0, 10, 100, 1000)] + [arp(), tcp(22)]
    for p in packets:
        assert PROGRAM(p) == XDP_PASS
    counted = packets[:4] + packets[5:]
    assert EXAMPLE.requests.value == 5
    assert EXAMPLE.request_bytes.value == sum(len(p) for p in counted)


def test_counters_continue_from_the_control_planes_values() -> None:
    EXAMPLE.requests.value = 41
    EXAMPLE.request_bytes.value = 2**64 - 10
    PROGRAM(udp(9000))  # 42-byte frame: the byte counter wraps like a u64
    assert EXAMPLE.requests.value == 42
    assert EXAMPLE.request_bytes.value == 32


# ------------------------------------------------------------------------------------------- kernel

HAND_PICKED = [udp(9000, payload=b"hello"), tcp(80), tcp(443, v6=True), udp(53, v6=True), arp(), icmp(),
               later_fragment(), udp(9000)[:40], bytes(14)]


@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        for packet in HAND_PICKED:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
            assert_same(in_kernel, in_python)
        assert EXAMPLE.requests.value == 4

    def test_the_control_plane_reads_the_kernels_counters(self, loaded: object) -> None:
        for packet in HAND_PICKED:
            loaded.run(packet)  # type: ignore[attr-defined]
        assert EXAMPLE.requests.value == 4
        assert EXAMPLE.request_bytes.value == sum(len(p) for p in HAND_PICKED[:4])

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=frames())
    def test_differential(self, loaded: object, packet: bytes) -> None:
        # State carries over from example to example: counters keep growing in both executions.
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
        record(in_kernel)
        assert_same(in_kernel, in_python)
