#include "headers.h"

#define SERVICE_PORT 9000

__u64 max_pending = 100;
__u64 pending_requests = 0;
__u64 rejected_requests = 0;

SEC("xdp")
int circuit_breaker(struct xdp_md *ctx)
{
	struct headers h;

	parse_headers(ctx, &h);
	if (!h.udp)
		return XDP_PASS;
	if (h.udp->dest == bpf_htons(SERVICE_PORT)) {
		if (pending_requests <= max_pending) {
			__sync_fetch_and_add(&pending_requests, 1);
			return XDP_PASS;
		}
		__sync_fetch_and_add(&rejected_requests, 1);
		return XDP_DROP;
	}
	if (h.udp->source == bpf_htons(SERVICE_PORT) && pending_requests > 0)
		__sync_fetch_and_add(&pending_requests, -1);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
