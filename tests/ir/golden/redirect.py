"""Redirects: bpf_redirect to an interface, bpf_redirect_map through a DevMap and a CpuMap (empty slots:
the miss actions)."""

from pybpfdsl import XDP_DROP, XDP_PASS, XDP_REDIRECT, Packet, u32, xdp
from pybpfdsl.lang.builtins import redirect
from pybpfdsl.lang.redirect import CpuMap, DevMap
from tests.ir.golden import packets

ports = DevMap(4)
cpus = CpuMap(2)


@xdp
def redirects(pkt: Packet) -> int:
    tcp = pkt.tcp
    if tcp is not None:
        return redirect(u32(tcp.dport) & 15)
    udp = pkt.udp
    if udp is not None:
        return ports.redirect(udp.dport & 3, XDP_PASS)
    return cpus.redirect(1, XDP_DROP)


CASES = [
    (packets.tcp(flags="S"), XDP_REDIRECT),
    (packets.udp(), XDP_PASS),
    (bytes(60), XDP_DROP),
]
