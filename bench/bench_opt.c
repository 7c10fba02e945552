/*
 * bench_opt.c - measures bpfkit's optimizer against libpcap's
 * (docs/optimizer-bench.md).  Measuring, not testing: it never fails on a
 * poor figure; it exits 2 only on usage or I/O errors.
 *
 *   bench/bench_opt [-s SHARED] [-o OUTDIR] [-l DLT,...] [-T SECONDS] [-n MAXPKTS]
 *                   [--no-namedb] [--skip-compile-time]
 *
 * 1. static: instructions over the accept rows of SHARED/corpus/libpcap-filters.tsv
 *    for 16 link types, bpfkit -O2 against libpcap's optimizer (pcap_compile
 *    optimize=1 on pcap_open_dead(dlt, row snaplen), the row's netmask or
 *    PCAP_NETMASK_UNKNOWN), counting only rows both compile.
 * 2. classic: the same for classic tcpdump filters on EN10MB.
 * 3. dynamic: instructions executed per packet (a counting interpreter with
 *    libpcap's semantics, the same for both programs) over the captures of
 *    SHARED/pcaps (MANIFEST.tsv; broken files and unreadable ones skipped)
 *    for the corpus rows of the link type, and the classic filters over
 *    bench-real.pcap.
 * 4. compile time: 2,000- and 8,000-term host / port / net lists; every
 *    compile runs in a forked child killed after -T seconds (default 60).
 *
 * Name databases: corpus rows marked needs_namedb assume the lines of
 * SHARED/corpus/namedb/ in /etc/hosts, ethers and networks.  When they are
 * missing the program re-runs itself in a private mount namespace (unshare
 * -m, as tests/difftest.sh does) where copies of those files with the lines
 * appended are mounted over /etc; /etc itself is never changed.  When that
 * is impossible (or with --no-namedb) such rows are skipped and counted.
 *
 * Output: a summary on standard output; TSV files OUTDIR/opt-static.tsv,
 * opt-static-rows.tsv, opt-classic.tsv, opt-dynamic.tsv, opt-dynamic-rows.tsv,
 * opt-compile.tsv.
 */
#define _GNU_SOURCE 1
#include "bpfkit.h"
#include "corpus.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(struct bpf_insn) == sizeof(struct bpfkit_insn), "insn layout");

/* The 16 link types bpfkit supports with the most accept rows in the corpus. */
static const char *const default_dlts =
	"IEEE802_11,EN10MB,RAW,FDDI,PFLOG,IPV4,IEEE802,NULL,LINUX_SLL2,LINUX_SLL,PPP,"
	"IEEE802_11_RADIO,LOOP,IEEE802_11_RADIO_AVS,PRISM_HEADER,PPI";

static const char *const classic[] = {
	"tcp port 80",
	"host 10.0.0.1 and port 53",
	"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
	"vlan and tcp",
	"vlan 100 and host 10.0.0.1",
	"ip6 and tcp",
	"port 53 or port 80 or port 443 or port 22 or port 25 or port 110 or port 143 "
	"or port 993 or port 995 or port 8080",
	NULL, /* the 50-port list, made at start */
	"net 10.0.0.0/8",
	"udp and not port 53",
	"icmp or arp",
	"ip and len > 100",
	"tcp",
	"udp port 53",
	"src host 192.168.1.1 and dst port 443",
	"ip6 and udp port 53",
	"tcp dst portrange 1-1023",
	"ether host 00:11:22:33:44:55",
	"not arp and not icmp",
	"tcp[13] & 2 != 0 and not src net 10.0.0.0/8",
	"ip[2:2] > 576",
	"ip proto 47 or ip proto 50",
	"(tcp or udp) and (port 80 or port 443)",
	"icmp6 or (ip6 and udp)",
	"ether broadcast or ether multicast",
};
#define NCLASSIC (sizeof classic / sizeof classic[0])

static struct {
	const char *shared;
	const char *outdir;
	const char *dlts;
	int timeout;
	size_t maxpkts;
	bool no_namedb;
	bool skip_compile_time;
} opt = {.outdir = "bench/out", .timeout = 60, .maxpkts = 20000};

static char *classic50;

static FILE *out_open(const char *name)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", opt.outdir, name);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "bench_opt: cannot write %s: %s\n", path, strerror(errno));
		exit(2);
	}
	return f;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : NAN;
}

/* ------------------------------------------------------------------ */
/* Compiling                                                           */

struct cprog {
	bool ok;
	struct bpfkit_insn *insns; /* malloc'd copy */
	size_t len;
	char err[256];
};

static void cprog_free(struct cprog *p)
{
	free(p->insns);
	memset(p, 0, sizeof *p);
}

static void compile_pcap(struct cprog *p, int dlt, uint32_t snaplen, const char *expr,
			 bool has_mask, uint32_t mask)
{
	memset(p, 0, sizeof *p);
	pcap_t *h = pcap_open_dead(dlt, (int)snaplen);
	if (!h) {
		snprintf(p->err, sizeof p->err, "pcap_open_dead failed");
		return;
	}
	struct bpf_program bp;
	if (pcap_compile(h, &bp, expr, 1, has_mask ? mask : PCAP_NETMASK_UNKNOWN) == 0) {
		p->ok = true;
		p->len = bp.bf_len;
		p->insns = xmalloc(p->len * sizeof *p->insns);
		memcpy(p->insns, bp.bf_insns, p->len * sizeof *p->insns);
		pcap_freecode(&bp);
	} else {
		snprintf(p->err, sizeof p->err, "%s", pcap_geterr(h));
	}
	pcap_close(h);
}

