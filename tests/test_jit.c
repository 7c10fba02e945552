/*
 * test_jit.c - the x86-64 JIT (src/jit_x86_64.c) against the reference
 * interpreter, plus the properties only a JIT has: its pages are never
 * writable and executable at once, and with constant blinding no constant of
 * the program appears in the code.
 *
 * Every test SKIPs when bpfkit_jit_available() is 0 (not x86-64).  The
 * differential tests run each random program compiled both plainly and with
 * BPFKIT_JIT_BLIND, on real packets (../shared/pcaps) cut at every length
 * around each load the interpreter executes, and on random packets.
 */
#include "harness.h"
#include "internal.h"
#include "randprog.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/mman.h>

#define NEED_JIT()                                                              \
	do {                                                                    \
		if (!bpfkit_jit_available())                                    \
			SKIP("the jit is not available on this architecture");  \
	} while (0)

#define I(c, t, f, k) ((struct bpfkit_insn){(c), (t), (f), (k)})

enum {
	LD_W_ABS = 0x20, LD_H_ABS = 0x28, LD_B_ABS = 0x30, LD_W_IND = 0x40, LD_H_IND = 0x48,
	LD_B_IND = 0x50, LD_LEN = 0x80, LD_IMM = 0x00, LD_MEM = 0x60, LDX_IMM = 0x01,
	LDX_MEM = 0x61, LDX_LEN = 0x81, LDX_MSH = 0xb1, ST = 0x02, STX = 0x03, ADD_K = 0x04,
	ADD_X = 0x0c, SUB_X = 0x1c, MUL_K = 0x24, DIV_X = 0x3c, MOD_X = 0x9c, DIV_K = 0x34,
	MOD_K = 0x94, AND_K = 0x54, LSH_X = 0x6c, RSH_X = 0x7c, JA = 0x05, JEQ_K = 0x15, JGT_K = 0x25,
	JGE_K = 0x35, JSET_K = 0x45, JEQ_X = 0x1d, JGT_X = 0x2d, RET_K = 0x06, RET_A = 0x16,
	TAX = 0x07, TXA = 0x87
};

static struct bpfkit_jit *compile_or_fail(const struct bpfkit_insn *p, size_t n, unsigned flags)
{
	struct bpfkit_jit *j = NULL;
	struct bpfkit_error err;
	int rc = bpfkit_jit_compile(p, n, flags, NULL, &j, &err);
	CHECK_MSG(rc == 0 && j, "jit compile failed (%zu insns, flags %u): %s", n, flags,
		  rc == 0 ? "" : err.message);
	return rc == 0 ? j : NULL;
}

/* j (compiled from p) against the interpreter on pkt cut at every length 0..len. */
static void check_every_cut(const struct bpfkit_jit *j, const struct bpfkit_insn *p, size_t n,
			    const uint8_t *pkt, uint32_t len)
{
	for (uint32_t cap = 0; cap <= len; cap++)
		CHECK_EQ(bpfkit_jit_run(j, pkt, cap, len), bpfkit_interp(p, n, pkt, cap, len, NULL));
}

/* Runs p on every caplen in caps, plain and blinded; counts mismatches (reported). */
static size_t compare_runs(struct bpfkit_jit *const jits[2], const struct bpfkit_insn *p,
			   size_t n, const uint8_t *pkt, const uint32_t *caps, size_t ncaps,
			   uint32_t wirelen, size_t *runs)
{
	size_t bad = 0;
	for (size_t c = 0; c < ncaps; c++) {
		uint32_t want = bpfkit_interp(p, n, pkt, caps[c], wirelen, NULL);
		for (int b = 0; b < 2; b++) {
			uint32_t got = bpfkit_jit_run(jits[b], pkt, caps[c], wirelen);
			(*runs)++;
			if (got == want)
				continue;
			bad++;
			char buf[4096];
			size_t used = 0;
			for (size_t i = 0; i < n && used + 40 < sizeof buf; i++)
				used += (size_t)snprintf(buf + used, sizeof buf - used,
							 "{0x%02x,%u,%u,0x%" PRIx32 "} ",
							 p[i].code, p[i].jt, p[i].jf, p[i].k);
			CHECK_MSG(0, "jit%s returned %" PRIu32 ", interp %" PRIu32 " (caplen %" PRIu32
				  " wirelen %" PRIu32 "); program: %s", b ? " (blinded)" : "",
				  got, want, caps[c], wirelen, buf);
		}
	}
	return bad;
}

/* What the interpreter's run touched: the end of each executed packet load. */
struct load_ends {
	uint64_t end[64];
	size_t n;
};

static void trace_loads(void *ctx, const struct bpfkit_trace *t)
{
	struct load_ends *le = ctx;
	const struct opcode_info *o = opcode_lookup(t->insn.code);
	if (!o || !(o->flags & F_PKT) || le->n == 64)
		return;
	uint32_t size = BPFKIT_SIZE(t->insn.code) == BPFKIT_W   ? 4
			: BPFKIT_SIZE(t->insn.code) == BPFKIT_H ? 2
								: 1;
	uint64_t off = t->insn.k;
	if (o->operand == OPND_IND)
		off += t->x; /* an indirect load leaves X as it was */
	le->end[le->n++] = off + size;
}

/* caplens: the whole packet, 0, and one below / at / above each load's end. */
static size_t caplens_around_loads(const struct bpfkit_insn *p, size_t n, const uint8_t *pkt,
				   uint32_t len, uint32_t wirelen, uint32_t *caps, size_t max)
{
	struct load_ends le = {.n = 0};
	bpfkit_interp_trace(p, n, pkt, len, wirelen, NULL, trace_loads, &le);
	size_t m = 0;
	caps[m++] = len;
	caps[m++] = 0;
	for (size_t i = 0; i < le.n; i++)
		for (int d = -1; d <= 1 && m < max; d++) {
			uint64_t c = le.end[i] + (uint64_t)(int64_t)d;
			if (c <= len)
				caps[m++] = (uint32_t)c;
		}
	return m;
}

