/*
 * fast.c - the fast interpreter: a program is decoded once (prepare) into an
 * array of compact ops, then run per packet with threaded dispatch.
 *
 * What prepare does, in order (each pass fills a side table):
 *   1. validate: bpfkit_validate in pcap mode (socket mode for the Linux
 *      dialect, BPFKIT_FAST_LINUX), so run trusts opcodes, jump targets,
 *      M[] indexes, constant divisors and shifts, and the final return;
 *   2. leaders: basic blocks start at 0, at jump targets and after jumps
 *      and returns, so a block is entered only at its top;
 *   3. bounds: each block's `need`, the end of the furthest absolute packet
 *      load in it (ld/ldh/ldb [k], ldxb 4*([k]&0xf)), and `known`, the
 *      length every path into the block has already checked; a block with
 *      need > known starts with one CHECK op (caplen < need: return 0) and
 *      its absolute loads then read without a check (block 0's check is
 *      made by run before the first dispatch: entry_need);
 *   4. emit: one op per instruction, specialised by size and operand, with
 *      a load or `and #m` followed by a conditional jump on #k fused into
 *      one op, `ldxb; ld? [x + k]; j?? #c` into one, and jeq chains (port
 *      lists) into one set compare per two or four constants;
 *   5. link: jump targets become op pointers, threaded through `ja`.
 *
 * Why the merged check is exact: a block is straight-line code entered only
 * at its top, and every way it can end before its last instruction (a load
 * past caplen, a division by X == 0) returns 0, as does a failed CHECK; no
 * instruction has an effect outside the run.  So a packet that fails the
 * block's check gets 0 whichever load of the block is the short one.  A
 * block whose need exceeds 2^32 - 1 can never pass: it becomes `ret #0`.
 * Indirect loads ([x + k]) depend on X and are checked one by one.
 *
 * Invariants: results equal bpfkit_interp's (docs/semantics.md) for every
 * program prepare accepts, in its dialect; run never reads outside the
 * packet's caplen bytes or the op array.  The interpreter body is written
 * once under OP/NEXT/JUMP macros: computed goto under GCC and clang, a
 * portable switch otherwise (or with -DBPFKIT_FAST_SWITCH).
 */
#include "internal.h"

#include <stddef.h>
#include <string.h>

#if defined(__GNUC__) && !defined(BPFKIT_FAST_SWITCH)
#define FAST_THREADED 1
#else
#define FAST_THREADED 0
#endif

#if defined(__GNUC__) && !defined(__clang__)
#define FAST_NOINLINE __attribute__((noinline, noclone))
#elif defined(__GNUC__)
#define FAST_NOINLINE __attribute__((noinline))
#else
#define FAST_NOINLINE
#endif

/* A load followed by a conditional jump on #k, one op per compare. */
#define FAST_FUSED(X, LD) X(LD##_JEQ) X(LD##_JGT) X(LD##_JGE) X(LD##_JSET)

/*
 * Every op.  ABS loads and LDX_MSH read without a check (their block's CHECK
 * covers them); *_NET, *_IND_LNX, LD_META, LD_NLA, LD_NLAN and *_X_LNX exist
 * only in the Linux dialect.
 */
#define FAST_OPS(X) \
	X(CHECK) \
	X(LDW_ABS) X(LDH_ABS) X(LDB_ABS) X(LDX_MSH) \
	X(LDW_IND) X(LDH_IND) X(LDB_IND) \
	X(LD_LEN) X(LDX_LEN) X(LD_IMM) X(LDX_IMM) X(LD_MEM) X(LDX_MEM) X(ST) X(STX) \
	X(ADD_K) X(SUB_K) X(MUL_K) X(DIV_K) X(MOD_K) X(OR_K) X(AND_K) X(LSH_K) X(RSH_K) \
	X(XOR_K) X(ADD_X) X(SUB_X) X(MUL_X) X(DIV_X) X(MOD_X) X(OR_X) X(AND_X) X(LSH_X) \
	X(RSH_X) X(XOR_X) X(NEG) X(TAX) X(TXA) \
	X(JA) X(JEQ_K) X(JGT_K) X(JGE_K) X(JSET_K) X(JEQ_X) X(JGT_X) X(JGE_X) X(JSET_X) \
	X(RET_K) X(RET_A) \
	FAST_FUSED(X, LDW_ABS) FAST_FUSED(X, LDH_ABS) FAST_FUSED(X, LDB_ABS) \
	FAST_FUSED(X, LDW_IND) FAST_FUSED(X, LDH_IND) FAST_FUSED(X, LDB_IND) \
	FAST_FUSED(X, MSH_LDW) FAST_FUSED(X, MSH_LDH) FAST_FUSED(X, MSH_LDB) \
	FAST_FUSED(X, AND_K) X(JEQ2) X(JEQ4_16) \
	X(LDW_NET) X(LDH_NET) X(LDB_NET) X(LDX_MSH_NET) \
	X(LDW_IND_LNX) X(LDH_IND_LNX) X(LDB_IND_LNX) \
	X(LD_META) X(LD_NLA) X(LD_NLAN) X(LSH_X_LNX) X(RSH_X_LNX)

enum fast_opcode {
#define X(name) FOP_##name,
	FAST_OPS(X)
#undef X
	FOP__COUNT
};

