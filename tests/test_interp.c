/*
 * test_interp.c - the reference interpreter against its specification
 * (docs/semantics.md), with libpcap's bpf_filter as a second opinion.
 *
 * interp_table runs the rows of `rows` (the shape of the Linux kernel's
 * lib/test_bpf.c: name, program, packet, up to three (caplen, wirelen,
 * expected) runs) through every engine of `engines`.  The table is
 * engine-agnostic: a new engine (fast interpreter, JIT) is one more line in
 * `engines`, and then every row, the long-jump test and the randomized
 * differential test check it too.  An engine without ENGINE_LINUX skips rows
 * that pass metadata; one without ENGINE_ANY_PROG skips rows flagged
 * ROW_INVALID (programs a validator rejects or on which libpcap is undefined).
 *
 * interp_random_vs_libpcap runs random valid programs (tests/randprog.h) on
 * packets from ../shared/pcaps, each also cut at several caplens, and
 * requires every engine to agree with bpfkit_interp.
 */
#define _DEFAULT_SOURCE 1 /* pcap.h needs u_int & co. */
#include "harness.h"
#include "internal.h"
#include "packets.h"
#include "randprog.h"

#include <pcap/pcap.h>
#include <stdlib.h>

_Static_assert(sizeof(struct bpf_insn) == sizeof(struct bpfkit_insn),
	       "bpfkit_insn must have libpcap's layout");

/* ------------------------------------------------------------------ */
/* Engines                                                             */

typedef uint32_t (*engine_fn)(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
			      uint32_t caplen, uint32_t wirelen,
			      const struct bpfkit_meta *meta);

enum {
	ENGINE_LINUX = 1 << 0,    /* implements the meta != NULL (Linux) semantics */
	ENGINE_ANY_PROG = 1 << 1  /* safe on programs no validator accepts */
};

struct engine {
	const char *name;
	engine_fn run;
	unsigned can;
};

static uint32_t run_interp(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
			   uint32_t caplen, uint32_t wirelen, const struct bpfkit_meta *meta)
{
	return bpfkit_interp(insns, n, pkt, caplen, wirelen, meta);
}

/* The trace variant, checking the shape of the trace as it goes. */
struct trace_check {
	size_t steps, dones;
	size_t last_pc;
	uint32_t last_ret;
	int last_done;
};

static void trace_check_cb(void *ctx, const struct bpfkit_trace *t)
{
	struct trace_check *c = ctx;
	if (c->steps && t->pc <= c->last_pc)
		c->dones += 1000; /* jumps only go forward: poison the count */
	c->steps++;
	c->dones += t->done != 0;
	c->last_pc = t->pc;
	c->last_ret = t->ret;
	c->last_done = t->done;
}

static uint32_t run_interp_trace(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
				 uint32_t caplen, uint32_t wirelen,
				 const struct bpfkit_meta *meta)
{
	struct trace_check c = {0};
	uint32_t r = bpfkit_interp_trace(insns, n, pkt, caplen, wirelen, meta, trace_check_cb, &c);
	if (n > 0) {
		CHECK_MSG(c.dones == 1 && c.last_done && c.last_ret == r && c.steps <= n,
			  "trace: %zu steps, %zu done records, last ret %" PRIu32 " vs %" PRIu32,
			  c.steps, c.dones, c.last_ret, r);
	} else {
		CHECK_EQ(c.steps, 0);
	}
	return r;
}

static uint32_t run_libpcap(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
			    uint32_t caplen, uint32_t wirelen, const struct bpfkit_meta *meta)
{
	static const uint8_t empty[1];
	(void)n; /* bpf_filter trusts the program to end in a return */
	(void)meta;
	return bpf_filter((const struct bpf_insn *)insns, pkt ? pkt : empty, wirelen, caplen);
}

/*
 * The fast interpreter, prepared per run.  It refuses programs the validator
 * refuses (pcap mode; socket mode for the Linux dialect); for those it
 * answers with the reference so the row's other checks still run.
 */
static uint32_t run_fast(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
			 uint32_t caplen, uint32_t wirelen, const struct bpfkit_meta *meta)
{
	struct bpfkit_fast *f;
	if (bpfkit_fast_prepare(insns, n, meta ? BPFKIT_FAST_LINUX : 0, NULL, &f, NULL) != 0) {
		CHECK(bpfkit_validate(insns, n, meta ? BPFKIT_VALIDATE_SOCKET : BPFKIT_VALIDATE_PCAP,
				      NULL) != 0);
		return bpfkit_interp(insns, n, pkt, caplen, wirelen, meta);
	}
	uint32_t r = bpfkit_fast_run_meta(f, pkt, caplen, wirelen, meta);
	bpfkit_fast_free(f);
	return r;
}

/*
 * The x86-64 JIT, compiled per run (libpcap dialect only).  Like fast, a
 * program the pcap validator refuses gets the reference's answer; where the
 * JIT is unavailable every run does.
 */
static uint32_t run_jit(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
			uint32_t caplen, uint32_t wirelen, const struct bpfkit_meta *meta)
{
	struct bpfkit_jit *j;
	if (!bpfkit_jit_available() || bpfkit_jit_compile(insns, n, 0, NULL, &j, NULL) != 0) {
		CHECK(!bpfkit_jit_available() ||
		      bpfkit_validate(insns, n, BPFKIT_VALIDATE_PCAP, NULL) != 0);
		return bpfkit_interp(insns, n, pkt, caplen, wirelen, meta);
	}
	uint32_t r = bpfkit_jit_run(j, pkt, caplen, wirelen);
	bpfkit_jit_free(j);
	return r;
}

/* engines[0] is the reference. */
static const struct engine engines[] = {
	{"interp", run_interp, ENGINE_LINUX | ENGINE_ANY_PROG},
	{"interp_trace", run_interp_trace, ENGINE_LINUX | ENGINE_ANY_PROG},
	{"fast", run_fast, ENGINE_LINUX},
	{"jit", run_jit, 0},
	{"libpcap", run_libpcap, 0},
};
enum { NENGINES = sizeof engines / sizeof engines[0] };

/* ------------------------------------------------------------------ */
/* The table                                                           */

enum {
#define X(id, code, mnem, opnd, flags) C_##id = code,
	OPCODE_TABLE(X)
#undef X
};

#define S(op, k) {C_##op, 0, 0, (k)}
#define J(op, k, jt, jf) {C_##op, (jt), (jf), (k)}
#define RAW(code, jt, jf, k) {(code), (jt), (jf), (k)}
#define RETA S(RET_A, 0)
#define RUN(caplen, wirelen, expect) {1, (caplen), (wirelen), (expect)}
#define AD(n) (BPFKIT_SKF_AD_OFF + (n))
#define NET(n) (BPFKIT_SKF_NET_OFF + (n))
#define LL(n) (BPFKIT_SKF_LL_OFF + (n))

/* Host-order u16 (struct nlattr fields). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define U16H(v) (uint8_t)((v) >> 8), (uint8_t)((v) & 0xff)
#else
#define U16H(v) (uint8_t)((v) & 0xff), (uint8_t)((v) >> 8)
#endif
#define NLA(len, type) U16H(len), U16H(type)

static const uint8_t pkt_a[16] = {0x45, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff};

/* Netlink attributes: 1 (payload is itself an attribute 9), 2, nested 3 {5, 6}, 7. */
static const uint8_t pkt_nl1[44] = {
	NLA(8, 1), NLA(4, 9),                                  /* 0 */
	NLA(6, 2), 0xaa, 0xbb, 0, 0,                           /* 8 */
	NLA(20, 0x8003),                                       /* 16: NLA_F_NESTED */
	NLA(8, 5), 0x11, 0x22, 0x33, 0x44,                     /* 20 */
	NLA(8, 6), 0x55, 0x66, 0x77, 0x88,                     /* 28 */
	NLA(5, 0x4007), 0x99, 0, 0, 0,                         /* 36: NLA_F_NET_BYTEORDER */
};

