// expect: reject -- r0 is returned without ever being written
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r2 = r3; r0 = 2; if r2 > 0 goto +1; r0 = r4; exit" ::: "memory");
}