static void compile_bpfkit(struct cprog *p, int dlt, uint32_t snaplen, const char *expr,
			   bool has_mask, uint32_t mask)
{
	memset(p, 0, sizeof *p);
	struct bpfkit_compile_opts o = {.linktype = dlt, .snaplen = snaplen, .optimize = 2,
					.netmask = has_mask ? mask : 0,
					.flags = has_mask ? BPFKIT_COMPILE_NETMASK : 0};
	struct bpfkit_error err;
	struct bpfkit_prog bp;
	if (bpfkit_compile(expr, &o, &bp, &err) == 0) {
		p->ok = true;
		p->len = bp.len;
		p->insns = xmalloc(p->len * sizeof *p->insns);
		memcpy(p->insns, bp.insns, p->len * sizeof *p->insns);
		bpfkit_prog_free(NULL, &bp);
	} else {
		snprintf(p->err, sizeof p->err, "%s", err.message);
	}
}

/* ------------------------------------------------------------------ */
/* Counting interpreter: libpcap's semantics, plus the steps taken     */

static uint32_t count_run(const struct bpfkit_insn *p, size_t n, const uint8_t *d,
			  uint32_t caplen, uint32_t wirelen, uint64_t *steps)
{
	uint32_t A = 0, X = 0, M[BPFKIT_MEMWORDS] = {0};
	uint64_t s = 0;
	for (size_t pc = 0; pc < n; pc++) {
		const struct bpfkit_insn *i = &p[pc];
		uint32_t k = i->k;
		s++;
		switch (i->code) {
		case BPFKIT_RET | BPFKIT_K: *steps += s; return k;
		case BPFKIT_RET | BPFKIT_A: *steps += s; return A;
		case BPFKIT_LD | BPFKIT_W | BPFKIT_ABS:
		case BPFKIT_LD | BPFKIT_H | BPFKIT_ABS:
		case BPFKIT_LD | BPFKIT_B | BPFKIT_ABS:
		case BPFKIT_LD | BPFKIT_W | BPFKIT_IND:
		case BPFKIT_LD | BPFKIT_H | BPFKIT_IND:
		case BPFKIT_LD | BPFKIT_B | BPFKIT_IND: {
			uint64_t off = BPFKIT_MODE(i->code) == BPFKIT_IND ? (uint64_t)X + k : k;
			uint32_t size = BPFKIT_SIZE(i->code) == BPFKIT_W ? 4
				      : BPFKIT_SIZE(i->code) == BPFKIT_H ? 2 : 1;
			if (off > caplen || size > caplen - off)
				goto fail;
			const uint8_t *q = d + off;
			A = size == 4 ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
					(uint32_t)q[2] << 8 | q[3]
			  : size == 2 ? (uint32_t)q[0] << 8 | q[1] : q[0];
			break;
		}
		case BPFKIT_LD | BPFKIT_W | BPFKIT_LEN: A = wirelen; break;
		case BPFKIT_LDX | BPFKIT_W | BPFKIT_LEN: X = wirelen; break;
		case BPFKIT_LD | BPFKIT_IMM: A = k; break;
		case BPFKIT_LDX | BPFKIT_IMM: X = k; break;
		case BPFKIT_LD | BPFKIT_MEM: if (k >= BPFKIT_MEMWORDS) goto fail; A = M[k]; break;
		case BPFKIT_LDX | BPFKIT_MEM: if (k >= BPFKIT_MEMWORDS) goto fail; X = M[k]; break;
		case BPFKIT_LDX | BPFKIT_MSH | BPFKIT_B:
			if (k >= caplen)
				goto fail;
			X = (uint32_t)(d[k] & 0xf) << 2;
			break;
		case BPFKIT_ST: if (k >= BPFKIT_MEMWORDS) goto fail; M[k] = A; break;
		case BPFKIT_STX: if (k >= BPFKIT_MEMWORDS) goto fail; M[k] = X; break;
		case BPFKIT_JMP | BPFKIT_JA:
			if (k >= n - pc - 1) /* backward (libpcap protochain) or past the end */
				goto fail;
			pc += k;
			break;
		case BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K: pc += A == k ? i->jt : i->jf; break;
		case BPFKIT_JMP | BPFKIT_JGT | BPFKIT_K: pc += A > k ? i->jt : i->jf; break;
		case BPFKIT_JMP | BPFKIT_JGE | BPFKIT_K: pc += A >= k ? i->jt : i->jf; break;
		case BPFKIT_JMP | BPFKIT_JSET | BPFKIT_K: pc += A & k ? i->jt : i->jf; break;
		case BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_X: pc += A == X ? i->jt : i->jf; break;
		case BPFKIT_JMP | BPFKIT_JGT | BPFKIT_X: pc += A > X ? i->jt : i->jf; break;
		case BPFKIT_JMP | BPFKIT_JGE | BPFKIT_X: pc += A >= X ? i->jt : i->jf; break;
		case BPFKIT_JMP | BPFKIT_JSET | BPFKIT_X: pc += A & X ? i->jt : i->jf; break;
		case BPFKIT_MISC | BPFKIT_TAX: X = A; break;
		case BPFKIT_MISC | BPFKIT_TXA: A = X; break;
		default:
			if (BPFKIT_CLASS(i->code) == BPFKIT_ALU) {
				uint32_t b = BPFKIT_SRC(i->code) == BPFKIT_X ? X : k;
				switch (BPFKIT_OP(i->code)) {
				case BPFKIT_ADD: A += b; break;
				case BPFKIT_SUB: A -= b; break;
				case BPFKIT_MUL: A *= b; break;
				case BPFKIT_DIV: if (!b) goto fail; A /= b; break;
				case BPFKIT_MOD: if (!b) goto fail; A %= b; break;
				case BPFKIT_AND: A &= b; break;
				case BPFKIT_OR: A |= b; break;
				case BPFKIT_XOR: A ^= b; break;
				case BPFKIT_LSH: A = b < 32 ? A << b : 0; break;
				case BPFKIT_RSH: A = b < 32 ? A >> b : 0; break;
				case BPFKIT_NEG: A = 0u - A; break;
				default: goto fail;
				}
				break;
			}
			goto fail;
		}
	}
fail:
	*steps += s;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Packets per link type                                               */

struct pkt {
	uint8_t *data;
	uint32_t caplen, wirelen;
};

struct pool {
	int dlt;
	struct pkt *v;
	size_t n, cap, files, skipped_files;
};

static void pool_push(struct pool *p, const uint8_t *d, uint32_t caplen, uint32_t wirelen)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 256;
		p->v = xrealloc(p->v, p->cap * sizeof *p->v);
	}
	p->v[p->n].data = xmalloc(caplen);
	memcpy(p->v[p->n].data, d, caplen);
	p->v[p->n].caplen = caplen;
	p->v[p->n++].wirelen = wirelen;
}