/*
 * One op: its handler (a label address, or the opcode for the switch), the
 * operand k, a second constant k2 (fused compares), and the jump targets.
 */
struct fop {
#if FAST_THREADED
	const void *h;
#else
	uint32_t h;
#endif
	uint32_t k, k2;
	const struct fop *jt, *jf;
};

struct bpfkit_fast {
	struct bpfkit_alloc alloc;  /* a copy of the caller's hook (fn NULL: libc) */
	unsigned flags;
	bool zero_mem;              /* the program reads M[]: start it at zero */
	uint32_t entry_need;        /* the first block's CHECK, done before dispatch */
	size_t nops;
	struct fop ops[];
};

/* ------------------------------------------------------------------ */
/* Packet reads                                                        */

#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return __builtin_bswap32(v);
}
static inline uint32_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return __builtin_bswap16(v);
}
#else
static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint32_t rd16(const uint8_t *p)
{
	return (uint32_t)p[0] << 8 | p[1];
}
#endif
static inline uint32_t rd8(const uint8_t *p)
{
	return p[0];
}

static uint32_t rd_size(const uint8_t *p, uint32_t size)
{
	return size == 4 ? rd32(p) : size == 2 ? rd16(p) : rd8(p);
}

/* size bytes at off (64-bit, so sums are exact); false past caplen. */
static bool load_at(const uint8_t *pkt, uint32_t caplen, uint64_t off, uint32_t size,
		    uint32_t *out)
{
	if (off > caplen || size > caplen - off)
		return false;
	*out = rd_size(pkt + off, size);
	return true;
}

/*
 * Linux: a load at the kernel's signed offset off (docs/semantics.md):
 * packet offsets below 2^31, SKF_NET_OFF- and SKF_LL_OFF-relative above.
 */
static bool load_linux(const uint8_t *pkt, uint32_t caplen, const struct bpfkit_meta *m,
		       uint32_t off, uint32_t size, uint32_t *out)
{
	if (off < 0x80000000u)
		return load_at(pkt, caplen, off, size, out);
	if (off >= BPFKIT_SKF_NET_OFF)
		return load_at(pkt, caplen, (uint64_t)m->net_offset + (off - BPFKIT_SKF_NET_OFF),
			       size, out);
	if (off >= BPFKIT_SKF_LL_OFF)
		return load_at(pkt, caplen, off - BPFKIT_SKF_LL_OFF, size, out);
	return false;
}

/* A struct nlattr header field: host-order u16. */
static uint32_t rd_host16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

/*
 * The kernel's nla_find over pkt[start, start + len): attributes of length
 * 4..remaining, stepped by their length rounded up to 4; the offset of the
 * first whose type (flags masked off) is type, else 0.
 */
static uint32_t nla_find(const uint8_t *pkt, uint32_t start, int64_t len, uint32_t type)
{
	uint64_t pos = start;
	while (len >= 4) {
		uint32_t nlen = rd_host16(pkt + pos), ntype = rd_host16(pkt + pos + 2);
		if (nlen < 4 || nlen > len)
			break;
		if ((ntype & 0x3fff) == type)
			return (uint32_t)pos;
		uint32_t step = (nlen + 3) & ~3u;
		pos += step;
		len -= step;
	}
	return 0;
}

static uint32_t anc_nla(const uint8_t *pkt, uint32_t caplen, uint32_t a, uint32_t x)
{
	if (caplen < 4 || a > caplen - 4)
		return 0;
	return nla_find(pkt, a, (int64_t)caplen - a, x);
}

static uint32_t anc_nla_nest(const uint8_t *pkt, uint32_t caplen, uint32_t a, uint32_t x)
{
	if (caplen < 4 || a > caplen - 4)
		return 0;
	uint32_t nlen = rd_host16(pkt + a);
	if (nlen > caplen - a)
		return 0;
	return nla_find(pkt, a + 4, (int64_t)nlen - 4, x);
}

/* ------------------------------------------------------------------ */
/* The interpreter                                                     */

#if FAST_THREADED
#define OP(name) op_##name:
#define DISPATCH() goto *pc->h
#else
#define OP(name) case FOP_##name:
#define DISPATCH() goto dispatch
#endif
#define NEXT() do { pc++; DISPATCH(); } while (0)
#define JUMP(to) do { pc = (to); DISPATCH(); } while (0)
/*
 * A conditional jump is a real branch, one dispatch site per direction: with
 * a select (cmov) the next pc would hang on the packet load, serialising the
 * ops instead of letting the branch predictor run ahead.  The empty asm keeps
 * the compiler from merging the two arms back into a select.
 */
#if defined(__GNUC__)
#define OPAQUE(v) __asm__("" : "+r"(v))
#else
#define OPAQUE(v) ((void)0)
#endif
#define BRANCH(cond) \
	do { \
		if (cond) { \
			pc = pc->jt; \
			OPAQUE(pc); \
			DISPATCH(); \
		} \
		JUMP(pc->jf); \
	} while (0)

/* The body, twice: the pcap dialect's (lean) and the Linux dialect's. */
#define FAST_EXEC fast_exec_pcap
#define FAST_LINUX 0
#include "fast_body.h"
#define FAST_EXEC fast_exec_linux
#define FAST_LINUX 1
#include "fast_body.h"

