#include "headers.h"
#include "fixed.h"

#define SERVICE_PORT 9000
#define ARPC_REQUEST 1
#define ARPC_RESPONSE 2

__s64 multiplier = 4080218931LL; /* 0.95 in Q32.32 (nearest) */
__s64 total = 0;
__s64 successes = 0;
__u64 rejected = 0;

SEC("xdp")
int admission_control(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct headers h;
	__u8 *kind;
	__s64 seen;

	parse_headers(ctx, &h);
	if (!h.udp)
		return XDP_PASS;
	kind = h.payload;
	if ((void *)(kind + 1) > data_end)
		return XDP_PASS;
	if (h.udp->source == bpf_htons(SERVICE_PORT) && *kind == ARPC_RESPONSE) {
		__sync_fetch_and_add(&successes, FX_ONE);
		return XDP_PASS;
	}
	if (h.udp->dest != bpf_htons(SERVICE_PORT) || *kind != ARPC_REQUEST)
		return XDP_PASS;
	/* reject when random() * (seen + 1) < seen - multiplier * successes (see the DSL's docstring) */
	seen = total;
	__sync_fetch_and_add(&total, FX_ONE);
	if (fx_mul((__s64)bpf_get_prandom_u32(), seen + FX_ONE) < seen - fx_mul(multiplier, successes)) {
		__sync_fetch_and_add(&rejected, 1);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
