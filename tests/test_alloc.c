/*
 * test_alloc.c - fails the Nth allocation of the assembler and of every
 * format reader and writer, for every N until the call no longer needs to
 * fail, and checks each time for a clean error (-1, "out of memory", empty
 * output) and that every block handed out was given back.
 */
#include "harness.h"

#include "bpfkit.h"

#include <stdlib.h>

struct failing {
	long countdown; /* fail when it reaches 0; negative: never */
	long live;      /* blocks currently allocated */
	long total;     /* allocations attempted */
};

static void *failing_fn(void *ud, void *ptr, size_t size)
{
	struct failing *f = ud;
	if (size == 0) {
		if (ptr)
			f->live--;
		free(ptr);
		return NULL;
	}
	f->total++;
	if (f->countdown >= 0 && f->countdown-- == 0)
		return NULL;
	void *p = realloc(ptr, size);
	if (p && !ptr)
		f->live++;
	return p;
}

/* A program with labels, far jumps and every operand shape. */
static const char *const source =
	"; alloc test\n"
	"start:\n"
	"\tldh [12]\n"
	"\tjeq #0x800, ipv4, other\n"
	"ipv4:\tldb [23]\n"
	"\tjeq #6, tcp, far\n"
	"tcp:\tldxb 4*([14]&0xf)\n"
	"\tldh [x + 16]\n"
	"\tst M[3]\n"
	"\tld M[3]\n"
	"\tjge #1024, other, accept\n"
	"accept:\tret #0x40000\n"
	"other:\tld #len\n"
	"\tadd #1\n"
	"\tjset #0x80, far\n"
	"\tret #0\n";

static size_t big_source(char *buf, size_t cap)
{
	size_t n = (size_t)snprintf(buf, cap, "%s", source);
	for (int i = 0; i < 300 && n + 32 < cap; i++)
		n += (size_t)snprintf(buf + n, cap - n, "\tadd #%d\n", i);
	n += (size_t)snprintf(buf + n, cap - n, "far:\tret a\n");
	return n;
}

/*
 * Runs the body with the allocation numbered nth_ failing, for nth_ = 0, 1,
 * 2 ... until the body sets rc_ to 0 (no failure was reached).
 */
#define EACH_FAILURE(f, alloc, ...)                                              \
	for (long nth_ = 0;; nth_++) {                                             \
		struct failing f = {nth_, 0, 0};                                   \
		struct bpfkit_alloc alloc = {failing_fn, &f};                      \
		int rc_;                                                           \
		__VA_ARGS__;                                                       \
		if (rc_ == 0)                                                      \
			break;                                                     \
		if (nth_ > 100000) {                                               \
			CHECK_MSG(0, "never succeeded");                           \
			break;                                                     \
		}                                                                  \
	}

TEST(alloc_fail_asm)
{
	static char src[16384];
	size_t len = big_source(src, sizeof src);
	long failures = 0;
	EACH_FAILURE(f, a, {
		struct bpfkit_prog prog = {(void *)1, 99};
		struct bpfkit_error err;
		rc_ = bpfkit_asm(src, len, &a, &prog, &err);
		if (rc_ != 0) {
			failures++;
			CHECK_MSG(f.total > nth_, "failed without reaching allocation %ld", nth_);
			CHECK_STR(err.message, "out of memory");
			CHECK_MSG(prog.insns == NULL && prog.len == 0, "output not emptied at %ld", nth_);
			CHECK_MSG(f.live == 0, "%ld blocks leaked after failing allocation %ld",
				  f.live, nth_);
		} else {
			CHECK(prog.len > 300);
			bpfkit_prog_free(&a, &prog);
			CHECK_EQ(f.live, 0);
		}
		if (harness_failures())
			break;
	});
	CHECK_MSG(failures > 0, "the assembler never allocated");
}

static const enum bpfkit_format formats[] = {
	BPFKIT_FMT_ASM, BPFKIT_FMT_LISTING, BPFKIT_FMT_C, BPFKIT_FMT_DDD,
	BPFKIT_FMT_IPTABLES, BPFKIT_FMT_RAW, BPFKIT_FMT_JSON, BPFKIT_FMT_DOT,
};

TEST(alloc_fail_formats)
{
	static char src[16384];
	size_t len = big_source(src, sizeof src);
	struct bpfkit_prog prog = {0};
	struct bpfkit_error err;
	if (bpfkit_asm(src, len, NULL, &prog, &err) != 0) {
		CHECK_MSG(0, "cannot assemble the test program: %s", err.message);
		return;
	}
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
		enum bpfkit_format fmt = formats[i];
		char *text = NULL;
		size_t tlen = 0;
		EACH_FAILURE(f, a, {
			char *t = (char *)1;
			size_t l = 7;
			rc_ = bpfkit_prog_format(prog.insns, prog.len, fmt, &a, &t, &l, &err);
			if (rc_ != 0) {
				CHECK_STR(err.message, "out of memory");
				CHECK_MSG(t == NULL, "format %s: output not cleared",
					  bpfkit_format_name(fmt));
				CHECK_MSG(f.live == 0, "format %s: %ld blocks leaked at %ld",
					  bpfkit_format_name(fmt), f.live, nth_);
			} else {
				bpfkit_free(&a, t);
				CHECK_EQ(f.live, 0);
			}
			if (harness_failures())
				break;
		});
		if (bpfkit_prog_format(prog.insns, prog.len, fmt, NULL, &text, &tlen, &err) != 0) {
			CHECK_MSG(0, "format %s: %s", bpfkit_format_name(fmt), err.message);
			continue;
		}
		if (fmt == BPFKIT_FMT_DOT) {
			bpfkit_free(NULL, text);
			continue;
		}
		enum bpfkit_format rd[2] = {fmt, BPFKIT_FMT_AUTO};
		for (int j = 0; j < 2; j++) {
			EACH_FAILURE(f, a, {
				struct bpfkit_prog back = {(void *)1, 5};
				rc_ = bpfkit_prog_read(text, tlen, rd[j], &a, &back, NULL, &err);
				if (rc_ != 0) {
					CHECK_STR(err.message, "out of memory");
					CHECK_MSG(back.insns == NULL && back.len == 0,
						  "read %s: output not emptied", bpfkit_format_name(fmt));
					CHECK_MSG(f.live == 0, "read %s: %ld blocks leaked at %ld",
						  bpfkit_format_name(fmt), f.live, nth_);
				} else {
					CHECK_EQ(back.len, prog.len);
					if (back.len == prog.len)
						CHECK(memcmp(back.insns, prog.insns,
							     prog.len * sizeof *prog.insns) == 0);
					bpfkit_prog_free(&a, &back);
					CHECK_EQ(f.live, 0);
				}
				if (harness_failures())
					break;
			});
		}
		bpfkit_free(NULL, text);
	}
	bpfkit_prog_free(NULL, &prog);
}
