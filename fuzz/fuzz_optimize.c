/*
 * fuzz_optimize.c - libFuzzer target for the optimizer's contract: for every
 * packet, bpfkit -O2 gives the verdict of bpfkit -O0.
 *
 * Input: either text, "=N EXPRESSION" (N a DLT number; the form of the
 * saved crash-*.txt files and of hand-written seeds), or bytes that drive
 * tests/exprgen.c's grammar: the first byte picks a link type, the rest picks
 * productions.  The expression is compiled at -O0 and -O2 for that link type
 * and two others.  Checked (abort() with the expression and packet on
 * standard error):
 * - -O0 and -O2 compile or fail together (-O2 may refuse a filter it proves
 *   accepts nothing: then -O0 must accept none of the packets below);
 * - both programs pass the pcap validator;
 * - equal verdicts on generated packets (bpfkit_gen, or Ethernet ones for link
 *   types it does not make), on branch-directed packets derived from them for
 *   two rounds (exprgen_direct, steered by both programs), and on every
 *   truncation of the first packets.
 */
#include "bpfkit.h"
#include "../tests/exprgen.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPKT 12
#define ROUND_BUDGET 160
#define FRONTIER 48

struct check {
	const char *expr;
	int dlt;
	const struct bpfkit_prog *p0, *p2; /* p2->len == 0: -O2 refused (rejects all) */
	/* Derived packets kept for the next round. */
	uint8_t (*next)[EXPRGEN_PKT_MAX];
	uint32_t next_cap[FRONTIER], next_wire[FRONTIER];
	size_t nnext;
};

static void fail(const struct check *c, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
		 uint32_t v0, uint32_t v2)
{
	fprintf(stderr, "fuzz_optimize: -O0 and -O2 disagree\n  dlt %d: %s\n  -O0=%u -O2=%u "
		"caplen %u wirelen %u\n  packet ", c->dlt, c->expr, v0, v2, caplen, wirelen);
	for (uint32_t i = 0; i < caplen && i < 256; i++)
		fprintf(stderr, "%02x", pkt[i]);
	fprintf(stderr, "\n");
	abort();
}

static void compare(const struct check *c, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen)
{
	uint32_t v0 = bpfkit_interp(c->p0->insns, c->p0->len, pkt, caplen, wirelen, NULL);
	uint32_t v2 = c->p2->len ? bpfkit_interp(c->p2->insns, c->p2->len, pkt, caplen, wirelen,
						 NULL) : 0;
	if ((v0 != 0) != (v2 != 0))
		fail(c, pkt, caplen, wirelen, v0, v2);
}

static void derived(void *ctx, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen)
{
	struct check *c = ctx;
	compare(c, pkt, caplen, wirelen);
	if (c->nnext < FRONTIER) {
		memcpy(c->next[c->nnext], pkt, caplen);
		c->next_cap[c->nnext] = caplen;
		c->next_wire[c->nnext++] = wirelen;
	}
}

