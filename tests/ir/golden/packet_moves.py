"""Moving the packet: an outer IPv4 header stripped with adjust_head (IP-in-IP decapsulation), the headers
parsed afresh after the move, and a trim with adjust_tail."""

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Packet, xdp
from tests.ir.golden import packets


@xdp
def packet_moves(pkt: Packet) -> int:
    outer = pkt.ipv4
    if outer is None or outer.proto != 4:
        return XDP_PASS
    if not pkt.adjust_head(20):
        return XDP_DROP
    if pkt.udp is None:
        return XDP_PASS
    if not pkt.adjust_tail(-1):
        return XDP_DROP
    return XDP_TX


CASES = [
    (packets.udp(), XDP_PASS),
    (bytes(60), XDP_PASS),
]
