// expect: accept -- global variables (.bss, .data, .rodata)
#include "common.h"
__u64 seen = 0;
__u32 drop_port = 9;
const volatile __u32 limit = 1000;
SEC("xdp") int prog(struct xdp_md *ctx) {
    seen++;
    if (seen > limit) return XDP_DROP;
    return ctx->rx_queue_index == drop_port ? XDP_DROP : XDP_PASS;
}