struct packets {
	uint8_t **data;
	uint32_t *caplen, *wirelen;
	size_t n, cap;
};

static void packets_add(struct packets *pk, const uint8_t *d, uint32_t caplen, uint32_t wirelen)
{
	if (pk->n == pk->cap) {
		pk->cap = pk->cap ? 2 * pk->cap : 256;
		pk->data = realloc(pk->data, pk->cap * sizeof *pk->data);
		pk->caplen = realloc(pk->caplen, pk->cap * sizeof *pk->caplen);
		pk->wirelen = realloc(pk->wirelen, pk->cap * sizeof *pk->wirelen);
		if (!pk->data || !pk->caplen || !pk->wirelen)
			abort();
	}
	pk->data[pk->n] = malloc(caplen ? caplen : 1);
	if (!pk->data[pk->n])
		abort();
	memcpy(pk->data[pk->n], d, caplen);
	pk->caplen[pk->n] = caplen;
	pk->wirelen[pk->n] = wirelen;
	pk->n++;
}

/* Up to per_file packets of up to 400 bytes from each capture in dir. */
static void load_pcaps(const char *dir, size_t per_file, struct packets *pk)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 5, ".pcap") != 0)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		size_t len;
		char *buf = harness_read_file(path, &len);
		struct bpfkit_capture *c;
		if (!buf || len > (4u << 20) ||
		    bpfkit_capture_open_mem(buf, len, 0, NULL, &c, NULL) < 0) {
			free(buf);
			continue;
		}
		struct bpfkit_packet p;
		for (size_t got = 0; got < per_file && bpfkit_capture_next(c, &p, NULL) == 1; got++)
			packets_add(pk, p.data, p.caplen > 400 ? 400 : p.caplen, p.wirelen);
		bpfkit_capture_close(c);
		free(buf);
	}
	closedir(d);
}

static void packets_free(struct packets *pk)
{
	for (size_t i = 0; i < pk->n; i++)
		free(pk->data[i]);
	free(pk->data);
	free(pk->caplen);
	free(pk->wirelen);
}

/*
 * Random valid programs x packets: every (program, packet, caplen) gives the
 * interpreter's result, plain and blinded.  real == NULL: random packets.
 */
static size_t random_programs(const struct packets *real, uint64_t seed, int progs)
{
	enum { MAXLEN = 64, MAXCAPS = 24, PKTS = 8 };
	struct bpfkit_insn prog[MAXLEN];
	uint8_t rnd[96];
	size_t runs = 0, bad = 0, compiled = 0;
	for (int i = 0; i < progs && bad < 5; i++) {
		uint32_t hint = real ? real->caplen[randprog_below(&seed, (uint32_t)real->n)]
				     : randprog_below(&seed, 64);
		size_t n = randprog_gen(&seed, prog, 2 + randprog_below(&seed, MAXLEN - 1), hint,
					0);
		if (bpfkit_validate(prog, n, BPFKIT_VALIDATE_PCAP, NULL) < 0)
			continue;
		struct bpfkit_jit *jits[2] = {compile_or_fail(prog, n, 0),
					      compile_or_fail(prog, n, BPFKIT_JIT_BLIND)};
		if (jits[0] && jits[1]) {
			compiled++;
			for (int q = 0; q < PKTS; q++) {
				const uint8_t *data;
				uint32_t len, wirelen;
				if (real) {
					size_t w = randprog_below(&seed, (uint32_t)real->n);
					data = real->data[w];
					len = real->caplen[w];
					wirelen = real->wirelen[w];
				} else {
					len = randprog_below(&seed, sizeof rnd + 1);
					for (size_t b = 0; b < sizeof rnd; b++)
						rnd[b] = (uint8_t)randprog_next(&seed);
					data = rnd;
					wirelen = len + randprog_below(&seed, 3);
				}
				uint32_t caps[MAXCAPS];
				size_t m = caplens_around_loads(prog, n, data, len, wirelen, caps,
								MAXCAPS);
				bad += compare_runs(jits, prog, n, data, caps, m, wirelen, &runs);
			}
		}
		bpfkit_jit_free(jits[0]);
		bpfkit_jit_free(jits[1]);
	}
	CHECK_MSG(compiled * 10 >= (size_t)progs * 9, "only %zu of %d programs compiled",
		  compiled, progs);
	return runs;
}

TEST(jit_random_vs_interp_pcaps)
{
	NEED_JIT();
	struct packets pk = {0};
	load_pcaps(harness_shared_path("pcaps"), 16, &pk);
	if (pk.n == 0)
		SKIP("no packets: %s is absent or unreadable", harness_shared_path("pcaps"));
	size_t runs = random_programs(&pk, 0x6a17c0de, 4000);
	CHECK_MSG(runs >= 100000, "only %zu runs", runs);
	packets_free(&pk);
}

TEST(jit_random_vs_interp_random_packets)
{
	NEED_JIT();
	size_t runs = random_programs(NULL, 0x5eed1e55, 2500);
	CHECK_MSG(runs >= 50000, "only %zu runs", runs);
}

