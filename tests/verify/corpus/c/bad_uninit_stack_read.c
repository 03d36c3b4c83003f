// expect: accept -- (kernel, privileged) a load from never-written stack gives an unknown number
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r0 = *(u64 *)(r10 - 16); r0 &= 1; exit" ::: "memory");
}