/* A nest of 12 {5}, then 6 outside it, a bad length-2 attribute 7, an empty 8. */
static const uint8_t pkt_nl2[28] = {
	NLA(12, 0x8001), NLA(8, 5), 1, 2, 3, 4,                /* 0, 4 */
	NLA(8, 6), 5, 6, 7, 8,                                 /* 12 */
	NLA(2, 7),                                             /* 20 */
	NLA(4, 8),                                             /* 24 */
};

#define PA pkt_a, sizeof pkt_a
#define PN1 pkt_nl1, sizeof pkt_nl1
#define PN2 pkt_nl2, sizeof pkt_nl2
#define NOPKT NULL, 0

static const struct bpfkit_meta meta_std = {
	.protocol = 0x0800, .pkttype = 4, .ifindex = 7, .mark = 0xdeadbeef, .queue = 5,
	.hatype = 1, .rxhash = 0x12345678, .cpu = 3, .vlan_tci = 0x0123, .vlan_avail = 1,
	.vlan_tpid = 0x88a8, .pay_offset = 54, .random = 0xcafef00d, .net_offset = 4,
};
static const struct bpfkit_meta meta_far = {.net_offset = 100};
static const struct bpfkit_meta meta_huge = {.net_offset = 0xffffffff};
#define L (&meta_std)

enum {
	ROW_INVALID = 1 << 0 /* no validator accepts it, or libpcap's result is undefined */
};

enum { ROW_MAXINSNS = 72 };

struct row {
	const char *name;
	/* Trailing all-zero instructions are not part of the program (as in
	 * test_bpf.c), so an all-zero program is the empty program. */
	struct bpfkit_insn prog[ROW_MAXINSNS];
	const uint8_t *pkt;
	size_t pktlen;
	const struct bpfkit_meta *meta;  /* NULL: libpcap semantics */
	unsigned flags;
	struct {
		int used;
		uint32_t caplen, wirelen, expect;
	} runs[3];
};

#define MS(i) S(LD_IMM, 1u << (i)), S(ST, i)
#define MO(i) S(LDX_MEM, i), S(OR_X, 0)