/* Reads a capture into pool (libpcap's reader); false when unreadable. */
static bool pool_read(struct pool *p, const char *path, size_t max)
{
	char eb[PCAP_ERRBUF_SIZE];
	pcap_t *h = pcap_open_offline(path, eb);
	if (!h)
		return false;
	if (pcap_datalink(h) != p->dlt) {
		pcap_close(h);
		return false;
	}
	struct pcap_pkthdr *hd;
	const u_char *d;
	int r;
	size_t got = 0;
	while (got < max && (r = pcap_next_ex(h, &hd, &d)) == 1) {
		pool_push(p, d, hd->caplen, hd->len);
		got++;
	}
	pcap_close(h);
	return true;
}

/* Every non-broken capture of the link type but the benchmark aggregates. */
static void pool_load(struct pool *p, int dlt)
{
	memset(p, 0, sizeof *p);
	p->dlt = dlt;
	char mpath[4096];
	snprintf(mpath, sizeof mpath, "%s/pcaps/MANIFEST.tsv", opt.shared);
	FILE *mf = fopen(mpath, "r");
	if (!mf)
		return;
	char line[8192];
	while (fgets(line, sizeof line, mf)) {
		char *f[10] = {0};
		size_t nf = 0;
		for (char *s = line, *t; nf < 10 && (t = strsep(&s, "\t\n"));)
			f[nf++] = t;
		if (nf < 9 || strcmp(f[0], "file") == 0)
			continue;
		if (atoi(f[3]) != dlt && pcap_datalink_name_to_val(f[2]) != dlt)
			continue;
		if (strcmp(f[8], "no") != 0 || strncmp(f[0], "bench-", 6) == 0) {
			p->skipped_files++;
			continue;
		}
		char path[4096];
		snprintf(path, sizeof path, "%s/pcaps/%s", opt.shared, f[0]);
		if (pool_read(p, path, (size_t)-1))
			p->files++;
		else
			p->skipped_files++;
	}
	fclose(mf);
}

static void pool_free(struct pool *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i].data);
	free(p->v);
	memset(p, 0, sizeof *p);
}

/* Packets used: all, or an even spread of maxpkts of them (every k-th). */
static size_t pool_step(const struct pool *p)
{
	return p->n > opt.maxpkts ? (p->n + opt.maxpkts - 1) / opt.maxpkts : 1;
}

struct dyn {
	uint64_t bk, lp, runs, differ;
};

static void dyn_run(struct dyn *dy, const struct pool *p, const struct cprog *bk,
		    const struct cprog *lp)
{
	size_t step = pool_step(p);
	for (size_t i = 0; i < p->n; i += step) {
		const struct pkt *k = &p->v[i];
		uint32_t vb = count_run(bk->insns, bk->len, k->data, k->caplen, k->wirelen,
					&dy->bk);
		uint32_t vl = count_run(lp->insns, lp->len, k->data, k->caplen, k->wirelen,
					&dy->lp);
		dy->runs++;
		dy->differ += (vb != 0) != (vl != 0);
	}
}

/* ------------------------------------------------------------------ */
/* 1 + 3: the corpus, static and dynamic                               */


static bool namedb_have[3]; /* hosts, ethers, networks */




struct dltstat {
	int dlt;
	const char *name;
	uint64_t rows, both, bk_only, lp_only, neither, namedb_skipped;
	uint64_t bk_insns, lp_insns, worse, better;
	uint64_t pc_bk, pc_lp;   /* the protochain rows' share of the two totals */
	struct dyn dyn;
	uint64_t dyn_exprs;
	size_t pkts_used, files;
};

struct crow {
	int dlt;
	char *id, *expr;
	uint32_t snaplen, mask;
	bool has_mask;
	struct cprog bk, lp;
};

