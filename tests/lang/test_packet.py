"""The pure-Python packet model against scapy's own parsing of the same bytes."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Packet as ScapyPacket
from scapy.packet import Raw

from pybpfdsl.lang.headers import MAX_PACKET_OFFSET, TCP_ACK, TCP_SYN
from pybpfdsl.lang.packet import HeaderView, Packet, Payload, payload_position
from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import u8, u16, u32

MAC_A = "02:00:00:00:00:01"
MAC_B = "0a:1b:2c:3d:4e:5f"


def mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def ip4_int(addr: str) -> int:
    return int(ipaddress.IPv4Address(addr))


def parsed(p: ScapyPacket) -> tuple[Packet, ScapyPacket]:
    """Our model and scapy's re-parse of the same bytes (so computed fields are filled in)."""
    raw = bytes(p)
    return Packet(raw), Ether(raw)


def check_eth(view: HeaderView | None, ref: ScapyPacket) -> None:
    assert view is not None
    assert view.dst == mac_int(ref.dst)
    assert view.src == mac_int(ref.src)
    assert view.type == ref.type


def check_ipv4(view: HeaderView | None, ref: ScapyPacket) -> None:
    assert view is not None
    assert view.version == ref.version
    assert view.ihl == ref.ihl
    assert view.tos == ref.tos
    assert view.len == ref.len
    assert view.id == ref.id
    assert view.flags == int(ref.flags)
    assert view.frag == ref.frag
    assert view.ttl == ref.ttl
    assert view.proto == ref.proto
    assert view.chksum == ref.chksum
    assert view.src == ip4_int(ref.src)
    assert view.dst == ip4_int(ref.dst)


def check_tcp(view: HeaderView | None, ref: ScapyPacket) -> None:
    assert view is not None
    for name in ("sport", "dport", "seq", "ack", "dataofs", "window", "chksum", "urgptr"):
        assert getattr(view, name) == getattr(ref, name), name
    assert view.flags == int(ref.flags)


def check_udp(view: HeaderView | None, ref: ScapyPacket) -> None:
    assert view is not None
    for name in ("sport", "dport", "len", "chksum"):
        assert getattr(view, name) == getattr(ref, name), name


def test_ipv4_tcp_fields_match_scapy() -> None:
    p = (Ether(src=MAC_A, dst=MAC_B) / IP(src="10.1.2.3", dst="192.168.200.1", ttl=17, tos=0x2C,
                                           id=4242, flags="DF")
         / TCP(sport=40000, dport=443, seq=0xDEADBEEF, ack=12345, flags="SA", window=29200, urgptr=7)
         / Raw(b"hello"))
    pkt, ref = parsed(p)
    check_eth(pkt.eth, ref[Ether])
    check_ipv4(pkt.ipv4, ref[IP])
    check_tcp(pkt.tcp, ref[TCP])
    assert pkt.ipv6 is None and pkt.udp is None
    assert pkt.tcp is not None and pkt.tcp.flags == TCP_SYN | TCP_ACK
    assert pkt.ipv4 is not None and pkt.ipv4.flags == 2  # DF
    assert (pkt.l3_offset, pkt.l4_offset, pkt.payload_offset) == (14, 34, 54)
    assert pkt.len == len(bytes(p)) == len(pkt)
    assert bytes(pkt.payload) == b"hello"
    assert [pkt.payload[i] for i in range(6)] == [*b"hello", None]


def test_ipv4_udp_fields_match_scapy() -> None:
    p = Ether() / IP(src="1.2.3.4", dst="5.6.7.8") / UDP(sport=53, dport=5353) / Raw(b"\x01\x02\x03")
    pkt, ref = parsed(p)
    check_ipv4(pkt.ipv4, ref[IP])
    check_udp(pkt.udp, ref[UDP])
    assert pkt.tcp is None
    assert (pkt.l4_offset, pkt.payload_offset) == (34, 42)
    assert pkt.payload[0] == 1 and pkt.payload[2] == 3 and pkt.payload[3] is None


