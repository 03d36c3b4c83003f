"""Admission control: reject a share of new requests when too few recent requests succeeded, so an
overloaded service gets room to recover (client-side throttling in the style of the Google SRE book).

Ports the request side of AppNet's `admissioncontrol` element (appnet-org/compiler, notes §1.7)::

    req(rpc):
        prob = 1.0 - max(0, (total - (multiplier * success)) / (total + 1.0))
        total = total + 1.0
        match randomf(0, 1) < prob:
            true  => send(rpc, Down)                      # accept with probability prob
            false => send(err('admission control'), Up)
    resp(rpc):
        match get(rpc, 'meta_status') == 'success':
            true => success = success + 1.0

(AppNet's copies disagree on the polarity of the `match`; this port uses the ping / elements_native
one: accept with probability `prob`, so a healthy service is barely throttled.)

How it maps to XDP:

- The service speaks aRPC over UDP on `SERVICE_PORT`: the first payload byte is the packet type, 1 for a
  request, 2 for a (successful) response, 3 for an error. A type-1 datagram to the service port is a
  request (AppNet's `req`); a type-2 datagram from the service port is a successful response, which is
  what `meta_status == 'success'` means (`resp`). Error responses and all other traffic pass untouched.
  Both directions must reach the program (see `circuit_breaker.py`).
- Rejecting is `XDP_DROP`; accepting is `XDP_PASS`. Every request counts in `total`, rejected or not,
  as in AppNet.
- No division at run time. The rejection probability is `max(0, (total - m*success) / (total + 1))`,
  and a request is rejected when `random() < that`. Because `total + 1 > 0`, multiplying both sides by
  it gives the same test without dividing: reject when
  `random() * (total + 1) < total - m*success`. When `total - m*success <= 0` the right side is not
  positive and the left side never is below it, which is the `max(0, ...)`. (The DSL keeps floats in
  fixed point and refuses to divide by a float computed at run time.)
- The counters are AppNet's floats, in Q32.32 fixed point, so they hold values below 2**31. The SRE
  book's formula is meant over a recent window (about two minutes); the control plane should scale
  `total` and `successes` down periodically (e.g. halve both), which keeps them in range too.
- Concurrency: the counters are updated with atomic adds; the decision reads them without a lock, so
  concurrent requests may see slightly stale numbers, which only shifts a probability.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, random, u64, xdp

SERVICE_PORT = 9000
"""UDP port of the service."""

ARPC_REQUEST = 1
ARPC_RESPONSE = 2
ARPC_ERROR = 3
"""aRPC packet types (first payload byte)."""

multiplier = Global(float, 0.95)
"""Aggressiveness: a larger multiplier throttles less (AppNet's `multiplier`)."""

total = Global(float, 0.0)
"""Requests seen, accepted or rejected (AppNet's `total`)."""

successes = Global(float, 0.0)
"""Successful responses seen (AppNet's `success`)."""

rejected = Global(u64, 0)
"""Requests dropped by admission control."""


@xdp
def admission_control(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    kind = pkt.payload[0]
    if kind is None:
        return XDP_PASS

    if udp.sport == SERVICE_PORT and kind == ARPC_RESPONSE:  # resp(rpc) with status 'success'
        successes.value += 1.0
        return XDP_PASS
    if udp.dport != SERVICE_PORT or kind != ARPC_REQUEST:
        return XDP_PASS  # not a request to the service

    # AppNet rejects when random() >= prob, i.e. when
    #     random() < max(0, (total - multiplier*successes) / (total + 1)).
    # total + 1 is positive, so multiplying both sides by it keeps the comparison and removes the
    # division by a float computed at run time (which fixed-point floats do not support). When the
    # right side is <= 0 the test is never true, which is what max(0, ...) says.
    seen = total.value
    total.value += 1.0
    if random() * (seen + 1.0) < seen - multiplier.value * successes.value:
        rejected.value += 1
        return XDP_DROP
    return XDP_PASS
