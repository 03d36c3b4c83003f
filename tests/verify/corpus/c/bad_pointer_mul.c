// expect: reject -- multiplying a pointer
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r2 = *(u32 *)(r1 + 0); r2 *= 2; r0 = 2; exit" ::: "memory");
}
