"""examples/bandwidth_limiter.py: a token bucket of bytes, charged the length of each frame."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

import bandwidth_limiter as EXAMPLE
import pytest
from example_harness import Outcome, arp, assert_same, frames, icmp, kernel_and_python, record, tcp, udp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl import XDP_DROP, XDP_PASS
from pybpfdsl.testing import FixedHelpers, fixed_clock

PROGRAM = EXAMPLE.bandwidth_limiter

T0 = 50 * 10**9
MS = 1_000_000
SECOND = 1_000_000_000


def configure(*, byte_tokens: float, rate: float = 100_000.0, burst: float = 100_000.0,
              last_refill_ns: int = T0) -> None:
    EXAMPLE.byte_tokens.value = byte_tokens
    EXAMPLE.bytes_per_sec.value = rate
    EXAMPLE.burst_bytes.value = burst
    EXAMPLE.last_refill_ns.value = last_refill_ns


# ------------------------------------------------------------------------------ specification (Python)

def test_a_packet_spends_its_length_in_byte_tokens() -> None:
    packet = udp(9000, payload=b"x" * 958)  # a 1000-byte frame
    assert len(packet) == 1000
    with fixed_clock(T0):
        assert PROGRAM(packet) == XDP_PASS
    assert EXAMPLE.byte_tokens.value == 99_000.0
    assert EXAMPLE.last_refill_ns.value == T0


def test_a_packet_larger_than_the_tokens_left_is_dropped_and_costs_nothing() -> None:
    configure(byte_tokens=999.0, rate=0.0)
    packet = udp(9000, payload=b"x" * 958)
    with fixed_clock(T0 + SECOND):
        assert PROGRAM(packet) == XDP_DROP
    assert EXAMPLE.byte_tokens.value == 999.0
    assert (EXAMPLE.dropped_packets.value, EXAMPLE.dropped_bytes.value) == (1, 1000)


def test_a_small_packet_still_fits_when_a_large_one_did_not() -> None:
    configure(byte_tokens=999.0, rate=0.0)
    with fixed_clock(T0):
        assert PROGRAM(udp(9000, payload=b"x" * 958)) == XDP_DROP
        assert PROGRAM(tcp(80)) == XDP_PASS  # 54 bytes
    assert EXAMPLE.byte_tokens.value == 999.0 - 54


def test_exactly_enough_tokens_is_enough() -> None:
    configure(byte_tokens=1000.0, rate=0.0)
    with fixed_clock(T0):
        assert PROGRAM(udp(9000, payload=b"x" * 958)) == XDP_PASS
    assert EXAMPLE.byte_tokens.value == 0.0


def test_byte_tokens_come_back_at_the_configured_rate() -> None:
    configure(byte_tokens=0.0, rate=100_000.0)  # 100 bytes per millisecond
    with fixed_clock(T0 + 11 * MS):
        assert PROGRAM(udp(9000, payload=b"x" * 958)) == XDP_PASS  # 1100 bytes refilled, 1000 spent
    assert EXAMPLE.byte_tokens.value == pytest.approx(100.0, abs=1e-4)


def test_fixed_point_rounding_never_creates_byte_tokens() -> None:
    configure(byte_tokens=0.0, rate=100_000.0)
    with fixed_clock(T0 + 10 * MS):  # 1000 bytes in exact arithmetic, a hair less in Q32.32
        assert PROGRAM(udp(9000, payload=b"x" * 958)) == XDP_DROP
    assert 999.999 < EXAMPLE.byte_tokens.value < 1000.0


def test_the_bucket_never_holds_more_than_burst_bytes() -> None:
    configure(byte_tokens=0.0, rate=100_000.0, burst=1500.0)
    with fixed_clock(T0 + SECOND):
        assert PROGRAM(tcp(80)) == XDP_PASS
    assert EXAMPLE.byte_tokens.value == 1500.0 - 54


def test_throughput_is_held_to_the_configured_bandwidth() -> None:
    configure(byte_tokens=0.0, rate=100_000.0, burst=10_000.0)
    packet = udp(9000, payload=b"x" * 958)
    with fixed_clock(T0 + MS, step_ns=MS):  # 1000 packets of 1000 bytes in one second: 10x too many
        actions = [PROGRAM(packet) for _ in range(1000)]
    assert 99 <= actions.count(XDP_PASS) <= 100
    assert EXAMPLE.dropped_bytes.value == 1000 * actions.count(XDP_DROP)


@pytest.mark.parametrize("packet", [arp(), icmp(), bytes(14)], ids=["arp", "icmp", "zeros"])
def test_other_traffic_passes_without_touching_the_bucket(packet: bytes) -> None:
    configure(byte_tokens=0.0, rate=0.0)
    with fixed_clock(T0 + SECOND) as clock:
        assert PROGRAM(packet) == XDP_PASS
    assert clock.clock_calls == 0
    assert (EXAMPLE.byte_tokens.value, EXAMPLE.dropped_packets.value) == (0.0, 0)


# ------------------------------------------------------------------------------------------- kernel

def kernels_clock(in_kernel: Outcome) -> AbstractContextManager[FixedHelpers]:
    """Replay the kernel's clock reading, which it records in `last_refill_ns` (see test_rate_limiter)."""
    return fixed_clock(in_kernel.state["last_refill_ns"])


@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        configure(byte_tokens=1180.0, rate=0.0, last_refill_ns=0)
        big = udp(9000, payload=b"x" * 958)
        actions = []
        for packet in [big, arp(), big, tcp(80), udp(53, v6=True), icmp(), tcp(22, v6=True)]:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet, kernels_clock)
            assert_same(in_kernel, in_python)
            actions.append(in_kernel.action)
        assert actions == [XDP_PASS, XDP_PASS, XDP_DROP, XDP_PASS, XDP_PASS, XDP_PASS, XDP_DROP]
        assert EXAMPLE.byte_tokens.value == 1180 - 1000 - 54 - 62
        assert (EXAMPLE.dropped_packets.value, EXAMPLE.dropped_bytes.value) == (2, 1000 + 74)

    def test_the_kernel_refills_from_its_monotonic_clock(self, loaded: object) -> None:
        last = time.monotonic_ns() - SECOND // 4
        configure(byte_tokens=0.0, rate=100_000.0, burst=100_000.0, last_refill_ns=last)
        before = time.monotonic_ns()
        assert loaded.run(tcp(80)).action == XDP_PASS  # type: ignore[attr-defined]
        after = time.monotonic_ns()
        assert before <= EXAMPLE.last_refill_ns.value <= after
        assert 100_000 * (before - last) / SECOND - 54 - 1e-4 <= EXAMPLE.byte_tokens.value
        assert EXAMPLE.byte_tokens.value <= 100_000 * (after - last) / SECOND - 54

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=frames(),
           burst=st.floats(1.0, 1e8),
           byte_tokens=st.one_of(st.floats(0.0, 3000.0), st.floats(0.0, 1e8)),  # often near a frame's size
           rate=st.one_of(st.just(0.0), st.floats(0.0, 1e8)),
           last_offset_ns=st.one_of(st.just(None), st.integers(-SECOND, 3 * SECOND)))
    def test_differential(self, loaded: object, packet: bytes, burst: float, byte_tokens: float, rate: float,
                          last_offset_ns: int | None) -> None:
        last = 0 if last_offset_ns is None else time.monotonic_ns() - last_offset_ns
        configure(byte_tokens=min(byte_tokens, burst), rate=rate, burst=burst, last_refill_ns=last)
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet, kernels_clock)
        record(in_kernel)
        assert_same(in_kernel, in_python)
