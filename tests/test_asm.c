/*
 * test_asm.c - the bpf_asm assembler: every mnemonic and addressing mode to
 * its literal code, ancillary names, labels, pseudo-op swaps, comments,
 * number bases, the .insn directive, far jumps (followed through their
 * trampolines to the intended label), errors with line/column/span, the
 * kernel documentation's example programs, and allocation failures.
 */
#include "harness.h"

#include "bpfkit.h"

#include <stdlib.h>

static int assemble(const char *src, struct bpfkit_prog *p, struct bpfkit_error *e)
{
	return bpfkit_asm(src, strlen(src), NULL, p, e);
}

struct insn_case {
	const char *src;
	uint16_t code;
	uint8_t jt, jf;
	uint32_t k;
};

/* Assembles each case and compares its first instruction. */
static void check_cases(const struct insn_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct bpfkit_prog p = {0};
		struct bpfkit_error e;
		if (assemble(c[i].src, &p, &e) != 0) {
			CHECK_MSG(0, "\"%s\": %s (col %d)", c[i].src, e.message, e.column);
			continue;
		}
		const struct bpfkit_insn *in = &p.insns[0];
		CHECK_MSG(in->code == c[i].code && in->jt == c[i].jt && in->jf == c[i].jf &&
				  in->k == c[i].k,
			  "\"%s\": got {0x%02x,%u,%u,0x%x}, want {0x%02x,%u,%u,0x%x}", c[i].src,
			  in->code, in->jt, in->jf, in->k, c[i].code, c[i].jt, c[i].jf, c[i].k);
		bpfkit_prog_free(NULL, &p);
	}
}

TEST(asm_loads_and_stores)
{
	static const struct insn_case c[] = {
		{"ld [12]", 0x20, 0, 0, 12},
		{"ldh [12]", 0x28, 0, 0, 12},
		{"ldb [23]", 0x30, 0, 0, 23},
		{"ld [x + 4]", 0x40, 0, 0, 4},
		{"ldh [x+14]", 0x48, 0, 0, 14},
		{"ldb [%x + 9]", 0x50, 0, 0, 9},
		{"ld [%x+0]", 0x40, 0, 0, 0},
		{"ld #len", 0x80, 0, 0, 0},
		{"ld len", 0x80, 0, 0, 0},
		{"ld #42", 0x00, 0, 0, 42},
		{"ldi #42", 0x00, 0, 0, 42},
		{"ldi 42", 0x00, 0, 0, 42},
		{"ld M[3]", 0x60, 0, 0, 3},
		{"ld m[15]", 0x60, 0, 0, 15},
		{"ldx #7", 0x01, 0, 0, 7},
		{"ldxi #7", 0x01, 0, 0, 7},
		{"ldxi 7", 0x01, 0, 0, 7},
		{"ldx M[2]", 0x61, 0, 0, 2},
		{"ldx #len", 0x81, 0, 0, 0},
		{"ldx len", 0x81, 0, 0, 0},
		{"ldxb 4*([14]&0xf)", 0xb1, 0, 0, 14},
		{"ldxb 4 * ( [ 14 ] & 0xf )", 0xb1, 0, 0, 14},
		{"ldx 4*([0x20]&15)", 0xb1, 0, 0, 32},
		{"st M[5]", 0x02, 0, 0, 5},
		{"stx M[6]", 0x03, 0, 0, 6},
		{"LDH [12]", 0x28, 0, 0, 12},
		{"Ld [X + 1]", 0x40, 0, 0, 1},
	};
	check_cases(c, sizeof c / sizeof c[0]);
}

TEST(asm_alu_misc_ret)
{
	static const struct insn_case c[] = {
		{"add #1", 0x04, 0, 0, 1}, {"sub #2", 0x14, 0, 0, 2}, {"mul #3", 0x24, 0, 0, 3},
		{"div #4", 0x34, 0, 0, 4}, {"or #5", 0x44, 0, 0, 5}, {"and #6", 0x54, 0, 0, 6},
		{"lsh #7", 0x64, 0, 0, 7}, {"rsh #8", 0x74, 0, 0, 8}, {"mod #9", 0x94, 0, 0, 9},
		{"xor #10", 0xa4, 0, 0, 10}, {"add x", 0x0c, 0, 0, 0}, {"sub %x", 0x1c, 0, 0, 0},
		{"mul x", 0x2c, 0, 0, 0}, {"div %x", 0x3c, 0, 0, 0}, {"or x", 0x4c, 0, 0, 0},
		{"and x", 0x5c, 0, 0, 0}, {"lsh x", 0x6c, 0, 0, 0}, {"rsh %x", 0x7c, 0, 0, 0},
		{"mod x", 0x9c, 0, 0, 0}, {"xor X", 0xac, 0, 0, 0}, {"neg", 0x84, 0, 0, 0},
		{"tax", 0x07, 0, 0, 0}, {"txa", 0x87, 0, 0, 0}, {"ret #0", 0x06, 0, 0, 0},
		{"ret #65535", 0x06, 0, 0, 65535}, {"ret a", 0x16, 0, 0, 0},
		{"ret %a", 0x16, 0, 0, 0}, {"RET A", 0x16, 0, 0, 0},
	};
	check_cases(c, sizeof c / sizeof c[0]);
}