static void run_corpus(struct dltstat *st, size_t nst, uint64_t *skipped_other)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/corpus/libpcap-filters.tsv", opt.shared);
	static const char *const names[9] = {"id", "kind", "dlt", "snaplen", "netmask", "flags",
					     "expr", "needs_namedb", "skip_linux"};
	struct corpus_reader cr;
	const char *missing;
	if (corpus_open(&cr, path, names, 9, &missing) != 0) {
		if (missing) {
			fprintf(stderr, "bench_opt: corpus has no column %s\n", missing);
			exit(2);
		}
		printf("static: no corpus at %s: skipped\n", path);
		return;
	}
	FILE *rows_out = out_open("opt-static-rows.tsv");
	fprintf(rows_out, "dlt\tid\tbpfkit\tlibpcap\texpr\n");
	struct crow *rows = NULL;
	size_t nrows = 0;
	const char *fld[9];
	while (corpus_next(&cr, fld)) {
		if (strcmp(fld[1], "accept") != 0)
			continue;
		struct dltstat *s = NULL;
		for (size_t i = 0; i < nst; i++)
			if (strcasecmp(st[i].name, fld[2]) == 0)
				s = &st[i];
		if (!s)
			continue;
		if (strstr(fld[5], "linuxext") || strstr(fld[5], "filtertest_magic")) {
			(*skipped_other)++;
			continue;
		}
		s->rows++;
		if (!corpus_namedb_ready(namedb_have, fld[7])) {
			s->namedb_skipped++;
			continue;
		}
		struct crow r = {.dlt = s->dlt, .snaplen = 262144};
		if (*fld[3])
			r.snaplen = (uint32_t)strtoul(fld[3], NULL, 10);
		struct in_addr a;
		if (*fld[4] && inet_pton(AF_INET, fld[4], &a) == 1) {
			r.has_mask = true;
			r.mask = ntohl(a.s_addr);
		}
		compile_bpfkit(&r.bk, s->dlt, r.snaplen, fld[6], r.has_mask, r.mask);
		compile_pcap(&r.lp, s->dlt, r.snaplen, fld[6], r.has_mask, r.mask);
		if (r.bk.ok && r.lp.ok) {
			s->both++;
			s->bk_insns += r.bk.len;
			s->lp_insns += r.lp.len;
			if (strstr(fld[6], "protochain")) {
				s->pc_bk += r.bk.len;
				s->pc_lp += r.lp.len;
			}
			s->worse += r.bk.len > r.lp.len;
			s->better += r.bk.len < r.lp.len;
			fprintf(rows_out, "%s\t%s\t%zu\t%zu\t", s->name, fld[0], r.bk.len,
				r.lp.len);
			for (const char *c = fld[6]; *c; c++)
				fputc(*c == '\t' || *c == '\n' ? ' ' : *c, rows_out);
			fputc('\n', rows_out);
			r.id = strdup(fld[0]);
			r.expr = strdup(fld[6]);
			rows = xrealloc(rows, (nrows + 1) * sizeof *rows);
			rows[nrows++] = r;
			continue;
		}
		if (r.bk.ok)
			s->bk_only++;
		else if (r.lp.ok)
			s->lp_only++;
		else
			s->neither++;
		cprog_free(&r.bk);
		cprog_free(&r.lp);
	}
	corpus_close(&cr);
	fclose(rows_out);

	/* Dynamic: every row both compile, over the link type's captures. */
	FILE *drows = out_open("opt-dynamic-rows.tsv");
	fprintf(drows, "dlt\tid\truns\tbpfkit_exec\tlibpcap_exec\texpr\n");
	for (size_t i = 0; i < nst; i++) {
		struct pool p;
		pool_load(&p, st[i].dlt);
		st[i].files = p.files;
		size_t step = pool_step(&p);
		st[i].pkts_used = p.n ? (p.n + step - 1) / step : 0;
		for (size_t r = 0; p.n && r < nrows; r++) {
			if (rows[r].dlt != st[i].dlt)
				continue;
			struct dyn before = st[i].dyn;
			dyn_run(&st[i].dyn, &p, &rows[r].bk, &rows[r].lp);
			st[i].dyn_exprs++;
			fprintf(drows, "%s\t%s\t%llu\t%llu\t%llu\t", st[i].name, rows[r].id,
				(unsigned long long)(st[i].dyn.runs - before.runs),
				(unsigned long long)(st[i].dyn.bk - before.bk),
				(unsigned long long)(st[i].dyn.lp - before.lp));
			for (const char *c = rows[r].expr; *c; c++)
				fputc(*c == '\t' || *c == '\n' ? ' ' : *c, drows);
			fputc('\n', drows);
		}
		pool_free(&p);
	}
	fclose(drows);
	for (size_t r = 0; r < nrows; r++) {
		cprog_free(&rows[r].bk);
		cprog_free(&rows[r].lp);
		free(rows[r].id);
		free(rows[r].expr);
	}
	free(rows);
}

