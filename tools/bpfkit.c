/*
 * bpfkit.c - the bpfkit command: a thin layer over libbpfkit.
 *
 * main() looks the first argument up in one table of commands and hands the
 * command the rest of argv; each command parses its own options with
 * getopt_long, calls the library and renders what comes back.  Only the
 * public header is used.
 *
 * Invariants:
 * - Exit status: 0 success, 1 bad input (with "bpfkit: error: ..." or a
 *   gcc-style FILE:LINE:COL diagnostic on stderr), 2 bad usage (with
 *   "bpfkit: usage error: ..." and a hint to --help).
 * - An -o file is written through a temporary file beside it and renamed
 *   into place only when everything was written: a failure never leaves a
 *   partial or truncated output.
 * - Engines, validation modes, metadata keys and formats each come from one
 *   table (the formats from the library's), so help text and parsing agree.
 */
#include "bpfkit.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_INPUT = 1, EXIT_USAGE = 2 };

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

struct command;
typedef int (*command_fn)(const struct command *cmd, int argc, char **argv);

/* Extra sections appended to a command's help, generated from the tables. */
enum { HELP_FORMATS = 1, HELP_MODES = 2, HELP_ENGINES = 4, HELP_META = 8 };

struct command {
	const char *name;
	command_fn run;
	const char *synopsis; /* the arguments after "bpfkit NAME" */
	const char *summary;  /* one line for the command list */
	const char *help;     /* description and options for "bpfkit help NAME" */
	unsigned sections;
};

static int show_help(const struct command *cmd);
static const struct command *find_command(const char *name);

/* ------------------------------------------------------------------ */
/* Diagnostics                                                         */

