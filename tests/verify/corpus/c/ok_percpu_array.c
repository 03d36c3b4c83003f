// expect: accept -- per-CPU array
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, struct counter); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct counter *c = bpf_map_lookup_elem(&m, &k);
    if (!c) return XDP_ABORTED;
    c->packets += 1;
    c->bytes += ctx->data_end - ctx->data;
    return XDP_PASS;
}
