/*
 * fuzz_compile.c - libFuzzer target for the filter compiler (lexer, parser,
 * code generator, passes, emitter).  The first input byte picks a link type,
 * the rest is the expression.  Invariants checked (abort() on violation):
 * - a compiled program is not empty and passes the pcap validator (libpcap
 *   has no length limit in user space, so neither does the compiler: a long
 *   expression may exceed the kernel's 4096);
 * - an error's column lies inside the expression (or one past its end);
 * - -O0 and -O2 either both compile or both fail (except that -O2 may refuse
 *   a filter it proves accepts nothing), and when they compile they give the
 *   same verdict on a few packets (generated for the link type when
 *   bpfkit_gen knows it, else made from the input's bytes).
 */
#include "bpfkit.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const int linktypes[] = {
	1, 101, 12, 228, 229, 113, 276, 0, 108, 9, 50, 104, 10, 6, 8, 117, 105, 127, 119, 163, 192,
};

#define NPKT 16

/* Packets of one link type, generated once per process (generation is costly). */
struct pkts {
	int dlt;
	uint32_t caplen[NPKT];
	uint8_t data[NPKT][1600];
};

static const struct pkts *generated(int dlt)
{
	static struct pkts cache[4];
	static int ncache;
	for (int i = 0; i < ncache; i++)
		if (cache[i].dlt == dlt)
			return &cache[i];
	if (ncache == 4 || !bpfkit_gen_supported((uint32_t)dlt))
		return NULL;
	struct pkts *p = &cache[ncache];
	struct bpfkit_gen *g = NULL;
	struct bpfkit_error err;
	if (bpfkit_gen_new((uint32_t)dlt, 42, NULL, &g, &err) != 0)
		return NULL;
	for (int i = 0; i < NPKT; i++) {
		struct bpfkit_packet pkt;
		if (bpfkit_gen_next(g, p->data[i], sizeof p->data[i], &pkt, &err) != 0) {
			bpfkit_gen_free(g);
			return NULL;
		}
		p->caplen[i] = pkt.caplen;
	}
	bpfkit_gen_free(g);
	p->dlt = dlt;
	ncache++;
	return p;
}

static void check_error(const struct bpfkit_error *err, size_t len)
{
	if (err->message[0] == '\0')
		abort();
	if (err->column < 0 || (size_t)err->column > len + 1)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	int dlt = linktypes[data[0] % (sizeof linktypes / sizeof linktypes[0])];
	size_t len = size - 1;
	char *expr = malloc(len + 1);
	if (!expr)
		return 0;
	memcpy(expr, data + 1, len);
	expr[len] = '\0';
	len = strlen(expr);

	/* No DNS: a fuzzer must not send thousands of queries. */
	struct bpfkit_compile_opts o0 = {.linktype = dlt, .optimize = 0,
					 .flags = BPFKIT_COMPILE_NO_HOST_LOOKUP};
	struct bpfkit_compile_opts o2 = {.linktype = dlt, .optimize = 2,
					 .flags = BPFKIT_COMPILE_NO_HOST_LOOKUP};
	struct bpfkit_prog p0 = {0}, p2 = {0};
	struct bpfkit_error e0, e2;
	int r0 = bpfkit_compile(expr, &o0, &p0, &e0);
	int r2 = bpfkit_compile(expr, &o2, &p2, &e2);
	if (r0 != 0)
		check_error(&e0, len);
	if (r2 != 0)
		check_error(&e2, len);
	/* -O2 may refuse what it proves constant-false; -O0 never refuses more. */
	bool all_rejected = r0 == 0 && r2 != 0 && strstr(e2.message, "rejects all packets");
	if (r0 != 0 && r2 == 0)
		abort();
	if (r0 == 0 && r2 != 0 && !all_rejected)
		abort();
	if (all_rejected) {
		/* Then the -O0 program must accept none of the test packets. */
		p2.insns = NULL;
		p2.len = 0;
	}
	if (r0 == 0) {
		struct bpfkit_error ve;
		if (p0.len == 0 || (p2.len == 0 && !all_rejected))
			abort();
		if (bpfkit_validate(p0.insns, p0.len, BPFKIT_VALIDATE_PCAP, &ve) != 0 ||
		    (!all_rejected &&
		     bpfkit_validate(p2.insns, p2.len, BPFKIT_VALIDATE_PCAP, &ve) != 0))
			abort();
		for (int i = 0; i < NPKT; i++) {
			const uint8_t *buf;
			uint32_t caplen;
			uint8_t own[512];
			const struct pkts *gp = generated(dlt);
			if (gp) {
				buf = gp->data[i];
				caplen = gp->caplen[i];
			} else {
				caplen = (uint32_t)(64 + i * 13);
				for (uint32_t j = 0; j < caplen; j++)
					own[j] = data[(j * 7 + (uint32_t)i) % size] ^ (uint8_t)j;
				buf = own;
			}
			/* Also the same packet cut short, where the load order matters. */
			uint32_t cut = caplen > 8 ? (caplen * (uint32_t)i) / NPKT : caplen;
			uint32_t v0 = bpfkit_interp(p0.insns, p0.len, buf, caplen, caplen, NULL);
			uint32_t v2 = all_rejected ? 0
					   : bpfkit_interp(p2.insns, p2.len, buf, caplen, caplen, NULL);
			uint32_t c0 = bpfkit_interp(p0.insns, p0.len, buf, cut, caplen, NULL);
			uint32_t c2 = all_rejected ? 0
					   : bpfkit_interp(p2.insns, p2.len, buf, cut, caplen, NULL);
			if ((v0 != 0) != (v2 != 0) || (c0 != 0) != (c2 != 0))
				abort();
		}
	}
	bpfkit_prog_free(NULL, &p0);
	bpfkit_prog_free(NULL, &p2);
	free(expr);
	return 0;
}
