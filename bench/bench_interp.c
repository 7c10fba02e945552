/*
 * bench_interp.c - times bpfkit's engines against libpcap's bpf_filter() and,
 * when built with -DHAVE_DPDK, DPDK's cBPF-to-eBPF converter and JIT, over the
 * same in-memory packets in one process.
 *
 *   bench/bench_interp [-r CAPTURE] [-n COUNT] [-R ROUNDS] [FILTER...]
 *
 * Packets: the capture (-r, read with the bpfkit capture API; packets of a
 * link type other than the first packet's are dropped) or COUNT (default
 * 100000) packets from bpfkit_gen (EN10MB, seed 1).  Each argument is one
 * whole filter; the defaults are classic tcpdump filters.
 *
 * Each filter is compiled twice: by libpcap (optimized), and by bpfkit_compile
 * (its default optimization).  Rows (the `engine` column):
 *   null        the loop alone: it reads each packet's length
 *   libpcap     bpf_filter() on libpcap's program
 *   interp, fast, jit
 *               bpfkit's engines on libpcap's program (engine against engine,
 *               same code)
 *   dpdk-jit    DPDK's JIT on libpcap's program (rte_bpf_convert)
 *   interp+cc, fast+cc, jit+cc
 *               bpfkit's engines on bpfkit_compile's program (the whole
 *               toolchain: compiler quality included)
 * and per engine a `geomean` row (geometric means of ns and of ratios over the
 * filters it ran).
 *
 * Every row runs the same loop (BENCH_LOOP: one call per packet, the verdict
 * counted); only the call differs.  `null` calls a function that returns the
 * packet's length through a pointer, as a JIT is called.  Packets
 * go in cache-sized chunks (256 KiB of packet bytes), read once untimed, then
 * run by every engine in turn (the order rotates each round): the numbers
 * time the engines, not DRAM (bench_filter.sh times whole streaming runs).
 * A row's time is the sum over the chunks of its median over ROUNDS (default
 * 9) rounds on that chunk, divided by the packet count (bench_filter).
 * DPDK's JIT reads packets through rte_mbufs (one per packet, warmed with the
 * chunk).  Before timing, every peer's verdict on every packet is checked
 * against bpfkit's reference interpreter (bpfkit_interp on libpcap's program);
 * a peer that disagrees on a filter is excluded from it (its row says NA and
 * standard error says why).  DPDK's converter mistranslates `ldb [x+k]`, so
 * it is expected to be excluded on filters that use it.
 *
 * Output (standard output): filter<TAB>engine<TAB>ns_per_packet<TAB>
 * ratio_vs_libpcap, where the ratio is libpcap's ns / the row's ns (higher is
 * faster).  A summary (jit against dpdk-jit and null) goes to standard error.
 */
#define _GNU_SOURCE 1
#include "bpfkit.h"

#include <math.h>
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_DPDK
#define HAVE_DPDK_ROW 1
#include <rte_bpf.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#else
#define HAVE_DPDK_ROW 0
#endif

struct pkt {
	const uint8_t *data;
	uint32_t caplen, wirelen;
};

static struct pkt *pkts;
static size_t npkts;
static int linktype = 1;

/* ------------------------------------------------------------------ */
/* The engines, each behind the same call shape                        */

enum engine {
	ENG_NULL, ENG_LIBPCAP, ENG_INTERP, ENG_FAST, ENG_JIT, ENG_DPDK,
	ENG_INTERP_CC, ENG_FAST_CC, ENG_JIT_CC, ENG__N
};
static const char *const engine_names[ENG__N] = {
	"null", "libpcap", "interp", "fast", "jit", "dpdk-jit", "interp+cc", "fast+cc", "jit+cc"
};

/* What one filter's engines need. */
struct filter_ctx {
	struct bpf_program pcap_prog;
	struct bpfkit_prog cc_prog;   /* len 0 when bpfkit_compile failed */
	struct bpfkit_fast *fast, *fast_cc;
	struct bpfkit_jit *jit, *jit_cc;
	bpfkit_jit_fn jit_fn, jit_cc_fn;
#ifdef HAVE_DPDK
	struct rte_bpf *dpdk;
	uint64_t (*dpdk_fn)(void *);
#endif
	int have[ENG__N];
};

static struct filter_ctx cur;

