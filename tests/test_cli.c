/*
 * test_cli.c - the bpfkit command, run as a separate process through the
 * shell (harness_run): exit statuses (0 ok, 1 bad input, 2 bad usage),
 * diagnostics (gcc-style FILE:LINE:COL with the source line and a caret),
 * format round trips through pipes, stdin as "-", check's verdicts, run's
 * return value and trace, and that -o never leaves a partial file.
 *
 * Every test works in its own directory under /tmp, removed at the end.
 */
#include "harness.h"

#include "bpfkit.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

/* IPv4 TCP to port 80 on Ethernet, with labels and comments. */
static const char tcp80_asm[] =
	"; IPv4 TCP to port 80\n"
	"\tldh [12]\n"
	"\tjne #0x800, drop\n"
	"\tldb [23]\n"
	"\tjne #6, drop\n"
	"\tldh [20]\n"
	"\tjset #0x1fff, drop\n"
	"\tldxb 4*([14]&0xf)\n"
	"\tldh [x + 16]\n"
	"\tjeq #80, accept, drop\n"
	"accept:\tret #262144\n"
	"drop:\tret #0\n";

/* The same program as tcpdump -ddd prints it. */
static const char tcp80_ddd[] =
	"11\n"
	"40 0 0 12\n"
	"21 0 8 2048\n"
	"48 0 0 23\n"
	"21 0 6 6\n"
	"40 0 0 20\n"
	"69 4 0 8191\n"
	"177 0 0 14\n"
	"72 0 0 16\n"
	"21 0 1 80\n"
	"6 0 0 262144\n"
	"6 0 0 0\n";

/* Ethernet + IPv4 (10.0.0.1 -> 10.0.0.2) + TCP 12345 -> 80, SYN: 54 bytes. */
#define ETH_IP "000000000002 000000000001 0800 " \
	"4500 0028 0001 0000 4006 0000 0a000001 0a000002 "
static const char tcp80_pkt[] = ETH_IP "3039 0050 00000000 00000000 5002 7210 0000 0000";
/* The same addresses, UDP 12345 -> 53 (protocol 17): 42 bytes. */
static const char udp_pkt[] = "000000000002 000000000001 0800 "
	"4500 001c 0001 0000 4011 0000 0a000001 0a000002 3039 0035 0008 0000";

struct dir {
	char path[64];
};

static void dir_make(struct dir *d)
{
	snprintf(d->path, sizeof d->path, "/tmp/bpfkit-cli-XXXXXX");
	if (!mkdtemp(d->path))
		abort();
}

static void dir_remove(struct dir *d)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->path);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", d->path);
}

/* Writes text to DIR/name; returns the path in a static ring of buffers. */
static const char *put(const struct dir *d, const char *name, const char *text)
{
	static char paths[8][128];
	static int next;
	char *p = paths[next++ % 8];
	snprintf(p, sizeof paths[0], "%s/%s", d->path, name);
	FILE *f = fopen(p, "wb");
	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
	return p;
}

static void free2(char *a, char *b)
{
	free(a);
	free(b);
}

/* The last line of s (without its newline), in a static buffer. */
static const char *last_line(const char *s)
{
	static char line[256];
	line[0] = '\0';
	if (!s)
		return line;
	size_t n = strlen(s);
	while (n > 0 && s[n - 1] == '\n')
		n--;
	size_t start = n;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	snprintf(line, sizeof line, "%.*s", (int)(n - start), s + start);
	return line;
}

static bool bin_present(void)
{
	return access(harness_bin(), X_OK) == 0;
}

#define NEED_BIN()                                                              \
	do {                                                                    \
		if (!bin_present())                                             \
			SKIP("%s not built (make bpfkit)", harness_bin());      \
	} while (0)

