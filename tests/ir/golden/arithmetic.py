"""Integer arithmetic: every binary operator, promotion and conversion, signed and unsigned compares."""

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Global, Packet, i8, i32, u8, u16, u32, u64, xdp
from tests.ir.golden import packets

mixed = Global(u64, 0)


@xdp
def arithmetic(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    a = ip4.src
    b: u16 = ip4.id
    c: u8 = ip4.ttl
    x = a * 2654435761 + b - c
    q = x // b
    r = x % c
    s = (c << 28) >> 27
    t = (a & 0xFF00) | (a ^ 0x0F)
    v = i8(c)
    w = i32(v) * -3
    mixed.value = u64(x) ^ u64(q) ^ u64(r) ^ u64(s) ^ u64(t)
    if w < -100:
        return XDP_TX
    return XDP_DROP if u32(pkt.len) > 60 else XDP_PASS


CASES = [
    (packets.tcp(ttl=64), XDP_TX),
    (packets.tcp(ttl=20), XDP_PASS),
    (packets.tcp(ttl=200, payload=b"x" * 20), XDP_DROP),
    (packets.runt(), XDP_PASS),
]
