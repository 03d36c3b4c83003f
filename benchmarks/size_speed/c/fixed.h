/* Q32.32 fixed point, the representation pybpfdsl gives a DSL float (pybpfdsl/lang/fixed.py): a signed
 * 64-bit integer standing for raw / 2**32. The twins keep the same state, so they do the same arithmetic:
 * products truncated toward zero, computed from 32-bit halves (BPF has no 128-bit multiply). */
#define FX_ONE (1LL << 32)

static __always_inline __s64 fx_mul(__s64 a, __s64 b)
{
	__u64 ma = a < 0 ? -(__u64)a : (__u64)a;
	__u64 mb = b < 0 ? -(__u64)b : (__u64)b;
	__u64 ah = ma >> 32, al = ma & 0xFFFFFFFFULL;
	__u64 bh = mb >> 32, bl = mb & 0xFFFFFFFFULL;
	__u64 m = ((ah * bh) << 32) + ah * bl + al * bh + ((al * bl) >> 32);

	return (a < 0) != (b < 0) ? -(__s64)m : (__s64)m;
}

/* ns / NS_PER_SECOND as a float, for 0 <= ns <= 2**31 seconds' worth (the callers cap ns at one second) */
static __always_inline __s64 fx_seconds(__u64 ns)
{
	const __u64 n = 1000000000ULL;

	return (__s64)(((ns / n) << 32) + (((ns % n) << 32) / n));
}

static __always_inline __s64 fx_min(__s64 a, __s64 b)
{
	return a < b ? a : b;
}
