#include "headers.h"

#define SERVICE_PORT 9000
/* random() >= 0.95 as the DSL decides it: the 32 random bits against 0.95 in Q32.32, rounded to nearest
 * (4080218931). Note that `random() < 0.95` compares with the ceiling, 4080218932 (see fault_injection.c),
 * so at r = 4080218931 both `<` and `>=` hold in the DSL. */
#define DROP_THRESHOLD 4080218931U

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
