#include "headers.h"

#define SERVICE_PORT 9000

__u64 logged_requests = 0;
__u64 logged_bytes = 0;

SEC("xdp")
int simplebpf_logging(struct xdp_md *ctx)
{
	struct headers h;

	parse_headers(ctx, &h);
	if (h.udp && h.udp->dest == bpf_htons(SERVICE_PORT)) {
		__sync_fetch_and_add(&logged_requests, 1);
		__sync_fetch_and_add(&logged_bytes, packet_len(ctx));
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