TEST(asm_ancillary)
{
	/* Offsets after SKF_AD_OFF, as the kernel's SKF_AD_* constants give them. */
	static const struct {
		const char *name;
		uint32_t off;
	} anc[] = {
		{"proto", 0},   {"type", 4},      {"ifidx", 8},       {"nla", 12},
		{"nlan", 16},   {"mark", 20},     {"queue", 24},      {"hatype", 28},
		{"rxhash", 32}, {"cpu", 36},      {"vlan_tci", 44},   {"vlan_avail", 48},
		{"vlan_pr", 48}, {"poff", 52},    {"rand", 56},       {"vlan_tpid", 60},
	};
	static const struct {
		const char *fmt;
		uint16_t code;
	} forms[] = {
		{"ld #%s", 0x20}, {"ld %s", 0x20}, {"ldh #%s", 0x28}, {"ldh %s", 0x28},
		{"ldb #%s", 0x30}, {"ldb %s", 0x30},
	};
	for (size_t i = 0; i < sizeof anc / sizeof anc[0]; i++)
		for (size_t j = 0; j < sizeof forms / sizeof forms[0]; j++) {
			char src[64];
			snprintf(src, sizeof src, forms[j].fmt, anc[i].name);
			struct insn_case c = {src, forms[j].code, 0, 0, 0xfffff000u + anc[i].off};
			check_cases(&c, 1);
		}
	struct insn_case upper = {"ld #PROTO", 0x20, 0, 0, 0xfffff000u};
	check_cases(&upper, 1);
}

TEST(asm_jumps_and_swaps)
{
	static const struct insn_case c[] = {
		/* two labels: jt and jf */
		{"jeq #5, Lt, Lf\nLf: ret #0\nLt: ret #1", 0x15, 1, 0, 5},
		{"jgt #5, Lt, Lf\nLf: ret #0\nLt: ret #1", 0x25, 1, 0, 5},
		{"jge #5, Lt, Lf\nLf: ret #0\nLt: ret #1", 0x35, 1, 0, 5},
		{"jset #5, Lt, Lf\nLf: ret #0\nLt: ret #1", 0x45, 1, 0, 5},
		{"jeq x, Lt, Lf\nLf: ret #0\nLt: ret #1", 0x1d, 1, 0, 0},
		{"jgt %x, Lt, Lf\nLf: ret #0\nLt: ret #1", 0x2d, 1, 0, 0},
		{"jge x, Lt, Lf\nLf: ret #0\nLt: ret #1", 0x3d, 1, 0, 0},
		{"jset %x, Lt, Lf\nLf: ret #0\nLt: ret #1", 0x4d, 1, 0, 0},
		/* one label: jt = label, jf = next */
		{"jeq #5, Lt\nret #0\nLt: ret #1", 0x15, 1, 0, 5},
		{"jgt x, Lt\nret #0\nLt: ret #1", 0x2d, 1, 0, 0},
		{"jge #5, Lt\nret #0\nLt: ret #1", 0x35, 1, 0, 5},
		{"jset #5, Lt\nret #0\nLt: ret #1", 0x45, 1, 0, 5},
		/* pseudo-ops: jne = jeq, jlt = jge, jle = jgt, targets swapped */
		{"jne #5, Lf\nret #0\nLf: ret #1", 0x15, 0, 1, 5},
		{"jneq #5, Lf\nret #0\nLf: ret #1", 0x15, 0, 1, 5},
		{"jne x, Lf\nret #0\nLf: ret #1", 0x1d, 0, 1, 0},
		{"jlt #5, Lf\nret #0\nLf: ret #1", 0x35, 0, 1, 5},
		{"jlt %x, Lf\nret #0\nLf: ret #1", 0x3d, 0, 1, 0},
		{"jle #5, Lf\nret #0\nLf: ret #1", 0x25, 0, 1, 5},
		{"jle x, Lf\nret #0\nLf: ret #1", 0x2d, 0, 1, 0},
		{"jne #5, La, Lb\nLb: ret #0\nLa: ret #1", 0x15, 0, 1, 5},
		/* unconditional */
		{"ja Lx\nret #0\nLx: ret #1", 0x05, 0, 0, 1},
		{"jmp Lx\nret #0\nret #0\nLx: ret #1", 0x05, 0, 0, 2},
		{"ja Lx\nLx: ret #1", 0x05, 0, 0, 0},
	};
	check_cases(c, sizeof c / sizeof c[0]);
}

