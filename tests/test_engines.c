/*
 * test_engines.c - the prepared engines (fast interpreter, JIT) against the
 * reference interpreter, bpfkit_interp, which is the oracle.
 *
 * `engines` lists every prepared engine (name, dialects, prepare/run/free);
 * adding one is one row, and every test below then checks it:
 *   - hand-written programs aimed at the fast engine's transformations
 *     (merged bounds checks, fused load+jump, ja threading, impossible loads);
 *   - random valid programs (tests/randprog.h) on random packets and on real
 *     ones from ../shared/pcaps, each cut just before and at the end of every
 *     load the reference executes (found with bpfkit_interp_trace), in both
 *     dialects (Linux with random meta and ancillary loads);
 *   - prepare's failures: invalid programs, bad flags, every allocation.
 * The table-driven rows of test_interp.c run through `fast` as well.
 */
#define _DEFAULT_SOURCE 1 /* pcap.h needs u_int & co. */
#include "harness.h"
#include "internal.h"
#include "packets.h"
#include "randprog.h"

#include <pcap/pcap.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* Engines                                                             */

#include "engines.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */

static void format_prog(char *buf, size_t size, const struct bpfkit_insn *insns, size_t n)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used + 40 < size; i++)
		used += (size_t)snprintf(buf + used, size - used, "%s{0x%02x,%u,%u,0x%" PRIx32 "}",
					 i ? " " : "", insns[i].code, insns[i].jt, insns[i].jf,
					 insns[i].k);
	if (n && used + 40 >= size)
		snprintf(buf + used, size - used, " ...");
}

/* Failures reported per test before the rest are only counted. */
enum { MAX_REPORTS = 5 };

struct diff {
	size_t runs, reported, mismatches;
};

/*
 * Runs h (engine e's handle for prog) and the reference on one packet; reports a
 * disagreement with the program.
 */
static void compare(struct diff *d, const struct engine *e, const void *h,
		    const struct bpfkit_insn *prog, size_t n, const uint8_t *pkt, uint32_t caplen,
		    uint32_t wirelen, const struct bpfkit_meta *meta)
{
	uint32_t want = bpfkit_interp(prog, n, pkt, caplen, wirelen, meta);
	uint32_t got = e->run(h, pkt, caplen, wirelen, meta);
	d->runs++;
	if (got == want)
		return;
	d->mismatches++;
	if (d->reported++ >= MAX_REPORTS)
		return;
	char buf[3000];
	format_prog(buf, sizeof buf, prog, n);
	CHECK_MSG(0, "[%s%s] got %" PRIu32 ", interp %" PRIu32 " (caplen %" PRIu32 " wirelen %"
		  PRIu32 "); program (%zu insns): %s", e->name, meta ? " linux" : "", got, want,
		  caplen, wirelen, n, buf);
}

/* Collects the end offsets of the packet loads a reference run executes. */
struct load_ends {
	uint32_t v[64];
	size_t n;
	uint32_t prev_x;
	bool lnx;
};

static void collect_loads(void *ctx, const struct bpfkit_trace *t)
{
	struct load_ends *le = ctx;
	uint16_t code = t->insn.code;
	uint32_t size = BPFKIT_SIZE(code) == BPFKIT_W ? 4 : BPFKIT_SIZE(code) == BPFKIT_H ? 2 : 1;
	uint64_t off = UINT64_MAX;
	if (BPFKIT_CLASS(code) == BPFKIT_LD && BPFKIT_MODE(code) == BPFKIT_ABS)
		off = t->insn.k;
	else if (BPFKIT_CLASS(code) == BPFKIT_LD && BPFKIT_MODE(code) == BPFKIT_IND)
		off = (uint64_t)t->x + t->insn.k; /* ind loads do not change X */
	else if (code == (BPFKIT_LDX | BPFKIT_B | BPFKIT_MSH))
		off = t->insn.k, size = 1;
	if (le->lnx && off != UINT64_MAX)
		off &= 0xffffffffu; /* negative offsets: not worth cutting around */
	if (off < 0x10000 && le->n + 2 <= sizeof le->v / sizeof le->v[0]) {
		le->v[le->n++] = (uint32_t)off + size;
		le->v[le->n++] = (uint32_t)off + size - 1;
	}
}

/*
 * Runs engine e on prog over pkt cut at caplen, at 0, and just before and at
 * the end of every load the reference executes on the whole packet.
 */
static void compare_cuts(struct diff *d, const struct engine *e, const void *h,
			 const struct bpfkit_insn *prog, size_t n, const uint8_t *pkt,
			 uint32_t caplen, uint32_t wirelen, const struct bpfkit_meta *meta)
{
	struct load_ends le = {{0}, 0, 0, meta != NULL};
	bpfkit_interp_trace(prog, n, pkt, caplen, wirelen, meta, collect_loads, &le);
	compare(d, e, h, prog, n, pkt, caplen, wirelen, meta);
	compare(d, e, h, prog, n, pkt, 0, wirelen, meta);
	for (size_t i = 0; i < le.n; i++)
		if (le.v[i] < caplen)
			compare(d, e, h, prog, n, pkt, le.v[i], wirelen, meta);
}

static void random_meta(uint64_t *s, struct bpfkit_meta *m, uint32_t caplen)
{
	uint32_t *f[] = {&m->protocol, &m->pkttype, &m->ifindex, &m->mark, &m->queue,
			 &m->hatype, &m->rxhash, &m->cpu, &m->vlan_tci, &m->vlan_avail,
			 &m->vlan_tpid, &m->pay_offset, &m->random};
	for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
		*f[i] = (uint32_t)randprog_next(s);
	m->net_offset = randprog_below(s, 4) ? randprog_below(s, caplen + 8)
					      : (uint32_t)randprog_next(s);
}

/*
 * A random packet: mostly random bytes, sometimes a chain of netlink
 * attributes (host-order u16 length and type) so #nla and #nlan find things.
 */