/* Programs of the kernel's maximum length with jumps of every reach, short and near. */
TEST(jit_far_programs)
{
	NEED_JIT();
	enum { N = BPFKIT_MAXINSNS };
	static struct bpfkit_insn prog[N];
	for (size_t i = 0; i + 1 < N; i++) {
		size_t room = N - 2 - i; /* the farthest a jump from i may go */
		uint8_t far = (uint8_t)(room < 255 ? room : 255);
		switch (i % 5) {
		case 0:
			prog[i] = I(LD_B_ABS, 0, 0, (uint32_t)(i % 60));
			break;
		case 1: /* jt up to 255 ahead, jf the next */
			prog[i] = I(JGT_K, (uint8_t)(i * 7 % (far + 1u)), 0, (uint32_t)(i % 200));
			break;
		case 2:
			prog[i] = I(ADD_K, 0, 0, (uint32_t)i);
			break;
		case 3: /* a rare long forward ja */
			prog[i] = I(JA, 0, 0, i % 500 == 3 ? (uint32_t)room / 2 : 0);
			break;
		default:
			prog[i] = I(JSET_K, 0, (uint8_t)(i % (far + 1u)), (uint32_t)(1u << (i % 8)));
			break;
		}
	}
	prog[N - 1] = I(RET_A, 0, 0, 0);
	struct bpfkit_jit *jits[2] = {compile_or_fail(prog, N, 0),
				      compile_or_fail(prog, N, BPFKIT_JIT_BLIND)};
	if (!jits[0] || !jits[1])
		goto out;
	size_t len;
	jit_code(jits[0], &len);
	CHECK_MSG(len > 16384, "code of %zu bytes: too small to need near jumps", len);
	uint64_t seed = 42;
	uint8_t pkt[64];
	size_t runs = 0;
	for (int r = 0; r < 200; r++) {
		for (size_t b = 0; b < sizeof pkt; b++)
			pkt[b] = (uint8_t)randprog_next(&seed);
		uint32_t caps[] = {64, 59, 30, 0};
		compare_runs(jits, prog, N, pkt, caps, 4, 64, &runs);
	}
	/* Random programs of up to 4096 instructions. */
	int valid = 0;
	for (int p = 0; p < 1000 && valid < 20; p++) {
		size_t n = randprog_gen(&seed, prog, N, 60, 0);
		if (bpfkit_validate(prog, n, BPFKIT_VALIDATE_PCAP, NULL) < 0)
			continue; /* offsets at SKF_AD_OFF and above: not for libpcap */
		valid++;
		struct bpfkit_jit *rj[2] = {compile_or_fail(prog, n, 0),
					    compile_or_fail(prog, n, BPFKIT_JIT_BLIND)};
		for (int r = 0; r < 20 && rj[0] && rj[1]; r++) {
			for (size_t b = 0; b < sizeof pkt; b++)
				pkt[b] = (uint8_t)randprog_next(&seed);
			uint32_t caps[] = {64, 40, 14, 0};
			compare_runs(rj, prog, n, pkt, caps, 4, 70, &runs);
		}
		bpfkit_jit_free(rj[0]);
		bpfkit_jit_free(rj[1]);
	}
	CHECK_MSG(valid == 20 && runs >= 3000, "%d programs, %zu runs", valid, runs);
out:
	bpfkit_jit_free(jits[0]);
	bpfkit_jit_free(jits[1]);
}

/* Every conditional jump, on K and X, with jt/jf falling through, equal, or both taken. */
TEST(jit_jump_shapes)
{
	NEED_JIT();
	static const uint16_t conds[] = {JEQ_K, JGT_K, JGE_K, JSET_K, JEQ_X, JGT_X, 0x3d, 0x4d};
	static const uint32_t ks[] = {0, 1, 2, 0x7f, 0x80, 0x7fffffff, 0x80000000, 0xffffffff};
	static const uint8_t shapes[][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 2}, {2, 1}, {2, 2}, {0, 2}};
	size_t runs = 0;
	for (size_t c = 0; c < sizeof conds / sizeof conds[0]; c++)
		for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
			for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
				struct bpfkit_insn p[] = {
					I(LD_LEN, 0, 0, 0),
					I(LDX_IMM, 0, 0, ks[ki]),
					I(conds[c], shapes[s][0], shapes[s][1], ks[ki]),
					I(RET_K, 0, 0, 10),
					I(RET_K, 0, 0, 0), /* a jump here goes to the shared exit */
					I(RET_A, 0, 0, 0),
				};
				size_t n = sizeof p / sizeof p[0];
				struct bpfkit_jit *j[2] = {compile_or_fail(p, n, 0),
							   compile_or_fail(p, n, BPFKIT_JIT_BLIND)};
				for (size_t w = 0; w < sizeof ks / sizeof ks[0] && j[0] && j[1];
				     w++) {
					uint32_t cap = 0;
					compare_runs(j, p, n, NULL, &cap, 1, ks[w] + 1, &runs);
					compare_runs(j, p, n, NULL, &cap, 1, ks[w], &runs);
				}
				bpfkit_jit_free(j[0]);
				bpfkit_jit_free(j[1]);
			}
	/* ja 0, ja over dead code, a conditional jump over dead code. */
	struct bpfkit_insn q[] = {
		I(JA, 0, 0, 0),       I(LD_LEN, 0, 0, 0), I(JA, 0, 0, 1), I(RET_K, 0, 0, 5),
		I(JEQ_K, 1, 2, 7),    I(RET_K, 0, 0, 6),  I(RET_A, 0, 0, 0), I(RET_K, 0, 0, 1),
	};
	struct bpfkit_jit *j[2] = {compile_or_fail(q, 8, 0), compile_or_fail(q, 8, 0)};
	for (uint32_t w = 5; w < 10 && j[0] && j[1]; w++) {
		uint32_t cap = 0;
		compare_runs(j, q, 8, NULL, &cap, 1, w, &runs);
	}
	bpfkit_jit_free(j[0]);
	bpfkit_jit_free(j[1]);
	CHECK(runs > 1000);
}

