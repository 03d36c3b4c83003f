// clang sets the early return's XDP_PASS before the bounds test and again at the end: the test's jump to the
// exit may go to the final `r0 = 2; exit` instead, and the first `r0 = 2` dies (superopt/exit_tails.py).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int exit_tails(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	unsigned char *p = data;

	if (data + 34 > end)
		return XDP_PASS;
	if (p[22] < 2)
		return XDP_DROP;
	p[22]--;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