static uint32_t random_packet(uint64_t *s, uint8_t *buf, uint32_t max)
{
	uint32_t len = randprog_below(s, 4) ? randprog_below(s, 96) : randprog_below(s, max + 1);
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)randprog_next(s);
	if (randprog_below(s, 3) == 0) {
		uint32_t pos = randprog_below(s, 8);
		while (pos + 4 <= len) {
			uint16_t alen = (uint16_t)(4 + randprog_below(s, 12));
			uint16_t type = (uint16_t)randprog_below(s, 8);
			if (randprog_below(s, 8) == 0)
				type |= 0x8000; /* NLA_F_NESTED, masked off */
			memcpy(buf + pos, &alen, 2);
			memcpy(buf + pos + 2, &type, 2);
			pos += (alen + 3u) & ~3u;
		}
	}
	return len;
}

/* ------------------------------------------------------------------ */
/* Hand-written programs                                               */

#define I(c, t, f, k) {(uint16_t)(c), (uint8_t)(t), (uint8_t)(f), (uint32_t)(k)}
enum {
	LDW = 0x20, LDH = 0x28, LDB = 0x30, LDWI = 0x40, LDHI = 0x48, LDBI = 0x50,
	LDLEN = 0x80, LDI = 0x00, LDM = 0x60, LDXI = 0x01, LDXM = 0x61, MSH = 0xb1, ST = 0x02,
	ADDK = 0x04, ANDK = 0x54, DIVX = 0x3c, MODX = 0x9c, LSHX = 0x6c, RSHX = 0x7c, TAX = 0x07, TXA = 0x87,
	JA = 0x05, JEQ = 0x15, JGT = 0x25, JGE = 0x35, JSET = 0x45, JEQX = 0x1d, RETK = 0x06,
	RETA = 0x16
};

struct handcase {
	const char *name;
	struct bpfkit_insn prog[16];
	size_t n;
};

static const struct handcase handcases[] = {
	{"merged check: the second load is short", {
		I(LDB, 0, 0, 0), I(LDH, 0, 0, 20), I(RETA, 0, 0, 0)}, 3},
	{"merged check: division by zero before the short load", {
		I(LDXI, 0, 0, 0), I(LDB, 0, 0, 1), I(DIVX, 0, 0, 0), I(LDW, 0, 0, 30),
		I(RETK, 0, 0, 9)}, 5},
	{"checks after a join: one path checked less", {
		I(LDB, 0, 0, 0), I(JEQ, 0, 2, 1), I(LDW, 0, 0, 40), I(JA, 0, 0, 0),
		I(LDH, 0, 0, 10), I(RETA, 0, 0, 0)}, 6},
	{"fused load+jump on each compare", {
		I(LDH, 0, 1, 12), I(JEQ, 1, 0, 0x0800), I(RETK, 0, 0, 1), I(LDB, 0, 0, 14),
		I(JGT, 0, 1, 0x40), I(LDW, 0, 0, 16), I(JGE, 0, 2, 7), I(LDB, 0, 0, 3),
		I(JSET, 1, 0, 0x10), I(RETK, 0, 0, 2), I(RETA, 0, 0, 0)}, 11},
	{"a jump target between load and jump: no fusion", {
		I(LDB, 0, 0, 0), I(JEQ, 1, 0, 5), I(LDB, 0, 0, 1), I(JEQ, 0, 1, 7), I(RETK, 0, 0, 3),
		I(RETA, 0, 0, 0)}, 6},
	{"ja chains are threaded", {
		I(LDB, 0, 0, 0), I(JEQ, 0, 1, 1), I(JA, 0, 0, 1), I(JA, 0, 0, 1), I(JA, 0, 0, 0),
		I(RETA, 0, 0, 0)}, 6},
	{"indirect loads and fused indirect compares", {
		I(MSH, 0, 0, 0), I(LDHI, 0, 0, 2), I(JEQ, 0, 1, 0x1234), I(RETK, 0, 0, 5),
		I(LDBI, 0, 0, 0), I(JSET, 0, 1, 1), I(RETK, 0, 0, 6), I(LDWI, 0, 0, 1),
		I(RETA, 0, 0, 0)}, 9},
	{"X + k past 2^32", {
		I(LDXI, 0, 0, 0xffffffff), I(LDBI, 0, 0, 2), I(RETK, 0, 0, 1)}, 3},
	{"loads at huge offsets", {
		I(LDB, 0, 0, 1), I(JEQ, 0, 1, 0), I(LDW, 0, 0, 0xffffeffd), I(RETK, 0, 0, 1)}, 4},
	{"scratch memory read before written is zero", {
		I(LDM, 0, 0, 3), I(LDXM, 0, 0, 4), I(ADDK, 0, 0, 1), I(ST, 0, 0, 3), I(LDM, 0, 0, 3),
		I(RETA, 0, 0, 0)}, 6},
	{"shifts by X of 31, 32, 33", {
		I(LDLEN, 0, 0, 0), I(TAX, 0, 0, 0), I(LDI, 0, 0, 0x80000001), I(LSHX, 0, 0, 0),
		I(TAX, 0, 0, 0), I(LDI, 0, 0, 0xf0000000), I(RSHX, 0, 0, 0), I(RETA, 0, 0, 0)}, 8},
	{"modulo by zero X", {
		I(LDLEN, 0, 0, 0), I(TAX, 0, 0, 0), I(LDI, 0, 0, 10), I(MODX, 0, 0, 0),
		I(RETA, 0, 0, 0)}, 5},
	{"compare with X, both targets the same", {
		I(LDB, 0, 0, 0), I(TAX, 0, 0, 0), I(LDB, 0, 0, 1), I(JEQX, 1, 1, 0), I(RETK, 0, 0, 1),
		I(RETK, 0, 0, 2)}, 6},
};