/* M[]: all 16 cells, and cells read before any write are 0 even when the stack is dirty. */
TEST(jit_scratch_memory)
{
	NEED_JIT();
	struct bpfkit_insn w[2 * BPFKIT_MEMWORDS + 2];
	size_t n = 0;
	w[n++] = I(LD_LEN, 0, 0, 0);
	for (uint32_t k = 0; k < BPFKIT_MEMWORDS; k++) {
		w[n++] = I(k % 2 ? ST : STX, 0, 0, k);
		w[n++] = I(ADD_K, 0, 0, 0x1111);
	}
	w[n++] = I(RET_A, 0, 0, 0);
	struct bpfkit_insn r[3 * BPFKIT_MEMWORDS + 2];
	size_t m = 0;
	for (uint32_t k = 0; k < BPFKIT_MEMWORDS; k++) {
		r[m++] = I(LDX_MEM, 0, 0, k);
		r[m++] = I(TXA, 0, 0, 0);
		r[m++] = I(ADD_X, 0, 0, 0);
	}
	r[m++] = I(LD_MEM, 0, 0, 9);
	r[m++] = I(RET_A, 0, 0, 0);
	struct bpfkit_jit *jw = compile_or_fail(w, n, 0), *jr = compile_or_fail(r, m, 0);
	struct bpfkit_jit *jrb = compile_or_fail(r, m, BPFKIT_JIT_BLIND);
	if (jw && jr && jrb) {
		for (uint32_t len = 1; len < 100; len += 7) {
			CHECK_EQ(bpfkit_jit_run(jw, NULL, 0, len),
				 bpfkit_interp(w, n, NULL, 0, len, NULL));
			/* The writer left its cells in the same red zone: the reader must see 0. */
			CHECK_EQ(bpfkit_jit_run(jr, NULL, 0, len), 0);
			bpfkit_jit_run(jw, NULL, 0, len);
			CHECK_EQ(bpfkit_jit_run(jrb, NULL, 0, len), 0);
		}
		/* Store then load back every cell in one program. */
		struct bpfkit_insn rt[4 * BPFKIT_MEMWORDS + 2];
		size_t t = 0;
		for (uint32_t k = 0; k < BPFKIT_MEMWORDS; k++) {
			rt[t++] = I(LD_IMM, 0, 0, 0x01010101u * (k + 1));
			rt[t++] = I(ST, 0, 0, k);
		}
		rt[t++] = I(LD_IMM, 0, 0, 0);
		for (uint32_t k = 0; k < BPFKIT_MEMWORDS; k++) {
			rt[t++] = I(LDX_MEM, 0, 0, k);
			rt[t++] = I(ADD_X, 0, 0, 0);
		}
		rt[t++] = I(RET_A, 0, 0, 0);
		struct bpfkit_jit *jt = compile_or_fail(rt, t, BPFKIT_JIT_BLIND);
		if (jt)
			CHECK_EQ(bpfkit_jit_run(jt, NULL, 0, 0), 0x01010101u * 136);
		bpfkit_jit_free(jt);
	}
	bpfkit_jit_free(jw);
	bpfkit_jit_free(jr);
	bpfkit_jit_free(jrb);
}

