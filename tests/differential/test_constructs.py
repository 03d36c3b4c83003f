"""Every construct agrees in pure Python, the IR interpreter, the bytecode interpreter and the kernel:
on hand-picked packets and on
≥ 2,000 generated packets per program (40 sequences of 50 packets, state carried along each sequence)."""

from __future__ import annotations

import random as pyrandom

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pybpfdsl.differential import compare, uses_helpers
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import FixedHelpers, reset_state
from tests.differential import constructs
from tests.strategies import packets

KERNEL, WHY = kernel_bpf_available()
needs_kernel = pytest.mark.skipif(not KERNEL, reason=f"kernel BPF unavailable: {WHY}")
ALL = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

HAND_PICKED = [
    bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64, id=0) / UDP(sport=53, dport=80)
          / Raw(b"\xef\xbe\x01\x05abcd")),
    bytes(Ether() / IP(src="10.0.0.9", ttl=200, id=7) / TCP(sport=1234, dport=22, flags="SA") / Raw(b"x" * 40)),
    bytes(Ether() / IP(ihl=6, options=b"\x01\x01\x01\x01", frag=3) / UDP(dport=443)),
    bytes(Ether() / IPv6(nh=17) / UDP(sport=7, dport=8080) / Raw(b"\x00" * 70)),
    bytes(Ether() / IPv6() / TCP(dport=443, dataofs=8, options=[("NOP", None)] * 12)),
    bytes(Ether(type=0x0806) / Raw(b"\x00" * 28)),
    bytes(Ether() / IP(proto=17) / Raw(b"\x01\x02")),
    bytes(range(14)),
    bytes(Ether() / IP(src="192.168.0.1", ttl=3) / UDP(dport=53) / Raw(b"\xbe\xef\x01\xff" + b"\x00" * 200)),
]

PROGRAMS = constructs.DETERMINISTIC


@pytest.fixture(autouse=True)
def clean_state() -> None:
    reset_state(constructs)


def test_deterministic_programs_do_not_use_helpers() -> None:
    assert not any(uses_helpers(p) for p in PROGRAMS)
    assert all(uses_helpers(p) for p in constructs.WITH_HELPERS)


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_hand_picked_packets_agree(prog) -> None:  # type: ignore[no-untyped-def]
    mismatch = compare(prog, HAND_PICKED * 2, executions=ALL)
    assert mismatch is None, str(mismatch)


BATCHES = {"loops": 12}
"""Batches of 50 generated packets per program (20, 1,000 packets, unless listed): the loops program runs
its loops on every packet in four executions, 0.7 s a batch; a dozen batches reach its paths (hand-picked
packets above cover the rest). `benchmarks/` and the generated-program corpus run far more."""


@pytest.mark.parametrize("prog", PROGRAMS, ids=lambda p: p.name)
def test_generated_packets_agree(prog) -> None:  # type: ignore[no-untyped-def]
    @settings(max_examples=BATCHES.get(prog.name, 20), deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(packets, min_size=50, max_size=50))
    def check(batch: list[bytes]) -> None:
        reset_state(constructs)
        mismatch = compare(prog, batch, executions=ALL)
        assert mismatch is None, str(mismatch)

    check()


@pytest.mark.parametrize("prog", constructs.WITH_HELPERS, ids=lambda p: p.name)
def test_programs_with_helpers_agree_with_fixed_helpers(prog) -> None:  # type: ignore[no-untyped-def]
    """The kernel's random numbers and clock cannot be fixed; pure Python and the IR can, and must agree."""
    @settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(packets, min_size=50, max_size=50), st.integers(0, 2**32 - 1))
    def check(batch: list[bytes], seed: int) -> None:
        reset_state(constructs)
        rng = pyrandom.Random(seed)
        randoms = [rng.getrandbits(32) for _ in range(500)]
        mismatch = compare(prog, batch, executions=("python", "ir", "bytecode"),
                           helpers=lambda: FixedHelpers(random=randoms, clock_ns=seed, clock_step_ns=977))
        assert mismatch is None, str(mismatch)

    check()


@needs_kernel
@pytest.mark.parametrize("prog", constructs.WITH_HELPERS, ids=lambda p: p.name)
def test_programs_with_helpers_load_and_run_in_the_kernel(prog) -> None:  # type: ignore[no-untyped-def]
    with prog.load() as loaded:
        actions = {loaded.run(p).action for p in HAND_PICKED for _ in range(20)}
    assert actions <= {0, 1, 2}
