"""The other map kinds: an LpmTrie looked up by an address (its full-length key) and by a key record, a
PerCpuHashMap and an LruPerCpuHashMap counted per key."""

from pybpfdsl import (
    XDP_DROP,
    XDP_PASS,
    Packet,
    u8,
    u16,
    u32,
    u64,
    xdp,
)
from pybpfdsl.lang.lpm_trie import Ip4Prefix, LpmTrie
from pybpfdsl.lang.percpu_hash import LruPerCpuHashMap, PerCpuHashMap
from tests.ir.golden import packets

acl = LpmTrie(u32, u32, 16)
per_port = PerCpuHashMap(u16, u64, 16)
per_source = LruPerCpuHashMap(u32, u64, 8)


@xdp
def lpm_percpu_maps(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    tcp = pkt.tcp
    if ip4 is None or tcp is None:
        return XDP_PASS
    per_port[tcp.dport] += 1
    per_source[ip4.src] += 1
    if tcp.dport == 23:
        acl[Ip4Prefix(24, u8(ip4.src >> 24), u8(ip4.src >> 16), u8(ip4.src >> 8), u8(0))] = 1
    verdict = acl.get(ip4.src, 0)
    if verdict == 1 and per_source.get(ip4.src, 0) > 2:
        return XDP_DROP
    return XDP_PASS


CASES = [
    (packets.tcp(dport=80, src="10.0.0.1"), XDP_PASS),
    (packets.tcp(dport=23, src="10.0.0.1"), XDP_PASS),
    (packets.tcp(dport=80, src="10.0.0.9"), XDP_PASS),
    (packets.tcp(dport=80, src="10.0.0.1"), XDP_DROP),
    (packets.tcp(dport=80, src="10.0.1.1"), XDP_PASS),
    (packets.udp(), XDP_PASS),
]
