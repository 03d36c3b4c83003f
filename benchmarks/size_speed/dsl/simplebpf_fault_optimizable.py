"""SimpleBPF Table 1, "Fault injection (optimizable condition)": drop 5% of the requests, under a
compound condition one of whose tests is implied by another (SimpleBPF §2.2.1: a predicate that is a
superset of another can be removed).

`udp.dport > 1023` always holds when `udp.dport == SERVICE_PORT`: an optimizer may drop that test.
SimpleBPF reports 43 BPF and 56 JIT instructions for its optimized version.
"""

from pybpfdsl import XDP_DROP, XDP_PASS, Global, Packet, random, u64, xdp

SERVICE_PORT = 9000
PASS_PROBABILITY = 0.95

fo_faults = Global(u64, 0)


@xdp
def simplebpf_fault_optimizable(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is None:
        return XDP_PASS
    if udp.dport == SERVICE_PORT and udp.dport > 1023 and random() >= PASS_PROBABILITY:
        fo_faults.value += 1
        return XDP_DROP
    return XDP_PASS