#ifdef HAVE_DPDK
static struct rte_mbuf *mbufs; /* one per packet, pointing at its bytes */
#endif

typedef uint32_t (*call_fn)(size_t i);

static uint32_t call_null(size_t i) { return pkts[i].caplen; }
static uint32_t call_libpcap(size_t i)
{
	return bpf_filter(cur.pcap_prog.bf_insns, pkts[i].data, pkts[i].wirelen, pkts[i].caplen);
}
static uint32_t call_interp(size_t i)
{
	return bpfkit_interp((const struct bpfkit_insn *)cur.pcap_prog.bf_insns,
			     cur.pcap_prog.bf_len, pkts[i].data, pkts[i].caplen, pkts[i].wirelen,
			     NULL);
}
static uint32_t call_fast(size_t i)
{
	return bpfkit_fast_run(cur.fast, pkts[i].data, pkts[i].caplen, pkts[i].wirelen);
}
static uint32_t call_jit(size_t i)
{
	return cur.jit_fn(pkts[i].data, pkts[i].caplen, pkts[i].wirelen);
}
static uint32_t call_interp_cc(size_t i)
{
	return bpfkit_interp(cur.cc_prog.insns, cur.cc_prog.len, pkts[i].data, pkts[i].caplen,
			     pkts[i].wirelen, NULL);
}
static uint32_t call_fast_cc(size_t i)
{
	return bpfkit_fast_run(cur.fast_cc, pkts[i].data, pkts[i].caplen, pkts[i].wirelen);
}
static uint32_t call_jit_cc(size_t i)
{
	return cur.jit_cc_fn(pkts[i].data, pkts[i].caplen, pkts[i].wirelen);
}
#ifdef HAVE_DPDK
static uint32_t call_dpdk(size_t i) { return (uint32_t)cur.dpdk_fn(&mbufs[i]); }
#endif

static const call_fn calls[ENG__N] = {
	[ENG_NULL] = call_null, [ENG_LIBPCAP] = call_libpcap, [ENG_INTERP] = call_interp,
	[ENG_FAST] = call_fast, [ENG_JIT] = call_jit, [ENG_INTERP_CC] = call_interp_cc,
	[ENG_FAST_CC] = call_fast_cc, [ENG_JIT_CC] = call_jit_cc,
#ifdef HAVE_DPDK
	[ENG_DPDK] = call_dpdk,
#endif
};

/* ------------------------------------------------------------------ */
/* Timing                                                              */

static volatile uint32_t sink;

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/*
 * The timed loops, one per engine, all from this one macro: each calls its
 * engine the way a user would (a direct call for the library functions, a
 * call through the raw function pointer for the JITs) and counts the
 * verdicts.  `null` calls, through a function pointer as a JIT is called, a
 * function that returns the packet's length: the loop and call overhead
 * every row pays.  Each returns ns for packets [begin, end).
 */
#define BENCH_LOOP(name, CALL)							\
	__attribute__((noinline)) static double name(size_t begin, size_t end)	\
	{									\
		uint32_t matched = 0;						\
		double t0 = now_ns();						\
		for (size_t i = begin; i < end; i++) {				\
			const struct pkt *p = &pkts[i];				\
			matched += (CALL) != 0;					\
		}								\
		double t = now_ns() - t0;					\
		sink += matched;						\
		return t;							\
	}

__attribute__((noinline)) static uint32_t null_filter(const uint8_t *pkt, uint32_t caplen,
						      uint32_t wirelen)
{
	(void)pkt;
	(void)wirelen;
	return caplen;
}
static bpfkit_jit_fn volatile null_fn = null_filter;

BENCH_LOOP(loop_null, null_fn(p->data, p->caplen, p->wirelen))
BENCH_LOOP(loop_libpcap, bpf_filter(cur.pcap_prog.bf_insns, p->data, p->wirelen, p->caplen))
BENCH_LOOP(loop_interp, bpfkit_interp((const struct bpfkit_insn *)cur.pcap_prog.bf_insns,
				      cur.pcap_prog.bf_len, p->data, p->caplen, p->wirelen, NULL))
BENCH_LOOP(loop_fast, bpfkit_fast_run(cur.fast, p->data, p->caplen, p->wirelen))
BENCH_LOOP(loop_jit, cur.jit_fn(p->data, p->caplen, p->wirelen))
BENCH_LOOP(loop_interp_cc, bpfkit_interp(cur.cc_prog.insns, cur.cc_prog.len, p->data,
					 p->caplen, p->wirelen, NULL))
