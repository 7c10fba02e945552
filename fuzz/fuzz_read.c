/*
 * fuzz_read.c - libFuzzer target for the program readers, built once per
 * format: FUZZ_FORMAT is a bare token on the command line (auto, ddd,
 * iptables, c, listing, json or raw), e.g. -DFUZZ_FORMAT=json.
 *
 * Each input is read in that format.  A failed read must leave the output
 * empty and say why; a successful one is written in every format and read
 * back (explicitly and detected), and must come back identical -- except the
 * listing when it cannot represent the program, and dot, which is write-only.
 * Any difference aborts, which is what the fuzzer reports.
 */
#include "bpfkit.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_FMT_auto BPFKIT_FMT_AUTO
#define FUZZ_FMT_ddd BPFKIT_FMT_DDD
#define FUZZ_FMT_iptables BPFKIT_FMT_IPTABLES
#define FUZZ_FMT_c BPFKIT_FMT_C
#define FUZZ_FMT_listing BPFKIT_FMT_LISTING
#define FUZZ_FMT_json BPFKIT_FMT_JSON
#define FUZZ_FMT_raw BPFKIT_FMT_RAW
#define FUZZ_PASTE(a, b) a##b
#define FUZZ_XPASTE(a, b) FUZZ_PASTE(a, b)
#ifndef FUZZ_FORMAT
#error "define FUZZ_FORMAT: auto, ddd, iptables, c, listing, json or raw"
#endif
#define FUZZ_FMT FUZZ_XPASTE(FUZZ_FMT_, FUZZ_FORMAT)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, enum bpfkit_format f, const char *detail)
{
	fprintf(stderr, "fuzz_read: %s (%s): %s\n", what, bpfkit_format_name(f),
		detail ? detail : "");
	abort();
}

static bool same(const struct bpfkit_prog *a, const struct bpfkit_prog *b)
{
	return a->len == b->len &&
	       (a->len == 0 || memcmp(a->insns, b->insns, a->len * sizeof *a->insns) == 0);
}

static void reread(const struct bpfkit_prog *prog, enum bpfkit_format f)
{
	char *text;
	size_t len;
	struct bpfkit_error err;
	if (bpfkit_prog_format(prog->insns, prog->len, f, NULL, &text, &len, &err) != 0)
		fail("format failed", f, err.message);
	if (f == BPFKIT_FMT_DOT || (f == BPFKIT_FMT_LISTING &&
				    !fmt_listing_exact(prog->insns, prog->len))) {
		bpfkit_free(NULL, text);
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		struct bpfkit_prog back;
		enum bpfkit_format det;
		if (pass == 1 && (prog->len == 0 ||
				  (f == BPFKIT_FMT_RAW && !memchr(text, 0, len))))
			break; /* empty text, or raw bytes that look like text */
		if (bpfkit_prog_read(text, len, pass ? BPFKIT_FMT_AUTO : f, NULL, &back, &det,
				     &err) != 0)
			fail(pass ? "auto read back failed" : "read back failed", f, err.message);
		if (det != f)
			fail("detected another format", f, bpfkit_format_name(det));
		if (!same(prog, &back))
			fail("read back differs", f, f == BPFKIT_FMT_RAW ? NULL : text);
		bpfkit_prog_free(NULL, &back);
	}
	bpfkit_free(NULL, text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bpfkit_prog prog = {(struct bpfkit_insn *)1, 1};
	struct bpfkit_error err;
	enum bpfkit_format det;
	if (bpfkit_prog_read(data, size, FUZZ_FMT, NULL, &prog, &det, &err) != 0) {
		if (prog.insns || prog.len)
			fail("failed read left a program", FUZZ_FMT, err.message);
		if (!err.message[0])
			fail("failed read without a message", FUZZ_FMT, NULL);
		return 0;
	}
	for (int f = BPFKIT_FMT_ASM; f <= BPFKIT_FMT_DOT; f++) {
		/* bpf_asm has no spelling for an empty program. */
		if (f == BPFKIT_FMT_ASM && prog.len == 0)
			continue;
		reread(&prog, (enum bpfkit_format)f);
	}
	bpfkit_prog_free(NULL, &prog);
	return 0;
}
