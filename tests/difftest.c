/*
 * difftest.c - differential test of bpfkit's pcap-filter compiler against libpcap.
 *
 * For each case (a row of ../shared/corpus/libpcap-filters.tsv, or a line of an
 * expression list) the expression is compiled by bpfkit (bpfkit_compile) and by
 * the installed libpcap (pcap_open_dead + pcap_compile, -O0 is the MEANING, -O1
 * the alternative allowed where -O0 runs off the end of the packet; DESIGN.md).
 * Both programs then run under libpcap's bpf_filter - one interpreter, so only
 * the programs differ - over real packets of the link type (../shared/pcaps,
 * ../shared/libpcap-tests/filter) and over branch-directed packets: a small
 * interpreter here tracks, for A, X and M[], which packet bytes (or the wire
 * length) a value was loaded from and which ALU operations with known operands
 * were applied since; at every conditional jump it solves for the value that
 * takes each side and writes it into those bytes.  Children are explored for a
 * few rounds (deeper branches), plus cuts of the captured length at every
 * offset a load touches (+-1), extensions past loads that ran off the end,
 * and varied IPv4 header lengths under `ldx 4*([k]&0xf)`.
 *
 * --self compares bpfkit's optimized program against bpfkit's -O0 program,
 * verdict for verdict (the optimizer's contract).
 *
 * Invariants: libpcap programs are run only after pcap_compile succeeded;
 * bpfkit programs are run only after libpcap's bpf_validate accepted them (an
 * invalid one is a disagreement, never a crash).  Every corpus expression is
 * handed to bpfkit_compile, even on rows that are skipped, so a crash on any
 * input shows.  Exit: 0 pass, 1 a link type below its threshold, 2 usage or
 * I/O error, 77 bpfkit_compile is not implemented yet.
 */
#include "bpfkit.h"
#include "corpus.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <getopt.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

_Static_assert(sizeof(struct bpf_insn) == sizeof(struct bpfkit_insn), "insn layout");

#define PKT_MAX 8192     /* longest packet kept or made */
#define MAX_EVENTS 512   /* events recorded per simulated run */
#define PV_OPS 6         /* ALU operations remembered per value */

/* ------------------------------------------------------------------ */
/* Small utilities                                                     */

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xmalloc(n), s, n);
}


/* The same escaping, for output. */
static void fput_escaped(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\t')
			fputs("\\t", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (*s == '\r')
			fputs("\\r", f);
		else
			fputc(*s, f);
	}
}

/* ------------------------------------------------------------------ */
/* Packets                                                             */

struct packet {
	uint8_t *data;
	uint32_t caplen, wirelen;
};

struct pktvec {
	struct packet *v;
	size_t n, cap;
};

static void pktvec_push(struct pktvec *pv, const uint8_t *data, uint32_t caplen,
			uint32_t wirelen)
{
	if (caplen > PKT_MAX)
		caplen = PKT_MAX;
	if (wirelen < caplen)
		wirelen = caplen;
	if (pv->n == pv->cap) {
		pv->cap = pv->cap ? pv->cap * 2 : 64;
		pv->v = xrealloc(pv->v, pv->cap * sizeof *pv->v);
	}
	struct packet *p = &pv->v[pv->n++];
	p->data = xmalloc(caplen);
	if (caplen)
		memcpy(p->data, data, caplen);
	p->caplen = caplen;
	p->wirelen = wirelen;
}

static void pktvec_free(struct pktvec *pv)
{
	for (size_t i = 0; i < pv->n; i++)
		free(pv->v[i].data);
	free(pv->v);
	memset(pv, 0, sizeof *pv);
}

