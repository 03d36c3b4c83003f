// expect: reject -- a helper call while the lock is held
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    if (!v) return XDP_PASS;
    bpf_spin_lock(&v->lock);
    v->cnt = bpf_ktime_get_ns();
    bpf_spin_unlock(&v->lock);
    return XDP_PASS;
}
