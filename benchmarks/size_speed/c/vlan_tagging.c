/* The C twin of examples/vlan_tagging.py: push an 802.1Q tag on a listed pod's IPv4 frames and
 * redirect them to the trunk; pop the tag of frames from this node's VLANs and pass them, counting the
 * untagged bytes per VLAN. The tag is written into the source MAC's last four bytes before the frame
 * grows by four at the front, where it then sits; the MAC addresses are written again at the new front. */
#include "headers.h"

#define VLAN_TAG_LEN 4
#define VID_MASK 0x0FFF

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);   /* pod IPv4 address, host order */
	__type(value, __u16); /* its tenant's VLAN id */
} vlan_of_pod SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);
	__type(value, __u8);
} local_vlans SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);
	__type(value, __u64);
} vlan_bytes SEC(".maps");

__u32 trunk = 0;
__u8 priority = 0;
__u64 tagged = 0;
__u64 untagged = 0;

/* After a move every packet pointer is stale: the Ethernet header at the new front, or NULL when the
 * frame is now shorter than one. */
static __always_inline struct ethhdr *front(struct xdp_md *ctx)
{
	struct ethhdr *eth = (void *)(long)ctx->data;

	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return 0;
	return eth;
}

static __always_inline int untag(struct xdp_md *ctx, struct ethhdr *eth, void *data_end)
{
	unsigned char macs[2 * ETH_ALEN];
	__u8 *tag = (void *)(eth + 1);
	__u64 *bytes;
	__u8 *local;
	__u16 vid;

	if ((void *)(tag + 4) > data_end) /* the tag and the inner ethertype */
		return XDP_PASS;
	vid = ((tag[0] << 8) | tag[1]) & VID_MASK;
	local = bpf_map_lookup_elem(&local_vlans, &vid);
	if (!local || !*local)
		return XDP_PASS;
	__builtin_memcpy(macs, eth, sizeof(macs));
	if (bpf_xdp_adjust_head(ctx, VLAN_TAG_LEN))
		return XDP_DROP;
	eth = front(ctx);
	if (!eth)
		return XDP_DROP;
	__builtin_memcpy(eth, macs, sizeof(macs));
	__sync_fetch_and_add(&untagged, 1);
	bytes = bpf_map_lookup_elem(&vlan_bytes, &vid);
	if (bytes) {
		*bytes += packet_len(ctx);
	} else {
		__u64 first = packet_len(ctx);

		bpf_map_update_elem(&vlan_bytes, &vid, &first, BPF_ANY);
	}
	return XDP_PASS;
}

SEC("xdp")
int vlan_tagging(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	unsigned char macs[2 * ETH_ALEN];
	struct ethhdr *eth = data;
	struct iphdr *ip;
	__u16 *pod_vlan;
	__u16 vid;
	__u32 src;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_8021Q))
		return untag(ctx, eth, data_end);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return XDP_PASS;
	src = bpf_ntohl(ip->saddr);
	pod_vlan = bpf_map_lookup_elem(&vlan_of_pod, &src);
	vid = pod_vlan ? *pod_vlan & VID_MASK : 0;
	if (!vid)
		return XDP_PASS;
	__builtin_memcpy(macs, eth, sizeof(macs));
	/* Bytes 8-11 become bytes 12-15 once the frame grows by four at the front: the tag. */
	*(__be16 *)(eth->h_source + 2) = bpf_htons(ETH_P_8021Q);
	*(__be16 *)(eth->h_source + 4) = bpf_htons(((priority & 7) << 13) | vid);
	if (bpf_xdp_adjust_head(ctx, -VLAN_TAG_LEN))
		return XDP_DROP;
	eth = front(ctx);
	if (!eth)
		return XDP_DROP;
	__builtin_memcpy(eth, macs, sizeof(macs));
	__sync_fetch_and_add(&tagged, 1);
	return bpf_redirect(trunk, 0);
}

char _license[] SEC("license") = "GPL";
