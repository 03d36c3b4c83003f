"""Branches and joins (block parameters), `match`, conditional expressions, min/max/abs (selects)."""

from pybpfdsl import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, Packet, i32, xdp
from tests.ir.golden import packets


@xdp
def branches(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    port = tcp.dport
    if port < 1024:
        weight = 3
    elif port < 8000:
        weight = 2
    else:
        weight = 1
    spread = abs(i32(tcp.sport) - i32(port))
    bounded_weight = max(min(weight * 2, 5), 1)
    match port:
        case 22:
            return XDP_DROP
        case 80 | 443:
            return XDP_TX if bounded_weight > 4 else XDP_PASS
        case _ if spread > 60000:
            return XDP_ABORTED
    return XDP_PASS


CASES = [
    (packets.tcp(dport=22), XDP_DROP),
    (packets.tcp(dport=80), XDP_TX),
    (packets.tcp(dport=65535, sport=1), XDP_ABORTED),
    (packets.tcp(dport=5000), XDP_PASS),
    (packets.udp(), XDP_PASS),
]
