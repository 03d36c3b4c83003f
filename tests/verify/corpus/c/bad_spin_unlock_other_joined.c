// expect: reject -- the lock of a value from one of two lookups, unlocked through a third lookup's value
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = ctx->rx_queue_index & 3, k2 = 3;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    if (!v) {
        v = bpf_map_lookup_elem(&alocks, &k2);
        if (!v) return XDP_PASS;
    }
    struct locked *w = bpf_map_lookup_elem(&locks, &k2);
    if (!w) return XDP_PASS;
    bpf_spin_lock(&v->lock);
    v->cnt++;
    bpf_spin_unlock(&w->lock);
    return XDP_PASS;
}
