/*
 * interp.c - the reference interpreter: the oracle every other engine (fast
 * interpreter, JIT, generated C) is tested against.  It is written to be
 * obviously right, not fast; docs/semantics.md is its specification.
 *
 * Two dialects, chosen by the meta argument:
 *   meta == NULL  libpcap 1.10's bpf_filter: no ancillary data, offsets are
 *                 plain unsigned packet offsets;
 *   meta != NULL  Linux socket filters (classic program translated to eBPF):
 *                 ancillary loads read meta, offsets >= 2^31 are the kernel's
 *                 negative SKF_NET_OFF / SKF_LL_OFF offsets.
 * They differ only in loads and in shifts by X >= 32; see the helpers below.
 *
 * Invariants:
 * - Dispatch is generated from OPCODE_TABLE: every row jumps to a label
 *   op_<id>, so a row without a handler does not compile.  Codes outside the
 *   table (including anything above 0xff) end the program with 0.
 * - Any program is safe to run: every packet access is bounds-checked in
 *   64-bit arithmetic (no offset can wrap), M[] indexes are checked, jump
 *   targets are checked before use, and the program ends with 0 on a load
 *   past the captured bytes, a division by zero (X or constant), an unknown
 *   opcode, an M[] index >= 16, or a jump to / fall through past the end.
 * - The body is written once (run_prog); bpfkit_interp passes no trace
 *   function and bpfkit_interp_trace passes one.
 */
#include "internal.h"

#include <string.h>

#if defined(__GNUC__)
#define INTERP_INLINE static inline __attribute__((always_inline))
#else
#define INTERP_INLINE static inline
#endif

/* struct nlattr (include/uapi/linux/netlink.h): {u16 nla_len; u16 nla_type}, host order. */
enum { NLA_HDRLEN = 4 };
#define NLA_TYPE_MASK 0x3fffu /* drops NLA_F_NESTED and NLA_F_NET_BYTEORDER */

/* What one run reads besides the program. */
struct packet {
	const uint8_t *data;
	uint32_t caplen, wirelen;
	const struct bpfkit_meta *meta; /* NULL: libpcap dialect */
};

/* The size bytes at off, big-endian (network order), as packet loads read them. */
static uint32_t read_be(const uint8_t *p, uint32_t size)
{
	uint32_t v = 0;
	for (uint32_t i = 0; i < size; i++)
		v = v << 8 | p[i];
	return v;
}

/* A struct nlattr field: a host-order u16. */
static uint16_t read_host16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, sizeof v);
	return v;
}

/*
 * Loads size bytes at byte offset off of the captured data.  off is 64-bit
 * so that callers' sums (X + k, net_offset + k) are exact; false when any
 * byte lies at or past caplen.
 */
static bool load_bytes(const struct packet *p, uint64_t off, uint32_t size, uint32_t *out)
{
	if (off > p->caplen || size > p->caplen - off)
		return false;
	*out = read_be(p->data + off, size);
	return true;
}

/*
 * Linux: loads at the kernel's signed 32-bit offset off.  Non-negative
 * offsets are packet offsets; [SKF_NET_OFF, 0) is relative to the network
 * header (meta->net_offset); [SKF_LL_OFF, SKF_NET_OFF) to the link-layer
 * header (the start of the packet); anything more negative fails.
 */
static bool load_linux(const struct packet *p, uint32_t off, uint32_t size, uint32_t *out)
{
	if (off < 0x80000000u)
		return load_bytes(p, off, size, out);
	if (off >= BPFKIT_SKF_NET_OFF)
		return load_bytes(p, (uint64_t)p->meta->net_offset + (off - BPFKIT_SKF_NET_OFF),
				  size, out);
	if (off >= BPFKIT_SKF_LL_OFF)
		return load_bytes(p, off - BPFKIT_SKF_LL_OFF, size, out);
	return false;
}

