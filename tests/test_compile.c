/*
 * test_compile.c - the pcap-filter compiler against libpcap, the oracle.
 *
 * libpcap's unoptimized program (pcap_compile with optimize 0) is the
 * meaning: for every packet, bpfkit's program must accept exactly when
 * libpcap's does.  Packets come from bpfkit's generator, cut short at random
 * lengths (loads past the end reject the whole packet, so order matters) and
 * with bytes that libpcap's program compares written where it loads them.
 * Golden files (tests/compile, NAME.filter) keep expected verdicts and errors
 * (BPFKIT_UPDATE_GOLDEN=1 rewrites the verdicts from libpcap).  vxlan and gateway,
 * which 1.10.3 cannot compile, are judged against libpcap master's expected -O0
 * programs in the corpus JSONL instead (master_rows).
 */
#include "harness.h"
#include "bpfkit.h"

#include <dirent.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const exprs[] = {
	"tcp port 80", "host 1.2.3.4", "src net 10.0.0.0/8", "udp portrange 10-20",
	"ether host 1:2:3:4:5:6", "ether broadcast", "ether multicast", "ip multicast",
	"ip6 multicast", "less 100", "greater 60", "len > 5", "tcp[0] = 1",
	"icmp[icmptype]=icmp-echo", "ip6[0]=1", "vlan 10 and ip", "vlan and vlan and ip",
	"mpls 5 and ip", "mpls and mpls 3 and ip", "pppoes 3 and ip", "pppoed",
	"ip proto 6", "proto 17", "ether proto 0x800", "llc", "arp", "rarp", "ip6 host ::1",
	"src or dst host 1.2.3.4", "src and dst host 10.0.0.1", "net 10", "port 53",
	"ether src 1:2:3:4:5:6", "tcp", "udp", "icmp", "icmp6", "ip6", "ip",
	"ip and tcp port 80", "host 1.2.3.4 and not 1.2.3.5", "tcp port 80 or 443",
	"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "udp[8:2] > 100 and ip[2:2] < 500",
	"ip[0] & 0xf != 5", "not ip6 or tcp dst port 22", "ip6 net fe80::/10",
	"ip6 and udp", "sctp", "igmp", "pim", "esp or ah", "ip[2:2] - 10 > len",
	"tcp[13] & 2 != 0 and tcp[(tcp[12] >> 4) * 4] = 0x47",
	"ip6 src host fe80::1 or dst port 443", "udp src port 53 and udp[10] & 0x80 = 0x80",
	"1 + 2 * 3 = 7", "-1 = 0xffffffff", "len % 7 = 3", "len / 3 > 20",
	"(ip or arp) and not broadcast", "dst portrange 1-1023",
	"icmp6[icmp6type] = icmp6-echo", "host 127.0.0.1", "tcp src port 1024 and dst net 192.168",
};

static const int dlts[] = {1, 12, 113, 276, 0, 108, 228, 229};

static void put_be(uint8_t *p, uint32_t c, int size, uint32_t v)
{
	for (int i = 0; i < size; i++)
		if ((uint32_t)i < c)
			p[i] = (uint8_t)(v >> (8 * (size - 1 - i)));
}

/* Runs both programs over generated packets; returns the number of disagreements. */
static long compare(const struct bpf_program *lib, const struct bpfkit_prog *bk, int dlt,
		    int npkts, unsigned *seed)
{
	uint32_t gl = dlt == 12 ? 101 : (uint32_t)dlt;
	if (!bpfkit_gen_supported(gl))
		gl = 1;
	struct bpfkit_gen *g;
	struct bpfkit_error err;
	if (bpfkit_gen_new(gl, 7, NULL, &g, &err) != 0)
		return -1;
	uint8_t buf[BPFKIT_GEN_MAX_FRAME];
	struct bpfkit_packet pk;
	long bad = 0;
	for (int i = 0; i < npkts; i++) {
		if (bpfkit_gen_next(g, buf, sizeof buf, &pk, &err) != 0)
			break;
		for (int v = 0; v < 4; v++) {
			uint32_t c = pk.caplen;
			if (v == 1 && c > 1)
				c = (uint32_t)rand_r(seed) % c;
			if (v >= 2 && lib->bf_len > 1) {
				unsigned j = 1 + (unsigned)rand_r(seed) % (lib->bf_len - 1);
				const struct bpf_insn *in = &lib->bf_insns[j], *ld = in - 1;
				if (BPF_CLASS(in->code) == BPF_JMP && BPF_CLASS(ld->code) == BPF_LD &&
				    BPF_MODE(ld->code) == BPF_ABS && ld->k < c) {
					int size = BPF_SIZE(ld->code) == BPF_B ? 1
						   : BPF_SIZE(ld->code) == BPF_H ? 2 : 4;
					put_be(buf + ld->k, c - ld->k, size, in->k);
				}
			}
			uint32_t a = bpf_filter(lib->bf_insns, buf, pk.wirelen, c);
			uint32_t b = bpf_filter((const struct bpf_insn *)bk->insns, buf, pk.wirelen, c);
			if (!a != !b)
				bad++;
		}
	}
	bpfkit_gen_free(g);
	return bad;
}