TEST(engine_handwritten)
{
	uint8_t pkt[64];
	for (size_t i = 0; i < sizeof pkt; i++)
		pkt[i] = (uint8_t)(i * 37 + 5);
	pkt[0] = 1;
	pkt[12] = 0x08, pkt[13] = 0x00;
	static const uint32_t wirelens[] = {0, 1, 31, 32, 33, 100};
	for (size_t e = 0; e < NENGINES; e++) {
		struct diff d = {0, 0, 0};
		for (size_t c = 0; c < sizeof handcases / sizeof handcases[0]; c++) {
			const struct handcase *hc = &handcases[c];
			struct bpfkit_error err;
			void *h = engines[e].prepare(hc->prog, hc->n, false, NULL, &err);
			CHECK_MSG(h, "[%s] %s: prepare failed: %s", engines[e].name, hc->name,
				  err.message);
			if (!h)
				continue;
			for (uint32_t cap = 0; cap <= sizeof pkt; cap++)
				for (size_t w = 0; w < sizeof wirelens / sizeof wirelens[0]; w++) {
					uint32_t wl = wirelens[w] > cap ? wirelens[w] : cap;
					pkt[0] = (uint8_t)(cap & 3);
					compare(&d, &engines[e], h, hc->prog, hc->n, pkt, cap, wl,
						NULL);
				}
			engines[e].release(h);
		}
		CHECK_EQ(d.mismatches, 0);
		CHECK(d.runs > 1000);
	}
}

/*
 * The shapes the engines compile specially, each beside a near miss:
 *   - a load whose value only the jump after it reads (the jit compares the
 *     packet bytes in memory against the byte-swapped constant): every size,
 *     absolute and indirect, jeq/jgt/jge/jset, constants that fit the load
 *     and ones that do not, A live after the jump or not;
 *   - `ldxb 4*([k]&0xf); ld? [x + k]; j?? #c` (fast: one op) and `and #m;
 *     j?? #c` (fast: one op);
 *   - jeq chains (a port list: the jit compares A with all constants in SSE
 *     registers, fast in one op), of every length around the 4-lane padding,
 *     with a jump into the middle (no chain), a target whose loads hoist a
 *     check into the chain, and A read after the chain.
 * Packets hold each compared constant at the loaded offset, and are cut at
 * every length up to past the last load.
 */
static const uint32_t shape_consts[] = {
	0, 1, 5, 0x7f, 0x80, 0xff, 0x100, 0x800, 0x1234, 0x7fff, 0x8000, 0xffff, 0x10000,
	0x0a000001, 0x7fffffff, 0x80000000, 0xffffffff
};

/* Writes v big-endian in size bytes at pkt + off. */
static void put_be(uint8_t *pkt, uint32_t off, uint32_t size, uint32_t v)
{
	for (uint32_t i = 0; i < size; i++)
		pkt[off + i] = (uint8_t)(v >> (8 * (size - 1 - i)));
}

/* Every engine on prog over pkt cut at 0..caplen; returns the mismatches. */
static void compare_all_cuts(struct diff *d, void *const *h, const struct bpfkit_insn *prog,
			     size_t n, const uint8_t *pkt, uint32_t caplen)
{
	for (size_t e = 0; e < NENGINES; e++)
		for (uint32_t cap = 0; cap <= caplen; cap++)
			if (h[e])
				compare(d, &engines[e], h[e], prog, n, pkt, cap, caplen, NULL);
}

static void prepare_all(void **h, const struct bpfkit_insn *prog, size_t n)
{
	for (size_t e = 0; e < NENGINES; e++) {
		struct bpfkit_error err;
		h[e] = engines[e].prepare(prog, n, false, NULL, &err);
		CHECK_MSG(h[e], "[%s] prepare failed: %s", engines[e].name, err.message);
	}
}

static void release_all(void **h)
{
	for (size_t e = 0; e < NENGINES; e++)
		if (h[e])
			engines[e].release(h[e]);
}

