/* A register copy each way into a join already made (clang's header cursor copied into the register an
   exit reads, on each side of a test): the copies pass's subject, written in BPF assembly so the compiler
   keeps the shape. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp") __attribute__((naked)) int copies(void) {
    asm volatile (
        "r2 = *(u32 *)(r1 + 0);"
        "r3 = *(u32 *)(r1 + 4);"
        "r0 = 2;"
        "r4 = r2;"
        "r4 += 14;"
        "if r4 > r3 goto l_out%=;"
        "r5 = *(u8 *)(r2 + 12);"
        "r1 = r2;"
        "if r5 == 0x81 goto l_vlan%=;"
        "r0 = 1;"
        "goto l_join%=;"
    "l_vlan%=:"
        "r0 = 3;"
    "l_join%=:"
        "r1 = r2;"
        "r1 += 14;"
        "r4 = *(u8 *)(r1 - 1);"
        "if r4 != 0 goto l_out%=;"
        "r0 = 2;"
    "l_out%=:"
        "exit;"
        ::: "memory");
}
char LICENSE[] SEC("license") = "GPL";
