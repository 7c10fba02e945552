/*
 * test_filter.c - `bpfkit filter` against libpcap and tcpdump.
 *
 * Verdicts: for every capture in ../shared/pcaps and ../shared/libpcap-tests/filter
 * and each expression that libpcap compiles for the capture's link type, the
 * program (passed as tcpdump -ddd text, read back by bpfkit's reader, as the
 * CLI does) must give the same verdict as pcap_offline_filter on every packet.
 * This runs in process over the same library calls the command makes
 * (bpfkit_capture_open_fd, bpfkit_capture_next, bpfkit_interp), and through
 * the real command for a sample of files.  Output: the packets that
 * `bpfkit filter -w` writes must equal those of `tcpdump -r IN -w OUT EXPR`
 * (bytes, caplen, wire length, microsecond time, read back with libpcap).
 * Errors: bad captures exit 1 naming the byte offset and leave no output
 * file; bad usage exits 2.
 *
 * Every test works in its own directory under /tmp, removed at the end.
 */
#include "harness.h"

#include "bpfkit.h"

#include <dirent.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* Expressions tried on every capture; those libpcap refuses for a link type are skipped. */
static const char *const exprs[] = {
	"", "ip", "tcp", "udp port 53", "ip6", "len > 100", "ether broadcast",
	"icmp or arp", "tcp[tcpflags] & tcp-syn != 0", "vlan", "ip[6:2] & 0x1fff != 0",
	"greater 1000",
};
#define NEXPRS (sizeof exprs / sizeof exprs[0])

struct tdir {
	char path[64];
	char buf[4][512]; /* scratch paths */
};

static void tdir_make(struct tdir *d)
{
	snprintf(d->path, sizeof d->path, "/tmp/bpfkit-filter-XXXXXX");
	if (!mkdtemp(d->path))
		abort();
}

static void tdir_remove(struct tdir *d)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", d->path);
}

/* d->path/name in scratch slot i. */
static const char *tpath(struct tdir *d, int i, const char *name)
{
	snprintf(d->buf[i], sizeof d->buf[i], "%s/%s", d->path, name);
	return d->buf[i];
}

static bool write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return false;
	bool ok = fwrite(data, 1, len, f) == len;
	return fclose(f) == 0 && ok;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void free2(char *a, char *b)
{
	free(a);
	free(b);
}

static bool bin_present(void)
{
	return access(harness_bin(), X_OK) == 0;
}

/* The last line of s (without its newline), in a static buffer. */
static const char *last_line(const char *s)
{
	static char line[128];
	line[0] = '\0';
	if (!s)
		return line;
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '\n')
		n--;
	size_t start = n;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	snprintf(line, sizeof line, "%.*s", (int)(n - start), s + start);
	return line;
}

/* libpcap's program as tcpdump -ddd text: the count, then "code jt jf k" lines. */
static char *ddd_text(const struct bpf_program *fp)
{
	size_t cap = 16 + (size_t)fp->bf_len * 48;
	char *s = malloc(cap);
	if (!s)
		abort();
	size_t n = (size_t)snprintf(s, cap, "%u\n", fp->bf_len);
	for (u_int i = 0; i < fp->bf_len; i++) {
		const struct bpf_insn *in = &fp->bf_insns[i];
		n += (size_t)snprintf(s + n, cap - n, "%u %u %u %u\n", in->code, in->jt, in->jf,
				      in->k);
	}
	return s;
}

/* One expression compiled for one capture: libpcap's program and bpfkit's reading of it. */
struct compiled {
	const char *expr;
	struct bpf_program fp;
	struct bpfkit_prog prog;
	char *ddd;
	uint64_t want, got;
};

