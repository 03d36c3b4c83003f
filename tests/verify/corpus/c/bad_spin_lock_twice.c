// expect: reject -- a second bpf_spin_lock while one is held
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k1 = 0, k2 = 1;
    struct locked *a = bpf_map_lookup_elem(&locks, &k1);
    struct locked *b = bpf_map_lookup_elem(&locks, &k2);
    if (!a || !b) return XDP_PASS;
    bpf_spin_lock(&a->lock);
    bpf_spin_lock(&b->lock);
    a->cnt++;
    bpf_spin_unlock(&b->lock);
    bpf_spin_unlock(&a->lock);
    return XDP_PASS;
}