#undef OP
#undef DISPATCH
#undef NEXT
#undef JUMP
#undef BRANCH

static const struct bpfkit_meta zero_meta;

BPFKIT_API uint32_t bpfkit_fast_run(const struct bpfkit_fast *f, const uint8_t *pkt,
				    uint32_t caplen, uint32_t wirelen)
{
	if (f->flags & BPFKIT_FAST_LINUX)
		return fast_exec_linux(f, pkt, caplen, wirelen, &zero_meta, NULL);
	return fast_exec_pcap(f, pkt, caplen, wirelen, NULL, NULL);
}

BPFKIT_API uint32_t bpfkit_fast_run_meta(const struct bpfkit_fast *f, const uint8_t *pkt,
					 uint32_t caplen, uint32_t wirelen,
					 const struct bpfkit_meta *meta)
{
	if (f->flags & BPFKIT_FAST_LINUX)
		return fast_exec_linux(f, pkt, caplen, wirelen, meta ? meta : &zero_meta, NULL);
	return fast_exec_pcap(f, pkt, caplen, wirelen, NULL, NULL);
}

/* ------------------------------------------------------------------ */
/* Prepare                                                             */

/* No check can pass: a block needing this many bytes is `ret #0`. */
#define NEED_NEVER ((uint64_t)UINT32_MAX + 1)

/* What prepare works on; side tables are indexed by instruction or by op. */
struct prep {
	const struct bpfkit_insn *insns;
	size_t n;
	bool lnx;
	bool *leader;        /* [n + 1] */
	uint64_t *known;     /* [n]: bytes checked on every path into a leader */
	uint32_t *first_op;  /* [n]: op index of a leader's first op */
	struct fop *ops;     /* [2n] */
	uint16_t *code;      /* [2n]: each op's opcode */
	uint32_t *target;    /* [2 * 2n]: jt, jf as instruction indexes, then op indexes */
	size_t nops;
	uint64_t *hoist;     /* [n]: a leader's need raised to its successors' (NEED_DROP) */
	uint32_t entry_need; /* block 0's check, made by run before the first dispatch */
	uint8_t *npred;      /* [n]: jumps and fall-throughs into each instruction (max 2) */
	uint8_t *in_chain;   /* [n]: a non-head member of a jeq chain (emitted by its head) */
};

static bool is_jump(uint16_t code)
{
	return BPFKIT_CLASS(code) == BPFKIT_JMP;
}

static bool is_ret(uint16_t code)
{
	return BPFKIT_CLASS(code) == BPFKIT_RET;
}

static uint32_t load_size(uint16_t code)
{
	return BPFKIT_SIZE(code) == BPFKIT_W ? 4 : BPFKIT_SIZE(code) == BPFKIT_H ? 2 : 1;
}

/*
 * Where an absolute load (ld/ldh/ldb [k] or ldxb 4*([k]&0xf) when msh) at k
 * reads in the dialect: 1 and *off for a plain packet offset, 0 for a load
 * that needs its own op (Linux: ancillary or SKF_NET_OFF-relative), -1 for
 * one that always fails (Linux: negative offsets below SKF_LL_OFF).
 */
static int abs_offset(const struct prep *p, uint32_t k, bool msh, uint32_t *off)
{
	if (!p->lnx || k < 0x80000000u) {
		*off = k;
		return 1;
	}
	if (!msh && k >= BPFKIT_SKF_AD_OFF)
		return 0;
	if (k >= BPFKIT_SKF_NET_OFF)
		return 0;
	if (k >= BPFKIT_SKF_LL_OFF) {
		*off = k - BPFKIT_SKF_LL_OFF;
		return 1;
	}
	return -1;
}

/* The end of the furthest absolute load of insns[i], 0 when none. */
static uint64_t insn_need(const struct prep *p, size_t i)
{
	const struct bpfkit_insn *in = &p->insns[i];
	uint32_t off;
	bool msh = in->code == (BPFKIT_LDX | BPFKIT_B | BPFKIT_MSH);
	if (!msh && (BPFKIT_CLASS(in->code) != BPFKIT_LD || BPFKIT_MODE(in->code) != BPFKIT_ABS))
		return 0;
	int r = abs_offset(p, in->k, msh, &off);
	if (r < 0)
		return NEED_NEVER;
	if (r == 0)
		return 0;
	return (uint64_t)off + (msh ? 1 : load_size(in->code));
}

static void add_pred(struct prep *p, size_t i)
{
	if (i < p->n && p->npred[i] < 2)
		p->npred[i]++;
}

static void find_leaders(struct prep *p)
{
	memset(p->leader, 0, p->n + 1);
	memset(p->npred, 0, p->n);
	memset(p->in_chain, 0, p->n);
	p->leader[0] = true;
	for (size_t i = 0; i < p->n; i++) {
		const struct bpfkit_insn *in = &p->insns[i];
		if (is_jump(in->code)) {
			if (BPFKIT_OP(in->code) == BPFKIT_JA) {
				p->leader[i + 1 + in->k] = true;
				add_pred(p, i + 1 + in->k);
			} else {
				p->leader[i + 1 + in->jt] = true;
				p->leader[i + 1 + in->jf] = true;
				add_pred(p, i + 1 + in->jt);
				if (in->jf != in->jt)
					add_pred(p, i + 1 + in->jf);
			}
		} else if (!is_ret(in->code)) {
			add_pred(p, i + 1);
		}
		if (is_jump(in->code) || is_ret(in->code))
			p->leader[i + 1] = true;
	}
}