TEST(engine_compare_shapes)
{
	static const uint16_t loads[] = {LDB, LDH, LDW, LDBI, LDHI, LDWI};
	static const uint16_t jumps[] = {JEQ, JGT, JGE, JSET};
	enum { OFF = 6, CAP = 24 };
	struct diff d = {0, 0, 0};
	void *h[NENGINES];
	uint8_t pkt[64];
	/* Load + compare, A dead after (ret #k) or live (ret a). */
	for (size_t l = 0; l < sizeof loads / sizeof loads[0]; l++)
		for (size_t j = 0; j < sizeof jumps / sizeof jumps[0]; j++)
			for (size_t c = 0; c < sizeof shape_consts / sizeof shape_consts[0]; c++)
				for (int live = 0; live < 2; live++) {
					bool ind = BPFKIT_MODE(loads[l]) == BPFKIT_IND;
					uint32_t size = BPFKIT_SIZE(loads[l]) == BPFKIT_W ? 4 :
							BPFKIT_SIZE(loads[l]) == BPFKIT_H ? 2 : 1;
					struct bpfkit_insn prog[] = {
						I(MSH, 0, 0, 0), I(loads[l], 0, 0, ind ? 2 : OFF),
						I(jumps[j], 0, 1, shape_consts[c]), I(RETK, 0, 0, 7),
						I(live ? RETA : RETK, 0, 0, 9)};
					prepare_all(h, prog, 5);
					for (int v = 0; v < 4; v++) {
						for (size_t i = 0; i < sizeof pkt; i++)
							pkt[i] = (uint8_t)(i * 29 + 3 + v);
						pkt[0] = 0x41; /* X = 4: the indirect load reads at 6 */
						uint32_t val = v == 0 ? shape_consts[c] :
							       v == 1 ? shape_consts[c] + 1 :
							       v == 2 ? shape_consts[c] - 1 : ~shape_consts[c];
						put_be(pkt, OFF, size, val);
						compare_all_cuts(&d, h, prog, 5, pkt, CAP);
					}
					release_all(h);
				}
	/*
	 * Load + and #m + compare with A dead after (the jit tests the bytes in
	 * memory against the swapped mask) or live: masks of whole bytes, single
	 * bits, none and all; constants inside, outside and partly outside them.
	 */
	static const uint32_t masks[] = {0, 0xff, 0xff00, 0xff000000u, 0xffff, 0x1fff, 0x12,
					 0x80000001u, 0xffffffffu, 0x00f0f000};
	static const uint16_t mjumps[] = {JEQ, JSET, JGT};
	for (size_t l = 0; l < sizeof loads / sizeof loads[0]; l++)
		for (size_t mi = 0; mi < sizeof masks / sizeof masks[0]; mi++)
			for (size_t j = 0; j < sizeof mjumps / sizeof mjumps[0]; j++)
				for (int kc = 0; kc < 4; kc++)
					for (int live = 0; live < 2; live++) {
						bool ind = BPFKIT_MODE(loads[l]) == BPFKIT_IND;
						uint32_t size = BPFKIT_SIZE(loads[l]) == BPFKIT_W ? 4 :
								BPFKIT_SIZE(loads[l]) == BPFKIT_H ? 2 : 1;
						uint32_t m = masks[mi];
						uint32_t k = kc == 0 ? 0 : kc == 1 ? m & 0x0a0a0a0a
							   : kc == 2 ? m : m ^ 0x100;
						struct bpfkit_insn prog[] = {
							I(MSH, 0, 0, 0), I(loads[l], 0, 0, ind ? 2 : OFF),
							I(ANDK, 0, 0, m), I(mjumps[j], 0, 1, k),
							I(RETK, 0, 0, 7), I(live ? RETA : RETK, 0, 0, 9)};
						prepare_all(h, prog, 6);
						for (int v = 0; v < 4; v++) {
							for (size_t i = 0; i < sizeof pkt; i++)
								pkt[i] = (uint8_t)(i * 29 + 3 + v);
							pkt[0] = 0x41;
							uint32_t val = v == 0 ? k : v == 1 ? k | ~m
								     : v == 2 ? k ^ 1 : ~k;
							put_be(pkt, OFF, size, val);
							compare_all_cuts(&d, h, prog, 6, pkt, CAP);
						}
						release_all(h);
					}
	/*
	 * One load read by several compares (what a jit keeping A in packet byte
	 * order would have to get right): jeq/jset on both sides, constants wider
	 * than the load, then a reader that is not a compare (ret a, jgt, and, a
	 * jump into a block A reaches from another load) in the last slot.
	 */
	static const uint16_t tails[] = {RETK, RETA, JGT, ANDK, LDB};
	for (size_t l = 0; l < sizeof loads / sizeof loads[0]; l++)
		for (size_t tl = 0; tl < sizeof tails / sizeof tails[0]; tl++)
			for (int wide = 0; wide < 4; wide++) {
				bool merge = wide >= 2;
				bool ind = BPFKIT_MODE(loads[l]) == BPFKIT_IND;
				uint32_t size = BPFKIT_SIZE(loads[l]) == BPFKIT_W ? 4 :
						BPFKIT_SIZE(loads[l]) == BPFKIT_H ? 2 : 1;
				uint32_t c1 = wide & 1 ? 0x12345 : 0x0a0b0c0d & (size == 4 ? ~0u : size == 2
							       ? 0xffffu : 0xffu);
				uint32_t c2 = c1 ^ 0x0102;
				/* 0 msh; 1 ld; 2 jeq c1 ->4 / 3; 3 jset ->6 / 7; 4 jeq c2 ->5 / 7;
				   5 ret #1; 6 ldb [1] (merge: A meets another load at 7) or ret #7;
				   7 jeq c2 ->8 / 9; 8 ret #2; 9 the tail */
				struct bpfkit_insn prog[14] = {
					I(MSH, 0, 0, 0), I(loads[l], 0, 0, ind ? 2 : OFF),
					I(JEQ, 1, 0, c1), I(JSET, 2, 3, 0x80010001u),
					I(JEQ, 0, 2, c2), I(RETK, 0, 0, 1),
					merge ? (struct bpfkit_insn)I(LDB, 0, 0, 1)
					      : (struct bpfkit_insn)I(RETK, 0, 0, 7),
					I(JEQ, 0, 1, c2), I(RETK, 0, 0, 2)};
				size_t n = 9;
				switch (tails[tl]) {
				case RETK: prog[n++] = (struct bpfkit_insn)I(RETK, 0, 0, 3); break;
				case RETA: prog[n++] = (struct bpfkit_insn)I(RETA, 0, 0, 0); break;
				case JGT:
					prog[n++] = (struct bpfkit_insn)I(JGT, 0, 1, c1);
					prog[n++] = (struct bpfkit_insn)I(RETK, 0, 0, 4);
					prog[n++] = (struct bpfkit_insn)I(RETK, 0, 0, 5);
					break;
				case ANDK:
					prog[n++] = (struct bpfkit_insn)I(ANDK, 0, 0, 0xff);
					prog[n++] = (struct bpfkit_insn)I(RETA, 0, 0, 0);
					break;
				default:   /* a jeq after the merge of the two loads */
					prog[n++] = (struct bpfkit_insn)I(JEQ, 0, 1, c1);
					prog[n++] = (struct bpfkit_insn)I(RETK, 0, 0, 6);
					prog[n++] = (struct bpfkit_insn)I(RETA, 0, 0, 0);
					break;
				}
				prepare_all(h, prog, n);
				for (int v = 0; v < 5; v++) {
					for (size_t i = 0; i < sizeof pkt; i++)
						pkt[i] = (uint8_t)(i * 31 + 7 + v);
					pkt[0] = 0x41;
					pkt[1] = (uint8_t)(v & 1 ? c2 : c1);
					uint32_t val = v == 0 ? c1 : v == 1 ? c2 : v == 2 ? 0x80010001u
						     : v == 3 ? c1 + 1 : 0;
					put_be(pkt, OFF, size, val);
					compare_all_cuts(&d, h, prog, n, pkt, CAP);
				}
				release_all(h);
			}
	/* ldxb + indirect load + compare; and + compare. */
	for (size_t j = 0; j < sizeof jumps / sizeof jumps[0]; j++)
		for (size_t c = 0; c < sizeof shape_consts / sizeof shape_consts[0]; c++) {
			struct bpfkit_insn prog[] = {
				I(LDB, 0, 0, 1), I(MSH, 0, 0, 0), I(LDHI, 0, 0, 2),
				I(jumps[j], 0, 3, shape_consts[c] & 0xffff), I(LDW, 0, 0, 2),
				I(ANDK, 0, 0, 0xff00ff00), I(jumps[j], 0, 1, shape_consts[c]),
				I(RETK, 0, 0, 7), I(RETA, 0, 0, 0)};
			prepare_all(h, prog, 9);
			for (int v = 0; v < 3; v++) {
				for (size_t i = 0; i < sizeof pkt; i++)
					pkt[i] = (uint8_t)(i * 13 + v);
				pkt[0] = (uint8_t)(0x40 | v);
				put_be(pkt, 4u * v + 2, 2, shape_consts[c] + (v == 2));
				put_be(pkt, 2, 4, shape_consts[c] | (v == 1 ? 0x00ff00ffu : 0));
				compare_all_cuts(&d, h, prog, 9, pkt, 32);
			}
			release_all(h);
		}
	/*
	 * jeq chains of 1..20 (up to 3 slots of 8 word lanes, 2 of 16 byte lanes, 5 of 4
	 * dword lanes): on ldh [6] (variants 0-3), ld [6] with wide constants (4), ldb [6]
	 * (5: byte lanes), ldh [6] with one constant above 0xffff whose low half equals a
	 * packet value (6: must fall back to dword lanes and not match), ldh [x + 4] with
	 * X = 2 (7), ldh [6] but a jump to the head from `ld [4]`, a word whose low half is the
	 * packet's value (8: word lanes needed).  T = ret #7, F = ret #0 / a.
	 */
	for (uint32_t m = 1; m <= 20; m++)
		for (int variant = 0; variant < 9; variant++) {
			uint32_t base = variant == 4 ? 0x0a000050 : variant == 5 ? 0x20 : 0x50;
			uint32_t size = variant == 4 ? 4 : variant == 5 ? 1 : 2;
			uint16_t load = variant == 4 ? LDW : variant == 5 ? LDB : variant == 7 ? LDHI
											     : LDH;
			struct bpfkit_insn prog[40];
			size_t n = 0;
			/* variant 1: a jump into the chain's third jeq; 2: T loads further */
			prog[n++] = (struct bpfkit_insn)I(LDB, 0, 0, 0);
			prog[n++] = (struct bpfkit_insn)I(JEQ, variant == 1 ? 2 : 0, 0, 0x55);
			if (variant == 7)
				prog[n++] = (struct bpfkit_insn)I(LDXI, 0, 0, 2);
			if (variant == 8) {
				prog[n - 1].jf = 2;
				prog[n++] = (struct bpfkit_insn)I(LDW, 0, 0, OFF - 2);
				prog[n++] = (struct bpfkit_insn)I(JA, 0, 0, 1);
			}
			prog[n++] = (struct bpfkit_insn)I(load, 0, 0, variant == 7 ? OFF - 2 : OFF);
			for (uint32_t i = 0; i < m; i++) {
				uint8_t jt = (uint8_t)(m - i); /* to T, just past the chain's F */
				uint32_t k = base + 3 * i;
				if (variant == 6 && i == m / 2)
					k = 0x10000 | (base - 1);
				prog[n++] = (struct bpfkit_insn)I(JEQ, jt, 0, k);
			}
			prog[n++] = (struct bpfkit_insn)I(variant == 3 ? RETA : RETK, 0, 0, 0); /* F */
			if (variant == 2) { /* T */
				prog[n++] = (struct bpfkit_insn)I(LDW, 0, 0, 28);
				prog[n++] = (struct bpfkit_insn)I(RETA, 0, 0, 0);
			} else {
				prog[n++] = (struct bpfkit_insn)I(RETK, 0, 0, 7);
			}
			prepare_all(h, prog, n);
			for (uint32_t v = 0; v < m + 3; v++) {
				for (size_t i = 0; i < sizeof pkt; i++)
					pkt[i] = (uint8_t)(i * 7 + v);
				pkt[0] = v & 1 ? 0x55 : 0;
				put_be(pkt, OFF, size,
				       v < m ? base + 3 * v : v == m ? base - 1 : base + 1);
				compare_all_cuts(&d, h, prog, n, pkt, 34);
			}
			release_all(h);
		}
	CHECK_EQ(d.mismatches, 0);
	CHECK(d.runs > 100000);
}

