// expect: accept -- map value array indexed by a masked packet byte
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct slots); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    if (data + 1 > end) return XDP_PASS;
    __u32 k = 0, i = *(__u8 *)data & 7;
    struct slots *s = bpf_map_lookup_elem(&m, &k);
    if (!s) return XDP_PASS;
    s->v[i] += 1;
    return XDP_PASS;
}
