// ok_stack_spill's hash in miniature: clang keeps the first helper's result in a new callee-saved register
// (`r6 = r0; r6 ^= r7`) where r7, the hash so far, dies: superopt/coalesce.py makes it `r7 ^= r0` and reads
// r7 for r6 after it.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int coalesce(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 *w = data;

	if (data + 34 > end)
		return XDP_PASS;
	__u64 h = w[6] ^ w[7];
	h ^= bpf_ktime_get_ns();
	h ^= bpf_get_prandom_u32();
	return (h & 3) ? XDP_PASS : XDP_DROP;
}

char _license[] SEC("license") = "GPL";