/* Whether the jit compiled prog with a pair (emit_pair's `setcc r8b`). */
static bool jit_paired(const struct bpfkit_insn *prog, size_t n)
{
	struct bpfkit_jit *j;
	struct bpfkit_error err;
	if (!bpfkit_jit_available() || bpfkit_jit_compile(prog, n, 0, NULL, &j, &err) != 0)
		return false;
	size_t len;
	const uint8_t *code = jit_code(j, &len);
	bool found = false;
	for (size_t i = 0; i + 3 < len && !found; i++)
		found = code[i] == 0x41 && code[i + 1] == 0x0f && (code[i + 2] & 0xf0) == 0x90 &&
			code[i + 3] == 0xc0;
	bpfkit_jit_free(j);
	return found;
}

/*
 * Two compares sharing a target S, the second a block of its own (the
 * jit's pairs: `src or dst`, and their `and` form): the first unit a
 * compare in memory (ldh [6]), a load, mask and compare (ld [4], and), or a
 * compare of A loaded in an earlier block; the second at [20] so that it
 * checks bounds of its own (absolute, indirect [x + 16], masked, a byte
 * jgt); S on either side of each jump; S and the other exit `ret #7` /
 * `ret #9` or `ret #0`; padded with unreachable returns or not (short
 * programs defer their exits instead, and then there is no pair).  Each
 * program runs on packets where neither, either or both compares hold,
 * cut at every length (between the two checks, a pair's fallback decides).
 */