/* The libpcap corner cases of docs/semantics.md, with expected values written out. */
TEST(jit_semantics)
{
	NEED_JIT();
	static const uint8_t pkt[] = {0x45, 0x81, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
	struct {
		struct bpfkit_insn p[5];
		size_t n;
		uint32_t caplen, wirelen, want;
	} rows[] = {
		{{I(LDX_IMM, 0, 0, 0), I(LD_IMM, 0, 0, 9), I(DIV_X, 0, 0, 0), I(RET_K, 0, 0, 1)},
		 4, 8, 8, 0},
		{{I(LDX_IMM, 0, 0, 0), I(LD_IMM, 0, 0, 9), I(MOD_X, 0, 0, 0), I(RET_K, 0, 0, 1)},
		 4, 8, 8, 0},
		{{I(LDX_IMM, 0, 0, 0xffffffff), I(LD_IMM, 0, 0, 0x80000000), I(DIV_X, 0, 0, 0),
		  I(RET_A, 0, 0, 0)}, 4, 8, 8, 0},
		{{I(LDX_IMM, 0, 0, 0xffffffff), I(LD_IMM, 0, 0, 0x80000000), I(MOD_X, 0, 0, 0),
		  I(RET_A, 0, 0, 0)}, 4, 8, 8, 0x80000000},
		{{I(LDX_IMM, 0, 0, 32), I(LD_IMM, 0, 0, 0x80000001), I(LSH_X, 0, 0, 0),
		  I(RET_A, 0, 0, 0)}, 4, 8, 8, 0},
		{{I(LDX_IMM, 0, 0, 33), I(LD_IMM, 0, 0, 0x80000001), I(RSH_X, 0, 0, 0),
		  I(RET_A, 0, 0, 0)}, 4, 8, 8, 0},
		{{I(LDX_IMM, 0, 0, 31), I(LD_IMM, 0, 0, 0x80000001), I(RSH_X, 0, 0, 0),
		  I(RET_A, 0, 0, 0)}, 4, 8, 8, 1},
		{{I(LDX_IMM, 0, 0, 0xffffffff), I(LD_B_IND, 0, 0, 2), I(RET_K, 0, 0, 1)},
		 3, 8, 8, 0},
		{{I(LDX_IMM, 0, 0, 1), I(LD_B_IND, 0, 0, 0xffffffff), I(RET_K, 0, 0, 1)},
		 3, 8, 8, 0},
		{{I(LDX_IMM, 0, 0, 4), I(LD_W_IND, 0, 0, 0), I(RET_A, 0, 0, 0)}, 3, 8, 8,
		 0x04050607},
		{{I(LDX_IMM, 0, 0, 4), I(LD_W_IND, 0, 0, 1), I(RET_A, 0, 0, 0)}, 3, 8, 8, 0},
		{{I(LD_H_ABS, 0, 0, 0xffe00000), I(RET_K, 0, 0, 1)}, 2, 8, 8, 0},
		{{I(LD_H_ABS, 0, 0, 6), I(RET_A, 0, 0, 0)}, 2, 8, 8, 0x0607},
		{{I(LD_H_ABS, 0, 0, 6), I(RET_A, 0, 0, 0)}, 2, 7, 8, 0},
		{{I(LDX_MSH, 0, 0, 0), I(TXA, 0, 0, 0), I(RET_A, 0, 0, 0)}, 3, 8, 8, 20},
		{{I(LD_IMM, 0, 0, 77), I(LDX_MSH, 0, 0, 1), I(ADD_X, 0, 0, 0), I(RET_A, 0, 0, 0)},
		 4, 8, 8, 77 + 4},
		{{I(LD_LEN, 0, 0, 0), I(LDX_LEN, 0, 0, 0), I(ADD_X, 0, 0, 0), I(RET_A, 0, 0, 0)},
		 4, 0, 1000, 2000},
		{{I(LD_IMM, 0, 0, 0x80000000), I(0x84, 0, 0, 0), I(RET_A, 0, 0, 0)}, 3, 0, 0,
		 0x80000000},
		{{I(LD_IMM, 0, 0, 100), I(DIV_K, 0, 0, 8), I(MUL_K, 0, 0, 0x10001), I(RET_A, 0, 0, 0)},
		 4, 0, 0, 12 * 0x10001},
		{{I(LD_IMM, 0, 0, 100), I(MOD_K, 0, 0, 16), I(RET_A, 0, 0, 0)}, 3, 0, 0, 4},
		{{I(LD_IMM, 0, 0, 100), I(MOD_K, 0, 0, 7), I(RET_A, 0, 0, 0)}, 3, 0, 0, 2},
		{{I(RET_A, 0, 0, 0)}, 1, 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		for (unsigned flags = 0; flags <= BPFKIT_JIT_BLIND; flags++) {
			struct bpfkit_jit *j = compile_or_fail(rows[i].p, rows[i].n, flags);
			if (!j)
				continue;
			uint32_t got = bpfkit_jit_run(j, pkt, rows[i].caplen, rows[i].wirelen);
			CHECK_MSG(got == rows[i].want, "row %zu flags %u: got 0x%" PRIx32
				  ", want 0x%" PRIx32, i, flags, got, rows[i].want);
			CHECK_EQ(bpfkit_interp(rows[i].p, rows[i].n, pkt, rows[i].caplen,
					       rows[i].wirelen, NULL), rows[i].want);
			CHECK(bpfkit_jit_function(j)(pkt, rows[i].caplen, rows[i].wirelen) == got);
			bpfkit_jit_free(j);
		}
}

/* Offsets >= 2^31 cannot be x86 displacements: a packet of 2 GiB + a page (sparse). */
TEST(jit_offsets_above_2g)
{
	NEED_JIT();
	const size_t size = 0x80002000u;
	uint8_t *big = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (big == MAP_FAILED)
		SKIP("cannot map 2 GiB of address space");
	memcpy(big + 0x80000010u, "\x11\x22\x33\x44\x55", 5);
	const uint32_t cap = 0x80000020u;
	struct bpfkit_insn progs[][4] = {
		{I(LD_W_ABS, 0, 0, 0x80000010u), I(RET_A, 0, 0, 0)},
		{I(LD_H_ABS, 0, 0, 0x80000011u), I(RET_A, 0, 0, 0)},
		{I(LDX_IMM, 0, 0, 0x10), I(LD_W_IND, 0, 0, 0x80000000u), I(RET_A, 0, 0, 0)},
		{I(LDX_IMM, 0, 0, 0x80000000u), I(LD_B_IND, 0, 0, 0x14), I(RET_A, 0, 0, 0)},
		{I(LDX_MSH, 0, 0, 0x80000013u), I(TXA, 0, 0, 0), I(RET_A, 0, 0, 0)},
		{I(LD_W_ABS, 0, 0, 0x8000001eu), I(RET_K, 0, 0, 9)},
	};
	const uint32_t want[] = {0x11223344, 0x2233, 0x11223344, 0x55, 16, 0};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		size_t n = progs[i][2].code == RET_A ? 3 : 2;
		if (progs[i][1].code == TXA)
			n = 3;
		CHECK_EQ(bpfkit_interp(progs[i], n, big, cap, cap, NULL), want[i]);
		for (unsigned flags = 0; flags <= BPFKIT_JIT_BLIND; flags++) {
			struct bpfkit_jit *j = compile_or_fail(progs[i], n, flags);
			if (j)
				CHECK_MSG(bpfkit_jit_run(j, big, cap, cap) == want[i],
					  "program %zu flags %u: got 0x%" PRIx32, i, flags,
					  bpfkit_jit_run(j, big, cap, cap));
			bpfkit_jit_free(j);
		}
	}
	munmap(big, size);
}

/* No mapping of the process is writable and executable while a filter exists. */
TEST(jit_pages_never_wx)
{
	NEED_JIT();
	struct bpfkit_insn p[] = {I(LD_H_ABS, 0, 0, 12), I(JEQ_K, 0, 1, 0x800), I(RET_K, 0, 0, 1),
				  I(RET_K, 0, 0, 0)};
	struct bpfkit_jit *j[2] = {compile_or_fail(p, 4, 0), compile_or_fail(p, 4, BPFKIT_JIT_BLIND)};
	if (!j[0] || !j[1])
		goto out;
	size_t len;
	char *maps = harness_read_file("/proc/self/maps", &len);
	if (!maps) {
		bpfkit_jit_free(j[0]);
		bpfkit_jit_free(j[1]);
		SKIP("/proc/self/maps is not readable");
	}
	size_t found = 0;
	for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned long lo, hi;
		char perms[8] = "";
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3)
			continue;
		CHECK_MSG(!(strchr(perms, 'w') && strchr(perms, 'x')),
			  "writable and executable mapping: %s", line);
		for (int b = 0; b < 2; b++) {
			size_t clen;
			uintptr_t code = (uintptr_t)jit_code(j[b], &clen);
			if (code >= lo && code < hi) {
				found++;
				CHECK_MSG(strncmp(perms, "r-x", 3) == 0,
					  "jit code mapping is %s, want r-x", perms);
			}
		}
	}
	CHECK_EQ(found, 2);
	free(maps);
	uint8_t pkt[14] = {[12] = 8};
	CHECK_EQ(bpfkit_jit_run(j[0], pkt, 14, 14), 1);
	CHECK_EQ(bpfkit_jit_run(j[1], pkt, 14, 14), 1);
out:
	bpfkit_jit_free(j[0]);
	bpfkit_jit_free(j[1]);
}