/*
 * The kernel's nla_find over the attributes at data[start .. start + len):
 * walk while at least a header remains and 4 <= nla_len <= remaining, step by
 * nla_len rounded up to 4, stop at the first whose masked type equals type.
 * len may be negative (nothing to walk).  Returns the attribute's packet
 * offset, or 0 when none (an attribute found at offset 0 also gives 0, as in
 * the kernel).  Every header read lies inside the range, which the callers
 * keep inside caplen.
 */
static uint32_t nla_find(const uint8_t *data, uint32_t start, int64_t len, uint32_t type)
{
	uint64_t pos = start;
	int64_t rem = len;
	while (rem >= NLA_HDRLEN) {
		uint16_t nla_len = read_host16(data + pos);
		uint16_t nla_type = read_host16(data + pos + 2);
		if (nla_len < NLA_HDRLEN || nla_len > rem)
			break;
		if ((nla_type & NLA_TYPE_MASK) == type)
			return (uint32_t)pos;
		uint32_t step = ((uint32_t)nla_len + 3) & ~3u;
		pos += step;
		rem -= step;
	}
	return 0;
}

/* SKF_AD_NLATTR (__skb_get_nlattr): the attribute of type x in the stream at a. */
static uint32_t anc_nlattr(const struct packet *p, uint32_t a, uint32_t x)
{
	if (p->caplen < NLA_HDRLEN || a > p->caplen - NLA_HDRLEN)
		return 0;
	return nla_find(p->data, a, (int64_t)p->caplen - a, x);
}

/* SKF_AD_NLATTR_NEST (__skb_get_nlattr_nest): type x inside the attribute at a. */
static uint32_t anc_nlattr_nest(const struct packet *p, uint32_t a, uint32_t x)
{
	if (p->caplen < NLA_HDRLEN || a > p->caplen - NLA_HDRLEN)
		return 0;
	uint16_t nla_len = read_host16(p->data + a);
	if (nla_len > p->caplen - a)
		return 0;
	return nla_find(p->data, a + NLA_HDRLEN, (int64_t)nla_len - NLA_HDRLEN, x);
}

/*
 * Linux: the ancillary load at k >= SKF_AD_OFF (any of ld/ldh/ldb: the size is
 * ignored, as the kernel does).  Writes A; false for an offset the table does
 * not know (the kernel's checker rejects those; bpfkit ends the program).
 * The cases come from ANC_TABLE, so a row without a handler does not compile.
 */
static bool load_anc(const struct packet *p, uint32_t k, uint32_t *a, uint32_t x)
{
	const struct bpfkit_meta *m = p->meta;
	switch (k - BPFKIT_SKF_AD_OFF) {
#define X(id, off, name, alias) case off: goto anc_##id;
	ANC_TABLE(X)
#undef X
	default:
		return false;
	}
anc_PROTOCOL:
	*a = m->protocol;
	return true;
anc_PKTTYPE:
	*a = m->pkttype;
	return true;
anc_IFINDEX:
	*a = m->ifindex;
	return true;
anc_NLATTR:
	*a = anc_nlattr(p, *a, x);
	return true;
anc_NLATTR_NEST:
	*a = anc_nlattr_nest(p, *a, x);
	return true;
anc_MARK:
	*a = m->mark;
	return true;
anc_QUEUE:
	*a = m->queue;
	return true;
anc_HATYPE:
	*a = m->hatype;
	return true;
anc_RXHASH:
	*a = m->rxhash;
	return true;
anc_CPU:
	*a = m->cpu;
	return true;
anc_ALU_XOR_X:
	*a ^= x;
	return true;
anc_VLAN_TAG:
	*a = m->vlan_tci;
	return true;
anc_VLAN_TAG_PRESENT:
	*a = m->vlan_avail;
	return true;
anc_PAY_OFFSET:
	*a = m->pay_offset;
	return true;
anc_RANDOM:
	*a = m->random;
	return true;
anc_VLAN_TPID:
	*a = m->vlan_tpid;
	return true;
}

/* ld [k]: A from the packet, or from meta for Linux ancillary offsets. */
static bool load_abs(const struct packet *p, uint32_t k, uint32_t size, uint32_t *a, uint32_t x)
{
	if (!p->meta)
		return load_bytes(p, k, size, a);
	if (k >= BPFKIT_SKF_AD_OFF)
		return load_anc(p, k, a, x);
	return load_linux(p, k, size, a);
}

