// expect: accept -- IPv6 next header
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    struct ipv6hdr *ip6 = (void *)(eth + 1);
    if ((void *)(ip6 + 1) > end) return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IPV6)) return XDP_PASS;
    if (ip6->nexthdr == IPPROTO_ICMPV6 && ip6->hop_limit == 255) return XDP_PASS;
    return ip6->daddr.s6_addr[0] == 0xff ? XDP_DROP : XDP_PASS;
}