static void report_corpus(struct dltstat *st, size_t nst, uint64_t skipped_other)
{
	FILE *fs = out_open("opt-static.tsv");
	FILE *fd = out_open("opt-dynamic.tsv");
	fprintf(fs, "dlt\trows\tboth\tbpfkit_only\tlibpcap_only\tneither\tnamedb_skipped\t"
		"bpfkit_insns\tlibpcap_insns\tratio\tbpfkit_larger\tbpfkit_smaller\n");
	fprintf(fd, "dlt\texprs\tfiles\tpackets\tbpfkit_exec\tlibpcap_exec\tratio\t"
		"verdicts_differ\n");
	printf("\n== 1. static size: corpus accept rows, bpfkit -O2 vs libpcap optimize=1 "
	       "(target ratio <= 0.85)\n");
	printf("%-22s %5s %5s %5s %5s %5s %8s %8s %6s %6s\n", "link type", "rows", "both",
	       "bk1", "lp1", "skip", "bpfkit", "libpcap", "ratio", "larger");
	uint64_t t[8] = {0}, pc_bk = 0, pc_lp = 0;
	for (size_t i = 0; i < nst; i++) {
		struct dltstat *s = &st[i];
		pc_bk += s->pc_bk;
		pc_lp += s->pc_lp;
		double r = ratio((double)s->bk_insns, (double)s->lp_insns);
		printf("%-22s %5llu %5llu %5llu %5llu %5llu %8llu %8llu %6.3f %6llu\n", s->name,
		       (unsigned long long)s->rows, (unsigned long long)s->both,
		       (unsigned long long)s->bk_only, (unsigned long long)s->lp_only,
		       (unsigned long long)s->namedb_skipped, (unsigned long long)s->bk_insns,
		       (unsigned long long)s->lp_insns, r, (unsigned long long)s->worse);
		fprintf(fs, "%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%llu\t%.4f\t"
			"%llu\t%llu\n",
			s->name, (unsigned long long)s->rows, (unsigned long long)s->both,
			(unsigned long long)s->bk_only, (unsigned long long)s->lp_only,
			(unsigned long long)s->neither, (unsigned long long)s->namedb_skipped,
			(unsigned long long)s->bk_insns, (unsigned long long)s->lp_insns, r,
			(unsigned long long)s->worse, (unsigned long long)s->better);
		t[0] += s->rows;
		t[1] += s->both;
		t[2] += s->bk_only;
		t[3] += s->lp_only;
		t[4] += s->namedb_skipped;
		t[5] += s->bk_insns;
		t[6] += s->lp_insns;
		t[7] += s->worse;
	}
	double all = ratio((double)t[5], (double)t[6]);
	printf("%-22s %5llu %5llu %5llu %5llu %5llu %8llu %8llu %6.3f %6llu\n", "ALL",
	       (unsigned long long)t[0], (unsigned long long)t[1], (unsigned long long)t[2],
	       (unsigned long long)t[3], (unsigned long long)t[4], (unsigned long long)t[5],
	       (unsigned long long)t[6], all, (unsigned long long)t[7]);
	fprintf(fs, "ALL\t%llu\t%llu\t%llu\t%llu\t-\t%llu\t%llu\t%llu\t%.4f\t%llu\t-\n",
		(unsigned long long)t[0], (unsigned long long)t[1], (unsigned long long)t[2],
		(unsigned long long)t[3], (unsigned long long)t[4], (unsigned long long)t[5],
		(unsigned long long)t[6], all, (unsigned long long)t[7]);
	printf("(both: rows both compile, the only ones counted; bk1/lp1: only bpfkit / only "
	       "libpcap 1.10.3 compiles;\n skip: rows needing name databases not available; "
	       "%llu linuxext/magic rows not counted;\n larger: rows where bpfkit's program "
	       "is longer; per-row sizes in opt-static-rows.tsv)\n",
	       (unsigned long long)skipped_other);
	/*
	 * libpcap's protochain is a loop (a backward jump, which no kernel and
	 * not libpcap's own bpf_validate accept); bpfkit unrolls it into a valid
	 * program of ~2,400 instructions.  The ratio without those rows
	 * compares the programs both can express.
	 */
	double nopc = ratio((double)(t[5] - pc_bk), (double)(t[6] - pc_lp));
	printf("without the protochain rows (libpcap: a loop no validator accepts; bpfkit: "
	       "unrolled, %llu vs %llu insns): %llu vs %llu, ratio %.3f\n",
	       (unsigned long long)pc_bk, (unsigned long long)pc_lp,
	       (unsigned long long)(t[5] - pc_bk), (unsigned long long)(t[6] - pc_lp), nopc);
	fprintf(fs, "ALL-without-protochain\t-\t-\t-\t-\t-\t-\t%llu\t%llu\t%.4f\t-\t-\n",
		(unsigned long long)(t[5] - pc_bk), (unsigned long long)(t[6] - pc_lp), nopc);
	if (all > 0.85)
		printf("static ratio %.3f is ABOVE the 0.85 target\n", all);

	printf("\n== 3a. dynamic: instructions executed per packet, corpus rows over "
	       "../shared/pcaps (target <= 0.85)\n");
	printf("%-22s %5s %5s %7s %12s %12s %6s %8s %8s\n", "link type", "exprs", "files",
	       "packets", "bpfkit", "libpcap", "ratio", "bk/pkt", "lp/pkt");
	uint64_t db = 0, dl = 0, dr = 0, dd = 0;
	for (size_t i = 0; i < nst; i++) {
		struct dltstat *s = &st[i];
		fprintf(fd, "%s\t%llu\t%zu\t%zu\t%llu\t%llu\t%.4f\t%llu\n", s->name,
			(unsigned long long)s->dyn_exprs, s->files, s->pkts_used,
			(unsigned long long)s->dyn.bk, (unsigned long long)s->dyn.lp,
			ratio((double)s->dyn.bk, (double)s->dyn.lp),
			(unsigned long long)s->dyn.differ);
		if (!s->dyn.runs)
			continue;
		printf("%-22s %5llu %5zu %7zu %12llu %12llu %6.3f %8.2f %8.2f\n", s->name,
		       (unsigned long long)s->dyn_exprs, s->files, s->pkts_used,
		       (unsigned long long)s->dyn.bk, (unsigned long long)s->dyn.lp,
		       ratio((double)s->dyn.bk, (double)s->dyn.lp),
		       (double)s->dyn.bk / (double)s->dyn.runs,
		       (double)s->dyn.lp / (double)s->dyn.runs);
		db += s->dyn.bk;
		dl += s->dyn.lp;
		dr += s->dyn.runs;
		dd += s->dyn.differ;
	}
	printf("%-22s %5s %5s %7s %12llu %12llu %6.3f\n", "ALL", "", "", "",
	       (unsigned long long)db, (unsigned long long)dl, ratio((double)db, (double)dl));
	fprintf(fd, "ALL\t-\t-\t-\t%llu\t%llu\t%.4f\t%llu\n", (unsigned long long)db,
		(unsigned long long)dl, ratio((double)db, (double)dl), (unsigned long long)dd);
	printf("(%llu program runs; link types without captures are left out; verdicts of "
	       "bpfkit -O2 and libpcap -O1\n differ on %llu runs: expected where libpcap's "
	       "optimizer or 1.10.3 differs from the language)\n",
	       (unsigned long long)dr, (unsigned long long)dd);
	fclose(fs);
	fclose(fd);
}

