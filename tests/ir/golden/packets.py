"""Frames the golden snippets' cases use (scapy), as bytes."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw


def tcp(dport: int = 80, sport: int = 1234, src: str = "10.0.0.1", ttl: int = 64, payload: bytes = b"",
        flags: str = "S") -> bytes:
    return bytes(Ether() / IP(src=src, dst="10.0.0.2", ttl=ttl) / TCP(sport=sport, dport=dport, flags=flags)
                 / Raw(payload))


def udp(dport: int = 53, sport: int = 1234, src: str = "10.0.0.1", payload: bytes = b"") -> bytes:
    return bytes(Ether() / IP(src=src, dst="10.0.0.2") / UDP(sport=sport, dport=dport) / Raw(payload))


def udp6(dport: int = 53, payload: bytes = b"") -> bytes:
    return bytes(Ether() / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=dport) / Raw(payload))


def runt(length: int = 10) -> bytes:
    """Too short for an Ethernet header."""
    return bytes(range(length))
