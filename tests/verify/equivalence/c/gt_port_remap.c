// ground truth subject: UDP destination-port remapping from a hash map, a length limit from an array, per-CPU drop counters
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 128); __type(key, __u16); __type(value, __u16); } remap SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 2); __type(key, __u32); __type(value, __u32); } limits SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } drops SEC(".maps");

INLINE int drop(__u32 why) {
    __u64 *c = bpf_map_lookup_elem(&drops, &why);
    if (c) *c += 1;
    return XDP_DROP;
}

SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return drop(0);
    if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end) return drop(1);
    if (ip->protocol != IPPROTO_UDP || ip->ihl != 5) return XDP_PASS;
    struct udphdr *uh = (void *)(ip + 1);
    if ((void *)(uh + 1) > end) return drop(1);
    __u32 k = 0;
    __u32 *max_len = bpf_map_lookup_elem(&limits, &k);
    if (max_len && *max_len && bpf_ntohs(uh->len) > *max_len) return drop(2);
    __u16 port = bpf_ntohs(uh->dest);
    __u16 *to = bpf_map_lookup_elem(&remap, &port);
    if (!to) return XDP_PASS;
    if (*to == 0) return drop(3);
    uh->dest = bpf_htons(*to);
    uh->check = 0;  /* UDP over IPv4: no checksum */
    return XDP_TX;
}
