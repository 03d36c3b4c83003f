// expect: reject -- a loop whose exit depends on nothing the verifier can bound
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r0 = 0; r1 = 1; l1: r0 += 1; if r1 != 0 goto l1; r0 = 2; exit" ::: "memory");
}
