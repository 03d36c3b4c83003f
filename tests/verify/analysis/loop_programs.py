"""The payload-summing loop of issue 13 at several bounds: the kernel accepts it up to some bound and
then refuses it as too complex ("BPF program is too large. Processed 1000001 insn"). The same body at
each bound, so the bound alone decides; test_unsound_accepts.py holds our verdicts against the kernel's.
"""
# ruff: noqa

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, u32, xdp


@xdp
def sum_payload_16(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(16):
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def sum_payload_20(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(20):  # range(16) and below: the backend unrolls it (no loop left)
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def sum_payload_32(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(32):
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def sum_payload_48(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(48):
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def sum_payload_64(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(64):  # the program: the kernel refused it until 73fe524 (375,435 instructions since)
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def sum_payload_128(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(128):  # the kernel loads it since 4eacaf4..5d1a5f4 (742,908 instructions; range(96) 803,303 before)
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def sum_payload_256(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(256):  # the kernel stops at 1,000,001 instructions
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def sum_payload_5000(pkt: Packet) -> int:
    total: u32 = 0
    for i in range(5000):  # took minutes to verify before the kernel-work estimate stopped early
        b = pkt.payload[i]
        if b is not None:
            total += b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def two_branches_192(pkt: Packet) -> int:
    """Two splits per iteration; the xor keeps the sum's ranges from telling many states apart, so
    the kernel gets further than with the plain sum. It refused 128 iterations until the one-tree header
    parse (5674009) and loads them since (966,630 instructions); it refuses 192."""
    total: u32 = 0
    for i in range(192):
        b = pkt.payload[i]
        if b is not None:
            if b > 100:
                total += b
            else:
                total ^= b
    return XDP_DROP if total == 7 else XDP_PASS


@xdp
def nested_192(pkt: Packet) -> int:
    """48 x 4 iterations (LLVM unrolls the inner loop: four bounds checks per outer iteration). At 32 x 4
    the kernel refused it until 90e9906 and loads it since (759,961 instructions)."""
    total: u32 = 0
    for i in range(48):
        for j in range(4):
            b = pkt.payload[i * 4 + j]
            if b is not None:
                total += b
    return XDP_DROP if total == 7 else XDP_PASS


OTHER_SHAPES = {"two_branches_192": two_branches_192, "nested_192": nested_192}

BY_BOUND = {16: sum_payload_16, 20: sum_payload_20, 32: sum_payload_32, 48: sum_payload_48, 64: sum_payload_64,
            128: sum_payload_128, 256: sum_payload_256, 5000: sum_payload_5000}
