// expect: reject -- bpf_spin_lock on a field of the value that is not its lock
#include "spin_lock.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u32 k = 0;
    struct locked *v = bpf_map_lookup_elem(&locks, &k);
    if (!v) return XDP_PASS;
    bpf_spin_lock((struct bpf_spin_lock *)&v->cnt);
    v->pad++;
    bpf_spin_unlock((struct bpf_spin_lock *)&v->cnt);
    return XDP_PASS;
}
