"""Mesh programs written as a newcomer writes them (tests/differential/test_newcomer_programs.py runs them):
an ACL by CIDR, per-flow counters keyed by a Struct, a float token bucket, a TTL-decrementing router that
redirects, a UDP port rewriter, a payload scanner, a sampler, print() debugging, ring-buffer events and a
per-source limiter. They use what a Python user reaches for first: `b == 0x45` on a payload byte, a
`while i < 16:` loop, `sport, dport = tcp.sport, tcp.dport`."""

from __future__ import annotations

from pybpfdsl import (
    XDP_DROP,
    XDP_PASS,
    DevMap,
    Global,
    HashMap,
    LpmTrie,
    LruHashMap,
    Packet,
    RingBuf,
    Struct,
    now_ns,
    random,
    u8,
    u16,
    u32,
    u64,
    xdp,
)

# 1. ACL by CIDR with LpmTrie
blocked = LpmTrie(u32, u8, max_entries=1024)
denied = Global(u64, 0)

@xdp
def cidr_acl(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    verdict = blocked.get(ip4.src)
    if verdict == 1:
        denied.value += 1
        return XDP_DROP
    return XDP_PASS

# 2. per-flow counters with Struct keys
class FlowKey(Struct):
    src: u32
    dst: u32
    sport: u16
    dport: u16
    proto: u8

class FlowStats(Struct):
    packets: u64
    bytes: u64

flows = HashMap(FlowKey, FlowStats, 4096)

@xdp
def flow_counter(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    sport, dport = 0, 0
    tcp = pkt.tcp
    udp = pkt.udp
    if tcp is not None:
        sport, dport = tcp.sport, tcp.dport
    elif udp is not None:
        sport, dport = udp.sport, udp.dport
    key = FlowKey(src=ip4.src, dst=ip4.dst, sport=sport, dport=dport, proto=ip4.proto)
    old = flows.get(key)
    if old is None:
        flows[key] = FlowStats(packets=1, bytes=pkt.len)
    else:
        flows[key] = FlowStats(packets=old.packets + 1, bytes=old.bytes + pkt.len)
    return XDP_PASS

# 3. token bucket with floats
RATE = 1000.0      # tokens per second
BURST = 50.0
tokens = Global(float, 50.0)
last_ns = Global(u64, 0)

@xdp
def token_bucket(pkt: Packet) -> int:
    now = now_ns()
    elapsed = now - last_ns.value
    last_ns.value = now
    tokens.value = min(BURST, tokens.value + RATE * (elapsed / 1e9))
    if tokens.value >= 1.0:
        tokens.value -= 1.0
        return XDP_PASS
    return XDP_DROP

# 4. TTL-decrementing router that redirects
routes = DevMap(64)
next_hop = HashMap(u32, u32, 256)   # dst /32 -> devmap slot

@xdp
def ttl_router(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    if ip4.ttl <= 1:
        return XDP_DROP
    slot = next_hop.get(ip4.dst)
    if slot is None:
        return XDP_PASS
    ip4.ttl -= 1
    return routes.redirect(slot, XDP_PASS)

# 5. UDP port rewriter
OLD_PORT = 5353
NEW_PORT = 15353

@xdp
def udp_port_rewriter(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    if udp.dport == OLD_PORT:
        udp.dport = NEW_PORT
    return XDP_PASS

# 6. payload scanner
hits = Global(u64, 0)
PATTERN = (0x47, 0x45, 0x54)   # "GET"

@xdp
def payload_scanner(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is None:
        return XDP_PASS
    i = 0
    while i < 16:
        if pkt.payload[i] == PATTERN[0] and pkt.payload[i + 1] == PATTERN[1] and pkt.payload[i + 2] == PATTERN[2]:
            hits.value += 1
            return XDP_DROP
        i += 1
    return XDP_PASS

# 7. sampler using random()
sampled = Global(u64, 0)
SAMPLE_RATE = 0.01

@xdp
def sampler(pkt: Packet) -> int:
    if random() < SAMPLE_RATE:
        sampled.value += 1
    return XDP_PASS

# 8. print() debugging
@xdp
def debug_print(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        print("not ipv4, len", pkt.len)
        return XDP_PASS
    print("ttl", ip4.ttl, "proto", ip4.proto)
    return XDP_PASS

# 9. ring-buffer events
class DropEvent(Struct):
    src: u32
    dport: u16
    reason: u8

events = RingBuf(DropEvent, 64 * 1024)

@xdp
def ringbuf_events(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    tcp = pkt.tcp
    if ip4 is None or tcp is None:
        return XDP_PASS
    if tcp.dport == 23:
        events.output(DropEvent(src=ip4.src, dport=tcp.dport, reason=1))
        return XDP_DROP
    return XDP_PASS

# 10. per-source rate limiter with LRU and a window
class Window(Struct):
    start_ns: u64
    count: u32

windows = LruHashMap(u32, Window, 1024)
LIMIT = 100
WINDOW_NS = 1_000_000_000

@xdp
def per_source_limiter(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    now = now_ns()
    w = windows.get(ip4.src)
    if w is None or now - w.start_ns > WINDOW_NS:
        windows[ip4.src] = Window(start_ns=now, count=1)
        return XDP_PASS
    if w.count >= LIMIT:
        return XDP_DROP
    windows[ip4.src] = Window(start_ns=w.start_ns, count=w.count + 1)
    return XDP_PASS

ALL = [cidr_acl, flow_counter, token_bucket, ttl_router, udp_port_rewriter, payload_scanner, sampler,
       debug_print, ringbuf_events, per_source_limiter]