static size_t block_end(const struct prep *p, size_t start)
{
	size_t e = start + 1;
	while (e < p->n && !p->leader[e])
		e++;
	return e;
}

static uint64_t min64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static void add_op(struct prep *p, enum fast_opcode code, uint32_t k, uint32_t k2,
		   uint32_t jt, uint32_t jf)
{
	size_t o = p->nops++;
	p->ops[o] = (struct fop){0};
	p->ops[o].k = k;
	p->ops[o].k2 = k2;
	p->code[o] = (uint16_t)code;
	p->target[2 * o] = jt;
	p->target[2 * o + 1] = jf;
}

/* The fused op for load `ld` (an FOP_LD?_ABS/IND) followed by jump code. */
static int fused_op(enum fast_opcode ld, uint16_t jcode)
{
	int cmp;
	switch (jcode) {
	case BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K: cmp = 0; break;
	case BPFKIT_JMP | BPFKIT_JGT | BPFKIT_K: cmp = 1; break;
	case BPFKIT_JMP | BPFKIT_JGE | BPFKIT_K: cmp = 2; break;
	case BPFKIT_JMP | BPFKIT_JSET | BPFKIT_K: cmp = 3; break;
	default: return -1;
	}
	switch (ld) {
	case FOP_LDW_ABS: return FOP_LDW_ABS_JEQ + cmp;
	case FOP_LDH_ABS: return FOP_LDH_ABS_JEQ + cmp;
	case FOP_LDB_ABS: return FOP_LDB_ABS_JEQ + cmp;
	case FOP_LDW_IND: return FOP_LDW_IND_JEQ + cmp;
	case FOP_LDH_IND: return FOP_LDH_IND_JEQ + cmp;
	case FOP_LDB_IND: return FOP_LDB_IND_JEQ + cmp;
	case FOP_AND_K: return FOP_AND_K_JEQ + cmp;
	default: return -1;
	}
}

/* The byte offset in struct bpfkit_meta of ancillary field off, -1 for computed ones. */
static long meta_field(uint32_t off)
{
	_Static_assert(ANC__COUNT == 16, "a new ancillary load needs a case in fast.c");
	switch (off) {
	case BPFKIT_AD_PROTOCOL: return (long)offsetof(struct bpfkit_meta, protocol);
	case BPFKIT_AD_PKTTYPE: return (long)offsetof(struct bpfkit_meta, pkttype);
	case BPFKIT_AD_IFINDEX: return (long)offsetof(struct bpfkit_meta, ifindex);
	case BPFKIT_AD_MARK: return (long)offsetof(struct bpfkit_meta, mark);
	case BPFKIT_AD_QUEUE: return (long)offsetof(struct bpfkit_meta, queue);
	case BPFKIT_AD_HATYPE: return (long)offsetof(struct bpfkit_meta, hatype);
	case BPFKIT_AD_RXHASH: return (long)offsetof(struct bpfkit_meta, rxhash);
	case BPFKIT_AD_CPU: return (long)offsetof(struct bpfkit_meta, cpu);
	case BPFKIT_AD_VLAN_TAG: return (long)offsetof(struct bpfkit_meta, vlan_tci);
	case BPFKIT_AD_VLAN_TAG_PRESENT: return (long)offsetof(struct bpfkit_meta, vlan_avail);
	case BPFKIT_AD_PAY_OFFSET: return (long)offsetof(struct bpfkit_meta, pay_offset);
	case BPFKIT_AD_RANDOM: return (long)offsetof(struct bpfkit_meta, random);
	case BPFKIT_AD_VLAN_TPID: return (long)offsetof(struct bpfkit_meta, vlan_tpid);
	default: return -1; /* NLATTR, NLATTR_NEST, ALU_XOR_X */
	}
}

/* Op for an absolute load (validated: ancillary offsets are known ones). */
static void emit_abs(struct prep *p, const struct bpfkit_insn *in, enum fast_opcode plain,
		     enum fast_opcode net)
{
	uint32_t off;
	int r = abs_offset(p, in->k, false, &off);
	if (r > 0) {
		add_op(p, plain, off, 0, 0, 0);
	} else if (in->k < BPFKIT_SKF_AD_OFF) {
		add_op(p, net, in->k - BPFKIT_SKF_NET_OFF, 0, 0, 0);
	} else {
		uint32_t anc = in->k - BPFKIT_SKF_AD_OFF;
		long field = meta_field(anc);
		if (field >= 0)
			add_op(p, FOP_LD_META, (uint32_t)field, 0, 0, 0);
		else if (anc == BPFKIT_AD_NLATTR)
			add_op(p, FOP_LD_NLA, 0, 0, 0, 0);
		else if (anc == BPFKIT_AD_NLATTR_NEST)
			add_op(p, FOP_LD_NLAN, 0, 0, 0, 0);
		else
			add_op(p, FOP_XOR_X, 0, 0, 0, 0);
	}
}

