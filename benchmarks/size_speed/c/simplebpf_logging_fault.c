#include "headers.h"

#define SERVICE_PORT 9000

__s64 pass_probability = 4080218931LL; /* 0.95 in Q32.32 (nearest) */
__u64 fl_requests = 0;
__u64 fl_bytes = 0;
__u64 fl_dropped = 0;

SEC("xdp")
int simplebpf_logging_fault(struct xdp_md *ctx)
{
	struct headers h;

	parse_headers(ctx, &h);
	if (!h.udp || h.udp->dest != bpf_htons(SERVICE_PORT))
		return XDP_PASS;
	__sync_fetch_and_add(&fl_requests, 1);
	__sync_fetch_and_add(&fl_bytes, packet_len(ctx));
	/* random() is the 32 random bits read as Q32.32 */
	if ((__s64)bpf_get_prandom_u32() < pass_probability)
		return XDP_PASS;
	__sync_fetch_and_add(&fl_dropped, 1);
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
