// expect: accept -- lock a map value's bpf_spin_lock, update the value, unlock it
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = ctx->rx_queue_index & 3;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    if (!v) return XDP_PASS;
    bpf_spin_lock(&v->lock);
    v->cnt++;
    bpf_spin_unlock(&v->lock);
    return XDP_PASS;
}
