// A 16-bit field or a byte loaded on either side of a branch and masked after the join: the mask is redundant,
// which only an analysis across the blocks (superopt/windows.known_widths) can see. The empty asm keeps
// clang from knowing it, so the object keeps the mask.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int widths(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	unsigned short *p = data;
	unsigned long v;

	if (data + 20 > end)
		return XDP_PASS;
	if (((unsigned char *)data)[0] == 1)
		v = p[1];
	else
		v = ((unsigned char *)data)[5];
	asm volatile("" : "+r"(v));
	return (v & 0xffff) == 0x800 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