TEST(cli_help_and_version)
{
	NEED_BIN();
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "--help"), 0);
	CHECK_CONTAINS(out, "asm");
	CHECK_CONTAINS(out, "compile");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "--version"), 0);
	CHECK_CONTAINS(out, BPFKIT_VERSION);
	free2(out, err);

	char *help_out;
	CHECK_EQ(harness_bpfkit(&help_out, &err, "help run"), 0);
	CHECK_CONTAINS(help_out, "-p PROGFILE");
	CHECK_CONTAINS(help_out, "--meta");
	free(err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run --help"), 0);
	CHECK_STR(out, help_out);
	free2(out, err);
	free(help_out);
	CHECK_EQ(harness_bpfkit(&out, &err, "check -h"), 0);
	CHECK_CONTAINS(out, "seccomp");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "help multi"), 0);
	CHECK_CONTAINS(out, "-f RULES");
	CHECK_CONTAINS(out, "RULES has one rule per line");
	CHECK(!strstr(out, "vailable yet"));
	free2(out, err);
	/* Every command has usage text, by either spelling. */
	static const char *const cmds[] = {"asm", "disasm", "check", "run", "compile", "filter",
					   "gen", "bench", "multi", "help"};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		char want[32];
		snprintf(want, sizeof want, "usage: bpfkit %s ", cmds[i]);
		CHECK_EQ(harness_bpfkit(&out, &err, "help %s", cmds[i]), 0);
		CHECK_CONTAINS(out, want);
		free2(out, err);
		CHECK_EQ(harness_bpfkit(&out, &err, "%s --help", cmds[i]), 0);
		CHECK_CONTAINS(out, want);
		free2(out, err);
	}
}

/* raw is binary: written to a terminal it is refused (util-linux script gives a tty). */
TEST(cli_raw_refuses_terminal)
{
	NEED_BIN();
	if (system("command -v script >/dev/null 2>&1") != 0)
		SKIP("script(1) not installed: cannot give bpfkit a terminal");
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "p.s", tcp80_asm);
	char cmd[512], *out, *err;
	snprintf(cmd, sizeof cmd, "script -qec '%s asm -f raw %s' /dev/null", harness_bin(), src);
	CHECK_EQ(harness_run(cmd, &out, &err), 2);
	CHECK_CONTAINS(out, "terminal");
	free2(out, err);
	/* Redirected, the same command writes 8 bytes per instruction. */
	snprintf(cmd, sizeof cmd, "%s asm -f raw %s | wc -c", harness_bin(), src);
	CHECK_EQ(harness_run(cmd, &out, &err), 0);
	CHECK_EQ(out ? atoi(out) : -1, 88);
	free2(out, err);
	dir_remove(&d);
}

TEST(cli_usage_errors_exit_2)
{
	NEED_BIN();
	static const char *const bad[] = {
		"",
		"frobnicate",
		"--frobnicate",
		"help nosuchcommand",
		"asm -z",
		"asm --bogus",
		"asm -f",
		"asm -f nosuchformat /dev/null",
		"disasm --format=nosuchformat /dev/null",
		"check -m nosuchmode /dev/null",
		"asm a b",
		"run -x 00",
		"run -p /dev/null",
		"run -p /dev/null -x 0g",
		"run -p /dev/null -x 123",
		"run -p /dev/null -x 00 -L x",
		"run -p /dev/null -x 0000 -L 1",
		"run -p /dev/null -x 00 -c 2",
		"run -p /dev/null -x 00 --meta nosuchkey=1",
		"run -p /dev/null -x 00 --meta mark",
		"run -p /dev/null -x 00 --meta mark=1x",
		"run -e nosuchengine -p /dev/null -x 00",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char *out, *err;
		int rc = harness_bpfkit(&out, &err, "%s </dev/null", bad[i]);
		CHECK_MSG(rc == 2, "'bpfkit %s' exited %d, want 2", bad[i], rc);
		if (bad[i][0])
			CHECK_MSG(err && strstr(err, "bpfkit: usage error: ") &&
				  strstr(err, "--help"), "'bpfkit %s' stderr: %s", bad[i],
				  err ? err : "(null)");
		free2(out, err);
	}
}

