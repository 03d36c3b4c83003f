// expect: accept -- packet length from data_end - data, no memory access
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (end - data < 64) return XDP_DROP;
    if (end - data > 1500) return XDP_ABORTED;
    return XDP_PASS;
}