TEST(compile_verdicts_match_libpcap)
{
	unsigned seed = 1;
	for (size_t d = 0; d < sizeof dlts / sizeof dlts[0]; d++) {
		for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
			pcap_t *p = pcap_open_dead(dlts[d], 262144);
			struct bpf_program fp;
			int lerr = pcap_compile(p, &fp, exprs[i], 0, PCAP_NETMASK_UNKNOWN);
			for (int opt = 0; opt <= 1; opt++) {
				struct bpfkit_compile_opts o = {.linktype = dlts[d], .optimize = opt};
				struct bpfkit_prog prog;
				struct bpfkit_error err;
				int berr = bpfkit_compile(exprs[i], &o, &prog, &err);
				if (opt && berr && !lerr && strstr(err.message, "rejects all packets")) {
					/* Optimizing, both refuse a filter that accepts nothing. */
					struct bpf_program f1;
					int l1 = pcap_compile(p, &f1, exprs[i], 1, PCAP_NETMASK_UNKNOWN);
					CHECK_MSG(l1 != 0, "[%s] on %d: bpfkit -O1 says it rejects all "
						  "packets, libpcap -O1 compiles it", exprs[i], dlts[d]);
					if (l1 == 0)
						pcap_freecode(&f1);
					continue;
				}
				CHECK_MSG(!lerr == !berr, "[%s] on %d: libpcap %s, bpfkit %s",
					  exprs[i], dlts[d], lerr ? pcap_geterr(p) : "ok",
					  berr ? err.message : "ok");
				if (lerr || berr) {
					if (!berr)
						bpfkit_prog_free(NULL, &prog);
					continue;
				}
				long bad = compare(&fp, &prog, dlts[d], 150, &seed);
				CHECK_MSG(bad == 0, "[%s] on dlt %d -O%d: %ld verdicts differ",
					  exprs[i], dlts[d], opt, bad);
				bpfkit_prog_free(NULL, &prog);
			}
			if (!lerr)
				pcap_freecode(&fp);
			pcap_close(p);
		}
	}
}

static const struct {
	const char *expr;
	int column;
	const char *msg;
} errors[] = {
	{"tcp port 80 and hots 1.2.3.4", 17, "unknown keyword 'hots'"},
	{"port 80000", 1, "port 80000 out of range"},
	{"ip6 host 10.0.0.1", 1, "IPv6 address"},
	{"ether host 1.2.3.4", 1, "MAC address"},
	{"tcp or 80", 8, "qualifier"},
	{"ip proto tcp", 10, "keyword"},
	{"tcp[0:3] = 1", 7, "data size must be 1, 2, or 4"},
	{"len / 0 = 1", 7, "division by zero"},
	{"host 10.0.0.1 and (", 20, "syntax error"},
	{"net 10.0.0.1/8", 1, "non-network bits"},
	{"ip $", 4, "illegal character"},
	{"vlan 5000", 1, "out of range"},
};

