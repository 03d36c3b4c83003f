// expect: accept
#include "common.h"
SEC("xdp") int prog(struct xdp_md *ctx) { return XDP_PASS; }
