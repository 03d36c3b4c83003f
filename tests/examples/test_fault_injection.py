"""examples/fault_injection.py: UDP/TCP packets pass with probability 0.95; the rest are dropped."""

from __future__ import annotations

from contextlib import AbstractContextManager

import fault_injection as EXAMPLE
import pytest
from example_harness import (
    Outcome,
    arp,
    assert_same,
    binomial_interval,
    frames,
    icmp,
    kernel_and_python,
    record,
    tcp,
    udp,
)
from hypothesis import HealthCheck, given, settings

from pybpfdsl import XDP_DROP, XDP_PASS
from pybpfdsl.lang import fixed
from pybpfdsl.testing import FixedHelpers, deterministic, fixed_random

PROGRAM = EXAMPLE.fault_injection

# random() < 0.95 compares the 32 random bits with ceil(0.95 * 2**32): values below it pass.
PASS_BELOW = fixed.ceil_from_float(EXAMPLE.PASS_PROBABILITY)
LOWEST, HIGHEST = 0, 2**32 - 1


# ------------------------------------------------------------------------------ specification (Python)

def test_a_low_random_number_passes_the_request() -> None:
    with fixed_random([LOWEST]):
        assert PROGRAM(udp(9000)) == XDP_PASS
    assert EXAMPLE.injected_faults.value == 0


def test_a_high_random_number_injects_a_fault() -> None:
    with fixed_random([HIGHEST]):
        assert PROGRAM(tcp(80)) == XDP_DROP
    assert EXAMPLE.injected_faults.value == 1


def test_the_threshold_is_exactly_95_percent_of_the_random_range() -> None:
    assert PASS_BELOW == 4080218932  # ceil(0.95 * 2**32)
    with fixed_random([PASS_BELOW - 1]):
        assert PROGRAM(udp(9000)) == XDP_PASS
    with fixed_random([PASS_BELOW]):
        assert PROGRAM(udp(9000)) == XDP_DROP


@pytest.mark.parametrize("packet", [udp(53, v6=True), tcp(443, v6=True), tcp(22)], ids=["udp6", "tcp6", "tcp4"])
def test_every_udp_and_tcp_packet_is_subject_to_faults(packet: bytes) -> None:
    with fixed_random([HIGHEST]):
        assert PROGRAM(packet) == XDP_DROP


@pytest.mark.parametrize("packet", [arp(), icmp(), bytes(14), udp(9000)[:30]], ids=["arp", "icmp", "zeros", "runt"])
def test_other_traffic_passes_without_drawing_a_random_number(packet: bytes) -> None:
    with fixed_random([HIGHEST]) as helpers:
        assert PROGRAM(packet) == XDP_PASS
    assert helpers.random_calls == 0
    assert EXAMPLE.injected_faults.value == 0


def test_about_one_in_twenty_requests_is_dropped() -> None:
    n = 4000
    with deterministic(seed=7):
        actions = [PROGRAM(udp(9000)) for _ in range(n)]
    drops = actions.count(XDP_DROP)
    low, high = binomial_interval(n, 1 - EXAMPLE.PASS_PROBABILITY)
    assert low <= drops <= high
    assert EXAMPLE.injected_faults.value == drops


# ------------------------------------------------------------------------------------------- kernel

def same_decision_as(in_kernel: Outcome) -> AbstractContextManager[FixedHelpers]:
    """The kernel's random number cannot be fixed. Replay its decision in Python instead: a pass is
    what the lowest random number gives, a drop what the highest gives."""
    return fixed_random([LOWEST if in_kernel.action == XDP_PASS else HIGHEST])


@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        for packet in [udp(9000), tcp(80), udp(53, v6=True), arp(), icmp(), bytes(14), udp(9000)[:30]] * 20:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet, same_decision_as)
            assert_same(in_kernel, in_python)

    def test_other_traffic_always_passes(self, loaded: object) -> None:
        for packet in (arp(), icmp(), bytes(14)):
            assert loaded.run(packet, repeat=1000).action == XDP_PASS  # type: ignore[attr-defined]
        assert EXAMPLE.injected_faults.value == 0

    def test_the_kernels_drop_fraction_is_five_percent(self, loaded: object) -> None:
        n = 200_000
        loaded.run(udp(9000), repeat=n)  # type: ignore[attr-defined]
        low, high = binomial_interval(n, 1 - EXAMPLE.PASS_PROBABILITY)
        assert low <= EXAMPLE.injected_faults.value <= high

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=frames())
    def test_differential(self, loaded: object, packet: bytes) -> None:
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet, same_decision_as)
        record(in_kernel)
        assert_same(in_kernel, in_python)
