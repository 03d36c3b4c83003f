#include "headers.h"
#include "fixed.h"

#define MAX_REFILL_NS 1000000000ULL

__s64 bytes_per_sec = 100000LL << 32;
__s64 burst_bytes = 100000LL << 32;
__s64 byte_tokens = 100000LL << 32;
__u64 last_refill_ns = 0;
__u64 dropped_packets = 0;
__u64 dropped_bytes = 0;

SEC("xdp")
int bandwidth_limiter(struct xdp_md *ctx)
{
	struct headers h;
	__u64 now, last, size;

	parse_headers(ctx, &h);
	if (!h.udp && !h.tcp)
		return XDP_PASS;
	now = bpf_ktime_get_ns();
	last = last_refill_ns;
	if (now > last) {
		__u64 elapsed = now - last < MAX_REFILL_NS ? now - last : MAX_REFILL_NS;

		byte_tokens = fx_min(burst_bytes, byte_tokens + fx_mul(bytes_per_sec, fx_seconds(elapsed)));
		last_refill_ns = now;
	}
	size = packet_len(ctx);
	if (byte_tokens < (__s64)(size << 32)) {
		__sync_fetch_and_add(&dropped_packets, 1);
		__sync_fetch_and_add(&dropped_bytes, size);
		return XDP_DROP;
	}
	__sync_fetch_and_add(&byte_tokens, -(__s64)(size << 32));
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