TEST(compile_errors_name_the_column)
{
	for (size_t i = 0; i < sizeof errors / sizeof errors[0]; i++) {
		struct bpfkit_prog prog;
		struct bpfkit_error err;
		int rc = bpfkit_compile(errors[i].expr, NULL, &prog, &err);
		CHECK_MSG(rc == -1, "[%s] compiled", errors[i].expr);
		if (rc == 0) {
			bpfkit_prog_free(NULL, &prog);
			continue;
		}
		CHECK_MSG(err.column == errors[i].column, "[%s] column %d, want %d (%s)",
			  errors[i].expr, err.column, errors[i].column, err.message);
		CHECK_CONTAINS(err.message, errors[i].msg);
		/* libpcap refuses these too */
		pcap_t *p = pcap_open_dead(1, 262144);
		struct bpf_program fp;
		CHECK_MSG(pcap_compile(p, &fp, errors[i].expr, 0, PCAP_NETMASK_UNKNOWN) != 0,
			  "libpcap accepts [%s]", errors[i].expr);
		pcap_close(p);
	}
}

TEST(compile_long_filter_uses_far_jumps)
{
	/* 300 hosts: offsets beyond 255 need ja; verdicts must still match */
	size_t cap = 300 * 24;
	char *e = malloc(cap);
	CHECK(e != NULL);
	if (!e)
		return;
	size_t n = 0;
	for (int i = 0; i < 300; i++)
		n += (size_t)snprintf(e + n, cap - n, "%shost 10.0.%d.%d", i ? " or " : "",
				      i / 250, i % 250 + 1);
	struct bpfkit_prog prog;
	struct bpfkit_error err;
	CHECK_EQ(bpfkit_compile(e, NULL, &prog, &err), 0);
	bool far = false;
	for (size_t i = 0; i < prog.len; i++)
		far |= prog.insns[i].code == (BPFKIT_JMP | BPFKIT_JA);
	CHECK(far);
	CHECK_EQ(bpfkit_validate(prog.insns, prog.len, BPFKIT_VALIDATE_PCAP, &err), 0);
	pcap_t *p = pcap_open_dead(1, 262144);
	struct bpf_program fp;
	CHECK_EQ(pcap_compile(p, &fp, e, 0, PCAP_NETMASK_UNKNOWN), 0);
	unsigned seed = 3;
	CHECK_EQ(compare(&fp, &prog, 1, 100, &seed), 0);
	pcap_freecode(&fp);
	pcap_close(p);
	bpfkit_prog_free(NULL, &prog);
	free(e);
}

TEST(compile_linktype_names)
{
	CHECK_EQ(bpfkit_linktype_parse("en10mb"), 1);
	CHECK_EQ(bpfkit_linktype_parse("DLT_LINUX_SLL2"), 276);
	CHECK_EQ(bpfkit_linktype_parse("RAW"), 12);
	CHECK_EQ(bpfkit_linktype_parse("113"), 113);
	CHECK_EQ(bpfkit_linktype_parse("nosuch"), -1);
	CHECK_STR(bpfkit_linktype_name(101), "RAW");
	CHECK(bpfkit_linktype_name(65000) == NULL);
	struct bpfkit_compile_opts o = {.linktype = 147};
	struct bpfkit_prog prog;
	struct bpfkit_error err;
	CHECK_EQ(bpfkit_compile("ip", &o, &prog, &err), -1);
	CHECK_CONTAINS(err.message, "not supported");
}

TEST(compile_empty_accepts_with_snaplen)
{
	struct bpfkit_compile_opts o = {.linktype = 1, .snaplen = 96};
	struct bpfkit_prog prog;
	struct bpfkit_error err;
	CHECK_EQ(bpfkit_compile("", &o, &prog, &err), 0);
	CHECK_EQ(prog.len, 1);
	CHECK_EQ(prog.insns[0].k, 96);
	bpfkit_prog_free(NULL, &prog);
}

/* ---- golden files ---- */

static int hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/*
 * One golden file: "expr EXPRESSION", "link NAME", then either
 * "error COLUMN TEXT" or lines "accept HEX" / "reject HEX" (a packet and the
 * verdict libpcap's unoptimized program gives it).  '#' starts a comment.
 */
