// expect: accept -- per-CPU hash keyed by protocol
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 256); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    __u32 k = ip->protocol;
    __u64 one = 1, *v = bpf_map_lookup_elem(&m, &k);
    if (v) *v += 1; else bpf_map_update_elem(&m, &k, &one, BPF_NOEXIST);
    return XDP_PASS;
}
