// expect: accept -- a fully initialised struct key on the stack
#include "common.h"
struct key { __u32 a; __u32 b; __u64 c; };
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, struct key); __type(value, __u32); } m SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    struct key k = { .a = ctx->ingress_ifindex, .b = ctx->rx_queue_index, .c = 42 };
    __u32 *v = bpf_map_lookup_elem(&m, &k);
    return v && *v == 1 ? XDP_DROP : XDP_PASS;
}
