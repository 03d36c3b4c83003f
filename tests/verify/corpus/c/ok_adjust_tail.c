// expect: accept -- trim the packet
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (end - data > 100) bpf_xdp_adjust_tail(ctx, -4);
    return XDP_PASS;
}
