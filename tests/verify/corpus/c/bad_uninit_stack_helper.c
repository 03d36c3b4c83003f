// expect: accept -- (kernel, privileged) a map key read by a helper from never-written stack
#include "common.h"
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4); __type(key, __u64); __type(value, __u64); } m SEC(".maps");
SEC("xdp") __attribute__((naked)) int prog(struct xdp_md *ctx) {
    asm volatile("r1 = %[m] ll; r2 = r10; r2 += -8; call 1; r0 = 2; exit" :: [m] "i"(&m) : "memory");
}
