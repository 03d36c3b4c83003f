"""examples/admission_control.py: requests are rejected with probability
max(0, (total - multiplier * successes) / (total + 1)); successful responses count as successes."""

from __future__ import annotations

from contextlib import AbstractContextManager
from fractions import Fraction

import admission_control as EXAMPLE
import pytest
from example_harness import (
    Outcome,
    arp,
    assert_same,
    biased_ports,
    binomial_interval,
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
from pybpfdsl.testing import FixedHelpers, deterministic, fixed_random

PROGRAM = EXAMPLE.admission_control
SERVICE = EXAMPLE.SERVICE_PORT
LOWEST, HIGHEST = 0, 2**32 - 1


def request(*, v6: bool = False) -> bytes:
    return udp(SERVICE, payload=bytes([EXAMPLE.ARPC_REQUEST]) + bytes(30), v6=v6)


def response(kind: int = EXAMPLE.ARPC_RESPONSE) -> bytes:
    return udp(40000, sport=SERVICE, payload=bytes([kind]) + bytes(30), src="10.0.0.2", dst="10.0.0.1")


def configure(*, total: float, successes: float, multiplier: float = 0.95) -> None:
    EXAMPLE.total.value = total
    EXAMPLE.successes.value = successes
    EXAMPLE.multiplier.value = multiplier


def rejection_probability(total: float, successes: float, multiplier: float = 0.95) -> float:
    return max(0.0, (total - multiplier * successes) / (total + 1))


# ------------------------------------------------------------------------------ specification (Python)

def test_a_successful_response_counts_as_a_success() -> None:
    assert PROGRAM(response()) == XDP_PASS
    assert (EXAMPLE.total.value, EXAMPLE.successes.value) == (0.0, 1.0)


@pytest.mark.parametrize("packet", [
    response(EXAMPLE.ARPC_ERROR),                                           # failed RPC
    udp(SERVICE, payload=bytes([EXAMPLE.ARPC_RESPONSE])),                   # a "response" sent *to* the service
    udp(40000, sport=SERVICE, payload=bytes([EXAMPLE.ARPC_REQUEST])),       # a "request" coming *from* it
    udp(SERVICE + 1, payload=bytes([EXAMPLE.ARPC_REQUEST])),                # another service
    udp(SERVICE),                                                           # no aRPC header at all
    tcp(SERVICE, payload=bytes([EXAMPLE.ARPC_REQUEST])),                    # aRPC runs over UDP
    arp(), icmp(),
], ids=["error-response", "response-to-service", "request-from-service", "other-port", "empty", "tcp", "arp",
        "icmp"])
def test_other_packets_pass_and_change_nothing(packet: bytes) -> None:
    configure(total=100.0, successes=0.0)
    with fixed_random([LOWEST]) as helpers:
        assert PROGRAM(packet) == XDP_PASS
    assert helpers.random_calls == 0
    assert (EXAMPLE.total.value, EXAMPLE.successes.value, EXAMPLE.rejected.value) == (100.0, 0.0, 0)


def test_the_first_request_is_never_rejected() -> None:
    with fixed_random([LOWEST]):  # the most rejecting random number
        assert PROGRAM(request()) == XDP_PASS
    assert EXAMPLE.total.value == 1.0


def test_while_nothing_succeeds_almost_every_request_is_rejected() -> None:
    configure(total=10.0, successes=0.0)  # rejection probability 10/11
    with fixed_random([LOWEST]):
        assert PROGRAM(request()) == XDP_DROP
    assert (EXAMPLE.total.value, EXAMPLE.rejected.value) == (11.0, 1)  # rejected requests count in total


def test_the_random_threshold_is_the_rejection_probability() -> None:
    configure(total=10.0, successes=0.0)
    threshold = Fraction(10, 11) * 2**32  # random() below 10/11 rejects
    just_below, just_above = int(threshold) - 1, int(threshold) + 1
    for value, expected in [(just_below, XDP_DROP), (just_above, XDP_PASS)]:
        configure(total=10.0, successes=0.0)
        with fixed_random([value]):
            assert PROGRAM(request()) == expected


def test_a_healthy_service_is_barely_throttled() -> None:
    configure(total=1000.0, successes=1000.0)  # rejection probability 50/1001, about 5%
    n = 4000
    with deterministic(seed=3):
        actions = [PROGRAM(request()) for _ in range(n)]
    # total grows with each request (successes do not, no responses here): average the probability.
    expected = sum(rejection_probability(1000.0 + i, 1000.0) for i in range(n)) / n
    low, high = binomial_interval(n, expected)
    assert low <= actions.count(XDP_DROP) <= high
    assert EXAMPLE.rejected.value == actions.count(XDP_DROP)


def test_successes_lower_the_rejection_rate() -> None:
    def reject_rate(successes: float) -> float:
        configure(total=200.0, successes=successes)
        with deterministic(seed=11):
            return sum(PROGRAM(request()) == XDP_DROP for _ in range(500)) / 500
    assert reject_rate(0.0) > reject_rate(100.0) > reject_rate(200.0)


# ------------------------------------------------------------------------------------------- kernel

# Mostly requests (type 1), some responses and errors, other types and raw bytes now and then.
ARPC_KINDS = st.sampled_from([EXAMPLE.ARPC_REQUEST] * 4 + [EXAMPLE.ARPC_RESPONSE, EXAMPLE.ARPC_ERROR, 0, 255])
ARPC_PAYLOADS = st.one_of(st.binary(max_size=40),
                          st.builds(lambda kind, rest: bytes([kind]) + rest, ARPC_KINDS, st.binary(max_size=40)))
ARPC_REQUESTS = st.binary(max_size=40).map(lambda rest: bytes([EXAMPLE.ARPC_REQUEST]) + rest)


def same_decision_as(in_kernel: Outcome) -> AbstractContextManager[FixedHelpers]:
    """The kernel's random number cannot be fixed: replay its decision. The lowest random number
    rejects whenever rejecting is possible (probability > 0), the highest never rejects."""
    return fixed_random([LOWEST if in_kernel.action == XDP_DROP else HIGHEST])


@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_a_healthy_service_is_never_throttled_in_the_kernel(self, loaded: object) -> None:
        # Probability 0 whenever multiplier * successes >= total: the outcome does not depend on random.
        configure(total=0.0, successes=50.0)
        sequence = [request(), response(), request(v6=True), response(EXAMPLE.ARPC_ERROR), arp(), request()] * 10
        for packet in sequence:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet)
            assert_same(in_kernel, in_python)
            assert in_kernel.action == XDP_PASS
        assert (EXAMPLE.total.value, EXAMPLE.successes.value, EXAMPLE.rejected.value) == (30.0, 60.0, 0)

    def test_the_kernels_rejection_fraction_matches_the_formula(self, loaded: object) -> None:
        total, n = 1e8, 100_000
        successes = (total - 0.25 * (total + 1)) / 0.95  # rejection probability 0.25
        configure(total=total, successes=successes)
        loaded.run(request(), repeat=n)  # type: ignore[attr-defined]
        assert EXAMPLE.total.value == total + n
        expected = rejection_probability(total + n / 2, successes)  # p drifts by 2e-4 over the run
        low, high = binomial_interval(n, expected)
        assert low <= EXAMPLE.rejected.value <= high

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        configure(total=20.0, successes=5.0)
        for packet in [request(), response(), request(), response(EXAMPLE.ARPC_ERROR), icmp(), request()] * 5:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet, same_decision_as)
            assert_same(in_kernel, in_python)

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=st.one_of(frames(ports=biased_ports(SERVICE)), service_datagrams(SERVICE, ARPC_PAYLOADS),
                            service_datagrams(SERVICE, ARPC_REQUESTS, direction="to")),
           total=st.floats(0.0, 1e6), success_ratio=st.floats(0.0, 1.2), multiplier=st.floats(0.0, 2.0))
    def test_differential(self, loaded: object, packet: bytes, total: float, success_ratio: float,
                          multiplier: float) -> None:
        configure(total=total, successes=total * success_ratio, multiplier=multiplier)
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet, same_decision_as)
        record(in_kernel)
        assert_same(in_kernel, in_python)
