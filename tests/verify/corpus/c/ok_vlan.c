// expect: accept -- optional 802.1Q tag: the L3 offset is 14 or 18
#include "common.h"
struct vlan { __be16 tci; __be16 proto; };
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_PASS;
    __u16 proto = eth->h_proto;
    void *l3 = eth + 1;
    if (proto == bpf_htons(ETH_P_8021Q)) {
        struct vlan *v = l3;
        if ((void *)(v + 1) > end) return XDP_PASS;
        proto = v->proto;
        l3 = v + 1;
    }
    if (proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
    struct iphdr *ip = l3;
    if ((void *)(ip + 1) > end) return XDP_PASS;
    return ip->ttl < 2 ? XDP_DROP : XDP_PASS;
}
