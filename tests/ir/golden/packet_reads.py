"""Packet reads: Ethernet, IPv4, IPv6, TCP and UDP headers, payload bytes and a payload record."""

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_TX, Packet, Struct, u8, u16, u32, xdp
from tests.ir.golden import packets


class Rpc(Struct):
    magic: u16
    version: u8
    method: u8
    request_id: u32


@xdp
def packet_reads(pkt: Packet) -> int:
    eth = pkt.eth
    if eth is None:
        return XDP_PASS
    if pkt.ipv6 is not None and pkt.ipv6.hlim == 0:
        return XDP_DROP
    udp = pkt.udp
    if udp is None:
        return XDP_PASS if eth.type == 0x0800 else XDP_TX
    first = pkt.payload[0]
    if first is None:
        return XDP_PASS
    rpc = pkt.payload.read(Rpc, 0)
    if rpc is not None and rpc.magic == 0xBEEF and rpc.method == 7:
        return XDP_DROP
    return XDP_TX if first == 0xFF else XDP_PASS


CASES = [
    (packets.udp(payload=b"\xbe\xef\x01\x07\x00\x00\x00\x01"), XDP_DROP),
    (packets.udp(payload=b"\xff"), XDP_TX),
    (packets.udp(payload=b""), XDP_PASS),
    (packets.udp6(payload=b"\xff\x00"), XDP_TX),
    (packets.tcp(), XDP_PASS),
    (packets.runt(), XDP_PASS),
]