TEST(asm_labels)
{
	struct bpfkit_prog p = {0};
	struct bpfkit_error e;
	const char *src = "start:\n"
			  "\tldh [12]\n"
			  "\tjeq #0x800, v4, other\n"
			  "v4:\tldb [23]\n"
			  "\tjeq #6, tcp\n"
			  "\tja other\n"
			  "tcp: twice:\n"
			  "  ret #1\n"
			  "other :\n"
			  "\n"
			  "x: ret #0\n";
	if (assemble(src, &p, &e) != 0) {
		CHECK_MSG(0, "%s at %d:%d", e.message, e.line, e.column);
		return;
	}
	CHECK_EQ(p.len, 7);
	CHECK_EQ(p.insns[1].jt, 0);
	CHECK_EQ(p.insns[1].jf, 4); /* other = index 6 */
	CHECK_EQ(p.insns[3].jt, 1);
	CHECK_EQ(p.insns[3].jf, 0);
	CHECK_EQ(p.insns[4].code, 0x05);
	CHECK_EQ(p.insns[4].k, 1);
	bpfkit_prog_free(NULL, &p);

	/* Labels are case-sensitive; mnemonics are not. */
	CHECK(assemble("JEQ #1, Ab, ab\nab: ret #0\nAb: ret #1", &p, &e) == 0);
	if (p.len == 3) {
		CHECK_EQ(p.insns[0].jt, 1);
		CHECK_EQ(p.insns[0].jf, 0);
	}
	bpfkit_prog_free(NULL, &p);
}

TEST(asm_comments)
{
	struct bpfkit_prog p = {0};
	struct bpfkit_error e;
	const char *src = "# a hash comment at the start of a line\n"
			  "   # indented hash comment\n"
			  "#\n"
			  "#no_blank_after_the_hash: ld #1\n"
			  "\t#5 is not an operand here\n"
			  "ld #5 # trailing hash comment\n"
			  "ld #len\t#\ttab after the hash\n"
			  "ld #proto #\n"
			  "; semicolon comment\n"
			  "add #1 ; after an instruction\n"
			  "/* block */ add #2 /* another */\n"
			  "/* a block comment\n"
			  "   over ; several # lines */\n"
			  "add /* inside */ #3\n"
			  "ret a";
	if (assemble(src, &p, &e) != 0) {
		CHECK_MSG(0, "%s at %d:%d", e.message, e.line, e.column);
		return;
	}
	static const struct bpfkit_insn want[] = {
		{0x00, 0, 0, 5}, {0x80, 0, 0, 0}, {0x20, 0, 0, 0xfffff000u}, {0x04, 0, 0, 1},
		{0x04, 0, 0, 2}, {0x04, 0, 0, 3}, {0x16, 0, 0, 0},
	};
	CHECK_EQ(p.len, sizeof want / sizeof want[0]);
	if (p.len == sizeof want / sizeof want[0])
		CHECK(memcmp(p.insns, want, sizeof want) == 0);
	bpfkit_prog_free(NULL, &p);

	/* A block comment ending a line still counts lines for later errors. */
	CHECK(assemble("/* one\ntwo\nthree */ ld [1]\nbogus", &p, &e) != 0);
	CHECK_EQ(e.line, 4);
	CHECK_STR(e.message, "unknown mnemonic 'bogus'");
}

TEST(asm_numbers)
{
	static const struct insn_case c[] = {
		{"ret #0x1F", 0x06, 0, 0, 31},
		{"ret #0X1f", 0x06, 0, 0, 31},
		{"ret #017", 0x06, 0, 0, 15},
		{"ret #0b101", 0x06, 0, 0, 5},
		{"ret #0B11", 0x06, 0, 0, 3},
		{"ret #0", 0x06, 0, 0, 0},
		{"ret #00", 0x06, 0, 0, 0},
		{"ret #4294967295", 0x06, 0, 0, 0xffffffffu},
		{"ret #0xffffffff", 0x06, 0, 0, 0xffffffffu},
		{"ret #-1", 0x06, 0, 0, 0xffffffffu},
		{"ret #-2147483648", 0x06, 0, 0, 0x80000000u},
		{"ret #+7", 0x06, 0, 0, 7},
		{"ld [x + -4]", 0x40, 0, 0, 0xfffffffcu},
		{"ldh [-1048576]", 0x28, 0, 0, 0xfff00000u},
	};
	check_cases(c, sizeof c / sizeof c[0]);
}

TEST(asm_insn_directive)
{
	static const struct insn_case c[] = {
		{".insn 0x28, 0, 0, 12", 0x28, 0, 0, 12},
		{".insn 0x0e, 0, 0, 0", 0x0e, 0, 0, 0},
		{".INSN 65535, 255, 255, 0xffffffff", 0xffff, 255, 255, 0xffffffffu},
		{".insn 0x15, 3, 200, -1", 0x15, 3, 200, 0xffffffffu}, /* targets outside: raw */
		{".insn 0x15, 1, 0, 7\nret #0\nret #1", 0x15, 1, 0, 7},
	};
	check_cases(c, sizeof c / sizeof c[0]);

	/* A .insn jump keeps its target when a trampoline is inserted in between. */
	char *src = malloc(16384);
	size_t n = (size_t)sprintf(src, ".insn 0x15, 0, 1, 9\njeq #1, far\nret #100\n");
	for (int i = 0; i < 300; i++)
		n += (size_t)sprintf(src + n, "add #1\n");
	sprintf(src + n, "far: ret #200\n");
	struct bpfkit_prog p = {0};
	struct bpfkit_error e;
	if (assemble(src, &p, &e) != 0) {
		CHECK_MSG(0, "%s", e.message);
	} else {
		/* .insn; jeq; trampoline; ret #100 ... */
		CHECK_EQ(p.len, 305);
		CHECK_EQ(p.insns[0].jf, 2);
		CHECK_EQ(p.insns[3].k, 100);
		CHECK_EQ(p.insns[2].code, 0x05);
	}
	bpfkit_prog_free(NULL, &p);
	free(src);
}

