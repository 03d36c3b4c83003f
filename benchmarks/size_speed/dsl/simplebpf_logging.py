"""SimpleBPF Table 1, "Logging (2 vars)": two global variables updated on every RPC request.

One UDP datagram to `SERVICE_PORT` is one request (aRPC); the program counts the requests and the bytes
they carry and never changes the verdict. SimpleBPF reports 67 BPF and 67 JIT instructions for its
optimized version.
"""

from pybpfdsl import XDP_PASS, Global, Packet, u64, xdp

SERVICE_PORT = 9000

logged_requests = Global(u64, 0)
logged_bytes = Global(u64, 0)


@xdp
def simplebpf_logging(pkt: Packet) -> int:
    udp = pkt.udp
    if udp is not None and udp.dport == SERVICE_PORT:
        logged_requests.value += 1
        logged_bytes.value += pkt.len
    return XDP_PASS
