// expect: reject -- a helper told to write 16 bytes into an 8-byte stack buffer at the top of the frame
#include "common.h"
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r2 = 0; r3 = r10; r3 += -8; r4 = 16; call 189; r0 = 2; exit" ::: "memory");
}
