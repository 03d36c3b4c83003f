// expect: accept -- redirect through a devmap
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 4); __type(key, __u32); __type(value, __u32); } tx SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    return bpf_redirect_map(&tx, ctx->rx_queue_index & 3, XDP_PASS);
}
