// expect: reject -- an exit on a path that still holds the lock
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    if (!v) return XDP_PASS;
    bpf_spin_lock(&v->lock);
    if (v->cnt > 5)
        return XDP_DROP;
    v->cnt++;
    bpf_spin_unlock(&v->lock);
    return XDP_PASS;
}
