"""examples/vlan_tagging.py on real interfaces: pods' frames leave on the trunk with their tenant's 802.1Q
tag, and tagged frames of this node's VLANs reach the host's sockets without it (issue 16 §3).

Traffic flows only between namespaces the tests create. The push test uses the three namespaces of
`test_redirect_traffic` (pod A, node R, trunk side B): A sends UDP over `a0` to B's address; the program
on R's `ra` tags the frames and redirects them out of `rb`, and a packet socket on `b0` sees them arrive
tagged (scapy's listen socket puts back the tag the kernel moves into the packet's metadata on receive).
The pop test uses a veth pair: tx sends tagged frames from a packet socket; the program on `veth1`
removes the tag, and rx's UDP socket receives the datagrams, which, still tagged, the kernel drops (rx has
no VLAN device).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterator

import pytest
import vlan_tagging as EXAMPLE
from scapy.arch.linux import L2ListenSocket, L2Socket
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw

from pybpfdsl.deploy import attach
from pybpfdsl.testing import reset_state

from .netns import VethPair, drain, inside, veth_fixture  # noqa: F401 - fixtures
from .test_redirect_traffic import SO_NO_CHECK, Triangle, triangle_fixture  # noqa: F401 - fixtures

VLAN = 42
PORT = 7788


@pytest.fixture(autouse=True)
def fresh_example() -> Iterator[None]:
    reset_state(EXAMPLE)
    yield
    reset_state(EXAMPLE)


def _addr(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def _listen(ns: str, ifname: str) -> L2ListenSocket:
    with inside(ns):
        return L2ListenSocket(iface=ifname)


def _sniff(sock: L2ListenSocket, marker: bytes, idle: float = 0.5, timeout: float = 10.0) -> list[Ether]:
    """Frames carrying `marker` in their payload that arrive until none came for `idle` seconds."""
    got: list[Ether] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = sock.select([sock], idle)
        if not ready:
            break
        frame = sock.recv()
        if frame is not None and marker in bytes(frame):
            got.append(frame)
    return got


def test_a_pods_frames_leave_on_the_trunk_tagged(triangle: Triangle) -> None:
    t = triangle
    sniffer = _listen(t.b, "b0")
    try:
        with inside(t.a):
            sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        with inside(t.r):
            EXAMPLE.trunk.value = socket.if_nametoindex("rb")
            EXAMPLE.priority.value = 5
            EXAMPLE.tag_pod(_addr(t.a_ip), VLAN)
            attachment = attach(EXAMPLE.vlan_tagging, "ra")
        try:
            with sender:
                for i in range(10):
                    sender.sendto(b"tagme-%d" % i, (t.b_ip, PORT))
            got = _sniff(sniffer, b"tagme-")
        finally:
            attachment.detach()
        assert EXAMPLE.tagged.value == 10
    finally:
        sniffer.close()
    assert len(got) == 10
    for frame in got:
        assert frame.haslayer(Dot1Q), frame.summary()
        tag = frame[Dot1Q]
        assert (tag.vlan, tag.prio, tag.type) == (VLAN, 5, 0x0800)
        assert (frame.src, frame.dst) == (t.mac(1), t.mac(2))  # the MAC addresses in front of the tag again
        assert (frame[IP].src, frame[IP].dst, frame[UDP].dport) == (t.a_ip, t.b_ip, PORT)
    assert sorted(bytes(f[Raw].load) for f in got) == sorted(b"tagme-%d" % i for i in range(10))


def _send_tagged(pair: VethPair, vlan: int, count: int, label: bytes) -> None:
    with inside(pair.tx_ns):
        out = L2Socket(iface=pair.tx_if)
    try:
        for i in range(count):
            out.send(Ether(src=pair.tx_mac, dst=pair.rx_mac) / Dot1Q(vlan=vlan, prio=2)
                     / IP(src=pair.tx_ip, dst=pair.rx_ip) / UDP(sport=40000, dport=PORT) / Raw(label + b"-%d" % i))
    finally:
        out.close()


def test_tagged_frames_of_a_local_vlan_reach_the_socket_untagged(veth: VethPair) -> None:
    receiver = veth.udp_receiver(PORT)
    _send_tagged(veth, VLAN, 5, b"before")  # no program: still tagged, the host has no VLAN 42 device
    assert drain(receiver, idle=0.3) == []
    EXAMPLE.serve_vlan(VLAN)
    with inside(veth.rx_ns):
        attachment = attach(EXAMPLE.vlan_tagging, veth.rx_if)
    try:
        _send_tagged(veth, VLAN, 20, b"local")
        _send_tagged(veth, VLAN + 1, 5, b"other")  # not this node's VLAN: passes tagged, dropped by the host
        got = drain(receiver, expected=20)
        got += drain(receiver, idle=0.3)
    finally:
        attachment.detach()
    assert sorted(got) == sorted(b"local-%d" % i for i in range(20))
    assert EXAMPLE.untagged.value == 20
    frame_len = len(Ether() / IP() / UDP() / Raw(b"local-0"))
    assert EXAMPLE.vlan_bytes[VLAN] == 10 * frame_len + 10 * (frame_len + 1)  # local-0..9, local-10..19
