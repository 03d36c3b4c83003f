// expect: reject -- a packet pointer used after bpf_xdp_adjust_head invalidated it
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 20 > end) return XDP_PASS;
    bpf_xdp_adjust_head(ctx, 4);
    return *(volatile __u8 *)(data + 10) ? XDP_DROP : XDP_PASS;
}
