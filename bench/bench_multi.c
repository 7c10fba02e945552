/*
 * bench_multi.c - the multi-filter matcher (bpfkit_multi) against running
 * every rule on its own: libpcap's bpf_filter on each rule (the baseline)
 * and bpfkit's JIT on each rule.
 *
 *   bench/bench_multi [-n PACKETS] [-M] [RULES...]  (default 100000; 10 100 1000
 *                                                    2000 10000 100000)
 *
 * -M times the matcher alone (no check, no baselines: their columns are
 * inf), for profiling.
 *
 * Packets: PACKETS from bpfkit_gen (EN10MB, seed 1), held in memory.  Rules:
 * a firewall-like mix (hosts, nets, ports, protocol and port, host and port,
 * tcp flags, lengths, not port) whose addresses and ports are drawn partly
 * from the packets, partly at random, so rules do match; the first N of one
 * deterministic list.  For each N: compile time (bpfkit_compile of every
 * rule), build time (bpfkit_multi_build, JIT engine), the matcher's heap
 * bytes and the process's resident-size growth, the residual rule count,
 * and ns/packet of bpfkit_multi_match over all packets (in 256 KiB chunks read
 * once untimed, as bench_interp does; per chunk the median of 3 runs).
 * The baselines run every rule on every packet of a sample: all packets
 * when N * PACKETS <= 4e7, else the first 4e7 / N (at least 100) packets,
 * as the `sample` column says, timed like the matcher (chunks, median of 3).
 * All times are this thread's CPU time.  Before timing, the matcher's result
 * is checked against every rule's JIT verdict on the sample (exit 1 when not).
 *
 * Output (stdout, TSV): rules compile_s build_s heap_bytes rss_kb
 * residual_rules ns_multi ns_jit_each ns_libpcap_each x_vs_libpcap
 * x_vs_jit sample.
 */
#define _GNU_SOURCE 1
#include "bpfkit.h"

#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pkt {
	const uint8_t *data;
	uint32_t caplen, wirelen;
};

static struct pkt *pkts;
static size_t npkts;
static uint32_t addrs[8192];
static size_t naddrs;
static uint16_t ports[2048];
static size_t nports;
static volatile uint64_t sink;
static bool matcher_only; /* -M: time the matcher alone (profiling) */

/* This thread's CPU time: time-slicing on a shared machine would otherwise
 * inflate the long baseline loops far more than the matcher's short chunks. */
static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long pages = 0, res = 0;
	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * 4;
}

static uint64_t rng = 12345;
static uint32_t rnd(uint32_t n)
{
	rng = rng * 6364136223846793005ull + 1442695040888963407ull;
	return n ? (uint32_t)(rng >> 33) % n : 0;
}

static void load_packets(size_t n)
{
	struct bpfkit_gen *g;
	struct bpfkit_error err;
	if (bpfkit_gen_new(1, 1, NULL, &g, &err) != 0)
		exit(1);
	pkts = calloc(n, sizeof *pkts);
	uint8_t *bytes = malloc(n * BPFKIT_GEN_MAX_FRAME);
	if (!pkts || !bytes)
		exit(1);
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		struct bpfkit_packet p;
		if (bpfkit_gen_next(g, bytes + off, BPFKIT_GEN_MAX_FRAME, &p, &err) != 0)
			exit(1);
		pkts[i] = (struct pkt){bytes + off, p.caplen, p.wirelen};
		off += p.caplen;
		const uint8_t *d = p.data;
		if (p.caplen >= 38 && d[12] == 8 && d[13] == 0) {
			if (naddrs < 8192 && rnd(4) == 0)
				addrs[naddrs++] = (uint32_t)d[26] << 24 | (uint32_t)d[27] << 16 |
						  (uint32_t)d[28] << 8 | d[29];
			unsigned ihl = 4u * (d[14] & 15);
			if ((d[23] == 6 || d[23] == 17) && p.caplen >= 18 + ihl && nports < 2048 &&
			    rnd(8) == 0)
				ports[nports++] = (uint16_t)(d[16 + ihl] << 8 | d[17 + ihl]);
		}
	}
	npkts = n;
	bpfkit_gen_free(g);
	if (!naddrs)
		addrs[naddrs++] = 0x0a000001;
	if (!nports)
		ports[nports++] = 80;
}

