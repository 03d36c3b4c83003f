// expect: accept -- send an event to a ring buffer
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096); } rb SEC(".maps");
SEC("xdp") int prog(struct xdp_md *ctx) {
    __u64 ev[2] = { ctx->ingress_ifindex, ctx->data_end - ctx->data };
    bpf_ringbuf_output(&rb, ev, sizeof(ev), 0);
    return XDP_PASS;
}