def test_ipv6_tcp_and_udp_fields_match_scapy() -> None:
    src, dst = "2001:db8::1", "fe80::1234:5678:9abc:def0"
    p = Ether() / IPv6(src=src, dst=dst, tc=0xB8, fl=0xABCDE, hlim=3) / UDP(sport=1, dport=2) / Raw(b"x")
    pkt, ref = parsed(p)
    v6 = pkt.ipv6
    assert v6 is not None and pkt.ipv4 is None
    r6 = ref[IPv6]
    assert (v6.version, v6.tc, v6.fl, v6.plen, v6.nh, v6.hlim) == (6, r6.tc, r6.fl, r6.plen, r6.nh, r6.hlim)
    assert (v6.tc, v6.fl) == (0xB8, 0xABCDE)
    s, d = int(ipaddress.IPv6Address(src)), int(ipaddress.IPv6Address(dst))
    assert (v6.src_hi, v6.src_lo) == (s >> 64, s & (2**64 - 1))
    assert (v6.dst_hi, v6.dst_lo) == (d >> 64, d & (2**64 - 1))
    check_udp(pkt.udp, ref[UDP])
    assert (pkt.l3_offset, pkt.l4_offset, pkt.payload_offset) == (14, 54, 62)

    pkt2, ref2 = parsed(Ether() / IPv6() / TCP(dport=22, flags="S"))
    check_tcp(pkt2.tcp, ref2[TCP])
    assert pkt2.payload_offset == 74 and len(pkt2.payload) == 0


def test_ipv6_extension_headers_are_not_followed() -> None:
    pkt, _ = parsed(Ether() / IPv6() / IPv6ExtHdrHopByHop() / TCP())
    assert pkt.ipv6 is not None and pkt.ipv6.nh == 0
    assert pkt.tcp is None and pkt.l4_offset is None
    assert pkt.payload_offset == 54  # right after the fixed IPv6 header


def test_ipv4_options_shift_l4_and_payload() -> None:
    p = Ether() / IP(options=b"\x01\x01\x01\x00" * 2) / TCP(options=[("MSS", 1460), ("NOP", None),
                                                                     ("WScale", 7)]) / Raw(b"AB")
    pkt, ref = parsed(p)
    assert ref[IP].ihl == 7
    check_ipv4(pkt.ipv4, ref[IP])
    check_tcp(pkt.tcp, ref[TCP])
    assert pkt.l4_offset == 14 + 28
    assert pkt.tcp is not None and pkt.tcp.dataofs == ref[TCP].dataofs > 5
    assert pkt.payload_offset == 14 + 28 + ref[TCP].dataofs * 4
    assert bytes(pkt.payload) == b"AB"


def test_later_fragments_have_no_l4() -> None:
    first, later = (Ether() / IP(flags="MF", frag=0) / UDP() / Raw(b"z" * 8),
                    Ether() / IP(frag=3, proto=17) / Raw(b"\x00" * 16))
    pkt, ref = parsed(first)
    assert pkt.udp is not None and pkt.ipv4 is not None and pkt.ipv4.flags == int(ref[IP].flags) == 1
    pkt, ref = parsed(later)
    assert pkt.ipv4 is not None and pkt.ipv4.frag == ref[IP].frag == 3
    assert pkt.udp is None and pkt.tcp is None and pkt.l4_offset is None
    assert pkt.payload_offset == 34  # after the IPv4 header: the fragment's data


def test_other_l4_protocol_payload_follows_ipv4() -> None:
    pkt, _ = parsed(Ether() / IP(options=b"\x01\x01\x01\x00") / ICMP())
    assert pkt.ipv4 is not None and pkt.tcp is None and pkt.udp is None
    assert pkt.payload_offset == 14 + 24
    assert pkt.payload[0] == 8  # ICMP echo request type


def test_vlan_tagged_frame_has_eth_only() -> None:
    pkt, _ = parsed(Ether() / Dot1Q(vlan=5) / IP() / TCP())
    assert pkt.eth is not None and pkt.eth.type == 0x8100
    assert pkt.ipv4 is None and pkt.tcp is None
    assert (pkt.l3_offset, pkt.l4_offset, pkt.payload_offset) == (None, None, 14)


def test_non_ip_ethertype() -> None:
    pkt = Packet(bytes(Ether(type=0x0806) / Raw(b"\x00" * 28)))
    assert pkt.eth is not None and pkt.ipv4 is None and pkt.ipv6 is None
    assert pkt.payload_offset == 14


@pytest.mark.parametrize("cut", range(80))
def test_truncated_tcp_packet(cut: int) -> None:
    full = bytes(Ether() / IP(options=b"\x01\x01\x01\x00") / TCP(options=[("NOP", None)] * 4) / Raw(b"p"))
    # ihl 6 (24 bytes), dataofs 6 (24 bytes): eth 0-14, ip 14-38, tcp 38-62, payload 62
    pkt = Packet(full[:cut])
    assert (pkt.eth is not None) == (cut >= 14)
    assert (pkt.ipv4 is not None) == (cut >= 34)
    assert (pkt.tcp is not None) == (cut >= 38 + 20)  # only the fixed part is required
    if cut < 14:
        expected = 0
    elif cut < 34:
        expected = 14
    elif cut < 58:
        expected = 38
    else:
        expected = 62
    assert pkt.payload_offset == expected
    assert pkt.payload[0] == (full[expected] if expected < cut else None)
    assert len(pkt.payload) == max(0, min(cut, len(full)) - expected)


