// expect: reject -- a constant offset past the 8-byte map value
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    __u64 *v = bpf_map_lookup_elem(&m, &k);
    if (!v) return XDP_PASS;
    volatile int idx = 2;
    return v[idx] ? XDP_DROP : XDP_PASS;
}
