"""Packet writes (issue 16 §3): header fields with incremental checksum updates, and payload bytes.

Pure Python, the IR interpreter, the bytecode interpreter and the kernel leave the same bytes; scapy,
recomputing every checksum from scratch, finds the updated ones valid (a UDP checksum of 0 stays 0).
The compiled programs run through the IR passes: a field read after its write reads the new value.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from pybpfdsl.differential import compare, run_bytecode, run_ir
from pybpfdsl.lang.packet import Packet
from pybpfdsl.runtime.libbpf import kernel_bpf_available
from pybpfdsl.verify.analysis import verify_object
from pybpfdsl.verify.equivalence.prove import COMPILE_BUDGET, prove_compiled
from tests.differential import offload_programs as offload
from tests.differential import packet_write_programs as pw

KERNEL, WHY = kernel_bpf_available()
EXECUTIONS = ("python", "ir", "bytecode", "kernel") if KERNEL else ("python", "ir", "bytecode")

FRAMES = [
    bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=64, id=3) / UDP(sport=53, dport=80) / Raw(b"x" * 24)),
    bytes(Ether() / IP(src="10.0.0.9", ttl=200) / TCP(sport=1234, dport=22, flags="S") / Raw(b"\x01" * 30)),
    bytes(Ether() / IP(src="1.2.3.4", ttl=1) / UDP(sport=7, dport=9, chksum=0) / Raw(b"\xff" * 20)),
    bytes(Ether() / IP(ihl=6, options=b"\x01\x01\x01\x01", ttl=5) / TCP(dport=443) / Raw(b"abc" * 8)),
    bytes(Ether() / IP(frag=3, ttl=9) / UDP(dport=443) / Raw(b"\x00" * 20)),
    bytes(Ether() / IPv6(src="fe80::1", dst="fe80::2", hlim=3) / UDP(sport=7, dport=8080) / Raw(b"\x00" * 30)),
    bytes(Ether() / IPv6() / TCP(dport=443) / Raw(b"q" * 21)),
    bytes(Ether(type=0x0806) / Raw(b"\x00" * 28)),
    bytes(range(14)),
    bytes(Ether() / IP(proto=17) / Raw(b"\x01\x02")),
]


def python_after(prog: object, frame: bytes) -> tuple[int, bytes]:
    pkt = Packet(frame)
    action = prog(pkt)  # type: ignore[operator]
    return action, pkt.data


def checksums_valid(frame: bytes) -> bool:
    """Every IPv4, TCP and UDP checksum in `frame` equals scapy's recomputation (UDP 0: none)."""
    parsed = Ether(frame)
    fresh = Ether(frame)
    layers: list[type[ScapyPacket]] = []
    if IP in fresh and fresh[IP].frag == 0 and fresh[IP].ihl >= 5:
        del fresh[IP].chksum
        layers.append(IP)
        for l4 in (TCP, UDP):
            if l4 in fresh and not (l4 is UDP and parsed[UDP].chksum == 0):
                del fresh[l4].chksum
                layers.append(l4)
    elif IPv6 in fresh:
        for l4 in (TCP, UDP):
            if l4 in fresh and not (l4 is UDP and parsed[UDP].chksum == 0):
                del fresh[l4].chksum
                layers.append(l4)
    rebuilt = Ether(bytes(fresh))
    return all(parsed[layer].chksum == rebuilt[layer].chksum for layer in layers)


@pytest.mark.parametrize("prog", pw.ALL, ids=lambda p: p.name)
def test_pure_python_and_ir_write_the_same_bytes(prog: object) -> None:
    steps = run_ir(prog, FRAMES)  # type: ignore[arg-type]
    for frame, step in zip(FRAMES, steps):
        assert python_after(prog, frame) == (step.action, step.packet), frame.hex()


@pytest.mark.parametrize("prog", pw.ALL, ids=lambda p: p.name)
def test_four_executions_agree(prog: object) -> None:
    """Actions, state and the packets as written (the differential harness compares all three)."""
    mismatch = compare(prog, FRAMES, executions=EXECUTIONS)  # type: ignore[arg-type]
    assert mismatch is None, str(mismatch)


@pytest.mark.parametrize("prog", pw.ALL, ids=lambda p: p.name)
def test_checksums_stay_valid(prog: object) -> None:
    for frame in FRAMES:
        if checksums_valid(frame):
            _, after = python_after(prog, frame)
            assert checksums_valid(after), (frame.hex(), after.hex())


def test_expected_bytes() -> None:
    frame = FRAMES[0]
    _, after = python_after(pw.decrement_ttl, frame)
    assert Ether(after)[IP].ttl == 63 and checksums_valid(after)
    _, after = python_after(pw.rewrite_destination, frame)
    assert Ether(after)[IP].dst == "10.0.0.9" and checksums_valid(after)
    _, after = python_after(pw.redirect_port, FRAMES[2])
    assert Ether(after)[UDP].dport == 8080 and Ether(after)[UDP].chksum == 0  # none stays none
    _, after = python_after(pw.swap_macs, frame)
    assert after[:6] == frame[6:12] and after[6:12] == frame[:6]
    assert python_after(pw.read_after_write, frame)[0] == 3
    _, after = python_after(pw.write_record, frame)
    payload = bytes(Ether(after)[Raw])  # Reply at 1 (padding byte 4 kept), then at 0x78 & 7 = 0
    assert payload[:9] == bytes.fromhex("12340778") + len(frame).to_bytes(4, "big") + b"\x04"
    assert checksums_valid(after)


