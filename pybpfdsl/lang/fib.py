"""`fib_lookup(dst, ifindex)`: the kernel's routing decision for an IPv4 destination (bpf_fib_lookup).

The result is a `FibResult` record: `status` (the kernel's BPF_FIB_LKUP_RET_* code, 0 when the packet
can be forwarded; a negative errno as a u32 when the arguments are wrong), the interface to send it out
of (`ifindex`) and the Ethernet addresses of that hop (`smac`, `dmac`: 48-bit numbers, first byte most
significant, as `pkt.eth.src` reads them). `dst` is the address as `pkt.ipv4.dst` reads it (host order),
`ifindex` the interface the packet came in on (a lookup needs one the kernel knows).

In the kernel the answer comes from the FIB of the namespace the program runs in. Outside it (pure
Python, the IR and bytecode interpreters) it comes from a scripted table, `use_routes([Route(...)])`:
the longest prefix holding `dst` answers; no route gives BPF_FIB_LKUP_RET_NOT_FWDED.
"""

from __future__ import annotations

import contextvars
import ipaddress
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from pybpfdsl.lang.structs import Struct
from pybpfdsl.lang.types import u32, u64

SUCCESS = 0
"""BPF_FIB_LKUP_RET_SUCCESS: forward the packet out of `ifindex` with these addresses."""
NOT_FORWARDED = 4
"""BPF_FIB_LKUP_RET_NOT_FWDED: no route forwards the packet (it is for this host, or no route)."""
NO_NEIGHBOUR = 7
"""BPF_FIB_LKUP_RET_NO_NEIGH: a route, but the next hop's Ethernet address is not known yet."""


class FibResult(Struct):
    """What `fib_lookup` answers (see the module doc)."""

    # The fields, as a dict: mypy does not take DSL types for Python types in annotations.
    __annotations__ = {"status": u32, "ifindex": u32, "smac": u64, "dmac": u64}

    def answer(self) -> tuple[int, int, int, int]:
        """(status, ifindex, smac, dmac)."""
        status, ifindex, smac, dmac = (int(getattr(self, f)) for f in ("status", "ifindex", "smac", "dmac"))
        return status, ifindex, smac, dmac


@dataclass(frozen=True)
class Route:
    """One entry of a scripted routing table: packets to `prefix` ("10.1.0.0/16") leave on `ifindex`
    from `smac` to `dmac` (48-bit numbers); a `status` other than SUCCESS is answered with the route's
    `ifindex` and zero addresses (as the kernel answers NO_NEIGH)."""

    prefix: str
    ifindex: int
    smac: int = 0
    dmac: int = 0
    status: int = SUCCESS

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.prefix, strict=False)


_routes: contextvars.ContextVar[tuple[Route, ...]] = contextvars.ContextVar("pybpfdsl_routes", default=())


@contextmanager
def use_routes(routes: Sequence[Route]) -> Iterator[None]:
    """Answer `fib_lookup` outside the kernel from `routes` in this context."""
    token = _routes.set(tuple(routes))
    try:
        yield
    finally:
        _routes.reset(token)


def lookup(dst: int, ifindex: int) -> FibResult:
    """The scripted table's answer for destination `dst` (host order) arriving on `ifindex`."""
    address = ipaddress.IPv4Address(dst & 0xFFFFFFFF)
    best: Route | None = None
    for route in _routes.get():
        if address in route.network and (best is None or route.network.prefixlen > best.network.prefixlen):
            best = route
    if best is None:
        return FibResult(status=NOT_FORWARDED, ifindex=ifindex & 0xFFFFFFFF, smac=0, dmac=0)
    if best.status != SUCCESS:  # as the kernel's NO_NEIGH: the route's interface, no addresses
        return FibResult(status=best.status, ifindex=best.ifindex, smac=0, dmac=0)
    return FibResult(status=SUCCESS, ifindex=best.ifindex, smac=best.smac, dmac=best.dmac)


__all__ = ["FibResult", "NOT_FORWARDED", "NO_NEIGHBOUR", "Route", "SUCCESS", "lookup", "use_routes"]
