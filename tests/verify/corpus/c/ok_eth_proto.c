// expect: accept -- Ethernet header read after a bounds check
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_DROP;
    return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}
