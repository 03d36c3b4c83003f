"""A ring buffer: records built from header fields, the write's result used."""

from pybpfdsl import TCP_SYN, XDP_PASS, XDP_TX, Global, Packet, RingBuf, Struct, u16, u32, u64, xdp
from tests.ir.golden import packets


class Event(Struct):
    addr: u32
    port: u16
    size: u16


events = RingBuf(Event, 64 * 1024)
lost = Global(u64, 0)


@xdp
def ringbuf(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    tcp = pkt.tcp
    if ip4 is None or tcp is None or tcp.flags & TCP_SYN == 0:
        return XDP_PASS
    if not events.output(Event(ip4.src, tcp.dport, u16(pkt.len))):
        lost.value += 1
        return XDP_TX
    return XDP_PASS


CASES = [
    (packets.tcp(flags="S"), XDP_PASS),
    (packets.tcp(flags="A"), XDP_PASS),
    (packets.udp(), XDP_PASS),
]
