// expect: accept -- the lock of a value from one of two lookups (found, or inserted and looked up again)
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = ctx->rx_queue_index & 3;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    if (!v) {
        struct locked fresh = {};
        bpf_map_update_elem(&locks, &k, &fresh, BPF_NOEXIST);
        v = bpf_map_lookup_elem(&locks, &k);
        if (!v) return XDP_PASS;
    }
    bpf_spin_lock(&v->lock);
    v->cnt++;
    bpf_spin_unlock(&v->lock);
    return XDP_PASS;
}
