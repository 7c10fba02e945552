/*
 * opcode.c - lookups over the tables in opcodes.h.  The 256-entry index is
 * generated from OPCODE_TABLE at compile time, so every consumer agrees on
 * which codes exist.
 */
#include "internal.h"

#include <string.h>

const struct opcode_info opcode_table[OP__COUNT] = {
#define X(id, code, mnem, opnd, flags) [OP_##id] = {code, mnem, opnd, flags, #id},
	OPCODE_TABLE(X)
#undef X
};

/* code -> row + 1 (0: unknown). */
static const uint8_t code_index[256] = {
#define X(id, code, mnem, opnd, flags) [code] = OP_##id + 1,
	OPCODE_TABLE(X)
#undef X
};

const struct opcode_info *opcode_lookup(uint16_t code)
{
	if (code > 0xff || !code_index[code])
		return NULL;
	return &opcode_table[code_index[code] - 1];
}

const struct anc_info anc_table[ANC__COUNT] = {
#define X(id, off, name, alias) [ANC_##id] = {off, name, alias},
	ANC_TABLE(X)
#undef X
};

const struct anc_info *opcode_anc(uint32_t k)
{
	if (k < BPFKIT_SKF_AD_OFF)
		return NULL;
	uint32_t off = k - BPFKIT_SKF_AD_OFF;
	for (size_t i = 0; i < ANC__COUNT; i++)
		if (anc_table[i].off == off)
			return &anc_table[i];
	return NULL;
}

const struct anc_info *opcode_anc_by_name(const char *name, size_t len)
{
	for (size_t i = 0; i < ANC__COUNT; i++) {
		const struct anc_info *a = &anc_table[i];
		if (strlen(a->name) == len && memcmp(a->name, name, len) == 0)
			return a;
		if (a->alias && strlen(a->alias) == len && memcmp(a->alias, name, len) == 0)
			return a;
	}
	return NULL;
}

BPFKIT_API const char *bpfkit_opcode_name(uint16_t code)
{
	static const char *const desc[OP__COUNT] = {
#define X(id, code, mnem, opnd, flags) [OP_##id] = #id,
		OPCODE_TABLE(X)
#undef X
	};
	const struct opcode_info *o = opcode_lookup(code);
	return o ? desc[o - opcode_table] : NULL;
}

BPFKIT_API const char *bpfkit_anc_name(uint32_t k)
{
	const struct anc_info *a = opcode_anc(k);
	return a ? a->name : NULL;
}

size_t opcode_jeq_chain(const struct bpfkit_insn *insns, size_t n, size_t pc,
			const uint8_t *npred)
{
	const uint16_t jeq = BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K;
	if (insns[pc].code != jeq || insns[pc].jt == 0)
		return 0;
	size_t target = pc + 1 + insns[pc].jt, m = 1;
	while (pc + m < n && insns[pc + m - 1].jf == 0 && insns[pc + m].code == jeq &&
	       insns[pc + m].jt != 0 && pc + m + 1 + insns[pc + m].jt == target &&
	       npred[pc + m] == 1)
		m++;
	return m;
}

bool opcode_alu_fold(int op, uint32_t a, uint32_t b, uint32_t *out)
{
	switch (op) {
	case BPFKIT_ADD: *out = a + b; return true;
	case BPFKIT_SUB: *out = a - b; return true;
	case BPFKIT_MUL: *out = a * b; return true;
	case BPFKIT_DIV: if (!b) return false; *out = a / b; return true;
	case BPFKIT_MOD: if (!b) return false; *out = a % b; return true;
	case BPFKIT_OR: *out = a | b; return true;
	case BPFKIT_AND: *out = a & b; return true;
	case BPFKIT_XOR: *out = a ^ b; return true;
	case BPFKIT_LSH: if (b > 31) return false; *out = a << b; return true;
	case BPFKIT_RSH: if (b > 31) return false; *out = a >> b; return true;
	case BPFKIT_NEG: *out = 0u - a; return true;
	default: return false;
	}
}
