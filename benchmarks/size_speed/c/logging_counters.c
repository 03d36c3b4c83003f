#include "headers.h"

__u64 requests = 0;
__u64 request_bytes = 0;

SEC("xdp")
int logging_counters(struct xdp_md *ctx)
{
	struct headers h;

	parse_headers(ctx, &h);
	if (h.udp || h.tcp) {
		__sync_fetch_and_add(&requests, 1);
		__sync_fetch_and_add(&request_bytes, packet_len(ctx));
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