BENCH_LOOP(loop_fast_cc, bpfkit_fast_run(cur.fast_cc, p->data, p->caplen, p->wirelen))
BENCH_LOOP(loop_jit_cc, cur.jit_cc_fn(p->data, p->caplen, p->wirelen))
#ifdef HAVE_DPDK
BENCH_LOOP(loop_dpdk, cur.dpdk_fn(&mbufs[p - pkts]))
#endif

typedef double (*loop_fn)(size_t begin, size_t end);
static const loop_fn loops[ENG__N] = {
	[ENG_NULL] = loop_null, [ENG_LIBPCAP] = loop_libpcap, [ENG_INTERP] = loop_interp,
	[ENG_FAST] = loop_fast, [ENG_JIT] = loop_jit, [ENG_INTERP_CC] = loop_interp_cc,
	[ENG_FAST_CC] = loop_fast_cc, [ENG_JIT_CC] = loop_jit_cc,
#ifdef HAVE_DPDK
	[ENG_DPDK] = loop_dpdk,
#endif
};

/*
 * Chunks: runs of packets whose bytes fit in CHUNK_BYTES, so every engine
 * reads them from cache (the first read of a chunk, touch_chunk, is not
 * timed).  Without this a 100,000-packet capture (tens of MB) makes every
 * engine wait for DRAM on each packet, and the bench would time the memory.
 */
#define CHUNK_BYTES (256u << 10)

static size_t *chunk_start, nchunks;

static int make_chunks(void)
{
	chunk_start = malloc((npkts + 1) * sizeof *chunk_start);
	if (!chunk_start)
		return -1;
	size_t bytes = 0;
	nchunks = 0;
	for (size_t i = 0; i < npkts; i++) {
		size_t b = ((size_t)pkts[i].caplen + 63) & ~(size_t)63;
		if (i == 0 || bytes + b > CHUNK_BYTES) {
			chunk_start[nchunks++] = i;
			bytes = 0;
		}
		bytes += b;
	}
	chunk_start[nchunks] = npkts;
	return 0;
}

static void touch_chunk(size_t begin, size_t end)
{
	uint32_t x = 0;
	for (size_t i = begin; i < end; i++) {
		for (uint32_t o = 0; o < pkts[i].caplen; o += 64)
			x += pkts[i].data[o];
#ifdef HAVE_DPDK
		if (mbufs)
			x += mbufs[i].data_len;
#endif
	}
	sink += x;
}

/*
 * ROUNDS rounds of every engine in `have` over every packet, chunk by chunk
 * (the engines' order rotates each round).  An engine's ns per packet is the
 * sum over the chunks of its median time on that chunk over the rounds,
 * divided by the packet count: a chunk run is about 10 us, so a preemption
 * spoils one sample of one chunk and the median drops it.
 */
