// A loader's setting in .rodata (libxdp's dispatcher: `volatile const` configuration written before the
// program is loaded): the object holds 0, so the path prover, reading the object's bytes, proves the test
// of it unneeded; superopt/drops.py must leave it, since the loaded program may see another value.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

static volatile const __u32 enabled = 0;

SEC("xdp")
int drops_rodata(struct xdp_md *ctx)
{
	if (!enabled)
		return XDP_PASS;
	return ctx->rx_queue_index & 1 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
