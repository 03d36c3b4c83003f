"""Hypothesis strategies for packets: well-formed Ethernet/IPv4/IPv6/TCP/UDP frames with random fields,
IPv4 options and fragments, truncations at any byte, and garbage. Built with `struct` (fast) so that
thousands of packets per test stay cheap; every frame has at least the 14 bytes the kernel's test run needs.
"""

from __future__ import annotations

import struct

from hypothesis import strategies as st

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
MIN_FRAME = 14

ports = st.one_of(st.sampled_from([0, 22, 23, 53, 80, 443, 2323, 8080, 65535]), st.integers(0, 65535))
ipv4_addrs = st.one_of(st.sampled_from([0x0A000001, 0x0A000002, 0xC0A80001, 0x7F000001]), st.integers(0, 2**32 - 1))
payloads = st.binary(min_size=0, max_size=64)


def ethernet(ethertype: int, body: bytes, dst: bytes = b"\x02" * 6, src: bytes = b"\x04" * 6) -> bytes:
    return dst + src + struct.pack("!H", ethertype) + body


@st.composite
def udp_header(draw: st.DrawFn, payload: bytes) -> bytes:
    return struct.pack("!HHHH", draw(ports), draw(ports), 8 + len(payload), draw(st.integers(0, 0xFFFF))) + payload


@st.composite
def tcp_header(draw: st.DrawFn, payload: bytes) -> bytes:
    dataofs = draw(st.sampled_from([5, 5, 5, 6, 8, 4, 15]))
    options = bytes(max(0, dataofs - 5) * 4)
    flags = draw(st.integers(0, 0x1FF))
    return struct.pack("!HHIIHHHH", draw(ports), draw(ports), draw(st.integers(0, 2**32 - 1)),
                       draw(st.integers(0, 2**32 - 1)), (dataofs << 12) | flags,
                       draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF)), 0) + options + payload


@st.composite
def ipv4_packet(draw: st.DrawFn) -> bytes:
    payload = draw(payloads)
    proto = draw(st.sampled_from([6, 17, 17, 6, 1, 47]))
    l4 = draw(tcp_header(payload)) if proto == 6 else draw(udp_header(payload)) if proto == 17 else payload
    ihl = draw(st.sampled_from([5, 5, 5, 6, 15, 4]))
    options = bytes(max(0, ihl - 5) * 4)
    frag = draw(st.sampled_from([0, 0, 0, 0x4000, 0x2000, 0x0001, 0x1FFF]))
    header = struct.pack("!BBHHHBBHII", (4 << 4) | ihl, draw(st.integers(0, 255)), 20 + len(options) + len(l4),
                         draw(st.integers(0, 0xFFFF)), frag, draw(st.integers(0, 255)), proto, 0,
                         draw(ipv4_addrs), draw(ipv4_addrs))
    return ethernet(ETH_P_IP, header + options + l4)


@st.composite
def ipv6_packet(draw: st.DrawFn) -> bytes:
    payload = draw(payloads)
    nh = draw(st.sampled_from([6, 17, 17, 58, 0]))
    l4 = draw(tcp_header(payload)) if nh == 6 else draw(udp_header(payload)) if nh == 17 else payload
    header = struct.pack("!IHBB", (6 << 28) | draw(st.integers(0, 2**28 - 1)), len(l4), nh,
                         draw(st.integers(0, 255))) + draw(st.binary(min_size=32, max_size=32))
    return ethernet(ETH_P_IPV6, header + l4)


@st.composite
def truncated(draw: st.DrawFn, inner: st.SearchStrategy[bytes]) -> bytes:
    frame = draw(inner)
    cut = draw(st.integers(MIN_FRAME, len(frame)))
    return frame[:cut]


garbage = st.binary(min_size=MIN_FRAME, max_size=96)
other_ethertype = st.builds(lambda t, b: ethernet(t, b), st.integers(0, 0xFFFF), st.binary(max_size=64))

packets = st.one_of(
    ipv4_packet(), ipv4_packet(), ipv6_packet(), truncated(ipv4_packet()), truncated(ipv6_packet()),
    garbage, other_ethertype,
)
