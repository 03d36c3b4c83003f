"""Fault injection: drop a fixed fraction of the service's traffic to test how clients cope with loss.

Ports AppNet's `fault` element (appnet-org/compiler `examples/elements/echo_elements/fault.appnet`,
notes §1.1)::

    req(rpc):
        match randomf(0, 1) < prob:      # prob = 0.95
            true  => send(rpc, Down)
            false => send(err('fault_injected'), Up)

How it maps to XDP:

- An XDP program sees frames, not RPCs. Every UDP datagram and TCP segment (over IPv4 or IPv6) stands
  for a request; everything else (ARP, ICMP, non-IP frames) passes untouched so the host stays
  reachable while faults are being injected.
- `send(rpc, Down)` is `XDP_PASS`; the injected fault, `send(err(...), Up)`, is `XDP_DROP`: the sender
  sees a lost packet (a timeout) rather than an error reply.
- `randomf(0, 1) < prob` is `random() < PASS_PROBABILITY`. With a constant probability the compiler
  compares the 32 random bits of `bpf_get_prandom_u32()` with ceil(0.95 * 2**32): no floating point.
- `injected_faults` counts the drops so an operator can see the element working.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, random, u64, xdp

PASS_PROBABILITY = 0.95
"""Chance that a request goes through (AppNet's `prob`); 1 - PASS_PROBABILITY of them are dropped."""

injected_faults = Global(u64, 0)
"""How many packets this element dropped."""


@xdp
def fault_injection(pkt: Packet) -> int:
    if pkt.udp is None and pkt.tcp is None:
        return XDP_PASS  # not request traffic: leave it alone
    if random() < PASS_PROBABILITY:
        return XDP_PASS
    injected_faults.value += 1
    return XDP_DROP