/* Every engine exists now (fast: test_engines.c); -e jit runs where the JIT is built. */
TEST(cli_engine_jit)
{
	NEED_BIN();
	if (!bpfkit_jit_available())
		SKIP("the jit is not available on this architecture");
	char *out, *err;
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "printf 'ldh [2]\\nret a\\n' | %s run -e jit -p - -x 00112233",
		 harness_bin());
	CHECK_EQ(harness_run(cmd, &out, &err), 0);
	CHECK_STR(out, "8755\n");
	free2(out, err);
}

/* Every command is implemented now: multi with a missing rules file is bad input naming it. */
TEST(cli_commands_not_implemented_yet)
{
	NEED_BIN();
	static const char *const cmds[] = {"multi -f /nonexistent/bpfkit-rules"};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		char *out, *err;
		CHECK_EQ(harness_bpfkit(&out, &err, "%s </dev/null", cmds[i]), 1);
		CHECK_CONTAINS(err, "bpfkit: error: ");
		CHECK_CONTAINS(err, "/nonexistent/bpfkit-rules");
		CHECK(!strstr(err, "not implemented"));
		CHECK(!strstr(err, "ns/packet"));
		free2(out, err);
	}
	/* -f is required: a usage error, not "not implemented". */
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "multi </dev/null"), 2);
	CHECK_CONTAINS(err, "RULES");
	CHECK(!strstr(err, "not implemented"));
	free2(out, err);
}

/* bench: one header and a row per engine, each engine checked against interp first. */
TEST(cli_bench_tsv)
{
	NEED_BIN();
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "bench -n 300 -R 1 --tsv 'tcp port 80' 'ip6'"), 0);
	static const char head[] = "filter\tengine\tns_per_packet\tratio_vs_interp\n";
	CHECK(strncmp(out, head, sizeof head - 1) == 0);
	CHECK_CONTAINS(out, "\ntcp port 80\tnull\t");
	CHECK_CONTAINS(out, "\ntcp port 80\tinterp\t");
	CHECK_CONTAINS(out, "\nip6\tfast\t");
	if (bpfkit_jit_available())
		CHECK_CONTAINS(out, "\nip6\tjit\t");
	CHECK_STR(err, "");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "bench -n 10 -R 1 'tcp port'"), 1);
	CHECK_CONTAINS(err, "bpfkit: error: 1:9:");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "bench -r x.pcap -n 10"), 2);
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "bench -R 0"), 2);
	free2(out, err);
}

TEST(cli_compile_expression_and_error_caret)
{
	NEED_BIN();
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "compile -l RAW -O0 ip"), 0);
	CHECK_CONTAINS(out, "ldb      [0]");
	CHECK_CONTAINS(out, "ret      #262144");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "compile tcp port 80 and hots 1.2.3.4"), 1);
	CHECK_CONTAINS(err, "bpfkit: error: 1:17: unknown keyword 'hots'");
	CHECK_CONTAINS(err, "                ^~~~");
	free2(out, err);
}

/* Normalises a listing for comparison: no trailing blanks, one final newline. */
static char *normalize(const char *s)
{
	if (!s)
		return NULL;
	char *o = malloc(strlen(s) + 2);
	size_t n = 0;
	for (const char *p = s; *p; p++) {
		if (*p == '\n')
			while (n > 0 && (o[n - 1] == ' ' || o[n - 1] == '\t'))
				n--;
		o[n++] = *p;
	}
	while (n > 0 && (o[n - 1] == '\n' || o[n - 1] == ' '))
		n--;
	o[n++] = '\n';
	o[n] = '\0';
	return o;
}

#define CHECK_DDD(got)                                                          \
	do {                                                                    \
		char *norm_ = normalize(got);                                   \
		CHECK_STR(norm_, tcp80_ddd);                                    \
		free(norm_);                                                    \
	} while (0)

