"""Each header parsed once, in one tree, computing only what a program uses (issue 15 §1): whichever
headers a program names, pure Python, the IR interpreter, the bytecode interpreter and the kernel agree
on every packet cut at every length (each presence rule's boundary: 14, 34, 54 bytes, the L4 header's
end, IPv4 options, bad ihl, later fragments, bad dataofs, other protocols); the bytecode is proven
equivalent to the IR, and both verifiers accept it."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from pybpfdsl.differential import compare
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.testing import reset_state
from pybpfdsl.verify.analysis import verify_object
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from tests.differential import header_parse_programs as hp

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

FRAMES = [
    Ether() / IP(src="10.0.0.1", dst="10.0.0.2", id=9) / TCP(sport=1234, dport=22, seq=77) / Raw(b"abcdef"),
    Ether() / IP(ihl=7, options=b"\x01" * 8) / TCP(dport=443, dataofs=7, options=[("NOP", None)] * 8) / Raw(b"zz"),
    Ether() / IP(src="1.2.3.4") / UDP(sport=53, dport=80) / Raw(b"\x10\x20\x30\x40"),
    Ether() / IP(frag=5) / UDP(dport=9) / Raw(b"xyz"),
    Ether() / IP(ihl=4) / UDP(dport=9) / Raw(b"xyz"),
    Ether() / IP() / TCP(dataofs=4) / Raw(b"abc"),
    Ether() / IP() / ICMP() / Raw(b"ping"),
    Ether() / IPv6(src="fe80::1", dst="fe80::2", hlim=7) / TCP(dport=80, window=999) / Raw(b"q"),
    Ether() / IPv6(nh=17) / UDP(sport=7, dport=8080) / Raw(b"\x00\x01\x02\x03"),
    Ether() / IPv6(nh=58) / Raw(b"\x00" * 8),
    Ether(type=0x0806) / Raw(b"\x00" * 28),
]
PACKETS = [bytes(f)[:cut] for f in FRAMES for cut in range(14, len(bytes(f)) + 1)]
SHORT = [bytes(FRAMES[0])[:cut] for cut in range(14)]
"""Too short for the kernel's test runs (which need an Ethernet header): the other executions only."""


@pytest.fixture(autouse=True)
def clean_state() -> None:
    reset_state(hp)


@pytest.mark.parametrize("prog", hp.PROGRAMS, ids=lambda p: p.name)
def test_every_cut_of_every_frame_agrees(prog) -> None:  # type: ignore[no-untyped-def]
    mismatch = compare(prog, PACKETS, executions=EXECUTIONS)
    assert mismatch is None, str(mismatch)
    mismatch = compare(prog, SHORT, executions=("python", "ir", "bytecode"))
    assert mismatch is None, str(mismatch)


@pytest.mark.parametrize("prog", hp.PROGRAMS, ids=lambda p: p.name)
def test_proven_and_verified(prog) -> None:  # type: ignore[no-untyped-def]
    compiled = prog.compile(prove=False, verify=False)
    assert prove_compiled(compiled.subject, budget=COMPILE_BUDGET).status == "proven"
    report = verify_object(compiled.elf, prog.name)
    assert report.ok, report.format()
