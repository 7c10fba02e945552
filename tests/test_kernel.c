/*
 * test_kernel.c - the real judges of validity against bpfkit_validate:
 *
 *   kernel_socket   the running kernel's SO_ATTACH_FILTER on a UDP socket
 *                   must accept exactly what socket mode accepts;
 *   kernel_seccomp  prctl(PR_SET_SECCOMP) in a forked child must accept
 *                   exactly what seccomp mode accepts once bpfkit's own
 *                   return-action rule is masked out;
 *   kernel_pcap     libpcap's bpf_validate must agree with pcap mode except
 *                   on the documented differences (docs/validate.md), which
 *                   are recognised here one by one.
 *
 * Programs: random kernel-valid ones (randprog) and mutants of them, each
 * mutation aimed at one rule (bad opcodes, wild jumps, unwritten or missing
 * M[] cells, constant division by 0, wide shifts, unknown ancillary offsets,
 * no final return, empty and over-long programs).  The first disagreement is
 * reported with the program in ddd form.  Deterministic seeds; a few seconds.
 */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* u_int in <pcap/pcap.h>, SO_ATTACH_FILTER */
#endif
#include "harness.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pcap/pcap.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#include "randprog.h"

#define CAP 4200              /* room for over-long mutants */
#define AD(off) (BPFKIT_SKF_AD_OFF + (off))

static struct bpfkit_insn prog[CAP], work[CAP];

static void write_ddd(FILE *f, const struct bpfkit_insn *p, size_t n, size_t max)
{
	fprintf(f, "%zu\n", n);
	for (size_t i = 0; i < n && i < max; i++)
		fprintf(f, "%u %u %u %u\n", p[i].code, p[i].jt, p[i].jf, p[i].k);
}

/*
 * The program in tcpdump -ddd form after a failure: on standard error (the
 * first 100 instructions) and whole in /tmp/bpfkit-kernel-<what>.ddd.
 */
static void dump_ddd(const char *what, const struct bpfkit_insn *p, size_t n)
{
	char path[128];
	snprintf(path, sizeof path, "/tmp/bpfkit-kernel-%s.ddd", what);
	fprintf(stderr, "%s (%zu instructions, ddd; whole in %s):\n", what, n, path);
	write_ddd(stderr, p, n, 100);
	if (n > 100)
		fprintf(stderr, "... %zu more\n", n - 100);
	FILE *f = fopen(path, "w");
	if (f) {
		write_ddd(f, p, n, n);
		fclose(f);
	}
}

static struct bpfkit_insn rand_from_table(uint64_t *s, unsigned need, unsigned avoid)
{
	for (;;) {
		const struct opcode_info *o = &opcode_table[randprog_below(s, OP__COUNT)];
		if ((o->flags & need) == need && !(o->flags & avoid))
			return (struct bpfkit_insn){o->code, 0, 0, randprog_below(s, 64)};
	}
}

/* Grows the program to or just past the kernel's 4096 with returns. */
static void grow(uint64_t *s, struct bpfkit_insn *p, size_t *n)
{
	size_t len = *n;
	*n = 4094 + randprog_below(s, 6);
	for (size_t k = len; k < *n; k++)
		p[k] = (struct bpfkit_insn){0x06, 0, 0, 1};
}

