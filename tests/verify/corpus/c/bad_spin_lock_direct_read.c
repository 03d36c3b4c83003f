// expect: reject -- a load of the bpf_spin_lock's own bytes
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    if (!v) return XDP_PASS;
    return *(volatile __u32 *)&v->lock ? XDP_DROP : XDP_PASS;
}
