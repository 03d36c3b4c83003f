"""Programs that move the packet's start or end (issue 16 §3): `pkt.adjust_head(delta)` and
`pkt.adjust_tail(delta)`, after which every header is parsed afresh."""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Global, Packet, i32, u64, xdp

seen = Global(u64, 0)
"""A fingerprint of what the programs read after a move (so a wrong re-parse shows in the state)."""

IPPROTO_IPIP = 4
ETH_P_IP = 0x0800


@xdp
def ipip_decap(pkt: Packet) -> int:
    """IP-in-IP decapsulation: the outer IPv4 header removed, the Ethernet header rebuilt in front of the
    inner one. The last two bytes of the outer header become the new Ethernet type, so they are set to
    IPv4 before the move; the addresses are written after it."""
    outer = pkt.ipv4
    e = pkt.eth
    if outer is None or e is None or outer.proto != IPPROTO_IPIP or outer.ihl != 5:
        return XDP_PASS
    dst = e.dst
    src = e.src
    outer.dst = (outer.dst & 0xFFFF0000) | ETH_P_IP
    if not pkt.adjust_head(20):
        return XDP_DROP
    e = pkt.eth
    if e is None:
        return XDP_DROP
    e.dst = dst
    e.src = src
    inner = pkt.ipv4
    if inner is None:
        return XDP_DROP
    seen.value = seen.value * 31 + inner.src
    if pkt.udp is not None:
        seen.value = seen.value * 37 + pkt.udp.dport
    return XDP_TX


@xdp
def push_tag(pkt: Packet) -> int:
    """Grow the packet by 4 bytes at the front and write a new Ethernet header there (addresses shifted)."""
    if not pkt.adjust_head(-4):
        return XDP_DROP
    e = pkt.eth
    if e is None:
        return XDP_DROP
    e.dst = 0x0A0B0C0D0E0F
    seen.value = seen.value * 31 + e.type
    return XDP_TX


@xdp
def by_payload(pkt: Packet) -> int:
    """Move the start by a number the packet carries: any delta, refused ones included."""
    b = pkt.payload[0]
    if b is None:
        return XDP_PASS
    if pkt.adjust_head(i32(b) - 40):
        seen.value = seen.value * 31 + pkt.len
        return XDP_TX
    return XDP_DROP


@xdp
def trim(pkt: Packet) -> int:
    """Trim long packets by 10 bytes, grow short ones by 6 (zeros), refuse below an Ethernet header."""
    if pkt.len > 60:
        if not pkt.adjust_tail(-10):
            return XDP_DROP
    elif not pkt.adjust_tail(6):
        return XDP_DROP
    if pkt.udp is not None:
        seen.value = seen.value * 31 + pkt.udp.len
    return XDP_TX


@xdp
def shrink_to_nothing(pkt: Packet) -> int:
    """Moves the kernel refuses: fewer than 14 bytes left, past the headroom, past the frame's end."""
    a = pkt.adjust_head(i32(pkt.len) - 13)
    b = pkt.adjust_head(-300)
    c = pkt.adjust_tail(4000)
    if a or b or c:
        return XDP_DROP
    return XDP_PASS


PROGRAMS = (ipip_decap, push_tag, by_payload, trim, shrink_to_nothing)
