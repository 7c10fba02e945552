/*
 * engines.h - the engines under test behind one call shape, shared by the
 * engine tests (tests/test_engines.c) and the differential fuzz target
 * (fuzz/fuzz_engines.c), which builds from src/ and this header alone.
 * Header-only: include it from one file of a program.
 */
#ifndef BPFKIT_TESTS_ENGINES_H
#define BPFKIT_TESTS_ENGINES_H

#include "bpfkit.h"

#include <stdbool.h>
#include <stdint.h>

struct engine {
	const char *name;
	bool linux_dialect; /* can prepare with the Linux dialect */
	/* NULL and err filled when the engine refuses the program. */
	void *(*prepare)(const struct bpfkit_insn *insns, size_t n, bool lnx,
			 const struct bpfkit_alloc *alloc, struct bpfkit_error *err);
	uint32_t (*run)(const void *h, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
			const struct bpfkit_meta *meta);
	void (*release)(void *h);
};

static void *fast_prepare(const struct bpfkit_insn *insns, size_t n, bool lnx,
			  const struct bpfkit_alloc *alloc, struct bpfkit_error *err)
{
	struct bpfkit_fast *f = NULL;
	if (bpfkit_fast_prepare(insns, n, lnx ? BPFKIT_FAST_LINUX : 0, alloc, &f, err) != 0)
		return NULL;
	return f;
}

static uint32_t fast_run(const void *h, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
			 const struct bpfkit_meta *meta)
{
	if (!meta)
		return bpfkit_fast_run(h, pkt, caplen, wirelen);
	return bpfkit_fast_run_meta(h, pkt, caplen, wirelen, meta);
}

static void fast_release(void *h)
{
	bpfkit_fast_free(h);
}

/* The JIT (libpcap dialect only), plain and with constant blinding; x86-64 builds. */
#if defined(__x86_64__) && defined(__unix__) && !defined(__ILP32__)
static void *jit_prepare_flags(const struct bpfkit_insn *insns, size_t n, bool lnx,
			       unsigned flags,
			       const struct bpfkit_alloc *alloc, struct bpfkit_error *err)
{
	struct bpfkit_jit *j = NULL;
	if (lnx || bpfkit_jit_compile(insns, n, flags, alloc, &j, err) != 0)
		return NULL;
	return j;
}

static void *jit_prepare(const struct bpfkit_insn *insns, size_t n, bool lnx,
			 const struct bpfkit_alloc *alloc, struct bpfkit_error *err)
{
	return jit_prepare_flags(insns, n, lnx, 0, alloc, err);
}

static void *jit_prepare_blind(const struct bpfkit_insn *insns, size_t n, bool lnx,
			       const struct bpfkit_alloc *alloc, struct bpfkit_error *err)
{
	return jit_prepare_flags(insns, n, lnx, BPFKIT_JIT_BLIND, alloc, err);
}

static uint32_t jit_run(const void *h, const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
			const struct bpfkit_meta *meta)
{
	(void)meta;
	return bpfkit_jit_run(h, pkt, caplen, wirelen);
}

static void jit_release(void *h)
{
	bpfkit_jit_free(h);
}
#endif

/* One row per engine under test; the reference interpreter is the oracle. */
static const struct engine engines[] = {
	{"fast", true, fast_prepare, fast_run, fast_release},
#if defined(__x86_64__) && defined(__unix__) && !defined(__ILP32__)
	{"jit", false, jit_prepare, jit_run, jit_release},
	{"jit-blind", false, jit_prepare_blind, jit_run, jit_release},
#endif
};
enum { NENGINES = sizeof engines / sizeof engines[0] };

#endif
