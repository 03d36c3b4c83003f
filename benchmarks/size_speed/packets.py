"""The packets the benchmark sends, built with scapy: one constructor per kind of frame, so each program's
packet list reads as the paths it exercises."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw


def _eth() -> Ether:
    """An Ethernet header with both addresses given: left out, scapy would resolve them (ARP, neighbour
    discovery) and wait for an answer that never comes."""
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")


def udp4(dport: int, sport: int = 40000, payload: bytes = b"", src: str = "10.0.0.1") -> bytes:
    return bytes(_eth() / IP(src=src, dst="10.0.0.2") / UDP(sport=sport, dport=dport) / Raw(payload))


def tcp4(dport: int, sport: int = 40000, src: str = "10.0.0.1") -> bytes:
    return bytes(_eth() / IP(src=src, dst="10.0.0.2") / TCP(sport=sport, dport=dport, flags="S"))


def udp6(dport: int, sport: int = 40000, payload: bytes = b"") -> bytes:
    return bytes(_eth() / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=sport, dport=dport) / Raw(payload))


def tcp6(dport: int, sport: int = 40000) -> bytes:
    return bytes(_eth() / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=sport, dport=dport, flags="S"))


def icmp4(src: str = "10.0.0.1") -> bytes:
    return bytes(_eth() / IP(src=src, dst="10.0.0.2") / ICMP())


def fragment4(dport: int) -> bytes:
    """A later IPv4 fragment (offset 8 bytes): it carries no UDP header however its bytes look."""
    return bytes(_eth() / IP(src="10.0.0.1", dst="10.0.0.2", frag=1, proto=17) / Raw(b"\x9c\x40" * 8))


def arp() -> bytes:
    return bytes(_eth() / ARP())


def vlan4(vlan: int, dport: int = 53, prio: int = 0) -> bytes:
    """An IPv4 UDP datagram in an 802.1Q-tagged frame."""
    return bytes(_eth() / Dot1Q(vlan=vlan, prio=prio) / IP(src="10.0.0.9", dst="10.1.0.7")
                 / UDP(sport=40000, dport=dport) / Raw(bytes(16)))


def short_tag() -> bytes:
    """A frame whose ethertype says a tag follows, with only two bytes of it."""
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", type=0x8100) / Raw(b"\x00\x2a"))
