"""A routing decision: fib_lookup's record read field by field (no routes scripted: not forwarded)."""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u32, xdp
from pybpfdsl.lang.builtins import fib_lookup
from tests.ir.golden import packets

status = Global(u32, 0)


@xdp
def fib(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_DROP
    hop = fib_lookup(ip4.dst, 1)
    status.value = hop.status
    if hop.status == 0 and hop.dmac != 0:
        return XDP_DROP
    return XDP_PASS


CASES = [
    (packets.udp(), XDP_PASS),
    (packets.runt(), XDP_DROP),
]
