// xdp-tutorial's xdp_stats_record_action in miniature: a map value's packet and byte counters each loaded,
// added to and stored back (clang keeps `rec->packets++` as three instructions, `rec->bytes += len` as
// three after the length), which an atomic add does in one.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct rec {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct rec);
} stats SEC(".maps");

SEC("xdp")
int counters(struct xdp_md *ctx)
{
	__u32 key = XDP_PASS;
	struct rec *rec = bpf_map_lookup_elem(&stats, &key);

	if (!rec)
		return XDP_ABORTED;
	rec->packets++;
	rec->bytes += ctx->data_end - ctx->data;
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