static int bench_filter(const int *have, int rounds, double *ns)
{
	double *t = malloc((size_t)rounds * sizeof *t * ENG__N);
	if (!t)
		return -1;
	for (int e = 0; e < ENG__N; e++)
		ns[e] = 0;
	for (size_t c = 0; c < nchunks; c++) {
		size_t b = chunk_start[c], end = chunk_start[c + 1];
		for (int r = 0; r < rounds; r++) {
			touch_chunk(b, end);
			for (int k = 0; k < ENG__N; k++) {
				int e = (k + r) % ENG__N;
				if (have[e])
					t[e * rounds + r] = loops[e](b, end);
			}
		}
		for (int e = 0; e < ENG__N; e++) {
			if (!have[e])
				continue;
			qsort(t + e * rounds, (size_t)rounds, sizeof *t, cmp_double);
			ns[e] += t[e * rounds + rounds / 2];
		}
	}
	for (int e = 0; e < ENG__N; e++)
		ns[e] /= (double)npkts;
	free(t);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Packets                                                             */

static uint8_t *arena;
static size_t arena_len, arena_cap;

static int add_packet(const uint8_t *data, uint32_t caplen, uint32_t wirelen)
{
	static size_t cap;
	if (npkts == cap) {
		cap = cap ? cap * 2 : 65536;
		struct pkt *p = realloc(pkts, cap * sizeof *p);
		if (!p)
			return -1;
		pkts = p;
	}
	if (arena_len + caplen + 8 > arena_cap) {
		/* offsets, not pointers, until the arena stops moving */
		size_t ncap = (arena_cap ? arena_cap * 2 : (size_t)16 << 20) + caplen;
		uint8_t *a = realloc(arena, ncap);
		if (!a)
			return -1;
		arena = a;
		arena_cap = ncap;
	}
	memcpy(arena + arena_len, data, caplen);
	pkts[npkts].data = (const uint8_t *)(uintptr_t)arena_len;
	pkts[npkts].caplen = caplen;
	pkts[npkts].wirelen = wirelen;
	npkts++;
	arena_len += (caplen + 7) & ~(size_t)7;
	return 0;
}

static void fix_pointers(void)
{
	for (size_t i = 0; i < npkts; i++)
		pkts[i].data = arena + (uintptr_t)pkts[i].data;
}

static int load_capture(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return -1;
	}
	struct bpfkit_capture *cap;
	struct bpfkit_error err;
	if (bpfkit_capture_open_fd(fileno(f), 0, NULL, &cap, &err) != 0) {
		fprintf(stderr, "bench: %s: %s\n", path, err.message);
		fclose(f);
		return -1;
	}
	struct bpfkit_packet p;
	int r, first = 1;
	size_t dropped = 0;
	while ((r = bpfkit_capture_next(cap, &p, &err)) == 1) {
		if (first)
			linktype = (int)p.linktype;
		first = 0;
		if ((int)p.linktype != linktype) {
			dropped++;
			continue;
		}
		if (add_packet(p.data, p.caplen, p.wirelen) != 0) {
			r = -1;
			snprintf(err.message, sizeof err.message, "out of memory");
			break;
		}
	}
	bpfkit_capture_close(cap);
	fclose(f);
	if (r < 0) {
		fprintf(stderr, "bench: %s: %s\n", path, err.message);
		return -1;
	}
	if (dropped)
		fprintf(stderr, "bench: %s: %zu packets of other link types dropped\n", path,
			dropped);
	return 0;
}

static int generate(size_t count)
{
	struct bpfkit_gen *g;
	struct bpfkit_error err;
	static uint8_t buf[BPFKIT_GEN_MAX_FRAME];
	if (bpfkit_gen_new(1, 1, NULL, &g, &err) != 0) {
		fprintf(stderr, "bench: gen: %s\n", err.message);
		return -1;
	}
	for (size_t i = 0; i < count; i++) {
		struct bpfkit_packet p;
		if (bpfkit_gen_next(g, buf, sizeof buf, &p, &err) != 0 ||
		    add_packet(p.data, p.caplen, p.wirelen) != 0) {
			fprintf(stderr, "bench: gen: packet %zu failed\n", i);
			bpfkit_gen_free(g);
			return -1;
		}
	}
	bpfkit_gen_free(g);
	linktype = 1;
	return 0;
}

/* ------------------------------------------------------------------ */
/* DPDK                                                                */

#ifdef HAVE_DPDK
static int dpdk_ok;

static void dpdk_init(void)
{
	char *args[] = {"bench", "--no-huge", "--no-pci", "--no-shconf", "--no-telemetry",
			"-m", "128", "-l", "0", "--log-level=lib.*:error", NULL};
	if (rte_eal_init(10, args) < 0) {
		fprintf(stderr, "bench: DPDK EAL init failed (%s): no dpdk-jit rows\n",
			rte_strerror(rte_errno));
		return;
	}
	mbufs = calloc(npkts, sizeof *mbufs);
	if (!mbufs)
		return;
	for (size_t i = 0; i < npkts; i++) {
		struct rte_mbuf *m = &mbufs[i];
		m->buf_addr = (void *)(uintptr_t)pkts[i].data;
		m->data_off = 0;
		m->buf_len = (uint16_t)(pkts[i].caplen > 65535 ? 65535 : pkts[i].caplen);
		m->data_len = m->buf_len;
		m->pkt_len = m->buf_len;
		m->nb_segs = 1;
		m->next = NULL;
	}
	dpdk_ok = 1;
}

