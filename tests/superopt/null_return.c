/* A lookup's NULL way returning a register known to hold 0 (xdp-tutorial's xdp_stats_record_action:
   ``r6 = 0`` is the key, and the action returned where the lookup failed), written in BPF assembly so the
   compiler keeps the shape. On that way r0 already holds 0: threading the NULL test straight to the exit
   costs nothing and leaves ``r6 = 0`` dead, which the search then drops. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __type(key, __u32);
    __type(value, __u64);
    __uint(max_entries, 5);
} counts SEC(".maps");

SEC("xdp") __attribute__((naked)) int null_return(void) {
    asm volatile (
        "r6 = 0;"
        "*(u32 *)(r10 - 4) = r6;"
        "r2 = r10;"
        "r2 += -4;"
        "r1 = %[counts] ll;"
        "call 1;"
        "if r0 == 0 goto l_out%=;"
        "r1 = *(u64 *)(r0 + 0);"
        "r1 += 1;"
        "*(u64 *)(r0 + 0) = r1;"
        "r6 = *(u32 *)(r10 - 4);"
    "l_out%=:"
        "r0 = r6;"
        "exit;"
        :: [counts]"i"(&counts) : "memory");
}

char _license[] SEC("license") = "GPL";
