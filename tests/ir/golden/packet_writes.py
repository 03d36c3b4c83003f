"""Packet writes: a header field (with the IPv4 checksum update) and a payload byte (with the UDP one)."""

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Packet, xdp
from tests.ir.golden import packets


@xdp
def packet_writes(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    if ip4.ttl <= 1:
        return XDP_DROP
    ip4.ttl -= 1
    pkt.payload[0] = 7
    return XDP_TX


CASES = [
    (packets.tcp(ttl=64), XDP_TX),
    (packets.tcp(ttl=1), XDP_DROP),
    (packets.runt(), XDP_PASS),
]