/* Compiles every expression libpcap accepts for p's link type; returns how many. */
static size_t compile_all(pcap_t *p, struct compiled *cs)
{
	size_t n = 0;
	for (size_t i = 0; i < NEXPRS; i++) {
		struct compiled *c = &cs[n];
		memset(c, 0, sizeof *c);
		if (pcap_compile(p, &c->fp, exprs[i], 1, PCAP_NETMASK_UNKNOWN) != 0)
			continue;
		c->expr = exprs[i];
		c->ddd = ddd_text(&c->fp);
		struct bpfkit_error err;
		if (bpfkit_prog_read(c->ddd, strlen(c->ddd), BPFKIT_FMT_AUTO, NULL, &c->prog, NULL,
				     &err) != 0) {
			CHECK_MSG(0, "bpfkit cannot read libpcap's program for '%s': %s",
				  exprs[i], err.message);
			pcap_freecode(&c->fp);
			free(c->ddd);
			continue;
		}
		n++;
	}
	return n;
}

static void free_all(struct compiled *cs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		pcap_freecode(&cs[i].fp);
		bpfkit_prog_free(NULL, &cs[i].prog);
		free(cs[i].ddd);
	}
}

static bool is_capture_name(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && ((n > 5 && strcmp(name + n - 5, ".pcap") == 0) ||
				  (n > 7 && strcmp(name + n - 7, ".pcapng") == 0));
}

/* The capture files of directory rel under ../shared, sorted; count in *n (NULL: absent). */
static char **list_captures(const char *rel, size_t *n)
{
	struct dirent **ents;
	*n = 0;
	int k = scandir(harness_shared_path(rel), &ents, NULL, alphasort);
	if (k < 0)
		return NULL;
	char **names = calloc((size_t)k + 1, sizeof *names);
	if (!names)
		abort();
	for (int i = 0; i < k; i++) {
		if (is_capture_name(ents[i]->d_name)) {
			char path[1024];
			snprintf(path, sizeof path, "%s/%s", harness_shared_path(rel),
				 ents[i]->d_name);
			names[(*n)++] = strdup(path);
		}
		free(ents[i]);
	}
	free(ents);
	return names;
}

static void free_list(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/*
 * Reads path with libpcap and bpfkit in lockstep and runs every compiled
 * expression on each packet with both.  Returns the number of packets
 * compared, or -1 when libpcap cannot open the file.
 */
static long compare_file(const char *path)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(path, errbuf);
	if (!p)
		return -1;
	struct compiled cs[NEXPRS];
	size_t n = compile_all(p, cs);
	CHECK_MSG(n > 0, "%s: libpcap compiled none of the expressions", path);
	int fd = open(path, O_RDONLY);
	struct bpfkit_capture *cap = NULL;
	struct bpfkit_error err;
	if (fd < 0 || bpfkit_capture_open_fd(fd, 0, NULL, &cap, &err) != 0) {
		CHECK_MSG(0, "%s: libpcap opens it, bpfkit does not: %s", path,
			  fd < 0 ? "open failed" : err.message);
		if (fd >= 0)
			close(fd);
		free_all(cs, n);
		pcap_close(p);
		return 0;
	}
	long packets = 0;
	int r1, r2;
	for (;;) {
		struct pcap_pkthdr *h;
		const u_char *d;
		struct bpfkit_packet pkt;
		r1 = pcap_next_ex(p, &h, &d);
		r2 = bpfkit_capture_next(cap, &pkt, &err);
		if (r1 != 1 || r2 != 1)
			break;
		packets++;
		if (h->caplen != pkt.caplen || h->len != pkt.wirelen) {
			CHECK_MSG(0, "%s: packet %ld: libpcap caplen %u len %u, bpfkit %u %u",
				  path, packets, h->caplen, h->len, pkt.caplen, pkt.wirelen);
			break;
		}
		for (size_t i = 0; i < n; i++) {
			cs[i].want += pcap_offline_filter(&cs[i].fp, h, d) != 0;
			cs[i].got += bpfkit_interp(cs[i].prog.insns, cs[i].prog.len, pkt.data,
						   pkt.caplen, pkt.wirelen, NULL) != 0;
		}
	}
	/* Both end cleanly (libpcap -2, bpfkit 0) or both fail, at the same packet. */
	CHECK_MSG((r1 == -2 && r2 == 0) || (r1 == -1 && r2 == -1) || (r1 == 1 && r2 == 1),
		  "%s: after %ld packets libpcap says %d (%s), bpfkit %d (%s)", path, packets,
		  r1, r1 == -1 ? pcap_geterr(p) : "", r2, r2 < 0 ? err.message : "");
	for (size_t i = 0; i < n; i++)
		CHECK_MSG(cs[i].want == cs[i].got, "%s: '%s': libpcap matches %llu packets, "
			  "bpfkit %llu", path, cs[i].expr, (unsigned long long)cs[i].want,
			  (unsigned long long)cs[i].got);
	bpfkit_capture_close(cap);
	close(fd);
	free_all(cs, n);
	pcap_close(p);
	return packets;
}

