/*
 * test_validate.c - one table row per validation rule per mode, valid and
 * invalid: each row checks the verdict, the instruction index in err->insn
 * and a word of the message.  The kernel and libpcap judge the same rules on
 * random programs in test_kernel.c.
 */
#include "harness.h"

#include <limits.h>

#include "bpfkit.h"

#define S(code, k) {(code), 0, 0, (k)}
#define J(code, jt, jf, k) {(code), (jt), (jf), (k)}
#define RET0 S(0x06, 0)
#define RETA S(0x16, 0)
#define AD(off) (BPFKIT_SKF_AD_OFF + (off))

enum { SOCK = BPFKIT_VALIDATE_SOCKET, PCAP = BPFKIT_VALIDATE_PCAP,
       SECC = BPFKIT_VALIDATE_SECCOMP };

#define ALLOW 0x7fff0000u
#define KILL 0x80000000u

struct row {
	const char *name;
	int mode;
	size_t n;
	struct bpfkit_insn p[8];
	long insn;        /* expected err->insn when invalid */
	/* n > 8 only for length errors, which are found before any instruction is read. */
	const char *word; /* NULL: the program is valid */
};

static const struct row rows[] = {
	/* ---- socket: the kernel's SO_ATTACH_FILTER rules ---- */
	{"sock ok ret", SOCK, 1, {RET0}, 0, NULL},
	{"sock empty", SOCK, 0, {RET0}, -1, "empty"},
	{"sock 4096 is the limit", SOCK, 4097, {RET0}, -1, "at most 4096"},
	{"sock unknown opcode", SOCK, 2, {S(0x18, 0), RET0}, 0, "unknown opcode 0x18"},
	{"sock unknown wide opcode", SOCK, 2, {RET0, S(0x106, 0)}, 1, "unknown opcode 0x106"},
	{"sock ret x is not an opcode", SOCK, 1, {S(0x0e, 0)}, 0, "unknown opcode 0x0e"},
	{"sock div 1", SOCK, 2, {S(0x34, 1), RETA}, 0, NULL},
	{"sock div 0", SOCK, 2, {S(0x34, 0), RETA}, 0, "division by constant 0"},
	{"sock mod 0", SOCK, 3, {S(0x00, 1), S(0x94, 0), RETA}, 1, "modulo by constant 0"},
	{"sock div x not checked", SOCK, 2, {S(0x3c, 0), RETA}, 0, NULL},
	{"sock lsh 31", SOCK, 2, {S(0x64, 31), RETA}, 0, NULL},
	{"sock lsh 32", SOCK, 2, {S(0x64, 32), RETA}, 0, "shift by constant 32"},
	{"sock rsh 40", SOCK, 2, {S(0x74, 40), RETA}, 0, "shift"},
	{"sock lsh x not checked", SOCK, 2, {S(0x6c, 0), RETA}, 0, NULL},
	{"sock M[15]", SOCK, 3, {S(0x02, 15), S(0x60, 15), RETA}, 0, NULL},
	{"sock st M[16]", SOCK, 2, {S(0x02, 16), RET0}, 0, "M[16] does not exist"},
	{"sock stx M[16]", SOCK, 2, {S(0x03, 16), RET0}, 0, "M[16]"},
	{"sock ldx M[99]", SOCK, 2, {S(0x61, 99), RET0}, 0, "M[99]"},
	{"sock ja ok", SOCK, 3, {S(0x05, 1), RET0, RETA}, 0, NULL},
	{"sock ja past end", SOCK, 2, {S(0x05, 1), RET0}, 0,
	 "jump target 2 is past the end of the program (2 instructions)"},
	{"sock ja 32-bit wrap", SOCK, 3, {RET0, S(0x05, 0xffffffffu), RET0}, 1, "past the end"},
	{"sock jeq ok", SOCK, 3, {J(0x15, 1, 0, 0), RET0, RETA}, 0, NULL},
	{"sock jt past end", SOCK, 3, {J(0x15, 2, 0, 0), RET0, RETA}, 0, "true branch"},
	{"sock jf past end", SOCK, 3, {J(0x3d, 0, 9, 0), RET0, RETA}, 0,
	 "jump target 10 is past the end of the program (3 instructions)"},
	{"sock anc proto", SOCK, 2, {S(0x20, AD(0)), RETA}, 0, NULL},
	{"sock anc vlan_tpid byte", SOCK, 2, {S(0x30, AD(60)), RETA}, 0, NULL},
	{"sock anc unknown 64", SOCK, 2, {S(0x28, AD(64)), RETA}, 0, "unknown ancillary"},
	{"sock anc unaligned", SOCK, 2, {S(0x20, AD(2)), RETA}, 0, "SKF_AD_OFF+2"},
	{"sock net offset ok", SOCK, 2, {S(0x20, BPFKIT_SKF_NET_OFF), RETA}, 0, NULL},
	{"sock ind at AD offset ok", SOCK, 2, {S(0x40, AD(64)), RETA}, 0, NULL},
	{"sock msh at AD offset ok", SOCK, 2, {S(0xb1, AD(64)), RETA}, 0, NULL},
	{"sock last not ret", SOCK, 1, {S(0x00, 1)}, 0, "last instruction must be a return"},
	{"sock ret then ld", SOCK, 2, {RET0, S(0x00, 1)}, 1, "must be a return"},
	{"sock M read unwritten", SOCK, 2, {S(0x60, 3), RETA}, 0,
	 "M[3] may be read before it is written"},
	{"sock M written then read", SOCK, 3, {S(0x03, 3), S(0x61, 3), RETA}, 0, NULL},
	{"sock M written on one path", SOCK, 4,
	 {J(0x15, 0, 1, 0), S(0x02, 0), S(0x60, 0), RETA}, 2, "M[0] may be read"},
	{"sock M written on both paths", SOCK, 6,
	 {J(0x15, 0, 2, 0), S(0x02, 0), S(0x05, 1), S(0x03, 0), S(0x60, 0), RETA}, 0, NULL},
	/* Quirks of the kernel's linear rule, kept on purpose. */
	{"sock quirk dead code after ja", SOCK, 3, {S(0x05, 1), S(0x60, 0), RET0}, 0, NULL},
	{"sock quirk state crosses ret", SOCK, 4, {S(0x02, 0), RET0, S(0x60, 0), RETA}, 0, NULL},
	{"sock quirk dead read after ret", SOCK, 3, {RET0, S(0x60, 0), RETA}, 1, "M[0] may be"},
	{"sock quirk fall-in state narrows", SOCK, 7,
	 {J(0x15, 0, 2, 0), S(0x02, 0), J(0x15, 2, 0, 1), RET0, S(0x06, 1), S(0x60, 0), RETA},
	 5, "M[0] may be read"},
	{"sock order: opcode before memory", SOCK, 3, {S(0x60, 0), S(0x18, 0), RETA}, 1,
	 "unknown opcode"},
	{"sock order: last ret before memory", SOCK, 2, {S(0x60, 0), S(0x00, 0)}, 1,
	 "last instruction"},

	/* ---- pcap: libpcap's bpf_validate, plus bpfkit's differences ---- */
	{"pcap ok", PCAP, 2, {S(0x28, 12), RETA}, 0, NULL},
	{"pcap empty", PCAP, 0, {RET0}, -1, "empty"},
	{"pcap over INT_MAX", PCAP, (size_t)INT_MAX + 1, {RET0}, -1, "at most"},
	{"pcap unknown opcode", PCAP, 2, {S(0x18, 0), RET0}, 0, "unknown opcode 0x18"},
	{"pcap unknown wide opcode", PCAP, 2, {S(0x120, 0), RET0}, 0, "unknown opcode"},
	{"pcap div 0", PCAP, 2, {S(0x34, 0), RETA}, 0, "division by constant 0"},
	{"pcap mod 0", PCAP, 2, {S(0x94, 0), RETA}, 0, "modulo by constant 0"},
	{"pcap lsh 32 (difference)", PCAP, 2, {S(0x64, 32), RETA}, 0, "shift"},
	{"pcap M[16]", PCAP, 2, {S(0x60, 16), RETA}, 0, "M[16]"},
	{"pcap M unwritten read ok", PCAP, 2, {S(0x60, 3), RETA}, 0, NULL},
	{"pcap ja past end", PCAP, 2, {S(0x05, 1), RET0}, 0, "past the end"},
	{"pcap ja wrap (difference)", PCAP, 2, {S(0x05, 0xffffffffu), RET0}, 0, "past the end"},
	{"pcap jf past end", PCAP, 3, {J(0x25, 0, 2, 0), RET0, RETA}, 0, "false branch"},
	{"pcap anc (difference)", PCAP, 2, {S(0x30, AD(4)), RETA}, 0,
	 "ancillary load not allowed in pcap mode"},
	{"pcap unknown anc too", PCAP, 2, {S(0x20, AD(64)), RETA}, 0, "ancillary load"},
	{"pcap negative ind ok", PCAP, 2, {S(0x50, AD(4)), RETA}, 0, NULL},
	{"pcap last not ret", PCAP, 2, {RET0, S(0x87, 0)}, 1, "last instruction"},

	/* ---- seccomp: classic checks, seccomp_check_filter, return actions ---- */
	{"secc ok", SECC, 4, {S(0x20, 0), J(0x15, 0, 1, 59), S(0x06, ALLOW), S(0x06, KILL)}, 0,
	 NULL},
	{"secc empty", SECC, 0, {RET0}, -1, "empty"},
	{"secc too long", SECC, 4097, {RET0}, -1, "at most 4096"},
	{"secc ld [60]", SECC, 2, {S(0x20, 60), RETA}, 0, NULL},
	{"secc ld [64]", SECC, 2, {S(0x20, 64), RETA}, 0, "inside struct seccomp_data"},
	{"secc ld [2]", SECC, 2, {S(0x20, 2), RETA}, 0, "aligned"},
	{"secc ldh", SECC, 2, {S(0x28, 0), RETA}, 0, "half-word load not allowed"},
	{"secc ldb", SECC, 2, {S(0x30, 0), RETA}, 0, "byte or half-word"},
	{"secc ld ind", SECC, 2, {S(0x40, 0), RETA}, 0, "packet-relative load"},
	{"secc ldx msh", SECC, 2, {S(0xb1, 0), RET0}, 0, "packet-relative"},
	{"secc ld anc proto", SECC, 2, {S(0x20, AD(0)), RETA}, 0, "seccomp_data"},
	{"secc ld anc unknown", SECC, 2, {S(0x20, AD(2)), RETA}, 0, "unknown ancillary"},
	{"secc mod", SECC, 2, {S(0x94, 3), RETA}, 0, "modulo not allowed"},
	{"secc mod x", SECC, 2, {S(0x9c, 0), RETA}, 0, "modulo not allowed"},
	{"secc xor", SECC, 3, {S(0xa4, 3), S(0xac, 0), RETA}, 0, NULL},
	{"secc len", SECC, 3, {S(0x80, 0), S(0x81, 0), RETA}, 0, NULL},
	{"secc div 0", SECC, 2, {S(0x34, 0), RETA}, 0, "division by constant 0"},
	{"secc M unwritten", SECC, 2, {S(0x60, 1), RETA}, 0, "M[1] may be read"},
	{"secc order: memory before seccomp", SECC, 3, {S(0x28, 0), S(0x60, 1), RETA}, 1,
	 "M[1]"},
	{"secc ret errno", SECC, 1, {S(0x06, 0x00050001u)}, 0, NULL},
	{"secc ret kill thread", SECC, 1, {S(0x06, 0)}, 0, NULL},
	{"secc ret each action", SECC, 7,
	 {J(0x15, 0, 1, 0), S(0x06, 0x80000000u), J(0x15, 0, 1, 1), S(0x06, 0x00030000u),
	  J(0x15, 0, 1, 2), S(0x06, 0x7fc00000u), S(0x06, 0x7ffc0000u)},
	 0, NULL},
	{"secc ret trace", SECC, 1, {S(0x06, 0x7ff00001u)}, 0, NULL},
	{"secc ret unknown action", SECC, 3, {J(0x15, 0, 1, 0), S(0x06, 0x00010000u), RETA}, 1,
	 "no known seccomp action"},
	{"secc ret 0xffff0000", SECC, 1, {S(0x06, 0xffff0000u)}, 0, "seccomp action"},
	{"secc ret a not checked", SECC, 2, {S(0x00, 0x12345678u), RETA}, 0, NULL},
};

