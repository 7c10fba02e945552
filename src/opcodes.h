/*
 * opcodes.h - the classic BPF instruction set, described once.
 *
 * OPCODE_TABLE(X) lists every opcode the Linux kernel's classic checker
 * accepts.  Each row: X(id, code, mnemonic, operand, flags).  The assembler's
 * mnemonics, the disassembler, the validators' whitelists and the
 * interpreter's dispatch are all generated from this list, so they cannot
 * disagree: adding a row without teaching the interpreter breaks the build.
 *
 * ANC_TABLE(X) lists the Linux ancillary loads (offset SKF_AD_OFF + off):
 * X(id, off, name, alias).  name is the bpf_asm keyword (used as `#name`).
 */
#ifndef BPFKIT_OPCODES_H
#define BPFKIT_OPCODES_H

/* Operand shapes, as bpf_asm spells them. */
enum operand {
	OPND_NONE,  /* neg, tax, txa */
	OPND_ABS,   /* [k] */
	OPND_IND,   /* [x + k] */
	OPND_LEN,   /* #len (the wire length) */
	OPND_IMM,   /* #k into A or X */
	OPND_MEM,   /* M[k] */
	OPND_MSH,   /* 4*([k]&0xf) */
	OPND_K,     /* #k operand of an ALU op, jump or ret */
	OPND_X,     /* x */
	OPND_A,     /* a (ret a) */
	OPND_JA     /* unconditional jump target */
};

/* What an instruction touches; the analyses read these. */
enum {
	F_RD_A = 1 << 0,
	F_RD_X = 1 << 1,
	F_WR_A = 1 << 2,
	F_WR_X = 1 << 3,
	F_RD_M = 1 << 4,
	F_WR_M = 1 << 5,
	F_PKT = 1 << 6,   /* reads packet bytes (may end the program when short) */
	F_JUMP = 1 << 7,  /* unconditional jump */
	F_COND = 1 << 8,  /* conditional jump: jt/jf */
	F_RET = 1 << 9,   /* ends the program */
	F_DIV = 1 << 10,  /* divides by its source (k or X) */
	F_SHIFT = 1 << 11 /* shifts by its source */
};