def test_truncated_udp_and_ipv6() -> None:
    udp = bytes(Ether() / IP() / UDP())
    assert Packet(udp[:41]).udp is None and Packet(udp[:42]).udp is not None
    v6 = bytes(Ether() / IPv6() / UDP())
    assert Packet(v6[:53]).ipv6 is None and Packet(v6[:54]).ipv6 is not None
    assert Packet(v6[:61]).udp is None and Packet(v6[:62]).udp is not None


def raw_ipv4(ihl: int, proto: int = 6, frag: int = 0) -> bytes:
    ip = bytearray(bytes(IP(proto=proto)))
    ip[0] = 0x40 | ihl
    struct.pack_into(">H", ip, 6, frag)
    return bytes(Ether(type=0x0800)) + bytes(ip)


def test_bad_ihl_means_no_l4_and_payload_after_20_bytes() -> None:
    data = raw_ipv4(ihl=3) + bytes(TCP())
    pkt = Packet(data)
    assert pkt.ipv4 is not None and pkt.ipv4.ihl == 3
    assert pkt.tcp is None and pkt.l4_offset is None
    assert pkt.payload_offset == 34


def test_bad_tcp_dataofs_means_no_tcp() -> None:
    tcp = bytearray(bytes(TCP()))
    tcp[12] = 0x40  # dataofs 4
    pkt = Packet(raw_ipv4(ihl=5) + bytes(tcp))
    assert pkt.ipv4 is not None and pkt.tcp is None and pkt.l4_offset is None
    assert pkt.payload_offset == 34


def test_tcp_options_beyond_packet_end() -> None:
    tcp = bytearray(bytes(TCP()))
    tcp[12] = 0xF0  # dataofs 15: 60 bytes claimed, 20 present
    pkt = Packet(raw_ipv4(ihl=5) + bytes(tcp))
    assert pkt.tcp is not None and pkt.tcp.dataofs == 15
    assert pkt.payload_offset == 34 + 60
    assert len(pkt.payload) == 0 and pkt.payload[0] is None


class Pair(Struct):
    kind: u8
    port: u16
    addr: u32


def test_payload_read_struct_big_endian() -> None:
    body = bytes([0xAA, 0x07, 0x00, 0x50, 0xC0, 0xA8, 0x00, 0x01, 0xFF])
    pkt = Packet(bytes(Ether() / IP() / UDP() / Raw(body)))
    rec = pkt.payload.read(Pair, 0)
    # Pair's layout: kind at 0, port at 2 (aligned), addr at 4; 8 bytes.
    assert rec == Pair(kind=0xAA, port=0x0050, addr=0xC0A80001)
    assert pkt.payload.read(Pair, 1) == Pair.from_bytes(body[1:9], "big")
    assert pkt.payload.read(Pair, 2) is None  # would end one byte past the packet
    assert pkt.payload.read(Pair, -1) is None  # counted from the end, as in Python: its 8 bytes are not there
    assert pkt.payload.read(Pair, -9) == rec
    assert pkt.payload.read(Pair, -8) == Pair.from_bytes(body[1:9], "big")
    assert pkt.payload.read(Pair, -10) is None  # would start before the payload
    assert pkt.payload.read(Pair, 10**9) is None
    assert pkt.payload.read(Pair) == rec


def test_payload_index_edges() -> None:
    pkt = Packet(bytes(Ether() / IP() / UDP() / Raw(b"\x10\x20")))
    assert (pkt.payload[-1], pkt.payload[-2]) == (0x20, 0x10)  # from the end, as Python counts
    assert pkt.payload[-3] is None  # before the payload's start: None, as past its end
    assert pkt.payload[-(10**30)] is None
    assert pkt.payload[10**30] is None
    assert pkt.payload[1] == 0x20
    assert pkt.payload.offset == 42
    with pytest.raises(TypeError):
        pkt.payload["0"]  # type: ignore[index]


def test_short_and_empty_packets() -> None:
    empty = Packet(b"")
    assert empty.eth is None and empty.payload_offset == 0 and empty.len == 0
    assert empty.payload[0] is None
    short = Packet(b"\x01\x02\x03")
    assert short.eth is None and short.payload[2] == 3 and short.payload[3] is None
    assert isinstance(short.payload, Payload)


def test_from_any() -> None:
    p = Ether() / IP() / TCP()
    raw = bytes(p)
    for source in (raw, bytearray(raw), memoryview(raw), p):
        assert Packet.from_any(source).data == raw
    pkt = Packet(raw)
    assert Packet.from_any(pkt) is pkt
    with pytest.raises(TypeError):
        Packet.from_any(42)  # type: ignore[arg-type]
    assert bytes(pkt) == raw
    assert pkt == Packet(bytearray(raw)) and hash(pkt) == hash(Packet(raw))


