/* Shared includes, maps and helpers of the C corpus (each .c file is one XDP program). */
#ifndef CORPUS_COMMON_H
#define CORPUS_COMMON_H
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
/* struct icmphdr, without <linux/icmp.h> (it pulls in libc headers) */
struct icmphdr { __u8 type; __u8 code; __sum16 checksum; __be32 rest; };
#define ICMP_ECHO 8
enum { IPPROTO_ICMP = 1, IPPROTO_TCP = 6, IPPROTO_UDP = 17 };
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define INLINE static __always_inline

struct counter { __u64 packets; __u64 bytes; };
struct slots { __u32 v[8]; };

INLINE void *pkt_data(struct xdp_md *ctx) { return (void *)(long)ctx->data; }
INLINE void *pkt_end(struct xdp_md *ctx) { return (void *)(long)ctx->data_end; }

char LICENSE[] SEC("license") = "GPL";
#endif