TEST(validate_table)
{
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const struct row *r = &rows[i];
		struct bpfkit_error err;
		int rc = bpfkit_validate(r->p, r->n, (enum bpfkit_vmode)r->mode, &err);
		if (!r->word) {
			CHECK_MSG(rc == 0, "%s: rejected: insn %ld: %s", r->name, err.insn,
				  err.message);
			continue;
		}
		CHECK_MSG(rc == -1, "%s: accepted, expected \"%s\"", r->name, r->word);
		if (rc != -1)
			continue;
		CHECK_MSG(err.insn == r->insn, "%s: err.insn %ld, expected %ld (%s)", r->name,
			  err.insn, r->insn, err.message);
		CHECK_MSG(strstr(err.message, r->word) != NULL, "%s: message \"%s\" lacks \"%s\"",
			  r->name, err.message, r->word);
	}
}

TEST(validate_lengths)
{
	static struct bpfkit_insn prog[4097];
	struct bpfkit_error err;
	for (size_t i = 0; i < 4097; i++)
		prog[i] = (struct bpfkit_insn)S(0x87, 0);
	prog[4095] = (struct bpfkit_insn)RETA;
	prog[4096] = (struct bpfkit_insn)RETA;
	CHECK_EQ(bpfkit_validate(prog, 4096, BPFKIT_VALIDATE_SOCKET, &err), 0);
	CHECK_EQ(bpfkit_validate(prog, 4096, BPFKIT_VALIDATE_SECCOMP, &err), 0);
	CHECK_EQ(bpfkit_validate(prog, 4097, BPFKIT_VALIDATE_PCAP, &err), 0);
	CHECK_EQ(bpfkit_validate(prog, 4097, BPFKIT_VALIDATE_SOCKET, &err), -1);
	CHECK_EQ(err.insn, -1);
	CHECK_CONTAINS(err.message, "4097 instructions");
	/* A far jump to the last instruction of the longest program. */
	prog[0] = (struct bpfkit_insn)S(0x05, 4094);
	CHECK_EQ(bpfkit_validate(prog, 4096, BPFKIT_VALIDATE_SOCKET, &err), 0);
	prog[0] = (struct bpfkit_insn)S(0x05, 4095);
	CHECK_EQ(bpfkit_validate(prog, 4096, BPFKIT_VALIDATE_SOCKET, &err), -1);
	CHECK_CONTAINS(err.message, "jump target 4096");
	/* The memory rule on the last cell of the longest program. */
	prog[0] = (struct bpfkit_insn)S(0x02, 15);
	prog[4094] = (struct bpfkit_insn)S(0x61, 15);
	CHECK_EQ(bpfkit_validate(prog, 4096, BPFKIT_VALIDATE_SOCKET, &err), 0);
	prog[0] = (struct bpfkit_insn)S(0x02, 14);
	CHECK_EQ(bpfkit_validate(prog, 4096, BPFKIT_VALIDATE_SOCKET, &err), -1);
	CHECK_EQ(err.insn, 4094);
}

