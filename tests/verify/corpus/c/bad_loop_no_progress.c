// expect: reject -- a counter loop whose counter is never incremented
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r2 = 0; r0 = 2; l2: r0 += 0; if r2 < 10 goto l2; exit" ::: "memory");
}