static const struct row rows[] = {
	/* ---- loads: absolute ---- */
	{"ld_w_abs", {S(LD_W_ABS, 2), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 0x02030405), RUN(6, 6, 0x02030405), RUN(5, 60, 0)}},
	{"ld_h_abs", {S(LD_H_ABS, 3), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 0x0304), RUN(5, 5, 0x0304), RUN(4, 4, 0)}},
	{"ld_b_abs", {S(LD_B_ABS, 15), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 0xff), RUN(15, 16, 0), RUN(16, 1000, 0xff)}},
	{"ld_w_abs_k_max", {S(LD_W_ABS, 0xffffffff), S(RET_K, 1)}, PA, NULL, 0,
	 {RUN(16, 16, 0)}},
	{"ld_h_abs_k_max", {S(LD_H_ABS, 0xffffffff), S(RET_K, 1)}, PA, NULL, 0,
	 {RUN(16, 16, 0)}},
	{"ld_b_abs_k_max", {S(LD_B_ABS, 0xffffffff), S(RET_K, 1)}, PA, NULL, 0,
	 {RUN(16, 16, 0)}},
	{"ld_w_abs_k_plus_size_wraps", {S(LD_W_ABS, 0xfffffffc), S(RET_K, 1)}, PA, NULL, 0,
	 {RUN(16, 16, 0)}},
	{"ld_h_abs_k_plus_size_wraps", {S(LD_H_ABS, 0xfffffffe), S(RET_K, 1)}, PA, NULL, 0,
	 {RUN(16, 16, 0)}},
	{"ld_abs_anc_offset_is_plain_in_pcap_mode", {S(LD_W_ABS, AD(0)), S(RET_K, 1)}, PA, NULL,
	 0, {RUN(16, 16, 0)}},
	{"ld_abs_net_offset_is_plain_in_pcap_mode", {S(LD_B_ABS, NET(0)), S(RET_K, 1)}, PA,
	 NULL, 0, {RUN(16, 16, 0)}},
	{"ld_abs_ends_program", {S(LD_W_ABS, 12), S(RET_K, 9)}, PA, NULL, 0,
	 {RUN(16, 16, 9), RUN(16, 99, 9), RUN(15, 99, 0)}},

	/* ---- loads: indirect ---- */
	{"ld_w_ind", {S(LDX_IMM, 3), S(LD_W_IND, 1), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 0x04050607), RUN(8, 8, 0x04050607), RUN(7, 7, 0)}},
	{"ld_h_ind", {S(LDX_IMM, 10), S(LD_H_IND, 4), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 0x0eff), RUN(15, 15, 0)}},
	{"ld_b_ind", {S(LDX_IMM, 0), S(LD_B_IND, 0), RETA}, PA, NULL, 0,
	 {RUN(1, 1, 0x45), RUN(0, 0, 0), RUN(16, 16, 0x45)}},
	{"ind_x_plus_k_overflows", {S(LDX_IMM, 0xffffffff), S(LD_B_IND, 2), S(RET_K, 7)}, PA,
	 NULL, 0, {RUN(16, 16, 0)}},
	{"ind_x_plus_k_is_2_32", {S(LDX_IMM, 0xfffffffd), S(LD_W_IND, 3), S(RET_K, 7)}, PA,
	 NULL, 0, {RUN(16, 16, 0)}},
	{"ind_k_max", {S(LDX_IMM, 0), S(LD_B_IND, 0xffffffff), S(RET_K, 7)}, PA, NULL, 0,
	 {RUN(16, 16, 0)}},
	{"ind_x_max", {S(LDX_IMM, 0xffffffff), S(LD_H_IND, 0), S(RET_K, 7)}, PA, NULL, 0,
	 {RUN(16, 16, 0)}},
	{"ind_exactly_fits", {S(LDX_IMM, 8), S(LD_W_IND, 4), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 0x0c0d0eff), RUN(15, 15, 0)}},

	/* ---- loads: length, immediates, memory ---- */
	{"ld_len", {S(LD_W_LEN, 0), RETA}, PA, NULL, 0,
	 {RUN(16, 1514, 1514), RUN(0, 60, 60), RUN(16, 16, 16)}},
	{"ldx_len", {S(LDX_LEN, 0), S(TXA, 0), RETA}, PA, NULL, 0,
	 {RUN(4, 9000, 9000), RUN(16, 0xffffffff, 0xffffffff)}},
	{"ld_imm", {S(LD_IMM, 0xdeadbeef), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 0xdeadbeef)}},
	{"ldx_imm_txa", {S(LDX_IMM, 0x12345678), S(TXA, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x12345678)}},
	{"tax_txa", {S(LD_IMM, 0x55), S(TAX, 0), S(LD_IMM, 0), S(TXA, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x55)}},
	{"st_ld_mem", {S(LD_IMM, 5), S(ST, 3), S(LD_IMM, 0), S(LD_MEM, 3), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 5)}},
	{"stx_ldx_mem", {S(LDX_IMM, 9), S(STX, 15), S(LDX_IMM, 0), S(LDX_MEM, 15), S(TXA, 0),
			 RETA}, NOPKT, NULL, 0, {RUN(0, 0, 9)}},
	{"mem_all_slots_distinct",
	 {MS(0), MS(1), MS(2), MS(3), MS(4), MS(5), MS(6), MS(7), MS(8), MS(9), MS(10), MS(11),
	  MS(12), MS(13), MS(14), MS(15), S(LD_IMM, 0), MO(0), MO(1), MO(2), MO(3), MO(4), MO(5),
	  MO(6), MO(7), MO(8), MO(9), MO(10), MO(11), MO(12), MO(13), MO(14), MO(15), RETA},
	 NOPKT, NULL, 0, {RUN(0, 0, 0xffff)}},
	{"mem_persists_across_jumps",
	 {S(LD_IMM, 7), S(ST, 2), S(LD_IMM, 1), J(JEQ_K, 1, 1, 0), S(RET_K, 0), S(JA, 1),
	  S(RET_K, 0), S(LD_MEM, 2), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 7)}},
	{"mem_starts_zeroed (libpcap leaves M[] uninitialized)",
	 {S(LD_MEM, 7), S(LDX_MEM, 15), S(ADD_X, 0), J(JEQ_K, 0, 0, 1), S(RET_K, 1),
	  S(RET_K, 2)}, NOPKT, NULL, ROW_INVALID, {RUN(0, 0, 1)}},

	/* ---- ldx msh ---- */
	{"msh", {S(LDX_MSH, 0), S(TXA, 0), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 20), RUN(1, 1, 20), RUN(0, 0, 0)}},
	{"msh_keeps_a", {S(LD_IMM, 77), S(LDX_MSH, 15), S(ADD_X, 0), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 137), RUN(15, 15, 0)}},
	{"msh_k_max", {S(LDX_MSH, 0xffffffff), S(RET_K, 1)}, PA, NULL, 0, {RUN(16, 16, 0)}},

	/* ---- ALU with a constant ---- */
	{"add_k", {S(LD_IMM, 3), S(ADD_K, 4), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 7)}},
	{"add_k_wraps", {S(LD_IMM, 0xffffffff), S(ADD_K, 2), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 1)}},
	{"sub_k", {S(LD_IMM, 10), S(SUB_K, 3), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 7)}},
	{"sub_k_below_zero", {S(LD_IMM, 1), S(SUB_K, 2), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0xffffffff)}},
	{"mul_k", {S(LD_IMM, 6), S(MUL_K, 7), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 42)}},
	{"mul_k_overflow", {S(LD_IMM, 0x10001), S(MUL_K, 0x10001), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x20001)}},
	{"mul_k_max", {S(LD_IMM, 0xffffffff), S(MUL_K, 0xffffffff), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 1)}},
	{"div_k", {S(LD_IMM, 0xffffffff), S(DIV_K, 0x10), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x0fffffff)}},
	{"div_k_unsigned", {S(LD_IMM, 0x80000000), S(DIV_K, 0xffffffff), S(ADD_K, 5), RETA},
	 NOPKT, NULL, 0, {RUN(0, 0, 5)}},
	{"div_k_one", {S(LD_IMM, 0x80000001), S(DIV_K, 1), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000001)}},
	{"mod_k", {S(LD_IMM, 0xffffffff), S(MOD_K, 0x10), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0xf)}},
	{"mod_k_unsigned", {S(LD_IMM, 0x80000000), S(MOD_K, 0xffffffff), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000000)}},
	{"or_k", {S(LD_IMM, 0xf0f0), S(OR_K, 0x0f0f0000), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x0f0ff0f0)}},
	{"and_k", {S(LD_IMM, 0xff00ff00), S(AND_K, 0x0ff00ff0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x0f000f00)}},
	{"xor_k", {S(LD_IMM, 0xffff0000), S(XOR_K, 0x0ff00ff0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0xf00f0ff0)}},
	{"lsh_k_0", {S(LD_IMM, 0x80000001), S(LSH_K, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000001)}},
	{"lsh_k_1", {S(LD_IMM, 0x80000001), S(LSH_K, 1), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 2)}},
	{"lsh_k_31", {S(LD_IMM, 0x80000001), S(LSH_K, 31), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000000)}},
	{"rsh_k_0", {S(LD_IMM, 0x80000001), S(RSH_K, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000001)}},
	{"rsh_k_4_logical", {S(LD_IMM, 0x80000001), S(RSH_K, 4), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x08000000)}},
	{"rsh_k_31", {S(LD_IMM, 0x80000001), S(RSH_K, 31), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 1)}},
	{"neg_1", {S(LD_IMM, 1), S(NEG, 0), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 0xffffffff)}},
	{"neg_0", {S(LD_IMM, 0), S(NEG, 0), S(ADD_K, 3), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 3)}},
	{"neg_int_min", {S(LD_IMM, 0x80000000), S(NEG, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000000)}},
	{"neg_5", {S(LD_IMM, 5), S(NEG, 0), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 0xfffffffb)}},
	{"alu_on_packet_value", {S(LD_B_ABS, 0), S(AND_K, 0xf), S(MUL_K, 4), RETA}, PA, NULL, 0,
	 {RUN(16, 16, 20), RUN(0, 16, 0)}},

	/* ---- ALU with X ---- */
	{"add_x_wraps", {S(LD_IMM, 0xffffffff), S(LDX_IMM, 2), S(ADD_X, 0), RETA}, NOPKT, NULL,
	 0, {RUN(0, 0, 1)}},
	{"sub_x_below_zero", {S(LD_IMM, 1), S(LDX_IMM, 2), S(SUB_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0xffffffff)}},
	{"mul_x_overflow", {S(LD_IMM, 0x10001), S(LDX_IMM, 0x10001), S(MUL_X, 0), RETA}, NOPKT,
	 NULL, 0, {RUN(0, 0, 0x20001)}},
	{"mul_x_max", {S(LD_IMM, 0xffffffff), S(LDX_IMM, 0xffffffff), S(MUL_X, 0), RETA}, NOPKT,
	 NULL, 0, {RUN(0, 0, 1)}},
	{"div_x", {S(LD_IMM, 100), S(LDX_IMM, 7), S(DIV_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 14)}},
	{"div_x_int_min_by_minus_1", {S(LD_IMM, 0x80000000), S(LDX_IMM, 0xffffffff),
				      S(DIV_X, 0), S(ADD_K, 5), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 5)}},
	{"div_x_zero", {S(LD_IMM, 7), S(LDX_IMM, 0), S(DIV_X, 0), S(RET_K, 1)}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0)}},
	{"div_x_by_len", {S(LDX_LEN, 0), S(LD_IMM, 7), S(DIV_X, 0), S(ADD_K, 1), RETA}, NOPKT,
	 NULL, 0, {RUN(0, 0, 0), RUN(0, 2, 4), RUN(0, 8, 1)}},
	{"mod_x", {S(LD_IMM, 100), S(LDX_IMM, 7), S(MOD_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 2)}},
	{"mod_x_int_min_by_minus_1", {S(LD_IMM, 0x80000000), S(LDX_IMM, 0xffffffff),
				      S(MOD_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000000)}},
	{"mod_x_zero", {S(LD_IMM, 7), S(LDX_IMM, 0), S(MOD_X, 0), S(RET_K, 1)}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0)}},
	{"or_x", {S(LD_IMM, 0xf0f0), S(LDX_IMM, 0x0f0f0000), S(OR_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x0f0ff0f0)}},
	{"and_x", {S(LD_IMM, 0xff00ff00), S(LDX_IMM, 0x0ff00ff0), S(AND_X, 0), RETA}, NOPKT,
	 NULL, 0, {RUN(0, 0, 0x0f000f00)}},
	{"xor_x", {S(LD_IMM, 0xffff0000), S(LDX_IMM, 0x0ff00ff0), S(XOR_X, 0), RETA}, NOPKT,
	 NULL, 0, {RUN(0, 0, 0xf00f0ff0)}},
	{"lsh_x_0", {S(LD_IMM, 0x80000001), S(LDX_IMM, 0), S(LSH_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000001)}},
	{"lsh_x_31", {S(LD_IMM, 0x80000001), S(LDX_IMM, 31), S(LSH_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000000)}},
	{"lsh_x_32_is_0", {S(LD_IMM, 0x80000001), S(LDX_IMM, 32), S(LSH_X, 0), S(ADD_K, 9),
			   RETA}, NOPKT, NULL, 0, {RUN(0, 0, 9)}},
	{"lsh_x_33_is_0", {S(LD_IMM, 0x80000001), S(LDX_IMM, 33), S(LSH_X, 0), S(ADD_K, 9),
			   RETA}, NOPKT, NULL, 0, {RUN(0, 0, 9)}},
	{"lsh_x_max_is_0", {S(LD_IMM, 0x80000001), S(LDX_IMM, 0xffffffff), S(LSH_X, 0),
			    S(ADD_K, 9), RETA}, NOPKT, NULL, 0, {RUN(0, 0, 9)}},
	{"rsh_x_0", {S(LD_IMM, 0x80000001), S(LDX_IMM, 0), S(RSH_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0x80000001)}},
	{"rsh_x_31", {S(LD_IMM, 0x80000001), S(LDX_IMM, 31), S(RSH_X, 0), RETA}, NOPKT, NULL, 0,
	 {RUN(0, 0, 1)}},
	{"rsh_x_32_is_0", {S(LD_IMM, 0x80000001), S(LDX_IMM, 32), S(RSH_X, 0), S(ADD_K, 9),
			   RETA}, NOPKT, NULL, 0, {RUN(0, 0, 9)}},
	{"rsh_x_64_is_0", {S(LD_IMM, 0x80000001), S(LDX_IMM, 64), S(RSH_X, 0), S(ADD_K, 9),
			   RETA}, NOPKT, NULL, 0, {RUN(0, 0, 9)}},

	/* ---- jumps ---- */
	{"ja", {S(JA, 1), S(RET_K, 1), S(RET_K, 2)}, NOPKT, NULL, 0, {RUN(0, 0, 2)}},
	{"ja_0", {S(JA, 0), S(RET_K, 3)}, NOPKT, NULL, 0, {RUN(0, 0, 3)}},
	{"jeq_k", {S(LD_W_LEN, 0), J(JEQ_K, 100, 0, 1), S(RET_K, 1), S(RET_K, 2)}, NOPKT, NULL,
	 0, {RUN(0, 100, 1), RUN(0, 101, 2), RUN(0, 99, 2)}},
	{"jgt_k_unsigned", {S(LD_W_LEN, 0), J(JGT_K, 100, 0, 1), S(RET_K, 1), S(RET_K, 2)},
	 NOPKT, NULL, 0, {RUN(0, 101, 1), RUN(0, 100, 2), RUN(0, 0xffffffff, 1)}},
	{"jgt_k_sign_bit", {S(LD_W_LEN, 0), J(JGT_K, 0x7fffffff, 0, 1), S(RET_K, 1),
			    S(RET_K, 2)}, NOPKT, NULL, 0,
	 {RUN(0, 0x80000000, 1), RUN(0, 0x7fffffff, 2), RUN(0, 0, 2)}},
	{"jge_k", {S(LD_W_LEN, 0), J(JGE_K, 100, 0, 1), S(RET_K, 1), S(RET_K, 2)}, NOPKT, NULL,
	 0, {RUN(0, 100, 1), RUN(0, 99, 2), RUN(0, 0x80000000, 1)}},
	{"jset_k_all_bits", {S(LD_W_LEN, 0), J(JSET_K, 0xffffffff, 0, 1), S(RET_K, 1),
			     S(RET_K, 2)}, NOPKT, NULL, 0,
	 {RUN(0, 0, 2), RUN(0, 1, 1), RUN(0, 0x80000000, 1)}},
	{"jset_k_some_bits", {S(LD_W_LEN, 0), J(JSET_K, 0xf0, 0, 1), S(RET_K, 1), S(RET_K, 2)},
	 NOPKT, NULL, 0, {RUN(0, 0x0f, 2), RUN(0, 0x10, 1), RUN(0, 0x100, 2)}},
	{"jset_k_zero", {S(LD_W_LEN, 0), J(JSET_K, 0, 0, 1), S(RET_K, 1), S(RET_K, 2)}, NOPKT,
	 NULL, 0, {RUN(0, 0xffffffff, 2)}},
	{"jeq_x", {S(LDX_IMM, 100), S(LD_W_LEN, 0), J(JEQ_X, 0, 0, 1), S(RET_K, 1),
		   S(RET_K, 2)}, NOPKT, NULL, 0, {RUN(0, 100, 1), RUN(0, 101, 2), RUN(0, 99, 2)}},
	{"jgt_x_unsigned", {S(LDX_IMM, 0x7fffffff), S(LD_W_LEN, 0), J(JGT_X, 0, 0, 1),
			    S(RET_K, 1), S(RET_K, 2)}, NOPKT, NULL, 0,
	 {RUN(0, 0x80000000, 1), RUN(0, 0x7fffffff, 2), RUN(0, 0xffffffff, 1)}},
	{"jge_x", {S(LDX_IMM, 100), S(LD_W_LEN, 0), J(JGE_X, 0, 0, 1), S(RET_K, 1),
		   S(RET_K, 2)}, NOPKT, NULL, 0, {RUN(0, 100, 1), RUN(0, 99, 2), RUN(0, 101, 1)}},
	{"jset_x_all_bits", {S(LDX_IMM, 0xffffffff), S(LD_W_LEN, 0), J(JSET_X, 0, 0, 1),
			     S(RET_K, 1), S(RET_K, 2)}, NOPKT, NULL, 0,
	 {RUN(0, 0, 2), RUN(0, 1, 1), RUN(0, 0x80000000, 1)}},
	{"jset_x_zero", {S(LDX_IMM, 0), S(LD_W_LEN, 0), J(JSET_X, 0, 0, 1), S(RET_K, 1),
			 S(RET_K, 2)}, NOPKT, NULL, 0, {RUN(0, 0xffffffff, 2)}},
	{"jt_equals_jf", {S(LD_W_LEN, 0), J(JEQ_K, 1, 1, 1), S(RET_K, 1), S(RET_K, 2)}, NOPKT,
	 NULL, 0, {RUN(0, 1, 2), RUN(0, 0, 2)}},
	{"jump_chain", {S(LD_W_LEN, 0), J(JGE_K, 10, 0, 3), J(JGE_K, 20, 0, 1), S(RET_K, 3),
			S(RET_K, 2), S(RET_K, 1)}, NOPKT, NULL, 0,
	 {RUN(0, 5, 1), RUN(0, 15, 2), RUN(0, 25, 3)}},
	{"jump_over_failing_load", {S(LD_W_LEN, 0), J(JGT_K, 4, 1, 0), S(LD_W_ABS, 0),
				    S(RET_K, 5)}, PA, NULL, 0,
	 {RUN(2, 5, 5), RUN(2, 4, 0), RUN(4, 4, 5)}},

	/* ---- returns ---- */
	{"ret_k", {S(RET_K, 0xffff)}, NOPKT, NULL, 0, {RUN(0, 0, 0xffff)}},
	{"ret_k_max", {S(RET_K, 0xffffffff)}, NOPKT, NULL, 0, {RUN(0, 0, 0xffffffff)}},
	{"ret_k_0", {S(RET_K, 0), S(RET_K, 1)}, NOPKT, NULL, 0, {RUN(0, 0, 0)}},
	{"ret_a", {S(LD_IMM, 0xabcdef01), RETA, S(RET_K, 1)}, NOPKT, NULL, 0,
	 {RUN(0, 0, 0xabcdef01)}},
	{"ret_ends_program", {S(RET_K, 4), S(LD_W_ABS, 1000), S(RET_K, 1)}, NOPKT, NULL, 0,
	 {RUN(0, 0, 4)}},

	/* ---- programs no validator accepts: still safe, they return 0 ---- */
	{"empty_program", {{0}}, NOPKT, NULL, ROW_INVALID, {RUN(0, 0, 0)}},
	{"falls_off_the_end", {S(LD_IMM, 1)}, NOPKT, NULL, ROW_INVALID, {RUN(0, 0, 0)}},
	{"falls_off_after_jump", {S(LD_IMM, 1), J(JEQ_K, 1, 0, 1), S(RET_K, 5), S(TAX, 0)},
	 NOPKT, NULL, ROW_INVALID, {RUN(0, 0, 5)}},
	{"ja_past_end", {S(JA, 5), S(RET_K, 1)}, NOPKT, NULL, ROW_INVALID, {RUN(0, 0, 0)}},
	{"ja_to_end", {S(JA, 1), S(RET_K, 1)}, NOPKT, NULL, ROW_INVALID, {RUN(0, 0, 0)}},
	{"ja_k_max", {S(JA, 0xffffffff), S(RET_K, 1)}, NOPKT, NULL, ROW_INVALID,
	 {RUN(0, 0, 0)}},
	{"jt_past_end", {S(LD_W_LEN, 0), J(JEQ_K, 1, 200, 0), S(RET_K, 3)}, NOPKT, NULL,
	 ROW_INVALID, {RUN(0, 1, 0), RUN(0, 2, 3)}},
	{"jf_past_end", {S(LD_W_LEN, 0), J(JSET_X, 0, 0, 255), S(RET_K, 3)}, NOPKT, NULL,
	 ROW_INVALID, {RUN(0, 1, 0)}},
	{"unknown_opcode", {S(LD_IMM, 1), RAW(0x0f, 0, 0, 0), S(RET_K, 9)}, NOPKT, NULL,
	 ROW_INVALID, {RUN(0, 0, 0)}},
	{"unknown_opcode_ff", {RAW(0xff, 0, 0, 0xffffffff), S(RET_K, 9)}, NOPKT, NULL,
	 ROW_INVALID, {RUN(0, 0, 0)}},
	{"wide_opcode_is_not_ret", {RAW(0x106, 0, 0, 5), S(RET_K, 9)}, NOPKT, NULL, ROW_INVALID,
	 {RUN(0, 0, 0)}},
	{"st_m16", {S(LD_IMM, 1), S(ST, 16), S(RET_K, 9)}, NOPKT, NULL, ROW_INVALID,
	 {RUN(0, 0, 0)}},
	{"stx_m16", {S(STX, 16), S(RET_K, 9)}, NOPKT, NULL, ROW_INVALID, {RUN(0, 0, 0)}},
	{"ld_m16", {S(LD_MEM, 16), S(RET_K, 9)}, NOPKT, NULL, ROW_INVALID, {RUN(0, 0, 0)}},
	{"ldx_m_max", {S(LDX_MEM, 0xffffffff), S(RET_K, 9)}, NOPKT, NULL, ROW_INVALID,
	 {RUN(0, 0, 0)}},
	{"div_k_zero", {S(LD_IMM, 7), S(DIV_K, 0), S(RET_K, 1)}, NOPKT, NULL, ROW_INVALID,
	 {RUN(0, 0, 0)}},
	{"mod_k_zero", {S(LD_IMM, 7), S(MOD_K, 0), S(RET_K, 1)}, NOPKT, NULL, ROW_INVALID,
	 {RUN(0, 0, 0)}},
	{"lsh_k_33_masks", {S(LD_IMM, 0x80000001), S(LSH_K, 33), RETA}, NOPKT, NULL,
	 ROW_INVALID, {RUN(0, 0, 2)}},
	{"rsh_k_32_masks", {S(LD_IMM, 0x80000001), S(RSH_K, 32), RETA}, NOPKT, NULL,
	 ROW_INVALID, {RUN(0, 0, 0x80000001)}},

	/* ---- Linux: ancillary loads (meta) ---- */
	{"linux_proto", {S(LD_W_ABS, AD(BPFKIT_AD_PROTOCOL)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 0x0800)}},
	{"linux_proto_ldh", {S(LD_H_ABS, AD(BPFKIT_AD_PROTOCOL)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 0x0800)}},
	{"linux_type", {S(LD_W_ABS, AD(BPFKIT_AD_PKTTYPE)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 4)}},
	{"linux_ifidx", {S(LD_W_ABS, AD(BPFKIT_AD_IFINDEX)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 7)}},
	{"linux_mark_ldb_is_not_truncated", {S(LD_B_ABS, AD(BPFKIT_AD_MARK)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 0xdeadbeef)}},
	{"linux_queue", {S(LD_W_ABS, AD(BPFKIT_AD_QUEUE)), RETA}, NOPKT, L, 0, {RUN(0, 0, 5)}},
	{"linux_hatype", {S(LD_W_ABS, AD(BPFKIT_AD_HATYPE)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 1)}},
	{"linux_rxhash", {S(LD_W_ABS, AD(BPFKIT_AD_RXHASH)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 0x12345678)}},
	{"linux_cpu", {S(LD_W_ABS, AD(BPFKIT_AD_CPU)), RETA}, NOPKT, L, 0, {RUN(0, 0, 3)}},
	{"linux_vlan_tci", {S(LD_W_ABS, AD(BPFKIT_AD_VLAN_TAG)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 0x0123)}},
	{"linux_vlan_avail", {S(LD_W_ABS, AD(BPFKIT_AD_VLAN_TAG_PRESENT)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 1)}},
	{"linux_vlan_tpid", {S(LD_W_ABS, AD(BPFKIT_AD_VLAN_TPID)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 0x88a8)}},
	{"linux_poff", {S(LD_W_ABS, AD(BPFKIT_AD_PAY_OFFSET)), RETA}, PA, L, 0,
	 {RUN(16, 16, 54), RUN(0, 0, 54)}},
	{"linux_rand", {S(LD_W_ABS, AD(BPFKIT_AD_RANDOM)), RETA}, NOPKT, L, 0,
	 {RUN(0, 0, 0xcafef00d)}},
	{"linux_xor_x", {S(LD_IMM, 0xf0), S(LDX_IMM, 0x0f), S(LD_W_ABS, AD(BPFKIT_AD_ALU_XOR_X)),
			 S(ADD_X, 0), RETA}, NOPKT, L, 0, {RUN(0, 0, 0x10e)}},
	{"linux_anc_keeps_x", {S(LDX_IMM, 3), S(LD_W_ABS, AD(BPFKIT_AD_MARK)), S(TXA, 0), RETA},
	 NOPKT, L, 0, {RUN(0, 0, 3)}},
	{"linux_unknown_anc", {S(LD_W_ABS, AD(BPFKIT_AD_MAX)), S(RET_K, 1)}, PA, L, 0,
	 {RUN(16, 16, 0)}},
	{"linux_unaligned_anc", {S(LD_W_ABS, AD(2)), S(RET_K, 1)}, PA, L, 0, {RUN(16, 16, 0)}},
	{"linux_anc_k_max", {S(LD_B_ABS, 0xffffffff), S(RET_K, 1)}, PA, L, 0, {RUN(16, 16, 0)}},

	/* ---- Linux: negative offsets ---- */
	{"linux_net_off_b", {S(LD_B_ABS, NET(2)), RETA}, PA, L, 0,
	 {RUN(16, 16, 6), RUN(7, 7, 6), RUN(6, 6, 0)}},
	{"linux_net_off_w", {S(LD_W_ABS, NET(8)), RETA}, PA, L, 0,
	 {RUN(16, 16, 0x0c0d0eff), RUN(15, 15, 0)}},
	{"linux_net_off_past_packet", {S(LD_B_ABS, NET(0)), S(RET_K, 1)}, PA, &meta_far, 0,
	 {RUN(16, 16, 0)}},
	{"linux_net_off_no_wrap", {S(LD_B_ABS, NET(0xfffff)), S(RET_K, 1)}, PA, &meta_huge, 0,
	 {RUN(16, 16, 0)}},
	{"linux_ll_off", {S(LD_B_ABS, LL(3)), RETA}, PA, L, 0, {RUN(16, 16, 3), RUN(3, 3, 0)}},
	{"linux_ll_off_h", {S(LD_H_ABS, LL(14)), RETA}, PA, L, 0,
	 {RUN(16, 16, 0x0eff), RUN(15, 15, 0)}},
	{"linux_below_ll_off", {S(LD_B_ABS, LL(0) - 1), S(RET_K, 1)}, PA, L, 0,
	 {RUN(16, 16, 0)}},
	{"linux_int_min_offset", {S(LD_B_ABS, 0x80000000), S(RET_K, 1)}, PA, L, 0,
	 {RUN(16, 16, 0)}},
	{"linux_int_max_offset", {S(LD_B_ABS, 0x7fffffff), S(RET_K, 1)}, PA, L, 0,
	 {RUN(16, 16, 0)}},
	{"linux_plain_loads", {S(LD_W_ABS, 12), RETA}, PA, L, 0,
	 {RUN(16, 16, 0x0c0d0eff), RUN(15, 15, 0)}},
	{"linux_ind_net_off", {S(LDX_IMM, 2), S(LD_B_IND, NET(0)), RETA}, PA, L, 0,
	 {RUN(16, 16, 6)}},
	{"linux_ind_ll_off_in_x", {S(LDX_IMM, LL(0)), S(LD_B_IND, 5), RETA}, PA, L, 0,
	 {RUN(16, 16, 5)}},
	{"linux_ind_wraps", {S(LDX_IMM, 0xffffffff), S(LD_B_IND, 2), RETA}, PA, L, 0,
	 {RUN(16, 16, 1)}},
	{"linux_ind_wraps_to_2_32", {S(LDX_IMM, 0xfffffffd), S(LD_W_IND, 3), RETA}, PA, L, 0,
	 {RUN(16, 16, 0x45010203)}},
	{"linux_ind_minus_1", {S(LDX_IMM, 1), S(LD_B_IND, 0xfffffffe), S(RET_K, 1)}, PA, L, 0,
	 {RUN(16, 16, 0)}},
	{"linux_ind_is_never_anc", {S(LDX_IMM, 0), S(LD_W_IND, AD(BPFKIT_AD_PROTOCOL)),
				    S(RET_K, 1)}, PA, L, 0, {RUN(16, 16, 0)}},
	{"linux_msh_net_off", {S(LD_IMM, 9), S(LDX_MSH, NET(0)), S(ADD_X, 0), RETA}, PA, L, 0,
	 {RUN(16, 16, 25), RUN(4, 4, 0)}},
	{"linux_msh_is_never_anc", {S(LDX_MSH, AD(BPFKIT_AD_PROTOCOL)), S(RET_K, 1)}, PA, L, 0,
	 {RUN(16, 16, 0)}},

	/* ---- Linux: ALU differences ---- */
	{"linux_lsh_x_33_masks", {S(LD_IMM, 0x80000001), S(LDX_IMM, 33), S(LSH_X, 0), RETA},
	 NOPKT, L, 0, {RUN(0, 0, 2)}},
	{"linux_lsh_x_32_masks", {S(LD_IMM, 0x80000001), S(LDX_IMM, 32), S(LSH_X, 0), RETA},
	 NOPKT, L, 0, {RUN(0, 0, 0x80000001)}},
	{"linux_rsh_x_63_masks", {S(LD_IMM, 0x80000001), S(LDX_IMM, 63), S(RSH_X, 0), RETA},
	 NOPKT, L, 0, {RUN(0, 0, 1)}},
	{"linux_div_x_zero", {S(LD_IMM, 7), S(LDX_IMM, 0), S(DIV_X, 0), S(RET_K, 1)}, NOPKT, L,
	 0, {RUN(0, 0, 0)}},
	{"linux_len", {S(LD_W_LEN, 0), RETA}, PA, L, 0, {RUN(16, 1500, 1500)}},

	/* ---- Linux: netlink attributes (A = start offset, X = type) ---- */
	{"nla_second", {S(LDX_IMM, 2), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)), RETA}, PN1, L, 0,
	 {RUN(44, 44, 8), RUN(14, 14, 8), RUN(13, 13, 0)}},
	{"nla_type_drops_nested_flag", {S(LDX_IMM, 3), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)), RETA},
	 PN1, L, 0, {RUN(44, 44, 16), RUN(36, 36, 16), RUN(35, 35, 0)}},
	{"nla_type_drops_byteorder_flag",
	 {S(LDX_IMM, 7), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)), RETA}, PN1, L, 0,
	 {RUN(41, 41, 36), RUN(40, 40, 0), RUN(38, 38, 0)}},
	{"nla_not_at_top_level", {S(LDX_IMM, 5), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)), S(ADD_K, 1),
				  RETA}, PN1, L, 0, {RUN(44, 44, 1)}},
	{"nla_found_at_0_reads_0", {S(LDX_IMM, 1), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)),
				    S(ADD_K, 1), RETA}, PN1, L, 0, {RUN(44, 44, 1)}},
	{"nla_x_with_flag_never_matches", {S(LDX_IMM, 0x8003),
					   S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)), S(ADD_K, 1), RETA},
	 PN1, L, 0, {RUN(44, 44, 1)}},
	{"nla_x_high_bits_never_match", {S(LDX_IMM, 0x10002), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)),
					 S(ADD_K, 1), RETA}, PN1, L, 0, {RUN(44, 44, 1)}},
	{"nla_from_offset", {S(LD_IMM, 8), S(LDX_IMM, 3), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)),
			     RETA}, PN1, L, 0, {RUN(44, 44, 16)}},
	{"nla_from_offset_skips_earlier", {S(LD_IMM, 8), S(LDX_IMM, 1),
					   S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)), S(ADD_K, 1), RETA},
	 PN1, L, 0, {RUN(44, 44, 1)}},
	{"nla_a_past_end", {S(LD_IMM, 41), S(LDX_IMM, 0), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)),
			    S(ADD_K, 1), RETA}, PN1, L, 0, {RUN(44, 44, 1)}},
	{"nla_a_huge", {S(LD_IMM, 0xfffffffe), S(LDX_IMM, 0), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)),
			S(ADD_K, 1), RETA}, PN1, L, 0, {RUN(44, 44, 1)}},
	{"nla_short_packet", {S(LDX_IMM, 1), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)), S(ADD_K, 1),
			      RETA}, PN1, L, 0, {RUN(3, 3, 1), RUN(0, 0, 1)}},
	{"nla_stops_at_bad_length", {S(LDX_IMM, 8), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)),
				     S(ADD_K, 1), RETA}, PN2, L, 0, {RUN(28, 28, 1)}},
	{"nla_walks_over_nest", {S(LDX_IMM, 6), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)), RETA}, PN2, L,
	 0, {RUN(28, 28, 12), RUN(20, 20, 12), RUN(19, 19, 0)}},
	{"nla_empty_attribute", {S(LD_IMM, 24), S(LDX_IMM, 8), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR)),
				 RETA}, PN2, L, 0, {RUN(28, 28, 24), RUN(27, 27, 0)}},
	{"nlan_found", {S(LD_IMM, 16), S(LDX_IMM, 6), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)),
			RETA}, PN1, L, 0, {RUN(44, 44, 28), RUN(36, 36, 28), RUN(35, 35, 0)}},
	{"nlan_first", {S(LD_IMM, 16), S(LDX_IMM, 5), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)),
			RETA}, PN1, L, 0, {RUN(44, 44, 20)}},
	{"nlan_not_inside", {S(LD_IMM, 16), S(LDX_IMM, 2),
			     S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)), S(ADD_K, 1), RETA}, PN1, L,
	 0, {RUN(44, 44, 1)}},
	{"nlan_payload_of_plain_attr", {S(LD_IMM, 0), S(LDX_IMM, 9),
					S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)), RETA}, PN1, L, 0,
	 {RUN(44, 44, 4), RUN(8, 8, 4), RUN(7, 7, 0)}},
	{"nlan_a_past_end", {S(LD_IMM, 41), S(LDX_IMM, 0), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)),
			     S(ADD_K, 1), RETA}, PN1, L, 0, {RUN(44, 44, 1)}},
	{"nlan_stays_inside_nest", {S(LDX_IMM, 6), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)),
				    S(ADD_K, 1), RETA}, PN2, L, 0, {RUN(28, 28, 1)}},
	{"nlan_inside_nest", {S(LDX_IMM, 5), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)), RETA}, PN2,
	 L, 0, {RUN(28, 28, 4), RUN(12, 12, 4), RUN(11, 11, 0)}},
	{"nlan_length_below_header", {S(LD_IMM, 20), S(LDX_IMM, 0),
				      S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)), S(ADD_K, 1), RETA},
	 PN2, L, 0, {RUN(28, 28, 1)}},
	{"nlan_empty_nest", {S(LD_IMM, 24), S(LDX_IMM, 8), S(LD_W_ABS, AD(BPFKIT_AD_NLATTR_NEST)),
			     S(ADD_K, 1), RETA}, PN2, L, 0, {RUN(28, 28, 1)}},
};
enum { NROWS = sizeof rows / sizeof rows[0] };

