// expect: accept -- an array value's lock, released on each of two branches before the paths meet
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 1;
    int action = XDP_PASS;
    struct locked *v = bpf_map_lookup_elem(&alocks, &k);
    if (!v) return XDP_PASS;
    bpf_spin_lock(&v->lock);
    if (v->cnt > 100) {
        action = XDP_DROP;
        bpf_spin_unlock(&v->lock);
        goto out;
    }
    v->cnt += ctx->ingress_ifindex;
    bpf_spin_unlock(&v->lock);
out:
    return action;
}
