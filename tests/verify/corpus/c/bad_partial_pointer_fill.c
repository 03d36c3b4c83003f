// expect: reject -- reads 4 bytes of a spilled pointer
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("*(u64 *)(r10 - 8) = r1; r0 = *(u32 *)(r10 - 8); r0 &= 1; exit" ::: "memory");
}
