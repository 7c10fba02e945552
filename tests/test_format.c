/*
 * test_format.c - program formats, both directions (src/disasm.c writers,
 * src/progread.c readers).  libpcap is the oracle: the listing must equal
 * bpf_image() line for line, the C and ddd formats bpf_dump()'s output.
 * Every readable format must read back what it wrote, for libpcap's own
 * programs, random valid programs and (asm, ddd, ...) arbitrary bytes.
 */
#include "harness.h"
#include "bpfkit.h"
#include "internal.h"
#include "randprog.h"

#include <pcap/pcap.h>
#include <stdlib.h>
#include <unistd.h>

static const enum bpfkit_format readable[] = {
	BPFKIT_FMT_ASM, BPFKIT_FMT_LISTING, BPFKIT_FMT_C, BPFKIT_FMT_DDD,
	BPFKIT_FMT_IPTABLES, BPFKIT_FMT_RAW, BPFKIT_FMT_JSON,
};
#define NREADABLE (sizeof readable / sizeof readable[0])

static bool same_prog(const struct bpfkit_insn *a, size_t an, const struct bpfkit_insn *b,
		      size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (a[i].code != b[i].code || a[i].jt != b[i].jt || a[i].jf != b[i].jf ||
		    a[i].k != b[i].k)
			return false;
	return true;
}

static char *fmt(const struct bpfkit_insn *insns, size_t n, enum bpfkit_format f, size_t *len)
{
	char *text = NULL;
	struct bpfkit_error err;
	size_t l = 0;
	if (bpfkit_prog_format(insns, n, f, NULL, &text, &l, &err) != 0) {
		harness_fail(__FILE__, __LINE__, "format %s: %s", bpfkit_format_name(f),
			     err.message);
		return NULL;
	}
	if (len)
		*len = l;
	return text;
}

/* Formats in f, reads back (explicitly and detected) and compares. */
static void round_trip(const struct bpfkit_insn *insns, size_t n, enum bpfkit_format f,
		       const char *what)
{
	size_t len;
	char *text = fmt(insns, n, f, &len);
	if (!text)
		return;
	for (int pass = 0; pass < 2; pass++) {
		struct bpfkit_prog p;
		struct bpfkit_error err;
		enum bpfkit_format det = BPFKIT_FMT_AUTO;
		enum bpfkit_format want = pass ? BPFKIT_FMT_AUTO : f;
		if (pass && n == 0)
			break; /* empty text is ambiguous */
		if (bpfkit_prog_read(text, len, want, NULL, &p, &det, &err) != 0) {
			harness_fail(__FILE__, __LINE__, "%s: %s read back (%s): %s (line %d col %d)\n%s",
				     what, bpfkit_format_name(f), pass ? "auto" : "explicit",
				     err.message, err.line, err.column,
				     f == BPFKIT_FMT_RAW ? "" : text);
			continue;
		}
		CHECK_MSG(det == f, "%s: detected %s for %s", what, bpfkit_format_name(det),
			  bpfkit_format_name(f));
		CHECK_MSG(same_prog(insns, n, p.insns, p.len), "%s: %s round trip differs\n%s",
			  what, bpfkit_format_name(f), f == BPFKIT_FMT_RAW ? "" : text);
		bpfkit_prog_free(NULL, &p);
	}
	bpfkit_free(NULL, text);
}

/*
 * The listing drops fields the instruction ignores (libpcap's optimizer
 * leaves k on `tax`, for one); this is what reading it back gives.  Returns
 * false when the listing has an `unimp` line and cannot be read at all.
 */
static bool listing_normal(const struct bpfkit_insn *insns, size_t n, struct bpfkit_insn *out)
{
	for (size_t i = 0; i < n; i++) {
		const struct opcode_info *o = opcode_lookup(insns[i].code);
		if (!o || o->code == 0x81)
			return false;
		out[i] = insns[i];
		if (!(o->flags & F_COND))
			out[i].jt = out[i].jf = 0;
		if (o->operand == OPND_NONE || o->operand == OPND_X || o->operand == OPND_A ||
		    o->operand == OPND_LEN)
			out[i].k = 0;
	}
	return true;
}