static void dpdk_prepare(const char *filter)
{
	if (!dpdk_ok)
		return;
	struct rte_bpf_prm *prm = rte_bpf_convert(&cur.pcap_prog);
	if (!prm) {
		fprintf(stderr, "bench: '%s': dpdk: convert failed: %s\n", filter,
			rte_strerror(rte_errno));
		return;
	}
	cur.dpdk = rte_bpf_load(prm);
	rte_free(prm);
	struct rte_bpf_jit jit;
	if (!cur.dpdk || rte_bpf_get_jit(cur.dpdk, &jit) != 0 || !jit.func) {
		fprintf(stderr, "bench: '%s': dpdk: load/JIT failed\n", filter);
		return;
	}
	cur.dpdk_fn = jit.func;
	cur.have[ENG_DPDK] = 1;
}
#endif

/* ------------------------------------------------------------------ */
/* One filter                                                          */

/* 0 when engine e returns the reference's value on every packet. */
static int verify(const char *filter, enum engine e)
{
	for (size_t i = 0; i < npkts; i++) {
		uint32_t want = call_interp(i), got = calls[e](i);
		if (e >= ENG_INTERP_CC ? (want != 0) != (got != 0) : want != got) {
			fprintf(stderr, "bench: '%s': %s EXCLUDED: packet %zu (caplen %u): "
				"returns %u, reference interpreter %u\n", filter, engine_names[e],
				i + 1, pkts[i].caplen, got, want);
			return -1;
		}
	}
	return 0;
}