TEST(cli_asm_to_ddd)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "p.s", tcp80_asm);
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "asm %s", src), 0);
	CHECK_DDD(out);
	CHECK_STR(err, "");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "asm -f ddd %s", src), 0);
	CHECK_DDD(out);
	free2(out, err);
	dir_remove(&d);
}

TEST(cli_stdin_dash)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "p.s", tcp80_asm);
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "asm - < %s", src), 0);
	CHECK_DDD(out);
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "asm < %s", src), 0);
	CHECK_DDD(out);
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "asm %s | %s disasm - | %s asm -", src, harness_bin(),
		     harness_bin()), 0);
	CHECK_DDD(out);
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "asm %s | %s check -", src, harness_bin()), 0);
	CHECK_CONTAINS(out, "valid (socket): 11 instructions");
	free2(out, err);
	dir_remove(&d);
}

/* Every readable format survives asm -> F -> ddd, and disasm -> F -> ddd. */
TEST(cli_format_round_trips)
{
	NEED_BIN();
	static const char *const formats[] = {"asm", "listing", "c", "ddd", "iptables", "raw",
					      "json"};
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "p.s", tcp80_asm);
	const char *ddd = put(&d, "p.ddd", tcp80_ddd);
	const char *bin = harness_bin();
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
		const char *f = formats[i];
		char *out, *err;
		int rc = harness_bpfkit(&out, &err, "asm -f %s %s | %s disasm -f ddd", f, src, bin);
		CHECK_MSG(rc == 0, "asm -f %s | disasm: exit %d: %s", f, rc, err ? err : "");
		CHECK_DDD(out);
		free2(out, err);
		rc = harness_bpfkit(&out, &err, "disasm -f %s %s | %s disasm -f ddd -", f, ddd, bin);
		CHECK_MSG(rc == 0, "disasm -f %s | disasm: exit %d: %s", f, rc, err ? err : "");
		CHECK_DDD(out);
		free2(out, err);
		/* A second trip gives the same text: the formatter is deterministic. */
		char *once, *twice;
		harness_bpfkit(&once, &err, "disasm -f %s %s", f, ddd);
		free(err);
		harness_bpfkit(&twice, &err, "disasm -f %s %s | %s disasm -f %s", f, ddd, bin, f);
		free(err);
		CHECK_MSG(once && twice && strcmp(once, twice) == 0, "format %s is not stable", f);
		free2(once, twice);
	}
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "disasm -f dot %s", ddd), 0);
	CHECK_CONTAINS(out, "digraph");
	free2(out, err);
	dir_remove(&d);
}

/*
 * Checks a gcc-style diagnostic: "NAME:LINE:COL: error: ..." then the source
 * line, then a caret line whose '^' sits at column COL (tabs copied).
 */
static void check_caret(const char *err, const char *name, int want_line, const char *srcline,
			const char *under)
{
	char head[160];
	snprintf(head, sizeof head, "%s:%d:", name, want_line);
	CHECK_MSG(err && strncmp(err, head, strlen(head)) == 0, "stderr starts with \"%s\": %s",
		  head, err ? err : "(null)");
	if (!err || strncmp(err, head, strlen(head)) != 0)
		return;
	int col = atoi(err + strlen(head));
	CHECK(col >= 1);
	CHECK_CONTAINS(err, ": error: ");
	const char *nl = strchr(err, '\n');
	CHECK(nl != NULL);
	if (!nl || col < 1)
		return;
	const char *line = nl + 1;
	size_t n = strlen(srcline);
	CHECK_MSG(strncmp(line, srcline, n) == 0 && line[n] == '\n',
		  "second line is the source line \"%s\": %s", srcline, err);
	if (strncmp(line, srcline, n) != 0 || line[n] != '\n')
		return;
	const char *caret = line + n + 1;
	CHECK_MSG((size_t)col <= n + 1, "column %d within the line", col);
	for (int i = 0; i < col - 1 && (size_t)i < n; i++)
		CHECK_MSG(caret[i] == (srcline[i] == '\t' ? '\t' : ' '),
			  "caret line pads with blanks/tabs: %s", err);
	CHECK_MSG(caret[col - 1] == '^', "caret at column %d: %s", col, err);
	for (const char *p = caret + col; *p && *p != '\n'; p++)
		CHECK_MSG(*p == '~', "caret underline is ~: %s", err);
	if (under)
		CHECK_MSG(strncmp(srcline + col - 1, under, strlen(under)) == 0,
			  "caret under \"%s\": %s", under, err);
}

