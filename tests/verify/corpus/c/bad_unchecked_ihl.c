// expect: reject -- the L4 header at ihl*4 is read after checking only the fixed IPv4 header
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) + sizeof(struct udphdr) > end) return XDP_PASS;
    struct udphdr *udp = (void *)ip + ip->ihl * 4;
    return udp->dest == bpf_htons(53) ? XDP_DROP : XDP_PASS;
}
