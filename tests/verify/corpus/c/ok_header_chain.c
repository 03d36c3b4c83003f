// expect: accept -- Ethernet, IPv4 with options, then TCP flags
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP) return XDP_PASS;
    __u32 hl = ip->ihl * 4;
    if (hl < 20 || hl > 60) return XDP_DROP;
    struct tcphdr *tcp = (void *)ip + hl;
    if ((void *)(tcp + 1) > end) return XDP_PASS;
    return tcp->syn && !tcp->ack ? XDP_DROP : XDP_PASS;
}
