// expect: accept -- TCP ports behind Ethernet + IPv4 without options
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    struct iphdr *ip = (void *)(eth + 1);
    struct tcphdr *tcp = (void *)(ip + 1);
    if ((void *)(tcp + 1) > end) return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->protocol != IPPROTO_TCP) return XDP_PASS;
    if (tcp->dest == bpf_htons(22) || tcp->source == bpf_htons(23)) return XDP_DROP;
    return XDP_PASS;
}
