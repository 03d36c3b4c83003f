/* Boolean diamonds around helper calls: a region that calls a helper (the region threading's subject). */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

static __always_inline int proto_is_vlan(__u16 h_proto) {
    return !!(h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD));
}

SEC("xdp") int calls(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_PASS;
    __u16 proto = eth->h_proto;
    int vlan = proto_is_vlan(proto);
    __u32 r = bpf_get_prandom_u32();
    int ip = proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6);
    if (vlan && (r & 1)) return XDP_DROP;
    if (ip | vlan) return (r & 2) ? XDP_TX : XDP_PASS;
    return XDP_ABORTED;
}
char LICENSE[] SEC("license") = "GPL";