/* One random mutation aimed at one rule; may change *n. */
static void mutate(uint64_t *s, struct bpfkit_insn *p, size_t *n)
{
	size_t len = *n;
	if (len == 0) {
		grow(s, p, n);
		return;
	}
	size_t i = randprog_below(s, (uint32_t)len);        /* any instruction */
	size_t j = len > 1 ? randprog_below(s, (uint32_t)(len - 1)) : 0; /* not the last */
	uint32_t room = (uint32_t)(len - j - 1);             /* instructions after j */

	switch (randprog_below(s, 13)) {
	case 0: /* bad opcode, 8 or 16 bits */
		p[i].code = (uint16_t)(randprog_below(s, 3) ? randprog_below(s, 256)
							    : randprog_below(s, 65536));
		break;
	case 1: /* ja just past the end, far past it, or wrapping around */
		p[j] = (struct bpfkit_insn){0x05, 0, 0, room + randprog_below(s, 3)};
		if (randprog_below(s, 3) == 0)
			p[j].k = 0xffffffffu - randprog_below(s, (uint32_t)len + 2);
		if (randprog_below(s, 3) == 0 && room)
			p[j].k = room - 1; /* the last instruction: valid */
		break;
	case 2: { /* conditional jump with jt or jf near the end */
		p[j] = rand_from_table(s, F_COND, 0);
		uint32_t far = room + randprog_below(s, 2) - randprog_below(s, 2);
		uint8_t t = (uint8_t)(far > 255 ? 255 : far);
		uint8_t f = (uint8_t)randprog_below(s, room ? (room < 256 ? room : 256) : 1);
		p[j].jt = randprog_below(s, 2) ? t : f;
		p[j].jf = p[j].jt == t ? f : t;
		break;
	}
	case 3: /* a read of a cell that may not be written */
		p[j] = (struct bpfkit_insn){randprog_below(s, 2) ? 0x60 : 0x61, 0, 0,
					    randprog_below(s, 16)};
		break;
	case 4: /* scratch memory cell out of range (or exactly the last) */
		p[j] = (struct bpfkit_insn){(uint16_t)(randprog_below(s, 2) ? 0x02 : 0x61), 0, 0,
					    15 + randprog_below(s, 3)};
		if (randprog_below(s, 4) == 0)
			p[j].k = (uint32_t)randprog_next(s);
		break;
	case 5: /* constant division or modulo by zero */
		p[j] = (struct bpfkit_insn){randprog_below(s, 2) ? 0x34 : 0x94, 0, 0,
					    randprog_below(s, 3) ? 0 : 1};
		break;
	case 6: /* constant shifts around 32 */
		p[j] = (struct bpfkit_insn){randprog_below(s, 2) ? 0x64 : 0x74, 0, 0,
					    30 + randprog_below(s, 4)};
		if (randprog_below(s, 4) == 0)
			p[j].k = (uint32_t)randprog_next(s);
		break;
	case 7: { /* ancillary offsets, known and unknown, any load size */
		static const uint16_t codes[] = {0x20, 0x28, 0x30, 0x40, 0xb1};
		p[j] = (struct bpfkit_insn){codes[randprog_below(s, 5)], 0, 0,
					    AD(randprog_below(s, 72))};
		if (randprog_below(s, 5) == 0)
			p[j].k = 0xffffffffu - randprog_below(s, 4);
		break;
	}
	case 8: /* no final return */
		p[len - 1] = rand_from_table(s, 0, F_RET);
		break;
	case 9: /* noise in the operand fields */
		p[i].k ^= 1u << randprog_below(s, 32);
		if (randprog_below(s, 2))
			p[i].jt = (uint8_t)randprog_next(s);
		else
			p[i].jf = (uint8_t)randprog_below(s, 4);
		break;
	case 10: /* truncate, possibly to nothing */
		*n = randprog_below(s, (uint32_t)len + 1);
		if (randprog_below(s, 2) && *n)
			p[*n - 1] = (struct bpfkit_insn){0x06, 0, 0, 0};
		break;
	case 11:
		grow(s, p, n);
		break;
	default: /* a random (valid) instruction replaces another */
		p[j] = rand_from_table(s, 0, F_JUMP | F_COND);
		break;
	}
}

/* Base program (seeded) in prog, then 0..3 mutations into work. */
static size_t make_case(uint64_t *s, size_t base_n, size_t *wn, int iteration)
{
	memcpy(work, prog, base_n * sizeof prog[0]);
	*wn = base_n;
	unsigned muts = iteration % 4 == 0 ? 0 : 1 + randprog_below(s, 3);
	for (unsigned m = 0; m < muts && *wn > 0; m++)
		mutate(s, work, wn);
	if (*wn == 0 && randprog_below(s, 2))
		grow(s, work, wn); /* sometimes regrow an empty program */
	return muts;
}

