/* The superoptimizer's test subject: a BTF map, a static subprogram in .text (a bpf-to-bpf call with its
 * relocation), line info, and the stores of constants clang spells as register stores. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct key { __u32 proto; __u32 zero; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, struct key);
         __type(value, __u64); } seen SEC(".maps");

static __attribute__((noinline)) int count(__u8 proto) {
    struct key k = {0, 0};
    k.proto = proto;
    __u64 one = 1, *v = bpf_map_lookup_elem(&seen, &k);
    if (v) *v += 1; else bpf_map_update_elem(&seen, &k, &one, BPF_ANY);
    return 0;
}

static __attribute__((noinline)) int classify(__u8 proto, __u32 len) {
    if (proto == 17) return len > 100 ? XDP_DROP : XDP_PASS;
    return proto == 6 ? XDP_PASS : XDP_TX;
}

SEC("xdp") int sample(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip = data + sizeof(*eth);
    if ((void *)(ip + 1) > end) return XDP_PASS;
    if (eth->h_proto != bpf_htons(ETH_P_IP)) return XDP_PASS;
    count(ip->protocol);
    return classify(ip->protocol, (__u32)(end - data));
}
char LICENSE[] SEC("license") = "GPL";
