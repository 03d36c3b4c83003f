// expect: reject -- a number passed where bpf_map_lookup_elem wants a map
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("*(u64 *)(r10 - 8) = r1; r1 = 0; r2 = r10; r2 += -8; call 1; r0 = 2; exit" ::: "memory");
}
