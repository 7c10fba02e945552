/*
 * randprog.c - random valid classic BPF programs (see randprog.h).
 */
#include "randprog.h"

#include "internal.h"

#include <string.h>

uint64_t randprog_next(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint32_t randprog_below(uint64_t *s, uint32_t n)
{
	return n ? (uint32_t)((randprog_next(s) >> 32) % n) : 0;
}

static uint32_t rand_const(uint64_t *s)
{
	static const uint32_t special[] = {0, 1, 2, 3, 4, 7, 8, 0xf, 0x10, 0x1f, 0x20, 0xff, 0x100,
					   0x800, 0x86dd, 0xffff, 0x10000, 0x7fffffff, 0x80000000,
					   0xfffffffe, 0xffffffff};
	switch (randprog_below(s, 4)) {
	case 0:
		return special[randprog_below(s, sizeof special / sizeof special[0])];
	case 1:
		return randprog_below(s, 256);
	case 2:
		return randprog_below(s, 65536);
	default:
		return (uint32_t)randprog_next(s);
	}
}

static uint32_t rand_offset(uint64_t *s, uint32_t caplen_hint, unsigned flags)
{
	switch (randprog_below(s, 8)) {
	case 0: { /* around the end of the packet */
		uint32_t d = randprog_below(s, 9);
		return caplen_hint + d >= 4 ? caplen_hint + d - 4 : d;
	}
	case 1:
		if (flags & RANDPROG_ANC) {
			const struct anc_info *a = &anc_table[randprog_below(s, ANC__COUNT)];
			return BPFKIT_SKF_AD_OFF + a->off;
		}
		return randprog_below(s, 2) ? 0xffffffff - randprog_below(s, 8)
					    : randprog_below(s, 2000);
	default:
		return randprog_below(s, 64);
	}
}

size_t randprog_gen(uint64_t *s, struct bpfkit_insn *out, size_t max, uint32_t caplen_hint,
		    unsigned flags)
{
	size_t n = 1 + randprog_below(s, (uint32_t)(max < 4096 ? max : 4096));
	for (size_t i = 0; i < n; i++) {
		size_t left = n - 1 - i; /* instructions after this one */
		const struct opcode_info *o;
		if (i == n - 1) {
			o = opcode_lookup(randprog_below(s, 3) ? 0x06 : 0x16);
		} else {
			for (;;) {
				o = &opcode_table[randprog_below(s, OP__COUNT)];
				if ((flags & RANDPROG_NO_DIVX) && (o->flags & F_DIV) &&
				    o->operand == OPND_X)
					continue;
				/* Keep returns rare so programs run long enough to matter. */
				if ((o->flags & F_RET) && randprog_below(s, 4))
					continue;
				break;
			}
		}
		struct bpfkit_insn in = {o->code, 0, 0, 0};
		switch (o->operand) {
		case OPND_ABS:
			in.k = rand_offset(s, caplen_hint, flags);
			break;
		case OPND_IND:
			in.k = randprog_below(s, 4) ? randprog_below(s, 40)
						    : rand_offset(s, caplen_hint, 0);
			break;
		case OPND_MSH:
			in.k = rand_offset(s, caplen_hint, 0);
			if (in.k >= BPFKIT_SKF_AD_OFF)
				in.k = randprog_below(s, 64);
			break;
		case OPND_MEM:
			in.k = randprog_below(s, BPFKIT_MEMWORDS);
			break;
		case OPND_IMM:
		case OPND_K:
			in.k = rand_const(s);
			if ((o->flags & F_DIV) && in.k == 0)
				in.k = 1 + randprog_below(s, 16);
			if (o->flags & F_SHIFT)
				in.k = randprog_below(s, 32);
			if (o->flags & F_RET)
				in.k = randprog_below(s, 3) ? 0xffff : (randprog_below(s, 2) ? 0 : rand_const(s));
			break;
		case OPND_JA:
			in.k = left ? randprog_below(s, (uint32_t)(left < 12 ? left : 12)) : 0;
			if (left == 0) /* a jump cannot be last; the loop never puts one there */
				in.k = 0;
			break;
		default:
			break;
		}
		if (o->flags & F_COND) {
			uint32_t span = (uint32_t)(left < 256 ? left : 256);
			if (span == 0)
				span = 1;
			in.jt = (uint8_t)randprog_below(s, span < 10 ? span : 10);
			in.jf = (uint8_t)randprog_below(s, span < 10 ? span : 10);
			if (randprog_below(s, 8) == 0)
				in.jt = (uint8_t)randprog_below(s, span);
		}
		out[i] = in;
	}
	randprog_fix_memory(out, n);
	return n;
}

void randprog_fix_memory(struct bpfkit_insn *prog, size_t n)
{
	uint16_t masks[4096];
	uint16_t valid = 0;
	if (n > 4096)
		return;
	memset(masks, 0xff, sizeof masks);
	for (size_t pc = 0; pc < n; pc++) {
		struct bpfkit_insn *in = &prog[pc];
		const struct opcode_info *o = opcode_lookup(in->code);
		valid &= masks[pc];
		if (!o)
			continue;
		if (o->flags & F_WR_M) {
			valid |= (uint16_t)(1u << (in->k & 15));
		} else if (o->flags & F_RD_M) {
			if (!(valid & (1u << (in->k & 15)))) {
				in->code = in->code == 0x60 ? 0x02 : 0x03; /* ld M -> st, ldx M -> stx */
				valid |= (uint16_t)(1u << (in->k & 15));
			}
		} else if (o->flags & F_JUMP) {
			if (pc + 1 + in->k < n)
				masks[pc + 1 + in->k] &= valid;
			valid = 0xffff;
		} else if (o->flags & F_COND) {
			if (pc + 1 + in->jt < n)
				masks[pc + 1 + in->jt] &= valid;
			if (pc + 1 + in->jf < n)
				masks[pc + 1 + in->jf] &= valid;
			valid = 0xffff;
		}
	}
}
