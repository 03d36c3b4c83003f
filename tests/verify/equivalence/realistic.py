"""Three programs written the way a service-mesh engineer would write them, not the way that happens to
prove: a per-source token bucket, a SYN-flood guard and a weighted canary splitter.

They are the realistic programs of issue 12 §6: each must compile, pass our verifier and the kernel's,
agree in the four executions, and prove equivalent to its IR within the default budget
(`test_realistic.py`; `benchmarks/prove_examples.py` measures them).
"""

from __future__ import annotations

from pybpfdsl import (
    TCP_ACK,
    TCP_SYN,
    XDP_DROP,
    XDP_PASS,
    XDP_TX,
    Array,
    Global,
    LruHashMap,
    Packet,
    PerCpuArray,
    RingBuf,
    Struct,
    cpu_id,
    now_ns,
    random,
    u8,
    u16,
    u32,
    u64,
    xdp,
)

# ------------------------------------------------------------------------------- per-source token bucket

refill_per_sec = Global(float, 100.0)
"""Tokens each source gets back per second: its sustained packet rate."""

bucket_size = Global(float, 200.0)
"""The most tokens a source can save up: its largest burst."""

source_tokens = LruHashMap(u32, float, max_entries=65536)
"""IPv4 source -> tokens left in its bucket."""

source_last_refill = LruHashMap(u32, u64, max_entries=65536)
"""IPv4 source -> `now_ns()` when its bucket was last refilled."""

rate_limited = Global(u64, 0)
"""Packets dropped because their source's bucket was empty."""


@xdp
def source_token_bucket(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    src = ip4.src
    now = now_ns()
    last = source_last_refill.get(src)
    if last is None:
        tokens = bucket_size.value  # a source we have not seen (or evicted) starts with a full bucket
    else:
        tokens = source_tokens.get(src, 0.0)
        if now > last:  # another CPU may have refilled with a later clock reading than ours
            elapsed = (now - last) / 1000000000
            tokens = min(bucket_size.value, tokens + elapsed * refill_per_sec.value)
    source_last_refill[src] = now
    if tokens < 1.0:
        source_tokens[src] = tokens
        rate_limited.value += 1
        return XDP_DROP
    source_tokens[src] = tokens - 1.0
    return XDP_PASS


# ------------------------------------------------------------------------------------- SYN-flood guard

class SynFloodDrop(Struct):
    """What the guard tells user space about a dropped SYN."""

    src: u32
    port: u16
    cpu: u32
    count: u32


syn_limit = Global(u32, 1000)
"""SYNs per second one CPU lets through to one port; the rest are dropped."""

syn_count = PerCpuArray(u32, 65536)
"""Destination port -> SYNs this CPU saw for it in the current second."""

syn_second = PerCpuArray(u64, 65536)
"""Destination port -> the second (`now_ns() // 10**9`) its `syn_count` belongs to."""

syn_drops = RingBuf(SynFloodDrop, 256 * 1024)
"""One record per dropped SYN."""


@xdp
def syn_flood_guard(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    tcp = pkt.tcp
    if ip4 is None or tcp is None:
        return XDP_PASS
    if tcp.flags & (TCP_SYN | TCP_ACK) != TCP_SYN:
        return XDP_PASS  # only connection attempts count
    port = tcp.dport
    second = now_ns() // 1_000_000_000
    count = syn_count[port]
    if syn_second[port] != second:  # a new second: this port's counter starts again
        syn_second[port] = second
        count = 0
    count += 1
    syn_count[port] = count
    if count > syn_limit.value:
        syn_drops.output(SynFloodDrop(src=ip4.src, port=port, cpu=cpu_id(), count=count))
        return XDP_DROP
    return XDP_PASS


# --------------------------------------------------------------------------------- weighted canary split

SERVICE_PORT = 8080
ECHO_PORT = 7
STABLE = 0
CANARY = 1


class Flow(Struct):
    """A client connection to the service."""

    src: u32
    sport: u16


canary_weight = Global(float, 0.05)
"""Share of new flows sent to the canary (0.0 to 1.0), raised step by step during a rollout."""

flow_backend = LruHashMap(Flow, u8, max_entries=65536)
"""Flow -> STABLE or CANARY: a flow stays on the backend it was first given (read by the steering stage)."""

backend_packets = Array(u64, 2)
"""STABLE / CANARY -> packets routed to it."""

echoed = Global(u64, 0)
"""Echo-port probes bounced straight back."""


@xdp
def canary_splitter(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    tcp = pkt.tcp
    if ip4 is None or tcp is None:
        return XDP_PASS
    if tcp.dport == ECHO_PORT:  # health probes: answer from the wire, the service never sees them
        echoed.value += 1
        return XDP_TX
    if tcp.dport != SERVICE_PORT:
        return XDP_PASS
    flow = Flow(ip4.src, tcp.sport)
    pinned = flow_backend.get(flow)
    if pinned is None:  # a new flow: roll the dice once, then keep it there
        backend = CANARY if random() < canary_weight.value else STABLE
        flow_backend[flow] = backend
    else:
        backend = pinned
    backend_packets[backend] += 1
    return XDP_PASS
