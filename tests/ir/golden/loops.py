"""Loops: `for` over a range with break, over a constant tuple (unrolled), `while bounded` with continue."""

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Packet, bounded, u32, xdp
from tests.ir.golden import packets

PORTS = (22, 23, 3389)


@xdp
def loops(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is not None:
        for port in PORTS:
            if tcp.dport == port:
                return XDP_DROP
    total: u32 = 0
    for i in range(8):
        b = pkt.payload[i]
        if b is None:
            break
        total += b
    zeros: u32 = 0
    j: u32 = 0
    while bounded(j < pkt.len, 16):
        j += 1
        b = pkt.payload[j]
        if b is None or b != 0:
            continue
        zeros += 1
    if zeros > 2:
        return XDP_TX
    return XDP_DROP if total > 1000 else XDP_PASS


CASES = [
    (packets.tcp(dport=23), XDP_DROP),
    (packets.tcp(dport=80, payload=b"\xff" * 8), XDP_DROP),
    (packets.udp(payload=b"\x00" * 8), XDP_TX),
    (packets.udp(payload=b"abc"), XDP_PASS),
]