static void golden(const char *path, bool update)
{
	size_t len;
	char *text = harness_read_file(path, &len);
	CHECK_MSG(text != NULL, "cannot read %s", path);
	if (!text)
		return;
	char expr[1024] = "", link[64] = "EN10MB";
	FILE *out = NULL;
	char tmp[1100];
	if (update) {
		snprintf(tmp, sizeof tmp, "%s.new", path);
		out = fopen(tmp, "w");
	}
	struct bpfkit_prog prog = {0};
	struct bpf_program fp = {0};
	pcap_t *p = NULL;
	bool compiled = false;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char word[16];
		int off = 0;
		if (line[0] == '#' || sscanf(line, "%15s %n", word, &off) < 1) {
			if (out)
				fprintf(out, "%s\n", line);
			continue;
		}
		const char *rest = line + off;
		if (strcmp(word, "expr") == 0) {
			snprintf(expr, sizeof expr, "%s", rest);
		} else if (strcmp(word, "link") == 0) {
			snprintf(link, sizeof link, "%s", rest);
		} else if (strcmp(word, "error") == 0) {
			int col = atoi(rest);
			const char *want = strchr(rest, ' ');
			struct bpfkit_compile_opts o = {.linktype = bpfkit_linktype_parse(link)};
			struct bpfkit_error err;
			int rc = bpfkit_compile(expr, &o, &prog, &err);
			CHECK_MSG(rc == -1, "%s: [%s] compiled", path, expr);
			if (rc == 0)
				bpfkit_prog_free(NULL, &prog);
			else {
				CHECK_MSG(err.column == col, "%s: column %d, want %d", path, err.column,
					  col);
				CHECK_CONTAINS(err.message, want ? want + 1 : "");
			}
		} else if (strcmp(word, "accept") == 0 || strcmp(word, "reject") == 0) {
			if (!compiled) {
				int dlt = bpfkit_linktype_parse(link);
				struct bpfkit_compile_opts o = {.linktype = dlt};
				struct bpfkit_error err;
				CHECK_MSG(bpfkit_compile(expr, &o, &prog, &err) == 0, "%s: %s", path,
					  err.message);
				p = pcap_open_dead(dlt, 262144);
				CHECK(pcap_compile(p, &fp, expr, 0, PCAP_NETMASK_UNKNOWN) == 0);
				compiled = true;
			}
			uint8_t pkt[2048];
			size_t n = 0;
			for (const char *h = rest; hexval(h[0]) >= 0 && hexval(h[1]) >= 0 &&
			     n < sizeof pkt; h += 2)
				pkt[n++] = (uint8_t)(hexval(h[0]) << 4 | hexval(h[1]));
			bool want = strcmp(word, "accept") == 0;
			if (update && fp.bf_insns)
				want = bpf_filter(fp.bf_insns, pkt, (u_int)n, (u_int)n) != 0;
			bool got = prog.insns && bpfkit_interp(prog.insns, prog.len, pkt,
								(uint32_t)n, (uint32_t)n, NULL) != 0;
			CHECK_MSG(got == want, "%s: [%s] %s packet %s", path, expr,
				  got ? "accepts" : "rejects", rest);
			if (out) {
				fprintf(out, "%s %s\n", want ? "accept" : "reject", rest);
				continue;
			}
		}
		if (out)
			fprintf(out, "%s\n", line);
	}
	if (out) {
		fclose(out);
		rename(tmp, path);
	}
	bpfkit_prog_free(NULL, &prog);
	if (fp.bf_insns)
		pcap_freecode(&fp);
	if (p)
		pcap_close(p);
	free(text);
}

TEST(compile_golden_files)
{
	const char *dir = "tests/compile";
	DIR *d = opendir(dir);
	if (!d)
		SKIP("%s absent (run from the source tree)", dir);
	bool update = getenv("BPFKIT_UPDATE_GOLDEN") && atoi(getenv("BPFKIT_UPDATE_GOLDEN"));
	int files = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n < 8 || strcmp(de->d_name + n - 7, ".filter") != 0)
			continue;
		char path[512];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		golden(path, update);
		files++;
	}
	closedir(d);
	CHECK(files > 0);
}

/* ---- vxlan: libpcap master's meaning, from the corpus's expected programs ---- */

/* The JSON string value of key in one JSONL line (\n \t \" \\ undone); NULL if absent. */
static char *json_str(const char *line, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof pat, "\"%s\": \"", key);
	const char *p = strstr(line, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	char *out = malloc(strlen(p) + 1), *o = out;
	if (!out)
		return NULL;
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			*o++ = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
		} else {
			*o++ = *p;
		}
	}
	*o = 0;
	return out;
}

