/* Boolean diamonds, as clang builds `a == X || a == Y` into a register (xdp-tutorial's proto_is_vlan):
 * the region threading's subject. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

static __always_inline int proto_is_vlan(__u16 h_proto) {
    return !!(h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD));
}

struct vlan_hdr { __be16 tci; __be16 proto; };

SEC("xdp") int diamonds(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end) return XDP_PASS;
    __u16 proto = eth->h_proto;
    struct vlan_hdr *v = (void *)(eth + 1);
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (!proto_is_vlan(proto)) break;
        if ((void *)(v + 1) > end) break;
        proto = v->proto;
        v++;
    }
    if (proto == bpf_htons(ETH_P_IP)) return XDP_DROP;
    return proto_is_vlan(proto) ? XDP_TX : XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