TEST(validate_edges)
{
	struct bpfkit_insn ret = RET0;
	struct bpfkit_error err;
	/* err may be NULL. */
	CHECK_EQ(bpfkit_validate(&ret, 1, BPFKIT_VALIDATE_SOCKET, NULL), 0);
	CHECK_EQ(bpfkit_validate(&ret, 0, BPFKIT_VALIDATE_SOCKET, NULL), -1);
	CHECK_EQ(bpfkit_validate(NULL, 1, BPFKIT_VALIDATE_SOCKET, &err), -1);
	CHECK_EQ(bpfkit_validate(&ret, 1, (enum bpfkit_vmode)7, &err), -1);
	CHECK_CONTAINS(err.message, "mode");
	/* Every mode accepts the smallest program, whatever err held before. */
	for (int m = SOCK; m <= SECC; m++) {
		memset(&err, 0x5a, sizeof err);
		CHECK_EQ(bpfkit_validate(&ret, 1, (enum bpfkit_vmode)m, &err), 0);
	}
	/* Every 8-bit code alone before a return: unknown opcodes name the code. */
	for (unsigned c = 0; c < 0x100; c++) {
		struct bpfkit_insn p[2] = {S(c, 1), RET0};
		int rc = bpfkit_validate(p, 2, BPFKIT_VALIDATE_SOCKET, &err);
		if (bpfkit_opcode_name((uint16_t)c)) {
			/* Known: only jumps past the end or an M[] read can fail here. */
			if (rc != 0)
				CHECK_MSG(strstr(err.message, "past the end") ||
					  strstr(err.message, "may be read"),
					  "0x%02x: %s", c, err.message);
		} else {
			char want[32];
			snprintf(want, sizeof want, "unknown opcode 0x%02x", c);
			CHECK_EQ(rc, -1);
			CHECK_EQ(err.insn, 0);
			CHECK_CONTAINS(err.message, want);
		}
	}
}
