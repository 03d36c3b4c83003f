"""Programs that each name a different set of headers, so each gets a different parse tree
(`frontend/emit/packet_parse.py` computes only what a program uses). Each folds what it saw (which
headers are present, their fields, where the payload starts) into `seen`, so any difference in presence
or in an offset shows up in the state, and returns an action that says which headers were present."""

from __future__ import annotations

from pybpfdsl import XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, Global, Packet, Struct, u8, u16, u64, xdp

seen = Global(u64, 0)
"""A running fingerprint of every field the programs read (mixed so order and value both count)."""


class Word(Struct):
    hi: u8
    lo: u16


@xdp
def eth_only(pkt: Packet) -> int:
    e = pkt.eth
    if e is None:
        return XDP_ABORTED
    seen.value = seen.value * 31 + e.type + (e.src & 0xFF)
    return XDP_PASS


@xdp
def ipv4_only(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    seen.value = seen.value * 31 + ip4.src + ip4.ihl * 7 + ip4.frag + ip4.proto
    return XDP_DROP


@xdp
def ipv6_only(pkt: Packet) -> int:
    ip6 = pkt.ipv6
    if ip6 is None:
        return XDP_PASS
    seen.value = seen.value * 31 + ip6.nh + ip6.src_lo + ip6.dst_hi + ip6.hlim
    return XDP_DROP


@xdp
def both_l3(pkt: Packet) -> int:
    if pkt.ipv4 is not None:
        seen.value = seen.value * 31 + pkt.ipv4.dst
        return XDP_DROP
    if pkt.ipv6 is not None:
        seen.value = seen.value * 37 + pkt.ipv6.dst_lo
        return XDP_TX
    return XDP_PASS


@xdp
def tcp_only(pkt: Packet) -> int:
    t = pkt.tcp
    if t is None:
        return XDP_PASS
    seen.value = seen.value * 31 + t.sport * 65536 + t.dport + t.dataofs + t.flags
    return XDP_DROP


@xdp
def udp_only(pkt: Packet) -> int:
    u = pkt.udp
    if u is None:
        return XDP_PASS
    seen.value = seen.value * 31 + u.sport * 65536 + u.dport + u.len
    return XDP_DROP


@xdp
def tcp_or_udp(pkt: Packet) -> int:
    if pkt.tcp is not None:
        seen.value = seen.value * 31 + pkt.tcp.dport
        return XDP_DROP
    if pkt.udp is not None:
        seen.value = seen.value * 37 + pkt.udp.dport
        return XDP_TX
    return XDP_PASS


@xdp
def v6_and_tcp(pkt: Packet) -> int:
    if pkt.ipv6 is None:
        return XDP_PASS
    seen.value = seen.value * 31 + pkt.ipv6.hlim
    if pkt.tcp is None:
        return XDP_TX
    seen.value = seen.value * 37 + pkt.tcp.window
    return XDP_DROP


@xdp
def v4_and_udp(pkt: Packet) -> int:
    if pkt.udp is None:
        return XDP_PASS
    if pkt.ipv4 is not None:
        seen.value = seen.value * 31 + pkt.ipv4.ttl + pkt.udp.chksum
        return XDP_DROP
    seen.value = seen.value * 37 + pkt.udp.chksum
    return XDP_TX


@xdp
def payload_start(pkt: Packet) -> int:
    first = pkt.payload[0]
    w = pkt.payload.read(Word, 1)
    seen.value = seen.value * 31 + pkt.len
    if first is not None:
        seen.value = seen.value * 37 + first
    if w is not None:
        seen.value = seen.value * 41 + w.hi + w.lo
        return XDP_DROP
    return XDP_PASS


@xdp
def everything(pkt: Packet) -> int:
    action = XDP_PASS
    if pkt.eth is not None:
        seen.value = seen.value * 3 + 1
    if pkt.ipv4 is not None:
        seen.value = seen.value * 5 + pkt.ipv4.id
        action = XDP_DROP
    if pkt.ipv6 is not None:
        seen.value = seen.value * 7 + pkt.ipv6.plen
        action = XDP_TX
    if pkt.tcp is not None:
        seen.value = seen.value * 11 + pkt.tcp.seq
    if pkt.udp is not None:
        seen.value = seen.value * 13 + pkt.udp.len
    b = pkt.payload[2]
    if b is not None:
        seen.value = seen.value * 17 + b
    return action


PROGRAMS = (eth_only, ipv4_only, ipv6_only, both_l3, tcp_only, udp_only, tcp_or_udp, v6_and_tcp, v4_and_udp,
            payload_start, everything)
