"""examples/rate_limiter.py: a token bucket of requests, refilled from the clock."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager

import pytest
import rate_limiter as EXAMPLE
from example_harness import Outcome, arp, assert_same, frames, icmp, kernel_and_python, record, tcp, udp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpfdsl import XDP_DROP, XDP_PASS
from pybpfdsl.testing import FixedHelpers, fixed_clock

PROGRAM = EXAMPLE.rate_limiter

T0 = 50 * 10**9  # some time after boot
MS = 1_000_000
SECOND = 1_000_000_000


def configure(*, tokens: float, rate: float = 1000.0, burst: float = 1000.0, last_refill_ns: int = T0) -> None:
    EXAMPLE.tokens.value = tokens
    EXAMPLE.rate_per_sec.value = rate
    EXAMPLE.burst.value = burst
    EXAMPLE.last_refill_ns.value = last_refill_ns


# ------------------------------------------------------------------------------ specification (Python)

def test_a_full_bucket_lets_a_request_through_and_spends_one_token() -> None:
    with fixed_clock(T0):
        assert PROGRAM(udp(9000)) == XDP_PASS
    assert EXAMPLE.tokens.value == 999.0
    assert EXAMPLE.last_refill_ns.value == T0
    assert EXAMPLE.rate_limited.value == 0


def test_an_empty_bucket_drops_the_request_and_keeps_its_tokens() -> None:
    configure(tokens=0.5, rate=0.0)
    with fixed_clock(T0 + SECOND):
        assert PROGRAM(tcp(80)) == XDP_DROP
    assert EXAMPLE.tokens.value == 0.5
    assert EXAMPLE.rate_limited.value == 1


def test_tokens_come_back_at_the_configured_rate() -> None:
    configure(tokens=0.0, rate=1000.0)  # one token per millisecond
    with fixed_clock(T0 + 2 * MS):
        assert PROGRAM(udp(9000)) == XDP_PASS
    assert EXAMPLE.tokens.value == pytest.approx(1.0, abs=1e-6)  # 2 tokens refilled, 1 spent
    assert EXAMPLE.last_refill_ns.value == T0 + 2 * MS


def test_fixed_point_rounding_never_creates_tokens() -> None:
    # One millisecond at 1000/s is one token in exact arithmetic; in Q32.32 it is 1 - 7e-8, which is
    # not enough: rounding is toward zero, so the limiter errs on the strict side.
    configure(tokens=0.0, rate=1000.0)
    with fixed_clock(T0 + 1 * MS):
        assert PROGRAM(udp(9000)) == XDP_DROP
    assert 0.9999999 < EXAMPLE.tokens.value < 1.0


def test_the_bucket_never_holds_more_than_burst() -> None:
    configure(tokens=0.0, rate=1000.0, burst=100.0)
    with fixed_clock(T0 + SECOND // 2):  # 500 tokens' worth of time
        assert PROGRAM(udp(9000)) == XDP_PASS
    assert EXAMPLE.tokens.value == 99.0


def test_a_gap_longer_than_a_second_refills_one_seconds_worth() -> None:
    configure(tokens=0.0, rate=1000.0, burst=5000.0)
    with fixed_clock(T0 + 3 * SECOND):
        assert PROGRAM(udp(9000)) == XDP_PASS
    assert EXAMPLE.tokens.value == 999.0  # MAX_REFILL_NS caps the gap at one second


def test_a_clock_behind_the_last_refill_refills_nothing() -> None:
    # Another CPU may have refilled with a slightly later reading than this CPU's clock.
    configure(tokens=5.0, rate=1000.0, last_refill_ns=T0 + 10)
    with fixed_clock(T0):
        assert PROGRAM(udp(9000)) == XDP_PASS
    assert EXAMPLE.tokens.value == 4.0
    assert EXAMPLE.last_refill_ns.value == T0 + 10


def test_a_burst_beyond_the_bucket_is_cut_off() -> None:
    configure(tokens=10.0, burst=10.0, rate=1000.0)
    with fixed_clock(T0):  # 30 requests at the same instant
        actions = [PROGRAM(udp(9000)) for _ in range(30)]
    assert actions == [XDP_PASS] * 10 + [XDP_DROP] * 20
    assert EXAMPLE.rate_limited.value == 20
    assert EXAMPLE.tokens.value == 0.0


def test_a_steady_stream_above_the_rate_is_held_to_the_rate() -> None:
    configure(tokens=0.0, burst=10.0, rate=1000.0)
    with fixed_clock(T0 + MS // 2, step_ns=MS // 2):  # 2000 requests per second for one second
        actions = [PROGRAM(udp(9000)) for _ in range(2000)]
    assert 998 <= actions.count(XDP_PASS) <= 1000


@pytest.mark.parametrize("packet", [arp(), icmp(), bytes(14)], ids=["arp", "icmp", "zeros"])
def test_other_traffic_passes_without_touching_the_bucket(packet: bytes) -> None:
    configure(tokens=0.0, rate=0.0)
    with fixed_clock(T0 + SECOND) as clock:
        assert PROGRAM(packet) == XDP_PASS
    assert clock.clock_calls == 0
    assert (EXAMPLE.tokens.value, EXAMPLE.last_refill_ns.value, EXAMPLE.rate_limited.value) == (0.0, T0, 0)


# ------------------------------------------------------------------------------------------- kernel

def kernels_clock(in_kernel: Outcome) -> AbstractContextManager[FixedHelpers]:
    """The kernel's clock cannot be fixed, but the kernel records its reading in `last_refill_ns`
    whenever it refills; when it does not refill, that value is unchanged and replaying it makes
    Python skip the refill too. Either way Python sees the time the kernel saw."""
    return fixed_clock(in_kernel.state["last_refill_ns"])


@pytest.mark.kernel
class TestKernel:
    def test_the_verifier_accepts_it(self, loaded: object) -> None:
        # `loaded` exists only if the kernel's verifier accepted the program.
        assert loaded.xlated_insns > 0  # type: ignore[attr-defined]
        assert loaded.run(arp()).action == XDP_PASS  # type: ignore[attr-defined]

    def test_hand_picked_packets_match_python(self, loaded: object) -> None:
        # With rate 0 the outcome does not depend on the clock at all.
        configure(tokens=3.0, rate=0.0, last_refill_ns=0)
        actions = []
        for packet in [udp(9000), arp(), tcp(80), udp(53, v6=True), tcp(22, v6=True), icmp(), udp(9000)]:
            in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet, kernels_clock)
            assert_same(in_kernel, in_python)
            actions.append(in_kernel.action)
        assert actions == [XDP_PASS] * 4 + [XDP_DROP, XDP_PASS, XDP_DROP]
        assert EXAMPLE.rate_limited.value == 2

    def test_the_kernel_refills_from_its_monotonic_clock(self, loaded: object) -> None:
        # bpf_ktime_get_ns() is CLOCK_MONOTONIC, which time.monotonic_ns() reads too.
        last = time.monotonic_ns() - SECOND // 2
        configure(tokens=0.0, rate=1000.0, burst=1000.0, last_refill_ns=last)
        before = time.monotonic_ns()
        assert loaded.run(udp(9000)).action == XDP_PASS  # type: ignore[attr-defined]
        after = time.monotonic_ns()
        assert before <= EXAMPLE.last_refill_ns.value <= after
        assert 1000 * (before - last) / SECOND - 1 - 1e-6 <= EXAMPLE.tokens.value
        assert EXAMPLE.tokens.value <= 1000 * (after - last) / SECOND - 1

    @settings(max_examples=500, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(packet=frames(),
           burst=st.floats(1.0, 1e6),
           fill=st.floats(0.0, 1.0),
           rate=st.one_of(st.just(0.0), st.floats(0.0, 1e6)),
           last_offset_ns=st.one_of(st.just(None), st.integers(-SECOND, 3 * SECOND)))
    def test_differential(self, loaded: object, packet: bytes, burst: float, fill: float, rate: float,
                          last_offset_ns: int | None) -> None:
        last = 0 if last_offset_ns is None else time.monotonic_ns() - last_offset_ns
        configure(tokens=burst * fill, rate=rate, burst=burst, last_refill_ns=last)
        in_kernel, in_python = kernel_and_python(loaded, PROGRAM, EXAMPLE, packet, kernels_clock)
        record(in_kernel)
        assert_same(in_kernel, in_python)