@pytest.mark.parametrize("prog", pw.ALL, ids=lambda p: p.name)
def test_our_verifier_accepts(prog: object) -> None:
    compiled = prog.compile(prove=False)  # type: ignore[attr-defined]
    report = verify_object(compiled.elf, prog.name)  # type: ignore[attr-defined]
    assert report.ok, report.format()


def _with_checksums(frame: bytes, ip_checksum: int, tcp_checksum: int) -> bytes:
    """`frame` (Ethernet, IPv4 without options, TCP) with its checksum fields set as given, valid or not."""
    out = bytearray(frame)
    out[24:26] = ip_checksum.to_bytes(2, "big")
    out[50:52] = tcp_checksum.to_bytes(2, "big")
    return bytes(out)


def test_a_swap_of_addresses_and_ports_leaves_every_checksum_alone() -> None:
    """`ip4.src, ip4.dst = ip4.dst, ip4.src` (and the ports) keeps every one's-complement sum, so no
    checksum is updated: its bytes stay as they were, even 0xFFFF and 0, which an update word by word
    would turn into each other (the bytes a C reflector sends). In every execution."""
    tcp = bytes(Ether() / IP(src="10.0.0.1", dst="192.168.7.9") / TCP(sport=1234, dport=22) / Raw(b"q" * 20))
    frames = [tcp] + [_with_checksums(tcp, a, b) for a, b in ((0xFFFF, 0), (0, 0xFFFF), (0x1234, 0xFFFF))]
    for frame in frames:
        action, after = python_after(pw.swap_addresses, frame)
        assert action == 3 and after[24:26] == frame[24:26] and after[50:52] == frame[50:52]
        assert after[26:30] == frame[30:34] and after[30:34] == frame[26:30] and after[34:36] == frame[36:38]
    assert checksums_valid(python_after(pw.swap_addresses, tcp)[1])
    mismatch = compare(pw.swap_addresses, frames, executions=EXECUTIONS)
    assert mismatch is None, str(mismatch)


def test_a_swap_that_changes_a_checksum_sum_updates_it() -> None:
    """TTL (the high byte of its word) and TOS (a low byte) swapped: the IPv4 sum changes, so the
    checksum is updated as for two writes."""
    frame = bytes(Ether() / IP(tos=0x28, ttl=17) / UDP(dport=53) / Raw(b"x" * 20))
    _, after = python_after(pw.swap_ttl_and_tos, frame)
    assert (Ether(after)[IP].ttl, Ether(after)[IP].tos) == (0x28, 17) and checksums_valid(after)
    assert after[24:26] != frame[24:26]


@pytest.mark.parametrize("prog", [pw.swap_macs, pw.reflect, pw.swap_addresses, pw.decrement_ttl,
                                  pw.redirect_port],
                         ids=lambda p: p.name)
def test_proof_proves(prog: object) -> None:
    """Bytecode against the IR, output packets compared byte for byte. (The address rewrites, with their
    conditional TCP/UDP updates, prove in tests/verify/equivalence/test_packet_write_proofs.py; a payload
    write at a variable offset still runs out of the budget.)"""
    compiled = prog.compile(prove=False)  # type: ignore[attr-defined]
    result = prove_compiled(compiled.subject, budget=COMPILE_BUDGET)
    assert result.status == "proven", result.report()


@st.composite
def rewritable_frames(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(min_size=20, max_size=40))
    ip4 = IP(src=draw(st.ip_addresses(v=4)).exploded, dst=draw(st.ip_addresses(v=4)).exploded,
             ttl=draw(st.integers(0, 255)), id=draw(st.integers(0, 0xFFFF)))
    l4 = draw(st.sampled_from(["tcp", "udp", "udp0"]))
    ports = {"sport": draw(st.integers(0, 0xFFFF)), "dport": draw(st.integers(0, 0xFFFF))}
    layer = TCP(**ports) if l4 == "tcp" else UDP(**ports, chksum=0 if l4 == "udp0" else None)
    return bytes(Ether() / ip4 / layer / Raw(payload))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rewritable_frames())
def test_random_field_writes_keep_checksums_valid(frame: bytes) -> None:
    """Field values from the payload: every IPv4, TCP and UDP checksum is still scapy's, in pure Python
    and the IR interpreter alike."""
    action, after = python_after(pw.nat_from_payload, frame)
    assert checksums_valid(after), (frame.hex(), after.hex())
    (step,) = run_ir(pw.nat_from_payload, [frame])
    assert (step.action, step.packet) == (action, after)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rewritable_frames())
def test_random_field_writes_agree_in_bytecode(frame: bytes) -> None:
    (step,) = run_bytecode(pw.nat_from_payload, [frame])
    assert (step.action, step.packet) == python_after(pw.nat_from_payload, frame)


def test_offloaded_checksums_are_left_alone() -> None:
    """`CHECKSUM_OFFLOAD = ("udp",)`: the IPv4 checksum is updated, the UDP checksum's bytes are not."""
    frame = FRAMES[0]
    _, after = python_after(offload.offloaded_udp, frame)
    assert Ether(after)[UDP].chksum == Ether(frame)[UDP].chksum and Ether(after)[UDP].dport == 8080
    fresh = Ether(after)
    del fresh[IP].chksum
    assert Ether(bytes(fresh))[IP].chksum == Ether(after)[IP].chksum
    mismatch = compare(offload.offloaded_udp, FRAMES, executions=EXECUTIONS)
    assert mismatch is None, str(mismatch)
