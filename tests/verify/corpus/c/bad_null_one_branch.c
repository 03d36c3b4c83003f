// expect: reject -- the NULL check guards only one of two uses
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 1;
    __u64 *v = bpf_map_lookup_elem(&m, &k);
    if (ctx->rx_queue_index) {
        if (!v) return XDP_PASS;
        *v = 1;
    } else {
        *v = 2;
    }
    return XDP_PASS;
}