/*
 * ld [x + k].  libpcap: the exact sum, so X + k >= 2^32 is past the packet.
 * Linux: the kernel adds in 64 bits and passes an int, i.e. X + k wraps
 * modulo 2^32 and is then read as a signed offset (never ancillary).
 */
static bool load_ind(const struct packet *p, uint32_t x, uint32_t k, uint32_t size,
		     uint32_t *out)
{
	if (!p->meta)
		return load_bytes(p, (uint64_t)x + k, size, out);
	return load_linux(p, x + k, size, out);
}

/* ldxb 4*([k]&0xf): like a one-byte ld [k] but never ancillary. */
static bool load_msh(const struct packet *p, uint32_t k, uint32_t *out)
{
	uint32_t byte;
	bool ok = p->meta ? load_linux(p, k, 1, &byte) : load_bytes(p, k, 1, &byte);
	if (ok)
		*out = (byte & 0xf) << 2;
	return ok;
}

/*
 * Shifts.  By X: libpcap gives 0 for X >= 32; Linux's eBPF interpreter and
 * JITs use X & 31.  By a constant (validators reject k >= 32): k & 31 in both,
 * which is what libpcap's unchecked C shift and the x86 instructions do.
 */
static uint32_t shift_left_x(const struct packet *p, uint32_t a, uint32_t x)
{
	if (p->meta)
		return a << (x & 31);
	return x < 32 ? a << x : 0;
}

static uint32_t shift_right_x(const struct packet *p, uint32_t a, uint32_t x)
{
	if (p->meta)
		return a >> (x & 31);
	return x < 32 ? a >> x : 0;
}

static void emit_trace(bpfkit_trace_fn trace, void *ctx, size_t pc,
		       const struct bpfkit_insn *in, uint32_t a, uint32_t x, int branch, int done,
		       uint32_t ret)
{
	struct bpfkit_trace t = {pc, *in, a, x, branch, done, ret};
	trace(ctx, &t);
}

/*
 * The interpreter.  Each handler either sets next (the successor) and goes to
 * step, or sets ret and goes to done; fail is done with 0.  With a trace
 * function, step and done report the instruction just executed.
 */
