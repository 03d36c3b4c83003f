// expect: accept -- many live values across a helper call (spills and fills)
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    __u32 a = ip->saddr, b = ip->daddr, c = ip->id, d = ip->tot_len;
    __u64 t = bpf_ktime_get_ns();
    __u32 r = bpf_get_prandom_u32();
    return ((a ^ b ^ c ^ d ^ t ^ r) & 3) == 0 ? XDP_DROP : XDP_PASS;
}