static int usage_error(const struct command *cmd, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int usage_error(const struct command *cmd, const char *fmt, ...)
{
	va_list ap;
	fputs("bpfkit: usage error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "\nTry 'bpfkit %s --help' for more information.\n", cmd->name);
	else
		fputs("\nTry 'bpfkit --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

static int input_error(const char *name, const char *fmt, ...) PRINTF_LIKE(2, 3);
static int input_error(const char *name, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "bpfkit: error: %s: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_INPUT;
}

/* A whole input file (or standard input) in memory, NUL-terminated. */
struct input {
	const char *name; /* as shown in messages: the path or "<stdin>" */
	char *data;
	size_t len;
};

/*
 * Prints the source line `line` of in and a caret line under columns
 * [column, column + span).  Tabs before the span are copied into the caret
 * line so the caret lines up however the terminal expands them.
 */
static void show_source_line(const struct input *in, int line, int column, int span)
{
	const char *p = in->data, *end = in->data + in->len;
	for (int l = 1; l < line && p < end; l++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			return;
		p = nl + 1;
	}
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
	if (n > 0 && p[n - 1] == '\r')
		n--;
	if (n == 0 && column <= 1)
		return;
	fprintf(stderr, "%.*s\n", (int)n, p);
	if (column <= 0)
		return;
	size_t col = (size_t)column - 1;
	for (size_t i = 0; i < col; i++)
		fputc(i < n && p[i] == '\t' ? '\t' : ' ', stderr);
	size_t width = span > 1 ? (size_t)span : 1;
	if (col < n && width > n - col)
		width = n - col;
	fputc('^', stderr);
	for (size_t i = 1; i < width; i++)
		fputc('~', stderr);
	fputc('\n', stderr);
}

/*
 * Renders a library error about in: gcc style with the source line and a
 * caret when it has a line, else "bpfkit: error: FILE: [instruction N: |
 * byte N: ]MESSAGE".  Returns EXIT_INPUT.
 */
static int report(const struct input *in, const struct bpfkit_error *err)
{
	if (err->line > 0) {
		if (err->column > 0)
			fprintf(stderr, "%s:%d:%d: error: %s\n", in->name, err->line, err->column,
				err->message);
		else
			fprintf(stderr, "%s:%d: error: %s\n", in->name, err->line, err->message);
		show_source_line(in, err->line, err->column, err->span);
		return EXIT_INPUT;
	}
	if (err->insn >= 0)
		return input_error(in->name, "instruction %ld: %s", err->insn, err->message);
	if (err->offset >= 0)
		return input_error(in->name, "byte %lld: %s", err->offset, err->message);
	return input_error(in->name, "%s", err->message);
}

/* ------------------------------------------------------------------ */
/* Files                                                               */

static bool is_stdio(const char *path)
{
	return !path || strcmp(path, "-") == 0;
}

/* Reads path ("-" or NULL: standard input) whole.  Returns an exit status. */
static int read_input(const char *path, struct input *in)
{
	bool std = is_stdio(path);
	in->name = std ? "<stdin>" : path;
	in->data = NULL;
	in->len = 0;
	FILE *f = std ? stdin : fopen(path, "rb");
	if (!f)
		return input_error(in->name, "%s", strerror(errno));
	size_t cap = 0;
	for (;;) {
		if (cap - in->len < 4096) {
			cap = cap ? cap * 2 : 65536;
			char *p = realloc(in->data, cap + 1);
			if (!p) {
				if (!std)
					fclose(f);
				return input_error(in->name, "out of memory");
			}
			in->data = p;
		}
		size_t got = fread(in->data + in->len, 1, cap - in->len, f);
		in->len += got;
		if (got == 0)
			break;
	}
	int failed = ferror(f);
	int saved = errno;
	if (!std)
		fclose(f);
	if (failed)
		return input_error(in->name, "%s", strerror(saved));
	in->data[in->len] = '\0';
	return EXIT_OK;
}

static void free_input(struct input *in)
{
	free(in->data);
	in->data = NULL;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Writes data to path: standard output for NULL or "-"; a device or FIFO
 * directly; a regular file through "DIR/.NAME.XXXXXX" renamed over it, so
 * the target is either untouched or complete.
 */
static int write_output(const char *path, const char *data, size_t len)
{
	if (is_stdio(path)) {
		if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
			return input_error("<stdout>", "%s", strerror(errno));
		return EXIT_OK;
	}
	struct stat st;
	bool exists = stat(path, &st) == 0;
	if (exists && !S_ISREG(st.st_mode)) {
		FILE *f = fopen(path, "wb");
		if (!f)
			return input_error(path, "%s", strerror(errno));
		bool ok = fwrite(data, 1, len, f) == len;
		if (fclose(f) != 0 || !ok)
			return input_error(path, "%s", strerror(errno));
		return EXIT_OK;
	}
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	size_t tmplen = strlen(path) + 16;
	char *tmp = malloc(tmplen);
	if (!tmp)
		return input_error(path, "out of memory");
	snprintf(tmp, tmplen, "%.*s.%s.XXXXXX", (int)dirlen, path, path + dirlen);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int e = errno;
		free(tmp);
		return input_error(path, "%s", strerror(e));
	}
	mode_t mask = umask(0);
	umask(mask);
	mode_t mode = exists ? (st.st_mode & 07777) : (0666 & ~mask);
	int rc = 0;
	if (fchmod(fd, mode) != 0 || write_all(fd, data, len) != 0)
		rc = -1;
	int e = errno;
	if (close(fd) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	if (rc == 0 && rename(tmp, path) != 0) {
		rc = -1;
		e = errno;
	}
	if (rc != 0)
		unlink(tmp);
	free(tmp);
	return rc == 0 ? EXIT_OK : input_error(path, "%s", strerror(e));
}

/* ------------------------------------------------------------------ */
/* Option parsing                                                      */

/*
 * getopt_long with its errors rendered as usage errors: returns the option,
 * -1 at the end of the options, or '?' after printing the error.
 */
static int next_option(const struct command *cmd, int argc, char **argv, const char *shortopts,
		       const struct option *longopts)
{
	int c = getopt_long(argc, argv, shortopts, longopts, NULL);
	if (c != '?' && c != ':')
		return c;
	const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "";
	bool is_long = strncmp(arg, "--", 2) == 0;
	if (c == ':')
		usage_error(cmd, "option '%s' needs an argument", arg);
	else if (is_long || optopt == 0)
		usage_error(cmd, "unknown option '%s'", arg);
	else
		usage_error(cmd, "unknown option '-%c'", optopt);
	return '?';
}

/*
 * Prepares getopt: errors are ours to print.  A process runs one command and
 * parses one argv, so optind keeps its initial 1 (no reset needed).
 */
static void reset_options(void)
{
	opterr = 0;
}

/* The single optional FILE operand of asm, disasm and check. */
static int file_operand(const struct command *cmd, int argc, char **argv, const char **file)
{
	*file = NULL;
	if (optind < argc)
		*file = argv[optind++];
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	return EXIT_OK;
}

static int parse_u32(const char *s, uint32_t *out)
{
	if (!(*s >= '0' && *s <= '9'))
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* An output format name; AUTO is for readers only. */
static int parse_out_format(const struct command *cmd, const char *name, enum bpfkit_format *fmt)
{
	int f = bpfkit_format_parse(name);
	if (f <= BPFKIT_FMT_AUTO || f > BPFKIT_FMT_DOT) {
		char list[128] = "";
		for (int i = BPFKIT_FMT_ASM; i <= BPFKIT_FMT_DOT; i++) {
			size_t used = strlen(list);
			snprintf(list + used, sizeof list - used, "%s%s",
				 i > BPFKIT_FMT_ASM ? ", " : "",
				 bpfkit_format_name((enum bpfkit_format)i));
		}
		return usage_error(cmd, "%s format '%s' (formats: %s)",
				   f == BPFKIT_FMT_AUTO ? "not an output" : "unknown", name, list);
	}
	*fmt = (enum bpfkit_format)f;
	return EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* asm, disasm                                                         */

static const char *const help_opt = "  -h, --help             show this help\n";

/* Formats prog as fmt and writes it to out ("-"/NULL: standard output). */
static int emit_program(const struct input *in, const struct bpfkit_prog *prog,
			enum bpfkit_format fmt, const char *out)
{
	struct bpfkit_error err;
	char *text;
	size_t len;
	if (bpfkit_prog_format(prog->insns, prog->len, fmt, NULL, &text, &len, &err) != 0)
		return report(in, &err);
	int rc = write_output(out, text, len);
	bpfkit_free(NULL, text);
	return rc;
}

/* The raw format is binary: never pour it onto a terminal. */
static int check_binary_to_tty(const struct command *cmd, enum bpfkit_format fmt, const char *out)
{
	if (fmt == BPFKIT_FMT_RAW && is_stdio(out) && isatty(STDOUT_FILENO))
		return usage_error(cmd, "refusing to write the binary raw format to a terminal; "
				   "use -o FILE or redirect standard output");
	return EXIT_OK;
}

/* asm and disasm share their options; they differ in how they read. */
static int convert(const struct command *cmd, int argc, char **argv, enum bpfkit_format deflt,
		   bool assemble)
{
	static const struct option longopts[] = {
		{"format", required_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	enum bpfkit_format fmt = deflt;
	const char *out = NULL, *file;
	int c, rc;
	reset_options();
	while ((c = next_option(cmd, argc, argv, ":f:o:h", longopts)) != -1) {
		switch (c) {
		case 'f':
			if ((rc = parse_out_format(cmd, optarg, &fmt)) != EXIT_OK)
				return rc;
			break;
		case 'o':
			out = optarg;
			break;
		case 'h':
			return show_help(cmd);
		default:
			return EXIT_USAGE;
		}
	}
	if ((rc = file_operand(cmd, argc, argv, &file)) != EXIT_OK)
		return rc;
	if ((rc = check_binary_to_tty(cmd, fmt, out)) != EXIT_OK)
		return rc;

	struct input in;
	if ((rc = read_input(file, &in)) != EXIT_OK)
		return rc;
	struct bpfkit_prog prog = {NULL, 0};
	struct bpfkit_error err;
	int r;
	if (assemble)
		r = bpfkit_asm(in.data, in.len, NULL, &prog, &err);
	else
		r = bpfkit_prog_read(in.data, in.len, BPFKIT_FMT_AUTO, NULL, &prog, NULL, &err);
	rc = r != 0 ? report(&in, &err) : emit_program(&in, &prog, fmt, out);
	bpfkit_prog_free(NULL, &prog);
	free_input(&in);
	return rc;
}

static int cmd_asm(const struct command *cmd, int argc, char **argv)
{
	return convert(cmd, argc, argv, BPFKIT_FMT_DDD, true);
}

static int cmd_disasm(const struct command *cmd, int argc, char **argv)
{
	return convert(cmd, argc, argv, BPFKIT_FMT_ASM, false);
}

/* ------------------------------------------------------------------ */
/* check                                                               */

static const struct {
	const char *name;
	enum bpfkit_vmode mode;
	const char *rules;
} modes[] = {
	{"socket", BPFKIT_VALIDATE_SOCKET, "Linux SO_ATTACH_FILTER (ancillary loads allowed)"},
	{"pcap", BPFKIT_VALIDATE_PCAP, "libpcap's bpf_validate"},
	{"seccomp", BPFKIT_VALIDATE_SECCOMP,
	 "Linux seccomp filters (loads from struct seccomp_data)"},
};
#define NMODES (sizeof modes / sizeof modes[0])

/* Reads a program of any format from path; reports and returns an exit status. */
static int load_program(const char *path, struct input *in, struct bpfkit_prog *prog)
{
	int rc = read_input(path, in);
	if (rc != EXIT_OK)
		return rc;
	struct bpfkit_error err;
	prog->insns = NULL;
	prog->len = 0;
	if (bpfkit_prog_read(in->data, in->len, BPFKIT_FMT_AUTO, NULL, prog, NULL, &err) != 0) {
		rc = report(in, &err);
		free_input(in);
		return rc;
	}
	return EXIT_OK;
}

static int cmd_check(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"mode", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	size_t mode = 0;
	const char *file;
	int c, rc;
	reset_options();
	while ((c = next_option(cmd, argc, argv, ":m:h", longopts)) != -1) {
		switch (c) {
		case 'm':
			for (mode = 0; mode < NMODES && strcmp(modes[mode].name, optarg); mode++)
				;
			if (mode == NMODES)
				return usage_error(cmd, "unknown mode '%s' (socket, pcap or "
						   "seccomp)", optarg);
			break;
		case 'h':
			return show_help(cmd);
		default:
			return EXIT_USAGE;
		}
	}
	if ((rc = file_operand(cmd, argc, argv, &file)) != EXIT_OK)
		return rc;
	struct input in;
	struct bpfkit_prog prog;
	if ((rc = load_program(file, &in, &prog)) != EXIT_OK)
		return rc;
	struct bpfkit_error err;
	if (bpfkit_validate(prog.insns, prog.len, modes[mode].mode, &err) == 0) {
		printf("valid (%s): %zu instruction%s\n", modes[mode].name, prog.len,
		       prog.len == 1 ? "" : "s");
		rc = EXIT_OK;
	} else {
		rc = report(&in, &err);
	}
	bpfkit_prog_free(NULL, &prog);
	free_input(&in);
	return rc;
}

/* ------------------------------------------------------------------ */
/* run                                                                 */

/*
 * Engines.  run executes the program; trace (NULL when the engine cannot)
 * also reports every instruction.  An engine not built yet has run == NULL:
 * adding one is one row.
 */
struct engine {
	const char *name;
	uint32_t (*run)(const struct bpfkit_prog *prog, const uint8_t *pkt, uint32_t caplen,
			uint32_t wirelen, const struct bpfkit_meta *meta);
	uint32_t (*trace)(const struct bpfkit_prog *prog, const uint8_t *pkt, uint32_t caplen,
			  uint32_t wirelen, const struct bpfkit_meta *meta, bpfkit_trace_fn fn,
			  void *ctx);
	const char *what;
};

static uint32_t run_interp(const struct bpfkit_prog *prog, const uint8_t *pkt, uint32_t caplen,
			   uint32_t wirelen, const struct bpfkit_meta *meta)
{
	return bpfkit_interp(prog->insns, prog->len, pkt, caplen, wirelen, meta);
}

static uint32_t trace_interp(const struct bpfkit_prog *prog, const uint8_t *pkt, uint32_t caplen,
			     uint32_t wirelen, const struct bpfkit_meta *meta, bpfkit_trace_fn fn,
			     void *ctx)
{
	return bpfkit_interp_trace(prog->insns, prog->len, pkt, caplen, wirelen, meta, fn, ctx);
}

/*
 * The fast interpreter prepares a program once; the tool runs one program at
 * a time, so one cached handle does.  fast_ready() prepares it (and reports a
 * program the engine refuses); run_fast falls back to the reference only if
 * a caller skipped fast_ready.
 */
static struct {
	const struct bpfkit_insn *insns;
	size_t len;
	bool lnx;
	struct bpfkit_fast *f;
} fast_cache;

static int fast_ready(const struct bpfkit_prog *prog, bool lnx, struct bpfkit_error *err)
{
	if (fast_cache.f && fast_cache.insns == prog->insns && fast_cache.len == prog->len &&
	    fast_cache.lnx == lnx)
		return 0;
	bpfkit_fast_free(fast_cache.f);
	fast_cache.f = NULL;
	if (bpfkit_fast_prepare(prog->insns, prog->len, lnx ? BPFKIT_FAST_LINUX : 0, NULL,
				&fast_cache.f, err) != 0)
		return -1;
	fast_cache.insns = prog->insns;
	fast_cache.len = prog->len;
	fast_cache.lnx = lnx;
	return 0;
}

static uint32_t run_fast(const struct bpfkit_prog *prog, const uint8_t *pkt, uint32_t caplen,
			 uint32_t wirelen, const struct bpfkit_meta *meta)
{
	if (fast_ready(prog, meta != NULL, NULL) != 0)
		return bpfkit_interp(prog->insns, prog->len, pkt, caplen, wirelen, meta);
	return bpfkit_fast_run_meta(fast_cache.f, pkt, caplen, wirelen, meta);
}

/*
 * -B (run, filter, bench): compile the jit with constant blinding.  It has no
 * effect on the interpreters (they run no generated code).
 */
static unsigned jit_flags;

/* The JIT, cached the same way (libpcap dialect only; x86-64 only). */
static struct {
	const struct bpfkit_insn *insns;
	size_t len;
	struct bpfkit_jit *j;
} jit_cache;

static int jit_ready(const struct bpfkit_prog *prog, bool lnx, struct bpfkit_error *err)
{
	if (lnx) {
		if (err) {
			*err = (struct bpfkit_error){.insn = -1, .offset = -1};
			snprintf(err->message, sizeof err->message,
				 "the jit runs the libpcap dialect only (no --meta); use -e fast");
		}
		return -1;
	}
	if (jit_cache.j && jit_cache.insns == prog->insns && jit_cache.len == prog->len)
		return 0;
	bpfkit_jit_free(jit_cache.j);
	jit_cache.j = NULL;
	if (bpfkit_jit_compile(prog->insns, prog->len, jit_flags, NULL, &jit_cache.j, err) != 0)
		return -1;
	jit_cache.insns = prog->insns;
	jit_cache.len = prog->len;
	return 0;
}

static uint32_t run_jit(const struct bpfkit_prog *prog, const uint8_t *pkt, uint32_t caplen,
			uint32_t wirelen, const struct bpfkit_meta *meta)
{
	if (jit_ready(prog, meta != NULL, NULL) != 0)
		return bpfkit_interp(prog->insns, prog->len, pkt, caplen, wirelen, meta);
	return bpfkit_jit_run(jit_cache.j, pkt, caplen, wirelen);
}

static const struct engine engines[] = {
	{"interp", run_interp, trace_interp, "the reference interpreter"},
	{"fast", run_fast, NULL, "the fast interpreter (pre-decoded, threaded)"},
	{"jit", run_jit, NULL, "the x86-64 JIT (libpcap dialect; x86-64 only)"},
};
#define NENGINES (sizeof engines / sizeof engines[0])

/* --meta KEY=VALUE: the keys are bpf_asm's ancillary names. */
static const struct {
	const char *key;
	size_t offset;
} meta_fields[] = {
	{"proto", offsetof(struct bpfkit_meta, protocol)},
	{"type", offsetof(struct bpfkit_meta, pkttype)},
	{"ifidx", offsetof(struct bpfkit_meta, ifindex)},
	{"mark", offsetof(struct bpfkit_meta, mark)},
	{"queue", offsetof(struct bpfkit_meta, queue)},
	{"hatype", offsetof(struct bpfkit_meta, hatype)},
	{"rxhash", offsetof(struct bpfkit_meta, rxhash)},
	{"cpu", offsetof(struct bpfkit_meta, cpu)},
	{"vlan_tci", offsetof(struct bpfkit_meta, vlan_tci)},
	{"vlan_avail", offsetof(struct bpfkit_meta, vlan_avail)},
	{"vlan_tpid", offsetof(struct bpfkit_meta, vlan_tpid)},
	{"poff", offsetof(struct bpfkit_meta, pay_offset)},
	{"rand", offsetof(struct bpfkit_meta, random)},
	{"net_offset", offsetof(struct bpfkit_meta, net_offset)},
};
#define NMETA (sizeof meta_fields / sizeof meta_fields[0])

static int parse_meta(const struct command *cmd, const char *arg, struct bpfkit_meta *meta)
{
	const char *eq = strchr(arg, '=');
	if (!eq)
		return usage_error(cmd, "--meta wants KEY=VALUE, got '%s'", arg);
	size_t klen = (size_t)(eq - arg);
	for (size_t i = 0; i < NMETA; i++) {
		if (strlen(meta_fields[i].key) != klen || memcmp(meta_fields[i].key, arg, klen))
			continue;
		uint32_t v;
		if (parse_u32(eq + 1, &v) != 0)
			return usage_error(cmd, "--meta %.*s: '%s' is not a 32-bit number",
					   (int)klen, arg, eq + 1);
		memcpy((char *)meta + meta_fields[i].offset, &v, sizeof v);
		return EXIT_OK;
	}
	return usage_error(cmd, "--meta: unknown key '%.*s'", (int)klen, arg);
}

static int hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Packet bytes from hex: groups of digit pairs separated by spaces or colons,
 * each group optionally starting with 0x ("45000a", "45 00 0a", "45:00:0a",
 * "0x45000a").  Returns the byte count, or -1 with *bad at the offending
 * character.
 */
static long parse_hex(const char *s, uint8_t *out, const char **bad)
{
	long n = 0;
	const char *p = s;
	for (;;) {
		while (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n')
			p++;
		if (!*p)
			return n;
		if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
			p += 2;
		const char *start = p;
		int hi, lo;
		while ((hi = hex_digit((unsigned char)p[0])) >= 0 &&
		       (lo = hex_digit((unsigned char)p[1])) >= 0) {
			out[n++] = (uint8_t)(hi << 4 | lo);
			p += 2;
		}
		if (p == start || (*p && *p != ' ' && *p != ':' && *p != '\t' && *p != '\n')) {
			*bad = p;
			return -1;
		}
	}
}

/*
 * The trace: one line per executed instruction, its text taken from the
 * program formatted once as bpf_asm (jump targets are labels L<index>), or
 * from the tcpdump -d listing if that does not give one line per instruction.
 */
struct tracer {
	char **lines; /* per instruction; NULL when no text could be made */
	size_t n;
};

/* The text of one formatted line: no label or "(NNN)" index, blanks collapsed. */
static char *instruction_text(const char *p, size_t n)
{
	const char *src = p, *end = p + n;
	if (*src == '(') {
		const char *close = memchr(src, ')', n);
		if (close)
			src = close + 1;
	} else {
		const char *q = src;
		while (q < end && (*q == '_' || (*q >= '0' && *q <= '9') ||
				   ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z')))
			q++;
		if (q > src && q < end && *q == ':')
			src = q + 1;
	}
	char *line = malloc(n + 1);
	if (!line)
		return NULL;
	size_t o = 0;
	for (; src < end; src++) {
		bool blank = *src == ' ' || *src == '\t';
		if (blank && (o == 0 || line[o - 1] == ' '))
			continue;
		line[o++] = blank ? ' ' : *src;
	}
	while (o > 0 && line[o - 1] == ' ')
		o--;
	line[o] = '\0';
	return line;
}

/* Fills t->lines from prog formatted as fmt; false unless every instruction got a line. */
static bool tracer_lines(struct tracer *t, const struct bpfkit_prog *prog, enum bpfkit_format fmt)
{
	char *text;
	size_t len, i = 0;
	struct bpfkit_error err;
	if (bpfkit_prog_format(prog->insns, prog->len, fmt, NULL, &text, &len, &err) != 0)
		return false;
	for (char *p = text; i < prog->len && *p;) {
		char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		size_t lead = strspn(p, " \t");
		bool skip = lead >= n || p[lead] == ';' || p[lead] == '#';
		if (!skip && !(t->lines[i++] = instruction_text(p, n)))
			break;
		p += n + (nl != NULL);
	}
	bpfkit_free(NULL, text);
	if (i == prog->len && (i == 0 || t->lines[i - 1]))
		return true;
	for (size_t j = 0; j < prog->len; j++) {
		free(t->lines[j]);
		t->lines[j] = NULL;
	}
	return false;
}

static void tracer_init(struct tracer *t, const struct bpfkit_prog *prog)
{
	t->n = prog->len;
	t->lines = calloc(prog->len ? prog->len : 1, sizeof *t->lines);
	if (t->lines && !tracer_lines(t, prog, BPFKIT_FMT_ASM))
		tracer_lines(t, prog, BPFKIT_FMT_LISTING);
}

static void tracer_free(struct tracer *t)
{
	for (size_t i = 0; t->lines && i < t->n; i++)
		free(t->lines[i]);
	free(t->lines);
}

static void trace_line(void *ctx, const struct bpfkit_trace *tr)
{
	const struct tracer *t = ctx;
	char raw[64];
	const char *text = tr->pc < t->n && t->lines && t->lines[tr->pc] ? t->lines[tr->pc] : NULL;
	if (!text) {
		snprintf(raw, sizeof raw, "{ 0x%02x, %u, %u, 0x%08x }", tr->insn.code, tr->insn.jt,
			 tr->insn.jf, tr->insn.k);
		text = raw;
	}
	printf("%4zu: %-32s A=0x%08x X=0x%08x", tr->pc, text, tr->a, tr->x);
	if (tr->done)
		printf("  -> return %u", tr->ret);
	else if (tr->branch == 1)
		printf("  -> jt %zu", tr->pc + 1 + tr->insn.jt);
	else if (tr->branch == 0)
		printf("  -> jf %zu", tr->pc + 1 + tr->insn.jf);
	else if (tr->insn.code == (BPFKIT_JMP | BPFKIT_JA))
		printf("  -> %zu", tr->pc + 1 + (size_t)tr->insn.k);
	putchar('\n');
}

enum { OPT_META = 256, OPT_LINUX };

static int cmd_run(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"engine", required_argument, NULL, 'e'},
		{"program", required_argument, NULL, 'p'},
		{"hex", required_argument, NULL, 'x'},
		{"wirelen", required_argument, NULL, 'L'},
		{"caplen", required_argument, NULL, 'c'},
		{"trace", no_argument, NULL, 't'},
		{"meta", required_argument, NULL, OPT_META},
		{"linux", no_argument, NULL, OPT_LINUX},
		{"blind", no_argument, NULL, 'B'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const struct engine *engine = &engines[0];
	const char *progfile = NULL, *hex = NULL, *wirelen_arg = NULL, *caplen_arg = NULL;
	bool trace = false, linux_sem = false;
	struct bpfkit_meta meta;
	memset(&meta, 0, sizeof meta);
	int c, rc;
	reset_options();
	while ((c = next_option(cmd, argc, argv, ":e:p:x:L:c:thB", longopts)) != -1) {
		switch (c) {
		case 'e':
			engine = NULL;
			for (size_t i = 0; i < NENGINES; i++)
				if (strcmp(engines[i].name, optarg) == 0)
					engine = &engines[i];
			if (!engine)
				return usage_error(cmd, "unknown engine '%s'", optarg);
			break;
		case 'p': progfile = optarg; break;
		case 'x': hex = optarg; break;
		case 'L': wirelen_arg = optarg; break;
		case 'c': caplen_arg = optarg; break;
		case 't': trace = true; break;
		case 'B': jit_flags = BPFKIT_JIT_BLIND; break;
		case OPT_META:
			if ((rc = parse_meta(cmd, optarg, &meta)) != EXIT_OK)
				return rc;
			linux_sem = true;
			break;
		case OPT_LINUX: linux_sem = true; break;
		case 'h':
			return show_help(cmd);
		default:
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!progfile)
		return usage_error(cmd, "missing -p PROGFILE");
	if (!hex)
		return usage_error(cmd, "missing -x HEXBYTES");
	if (!engine->run)
		return usage_error(cmd, "engine '%s' is not available yet", engine->name);
	if (trace && !engine->trace)
		return usage_error(cmd, "engine '%s' cannot trace; use -e interp", engine->name);

	uint8_t *pkt = malloc(strlen(hex) / 2 + 1);
	if (!pkt)
		return input_error("-x", "out of memory");
	const char *bad = NULL;
	long got = parse_hex(hex, pkt, &bad);
	if (got < 0 || got > (long)UINT32_MAX) {
		free(pkt);
		return usage_error(cmd, "-x: bad hex at character %ld of '%s' (want pairs of hex "
				   "digits, optionally separated by spaces or colons)",
				   (long)(bad - hex) + 1, hex);
	}
	uint32_t caplen = (uint32_t)got, wirelen = (uint32_t)got;
	rc = EXIT_OK;
	if (caplen_arg && (parse_u32(caplen_arg, &caplen) != 0 || caplen > (uint32_t)got))
		rc = usage_error(cmd, "-c: '%s' is not a length from 0 to %ld (the bytes given)",
				 caplen_arg, got);
	else if (wirelen_arg && (parse_u32(wirelen_arg, &wirelen) != 0 || wirelen < caplen))
		rc = usage_error(cmd, "-L: '%s' is not a wire length of at least %u (the captured "
				 "bytes)", wirelen_arg, caplen);
	if (rc != EXIT_OK) {
		free(pkt);
		return rc;
	}

	struct input in;
	struct bpfkit_prog prog;
	if ((rc = load_program(progfile, &in, &prog)) != EXIT_OK) {
		free(pkt);
		return rc;
	}
	const struct bpfkit_meta *m = linux_sem ? &meta : NULL;
	uint32_t ret;
	struct bpfkit_error perr;
	if ((engine->run == run_fast && fast_ready(&prog, linux_sem, &perr) != 0) ||
	    (engine->run == run_jit && jit_ready(&prog, linux_sem, &perr) != 0)) {
		rc = input_error(in.name, "instruction %ld: the %s engine refuses the program: %s",
				 perr.insn, engine->name, perr.message);
		bpfkit_prog_free(NULL, &prog);
		free_input(&in);
		free(pkt);
		return rc;
	}
	if (trace) {
		struct tracer t;
		tracer_init(&t, &prog);
		ret = engine->trace(&prog, pkt, caplen, wirelen, m, trace_line, &t);
		tracer_free(&t);
	} else {
		ret = engine->run(&prog, pkt, caplen, wirelen, m);
	}
	printf("%u\n", ret);
	if (fflush(stdout) != 0)
		rc = input_error("<stdout>", "%s", strerror(errno));
	bpfkit_prog_free(NULL, &prog);
	free_input(&in);
	free(pkt);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Link types                                                          */

/*
 * -l takes a link-type name as libpcap spells it without DLT_ (any case) or a
 * number; the library knows the names (bpfkit_linktype_parse).  Capture files
 * store LINKTYPE_ numbers, which differ from the DLT values for a few types.
 */
static long parse_linktype(const char *s)
{
	int dlt = bpfkit_linktype_parse(s);
	switch (dlt) {
	case 11: return 100; /* ATM_RFC1483 */
	case 12: return 101; /* RAW */
	case 15: return 102; /* SLIP_BSDOS */
	case 16: return 103; /* PPP_BSDOS */
	case 19: return 106; /* ATM_CLIP */
	default: return dlt;
	}
}

/* ------------------------------------------------------------------ */
/* Capture files                                                       */

/*
 * An output capture: standard output, a device or FIFO written directly, or
 * a regular file written as "DIR/.NAME.XXXXXX" and renamed over NAME only by
 * output_commit(); output_abort() removes the temporary, so a failure never
 * leaves a partial file.
 */
struct output {
	const char *path;  /* as named in messages */
	char *tmp;         /* the temporary file, NULL when writing directly */
	int fd;
	mode_t mode;
};

static int output_open(const char *path, struct output *o)
{
	o->path = is_stdio(path) ? "<stdout>" : path;
	o->tmp = NULL;
	o->fd = STDOUT_FILENO;
	if (is_stdio(path))
		return EXIT_OK;
	struct stat st;
	bool exists = stat(path, &st) == 0;
	if (exists && !S_ISREG(st.st_mode)) {
		o->fd = open(path, O_WRONLY | O_CLOEXEC);
		if (o->fd < 0)
			return input_error(path, "%s", strerror(errno));
		return EXIT_OK;
	}
	const char *slash = strrchr(path, '/');
	size_t dirlen = slash ? (size_t)(slash - path) + 1 : 0;
	size_t tmplen = strlen(path) + 16;
	o->tmp = malloc(tmplen);
	if (!o->tmp)
		return input_error(path, "out of memory");
	snprintf(o->tmp, tmplen, "%.*s.%s.XXXXXX", (int)dirlen, path, path + dirlen);
	o->fd = mkstemp(o->tmp);
	if (o->fd < 0) {
		int e = errno;
		free(o->tmp);
		o->tmp = NULL;
		return input_error(path, "%s", strerror(e));
	}
	mode_t mask = umask(0);
	umask(mask);
	o->mode = exists ? (st.st_mode & 07777) : (0666 & ~mask);
	return EXIT_OK;
}

static void output_abort(struct output *o)
{
	if (o->tmp) {
		close(o->fd);
		unlink(o->tmp);
		free(o->tmp);
		o->tmp = NULL;
	} else if (o->fd != STDOUT_FILENO && o->fd >= 0) {
		close(o->fd);
	}
	o->fd = -1;
}

/* Closes the output and renames the temporary into place; an exit status. */
static int output_commit(struct output *o)
{
	if (!o->tmp) {
		if (o->fd != STDOUT_FILENO && close(o->fd) != 0)
			return input_error(o->path, "%s", strerror(errno));
		return EXIT_OK;
	}
	int rc = fchmod(o->fd, o->mode);
	int e = errno;
	if (close(o->fd) != 0 && rc == 0) {
		rc = -1;
		e = errno;
	}
	if (rc == 0 && rename(o->tmp, o->path) != 0) {
		rc = -1;
		e = errno;
	}
	if (rc != 0)
		unlink(o->tmp);
	free(o->tmp);
	o->tmp = NULL;
	o->fd = -1;
	return rc == 0 ? EXIT_OK : input_error(o->path, "%s", strerror(e));
}

/* Renders a capture error: "bpfkit: error: FILE: byte N: message". */
static int capture_error(const char *name, const struct bpfkit_error *err)
{
	if (err->offset >= 0)
		return input_error(name, "byte %lld: %s", err->offset, err->message);
	return input_error(name, "%s", err->message);
}

/*
 * Progress on standard error, only when it is a terminal: packets read,
 * packets matched and the rate, rewritten in place about once a second.
 */
struct progress {
	bool on, shown;
	struct timespec start, last;
};

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void progress_init(struct progress *pr)
{
	pr->on = isatty(STDERR_FILENO);
	pr->shown = false;
	if (pr->on) {
		clock_gettime(CLOCK_MONOTONIC, &pr->start);
		pr->last = pr->start;
	}
}

static void progress_tick(struct progress *pr, uint64_t packets, uint64_t matched)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (seconds_between(&pr->last, &now) < 1.0)
		return;
	pr->last = now;
	double secs = seconds_between(&pr->start, &now);
	fprintf(stderr, "\r\033[Kbpfkit: %llu packets, %llu matched, %.0f packets/s",
		(unsigned long long)packets, (unsigned long long)matched,
		secs > 0 ? (double)packets / secs : 0.0);
	pr->shown = true;
}

static void progress_done(struct progress *pr)
{
	if (pr->shown)
		fputs("\r\033[K", stderr);
}

/* ------------------------------------------------------------------ */
/* filter                                                              */

/*
 * The capture to filter.  A regular file is mapped and read in place: that
 * saves read(2)'s copy, the largest cost of a run (perf: 60% of the time in
 * the kernel's copy to user space).  A pipe, a terminal or a file that cannot
 * be mapped is read through its descriptor.  A mapped file that shrinks while
 * being read raises SIGBUS, which ends the run with an error (on_sigbus).
 */
struct capture_input {
	const char *name;
	int fd;
	void *map;
	size_t maplen;
};

static int capture_input_open(const char *path, struct capture_input *ci,
			      struct bpfkit_capture **cap)
{
	struct bpfkit_error err;
	ci->name = is_stdio(path) ? "<stdin>" : path;
	ci->fd = STDIN_FILENO;
	ci->map = NULL;
	ci->maplen = 0;
	if (!is_stdio(path) && (ci->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return input_error(ci->name, "%s", strerror(errno));
	struct stat st;
	if (fstat(ci->fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (uintmax_t)st.st_size <= SIZE_MAX) {
		void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, ci->fd, 0);
		if (map != MAP_FAILED) {
			ci->map = map;
			ci->maplen = (size_t)st.st_size;
			madvise(map, ci->maplen, MADV_SEQUENTIAL);
		}
	}
	int r = ci->map ? bpfkit_capture_open_mem(ci->map, ci->maplen, 0, NULL, cap, &err) :
		bpfkit_capture_open_fd(ci->fd, 0, NULL, cap, &err);
	return r == 0 ? EXIT_OK : capture_error(ci->name, &err);
}

static void capture_input_close(struct capture_input *ci)
{
	if (ci->map)
		munmap(ci->map, ci->maplen);
	if (ci->fd != STDIN_FILENO && ci->fd >= 0)
		close(ci->fd);
	ci->map = NULL;
	ci->fd = -1;
}

static sigjmp_buf sigbus_jump;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(sigbus_jump, 1);
}

/* One filter run: what the packet loop reads and what it counts. */
/* Programs compiled from an expression, one per link type met in the capture. */
#define FILTER_MAX_LINKTYPES 16

struct filter_run {
	const struct engine *engine;
	const struct bpfkit_prog *prog;
	struct input *expr;               /* NULL with -p or no expression */
	struct bpfkit_compile_opts opts;  /* for expr; linktype < 0: from the capture */
	int forced_linktype;              /* -l, or -1 */
	struct { uint32_t linktype; struct bpfkit_prog prog; } progs[FILTER_MAX_LINKTYPES];
	int nprogs;
	struct bpfkit_capture *cap;
	struct bpfkit_capture_writer *wr; /* NULL without -w */
	const char *in_name, *out_name;
	uint64_t matched;
	struct bpfkit_capture_iface first_iface; /* the input's first interface */
	bool have_first;
};

/* Packets between progress checks (a power of two). */
#define PROGRESS_EVERY 65536u

static char *join_words(int argc, char **argv);

/* "bpfkit: error: L:C: message", the source line and a caret under the span. */
static void report_compile_error(struct input *in, const struct bpfkit_error *err)
{
	if (err->column > 0) {
		fprintf(stderr, "bpfkit: error: %d:%d: %s\n", err->line > 0 ? err->line : 1,
			err->column, err->message);
		show_source_line(in, err->line > 0 ? err->line : 1, err->column, err->span);
	} else {
		fprintf(stderr, "bpfkit: error: %s\n", err->message);
	}
}

/* The program for a packet of this link type: compiled on first use; NULL after an error
 * (reported). */
static const struct bpfkit_prog *filter_prog_for(struct filter_run *fr, uint32_t linktype)
{
	if (!fr->expr)
		return fr->prog;
	if (fr->forced_linktype >= 0)
		linktype = (uint32_t)fr->forced_linktype;
	for (int i = 0; i < fr->nprogs; i++)
		if (fr->progs[i].linktype == linktype)
			return &fr->progs[i].prog;
	if (fr->nprogs == FILTER_MAX_LINKTYPES) {
		fprintf(stderr, "bpfkit: error: more than %d link types in one capture\n",
			FILTER_MAX_LINKTYPES);
		return NULL;
	}
	struct bpfkit_error err;
	struct bpfkit_compile_opts opts = fr->opts;
	opts.linktype = (int)linktype;
	struct bpfkit_prog *prog = &fr->progs[fr->nprogs].prog;
	if (bpfkit_compile(fr->expr->data, &opts, prog, &err) != 0) {
		report_compile_error(fr->expr, &err);
		return NULL;
	}
	fr->progs[fr->nprogs++].linktype = linktype;
	return prog;
}

/* Runs the program on every packet, writing the matches; an exit status. */
static int filter_packets(struct filter_run *fr)
{
	struct progress pr;
	progress_init(&pr);
	uint64_t seen = 0, matched = 0;
	struct bpfkit_packet pkt;
	struct bpfkit_error err;
	int r, rc = EXIT_OK;
	while ((r = bpfkit_capture_next(fr->cap, &pkt, &err)) == 1) {
		if (!fr->have_first) {
			fr->first_iface = *bpfkit_capture_iface(fr->cap, 0);
			fr->have_first = true;
		}
		const struct bpfkit_prog *prog = filter_prog_for(fr, pkt.linktype);
		if (!prog) {
			rc = EXIT_INPUT;
			break;
		}
		if (fr->engine->run(prog, pkt.data, pkt.caplen, pkt.wirelen, NULL) != 0) {
			matched++;
			/* As tcpdump -w: the whole captured packet, whatever the snap value. */
			if (fr->wr && bpfkit_capture_write(fr->wr, &pkt, &err) != 0) {
				rc = input_error(fr->out_name, "%s", err.message);
				break;
			}
		}
		if (pr.on && (++seen & (PROGRESS_EVERY - 1)) == 0)
			progress_tick(&pr, bpfkit_capture_packets(fr->cap), matched);
	}
	progress_done(&pr);
	fr->matched = matched;
	if (r < 0 && rc == EXIT_OK)
		rc = capture_error(fr->in_name, &err);
	/* A pcapng file may declare interfaces and hold no packet. */
	if (!fr->have_first && bpfkit_capture_iface_count(fr->cap) > 0) {
		fr->first_iface = *bpfkit_capture_iface(fr->cap, 0);
		fr->have_first = true;
	}
	return rc;
}

/* run(arg) over a mapped file: SIGBUS (the file shrank) becomes an error naming it. */
static int run_mapped(const char *name, int (*run)(void *), void *arg)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigbus;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	int rc;
	if (sigsetjmp(sigbus_jump, 1) != 0)
		rc = input_error(name, "the file shrank while it was being read");
	else
		rc = run(arg);
	sigaction(SIGBUS, &old, NULL);
	return rc;
}

static int filter_packets_cb(void *fr)
{
	return filter_packets(fr);
}

static int cmd_filter(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"read", required_argument, NULL, 'r'},
		{"write", required_argument, NULL, 'w'},
		{"count", no_argument, NULL, 'c'},
		{"engine", required_argument, NULL, 'e'},
		{"linktype", required_argument, NULL, 'l'},
		{"program", required_argument, NULL, 'p'},
		{"blind", no_argument, NULL, 'B'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const struct engine *engine = NULL; /* default: jit, else fast, else interp */
	const char *in_path = NULL, *out_path = NULL, *progfile = NULL;
	bool count = false;
	int c, rc, forced_linktype = -1, optimize = 2;
	reset_options();
	while ((c = next_option(cmd, argc, argv, ":r:w:ce:l:O:p:hB", longopts)) != -1) {
		switch (c) {
		case 'r': in_path = optarg; break;
		case 'w': out_path = optarg; break;
		case 'c': count = true; break;
		case 'B': jit_flags = BPFKIT_JIT_BLIND; break;
		case 'p': progfile = optarg; break;
		case 'e':
			engine = NULL;
			for (size_t i = 0; i < NENGINES; i++)
				if (strcmp(engines[i].name, optarg) == 0)
					engine = &engines[i];
			if (!engine)
				return usage_error(cmd, "unknown engine '%s'", optarg);
			break;
		case 'l':
			if ((forced_linktype = parse_linktype(optarg)) < 0)
				return usage_error(cmd, "unknown link type '%s' (a name such as "
						   "EN10MB, RAW or LINUX_SLL, or a number)", optarg);
			break;
		case 'O':
			if (strcmp(optarg, "0") && strcmp(optarg, "1") && strcmp(optarg, "2"))
				return usage_error(cmd, "-O takes 0, 1 or 2, not '%s'", optarg);
			optimize = optarg[0] - '0';
			break;
		case 'h':
			return show_help(cmd);
		default:
			return EXIT_USAGE;
		}
	}
	if (progfile && optind < argc)
		return usage_error(cmd, "give either -p PROGFILE or an expression, not both");
	struct input expr_in = {.name = "<expression>"};
	if (engine && !engine->run)
		return usage_error(cmd, "engine '%s' is not available yet", engine->name);
	if (is_stdio(in_path) && progfile && is_stdio(progfile))
		return usage_error(cmd, "the program and the capture cannot both be standard "
				   "input");
	if (out_path && is_stdio(out_path) && isatty(STDOUT_FILENO))
		return usage_error(cmd, "refusing to write a capture to a terminal; use -w FILE "
				   "or redirect standard output");
	/* No -w: the count is the output. */
	if (!out_path)
		count = true;

	/* No program and no expression: every packet matches, as in tcpdump. */
	struct bpfkit_insn accept_all = {BPFKIT_RET | BPFKIT_K, 0, 0, UINT32_MAX};
	struct bpfkit_prog prog = {&accept_all, 1};
	struct input prog_in = {NULL, NULL, 0};
	if (progfile && (rc = load_program(progfile, &prog_in, &prog)) != EXIT_OK)
		return rc;
	struct bpfkit_error perr;
	if (!engine)
		engine = jit_ready(&prog, false, NULL) == 0    ? &engines[2]
			 : fast_ready(&prog, false, NULL) == 0 ? &engines[1]
							       : &engines[0];
	else if ((engine->run == run_fast && fast_ready(&prog, false, &perr) != 0) ||
		 (engine->run == run_jit && jit_ready(&prog, false, &perr) != 0)) {
		rc = input_error(progfile, "instruction %ld: the %s engine refuses the "
				 "program: %s", perr.insn, engine->name, perr.message);
		if (progfile)
			bpfkit_prog_free(NULL, &prog);
		free_input(&prog_in);
		return rc;
	}

	if (!progfile && optind < argc) {
		/* no program was loaded: nothing else to free on this path */
		expr_in.data = join_words(argc - optind, argv + optind);
		if (!expr_in.data)
			return input_error("bpfkit", "out of memory");
		expr_in.len = strlen(expr_in.data);
	}
	struct capture_input in;
	struct output out = {NULL, NULL, -1, 0};
	struct bpfkit_error err;
	bool out_open = false;
	struct filter_run fr;
	memset(&fr, 0, sizeof fr);
	fr.engine = engine;
	fr.prog = &prog;
	fr.expr = expr_in.data ? &expr_in : NULL;
	fr.opts.optimize = optimize;
	fr.forced_linktype = forced_linktype;
	if ((rc = capture_input_open(in_path, &in, &fr.cap)) != EXIT_OK)
		goto done;
	fr.in_name = in.name;
	if (out_path) {
		if ((rc = output_open(out_path, &out)) != EXIT_OK)
			goto done;
		out_open = true;
		fr.out_name = out.path;
		if (bpfkit_capture_writer_open_fd(bpfkit_capture_header(fr.cap), out.fd, NULL,
						  &fr.wr, &err) != 0) {
			rc = input_error(out.path, "%s", err.message);
			goto done;
		}
	}

	rc = in.map ? run_mapped(fr.in_name, filter_packets_cb, &fr) : filter_packets(&fr);

	if (rc == EXIT_OK && fr.wr && fr.matched == 0 && fr.have_first &&
	    bpfkit_capture_writer_iface(fr.wr, &fr.first_iface, &err) != 0)
		rc = input_error(out.path, "%s", err.message);
	if (fr.wr) {
		if (bpfkit_capture_writer_close(fr.wr, &err) != 0 && rc == EXIT_OK)
			rc = input_error(out.path, "%s", err.message);
		fr.wr = NULL;
	}
	if (rc == EXIT_OK && out_open) {
		out_open = false;
		rc = output_commit(&out);
	}
	if (rc == EXIT_OK && count) {
		/* With -w - the packets own standard output: the count goes to stderr. */
		FILE *f = out_path && is_stdio(out_path) ? stderr : stdout;
		fprintf(f, "%llu\n", (unsigned long long)fr.matched);
		if (fflush(f) != 0)
			rc = input_error("<stdout>", "%s", strerror(errno));
	}
done:
	if (fr.wr)
		bpfkit_capture_writer_close(fr.wr, NULL);
	if (out_open)
		output_abort(&out);
	if (fr.cap)
		bpfkit_capture_close(fr.cap);
	capture_input_close(&in);
	if (progfile) {
		bpfkit_prog_free(NULL, &prog);
		free_input(&prog_in);
	}
	for (int i = 0; i < fr.nprogs; i++)
		bpfkit_prog_free(NULL, &fr.progs[i].prog);
	free(expr_in.data);
	return rc;
}

/* ------------------------------------------------------------------ */
/* gen                                                                 */

/* The snaplen written into generated captures unless -s says otherwise (tcpdump's default). */
#define GEN_DEFAULT_SNAPLEN 262144u

static int cmd_gen(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"linktype", required_argument, NULL, 'l'},
		{"count", required_argument, NULL, 'n'},
		{"seed", required_argument, NULL, 'S'},
		{"snaplen", required_argument, NULL, 's'},
		{"write", required_argument, NULL, 'w'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	uint32_t linktype = 1, snaplen = 0;
	unsigned long long count = 1000, seed = 1;
	const char *out_path = NULL;
	char *end;
	long lt;
	int c;
	reset_options();
	while ((c = next_option(cmd, argc, argv, ":l:n:S:s:w:h", longopts)) != -1) {
		switch (c) {
		case 'l':
			if ((lt = parse_linktype(optarg)) < 0)
				return usage_error(cmd, "unknown link type '%s'", optarg);
			if (!bpfkit_gen_supported((uint32_t)lt))
				return usage_error(cmd, "cannot generate link type '%s' (EN10MB, "
						   "RAW, LINUX_SLL or NULL)", optarg);
			linktype = (uint32_t)lt;
			break;
		case 'n':
		case 'S':
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 0);
			if (!(*optarg >= '0' && *optarg <= '9') || *end || errno)
				return usage_error(cmd, "-%c: '%s' is not a number", c, optarg);
			*(c == 'n' ? &count : &seed) = v;
			break;
		case 's':
			if (parse_u32(optarg, &snaplen) != 0 || snaplen == 0)
				return usage_error(cmd, "-s: '%s' is not a snap length from 1 to %u",
						   optarg, UINT32_MAX);
			break;
		case 'w': out_path = optarg; break;
		case 'h':
			return show_help(cmd);
		default:
			return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!out_path)
		return usage_error(cmd, "missing -w OUT");
	if (is_stdio(out_path) && isatty(STDOUT_FILENO))
		return usage_error(cmd, "refusing to write a capture to a terminal; use -w FILE or "
				   "redirect standard output");

	struct bpfkit_error err;
	struct bpfkit_gen *gen;
	if (bpfkit_gen_new(linktype, seed, NULL, &gen, &err) != 0)
		return input_error("gen", "%s", err.message);
	if (snaplen)
		bpfkit_gen_set_snaplen(gen, snaplen);
	/* Nanosecond pcap: the generator's timestamps are kept exactly. */
	struct bpfkit_capture_header hdr = {
		.format = BPFKIT_CAPTURE_PCAP, .version_major = 2, .version_minor = 4,
		.snaplen = snaplen ? snaplen : GEN_DEFAULT_SNAPLEN,
		.linktype_field = linktype, .linktype = linktype, .fcslen = -1,
		.ts_units = 1000000000u,
	};
	size_t size = snaplen && snaplen < BPFKIT_GEN_MAX_FRAME ? snaplen : BPFKIT_GEN_MAX_FRAME;
	uint8_t *buf = malloc(size);
	struct output out;
	struct bpfkit_capture_writer *wr = NULL;
	int rc = buf ? output_open(out_path, &out) : input_error(out_path, "out of memory");
	if (rc != EXIT_OK) {
		free(buf);
		bpfkit_gen_free(gen);
		return rc;
	}
	if (bpfkit_capture_writer_open_fd(&hdr, out.fd, NULL, &wr, &err) != 0)
		rc = input_error(out.path, "%s", err.message);
	for (unsigned long long i = 0; rc == EXIT_OK && i < count; i++) {
		struct bpfkit_packet pkt;
		if (bpfkit_gen_next(gen, buf, size, &pkt, &err) != 0)
			rc = input_error("gen", "packet %llu: %s", i + 1, err.message);
		else if (bpfkit_capture_write(wr, &pkt, &err) != 0)
			rc = input_error(out.path, "%s", err.message);
	}
	if (wr && bpfkit_capture_writer_close(wr, &err) != 0 && rc == EXIT_OK)
		rc = input_error(out.path, "%s", err.message);
	if (rc == EXIT_OK)
		rc = output_commit(&out);
	else
		output_abort(&out);
	free(buf);
	bpfkit_gen_free(gen);
	return rc;
}

/* ------------------------------------------------------------------ */
/* bench                                                               */

/*
 * bpfkit bench: each filter on each engine over the same in-memory packets.
 * Every engine runs the same loop (BENCH_LOOP: one call per packet, the
 * verdict counted; the JIT through its raw function pointer); `null` is that
 * loop calling, through a pointer, a function that returns the packet's
 * length.  Packets go in cache-sized chunks, read once untimed, then run by
 * every engine in turn (order rotating each round); an engine's time is the
 * sum over chunks of its median over the rounds.  The command never links
 * libpcap, so the ratio is against the reference interpreter (bench/ has the
 * libpcap and DPDK comparison).
 */
enum { BENCH_NULL, BENCH_INTERP, BENCH_FAST, BENCH_JIT, BENCH_N };
static const char *const bench_names[BENCH_N] = {"null", "interp", "fast", "jit"};
#define BENCH_CHUNK_BYTES (256u << 10)
#define BENCH_MAX_ROUNDS 101

struct bench_pkt {
	const uint8_t *data;
	uint32_t caplen, wirelen;
};

static struct {
	struct bench_pkt *pkts;
	size_t npkts, cap;
	uint8_t *bytes;
	size_t nbytes, bytes_cap;
	const struct bpfkit_prog *prog;
	struct bpfkit_fast *fast;
	bpfkit_jit_fn jit;
} bench;

typedef uint32_t (*bench_fn)(size_t i);

static uint32_t bench_null(size_t i) { return bench.pkts[i].caplen; }
static uint32_t bench_interp(size_t i)
{
	const struct bench_pkt *p = &bench.pkts[i];
	return bpfkit_interp(bench.prog->insns, bench.prog->len, p->data, p->caplen, p->wirelen,
			     NULL);
}
static uint32_t bench_fast(size_t i)
{
	const struct bench_pkt *p = &bench.pkts[i];
	return bpfkit_fast_run(bench.fast, p->data, p->caplen, p->wirelen);
}
static uint32_t bench_jit(size_t i)
{
	const struct bench_pkt *p = &bench.pkts[i];
	return bench.jit(p->data, p->caplen, p->wirelen);
}
static const bench_fn bench_fns[BENCH_N] = {bench_null, bench_interp, bench_fast, bench_jit};

static volatile uint32_t bench_sink;

static double bench_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* The timed loop, one copy per engine, over packets [begin, end); ns. */
#define BENCH_LOOP(name, CALL)							\
	__attribute__((noinline)) static double name(size_t begin, size_t end)	\
	{									\
		uint32_t matched = 0;						\
		double t0 = bench_ns();						\
		for (size_t i = begin; i < end; i++) {				\
			const struct bench_pkt *p = &bench.pkts[i];		\
			matched += (CALL) != 0;					\
		}								\
		double t = bench_ns() - t0;					\
		bench_sink += matched;						\
		return t;							\
	}

__attribute__((noinline)) static uint32_t bench_len(const uint8_t *pkt, uint32_t caplen,
						    uint32_t wirelen)
{
	(void)pkt;
	(void)wirelen;
	return caplen;
}
static bpfkit_jit_fn volatile bench_null_fn = bench_len;

BENCH_LOOP(bench_loop_null, bench_null_fn(p->data, p->caplen, p->wirelen))
BENCH_LOOP(bench_loop_interp, bpfkit_interp(bench.prog->insns, bench.prog->len, p->data,
					    p->caplen, p->wirelen, NULL))
BENCH_LOOP(bench_loop_fast, bpfkit_fast_run(bench.fast, p->data, p->caplen, p->wirelen))
BENCH_LOOP(bench_loop_jit, bench.jit(p->data, p->caplen, p->wirelen))

typedef double (*bench_loop_fn)(size_t begin, size_t end);
static const bench_loop_fn bench_loops[BENCH_N] = {
	bench_loop_null, bench_loop_interp, bench_loop_fast, bench_loop_jit
};

/* Copies a packet in (offsets until all are read: the buffer moves). */
static int bench_add(const uint8_t *data, uint32_t caplen, uint32_t wirelen)
{
	if (bench.npkts == bench.cap) {
		size_t n = bench.cap ? bench.cap * 2 : 65536;
		struct bench_pkt *p = realloc(bench.pkts, n * sizeof *p);
		if (!p)
			return -1;
		bench.pkts = p;
		bench.cap = n;
	}
	if (caplen > bench.bytes_cap - bench.nbytes) {
		size_t n = (bench.bytes_cap ? bench.bytes_cap * 2 : (size_t)16 << 20) + caplen;
		uint8_t *b = realloc(bench.bytes, n);
		if (!b)
			return -1;
		bench.bytes = b;
		bench.bytes_cap = n;
	}
	memcpy(bench.bytes + bench.nbytes, data, caplen);
	bench.pkts[bench.npkts].data = (const uint8_t *)(uintptr_t)bench.nbytes;
	bench.pkts[bench.npkts].caplen = caplen;
	bench.pkts[bench.npkts++].wirelen = wirelen;
	bench.nbytes += caplen;
	return 0;
}

/* The packets: the capture's (those of its first link type) or generated ones. */
static int bench_load(const char *path, unsigned long long count, uint32_t *linktype)
{
	struct bpfkit_error err;
	int rc = EXIT_OK, r;
	*linktype = 1;
	if (!path) {
		static uint8_t buf[BPFKIT_GEN_MAX_FRAME];
		struct bpfkit_gen *g;
		struct bpfkit_packet p;
		if (bpfkit_gen_new(1, 1, NULL, &g, &err) != 0)
			return input_error("gen", "%s", err.message);
		for (unsigned long long i = 0; rc == EXIT_OK && i < count; i++)
			if (bpfkit_gen_next(g, buf, sizeof buf, &p, &err) != 0)
				rc = input_error("gen", "%s", err.message);
			else if (bench_add(p.data, p.caplen, p.wirelen) != 0)
				rc = input_error("bench", "out of memory");
		bpfkit_gen_free(g);
	} else {
		struct capture_input ci;
		struct bpfkit_capture *cap;
		struct bpfkit_packet p;
		if ((rc = capture_input_open(path, &ci, &cap)) != EXIT_OK)
			return rc;
		bool first = true;
		while (rc == EXIT_OK && (r = bpfkit_capture_next(cap, &p, &err)) != 0) {
			if (r < 0)
				rc = capture_error(ci.name, &err);
			else if (first || p.linktype == *linktype) {
				*linktype = p.linktype;
				first = false;
				if (bench_add(p.data, p.caplen, p.wirelen) != 0)
					rc = input_error("bench", "out of memory");
			}
		}
		bpfkit_capture_close(cap);
		capture_input_close(&ci);
	}
	for (size_t i = 0; i < bench.npkts; i++)
		bench.pkts[i].data = bench.bytes + (uintptr_t)bench.pkts[i].data;
	if (rc == EXIT_OK && bench.npkts == 0)
		rc = input_error(path ? path : "gen", "no packets");
	return rc;
}

static int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ns per packet for each engine in have[], chunk by chunk (see above). */
static void bench_time(const bool *have, int rounds, double *ns)
{
	double t[BENCH_N][BENCH_MAX_ROUNDS];
	size_t begin = 0;
	for (int e = 0; e < BENCH_N; e++)
		ns[e] = 0;
	while (begin < bench.npkts) {
		size_t end = begin, bytes = 0;
		while (end < bench.npkts && (end == begin || bytes < BENCH_CHUNK_BYTES))
			bytes += bench.pkts[end++].caplen + 64;
		for (int r = 0; r < rounds; r++) {
			uint32_t touch = 0;
			for (size_t i = begin; i < end; i++)
				for (uint32_t o = 0; o < bench.pkts[i].caplen; o += 64)
					touch += bench.pkts[i].data[o];
			bench_sink += touch;
			for (int k = 0; k < BENCH_N; k++) {
				int e = (k + r) % BENCH_N;
				if (have[e])
					t[e][r] = bench_loops[e](begin, end);
			}
		}
		for (int e = 0; e < BENCH_N; e++) {
			if (!have[e])
				continue;
			qsort(t[e], (size_t)rounds, sizeof t[e][0], bench_cmp);
			ns[e] += t[e][rounds / 2];
		}
		begin = end;
	}
	for (int e = 0; e < BENCH_N; e++)
		ns[e] /= (double)bench.npkts;
}

/* One filter: compile, prepare, check every engine against interp, time, print. */
static int bench_filter(const char *expr, uint32_t linktype, int rounds, bool tsv)
{
	struct bpfkit_compile_opts opts = {.linktype = (int)linktype, .optimize = 2};
	struct bpfkit_prog prog = {NULL, 0};
	struct bpfkit_error err;
	struct bpfkit_jit *jit = NULL;
	if (bpfkit_compile(expr, &opts, &prog, &err) != 0) {
		struct input in = {.name = "<expression>", .data = (char *)expr,
				   .len = strlen(expr)};
		report_compile_error(&in, &err);
		return EXIT_INPUT;
	}
	bool have[BENCH_N] = {true, true, false, false};
	bench.prog = &prog;
	bench.fast = NULL;
	if (bpfkit_fast_prepare(prog.insns, prog.len, 0, NULL, &bench.fast, &err) == 0)
		have[BENCH_FAST] = true;
	if (bpfkit_jit_available() &&
	    bpfkit_jit_compile(prog.insns, prog.len, jit_flags, NULL, &jit, &err) == 0) {
		bench.jit = bpfkit_jit_function(jit);
		have[BENCH_JIT] = true;
	}
	for (int e = BENCH_FAST; e < BENCH_N; e++)
		for (size_t i = 0; have[e] && i < bench.npkts; i++)
			if (bench_fns[e](i) != bench_interp(i)) {
				fprintf(stderr, "bpfkit: bench: '%s': %s disagrees with interp on "
					"packet %zu; left out\n", expr, bench_names[e], i + 1);
				have[e] = false;
			}
	double ns[BENCH_N];
	bench_time(have, rounds, ns);
	if (!tsv)
		printf("%s\n", expr);
	for (int e = 0; e < BENCH_N; e++) {
		if (!have[e])
			continue;
		if (tsv)
			printf("%s\t%s\t%.2f\t%.2f\n", expr, bench_names[e], ns[e],
			       ns[BENCH_INTERP] / ns[e]);
		else
			printf("  %-8s %9.2f ns/packet %7.2fx interp\n", bench_names[e], ns[e],
			       ns[BENCH_INTERP] / ns[e]);
	}
	fflush(stdout);
	bpfkit_fast_free(bench.fast);
	bpfkit_jit_free(jit);
	bpfkit_prog_free(NULL, &prog);
	return EXIT_OK;
}

/* The classic tcpdump filters; the last, a 50-port list, is built at run time. */
static const char *const bench_defaults[] = {
	"tcp port 80", "host 10.0.0.1 and port 53", "net 10.0.0.0/8",
	"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn", "vlan and tcp", "ip6 and tcp",
};
static const int bench_ports[50] = {
	20, 21, 22, 23, 25, 53, 67, 68, 69, 80, 88, 110, 111, 119, 123, 135, 137, 138, 139,
	143, 161, 162, 179, 389, 443, 445, 465, 500, 514, 515, 520, 587, 631, 636, 873, 993,
	995, 1080, 1194, 1433, 1521, 1723, 1812, 1813, 2049, 3306, 3389, 5060, 5432, 8080,
};

enum { OPT_TSV = 300 };

static int cmd_bench(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"read", required_argument, NULL, 'r'},
		{"count", required_argument, NULL, 'n'},
		{"rounds", required_argument, NULL, 'R'},
		{"tsv", no_argument, NULL, OPT_TSV},
		{"blind", no_argument, NULL, 'B'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	const char *path = NULL;
	unsigned long long count = 100000;
	uint32_t rounds = 9;
	bool tsv = false, count_set = false;
	char *end;
	int c;
	reset_options();
	while ((c = next_option(cmd, argc, argv, ":r:n:R:hB", longopts)) != -1) {
		switch (c) {
		case 'r': path = optarg; break;
		case 'B': jit_flags = BPFKIT_JIT_BLIND; break;
		case 'n':
			errno = 0;
			count = strtoull(optarg, &end, 10);
			if (!(*optarg >= '0' && *optarg <= '9') || *end || errno || count == 0)
				return usage_error(cmd, "-n: '%s' is not a packet count", optarg);
			count_set = true;
			break;
		case 'R':
			if (parse_u32(optarg, &rounds) != 0 || rounds < 1 ||
			    rounds > BENCH_MAX_ROUNDS)
				return usage_error(cmd, "-R: '%s' is not a number from 1 to %d",
						   optarg, BENCH_MAX_ROUNDS);
			break;
		case OPT_TSV: tsv = true; break;
		case 'h':
			return show_help(cmd);
		default:
			return EXIT_USAGE;
		}
	}
	if (path && count_set)
		return usage_error(cmd, "-n applies to generated packets, not with -r");
	uint32_t linktype;
	int rc = bench_load(path, count, &linktype);
	if (rc == EXIT_OK && !tsv)
		printf("%zu packets (%s), %u rounds; ns per packet and speed-up over the "
		       "reference interpreter\n", bench.npkts,
		       path ? path : "generated, EN10MB, seed 1", rounds);
	else if (rc == EXIT_OK)
		printf("filter\tengine\tns_per_packet\tratio_vs_interp\n");
	if (optind < argc) {
		for (int i = optind; rc == EXIT_OK && i < argc; i++)
			rc = bench_filter(argv[i], linktype, (int)rounds, tsv);
	} else {
		char ports[50 * 12];
		size_t n = 0;
		for (int i = 0; i < 50; i++)
			n += (size_t)snprintf(ports + n, sizeof ports - n, "%sport %d",
					      i ? " or " : "", bench_ports[i]);
		size_t nd = sizeof bench_defaults / sizeof bench_defaults[0];
		for (size_t i = 0; rc == EXIT_OK && i <= nd; i++)
			rc = bench_filter(i < nd ? bench_defaults[i] : ports, linktype, (int)rounds,
					  tsv);
	}
	free(bench.pkts);
	free(bench.bytes);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Commands not built yet, help                                        */

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* compile                                                             */

/* Joins the operands with single spaces (tcpdump's rule), or NULL on failure. */
static char *join_words(int argc, char **argv)
{
	size_t n = 1;
	for (int i = 0; i < argc; i++)
		n += strlen(argv[i]) + 1;
	char *s = malloc(n), *p = s;
	if (!s)
		return NULL;
	*p = 0;
	for (int i = 0; i < argc; i++)
		p += sprintf(p, "%s%s", i ? " " : "", argv[i]);
	return s;
}

static int cmd_compile(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"linktype", required_argument, NULL, 'l'},
		{"snaplen", required_argument, NULL, 's'},
		{"format", required_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"dump-ir", required_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	struct bpfkit_compile_opts opts = {.linktype = 1, .optimize = 2};
	enum bpfkit_format fmt = BPFKIT_FMT_LISTING;
	const char *out = NULL, *exprfile = NULL, *dump = NULL;
	int c, rc;
	uint32_t u;
	reset_options();
	while ((c = next_option(cmd, argc, argv, ":l:s:O:f:F:o:h", longopts)) != -1) {
		switch (c) {
		case 'l':
			if ((opts.linktype = bpfkit_linktype_parse(optarg)) < 0)
				return usage_error(cmd, "unknown link type '%s'", optarg);
			break;
		case 's':
			if (parse_u32(optarg, &u) != 0 || u == 0)
				return usage_error(cmd, "bad snapshot length '%s'", optarg);
			opts.snaplen = u;
			break;
		case 'O':
			if (strlen(optarg) != 1 || optarg[0] < '0' || optarg[0] > '2')
				return usage_error(cmd, "-O takes 0, 1 or 2");
			opts.optimize = optarg[0] - '0';
			break;
		case 'f':
			if ((rc = parse_out_format(cmd, optarg, &fmt)) != EXIT_OK)
				return rc;
			break;
		case 'F':
			exprfile = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'D': {
			bool known = false;
			for (const char *const *p = bpfkit_compile_passes(); *p; p++)
				known |= !strcmp(*p, optarg);
			if (!known)
				return usage_error(cmd, "unknown pass '%s' for --dump-ir", optarg);
			dump = optarg;
			break;
		}
		case 'h':
			return show_help(cmd);
		default:
			return EXIT_USAGE;
		}
	}
	if (!dump && (rc = check_binary_to_tty(cmd, fmt, out)) != EXIT_OK)
		return rc;
	struct input in = {.name = "<expression>"};
	if (exprfile) {
		if (optind < argc)
			return usage_error(cmd, "-F and an expression on the command line");
		if ((rc = read_input(exprfile, &in)) != EXIT_OK)
			return rc;
	} else {
		if (optind >= argc)
			return usage_error(cmd, "missing filter expression");
		in.data = join_words(argc - optind, argv + optind);
		if (!in.data)
			return input_error("bpfkit", "out of memory");
		in.len = strlen(in.data);
	}
	struct bpfkit_prog prog = {NULL, 0};
	struct bpfkit_error err;
	char *ir = NULL;
	if (dump ? bpfkit_compile_dump(in.data, &opts, dump, &ir, &err) != 0
		 : bpfkit_compile(in.data, &opts, &prog, &err) != 0) {
		if (err.column > 0) {
			fprintf(stderr, "bpfkit: error: %d:%d: %s\n", err.line > 0 ? err.line : 1,
				err.column, err.message);
			show_source_line(&in, err.line > 0 ? err.line : 1, err.column, err.span);
		} else {
			fprintf(stderr, "bpfkit: error: %s\n", err.message);
		}
		rc = EXIT_INPUT;
	} else if (dump) {
		rc = write_output(out, ir, strlen(ir));
	} else {
		rc = emit_program(&in, &prog, fmt, out);
	}
	bpfkit_free(NULL, ir);
	bpfkit_prog_free(NULL, &prog);
	if (exprfile)
		free_input(&in);
	else
		free(in.data);
	return rc;
}

/* ------------------------------------------------------------------ */
/* multi                                                               */

/* One rule of a RULES file: ID and expression, with where each starts. */
struct multi_rule {
	char *id, *expr;
	int line, id_col, expr_col;
};

/* Up to this many link types in one capture, each with its own compiled rule set. */
#define MULTI_MAX_LINKTYPES 8
#define MULTI_BATCH 256
#define MULTI_BATCH_BYTES (4u << 20)

struct multi_set {
	uint32_t linktype;
	struct bpfkit_prog *progs;
	struct bpfkit_multi *m;
	struct bpfkit_multi_state *st;
};

/* A --split output: packets buffered in memory, appended to a temporary file. */
struct multi_split {
	char *tmp, *final;
	char *buf;
	size_t len, cap;
	bool failed;
	struct bpfkit_capture_writer *wr;
};

struct multi_run {
	const struct command *cmd;
	struct input rules_in;
	struct multi_rule *rules;
	size_t nrules;
	unsigned flags;
	struct multi_set sets[MULTI_MAX_LINKTYPES];
	int nsets;
	struct bpfkit_capture *cap;
	const char *in_name;
	int mode; /* 'c' counts, 'm' matches, 's' split */
	uint64_t *counts;
	struct multi_split *split;
	const char *split_dir;
	bool made_dir;
	uint64_t packets;
	double ns;
	struct bpfkit_capture_iface first_iface;
	bool have_first;
};

static bool multi_id_safe(const char *id)
{
	if (id[0] == '.' || strlen(id) > 200)
		return false;
	for (const char *p = id; *p; p++)
		if (*p == '/' || (unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static int multi_rule_error(struct multi_run *mr, int line, int col, int span, const char *msg)
{
	struct bpfkit_error e = {.line = line, .column = col, .span = span, .insn = -1,
				 .offset = -1};
	size_t len = strlen(msg);
	if (len >= sizeof e.message)
		len = sizeof e.message - 1;
	memcpy(e.message, msg, len);
	e.message[len] = '\0';
	return report(&mr->rules_in, &e);
}

/* Splits the RULES file into rules; IDs unique (and safe as file names with --split). */
static int multi_parse_rules(struct multi_run *mr)
{
	const char *p = mr->rules_in.data, *end = p + mr->rules_in.len;
	size_t cap = 0;
	for (int line = 1; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *next = nl ? nl + 1 : end;
		if (eol > p && eol[-1] == '\r')
			eol--;
		const char *s = p;
		while (s < eol && (*s == ' ' || *s == '\t'))
			s++;
		if (s == eol || *s == '#') {
			p = next;
			continue;
		}
		const char *id = s;
		while (s < eol && *s != ' ' && *s != '\t')
			s++;
		int id_col = (int)(id - p) + 1, id_len = (int)(s - id);
		while (s < eol && (*s == ' ' || *s == '\t'))
			s++;
		const char *e = eol;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (e == s)
			return multi_rule_error(mr, line, id_col, id_len,
						"rule has no expression (want: ID EXPRESSION)");
		if (mr->nrules == cap) {
			cap = cap ? cap * 2 : 64;
			struct multi_rule *r = realloc(mr->rules, cap * sizeof *r);
			if (!r)
				return input_error(mr->rules_in.name, "out of memory");
			mr->rules = r;
		}
		struct multi_rule *r = &mr->rules[mr->nrules];
		*r = (struct multi_rule){strndup(id, (size_t)id_len), strndup(s, (size_t)(e - s)),
					 line, id_col, (int)(s - p) + 1};
		if (!r->id || !r->expr || memchr(id, '\0', (size_t)(e - id))) {
			bool nul = r->id && r->expr;
			free(r->id);
			free(r->expr);
			if (nul)
				return multi_rule_error(mr, line, id_col, id_len,
							"NUL byte in rule");
			return input_error(mr->rules_in.name, "out of memory");
		}
		mr->nrules++;
		char msg[300];
		if (mr->split_dir && !multi_id_safe(r->id)) {
			snprintf(msg, sizeof msg, "rule ID '%.200s' cannot name a file in --split "
				 "DIR (no '/', no leading '.', no control characters)", r->id);
			return multi_rule_error(mr, line, id_col, id_len, msg);
		}
		for (size_t i = 0; i + 1 < mr->nrules; i++)
			if (strcmp(mr->rules[i].id, r->id) == 0) {
				snprintf(msg, sizeof msg, "duplicate rule ID '%.200s' (first on line "
					 "%d)", r->id, mr->rules[i].line);
				return multi_rule_error(mr, line, id_col, id_len, msg);
			}
		p = next;
	}
	if (mr->nrules == 0)
		return input_error(mr->rules_in.name, "no rules");
	return EXIT_OK;
}

/*
 * The matcher for packets of linktype: every rule compiled and the matcher
 * built on first use.  A rule that does not compile is reported at its
 * RULES:LINE:COL.  NULL after an error (reported).
 */
static struct multi_set *multi_set_for(struct multi_run *mr, uint32_t linktype)
{
	for (int i = 0; i < mr->nsets; i++)
		if (mr->sets[i].linktype == linktype)
			return &mr->sets[i];
	if (mr->nsets == MULTI_MAX_LINKTYPES) {
		input_error(mr->in_name, "more than %d link types in one capture",
			    MULTI_MAX_LINKTYPES);
		return NULL;
	}
	struct multi_set *set = &mr->sets[mr->nsets];
	memset(set, 0, sizeof *set);
	set->linktype = linktype;
	set->progs = calloc(mr->nrules, sizeof *set->progs);
	if (!set->progs) {
		input_error("bpfkit", "out of memory");
		return NULL;
	}
	mr->nsets++;
	struct bpfkit_compile_opts opts = {.linktype = (int)linktype, .optimize = 2};
	struct bpfkit_error err;
	for (size_t i = 0; i < mr->nrules; i++) {
		const struct multi_rule *r = &mr->rules[i];
		if (bpfkit_compile(r->expr, &opts, &set->progs[i], &err) != 0) {
			if (err.column > 0) {
				err.column += r->expr_col - 1;
				err.line = r->line;
			} else {
				char msg[sizeof err.message + 64];
				snprintf(msg, sizeof msg, "rule '%.40s': %s", r->id, err.message);
				multi_rule_error(mr, r->line, r->expr_col, (int)strlen(r->expr),
						 msg);
				return NULL;
			}
			report(&mr->rules_in, &err);
			return NULL;
		}
	}
	if (bpfkit_multi_build(set->progs, mr->nrules, mr->flags, NULL, &set->m, &err) != 0 ||
	    bpfkit_multi_state_new(set->m, NULL, &set->st, &err) != 0) {
		input_error(mr->rules_in.name, "%s", err.message);
		return NULL;
	}
	return set;
}

static int multi_split_flush(struct multi_split *s)
{
	if (s->len == 0 || s->failed)
		return s->failed ? -1 : 0;
	int fd = open(s->tmp, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0 || write_all(fd, s->buf, s->len) != 0)
		s->failed = true;
	if (fd >= 0 && close(fd) != 0)
		s->failed = true;
	s->len = 0;
	return s->failed ? -1 : 0;
}

static int multi_split_write(void *ctx, const void *data, size_t len)
{
	struct multi_split *s = ctx;
	if (s->failed)
		return -1;
	if (len > s->cap - s->len) {
		if (multi_split_flush(s) != 0)
			return -1;
		if (len > s->cap) {
			size_t n = len > 65536 ? len : 65536;
			char *b = realloc(s->buf, n);
			if (!b)
				return -1;
			s->buf = b;
			s->cap = n;
		}
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	if (s->len >= 65536)
		return multi_split_flush(s);
	return 0;
}

/* Temporary files DIR/.ID.EXT.XXXXXX for every rule. */
static int multi_split_open(struct multi_run *mr)
{
	struct stat st;
	if (stat(mr->split_dir, &st) != 0) {
		if (mkdir(mr->split_dir, 0777) != 0)
			return input_error(mr->split_dir, "%s", strerror(errno));
		mr->made_dir = true;
	} else if (!S_ISDIR(st.st_mode)) {
		return input_error(mr->split_dir, "not a directory");
	}
	mr->split = calloc(mr->nrules, sizeof *mr->split);
	if (!mr->split)
		return input_error("bpfkit", "out of memory");
	const struct bpfkit_capture_header *hdr = bpfkit_capture_header(mr->cap);
	const char *ext = hdr->format == BPFKIT_CAPTURE_PCAPNG ? "pcapng" : "pcap";
	struct bpfkit_error err;
	for (size_t i = 0; i < mr->nrules; i++) {
		struct multi_split *s = &mr->split[i];
		size_t n = strlen(mr->split_dir) + strlen(mr->rules[i].id) + 32;
		s->tmp = malloc(n);
		s->final = malloc(n);
		if (!s->tmp || !s->final)
			return input_error("bpfkit", "out of memory");
		snprintf(s->final, n, "%s/%s.%s", mr->split_dir, mr->rules[i].id, ext);
		snprintf(s->tmp, n, "%s/.%s.%s.XXXXXX", mr->split_dir, mr->rules[i].id, ext);
		int fd = mkstemp(s->tmp);
		if (fd < 0) {
			int e = errno;
			s->tmp[0] = '\0';
			return input_error(s->final, "%s", strerror(e));
		}
		close(fd);
		if (bpfkit_capture_writer_open(hdr, multi_split_write, s, NULL, &s->wr, &err) != 0)
			return input_error(s->final, "%s", err.message);
	}
	return EXIT_OK;
}

/* Closes every split output; renames them into place when rc is EXIT_OK, else removes. */
static int multi_split_close(struct multi_run *mr, int rc)
{
	struct bpfkit_error err;
	mode_t mask = umask(0);
	umask(mask);
	for (size_t i = 0; mr->split && i < mr->nrules; i++) {
		struct multi_split *s = &mr->split[i];
		if (s->wr) {
			if (rc == EXIT_OK && mr->have_first &&
			    bpfkit_capture_writer_iface(s->wr, &mr->first_iface, &err) != 0)
				rc = input_error(s->final, "%s", err.message);
			if (bpfkit_capture_writer_close(s->wr, &err) != 0 && rc == EXIT_OK)
				rc = input_error(s->final, "%s", err.message);
			s->wr = NULL;
		}
		if (rc == EXIT_OK && (multi_split_flush(s) != 0 ||
				      chmod(s->tmp, 0666 & ~mask) != 0))
			rc = input_error(s->final, "%s", strerror(errno));
	}
	for (size_t i = 0; mr->split && i < mr->nrules; i++) {
		struct multi_split *s = &mr->split[i];
		if (rc == EXIT_OK && s->tmp && rename(s->tmp, s->final) != 0)
			rc = input_error(s->final, "%s", strerror(errno));
	}
	for (size_t i = 0; mr->split && i < mr->nrules; i++) {
		struct multi_split *s = &mr->split[i];
		if (rc != EXIT_OK && s->tmp && s->tmp[0])
			unlink(s->tmp);
		free(s->tmp);
		free(s->final);
		free(s->buf);
	}
	if (rc != EXIT_OK && mr->made_dir)
		rmdir(mr->split_dir);
	free(mr->split);
	mr->split = NULL;
	return rc;
}

static double multi_now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* A batch of packets copied out of the reader, matched in one timed loop. */
struct multi_batch {
	struct bpfkit_packet pkt[MULTI_BATCH];
	struct bpfkit_capture_iface iface[MULTI_BATCH];
	struct multi_set *set[MULTI_BATCH];
	size_t first_id[MULTI_BATCH + 1];
	uint8_t *bytes;
	size_t nbytes;
	uint32_t *ids;
	size_t nids, cap_ids;
	int n;
};

/* Matches the batch (timed), then counts, prints or writes every packet's rules. */
static int multi_flush_batch(struct multi_run *mr, struct multi_batch *bt)
{
	double t0 = multi_now_ns();
	bt->nids = 0;
	for (int i = 0; i < bt->n; i++) {
		const struct bpfkit_packet *p = &bt->pkt[i];
		const uint32_t *ids;
		size_t k = bpfkit_multi_match(bt->set[i]->m, bt->set[i]->st, p->data, p->caplen,
					      p->wirelen, &ids);
		bt->first_id[i] = bt->nids;
		if (k > bt->cap_ids - bt->nids) {
			size_t c = bt->cap_ids * 2 + k + 1024;
			uint32_t *n = realloc(bt->ids, c * sizeof *n);
			if (!n)
				return input_error("bpfkit", "out of memory");
			bt->ids = n;
			bt->cap_ids = c;
		}
		memcpy(bt->ids + bt->nids, ids, k * sizeof *ids);
		bt->nids += k;
	}
	bt->first_id[bt->n] = bt->nids;
	mr->ns += multi_now_ns() - t0;
	struct bpfkit_error err;
	for (int i = 0; i < bt->n; i++) {
		mr->packets++;
		size_t a = bt->first_id[i], b = bt->first_id[i + 1];
		if (mr->mode == 'm' && b > a) {
			printf("%llu\t", (unsigned long long)mr->packets);
			for (size_t j = a; j < b; j++)
				printf("%s%s", j > a ? " " : "", mr->rules[bt->ids[j]].id);
			putchar('\n');
		}
		for (size_t j = a; j < b; j++) {
			mr->counts[bt->ids[j]]++;
			if (mr->mode == 's') {
				struct multi_split *s = &mr->split[bt->ids[j]];
				if (bpfkit_capture_write(s->wr, &bt->pkt[i], &err) != 0)
					return input_error(s->final, "%s", s->failed ?
							   strerror(errno) : err.message);
			}
		}
	}
	if (mr->mode == 'm' && ferror(stdout))
		return input_error("<stdout>", "%s", strerror(errno));
	bt->n = 0;
	bt->nbytes = 0;
	return EXIT_OK;
}

static int multi_packets(struct multi_run *mr)
{
	struct multi_batch *bt = calloc(1, sizeof *bt);
	if (!bt || !(bt->bytes = malloc(MULTI_BATCH_BYTES))) {
		free(bt);
		return input_error("bpfkit", "out of memory");
	}
	struct progress pr;
	progress_init(&pr);
	struct bpfkit_packet pkt;
	struct bpfkit_error err;
	int r, rc = EXIT_OK;
	uint64_t seen = 0;
	while (rc == EXIT_OK && (r = bpfkit_capture_next(mr->cap, &pkt, &err)) == 1) {
		if (!mr->have_first) {
			mr->first_iface = *bpfkit_capture_iface(mr->cap, 0);
			mr->have_first = true;
		}
		struct multi_set *set = multi_set_for(mr, pkt.linktype);
		if (!set) {
			rc = EXIT_INPUT;
			break;
		}
		if (pkt.caplen > MULTI_BATCH_BYTES - bt->nbytes || bt->n == MULTI_BATCH) {
			if ((rc = multi_flush_batch(mr, bt)) != EXIT_OK)
				break;
		}
		uint8_t *dst = bt->bytes + bt->nbytes;
		uint8_t *big = NULL;
		if (pkt.caplen > MULTI_BATCH_BYTES) {
			/* A huge packet: matched on its own, in place. */
			big = (uint8_t *)pkt.data;
		} else {
			memcpy(dst, pkt.data, pkt.caplen);
			bt->nbytes += pkt.caplen;
		}
		int i = bt->n++;
		bt->pkt[i] = pkt;
		bt->pkt[i].data = big ? big : dst;
		if (pkt.iface) {
			bt->iface[i] = *pkt.iface;
			bt->pkt[i].iface = &bt->iface[i];
		}
		bt->set[i] = set;
		if (big && (rc = multi_flush_batch(mr, bt)) != EXIT_OK)
			break;
		if (pr.on && (++seen & (PROGRESS_EVERY - 1)) == 0)
			progress_tick(&pr, bpfkit_capture_packets(mr->cap), mr->packets);
	}
	if (rc == EXIT_OK && bt->n > 0)
		rc = multi_flush_batch(mr, bt);
	progress_done(&pr);
	if (rc == EXIT_OK && r < 0)
		rc = capture_error(mr->in_name, &err);
	if (!mr->have_first && bpfkit_capture_iface_count(mr->cap) > 0) {
		mr->first_iface = *bpfkit_capture_iface(mr->cap, 0);
		mr->have_first = true;
	}
	free(bt->bytes);
	free(bt->ids);
	free(bt);
	return rc;
}

static int multi_packets_cb(void *mr)
{
	return multi_packets(mr);
}

static int cmd_multi(const struct command *cmd, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"rules", required_argument, NULL, 'f'},
		{"read", required_argument, NULL, 'r'},
		{"engine", required_argument, NULL, 'e'},
		{"counts", no_argument, NULL, 'c'},
		{"matches", no_argument, NULL, 'm'},
		{"split", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0}
	};
	if (wants_help(argc, argv))
		return show_help(cmd);
	struct multi_run mr;
	memset(&mr, 0, sizeof mr);
	mr.cmd = cmd;
	const char *rules_path = NULL, *in_path = NULL, *engine = NULL;
	int c, rc;
	reset_options();
	while ((c = next_option(cmd, argc, argv, ":f:r:e:h", longopts)) != -1) {
		switch (c) {
		case 'f': rules_path = optarg; break;
		case 'r': in_path = optarg; break;
		case 'e': engine = optarg; break;
		case 'c': case 'm': case 's':
			if (mr.mode)
				return usage_error(cmd, "give one of --counts, --matches and "
						   "--split");
			mr.mode = c;
			if (c == 's')
				mr.split_dir = optarg;
			break;
		case 'h': return show_help(cmd);
		default: return EXIT_USAGE;
		}
	}
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);
	if (!rules_path)
		return usage_error(cmd, "-f RULES is required");
	if (!mr.mode)
		mr.mode = 'c';
	if (!engine)
		mr.flags = bpfkit_jit_available() ? BPFKIT_MULTI_JIT : BPFKIT_MULTI_FAST;
	else if (strcmp(engine, "jit") == 0)
		mr.flags = BPFKIT_MULTI_JIT;
	else if (strcmp(engine, "fast") == 0)
		mr.flags = BPFKIT_MULTI_FAST;
	else if (strcmp(engine, "interp") == 0)
		mr.flags = BPFKIT_MULTI_INTERP;
	else
		return usage_error(cmd, "unknown engine '%s'", engine);
	if (is_stdio(rules_path) && is_stdio(in_path))
		return usage_error(cmd, "the rules and the capture cannot both be standard input");
	if ((rc = read_input(rules_path, &mr.rules_in)) != EXIT_OK)
		return rc;
	struct capture_input in = {NULL, -1, NULL, 0};
	if ((rc = multi_parse_rules(&mr)) != EXIT_OK)
		goto done;
	mr.counts = calloc(mr.nrules, sizeof *mr.counts);
	if (!mr.counts) {
		rc = input_error("bpfkit", "out of memory");
		goto done;
	}
	if ((rc = capture_input_open(in_path, &in, &mr.cap)) != EXIT_OK)
		goto done;
	mr.in_name = in.name;
	/* Every rule compiles before any packet is matched or any file written. */
	const struct bpfkit_capture_header *hdr = bpfkit_capture_header(mr.cap);
	uint32_t lt = 1;
	if (bpfkit_capture_iface_count(mr.cap) > 0)
		lt = bpfkit_capture_iface(mr.cap, 0)->linktype;
	else if (hdr->format == BPFKIT_CAPTURE_PCAP)
		lt = hdr->linktype;
	if (!multi_set_for(&mr, lt)) {
		rc = EXIT_INPUT;
		goto done;
	}
	if (mr.mode == 's' && (rc = multi_split_open(&mr)) != EXIT_OK)
		goto done;
	rc = in.map ? run_mapped(mr.in_name, multi_packets_cb, &mr) : multi_packets(&mr);
	fprintf(stderr, "%zu rules x %llu packets: %.1f ns/packet\n", mr.nrules,
		(unsigned long long)mr.packets, mr.packets ? mr.ns / (double)mr.packets : 0.0);
	if (mr.mode == 's')
		rc = multi_split_close(&mr, rc);
	if (rc == EXIT_OK && mr.mode == 'c')
		for (size_t i = 0; i < mr.nrules; i++)
			printf("%s\t%llu\n", mr.rules[i].id, (unsigned long long)mr.counts[i]);
	if (rc == EXIT_OK && fflush(stdout) != 0)
		rc = input_error("<stdout>", "%s", strerror(errno));
done:
	if (mr.split)
		rc = multi_split_close(&mr, rc == EXIT_OK ? EXIT_INPUT : rc);
	for (int i = 0; i < mr.nsets; i++) {
		bpfkit_multi_state_free(mr.sets[i].st);
		bpfkit_multi_free(mr.sets[i].m);
		for (size_t j = 0; mr.sets[i].progs && j < mr.nrules; j++)
			bpfkit_prog_free(NULL, &mr.sets[i].progs[j]);
		free(mr.sets[i].progs);
	}
	if (mr.cap)
		bpfkit_capture_close(mr.cap);
	if (in.fd >= 0 || in.map)
		capture_input_close(&in);
	free(mr.counts);
	for (size_t i = 0; i < mr.nrules; i++) {
		free(mr.rules[i].id);
		free(mr.rules[i].expr);
	}
	free(mr.rules);
	free_input(&mr.rules_in);
	return rc;
}

static void print_overview(FILE *f);

static int cmd_help(const struct command *self, int argc, char **argv)
{
	if (argc < 2) {
		print_overview(stdout);
		return EXIT_OK;
	}
	if (argc > 2)
		return usage_error(self, "help takes one command name");
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return show_help(self);
	const struct command *cmd = find_command(argv[1]);
	if (!cmd)
		return usage_error(NULL, "unknown command '%s'", argv[1]);
	return show_help(cmd);
}

static const struct command commands[] = {
	{"help", cmd_help, "[COMMAND]", "show the commands, or one command's usage",
	 "Shows the list of commands, or the usage of COMMAND.\n", 0},
	{"asm", cmd_asm, "[-f FORMAT] [-o OUT] [FILE]", "assemble bpf_asm source",
	 "Assembles bpf_asm source read from FILE (standard input when FILE is - or\n"
	 "absent) and writes the program in FORMAT.\n\n"
	 "options:\n"
	 "  -f, --format FORMAT    output format (default ddd)\n"
	 "  -o, --output OUT       write to OUT, replaced only when all went well\n"
	 "                         (default, or -: standard output)\n",
	 HELP_FORMATS},
	{"disasm", cmd_disasm, "[-f FORMAT] [-o OUT] [FILE]", "convert a program between formats",
	 "Reads a program in any format (detected from the content) from FILE\n"
	 "(standard input when FILE is - or absent) and writes it in FORMAT.\n\n"
	 "options:\n"
	 "  -f, --format FORMAT    output format (default asm)\n"
	 "  -o, --output OUT       write to OUT, replaced only when all went well\n"
	 "                         (default, or -: standard output)\n",
	 HELP_FORMATS},
	{"check", cmd_check, "[-m socket|pcap|seccomp] [FILE]", "validate a program",
	 "Reads a program in any format from FILE (standard input when FILE is - or\n"
	 "absent) and validates it.  Prints \"valid (MODE): N instructions\" and exits 0,\n"
	 "or names the first broken rule and its instruction and exits 1.\n\n"
	 "options:\n"
	 "  -m, --mode MODE        rules to check against (default socket)\n",
	 HELP_MODES},
	{"run", cmd_run,
	 "[-e ENGINE] [-B] -p PROGFILE -x HEXBYTES [-L WIRELEN] [-c CAPLEN] [-t]\n"
	 "                  [--linux] [--meta KEY=VALUE]...",
	 "run a program on one packet",
	 "Runs the program in PROGFILE (any format; - is standard input) on one packet\n"
	 "and prints its return value in decimal as the last line.  Without --meta or\n"
	 "--linux the run has libpcap's semantics (no ancillary loads); with either,\n"
	 "Linux's (ancillary loads read the metadata, unset keys are 0).\n\n"
	 "options:\n"
	 "  -e, --engine ENGINE    engine to run (default interp)\n"
	 "  -B, --blind            jit: constant blinding (no program constant appears in\n"
	 "                         the machine code); no effect on interp and fast\n"
	 "  -p, --program FILE     the program\n"
	 "  -x, --hex HEXBYTES     the packet bytes in hex: pairs of digits, optionally\n"
	 "                         separated by spaces or colons, optional 0x\n"
	 "  -L, --wirelen N        wire length (default: the number of bytes given;\n"
	 "                         may be larger)\n"
	 "  -c, --caplen N         use only the first N bytes as captured (default all)\n"
	 "  -t, --trace            first print each executed instruction: index,\n"
	 "                         instruction, A and X after it, and the branch taken\n"
	 "      --meta KEY=VALUE   set a Linux metadata field (repeatable)\n"
	 "      --linux            Linux semantics with all metadata zero\n",
	 HELP_ENGINES | HELP_META},
	{"compile", cmd_compile,
	 "[-l LINKTYPE] [-s SNAPLEN] [-O0|-O1|-O2] [-f FORMAT]\n"
	 "                      [-F EXPRFILE] [-o OUT] [--dump-ir PASS] [--] EXPRESSION...",
	 "compile a filter expression",
	 "Compiles a pcap-filter(7) expression into a classic BPF program with\n"
	 "libpcap's meaning.  The words of EXPRESSION are joined by single spaces.\n\n"
	 "  -l, --linktype TYPE    link type (name such as EN10MB, RAW, LINUX_SLL, or number)\n"
	 "  -s, --snaplen N        value an accepting program returns (default 262144)\n"
	 "  -O0, -O1, -O2          optimization (default -O2): 0 the straightforward\n"
	 "                         program; 1 threading of decided branches, dead code,\n"
	 "                         shared tails; 2 also value numbering and reordering\n"
	 "                         of test chains (docs/optimizer.md)\n"
	 "  -f, --format FORMAT    output format (default listing)\n"
	 "  -F FILE                read the expression from FILE\n"
	 "  -o, --output FILE      write to FILE instead of standard output\n"
	 "      --dump-ir PASS     write the IR after each run of PASS instead of the\n"
	 "                         program: codegen (before any pass), fold, thread,\n"
	 "                         vn, pullup, order, dce, promote, merge or switch\n", 0},
	{"filter", cmd_filter,
	 "[-r IN] [-w OUT] [-c] [-e ENGINE] [-B] [-l LINKTYPE] [-O0]\n"
	 "                     (-p PROGFILE | EXPRESSION...)",
	 "filter a pcap or pcapng capture",
	 "Runs a program on every packet of a pcap or pcapng capture (libpcap's\n"
	 "semantics: the program sees the captured bytes and the wire length); a\n"
	 "packet matches when the program returns non-zero.  Matching packets are\n"
	 "written whole, as tcpdump -w does, whatever length the program returns.\n"
	 "Without a program or expression every packet matches.  An EXPRESSION (words\n"
	 "joined by spaces) is compiled for the capture's link type, once per link\n"
	 "type of a pcapng file, or for -l LINKTYPE.\n\n"
	 "options:\n"
	 "  -r, --read IN          the capture (default, or -: standard input)\n"
	 "  -w, --write OUT        write the matching packets to OUT (-: standard\n"
	 "                         output): pcapng when the input is pcapng, else pcap\n"
	 "                         with the input's header; OUT is replaced only when\n"
	 "                         all went well\n"
	 "  -c, --count            print the number of matching packets as the last\n"
	 "                         line (implied without -w; on standard error with -w -)\n"
	 "  -e, --engine ENGINE    engine to run (default: jit where available, else fast;\n"
	 "                         interp for a program those refuse)\n"
	 "  -B, --blind            jit: constant blinding (no program constant appears in\n"
	 "                         the machine code); no effect on interp and fast\n"
	 "  -l, --linktype TYPE    link type for compiling an expression (name or number)\n"
	 "  -O LEVEL               optimisation level for compiling an expression (0, 1,\n"
	 "                         2; default 2)\n"
	 "  -p, --program FILE     the program, in any format (- is standard input)\n\n"
	 "A read error is reported as \"bpfkit: error: FILE: byte OFFSET: ...\" (exit 1).\n"
	 "Progress goes to standard error once a second when it is a terminal.\n",
	 HELP_ENGINES},
	{"gen", cmd_gen, "[-l LINKTYPE] [-n COUNT] [-S SEED] [-s SNAPLEN] -w OUT",
	 "generate a capture of realistic packets",
	 "Writes COUNT made-up packets (a realistic mix of protocols with valid\n"
	 "checksums) to OUT as a nanosecond pcap.  The same options give the same\n"
	 "bytes on every run.\n\n"
	 "options:\n"
	 "  -l, --linktype TYPE    EN10MB (default), RAW, LINUX_SLL or NULL (or the number)\n"
	 "  -n, --count COUNT      packets to write (default 1000)\n"
	 "  -S, --seed SEED        the generator's seed (default 1)\n"
	 "  -s, --snaplen N        keep at most N bytes of each packet, and write N as\n"
	 "                         the file's snaplen (default 262144, nothing cut)\n"
	 "  -w, --write OUT        the capture (-: standard output); OUT is replaced only\n"
	 "                         when all went well\n",
	 0},
	{"bench", cmd_bench, "[-r CAPTURE] [-n COUNT] [-R ROUNDS] [-B] [--tsv] [EXPRESSION...]",
	 "time filters on each engine",
	 "Times each filter (each EXPRESSION argument is one whole filter; default:\n"
	 "classic tcpdump filters and a 50-port list) on each engine over the same\n"
	 "packets held in memory: interp, fast, jit and null (the same loop doing\n"
	 "nothing but read each packet's length).  Engines are interleaved, the run\n"
	 "repeated ROUNDS times and the median kept; every engine's verdicts are first\n"
	 "checked against interp's on every packet.  The ratio is interp's ns / the\n"
	 "engine's ns (higher is faster): bpfkit never links libpcap, so the speed-up\n"
	 "over libpcap's bpf_filter (and DPDK's JIT) comes from `make bench`\n"
	 "(bench/bench_interp).\n\n"
	 "options:\n"
	 "  -r, --read CAPTURE     the packets (pcap or pcapng; those of the first\n"
	 "                         packet's link type); default: COUNT generated packets\n"
	 "  -n, --count COUNT      packets to generate (default 100000; EN10MB, seed 1)\n"
	 "  -R, --rounds ROUNDS    repetitions, the median counts (default 9)\n"
	 "  -B, --blind            time the jit with constant blinding\n"
	 "      --tsv              filter<TAB>engine<TAB>ns_per_packet<TAB>ratio_vs_interp\n", 0},
	{"multi", cmd_multi,
	 "-f RULES [-r IN] [-e ENGINE] [--counts | --matches | --split DIR]",
	 "match many rules at once",
	 "Finds every rule that matches each packet of a pcap or pcapng capture, at\n"
	 "once: the rules' header tests are indexed and only candidate rules run (see\n"
	 "docs/multi.md).  The result equals running each rule alone.\n\n"
	 "RULES has one rule per line, \"ID EXPRESSION\" (ID: a word without spaces,\n"
	 "unique); blank lines and lines starting with # are skipped.  Every rule is\n"
	 "compiled for the capture's link type before any packet is read; a rule that\n"
	 "does not compile is reported as RULES:LINE:COL and nothing runs.\n"
	 "Standard error always gets \"N rules x M packets: X ns/packet\", the time of\n"
	 "the matching loop alone.\n\n"
	 "options:\n"
	 "  -f, --rules RULES      the rules file (-: standard input)\n"
	 "  -r, --read IN          the capture (default, or -: standard input)\n"
	 "  -e, --engine ENGINE    engine that runs candidate rules (default: jit where\n"
	 "                         available, else fast)\n"
	 "      --counts           ID<TAB>COUNT for every rule, in file order (default)\n"
	 "      --matches          for each packet with a match: its number (from 1),\n"
	 "                         a tab and the IDs that matched, space-separated\n"
	 "      --split DIR        DIR/ID.pcap (.pcapng for pcapng input) per rule with\n"
	 "                         its matching packets; all written only when all went\n"
	 "                         well (IDs must then be safe file names)\n",
	 HELP_ENGINES},
};
static const size_t ncommands = sizeof commands / sizeof commands[0];

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ncommands; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void print_overview(FILE *f)
{
	fprintf(f, "usage: bpfkit COMMAND [OPTIONS] [ARGS]\n"
		"       bpfkit help COMMAND | bpfkit COMMAND --help | bpfkit --version\n\n"
		"bpfkit %s - a classic BPF toolchain.\n\ncommands:\n", BPFKIT_VERSION);
	for (size_t i = 0; i < ncommands; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fputs("\nExit status: 0 success, 1 bad input, 2 bad usage.\n", f);
}

static void print_formats(void)
{
	puts("\nformats (FORMAT; input formats are detected from the content):");
	for (int f = BPFKIT_FMT_ASM; f <= BPFKIT_FMT_DOT; f++) {
		static const char *const what[] = {
			[BPFKIT_FMT_ASM] = "bpf_asm source with labels",
			[BPFKIT_FMT_LISTING] = "tcpdump -d listing",
			[BPFKIT_FMT_C] = "tcpdump -dd C array",
			[BPFKIT_FMT_DDD] = "tcpdump -ddd: the count, then code jt jf k per line",
			[BPFKIT_FMT_IPTABLES] = "xt_bpf: N,code jt jf k,code jt jf k,...",
			[BPFKIT_FMT_RAW] = "binary struct sock_filter array, host byte order",
			[BPFKIT_FMT_JSON] = "JSON",
			[BPFKIT_FMT_DOT] = "Graphviz control-flow graph (output only)",
		};
		printf("  %-9s %s\n", bpfkit_format_name((enum bpfkit_format)f), what[f]);
	}
}

/* "bpfkit help CMD", "bpfkit CMD --help": usage, options and the tables they use. */
static int show_help(const struct command *cmd)
{
	printf("usage: bpfkit %s %s\n\n%s", cmd->name, cmd->synopsis, cmd->help);
	if (cmd->run != cmd_help)
		fputs(help_opt, stdout);
	if (cmd->sections & HELP_FORMATS)
		print_formats();
	if (cmd->sections & HELP_MODES) {
		puts("\nmodes (-m):");
		for (size_t i = 0; i < NMODES; i++)
			printf("  %-9s %s%s\n", modes[i].name, modes[i].rules,
			       i == 0 ? " (default)" : "");
	}
	if (cmd->sections & HELP_ENGINES) {
		puts("\nengines (-e):");
		for (size_t i = 0; i < NENGINES; i++)
			printf("  %-9s %s%s\n", engines[i].name, engines[i].what,
			       i == 0 && cmd->run == cmd_run ? " (default)" : "");
	}
	if (cmd->sections & HELP_META) {
		fputs("\nmetadata keys (--meta):", stdout);
		for (size_t i = 0; i < NMETA; i++)
			printf("%s%s", i % 7 == 0 ? "\n  " : " ", meta_fields[i].key);
		putchar('\n');
	}
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		print_overview(stderr);
		return EXIT_USAGE;
	}
	const char *name = argv[1];
	if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
		return cmd_help(&commands[0], 1, argv + 1);
	if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
		printf("bpfkit %s\n", BPFKIT_VERSION);
		return EXIT_OK;
	}
	const struct command *cmd = find_command(name);
	if (cmd)
		return cmd->run(cmd, argc - 1, argv + 1);
	if (name[0] == '-')
		return usage_error(NULL, "unknown option '%s'", name);
	return usage_error(NULL, "unknown command '%s'", name);
}
