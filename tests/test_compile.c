/*
 * test_compile.c - the pcap-filter compiler against libpcap, the oracle.
 *
 * libpcap's unoptimized program (pcap_compile with optimize 0) is the
 * meaning: for every packet, bpfkit's program must accept exactly when
 * libpcap's does.  Packets come from bpfkit's generator, cut short at random
 * lengths (loads past the end reject the whole packet, so order matters) and
 * with bytes that libpcap's program compares written where it loads them.
 * Golden files (tests/compile, NAME.filter) keep expected verdicts and errors
 * (BPFKIT_UPDATE_GOLDEN=1 rewrites the verdicts from libpcap).
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
