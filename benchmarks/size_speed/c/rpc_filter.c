#include "headers.h"

#define RPC_PORT 7000
#define RPC_MAGIC 0x5250
#define RPC_VERSION 1

struct rpc_header {
	__be16 magic;
	__u8 version;
	__u8 method;
	__be32 request_id;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u8);
	__type(value, __u8);
} blocked_methods SEC(".maps");

__u64 malformed_requests = 0;
__u64 blocked_requests = 0;

SEC("xdp")
int rpc_filter(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	struct headers h;
	struct rpc_header *rpc;
	__u8 method;

	parse_headers(ctx, &h);
	if (!h.udp || h.udp->dest != bpf_htons(RPC_PORT))
		return XDP_PASS;
	rpc = h.payload;
	if ((void *)(rpc + 1) > data_end || rpc->magic != bpf_htons(RPC_MAGIC) || rpc->version != RPC_VERSION) {
		__sync_fetch_and_add(&malformed_requests, 1);
		return XDP_DROP;
	}
	method = rpc->method;
	if (bpf_map_lookup_elem(&blocked_methods, &method)) {
		__sync_fetch_and_add(&blocked_requests, 1);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
