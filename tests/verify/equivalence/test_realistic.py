"""The realistic programs (`realistic.py`: a per-source token bucket, a SYN-flood guard, a weighted canary
splitter) do what a mesh engineer wants, compile, pass our verifier and the kernel's, agree in the four
executions, and prove equivalent to their IR within the default budget (issue 12 §6).

The kernel's clock and random numbers cannot be fixed, so the kernel is compared where its helper
results are known: the token bucket records each clock reading it refilled with, which the other
executions then replay; the SYN guard only reads the clock to the second, which the test knows; the
canary splitter's roll is decided when the weight is 0 or 1.
"""

from __future__ import annotations

import ipaddress
import os
import random as pyrandom
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX
from pybpfdsl.differential import Step, compare, run_kernel, run_python
from pybpfdsl.program import XdpProgram
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import FixedHelpers, fixed_clock, fixed_random, on_cpu, reset_state
from pybpfdsl.verify.equivalence.prove import prove_compiled
from tests.strategies import packets as any_packets
from tests.verify.equivalence import realistic as r

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")

PROGRAMS = [r.source_token_bucket, r.syn_flood_guard, r.canary_splitter]
SECOND = 1_000_000_000
T0 = 7_200 * SECOND  # two hours after boot


def addr(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def udp_from(src: str, dport: int = 53) -> bytes:
    return bytes(Ether() / IP(src=src, dst="10.9.9.9") / UDP(sport=40000, dport=dport))


def tcp_to(dport: int, *, src: str = "10.0.0.1", sport: int = 40000, flags: str = "S") -> bytes:
    return bytes(Ether() / IP(src=src, dst="10.9.9.9") / TCP(sport=sport, dport=dport, flags=flags))


ARP_FRAME = bytes(Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(pdst="10.9.9.9"))
UDP6 = bytes(Ether() / IPv6() / UDP(dport=53))
TCP6_SYN = bytes(Ether() / IPv6() / TCP(dport=80, flags="S"))


@pytest.fixture(autouse=True)
def clean_state() -> Iterator[None]:
    reset_state(r)
    yield
    reset_state(r)


def configure_bucket(size: float, per_sec: float) -> None:
    r.bucket_size.value = size
    r.refill_per_sec.value = per_sec


# ------------------------------------------------------------------------------- what each one does

def test_a_new_source_starts_with_a_full_bucket_and_empties_it() -> None:
    configure_bucket(3.0, 0.5)
    with fixed_clock(T0):
        actions = [r.source_token_bucket(udp_from("10.0.0.1")) for _ in range(5)]
        other = r.source_token_bucket(udp_from("10.0.0.2"))
    assert actions == [XDP_PASS] * 3 + [XDP_DROP] * 2
    assert other == XDP_PASS  # each source has its own bucket
    assert r.rate_limited.value == 2
    assert r.source_last_refill[addr("10.0.0.1")] == T0


def test_a_source_gets_tokens_back_at_the_refill_rate_up_to_the_bucket_size() -> None:
    configure_bucket(3.0, 0.5)
    src = addr("10.0.0.1")
    r.source_tokens[src] = 0.25
    r.source_last_refill[src] = T0
    with fixed_clock(T0 + SECOND):  # 0.5 tokens back: 0.75 is not enough
        assert r.source_token_bucket(udp_from("10.0.0.1")) == XDP_DROP
    with fixed_clock(T0 + 2 * SECOND):  # another 0.5: 1.25, one packet's worth
        assert r.source_token_bucket(udp_from("10.0.0.1")) == XDP_PASS
    assert r.source_tokens[src] == pytest.approx(0.25, abs=1e-8)
    with fixed_clock(T0 + 3600 * SECOND):  # an hour idle refills to the bucket size, no further
        assert r.source_token_bucket(udp_from("10.0.0.1")) == XDP_PASS
    assert r.source_tokens[src] == 2.0


def test_non_ipv4_traffic_neither_reads_the_clock_nor_touches_a_bucket() -> None:
    with fixed_clock(T0) as clock:
        assert r.source_token_bucket(ARP_FRAME) == XDP_PASS
        assert r.source_token_bucket(UDP6) == XDP_PASS
    assert clock.clock_calls == 0 and len(r.source_tokens) == 0


def test_syns_over_the_limit_in_one_second_are_dropped_and_reported() -> None:
    r.syn_limit.value = 2
    with fixed_clock(T0 + SECOND // 2), on_cpu(1, r.syn_count, r.syn_second):
        actions = [r.syn_flood_guard(tcp_to(443, src=f"10.0.0.{i}")) for i in range(1, 5)]
        assert r.syn_flood_guard(tcp_to(443, flags="SA")) == XDP_PASS  # not a connection attempt
        assert r.syn_flood_guard(tcp_to(22)) == XDP_PASS  # another port, another counter
    assert actions == [XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]
    reported = [(d.src, d.port, d.cpu, d.count) for d in r.syn_drops.poll()]
    assert reported == [(addr("10.0.0.3"), 443, 1, 3), (addr("10.0.0.4"), 443, 1, 4)]


def test_the_syn_counters_start_again_every_second() -> None:
    r.syn_limit.value = 1
    with fixed_clock(T0 + SECOND - 1) as clock:
        assert r.syn_flood_guard(tcp_to(443)) == XDP_PASS
        assert r.syn_flood_guard(tcp_to(443)) == XDP_DROP
        clock.advance(1)  # the next second
        assert r.syn_flood_guard(tcp_to(443)) == XDP_PASS
    assert r.syn_count[443] == 1 and r.syn_second[443] == T0 // SECOND + 1


def test_new_flows_go_to_the_canary_by_weight_and_stay_there() -> None:
    r.canary_weight.value = 0.25
    below, above = int(0.25 * 2**32) - 1, int(0.25 * 2**32)  # random() just under and at the weight
    with fixed_random([below, above]):
        first = r.canary_splitter(tcp_to(8080, sport=1000))
        second = r.canary_splitter(tcp_to(8080, sport=1001))
        # Later packets of either flow keep their backend (no roll: the queue of values is not used).
        again = [r.canary_splitter(tcp_to(8080, sport=port)) for port in (1000, 1001, 1000)]
    assert first == second == XDP_PASS and set(again) == {XDP_PASS}
    assert r.flow_backend[r.Flow(addr("10.0.0.1"), 1000)] == r.CANARY
    assert r.flow_backend[r.Flow(addr("10.0.0.1"), 1001)] == r.STABLE
    assert (r.backend_packets[r.STABLE], r.backend_packets[r.CANARY]) == (2, 3)


def test_the_echo_port_is_bounced_and_other_ports_pass_untouched() -> None:
    with fixed_random([0]) as rolls:
        assert r.canary_splitter(tcp_to(r.ECHO_PORT, flags="PA")) == XDP_TX
        assert r.canary_splitter(tcp_to(9090)) == XDP_PASS
        assert r.canary_splitter(udp_from("10.0.0.1", dport=8080)) == XDP_PASS
    assert rolls.random_calls == 0 and r.echoed.value == 1 and len(r.flow_backend) == 0


# --------------------------------------------------------------------------------------- the checks

@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_it_compiles_and_our_verifier_accepts_it(program: XdpProgram) -> None:
    compiled = program.compile(prove=False)
    assert compiled.verification.ok, compiled.verification.format()


@needs_kernel
@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_the_kernel_loads_it(program: XdpProgram) -> None:
    with program.load() as loaded:
        assert loaded.xlated_insns > 0
        assert loaded.run(ARP_FRAME).action == XDP_PASS


@pytest.mark.parametrize("program", PROGRAMS, ids=lambda p: p.name)
def test_it_proves_equivalent_to_its_ir(program: XdpProgram) -> None:
    result = prove_compiled(program.compile(prove=False).subject)
    assert result.status == "proven", result.report()


# ------------------------------------------------------------------------------- four executions agree

HelperFactory = Callable[[], FixedHelpers]


def agree_outside_the_kernel(program: XdpProgram, packets: list[bytes], helpers: HelperFactory) -> None:
    mismatch = compare(program, packets, executions=("python", "ir", "bytecode"), helpers=helpers)
    assert mismatch is None, str(mismatch)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(any_packets, st.sampled_from([udp_from("10.0.0.1"), udp_from("10.0.0.2")])),
                min_size=20, max_size=20),
       st.integers(0, 3 * SECOND), st.sampled_from([(3.0, 0.5), (200.0, 100.0), (1.0, 1e6)]))
