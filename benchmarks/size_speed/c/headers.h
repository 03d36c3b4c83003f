/* Header parsing shared by the C twins, written as a libbpf user writes it (cf. xdp-tutorial's
 * parsing_helpers.h), with the DSL's presence rules (pybpfdsl/lang/headers.py) so both parse alike:
 * IPv4 needs 20 bytes and counts for L4 only with ihl >= 5 and fragment offset 0; IPv6 extension
 * headers are not followed; TCP needs its 20 bytes and doff >= 5; UDP its 8 bytes. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct headers {
	struct iphdr *ip4;
	struct tcphdr *tcp;
	struct udphdr *udp;
	void *payload; /* where the L4 payload starts, when tcp or udp is set */
};

static __always_inline void parse_headers(struct xdp_md *ctx, struct headers *h)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l4;
	__u8 proto;

	h->ip4 = 0;
	h->tcp = 0;
	h->udp = 0;
	h->payload = 0;
	if ((void *)(eth + 1) > data_end)
		return;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return;
		h->ip4 = ip;
		if (ip->ihl < 5 || (ip->frag_off & bpf_htons(0x1FFF)))
			return;
		l4 = (void *)ip + ip->ihl * 4;
		proto = ip->protocol;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return;
		l4 = ip6 + 1;
		proto = ip6->nexthdr;
	} else {
		return;
	}
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || tcp->doff < 5)
			return;
		h->tcp = tcp;
		h->payload = l4 + tcp->doff * 4;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;

		if ((void *)(udp + 1) > data_end)
			return;
		h->udp = udp;
		h->payload = udp + 1;
	}
}

static __always_inline __u64 packet_len(struct xdp_md *ctx)
{
	return ctx->data_end - ctx->data;
}
