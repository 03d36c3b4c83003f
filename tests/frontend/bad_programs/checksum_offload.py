"""Wrong programs: a `CHECKSUM_OFFLOAD` that names no header with a checksum.

Each `@xdp` function is deliberately wrong; the line marked `# error: ...` is where the frontend must
report it (see tests/frontend/test_bad_input.py).
"""
# ruff: noqa

from pybpfdsl import XDP_PASS, XDP_TX, Packet, xdp

CHECKSUM_OFFLOAD = ("ip",)


@xdp
def offload_of_an_unknown_header(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.ttl = 3  # error: CHECKSUM_OFFLOAD must be a tuple of header names | hint: at module level
    return XDP_TX
