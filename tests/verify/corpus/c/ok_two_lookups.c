// expect: accept -- two lookups in two maps, each checked
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); } cfg SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 32); __type(key, __u32); __type(value, __u64); } hits SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 z = 0;
    __u32 *port = bpf_map_lookup_elem(&cfg, &z);
    if (!port) return XDP_PASS;
    __u32 key = *port;
    __u64 *h = bpf_map_lookup_elem(&hits, &key);
    if (!h) return XDP_PASS;
    *h += 1;
    return XDP_PASS;
}
