// expect: accept -- L4 header at a variable offset (ihl), checked before use
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    __u32 hl = ip->ihl * 4;
    if (hl < sizeof(*ip)) return XDP_DROP;
    struct udphdr *udp = (void *)ip + hl;
    if ((void *)(udp + 1) > end) return XDP_PASS;
    return udp->dest == bpf_htons(53) ? XDP_DROP : XDP_PASS;
}