INTERP_INLINE uint32_t run_prog(const struct bpfkit_insn *insns, size_t n,
				const struct packet *p, bpfkit_trace_fn trace, void *ctx)
{
	uint32_t a = 0, x = 0, mem[BPFKIT_MEMWORDS] = {0};

	if (!insns || n == 0)
		return 0;
	for (size_t pc = 0;;) {
		const struct bpfkit_insn *in = &insns[pc];
		const uint32_t k = in->k;
		size_t next = pc + 1;
		int branch = -1;
		bool taken;
		uint32_t ret;

		switch (in->code) {
#define X(id, code, mnem, opnd, flags) case code: goto op_##id;
		OPCODE_TABLE(X)
#undef X
		default:
			goto fail;
		}

op_LD_W_ABS:
		if (!load_abs(p, k, 4, &a, x))
			goto fail;
		goto step;
op_LD_H_ABS:
		if (!load_abs(p, k, 2, &a, x))
			goto fail;
		goto step;
op_LD_B_ABS:
		if (!load_abs(p, k, 1, &a, x))
			goto fail;
		goto step;
op_LD_W_IND:
		if (!load_ind(p, x, k, 4, &a))
			goto fail;
		goto step;
op_LD_H_IND:
		if (!load_ind(p, x, k, 2, &a))
			goto fail;
		goto step;
op_LD_B_IND:
		if (!load_ind(p, x, k, 1, &a))
			goto fail;
		goto step;
op_LD_W_LEN:
		a = p->wirelen;
		goto step;
op_LD_IMM:
		a = k;
		goto step;
op_LD_MEM:
		if (k >= BPFKIT_MEMWORDS)
			goto fail;
		a = mem[k];
		goto step;
op_LDX_IMM:
		x = k;
		goto step;
op_LDX_MEM:
		if (k >= BPFKIT_MEMWORDS)
			goto fail;
		x = mem[k];
		goto step;
op_LDX_LEN:
		x = p->wirelen;
		goto step;
op_LDX_MSH:
		if (!load_msh(p, k, &x))
			goto fail;
		goto step;
op_ST:
		if (k >= BPFKIT_MEMWORDS)
			goto fail;
		mem[k] = a;
		goto step;
op_STX:
		if (k >= BPFKIT_MEMWORDS)
			goto fail;
		mem[k] = x;
		goto step;

op_ADD_K:
		a += k;
		goto step;
op_SUB_K:
		a -= k;
		goto step;
op_MUL_K:
		a *= k;
		goto step;
op_DIV_K:
		if (k == 0)
			goto fail;
		a /= k;
		goto step;
op_MOD_K:
		if (k == 0)
			goto fail;
		a %= k;
		goto step;
op_OR_K:
		a |= k;
		goto step;
op_AND_K:
		a &= k;
		goto step;
op_LSH_K:
		a <<= k & 31;
		goto step;
op_RSH_K:
		a >>= k & 31;
		goto step;
op_XOR_K:
		a ^= k;
		goto step;
op_ADD_X:
		a += x;
		goto step;
op_SUB_X:
		a -= x;
		goto step;
op_MUL_X:
		a *= x;
		goto step;
op_DIV_X:
		if (x == 0)
			goto fail;
		a /= x;
		goto step;
op_MOD_X:
		if (x == 0)
			goto fail;
		a %= x;
		goto step;
op_OR_X:
		a |= x;
		goto step;
op_AND_X:
		a &= x;
		goto step;
op_LSH_X:
		a = shift_left_x(p, a, x);
		goto step;
op_RSH_X:
		a = shift_right_x(p, a, x);
		goto step;
op_XOR_X:
		a ^= x;
		goto step;
op_NEG:
		a = 0u - a;
		goto step;

op_JA:
		/* next == pc + 1 <= n, so n - next cannot wrap. */
		next = k < n - next ? next + k : n;
		goto step;
op_JEQ_K:
		taken = a == k;
		goto cond;
op_JGT_K:
		taken = a > k;
		goto cond;
op_JGE_K:
		taken = a >= k;
		goto cond;
op_JSET_K:
		taken = (a & k) != 0;
		goto cond;
op_JEQ_X:
		taken = a == x;
		goto cond;
op_JGT_X:
		taken = a > x;
		goto cond;
op_JGE_X:
		taken = a >= x;
		goto cond;
op_JSET_X:
		taken = (a & x) != 0;
		goto cond;
cond:
		branch = taken;
		next += taken ? in->jt : in->jf;
		goto step;

op_RET_K:
		ret = k;
		goto done;
op_RET_A:
		ret = a;
		goto done;
op_TAX:
		x = a;
		goto step;
op_TXA:
		a = x;
		goto step;

step:
		if (next >= n) /* jumped to or fell through past the last instruction */
			goto fail;
		if (trace)
			emit_trace(trace, ctx, pc, in, a, x, branch, 0, 0);
		pc = next;
		continue;
fail:
		ret = 0;
done:
		if (trace)
			emit_trace(trace, ctx, pc, in, a, x, branch, 1, ret);
		return ret;
	}
}

BPFKIT_API uint32_t bpfkit_interp(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
				  uint32_t caplen, uint32_t wirelen,
				  const struct bpfkit_meta *meta)
{
	const struct packet p = {pkt, caplen, wirelen, meta};
	return run_prog(insns, n, &p, NULL, NULL);
}

BPFKIT_API uint32_t bpfkit_interp_trace(const struct bpfkit_insn *insns, size_t n,
					const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
					const struct bpfkit_meta *meta, bpfkit_trace_fn trace,
					void *ctx)
{
	const struct packet p = {pkt, caplen, wirelen, meta};
	return run_prog(insns, n, &p, trace, ctx);
}
