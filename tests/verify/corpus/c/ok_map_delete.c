// expect: accept -- delete a key taken from the packet
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, __u32); __type(value, __u32); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 18 > end) return XDP_PASS;
    __u32 k = *(__u32 *)(data + 14);
    bpf_map_delete_elem(&m, &k);
    return XDP_PASS;
}