static void ip(char *s, size_t n, uint32_t a)
{
	snprintf(s, n, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* Rule i of the deterministic list. */
static char *make_rule(void)
{
	char s[256], a[32], b[32];
	uint32_t x = rnd(3) ? addrs[rnd((uint32_t)naddrs)] : rnd(0xffffffffu);
	uint32_t y = rnd(3) ? addrs[rnd((uint32_t)naddrs)] : rnd(0xffffffffu);
	unsigned p = rnd(3) ? ports[rnd((uint32_t)nports)] : 1024 + rnd(60000);
	ip(a, sizeof a, x);
	ip(b, sizeof b, y);
	switch (rnd(12)) {
	case 0: snprintf(s, sizeof s, "host %s", a); break;
	case 1: snprintf(s, sizeof s, "src host %s and dst host %s", a, b); break;
	case 2: ip(a, sizeof a, x & 0xffffff00u); snprintf(s, sizeof s, "net %s/24", a); break;
	case 3: snprintf(s, sizeof s, "tcp dst port %u", p); break;
	case 4: snprintf(s, sizeof s, "udp port %u", p); break;
	case 5: snprintf(s, sizeof s, "host %s and tcp port %u", a, p); break;
	case 6: snprintf(s, sizeof s, "src host %s and udp dst port %u", a, p); break;
	case 7: snprintf(s, sizeof s, "dst host %s and tcp[tcpflags] & tcp-syn != 0", a); break;
	case 8: snprintf(s, sizeof s, "host %s and not port %u", a, p); break;
	case 9: snprintf(s, sizeof s, "dst port %u and greater %u", p, rnd(1000)); break;
	case 10: ip(a, sizeof a, x & 0xffff0000u);
		snprintf(s, sizeof s, "src net %s/16 and tcp dst port %u", a, p);
		break;
	default: snprintf(s, sizeof s, "(host %s or host %s) and port %u", a, b, p); break;
	}
	return strdup(s);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void run(size_t n, char **texts)
{
	struct bpfkit_prog *progs = calloc(n, sizeof *progs);
	struct bpf_program *pc = calloc(n, sizeof *pc);
	pcap_t *dead = pcap_open_dead(1, 262144);
	struct bpfkit_error err;
	if (!progs || !pc || !dead)
		exit(1);
	double t0 = now();
	for (size_t i = 0; i < n; i++)
		if (bpfkit_compile(texts[i], NULL, &progs[i], &err) != 0) {
			fprintf(stderr, "bench_multi: '%s': %s\n", texts[i], err.message);
			exit(1);
		}
	double compile_s = now() - t0;
	long rss0 = rss_kb();
	struct bpfkit_multi *m;
	struct bpfkit_multi_state *st;
	t0 = now();
	if (bpfkit_multi_build(progs, n, BPFKIT_MULTI_JIT, NULL, &m, &err) != 0 ||
	    bpfkit_multi_state_new(m, NULL, &st, &err) != 0) {
		fprintf(stderr, "bench_multi: build: %s\n", err.message);
		exit(1);
	}
	double build_s = now() - t0;
	long rss = rss_kb() - rss0;
	struct bpfkit_multi_stats stats;
	bpfkit_multi_stats(m, &stats);
	/* The sample for the per-rule baselines. */
	size_t sample = npkts;
	if ((double)n * (double)npkts > 4e7)
		sample = (size_t)(4e7 / (double)n);
	if (sample < 100)
		sample = 100;
	if (sample > npkts)
		sample = npkts;
	if (matcher_only)
		sample = 0;
	/* Check: the matcher equals every rule's JIT verdict on the sample. */
	struct bpfkit_jit **jits = calloc(n, sizeof *jits);
	bpfkit_jit_fn *fns = calloc(n, sizeof *fns);
	if (!jits || !fns)
		exit(1);
	for (size_t i = 0; i < n; i++) {
		if (bpfkit_jit_compile(progs[i].insns, progs[i].len, 0, NULL, &jits[i], &err) != 0) {
			fprintf(stderr, "bench_multi: jit: %s\n", err.message);
			exit(1);
		}
		fns[i] = bpfkit_jit_function(jits[i]);
		if (pcap_compile(dead, &pc[i], texts[i], 1, PCAP_NETMASK_UNKNOWN) != 0)
			exit(1);
	}
	uint64_t matches = 0;
	for (size_t k = 0; k < sample; k++) {
		const uint32_t *ids;
		size_t c = bpfkit_multi_match(m, st, pkts[k].data, pkts[k].caplen, pkts[k].wirelen,
					      &ids);
		size_t j = 0;
		for (size_t i = 0; i < n; i++) {
			bool want = fns[i](pkts[k].data, pkts[k].caplen, pkts[k].wirelen) != 0;
			bool got = j < c && ids[j] == i;
			j += got;
			if (want != got) {
				fprintf(stderr, "bench_multi: MISMATCH packet %zu rule '%s'\n", k,
					texts[i]);
				exit(1);
			}
		}
		matches += c;
	}
	/* The matcher over every packet, median of 3. */
	/* Chunks of ~256 KiB of packets, read once untimed (as bench_interp): the
	 * matcher is timed, not DRAM. */
	double total = 0;
	for (size_t begin = 0; begin < npkts;) {
		size_t end = begin, bytes = 0;
		while (end < npkts && bytes < (256u << 10))
			bytes += pkts[end++].caplen + 64;
		double t[3];
		for (int r = 0; r < 3; r++) {
			uint64_t s = 0;
			for (size_t k = begin; k < end; k++)
				for (uint32_t o = 0; o < pkts[k].caplen; o += 64)
					s += pkts[k].data[o];
			t0 = now();
			for (size_t k = begin; k < end; k++)
				s += bpfkit_multi_match(m, st, pkts[k].data, pkts[k].caplen,
							pkts[k].wirelen, NULL);
			t[r] = now() - t0;
			sink += s;
		}
		qsort(t, 3, sizeof t[0], cmp_d);
		total += t[1];
		begin = end;
	}
	double ns_multi = total * 1e9 / (double)npkts;
	/* The baselines: every rule on every packet of the sample, timed as the
	 * matcher is (chunks, median of 3 per chunk), so a busy machine inflates
	 * both sides alike. */
	double tj = 0, tp = 0;
	for (size_t begin = 0; begin < sample;) {
		size_t end = begin, bytes = 0;
		while (end < sample && bytes < (256u << 10))
			bytes += pkts[end++].caplen + 64;
		double t[2][3];
		for (int r = 0; r < 3; r++) {
			uint64_t s = 0;
			t0 = now();
			for (size_t k = begin; k < end; k++)
				for (size_t i = 0; i < n; i++)
					s += fns[i](pkts[k].data, pkts[k].caplen,
						    pkts[k].wirelen) != 0;
			t[0][r] = now() - t0;
			t0 = now();
			for (size_t k = begin; k < end; k++)
				for (size_t i = 0; i < n; i++)
					s += bpf_filter(pc[i].bf_insns, pkts[k].data,
							pkts[k].wirelen, pkts[k].caplen) != 0;
			t[1][r] = now() - t0;
			sink += s;
		}
		qsort(t[0], 3, sizeof t[0][0], cmp_d);
		qsort(t[1], 3, sizeof t[1][0], cmp_d);
		tj += t[0][1];
		tp += t[1][1];
		begin = end;
	}
	double ns_jit = tj * 1e9 / (double)sample;
	double ns_pcap = tp * 1e9 / (double)sample;
	printf("%zu\t%.3f\t%.3f\t%zu\t%ld\t%zu\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%zu\n", n, compile_s,
	       build_s, stats.bytes, rss, stats.residual_rules, ns_multi, ns_jit, ns_pcap,
	       ns_pcap / ns_multi, ns_jit / ns_multi, sample);
	fflush(stdout);
	fprintf(stderr, "bench_multi: %zu rules: %zu programs (%zu decided), %zu fields, "
		"%zu index entries, %zu residual, %zu jitted, %.2f matches/packet\n", n,
		stats.programs, stats.decided, stats.fields, stats.entries, stats.residual_rules,
		stats.jitted,
		(double)matches / (double)sample);
	for (size_t i = 0; i < n; i++) {
		bpfkit_jit_free(jits[i]);
		pcap_freecode(&pc[i]);
		bpfkit_prog_free(NULL, &progs[i]);
	}
	free(jits);
	free(fns);
	free(pc);
	free(progs);
	pcap_close(dead);
	bpfkit_multi_state_free(st);
	bpfkit_multi_free(m);
}

int main(int argc, char **argv)
{
	size_t n = 100000;
	int a = 1;
	for (;;) {
		if (a + 1 < argc && strcmp(argv[a], "-n") == 0) {
			n = strtoul(argv[a + 1], NULL, 10);
			a += 2;
		} else if (a < argc && strcmp(argv[a], "-M") == 0) {
			matcher_only = true;
			a++;
		} else {
			break;
		}
	}
	load_packets(n);
	static const size_t defaults[] = {10, 100, 1000, 2000, 10000, 100000};
	size_t sizes[32], ns = 0;
	for (; a < argc && ns < 32; a++)
		sizes[ns++] = strtoul(argv[a], NULL, 10);
	if (ns == 0)
		for (ns = 0; ns < sizeof defaults / sizeof defaults[0]; ns++)
			sizes[ns] = defaults[ns];
	size_t max = 0;
	for (size_t i = 0; i < ns; i++)
		if (sizes[i] > max)
			max = sizes[i];
	char **texts = calloc(max ? max : 1, sizeof *texts);
	if (!texts)
		return 1;
	for (size_t i = 0; i < max; i++)
		if (!(texts[i] = make_rule()))
			return 1;
	printf("rules\tcompile_s\tbuild_s\theap_bytes\trss_kb\tresidual_rules\tns_multi\t"
	       "ns_jit_each\tns_libpcap_each\tx_vs_libpcap\tx_vs_jit\tsample\n");
	for (size_t i = 0; i < ns; i++)
		run(sizes[i], texts);
	for (size_t i = 0; i < max; i++)
		free(texts[i]);
	free(texts);
	return 0;
}