static size_t row_len(const struct row *r)
{
	size_t n = ROW_MAXINSNS;
	while (n > 0) {
		const struct bpfkit_insn *in = &r->prog[n - 1];
		if (in->code || in->jt || in->jf || in->k)
			break;
		n--;
	}
	return n;
}

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

static bool engine_takes(const struct engine *e, const struct bpfkit_meta *meta, bool invalid)
{
	if (meta && !(e->can & ENGINE_LINUX))
		return false;
	if (invalid && !(e->can & ENGINE_ANY_PROG))
		return false;
	return true;
}

TEST(interp_table)
{
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *r = &rows[i];
		size_t n = row_len(r);
		CHECK_MSG(r->runs[0].used, "%s: no runs", r->name);
		for (size_t e = 0; e < NENGINES; e++) {
			const struct engine *eng = &engines[e];
			if (!engine_takes(eng, r->meta, r->flags & ROW_INVALID))
				continue;
			for (size_t j = 0; j < 3 && r->runs[j].used; j++) {
				uint32_t caplen = r->runs[j].caplen;
				if (caplen > r->pktlen) {
					CHECK_MSG(0, "%s: caplen %" PRIu32 " > packet", r->name,
						  caplen);
					continue;
				}
				uint32_t got = eng->run(r->prog, n, r->pkt, caplen,
							r->runs[j].wirelen, r->meta);
				CHECK_MSG(got == r->runs[j].expect,
					  "%s [%s] caplen %" PRIu32 " wirelen %" PRIu32
					  ": got %" PRIu32 " (0x%" PRIx32 "), want %" PRIu32
					  " (0x%" PRIx32 ")",
					  r->name, eng->name, caplen, r->runs[j].wirelen, got, got,
					  r->runs[j].expect, r->runs[j].expect);
			}
		}
	}
}

