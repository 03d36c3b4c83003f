// expect: reject -- checks 14 bytes, reads the 15th
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 14 > end) return XDP_PASS;
    return *(__u8 *)(data + 14) == 0x45 ? XDP_PASS : XDP_DROP;
}
