"""Where the header parse puts the usual frame: an IPv4 packet runs the parse without a taken jump.

The parse tests the ethertype for IPv4 first and for IPv6 after it; LLVM turns the two tests into one
switch, whose lowering makes the case laid out next the fall-through. With the IPv4 parse emitted as
the ethertype test's fall-through and the IPv6 parse marked rare, an IPv4 frame goes straight from the
Ethernet check to the program's own code, as clang lays out the C twins (benchmarks/size_speed). The
other frames still parse as before: the layout changes no meaning (the differential and equivalence
tests run these programs on every kind of frame).
"""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u64, xdp
from pybpfdsl.bpf.image import BytecodeImage
from pybpfdsl.program import XdpProgram

hits = Global(u64, 0)


@xdp
def udp_port(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None or udp.dport != 7000:
        return XDP_PASS
    hits.value += 1
    return XDP_DROP


@xdp
def tcp_or_udp(pkt: Packet) -> int:
    if pkt.udp is None and pkt.tcp is None:
        return XDP_PASS
    hits.value += 1
    return XDP_DROP


def _udp4(dport: int) -> bytes:
    return bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / IP(src="10.0.0.1", dst="10.0.0.2")
                 / UDP(sport=40000, dport=dport) / (b"x" * 8))


def _udp6(dport: int) -> bytes:
    return bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / IPv6(src="fd00::1", dst="fd00::2")
                 / UDP(sport=40000, dport=dport) / (b"x" * 8))


def _run(prog: XdpProgram, packet: bytes) -> tuple[int, int, int]:
    """(the action, the instructions run, the instructions up to and including the first `exit`)."""
    image = BytecodeImage.from_elf(prog.compile(prove=False, verify=False).elf, prog.name)
    first_exit = next(i for i, insn in enumerate(image.instructions) if insn.is_exit)
    result = image.run(packet, image.fresh_maps())
    return result.action, result.steps, first_exit + 1


def test_an_ipv4_frame_runs_the_parse_without_a_taken_jump() -> None:
    # A datagram to another port passes at the program's first `exit`: without a taken jump the run is
    # the straight line from the first instruction to it (with the IPv4 parse out of line it took two).
    action, steps, straight = _run(udp_port, _udp4(7001))
    assert action == XDP_PASS
    assert steps == straight
    assert _run(udp_port, _udp4(7000))[0] == XDP_DROP


@pytest.mark.parametrize("prog", [udp_port, tcp_or_udp], ids=lambda p: p.name)
def test_an_ipv6_frame_still_parses(prog: XdpProgram) -> None:
    assert _run(prog, _udp6(7000))[0] == XDP_DROP
    assert _run(prog, _udp6(7001) if prog is udp_port else bytes(60))[0] == XDP_PASS
