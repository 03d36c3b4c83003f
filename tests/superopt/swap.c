/* Swap the MAC addresses and bounce: clang copies through the stack byte pairs at a time, which
   windows cut by the first three passes leave partly merged (the fourth pass's subject). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") int swap(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_PASS;
    __u8 saved[ETH_ALEN];
    __builtin_memcpy(saved, eth->h_source, ETH_ALEN);
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
    __builtin_memcpy(eth->h_dest, saved, ETH_ALEN);
    return XDP_TX;
}
char LICENSE[] SEC("license") = "GPL";