/* Reads up to max packets of a capture; returns its link type or -1. */
static int read_capture(const char *path, struct pktvec *out, size_t max)
{
	char eb[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline(path, eb);
	if (!p)
		return -1;
	int dlt = pcap_datalink(p);
	struct pcap_pkthdr *h;
	const u_char *d;
	while (out->n < max && pcap_next_ex(p, &h, &d) == 1)
		pktvec_push(out, d, h->caplen, h->len);
	pcap_close(p);
	return dlt;
}

/* ------------------------------------------------------------------ */
/* Options and global state                                            */

static struct {
	const char *corpus;
	const char *pcaps;
	const char *ltests;
	const char *outpath;
	const char *dlts;      /* comma list filter, NULL = all */
	const char *kinds;     /* comma list filter, NULL = all */
	const char *match;     /* substring of id or expr, NULL = all */
	int deflt;             /* default link type for lists */
	int optimize;          /* bpfkit's level for the tested program */
	bool self;             /* compare bpfkit -O<optimize> with bpfkit -O0 */
	bool no_namedb;
	bool pcap_subject;     /* libpcap replaces bpfkit: calibrates the tool */
	bool quiet;
	bool verbose;
	size_t budget;         /* branch-directed packets per case */
	size_t max_real;       /* real packets per link type */
	size_t every;          /* take every k-th case of each source */
	size_t max_cases;      /* per source, 0 = all */
	int rounds;
	double min_all;
	char *min_dlt[64];
	size_t nmin_dlt;
} opt = {
	.pcaps = "../shared/pcaps",
	.ltests = "../shared/libpcap-tests/filter",
	.deflt = -1,
	.budget = 1200,
	.max_real = 300,
	.every = 1,
	.rounds = 4,
	.min_all = -1,
};

static FILE *outf;
static bool namedb_have[3]; /* hosts, ethers, networks */
static uint64_t sim_mismatch; /* our interpreter disagreed with bpf_filter (self-check) */
static uint64_t looped_packets; /* the reference program would not end: not compared */

struct stats {
	int dlt;
	uint64_t rows, skipped, skipped_namedb, skipped_dlt;
	uint64_t acc, both, agree;   /* accept-side cases judged, both compiled, all agreed */
	uint64_t rej, refused, errstr_match;
	uint64_t odiff, odiff_ok;    /* oracle differs from corpus; bpfkit matched the corpus */
	uint64_t packets;
};
static struct stats *stats;
static size_t nstats;

static struct stats *stats_for(int dlt)
{
	for (size_t i = 0; i < nstats; i++)
		if (stats[i].dlt == dlt)
			return &stats[i];
	stats = xrealloc(stats, (nstats + 1) * sizeof *stats);
	memset(&stats[nstats], 0, sizeof *stats);
	stats[nstats].dlt = dlt;
	return &stats[nstats++];
}

static const char *dlt_name(int dlt)
{
	static char buf[32];
	const char *n = pcap_datalink_val_to_name(dlt);
	if (n)
		return n;
	snprintf(buf, sizeof buf, "%d", dlt);
	return buf;
}

static int dlt_parse(const char *s)
{
	if (!*s)
		return -1;
	char *end;
	long v = strtol(s, &end, 10);
	if (!*end)
		return v >= 0 && v < 65536 ? (int)v : -1;
	return pcap_datalink_name_to_val(s);
}

static bool in_list(const char *list, const char *word)
{
	if (!list)
		return true;
	size_t n = strlen(word);
	for (const char *p = list; *p;) {
		const char *c = strchr(p, ',');
		size_t len = c ? (size_t)(c - p) : strlen(p);
		if (len == n && strncasecmp(p, word, n) == 0)
			return true;
		if (!c)
			break;
		p = c + 1;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Real packets per link type (loaded once)                            */

struct pool {
	int dlt;
	struct pktvec pk;
};
static struct pool *pools;
static size_t npools;

/* Savefiles of libpcap-tests (scanned once: their link types). */
struct savefile {
	char *path;
	int dlt;
};
static struct savefile *savefiles;
static size_t nsavefiles;
static bool savefiles_scanned;

static void scan_savefiles(void)
{
	savefiles_scanned = true;
	DIR *d = opendir(opt.ltests);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", opt.ltests, e->d_name);
		char eb[PCAP_ERRBUF_SIZE];
		pcap_t *p = pcap_open_offline(path, eb);
		if (!p)
			continue;
		savefiles = xrealloc(savefiles, (nsavefiles + 1) * sizeof *savefiles);
		savefiles[nsavefiles].path = xstrdup(path);
		savefiles[nsavefiles++].dlt = pcap_datalink(p);
		pcap_close(p);
	}
	closedir(d);
}

/* Adds each file's packets round-robin so that many files contribute. */
static void pool_add_files(struct pktvec *dst, char **paths, size_t n, int dlt)
{
	size_t per = opt.max_real / (n ? n : 1);
	if (per < 4)
		per = 4;
	if (per > 64)
		per = 64;
	struct pktvec *each = xmalloc((n ? n : 1) * sizeof *each);
	for (size_t i = 0; i < n; i++) {
		memset(&each[i], 0, sizeof each[i]);
		if (read_capture(paths[i], &each[i], per) != dlt)
			pktvec_free(&each[i]);
	}
	for (size_t r = 0; r < per && dst->n < opt.max_real; r++)
		for (size_t i = 0; i < n && dst->n < opt.max_real; i++)
			if (r < each[i].n)
				pktvec_push(dst, each[i].v[r].data, each[i].v[r].caplen,
					    each[i].v[r].wirelen);
	for (size_t i = 0; i < n; i++)
		pktvec_free(&each[i]);
	free(each);
}

static const struct pktvec *pool_get(int dlt)
{
	for (size_t i = 0; i < npools; i++)
		if (pools[i].dlt == dlt)
			return &pools[i].pk;
	pools = xrealloc(pools, (npools + 1) * sizeof *pools);
	struct pool *pl = &pools[npools++];
	memset(pl, 0, sizeof *pl);
	pl->dlt = dlt;

	char **paths = NULL;
	size_t n = 0;
	char mpath[4096];
	snprintf(mpath, sizeof mpath, "%s/MANIFEST.tsv", opt.pcaps);
	FILE *mf = fopen(mpath, "r");
	if (mf) {
		char line[4096];
		while (fgets(line, sizeof line, mf)) {
			char *f[10] = {0};
			size_t nf = 0;
			for (char *s = line, *t; nf < 10 && (t = strsep(&s, "\t\n"));)
				f[nf++] = t;
			if (nf < 9 || strcmp(f[8], "no") != 0 || dlt_parse(f[2]) != dlt)
				continue;
			char path[4096];
			snprintf(path, sizeof path, "%s/%s", opt.pcaps, f[0]);
			paths = xrealloc(paths, (n + 1) * sizeof *paths);
			paths[n++] = xstrdup(path);
		}
		fclose(mf);
	}
	if (!savefiles_scanned)
		scan_savefiles();
	for (size_t i = 0; i < nsavefiles; i++) {
		if (savefiles[i].dlt != dlt)
			continue;
		paths = xrealloc(paths, (n + 1) * sizeof *paths);
		paths[n++] = xstrdup(savefiles[i].path);
	}
	pool_add_files(&pl->pk, paths, n, dlt);
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);

	/* Synthetic packets: bpfkit's generator where it knows the link type, plus filler. */
	if (bpfkit_gen_supported((uint32_t)dlt)) {
		struct bpfkit_gen *g;
		struct bpfkit_error err;
		if (bpfkit_gen_new((uint32_t)dlt, 7, NULL, &g, &err) == 0) {
			static uint8_t buf[BPFKIT_GEN_MAX_FRAME];
			struct bpfkit_packet p;
			for (int i = 0; i < 48 && bpfkit_gen_next(g, buf, sizeof buf, &p, &err) == 0;
			     i++)
				pktvec_push(&pl->pk, p.data, p.caplen, p.wirelen);
			bpfkit_gen_free(g);
		}
	}
	static uint8_t zeros[1600], ones[128];
	memset(ones, 0xff, sizeof ones);
	pktvec_push(&pl->pk, zeros, 96, 96);
	pktvec_push(&pl->pk, zeros, 1514, 1514);
	pktvec_push(&pl->pk, ones, 128, 128);
	pktvec_push(&pl->pk, zeros, 0, 0);
	return &pl->pk;
}

/* ------------------------------------------------------------------ */
/* A tracking interpreter: libpcap semantics plus where values came from */

enum { PV_NONE, PV_PKT, PV_LEN };

struct pv {
	uint8_t kind, size, nops;
	uint32_t off;
	uint16_t op[PV_OPS];
	uint32_t k[PV_OPS], pre[PV_OPS];
};

enum { EV_JUMP, EV_LOAD, EV_MSH, EV_OOB };

struct event {
	uint8_t type;
	uint16_t code;
	uint32_t k, a, x;
	uint32_t off, size;
	struct pv pa, px;
};

static void pv_push(struct pv *v, uint16_t op, uint32_t k, uint32_t pre)
{
	if (v->kind == PV_NONE)
		return;
	if (v->nops == PV_OPS) {
		v->kind = PV_NONE;
		return;
	}
	v->op[v->nops] = op;
	v->k[v->nops] = k;
	v->pre[v->nops++] = pre;
}

static uint32_t alu(uint16_t op, uint32_t a, uint32_t b)
{
	switch (op) {
	case BPF_ADD: return a + b;
	case BPF_SUB: return a - b;
	case BPF_MUL: return a * b;
	case BPF_DIV: return a / b;
	case BPF_MOD: return a % b;
	case BPF_AND: return a & b;
	case BPF_OR: return a | b;
	case BPF_XOR: return a ^ b;
	case BPF_LSH: return b < 32 ? a << b : 0;
	case BPF_RSH: return b < 32 ? a >> b : 0;
	case BPF_NEG: return -a;
	}
	return 0;
}

struct simout {
	uint32_t ret;
	bool oob;      /* ended by a load past the captured bytes */
	bool looped;   /* stopped after SIM_STEPS instructions (a backward-jump loop) */
	size_t nev;
};
#define SIM_STEPS 200000

static void ev_add(struct event *ev, size_t *nev, const struct event *e)
{
	if (ev && *nev < MAX_EVENTS)
		ev[(*nev)++] = *e;
}

static struct simout sim(const struct bpf_insn *p, unsigned n, const struct packet *pk,
			 struct event *ev)
{
	struct simout r = {0, false, false, 0};
	uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = {0};
	struct pv pa = {0}, px = {0}, pm[BPF_MEMWORDS];
	memset(pm, 0, sizeof pm);
	const uint8_t *d = pk->data;
	unsigned long steps = 0;
	for (unsigned pc = 0; pc < n; pc++) {
		const struct bpf_insn *i = &p[pc];
		uint32_t k = i->k;
		if (++steps > SIM_STEPS) {
			r.looped = true;
			return r;
		}
		uint16_t c = i->code;
		struct event e;
		memset(&e, 0, sizeof e);
		switch (BPF_CLASS(c)) {
		case BPF_LD:
		case BPF_LDX: {
			bool isx = BPF_CLASS(c) == BPF_LDX;
			uint32_t v = 0;
			struct pv vp = {0};
			switch (BPF_MODE(c)) {
			case BPF_IMM: v = k; break;
			case BPF_LEN: v = pk->wirelen; vp.kind = PV_LEN; break;
			case BPF_MEM:
				if (k >= BPF_MEMWORDS)
					return r;
				v = M[k];
				vp = pm[k];
				break;
			case BPF_ABS:
			case BPF_IND:
			case BPF_MSH: {
				if (isx && BPF_MODE(c) != BPF_MSH)
					return r;
				if (!isx && BPF_MODE(c) == BPF_MSH)
					return r;
				uint32_t size = BPF_SIZE(c) == BPF_W ? 4 : BPF_SIZE(c) == BPF_H ? 2 : 1;
				uint64_t off = BPF_MODE(c) == BPF_IND ? (uint64_t)X + k : k;
				if (off > pk->caplen || size > pk->caplen - off) {
					e.type = EV_OOB;
					e.off = off > 0xffffffffu ? 0xffffffffu : (uint32_t)off;
					e.size = size;
					ev_add(ev, &r.nev, &e);
					r.oob = true;
					return r;
				}
				e.type = EV_LOAD;
				e.off = (uint32_t)off;
				e.size = size;
				ev_add(ev, &r.nev, &e);
				const uint8_t *q = d + off;
				if (BPF_MODE(c) == BPF_MSH) {
					e.type = EV_MSH;
					ev_add(ev, &r.nev, &e);
					v = (uint32_t)(q[0] & 0xf) << 2;
					break;
				}
				v = size == 4 ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
							(uint32_t)q[2] << 8 | q[3]
				    : size == 2 ? (uint32_t)q[0] << 8 | q[1] : q[0];
				vp.kind = PV_PKT;
				vp.off = (uint32_t)off;
				vp.size = (uint8_t)size;
				break;
			}
			default:
				return r;
			}
			if (isx) {
				X = v;
				px = vp;
			} else {
				A = v;
				pa = vp;
			}
			break;
		}
		case BPF_ST:
		case BPF_STX:
			if (k >= BPF_MEMWORDS)
				return r;
			M[k] = BPF_CLASS(c) == BPF_ST ? A : X;
			pm[k] = BPF_CLASS(c) == BPF_ST ? pa : px;
			break;
		case BPF_ALU: {
			uint16_t op = BPF_OP(c);
			uint32_t b = BPF_SRC(c) == BPF_X ? X : k;
			if ((op == BPF_DIV || op == BPF_MOD) && b == 0)
				return r;
			if (op > BPF_XOR)
				return r;
			pv_push(&pa, op, b, A);
			A = alu(op, A, b);
			break;
		}
		case BPF_JMP: {
			uint16_t op = BPF_OP(c);
			if (op == BPF_JA) {
				/* libpcap sign-extends: its protochain code loops backward. */
				int64_t to = (int64_t)pc + 1 + (int32_t)k;
				if (to < 0 || to >= n)
					return r;
				pc = (unsigned)to - 1;
				break;
			}
			uint32_t b = BPF_SRC(c) == BPF_X ? X : k;
			bool t;
			switch (op) {
			case BPF_JEQ: t = A == b; break;
			case BPF_JGT: t = A > b; break;
			case BPF_JGE: t = A >= b; break;
			case BPF_JSET: t = (A & b) != 0; break;
			default: return r;
			}
			e.type = EV_JUMP;
			e.code = c;
			e.k = b;
			e.a = A;
			e.x = X;
			e.pa = pa;
			if (BPF_SRC(c) == BPF_X)
				e.px = px;
			ev_add(ev, &r.nev, &e);
			pc += t ? i->jt : i->jf;
			break;
		}
		case BPF_RET:
			r.ret = BPF_RVAL(c) == BPF_A ? A : BPF_RVAL(c) == BPF_K ? k : 0;
			return r;
		case BPF_MISC:
			if (BPF_MISCOP(c) == BPF_TAX) {
				X = A;
				px = pa;
			} else {
				A = X;
				pa = px;
			}
			break;
		}
	}
	return r;
}

/* Inverts the remembered ALU operations: the loaded value that gives t. */
static uint32_t pv_solve(const struct pv *v, uint32_t t)
{
	for (int i = v->nops - 1; i >= 0; i--) {
		uint32_t k = v->k[i], pre = v->pre[i];
		switch (v->op[i]) {
		case BPF_ADD: t -= k; break;
		case BPF_SUB: t += k; break;
		case BPF_XOR: t ^= k; break;
		case BPF_AND: t = (pre & ~k) | (t & k); break;
		case BPF_OR: t = (pre & k) | (t & ~k); break;
		case BPF_LSH: t = k < 32 ? (t >> k) | (k ? pre & ~(0xffffffffu >> k) : 0) : pre; break;
		case BPF_RSH: t = k < 32 ? (t << k) | (pre & ((1u << k) - 1)) : pre; break;
		case BPF_MUL: t = k ? t / k : pre; break;
		case BPF_DIV: t = t * k + pre % k; break;
		case BPF_MOD: t = pre - pre % k + t % k; break;
		case BPF_NEG: t = -t; break;
		}
	}
	return t;
}

static void pkt_copy(struct packet *dst, const struct packet *src, uint32_t caplen)
{
	dst->data = xmalloc(caplen);
	uint32_t n = src->caplen < caplen ? src->caplen : caplen;
	if (n)
		memcpy(dst->data, src->data, n);
	if (caplen > n)
		memset(dst->data + n, 0, caplen - n);
	dst->caplen = caplen;
	dst->wirelen = src->wirelen > caplen ? src->wirelen : caplen;
}

/* A copy of base whose value v equals t (as far as writing bytes can make it). */
static bool pv_apply(const struct packet *base, const struct pv *v, uint32_t t,
		     struct packet *out)
{
	if (v->kind == PV_LEN) {
		uint32_t w = pv_solve(v, t);
		pkt_copy(out, base, base->caplen < w ? base->caplen : w);
		out->wirelen = w;
		return true;
	}
	if (v->kind != PV_PKT || v->off > (uint32_t)PKT_MAX - v->size)
		return false;
	uint32_t w = pv_solve(v, t);
	uint32_t need = v->off + v->size;
	pkt_copy(out, base, base->caplen > need ? base->caplen : need);
	uint8_t *q = out->data + v->off;
	if (v->size == 4) {
		q[0] = (uint8_t)(w >> 24);
		q[1] = (uint8_t)(w >> 16);
		q[2] = (uint8_t)(w >> 8);
		q[3] = (uint8_t)w;
	} else if (v->size == 2) {
		q[0] = (uint8_t)(w >> 8);
		q[1] = (uint8_t)w;
	} else {
		q[0] = (uint8_t)w;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* One case: programs, packets, verdicts                               */

struct prog {
	struct bpf_insn *insns; /* NULL with n == 0: "rejects every packet" */
	unsigned n;
	bool ok;
	char err[256];
	bool backward;          /* has a backward ja: run by sim(), bpf_filter may not end */
	struct bpf_program lp; /* libpcap-owned, when from libpcap */
	bool from_pcap;
	struct bpfkit_prog bk;
};

static void prog_free(struct prog *p)
{
	if (p->from_pcap && p->ok)
		pcap_freecode(&p->lp);
	if (!p->from_pcap && p->ok)
		bpfkit_prog_free(NULL, &p->bk);
	memset(p, 0, sizeof *p);
}

static void mark_backward(struct prog *p)
{
	for (unsigned i = 0; i < p->n; i++)
		if (p->insns[i].code == (BPF_JMP | BPF_JA) && (int32_t)p->insns[i].k < 0)
			p->backward = true;
}

static void compile_pcap(struct prog *p, int dlt, uint32_t snaplen, const char *expr, int optimize,
			 uint32_t netmask)
{
	memset(p, 0, sizeof *p);
	p->from_pcap = true;
	pcap_t *h = pcap_open_dead(dlt, (int)snaplen);
	if (!h) {
		snprintf(p->err, sizeof p->err, "pcap_open_dead failed");
		return;
	}
	if (pcap_compile(h, &p->lp, expr, optimize, netmask) == 0) {
		p->ok = true;
		p->insns = p->lp.bf_insns;
		p->n = p->lp.bf_len;
		mark_backward(p);
	} else {
		snprintf(p->err, sizeof p->err, "%s", pcap_geterr(h));
	}
	pcap_close(h);
}

static void compile_bpfkit(struct prog *p, int dlt, uint32_t snaplen, const char *expr,
			   int optimize, uint32_t netmask)
{
	if (opt.pcap_subject) {
		/* Calibration: libpcap stands in for bpfkit (-O0 stays -O0, else -O1). */
		compile_pcap(p, dlt, snaplen, expr, optimize ? 1 : 0, netmask);
		return;
	}
	memset(p, 0, sizeof *p);
	struct bpfkit_compile_opts o = {
		.linktype = dlt, .snaplen = snaplen, .optimize = optimize, .netmask = netmask,
		.flags = BPFKIT_COMPILE_NETMASK,   /* PCAP_NETMASK_UNKNOWN: unknown */
	};
	struct bpfkit_error err;
	memset(&err, 0, sizeof err);
	if (bpfkit_compile(expr, &o, &p->bk, &err) == 0) {
		p->ok = true;
		p->insns = (struct bpf_insn *)p->bk.insns;
		p->n = (unsigned)p->bk.len;
		mark_backward(p);
	} else {
		snprintf(p->err, sizeof p->err, "%s", err.message);
	}
}

struct casectx {
	int dlt;
	const char *id, *expr;
	struct prog *ref0, *ref1, *subj; /* ref1 NULL: strict comparison */
	struct prog *extra;              /* more programs to direct branches from */
	uint64_t *seen;
	size_t seen_cap, seen_n;
	size_t made, budget;
	uint64_t packets, bad;
	struct packet badpkt;
	uint32_t bad_v0, bad_v1, bad_vs;
	bool bad_oob;
	struct pktvec frontier, next;
	struct event *ev;
};

static uint64_t pkt_hash(const struct packet *p)
{
	uint64_t h = 1469598103934665603ull ^ p->caplen ^ ((uint64_t)p->wirelen << 32);
	for (uint32_t i = 0; i < p->caplen; i++)
		h = (h ^ p->data[i]) * 1099511628211ull;
	return h ? h : 1;
}

/* true when the packet was not seen before in this case. */
static bool seen_add(struct casectx *c, const struct packet *p)
{
	if (c->seen_n * 2 >= c->seen_cap) {
		size_t ncap = c->seen_cap ? c->seen_cap * 2 : 1024;
		uint64_t *nt = xmalloc(ncap * sizeof *nt);
		memset(nt, 0, ncap * sizeof *nt);
		for (size_t i = 0; i < c->seen_cap; i++) {
			if (!c->seen[i])
				continue;
			size_t j = c->seen[i] & (ncap - 1);
			while (nt[j])
				j = (j + 1) & (ncap - 1);
			nt[j] = c->seen[i];
		}
		free(c->seen);
		c->seen = nt;
		c->seen_cap = ncap;
	}
	uint64_t h = pkt_hash(p);
	size_t j = h & (c->seen_cap - 1);
	while (c->seen[j]) {
		if (c->seen[j] == h)
			return false;
		j = (j + 1) & (c->seen_cap - 1);
	}
	c->seen[j] = h;
	c->seen_n++;
	return true;
}

static uint32_t run(const struct prog *p, const struct packet *pk)
{
	if (!p->n)
		return 0;
	if (p->backward) {
		struct simout s = sim(p->insns, p->n, pk, NULL);
		return s.looped ? 0 : s.ret;
	}
	return bpf_filter(p->insns, pk->data, pk->wirelen, pk->caplen);
}

/* Checks one packet; returns false on a disagreement. */
static bool check_packet(struct casectx *c, const struct packet *pk)
{
	struct simout s0 = sim(c->ref0->insns, c->ref0->n, pk, NULL);
	if (s0.looped) { /* libpcap's protochain loop does not end on this packet */
		looped_packets++;
		return true;
	}
	c->packets++;
	uint32_t v0 = run(c->ref0, pk), vs = run(c->subj, pk), v1 = 0;
	if (s0.ret != v0 && !sim_mismatch++ && opt.verbose) {
		printf("self-check mismatch: %s sim=%u bpf_filter=%u caplen=%u wirelen=%u\n",
		       c->id, s0.ret, v0, pk->caplen, pk->wirelen);
	}
	bool ok = (vs != 0) == (v0 != 0);
	if (!ok && c->ref1 && s0.oob) {
		v1 = run(c->ref1, pk);
		ok = (vs != 0) == (v1 != 0);
	}
	if (ok)
		return true;
	if (!c->bad++) {
		pkt_copy(&c->badpkt, pk, pk->caplen);
		c->badpkt.wirelen = pk->wirelen;
		c->bad_v0 = v0;
		c->bad_v1 = c->ref1 ? run(c->ref1, pk) : 0;
		c->bad_vs = vs;
		c->bad_oob = s0.oob;
	}
	return false;
}

/* Offers a made packet: checked if new; kept for the next round. Takes ownership. */
static void offer(struct casectx *c, struct packet *p)
{
	if (c->made >= c->budget || !seen_add(c, p)) {
		free(p->data);
		return;
	}
	c->made++;
	check_packet(c, p);
	if (c->next.n < c->budget / 2 + 16) {
		if (c->next.n == c->next.cap) {
			c->next.cap = c->next.cap ? c->next.cap * 2 : 64;
			c->next.v = xrealloc(c->next.v, c->next.cap * sizeof *c->next.v);
		}
		c->next.v[c->next.n++] = *p;
	} else {
		free(p->data);
	}
}

static void offer_value(struct casectx *c, const struct packet *base, const struct pv *v,
			uint32_t t)
{
	struct packet np;
	if (pv_apply(base, v, t, &np))
		offer(c, &np);
}

static void offer_cut(struct casectx *c, const struct packet *base, uint64_t cut)
{
	if (cut > base->caplen)
		return;
	struct packet np;
	pkt_copy(&np, base, (uint32_t)cut);
	np.wirelen = base->wirelen;
	offer(c, &np);
}

/* Children of pk that steer the branches program p takes on it. */
static void direct(struct casectx *c, const struct prog *p, const struct packet *pk)
{
	if (!p || !p->n)
		return;
	struct simout s = sim(p->insns, p->n, pk, c->ev);
	for (size_t i = 0; i < s.nev && c->made < c->budget; i++) {
		const struct event *e = &c->ev[i];
		switch (e->type) {
		case EV_JUMP: {
			uint32_t b = e->k, a = e->a;
			switch (BPF_OP(e->code)) {
			case BPF_JEQ:
				offer_value(c, pk, &e->pa, b);
				offer_value(c, pk, &e->pa, b + 1);
				offer_value(c, pk, &e->pa, b - 1);
				break;
			case BPF_JGT:
			case BPF_JGE:
				offer_value(c, pk, &e->pa, b);
				offer_value(c, pk, &e->pa, b + 1);
				offer_value(c, pk, &e->pa, b - 1);
				break;
			case BPF_JSET:
				offer_value(c, pk, &e->pa, a | b);
				offer_value(c, pk, &e->pa, a & ~b);
				offer_value(c, pk, &e->pa, (a & ~b) | (b & -b));
				break;
			}
			if (BPF_SRC(e->code) == BPF_X && e->px.kind != PV_NONE) {
				offer_value(c, pk, &e->px, a);
				offer_value(c, pk, &e->px, a + 1);
				offer_value(c, pk, &e->px, a - 1);
			}
			break;
		}
		case EV_LOAD:
			offer_cut(c, pk, e->off);
			offer_cut(c, pk, (uint64_t)e->off + e->size - 1);
			offer_cut(c, pk, (uint64_t)e->off + e->size);
			offer_cut(c, pk, (uint64_t)e->off + e->size + 1);
			break;
		case EV_MSH: {
			static const uint8_t ihl[] = {0, 5, 6, 15};
			for (size_t j = 0; j < sizeof ihl; j++) {
				struct packet np;
				pkt_copy(&np, pk, pk->caplen);
				np.wirelen = pk->wirelen;
				np.data[e->off] = (uint8_t)((np.data[e->off] & 0xf0) | ihl[j]);
				offer(c, &np);
			}
			break;
		}
		case EV_OOB:
			if (e->off <= (uint32_t)PKT_MAX - e->size - 40) {
				struct packet np;
				pkt_copy(&np, pk, e->off + e->size);
				offer(c, &np);
				pkt_copy(&np, pk, e->off + e->size + 40);
				offer(c, &np);
			}
			break;
		}
	}
}

/* Runs the case's programs over real packets and branch-directed ones. */
static void run_packets(struct casectx *c, const struct pktvec *real, const struct pktvec *extra)
{
	const struct pktvec *srcs[2] = {real, extra};
	for (int s = 0; s < 2; s++)
		for (size_t i = 0; srcs[s] && i < srcs[s]->n; i++)
			if (seen_add(c, &srcs[s]->v[i]))
				check_packet(c, &srcs[s]->v[i]);

	/* Seeds: a spread of the real packets (synthetic ones are at the end). */
	size_t nseed = 24;
	for (int s = 0; s < 2; s++) {
		const struct pktvec *v = srcs[s];
		if (!v || !v->n)
			continue;
		size_t step = v->n > nseed ? v->n / nseed : 1;
		for (size_t i = v->n; i-- > 0;) {
			if ((v->n - 1 - i) % step != 0 && i + 8 < v->n)
				continue;
			pktvec_push(&c->frontier, v->v[i].data, v->v[i].caplen, v->v[i].wirelen);
		}
	}
	for (int round = 0; round < opt.rounds && c->made < c->budget; round++) {
		for (size_t i = 0; i < c->frontier.n && c->made < c->budget; i++) {
			direct(c, c->ref0, &c->frontier.v[i]);
			direct(c, c->subj, &c->frontier.v[i]);
			direct(c, c->extra, &c->frontier.v[i]);
		}
		pktvec_free(&c->frontier);
		c->frontier = c->next;
		memset(&c->next, 0, sizeof c->next);
	}
	pktvec_free(&c->frontier);
	pktvec_free(&c->next);
}

static void report(int dlt, const char *id, const char *expr, const char *what,
		   const struct packet *pk, const char *verdicts)
{
	if (!opt.quiet && opt.verbose) {
		printf("DISAGREE %s %s: ", dlt_name(dlt), id);
		fput_escaped(stdout, expr);
		printf(": %s %s\n", what, verdicts ? verdicts : "");
	}
	if (!outf)
		return;
	fprintf(outf, "%s\t%s\t", dlt_name(dlt), id);
	fput_escaped(outf, expr);
	fprintf(outf, "\t%s\t", what);
	if (pk) {
		fprintf(outf, "%u/%u\t", pk->caplen, pk->wirelen);
		for (uint32_t i = 0; i < pk->caplen && i < 512; i++)
			fprintf(outf, "%02x", pk->data[i]);
		if (pk->caplen > 512)
			fputs("...", outf);
	} else {
		fputs("-\t-", outf);
	}
	fprintf(outf, "\t%s\n", verdicts ? verdicts : "-");
}

/* ------------------------------------------------------------------ */
/* Cases                                                               */

struct row {
	const char *id, *kind, *expr, *errstr, *savefile, *apply_results, *needs_namedb;
	int dlt;
	uint32_t snaplen;
	bool has_netmask;
	uint32_t netmask; /* host order */
	int expect;       /* 1 valid, 0 invalid, -1 decided by the oracle (lists) */
};


/* Compares the savefile verdicts of an apply row with its expected results. */
static bool check_apply(const struct row *r, const struct prog *p, const struct pktvec *pk,
			char *why, size_t whylen)
{
	const char *s = r->apply_results;
	for (size_t i = 0; i < pk->n; i++) {
		if (!s || !*s) {
			snprintf(why, whylen, "apply: more packets than results");
			return false;
		}
		unsigned long want = strtoul(s, (char **)&s, 10);
		if (*s == ',')
			s++;
		uint32_t got = run(p, &pk->v[i]);
		if ((got != 0) != (want != 0)) {
			snprintf(why, whylen, "apply: packet %zu: want %lu got %u", i + 1, want, got);
			return false;
		}
	}
	return true;
}

static void run_case(const struct row *r)
{
	struct stats *st = stats_for(r->dlt);
	uint32_t lp_mask = r->has_netmask ? r->netmask : PCAP_NETMASK_UNKNOWN;
	uint32_t bk_mask = lp_mask;
	struct prog bk0, lp0;
	compile_bpfkit(&bk0, r->dlt, r->snaplen, r->expr, opt.self ? 0 : opt.optimize, bk_mask);
	compile_pcap(&lp0, r->dlt, r->snaplen, r->expr, 0, lp_mask);

	bool valid = r->expect == 1 || (r->expect < 0 && lp0.ok);
	bool oracle_differs = r->expect >= 0 && lp0.ok != (r->expect == 1);
	char why[512];

	/* Packets of the savefile (apply rows); the oracle's own verdicts may differ there. */
	struct pktvec sf = {0};
	if (valid && r->savefile && *r->savefile) {
		const char *base = strrchr(r->savefile, '/');
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", opt.ltests, base ? base + 1 : r->savefile);
		read_capture(path, &sf, 100000);
		if (lp0.ok && !check_apply(r, &lp0, &sf, why, sizeof why))
			oracle_differs = true;
	}

	if (opt.self) {
		/* The optimizer's contract: -O<n> gives -O0's verdict on every packet. */
		if (!bk0.ok || bpf_validate(bk0.insns, (int)bk0.n) == 0) {
			st->rej++;
			st->refused += !bk0.ok;
			if (bk0.ok)
				report(r->dlt, r->id, r->expr, "invalid -O0 program", NULL, NULL);
			prog_free(&bk0);
			prog_free(&lp0);
			pktvec_free(&sf);
			return;
		}
		struct prog bkn;
		compile_bpfkit(&bkn, r->dlt, r->snaplen, r->expr, opt.optimize, bk_mask);
		st->acc++;
		if (!bkn.ok && strstr(bkn.err, "rejects all packets")) {
			/* a proof that nothing matches: -O0 must reject every packet */
			prog_free(&bkn);
			bkn.ok = true;   /* insns NULL, n 0: rejects every packet */
		}
		if (!bkn.ok) {
			snprintf(why, sizeof why, "optimized compile failed: %s", bkn.err);
			report(r->dlt, r->id, r->expr, why, NULL, NULL);
		} else if (bkn.n && bpf_validate(bkn.insns, (int)bkn.n) == 0) {
			report(r->dlt, r->id, r->expr, "invalid optimized program", NULL, NULL);
		} else {
			st->both++;
			struct casectx c = {.dlt = r->dlt, .id = r->id, .expr = r->expr,
					    .ref0 = &bk0, .subj = &bkn, .extra = lp0.ok ? &lp0 : NULL,
					    .budget = opt.budget};
			c.ev = xmalloc(MAX_EVENTS * sizeof *c.ev);
			run_packets(&c, pool_get(r->dlt), &sf);
			st->packets += c.packets;
			if (!c.bad) {
				st->agree++;
			} else {
				char v[128];
				snprintf(v, sizeof v, "O0=%u O%d=%u (%llu bad of %llu)", c.bad_v0,
					 opt.optimize, c.bad_vs, (unsigned long long)c.bad,
					 (unsigned long long)c.packets);
				report(r->dlt, r->id, r->expr, "verdict", &c.badpkt, v);
				free(c.badpkt.data);
			}
			free(c.ev);
			free(c.seen);
		}
		prog_free(&bkn);
		prog_free(&bk0);
		prog_free(&lp0);
		pktvec_free(&sf);
		return;
	}

	if (!valid) {
		/*
		 * libpcap refuses a filter its optimizer proves constant-false
		 * ("expression rejects all packets"); bpfkit does so at -O1 and
		 * above, so such rows are judged at -O2.
		 */
		if (bk0.ok && r->errstr && strstr(r->errstr, "rejects all packets")) {
			prog_free(&bk0);
			compile_bpfkit(&bk0, r->dlt, r->snaplen, r->expr, 2, bk_mask);
		}
		if (oracle_differs) {
			st->odiff++;
			st->odiff_ok += !bk0.ok;
			if (bk0.ok)
				report(r->dlt, r->id, r->expr, "odiff: bpfkit accepted a reject row "
				       "(libpcap 1.10.3 accepts it too)", NULL, NULL);
		} else {
			st->rej++;
			if (!bk0.ok) {
				st->refused++;
				if (r->errstr && *r->errstr && strstr(bk0.err, r->errstr))
					st->errstr_match++;
			} else {
				snprintf(why, sizeof why, "bpfkit accepted; libpcap: %s", lp0.err);
				report(r->dlt, r->id, r->expr, why, NULL, NULL);
			}
		}
		prog_free(&bk0);
		prog_free(&lp0);
		return;
	}

	bool apply_ok = true;
	if (bk0.ok && bpf_validate(bk0.insns, (int)bk0.n) == 0) {
		report(r->dlt, r->id, r->expr, "invalid program (bpf_validate)", NULL, NULL);
		prog_free(&bk0);
		snprintf(bk0.err, sizeof bk0.err, "invalid program");
		apply_ok = false;
	}
	if (bk0.ok && sf.n && !check_apply(r, &bk0, &sf, why, sizeof why)) {
		report(r->dlt, r->id, r->expr, why, NULL, NULL);
		apply_ok = false;
	}

	if (oracle_differs) {
		st->odiff++;
		st->odiff_ok += bk0.ok && apply_ok;
		if (!bk0.ok && apply_ok) {
			snprintf(why, sizeof why, "odiff: bpfkit refused a valid row "
				 "(libpcap 1.10.3 too): %s", bk0.err);
			report(r->dlt, r->id, r->expr, why, NULL, NULL);
		}
		goto out;
	}
	st->acc++;
	if (!bk0.ok && strstr(bk0.err, "rejects all packets")) {
		/* Optimizing, both compilers may refuse a filter that accepts nothing. */
		struct prog l1;
		compile_pcap(&l1, r->dlt, r->snaplen, r->expr, 1, lp_mask);
		bool both_refuse = !l1.ok;
		prog_free(&l1);
		if (both_refuse) {
			st->both++;
			st->agree++;
			goto out;
		}
		/* bpfkit proved more: judge its claim on the packets */
		memset(&bk0, 0, sizeof bk0);
		bk0.ok = true;   /* insns NULL, n 0: rejects every packet */
	}
	if (!bk0.ok) {
		if (apply_ok) {
			snprintf(why, sizeof why, "bpfkit refused: %s", bk0.err);
			report(r->dlt, r->id, r->expr, why, NULL, NULL);
		}
		goto out;
	}
	st->both++;
	struct prog lp1;
	compile_pcap(&lp1, r->dlt, r->snaplen, r->expr, 1, lp_mask);
	if (!lp1.ok) /* "expression rejects all packets": every verdict 0 */
		lp1.n = 0;
	struct casectx c = {.dlt = r->dlt, .id = r->id, .expr = r->expr, .ref0 = &lp0,
			    .ref1 = &lp1, .subj = &bk0, .budget = opt.budget};
	c.ev = xmalloc(MAX_EVENTS * sizeof *c.ev);
	run_packets(&c, pool_get(r->dlt), &sf);
	st->packets += c.packets;
	if (!c.bad && apply_ok) {
		st->agree++;
	} else if (c.bad) {
		char v[160];
		snprintf(v, sizeof v, "libpcap-O0=%u libpcap-O1=%u bpfkit-O%d=%u oob=%d "
			 "(%llu bad of %llu)", c.bad_v0, c.bad_v1, opt.optimize, c.bad_vs,
			 c.bad_oob, (unsigned long long)c.bad, (unsigned long long)c.packets);
		report(r->dlt, r->id, r->expr, "verdict", &c.badpkt, v);
		free(c.badpkt.data);
	}
	free(c.ev);
	free(c.seen);
	prog_free(&lp1);
out:
	pktvec_free(&sf);
	prog_free(&bk0);
	prog_free(&lp0);
}

/* A row that is not judged still goes through bpfkit_compile: no crash on any input. */
static void compile_only(const struct row *r)
{
	struct prog p;
	compile_bpfkit(&p, r->dlt < 0 ? 1 : r->dlt, r->snaplen, r->expr, opt.optimize,
		       r->has_netmask ? r->netmask : PCAP_NETMASK_UNKNOWN);
	prog_free(&p);
}

static bool take(size_t *counter, size_t *taken)
{
	if ((*counter)++ % opt.every != 0)
		return false;
	if (opt.max_cases && *taken >= opt.max_cases)
		return false;
	(*taken)++;
	return true;
}

static bool parse_netmask(const char *s, struct row *r)
{
	struct in_addr a;
	if (!s || !*s)
		return true;
	if (inet_pton(AF_INET, s, &a) != 1)
		return false;
	r->has_netmask = true;
	r->netmask = ntohl(a.s_addr);
	return true;
}

static bool match_ok(const struct row *r)
{
	return !opt.match || strstr(r->id, opt.match) || strstr(r->expr, opt.match);
}

static int run_corpus(const char *path)
{
	const char *const names[] = {"id", "kind", "dlt", "snaplen", "netmask", "flags", "expr",
				     "outcome", "errstr", "skip_linux", "needs_namedb", "savefile",
				     "apply_results"};
	enum { C_ID, C_KIND, C_DLT, C_SNAP, C_MASK, C_FLAGS, C_EXPR, C_OUT, C_ERR, C_SKIP,
	       C_NDB, C_SAVE, C_APPLY, C_N };
	struct corpus_reader cr;
	const char *missing;
	if (corpus_open(&cr, path, names, C_N, &missing) != 0) {
		if (missing)
			fprintf(stderr, "difftest: %s: no column %s\n", path, missing);
		else
			fprintf(stderr, "difftest: cannot open %s\n", path);
		return -1;
	}
	size_t counter = 0, taken = 0;
	const char *fld[C_N];
	while (corpus_next(&cr, fld)) {
		struct row r = {
			.id = fld[C_ID], .kind = fld[C_KIND], .expr = fld[C_EXPR],
			.errstr = fld[C_ERR], .savefile = fld[C_SAVE],
			.apply_results = fld[C_APPLY], .needs_namedb = fld[C_NDB],
			.dlt = dlt_parse(fld[C_DLT]),
			.snaplen = *fld[C_SNAP] ? (uint32_t)strtoul(fld[C_SNAP], NULL, 10)
						: 262144,
			.expect = strcmp(fld[C_OUT], "valid") == 0,
		};
		parse_netmask(fld[C_MASK], &r);
		const char *flags = fld[C_FLAGS];
		bool chosen = in_list(opt.kinds, r.kind) &&
			      in_list(opt.dlts, fld[C_DLT]) && match_ok(&r);
		if (!chosen || !take(&counter, &taken)) {
			continue;
		}
		if (r.dlt < 0) {
			compile_only(&r);
			struct stats *st = stats_for(-1);
			st->rows++;
			st->skipped_dlt++;
			continue;
		}
		struct stats *st = stats_for(r.dlt);
		st->rows++;
		if (strstr(flags, "linuxext") || strstr(flags, "filtertest_magic") ||
		    *fld[C_SKIP]) {
			st->skipped++;
			compile_only(&r);
			continue;
		}
		if (!corpus_namedb_ready(namedb_have, r.needs_namedb) || (opt.no_namedb && strstr(flags, "timeout="))) {
			/* Not even compiled: the names would go to DNS, which may be slow. */
			st->skipped_namedb++;
			continue;
		}
		run_case(&r);
	}
	corpus_close(&cr);
	return 0;
}

/* Expression lists: "[LINKTYPE<TAB>]EXPR[<TAB>NETMASK]" per line; '#' comments. */
static int run_list(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "difftest: cannot open %s\n", path);
		return -1;
	}
	int deflt = opt.deflt;
	if (deflt < 0) {
		const char *b = strrchr(path, '/');
		char name[64];
		snprintf(name, sizeof name, "%s", b ? b + 1 : path);
		char *dot = strchr(name, '.');
		if (dot)
			*dot = 0;
		deflt = dlt_parse(name);
		if (deflt < 0)
			deflt = DLT_EN10MB;
	}
	char *line = NULL;
	size_t cap = 0, counter = 0, taken = 0, lineno = 0;
	ssize_t len;
	while ((len = getline(&line, &cap, f)) > 0) {
		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (!len || line[0] == '#')
			continue;
		char id[64];
		snprintf(id, sizeof id, "%s:%zu", strrchr(path, '/') ? strrchr(path, '/') + 1 : path,
			 lineno);
		struct row r = {.id = id, .kind = "list", .expr = line, .dlt = deflt,
				.snaplen = 262144, .expect = -1};
		char *tab = strchr(line, '\t');
		if (tab) {
			*tab = 0;
			r.dlt = dlt_parse(line);
			r.expr = tab + 1;
			char *t2 = strchr(r.expr, '\t');
			if (t2) {
				*t2 = 0;
				if (!parse_netmask(t2 + 1, &r))
					fprintf(stderr, "difftest: %s: bad netmask\n", id);
			}
			if (r.dlt < 0) {
				fprintf(stderr, "difftest: %s: unknown link type %s\n", id, line);
				continue;
			}
		}
		if (!in_list(opt.dlts, dlt_name(r.dlt)) || !match_ok(&r) || !take(&counter, &taken))
			continue;
		stats_for(r.dlt)->rows++;
		run_case(&r);
	}
	free(line);
	fclose(f);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Name databases: are the test lines installed (see tests/difftest.sh)? */



/*
 * Reads the files themselves rather than asking the resolver: a name that is
 * absent would go to DNS and may take seconds to fail.
 */
static void namedb_probe(void)
{
	if (opt.corpus && !opt.no_namedb)
		corpus_namedb_probe(opt.corpus, namedb_have);
}

/* ------------------------------------------------------------------ */
/* Main                                                                */

static double threshold(int dlt)
{
	const char *name = dlt_name(dlt);
	for (size_t i = 0; i < opt.nmin_dlt; i++) {
		char *eq = strchr(opt.min_dlt[i], '=');
		if (eq && (size_t)(eq - opt.min_dlt[i]) == strlen(name) &&
		    strncasecmp(opt.min_dlt[i], name, strlen(name)) == 0)
			return atof(eq + 1);
	}
	return opt.min_all;
}

static int cmp_stats(const void *a, const void *b)
{
	const struct stats *x = a, *y = b;
	uint64_t nx = x->acc + x->rej, ny = y->acc + y->rej;
	return nx < ny ? 1 : nx > ny ? -1 : x->dlt - y->dlt;
}

static int summarize(void)
{
	qsort(stats, nstats, sizeof *stats, cmp_stats);
	struct stats tot = {0};
	int fails = 0;
	printf("%-24s %6s %5s %5s %6s %6s %6s %7s %6s %6s %7s %6s %7s %9s\n", "linktype", "rows",
	       "skip", "ndb", "accept", "both", "agree", "acc%", "reject", "refuse", "pass%",
	       "odiff", "odiffok", "packets");
	for (size_t i = 0; i <= nstats; i++) {
		struct stats *s = i < nstats ? &stats[i] : &tot;
		if (i < nstats) {
			tot.rows += s->rows;
			tot.skipped += s->skipped + s->skipped_dlt;
			tot.skipped_namedb += s->skipped_namedb;
			tot.acc += s->acc;
			tot.both += s->both;
			tot.agree += s->agree;
			tot.rej += s->rej;
			tot.refused += s->refused;
			tot.errstr_match += s->errstr_match;
			tot.odiff += s->odiff;
			tot.odiff_ok += s->odiff_ok;
			tot.packets += s->packets;
		}
		uint64_t judged = s->acc + s->rej;
		double acc = s->acc ? 100.0 * (double)s->agree / (double)s->acc : 100.0;
		double pass = judged ? 100.0 * (double)(s->agree + s->refused) / (double)judged
				     : 100.0;
		char accs[16], passs[16];
		snprintf(accs, sizeof accs, s->acc ? "%.2f" : "-", acc);
		snprintf(passs, sizeof passs, judged ? "%.2f" : "-", pass);
		double min = i < nstats ? threshold(s->dlt) : -1;
		bool below = judged && min >= 0 && pass < min;
		fails += below;
		printf("%-24s %6llu %5llu %5llu %6llu %6llu %6llu %7s %6llu %6llu %7s %6llu %7llu "
		       "%9llu%s\n",
		       i < nstats ? (s->dlt < 0 ? "(unknown to libpcap)" : dlt_name(s->dlt)) : "TOTAL",
		       (unsigned long long)s->rows,
		       (unsigned long long)(s->skipped + s->skipped_dlt),
		       (unsigned long long)s->skipped_namedb, (unsigned long long)s->acc,
		       (unsigned long long)s->both, (unsigned long long)s->agree, accs,
		       (unsigned long long)s->rej, (unsigned long long)s->refused, passs,
		       (unsigned long long)s->odiff, (unsigned long long)s->odiff_ok,
		       (unsigned long long)s->packets, below ? "  BELOW THRESHOLD" : "");
	}
	printf("reject rows whose bpfkit message contains the corpus errstr: %llu of %llu refused\n",
	       (unsigned long long)tot.errstr_match, (unsigned long long)tot.refused);
	printf("name databases: hosts %s, ethers %s, networks %s%s\n",
	       namedb_have[0] ? "yes" : "no", namedb_have[1] ? "yes" : "no",
	       namedb_have[2] ? "yes" : "no",
	       tot.skipped_namedb ? " (rows needing a missing one are skipped: column ndb)" : "");
	printf("self-check: tracking interpreter vs bpf_filter mismatches: %llu\n",
	       (unsigned long long)sim_mismatch);
	if (looped_packets)
		printf("packets on which the reference program loops forever (libpcap's "
		       "protochain code; not compared): %llu\n", (unsigned long long)looped_packets);
	if (fails)
		printf("FAIL: %d link type(s) below threshold\n", fails);
	return fails ? 1 : 0;
}

static void usage(void)
{
	fputs("usage: difftest [options] [-c CORPUS.tsv] [LISTFILE...]\n"
	      "  -c FILE      libpcap corpus TSV (../shared/corpus/libpcap-filters.tsv)\n"
	      "  -l LINKTYPE  default link type of list files (default: from the file name,\n"
	      "               e.g. EN10MB.txt, else EN10MB)\n"
	      "  -O N         bpfkit optimize level of the tested program (default 0)\n"
	      "  --self       compare bpfkit -O N with bpfkit -O0 (the optimizer's contract)\n"
	      "  -o FILE      write disagreements (TSV) to FILE\n"
	      "  -n N         branch-directed packets per case (default 1200)\n"
	      "  -R N         real packets per link type (default 300)\n"
	      "  --rounds N   branch-directing rounds (default 4)\n"
	      "  -m PCT       fail when a link type's pass%% is below PCT\n"
	      "  -M DLT=PCT   per-link-type threshold (repeatable; overrides -m)\n"
	      "  --dlts LIST  only these link types (comma list)\n"
	      "  --kinds LIST only these corpus kinds (accept,apply,reject)\n"
	      "  --match STR  only cases whose id or expression contains STR\n"
	      "  --every K    take every K-th case of each source\n"
	      "  --max N      at most N cases per source\n"
	      "  --pcaps DIR  --ltests DIR   packet sources\n"
	      "  --no-namedb  no name lookups: skip rows that need the name-database test\n"
	      "               lines or DNS (flag timeout=)\n"
	      "  --pcap-subject  libpcap (-O0, or -O1 when -O N > 0) stands in for bpfkit:\n"
	      "               calibrates the tool without the compiler\n"
	      "  -v           print each disagreement;  -q  quiet\n",
	      stderr);
	exit(2);
}

int main(int argc, char **argv)
{
	enum { O_SELF = 256, O_DLTS, O_KINDS, O_MATCH, O_EVERY, O_MAX, O_PCAPS, O_LTESTS,
	       O_NONAMEDB, O_ROUNDS, O_PCAPSUBJ };
	static const struct option lo[] = {
		{"self", no_argument, NULL, O_SELF}, {"dlts", required_argument, NULL, O_DLTS},
		{"kinds", required_argument, NULL, O_KINDS},
		{"match", required_argument, NULL, O_MATCH},
		{"every", required_argument, NULL, O_EVERY}, {"max", required_argument, NULL, O_MAX},
		{"pcaps", required_argument, NULL, O_PCAPS},
		{"ltests", required_argument, NULL, O_LTESTS},
		{"no-namedb", no_argument, NULL, O_NONAMEDB},
		{"rounds", required_argument, NULL, O_ROUNDS},
		{"pcap-subject", no_argument, NULL, O_PCAPSUBJ}, {NULL, 0, NULL, 0},
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:l:O:o:n:R:m:M:vqh", lo, NULL)) != -1) {
		switch (ch) {
		case 'c': opt.corpus = optarg; break;
		case 'l':
			opt.deflt = dlt_parse(optarg);
			if (opt.deflt < 0)
				usage();
			break;
		case 'O': opt.optimize = atoi(optarg); break;
		case 'o': opt.outpath = optarg; break;
		case 'n': opt.budget = strtoul(optarg, NULL, 10); break;
		case 'R': opt.max_real = strtoul(optarg, NULL, 10); break;
		case 'm': opt.min_all = atof(optarg); break;
		case 'M':
			if (opt.nmin_dlt == 64 || !strchr(optarg, '='))
				usage();
			opt.min_dlt[opt.nmin_dlt++] = optarg;
			break;
		case 'v': opt.verbose = true; break;
		case 'q': opt.quiet = true; break;
		case O_SELF: opt.self = true; break;
		case O_DLTS: opt.dlts = optarg; break;
		case O_KINDS: opt.kinds = optarg; break;
		case O_MATCH: opt.match = optarg; break;
		case O_EVERY:
			opt.every = strtoul(optarg, NULL, 10);
			if (!opt.every)
				usage();
			break;
		case O_MAX: opt.max_cases = strtoul(optarg, NULL, 10); break;
		case O_PCAPS: opt.pcaps = optarg; break;
		case O_LTESTS: opt.ltests = optarg; break;
		case O_NONAMEDB: opt.no_namedb = true; break;
		case O_ROUNDS: opt.rounds = atoi(optarg); break;
		case O_PCAPSUBJ: opt.pcap_subject = true; break;
		default: usage();
		}
	}
	if (!opt.corpus && optind == argc)
		usage();
	if (opt.self && opt.optimize == 0)
		opt.optimize = 2;

	/* Refuse to report figures for a compiler that is not there yet. */
	struct prog probe;
	compile_bpfkit(&probe, DLT_EN10MB, 262144, "ip", 0, 0);
	if (!probe.ok && strstr(probe.err, "not implemented")) {
		printf("difftest: bpfkit_compile: not implemented\n");
		return 77;
	}
	prog_free(&probe);

	if (opt.outpath) {
		outf = fopen(opt.outpath, "w");
		if (!outf) {
			fprintf(stderr, "difftest: cannot write %s\n", opt.outpath);
			return 2;
		}
		fputs("linktype\tid\texpr\twhat\tcaplen/wirelen\tpacket\tverdicts\n", outf);
	}
	namedb_probe();
	clock_t t0 = clock();
	int rc = 0;
	if (opt.corpus && run_corpus(opt.corpus) < 0)
		rc = 2;
	for (int i = optind; i < argc; i++)
		if (run_list(argv[i]) < 0)
			rc = 2;
	if (!opt.quiet || rc == 0) {
		int s = summarize();
		if (!rc)
			rc = s;
	}
	printf("mode: %s, bpfkit -O%d; %.1f s cpu\n",
	       opt.self ? "bpfkit optimized vs bpfkit -O0" : pcap_lib_version(), opt.optimize,
	       (double)(clock() - t0) / CLOCKS_PER_SEC);
	if (outf)
		fclose(outf);
	for (size_t i = 0; i < npools; i++)
		pktvec_free(&pools[i].pk);
	free(pools);
	for (size_t i = 0; i < nsavefiles; i++)
		free(savefiles[i].path);
	free(savefiles);
	free(stats);
	return rc;
}
