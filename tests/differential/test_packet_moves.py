"""pkt.adjust_head / pkt.adjust_tail (issue 16 §3): pure Python, the IR interpreter, the bytecode
interpreter and the kernel return the same actions and leave the same bytes (moved, grown, trimmed or
refused), and the same state from what they read after the move; the bytecode is proven equivalent to
the IR, and both verifiers accept it."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state
from pybpfdsl.verify.analysis import verify_object
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from tests.differential import packet_move_programs as pm

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

FRAMES = [
    Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="192.0.2.1", dst="192.0.2.2", proto=4)
    / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=7, dport=8080) / Raw(b"inner!"),
    Ether() / IP(proto=4) / IP(src="10.9.9.9") / TCP(dport=22),
    Ether() / IP(proto=4, ihl=6, options=b"\x01" * 4) / IP() / UDP(),
    Ether() / IP(src="10.0.0.1") / UDP(sport=53, dport=80) / Raw(b"\x30" + b"x" * 70),
    Ether() / IP() / UDP() / Raw(b"\x05abc"),
    Ether() / IP() / TCP() / Raw(b"\xff" * 3),
    Ether() / IPv6() / UDP(dport=9) / Raw(b"\x00"),
    Ether(type=0x0806) / Raw(b"\x28" * 28),
]
PACKETS = [bytes(f) for f in FRAMES] + [bytes(FRAMES[0])[:cut] for cut in (14, 20, 33, 34, 40, 53, 54, 62)] \
    + [bytes(range(14)), bytes(range(15)), bytes(200)]


@pytest.fixture(autouse=True)
def clean_state() -> None:
    reset_state(pm)


@pytest.mark.parametrize("prog", pm.PROGRAMS, ids=lambda p: p.name)
def test_moves_agree_byte_for_byte(prog) -> None:  # type: ignore[no-untyped-def]
    mismatch = compare(prog, PACKETS, executions=EXECUTIONS)
    assert mismatch is None, str(mismatch)


@pytest.mark.parametrize("prog", pm.PROGRAMS, ids=lambda p: p.name)
def test_our_verifier_accepts(prog) -> None:  # type: ignore[no-untyped-def]
    report = verify_object(prog.compile(prove=False, verify=False).elf, prog.name)
    assert report.ok, report.format()


@pytest.mark.parametrize("prog", [pm.push_tag, pm.trim, pm.ipip_decap], ids=lambda p: p.name)
def test_moves_are_proven(prog) -> None:  # type: ignore[no-untyped-def]
    result = prove_compiled(prog.compile(prove=False, verify=False).subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()


def test_decapsulation_leaves_the_inner_packet() -> None:
    outer = FRAMES[0]
    pkt = pm.Packet(bytes(outer))
    assert pm.ipip_decap(pkt) == pm.XDP_TX
    inner = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / outer[IP].payload
    assert pkt.data == bytes(inner)
