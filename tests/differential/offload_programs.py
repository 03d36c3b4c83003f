"""A program whose NIC computes the UDP checksum: its writes leave that checksum alone."""

from __future__ import annotations

from pybpfdsl import XDP_PASS, XDP_TX, Packet, ip, xdp

CHECKSUM_OFFLOAD = ("udp",)


@xdp
def offloaded_udp(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.dst = ip("10.0.0.9")
    u = pkt.udp
    if u is not None:
        u.dport = 8080
    pkt.payload[1] = 0x55
    return XDP_TX
