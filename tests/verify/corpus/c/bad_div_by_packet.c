// expect: accept -- (kernel) division by a possibly-zero packet byte: BPF defines x/0 = 0; check_division flags it
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 2 > end) return XDP_PASS;
    __u32 a = *(__u8 *)data, b = *(__u8 *)(data + 1);
    return (a / b) & 1 ? XDP_DROP : XDP_PASS;
}