/*
 * A jeq chain: CHAIN_MIN or more `jeq #k` in a row on one A, all jumping to
 * one target when equal, each falling to the next when not, the later ones
 * entered only from the one before (a port list).  It becomes one op per
 * four constants when all fit in 16 bits (JEQ4_16: k and k2 hold two each;
 * A equals one of them only if A < 2^16 too), else per two (JEQ2): a
 * quarter or half of the dispatches, with no loop, so the body needs no more
 * registers.  A short last group repeats the chain's first constant.  The
 * later members have no loads; a CHECK hoisted into them is only an early
 * exit, so leaving it out keeps the result (their successors still check
 * for themselves).  Each op's jf is the next op, the last one's the chain's.
 */
#define CHAIN_MIN 4

static bool emit_chain(struct prep *p, size_t i)
{
	const struct bpfkit_insn *insns = p->insns;
	size_t m = opcode_jeq_chain(insns, p->n, i, p->npred);
	if (m < CHAIN_MIN)
		return false;
	bool narrow = true;
	for (size_t c = 0; c < m; c++)
		narrow = narrow && insns[i + c].k <= 0xffff;
	size_t target = i + 1 + insns[i].jt, per = narrow ? 4 : 2, last = i + m - 1;
	for (size_t g = 0; g < m; g += per) {
		uint32_t v[4];
		for (size_t c = 0; c < per; c++)
			v[c] = insns[g + c < m ? i + g + c : i].k;
		/* The next group's first member stands for the next op (link_jumps). */
		uint32_t jf = (uint32_t)(g + per < m ? i + g + per : last + 1 + insns[last].jf);
		if (g > 0)
			p->first_op[i + g] = (uint32_t)p->nops;
		if (narrow)
			add_op(p, FOP_JEQ4_16, v[0] | v[1] << 16, v[2] | v[3] << 16,
			       (uint32_t)target, jf);
		else
			add_op(p, FOP_JEQ2, v[0], v[1], (uint32_t)target, jf);
	}
	for (size_t c = 1; c < m; c++)
		p->in_chain[i + c] = 1;
	return true;
}

/*
 * `ldxb 4*([m]&0xf); ld? [x + k]; j?? #c` in one block (the pcap dialect's
 * header-length idiom: `tcp port 80`'s ports) becomes one op when m and k
 * fit in 16 bits: k holds m | k << 16, k2 the constant.  Returns false when
 * the three instructions do not qualify.
 */
static bool fuse_msh(struct prep *p, size_t i, size_t end, uint32_t off)
{
	if (p->lnx || i + 2 >= end || off > 0xffff || p->insns[i + 1].k > 0xffff ||
	    BPFKIT_CLASS(p->insns[i + 1].code) != BPFKIT_LD ||
	    BPFKIT_MODE(p->insns[i + 1].code) != BPFKIT_IND)
		return false;
	const struct bpfkit_insn *ld = &p->insns[i + 1], *j = &p->insns[i + 2];
	int f = fused_op(FOP_LDW_IND, j->code);
	if (f < 0)
		return false;
	enum fast_opcode base = BPFKIT_SIZE(ld->code) == BPFKIT_W ? FOP_MSH_LDW_JEQ :
				BPFKIT_SIZE(ld->code) == BPFKIT_H ? FOP_MSH_LDH_JEQ : FOP_MSH_LDB_JEQ;
	const uint32_t next = (uint32_t)i + 3;
	add_op(p, (enum fast_opcode)(base + (f - FOP_LDW_IND_JEQ)), off | ld->k << 16, j->k,
	       next + j->jt, next + j->jf);
	return true;
}

/*
 * Emits the ops of insns[i] (a block member whose loads are covered); returns
 * how many instructions it consumed (2 when it fused a load with the jump
 * after it).  The cases come from OPCODE_TABLE, so a new row without a case
 * does not compile.
 */