TEST(engine_compare_pairs)
{
	enum { C1 = 0x1234, C2 = 0x0a0b };
	struct diff d = {0, 0, 0};
	void *h[NENGINES];
	uint8_t pkt[40];
	int programs = 0, paired = 0;
	for (int k1 = 0; k1 < 3; k1++)
		for (int k2 = 0; k2 < 4; k2++)
			for (int sides = 0; sides < 4; sides++)
				for (int rets = 0; rets < 3; rets++)
					for (int pad = 0; pad < 2; pad++) {
		struct bpfkit_insn prog[32];
		size_t n = 0, j1, j2;
		uint32_t sret = rets == 1 ? 0 : 7, oret = rets == 2 ? 0 : 9;
		prog[n++] = (struct bpfkit_insn)I(LDXI, 0, 0, 4);
		if (k1 == 0) {
			prog[n++] = (struct bpfkit_insn)I(LDH, 0, 0, 6);
		} else if (k1 == 1) {
			prog[n++] = (struct bpfkit_insn)I(LDW, 0, 0, 4);
			prog[n++] = (struct bpfkit_insn)I(ANDK, 0, 0, 0xffff);
		} else {    /* the load's own jump keeps A live: jeq c1 is a jump on A */
			prog[n++] = (struct bpfkit_insn)I(LDH, 0, 0, 6);
			prog[n++] = (struct bpfkit_insn)I(JEQ, 0, 0, 0x77);
		}
		j1 = n++;
		if (k2 == 0) {
			prog[n++] = (struct bpfkit_insn)I(LDH, 0, 0, 20);
		} else if (k2 == 1) {
			prog[n++] = (struct bpfkit_insn)I(LDHI, 0, 0, 16);
		} else if (k2 == 2) {
			prog[n++] = (struct bpfkit_insn)I(LDW, 0, 0, 18);
			prog[n++] = (struct bpfkit_insn)I(ANDK, 0, 0, 0xffff);
		} else {
			prog[n++] = (struct bpfkit_insn)I(LDB, 0, 0, 21);
		}
		j2 = n++;
		size_t o = n++, s = n++;
		prog[o] = (struct bpfkit_insn)I(RETK, 0, 0, oret);
		prog[s] = (struct bpfkit_insn)I(RETK, 0, 0, sret);
		uint16_t jump2 = k2 == 3 ? JGT : JEQ;
		uint32_t c2 = k2 == 3 ? (C2 & 0xff) - 1 : C2;
		bool s1 = sides & 1, s2 = sides & 2;   /* S on the jf side */
		prog[j1] = (struct bpfkit_insn)I(JEQ, s1 ? 0 : s - j1 - 1, s1 ? s - j1 - 1 : 0, C1);
		prog[j2] = (struct bpfkit_insn)I(jump2, s2 ? 0 : 1, s2 ? 1 : 0, c2);
		for (int i = 0; pad && i < 10; i++)
			prog[n++] = (struct bpfkit_insn)I(RETK, 0, 0, 1);
		programs++;
		paired += jit_paired(prog, n);
		prepare_all(h, prog, n);
		for (int v = 0; v < 4; v++) {
			for (size_t i = 0; i < sizeof pkt; i++)
				pkt[i] = (uint8_t)(i * 17 + 5 + v);
			put_be(pkt, 6, 2, v & 1 ? C1 : C1 + 1);
			put_be(pkt, 20, 2, v & 2 ? C2 : C2 ^ 0x100);
			if (k2 == 1)   /* ldh [x + 16]: X = 4 */
				put_be(pkt, 20, 2, v & 2 ? C2 : C2 - 1);
			if (k2 == 3)
				pkt[21] = (uint8_t)(v & 2 ? C2 : C2 - 2);
			compare_all_cuts(&d, h, prog, n, pkt, 26);
		}
		release_all(h);
	}
	CHECK_EQ(d.mismatches, 0);
	CHECK(d.runs > 10000);
	/* The test can fail: most padded shapes must compile to a pair. */
	if (bpfkit_jit_available())
		CHECK_MSG(paired >= programs / 4, "%d of %d programs paired", paired, programs);
}

/* Linux dialect: negative offsets, ancillary loads, wrapping X + k, shifts by X & 31. */
static const struct handcase linux_cases[] = {
	{"SKF_LL_OFF loads merge with plain ones", {
		I(LDB, 0, 0, 0xffe00000 + 3), I(LDH, 0, 0, 10), I(ADDK, 0, 0, 0),
		I(LDW, 0, 0, 0xffe00000 + 20), I(RETA, 0, 0, 0)}, 5},
	{"SKF_NET_OFF loads and ldxb", {
		I(LDB, 0, 0, 0xfff00000 + 2), I(MSH, 0, 0, 0xfff00000), I(LDHI, 0, 0, 0),
		I(RETA, 0, 0, 0)}, 4},
	{"a negative offset below SKF_LL_OFF fails the block", {
		I(LDB, 0, 0, 0), I(JEQ, 0, 2, 1), I(LDI, 0, 0, 1), I(LDB, 0, 0, 0x80000000),
		I(RETK, 0, 0, 7)}, 5},
	{"ancillary loads", {
		I(LDW, 0, 0, 0xfffff000 + BPFKIT_AD_PROTOCOL), I(TAX, 0, 0, 0),
		I(LDH, 0, 0, 0xfffff000 + BPFKIT_AD_VLAN_TAG), I(ADDK, 0, 0, 0),
		I(LDB, 0, 0, 0xfffff000 + BPFKIT_AD_ALU_XOR_X), I(RETA, 0, 0, 0)}, 6},
	{"nlattr", {
		I(LDXI, 0, 0, 2), I(LDI, 0, 0, 0), I(LDW, 0, 0, 0xfffff000 + BPFKIT_AD_NLATTR),
		I(TAX, 0, 0, 0), I(LDI, 0, 0, 4), I(LDW, 0, 0, 0xfffff000 + BPFKIT_AD_NLATTR_NEST),
		I(TXA, 0, 0, 0), I(RETA, 0, 0, 0)}, 8},
	{"X + k wraps", {
		I(LDXI, 0, 0, 0xffffffff), I(LDBI, 0, 0, 2), I(RETA, 0, 0, 0)}, 3},
	{"shifts by X & 31", {
		I(LDXI, 0, 0, 33), I(LDI, 0, 0, 3), I(LSHX, 0, 0, 0), I(RSHX, 0, 0, 0),
		I(LSHX, 0, 0, 0), I(RETA, 0, 0, 0)}, 6},
};

