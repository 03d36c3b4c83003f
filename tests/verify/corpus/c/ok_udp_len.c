// expect: accept -- UDP length field compared against the packet size
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > end) return XDP_PASS;
    if (ip->protocol != IPPROTO_UDP) return XDP_PASS;
    __u16 len = bpf_ntohs(udp->len);
    return len > (end - (void *)udp) ? XDP_DROP : XDP_PASS;
}
