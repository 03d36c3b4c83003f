"""pkt.adjust_tail on a real interface (issue 16 §3): a program on the receiving veth strips a 4-byte
trailer that the sender appends to datagrams for one port (say, a telemetry tag a sidecar adds), so the
socket receives the application's bytes only.

The trim shortens the IPv4 and UDP lengths (the IPv4 checksum follows incrementally), clears the UDP
checksum (it covered the bytes removed; 0 means "none" over IPv4) and moves the packet's end 4 bytes
back. The shorter lengths alone would make the receiver drop the trailer as padding, so a packet socket
on the receiving veth (which sees frames after XDP) checks that the frames themselves lost the 4 bytes.
Traffic flows only between the two namespaces the test creates (`netns.VethPair`).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u64, xdp
from pybpfdsl.deploy import attach
from pybpfdsl.testing import reset_state

from .netns import UDP_FRAME_OVERHEAD, VethPair, drain, inside, veth_fixture  # noqa: F401 - fixtures

PORT = 7799
TRAILER = b"TLM!"
SO_NO_CHECK = 11  # <asm-generic/socket.h>

trimmed = Global(u64, 0)


@xdp
def strip_trailer(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    udp = pkt.udp
    if ip4 is None or udp is None or udp.dport != 7799 or udp.len < 12:
        return XDP_PASS
    ip4.len -= 4
    udp.len -= 4
    udp.chksum = 0
    if not pkt.adjust_tail(-4):
        return XDP_DROP
    trimmed.value += 1
    return XDP_PASS


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    reset_state(trimmed)
    yield


def _send(pair: VethPair, payloads: list[bytes], port: int) -> None:
    with inside(pair.tx_ns):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    with sender:
        for payload in payloads:
            sender.sendto(payload, (pair.rx_ip, port))


def test_the_socket_receives_the_datagrams_without_their_trailer(veth: VethPair) -> None:
    receiver = veth.udp_receiver(PORT)
    other = veth.udp_receiver(PORT + 1)
    messages = [b"reading-%d" % i + b"x" * i for i in range(20)]
    with inside(veth.rx_ns):
        sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        sniffer.bind((veth.rx_if, 0))
        attachment = attach(strip_trailer, veth.rx_if)
    try:
        _send(veth, [m + TRAILER for m in messages], PORT)
        _send(veth, [b"untouched" + TRAILER], PORT + 1)  # another port keeps its bytes
        got = drain(receiver, expected=len(messages))
        got_other = drain(other, expected=1)
        frames = [f for f in drain(sniffer, idle=0.3) if b"reading-" in f]
    finally:
        attachment.detach()
        sniffer.close()
    assert sorted(len(f) for f in frames) == sorted(UDP_FRAME_OVERHEAD + len(m) for m in messages)
    assert not any(TRAILER in f for f in frames)
    assert sorted(got) == sorted(messages)
    assert got_other == [b"untouched" + TRAILER]
    assert trimmed.value == len(messages)