def test_token_bucket_executions_agree_on_any_packets(batch: list[bytes], step_ns: int,
                                                      bucket: tuple[float, float]) -> None:
    reset_state(r)
    configure_bucket(*bucket)
    r.source_tokens[addr("10.0.0.2")] = 0.5
    r.source_last_refill[addr("10.0.0.2")] = T0 + 5 * SECOND  # refilled by a CPU whose clock is ahead
    agree_outside_the_kernel(r.source_token_bucket, batch,
                             lambda: FixedHelpers(clock_ns=T0, clock_step_ns=step_ns))


def test_syn_guard_executions_agree() -> None:
    # One sequence only: the bytecode interpreter copies both 65,536-element arrays in and out for
    # every packet (about 3 s a packet), so generated batches would cost minutes.
    r.syn_limit.value = 2
    r.syn_second[443] = T0 // SECOND  # a count left from this very second
    r.syn_count[443] = 1
    packets = [tcp_to(443, src="10.0.0.7"), tcp_to(443, src="10.0.0.8"), tcp_to(443, flags="SA"), TCP6_SYN]
    agree_outside_the_kernel(r.syn_flood_guard, packets,
                             lambda: FixedHelpers(clock_ns=T0, clock_step_ns=SECOND // 3, cpu=3))


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.one_of(any_packets, st.builds(tcp_to, st.sampled_from([7, 8080]), sport=st.integers(1, 4))),
                min_size=20, max_size=20),
       st.integers(0, 2**32 - 1), st.sampled_from([0.0, 0.3, 1.0]))
