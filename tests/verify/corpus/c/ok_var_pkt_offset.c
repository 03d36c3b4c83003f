// expect: accept -- a variable offset read from the packet, range-checked before use
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 1 > end) return XDP_PASS;
    __u8 off = *(__u8 *)data;
    if (off > 64) return XDP_DROP;
    __u8 *p = data + off;
    if ((void *)(p + 2) > end) return XDP_PASS;
    return p[1] == 0 ? XDP_DROP : XDP_PASS;
}
