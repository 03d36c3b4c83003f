// ground truth subject: answer IPv4 ICMP echo requests in place (swap addresses, fix the checksum, XDP_TX), decrement TTL otherwise
#include "common.h"
__u32 min_ttl = 2;      /* .data: packets at or below it are dropped */
__u64 replies = 0;      /* .bss */
__u64 dropped = 0;

INLINE __u16 csum_fold(__u32 sum) {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (__u16)~sum;
}

SEC("xdp") int prog(struct xdp_md *ctx) {
    void *data = pkt_data(ctx), *end = pkt_end(ctx);
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
    struct iphdr *ip = (void *)(eth + 1);
    if ((void *)(ip + 1) > end || ip->ihl != 5) return XDP_PASS;
    if (ip->protocol == IPPROTO_ICMP) {
        struct icmphdr *icmp = (void *)(ip + 1);
        if ((void *)(icmp + 1) > end) return XDP_DROP;
        if (icmp->type == ICMP_ECHO && icmp->code == 0) {
            __u8 mac[ETH_ALEN];
            __builtin_memcpy(mac, eth->h_source, ETH_ALEN);
            __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
            __builtin_memcpy(eth->h_dest, mac, ETH_ALEN);
            __be32 a = ip->saddr;
            ip->saddr = ip->daddr;
            ip->daddr = a;
            icmp->type = 0;
            /* the type went from 8 to 0: add 8 << 8 back into the one's-complement sum */
            __u32 sum = (__u16)~icmp->checksum;
            sum += (__u16)~bpf_htons(ICMP_ECHO << 8);
            icmp->checksum = csum_fold(sum);
            replies++;
            return XDP_TX;
        }
    }
    if (ip->ttl <= min_ttl) {
        dropped++;
        return XDP_DROP;
    }
    __u32 check = ip->check;
    check += bpf_htons(0x0100);
    ip->check = (__u16)(check + (check >= 0xffff));
    ip->ttl--;
    return XDP_PASS;
}