TEST(cli_asm_error_has_line_column_and_caret)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "bad.s",
			      "\tldh [12]\n\tjeq #0x800, ok\n\tfrob #1\nok:\tret #1\n");
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "asm %s", src), 1);
	CHECK_STR(out, "");
	check_caret(err, src, 3, "\tfrob #1", "frob");
	free2(out, err);
	/* The same through standard input is reported as <stdin>. */
	CHECK_EQ(harness_bpfkit(&out, &err, "asm - < %s", src), 1);
	check_caret(err, "<stdin>", 3, "\tfrob #1", "frob");
	free2(out, err);
	/* An undefined label is about the line that uses it. */
	src = put(&d, "undef.s", "\tldh [12]\n\tjeq #0x800, nowhere, out\nout:\tret #0\n");
	CHECK_EQ(harness_bpfkit(&out, &err, "asm %s", src), 1);
	check_caret(err, src, 2, "\tjeq #0x800, nowhere, out", NULL);
	CHECK_CONTAINS(err, "nowhere");
	free2(out, err);
	dir_remove(&d);
}

TEST(cli_bad_input_exit_1)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "asm %s/missing.s", d.path), 1);
	CHECK_CONTAINS(err, "bpfkit: error: ");
	CHECK_CONTAINS(err, "missing.s: ");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "check %s/missing", d.path), 1);
	CHECK_CONTAINS(err, "bpfkit: error: ");
	free2(out, err);
	/* A ddd whose count disagrees with its lines is bad input, not usage. */
	const char *p = put(&d, "short.ddd", "3\n6 0 0 0\n");
	CHECK_EQ(harness_bpfkit(&out, &err, "disasm %s", p), 1);
	CHECK_MSG(err && (strstr(err, "bpfkit: error: ") || strstr(err, ": error: ")),
		  "error message: %s", err ? err : "(null)");
	CHECK_STR(out, "");
	free2(out, err);
	dir_remove(&d);
}

static int count_entries(const char *path)
{
	DIR *dp = opendir(path);
	int n = 0;
	if (!dp)
		return -1;
	for (struct dirent *e; (e = readdir(dp));)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(dp);
	return n;
}

