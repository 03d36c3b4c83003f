// expect: reject -- map value used without a NULL check
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = ctx->rx_queue_index;
    __u64 *v = bpf_map_lookup_elem(&m, &k);
    *v += 1;
    return XDP_PASS;
}
