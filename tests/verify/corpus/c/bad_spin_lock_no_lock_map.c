// expect: reject -- bpf_spin_lock on a map value whose BTF has no struct bpf_spin_lock
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct plain *v = bpf_map_lookup_elem(&nolock, &k);
    if (!v) return XDP_PASS;
    bpf_spin_lock((struct bpf_spin_lock *)&v->lock);
    v->cnt++;
    bpf_spin_unlock((struct bpf_spin_lock *)&v->lock);
    return XDP_PASS;
}
