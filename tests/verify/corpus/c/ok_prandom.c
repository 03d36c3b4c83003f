// expect: accept -- random early drop
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    return bpf_get_prandom_u32() % 100 < 5 ? XDP_DROP : XDP_PASS;
}
