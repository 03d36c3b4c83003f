// expect: accept -- a branch on read-only global data that holds 0 is dead: the kernel reads a frozen map's constant offset as its number (bpf_map_direct_read) and never verifies the unchecked packet read behind it
#include "common.h"
const volatile __u32 debug = 0;
SEC("xdp") int prog(struct xdp_md *ctx) {
    if (debug) {
        unsigned char *data = (unsigned char *)(long)ctx->data;
        return data[0];
    }
    return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