TEST(asm_line_endings)
{
	struct bpfkit_prog p = {0};
	struct bpfkit_error e;
	CHECK(assemble("ldh [12]\r\njeq #1, ok\r\nret #0\r\nok: ret #1\r\n", &p, &e) == 0);
	CHECK_EQ(p.len, 4);
	if (p.len == 4)
		CHECK_EQ(p.insns[1].jt, 1);
	bpfkit_prog_free(NULL, &p);
	CHECK(assemble("ret #3", &p, &e) == 0); /* no final newline */
	CHECK_EQ(p.len, 1);
	bpfkit_prog_free(NULL, &p);
	CHECK(assemble("\n\n   \n\tret #3\n\n", &p, &e) == 0);
	CHECK_EQ(p.len, 1);
	bpfkit_prog_free(NULL, &p);
	/* An explicit length: bytes past it are not read. */
	CHECK(bpfkit_asm("ret #1\nbogus", 7, NULL, &p, &e) == 0);
	CHECK_EQ(p.len, 1);
	bpfkit_prog_free(NULL, &p);
}

/* ---- far jumps ---- */

#define MAXLEN 20000

/* Follows jumps from the source position `from` (taking a jt/jf offset) to
 * the first instruction that is not a `ja`; -1 when a step leaves the program. */
static long follow(const struct bpfkit_prog *p, size_t from, uint32_t off)
{
	size_t pc = from + 1 + off;
	for (int guard = 0; guard < 1000; guard++) {
		if (pc >= p->len)
			return -1;
		if (p->insns[pc].code != 0x05)
			return (long)pc;
		if (p->insns[pc].k >= p->len - pc - 1)
			return -1;
		pc = pc + 1 + p->insns[pc].k;
	}
	return -1;
}

/* Every jump of the program lands inside it. */
static void check_in_range(const struct bpfkit_prog *p)
{
	for (size_t i = 0; i < p->len; i++) {
		const struct bpfkit_insn *in = &p->insns[i];
		if ((in->code & 7) != 5)
			continue;
		if (in->code == 0x05)
			CHECK_MSG(in->k < p->len - i - 1, "ja at %zu out of range", i);
		else
			CHECK_MSG(in->jt < p->len - i - 1 && in->jf < p->len - i - 1,
				  "jump at %zu out of range", i);
	}
}

/*
 * Checks one conditional jump identified by its unique k: its true side
 * reaches `ret #want_t`, its false side `ret #want_f` (or, for want_f ==
 * 0, the instruction `add #next` written right after it in the source).
 */
static void check_jump(const struct bpfkit_prog *p, uint32_t id, uint32_t want_t,
		       uint32_t want_f)
{
	for (size_t i = 0; i < p->len; i++) {
		const struct bpfkit_insn *in = &p->insns[i];
		if ((in->code & 7) != 5 || in->code == 0x05 || in->k != id)
			continue;
		long t = follow(p, i, in->jt), f = follow(p, i, in->jf);
		CHECK_MSG(t >= 0 && p->insns[t].code == 0x06 && p->insns[t].k == want_t,
			  "jump #%u: true side lands on %ld", id, t);
		CHECK_MSG(f >= 0 && p->insns[f].code == 0x06 && p->insns[f].k == want_f,
			  "jump #%u: false side lands on %ld (want ret #%u)", id, f, want_f);
		return;
	}
	CHECK_MSG(0, "jump #%u not found", id);
}

static size_t filler(char *src, size_t n, int count)
{
	for (int i = 0; i < count; i++)
		n += (size_t)sprintf(src + n, "add #1\n");
	return n;
}