static bool contains32(const uint8_t *code, size_t len, uint32_t v)
{
	uint8_t b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};
	for (size_t i = 0; i + 4 <= len; i++)
		if (memcmp(code + i, b, 4) == 0)
			return true;
	return false;
}

/* With blinding, no constant of the program is in the code; without, they are. */
TEST(jit_blinding_hides_constants)
{
	NEED_JIT();
	static const uint32_t consts[] = {0x90909090, 0xcafebabe, 0x41414141, 0x0badc0de,
					  0x31c0c390, 0x7eadbeef};
	struct bpfkit_insn p[] = {
		I(LD_IMM, 0, 0, 0x90909090),
		I(ADD_K, 0, 0, 0xcafebabe),
		I(JEQ_K, 0, 8, 0x90909090),
		I(LDX_IMM, 0, 0, 0x41414141),
		I(MUL_K, 0, 0, 0x0badc0de),
		I(DIV_K, 0, 0, 0x31c0c390),
		I(JSET_K, 0, 1, 0x7eadbeef),
		I(LD_W_ABS, 0, 0, 0x41414141),
		I(LD_B_IND, 0, 0, 0x0badc0de),
		I(JGT_K, 0, 1, 0xcafebabe),
		I(RET_K, 0, 0, 0x90909090),
		I(RET_K, 0, 0, 0xcafebabe),
	};
	size_t n = sizeof p / sizeof p[0];
	for (int trial = 0; trial < 20; trial++) {
		struct bpfkit_jit *b = compile_or_fail(p, n, BPFKIT_JIT_BLIND);
		if (!b)
			return;
		size_t len;
		const uint8_t *code = jit_code(b, &len);
		for (size_t c = 0; c < sizeof consts / sizeof consts[0]; c++)
			CHECK_MSG(!contains32(code, len, consts[c]),
				  "blinded code contains 0x%08" PRIx32, consts[c]);
		CHECK_EQ(bpfkit_jit_run(b, NULL, 0, 0), bpfkit_interp(p, n, NULL, 0, 0, NULL));
		bpfkit_jit_free(b);
	}
	/* The test can fail: the plain code holds the constants verbatim. */
	struct bpfkit_jit *plain = compile_or_fail(p, n, 0);
	if (!plain)
		return;
	size_t len;
	const uint8_t *code = jit_code(plain, &len);
	CHECK(contains32(code, len, 0x90909090));
	CHECK(contains32(code, len, 0xcafebabe));
	bpfkit_jit_free(plain);
}

static size_t count_caplen_checks(const struct bpfkit_jit *j)
{
	size_t len, count = 0;
	const uint8_t *code = jit_code(j, &len);
	for (size_t i = 0; i + 1 < len; i++) /* cmp esi, imm8 / imm32 */
		count += (code[i] == 0x83 || code[i] == 0x81) && code[i + 1] == 0xfe;
	return count;
}

/* One bounds check for a block's absolute loads, none where every path checked already. */
TEST(jit_one_check_per_block)
{
	NEED_JIT();
	struct bpfkit_insn p[] = {
		I(LD_H_ABS, 0, 0, 12), I(LD_B_ABS, 0, 0, 23), I(ADD_K, 0, 0, 1),
		I(LD_H_ABS, 0, 0, 20), I(JEQ_K, 0, 2, 0x50),
		I(LD_B_ABS, 0, 0, 14), /* covered by the first block's check */
		I(RET_A, 0, 0, 0),     I(RET_K, 0, 0, 0),
	};
	size_t n = sizeof p / sizeof p[0];
	struct bpfkit_jit *j = compile_or_fail(p, n, 0);
	if (!j)
		return;
	CHECK_EQ(count_caplen_checks(j), 1);
	uint8_t pkt[24] = {[20] = 0, [21] = 0x50, [14] = 0x45};
	check_every_cut(j, p, n, pkt, sizeof pkt);
	bpfkit_jit_free(j);
}

/* The keep mask's cmov (`cmovcc r10d, r11d`: a deferred exit). */
static size_t count_deferred(const struct bpfkit_jit *j)
{
	size_t len, count = 0;
	const uint8_t *code = jit_code(j, &len);
	for (size_t i = 0; i + 3 < len; i++)
		count += code[i] == 0x45 && code[i + 1] == 0x0f && (code[i + 2] & 0xf0) == 0x40 &&
			 code[i + 3] == 0xd3;
	return count;
}

/*
 * The first test's exit is deferred when the code after it is a 32-bit
 * address compare (random bytes almost never pass it: the branch it leaves
 * is predictable, the protocol test's was not), and only then: not before a
 * 16-bit compare, nor a mask of fewer than 8 bits.  Verdicts equal the
 * interpreter's for every EtherType, address and cut length.
 */