static void round_trip_all(const struct bpfkit_insn *insns, size_t n, const char *what)
{
	for (size_t i = 0; i < NREADABLE; i++) {
		if (readable[i] == BPFKIT_FMT_LISTING && !fmt_listing_exact(insns, n)) {
			struct bpfkit_insn *norm = malloc((n + 1) * sizeof *norm);
			struct bpfkit_prog p;
			struct bpfkit_error err;
			size_t len;
			char *text = fmt(insns, n, BPFKIT_FMT_LISTING, &len);
			int rc = bpfkit_prog_read(text, len, BPFKIT_FMT_LISTING, NULL, &p, NULL, &err);
			if (listing_normal(insns, n, norm)) {
				CHECK_MSG(fmt_listing_exact(norm, n), "%s: normalized not exact", what);
				CHECK_MSG(rc == 0 && same_prog(p.insns, p.len, norm, n),
					  "%s: listing reads back wrong: %s", what,
					  rc ? err.message : "");
			} else {
				CHECK_MSG(rc == -1 && strstr(err.message, "unimp"),
					  "%s: listing with unimp read", what);
			}
			if (rc == 0)
				bpfkit_prog_free(NULL, &p);
			bpfkit_free(NULL, text);
			free(norm);
			continue;
		}
		round_trip(insns, n, readable[i], what);
	}
}

/* ---- libpcap programs ---- */

static const char *const filters[] = {
	"", "ip", "tcp", "udp port 53", "host 10.0.0.1", "net 192.168.0.0/16", "ip6", "icmp",
	"arp", "vlan and ip", "len > 100", "greater 64", "less 1000", "ip[2:2] > 576",
	"ether host 00:11:22:33:44:55", "portrange 1000-2000", "ip6 and tcp", "tcp[13] & 2 != 0",
	"ip proto 47", "not ip", "ip multicast", "ether broadcast", "udp and (port 67 or port 68)",
	"tcp port 80 and (tcp[tcpflags] & tcp-syn != 0)", "tcp dst port 443 or udp dst port 53",
	"icmp6", "ip and ip[6:2] & 0x1fff = 0", "ip host 1.2.3.4 and not tcp port 22", "mpls",
	"pppoes", "ip6 protochain 6", "ether proto 0x88cc", "ip[8] < 64",
	"udp[8:4] = 0x12345678", "ip src net 10.0.0.0/8 and dst net 172.16.0.0/12",
	"tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
	"ip[2:2] - ((ip[0]&0xf)<<2) - ((tcp[12]&0xf0)>>2) != 0", "ip[1] * 2 / 3 % 5 = 1",
	"ip[1] ^ 3 = 2", "ip[1] | 4 = 6", "-ip[1] = 0", "ip[1] + 7 >= 9", "len - 14 > 0",
	"ip6 host ::1", "ip6 dst net 2001:db8::/32 and udp", "tcp portrange 10-20 or icmp",
	"ip[0] & 0xf > 5 and tcp", "ip and (ip[16] >= 224)", "ip broadcast", "ip6 multicast",
	"ether[0] & 1 = 0 and ip[16] >= 224", "udp[4:2] > 100 and udp[4:2] < 1000",
	"tcp and tcp[tcpflags] & (tcp-fin|tcp-rst) != 0", "icmp[icmptype] = icmp-echo",
	"ip[12:4] = ip[16:4]", "sctp", "igmp", "ip6 and ip6[6] = 17",
};

static void each_pcap_program(void (*fn)(const struct bpfkit_insn *, size_t, const char *,
					 struct bpf_program *))
{
	static const int dlts[] = {DLT_EN10MB, DLT_RAW, DLT_LINUX_SLL};
	char what[200];
	for (size_t d = 0; d < 3; d++) {
		pcap_t *pc = pcap_open_dead(dlts[d], 262144);
		if (!pc) {
			harness_fail(__FILE__, __LINE__, "pcap_open_dead");
			return;
		}
		for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
			for (int opt = 0; opt < 2; opt++) {
				struct bpf_program bp;
				if (pcap_compile(pc, &bp, filters[i], opt, PCAP_NETMASK_UNKNOWN))
					continue;
				snprintf(what, sizeof what, "dlt %d -O%d '%s'", dlts[d], opt,
					 filters[i]);
				fn((const struct bpfkit_insn *)bp.bf_insns, bp.bf_len, what, &bp);
				pcap_freecode(&bp);
			}
		pcap_close(pc);
	}
}

/* bpf_dump() prints to stdout: catch it in a temporary file. */
static char *capture_dump(struct bpf_program *bp, int option)
{
	char path[] = "/tmp/bpfkit-fmt-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	fflush(stdout);
	int saved = dup(1);
	dup2(fd, 1);
	bpf_dump(bp, option);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	close(fd);
	char *text = harness_read_file(path, NULL);
	unlink(path);
	return text;
}

