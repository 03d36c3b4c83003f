// expect: accept -- decrement the IPv4 TTL in place
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    if (ip->ttl <= 1) return XDP_DROP;
    ip->ttl--;
    ip->check += bpf_htons(0x0100);
    return XDP_PASS;
}
