"""Rate limiter: a token bucket that lets through at most `rate_per_sec` requests per second on average,
with bursts of up to `burst` requests.

Ports AppNet's `ratelimit` element (appnet-org/compiler `examples/elements/echo_elements/ratelimit.appnet`,
notes §1.4)::

    req(rpc):
        token_rate = min(limit_rate, token_rate + (per_sec_rate * time_diff(current_time(), last_ts)))
        last_ts = current_time()
        match token_rate > 1.0:
            true  => token_rate = token_rate - 1.0; send(rpc, Down)
            false => send(err('ratelimit'), Up)

How it maps to XDP:

- Every UDP datagram and TCP segment (IPv4 or IPv6) is a request and costs one token; other frames pass
  without touching the bucket. Passing is `XDP_PASS`, the `err('ratelimit')` reply becomes `XDP_DROP`.
- AppNet's float state stays float: `tokens`, `rate_per_sec` and `burst` (AppNet's `token_rate`,
  `per_sec_rate`, `limit_rate`) are `Global(float, ...)`, which the DSL keeps in Q32.32 fixed point. The
  control plane can change the rate and burst at run time by assigning `.value` from Python.
- `current_time()` is `now_ns()` (`bpf_ktime_get_ns`, CLOCK_MONOTONIC) and `last_ts` is `last_refill_ns`.
  The elapsed time is divided by the integer 1e9 to get seconds: dividing by an integer is exact in fixed
  point, whereas multiplying by the constant 1e-9 would round it to 4 * 2**-32 (a 7% error).
- The elapsed time is capped at `MAX_REFILL_NS` (one second): a gap longer than that refills at most one
  second's worth of tokens, and with `burst <= rate_per_sec` (the default, as in AppNet) the bucket is full
  after one second anyway, so nothing changes. (Without the cap the quotient would still be exact: an
  integer divided by an integer, or by an integral float such as 1e9, is the exact quotient, saturating
  only above 2**31 seconds; the cap keeps `rate * seconds` far from the fixed-point range.)
- Fixed-point arithmetic rounds toward zero, so each refill may come out a few 1e-7 tokens short
  (exactly one millisecond at 1000/s gives 0.99999993 tokens): the limiter errs on the strict side.
- A request passes when at least one token is left (AppNet's `> 1.0` becomes `>= 1.0`: "drop when
  fewer than one token").
- Concurrency: the refill is a plain read-modify-write of shared state, as in AppNet's single-threaded
  proxy; with several CPUs an update may occasionally be lost (the bucket is then slightly off for that
  instant). The token consumption itself is an atomic add. The clock of one CPU can lag the
  `last_refill_ns` written by another, so the refill only runs when time moved forward.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, now_ns, u64, xdp

NS_PER_SECOND = 1_000_000_000
MAX_REFILL_NS = 1_000_000_000
"""The longest gap the refill accounts for (see the module docstring)."""

rate_per_sec = Global(float, 1000.0)
"""Tokens added per second: the sustained request rate (AppNet's `per_sec_rate`)."""

burst = Global(float, 1000.0)
"""Capacity of the bucket: the largest burst let through at once (AppNet's `limit_rate`)."""

tokens = Global(float, 1000.0)
"""Tokens in the bucket now; starts full (AppNet's `token_rate`)."""

last_refill_ns = Global(u64, 0)
"""`now_ns()` at the last refill (AppNet's `last_ts`)."""

rate_limited = Global(u64, 0)
"""Requests dropped because the bucket was empty."""


@xdp
def rate_limiter(pkt: Packet) -> int:
    if pkt.udp is None and pkt.tcp is None:
        return XDP_PASS  # not a request

    now = now_ns()
    last = last_refill_ns.value
    if now > last:
        elapsed_ns = min(now - last, MAX_REFILL_NS)
        elapsed_s = elapsed_ns / NS_PER_SECOND
        tokens.value = min(burst.value, tokens.value + rate_per_sec.value * elapsed_s)
        last_refill_ns.value = now

    if tokens.value < 1.0:
        rate_limited.value += 1
        return XDP_DROP
    tokens.value -= 1.0
    return XDP_PASS
