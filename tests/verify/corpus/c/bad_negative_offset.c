// expect: reject -- reads the byte before the packet start
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 4 > end) return XDP_PASS;
    volatile int back = -1;
    return *(__u8 *)(data + back) ? XDP_DROP : XDP_PASS;
}