#define OPCODE_TABLE(X) \
	X(LD_W_ABS,  0x20, "ld",   OPND_ABS,  F_PKT | F_WR_A) \
	X(LD_H_ABS,  0x28, "ldh",  OPND_ABS,  F_PKT | F_WR_A) \
	X(LD_B_ABS,  0x30, "ldb",  OPND_ABS,  F_PKT | F_WR_A) \
	X(LD_W_IND,  0x40, "ld",   OPND_IND,  F_PKT | F_RD_X | F_WR_A) \
	X(LD_H_IND,  0x48, "ldh",  OPND_IND,  F_PKT | F_RD_X | F_WR_A) \
	X(LD_B_IND,  0x50, "ldb",  OPND_IND,  F_PKT | F_RD_X | F_WR_A) \
	X(LD_W_LEN,  0x80, "ld",   OPND_LEN,  F_WR_A) \
	X(LD_IMM,    0x00, "ld",   OPND_IMM,  F_WR_A) \
	X(LD_MEM,    0x60, "ld",   OPND_MEM,  F_RD_M | F_WR_A) \
	X(LDX_IMM,   0x01, "ldx",  OPND_IMM,  F_WR_X) \
	X(LDX_MEM,   0x61, "ldx",  OPND_MEM,  F_RD_M | F_WR_X) \
	X(LDX_LEN,   0x81, "ldx",  OPND_LEN,  F_WR_X) \
	X(LDX_MSH,   0xb1, "ldxb", OPND_MSH,  F_PKT | F_WR_X) \
	X(ST,        0x02, "st",   OPND_MEM,  F_RD_A | F_WR_M) \
	X(STX,       0x03, "stx",  OPND_MEM,  F_RD_X | F_WR_M) \
	X(ADD_K,     0x04, "add",  OPND_K,    F_RD_A | F_WR_A) \
	X(SUB_K,     0x14, "sub",  OPND_K,    F_RD_A | F_WR_A) \
	X(MUL_K,     0x24, "mul",  OPND_K,    F_RD_A | F_WR_A) \
	X(DIV_K,     0x34, "div",  OPND_K,    F_RD_A | F_WR_A | F_DIV) \
	X(OR_K,      0x44, "or",   OPND_K,    F_RD_A | F_WR_A) \
	X(AND_K,     0x54, "and",  OPND_K,    F_RD_A | F_WR_A) \
	X(LSH_K,     0x64, "lsh",  OPND_K,    F_RD_A | F_WR_A | F_SHIFT) \
	X(RSH_K,     0x74, "rsh",  OPND_K,    F_RD_A | F_WR_A | F_SHIFT) \
	X(MOD_K,     0x94, "mod",  OPND_K,    F_RD_A | F_WR_A | F_DIV) \
	X(XOR_K,     0xa4, "xor",  OPND_K,    F_RD_A | F_WR_A) \
	X(ADD_X,     0x0c, "add",  OPND_X,    F_RD_A | F_RD_X | F_WR_A) \
	X(SUB_X,     0x1c, "sub",  OPND_X,    F_RD_A | F_RD_X | F_WR_A) \
	X(MUL_X,     0x2c, "mul",  OPND_X,    F_RD_A | F_RD_X | F_WR_A) \
	X(DIV_X,     0x3c, "div",  OPND_X,    F_RD_A | F_RD_X | F_WR_A | F_DIV) \
	X(OR_X,      0x4c, "or",   OPND_X,    F_RD_A | F_RD_X | F_WR_A) \
	X(AND_X,     0x5c, "and",  OPND_X,    F_RD_A | F_RD_X | F_WR_A) \
	X(LSH_X,     0x6c, "lsh",  OPND_X,    F_RD_A | F_RD_X | F_WR_A | F_SHIFT) \
	X(RSH_X,     0x7c, "rsh",  OPND_X,    F_RD_A | F_RD_X | F_WR_A | F_SHIFT) \
	X(MOD_X,     0x9c, "mod",  OPND_X,    F_RD_A | F_RD_X | F_WR_A | F_DIV) \
	X(XOR_X,     0xac, "xor",  OPND_X,    F_RD_A | F_RD_X | F_WR_A) \
	X(NEG,       0x84, "neg",  OPND_NONE, F_RD_A | F_WR_A) \
	X(JA,        0x05, "ja",   OPND_JA,   F_JUMP) \
	X(JEQ_K,     0x15, "jeq",  OPND_K,    F_RD_A | F_COND) \
	X(JGT_K,     0x25, "jgt",  OPND_K,    F_RD_A | F_COND) \
	X(JGE_K,     0x35, "jge",  OPND_K,    F_RD_A | F_COND) \
	X(JSET_K,    0x45, "jset", OPND_K,    F_RD_A | F_COND) \
	X(JEQ_X,     0x1d, "jeq",  OPND_X,    F_RD_A | F_RD_X | F_COND) \
	X(JGT_X,     0x2d, "jgt",  OPND_X,    F_RD_A | F_RD_X | F_COND) \
	X(JGE_X,     0x3d, "jge",  OPND_X,    F_RD_A | F_RD_X | F_COND) \
	X(JSET_X,    0x4d, "jset", OPND_X,    F_RD_A | F_RD_X | F_COND) \
	X(RET_K,     0x06, "ret",  OPND_K,    F_RET) \
	X(RET_A,     0x16, "ret",  OPND_A,    F_RD_A | F_RET) \
	X(TAX,       0x07, "tax",  OPND_NONE, F_RD_A | F_WR_X) \
	X(TXA,       0x87, "txa",  OPND_NONE, F_RD_X | F_WR_A)

#define ANC_TABLE(X) \
	X(PROTOCOL,         0,  "proto",      NULL) \
	X(PKTTYPE,          4,  "type",       NULL) \
	X(IFINDEX,          8,  "ifidx",      NULL) \
	X(NLATTR,           12, "nla",        NULL) \
	X(NLATTR_NEST,      16, "nlan",       NULL) \
	X(MARK,             20, "mark",       NULL) \
	X(QUEUE,            24, "queue",      NULL) \
	X(HATYPE,           28, "hatype",     NULL) \
	X(RXHASH,           32, "rxhash",     NULL) \
	X(CPU,              36, "cpu",        NULL) \
	X(ALU_XOR_X,        40, "xor_x",      NULL) \
	X(VLAN_TAG,         44, "vlan_tci",   NULL) \
	X(VLAN_TAG_PRESENT, 48, "vlan_avail", "vlan_pr") \
	X(PAY_OFFSET,       52, "poff",       NULL) \
	X(RANDOM,           56, "rand",       NULL) \
	X(VLAN_TPID,        60, "vlan_tpid",  NULL)

enum opcode_id {
#define X(id, code, mnem, opnd, flags) OP_##id,
	OPCODE_TABLE(X)
#undef X
	OP__COUNT
};

enum anc_id {
#define X(id, off, name, alias) ANC_##id,
	ANC_TABLE(X)
#undef X
	ANC__COUNT
};

#endif
