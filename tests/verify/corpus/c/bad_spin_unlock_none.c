// expect: reject -- bpf_spin_unlock with no lock held
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    if (!v) return XDP_PASS;
    v->cnt++;
    bpf_spin_unlock(&v->lock);
    return XDP_PASS;
}