/*
 * 1: the checker accepted, 0: EINVAL, -errno: something else went wrong.
 * ENOMEM counts as accepted: it comes from charging the translated program
 * to the socket's option memory (net.core.optmem_max), after every check has
 * passed; long programs with ancillary loads can grow past it.
 */
static int socket_attach(int fd, const struct bpfkit_insn *p, size_t n)
{
	struct sock_fprog fp = {(unsigned short)n, (struct sock_filter *)(uintptr_t)p};
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp) == 0 || errno == ENOMEM)
		return 1;
	return errno == EINVAL ? 0 : -errno;
}

static bool agree(const char *judge, int theirs, const struct bpfkit_insn *p, size_t n,
		  enum bpfkit_vmode mode, int iteration)
{
	struct bpfkit_error err;
	int ours = bpfkit_validate(p, n, mode, &err) == 0;
	if (theirs < 0) {
		harness_fail(__FILE__, __LINE__, "case %d: %s failed with errno %d", iteration,
			     judge, -theirs);
		dump_ddd("program", p, n);
		return false;
	}
	if (ours == theirs)
		return true;
	if (ours)
		harness_fail(__FILE__, __LINE__, "case %d: %s rejects, bpfkit accepts", iteration,
			     judge);
	else
		harness_fail(__FILE__, __LINE__,
			     "case %d: %s accepts, bpfkit rejects: insn %ld: %s", iteration, judge,
			     err.insn, err.message);
	dump_ddd("disagreement", p, n);
	return false;
}

TEST(kernel_socket)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0)
		SKIP("no UDP socket: %s", strerror(errno));
	struct bpfkit_insn ret = {0x06, 0, 0, 0};
	if (socket_attach(fd, &ret, 1) != 1) {
		close(fd);
		SKIP("SO_ATTACH_FILTER unavailable: %s", strerror(errno));
	}

	/* Programs that pin down the kernel's memory-rule quirks (docs/validate.md). */
	static const struct {
		size_t n;
		struct bpfkit_insn p[7];
	} quirks[] = {
		{3, {{0x05, 0, 0, 1}, {0x60, 0, 0, 0}, {0x06, 0, 0, 0}}},
		{4, {{0x02, 0, 0, 0}, {0x06, 0, 0, 0}, {0x60, 0, 0, 0}, {0x16, 0, 0, 0}}},
		{3, {{0x06, 0, 0, 0}, {0x60, 0, 0, 0}, {0x16, 0, 0, 0}}},
		{7, {{0x15, 0, 2, 0}, {0x02, 0, 0, 0}, {0x15, 2, 0, 1}, {0x06, 0, 0, 0},
		     {0x06, 0, 0, 1}, {0x60, 0, 0, 0}, {0x16, 0, 0, 0}}},
		{2, {{0x30, 0, 0, AD(60)}, {0x16, 0, 0, 0}}},
		{2, {{0xb1, 0, 0, AD(64)}, {0x16, 0, 0, 0}}},
		{2, {{0x05, 0, 0, 0xffffffffu}, {0x16, 0, 0, 0}}},
	};
	for (size_t q = 0; q < sizeof quirks / sizeof quirks[0]; q++)
		if (!agree("kernel", socket_attach(fd, quirks[q].p, quirks[q].n), quirks[q].p,
			   quirks[q].n, BPFKIT_VALIDATE_SOCKET, -1 - (int)q))
			goto out;

	uint64_t s = 0x50c4e7;
	int accepted = 0, rejected = 0;
	for (int it = 0; it < 20000; it++) {
		size_t max = it % 97 == 0 ? 4096 : 48;
		size_t n = randprog_gen(&s, prog, max, 64, it % 3 ? RANDPROG_ANC : 0), wn;
		make_case(&s, n, &wn, it);
		int k = socket_attach(fd, work, wn);
		if (!agree("kernel", k, work, wn, BPFKIT_VALIDATE_SOCKET, it))
			goto out;
		k ? accepted++ : rejected++;
	}
	/* Both verdicts must have been exercised plenty. */
	CHECK_MSG(accepted > 4000 && rejected > 4000, "accepted %d, rejected %d", accepted,
		  rejected);
