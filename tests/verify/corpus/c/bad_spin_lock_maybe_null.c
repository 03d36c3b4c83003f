// expect: reject -- bpf_spin_lock on a lookup result not compared with NULL
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    bpf_spin_lock(&v->lock);
    bpf_spin_unlock(&v->lock);
    return v ? XDP_DROP : XDP_PASS;
}
