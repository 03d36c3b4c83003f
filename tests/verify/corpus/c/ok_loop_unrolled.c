// expect: accept -- fully unrolled loop over a MAC address
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_PASS;
    __u8 acc = 0;
#pragma unroll
    for (int i = 0; i < ETH_ALEN; i++) acc |= eth->h_dest[i];
    return acc ? XDP_PASS : XDP_DROP;
}
