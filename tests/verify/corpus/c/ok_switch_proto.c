// expect: accept -- a switch on the IP protocol
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    switch (ip->protocol) {
    case IPPROTO_TCP: return XDP_PASS;
    case IPPROTO_UDP: return ip->tos ? XDP_DROP : XDP_PASS;
    case IPPROTO_ICMP: return XDP_DROP;
    case 47: return XDP_TX;
    default: return XDP_ABORTED;
    }
}
