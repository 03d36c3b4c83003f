"""print: constant text and numbers in the format, values sign- or zero-extended to 64 bits."""

from pybpfdsl import XDP_PASS, Packet, i32, xdp
from tests.ir.golden import packets


@xdp
def printing(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is not None:
        print("ttl", ip4.ttl, "less 100:", i32(ip4.ttl) - 100, 5)
    return XDP_PASS


CASES = [
    (packets.udp(), XDP_PASS),
    (packets.runt(), XDP_PASS),
]
