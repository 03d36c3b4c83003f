// expect: accept -- ICMP echo filter
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    struct icmphdr *icmp = (void *)(ip + 1);
    if ((void *)(icmp + 1) > end) return XDP_PASS;
    if (ip->protocol == IPPROTO_ICMP && icmp->type == ICMP_ECHO) return XDP_DROP;
    return XDP_PASS;
}
