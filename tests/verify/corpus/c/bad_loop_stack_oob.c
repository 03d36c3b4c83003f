// expect: reject -- a loop writes 24 bytes below the last stack slot it was given
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r1 = r10; r2 = 0; l3: *(u64 *)(r1 + 0) = r2; r1 += 8; r2 += 1; if r2 < 3 goto l3; r0 = 2; exit"
                 ::: "memory");
}
