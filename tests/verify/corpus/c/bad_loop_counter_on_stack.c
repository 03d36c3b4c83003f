// expect: reject -- (kernel) safe, but the counter k lives at r10-4, a slot offset whose narrow stores the kernel does not track, so it cannot bound the loop
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8); __type(key, __u32); __type(value, __u64); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u64 total = 0;
    for (__u32 k = 0; k < 8; k++) {
        __u64 *v = bpf_map_lookup_elem(&m, &k);
        if (v) total += *v;
    }
    return total > 1000 ? XDP_DROP : XDP_PASS;
}
