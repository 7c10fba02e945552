/*
 * validate.c - decides whether a classic BPF program is acceptable to one of
 * three consumers, and says which instruction breaks which rule:
 *
 *   socket   the Linux kernel's classic checker for SO_ATTACH_FILTER
 *            (net/core/filter.c: bpf_check_classic and its helpers);
 *   pcap     libpcap's bpf_validate, tightened where libpcap 1.10's own
 *            interpreter would abort, jump backwards or shift by >= 32,
 *            and with no Linux ancillary loads;
 *   seccomp  the kernel's classic checks, then seccomp_check_filter
 *            (kernel/seccomp.c), then bpfkit's own rule on return actions.
 *
 * The rules are written from the documented behaviour of those checkers, in
 * the order they run, so the first error reported is the one the reference
 * would stop at.  docs/validate.md lists every rule and every difference.
 *
 * Invariants: the whitelist of opcodes is the opcode table (opcode_lookup);
 * no rule here restates an opcode list, it reads the table's operand kind and
 * flags.  Jump targets are computed in 64 bits, so no offset wraps.  Nothing
 * is allocated: the kernel's memory rule needs one 16-bit mask per
 * instruction, at most BPFKIT_MAXINSNS of them, kept on the stack.
 */
#include "internal.h"

#include <limits.h>

/* struct seccomp_data: nr, arch, instruction_pointer, args[6]. */
enum { SECCOMP_DATA_SIZE = 64 };
#define SECCOMP_ACTION_MASK 0xffff0000u

/* The SECCOMP_RET_* actions, upper 16 bits of a seccomp filter's result. */
static const uint32_t seccomp_actions[] = {
	0x80000000u, /* KILL_PROCESS */
	0x00000000u, /* KILL_THREAD */
	0x00030000u, /* TRAP */
	0x00050000u, /* ERRNO */
	0x7fc00000u, /* USER_NOTIF */
	0x7ff00000u, /* TRACE */
	0x7ffc0000u, /* LOG */
	0x7fff0000u, /* ALLOW */
};

static const char *mode_name(enum bpfkit_vmode mode)
{
	switch (mode) {
	case BPFKIT_VALIDATE_SOCKET:
		return "socket";
	case BPFKIT_VALIDATE_PCAP:
		return "pcap";
	case BPFKIT_VALIDATE_SECCOMP:
		return "seccomp";
	}
	return "unknown";
}

/* 1..4096 instructions for the kernel; libpcap takes an int count. */
static int check_length(size_t n, enum bpfkit_vmode mode, struct bpfkit_error *err)
{
	size_t max = mode == BPFKIT_VALIDATE_PCAP ? (size_t)INT_MAX : BPFKIT_MAXINSNS;
	if (n == 0) {
		error_insn(err, -1, "program is empty: it needs at least one instruction");
		return -1;
	}
	if (n > max) {
		error_insn(err, -1, "program has %zu instructions; %s mode accepts at most %zu",
			   n, mode_name(mode), max);
		return -1;
	}
	return 0;
}

static int check_target(size_t pc, uint64_t offset, size_t n, const char *which,
			struct bpfkit_error *err)
{
	uint64_t target = (uint64_t)pc + 1 + offset;
	if (target < n)
		return 0;
	error_insn(err, (long)pc,
		   "%sjump target %llu is past the end of the program (%zu instructions)", which,
		   (unsigned long long)target, n);
	return -1;
}

/*
 * The checks that look at one instruction alone: the kernel's
 * bpf_check_classic loop (socket and seccomp) or libpcap's bpf_validate loop
 * (pcap).  They differ only in what a load at SKF_AD_OFF and above means.
 */
static int check_insn(const struct bpfkit_insn *in, size_t pc, size_t n, enum bpfkit_vmode mode,
		      struct bpfkit_error *err)
{
	const struct opcode_info *o = opcode_lookup(in->code);
	long at = (long)pc;

	if (!o) {
		error_insn(err, at, "unknown opcode 0x%02x", in->code);
		return -1;
	}
	if ((o->flags & F_DIV) && o->operand == OPND_K && in->k == 0) {
		error_insn(err, at, "%s by constant 0",
			   BPFKIT_OP(in->code) == BPFKIT_MOD ? "modulo" : "division");
		return -1;
	}
	if ((o->flags & F_SHIFT) && o->operand == OPND_K && in->k >= 32) {
		error_insn(err, at, "shift by constant %u: it must be below 32", in->k);
		return -1;
	}
	if (o->operand == OPND_MEM && in->k >= BPFKIT_MEMWORDS) {
		error_insn(err, at, "M[%u] does not exist: scratch memory is M[0] to M[%d]", in->k,
			   BPFKIT_MEMWORDS - 1);
		return -1;
	}
	if ((o->flags & F_JUMP) && check_target(pc, in->k, n, "", err) < 0)
		return -1;
	if ((o->flags & F_COND) && (check_target(pc, in->jt, n, "true branch: ", err) < 0 ||
				    check_target(pc, in->jf, n, "false branch: ", err) < 0))
		return -1;
	if (o->operand == OPND_ABS && in->k >= BPFKIT_SKF_AD_OFF) {
		if (mode == BPFKIT_VALIDATE_PCAP) {
			error_insn(err, at, "ancillary load not allowed in pcap mode "
				   "(offset SKF_AD_OFF+%u)", in->k - BPFKIT_SKF_AD_OFF);
			return -1;
		}
		if (!opcode_anc(in->k)) {
			error_insn(err, at, "unknown ancillary load at offset SKF_AD_OFF+%u",
				   in->k - BPFKIT_SKF_AD_OFF);
			return -1;
		}
	}
	return 0;
}