out:
	close(fd);
}

/* ---- seccomp ---- */

/*
 * Ends the process with SIGILL without a system call or a call the compiler
 * knows does not return (ASan instruments those with code that makes system
 * calls, which the filter under test may fail forever).
 */
static void die_of_sigill(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__ volatile("ud2");
#elif defined(__aarch64__)
	__asm__ volatile("udf #0");
#else
	__builtin_trap();
#endif
}

/*
 * 1: installed, 0: EINVAL, -1: could not tell (no fork, or no NO_NEW_PRIVS).
 *
 * The child installs the filter under test, which then judges every system
 * call the child makes: it may kill the child, fail exit_group with an errno
 * (glibc's and the sanitizers' _exit then loop or fault), or allow it.  So
 * after a successful install the child makes no system call at all: it
 * executes an undefined instruction and dies of SIGILL, its default action.
 * An alarm set beforehand ends it anyway should that signal be caught; core
 * dumps are disabled first.  The parent reads "died of a signal" as
 * installed and exit status 3 as EINVAL.
 */
static int seccomp_install(const struct bpfkit_insn *p, size_t n)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sock_fprog fp = {(unsigned short)n, (struct sock_filter *)(uintptr_t)p};
		struct rlimit nocore = {0, 0};
		setrlimit(RLIMIT_CORE, &nocore);
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
		signal(SIGILL, SIG_DFL);
		alarm(5);
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
			_exit(5);
		if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, (unsigned long)&fp, 0, 0) == 0)
			die_of_sigill();
		_exit(errno == EINVAL ? 3 : 4);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (WIFSIGNALED(status))
		return 1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
		return 0;
	return -1;
}

static const uint32_t seccomp_rets[] = {0x7fff0000u, 0x80000000u, 0x00000000u, 0x00030000u,
					0x00050000u, 0x7fc00000u, 0x7ff00000u, 0x7ffc0000u};

/* Turns a socket program into a seccomp-shaped one: data loads, no modulo. */
static void seccomp_shape(uint64_t *s, struct bpfkit_insn *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct opcode_info *o = opcode_lookup(p[i].code);
		if (o->flags & F_PKT)
			p[i] = (struct bpfkit_insn){0x20, 0, 0, 4 * randprog_below(s, 16)};
		else if (BPFKIT_CLASS(p[i].code) == BPFKIT_ALU &&
			 BPFKIT_OP(p[i].code) == BPFKIT_MOD)
			p[i].code = (uint16_t)(p[i].code - BPFKIT_MOD + BPFKIT_DIV);
		else if ((o->flags & F_RET) && o->operand == OPND_K)
			p[i].k = seccomp_rets[randprog_below(s, 8)] | randprog_below(s, 4);
	}
}

/* Mutations aimed at seccomp_check_filter and the action rule. */
static void seccomp_mutate(uint64_t *s, struct bpfkit_insn *p, size_t n)
{
	static const uint16_t loads[] = {0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0xb1, 0x80, 0x81};
	size_t j = n > 1 ? randprog_below(s, (uint32_t)(n - 1)) : 0;
	switch (randprog_below(s, 4)) {
	case 0:
		p[j] = (struct bpfkit_insn){loads[randprog_below(s, 9)], 0, 0,
					    randprog_below(s, 70)};
		if (randprog_below(s, 6) == 0)
			p[j].k = AD(4 * randprog_below(s, 17));
		break;
	case 1:
		p[j] = (struct bpfkit_insn){randprog_below(s, 2) ? 0x94 : 0x9c, 0, 0, 7};
		break;
	case 2:
		p[j] = (struct bpfkit_insn){randprog_below(s, 2) ? 0xa4 : 0xac, 0, 0, 7};
		break;
	default:
		p[n - 1] = (struct bpfkit_insn){0x06, 0, 0, (uint32_t)randprog_next(s)};
		break;
	}
}

