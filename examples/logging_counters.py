"""Logging counters: count the service's requests and the bytes they carry.

Ports AppNet's `logging` element (appnet-org/compiler `examples/elements/echo_elements/logging.appnet`,
notes §1.2), which appends every request body to a vector (`set(record_req, size(record_req),
get(rpc, 'body'))`) and passes the RPC on.

How it maps to XDP:

- Copying bodies into a growing vector has no XDP counterpart worth having (variable-length copies,
  unbounded state), so this is the payload-independent variant the notes suggest: instead of the log
  itself, the program keeps its two aggregate numbers, `requests` and `request_bytes`, which a control
  plane reads (or scrapes into a metrics system) from Python.
- What counts as a request: every UDP datagram and every TCP segment, over IPv4 or IPv6. With aRPC (RPC
  over UDP) one datagram is one request, as in AppNet; over TCP a segment is the packet-level stand-in
  (bare ACKs count too, which an operator reading the numbers should know). Frames without a UDP or TCP
  header (ARP, ICMP, IP fragments after the first, runts) are not requests and are not counted.
- `request_bytes` adds the frame length (`pkt.len`, Ethernet header included) of every counted packet.
- The element never changes the verdict: it always returns `XDP_PASS`. Both counters are updated with
  atomic adds, so they are exact when several CPUs run the program at once.
"""

from pybpfdsl import XDP_PASS, Global, Packet, u64, xdp

requests = Global(u64, 0)
"""UDP datagrams and TCP segments seen."""

request_bytes = Global(u64, 0)
"""Total length in bytes (whole frames) of the packets counted in `requests`."""


@xdp
def logging_counters(pkt: Packet) -> int:
    if pkt.udp is not None or pkt.tcp is not None:
        requests.value += 1
        request_bytes.value += pkt.len
    return XDP_PASS