/* Every opcode of the table appears in a row every engine runs, every ancillary load too. */
TEST(interp_table_covers_every_opcode)
{
	bool seen_code[256] = {false};
	bool seen_anc[BPFKIT_AD_MAX] = {false};
	for (size_t i = 0; i < NROWS; i++) {
		const struct row *r = &rows[i];
		size_t n = row_len(r);
		for (size_t j = 0; j < n; j++) {
			const struct bpfkit_insn *in = &r->prog[j];
			const struct opcode_info *o = opcode_lookup(in->code);
			if (!r->meta && !(r->flags & ROW_INVALID))
				seen_code[in->code & 0xff] = true;
			if (r->meta && o && o->operand == OPND_ABS && opcode_anc(in->k))
				seen_anc[in->k - BPFKIT_SKF_AD_OFF] = true;
		}
	}
	for (size_t i = 0; i < OP__COUNT; i++)
		CHECK_MSG(seen_code[opcode_table[i].code], "no libpcap-mode row uses %s",
			  opcode_table[i].id);
	for (size_t i = 0; i < ANC__COUNT; i++)
		CHECK_MSG(seen_anc[anc_table[i].off], "no Linux row loads #%s", anc_table[i].name);
}

/* Jumps of 255 (jt/jf) and of large ja offsets, beyond what the table rows can hold. */
TEST(interp_long_jumps)
{
	enum { N = 600 };
	static struct bpfkit_insn prog[N];
	for (size_t i = 0; i < N; i++)
		prog[i] = (struct bpfkit_insn){C_RET_K, 0, 0, 0xeeee};
	prog[0] = (struct bpfkit_insn){C_LD_W_LEN, 0, 0, 0};
	prog[1] = (struct bpfkit_insn){C_JEQ_K, 255, 0, 1};   /* -> 257 */
	prog[2] = (struct bpfkit_insn){C_JGT_K, 0, 255, 1};   /* 1 < A: -> 3, else -> 258 */
	prog[3] = (struct bpfkit_insn){C_JA, 0, 0, 500};      /* -> 504 */
	prog[257] = (struct bpfkit_insn){C_RET_K, 0, 0, 7};
	prog[258] = (struct bpfkit_insn){C_RET_K, 0, 0, 8};
	prog[504] = (struct bpfkit_insn){C_RET_A, 0, 0, 0};
	static const struct {
		uint32_t wirelen, expect;
	} runs[] = {{1, 7}, {0, 8}, {2, 2}, {0xffffffff, 0xffffffff}};
	for (size_t e = 0; e < NENGINES; e++)
		for (size_t j = 0; j < sizeof runs / sizeof runs[0]; j++) {
			uint32_t got = engines[e].run(prog, N, NULL, 0, runs[j].wirelen, NULL);
			CHECK_MSG(got == runs[j].expect, "[%s] wirelen %" PRIu32 ": got %" PRIu32
				  ", want %" PRIu32, engines[e].name, runs[j].wirelen, got,
				  runs[j].expect);
		}
}

