#include "headers.h"

#define SERVICE_PORT 9000
/* random() >= 0.95: the 32 random bits against ceil(0.95 * 2**32) = 4080218932, the complement of
 * `random() < 0.95` (see fault_injection.c). */
#define DROP_THRESHOLD 4080218932U

__u64 fo_faults = 0;

SEC("xdp")
int simplebpf_fault_optimizable(struct xdp_md *ctx)
{
	struct headers h;
	__u16 dport;

	parse_headers(ctx, &h);
	if (!h.udp)
		return XDP_PASS;
	dport = bpf_ntohs(h.udp->dest);
	/* dport > 1023 is implied by dport == SERVICE_PORT, as in the DSL program */
	if (dport == SERVICE_PORT && dport > 1023 && bpf_get_prandom_u32() >= DROP_THRESHOLD) {
		__sync_fetch_and_add(&fo_faults, 1);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
