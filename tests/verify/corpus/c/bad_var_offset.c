// expect: reject -- a packet byte used as an offset with no check on the result
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 2 > end) return XDP_PASS;
    __u8 off = *(__u8 *)data;
    return *(__u8 *)(data + off) ? XDP_DROP : XDP_PASS;
}
