/*
 * main.c - the test runner.  Runs every registered test (or those whose name
 * contains one of the arguments) in file order and prints "N passed, N
 * failed" (", N skipped" when some were) as its last line; exits 1 on any
 * failure.  Tests register themselves with TEST() in harness.h.
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <stdarg.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

struct test {
	const char *name;
	harness_fn fn;
	const char *file;
};

static struct test *tests;
static size_t ntests, captests;
static int cur_failures;
static bool cur_skipped;
static const char *cur_name;

void harness_register(const char *name, harness_fn fn, const char *file)
{
	if (ntests == captests) {
		captests = captests ? captests * 2 : 64;
		tests = realloc(tests, captests * sizeof *tests);
		if (!tests)
			abort();
	}
	tests[ntests++] = (struct test){name, fn, file};
}

void harness_fail(const char *file, int line, const char *fmt, ...)
{
	if (cur_failures < 20) {
		va_list ap;
		fprintf(stderr, "%s:%d: %s: ", file, line, cur_name);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	} else if (cur_failures == 20) {
		fprintf(stderr, "%s: further failures not shown\n", cur_name);
	}
	cur_failures++;
}

void harness_skip(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "skip %s: ", cur_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	cur_skipped = true;
}

int harness_failures(void)
{
	return cur_failures;
}

const char *harness_shared(void)
{
	const char *s = getenv("BPFKIT_SHARED");
	return s && *s ? s : "../shared";
}

const char *harness_shared_path(const char *rel)
{
	static char buf[4096];
	snprintf(buf, sizeof buf, "%s/%s", harness_shared(), rel);
	return buf;
}

void *harness_alloc_fn(void *ud, void *ptr, size_t size)
{
	struct harness_alloc *c = ud;
	if (size == 0) {
		if (ptr)
			c->live--;
		free(ptr);
		return NULL;
	}
	if (c->calls++ == c->fail_at)
		return NULL;
	void *q = realloc(ptr, size);
	if (q && !ptr)
		c->live++;
	return q;
}

const char *harness_bin(void)
{
	const char *s = getenv("BPFKIT_BIN");
	return s && *s ? s : "./bpfkit";
}

char *harness_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	size_t r;
	while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

int harness_run(const char *cmd, char **out, char **errout)
{
	char outpath[] = "/tmp/bpfkit-test-outXXXXXX";
	char errpath[] = "/tmp/bpfkit-test-errXXXXXX";
	int fo = mkstemp(outpath), fe = mkstemp(errpath);
	if (fo < 0 || fe < 0)
		abort();
	close(fo);
	close(fe);
	size_t n = strlen(cmd) + 2 * sizeof outpath + 32;
	char *full = malloc(n);
	if (!full)
		abort();
	snprintf(full, n, "( %s ) >%s 2>%s", cmd, outpath, errpath);
	int st = system(full);
	free(full);
	if (out)
		*out = harness_read_file(outpath, NULL);
	if (errout)
		*errout = harness_read_file(errpath, NULL);
	unlink(outpath);
	unlink(errpath);
	if (st == -1)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int main(int argc, char **argv)
{
	int passed = 0, failed = 0, skipped = 0;
	bool verbose = getenv("BPFKIT_TEST_VERBOSE") != NULL;
	for (size_t i = 0; i < ntests; i++) {
		if (argc > 1) {
			bool want = false;
			for (int a = 1; a < argc; a++)
				if (strstr(tests[i].name, argv[a]))
					want = true;
			if (!want)
				continue;
		}
		cur_name = tests[i].name;
		cur_failures = 0;
		cur_skipped = false;
		if (verbose)
			fprintf(stderr, "run  %s\n", cur_name);
		fflush(stderr);
		tests[i].fn();
		fflush(stdout);
		if (cur_failures) {
			fprintf(stderr, "FAIL %s (%s, %d failed checks)\n", cur_name, tests[i].file,
				cur_failures);
			failed++;
		} else if (cur_skipped) {
			skipped++;
		} else {
			passed++;
		}
	}
	free(tests);
	if (skipped)
		printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	else
		printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}

int harness_bpfkit(char **out, char **errout, const char *fmt, ...)
{
	char args[4096], cmd[4400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "'%s' %s", harness_bin(), args);
	return harness_run(cmd, out, errout);
}
