"""examples/circuit_breaker.py: requests to SERVICE_PORT are admitted while at most max_pending are in
flight; responses from SERVICE_PORT free a slot."""

from __future__ import annotations

import circuit_breaker as EXAMPLE
import pytest
from example_harness import (
    arp,
    assert_same,
    biased_ports,
    frames,
    icmp,
    kernel_and_python,
    record,
    service_datagrams,
    tcp,
    udp,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl import XDP_DROP, XDP_PASS

PROGRAM = EXAMPLE.circuit_breaker
SERVICE = EXAMPLE.SERVICE_PORT


def request(*, v6: bool = False) -> bytes:
    return udp(SERVICE, sport=40000, payload=b"request", v6=v6)


def response(*, v6: bool = False) -> bytes:
    return udp(40000, sport=SERVICE, payload=b"response", src="10.0.0.2", dst="10.0.0.1", v6=v6)


def state() -> tuple[int, int]:
    return EXAMPLE.pending_requests.value, EXAMPLE.rejected_requests.value  # type: ignore[return-value]


# ------------------------------------------------------------------------------ specification (Python)

def test_a_request_is_admitted_and_becomes_pending() -> None:
    assert PROGRAM(request()) == XDP_PASS
    assert state() == (1, 0)


def test_a_response_frees_a_pending_slot() -> None:
    EXAMPLE.pending_requests.value = 3
    assert PROGRAM(response()) == XDP_PASS
    assert state() == (2, 0)


def test_requests_are_admitted_up_to_max_pending_plus_one_as_in_appnet() -> None:
    EXAMPLE.max_pending.value = 2
    assert [PROGRAM(request()) for _ in range(5)] == [XDP_PASS] * 3 + [XDP_DROP] * 2
    assert state() == (3, 2)


def test_after_a_response_the_next_request_gets_in() -> None:
    EXAMPLE.max_pending.value = 0
    assert [PROGRAM(request()), PROGRAM(request())] == [XDP_PASS, XDP_DROP]
    assert PROGRAM(response()) == XDP_PASS
    assert PROGRAM(request()) == XDP_PASS
    assert state() == (1, 1)


def test_a_response_never_makes_the_count_negative() -> None:
    assert PROGRAM(response()) == XDP_PASS
    assert state() == (0, 0)


def test_ipv6_counts_the_same() -> None:
    EXAMPLE.max_pending.value = 0
    assert [PROGRAM(request(v6=True)), PROGRAM(request(v6=True))] == [XDP_PASS, XDP_DROP]
    assert PROGRAM(response(v6=True)) == XDP_PASS
    assert state() == (0, 1)


@pytest.mark.parametrize("packet", [
    udp(SERVICE + 1), tcp(SERVICE), tcp(40000, sport=SERVICE), arp(), icmp(), request()[:40],
], ids=["other-udp-port", "tcp-to-service", "tcp-from-service", "arp", "icmp", "truncated-request"])
def test_other_traffic_passes_and_is_not_counted(packet: bytes) -> None:
    EXAMPLE.pending_requests.value = EXAMPLE.max_pending.value + 1  # the breaker is open
    assert PROGRAM(packet) == XDP_PASS
    assert state() == (EXAMPLE.max_pending.value + 1, 0)


def test_an_open_breaker_rejects_and_counts() -> None:
    EXAMPLE.pending_requests.value = 101
    assert PROGRAM(request()) == XDP_DROP
    assert state() == (101, 1)


# ------------------------------------------------------------------------------------------- kernel

@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        EXAMPLE.max_pending.value = 1
        sequence = [request(), request(), request(), response(), request(v6=True), arp(), response(), response(),
                    response(), tcp(SERVICE), request()]
        actions = []
        for packet in sequence:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
            assert_same(in_kernel, in_python)
            actions.append(in_kernel.action)
        assert actions == [XDP_PASS, XDP_PASS, XDP_DROP, XDP_PASS, XDP_PASS] + [XDP_PASS] * 6
        assert state() == (1, 1)

    def test_the_control_plane_sees_and_sets_the_kernels_counters(self, loaded: object) -> None:
        EXAMPLE.max_pending.value = 5
        for _ in range(10):
            loaded.run(request())  # type: ignore[attr-defined]
        assert state() == (6, 4)
        EXAMPLE.pending_requests.value = 0  # e.g. a periodic reset of leaked slots
        assert loaded.run(request()).action == XDP_PASS  # type: ignore[attr-defined]

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=st.one_of(frames(ports=biased_ports(SERVICE)), service_datagrams(SERVICE, st.binary(max_size=64))),
           pending=st.integers(0, 6), max_pending=st.integers(0, 4))
    def test_differential(self, loaded: object, packet: bytes, pending: int, max_pending: int) -> None:
        EXAMPLE.pending_requests.value = pending
        EXAMPLE.max_pending.value = max_pending
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
        record(in_kernel)
        assert_same(in_kernel, in_python)
