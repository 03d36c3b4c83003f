// expect: reject -- a stack buffer indexed by an unchecked packet byte
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 1 > end) return XDP_PASS;
    volatile __u8 buf[16] = {};
    __u8 i = *(__u8 *)data;
    buf[i] = 1;
    return buf[0] ? XDP_DROP : XDP_PASS;
}
