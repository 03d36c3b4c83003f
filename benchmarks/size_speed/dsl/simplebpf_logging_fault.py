"""SimpleBPF Table 1, "Logging + Fault injection": log every request, then drop a share of them.

Requests are UDP datagrams to `SERVICE_PORT`. Each is counted (requests and bytes); it passes with the
probability held in the float global `pass_probability` (AppNet's `prob`, changeable at run time), and a
dropped one is counted in `fl_dropped`. SimpleBPF reports 79 BPF and 101 JIT instructions.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, random, u64, xdp

SERVICE_PORT = 9000

pass_probability = Global(float, 0.95)
fl_requests = Global(u64, 0)
fl_bytes = Global(u64, 0)
fl_dropped = Global(u64, 0)


@xdp
def simplebpf_logging_fault(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None or udp.dport != SERVICE_PORT:
        return XDP_PASS
    fl_requests.value += 1
    fl_bytes.value += pkt.len
    if random() < pass_probability.value:
        return XDP_PASS
    fl_dropped.value += 1
    return XDP_DROP