/*
 * Runs p over pkt, noting for each conditional jump on a loaded value the byte
 * offset, size and constant it compares (the loaded value may have been masked).
 * Returns the number of sites noted.
 */
struct vx_site {
	uint32_t off, k, mask;
	int size;
	bool jset;
};

static int vx_trace(const struct bpf_insn *p, unsigned n, const uint8_t *pkt, uint32_t len,
		    struct vx_site *sites, int max)
{
	uint32_t a = 0, x = 0, mem[16] = {0};
	int64_t aoff = -1;
	int asize = 0, ns = 0;
	uint32_t amask = 0;
	for (unsigned pc = 0, steps = 0; pc < n && steps < 10000; pc++, steps++) {
		const struct bpf_insn *in = &p[pc];
		uint32_t k = in->k;
		switch (BPF_CLASS(in->code)) {
		case BPF_LD: {
			if (BPF_MODE(in->code) == BPF_IMM) { a = k; aoff = -1; break; }
			if (BPF_MODE(in->code) == BPF_MEM) { a = mem[k & 15]; aoff = -1; break; }
			if (BPF_MODE(in->code) == BPF_LEN) { a = len; aoff = -1; break; }
			uint32_t off = BPF_MODE(in->code) == BPF_IND ? x + k : k;
			int size = BPF_SIZE(in->code) == BPF_B ? 1
				   : BPF_SIZE(in->code) == BPF_H ? 2 : 4;
			if (off > len || (uint32_t)size > len - off)
				return ns;
			a = 0;
			for (int i = 0; i < size; i++)
				a = a << 8 | pkt[off + i];
			aoff = off;
			asize = size;
			amask = 0xffffffffu;
			break;
		}
		case BPF_LDX:
			if (BPF_MODE(in->code) == BPF_IMM) x = k;
			else if (BPF_MODE(in->code) == BPF_MEM) x = mem[k & 15];
			else if (BPF_MODE(in->code) == BPF_LEN) x = len;
			else if (k < len) x = 4u * (pkt[k] & 0xfu);
			else return ns;
			break;
		case BPF_ST: mem[k & 15] = a; break;
		case BPF_STX: mem[k & 15] = x; break;
		case BPF_RET: return ns;
		case BPF_MISC:
			if (BPF_MISCOP(in->code) == BPF_TAX) x = a;
			else { a = x; aoff = -1; }
			break;
		case BPF_ALU: {
			uint32_t v = BPF_SRC(in->code) == BPF_X ? x : k;
			switch (BPF_OP(in->code)) {
			case BPF_ADD: a += v; aoff = -1; break;
			case BPF_SUB: a -= v; aoff = -1; break;
			case BPF_MUL: a *= v; aoff = -1; break;
			case BPF_OR: a |= v; aoff = -1; break;
			case BPF_AND: a &= v; amask &= v; break;
			case BPF_LSH: a = v < 32 ? a << v : 0; aoff = -1; break;
			case BPF_RSH: a = v < 32 ? a >> v : 0; aoff = -1; break;
			default: aoff = -1; break;
			}
			break;
		}
		case BPF_JMP: {
			if (BPF_OP(in->code) == BPF_JA) { pc += k; break; }
			uint32_t v = BPF_SRC(in->code) == BPF_X ? x : k;
			if (aoff >= 0 && BPF_SRC(in->code) == BPF_K && ns < max)
				sites[ns++] = (struct vx_site){(uint32_t)aoff, k, amask, asize,
							       BPF_OP(in->code) == BPF_JSET};
			bool c = BPF_OP(in->code) == BPF_JEQ ? a == v
				 : BPF_OP(in->code) == BPF_JGT ? a > v
				 : BPF_OP(in->code) == BPF_JGE ? a >= v : (a & v) != 0;
			pc += c ? in->jt : in->jf;
			break;
		}
		}
	}
	return ns;
}

