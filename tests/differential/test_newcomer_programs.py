"""Ten mesh programs written the way a newcomer writes them (tests/differential/newcomer_programs.py)
compile with the verifier and the proof on, and agree in pure Python, the IR and bytecode interpreters
and the kernel; the programs that read the clock or random numbers agree in the three executions that
can fix them, and load and run in the kernel."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pybpfdsl import XDP_DROP, XDP_PASS, prefix
from pybpfdsl.differential import compare, uses_helpers
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import FixedHelpers, reset_state
from tests.differential import newcomer_programs as progs

KERNEL, _ = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

PACKETS = [
    bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=5) / TCP(sport=1, dport=23) / Raw(b"GET / HTTP")),
    bytes(Ether() / IP(src="10.1.0.1", dst="10.0.0.3", ttl=1) / UDP(sport=5, dport=5353) / Raw(b"xxGETyy")),
    bytes(Ether() / IP(src="192.168.1.1", dst="10.0.0.2", ttl=64) / UDP(sport=5, dport=53) / Raw(b"\x00" * 20)),
    bytes(Ether() / IP(src="192.168.1.1", ttl=64) / TCP(dport=80) / Raw(b"aaaGETbbb")),
    bytes(Ether(type=0x806) / Raw(b"\x00" * 28)),
]


@pytest.fixture(autouse=True)
def state() -> None:
    reset_state(progs)
    progs.blocked[prefix("10.0.0.0/8")] = 1
    progs.blocked[prefix("10.1.0.0/16")] = 0
    progs.next_hop[0x0A000002] = 0


def _helpers() -> FixedHelpers:
    return FixedHelpers(random=[1 << 20, 1 << 31, 5], clock_ns=[10**9, 2 * 10**9, 2 * 10**9 + 5])


@pytest.mark.parametrize("prog", progs.ALL, ids=lambda p: p.name)
def test_compiles_verified_and_proven(prog) -> None:  # type: ignore[no-untyped-def]
    compiled = prog.compile(prove=True)
    assert compiled.verification is not None and compiled.verification.ok, compiled.verification
    assert compiled.proof.status == "proven", compiled.proof


@pytest.mark.parametrize("prog", progs.ALL, ids=lambda p: p.name)
def test_executions_agree(prog) -> None:  # type: ignore[no-untyped-def]
    if uses_helpers(prog):
        assert compare(prog, PACKETS * 2, executions=("python", "ir", "bytecode"), helpers=_helpers) is None
        if KERNEL:
            with prog.load() as loaded:
                assert all(loaded.run(p).action in (XDP_PASS, XDP_DROP) for p in PACKETS)
    else:
        assert compare(prog, PACKETS * 2, executions=EXECUTIONS) is None


def test_python_meaning() -> None:
    assert [progs.cidr_acl(p) for p in PACKETS] == [XDP_DROP, XDP_PASS, XDP_PASS, XDP_PASS, XDP_PASS]
    assert progs.denied.value == 1
    assert [progs.payload_scanner(p) for p in PACKETS] == [XDP_DROP, XDP_PASS, XDP_PASS, XDP_DROP, XDP_PASS]
    for p in PACKETS:
        progs.flow_counter(p)
    assert len(list(progs.flows.keys())) == 4