TEST(cli_output_file_replaced_only_on_success)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "p.s", tcp80_asm);
	const char *bad = put(&d, "bad.s", "\tret #1\n\tfrob\n");
	const char *keep = put(&d, "keep.txt", "precious\n");
	char *out, *err;

	CHECK_EQ(harness_bpfkit(&out, &err, "asm -o %s/new.ddd %s", d.path, src), 0);
	CHECK_STR(out, "");
	free2(out, err);
	char path[160];
	snprintf(path, sizeof path, "%s/new.ddd", d.path);
	char *text = harness_read_file(path, NULL);
	CHECK_DDD(text);
	free(text);

	/* Failure: the existing file is untouched, no new or temporary file appears. */
	CHECK_EQ(harness_bpfkit(&out, &err, "asm -o %s %s", keep, bad), 1);
	free2(out, err);
	text = harness_read_file(keep, NULL);
	CHECK_STR(text, "precious\n");
	free(text);
	CHECK_EQ(harness_bpfkit(&out, &err, "asm --output %s/never %s", d.path, bad), 1);
	free2(out, err);
	CHECK_EQ(count_entries(d.path), 4); /* p.s bad.s keep.txt new.ddd */

	/* Success replaces the file; "-o -" is standard output. */
	CHECK_EQ(harness_bpfkit(&out, &err, "disasm -f ddd -o %s %s/new.ddd", keep, d.path), 0);
	free2(out, err);
	text = harness_read_file(keep, NULL);
	CHECK_DDD(text);
	free(text);
	CHECK_EQ(harness_bpfkit(&out, &err, "asm -o - %s", src), 0);
	CHECK_DDD(out);
	free2(out, err);
	CHECK_EQ(count_entries(d.path), 4);

	/* An unwritable place is bad input (exit 1), not a crash. */
	CHECK_EQ(harness_bpfkit(&out, &err, "asm -o %s/no/such/dir/x %s", d.path, src), 1);
	CHECK_CONTAINS(err, "bpfkit: error: ");
	free2(out, err);
	dir_remove(&d);
}

TEST(cli_check_messages)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "p.s", tcp80_asm);
	const char *ddd = put(&d, "p.ddd", tcp80_ddd);
	/* ld #1; div #0; ret #0: a constant division by zero at instruction 1. */
	const char *div0 = put(&d, "div0.ddd", "3\n0 0 0 1\n52 0 0 0\n6 0 0 0\n");
	char *out, *err;

	CHECK_EQ(harness_bpfkit(&out, &err, "check %s", ddd), 0);
	CHECK_STR(out, "valid (socket): 11 instructions\n");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "check -m pcap %s", src), 0);
	CHECK_STR(out, "valid (pcap): 11 instructions\n");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "check --mode socket %s", src), 0);
	CHECK_STR(out, "valid (socket): 11 instructions\n");
	free2(out, err);

	/* seccomp allows no halfword packet loads: the first instruction breaks a rule. */
	char want[200];
	CHECK_EQ(harness_bpfkit(&out, &err, "check -m seccomp %s", ddd), 1);
	snprintf(want, sizeof want, "bpfkit: error: %s: instruction 0: ", ddd);
	CHECK_MSG(err && strncmp(err, want, strlen(want)) == 0, "stderr: %s", err ? err : "");
	CHECK_STR(out, "");
	free2(out, err);

	static const char *const modes[] = {"socket", "pcap"};
	for (size_t i = 0; i < 2; i++) {
		CHECK_EQ(harness_bpfkit(&out, &err, "check -m %s %s", modes[i], div0), 1);
		snprintf(want, sizeof want, "bpfkit: error: %s: instruction 1: ", div0);
		CHECK_MSG(err && strncmp(err, want, strlen(want)) == 0, "%s: stderr: %s",
			  modes[i], err ? err : "");
		free2(out, err);
	}
	dir_remove(&d);
}

TEST(cli_run_prints_return_value_last)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "p.s", tcp80_asm);
	const char *ddd = put(&d, "p.ddd", tcp80_ddd);
	char *out, *err;

	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x '%s'", src, tcp80_pkt), 0);
	CHECK_STR(last_line(out), "262144");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run -e interp -p %s -x '%s'", ddd, udp_pkt), 0);
	CHECK_STR(last_line(out), "0");
	free2(out, err);
	/* Truncated: 30 of 54 bytes captured; the port load runs off the end. */
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x '%.*s' -L 54", ddd, 70, tcp80_pkt), 0);
	CHECK_STR(last_line(out), "0");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x '%s' -c 30", ddd, tcp80_pkt), 0);
	CHECK_STR(last_line(out), "0");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x '%s' --wirelen 1500", ddd, tcp80_pkt), 0);
	CHECK_STR(last_line(out), "262144");
	free2(out, err);
	/* The program from standard input, the packet with colons and 0x. */
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p - -x '0x000000000002:000000000001:0800:"
		     "4500:0028:0001:0000:4006:0000:0a000001:0a000002:"
		     "3039:0050:00000000:00000000:5002:7210:0000:0000' < %s", src), 0);
	CHECK_STR(last_line(out), "262144");
	free2(out, err);

	/* ld #len; ret a: the wire length, defaulting to the bytes given. */
	const char *len = put(&d, "len.ddd", "2\n128 0 0 0\n22 0 0 0\n");
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x 'aa bb cc'", len), 0);
	CHECK_STR(out, "3\n");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x aabbcc -L 1000", len), 0);
	CHECK_STR(out, "1000\n");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x ''", len), 0);
	CHECK_STR(out, "0\n");
	free2(out, err);
	dir_remove(&d);
}

