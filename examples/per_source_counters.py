"""Per-source counters: how many packets and bytes each IPv4 source address sent.

Ports the map-keeping variant of AppNet's `logging` element (appnet-org/compiler
`examples/elements/kv_elements/logging.appnet`, notes §1.2), which records requests in a map keyed by
a request field::

    state:
        record_req: Map<string, int>
    req(rpc):
        set(record_req, get(rpc, 'key'), get(rpc, 'score', 'int32'))
        send(rpc, Down)

to a key every packet has: its source address. Instead of the last value per key, it keeps what an
operator looks at to find the top talkers: how many packets and bytes each source sent.

How it maps to XDP:

- The key is the IPv4 source address (`pkt.ipv4.src`, a u32 in host order: `ip("10.0.0.1")`); the value
  is a `SourceStats` record with the packet count and the byte count (whole frames, `pkt.len`).
  Every IPv4 packet counts, whatever it carries. IPv6 and non-IP frames are not counted.
- The table is an `LruHashMap`: when it is full, the least recently seen source is evicted to make room,
  so a flood of spoofed addresses cannot stop new sources from being counted.
- The program never changes the verdict (`XDP_PASS`). The control plane reads `source_stats` from Python
  (`source_stats[ip("10.0.0.1")].packets`, or `source_stats.items()` for the whole table).
- Concurrency: the record is read, rebuilt and stored, which is not atomic; when two CPUs count packets
  of the same source at the same instant, one increment can be lost. For exact counts use two maps of
  integers with `m[key] += n`, which the compiler turns into atomic adds.
"""

from pybpfdsl import XDP_PASS, LruHashMap, Packet, Struct, u32, u64, xdp


class SourceStats(Struct):
    packets: u64
    bytes: u64


source_stats = LruHashMap(u32, SourceStats, max_entries=16384)
"""IPv4 source address -> packets and bytes seen from it."""


@xdp
def per_source_counters(pkt: Packet) -> int:
    ipv4 = pkt.ipv4
    if ipv4 is None:
        return XDP_PASS
    seen = source_stats.get(ipv4.src, SourceStats(packets=0, bytes=0))
    source_stats[ipv4.src] = SourceStats(packets=seen.packets + 1, bytes=seen.bytes + pkt.len)
    return XDP_PASS
