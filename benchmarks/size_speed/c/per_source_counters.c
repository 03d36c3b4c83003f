#include "headers.h"

struct source_stats_value {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct source_stats_value);
} source_stats SEC(".maps");

SEC("xdp")
int per_source_counters(struct xdp_md *ctx)
{
	struct headers h;
	struct source_stats_value *seen;
	__u32 src;

	parse_headers(ctx, &h);
	if (!h.ip4)
		return XDP_PASS;
	src = bpf_ntohl(h.ip4->saddr);
	seen = bpf_map_lookup_elem(&source_stats, &src);
	if (seen) {
		seen->packets += 1;
		seen->bytes += packet_len(ctx);
	} else {
		struct source_stats_value fresh = { .packets = 1, .bytes = packet_len(ctx) };

		bpf_map_update_elem(&source_stats, &src, &fresh, BPF_ANY);
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