/* ------------------------------------------------------------------ */
/* 2 + 3b: classic filters                                             */

static void run_classic(void)
{
	struct pool p;
	memset(&p, 0, sizeof p);
	p.dlt = DLT_EN10MB;
	char path[4096];
	snprintf(path, sizeof path, "%s/pcaps/bench-real.pcap", opt.shared);
	bool have = pool_read(&p, path, (size_t)-1);
	FILE *f = out_open("opt-classic.tsv");
	fprintf(f, "filter\tbpfkit_insns\tlibpcap_insns\tbpfkit_exec\tlibpcap_exec\t"
		"exec_ratio\n");
	printf("\n== 2. classic filters on EN10MB: static size; 3b. executed over %s\n",
	       have ? "bench-real.pcap" : "(bench-real.pcap absent: no dynamic figures)");
	printf("%-48s %6s %6s %6s %8s %8s %6s\n", "filter", "bpfkit", "libpcap", "ratio",
	       "bk/pkt", "lp/pkt", "ratio");
	struct dyn all = {0};
	uint64_t sb = 0, sl = 0;
	int flagged = 0;
	for (size_t i = 0; i < NCLASSIC; i++) {
		const char *e = classic[i] ? classic[i] : classic50;
		struct cprog bk, lp;
		compile_bpfkit(&bk, DLT_EN10MB, 262144, e, false, 0);
		compile_pcap(&lp, DLT_EN10MB, 262144, e, false, 0);
		char shown[80];
		if (strlen(e) > 47)
			snprintf(shown, sizeof shown, "%.30s... (%zu chars)", e, strlen(e));
		else
			snprintf(shown, sizeof shown, "%s", e);
		if (!bk.ok || !lp.ok) {
			printf("%-48s %s\n", shown, !bk.ok ? bk.err : lp.err);
			fprintf(f, "%s\t%s\t%s\t-\t-\t-\n", e, bk.ok ? "" : "error",
				lp.ok ? "" : "error");
			cprog_free(&bk);
			cprog_free(&lp);
			continue;
		}
		struct dyn d = {0};
		if (have)
			dyn_run(&d, &p, &bk, &lp);
		all.bk += d.bk;
		all.lp += d.lp;
		all.runs += d.runs;
		sb += bk.len;
		sl += lp.len;
		bool worse = bk.len > lp.len;
		flagged += worse;
		printf("%-48s %6zu %6zu %6.3f %8.2f %8.2f %6.3f%s\n", shown, bk.len, lp.len,
		       ratio((double)bk.len, (double)lp.len),
		       d.runs ? (double)d.bk / (double)d.runs : 0,
		       d.runs ? (double)d.lp / (double)d.runs : 0,
		       ratio((double)d.bk, (double)d.lp),
		       worse ? "  <- bpfkit larger" : "");
		fprintf(f, "%s\t%zu\t%zu\t%llu\t%llu\t%.4f\n", e, bk.len, lp.len,
			(unsigned long long)d.bk, (unsigned long long)d.lp,
			ratio((double)d.bk, (double)d.lp));
		cprog_free(&bk);
		cprog_free(&lp);
	}
	printf("%-48s %6llu %6llu %6.3f %8s %8s %6.3f\n", "ALL", (unsigned long long)sb,
	       (unsigned long long)sl, ratio((double)sb, (double)sl), "", "",
	       ratio((double)all.bk, (double)all.lp));
	printf("(%d filters where bpfkit's program is larger; %zu packets)\n", flagged, p.n);
	fprintf(f, "ALL\t%llu\t%llu\t%llu\t%llu\t%.4f\n", (unsigned long long)sb,
		(unsigned long long)sl, (unsigned long long)all.bk, (unsigned long long)all.lp,
		ratio((double)all.bk, (double)all.lp));
	fclose(f);
	pool_free(&p);
}

/* ------------------------------------------------------------------ */
/* 4: compile time, each compiler in a child with a deadline           */

struct timing {
	int status;     /* 0 ok, 1 timed out, 2 failed to compile */
	double median;  /* seconds */
	size_t insns;
	char err[256];
};

