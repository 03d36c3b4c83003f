// A packet word loaded, added to and stored back: the shape of a map value's counter, on a pointer the kernel
// allows no atomic operation through. The optimiser must leave it plain.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int packet_add(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	__u32 *word = data;

	if (data + 8 > end)
		return XDP_PASS;
	word[1] += 7;
	return XDP_TX;
}

char _license[] SEC("license") = "GPL";
