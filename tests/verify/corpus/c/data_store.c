// expect: accept -- a store into writable global data (.data), the neighbour of bad_rodata_store.c
#include "common.h"
volatile __u32 limit = 100;
SEC("xdp") int prog(struct xdp_md *ctx) {
    limit = 7;
    return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