TEST(asm_far_both_targets)
{
	char *src = malloc(MAXLEN * 16);
	size_t n = 0;
	n += (size_t)sprintf(src + n, "ld [0]\njeq #7, t1, f1\n");
	n = filler(src, n, 300);
	n += (size_t)sprintf(src + n, "t1: ret #1001\n");
	n = filler(src, n, 600);
	n += (size_t)sprintf(src + n, "f1: ret #1002\n");
	struct bpfkit_prog p = {0};
	struct bpfkit_error e;
	if (assemble(src, &p, &e) != 0) {
		CHECK_MSG(0, "%s", e.message);
	} else {
		CHECK_EQ(p.len, 906); /* 904 + two trampolines */
		check_in_range(&p);
		check_jump(&p, 7, 1001, 1002);
	}
	bpfkit_prog_free(NULL, &p);

	/* Boundary: 255 ahead needs no trampoline, 256 does. */
	for (int gap = 254; gap <= 257; gap++) {
		n = (size_t)sprintf(src, "jeq #9, far, near\nnear: ret #5\n");
		n = filler(src, n, gap - 1);
		sprintf(src + n, "far: ret #6\n");
		if (assemble(src, &p, &e) != 0) {
			CHECK_MSG(0, "gap %d: %s", gap, e.message);
			continue;
		}
		CHECK_EQ(p.len, (size_t)gap + 2 + (gap > 255));
		if (gap <= 255)
			CHECK_EQ(p.insns[0].jt, gap);
		check_in_range(&p);
		check_jump(&p, 9, 6, 5);
		bpfkit_prog_free(NULL, &p);
	}

	/*
	 * The false side's trampoline (placed right after the jump) pushes a
	 * true side that was exactly 255 ahead out of reach: it needs one too.
	 */
	for (int gap = 254; gap <= 256; gap++) {
		n = (size_t)sprintf(src, "jeq #9, tA, fB\n");
		n = filler(src, n, gap);
		n += (size_t)sprintf(src + n, "tA: ret #6\n");
		n = filler(src, n, 300);
		sprintf(src + n, "fB: ret #7\n");
		if (assemble(src, &p, &e) != 0) {
			CHECK_MSG(0, "gap %d: %s", gap, e.message);
			continue;
		}
		CHECK_EQ(p.len, (size_t)gap + 303 + (gap >= 255 ? 2 : 1));
		check_in_range(&p);
		check_jump(&p, 9, 6, 7);
		bpfkit_prog_free(NULL, &p);
	}

	/* ja takes a 32-bit offset: no trampoline. */
	n = (size_t)sprintf(src, "ja end\n");
	n = filler(src, n, 5000);
	sprintf(src + n, "end: ret #0\n");
	CHECK(assemble(src, &p, &e) == 0);
	CHECK_EQ(p.len, 5002);
	if (p.len)
		CHECK_EQ(p.insns[0].k, 5000);
	bpfkit_prog_free(NULL, &p);
	free(src);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * Random programs: interleaved conditional jumps (one- and two-label forms,
 * pseudo-ops included) to labels anywhere ahead, gaps around the 255 limit
 * so insertions push near jumps out of reach (the relaxation must iterate).
 */
TEST(asm_far_random)
{
	char *src = malloc(MAXLEN * 32);
	enum { NLABELS = 24, NJUMPS = 60 };
	for (uint64_t seed = 1; seed <= 40; seed++) {
		uint64_t s = seed * 0x9e3779b97f4a7c15u;
		/* Labels L0, L1 ... appear in order; jumps pick labels still ahead. */
		int next_label = 0, jumps = 0;
		struct {
			uint32_t id, want_t, want_f;
		} expect[NJUMPS];
		size_t n = 0;
		/* Each label's ret value is 5000 + its number. */
		while (next_label < NLABELS) {
			bool jump = jumps < NJUMPS && (rng_next(&s) % 3 != 0 ||
						       next_label == NLABELS - 1);
			if (!jump) {
				n += (size_t)sprintf(src + n, "L%d: ret #%d\n", next_label,
						     5000 + next_label);
				next_label++;
				n = filler(src, n, (int)(rng_next(&s) % 3 == 0
								 ? rng_next(&s) % 20
								 : 200 + rng_next(&s) % 120));
				continue;
			}
			int a = next_label + (int)(rng_next(&s) % (NLABELS - next_label));
			int b = next_label + (int)(rng_next(&s) % (NLABELS - next_label));
			uint32_t id = 100 + (uint32_t)jumps;
			unsigned form = (unsigned)(rng_next(&s) % 4);
			static const char *const two[] = {"jeq", "jgt", "jge", "jset"};
			if (form == 0) {
				n += (size_t)sprintf(src + n, "%s #%u, L%d, L%d\n",
						     two[rng_next(&s) % 4], id, a, b);
				expect[jumps].want_t = 5000 + (uint32_t)a;
				expect[jumps].want_f = 5000 + (uint32_t)b;
			} else if (form == 1) {
				n += (size_t)sprintf(src + n, "jeq #%u, L%d\nret #%u\n", id, a,
						     9000 + id);
				expect[jumps].want_t = 5000 + (uint32_t)a;
				expect[jumps].want_f = 9000 + id;
			} else {
				static const char *const sw[] = {"jne", "jlt", "jle"};
				n += (size_t)sprintf(src + n, "%s #%u, L%d\nret #%u\n",
						     sw[form - 2 + rng_next(&s) % 2], id, a,
						     9000 + id);
				expect[jumps].want_t = 9000 + id;
				expect[jumps].want_f = 5000 + (uint32_t)a;
			}
			expect[jumps].id = id;
			jumps++;
			n = filler(src, n, (int)(rng_next(&s) % 60));
		}
		struct bpfkit_prog p = {0};
		struct bpfkit_error e;
		if (assemble(src, &p, &e) != 0) {
			CHECK_MSG(0, "seed %llu: %s at %d:%d", (unsigned long long)seed, e.message,
				  e.line, e.column);
			continue;
		}
		check_in_range(&p);
		for (int j = 0; j < jumps; j++)
			check_jump(&p, expect[j].id, expect[j].want_t, expect[j].want_f);
		/* The source instructions appear in order, only trampolines added. */
		size_t adds = 0, src_adds = 0;
		for (size_t i = 0; i < p.len; i++)
			adds += p.insns[i].code == 0x04;
		for (const char *q = src; (q = strstr(q, "add #1")) != NULL; q++)
			src_adds++;
		CHECK_EQ(adds, src_adds);
		bpfkit_prog_free(NULL, &p);
		if (harness_failures())
			break;
	}
	free(src);
}

/* ---- errors ---- */

struct err_case {
	const char *src;
	int line, col, span;
	const char *msg; /* a prefix of the message */
};

TEST(asm_errors)
{
	static const struct err_case c[] = {
		{"ld #1\n  jeq #1, dorp\nret #0", 2, 11, 4, "unknown label 'dorp'"},
		{"ld #1\n  jeq #1, ok, dorp\nok: ret #0", 2, 15, 4, "unknown label 'dorp'"},
		{"ja nowhere\nret #0", 1, 4, 7, "unknown label 'nowhere'"},
		{"aa: ret #0\naa: ret #1", 2, 1, 2, "duplicate label 'aa'"},
		{"  foo #1", 1, 3, 3, "unknown mnemonic 'foo'"},
		{"ret #0\nldhx [1]", 2, 1, 4, "unknown mnemonic 'ldhx'"},
		{"ldx [12]", 1, 5, 4, "bad operand for 'ldx'"},
		{"ldh #len", 1, 5, 4, "bad operand for 'ldh'"},
		{"ld 5", 1, 4, 1, "bad operand for 'ld'"},
		{"st #1", 1, 4, 2, "bad operand for 'st'"},
		{"neg x", 1, 5, 1, "bad operand for 'neg'"},
		{"jeq a, L1\nL1: ret #0", 1, 5, 1, "bad operand for 'jeq'"},
		{"ldx #proto", 1, 5, 6, "bad operand for 'ldx'"},
		{"ret x", 1, 5, 1, "'ret x' is not a classic BPF instruction"},
		{"ld", 1, 3, 1, "'ld' needs an operand"},
		{"ld #bogus", 1, 5, 5, "unknown extension '#bogus'"},
		{"ld bogus", 1, 4, 5, "unknown operand 'bogus'"},
		{"ld [12", 1, 7, 1, "expected ']', found end of input"},
		{"ld [x 12]", 1, 7, 2, "expected '+', found '12'"},
		{"ldxb 3*([14]&0xf)", 1, 6, 12, "only 4*([k]&0xf) is supported"},
		{"ret #0x100000000", 1, 6, 11, "number '0x100000000' out of range"},
		{"ret #4294967296", 1, 6, 10, "number '4294967296' out of range"},
		{"ret #-2147483649", 1, 6, 11, "number '-2147483649' out of range"},
		{"ret #09", 1, 6, 2, "bad number '09'"},
		{"ret #0x", 1, 6, 2, "bad number '0x'"},
		{"ret #0b2", 1, 6, 3, "bad number '0b2'"},
		{"ret #12ab", 1, 6, 4, "bad number '12ab'"},
		{"ret #- 1", 1, 8, 1, "expected digits after '-'"},
		{".insn 0x10000, 0, 0, 0", 1, 7, 7, "number '0x10000' out of range"},
		{".insn 0x15, 256, 0, 0", 1, 13, 3, "number '256' out of range"},
		{".insn 0x15, -1, 0, 0", 1, 13, 2, "number '-1' out of range"},
		{".insn 6, 0, 0", 1, 14, 1, "expected ',', found end of input"},
		{".byte 1", 1, 1, 5, "unknown directive '.byte'"},
		{"top: ld #1\njeq #1, top, nx\nnx: ret #0", 2, 9, 3, "backward jump to 'top'"},
		{"ld #1\nback: jeq #1, back\nret #0", 2, 15, 4, "backward jump to 'back'"},
		{"L0: ret #0\nja L0", 2, 4, 2, "backward jump to 'L0'"},
		{"jeq #1, end\nend:", 1, 9, 3, "label 'end' is past the last instruction"},
		{"ld [12] ret #0", 1, 9, 3, "unexpected 'ret' after the instruction"},
		{"ld [12] @", 1, 9, 1, "unexpected character '@'"},
		{"ld [12]\n\x01", 2, 1, 1, "unexpected character '\\x01'"},
		{"ret #1 /* open", 1, 8, 2, "unterminated comment"},
		{", ret #0", 1, 1, 1, "expected an instruction or a label, found ','"},
		{"jeq #1 L1\nL1: ret #0", 1, 8, 2, "expected ',', found 'L1'"},
		{"jeq #1, 5\nret #0", 1, 9, 1, "expected a label, found '5'"},
		{"ret %y", 1, 6, 1, "expected 'x' or 'a' after '%'"},
		{"ld [%a + 1]", 1, 6, 1, "expected 'x' after '%'"},
		/* the first error in the source wins */
		{"foo\nld @", 1, 1, 3, "unknown mnemonic 'foo'"},
		{"ld @ bar", 1, 4, 1, "unexpected character '@'"},
		{"jeq #1, nope\nbad bad", 2, 1, 3, "unknown mnemonic 'bad'"},
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		struct bpfkit_prog p = {(void *)1, 77};
		struct bpfkit_error e;
		int rc = assemble(c[i].src, &p, &e);
		CHECK_MSG(rc == -1, "\"%s\" assembled", c[i].src);
		CHECK_MSG(p.insns == NULL && p.len == 0, "\"%s\": output not emptied", c[i].src);
		if (rc != -1)
			continue;
		bool same_place = e.line == c[i].line && e.column == c[i].col &&
				  e.span == c[i].span;
		CHECK_MSG(strncmp(e.message, c[i].msg, strlen(c[i].msg)) == 0 && same_place,
			  "\"%s\": got %d:%d+%d \"%s\", want %d:%d+%d \"%s\"", c[i].src, e.line,
			  e.column, e.span, e.message, c[i].line, c[i].col, c[i].span, c[i].msg);
	}
}

TEST(asm_errors_without_position)
{
	static const char *const empty[] = {"", "\n\n", "; nothing\n# here\n/* at all */",
					    "lonely:\n"};
	for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
		struct bpfkit_prog p = {(void *)1, 3};
		struct bpfkit_error e;
		CHECK(assemble(empty[i], &p, &e) == -1);
		CHECK_STR(e.message, "no instructions");
		CHECK(p.insns == NULL && p.len == 0);
	}
	/* A NUL byte, in code or in a comment. */
	struct bpfkit_prog p;
	struct bpfkit_error e;
	CHECK(bpfkit_asm("ret #1\0", 7, NULL, &p, &e) == -1);
	CHECK_STR(e.message, "NUL byte in the source");
	CHECK_EQ(e.column, 7);
	CHECK(bpfkit_asm("ret #1 ; a\0b", 12, NULL, &p, &e) == -1);
	CHECK_STR(e.message, "NUL byte in the source");
	CHECK(bpfkit_asm("/* \0 */ ret #1", 14, NULL, &p, &e) == -1);
	CHECK_STR(e.message, "NUL byte in the source");
	/* No error struct: still a clean failure. */
	CHECK(assemble("bogus", &p, NULL) == -1);
	CHECK(p.insns == NULL);
}

