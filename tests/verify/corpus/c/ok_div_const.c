// expect: accept -- division and modulo by constants
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 len = ctx->data_end - ctx->data;
    __u32 blocks = len / 64, rest = len % 64;
    return blocks > 20 && rest == 0 ? XDP_DROP : XDP_PASS;
}
