// expect: reject -- index check uses <= instead of <
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct slots); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0, i = ctx->rx_queue_index;
    struct slots *s = bpf_map_lookup_elem(&m, &k);
    if (!s) return XDP_PASS;
    if (i <= 8) s->v[i] = 1;
    return XDP_PASS;
}
