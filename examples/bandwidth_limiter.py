"""Bandwidth limiter: a token bucket counted in bytes, so the service receives at most
`bytes_per_sec` bytes per second on average, with bursts of up to `burst_bytes`.

Ports AppNet's `bandwidthlimit` element (appnet-org/compiler
`examples/elements/echo_elements/bandwidthlimit.appnet`, notes §1.6)::

    req(rpc):
        token_bw = min(limit_bw, token_bw + (per_sec_bw * time_diff(current_time(), last_bw)))
        last_bw = current_time()
        size_bw = byte_size(rpc, 'body')
        match token_bw >= size_bw:
            true  => token_bw = token_bw - size_bw; send(rpc, Down)
            false => send(err('bandwidthlimit'), Up)

How it maps to XDP:

- The size of the RPC body becomes the size of the packet (`pkt.len`, the whole frame): an XDP program
  cannot cheaply find a protobuf field, and on the wire it is frames that use the bandwidth. Every UDP
  datagram and TCP segment (IPv4 or IPv6) is charged; other frames pass without touching the bucket.
- A packet passes (`XDP_PASS`) when the bucket holds at least its size in byte tokens, which it then
  spends; otherwise it is dropped (`XDP_DROP`) and the bucket is left as it was, exactly as in AppNet.
- The state is AppNet's, in `Global(float, ...)` fixed point: `byte_tokens`, `bytes_per_sec`,
  `burst_bytes` and the clock reading `last_refill_ns` (`bpf_ktime_get_ns`). The elapsed time is capped
  at one second and divided by the integer 1e9, for the reasons given in `rate_limiter.py`: with
  `burst_bytes <= bytes_per_sec` (the default) the bucket is full after a second anyway. Fixed point
  holds values below 2**31, so rates up to about 2 GB/s (16 Gbit/s) can be expressed. Rounding is
  toward zero, so a refill may come out a hair short, never long.
- Concurrency: as in `rate_limiter.py`, the refill is an unsynchronised read-modify-write (an accepted
  race), the spending an atomic add.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, now_ns, u64, xdp

NS_PER_SECOND = 1_000_000_000
MAX_REFILL_NS = 1_000_000_000

bytes_per_sec = Global(float, 100_000.0)
"""Byte tokens added per second: the sustained bandwidth (AppNet's `per_sec_bw`)."""

burst_bytes = Global(float, 100_000.0)
"""Capacity of the bucket in bytes (AppNet's `limit_bw`)."""

byte_tokens = Global(float, 100_000.0)
"""Byte tokens in the bucket now; starts full (AppNet's `token_bw`)."""

last_refill_ns = Global(u64, 0)
"""`now_ns()` at the last refill (AppNet's `last_bw`)."""

dropped_packets = Global(u64, 0)
dropped_bytes = Global(u64, 0)
"""Packets, and their bytes, dropped for lack of bandwidth."""


@xdp
def bandwidth_limiter(pkt: Packet) -> int:
    if pkt.udp is None and pkt.tcp is None:
        return XDP_PASS  # not service traffic

    now = now_ns()
    last = last_refill_ns.value
    if now > last:
        elapsed_ns = min(now - last, MAX_REFILL_NS)
        elapsed_s = elapsed_ns / NS_PER_SECOND
        byte_tokens.value = min(burst_bytes.value, byte_tokens.value + bytes_per_sec.value * elapsed_s)
        last_refill_ns.value = now

    size = pkt.len
    if byte_tokens.value < size:
        dropped_packets.value += 1
        dropped_bytes.value += size
        return XDP_DROP
    byte_tokens.value -= size
    return XDP_PASS
