// expect: reject -- r10 is read-only
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r10 = 0; r0 = 2; exit" ::: "memory");
}
