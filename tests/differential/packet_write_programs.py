"""Programs that write the packet: header fields (with the checksums they cover) and payload bytes."""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Packet, Struct, inline, ip, u8, u16, u32, xdp


class Rewrite(Struct):
    """New field values, read from the payload (so generated packets choose them)."""

    ttl: u8
    tos: u8
    ident: u16
    src: u32
    dst: u32
    sport: u16
    dport: u16
    seq: u32


@xdp
def swap_macs(pkt: Packet) -> int:
    e = pkt.eth
    if e is None:
        return XDP_PASS
    e.src, e.dst = e.dst, e.src
    return XDP_TX


@xdp
def reflect(pkt: Packet) -> int:
    """An echo reflector: addresses and ports swapped (which keeps every checksum), the TTL reset."""
    e = pkt.eth
    ip4 = pkt.ipv4
    udp = pkt.udp
    if e is None or ip4 is None or udp is None:
        return XDP_PASS
    e.src, e.dst = e.dst, e.src
    ip4.src, ip4.dst = ip4.dst, ip4.src
    udp.sport, udp.dport = udp.dport, udp.sport
    ip4.ttl = 64
    return XDP_TX


@xdp
def swap_addresses(pkt: Packet) -> int:
    """Addresses and ports moved among their own fields: no checksum is touched."""
    ip4 = pkt.ipv4
    tcp = pkt.tcp
    if ip4 is None or tcp is None:
        return XDP_PASS
    ip4.src, ip4.dst = ip4.dst, ip4.src
    tcp.sport, tcp.dport = tcp.dport, tcp.sport
    return XDP_TX


@xdp
def swap_ttl_and_tos(pkt: Packet) -> int:
    """Two one-byte fields at different places in their words: a swap that changes the IPv4 sum."""
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.ttl, ip4.tos = ip4.tos, ip4.ttl
    return XDP_TX


@xdp
def decrement_ttl(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    if ip4.ttl <= 1:
        return XDP_DROP
    ip4.ttl -= 1
    return XDP_TX


@xdp
def redirect_port(pkt: Packet) -> int:
    u = pkt.udp
    if u is None:
        return XDP_PASS
    u.dport = 8080
    return XDP_TX


@xdp
def rewrite_destination(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.dst = ip("10.0.0.9")
    return XDP_TX


@xdp
def nat_from_payload(pkt: Packet) -> int:
    """Every covered field written from payload bytes, twice for the TTL (each write sees the last)."""
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    r = pkt.payload.read(Rewrite, 0)
    if r is None:
        return XDP_PASS
    ip4.ttl = r.ttl
    ip4.tos = r.tos
    ip4.id = r.ident
    ip4.src = r.src
    ip4.dst = r.dst
    ip4.ttl += 3
    t = pkt.tcp
    if t is not None:
        t.sport = r.sport
        t.dport = r.dport
        t.seq = r.seq
        t.flags |= 0x10
    u = pkt.udp
    if u is not None:
        u.sport = r.sport
        u.dport = r.dport
    return XDP_TX


@xdp
def ipv6_rewrite(pkt: Packet) -> int:
    ip6 = pkt.ipv6
    if ip6 is None:
        return XDP_PASS
    ip6.hlim -= 1
    ip6.dst_lo = ip6.src_lo ^ 0xFF
    return XDP_TX


@xdp
def mark_payload(pkt: Packet) -> int:
    pl = pkt.payload
    first = pl[0]
    if first is None:
        return XDP_PASS
    pl[0] = first ^ 0xFF
    pl[3] = 7
    return XDP_TX


@xdp
def read_after_write(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    ip4.ttl = 9
    ip4.ttl += 1
    return XDP_TX if ip4.ttl == 10 else XDP_DROP


@inline
def retarget(pkt: Packet, port: u16) -> None:
    """Writes through a packet passed to a helper: the helper's address write needs the TCP/UDP parse."""
    ip4 = pkt.ipv4
    if ip4 is not None:
        ip4.src = ip("192.168.7.1")
        t = pkt.tcp
        if t is not None:
            t.dport = port


@xdp
def write_in_helper(pkt: Packet) -> int:
    retarget(pkt, 8443)
    for i in range(3):
        pkt.payload[i] = i
    return XDP_TX


class Reply(Struct):
    magic: u16
    code: u8
    count: u32


@xdp
def write_record(pkt: Packet) -> int:
    """A record written at an odd and at an even offset (each byte's half of its checksum word differs)."""
    pl = pkt.payload
    first = pl[0]
    if first is None:
        return XDP_PASS
    pkt.payload.write(1, Reply(magic=0xBEEF, code=first, count=0x01020304))
    pl.write(u32(first) & 7, Reply(magic=0x1234, code=7, count=pkt.len))
    return XDP_TX


ALL = [swap_macs, reflect, swap_addresses, swap_ttl_and_tos, decrement_ttl, redirect_port, rewrite_destination,
       nat_from_payload, ipv6_rewrite,
       mark_payload, read_after_write, write_in_helper, write_record]