/* ------------------------------------------------------------------ */
/* The trace                                                           */

struct trace_log {
	struct bpfkit_trace t[16];
	size_t n;
};

static void trace_log_cb(void *ctx, const struct bpfkit_trace *t)
{
	struct trace_log *log = ctx;
	if (log->n < 16)
		log->t[log->n] = *t;
	log->n++;
}

struct want_step {
	size_t pc;
	uint32_t a, x;
	int branch, done;
	uint32_t ret;
};

static void check_trace(const char *what, const struct bpfkit_insn *prog, size_t n,
			const uint8_t *pkt, uint32_t caplen, const struct want_step *want,
			size_t nwant, uint32_t want_ret)
{
	struct trace_log log = {.n = 0};
	uint32_t r = bpfkit_interp_trace(prog, n, pkt, caplen, caplen, NULL, trace_log_cb, &log);
	CHECK_MSG(r == want_ret, "%s: returned %" PRIu32 ", want %" PRIu32, what, r, want_ret);
	CHECK_MSG(log.n == nwant, "%s: %zu trace records, want %zu", what, log.n, nwant);
	for (size_t i = 0; i < nwant && i < log.n; i++) {
		const struct bpfkit_trace *t = &log.t[i];
		const struct want_step *w = &want[i];
		CHECK_MSG(t->pc == w->pc && t->a == w->a && t->x == w->x &&
			  t->branch == w->branch && t->done == w->done && t->ret == w->ret &&
			  memcmp(&t->insn, &prog[t->pc < n ? t->pc : 0], sizeof t->insn) == 0,
			  "%s: record %zu: pc %zu a %" PRIu32 " x %" PRIu32
			  " branch %d done %d ret %" PRIu32 "; want pc %zu a %" PRIu32
			  " x %" PRIu32 " branch %d done %d ret %" PRIu32,
			  what, i, t->pc, t->a, t->x, t->branch, t->done, t->ret, w->pc, w->a,
			  w->x, w->branch, w->done, w->ret);
	}
}