/* p loads a scratch word that it never stores (libpcap master's radiotap code). */
static bool vx_reads_unset(const struct bpf_program *p)
{
	bool stored[16] = {false};
	for (unsigned i = 0; i < p->bf_len; i++)
		if (BPF_CLASS(p->bf_insns[i].code) == BPF_ST ||
		    BPF_CLASS(p->bf_insns[i].code) == BPF_STX)
			stored[p->bf_insns[i].k & 15] = true;
	for (unsigned i = 0; i < p->bf_len; i++) {
		uint16_t c = p->bf_insns[i].code;
		if ((BPF_CLASS(c) == BPF_LD || BPF_CLASS(c) == BPF_LDX) &&
		    BPF_MODE(c) == BPF_MEM && !stored[p->bf_insns[i].k & 15])
			return true;
	}
	return false;
}

/* Branch-directed and generated packets through both programs; disagreements. */
static long vx_compare(const struct bpf_program *ref, const struct bpfkit_prog *bk, int dlt,
		       unsigned *seed)
{
	enum { PKT = 200, QMAX = 6000 };
	static uint8_t q[QMAX][PKT];
	static uint32_t qlen[QMAX];
	static uint64_t qhash[QMAX];
	int nq = 0;
	struct bpfkit_gen *g = NULL;
	struct bpfkit_error err;
	if (bpfkit_gen_supported((uint32_t)dlt) &&
	    bpfkit_gen_new((uint32_t)dlt, 11, NULL, &g, &err) == 0) {
		uint8_t buf[BPFKIT_GEN_MAX_FRAME];
		struct bpfkit_packet pk;
		for (int i = 0; i < 300 && nq < 60; i++) {
			if (bpfkit_gen_next(g, buf, sizeof buf, &pk, &err) != 0)
				break;
			uint32_t c = pk.caplen < PKT ? pk.caplen : PKT;
			memcpy(q[nq], buf, c);
			memset(q[nq] + c, 0, PKT - c);
			qhash[nq] = (uint64_t)nq;
			qlen[nq++] = c;
		}
		bpfkit_gen_free(g);
	}
	memset(q[nq], 0, PKT);
	qhash[nq] = (uint64_t)nq;
	qlen[nq++] = PKT;
	long bad = 0, nacc = 0;
	static uint64_t keys[QMAX];
	int nkeys = 0;
	for (int i = 0; i < nq; i++) {
		struct vx_site sites[128];
		int ns = vx_trace(ref->bf_insns, ref->bf_len, q[i], PKT, sites, 64);
		ns += vx_trace((const struct bpf_insn *)bk->insns, (unsigned)bk->len, q[i], PKT,
			       sites + ns, 64);
		for (int s = 0; s < ns && nq + 2 <= QMAX; s++) {
			for (int d = 0; d < 2; d++) {
				/* each distinct write a few times: deep paths get their turn */
				uint64_t key = (uint64_t)sites[s].off << 40 ^
					       (uint64_t)sites[s].size << 36 ^
					       ((uint64_t)sites[s].k + (uint64_t)d);
				int uses = 0;
				for (int j = 0; j < nkeys; j++)
					uses += keys[j] == key;
				if (uses >= 6 || nkeys == QMAX)
					continue;
				keys[nkeys++] = key;
				memcpy(q[nq], q[i], PKT);
				const struct vx_site *st = &sites[s];
				uint32_t old = 0;
				for (int j = 0; j < st->size && st->off + (uint32_t)j < PKT; j++)
					old |= (uint32_t)q[i][st->off + (uint32_t)j]
					       << (8 * (st->size - 1 - j));
				uint32_t kd = st->k + (uint32_t)d;
				uint32_t nv = st->jset ? (d ? old & ~st->k : old | st->k)
					      : (old & ~st->mask) | (kd & st->mask);
				put_be(q[nq] + st->off, PKT - st->off, st->size, nv);
				uint64_t h = 1469598103934665603u;
				for (int j = 0; j < PKT; j++)
					h = (h ^ q[nq][j]) * 1099511628211u;
				int seen = 0;
				for (int j = 0; j < nq && !seen; j++)
					seen = qhash[j] == h;
				if (!seen) {
					qhash[nq] = h;
					qlen[nq++] = PKT;
				}
			}
		}
		for (int v = 0; v < 3; v++) {
			uint32_t c = v == 0 ? qlen[i] : (uint32_t)rand_r(seed) % (qlen[i] + 1);
			uint32_t a = bpf_filter(ref->bf_insns, q[i], c + 100, c);
			uint32_t b = bpf_filter((const struct bpf_insn *)bk->insns, q[i], c + 100,
						c);
			if (!a != !b)
				bad++;
			nacc += a != 0;
		}
	}
	if (nacc == 0)
		bad++;   /* no packet reached an accept: the comparison would mean nothing */
	return bad;
}