static void compare_dir(const char *rel)
{
	size_t n;
	char **files = list_captures(rel, &n);
	if (!files || n == 0) {
		free_list(files, n);
		SKIP("%s absent: no captures to compare", harness_shared_path(rel));
	}
	size_t opened = 0;
	long packets = 0;
	for (size_t i = 0; i < n; i++) {
		long k = compare_file(files[i]);
		if (k >= 0) {
			opened++;
			packets += k;
		}
	}
	CHECK_MSG(opened * 2 > n, "%s: libpcap opened only %zu of %zu files", rel, opened, n);
	CHECK(packets > 0);
	if (getenv("BPFKIT_TEST_VERBOSE"))
		fprintf(stderr, "  %s: %zu files (%zu opened by libpcap), %ld packets\n", rel, n,
			opened, packets);
	free_list(files, n);
}

TEST(filter_verdicts_match_libpcap_on_shared_pcaps)
{
	compare_dir("pcaps");
}

TEST(filter_verdicts_match_libpcap_on_libpcap_tests)
{
	compare_dir("libpcap-tests/filter");
}

/* A sample of the captures: every STRIDE-th file plus every pcapng file. */
#define STRIDE 37

static bool sampled(const char *path, size_t i)
{
	size_t n = strlen(path);
	return i % STRIDE == 0 || (n > 7 && strcmp(path + n - 7, ".pcapng") == 0);
}

/* The CLI's -c count equals pcap_offline_filter's for a sample of files. */
TEST(filter_cli_counts_match_libpcap)
{
	if (!bin_present())
		SKIP("%s not built (make bpfkit)", harness_bin());
	size_t n;
	char **files = list_captures("pcaps", &n);
	if (!files || n == 0) {
		free_list(files, n);
		SKIP("%s absent", harness_shared_path("pcaps"));
	}
	struct tdir d;
	tdir_make(&d);
	size_t runs = 0;
	for (size_t f = 0; f < n; f++) {
		if (!sampled(files[f], f) || strstr(files[f], "/bench-"))
			continue;
		char errbuf[PCAP_ERRBUF_SIZE];
		pcap_t *p = pcap_open_offline(files[f], errbuf);
		if (!p)
			continue;
		struct compiled cs[NEXPRS];
		size_t nc = compile_all(p, cs);
		struct pcap_pkthdr *h;
		const u_char *data;
		int r;
		while ((r = pcap_next_ex(p, &h, &data)) == 1)
			for (size_t i = 0; i < nc; i++)
				cs[i].want += pcap_offline_filter(&cs[i].fp, h, data) != 0;
		/* Three expressions per file (the first, the middle, the last) keep it fast. */
		for (size_t i = 0; i < nc && r == -2; i += nc > 3 ? nc / 2 : 1) {
			const char *prog = tpath(&d, 0, "prog.ddd");
			CHECK(write_file(prog, cs[i].ddd, strlen(cs[i].ddd)));
			char *out, *err;
			int st = harness_bpfkit(&out, &err, "filter -c -p '%s' -r '%s'", prog, files[f]);
			CHECK_MSG(st == 0, "%s: exit %d: %s", files[f], st, err);
			char want[32];
			snprintf(want, sizeof want, "%llu", (unsigned long long)cs[i].want);
			CHECK_MSG(strcmp(last_line(out), want) == 0, "%s: '%s': bpfkit says %s, "
				  "libpcap %s", files[f], cs[i].expr, last_line(out), want);
			free2(out, err);
			runs++;
		}
		free_all(cs, nc);
		pcap_close(p);
	}
	CHECK(runs >= 10);
	tdir_remove(&d);
	free_list(files, n);
}