/* ---- the kernel documentation's examples (Documentation/networking/filter.rst) ---- */

static void check_prog(const char *name, const char *src, const struct bpfkit_insn *want,
		       size_t n)
{
	struct bpfkit_prog p = {0};
	struct bpfkit_error e;
	if (assemble(src, &p, &e) != 0) {
		CHECK_MSG(0, "%s: %s at %d:%d", name, e.message, e.line, e.column);
		return;
	}
	CHECK_MSG(p.len == n, "%s: %zu instructions, want %zu", name, p.len, n);
	for (size_t i = 0; i < n && i < p.len; i++)
		CHECK_MSG(memcmp(&p.insns[i], &want[i], sizeof want[i]) == 0,
			  "%s: insn %zu is {0x%02x,%u,%u,0x%x}, want {0x%02x,%u,%u,0x%x}", name, i,
			  p.insns[i].code, p.insns[i].jt, p.insns[i].jf, p.insns[i].k,
			  want[i].code, want[i].jt, want[i].jf, want[i].k);
	bpfkit_prog_free(NULL, &p);
}

TEST(asm_kernel_doc_examples)
{
	/* "./bpf_asm foo" prints 4,40 0 0 12,21 0 1 2054,6 0 0 4294967295,6 0 0 0, */
	static const struct bpfkit_insn arp[] = {
		{40, 0, 0, 12}, {21, 0, 1, 2054}, {6, 0, 0, 4294967295u}, {6, 0, 0, 0},
	};
	check_prog("arp", "  ldh [12]\n  jne #0x806, drop\n  ret #-1\n  drop: ret #0\n", arp, 4);

	static const struct bpfkit_insn tcp[] = {
		{0x28, 0, 0, 12}, {0x15, 0, 3, 0x800}, {0x30, 0, 0, 23}, {0x15, 0, 1, 6},
		{0x06, 0, 0, 0xffffffffu}, {0x06, 0, 0, 0},
	};
	check_prog("ipv4 tcp",
		   "  ldh [12]\n  jne #0x800, drop\n  ldb [23]\n  jneq #6, drop\n"
		   "  ret #-1\n  drop: ret #0\n",
		   tcp, 6);

	static const struct bpfkit_insn icmp[] = {
		{0x28, 0, 0, 12}, {0x15, 0, 6, 0x800}, {0x30, 0, 0, 23}, {0x15, 0, 4, 1},
		{0x20, 0, 0, 0xfffff038u}, {0x94, 0, 0, 4}, {0x15, 0, 1, 1},
		{0x06, 0, 0, 0xffffffffu}, {0x06, 0, 0, 0},
	};
	check_prog("icmp sampling",
		   "  ldh [12]\n  jne #0x800, drop\n  ldb [23]\n  jneq #1, drop\n"
		   "  # get a random uint32 number\n  ld rand\n  mod #4\n  jneq #1, drop\n"
		   "  ret #-1\n  drop: ret #0\n",
		   icmp, 9);

	static const struct bpfkit_insn seccomp[] = {
		{0x20, 0, 0, 4}, {0x15, 0, 11, 0xc000003eu}, {0x20, 0, 0, 0},
		{0x15, 10, 0, 15}, {0x15, 9, 0, 231}, {0x15, 8, 0, 60}, {0x15, 7, 0, 0},
		{0x15, 6, 0, 1}, {0x15, 5, 0, 5}, {0x15, 4, 0, 9}, {0x15, 3, 0, 14},
		{0x15, 2, 0, 13}, {0x15, 1, 0, 35}, {0x06, 0, 0, 0}, {0x06, 0, 0, 0x7fff0000},
	};
	check_prog("seccomp",
		   "  ld [4]                  /* offsetof(struct seccomp_data, arch) */\n"
		   "  jne #0xc000003e, bad    /* AUDIT_ARCH_X86_64 */\n"
		   "  ld [0]                  /* offsetof(struct seccomp_data, nr) */\n"
		   "  jeq #15, good           /* __NR_rt_sigreturn */\n"
		   "  jeq #231, good          /* __NR_exit_group */\n"
		   "  jeq #60, good           /* __NR_exit */\n"
		   "  jeq #0, good            /* __NR_read */\n"
		   "  jeq #1, good            /* __NR_write */\n"
		   "  jeq #5, good            /* __NR_fstat */\n"
		   "  jeq #9, good            /* __NR_mmap */\n"
		   "  jeq #14, good           /* __NR_rt_sigprocmask */\n"
		   "  jeq #13, good           /* __NR_rt_sigaction */\n"
		   "  jeq #35, good           /* __NR_nanosleep */\n"
		   "  bad: ret #0             /* SECCOMP_RET_KILL_THREAD */\n"
		   "  good: ret #0x7fff0000   /* SECCOMP_RET_ALLOW */\n",
		   seccomp, 15);

	static const struct bpfkit_insn ifidx[] = {
		{0x20, 0, 0, 0xfffff008u}, {0x15, 0, 1, 13}, {0x06, 0, 0, 0xffffffffu},
		{0x06, 0, 0, 0},
	};
	check_prog("ifidx", "  ld ifidx\n  jneq #13, drop\n  ret #-1\n  drop: ret #0\n", ifidx, 4);
	static const struct bpfkit_insn vlan[] = {
		{0x20, 0, 0, 0xfffff02cu}, {0x15, 0, 1, 10}, {0x06, 0, 0, 0xffffffffu},
		{0x06, 0, 0, 0},
	};
	check_prog("vlan", "  ld vlan_tci\n  jneq #10, drop\n  ret #-1\n  drop: ret #0\n",
		   vlan, 4);

	/* bpf_dbg's disassembly of the program
	 * "6,40 0 0 12,21 0 3 2048,48 0 0 23,21 0 1 1,6 0 0 65535,6 0 0 0" */
	static const struct bpfkit_insn dbg[] = {
		{40, 0, 0, 12}, {21, 0, 3, 2048}, {48, 0, 0, 23}, {21, 0, 1, 1}, {6, 0, 0, 65535},
		{6, 0, 0, 0},
	};
	check_prog("bpf_dbg",
		   "l0:\tldh [12]\nl1:\tjeq #0x800, l2, l5\nl2:\tldb [23]\n"
		   "l3:\tjeq #0x1, l4, l5\nl4:\tret #0xffff\nl5:\tret #0\n",
		   dbg, 6);
}

