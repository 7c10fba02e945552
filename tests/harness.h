/*
 * harness.h - a tiny test harness.  TEST(name) defines and registers a test
 * (no central list to edit); CHECK* record a failure with file:line and both
 * values and let the test go on; SKIP ends a test that cannot run here.  The
 * runner (tests/main.c) ends with the line "N passed, N failed".
 */
#ifndef BPFKIT_HARNESS_H
#define BPFKIT_HARNESS_H

#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*harness_fn)(void);
void harness_register(const char *name, harness_fn fn, const char *file);
void harness_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void harness_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Number of failures recorded so far in the running test. */
int harness_failures(void);
/* The directory of the shared test data: $BPFKIT_SHARED, else ../shared. */
const char *harness_shared(void);
/* A path under harness_shared(); returns a static buffer. */
const char *harness_shared_path(const char *rel);
/* The built command-line tool: $BPFKIT_BIN, else ./bpfkit. */
const char *harness_bin(void);

/*
 * An allocation hook (struct bpfkit_alloc's fn, ud = struct harness_alloc)
 * that fails the fail_at-th allocation (from 0; negative: none) and counts
 * the calls and the blocks still live, for out-of-memory tests.
 */
struct harness_alloc {
	long calls, fail_at, live;
};
void *harness_alloc_fn(void *ud, void *ptr, size_t size);
/* Runs a shell command; captures stdout (and stderr) into malloc'd strings. */
int harness_run(const char *cmd, char **out, char **errout);
/* Runs `bpfkit ARGS` (ARGS printf-formatted) with harness_run; its exit status. */
int harness_bpfkit(char **out, char **errout, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Reads a whole file into a malloc'd buffer (NUL-terminated); NULL when absent. */
char *harness_read_file(const char *path, size_t *len);

#define TEST(name)                                                              \
	static void name(void);                                                 \
	__attribute__((constructor)) static void harness_reg_##name(void)       \
	{                                                                       \
		harness_register(#name, name, __FILE__);                        \
	}                                                                       \
	static void name(void)

#define CHECK(cond)                                                             \
	do {                                                                    \
		if (!(cond))                                                    \
			harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);   \
	} while (0)

#define CHECK_MSG(cond, ...)                                                    \
	do {                                                                    \
		if (!(cond))                                                    \
			harness_fail(__FILE__, __LINE__, __VA_ARGS__);          \
	} while (0)

#define CHECK_EQ(a, b)                                                          \
	do {                                                                    \
		uint64_t ha_ = (uint64_t)(a), hb_ = (uint64_t)(b);              \
		if (ha_ != hb_)                                                 \
			harness_fail(__FILE__, __LINE__,                        \
				     "%s == %s: %" PRIu64 " (0x%" PRIx64 ") != %" PRIu64 \
				     " (0x%" PRIx64 ")",                        \
				     #a, #b, ha_, ha_, hb_, hb_);               \
	} while (0)

#define CHECK_STR(a, b)                                                         \
	do {                                                                    \
		const char *sa_ = (a), *sb_ = (b);                              \
		if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                      \
			harness_fail(__FILE__, __LINE__, "%s == %s:\n  got:  \"%s\"\n  want: \"%s\"", \
				     #a, #b, sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)"); \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                             \
	do {                                                                    \
		const char *sh_ = (hay), *sn_ = (needle);                       \
		if (!sh_ || !strstr(sh_, sn_))                                  \
			harness_fail(__FILE__, __LINE__, "%s contains \"%s\":\n  got: \"%s\"", \
				     #hay, sn_, sh_ ? sh_ : "(null)");          \
	} while (0)

#define SKIP(...)                                                               \
	do {                                                                    \
		harness_skip(__VA_ARGS__);                                      \
		return;                                                         \
	} while (0)

#endif
