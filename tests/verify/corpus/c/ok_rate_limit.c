// expect: accept -- token bucket in an array value, clocked by ktime
#include "common.h"
struct bucket { __u64 last; __u64 tokens; };
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct bucket); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct bucket *b = bpf_map_lookup_elem(&m, &k);
    if (!b) return XDP_PASS;
    __u64 now = bpf_ktime_get_ns();
    __u64 add = (now - b->last) / 1000000;
    b->tokens = b->tokens + add > 100 ? 100 : b->tokens + add;
    b->last = now;
    if (b->tokens == 0) return XDP_DROP;
    b->tokens--;
    return XDP_PASS;
}
