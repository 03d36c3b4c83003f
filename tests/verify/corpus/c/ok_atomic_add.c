// expect: accept -- atomic add on a map value
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct counter); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct counter *c = bpf_map_lookup_elem(&m, &k);
    if (!c) return XDP_PASS;
    __sync_fetch_and_add(&c->packets, 1);
    __sync_fetch_and_add(&c->bytes, ctx->data_end - ctx->data);
    return XDP_PASS;
}