/*
 * The kernel's linear rule for scratch memory (check_load_and_stores): walk
 * the program once in order with a set of "written" cells.  A jump narrows
 * the set recorded for each of its targets to the current one, then resets
 * the current set to "all written".  Every instruction starts by narrowing
 * the current set to what its incoming jumps recorded.  A return does not
 * reset the set, so the instruction after a return inherits the state of the
 * path that fell into the return (which may lack cells that every real path
 * to it has written) - replicated on purpose so that the kernel and bpfkit
 * agree on every program.
 */
static int check_memory(const struct bpfkit_insn *insns, size_t n, struct bpfkit_error *err)
{
	uint16_t masks[BPFKIT_MAXINSNS];
	uint16_t valid = 0;

	for (size_t pc = 0; pc < n; pc++)
		masks[pc] = 0xffff;
	for (size_t pc = 0; pc < n; pc++) {
		const struct bpfkit_insn *in = &insns[pc];
		const struct opcode_info *o = opcode_lookup(in->code);
		valid &= masks[pc];
		if (o->flags & F_WR_M) {
			valid |= (uint16_t)(1u << in->k);
		} else if (o->flags & F_RD_M) {
			if (!(valid & (1u << in->k))) {
				error_insn(err, (long)pc, "M[%u] may be read before it is written",
					   in->k);
				return -1;
			}
		} else if (o->flags & F_JUMP) {
			masks[pc + 1 + in->k] &= valid;
			valid = 0xffff;
		} else if (o->flags & F_COND) {
			masks[pc + 1 + in->jt] &= valid;
			masks[pc + 1 + in->jf] &= valid;
			valid = 0xffff;
		}
	}
	return 0;
}

/*
 * seccomp_check_filter: a seccomp filter reads struct seccomp_data, not a
 * packet.  Of the packet loads only the 32-bit absolute one is kept, at an
 * aligned offset inside the struct; modulo is not on the kernel's list.
 */
static int check_seccomp_insn(const struct bpfkit_insn *in, size_t pc, struct bpfkit_error *err)
{
	const struct opcode_info *o = opcode_lookup(in->code);
	long at = (long)pc;

	if (o->flags & F_PKT) {
		const char *what = o->operand == OPND_ABS ? "byte or half-word"
							  : "packet-relative";
		if (o->operand != OPND_ABS || BPFKIT_SIZE(in->code) != BPFKIT_W) {
			error_insn(err, at, "%s load not allowed in seccomp mode "
				   "(only 32-bit absolute loads of struct seccomp_data)", what);
			return -1;
		}
		if (in->k >= SECCOMP_DATA_SIZE || (in->k & 3)) {
			error_insn(err, at, "seccomp data load at offset %u must be 32-bit "
				   "aligned and inside struct seccomp_data (%d bytes)", in->k,
				   SECCOMP_DATA_SIZE);
			return -1;
		}
	}
	if (BPFKIT_CLASS(in->code) == BPFKIT_ALU && BPFKIT_OP(in->code) == BPFKIT_MOD) {
		error_insn(err, at, "modulo not allowed in seccomp mode");
		return -1;
	}
	return 0;
}

/* bpfkit's own rule (the kernel treats unknown actions as KILL_PROCESS). */
static int check_seccomp_return(const struct bpfkit_insn *in, size_t pc,
				struct bpfkit_error *err)
{
	const struct opcode_info *o = opcode_lookup(in->code);
	if (!(o->flags & F_RET) || o->operand != OPND_K)
		return 0;
	uint32_t action = in->k & SECCOMP_ACTION_MASK;
	for (size_t i = 0; i < sizeof seccomp_actions / sizeof seccomp_actions[0]; i++)
		if (seccomp_actions[i] == action)
			return 0;
	error_insn(err, (long)pc,
		   "return value 0x%08x has no known seccomp action (upper 16 bits 0x%04x)",
		   in->k, action >> 16);
	return -1;
}

BPFKIT_API int bpfkit_validate(const struct bpfkit_insn *insns, size_t n,
			       enum bpfkit_vmode mode, struct bpfkit_error *err)
{
	if (mode != BPFKIT_VALIDATE_SOCKET && mode != BPFKIT_VALIDATE_PCAP &&
	    mode != BPFKIT_VALIDATE_SECCOMP) {
		error_set(err, "unknown validation mode %d", (int)mode);
		return -1;
	}
	if (check_length(n, mode, err) < 0)
		return -1;
	if (!insns) {
		error_insn(err, -1, "program has %zu instructions but no instruction array", n);
		return -1;
	}
	for (size_t pc = 0; pc < n; pc++)
		if (check_insn(&insns[pc], pc, n, mode, err) < 0)
			return -1;
	if (!(opcode_lookup(insns[n - 1].code)->flags & F_RET)) {
		error_insn(err, (long)(n - 1), "last instruction must be a return");
		return -1;
	}
	if (mode == BPFKIT_VALIDATE_PCAP)
		return 0;
	if (check_memory(insns, n, err) < 0)
		return -1;
	if (mode == BPFKIT_VALIDATE_SOCKET)
		return 0;
	for (size_t pc = 0; pc < n; pc++)
		if (check_seccomp_insn(&insns[pc], pc, err) < 0)
			return -1;
	for (size_t pc = 0; pc < n; pc++)
		if (check_seccomp_return(&insns[pc], pc, err) < 0)
			return -1;
	return 0;
}