/* The child's report: runs, then sizes and seconds. */
struct child_msg {
	int ok;
	size_t insns;
	int runs;
	double secs[9];
	char err[256];
};

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static struct timing time_compile(const char *expr, bool libpcap, int runs)
{
	struct timing t = {0};
	int fds[2];
	if (pipe(fds) != 0) {
		t.status = 2;
		snprintf(t.err, sizeof t.err, "pipe failed");
		return t;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		struct child_msg m = {0};
		for (int r = 0; r < runs && r < 9; r++) {
			struct cprog p;
			double t0 = now();
			if (libpcap)
				compile_pcap(&p, DLT_EN10MB, 262144, expr, false, 0);
			else
				compile_bpfkit(&p, DLT_EN10MB, 262144, expr, false, 0);
			m.secs[m.runs++] = now() - t0;
			m.ok = p.ok;
			m.insns = p.len;
			snprintf(m.err, sizeof m.err, "%s", p.err);
			cprog_free(&p);
			if (!m.ok)
				break;
			/* Report after each run: a later run that times out keeps the first. */
			if (write(fds[1], &m, sizeof m) != (ssize_t)sizeof m)
				_exit(1);
		}
		if (!m.ok && write(fds[1], &m, sizeof m) != (ssize_t)sizeof m)
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	if (pid < 0) {
		close(fds[0]);
		t.status = 2;
		snprintf(t.err, sizeof t.err, "fork failed");
		return t;
	}
	struct child_msg m = {0}, got;
	bool any = false;
	double deadline = now() + opt.timeout;
	size_t have = 0;
	char *buf = (char *)&got;
	for (;;) {
		double left = deadline - now();
		if (left <= 0)
			break;
		struct pollfd pf = {fds[0], POLLIN, 0};
		int pr = poll(&pf, 1, (int)(left * 1000) + 1);
		if (pr <= 0)
			continue;
		ssize_t n = read(fds[0], buf + have, sizeof got - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		if (have == sizeof got) {
			m = got;
			any = true;
			have = 0;
		}
	}
	bool timed_out = now() >= deadline;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fds[0]);
	if (!any) {
		t.status = timed_out ? 1 : 2;
		snprintf(t.err, sizeof t.err, "%s", timed_out ? "timeout" : "child died");
		return t;
	}
	if (!m.ok) {
		t.status = 2;
		snprintf(t.err, sizeof t.err, "%s", m.err);
		return t;
	}
	qsort(m.secs, (size_t)m.runs, sizeof m.secs[0], cmp_double);
	t.median = m.secs[m.runs / 2];
	t.insns = m.insns;
	return t;
}

static char *make_list(const char *kind, int n)
{
	size_t cap = (size_t)n * 32 + 16, len = 0;
	char *s = xmalloc(cap);
	s[0] = 0;
	for (int i = 0; i < n; i++) {
		const char *sep = i ? " or " : "";
		if (strcmp(kind, "host") == 0)
			len += (size_t)snprintf(s + len, cap - len, "%shost 10.%d.%d.%d", sep,
						i / 62500, i / 250 % 250, i % 250 + 1);
		else if (strcmp(kind, "port") == 0)
			len += (size_t)snprintf(s + len, cap - len, "%sport %d", sep, i + 1);
		else
			len += (size_t)snprintf(s + len, cap - len, "%snet 10.%d.%d.0/24", sep,
						i / 256, i % 256);
	}
	return s;
}

static void fmt_time(char *buf, size_t n, const struct timing *t)
{
	if (t->status == 1)
		snprintf(buf, n, ">%d s", opt.timeout);
	else if (t->status == 2)
		snprintf(buf, n, "error");
	else if (t->median < 1)
		snprintf(buf, n, "%.1f ms", t->median * 1000);
	else
		snprintf(buf, n, "%.2f s", t->median);
}

static void run_compile_time(void)
{
	static const char *const kinds[] = {"host", "port", "net"};
	static const int sizes[] = {2000, 8000};
	FILE *f = out_open("opt-compile.tsv");
	fprintf(f, "list\tterms\tbpfkit_ms\tbpfkit_runs\tbpfkit_insns\tlibpcap_ms\tlibpcap_runs\t"
		"libpcap_insns\n");
	printf("\n== 4. compile time (EN10MB; median; each compile in a child killed after %d s;"
	       "\n   targets: bpfkit <= 200 ms for 2,000 terms, <= 1.5 s for 8,000)\n",
	       opt.timeout);
	printf("%-6s %6s %12s %8s %12s %8s %s\n", "list", "terms", "bpfkit", "insns", "libpcap",
	       "insns", "");
	for (size_t k = 0; k < 3; k++) {
		bool lp_gave_up = false;
		for (size_t z = 0; z < 2; z++) {
			char *e = make_list(kinds[k], sizes[z]);
			int bruns = z ? 3 : 5, lruns = z ? 1 : 2;
			struct timing b = time_compile(e, false, bruns);
			/* libpcap out of time at 2,000 terms: 8,000 would be too. */
			struct timing l = {.status = 1};
			if (!lp_gave_up)
				l = time_compile(e, true, lruns);
			else
				lruns = 0;
			lp_gave_up |= l.status == 1;
			char tb[32], tl[32];
			fmt_time(tb, sizeof tb, &b);
			fmt_time(tl, sizeof tl, &l);
			double target = z ? 1.5 : 0.2;
			const char *note = b.status ? (b.status == 2 ? b.err : "")
				         : b.median > target ? "bpfkit above target" : "";
			char ib[24] = "-", il[24] = "-";
			if (!b.status)
				snprintf(ib, sizeof ib, "%zu", b.insns);
			if (!l.status)
				snprintf(il, sizeof il, "%zu", l.insns);
			printf("%-6s %6d %12s %8s %12s %8s %s\n", kinds[k], sizes[z], tb, ib, tl,
			       il, note);
			char mb[32], ml[32];
			snprintf(mb, sizeof mb, "%.3f", b.median * 1000);
			snprintf(ml, sizeof ml, "%.3f", l.median * 1000);
			fprintf(f, "%s\t%d\t%s\t%d\t%zu\t%s\t%d\t%zu\n", kinds[k], sizes[z],
				b.status ? (b.status == 1 ? "timeout" : "error") : mb, bruns,
				b.insns, l.status ? (l.status == 1 ? "timeout" : "error") : ml,
				lruns, l.insns);
			free(e);
		}
	}
	printf("(libpcap's 8,000-term list is not run when its 2,000-term "
	       "list ran out of time)\n");
	fclose(f);
}

/* ------------------------------------------------------------------ */
/* Name databases: re-run in a private mount namespace                 */

/*
 * Runs this program again through tests/with-namedb.sh (found beside bench/),
 * which shows the corpus's name-database lines in /etc inside a private mount
 * namespace.  Returns the re-run's exit status, or -1 when it could not be
 * arranged (no script, no namespace).
 */
static int rerun_with_namedb(char **argv)
{
	const char *slash = strrchr(argv[0], '/');
	char script[4096];
	snprintf(script, sizeof script, "%.*s/../tests/with-namedb.sh",
		 slash ? (int)(slash - argv[0]) : 1, slash ? argv[0] : ".");
	if (access(script, R_OK) != 0)
		return -1;
	int argc = 0;
	while (argv[argc])
		argc++;
	char **nargv = xmalloc(((size_t)argc + 4) * sizeof *nargv);
	int k = 0;
	nargv[k++] = "sh";
	nargv[k++] = script;
	nargv[k++] = (char *)opt.shared;
	for (int i = 0; i < argc; i++)
		nargv[k++] = argv[i];
	nargv[k] = NULL;
	fflush(stdout);
	int status = -1;
	pid_t pid = fork();
	if (pid == 0) {
		setenv("BENCH_OPT_NAMESPACE", "1", 1);
		execvp("sh", nargv);
		_exit(127);
	}
	int ws;
	if (pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws))
		status = WEXITSTATUS(ws);
	free(nargv);
	return status == 125 || status == 127 ? -1 : status;
}