TEST(cli_run_meta_switches_to_linux)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	/* ld #mark (SKF_AD_OFF + 20); add #1; ret a */
	const char *mark = put(&d, "mark.ddd", "3\n32 0 0 4294963220\n4 0 0 1\n22 0 0 0\n");
	/* ld #proto; ret a */
	const char *proto = put(&d, "proto.ddd", "2\n32 0 0 4294963200\n22 0 0 0\n");
	char *out, *err;
	/* libpcap semantics: an ordinary load far past the packet -> 0. */
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x 00", mark), 0);
	CHECK_STR(out, "0\n");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x 00 --linux", mark), 0);
	CHECK_STR(out, "1\n");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x 00 --meta mark=41", mark), 0);
	CHECK_STR(out, "42\n");
	free2(out, err);
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x 00 --meta mark=1 --meta proto=0x86dd", proto), 0);
	CHECK_STR(out, "34525\n");
	free2(out, err);
	dir_remove(&d);
}

TEST(cli_run_trace_shape)
{
	NEED_BIN();
	struct dir d;
	dir_make(&d);
	const char *src = put(&d, "p.s", tcp80_asm);
	char *out, *err;
	CHECK_EQ(harness_bpfkit(&out, &err, "run -t -p %s -x '%s'", src, tcp80_pkt), 0);
	CHECK_STR(last_line(out), "262144");
	/* Instructions 0..9 ran: ten trace lines, then the value. */
	static const char *const expect[] = {"ldh", "jeq", "ldb", "jeq", "ldh", "jset",
					     "ldxb", "ldh", "jeq", "ret"};
	const char *p = out ? out : "";
	int lines = 0;
	for (; *p; lines++) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char line[256];
		snprintf(line, sizeof line, "%.*s", (int)n, p);
		p = nl ? nl + 1 : p + n;
		if (!*p)
			break; /* the last line: the value */
		char *end;
		long pc = strtol(line, &end, 10);
		CHECK_MSG(end != line && *end == ':', "trace line starts with pc: \"%s\"", line);
		CHECK_EQ(pc, lines);
		if (lines < 10)
			CHECK_MSG(strstr(line, expect[lines]) != NULL, "line %d has %s: \"%s\"",
				  lines, expect[lines], line);
		CHECK_MSG(strstr(line, "A=0x") && strstr(line, "X=0x"), "A and X: \"%s\"", line);
		if (lines == 0)
			CHECK_CONTAINS(line, "A=0x00000800");
		if (lines == 6)
			CHECK_CONTAINS(line, "X=0x00000014");
		if (lines == 1 || lines == 3 || lines == 8)
			CHECK_MSG(strstr(line, "jf") != NULL || strstr(line, "jt") != NULL,
				  "branch shown: \"%s\"", line);
	}
	CHECK_EQ(lines, 10);
	free2(out, err);
	/* Without -t, only the value. */
	CHECK_EQ(harness_bpfkit(&out, &err, "run -p %s -x '%s'", src, tcp80_pkt), 0);
	CHECK_STR(out, "262144\n");
	free2(out, err);
	dir_remove(&d);
}
