// expect: accept -- redirect to an interface
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) {
    if (ctx->ingress_ifindex == 1) return XDP_PASS;
    return bpf_redirect(1, 0);
}