def test_header_view_refuses_parsing_fields_and_reports_unknown_fields() -> None:
    pkt = Packet(bytes(Ether() / IP() / TCP()))
    assert pkt.ipv4 is not None
    with pytest.raises(AttributeError, match="no field 'sport'"):
        _ = pkt.ipv4.sport
    with pytest.raises(AttributeError, match="decides where the headers are"):
        pkt.ipv4.proto = 17
    assert pkt.ipv4.as_dict()["ttl"] == 64
    assert "ipv4" in repr(pkt.ipv4) and "tcp" in repr(pkt)
    assert pkt.ipv4 == Packet(bytes(Ether() / IP() / TCP())).ipv4


@settings(max_examples=300, deadline=None)
@given(
    sport=st.integers(0, 0xFFFF), dport=st.integers(0, 0xFFFF), seq=st.integers(0, 2**32 - 1),
    flags=st.integers(0, 0x1FF), ip_opts=st.integers(0, 10), tcp_opts=st.integers(0, 10),
    payload=st.binary(max_size=40), cut=st.integers(0, 200), udp=st.booleans(),
)
def test_random_packets_agree_with_scapy(sport: int, dport: int, seq: int, flags: int, ip_opts: int,
                                         tcp_opts: int, payload: bytes, cut: int, udp: bool) -> None:
    l4 = UDP(sport=sport, dport=dport) if udp else TCP(sport=sport, dport=dport, seq=seq, flags=flags,
                                                       options=[("NOP", None)] * (4 * tcp_opts))
    raw = bytes(Ether() / IP(options=b"\x01" * (4 * ip_opts)) / l4 / Raw(payload))
    data = raw[:cut]
    pkt = Packet(data)
    ihl = 5 + ip_opts
    l4_off = 14 + 4 * ihl
    l4_len = 8 if udp else 20
    if len(data) >= l4_off + l4_len:
        ref = Ether(data)
        view = pkt.udp if udp else pkt.tcp
        assert view is not None
        (check_udp if udp else check_tcp)(view, ref[UDP] if udp else ref[TCP])
        check_ipv4(pkt.ipv4, ref[IP])
        hdr = 8 if udp else 4 * (5 + tcp_opts)
        assert pkt.payload_offset == l4_off + hdr
        assert bytes(pkt.payload) == raw[l4_off + hdr:cut]
    else:
        assert pkt.tcp is None and pkt.udp is None
        assert pkt.payload_offset == (l4_off if len(data) >= 34 else 14 if len(data) >= 14 else 0)


def test_payload_position_is_pythons_index_within_the_verifiers_reach() -> None:
    # A payload of 10 bytes from offset 42 in a 52-byte packet.
    assert [payload_position(42, 52, i) for i in (0, 9, 10, -1, -10, -11)] == [42, 51, None, 51, 42, None]
    assert payload_position(42, 52, -4, 4) == 48 and payload_position(42, 52, -3, 4) is None
    assert payload_position(60, 52, -1) is None  # the headers claim more than the packet holds
    # Every byte at most MAX_PACKET_OFFSET, what the kernel verifier can bound.
    big = MAX_PACKET_OFFSET + 100
    assert payload_position(0, big, MAX_PACKET_OFFSET) == MAX_PACKET_OFFSET
    assert payload_position(0, big, MAX_PACKET_OFFSET - 1, 2) == MAX_PACKET_OFFSET - 1
    assert payload_position(0, big, MAX_PACKET_OFFSET, 2) is None
    assert payload_position(0, big, -(big - MAX_PACKET_OFFSET)) == MAX_PACKET_OFFSET
    assert payload_position(0, big, -(big - MAX_PACKET_OFFSET) + 1) is None
    assert payload_position(0, big, -1) is None


def test_payload_writes_count_from_the_end() -> None:
    frame = bytes(Ether() / IP() / UDP(chksum=0) / Raw(bytes(8)))
    pkt = Packet(frame)
    pkt.payload[-1] = 0xAB
    pkt.payload[-9] = 0xCD  # before the payload: nothing written
    pkt.payload.write(-8, Pair(kind=1, port=2, addr=3))
    pkt.payload.write(-7, Pair(kind=9, port=9, addr=9))  # would end past the packet: nothing written
    assert bytes(pkt.payload) == bytes([1, 0, 0, 2, 0, 0, 0, 3])
    pkt.payload[-1] = 0xAB
    assert bytes(pkt.payload)[-1] == 0xAB and pkt.data[:42] == frame[:42]
