"""Bad programs: `likely` / `unlikely` outside a condition, or with other than one condition.

Markers: see tests/frontend/test_bad_input.py.
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, likely, unlikely, u64, xdp

hits = Global(u64, 0)


@xdp
def likely_as_a_value(pkt: Packet) -> int:
    big = likely(pkt.len > 100)  # error: likely() can only be used as a condition | hint: `if likely(pkt.len > 100):`
    return XDP_DROP if big else XDP_PASS


@xdp
def unlikely_returned(pkt: Packet) -> int:
    return unlikely(pkt.len > 100)  # error: unlikely() can only be used as a condition | hint: a if unlikely(pkt.len > 100) else b


@xdp
def likely_compared(pkt: Packet) -> int:
    if likely(pkt.len > 100) == True:  # error: likely() can only be used as a condition
        return XDP_DROP
    return XDP_PASS


@xdp
def likely_of_two(pkt: Packet) -> int:
    if likely(pkt.len > 100, pkt.len < 200):  # error: likely() takes one condition | hint: if likely(condition):
        return XDP_DROP
    return XDP_PASS


@xdp
def unlikely_of_nothing(pkt: Packet) -> int:
    if unlikely():  # error: unlikely() takes one condition
        return XDP_DROP
    return XDP_PASS


@xdp
def likely_of_a_maybe(pkt: Packet) -> int:
    first = pkt.payload[0]
    if likely(first):  # error: is ambiguous | hint: first is not None
        return XDP_DROP
    return XDP_PASS


@xdp
def unlikely_of_the_packet(pkt: Packet) -> int:
    if pkt.len > 60 and unlikely(pkt):  # error: cannot be used as a condition
        return XDP_DROP
    return XDP_PASS
