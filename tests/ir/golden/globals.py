"""Globals of each type: loads, stores, atomic adds (integer and float), a bool flag."""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, i32, u8, u64, xdp
from tests.ir.golden import packets

seen = Global(u64, 0)
level = Global(i32, -7)
enabled = Global(bool, True)
budget = Global(float, 2.5)
last_ttl = Global(u8, 0)


@xdp
def globals_(pkt: Packet) -> int:
    seen.value += 1
    budget.value -= 1.0
    level.value = level.value * 2 + 1
    ip4 = pkt.ipv4
    if ip4 is not None:
        last_ttl.value = ip4.ttl
    if budget.value < 0.0:
        enabled.value = False
    return XDP_PASS if enabled.value else XDP_DROP


CASES = [
    (packets.tcp(), XDP_PASS),
    (packets.runt(), XDP_PASS),
    (packets.tcp(), XDP_DROP),  # the budget went below zero: disabled
    (packets.tcp(), XDP_DROP),
]
