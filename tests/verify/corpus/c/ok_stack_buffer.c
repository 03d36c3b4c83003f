// expect: accept -- a stack buffer filled then read at a bounded index
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u8 buf[16];
    __builtin_memset(buf, 0, sizeof(buf));
    buf[3] = 7;
    __u32 i = ctx->rx_queue_index & 15;
    return buf[i] == 7 ? XDP_DROP : XDP_PASS;
}
