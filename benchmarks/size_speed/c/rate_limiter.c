#include "headers.h"
#include "fixed.h"

#define MAX_REFILL_NS 1000000000ULL

__s64 rate_per_sec = 1000LL << 32;
__s64 burst = 1000LL << 32;
__s64 tokens = 1000LL << 32;
__u64 last_refill_ns = 0;
__u64 rate_limited = 0;

SEC("xdp")
int rate_limiter(struct xdp_md *ctx)
{
	struct headers h;
	__u64 now, last;

	parse_headers(ctx, &h);
	if (!h.udp && !h.tcp)
		return XDP_PASS;
	now = bpf_ktime_get_ns();
	last = last_refill_ns;
	if (now > last) {
		__u64 elapsed = now - last < MAX_REFILL_NS ? now - last : MAX_REFILL_NS;

		tokens = fx_min(burst, tokens + fx_mul(rate_per_sec, fx_seconds(elapsed)));
		last_refill_ns = now;
	}
	if (tokens < FX_ONE) {
		__sync_fetch_and_add(&rate_limited, 1);
		return XDP_DROP;
	}
	__sync_fetch_and_add(&tokens, -FX_ONE);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
