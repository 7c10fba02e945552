/*
 * bench_interp.c - times bpfkit's reference interpreter against libpcap's
 * bpf_filter() on the same programs (libpcap's optimized output for classic
 * tcpdump filters) over the same in-memory packets.  Engines are interleaved
 * and each measurement repeated; the median is reported.  Output is the TSV
 * of DESIGN.md: filter, engine, ns_per_packet, ratio_vs_libpcap (libpcap's
 * ns / the engine's ns: higher is faster).  A `null` row times the bare loop.
 *
 * Packets are a deterministic synthetic Ethernet mix (IPv4/IPv6, TCP/UDP,
 * ARP, VLAN); `bpfkit gen` will replace it when capture support lands.
 */
#define _DEFAULT_SOURCE 1
#include "bpfkit.h"

#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NPKT 20000
#define REPS 7

struct pkt {
	uint32_t len;
	uint8_t data[128];
};

static uint64_t rng = 0x243f6a8885a308d3ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static void put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void make_packet(struct pkt *pk)
{
	static const uint16_t ports[] = {80, 443, 53, 22, 25, 8080, 123, 5060};
	uint8_t *p = pk->data;
	memset(p, 0, sizeof pk->data);
	for (int i = 0; i < 12; i++)
		p[i] = (uint8_t)rnd();
	uint32_t off = 12, kind = rnd() % 10;
	if (kind == 0) { /* 802.1Q */
		put16(p + off, 0x8100);
		put16(p + off + 2, rnd() % 4095);
		off += 4;
	}
	if (kind == 1) { /* ARP */
		put16(p + off, 0x0806);
		pk->len = 60;
		return;
	}
	uint32_t proto = rnd() % 3 ? 6 : 17, l4;
	if (kind == 2 || kind == 3) { /* IPv6 */
		put16(p + off, 0x86dd);
		off += 2;
		p[off] = 0x60;
		p[off + 6] = (uint8_t)proto;
		p[off + 7] = 64;
		for (int i = 8; i < 40; i++)
			p[off + i] = (uint8_t)rnd();
		l4 = off + 40;
	} else {
		put16(p + off, 0x0800);
		off += 2;
		p[off] = 0x45;
		p[off + 9] = (uint8_t)proto;
		p[off + 8] = 64;
		for (int i = 12; i < 20; i++)
			p[off + i] = (uint8_t)(rnd() % 4 ? 10 : rnd());
		l4 = off + 20;
	}
	put16(p + l4, rnd() % 2 ? ports[rnd() % 8] : 1024 + rnd() % 60000);
	put16(p + l4 + 2, rnd() % 2 ? ports[rnd() % 8] : 1024 + rnd() % 60000);
	if (proto == 6)
		p[l4 + 13] = (uint8_t)(rnd() % 3 ? 0x10 : 0x02);
	pk->len = l4 + 20 + rnd() % 40;
	if (pk->len > sizeof pk->data)
		pk->len = sizeof pk->data;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static volatile uint32_t sink;

enum engine { ENG_NULL, ENG_LIBPCAP, ENG_INTERP, ENG_FAST, ENG_JIT, ENG__N };
static const char *const engine_names[] = {"null", "libpcap", "interp", "fast", "jit"};

/* The current filter prepared for the fast interpreter. */
static struct bpfkit_fast *fast_filter;
/* ... and compiled by the JIT (called through its function pointer). */
static struct bpfkit_jit *jit_filter;
static bpfkit_jit_fn jit_fn;

static double run(enum engine e, const struct bpf_program *bp, const struct pkt *pk)
{
	uint32_t acc = 0;
	double t0 = now_ns();
	for (int i = 0; i < NPKT; i++) {
		const struct pkt *q = &pk[i];
		switch (e) {
		case ENG_NULL:
			acc += q->len;
			break;
		case ENG_LIBPCAP:
			acc += bpf_filter(bp->bf_insns, q->data, q->len, q->len) != 0;
			break;
		case ENG_INTERP:
			acc += bpfkit_interp((const struct bpfkit_insn *)bp->bf_insns, bp->bf_len,
					     q->data, q->len, q->len, NULL) != 0;
			break;
		case ENG_FAST:
			acc += bpfkit_fast_run(fast_filter, q->data, q->len, q->len) != 0;
			break;
		case ENG_JIT:
			acc += jit_fn(q->data, q->len, q->len) != 0;
			break;
		default:
			break;
		}
	}
	double t = now_ns() - t0;
	sink += acc;
	return t / NPKT;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	static const char *const defaults[] = {
		"tcp port 80", "host 10.0.0.1 and port 53", "net 10.0.0.0/8",
		"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "vlan and tcp", "ip6 and tcp",
		"udp port 53 or udp port 123 or tcp port 22 or tcp port 25 or tcp port 443",
	};
	const char *const *filters = defaults;
	int nfilters = sizeof defaults / sizeof defaults[0];
	if (argc > 1) {
		filters = (const char *const *)argv + 1;
		nfilters = argc - 1;
	}
	struct pkt *pk = calloc(NPKT, sizeof *pk);
	if (!pk)
		return 1;
	for (int i = 0; i < NPKT; i++)
		make_packet(&pk[i]);
	pcap_t *pd = pcap_open_dead(DLT_EN10MB, 262144);
	printf("filter\tengine\tns_per_packet\tratio_vs_libpcap\n");
	for (int f = 0; f < nfilters; f++) {
		struct bpf_program bp;
		if (pcap_compile(pd, &bp, filters[f], 1, PCAP_NETMASK_UNKNOWN) != 0) {
			fprintf(stderr, "bench: cannot compile '%s': %s\n", filters[f], pcap_geterr(pd));
			return 1;
		}
		struct bpfkit_error err;
		if (bpfkit_fast_prepare((const struct bpfkit_insn *)bp.bf_insns, bp.bf_len, 0, NULL,
					&fast_filter, &err) != 0) {
			fprintf(stderr, "bench: '%s': fast: %s\n", filters[f], err.message);
			return 1;
		}
		if (bpfkit_jit_compile((const struct bpfkit_insn *)bp.bf_insns, bp.bf_len, 0, NULL,
				       &jit_filter, &err) != 0) {
			fprintf(stderr, "bench: '%s': jit: %s\n", filters[f], err.message);
			return 1;
		}
		jit_fn = bpfkit_jit_function(jit_filter);
		/* Verdicts must agree before speed means anything. */
		for (int i = 0; i < NPKT; i++) {
			uint32_t a = bpf_filter(bp.bf_insns, pk[i].data, pk[i].len, pk[i].len);
			uint32_t b = bpfkit_interp((const struct bpfkit_insn *)bp.bf_insns, bp.bf_len,
						   pk[i].data, pk[i].len, pk[i].len, NULL);
			if (a != b || bpfkit_fast_run(fast_filter, pk[i].data, pk[i].len,
						      pk[i].len) != b ||
			    jit_fn(pk[i].data, pk[i].len, pk[i].len) != b) {
				fprintf(stderr, "bench: '%s': verdicts differ on packet %d\n",
					filters[f], i);
				return 1;
			}
		}
		double t[ENG__N][REPS];
		for (int r = 0; r < REPS; r++)
			for (int e = 0; e < ENG__N; e++)
				t[e][r] = run((enum engine)e, &bp, pk);
		double med[ENG__N];
		for (int e = 0; e < ENG__N; e++) {
			qsort(t[e], REPS, sizeof t[e][0], cmp_double);
			med[e] = t[e][REPS / 2];
		}
		for (int e = 0; e < ENG__N; e++)
			printf("%s\t%s\t%.2f\t%.2f\n", filters[f], engine_names[e], med[e],
			       med[ENG_LIBPCAP] / med[e]);
		pcap_freecode(&bp);
		bpfkit_fast_free(fast_filter);
		bpfkit_jit_free(jit_filter);
	}
	pcap_close(pd);
	free(pk);
	return 0;
}