static size_t emit_insn(struct prep *p, size_t i, size_t end)
{
	const struct bpfkit_insn *in = &p->insns[i];
	const uint32_t k = in->k;
	enum fast_opcode load;
	const uint32_t next = (uint32_t)i + 1;
	switch (in->code) {
#define X(id, code, mnem, opnd, flags) case code: goto dec_##id;
	OPCODE_TABLE(X)
#undef X
	default:
		return 1; /* unreachable: validated */
	}
dec_LD_W_ABS:
	emit_abs(p, in, FOP_LDW_ABS, FOP_LDW_NET);
	load = FOP_LDW_ABS;
	goto fuse;
dec_LD_H_ABS:
	emit_abs(p, in, FOP_LDH_ABS, FOP_LDH_NET);
	load = FOP_LDH_ABS;
	goto fuse;
dec_LD_B_ABS:
	emit_abs(p, in, FOP_LDB_ABS, FOP_LDB_NET);
	load = FOP_LDB_ABS;
	goto fuse;
dec_LD_W_IND:
	add_op(p, p->lnx ? FOP_LDW_IND_LNX : FOP_LDW_IND, k, 0, 0, 0);
	load = FOP_LDW_IND;
	goto fuse;
dec_LD_H_IND:
	add_op(p, p->lnx ? FOP_LDH_IND_LNX : FOP_LDH_IND, k, 0, 0, 0);
	load = FOP_LDH_IND;
	goto fuse;
dec_LD_B_IND:
	add_op(p, p->lnx ? FOP_LDB_IND_LNX : FOP_LDB_IND, k, 0, 0, 0);
	load = FOP_LDB_IND;
	goto fuse;
dec_LDX_MSH: {
	uint32_t off;
	if (abs_offset(p, k, true, &off) > 0) {
		if (fuse_msh(p, i, end, off))
			return 3;
		add_op(p, FOP_LDX_MSH, off, 0, 0, 0);
	} else {
		add_op(p, FOP_LDX_MSH_NET, k - BPFKIT_SKF_NET_OFF, 0, 0, 0);
	}
	return 1;
}
dec_LD_W_LEN: add_op(p, FOP_LD_LEN, 0, 0, 0, 0); return 1;
dec_LD_IMM: add_op(p, FOP_LD_IMM, k, 0, 0, 0); return 1;
dec_LD_MEM: add_op(p, FOP_LD_MEM, k, 0, 0, 0); return 1;
dec_LDX_IMM: add_op(p, FOP_LDX_IMM, k, 0, 0, 0); return 1;
dec_LDX_MEM: add_op(p, FOP_LDX_MEM, k, 0, 0, 0); return 1;
dec_LDX_LEN: add_op(p, FOP_LDX_LEN, 0, 0, 0, 0); return 1;
dec_ST: add_op(p, FOP_ST, k, 0, 0, 0); return 1;
dec_STX: add_op(p, FOP_STX, k, 0, 0, 0); return 1;
dec_ADD_K: add_op(p, FOP_ADD_K, k, 0, 0, 0); return 1;
dec_SUB_K: add_op(p, FOP_SUB_K, k, 0, 0, 0); return 1;
dec_MUL_K: add_op(p, FOP_MUL_K, k, 0, 0, 0); return 1;
dec_DIV_K: add_op(p, FOP_DIV_K, k, 0, 0, 0); return 1;
dec_OR_K: add_op(p, FOP_OR_K, k, 0, 0, 0); return 1;
dec_AND_K:
	add_op(p, FOP_AND_K, k, 0, 0, 0);
	load = FOP_AND_K; /* `and #m; jeq #c`: a masked compare, fused the same way */
	goto fuse;
dec_LSH_K: add_op(p, FOP_LSH_K, k, 0, 0, 0); return 1;
dec_RSH_K: add_op(p, FOP_RSH_K, k, 0, 0, 0); return 1;
dec_MOD_K: add_op(p, FOP_MOD_K, k, 0, 0, 0); return 1;
dec_XOR_K: add_op(p, FOP_XOR_K, k, 0, 0, 0); return 1;
dec_ADD_X: add_op(p, FOP_ADD_X, 0, 0, 0, 0); return 1;
dec_SUB_X: add_op(p, FOP_SUB_X, 0, 0, 0, 0); return 1;
dec_MUL_X: add_op(p, FOP_MUL_X, 0, 0, 0, 0); return 1;
dec_DIV_X: add_op(p, FOP_DIV_X, 0, 0, 0, 0); return 1;
dec_OR_X: add_op(p, FOP_OR_X, 0, 0, 0, 0); return 1;
dec_AND_X: add_op(p, FOP_AND_X, 0, 0, 0, 0); return 1;
dec_LSH_X: add_op(p, p->lnx ? FOP_LSH_X_LNX : FOP_LSH_X, 0, 0, 0, 0); return 1;
dec_RSH_X: add_op(p, p->lnx ? FOP_RSH_X_LNX : FOP_RSH_X, 0, 0, 0, 0); return 1;
dec_MOD_X: add_op(p, FOP_MOD_X, 0, 0, 0, 0); return 1;
dec_XOR_X: add_op(p, FOP_XOR_X, 0, 0, 0, 0); return 1;
dec_NEG: add_op(p, FOP_NEG, 0, 0, 0, 0); return 1;
dec_JA: add_op(p, FOP_JA, 0, 0, next + k, 0); return 1;
dec_JEQ_K:
	if (emit_chain(p, i))
		return 1;
	add_op(p, FOP_JEQ_K, k, 0, next + in->jt, next + in->jf);
	return 1;
dec_JGT_K: add_op(p, FOP_JGT_K, k, 0, next + in->jt, next + in->jf); return 1;
dec_JGE_K: add_op(p, FOP_JGE_K, k, 0, next + in->jt, next + in->jf); return 1;
dec_JSET_K: add_op(p, FOP_JSET_K, k, 0, next + in->jt, next + in->jf); return 1;
dec_JEQ_X: add_op(p, FOP_JEQ_X, 0, 0, next + in->jt, next + in->jf); return 1;
dec_JGT_X: add_op(p, FOP_JGT_X, 0, 0, next + in->jt, next + in->jf); return 1;
dec_JGE_X: add_op(p, FOP_JGE_X, 0, 0, next + in->jt, next + in->jf); return 1;
dec_JSET_X: add_op(p, FOP_JSET_X, 0, 0, next + in->jt, next + in->jf); return 1;
dec_RET_K: add_op(p, FOP_RET_K, k, 0, 0, 0); return 1;
dec_RET_A: add_op(p, FOP_RET_A, 0, 0, 0, 0); return 1;
dec_TAX: add_op(p, FOP_TAX, 0, 0, 0, 0); return 1;
dec_TXA: add_op(p, FOP_TXA, 0, 0, 0, 0); return 1;

fuse: {
	/* A plain-offset (or pcap indirect) load or an and, then a jump on #k in the block. */
	size_t o = p->nops - 1;
	if (i + 1 >= end || (p->code[o] != load))
		return 1;
	const struct bpfkit_insn *j = &p->insns[i + 1];
	int f = fused_op(load, j->code);
	if (f < 0)
		return 1;
	p->code[o] = (uint16_t)f;
	p->ops[o].k2 = j->k;
	p->target[2 * o] = next + 1 + j->jt;
	p->target[2 * o + 1] = next + 1 + j->jf;
	return 2;
}
}

