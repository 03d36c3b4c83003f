"""Q32.32 floats: constants, add/sub/mul, division by an integer and by a constant, int / int, compares."""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, i32, u64, xdp
from tests.ir.golden import packets

ratio = Global(float, 0.5)
scaled_total = Global(u64, 0)


@xdp
def fixed_point(pkt: Packet) -> int:
    half = ratio.value
    size = float(pkt.len)
    scaled = size * half * 0.75 - 1.5
    per = scaled / 3
    tenth = per / 10.0
    share = pkt.len / 7
    ratio.value = half * 0.999 + 0.0001
    scaled_total.value += u64(tenth * 1000.0) + u64(share)
    if scaled >= 30.25 and i32(tenth) < 2:
        return XDP_DROP
    return XDP_PASS


CASES = [
    (packets.tcp(), XDP_PASS),
    (packets.runt(), XDP_PASS),
    (packets.tcp(payload=b"x" * 60), XDP_DROP),
]
