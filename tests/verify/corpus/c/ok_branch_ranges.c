// expect: accept -- two paths prove different packet lengths before a common read
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    __u8 *p;
    if (ctx->rx_queue_index & 1) {
        if (data + 40 > end) return XDP_PASS;
        p = data + 32;
    } else {
        if (data + 60 > end) return XDP_PASS;
        p = data + 52;
    }
    return p[7] == 1 ? XDP_DROP : XDP_PASS;
}