/*
 * The packets of two captures read back with libpcap (microseconds, as
 * tcpdump -w writes them) must be the same: count, time, caplen, len, bytes.
 * Seconds are compared modulo 2^32: a pcap record holds 32 bits, so tcpdump
 * -w wraps the times of pcapng packets after 2106 (time_2106_overflow.pcapng)
 * that bpfkit's pcapng output keeps.
 */
static void same_packets(const char *a, const char *b, const char *what)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *pa = pcap_open_offline(a, errbuf);
	CHECK_MSG(pa != NULL, "%s: %s: %s", what, a, errbuf);
	pcap_t *pb = pcap_open_offline(b, errbuf);
	CHECK_MSG(pb != NULL, "%s: %s: %s", what, b, errbuf);
	if (!pa || !pb) {
		if (pa)
			pcap_close(pa);
		if (pb)
			pcap_close(pb);
		return;
	}
	CHECK_EQ(pcap_datalink(pa), pcap_datalink(pb));
	long k = 0;
	for (;; k++) {
		struct pcap_pkthdr *ha, *hb;
		const u_char *da, *db;
		int ra = pcap_next_ex(pa, &ha, &da), rb = pcap_next_ex(pb, &hb, &db);
		if (ra != 1 || rb != 1) {
			CHECK_MSG(ra == -2 && rb == -2, "%s: packet %ld: ends %d vs %d", what, k,
				  ra, rb);
			break;
		}
		bool same = ha->caplen == hb->caplen && ha->len == hb->len &&
			    (uint32_t)ha->ts.tv_sec == (uint32_t)hb->ts.tv_sec &&
			    ha->ts.tv_usec == hb->ts.tv_usec &&
			    memcmp(da, db, ha->caplen) == 0;
		if (!same) {
			CHECK_MSG(0, "%s: packet %ld differs", what, k);
			break;
		}
	}
	pcap_close(pa);
	pcap_close(pb);
}

/* `bpfkit filter -w` writes what `tcpdump -w` writes, for pcap and pcapng inputs. */
TEST(filter_output_matches_tcpdump)
{
	if (!bin_present())
		SKIP("%s not built (make bpfkit)", harness_bin());
	if (system("tcpdump --version >/dev/null 2>&1") != 0)
		SKIP("tcpdump not installed");
	size_t n;
	char **files = list_captures("pcaps", &n);
	if (!files || n == 0) {
		free_list(files, n);
		SKIP("%s absent", harness_shared_path("pcaps"));
	}
	struct tdir d;
	tdir_make(&d);
	size_t compared = 0, pcapng = 0;
	for (size_t f = 0; f < n; f++) {
		if (!sampled(files[f], f) || strstr(files[f], "/bench-"))
			continue;
		char errbuf[PCAP_ERRBUF_SIZE];
		pcap_t *p = pcap_open_offline(files[f], errbuf);
		if (!p)
			continue;
		struct compiled cs[NEXPRS];
		size_t nc = compile_all(p, cs);
		/* The last expression libpcap took (a selective one), and "" (copy all). */
		for (size_t j = 0; j < 2 && nc > 0; j++) {
			struct compiled *c = j == 0 ? &cs[nc - 1] : &cs[0];
			const char *prog = tpath(&d, 0, "prog.ddd");
			const char *mine = tpath(&d, 1, "mine.cap");
			const char *theirs = tpath(&d, 2, "theirs.pcap");
			CHECK(write_file(prog, c->ddd, strlen(c->ddd)));
			char cmd[2048];
			snprintf(cmd, sizeof cmd, "tcpdump -r '%s' -w '%s' '%s'", files[f], theirs,
				 c->expr);
			if (harness_run(cmd, NULL, NULL) != 0)
				continue; /* tcpdump itself refuses the file */
			char *out, *err;
			int st = harness_bpfkit(&out, &err, "filter -p '%s' -r '%s' -w '%s'", prog, files[f],
				    mine);
			CHECK_MSG(st == 0, "%s: exit %d: %s", files[f], st, err);
			free2(out, err);
			char what[1200];
			snprintf(what, sizeof what, "%s '%s'", files[f], c->expr);
			same_packets(mine, theirs, what);
			/* pcapng in, pcapng out; pcap in, pcap out. */
			size_t la, lb;
			char *in = harness_read_file(files[f], &la);
			char *o = harness_read_file(mine, &lb);
			if (in && o && la >= 24 && lb >= 24) {
				bool ng_in = memcmp(in, "\x0a\x0d\x0d\x0a", 4) == 0;
				bool ng_out = memcmp(o, "\x0a\x0d\x0d\x0a", 4) == 0;
				CHECK_MSG(ng_in == ng_out, "%s: format changed", what);
				/* A host-order pcap keeps its 24 header bytes exactly. */
				if (!ng_in && memcmp(in, "\xd4\xc3\xb2\xa1", 4) == 0)
					CHECK_MSG(memcmp(in, o, 24) == 0, "%s: header changed", what);
				pcapng += ng_in;
			}
			free2(in, o);
			compared++;
		}
		free_all(cs, nc);
		pcap_close(p);
	}
	CHECK(compared >= 10);
	CHECK(pcapng >= 2);
	tdir_remove(&d);
	free_list(files, n);
}

