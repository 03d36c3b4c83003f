// expect: accept -- LRU hash with a struct key built on the stack
#include "common.h"
struct flow { __u32 src, dst; __u16 sport, dport; __u32 proto; };
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 128); __type(key, struct flow); __type(value, __u64); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct iphdr *ip = data + sizeof(struct ethhdr);
    struct udphdr *udp = (void *)(ip + 1);
    if ((void *)(udp + 1) > end) return XDP_PASS;
    struct flow f = {};
    f.src = ip->saddr; f.dst = ip->daddr; f.sport = udp->source; f.dport = udp->dest; f.proto = ip->protocol;
    __u64 *seen = bpf_map_lookup_elem(&m, &f);
    if (seen) { __sync_fetch_and_add(seen, 1); return XDP_PASS; }
    __u64 one = 1;
    bpf_map_update_elem(&m, &f, &one, BPF_ANY);
    return XDP_PASS;
}
