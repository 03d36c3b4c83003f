// expect: accept -- checksum difference of two stack words
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __be32 from[2] = {1, 2}, to[2] = {3, 4};
    __s64 d = bpf_csum_diff(from, sizeof(from), to, sizeof(to), 0);
    return d == 0 ? XDP_DROP : XDP_PASS;
}