def test_canary_executions_agree_on_any_packets(batch: list[bytes], seed: int, weight: float) -> None:
    reset_state(r)
    r.canary_weight.value = weight
    rng = pyrandom.Random(seed)
    rolls = [rng.getrandbits(32) for _ in range(len(batch))]
    agree_outside_the_kernel(r.canary_splitter, batch, lambda: FixedHelpers(random=rolls))


def _kernel_steps(program: XdpProgram, packets: list[bytes]) -> list[Step]:
    """The kernel's steps on `packets`, from the current state, which is put back afterwards."""
    state = program.lower().state
    saved = {name: obj.save() for name, obj in state.items()}
    try:
        return run_kernel(program, packets)
    finally:
        for name, obj in state.items():
            obj.restore(saved[name])


def agree_with_the_kernel(program: XdpProgram, packets: list[bytes], in_kernel: list[Step],
                          helpers: HelperFactory) -> None:
    """The other three executions, given the helper results the kernel had, agree with `in_kernel`."""
    agree_outside_the_kernel(program, packets, helpers)
    state = program.lower().state
    saved = {name: obj.save() for name, obj in state.items()}
    try:
        in_python = run_python(program, packets, helpers)
    finally:
        for name, obj in state.items():
            obj.restore(saved[name])
    for index, (mine, theirs) in enumerate(zip(in_python, in_kernel)):
        assert mine == theirs, f"packet #{index}: python {mine} vs kernel {theirs}"


@needs_kernel
def test_token_bucket_agrees_with_the_kernel() -> None:
    configure_bucket(3.0, 0.5)
    idle = addr("10.0.0.3")  # a known source, idle for three seconds: 1.5 tokens back
    r.source_tokens[idle] = 0.0
    r.source_last_refill[idle] = time.monotonic_ns() - 3 * SECOND  # the kernel's clock is CLOCK_MONOTONIC
    sources = ["10.0.0.1"] * 5 + ["10.0.0.2", "10.0.0.3", "10.0.0.3", "10.0.0.1"]
    packets = [udp_from(s) for s in sources[:4]] + [ARP_FRAME, UDP6] + [udp_from(s) for s in sources[4:]]
    in_kernel = _kernel_steps(r.source_token_bucket, packets)
    assert [s.action for s in in_kernel] == [XDP_PASS] * 3 + [XDP_DROP] + [XDP_PASS] * 2 + \
        [XDP_DROP, XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP]
    # Every IPv4 packet stored the kernel's clock reading as its source's last refill: replay those.
    readings = [step.state["source_last_refill"][addr(IP(p[14:]).src)]  # type: ignore[index]
                for p, step in zip(packets, in_kernel) if p[12:14] == b"\x08\x00"]
    agree_with_the_kernel(r.source_token_bucket, packets, in_kernel, lambda: FixedHelpers(clock_ns=readings))


