"""Kernel helpers (random numbers, the clock, the CPU) and `@inline` functions."""

from pybpfdsl import (
    XDP_DROP,
    XDP_PASS,
    Global,
    Packet,
    cpu_id,
    inline,
    now_ns,
    prandom_u32,
    randint,
    random,
    u32,
    u64,
    xdp,
)
from tests.ir.golden import packets

last_seen_ns = Global(u64, 0)
draws = Global(u32, 0)


@inline
def spread(x: u32, by: u32) -> u32:
    return (x * by) >> 4


@xdp
def helpers(pkt: Packet) -> int:
    last_seen_ns.value = now_ns()
    draws.value = spread(prandom_u32() % 100, 3) + cpu_id() + u32(randint(1, 6))
    return XDP_DROP if random() < 0.25 else XDP_PASS


CASES = [
    (packets.tcp(), None),
    (packets.udp(), None),
    (packets.runt(), None),
    (packets.tcp(dport=1), None),
]
"""The actions depend on the random numbers: the test compares the parsed IR with pure Python under one
seed instead."""
