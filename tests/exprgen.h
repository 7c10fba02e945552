/*
 * exprgen.h - a grammar-based generator of pcap-filter expressions, and
 * branch-directed packets, for the optimizer's tests and fuzz target.
 *
 * The generator walks a grammar of the filter language (protocols, host /
 * net / port / portrange / proto primitives with src/dst, vlan and mpls,
 * byte and word loads such as ip[2:2], tcpflags, arithmetic with every
 * operator including division by constants and by zero, len, and/or/not and
 * parentheses) with every choice drawn from a source: a byte stream (for
 * libFuzzer: each byte picks a production; when the bytes run out every
 * choice is 0, which always picks a leaf, so generation ends) or a seed (a
 * deterministic PRNG: the same seed gives the same expression everywhere).
 * Nesting is bounded by max_depth and the text by the caller's buffer.
 *
 * branch-directed packets (exprgen_direct): runs a program on a packet with
 * bpfkit_interp_trace, remembers which packet bytes (or the wire length) the
 * value in A, X and M[] came from and which ALU operations with known
 * operands were applied since, and at each conditional jump writes the
 * values that take each side (k, k+1, k-1; for jset a|k and a&~k) into those
 * bytes; also offers cuts of the captured length around each load.
 */
#ifndef BPFKIT_TEST_EXPRGEN_H
#define BPFKIT_TEST_EXPRGEN_H

#include <stddef.h>
#include <stdint.h>

#include "bpfkit.h"

struct exprgen {
	const uint8_t *data;   /* byte stream, or NULL for the PRNG */
	size_t len, pos;
	uint64_t rng;          /* xorshift state when data is NULL */
	int max_depth;         /* nesting bound of and/or/not/() and arithmetic */
};

/* A source of choices from bytes (exhausted: every choice is 0). */
void exprgen_init_bytes(struct exprgen *g, const uint8_t *data, size_t len);
/* A source of choices from a seed. */
void exprgen_init_seed(struct exprgen *g, uint64_t seed);
/* A choice in [0, n) (n >= 1). */
uint32_t exprgen_choose(struct exprgen *g, uint32_t n);
/* A 32-bit value from the source. */
uint32_t exprgen_u32(struct exprgen *g);

/*
 * Writes one expression (NUL-terminated) into out; returns its length.
 * cap >= 64.  Expressions that would not fit are cut to a shorter one (a
 * leaf), so the text is always a complete expression.
 */
size_t exprgen_expr(struct exprgen *g, char *out, size_t cap);

/* Link types the generator's expressions are meant for (DLT values). */
extern const int exprgen_linktypes[];
extern const size_t exprgen_nlinktypes;

/* A derived packet: data (caplen bytes), wire length. */
typedef void (*exprgen_pkt_fn)(void *ctx, const uint8_t *data, uint32_t caplen,
			       uint32_t wirelen);

#define EXPRGEN_PKT_MAX 2048   /* longest packet exprgen_direct makes */

/*
 * Runs insns on the packet and calls fn for up to max packets derived from it
 * (see the header comment).  Returns the number of packets offered.
 */
size_t exprgen_direct(const struct bpfkit_insn *insns, size_t n, const uint8_t *data,
		      uint32_t caplen, uint32_t wirelen, size_t max, exprgen_pkt_fn fn,
		      void *ctx);

/*
 * EXPRGEN_GEN_N packets of link type dlt from bpfkit_gen with the given seed
 * (EN10MB's for link types it does not make), generated once per process
 * and kept for the next call with the same pair; NULL when generation fails
 * or the cache of EXPRGEN_GEN_CACHE pairs is full.  The first k packets are
 * those a generator with that seed makes first.
 */
#define EXPRGEN_GEN_N 24
#define EXPRGEN_GEN_CACHE 8
struct exprgen_pkts {
	int dlt;
	uint64_t seed;
	uint32_t caplen[EXPRGEN_GEN_N], wirelen[EXPRGEN_GEN_N];
	uint8_t data[EXPRGEN_GEN_N][BPFKIT_GEN_MAX_FRAME];
};
const struct exprgen_pkts *exprgen_packets(int dlt, uint64_t seed);

#endif
