// expect: accept -- bpf_printk with a constant format in .rodata
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    bpf_printk("q=%u", ctx->rx_queue_index);
    return XDP_PASS;
}