/*
 * The corpus rows whose expression contains word, against libpcap master's expected
 * -O0 programs (exp_unopt_bpf, tcpdump -d text): accept rows must compile and give
 * master's verdicts, reject rows must be refused.  Rows whose names are not in the
 * name databases (bpfkit says "unknown") count in *nodb and are not judged.
 */
static void master_rows(const char *word, int *accepts, int *rejects, int *nodb)
{
	char *data = harness_read_file(harness_shared_path("corpus/libpcap-filters.jsonl"), NULL);
	*accepts = *rejects = *nodb = 0;
	if (!data)
		return;
	unsigned seed = 7;
	for (char *line = data, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		char *expr = json_str(line, "expr");
		if (!expr || !strstr(expr, word)) {
			free(expr);
			continue;
		}
		char *kind = json_str(line, "kind"), *dltname = json_str(line, "dlt");
		char *bpf = json_str(line, "exp_unopt_bpf");
		int dlt = dltname ? bpfkit_linktype_parse(dltname) : -1;
		struct bpfkit_compile_opts o = {.linktype = dlt, .optimize = 0};
		struct bpfkit_prog prog;
		struct bpfkit_error err;
		if (kind && strcmp(kind, "reject") == 0) {
			int r = bpfkit_compile(expr, &o, &prog, &err);
			CHECK_MSG(r != 0, "[%s] on %s: master refuses it, bpfkit compiles it",
				  expr, dltname);
			if (r == 0)
				bpfkit_prog_free(NULL, &prog);
			(*rejects)++;
		} else if (kind && strcmp(kind, "reject") != 0 && bpf && dlt >= 0) {
			struct bpfkit_prog ref;
			int r = bpfkit_prog_read(bpf, strlen(bpf), BPFKIT_FMT_LISTING, NULL, &ref,
						 NULL, &err);
			CHECK_MSG(r == 0, "[%s]: expected program unreadable: %s", expr,
				  err.message);
			int c = bpfkit_compile(expr, &o, &prog, &err);
			bool nonames = c != 0 && strstr(line, "\"needs_namedb\": \"\"") == NULL &&
				       strstr(err.message, "unknown");
			/* link types the compiler does not know yet are not judged here */
			bool nolink = c != 0 &&
				      strstr(err.message, "not supported by the compiler");
			CHECK_MSG(c == 0 || nonames || nolink, "[%s] on %s: bpfkit refuses: %s",
				  expr, dltname, c ? err.message : "");
			*nodb += nonames;
			if (r == 0 && c == 0) {
				struct bpf_program fp = {(unsigned)ref.len,
							 (struct bpf_insn *)ref.insns};
				/* master's program is no meaning there: bpfkit compiling is all */
				long bad = vx_reads_unset(&fp) ? 0
					   : vx_compare(&fp, &prog, dlt, &seed);
				CHECK_MSG(bad == 0, "[%s] on %s: %ld verdicts differ from master",
					  expr, dltname, bad);
			}
			if (r == 0)
				bpfkit_prog_free(NULL, &ref);
			if (c == 0)
				bpfkit_prog_free(NULL, &prog);
			(*accepts)++;
		}
		free(expr);
		free(kind);
		free(dltname);
		free(bpf);
	}
	free(data);
}

TEST(compile_vxlan_matches_master)
{
	int acc, rej, nodb;
	master_rows("vxlan", &acc, &rej, &nodb);
	if (acc + rej == 0)
		SKIP("../shared/corpus/libpcap-filters.jsonl absent");
	CHECK_MSG(acc >= 4 && rej >= 4, "%d accept and %d reject vxlan rows", acc, rej);
}

/* gateway: 1.10.3 never compiles it; the rows need the corpus's name-database lines
 * (tests/difftest.sh installs them in a private mount namespace). */
TEST(compile_gateway_matches_master)
{
	int acc, rej, nodb;
	master_rows("gateway", &acc, &rej, &nodb);
	if (acc + rej == 0)
		SKIP("../shared/corpus/libpcap-filters.jsonl absent");
	CHECK_MSG(acc >= 20 && rej >= 100, "%d accept and %d reject gateway rows", acc, rej);
	if (nodb == acc)
		SKIP("the corpus's /etc/hosts and /etc/ethers lines are not installed");
}