TEST(interp_trace_sequence)
{
	static const struct bpfkit_insn prog[] = {
		S(LDX_IMM, 4),         /* 0 */
		S(LD_B_ABS, 0),        /* 1 */
		J(JEQ_K, 1, 0, 2),     /* 2: -> 3 or 5 */
		S(ADD_X, 0),           /* 3 */
		RETA,                  /* 4 */
		J(JSET_K, 2, 1, 0),    /* 5: -> 7 or 6 */
		S(RET_K, 20),          /* 6 */
		S(JA, 0),              /* 7 */
		S(RET_K, 30),          /* 8 */
	};
	size_t n = sizeof prog / sizeof prog[0];
	static const uint8_t one[] = {1}, two[] = {2}, four[] = {4};

	static const struct want_step w1[] = {
		{0, 0, 4, -1, 0, 0}, {1, 1, 4, -1, 0, 0}, {2, 1, 4, 1, 0, 0},
		{3, 5, 4, -1, 0, 0}, {4, 5, 4, -1, 1, 5},
	};
	check_trace("taken", prog, n, one, 1, w1, 5, 5);

	static const struct want_step w2[] = {
		{0, 0, 4, -1, 0, 0}, {1, 2, 4, -1, 0, 0}, {2, 2, 4, 0, 0, 0},
		{5, 2, 4, 1, 0, 0}, {7, 2, 4, -1, 0, 0}, {8, 2, 4, -1, 1, 30},
	};
	check_trace("not taken, jset, ja", prog, n, two, 1, w2, 6, 30);

	static const struct want_step w3[] = {
		{0, 0, 4, -1, 0, 0}, {1, 4, 4, -1, 0, 0}, {2, 4, 4, 0, 0, 0},
		{5, 4, 4, 0, 0, 0}, {6, 4, 4, -1, 1, 20},
	};
	check_trace("jset not taken", prog, n, four, 1, w3, 5, 20);

	/* A load past the packet is the last record: done, ret 0, A unchanged. */
	static const struct want_step w4[] = {{0, 0, 4, -1, 0, 0}, {1, 0, 4, -1, 1, 0}};
	check_trace("short packet", prog, n, one, 0, w4, 2, 0);

	/* Falling off the end and jumping past it end on the instruction that did it. */
	static const struct bpfkit_insn off[] = {S(LD_IMM, 1), J(JEQ_K, 1, 9, 0)};
	static const struct want_step w5[] = {{0, 1, 0, -1, 0, 0}, {1, 1, 0, 1, 1, 0}};
	check_trace("jump past the end", off, 2, NULL, 0, w5, 2, 0);
	static const struct want_step w6[] = {{0, 1, 0, -1, 1, 0}};
	check_trace("fall off the end", off, 1, NULL, 0, w6, 1, 0);

	/* Division by zero: done with 0, registers as before. */
	static const struct bpfkit_insn div0[] = {S(LD_IMM, 9), S(DIV_X, 0), RETA};
	static const struct want_step w7[] = {{0, 9, 0, -1, 0, 0}, {1, 9, 0, -1, 1, 0}};
	check_trace("div by zero", div0, 3, NULL, 0, w7, 2, 0);

	/* The empty program calls nothing. */
	check_trace("empty", prog, 0, NULL, 0, NULL, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Unvalidated programs are safe, and both entry points agree on them  */

TEST(interp_garbage_programs_are_safe)
{
	enum { N = 24, PROGS = 20000 };
	static const uint32_t ks[] = {0, 1, 2, 3, 4, 14, 15, 16, 17, 31, 32, 33, 255,
				      0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff,
				      BPFKIT_SKF_LL_OFF, BPFKIT_SKF_NET_OFF, BPFKIT_SKF_AD_OFF,
				      BPFKIT_SKF_AD_OFF + BPFKIT_AD_NLATTR,
				      BPFKIT_SKF_AD_OFF + BPFKIT_AD_NLATTR_NEST};
	uint64_t seed = 0x5eed0001;
	uint8_t pkt[48];
	struct bpfkit_insn prog[N];
	for (int p = 0; p < PROGS; p++) {
		size_t n = 1 + randprog_below(&seed, N);
		for (size_t i = 0; i < n; i++) {
			uint32_t pick = randprog_below(&seed, 8);
			uint16_t code = (uint16_t)randprog_next(&seed);
			if (pick < 6)
				code = opcode_table[randprog_below(&seed, OP__COUNT)].code;
			uint32_t k = randprog_below(&seed, 2)
					     ? ks[randprog_below(&seed, sizeof ks / sizeof ks[0])]
					     : (uint32_t)randprog_next(&seed);
			prog[i] = (struct bpfkit_insn){code, (uint8_t)randprog_below(&seed, 4),
						       (uint8_t)randprog_below(&seed, 300), k};
		}
		for (size_t i = 0; i < sizeof pkt; i++)
			pkt[i] = (uint8_t)randprog_next(&seed);
		uint32_t caplen = randprog_below(&seed, sizeof pkt + 1);
		struct bpfkit_meta meta = meta_std;
		meta.net_offset = randprog_below(&seed, 64);
		const struct bpfkit_meta *m = randprog_below(&seed, 2) ? &meta : NULL;
		uint32_t r0 = run_interp(prog, n, pkt, caplen, 1000, m);
		uint32_t r1 = run_interp_trace(prog, n, pkt, caplen, 1000, m);
		if (r0 != r1) {
			char buf[1024];
			format_prog(buf, sizeof buf, prog, n);
			CHECK_MSG(0, "interp %" PRIu32 " != interp_trace %" PRIu32 ": %s", r0, r1,
				  buf);
		}
		if (harness_failures() > 5)
			return;
	}
}

/* ------------------------------------------------------------------ */
/* Differential: random valid programs on real packets vs libpcap      */


/* Caplens worth trying for prog on a packet of len bytes: 0, 1, len, and around loads. */
static size_t pick_caplens(const struct bpfkit_insn *prog, size_t n, uint32_t len,
			   uint32_t *out, size_t max)
{
	size_t m = 0;
	out[m++] = len;
	out[m++] = 0;
	if (len >= 1)
		out[m++] = 1;
	for (size_t i = 0; i < n && m + 2 <= max; i++) {
		const struct opcode_info *o = opcode_lookup(prog[i].code);
		if (!o || !(o->flags & F_PKT))
			continue;
		uint32_t size = BPFKIT_SIZE(prog[i].code) == BPFKIT_W   ? 4
				: BPFKIT_SIZE(prog[i].code) == BPFKIT_H ? 2
									: 1;
		uint32_t k = prog[i].k;
		if (o->operand == OPND_IND)
			k += 14; /* X is often a header length; a guess is enough */
		if (k >= len)
			continue;
		uint32_t end = k + size; /* the load exactly fits, and one byte short */
		if (end <= len)
			out[m++] = end;
		if (end - 1 <= len)
			out[m++] = end - 1;
	}
	return m;
}

TEST(interp_random_vs_libpcap)
{
	enum { PROGS = 2500, PKTS_PER_PROG = 8, MAXCAPS = 8, MAXLEN = 48 };
	struct packets pk = {NULL, 0, 0};
	packets_load(harness_shared_path("pcaps"), 80, 48, &pk);
	if (pk.n == 0)
		SKIP("no packets: %s is absent or unreadable", harness_shared_path("pcaps"));

	uint64_t seed = 0xb0f4b0f4;
	struct bpfkit_insn prog[MAXLEN];
	size_t runs = 0, reported = 0;
	for (int p = 0; p < PROGS && reported < 5; p++) {
		const struct packet *first = &pk.v[randprog_below(&seed, (uint32_t)pk.n)];
		size_t n = randprog_gen(&seed, prog, MAXLEN, first->caplen, 0);
		for (int q = 0; q < PKTS_PER_PROG && reported < 5; q++) {
			const struct packet *pt =
				q == 0 ? first : &pk.v[randprog_below(&seed, (uint32_t)pk.n)];
			uint32_t caps[MAXCAPS];
			size_t ncaps = pick_caplens(prog, n, pt->caplen, caps, MAXCAPS);
			for (size_t c = 0; c < ncaps; c++) {
				uint32_t want = engines[0].run(prog, n, pt->data, caps[c],
							       pt->wirelen, NULL);
				runs++;
				for (size_t e = 1; e < NENGINES; e++) {
					uint32_t got = engines[e].run(prog, n, pt->data, caps[c],
								      pt->wirelen, NULL);
					if (got == want)
						continue;
					char buf[2048];
					format_prog(buf, sizeof buf, prog, n);
					CHECK_MSG(0, "%s returned %" PRIu32 ", %s %" PRIu32
						  " on a packet of caplen %" PRIu32 " (of %" PRIu32
						  ") wirelen %" PRIu32 "; program (%zu insns): %s",
						  engines[e].name, got, engines[0].name, want,
						  caps[c], pt->caplen, pt->wirelen, n, buf);
					reported++;
				}
			}
		}
	}
	CHECK_MSG(runs >= 50000, "only %zu runs", runs);
	packets_free(&pk);
}