/* A small valid capture to break (a few hundred bytes or more) from ../shared/pcaps. */
static char *pick_capture(size_t *len)
{
	static const char *const names[] = {"pcaps/IGMP_V2.pcap", "pcaps/afs.pcap",
					    "pcaps/3560_CDP.pcap"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char *data = harness_read_file(harness_shared_path(names[i]), len);
		if (data && *len > 200)
			return data;
		free(data);
	}
	return NULL;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	if (!d)
		return 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

TEST(filter_bad_captures_exit_1_and_leave_no_file)
{
	if (!bin_present())
		SKIP("%s not built (make bpfkit)", harness_bin());
	size_t len;
	char *cap = pick_capture(&len);
	if (!cap)
		SKIP("no sample capture in %s", harness_shared_path("pcaps"));
	struct tdir d;
	tdir_make(&d);
	const char *prog = tpath(&d, 0, "all.s");
	CHECK(write_file(prog, "ret #-1\n", 8));
	const char *trunc = tpath(&d, 1, "trunc.pcap");
	CHECK(write_file(trunc, cap, len - 7));
	const char *out = tpath(&d, 2, "out.pcap");
	char *o, *e;
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -p '%s' -r '%s' -w '%s'", prog, trunc, out), 1);
	CHECK_CONTAINS(e, "bpfkit: error: ");
	CHECK_CONTAINS(e, "trunc.pcap: byte ");
	CHECK_CONTAINS(e, "packets");
	CHECK(!exists(out));
	CHECK_EQ(count_entries(d.path), 2); /* only all.s and trunc.pcap: no temporary */
	free2(o, e);

	/* An existing output is left as it was. */
	CHECK(write_file(out, "old", 3));
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -p '%s' -r '%s' -w '%s'", prog, trunc, out), 1);
	size_t olen;
	char *old = harness_read_file(out, &olen);
	CHECK(old && olen == 3 && memcmp(old, "old", 3) == 0);
	free(old);
	free2(o, e);
	unlink(out);

	/* Junk: wrong magic at byte 0, through standard input too. */
	const char *junk = tpath(&d, 1, "junk.pcap");
	CHECK(write_file(junk, "this is not a capture file at all\n", 34));
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -p '%s' -r '%s' -w '%s'", prog, junk, out), 1);
	CHECK_CONTAINS(e, "junk.pcap: byte 0: ");
	CHECK(!exists(out));
	free2(o, e);
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -p '%s' < '%s'", prog, junk), 1);
	CHECK_CONTAINS(e, "bpfkit: error: <stdin>: byte 0: ");
	free2(o, e);
	/* A missing file. */
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -p '%s' -r '%s/none.pcap'", prog, d.path), 1);
	CHECK_CONTAINS(e, "bpfkit: error: ");
	free2(o, e);
	/* A bad program. */
	const char *bad = tpath(&d, 1, "bad.s");
	CHECK(write_file(bad, "ret #1\nbogus\n", 13));
	const char *good = tpath(&d, 3, "good.pcap");
	CHECK(write_file(good, cap, len));
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -p '%s' -r '%s'", bad, good), 1);
	CHECK_CONTAINS(e, "bad.s:2");
	free2(o, e);
	tdir_remove(&d);
	free(cap);
}

TEST(filter_usage_errors_exit_2)
{
	if (!bin_present())
		SKIP("%s not built (make bpfkit)", harness_bin());
	static const struct {
		const char *args, *want;
	} cases[] = {
		{"filter -Z -p x", "unknown option"},
		{"filter -e nope -p x", "unknown engine"},
		{"filter -l NOPE -p x", "unknown link type"},
		{"filter -l 70000 -p x", "unknown link type"},
		{"filter -O7 -p x", "-O"},
		{"filter -p x tcp", "not both"},
		{"filter -r", "needs an argument"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *o, *e;
		CHECK_MSG(harness_bpfkit(&o, &e, "%s", cases[i].args) == 2, "'%s' should exit 2",
			  cases[i].args);
		CHECK_CONTAINS(e, cases[i].want);
		free2(o, e);
	}
	char *o, *e;
	CHECK_EQ(harness_bpfkit(&o, &e, "filter --help"), 0);
	CHECK_CONTAINS(o, "usage: bpfkit filter");
	CHECK_CONTAINS(o, "-w, --write");
	free2(o, e);
}

/* libpcap's count of the packets of path that expr (-O0) accepts; -1 on error. */
static long libpcap_expr_count(const char *path, const char *expr)
{
	char eb[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(path, eb);
	if (!p)
		return -1;
	struct bpf_program prog;
	if (pcap_compile(p, &prog, expr, 0, PCAP_NETMASK_UNKNOWN) != 0) {
		pcap_close(p);
		return -1;
	}
	struct pcap_pkthdr *h;
	const u_char *d;
	long n = 0;
	while (pcap_next_ex(p, &h, &d) == 1)
		n += pcap_offline_filter(&prog, h, d) != 0;
	pcap_freecode(&prog);
	pcap_close(p);
	return n;
}

/* filter EXPRESSION compiles for the capture's link type and counts as libpcap does;
 * a bad expression exits 1 with the column and a caret. */
TEST(filter_expression_matches_libpcap)
{
	if (!bin_present())
		SKIP("%s not built (make bpfkit)", harness_bin());
	static const struct { const char *file, *expr; } cases[] = {
		{"pcaps/3560_CDP.pcap", "llc"},
		{"pcaps/3560_CDP.pcap", "not tcp and ether multicast"},
		{"pcaps/802.1D_spanning_tree.pcap", "stp"},
		{"pcaps/OSPFv2_Capture_FINAL.pcapng", "ip proto 89 and ip multicast"},
		{"libpcap-tests/filter/ipv6_ext_headers.pcap", "ip6 protochain 17"},
	};
	int ran = 0;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *path = harness_shared_path(cases[i].file);
		if (access(path, R_OK) != 0)
			continue;
		long want = libpcap_expr_count(path, cases[i].expr);
		if (want < 0)
			continue;
		char *o, *e;
		CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -r %s %s", path, cases[i].expr), 0);
		CHECK_MSG(strtol(o, NULL, 10) == want, "%s on %s: bpfkit %s, libpcap %ld",
			  cases[i].expr, cases[i].file, o, want);
		free2(o, e);
		ran++;
	}
	if (ran == 0)
		SKIP("no capture of ../shared found");
	char *o, *e;
	const char *path = harness_shared_path(cases[0].file);
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -r %s 'tcp port 80 and hots'", path), 1);
	CHECK_CONTAINS(e, "bpfkit: error: 1:17:");
	CHECK_CONTAINS(e, "^~~~");
	free2(o, e);
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -O0 -l RAW -r %s ip", path), 0);
	CHECK_CONTAINS(o, "0");
	free2(o, e);
}

/* Standard input and output, -c placement, the accept-all default and an empty pcapng output. */
TEST(filter_stdio_and_empty_outputs)
{
	if (!bin_present())
		SKIP("%s not built (make bpfkit)", harness_bin());
	const char *ng = harness_shared_path("pcaps/OSPFv2_Capture_FINAL.pcapng");
	size_t len;
	char *cap = harness_read_file(ng, &len);
	if (!cap)
		SKIP("%s absent", ng);
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(ng, errbuf);
	CHECK(p != NULL);
	long total = 0;
	struct pcap_pkthdr *h;
	const u_char *data;
	while (p && pcap_next_ex(p, &h, &data) == 1)
		total++;
	if (p)
		pcap_close(p);
	CHECK(total > 0);
	char want[32];
	snprintf(want, sizeof want, "%ld", total);

	struct tdir d;
	tdir_make(&d);
	const char *all = tpath(&d, 0, "all.ddd");
	CHECK(write_file(all, "1\n6 0 0 65535\n", 14));
	char *o, *e;
	/* No program: everything matches; no -w: the count is printed. */
	CHECK_EQ(harness_bpfkit(&o, &e, "filter < '%s'", ng), 0);
	CHECK_STR(last_line(o), want);
	free2(o, e);
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -p '%s' -r - < '%s'", all, ng), 0);
	CHECK_STR(last_line(o), want);
	free2(o, e);
	/* -w - writes the capture to stdout, the count goes to stderr. */
	const char *viafile = tpath(&d, 1, "file.pcapng");
	const char *viapipe = tpath(&d, 2, "pipe.pcapng");
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -p '%s' -r '%s' -w '%s'", all, ng, viafile), 0);
	free2(o, e);
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -p '%s' -r '%s' -w - > '%s'", all, ng, viapipe), 0);
	CHECK_STR(last_line(e), want);
	free2(o, e);
	size_t la, lb;
	char *a = harness_read_file(viafile, &la), *b = harness_read_file(viapipe, &lb);
	CHECK(a && b && la == lb && memcmp(a, b, la) == 0);
	CHECK(a && la >= 4 && memcmp(a, "\x0a\x0d\x0d\x0a", 4) == 0);
	free2(a, b);
	same_packets(ng, viafile, "copy of OSPFv2_Capture_FINAL.pcapng");
	/* Nothing matches: still a capture libpcap opens, with no packets. */
	const char *none = tpath(&d, 0, "none.ddd");
	CHECK(write_file(none, "1\n6 0 0 0\n", 10));
	const char *empty = tpath(&d, 1, "empty.pcapng");
	CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -p '%s' -r '%s' -w '%s'", none, ng, empty), 0);
	CHECK_STR(last_line(o), "0");
	free2(o, e);
	p = pcap_open_offline(empty, errbuf);
	CHECK_MSG(p != NULL, "empty output: %s", errbuf);
	if (p) {
		CHECK_EQ(pcap_next_ex(p, &h, &data), -2);
		pcap_close(p);
	}
	tdir_remove(&d);
	free(cap);
}

/* The packets of a capture as libpcap reads them; -1 when it cannot. */
static long libpcap_count(const char *path, int *linktype, int *snaplen, unsigned *maxcap)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(path, errbuf);
	if (!p)
		return -1;
	*linktype = pcap_datalink(p);
	*snaplen = pcap_snapshot(p);
	*maxcap = 0;
	long n = 0;
	struct pcap_pkthdr *h;
	const u_char *d;
	int r;
	while ((r = pcap_next_ex(p, &h, &d)) == 1) {
		n++;
		if (h->caplen > *maxcap)
			*maxcap = h->caplen;
	}
	pcap_close(p);
	return r == -2 ? n : -1;
}

/* bpfkit gen: deterministic, readable by libpcap, and the filter agrees with libpcap on it. */
TEST(filter_gen_command)
{
	if (!bin_present())
		SKIP("%s not built (make bpfkit)", harness_bin());
	struct tdir d;
	tdir_make(&d);
	const char *a = tpath(&d, 0, "a.pcap"), *b = tpath(&d, 1, "b.pcap");
	char *o, *e;
	CHECK_EQ(harness_bpfkit(&o, &e, "gen -n 500 -w '%s'", a), 0);
	free2(o, e);
	CHECK_EQ(harness_bpfkit(&o, &e, "gen -n 500 -S 1 -l EN10MB -w - > '%s'", b), 0);
	free2(o, e);
	size_t la, lb;
	char *x = harness_read_file(a, &la), *y = harness_read_file(b, &lb);
	CHECK_MSG(x && y && la == lb && memcmp(x, y, la) == 0, "same seed, different bytes");
	/* Nanosecond pcap magic in host order. */
	CHECK(x && la > 24 && memcmp(x, "\x4d\x3c\xb2\xa1", 4) == 0);
	free(y);
	CHECK_EQ(harness_bpfkit(&o, &e, "gen -n 500 -S 2 -w '%s'", b), 0);
	free2(o, e);
	y = harness_read_file(b, &lb);
	CHECK_MSG(x && y && (la != lb || memcmp(x, y, la) != 0), "seeds 1 and 2 gave one capture");
	free2(x, y);
	int lt, snap;
	unsigned maxcap;
	CHECK_EQ(libpcap_count(a, &lt, &snap, &maxcap), 500);
	CHECK_EQ(lt, DLT_EN10MB);
	CHECK_EQ(harness_bpfkit(&o, &e, "gen -n 0 -w '%s'", b), 0);
	CHECK_EQ(libpcap_count(b, &lt, &snap, &maxcap), 0);
	free2(o, e);

	/* Each link type libpcap knows; -s cuts packets and sets the snaplen. */
	static const struct {
		const char *name;
		int dlt;
	} types[] = {{"RAW", DLT_RAW}, {"linux_sll", DLT_LINUX_SLL}, {"NULL", DLT_NULL},
		     {"113", DLT_LINUX_SLL}};
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		CHECK_EQ(harness_bpfkit(&o, &e, "gen -l %s -n 50 -s 64 -w '%s'", types[i].name, b), 0);
		free2(o, e);
		CHECK_EQ(libpcap_count(b, &lt, &snap, &maxcap), 50);
		CHECK_MSG(lt == types[i].dlt, "-l %s: link type %d", types[i].name, lt);
		CHECK_EQ(snap, 64);
		CHECK(maxcap <= 64);
	}

	/* The generated mix through the filter, against libpcap. */
	long k = compare_file(a);
	CHECK_EQ(k, 500);
	const char *prog = tpath(&d, 2, "tcp.ddd");
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(a, errbuf);
	if (p) {
		struct compiled cs[NEXPRS];
		size_t nc = compile_all(p, cs);
		struct pcap_pkthdr *h;
		const u_char *data;
		while (pcap_next_ex(p, &h, &data) == 1)
			for (size_t i = 0; i < nc; i++)
				cs[i].want += pcap_offline_filter(&cs[i].fp, h, data) != 0;
		for (size_t i = 0; i < nc; i++) {
			CHECK(write_file(prog, cs[i].ddd, strlen(cs[i].ddd)));
			CHECK_EQ(harness_bpfkit(&o, &e, "filter -c -p '%s' -r '%s'", prog, a), 0);
			char want[32];
			snprintf(want, sizeof want, "%llu", (unsigned long long)cs[i].want);
			CHECK_MSG(strcmp(last_line(o), want) == 0, "'%s': bpfkit %s, libpcap %s",
				  cs[i].expr, last_line(o), want);
			/* A realistic mix: every expression matches some packets but not all. */
			if (cs[i].expr[0] && strcmp(cs[i].expr, "greater 1000") != 0)
				CHECK_MSG(cs[i].want > 0 && cs[i].want < 500, "'%s' matches %llu",
					  cs[i].expr, (unsigned long long)cs[i].want);
			free2(o, e);
		}
		free_all(cs, nc);
		pcap_close(p);
	}

	/* Usage errors. */
	static const char *const bad[] = {"", "-l IEEE802_11", "-l bogus", "-n ten", "-s 0",
					  "-n 5 extra"};
	const char *xfile = tpath(&d, 3, "x.pcap");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int st = i == 0 ? harness_bpfkit(&o, &e, "gen") : harness_bpfkit(&o, &e, "gen %s -w '%s'", bad[i], xfile);
		CHECK_MSG(st == 2, "'gen %s' should exit 2", bad[i]);
		CHECK_CONTAINS(e, "usage error");
		free2(o, e);
	}
	CHECK(!exists(xfile));
	tdir_remove(&d);
}
