#include "headers.h"

#define ALLOW 0
#define DENY 1

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} port_acl SEC(".maps");

__u64 denied_packets = 0;

SEC("xdp")
int port_acl_filter(struct xdp_md *ctx)
{
	struct headers h;
	__u16 dport;
	__u8 *verdict;

	parse_headers(ctx, &h);
	if (h.tcp)
		dport = bpf_ntohs(h.tcp->dest);
	else if (h.udp)
		dport = bpf_ntohs(h.udp->dest);
	else
		return XDP_PASS;
	verdict = bpf_map_lookup_elem(&port_acl, &dport);
	if (verdict && *verdict == DENY) {
		__sync_fetch_and_add(&denied_packets, 1);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
