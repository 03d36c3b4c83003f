#include "headers.h"

/* random() < 0.95: the 32 random bits against ceil(0.95 * 2**32) */
#define PASS_THRESHOLD 4080218932U

__u64 injected_faults = 0;

SEC("xdp")
int fault_injection(struct xdp_md *ctx)
{
	struct headers h;

	parse_headers(ctx, &h);
	if (!h.udp && !h.tcp)
		return XDP_PASS;
	if (bpf_get_prandom_u32() < PASS_THRESHOLD)
		return XDP_PASS;
	__sync_fetch_and_add(&injected_faults, 1);
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
