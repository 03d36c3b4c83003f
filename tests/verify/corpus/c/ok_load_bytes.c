// expect: accept -- copy packet bytes to the stack with a helper
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u8 buf[8];
    if (bpf_xdp_load_bytes(ctx, 0, buf, sizeof(buf))) return XDP_PASS;
    return buf[0] == 0xff ? XDP_DROP : XDP_PASS;
}