/* A block that returns 0 whatever the packet: it accepts any earlier check. */
#define NEED_DROP UINT64_MAX

/*
 * Pass 3a, backward over the blocks: a block's check may be raised to the
 * smallest need of its successors, since every path from it then loads that
 * far (or drops the packet) before it can return, so a shorter packet gets 0
 * anyway.  A `ret #0` block, or one that can never pass, is NEED_DROP: the
 * paths beside it set the need (`ldb [23]; jeq #6, L, drop` checks as far
 * as L's loads go), which saves a CHECK dispatch per block on the way.
 */
static void hoist_needs(struct prep *p)
{
	for (size_t s = p->n; s-- > 0;) {
		if (!p->leader[s])
			continue;
		size_t e = block_end(p, s);
		uint64_t own = 0, succ = 0;
		for (size_t i = s; i < e; i++)
			own = max64(own, insn_need(p, i));
		const struct bpfkit_insn *last = &p->insns[e - 1];
		if (own >= NEED_NEVER ||
		    (e - s == 1 && last->code == (BPFKIT_RET | BPFKIT_K) && last->k == 0)) {
			p->hoist[s] = NEED_DROP;
			continue;
		}
		if (is_jump(last->code)) {
			if (BPFKIT_OP(last->code) == BPFKIT_JA)
				succ = p->hoist[e + last->k];
			else
				succ = min64(p->hoist[e + last->jt], p->hoist[e + last->jf]);
		} else if (!is_ret(last->code) && e < p->n) {
			succ = p->hoist[e];
		}
		p->hoist[s] = succ == NEED_DROP ? NEED_DROP : max64(own, succ);
	}
}

/* Passes 3b and 4: per block, the merged check, then the instructions' ops. */
static void emit_blocks(struct prep *p)
{
	for (size_t i = 0; i < p->n; i++)
		p->known[i] = UINT64_MAX; /* no path seen yet */
	p->known[0] = 0;
	for (size_t s = 0; s < p->n;) {
		size_t e = block_end(p, s);
		if (p->in_chain[s]) { /* emitted by the chain's head */
			s = e;
			continue;
		}
		uint64_t need = 0, known = p->known[s] == UINT64_MAX ? 0 : p->known[s];
		for (size_t i = s; i < e; i++)
			need = max64(need, insn_need(p, i));
		if (need < NEED_NEVER && p->hoist[s] != NEED_DROP)
			need = max64(need, p->hoist[s]);
		p->first_op[s] = (uint32_t)p->nops;
		if (need >= NEED_NEVER) {
			add_op(p, FOP_RET_K, 0, 0, 0, 0);
			s = e;
			continue;
		}
		if (need > known && s == 0)
			p->entry_need = (uint32_t)need; /* only entered at the start */
		else if (need > known)
			add_op(p, FOP_CHECK, (uint32_t)need, 0, 0, 0);
		uint64_t out = max64(known, need);
		for (size_t i = s; i < e;)
			i += emit_insn(p, i, e);
		/* Successors learn what this block checked. */
		const struct bpfkit_insn *last = &p->insns[e - 1];
		if (p->code[p->nops - 1] == FOP_JEQ2 || p->code[p->nops - 1] == FOP_JEQ4_16) {
			/* A chain: its ops jump to its target or to the last jeq's jf. */
			size_t o = p->nops - 1;
			p->known[p->target[2 * o]] = min64(p->known[p->target[2 * o]], out);
			p->known[p->target[2 * o + 1]] = min64(p->known[p->target[2 * o + 1]], out);
		} else if (is_jump(last->code)) {
			size_t t = e, f = e;
			if (BPFKIT_OP(last->code) == BPFKIT_JA) {
				t = f = e + last->k;
			} else {
				t = e + last->jt;
				f = e + last->jf;
			}
			p->known[t] = min64(p->known[t], out);
			p->known[f] = min64(p->known[f], out);
		} else if (!is_ret(last->code) && e < p->n) {
			p->known[e] = min64(p->known[e], out);
		}
		s = e;
	}
}

