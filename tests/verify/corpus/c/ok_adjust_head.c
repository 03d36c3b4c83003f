// expect: accept -- pop a 4-byte header, then re-derive and re-check the pointers
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    if (bpf_xdp_adjust_head(ctx, 4)) return XDP_DROP;
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_DROP;
    return eth->h_proto ? XDP_PASS : XDP_DROP;
}
