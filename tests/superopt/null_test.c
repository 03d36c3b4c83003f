// xdp-tutorial basic03 in miniature: XDP_ABORTED (0) returned where the lookup gave NULL, through the
// register that also carries XDP_PASS: clang's `r1 = 0; if r0 == 0 goto out; ...; r1 = 2; out: r0 = r1;
// exit`. On the NULL way r0 is 0 already: the test may go to the exit itself, and `r1 = 0` dies.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

SEC("xdp")
int null_test(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index;  // may be past the array: NULL is possible
	__u64 *n = bpf_map_lookup_elem(&hits, &key);

	if (!n)
		return XDP_ABORTED;
	*n += 1;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