static void check_dlt(const char *expr, int dlt)
{
	struct bpfkit_compile_opts o0 = {.linktype = dlt, .optimize = 0,
					 .flags = BPFKIT_COMPILE_NO_HOST_LOOKUP};
	struct bpfkit_compile_opts o2 = o0;
	o2.optimize = 2;
	struct bpfkit_prog p0 = {0}, p2 = {0};
	struct bpfkit_error e0, e2;
	int r0 = bpfkit_compile(expr, &o0, &p0, &e0);
	int r2 = bpfkit_compile(expr, &o2, &p2, &e2);
	bool all_rejected = r0 == 0 && r2 != 0 && strstr(e2.message, "rejects all packets");
	if ((r0 != 0 && r2 == 0) || (r0 == 0 && r2 != 0 && !all_rejected)) {
		fprintf(stderr, "fuzz_optimize: dlt %d: %s\n  -O0: %s\n  -O2: %s\n", dlt, expr,
			r0 ? e0.message : "ok", r2 ? e2.message : "ok");
		abort();
	}
	if (r0 != 0)
		return;
	struct bpfkit_error ve;
	bool bad0 = p0.len == 0 || bpfkit_validate(p0.insns, p0.len, BPFKIT_VALIDATE_PCAP, &ve);
	bool bad2 = !all_rejected &&
		    (p2.len == 0 || bpfkit_validate(p2.insns, p2.len, BPFKIT_VALIDATE_PCAP, &ve));
	if (bad0 || bad2) {
		fprintf(stderr, "fuzz_optimize: dlt %d: %s: invalid program: %s\n", dlt, expr,
			ve.message);
		abort();
	}
	static uint8_t frontier[2][FRONTIER][EXPRGEN_PKT_MAX];
	struct check c = {.expr = expr, .dlt = dlt, .p0 = &p0, .p2 = &p2, .next = frontier[0]};
	const struct exprgen_pkts *gp = exprgen_packets(dlt, 1234);
	static const uint8_t zeros[128], ones[64] = {
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	compare(&c, zeros, sizeof zeros, sizeof zeros);
	compare(&c, ones, sizeof ones, sizeof ones);
	/* Round 1: generated packets, every truncation of the first two. */
	for (int i = 0; gp && i < NPKT; i++) {
		const uint8_t *d = gp->data[i];
		compare(&c, d, gp->caplen[i], gp->wirelen[i]);
		if (i < 2)
			for (uint32_t cut = 0; cut < gp->caplen[i]; cut++)
				compare(&c, d, cut, gp->wirelen[i]);
		exprgen_direct(p0.insns, p0.len, d, gp->caplen[i], gp->wirelen[i],
			       ROUND_BUDGET / NPKT, derived, &c);
		if (p2.len)
			exprgen_direct(p2.insns, p2.len, d, gp->caplen[i], gp->wirelen[i],
				       ROUND_BUDGET / NPKT, derived, &c);
	}
	exprgen_direct(p0.insns, p0.len, zeros, sizeof zeros, sizeof zeros, 16, derived, &c);
	/* Rounds 2 and 3: packets derived from the derived ones (deeper branches). */
	for (int round = 0; round < 2; round++) {
		size_t n = c.nnext;
		uint8_t (*cur)[EXPRGEN_PKT_MAX] = c.next;
		uint32_t cap[FRONTIER], wire[FRONTIER];
		memcpy(cap, c.next_cap, sizeof cap);
		memcpy(wire, c.next_wire, sizeof wire);
		c.next = frontier[(round + 1) % 2];
		c.nnext = 0;
		size_t per = n ? ROUND_BUDGET / n + 1 : 0;
		for (size_t i = 0; i < n; i++) {
			exprgen_direct(p0.insns, p0.len, cur[i], cap[i], wire[i], per, derived,
				       &c);
			if (p2.len)
				exprgen_direct(p2.insns, p2.len, cur[i], cap[i], wire[i], per,
					       derived, &c);
		}
	}
	bpfkit_prog_free(NULL, &p0);
	bpfkit_prog_free(NULL, &p2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char expr[1024];
	int dlt;
	if (size >= 2 && data[0] == '=') {
		/* "=N EXPRESSION" */
		size_t i = 1;
		dlt = 0;
		while (i < size && data[i] >= '0' && data[i] <= '9' && dlt < 100000)
			dlt = dlt * 10 + (data[i++] - '0');
		if (i < size && data[i] == ' ')
			i++;
		size_t n = size - i < sizeof expr - 1 ? size - i : sizeof expr - 1;
		memcpy(expr, data + i, n);
		expr[n] = 0;
		while (n && (expr[n - 1] == '\n' || expr[n - 1] == '\r'))
			expr[--n] = 0;
		check_dlt(expr, dlt);
		return 0;
	}
	if (size < 1)
		return 0;
	struct exprgen g;
	exprgen_init_bytes(&g, data + 1, size - 1);
	exprgen_expr(&g, expr, sizeof expr);
	size_t first = data[0] % exprgen_nlinktypes;
	for (size_t k = 0; k < 3; k++) {
		size_t step = 1 + data[0] / exprgen_nlinktypes % 5;
		size_t idx = (first + k * step) % exprgen_nlinktypes;
		check_dlt(expr, exprgen_linktypes[idx]);
	}
	return 0;
}
