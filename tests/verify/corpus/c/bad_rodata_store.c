// expect: reject -- a store into read-only global data (.rodata: libbpf freezes it, write into map forbidden)
#include "common.h"
const volatile __u32 limit = 100;
SEC("xdp") int prog(struct xdp_md *ctx) {
    *(volatile __u32 *)&limit = 7;
    return XDP_PASS;
}
char _license[] SEC("license") = "GPL";