/* Pass 5: targets to op indexes, threaded through ja ops. */
static void link_jumps(struct prep *p)
{
	for (size_t o = 0; o < p->nops; o++) {
		if (p->code[o] == FOP_JA || (p->code[o] >= FOP_JEQ_K && p->code[o] <= FOP_JSET_X) ||
		    (p->code[o] >= FOP_LDW_ABS_JEQ && p->code[o] <= FOP_JEQ4_16)) {
			p->target[2 * o] = p->first_op[p->target[2 * o]];
			if (p->code[o] != FOP_JA)
				p->target[2 * o + 1] = p->first_op[p->target[2 * o + 1]];
			else
				p->target[2 * o + 1] = p->target[2 * o];
		} else {
			p->target[2 * o] = p->target[2 * o + 1] = UINT32_MAX;
		}
	}
	/* Backwards, so a ja's own target is threaded before anything that jumps to it. */
	for (size_t o = p->nops; o-- > 0;) {
		for (int s = 0; s < 2; s++) {
			uint32_t t = p->target[2 * o + s];
			if (t != UINT32_MAX && p->code[t] == FOP_JA)
				p->target[2 * o + s] = p->target[2 * t];
		}
	}
}

BPFKIT_API int bpfkit_fast_prepare(const struct bpfkit_insn *insns, size_t n, unsigned flags,
				   const struct bpfkit_alloc *alloc, struct bpfkit_fast **out,
				   struct bpfkit_error *err)
{
	if (!out) {
		error_set(err, "bpfkit_fast_prepare: out is NULL");
		return -1;
	}
	*out = NULL;
	if (flags & ~(unsigned)BPFKIT_FAST_LINUX) {
		error_set(err, "bpfkit_fast_prepare: unknown flags 0x%x", flags);
		return -1;
	}
	if (!insns && n > 0) {
		error_set(err, "bpfkit_fast_prepare: no instructions");
		return -1;
	}
	bool lnx = (flags & BPFKIT_FAST_LINUX) != 0;
	if (bpfkit_validate(insns, n, lnx ? BPFKIT_VALIDATE_SOCKET : BPFKIT_VALIDATE_PCAP, err) != 0)
		return -1;
	/* At most 2 ops per instruction, indexed by uint32_t. */
	if (n > UINT32_MAX / 4 || n > (SIZE_MAX - sizeof(struct bpfkit_fast)) /
				       (2 * sizeof(struct fop) + 2 * sizeof(uint32_t) + 32)) {
		error_set(err, "program of %zu instructions is too large for the fast engine", n);
		return -1;
	}

	struct prep p = {insns, n, lnx, NULL, NULL, NULL, NULL, NULL, NULL, 0, NULL, 0,
			 NULL, NULL};
	size_t maxops = 2 * n;
	struct bpfkit_fast *f = mem_alloc(alloc, sizeof *f + maxops * sizeof(struct fop));
	p.leader = mem_alloc(alloc, n + 1);
	p.known = mem_alloc_array(alloc, n, sizeof *p.known);
	p.hoist = mem_alloc_array(alloc, n, sizeof *p.hoist);
	p.first_op = mem_alloc_array(alloc, n, sizeof *p.first_op);
	p.code = mem_alloc_array(alloc, maxops, sizeof *p.code);
	p.target = mem_alloc_array(alloc, maxops, 2 * sizeof *p.target);
	p.npred = mem_alloc(alloc, n);
	p.in_chain = mem_alloc(alloc, n);
	int rc = -1;
	if (!f || !p.leader || !p.known || !p.hoist || !p.first_op || !p.code || !p.target ||
	    !p.npred || !p.in_chain) {
		error_oom(err);
		goto done;
	}
	p.ops = f->ops;
	find_leaders(&p);
	hoist_needs(&p);
	emit_blocks(&p);
	link_jumps(&p);

	const void *const *labels = NULL;
	f->zero_mem = false;
#if FAST_THREADED
	if (lnx)
		fast_exec_linux(NULL, NULL, 0, 0, NULL, &labels);
	else
		fast_exec_pcap(NULL, NULL, 0, 0, NULL, &labels);
#endif
	for (size_t o = 0; o < p.nops; o++) {
		struct fop *op = &f->ops[o];
#if FAST_THREADED
		op->h = labels[p.code[o]];
#else
		(void)labels;
		op->h = p.code[o];
#endif
		op->jt = p.target[2 * o] == UINT32_MAX ? NULL : &f->ops[p.target[2 * o]];
		op->jf = p.target[2 * o + 1] == UINT32_MAX ? NULL : &f->ops[p.target[2 * o + 1]];
		if (p.code[o] == FOP_LD_MEM || p.code[o] == FOP_LDX_MEM)
			f->zero_mem = true;
	}
	f->alloc = alloc ? *alloc : (struct bpfkit_alloc){NULL, NULL};
	f->flags = flags;
	f->nops = p.nops;
	f->entry_need = p.entry_need;
	*out = f;
	f = NULL;
	rc = 0;
done:
	mem_free(alloc, p.leader);
	mem_free(alloc, p.known);
	mem_free(alloc, p.hoist);
	mem_free(alloc, p.first_op);
	mem_free(alloc, p.code);
	mem_free(alloc, p.target);
	mem_free(alloc, p.npred);
	mem_free(alloc, p.in_chain);
	mem_free(alloc, f);
	return rc;
}

BPFKIT_API void bpfkit_fast_free(struct bpfkit_fast *f)
{
	if (!f)
		return;
	struct bpfkit_alloc a = f->alloc;
	mem_free(&a, f);
}