static int prepare(const char *filter, pcap_t *pd)
{
	struct bpfkit_error err;
	memset(&cur, 0, sizeof cur);
	if (pcap_compile(pd, &cur.pcap_prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
		fprintf(stderr, "bench: libpcap cannot compile '%s': %s\n", filter,
			pcap_geterr(pd));
		return -1;
	}
	const struct bpfkit_insn *pi = (const struct bpfkit_insn *)cur.pcap_prog.bf_insns;
	size_t pn = cur.pcap_prog.bf_len;
	cur.have[ENG_NULL] = cur.have[ENG_LIBPCAP] = cur.have[ENG_INTERP] = 1;
	if (bpfkit_fast_prepare(pi, pn, 0, NULL, &cur.fast, &err) == 0)
		cur.have[ENG_FAST] = 1;
	else
		fprintf(stderr, "bench: '%s': fast: %s\n", filter, err.message);
	if (bpfkit_jit_compile(pi, pn, 0, NULL, &cur.jit, &err) == 0) {
		cur.jit_fn = bpfkit_jit_function(cur.jit);
		cur.have[ENG_JIT] = 1;
	} else {
		fprintf(stderr, "bench: '%s': jit: %s\n", filter, err.message);
	}
	struct bpfkit_compile_opts opts = {.linktype = linktype, .optimize = 2};
	if (bpfkit_compile(filter, &opts, &cur.cc_prog, &err) == 0) {
		cur.have[ENG_INTERP_CC] = 1;
		if (bpfkit_fast_prepare(cur.cc_prog.insns, cur.cc_prog.len, 0, NULL, &cur.fast_cc,
					&err) == 0)
			cur.have[ENG_FAST_CC] = 1;
		if (bpfkit_jit_compile(cur.cc_prog.insns, cur.cc_prog.len, 0, NULL, &cur.jit_cc,
				       &err) == 0) {
			cur.jit_cc_fn = bpfkit_jit_function(cur.jit_cc);
			cur.have[ENG_JIT_CC] = 1;
		}
	} else {
		fprintf(stderr, "bench: bpfkit_compile cannot compile '%s': %s (no +cc rows)\n",
			filter, err.message);
		cur.cc_prog.len = 0;
	}
#ifdef HAVE_DPDK
	dpdk_prepare(filter);
#endif
	for (int e = ENG_LIBPCAP; e < ENG__N; e++)
		if (e != ENG_INTERP && cur.have[e] && verify(filter, (enum engine)e) != 0)
			cur.have[e] = 0;
	return 0;
}

static void release(void)
{
	pcap_freecode(&cur.pcap_prog);
	bpfkit_fast_free(cur.fast);
	bpfkit_fast_free(cur.fast_cc);
	bpfkit_jit_free(cur.jit);
	bpfkit_jit_free(cur.jit_cc);
	if (cur.cc_prog.insns)
		bpfkit_prog_free(NULL, &cur.cc_prog);
#ifdef HAVE_DPDK
	if (cur.dpdk)
		rte_bpf_destroy(cur.dpdk);
#endif
}

/* ------------------------------------------------------------------ */

#define MAX_ROUNDS 101

/* The classic filters, the last one a 50-port list (built in main). */
static const char *const default_filters[] = {
	"tcp port 80",
	"host 10.0.0.1 and port 53",
	"net 10.0.0.0/8",
	"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
	"vlan and tcp",
	"ip6 and tcp",
	NULL,
};
static const int list_ports[50] = {
	20, 21, 22, 23, 25, 53, 67, 68, 69, 80, 88, 110, 111, 119, 123, 135, 137, 138, 139,
	143, 161, 162, 179, 389, 443, 445, 465, 500, 514, 515, 520, 587, 631, 636, 873, 993,
	995, 1080, 1194, 1433, 1521, 1723, 1812, 1813, 2049, 3306, 3389, 5060, 5432, 8080,
};

static int usage(void)
{
	fprintf(stderr, "usage: bench_interp [-r CAPTURE] [-n COUNT] [-R ROUNDS] [-k PASSES] "
		"[FILTER...]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *capture = NULL;
	size_t count = 100000;
	int rounds = 9, passes = 1, c;
	while ((c = getopt(argc, argv, "r:n:R:k:")) != -1) {
		switch (c) {
		case 'r': capture = optarg; break;
		case 'n': count = strtoul(optarg, NULL, 10); break;
		case 'R': rounds = atoi(optarg); break;
		case 'k': passes = atoi(optarg); break;
		default: return usage();
		}
	}
	if (count == 0 || rounds < 1 || rounds > MAX_ROUNDS || passes < 1 || passes > MAX_ROUNDS)
		return usage();

	static char portlist[50 * 12];
	size_t pl = 0;
	for (int i = 0; i < 50; i++)
		pl += (size_t)snprintf(portlist + pl, sizeof portlist - pl, "%sport %d",
				       i ? " or " : "", list_ports[i]);
	const char *defaults[sizeof default_filters / sizeof default_filters[0]];
	memcpy(defaults, default_filters, sizeof defaults);
	defaults[sizeof defaults / sizeof defaults[0] - 1] = portlist;
	const char *const *filters = defaults;
	int nfilters = (int)(sizeof defaults / sizeof defaults[0]);
	if (optind < argc) {
		filters = (const char *const *)argv + optind;
		nfilters = argc - optind;
	}

	if (capture ? load_capture(capture) : generate(count))
		return 1;
	if (npkts == 0) {
		fprintf(stderr, "bench: no packets\n");
		return 1;
	}
	fix_pointers();
	if (make_chunks() != 0)
		return 1;
	fprintf(stderr, "bench: %zu packets (%s), link type %d, %d rounds, %d passes\n", npkts,
		capture ? capture : "bpfkit_gen EN10MB seed 1", linktype, rounds, passes);
#ifdef HAVE_DPDK
	dpdk_init();
#endif
	pcap_t *pd = pcap_open_dead(linktype, 262144);
	if (!pd)
		return 1;

	/*
	 * Each pass times every filter afresh (new programs, new JIT pages);
	 * a cell is the median over the passes of its ns, a ratio the median
	 * of the passes' ratios, a geometric mean the median of the passes'.
	 */
	size_t cells = (size_t)passes * (size_t)nfilters * ENG__N;
	double *ns = calloc(cells, sizeof *ns);
	int *have = calloc(cells, sizeof *have);
	int *ok = calloc((size_t)nfilters, sizeof *ok);    /* compiled in some pass */
	int *is_short = calloc((size_t)nfilters, sizeof *is_short);
	double *tmp = calloc((size_t)passes, sizeof *tmp), *tmp2 = calloc((size_t)passes, sizeof *tmp2);
	if (!ns || !have || !ok || !is_short || !tmp || !tmp2)
		return 1;
#define CELL(k, f, e) (((size_t)(k) * (size_t)nfilters + (size_t)(f)) * ENG__N + (size_t)(e))
	for (int k = 0; k < passes; k++)
		for (int f = 0; f < nfilters; f++) {
			if (prepare(filters[f], pd) != 0) {
				release();
				continue;
			}
			ok[f] = 1;
			double med[ENG__N];
			if (bench_filter(cur.have, rounds, med) != 0)
				return 1;
			/* have: 1 timed, -1 excluded (printed as NA), 0 not an engine here */
			for (int e = 0; e < ENG__N; e++) {
				have[CELL(k, f, e)] = cur.have[e] ? 1 : (e == ENG_DPDK && HAVE_DPDK_ROW) ||
						      (e >= ENG_INTERP_CC && cur.cc_prog.len) ? -1 : 0;
				ns[CELL(k, f, e)] = med[e];
			}
			is_short[f] = cur.pcap_prog.bf_len <= 32;
			release();
		}
	printf("filter\tengine\tns_per_packet\tratio_vs_libpcap\n");
	for (int f = 0; f < nfilters; f++) {
		if (!ok[f])
			continue;
		for (int e = 0; e < ENG__N; e++) {
			int n = 0, na = 0;
			for (int k = 0; k < passes; k++) {
				if (have[CELL(k, f, e)] == 1) {
					tmp[n] = ns[CELL(k, f, e)];
					tmp2[n++] = ns[CELL(k, f, ENG_LIBPCAP)] / ns[CELL(k, f, e)];
				} else if (have[CELL(k, f, e)] == -1) {
					na++;
				}
			}
			if (n == 0) {
				if (na)
					printf("%s\t%s\tNA\tNA\n", filters[f], engine_names[e]);
				continue;
			}
			qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
			qsort(tmp2, (size_t)n, sizeof *tmp2, cmp_double);
			printf("%s\t%s\t%.2f\t%.2f\n", filters[f], engine_names[e], tmp[n / 2],
			       tmp2[n / 2]);
		}
		fflush(stdout);
	}
	/* Geometric means per pass, then their medians. */
	for (int e = 0; e < ENG__N; e++) {
		int n = 0;
		for (int k = 0; k < passes; k++) {
			double lns = 0, lratio = 0;
			int m = 0;
			for (int f = 0; f < nfilters; f++)
				if (have[CELL(k, f, e)] == 1) {
					lns += log(ns[CELL(k, f, e)]);
					lratio += log(ns[CELL(k, f, ENG_LIBPCAP)] / ns[CELL(k, f, e)]);
					m++;
				}
			if (m) {
				tmp[n] = exp(lns / m);
				tmp2[n++] = exp(lratio / m);
			}
		}
		if (!n)
			continue;
		qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
		qsort(tmp2, (size_t)n, sizeof *tmp2, cmp_double);
		printf("geomean\t%s\t%.2f\t%.2f\n", engine_names[e], tmp[n / 2], tmp2[n / 2]);
	}
	/* jit against dpdk-jit, and jit / null on the short filters: medians of the passes' */
	int nd = 0, nn = 0;
	for (int k = 0; k < passes; k++) {
		double ld = 0, ln = 0;
		int md = 0, mn = 0;
		for (int f = 0; f < nfilters; f++) {
			if (have[CELL(k, f, ENG_JIT)] != 1)
				continue;
			if (have[CELL(k, f, ENG_DPDK)] == 1) {
				ld += log(ns[CELL(k, f, ENG_DPDK)] / ns[CELL(k, f, ENG_JIT)]);
				md++;
			}
			if (is_short[f]) {
				ln += log(ns[CELL(k, f, ENG_JIT)] / ns[CELL(k, f, ENG_NULL)]);
				mn++;
			}
		}
		if (md)
			tmp[nd++] = exp(ld / md);
		if (mn)
			tmp2[nn++] = exp(ln / mn);
	}
	if (nd) {
		qsort(tmp, (size_t)nd, sizeof *tmp, cmp_double);
		fprintf(stderr, "bench: jit vs dpdk-jit, geomean over the filters both ran: "
			"%.2fx faster (median of %d passes)\n", tmp[nd / 2], nd);
	}
	if (nn) {
		qsort(tmp2, (size_t)nn, sizeof *tmp2, cmp_double);
		fprintf(stderr, "bench: jit / null on the short filters (<= 32 insns): %.2fx "
			"(median of %d passes)\n", tmp2[nn / 2], nn);
	}
#undef CELL
	free(ns);
	free(have);
	free(ok);
	free(is_short);
	free(tmp);
	free(tmp2);
	pcap_close(pd);
	return 0;
}
