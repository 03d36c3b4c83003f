"""XDP_REDIRECT and XDP_TX on real interfaces (issue 16 §3).

Three namespaces the test creates: A and B each joined to a router namespace R by a veth pair
(`a0`-`ra`, `b0`-`rb`). A sends UDP to B's address with B's MAC as the next hop, over `a0`; a program
on `ra` redirects the frames through a DevMap slot holding `rb`, so they leave R on `rb` and B's socket
receives them (R has no route between the two: without the redirect nothing arrives). A second test
runs a reflector on `ra` that returns XDP_TX: A's own frames come back to `a0`.

A veth delivers an XDP_TX or redirected frame only to a peer that runs XDP itself, so `a0` and `b0`
run a program that passes everything.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pybpfdsl import XDP_PASS, XDP_TX, Packet, xdp
from pybpfdsl.deploy import attach
from pybpfdsl.lang.redirect import DevMap

from .netns import _detach_everything_in, drain, inside, ip, require_environment, run

ports = DevMap(4)
SLOT = 2
PORT = 7777
SO_NO_CHECK = 11  # <asm-generic/socket.h>; the socket module does not name it


@xdp
def to_b(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None and udp.dport == 7777:
        return ports.redirect(2, XDP_PASS)
    return XDP_PASS


@xdp
def reflect(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None and udp.dport == 7777:
        return XDP_TX
    return XDP_PASS


@xdp
def pass_a(pkt: Packet) -> int:
    return XDP_PASS


@xdp
def pass_b(pkt: Packet) -> int:
    return XDP_PASS


_counter = itertools.count(1)


@dataclass
class Triangle:
    a: str
    r: str
    b: str
    n: int

    @property
    def a_ip(self) -> str:
        return f"10.210.{self.n}.1"

    @property
    def b_ip(self) -> str:
        return f"10.211.{self.n}.2"

    def mac(self, last: int) -> str:
        return f"02:00:d2:{self.n:02x}:00:{last:02x}"


@pytest.fixture(name="triangle")
def triangle_fixture() -> Iterator[Triangle]:
    require_environment()
    n = next(_counter) % 250 + 1
    prefix = f"pbr{os.getpid() % 100000}n{n}"
    t = Triangle(prefix + "a", prefix + "r", prefix + "b", n)
    try:
        for ns in (t.a, t.r, t.b):
            ip("netns", "add", ns)
            ip("link", "set", "dev", "lo", "up", ns=ns)
        ip("link", "add", "ra", "address", t.mac(0x10), "type", "veth", "peer", "name", "a0",
           "address", t.mac(1), "netns", t.a, ns=t.r)
        ip("link", "add", "rb", "address", t.mac(0x20), "type", "veth", "peer", "name", "b0",
           "address", t.mac(2), "netns", t.b, ns=t.r)
        for ns, ifname in ((t.a, "a0"), (t.r, "ra"), (t.r, "rb"), (t.b, "b0")):
            run("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1")
            ip("link", "set", "dev", ifname, "up", ns=ns)
        ip("addr", "add", f"{t.a_ip}/24", "dev", "a0", ns=t.a)
        ip("addr", "add", f"{t.b_ip}/24", "dev", "b0", ns=t.b)
        ip("route", "add", f"10.211.{n}.0/24", "dev", "a0", ns=t.a)
        ip("route", "add", f"10.210.{n}.0/24", "dev", "b0", ns=t.b)
        ip("neigh", "replace", t.b_ip, "lladdr", t.mac(2), "dev", "a0", "nud", "permanent", ns=t.a)
        with inside(t.a):
            attach(pass_a, "a0")
        with inside(t.b):
            attach(pass_b, "b0")
        yield t
    finally:
        _detach_everything_in([t.a, t.r, t.b])
        for ns in (t.a, t.r, t.b):
            ip("netns", "del", ns, check=False)


def _send(t: Triangle, count: int) -> None:
    with inside(t.a):
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # No UDP checksum: a veth leaves it to be completed later (CHECKSUM_PARTIAL), which a frame redirected
    # by XDP no longer carries, so B would drop the datagrams as corrupt.
    sender.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
    with sender:
        for i in range(count):
            sender.sendto(b"redirect-%d" % i, (t.b_ip, PORT))


def test_devmap_redirect_leaves_on_the_slot_port(triangle: Triangle) -> None:
    t = triangle
    with inside(t.b):
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind((t.b_ip, PORT))
    with receiver:
        _send(t, 5)  # nothing joins R's two ports yet
        assert drain(receiver, idle=0.3) == []
        with inside(t.r):
            ports.clear()
            ports[SLOT] = socket.if_nametoindex("rb")  # the kernel reads the index in R's namespace
            attachment = attach(to_b, "ra")
        try:
            _send(t, 20)
            got = drain(receiver, expected=20)
        finally:
            attachment.detach()
    assert sorted(got) == sorted(b"redirect-%d" % i for i in range(20))


def test_xdp_tx_reflector_returns_frames(triangle: Triangle) -> None:
    t = triangle
    with inside(t.a):
        sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
        sniffer.bind(("a0", 0))
    with sniffer:
        with inside(t.r):
            attachment = attach(reflect, "ra")
        try:
            _send(t, 10)
            sniffer.settimeout(0.5)
            back = []
            while True:
                try:
                    frame, address = sniffer.recvfrom(2048)
                except TimeoutError:
                    break
                if address[2] != socket.PACKET_OUTGOING and b"redirect-" in frame:
                    back.append(frame[frame.index(b"redirect-"):])
        finally:
            attachment.detach()
    assert sorted(back) == sorted(b"redirect-%d" % i for i in range(10))