/* --dump-ir: every pass name is accepted and shows blocks; an unknown one is a usage error. */
TEST(compile_dump_ir)
{
	char cmd[512], *out = NULL, *err = NULL;
	for (const char *const *p = bpfkit_compile_passes(); *p; p++) {
		snprintf(cmd, sizeof cmd, "%s compile --dump-ir %s 'tcp port 80'", harness_bin(), *p);
		CHECK_EQ(harness_run(cmd, &out, &err), 0);
		CHECK_CONTAINS(out, "entry b");
		CHECK_CONTAINS(out, "ret #262144");
		if (strcmp(*p, "codegen") != 0)
			CHECK_CONTAINS(out, "; after ");
		free(out);
		free(err);
	}
	snprintf(cmd, sizeof cmd, "%s compile --dump-ir nosuchpass ip", harness_bin());
	CHECK_EQ(harness_run(cmd, &out, &err), 2);
	CHECK_CONTAINS(err, "nosuchpass");
	free(out);
	free(err);
	char *text = NULL;
	struct bpfkit_error e;
	CHECK(bpfkit_compile_dump("ip", NULL, "nosuchpass", &text, &e) != 0);
	CHECK(text == NULL);
	/* -O0 runs no pass: the dump says so rather than printing nothing */
	struct bpfkit_compile_opts o = {.linktype = 1, .optimize = 0};
	CHECK_EQ(bpfkit_compile_dump("ip", &o, "thread", &text, &e), 0);
	CHECK_CONTAINS(text, "does not run");
	bpfkit_free(NULL, text);
}

/* Program sizes the optimizer must reach (each below libpcap 1.10.3's optimized size). */
TEST(compile_optimizer_sizes)
{
	static const struct { const char *expr; size_t max; } rows[] = {
		{"tcp port 80", 19},                                   /* libpcap: 20 */
		{"host 10.0.0.1 and port 53", 19},                     /* 19 */
		{"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", 12},  /* 12 */
		{"udp portrange 67-68", 21},                           /* 23 */
		{"ip6 and udp port 53", 10},                           /* 10 */
		/*
		 * libpcap: 20, by testing src 2 and 3 before dst 1 loads the
		 * destination, which accepts packets cut inside it that -O0
		 * rejects; bpfkit reloads the source once per family instead.
		 */
		{"host 1.1.1.1 or host 2.2.2.2 or host 3.3.3.3", 23},
		{"port 1 or port 2 or port 3 or port 4 or port 5 or port 6 or port 7 or port 8 "
		 "or port 9 or port 10", 50},                          /* 51 */
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		struct bpfkit_prog p;
		struct bpfkit_error e;
		CHECK_EQ(bpfkit_compile(rows[i].expr, NULL, &p, &e), 0);
		CHECK_MSG(p.len <= rows[i].max, "%s: %zu instructions, want <= %zu", rows[i].expr,
			  p.len, rows[i].max);
		bpfkit_prog_free(NULL, &p);
	}
}

/* Long lists compile in time linear in their length, and far jumps share trampolines. */
TEST(compile_long_lists)
{
	size_t cap = 8000 * 24;
	char *expr = malloc(cap);
	CHECK(expr != NULL);
	size_t at = 0;
	for (int i = 0; i < 8000; i++)
		at += (size_t)snprintf(expr + at, cap - at, "%shost 10.%d.%d.%d", i ? " or " : "",
				       i / 62500, i / 250 % 250, i % 250 + 1);
	struct bpfkit_prog p;
	struct bpfkit_error e;
	CHECK_EQ(bpfkit_compile(expr, NULL, &p, &e), 0);
	/* ~3 instructions per host (IPv4 and ARP/RARP share their lists) */
	CHECK_MSG(p.len < 8000 * 4, "%zu instructions for 8000 hosts", p.len);
	CHECK_EQ(bpfkit_validate(p.insns, p.len, BPFKIT_VALIDATE_PCAP, &e), 0);
	bpfkit_prog_free(NULL, &p);
	free(expr);
}
