// expect: reject -- unlock through the value of another lookup than the one locked (another lock)
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k1 = 0, k2 = 1;
    struct locked *a = bpf_map_lookup_elem(&locks, &k1);
    if (!a) return XDP_PASS;
    struct locked *b = bpf_map_lookup_elem(&locks, &k2);
    if (!b) return XDP_PASS;
    bpf_spin_lock(&a->lock);
    a->cnt++;
    bpf_spin_unlock(&b->lock);
    return XDP_PASS;
}
