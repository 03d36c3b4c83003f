// expect: accept -- signed lower and upper checks before indexing
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct slots); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    int i = (int)ctx->rx_queue_index - 4;
    struct slots *s = bpf_map_lookup_elem(&m, &k);
    if (!s) return XDP_PASS;
    if (i >= 0 && i < 8) return s->v[i] ? XDP_DROP : XDP_PASS;
    return XDP_PASS;
}
