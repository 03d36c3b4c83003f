// ok_ipv4_ihl in miniature: clang checks the Ethernet header's end against data_end, then the IPv4 header's,
// with nothing read between (`r1 = r3; r1 += 14; if r1 > r2 goto out; r3 += 34; if r3 > r2 goto out`):
// where the first check is taken the second is too, so superopt/drops.py drops the first.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int drops(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	return ip->ttl < 2 ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
