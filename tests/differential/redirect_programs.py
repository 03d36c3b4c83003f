"""Programs that redirect, shared by the redirect tests of each kind (differential, verifier, proof,
kernel)."""

from __future__ import annotations

from pybpfdsl import XDP_DROP, XDP_PASS, Packet, u32, xdp
from pybpfdsl.lang.builtins import redirect
from pybpfdsl.lang.redirect import CpuMap, DevMap

LOOPBACK = 1  # an interface every network namespace has: the kernel accepts it in a DevMap slot

ports = DevMap(4)
cpus = CpuMap(2)


@xdp
def by_ttl(pkt: Packet) -> int:
    ip4 = pkt.ipv4
    if ip4 is None:
        return XDP_PASS
    if ip4.ttl == 1:
        return XDP_DROP
    if ip4.ttl < 10:
        return redirect(u32(ip4.ttl) + 100)
    if ip4.ttl < 20:
        return ports.redirect(ip4.ttl & 3, XDP_PASS)
    if ip4.ttl < 30:
        return ports.redirect(ip4.ttl & 3)
    return cpus.redirect(ip4.ttl & 1, XDP_DROP)


def _ipv4(ttl: int) -> bytes:
    header = bytes([0x45, 0, 0, 28, 0, 1, 0, 0, ttl, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    return bytes(12) + b"\x08\x00" + header + bytes(8)


PACKETS = [_ipv4(t) for t in (1, 3, 9, 12, 13, 14, 22, 23, 30, 31)] + [bytes(60)]




def fill_slots() -> None:
    """Slots 0 and 1 of `ports` hold the loopback device, slot 0 of `cpus` a queue of 64; the rest empty."""
    ports.clear()
    cpus.clear()
    ports[0] = LOOPBACK
    ports[1] = LOOPBACK
    cpus[0] = 64
