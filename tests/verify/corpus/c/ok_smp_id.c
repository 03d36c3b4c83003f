// expect: accept -- per-CPU slot chosen by the processor id, bounds-checked
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, struct slots); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0, cpu = bpf_get_smp_processor_id();
    struct slots *s = bpf_map_lookup_elem(&m, &k);
    if (!s || cpu >= 8) return XDP_PASS;
    s->v[cpu]++;
    return XDP_PASS;
}