TEST(engine_handwritten_linux)
{
	uint8_t pkt[64];
	for (size_t i = 0; i < sizeof pkt; i++)
		pkt[i] = (uint8_t)(i * 29 + 3);
	/* Attributes at 0: {len 8, type 2}, {len 12, type 4 nested {len 8, type 2}}. */
	const uint16_t attrs[] = {8, 2, 0, 0, 12, 4, 8, 2};
	memcpy(pkt, attrs, sizeof attrs);
	struct bpfkit_meta meta = {0x0800, 1, 2, 3, 4, 5, 6, 7, 0x1234, 1, 0x8100, 42, 99, 14};
	for (size_t e = 0; e < NENGINES; e++) {
		if (!engines[e].linux_dialect)
			continue;
		struct diff d = {0, 0, 0};
		for (size_t c = 0; c < sizeof linux_cases / sizeof linux_cases[0]; c++) {
			const struct handcase *hc = &linux_cases[c];
			struct bpfkit_error err;
			void *h = engines[e].prepare(hc->prog, hc->n, true, NULL, &err);
			CHECK_MSG(h, "[%s] %s: prepare failed: %s", engines[e].name, hc->name,
				  err.message);
			if (!h)
				continue;
			for (uint32_t cap = 0; cap <= sizeof pkt; cap++) {
				meta.net_offset = cap % 20;
				compare(&d, &engines[e], h, hc->prog, hc->n, pkt, cap, cap, &meta);
			}
			/* Without meta, a Linux filter sees zeros. */
			struct bpfkit_meta zero;
			memset(&zero, 0, sizeof zero);
			CHECK_EQ(engines[e].run(h, pkt, sizeof pkt, 64, NULL),
				 bpfkit_interp(hc->prog, hc->n, pkt, sizeof pkt, 64, &zero));
			engines[e].release(h);
		}
		CHECK_EQ(d.mismatches, 0);
	}
}

/* The fast engine's prepare refuses what the validator refuses, with its message. */
TEST(engine_fast_prepare_errors)
{
	struct bpfkit_fast *f = (struct bpfkit_fast *)1;
	struct bpfkit_error err;
	const struct bpfkit_insn anc[] = {I(LDW, 0, 0, 0xfffff000), I(RETA, 0, 0, 0)};
	CHECK_EQ(bpfkit_fast_prepare(anc, 2, 0, NULL, &f, &err), -1);
	CHECK(f == NULL);
	CHECK_CONTAINS(err.message, "ancillary");
	CHECK_EQ(err.insn, 0);
	/* The same program in the Linux dialect is fine. */
	CHECK_EQ(bpfkit_fast_prepare(anc, 2, BPFKIT_FAST_LINUX, NULL, &f, &err), 0);
	bpfkit_fast_free(f);

	const struct bpfkit_insn nojump[] = {I(LDB, 0, 0, 0), I(JEQ, 3, 0, 1), I(RETK, 0, 0, 0)};
	CHECK_EQ(bpfkit_fast_prepare(nojump, 3, 0, NULL, &f, &err), -1);
	CHECK_EQ(err.insn, 1);
	const struct bpfkit_insn noret[] = {I(LDB, 0, 0, 0)};
	CHECK_EQ(bpfkit_fast_prepare(noret, 1, 0, NULL, &f, &err), -1);
	CHECK_EQ(bpfkit_fast_prepare(noret, 0, 0, NULL, &f, &err), -1);
	CHECK_EQ(bpfkit_fast_prepare(NULL, 3, 0, NULL, &f, &err), -1);
	CHECK_EQ(bpfkit_fast_prepare(anc, 2, 0x80, NULL, &f, &err), -1);
	CHECK_CONTAINS(err.message, "flags");
	/* Socket rules in the Linux dialect: M[] read before any write. */
	const struct bpfkit_insn mem[] = {I(LDM, 0, 0, 0), I(RETA, 0, 0, 0)};
	CHECK_EQ(bpfkit_fast_prepare(mem, 2, BPFKIT_FAST_LINUX, NULL, &f, &err), -1);
	CHECK_EQ(bpfkit_fast_prepare(mem, 2, 0, NULL, &f, &err), 0);
	CHECK_EQ(bpfkit_fast_run(f, NULL, 0, 0), 0);
	bpfkit_fast_free(f);
	bpfkit_fast_free(NULL);
}

/* A long pcap-mode program (past the kernel's 4096) with far jumps. */
TEST(engine_long_program)
{
	enum { N = 20000 };
	struct bpfkit_insn *prog = malloc(N * sizeof *prog);
	CHECK(prog != NULL);
	if (!prog)
		return;
	for (size_t i = 0; i < N - 1; i++)
		prog[i] = (struct bpfkit_insn)I(i % 3 ? ADDK : LDB, 0, 0, i % 3 ? i : i % 97);
	prog[1000] = (struct bpfkit_insn)I(JGT, 0, 255, 200);
	prog[5000] = (struct bpfkit_insn)I(JA, 0, 0, N - 5003);
	prog[N - 2] = (struct bpfkit_insn)I(RETK, 0, 0, 77);
	prog[N - 1] = (struct bpfkit_insn)I(RETA, 0, 0, 0);
	uint8_t pkt[100];
	for (size_t i = 0; i < sizeof pkt; i++)
		pkt[i] = (uint8_t)(i * 7);
	for (size_t e = 0; e < NENGINES; e++) {
		struct bpfkit_error err;
		void *h = engines[e].prepare(prog, N, false, NULL, &err);
		CHECK_MSG(h, "[%s] prepare: %s", engines[e].name, err.message);
		if (!h)
			continue;
		struct diff d = {0, 0, 0};
		for (uint32_t cap = 0; cap <= sizeof pkt; cap += 3)
			compare(&d, &engines[e], h, prog, N, pkt, cap, cap, NULL);
		CHECK_EQ(d.mismatches, 0);
		engines[e].release(h);
	}
	free(prog);
}

/* Every allocation of prepare fails in turn: a clean error and no leak. */
TEST(engine_fast_alloc_failures)
{
	const struct bpfkit_insn prog[] = {I(LDH, 0, 0, 12), I(JEQ, 0, 1, 0x800), I(RETK, 0, 0, 1),
					   I(RETK, 0, 0, 0)};
	long failures = 0;
	for (long nth = 0; nth < 50; nth++) {
		struct harness_alloc fl = {0, nth, 0};
		struct bpfkit_alloc alloc = {harness_alloc_fn, &fl};
		struct bpfkit_fast *f = NULL;
		struct bpfkit_error err;
		int rc = bpfkit_fast_prepare(prog, 4, 0, &alloc, &f, &err);
		if (rc != 0) {
			failures++;
			CHECK(f == NULL);
			CHECK_CONTAINS(err.message, "memory");
		} else {
			uint8_t pkt[14] = {[12] = 8};
			CHECK_EQ(bpfkit_fast_run(f, pkt, 14, 14), 1);
			bpfkit_fast_free(f);
		}
		CHECK_MSG(fl.live == 0, "allocation %ld failing: %ld blocks leaked", nth, fl.live);
		if (fl.calls <= nth)
			break;
	}
	CHECK(failures > 0);
}