TEST(jit_first_test_deferred)
{
	NEED_JIT();
	for (int v = 0; v < 6; v++) {
		/* v 0: ld; 1: ld, and #0xffffff00; 2: jt side ret #0; 3: ldh (no);
		   4: and #0x0f (no); 5: the first test's fall-through on jf */
		uint16_t load = v == 3 ? LD_H_ABS : LD_W_ABS;
		bool masked = v == 1 || v == 4;
		uint32_t mask = v == 4 ? 0x0f : 0xffffff00u;
		uint32_t addr = v == 3 ? 0x0a00 : v == 4 ? 0x01 : v == 1 ? 0x0a000000 : 0x0a000001;
		struct bpfkit_insn p[24];
		size_t n = 0, drop = masked ? 9 : 7;
		p[n++] = I(LD_H_ABS, 0, 0, 12);
		if (v == 5)   /* jeq 0x800 jt drop jf next  is  jne-style: test 0x86dd */
			p[n++] = I(JEQ_K, (uint8_t)(drop - 2), 0, 0x86dd);
		else if (v == 2)
			p[n++] = I(JSET_K, (uint8_t)(drop - 2), 0, 0x0001);
		else
			p[n++] = I(JEQ_K, 0, (uint8_t)(drop - 2), 0x800);
		p[n++] = I(load, 0, 0, 26);
		if (masked)
			p[n++] = I(AND_K, 0, 0, mask);
		p[n++] = I(JEQ_K, (uint8_t)(masked ? 3 : 2), 0, addr);
		p[n++] = I(load, 0, 0, 30);
		if (masked)
			p[n++] = I(AND_K, 0, 0, mask);
		p[n++] = I(JEQ_K, 0, 1, addr);
		p[n++] = I(RET_K, 0, 0, 0x40000);
		p[n++] = I(RET_K, 0, 0, 0);
		CHECK_EQ(n, drop + 1);
		/* unreachable padding: no exit is within the last 8 (the plain deferral rule) */
		for (int pad = 0; pad < 9; pad++)
			p[n++] = I(RET_K, 0, 0, 1);
		struct bpfkit_jit *j = compile_or_fail(p, n, 0);
		if (!j)
			return;
		CHECK_MSG((count_deferred(j) > 0) == (v != 3 && v != 4),
			  "variant %d: %zu deferred exits", v, count_deferred(j));
		uint8_t pkt[40];
		for (int q = 0; q < 16; q++) {
			for (size_t i = 0; i < sizeof pkt; i++)
				pkt[i] = (uint8_t)(i * 37 + q);
			pkt[12] = q & 1 ? 0x08 : 0x86;
			pkt[13] = q & 1 ? 0x00 : 0xdd;
			if (q & 2) {
				uint32_t a = addr, off = q & 4 ? 30 : 26;
				if (load == LD_H_ABS) {
					pkt[off] = (uint8_t)(a >> 8);
					pkt[off + 1] = (uint8_t)a;
				} else {
					for (int b = 0; b < 4; b++)
						pkt[off + (uint32_t)b] = (uint8_t)(a >> (24 - 8 * b));
				}
			}
			check_every_cut(j, p, n, pkt, sizeof pkt);
		}
		bpfkit_jit_free(j);
	}
}

/*
 * A program of at most 12 instructions defers every exit to `ret #0` beside
 * a fall-through (it is all tail): libpcap's `tcp[tcpflags] & (tcp-syn |
 * tcp-ack) == tcp-syn`, 12 instructions and 4 such exits, runs without a
 * branch on the packet's bytes.  With one more instruction only the exits
 * within the last 8 and after the last bounds check defer (here one).
 * Verdicts equal the interpreter's at every cut length.
 */
TEST(jit_short_programs_defer_all)
{
	NEED_JIT();
	for (int longer = 0; longer < 2; longer++) {
		struct bpfkit_insn p[13] = {
			I(LD_H_ABS, 0, 0, 12), I(JEQ_K, 0, 9, 0x800), I(LD_B_ABS, 0, 0, 23),
			I(JEQ_K, 0, 7, 6), I(LD_H_ABS, 0, 0, 20), I(JSET_K, 5, 0, 0x1fff),
			I(LDX_MSH, 0, 0, 14), I(LD_B_IND, 0, 0, 27), I(AND_K, 0, 0, 0x12),
			I(JEQ_K, 0, 1, 2), I(RET_K, 0, 0, 0x40000), I(RET_K, 0, 0, 0),
			I(RET_K, 0, 0, 1)};
		size_t n = longer ? 13 : 12;
		struct bpfkit_jit *j = compile_or_fail(p, n, 0);
		if (!j)
			return;
		CHECK_EQ(count_deferred(j), longer ? 1 : 4);
		uint8_t pkt[60] = {[12] = 0x08, [14] = 0x45, [23] = 6, [47] = 0x02};
		for (int v = 0; v < 4; v++) {
			pkt[23] = v & 1 ? 17 : 6;
			pkt[47] = v & 2 ? 0x12 : 0x02;
			check_every_cut(j, p, n, pkt, sizeof pkt);
		}
		bpfkit_jit_free(j);
	}
}

