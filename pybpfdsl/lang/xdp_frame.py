"""The frame around an XDP packet, and how `adjust_head` / `adjust_tail` move the packet inside it.

The kernel gives an XDP program its packet inside a larger buffer: headroom before it, room after it.
`bpf_xdp_adjust_head(ctx, delta)` moves the packet's start by `delta` bytes (negative: the packet grows
at the front, into the headroom; positive: bytes are removed from the front), `bpf_xdp_adjust_tail`
moves its end. Each refuses (returns nonzero, nothing moves) a move that leaves fewer than 14 bytes (an
Ethernet header), that reaches into the `struct xdp_frame` the kernel keeps at the start of the
headroom, or that goes past the frame's end.

How much room there is depends on the driver; pure Python and the interpreters use the frame of
`BPF_PROG_TEST_RUN` (the kernel's own test runs, which the differential tests compare with), below. The
equivalence proof leaves the room unknown (any driver's). Bytes the start moves back over are what the
buffer held there (zeros in a fresh test-run frame, a packet's former bytes after it shrank); bytes the
end grows over are zeros (the kernel clears them).
"""

from __future__ import annotations

from typing import Final

__all__ = ["FRAME_END", "HEADROOM", "MIN_PACKET", "moved"]

XDP_PACKET_HEADROOM: Final = 256
"""Where BPF_PROG_TEST_RUN puts the packet in its buffer (the kernel's XDP_PACKET_HEADROOM)."""
XDP_FRAME_SIZE: Final = 40
"""The `struct xdp_frame` the kernel keeps at the buffer's start: adjust_head cannot move into it."""
HEADROOM: Final = XDP_PACKET_HEADROOM - XDP_FRAME_SIZE
"""How far before its original start the packet may begin (216 bytes)."""
FRAME_END: Final = 3520
"""How far after its original start the packet may end (a 4 KiB page less headroom and skb_shared_info)."""
MIN_PACKET: Final = 14
"""The shortest packet an adjust may leave: an Ethernet header."""

_I32 = 1 << 32


def as_int(delta: int) -> int:
    """`delta` as the helpers' C `int` (the low 32 bits, signed)."""
    raw = delta & (_I32 - 1)
    return raw - _I32 if raw >> 31 else raw


def moved(start: int, end: int, delta: int, head: bool) -> tuple[int, int] | None:
    """The packet's (start, end), counted from its original start, after adjusting its head (`head`) or
    its tail by `delta`; None when the kernel refuses."""
    delta = as_int(delta)
    if head:
        start += delta
    else:
        end += delta
    if start < -HEADROOM or end > FRAME_END or end - start < MIN_PACKET:
        return None
    return start, end