/* ------------------------------------------------------------------ */
/* Random programs                                                     */

/* Random valid programs on random packets (and netlink-shaped ones), both dialects. */
static void random_runs(bool lnx, uint64_t seed, int progs)
{
	enum { MAXLEN = 64, PKTS = 6, MAXPKT = 256 };
	uint8_t pkt[MAXPKT];
	struct bpfkit_insn prog[MAXLEN];
	for (size_t e = 0; e < NENGINES; e++) {
		if (lnx && !engines[e].linux_dialect)
			continue;
		struct diff d = {0, 0, 0};
		size_t prepared = 0;
		uint64_t s = seed;
		for (int p = 0; p < progs && d.reported < MAX_REPORTS; p++) {
			uint32_t hint = randprog_below(&s, 80);
			size_t n = randprog_gen(&s, prog, MAXLEN, hint, lnx ? RANDPROG_ANC : 0);
			struct bpfkit_error err;
			void *h = engines[e].prepare(prog, n, lnx, NULL, &err);
			if (!h) {
				/* Only what the validator refuses (randprog makes socket-valid programs). */
				CHECK_MSG(bpfkit_validate(prog, n, lnx ? BPFKIT_VALIDATE_SOCKET
								 : BPFKIT_VALIDATE_PCAP, NULL) != 0,
					  "[%s] refused a valid program: %s", engines[e].name,
					  err.message);
				continue;
			}
			prepared++;
			for (int q = 0; q < PKTS; q++) {
				uint32_t len = random_packet(&s, pkt, MAXPKT);
				struct bpfkit_meta meta;
				if (lnx)
					random_meta(&s, &meta, len);
				compare_cuts(&d, &engines[e], h, prog, n, pkt, len,
					     len + randprog_below(&s, 3), lnx ? &meta : NULL);
			}
			engines[e].release(h);
		}
		CHECK_EQ(d.mismatches, 0);
		CHECK_MSG(prepared > (size_t)progs / 2, "[%s] prepared only %zu of %d programs",
			  engines[e].name, prepared, progs);
		CHECK_MSG(d.runs > (size_t)progs * PKTS, "[%s] only %zu runs", engines[e].name,
			  d.runs);
	}
}

TEST(engine_random_pcap)
{
	random_runs(false, 0x5eedf00d, 12000);
}

TEST(engine_random_linux)
{
	random_runs(true, 0xfeedbeef, 8000);
}

/* ------------------------------------------------------------------ */
/* Real packets                                                        */


/* Random programs x real packets, cut around each load; also libpcap-compiled filters. */
TEST(engine_real_packets)
{
	enum { PROGS = 3000, PKTS = 6, MAXLEN = 48 };
	struct packets pk = {NULL, 0, 0};
	packets_load(harness_shared_path("pcaps"), 100, 40, &pk);
	if (pk.n == 0)
		SKIP("no packets: %s is absent or unreadable", harness_shared_path("pcaps"));
	struct bpfkit_insn prog[MAXLEN];
	for (size_t e = 0; e < NENGINES; e++) {
		struct diff d = {0, 0, 0};
		uint64_t s = 0xc0ffee;
		for (int p = 0; p < PROGS && d.reported < MAX_REPORTS; p++) {
			const struct packet *first = &pk.v[randprog_below(&s, (uint32_t)pk.n)];
			size_t n = randprog_gen(&s, prog, MAXLEN, first->caplen, 0);
			void *h = engines[e].prepare(prog, n, false, NULL, NULL);
			if (!h)
				continue;
			for (int q = 0; q < PKTS; q++) {
				const struct packet *pt =
					q == 0 ? first : &pk.v[randprog_below(&s, (uint32_t)pk.n)];
				compare_cuts(&d, &engines[e], h, prog, n, pt->data, pt->caplen,
					     pt->wirelen, NULL);
			}
			engines[e].release(h);
		}
		/* Real filters from libpcap's compiler on every packet. */
		static const char *const filters[] = {
			"tcp port 80", "ip host 10.0.0.1 and udp", "ip6 and tcp port 443",
			"vlan and ip", "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
			"ip[6:2] & 0x1fff = 0 and len > 100", "ether proto 0x88cc or arp",
			"icmp6 or (udp and (port 53 or port 67 or port 123 or port 5353))",
			("port 20 or port 22 or port 53 or port 80 or port 123 or port 443 or "
			 "port 993 or port 8080 or port 5353"),
			/* pairs in the jit: src or dst, both halves loads */
			"host 10.0.0.1 and port 53", "net 10.0.0.0/8", "net 192.168.0.0/16 and udp",
			"ether host 00:11:22:33:44:55 or ip host 192.168.1.1",
		};
		pcap_t *dead = pcap_open_dead(DLT_EN10MB, 262144);
		for (size_t fi = 0; dead && fi < sizeof filters / sizeof filters[0]; fi++) {
			struct bpf_program bp;
			if (pcap_compile(dead, &bp, filters[fi], 1, PCAP_NETMASK_UNKNOWN) != 0) {
				CHECK_MSG(0, "libpcap cannot compile %s", filters[fi]);
				continue;
			}
			const struct bpfkit_insn *fp = (const struct bpfkit_insn *)bp.bf_insns;
			struct bpfkit_error err;
			void *h = engines[e].prepare(fp, bp.bf_len, false, NULL, &err);
			CHECK_MSG(h, "[%s] %s: %s", engines[e].name, filters[fi], err.message);
			for (size_t i = 0; h && i < pk.n; i++)
				compare_cuts(&d, &engines[e], h, fp, bp.bf_len, pk.v[i].data,
					     pk.v[i].caplen, pk.v[i].wirelen, NULL);
			if (h)
				engines[e].release(h);
			pcap_freecode(&bp);
		}
		if (dead)
			pcap_close(dead);
		CHECK_EQ(d.mismatches, 0);
		CHECK_MSG(d.runs >= 50000, "[%s] only %zu runs", engines[e].name, d.runs);
	}
	packets_free(&pk);
}
