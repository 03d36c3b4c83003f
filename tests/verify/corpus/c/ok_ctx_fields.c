// expect: accept -- every readable xdp_md field
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 a = ctx->ingress_ifindex, b = ctx->rx_queue_index;
    void *meta = (void *)(long)ctx->data_meta, *data = pkt_data(ctx);
    return (a + b) % 2 == 0 && meta <= data ? XDP_PASS : XDP_DROP;
}
