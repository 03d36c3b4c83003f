// expect: reject -- Ethernet header read without any bounds check
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    struct ethhdr *eth = pkt_data(ctx);
    return eth->h_proto == bpf_htons(ETH_P_IP) ? XDP_PASS : XDP_DROP;
}