TEST(jit_rejects_invalid_programs)
{
	NEED_JIT();
	struct bpfkit_error err;
	struct bpfkit_jit *j = (struct bpfkit_jit *)&err; /* must be reset to NULL */
	struct bpfkit_insn anc[] = {I(LD_W_ABS, 0, 0, BPFKIT_SKF_AD_OFF), I(RET_A, 0, 0, 0)};
	CHECK_EQ(bpfkit_jit_compile(anc, 2, 0, NULL, &j, &err), -1);
	CHECK(j == NULL);
	CHECK_CONTAINS(err.message, "ancillary");
	struct bpfkit_insn far[] = {I(JA, 0, 0, 5), I(RET_A, 0, 0, 0)};
	CHECK_EQ(bpfkit_jit_compile(far, 2, 0, NULL, &j, &err), -1);
	CHECK_EQ(err.insn, 0);
	struct bpfkit_insn noret[] = {I(LD_LEN, 0, 0, 0)};
	CHECK_EQ(bpfkit_jit_compile(noret, 1, 0, NULL, &j, &err), -1);
	CHECK_EQ(bpfkit_jit_compile(NULL, 0, 0, NULL, &j, &err), -1);
	struct bpfkit_insn ok[] = {I(RET_K, 0, 0, 3)};
	CHECK_EQ(bpfkit_jit_compile(ok, 1, 0x80, NULL, &j, &err), -1);
	CHECK_CONTAINS(err.message, "flags");
	CHECK_EQ(bpfkit_jit_compile(ok, 1, 0, NULL, &j, &err), 0);
	CHECK_EQ(bpfkit_jit_run(j, NULL, 0, 0), 3);
	bpfkit_jit_free(j);
	bpfkit_jit_free(NULL);
}

TEST(jit_allocation_failures)
{
	NEED_JIT();
	struct bpfkit_insn p[] = {I(LD_H_ABS, 0, 0, 12), I(JEQ_K, 0, 1, 0x800), I(RET_K, 0, 0, 1),
				  I(RET_K, 0, 0, 0)};
	bool succeeded = false;
	for (long at = 0; at < 50 && !succeeded; at++) {
		struct harness_alloc c = {0, at, 0};
		struct bpfkit_alloc a = {harness_alloc_fn, &c};
		struct bpfkit_jit *j = NULL;
		struct bpfkit_error err;
		int rc = bpfkit_jit_compile(p, 4, BPFKIT_JIT_BLIND, &a, &j, &err);
		if (rc == 0) {
			succeeded = true;
			uint8_t pkt[14] = {[12] = 8};
			CHECK_EQ(bpfkit_jit_run(j, pkt, 14, 14), 1);
			bpfkit_jit_free(j);
		} else {
			CHECK(j == NULL);
			CHECK_CONTAINS(err.message, "memory");
		}
		CHECK_MSG(c.live == 0, "failing allocation %ld leaks %ld blocks", at, c.live);
	}
	CHECK(succeeded);
}

/*
 * The command's -B (run, filter, bench): the jit compiled with constant
 * blinding gives the same verdicts as without and as interp; with the
 * interpreters -B is accepted and changes nothing.
 */
static int bk_cmd(char **out, char **err, const char *args)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "%s %s", harness_bin(), args);
	return harness_run(cmd, out, err);
}

TEST(jit_cli_blind)
{
	NEED_JIT();
	char dir[] = "/tmp/bpfkit-jit-cli-XXXXXX";
	CHECK(mkdtemp(dir) != NULL);
	char prog[128], cap[128], args[600];
	snprintf(prog, sizeof prog, "%s/prog.ddd", dir);
	snprintf(cap, sizeof cap, "%s/gen.pcap", dir);
	char *out = NULL, *err = NULL;
	snprintf(args, sizeof args, "compile -f ddd -o %s 'tcp port 80 or udp port 53'", prog);
	CHECK_EQ(bk_cmd(&out, &err, args), 0);
	free(out), free(err);
	snprintf(args, sizeof args, "gen -n 3000 -w %s", cap);
	CHECK_EQ(bk_cmd(&out, &err, args), 0);
	free(out), free(err);

	/* run: a TCP port-80 packet (accepted) and the same with port 81 (rejected). */
	static const char *const hex[] = {
		"001122334455 665544332211 0800 45000028000100004006000a0a0000010a000002"
		"30390050000000010000000050020000 00000000",
		"001122334455 665544332211 0800 45000028000100004006000a0a0000010a000002"
		"30390051000000010000000050020000 00000000",
	};
	static const char *const want[] = {"262144\n", "0\n"};
	static const char *const modes[] = {"-e interp", "-e jit", "-e jit -B", "-B -e fast",
					    "--blind -e jit"};
	for (size_t h = 0; h < 2; h++)
		for (size_t m = 0; m < sizeof modes / sizeof modes[0]; m++) {
			snprintf(args, sizeof args, "run %s -p %s -x '%s'", modes[m], prog, hex[h]);
			CHECK_EQ(bk_cmd(&out, &err, args), 0);
			CHECK_MSG(out && strcmp(out, want[h]) == 0, "run %s: got '%s', want '%s'",
				  modes[m], out ? out : "", want[h]);
			free(out), free(err);
		}

	/* filter: the same count blinded, plain, and with interp. */
	char counts[3][64] = {"", "", ""};
	static const char *const fmodes[] = {"-e interp", "-e jit", "-e jit -B"};
	for (size_t m = 0; m < 3; m++) {
		snprintf(args, sizeof args, "filter -c %s -r %s 'tcp port 80 or udp port 53'",
			 fmodes[m], cap);
		CHECK_EQ(bk_cmd(&out, &err, args), 0);
		snprintf(counts[m], sizeof counts[m], "%s", out ? out : "");
		free(out), free(err);
	}
	CHECK(atoi(counts[0]) > 0);
	CHECK_STR(counts[1], counts[0]);
	CHECK_STR(counts[2], counts[0]);

	/* bench: the blinded jit agrees with interp on every packet (else it is left out). */
	snprintf(args, sizeof args, "bench -B -R 1 --tsv -r %s 'tcp port 80'", cap);
	CHECK_EQ(bk_cmd(&out, &err, args), 0);
	CHECK_CONTAINS(out ? out : "", "tcp port 80\tjit\t");
	CHECK(err && !strstr(err, "disagrees"));
	free(out), free(err);

	snprintf(args, sizeof args, "rm -rf '%s'", dir);
	CHECK_EQ(system(args), 0);
}