TEST(kernel_seccomp)
{
	struct bpfkit_insn allow = {0x06, 0, 0, 0x7fff0000u};
	if (seccomp_install(&allow, 1) != 1)
		SKIP("seccomp filters unavailable (no fork, NO_NEW_PRIVS or SECCOMP_MODE_FILTER)");

	static struct bpfkit_insn masked[CAP];
	uint64_t s = 0x5ecc0b;
	int accepted = 0, rejected = 0, action_only = 0;
	for (int it = 0; it < 4000; it++) {
		size_t n = randprog_gen(&s, prog, it % 101 == 0 ? 4096 : 32, 64, 0), wn;
		seccomp_shape(&s, prog, n);
		make_case(&s, n, &wn, it % 2 ? it : 0);
		if (wn && it % 3 == 1)
			seccomp_mutate(&s, work, wn);
		int k = seccomp_install(work, wn);
		/* The kernel does not check return actions: mask bpfkit's rule out. */
		memcpy(masked, work, wn * sizeof work[0]);
		for (size_t i = 0; i < wn; i++)
			if (masked[i].code == 0x06)
				masked[i].k = 0x7fff0000u;
		if (!agree("seccomp", k, masked, wn, BPFKIT_VALIDATE_SECCOMP, it)) {
			dump_ddd("unmasked", work, wn);
			return;
		}
		struct bpfkit_error err;
		if (k && bpfkit_validate(work, wn, BPFKIT_VALIDATE_SECCOMP, &err) != 0) {
			action_only++;
			CHECK_CONTAINS(err.message, "seccomp action");
		}
		k ? accepted++ : rejected++;
	}
	CHECK_MSG(accepted > 600 && rejected > 600 && action_only > 60,
		  "accepted %d, rejected %d, rejected for the action alone %d", accepted, rejected,
		  action_only);
}

/* ---- libpcap ---- */

/*
 * Whether the program holds one of pcap mode's documented differences from
 * libpcap 1.10's bpf_validate: an opcode its interpreter does not implement,
 * an ancillary load, a constant shift >= 32, or a ja whose target only fits
 * because i + 1 + k wrapped around 32 bits.
 */
static bool pcap_difference(const struct bpfkit_insn *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct opcode_info *o = opcode_lookup(p[i].code);
		if (!o)
			return true;
		if (o->operand == OPND_ABS && p[i].k >= BPFKIT_SKF_AD_OFF)
			return true;
		if ((o->flags & F_SHIFT) && o->operand == OPND_K && p[i].k >= 32)
			return true;
		if ((o->flags & F_JUMP) && (uint64_t)i + 1 + p[i].k >= n)
			return true;
	}
	return false;
}

TEST(kernel_pcap)
{
	uint64_t s = 0x9ca9;
	int accepted = 0, rejected = 0, differences = 0;
	for (int it = 0; it < 100000; it++) {
		size_t n = randprog_gen(&s, prog, it % 211 == 0 ? 4096 : 24, 64,
					it % 2 ? RANDPROG_ANC : 0), wn;
		make_case(&s, n, &wn, it);
		if (wn && it % 5 == 2) { /* libpcap-only shapes: wide codes, backward ja */
			uint32_t j = randprog_below(&s, (uint32_t)wn);
			uint32_t high = 1 + randprog_below(&s, 255);
			uint32_t to = randprog_below(&s, (uint32_t)wn);
			if (randprog_below(&s, 2))
				work[j].code = (uint16_t)(work[j].code | high << 8);
			else /* i + 1 + k wraps to an earlier instruction */
				work[j] = (struct bpfkit_insn){0x05, 0, 0, to - j - 1};
		}
		const struct bpf_insn *as_pcap = (const struct bpf_insn *)(const void *)work;
		int theirs = bpf_validate(as_pcap, (int)wn) != 0;
		int expected = theirs && !pcap_difference(work, wn);
		if (theirs && !expected)
			differences++;
		if (!agree("libpcap (less documented differences)", expected, work, wn,
			   BPFKIT_VALIDATE_PCAP, it))
			return;
		expected ? accepted++ : rejected++;
	}
	CHECK_MSG(accepted > 15000 && rejected > 15000 && differences > 2500,
		  "accepted %d, rejected %d, differences %d", accepted, rejected, differences);
}
