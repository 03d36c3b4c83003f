// expect: reject -- reads past the end of xdp_md
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    return *((__u32 *)ctx + 12) ? XDP_PASS : XDP_DROP;
}
