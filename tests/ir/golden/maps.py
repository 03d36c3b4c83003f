"""Maps of each kind: lookups, defaults, updates, deletes, membership, atomic adds, struct keys and values."""

from pybpfdsl import (
    XDP_DROP,
    XDP_PASS,
    Array,
    HashMap,
    LruHashMap,
    Packet,
    PerCpuArray,
    Struct,
    u16,
    u32,
    u64,
    xdp,
)
from tests.ir.golden import packets


class Flow(Struct):
    addr: u32
    port: u16


class Seen(Struct):
    packets: u64
    last_len: u32


per_port = HashMap(u16, u64, 64)
flows = LruHashMap(Flow, Seen, 16)
histogram = Array(u64, 8)
per_cpu = PerCpuArray(u32, 2)
blocked = HashMap(u32, u32, 8)


@xdp
def maps(pkt: Packet) -> int:
    per_cpu[0] += 1
    histogram[min(pkt.len // 100, 7)] += 1
    ip4 = pkt.ipv4
    tcp = pkt.tcp
    if ip4 is None or tcp is None:
        return XDP_PASS
    per_port[tcp.dport] += 1
    key = Flow(ip4.src, tcp.sport)
    old = flows.get(key)
    count: u64 = 1
    if old is not None:
        count = old.packets + 1
    flows[key] = Seen(count, pkt.len)
    if tcp.dport == 23:
        blocked[ip4.src] = 1
    if tcp.dport == 443 and ip4.src in blocked:
        del blocked[ip4.src]
    if ip4.src in blocked:
        return XDP_DROP
    return XDP_DROP if per_port.get(tcp.dport, 0) > 2 else XDP_PASS


CASES = [
    (packets.tcp(dport=80), XDP_PASS),
    (packets.tcp(dport=23), XDP_DROP),
    (packets.tcp(dport=80), XDP_DROP),
    (packets.tcp(dport=443), XDP_PASS),
    (packets.tcp(dport=80), XDP_DROP),
    (packets.udp(), XDP_PASS),
]
