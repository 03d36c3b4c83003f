"""Circuit breaker: stop sending requests to a service that already has too many in flight.

Ports AppNet's `circuitbreaker` element (appnet-org/compiler
`examples/elements/echo_elements/circuitbreaker.appnet`, notes §1.8)::

    req(rpc):
        match pending_req <= max_concurrent_req:
            true  => pending_req = pending_req + 1; send(rpc, Down)
            false => drop_count = drop_count + 1; send(err('circuit breaker'), Up)
    resp(rpc):
        pending_req = pending_req - 1
        send(rpc, Up)

How it is adapted to XDP:

- The protected service speaks an RPC protocol over UDP on `SERVICE_PORT`, one request or response per
  datagram (like aRPC). AppNet's two handlers become one program that tells the directions apart by
  port: a datagram *to* `SERVICE_PORT` is a request (`req`), a datagram *from* `SERVICE_PORT` is a
  response (`resp`). Everything else passes untouched.
- XDP only sees packets arriving on an interface, so the program must be attached where both directions
  arrive: a gateway or proxy host that forwards requests to the service and responses back, or the
  ingress of both peers sharing one pinned set of maps. The tests feed both directions to one program.
- `pending_requests` is AppNet's `pending_req`, `max_pending` its `max_concurrent_req` (a Global, so the
  control plane can change it), `rejected_requests` its `drop_count`. AppNet's condition is kept
  (`pending <= max` admits, so up to max + 1 requests can be in flight); a rejected request is
  `XDP_DROP` instead of an error reply.
- A response never makes `pending_requests` negative: responses to requests admitted before the program
  was loaded (or duplicates) are ignored. A response that is lost never decrements it, so in a lossy
  network the count creeps up; a control plane would reset `pending_requests` periodically, or a fuller
  version would track request ids with timestamps in a map and expire them.
- Concurrency: the counter updates are atomic adds, but "check, then increment" is not one atomic step;
  with several CPUs the breaker can admit a few requests more than `max_pending` (one per CPU at most).
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, u64, xdp

SERVICE_PORT = 9000
"""UDP port the protected service listens on."""

max_pending = Global(u64, 100)
"""Requests in flight beyond which new requests are rejected (AppNet's `max_concurrent_req`)."""

pending_requests = Global(u64, 0)
"""Requests admitted whose response has not been seen yet (AppNet's `pending_req`)."""

rejected_requests = Global(u64, 0)
"""Requests dropped because too many were pending (AppNet's `drop_count`)."""


@xdp
def circuit_breaker(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS

    if udp.dport == SERVICE_PORT:  # a request on its way to the service
        if pending_requests.value <= max_pending.value:
            pending_requests.value += 1
            return XDP_PASS
        rejected_requests.value += 1
        return XDP_DROP

    if udp.sport == SERVICE_PORT and pending_requests.value > 0:  # a response coming back from the service
        pending_requests.value -= 1
    return XDP_PASS