/* ------------------------------------------------------------------ */

static void usage(void)
{
	fprintf(stderr, "usage: bench_opt [-s SHARED] [-o OUTDIR] [-l DLT,...] [-T SECONDS] "
		"[-n MAXPKTS] [--no-namedb] [--skip-compile-time]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	opt.shared = getenv("BPFKIT_SHARED") ? getenv("BPFKIT_SHARED") : "../shared";
	opt.dlts = default_dlts;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--no-namedb") == 0)
			opt.no_namedb = true;
		else if (strcmp(a, "--skip-compile-time") == 0)
			opt.skip_compile_time = true;
		else if (i + 1 < argc && strcmp(a, "-s") == 0)
			opt.shared = argv[++i];
		else if (i + 1 < argc && strcmp(a, "-o") == 0)
			opt.outdir = argv[++i];
		else if (i + 1 < argc && strcmp(a, "-l") == 0)
			opt.dlts = argv[++i];
		else if (i + 1 < argc && strcmp(a, "-T") == 0)
			opt.timeout = atoi(argv[++i]);
		else if (i + 1 < argc && strcmp(a, "-n") == 0)
			opt.maxpkts = (size_t)strtoull(argv[++i], NULL, 10);
		else
			usage();
	}
	if (opt.timeout < 1 || opt.maxpkts < 1)
		usage();
	/* A name that is not in the files goes to DNS: fail fast rather than wait. */
	setenv("RES_OPTIONS", "timeout:1 attempts:1", 0);
	mkdir(opt.outdir, 0755);

	char tsv[4096];
	snprintf(tsv, sizeof tsv, "%s/corpus/libpcap-filters.tsv", opt.shared);
	corpus_namedb_probe(tsv, namedb_have);
	if (!opt.no_namedb && !getenv("BENCH_OPT_NAMESPACE") &&
	    !(namedb_have[0] && namedb_have[1] && namedb_have[2])) {
		int st = rerun_with_namedb(argv);
		if (st >= 0)
			return st;
		fprintf(stderr, "bench_opt: no private mount namespace (tests/with-namedb.sh): "
			"corpus rows needing name databases are skipped\n");
	}
	printf("bench_opt: bpfkit %s against libpcap %s; name databases: hosts %s, ethers %s, "
	       "networks %s\n", BPFKIT_VERSION, pcap_lib_version(), namedb_have[0] ? "yes" : "no",
	       namedb_have[1] ? "yes" : "no", namedb_have[2] ? "yes" : "no");

	/* The 50-port list. */
	classic50 = xmalloc(50 * 16);
	classic50[0] = 0;
	for (int i = 0; i < 50; i++)
		snprintf(classic50 + strlen(classic50), 16, "%sport %d", i ? " or " : "",
			 i < 10 ? (int[]){20, 21, 22, 23, 25, 53, 80, 110, 143, 443}[i]
				: 1000 + i * 37);

	struct dltstat st[64];
	size_t nst = 0;
	for (const char *p = opt.dlts; *p && nst < 64;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)len, p);
		int dlt = pcap_datalink_name_to_val(name);
		if (dlt < 0 || bpfkit_linktype_parse(name) < 0) {
			fprintf(stderr, "bench_opt: unknown link type %s\n", name);
			return 2;
		}
		memset(&st[nst], 0, sizeof st[nst]);
		st[nst].dlt = dlt;
		st[nst].name = strdup(name);
		nst++;
		p = c ? c + 1 : p + len;
	}

	double t0 = now();
	uint64_t skipped_other = 0;
	run_corpus(st, nst, &skipped_other);
	report_corpus(st, nst, skipped_other);
	run_classic();
	double t1 = now();
	if (!opt.skip_compile_time)
		run_compile_time();
	printf("\nbench_opt: sections 1-3 took %.1f s, 4 took %.1f s; TSV files in %s/opt-*.tsv\n",
	       t1 - t0, now() - t1, opt.outdir);
	for (size_t i = 0; i < nst; i++)
		free((char *)st[i].name);
	free(classic50);
	return 0;
}
