// expect: accept -- hash map keyed by the IPv4 source address
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 1024); __type(key, __u32); __type(value, struct counter); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    __u32 key = ip->saddr;
    struct counter *c = bpf_map_lookup_elem(&m, &key);
    if (c) {
        c->packets++;
        c->bytes += end - data;
    } else {
        struct counter init = {1, end - data};
        bpf_map_update_elem(&m, &key, &init, BPF_ANY);
    }
    return XDP_PASS;
}
