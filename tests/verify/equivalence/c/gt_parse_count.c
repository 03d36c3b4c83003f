// ground truth subject: Ethernet/IPv4/IPv6 parser, per-protocol array counters, per-port hash counters, .bss totals
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 8); __type(key, __u32); __type(value, struct counter); } by_proto SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 256); __type(key, __u16); __type(value, __u64); } by_port SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, __u16); __type(value, __u8); } blocked SEC(".maps");
__u64 total_packets = 0;
__u64 total_bytes = 0;
__u32 last_len = 0;

SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_ABORTED;
    __u64 len = end - data;
    total_packets++;
    total_bytes += len;
    last_len = len;
    __u32 slot = 0;
    __u8 proto = 0;
    void *l4 = 0;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end) return XDP_DROP;
        if (ip->ihl < 5) return XDP_DROP;
        l4 = (void *)ip + ip->ihl * 4;
        proto = ip->protocol;
        slot = 1;
    } else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end) return XDP_DROP;
        l4 = ip6 + 1;
        proto = ip6->nexthdr;
        slot = 2;
    }
    if (slot && (proto == IPPROTO_TCP || proto == IPPROTO_UDP)) {
        slot += proto == IPPROTO_TCP ? 2 : 4;
        struct udphdr *uh = l4;  /* TCP and UDP both start with the two ports */
        if ((void *)(uh + 1) > end) return XDP_PASS;
        __u16 dport = bpf_ntohs(uh->dest);
        __u8 *b = bpf_map_lookup_elem(&blocked, &dport);
        if (b && *b) return XDP_DROP;
        __u64 *c = bpf_map_lookup_elem(&by_port, &dport);
        if (c) {
            __sync_fetch_and_add(c, 1);
        } else {
            __u64 one = 1;
            bpf_map_update_elem(&by_port, &dport, &one, BPF_ANY);
        }
    }
    struct counter *pc = bpf_map_lookup_elem(&by_proto, &slot);
    if (pc) {
        pc->packets++;
        pc->bytes += len;
    }
    return proto == IPPROTO_ICMP ? XDP_TX : XDP_PASS;
}