static void compare_dumps(const struct bpfkit_insn *insns, size_t n, const char *what,
			  struct bpf_program *bp)
{
	static const struct {
		int option;
		enum bpfkit_format f;
	} pairs[] = {{1, BPFKIT_FMT_LISTING}, {2, BPFKIT_FMT_C}, {3, BPFKIT_FMT_DDD}};
	for (size_t i = 0; i < 3; i++) {
		char *want = capture_dump(bp, pairs[i].option);
		char *got = fmt(insns, n, pairs[i].f, NULL);
		CHECK_MSG(want && got && strcmp(want, got) == 0, "%s: -%.*s differs:\n%s\nvs\n%s",
			  what, pairs[i].option, "ddd", got ? got : "", want ? want : "");
		free(want);
		bpfkit_free(NULL, got);
	}
}

static void pcap_round_trip(const struct bpfkit_insn *insns, size_t n, const char *what,
			    struct bpf_program *bp)
{
	round_trip_all(insns, n, what);
}

TEST(fmt_pcap_dump_equal)
{
	each_pcap_program(compare_dumps);
}

TEST(fmt_pcap_round_trip)
{
	each_pcap_program(pcap_round_trip);
}

/* ---- the listing against bpf_image, shape by shape ---- */

static void compare_listing(const struct bpfkit_insn *insns, size_t n, const char *what)
{
	char *text = fmt(insns, n, BPFKIT_FMT_LISTING, NULL);
	const char *line = text;
	int bad = 0;
	for (size_t i = 0; text && i < n && bad < 5; i++) {
		const char *want = bpf_image((const struct bpf_insn *)&insns[i], (int)i);
		const char *nl = strchr(line, '\n');
		if (!nl || (size_t)(nl - line) != strlen(want) ||
		    memcmp(line, want, strlen(want)) != 0) {
			harness_fail(__FILE__, __LINE__, "%s: insn %zu {0x%x,%u,%u,0x%x}:\n"
				     "  got:  \"%.*s\"\n  want: \"%s\"", what, i, insns[i].code,
				     insns[i].jt, insns[i].jf, insns[i].k,
				     nl ? (int)(nl - line) : 0, line, want);
			bad++;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	bpfkit_free(NULL, text);
}

TEST(fmt_listing_every_code)
{
	/* All 65536 codes, with assorted fields. */
	size_t n = 0x10000;
	struct bpfkit_insn *p = malloc(n * sizeof *p);
	uint64_t seed = 7;
	for (size_t i = 0; i < n; i++) {
		p[i].code = (uint16_t)i;
		p[i].jt = (uint8_t)randprog_next(&seed);
		p[i].jf = (uint8_t)randprog_next(&seed);
		p[i].k = (uint32_t)randprog_next(&seed);
	}
	compare_listing(p, n, "every code");
	free(p);
}

TEST(fmt_listing_table_shapes)
{
	static const uint32_t ks[] = {0, 1, 12, 0xff, 0x800, 0x7fffffff, 0x80000000, 0xffffffff,
				      0xfff00000, 0xffe00000, 0xfffff000, 0xfffff03c,
				      0xfffff040, 0xfffff001, 0xffffefff};
	struct bpfkit_insn p[OP__COUNT * 40];
	size_t n = 0;
	for (size_t r = 0; r < OP__COUNT; r++) {
		for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
			p[n++] = (struct bpfkit_insn){opcode_table[r].code, (uint8_t)i,
						      (uint8_t)(255 - i), ks[i]};
		for (uint32_t off = 0; off < BPFKIT_AD_MAX + 8; off += 4)
			p[n++] = (struct bpfkit_insn){opcode_table[r].code, 0, 0,
						      BPFKIT_SKF_AD_OFF + off};
	}
	compare_listing(p, n, "table shapes");
	/* Every ancillary name reads back. */
	struct bpfkit_insn anc[3 * 16];
	size_t m = 0;
	for (uint32_t off = 0; off < BPFKIT_AD_MAX; off += 4) {
		anc[m++] = (struct bpfkit_insn){0x20, 0, 0, BPFKIT_SKF_AD_OFF + off};
		anc[m++] = (struct bpfkit_insn){0x28, 0, 0, BPFKIT_SKF_AD_OFF + off};
		anc[m++] = (struct bpfkit_insn){0x30, 0, 0, BPFKIT_SKF_AD_OFF + off};
	}
	round_trip(anc, m, BPFKIT_FMT_LISTING, "ancillary listing");
	round_trip(anc, m, BPFKIT_FMT_ASM, "ancillary asm");
}

/* ---- random programs ---- */

TEST(fmt_random_valid)
{
	uint64_t seed = 12345;
	struct bpfkit_insn p[300];
	char what[64];
	for (int iter = 0; iter < 300; iter++) {
		size_t n = randprog_gen(&seed, p, 1 + randprog_below(&seed, 299), 64,
					iter & 1 ? RANDPROG_ANC : 0);
		snprintf(what, sizeof what, "randprog %d", iter);
		if (iter < 100)
			compare_listing(p, n, what);
		bool ldx_len = false;
		for (size_t i = 0; i < n; i++)
			ldx_len |= p[i].code == 0x81;
		/* libpcap prints LDX|LEN as unimp; everything else reads back. */
		CHECK_MSG(fmt_listing_exact(p, n) == !ldx_len, "%s: listing exactness", what);
		round_trip_all(p, n, what);
	}
}

/* Arbitrary bytes: unknown codes, stray fields, jumps out of the program. */
TEST(fmt_random_arbitrary)
{
	uint64_t seed = 99;
	struct bpfkit_insn p[64];
	char what[64];
	static const uint16_t codes[] = {0x15, 0x05, 0x20, 0x28, 0x30, 0x06, 0x16, 0x84, 0x0c,
					 0x81, 0xb1, 0x1d};
	for (int iter = 0; iter < 300; iter++) {
		size_t n = 1 + randprog_below(&seed, 64);
		for (size_t i = 0; i < n; i++) {
			uint64_t r = randprog_next(&seed);
			p[i].code = r & 1 ? codes[(r >> 1) % 12] : (uint16_t)(r >> 8);
			p[i].jt = (uint8_t)(r & 2 ? (r >> 24) % 4 : r >> 24);
			p[i].jf = (uint8_t)(r & 4 ? (r >> 32) % 4 : r >> 32);
			p[i].k = r & 8 ? (uint32_t)(r >> 40) % 5 : (uint32_t)randprog_next(&seed);
			if (r & 16)
				p[i].k = BPFKIT_SKF_AD_OFF + (uint32_t)((r >> 20) % 80);
		}
		snprintf(what, sizeof what, "arbitrary %d", iter);
		compare_listing(p, n, what);
		round_trip_all(p, n, what);
	}
}

/* ---- exact texts ---- */

static const struct bpfkit_insn sample[] = {
	{0x28, 0, 0, 12},          /* ldh [12] */
	{0x15, 0, 3, 0x800},       /* jeq #0x800 */
	{0x30, 0, 0, 0xfffff000},  /* ldb #proto */
	{0x05, 0, 0, 0},           /* ja next */
	{0x06, 0, 0, 0xffffffff},  /* ret #0xffffffff */
	{0x06, 0, 0, 0},           /* ret #0 */
};

TEST(fmt_sample_texts)
{
	char *t = fmt(sample, 6, BPFKIT_FMT_ASM, NULL);
	CHECK_STR(t, "\tldh [12]\n\tjeq #0x800, L2, L5\nL2:\tldb #proto\n\tja L4\n"
		     "L4:\tret #0xffffffff\nL5:\tret #0\n");
	bpfkit_free(NULL, t);
	t = fmt(sample, 6, BPFKIT_FMT_IPTABLES, NULL);
	CHECK_STR(t, "6,40 0 0 12,21 0 3 2048,48 0 0 4294963200,5 0 0 0,6 0 0 4294967295,"
		     "6 0 0 0,\n");
	bpfkit_free(NULL, t);
	t = fmt(sample, 2, BPFKIT_FMT_JSON, NULL);
	CHECK_STR(t, "{\"insns\": [\n"
		     "  {\"code\": 40, \"jt\": 0, \"jf\": 0, \"k\": 12, \"asm\": \"ldh [12]\"},\n"
		     "  {\"code\": 21, \"jt\": 0, \"jf\": 3, \"k\": 2048, "
		     "\"asm\": \".insn 0x15, 0, 3, 0x800\"}\n]}\n");
	bpfkit_free(NULL, t);
	/* .insn for what bpf_asm cannot spell. */
	static const struct bpfkit_insn odd[] = {
		{0x28, 1, 0, 12}, {0x1234, 5, 6, 7}, {0x05, 0, 0, 9}, {0x84, 0, 0, 3},
		{0x20, 0, 0, 0xfffff040}, {0x16, 0, 0, 0},
	};
	t = fmt(odd, 6, BPFKIT_FMT_ASM, NULL);
	CHECK_STR(t, "\t.insn 0x28, 1, 0, 0xc\n\t.insn 0x1234, 5, 6, 0x7\n"
		     "\t.insn 0x5, 0, 0, 0x9\n\t.insn 0x84, 0, 0, 0x3\n\tld [0xfffff040]\n"
		     "\tret a\n");
	bpfkit_free(NULL, t);
	t = fmt(NULL, 0, BPFKIT_FMT_DDD, NULL);
	CHECK_STR(t, "0\n");
	bpfkit_free(NULL, t);
}

TEST(fmt_dot_blocks)
{
	char *t = fmt(sample, 6, BPFKIT_FMT_DOT, NULL);
	CHECK_CONTAINS(t, "digraph bpf {");
	CHECK_CONTAINS(t, "b0 [label=\"(000) ldh      [12]\\l(001) jeq      #0x800           "
			  "jt 2 jf 5\\l\"];");
	CHECK_CONTAINS(t, "b0 -> b2 [label=\"true\"];");
	CHECK_CONTAINS(t, "b0 -> b5 [label=\"false\"];");
	CHECK_CONTAINS(t, "b2 -> b4;");
	CHECK(t && !strstr(t, "b4 ->"));
	CHECK(t && !strstr(t, "out"));
	bpfkit_free(NULL, t);
	static const struct bpfkit_insn away[] = {{0x05, 0, 0, 7}, {0x06, 0, 0, 0}};
	t = fmt(away, 2, BPFKIT_FMT_DOT, NULL);
	CHECK_CONTAINS(t, "b0 -> out;");
	bpfkit_free(NULL, t);
	struct bpfkit_prog p;
	struct bpfkit_error err;
	CHECK_EQ(bpfkit_prog_read("digraph {}", 10, BPFKIT_FMT_DOT, NULL, &p, NULL, &err), -1);
	CHECK_STR(err.message, "format dot cannot be read");
	CHECK(p.insns == NULL && p.len == 0);
}

TEST(fmt_names)
{
	for (int f = BPFKIT_FMT_AUTO; f <= BPFKIT_FMT_DOT; f++)
		CHECK_EQ(bpfkit_format_parse(bpfkit_format_name((enum bpfkit_format)f)), f);
	CHECK_EQ(bpfkit_format_parse("LISTING"), BPFKIT_FMT_LISTING);
	CHECK_EQ(bpfkit_format_parse("xml"), -1);
	CHECK_EQ(bpfkit_format_parse(NULL), -1);
	CHECK(bpfkit_format_name((enum bpfkit_format)99) == NULL);
	char *t = NULL;
	struct bpfkit_error err;
	CHECK_EQ(bpfkit_prog_format(sample, 1, BPFKIT_FMT_AUTO, NULL, &t, NULL, &err), -1);
	CHECK(t == NULL);
}

/* ---- readers: tolerance and errors ---- */

static int rd(const char *text, enum bpfkit_format f, struct bpfkit_prog *p,
	      enum bpfkit_format *det, struct bpfkit_error *err)
{
	return bpfkit_prog_read(text, strlen(text), f, NULL, p, det, err);
}

/* Reads text; expects exactly sample[0..n). */
static void expect_ok(const char *text, enum bpfkit_format f, size_t n, int line)
{
	struct bpfkit_prog p;
	struct bpfkit_error err;
	enum bpfkit_format det;
	if (rd(text, BPFKIT_FMT_AUTO, &p, &det, &err) != 0) {
		harness_fail(__FILE__, line, "read failed: %s (%d:%d)\n%s", err.message, err.line,
			     err.column, text);
		return;
	}
	CHECK_MSG(det == f, "line %d: detected %s", line, bpfkit_format_name(det));
	CHECK_MSG(same_prog(p.insns, p.len, sample, n), "line %d: wrong program", line);
	bpfkit_prog_free(NULL, &p);
}

/* Reads text; expects an error at line:col whose message contains msg. */
static void expect_err(const char *text, enum bpfkit_format f, int eline, int ecol,
		       const char *msg, int line)
{
	struct bpfkit_prog p = {(struct bpfkit_insn *)1, 99};
	struct bpfkit_error err;
	if (rd(text, f, &p, NULL, &err) == 0) {
		harness_fail(__FILE__, line, "read succeeded:\n%s", text);
		bpfkit_prog_free(NULL, &p);
		return;
	}
	CHECK_MSG(p.insns == NULL && p.len == 0, "line %d: out not cleared", line);
	CHECK_MSG(err.line == eline && err.column == ecol && strstr(err.message, msg),
		  "line %d: got %d:%d \"%s\", want %d:%d \"%s\"", line, err.line, err.column,
		  err.message, eline, ecol, msg);
}

TEST(fmt_read_tolerant)
{
	expect_ok("  2\r\n40 0 0 12\r\n\r\n21 0 3 2048\r\n\n", BPFKIT_FMT_DDD, 2, __LINE__);
	expect_ok("2,40 0 0 12,21 0 3 2048", BPFKIT_FMT_IPTABLES, 2, __LINE__);
	expect_ok(" 2, 40 0 0 12 , 21 0 3 2048 ,\r\n", BPFKIT_FMT_IPTABLES, 2, __LINE__);
	expect_ok("{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 3, 0x00000800 }", BPFKIT_FMT_C, 2,
		  __LINE__);
	expect_ok("struct sock_filter code[] = {\n\t{ 0x28,  0,  0, 0x0000000c },\n"
		  "\t{ 0x15,  0,  3, 0x00000800 },\n};\n", BPFKIT_FMT_C, 2, __LINE__);
	expect_ok("/* from tcpdump */\nstatic const struct sock_filter f[2] = {\n"
		  "{ 40, 0, 0, 12 }, // ldh\n{ 0x15, 00, 3, 0x800u, } };", BPFKIT_FMT_C, 2,
		  __LINE__);
	expect_ok("(000) ldh      [12]\r\n(001) jeq      #0x800           jt 2\tjf 5\r\n",
		  BPFKIT_FMT_LISTING, 2, __LINE__);
	expect_ok("(000) ldh [12]\n(001) jeq #2048 jt 2 jf 5\n(002) ldb [proto]\n(003) ja 4\n"
		  "(004) ret #-1\n(005) ret #0\n", BPFKIT_FMT_LISTING, 6, __LINE__);
	expect_ok(" [ {\"code\":40,\"jt\":0,\"jf\":0,\"k\":12,\"x\":[1,{\"y\":null}]},\n"
		  "[21,0,3,2048]]", BPFKIT_FMT_JSON, 2, __LINE__);
	expect_ok("{\"comment\": \"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9\", \"insns\": [{\"k\": 12,"
		  " \"jf\": 0, \"jt\": 0, \"code\": 40}], \"n\": -1.5e3}", BPFKIT_FMT_JSON, 1,
		  __LINE__);
}

TEST(fmt_read_errors)
{
	enum bpfkit_format D = BPFKIT_FMT_DDD, I = BPFKIT_FMT_IPTABLES, C = BPFKIT_FMT_C,
			   L = BPFKIT_FMT_LISTING, J = BPFKIT_FMT_JSON;
	expect_err("3\n40 0 0 12\n6 0 0 0\n", D, 1, 1, "count says 3", __LINE__);
	expect_err("1\n40 0 0 12\n6 0 0 0\n", D, 3, 1, "more instructions", __LINE__);
	expect_err("1\n40 256 0 12\n", D, 2, 4, "jt 256 out of range", __LINE__);
	expect_err("1\n65536 0 0 12\n", D, 2, 1, "code 65536 out of range", __LINE__);
	expect_err("1\n6 0 0 4294967296\n", D, 2, 7, "k 4294967296 out of range", __LINE__);
	expect_err("1\n6 0 0 1 7\n", D, 2, 9, "expected end of line", __LINE__);
	expect_err("1\n6 0 0x1 1\n", D, 2, 6, "expected a separator", __LINE__);
	expect_err("1\n6 0 0\n", D, 2, 6, "expected a number (k)", __LINE__);
	expect_err("", D, 1, 1, "expected the instruction count", __LINE__);
	expect_err("2,6 0 0 0,", I, 1, 1, "count says 2", __LINE__);
	expect_err("1,6 0 0 0,6 0 0 0", I, 1, 11, "more instructions", __LINE__);
	expect_err("1,6 0 0 0;", I, 1, 10, "expected ',' or the end", __LINE__);
	expect_err("1 6 0 0 0", I, 1, 3, "expected ','", __LINE__);
	expect_err("{ 0x28, 0, 0 }", C, 1, 14, "expected ','", __LINE__);
	expect_err("{ 0x28, 0, 0, 1 } { 6, 0, 0, 0 }", C, 1, 19, "','", __LINE__);
	expect_err("struct sock_filter f[3] = {\n{ 6, 0, 0, 0 },\n};", C, 1, 22,
		   "array size says 3", __LINE__);
	expect_err("struct sock_filter f[] = {\n{ 6, 0, 0, 0 },\n", C, 3, 1, "'}'", __LINE__);
	expect_err("{ 6, 0x100, 0, 0 }", C, 1, 6, "jt 0x100 out of range", __LINE__);
	expect_err("/* open", C, 1, 1, "unterminated comment", __LINE__);
	expect_err("(000) ldh [12]\n(001) unimp    0x81\n", L, 2, 7, "unimp", __LINE__);
	expect_err("(000) ldh [12]\n(002) ret #0\n", L, 2, 2, "expected 1", __LINE__);
	expect_err("(000) jeq #1 jt 300 jf 1\n", L, 1, 17, "jt target 300", __LINE__);
	expect_err("(000) jeq #1 jt 1\n", L, 1, 18, "'jf'", __LINE__);
	expect_err("(000) ldh #1\n", L, 1, 7, "'ldh' does not take the operand '#1'", __LINE__);
	expect_err("(000) ld [bogus]\n", L, 1, 11, "unknown ancillary", __LINE__);
	expect_err("(000) ret #0 x\n", L, 1, 14, "end of line", __LINE__);
	expect_err("{\"insns\": [\n {\"code\": 6, \"jt\": 0, \"jf\": 0}\n]}", J, 2, 2,
		   "instruction 0 has no \"k\"", __LINE__);
	expect_err("[{\"code\": 6, \"code\": 6}]", J, 1, 14, "duplicate key", __LINE__);
	expect_err("[{\"code\": 6.5}]", J, 1, 11, "code must be an integer", __LINE__);
	expect_err("[{\"code\": -1}]", J, 1, 11, "integer", __LINE__);
	expect_err("[[6, 0, 0, 4294967296]]", J, 1, 12, "out of range", __LINE__);
	expect_err("[\n[6, 0, 0, 0],\n]", J, 3, 1, "instruction object", __LINE__);
	expect_err("{\"insns\": [], \"x\": \"a\\qb\"}", J, 1, 22, "invalid escape", __LINE__);
	expect_err("{\"insns\": [], \"x\": \"\\ud800\"}", J, 1, 21, "surrogate", __LINE__);
	expect_err("{\"insns\": [], \"x\": \"\xff\"}", J, 1, 21, "UTF-8", __LINE__);
	expect_err("{\"insns\": [], \"x\": tru}", J, 1, 20, "JSON value", __LINE__);
	expect_err("{\"insns\": []} x", J, 1, 15, "the end", __LINE__);
	expect_err("{\"other\": []}", J, 1, 1, "no \"insns\"", __LINE__);
	expect_err("{\"insns\": [], \"insns\": []}", J, 1, 15, "duplicate", __LINE__);
	char deep[300];
	memset(deep, '[', sizeof deep - 1);
	deep[sizeof deep - 1] = '\0';
	char buf[400];
	snprintf(buf, sizeof buf, "{\"insns\": [], \"x\": %s", deep);
	expect_err(buf, J, 1, 83, "nesting deeper", __LINE__);
	/* raw: offset, not line */
	struct bpfkit_prog p;
	struct bpfkit_error err;
	enum bpfkit_format det;
	static const unsigned char raw[13] = {6, 0, 0, 0, 0, 0, 0, 0, 6};
	CHECK_EQ(bpfkit_prog_read(raw, sizeof raw, BPFKIT_FMT_AUTO, NULL, &p, &det, &err), -1);
	CHECK_EQ(det, BPFKIT_FMT_RAW);
	CHECK_EQ(err.offset, 8);
	CHECK_CONTAINS(err.message, "multiple of 8");
	CHECK_EQ(bpfkit_prog_read(raw, 8, BPFKIT_FMT_AUTO, NULL, &p, &det, &err), 0);
	CHECK(p.len == 1 && p.insns[0].code == 6);
	bpfkit_prog_free(NULL, &p);
}

TEST(fmt_detect)
{
	static const struct {
		const char *text;
		enum bpfkit_format f;
	} cases[] = {
		{"1\n6 0 0 0\n", BPFKIT_FMT_DDD},
		{"1,6 0 0 0,", BPFKIT_FMT_IPTABLES},
		{"{ 0x6, 0, 0, 0x00000000 },", BPFKIT_FMT_C},
		{"static struct sock_filter x[] = { { 6, 0, 0, 0 } };", BPFKIT_FMT_C},
		{"// c\n{ 6, 0, 0, 0 }", BPFKIT_FMT_C},
		{"(000) ret      #0\n", BPFKIT_FMT_LISTING},
		{"[[6,0,0,0]]", BPFKIT_FMT_JSON},
		{"{\"insns\": [[6,0,0,0]]}", BPFKIT_FMT_JSON},
		{"\t\n[ ]", BPFKIT_FMT_JSON},
		{"ret #0\n", BPFKIT_FMT_ASM},
		{"; comment\nld #len\nret a\n", BPFKIT_FMT_ASM},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct bpfkit_prog p;
		struct bpfkit_error err;
		enum bpfkit_format det = BPFKIT_FMT_AUTO;
		int rc = rd(cases[i].text, BPFKIT_FMT_AUTO, &p, &det, &err);
		CHECK_MSG(det == cases[i].f, "case %zu: detected %s", i, bpfkit_format_name(det));
		if (cases[i].f != BPFKIT_FMT_ASM)
			CHECK_MSG(rc == 0, "case %zu: %s", i, err.message);
		if (rc == 0)
			bpfkit_prog_free(NULL, &p);
	}
}

/* ---- allocation failure: every Nth allocation, no leak ---- */

struct failer {
	long countdown;
	long live;
};

static void *fail_fn(void *ud, void *ptr, size_t size)
{
	struct failer *f = ud;
	if (size == 0) {
		if (ptr)
			f->live--;
		free(ptr);
		return NULL;
	}
	if (f->countdown-- == 0)
		return NULL;
	void *p = realloc(ptr, size);
	if (p && !ptr)
		f->live++;
	return p;
}

TEST(fmt_oom)
{
	struct bpfkit_insn prog[200];
	uint64_t seed = 5;
	size_t n = randprog_gen(&seed, prog, 200, 64, RANDPROG_ANC);
	for (size_t i = 0; i < n; i++)
		if (prog[i].code == 0x81) /* keep the listing exact */
			prog[i].code = 0x80;
	for (int f = BPFKIT_FMT_ASM; f <= BPFKIT_FMT_DOT; f++) {
		char *text = NULL;
		size_t len = 0;
		int ok = 0;
		for (long fail = 0; fail < 100000 && !ok; fail++) {
			struct failer fl = {fail, 0};
			struct bpfkit_alloc a = {fail_fn, &fl};
			struct bpfkit_error err;
			char *t = (char *)1;
			size_t l = 7;
			if (bpfkit_prog_format(prog, n, (enum bpfkit_format)f, &a, &t, &l, &err)) {
				CHECK_STR(err.message, "out of memory");
				CHECK(t == NULL && l == 0);
			} else {
				bpfkit_free(&a, t);
				ok = 1;
			}
			CHECK_MSG(fl.live == 0, "format %d fail %ld: %ld leaked", f, fail, fl.live);
		}
		CHECK(ok);
		if (f == BPFKIT_FMT_ASM || f == BPFKIT_FMT_DOT)
			continue;
		text = fmt(prog, n, (enum bpfkit_format)f, &len);
		ok = 0;
		for (long fail = 0; fail < 100000 && !ok && text; fail++) {
			struct failer fl = {fail, 0};
			struct bpfkit_alloc a = {fail_fn, &fl};
			struct bpfkit_error err;
			struct bpfkit_prog p = {(struct bpfkit_insn *)1, 3};
			if (bpfkit_prog_read(text, len, BPFKIT_FMT_AUTO, &a, &p, NULL, &err)) {
				CHECK_STR(err.message, "out of memory");
				CHECK(p.insns == NULL && p.len == 0);
			} else {
				CHECK(same_prog(p.insns, p.len, prog, n));
				bpfkit_prog_free(&a, &p);
				ok = 1;
			}
			CHECK_MSG(fl.live == 0, "read %d fail %ld: %ld leaked", f, fail, fl.live);
		}
		CHECK(ok);
		bpfkit_free(NULL, text);
	}
}