@pytest.fixture
def on_cpu_zero() -> Iterator[None]:
    """The test (and so the kernel's test runs) on CPU 0, as the other executions assume."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    yield
    os.sched_setaffinity(0, before)


SYN_PORTS = (22, 80, 443)


def syn_guard_view(action: int, packet: bytes) -> tuple[object, ...]:
    """What one packet did to the guard: the action, the packet, the counters of the ports the test
    uses on CPU 0 and the drop reports so far. (`compare` would list both 65,536-element arrays after
    every packet: seconds per packet in the kernel.)"""
    return (action, packet, [(r.syn_count.per_cpu(p)[0], r.syn_second.per_cpu(p)[0]) for p in SYN_PORTS],
            [(d.src, d.port, d.cpu, d.count) for d in r.syn_drops.records])


@needs_kernel
def test_syn_guard_agrees_with_the_kernel(on_cpu_zero: None) -> None:
    r.syn_limit.value = 2
    packets = [tcp_to(443, src=f"10.0.0.{i}") for i in range(1, 5)] + \
        [tcp_to(443, flags="SA"), tcp_to(22), TCP6_SYN, ARP_FRAME]
    in_kernel = []
    with r.syn_flood_guard.load() as loaded:
        for p in packets:
            in_kernel.append(syn_guard_view(loaded.run(p).action, p))
    r.syn_drops.clear()
    reset_state(r.syn_count, r.syn_second)
    # Each SYN stored the second the kernel's clock read for its port: replay those readings.
    port_index = {p: i for i, p in enumerate(SYN_PORTS)}
    readings = [view[2][port_index[TCP(p[34:]).dport]][1] * SECOND  # type: ignore[index]
                for p, view in zip(packets, in_kernel) if p[12:14] == b"\x08\x00" and TCP(p[34:]).flags == "S"]
    with fixed_clock(readings), on_cpu(0, r.syn_count, r.syn_second):
        in_python = [syn_guard_view(r.syn_flood_guard(p), p) for p in packets]
    assert in_python == in_kernel
    assert [v[0] for v in in_kernel] == [XDP_PASS, XDP_PASS, XDP_DROP, XDP_DROP] + [XDP_PASS] * 4
    reports = in_kernel[-1][3]
    assert isinstance(reports, list)
    assert [(src, count) for src, _, _, count in reports] == [(addr("10.0.0.3"), 3), (addr("10.0.0.4"), 4)]


@needs_kernel
@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_canary_splitter_agrees_with_the_kernel_when_the_weight_decides(weight: float) -> None:
    r.canary_weight.value = weight  # random() < 0.0 never holds, random() < 1.0 always does
    packets = [tcp_to(8080, sport=port) for port in (1000, 1001, 1000)] + \
        [tcp_to(r.ECHO_PORT), tcp_to(9090), UDP6, ARP_FRAME]
    mismatch = compare(r.canary_splitter, packets, helpers=lambda: FixedHelpers(seed=1))
    assert mismatch is None, str(mismatch)


@needs_kernel
def test_the_kernel_sends_the_weighted_share_of_new_flows_to_the_canary() -> None:
    r.canary_weight.value = 0.25
    flows = 2000
    with r.canary_splitter.load() as loaded:
        for port in range(flows):
            loaded.run(tcp_to(8080, sport=1024 + port))
    canary = r.backend_packets[r.CANARY]
    assert isinstance(canary, int)
    # 99.9% two-sided interval of Binomial(2000, 0.25): 500 +- 3.29 * sqrt(375)
    assert 436 <= canary <= 564 and r.backend_packets[r.STABLE] == flows - canary


# ------------------------------------------------------------------ the prover's rewrites they needed

def test_the_magnitude_of_a_signed_value_is_the_magnitude_of_its_value() -> None:
    import z3

    from pybpfdsl.verify.equivalence.z3_algebra import abs_value

    m, c = z3.BitVec("m", 64), z3.Bool("c")
    for signed in (z3.If(c, -m, m), z3.If(c, m, -m)):
        rewritten = abs_value(signed)
        assert rewritten.eq(abs_value(m))  # the sign is seen through, not kept
        solver = z3.Solver()
        solver.add(rewritten != z3.If(signed < 0, -signed, signed))  # INT_MIN included
        assert solver.check() == z3.unsat
    other = z3.BitVec("o", 64)
    assert not abs_value(z3.If(c, -m, other)).eq(abs_value(m))  # arms that are not each other's negation

