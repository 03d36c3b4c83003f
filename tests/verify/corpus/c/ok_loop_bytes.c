// expect: accept -- constant-bound loop over packet bytes, each access checked
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    __u32 sum = 0;
    for (int i = 0; i < 16; i++) {
        __u8 *p = data + i;
        if ((void *)(p + 1) > end) break;
        sum += *p;
    }
    return sum & 1 ? XDP_DROP : XDP_PASS;
}
