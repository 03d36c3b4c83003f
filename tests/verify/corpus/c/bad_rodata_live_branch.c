// expect: reject -- the same branch on read-only global data holding 1 is live: the unchecked packet read behind it is refused
#include "common.h"
const volatile __u32 debug = 1;
SEC("xdp") int prog(struct xdp_md *ctx) {
    if (debug) {
        unsigned char *data = (unsigned char *)(long)ctx->data;
        return data[0];
    }
    return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