/* ---- allocation failures ---- */

struct counting {
	long countdown, live;
};

static void *counting_fn(void *ud, void *ptr, size_t size)
{
	struct counting *c = ud;
	if (size == 0) {
		if (ptr)
			c->live--;
		free(ptr);
		return NULL;
	}
	if (c->countdown >= 0 && c->countdown-- == 0)
		return NULL;
	void *p = realloc(ptr, size);
	if (p && !ptr)
		c->live++;
	return p;
}

/* Many labels (hash table growth), many instructions (vector growth), far jumps. */
TEST(asm_alloc_failure)
{
	char *src = malloc(1 << 16);
	size_t n = 0;
	for (int i = 0; i < 150; i++)
		n += (size_t)sprintf(src + n, "jeq #%d, T%d, F%d\nF%d: add #1\nT%d: add #2\n",
				     i, i, i, i, i);
	n += (size_t)sprintf(src + n, "jeq #1, far, far\n");
	n = filler(src, n, 600);
	sprintf(src + n, "far: ret a\n");
	long failures = 0;
	for (long nth = 0; nth < 100000; nth++) {
		struct counting c = {nth, 0};
		struct bpfkit_alloc a = {counting_fn, &c};
		struct bpfkit_prog p = {(void *)1, 9};
		struct bpfkit_error e;
		int rc = bpfkit_asm(src, strlen(src), &a, &p, &e);
		if (rc == 0) {
			CHECK(p.len > 600);
			bpfkit_prog_free(&a, &p);
			CHECK_EQ(c.live, 0);
			break;
		}
		failures++;
		CHECK_STR(e.message, "out of memory");
		CHECK(p.insns == NULL && p.len == 0);
		CHECK_MSG(c.live == 0, "%ld blocks leaked when allocation %ld failed", c.live,
			  nth);
		if (harness_failures())
			break;
	}
	CHECK(failures >= 3);
	free(src);
}
