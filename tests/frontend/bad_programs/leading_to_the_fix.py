"""Wrong programs whose messages say what to write instead (issue 16 §6): the hint leads to the fix.

Each function below is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

import time

from pybpfdsl import XDP_DROP, XDP_PASS, HashMap, Packet, u32, u64, xdp

counts = HashMap(u32, u64, max_entries=16)


@xdp
def wall_clock(pkt: Packet) -> int:
    t = time.time()  # error: time.time() cannot be called in a DSL function | hint: now_ns()
    return XDP_PASS


@xdp
def address_as_text(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is not None and ip4.src == "10.0.0.1":  # error: is a string | hint: `ip("10.0.0.1")`
        return XDP_DROP
    return XDP_PASS


@xdp
def payload_slice(pkt: Packet) -> int:
    head = pkt.payload[0:4]  # error: slices (`pkt.payload[0:4]`) are not supported | hint: pkt.payload.read(Header, 0)
    return XDP_PASS


@xdp
def tuple_key(pkt: Packet) -> int:
    n = counts.get((pkt.len, 1), 0)  # error: a key of counts cannot be a tuple | hint: declare a Struct key
    return XDP_PASS
