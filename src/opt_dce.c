/*
 * opt_dce.c - dead-code removal: statements whose results no path reads.
 *
 * Liveness of A, X and M[] runs backward over the blocks reachable from the
 * entry.  A statement goes when everything it writes is dead afterwards and
 * it cannot fail (IR_SAFE, from opt_mark_safe's forward analysis): a load
 * that may run past the captured bytes stays even when its value is dead,
 * because on a short packet it is what rejects (libpcap's #430 removed such
 * loads) - unless a load later in the same block reaches at least as far:
 * that one then fails on every packet the first would have failed on, and a
 * failure anywhere in a block has the same outcome (the run returns 0).  A
 * branch whose two targets are one block becomes a jump; `ld #k; tax` whose
 * A is not read afterwards becomes `ldx #k`.
 * A block from which every path returns 0 becomes `ret #0`, statements and
 * all.  Unreachable blocks are left in the array; nothing reaches them.
 */
#include "opt.h"

#include <string.h>

/* The end of the bytes an absolute load reads (a later one reaching as far fails first); else 0. */
static uint64_t abs_end(const struct ir_stmt *st)
{
	int cls = BPFKIT_CLASS(st->code), mode = BPFKIT_MODE(st->code);
	if (cls != BPFKIT_LD && cls != BPFKIT_LDX)
		return 0;
	if (mode == BPFKIT_MSH)
		return (uint64_t)st->k + 1;
	if (mode != BPFKIT_ABS || cls != BPFKIT_LD)
		return 0;
	int size = BPFKIT_SIZE(st->code) == BPFKIT_B ? 1 : BPFKIT_SIZE(st->code) == BPFKIT_H ? 2 : 4;
	return (uint64_t)st->k + (uint64_t)size;
}

int opt_pass_dce(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	if (!fn->marks_fresh && opt_mark_safe(fn, al) != 0)
		return -1;
	int nb = fn->nblocks;
	int *order = mem_alloc_array(al, (size_t)nb, sizeof *order);
	uint32_t *live = mem_alloc_array(al, (size_t)nb, sizeof *live);
	int n = order && live ? opt_topo(fn, al, order) : -1;
	if (n < 0) {
		mem_free(al, order);
		mem_free(al, live);
		return -1;
	}
	/*
	 * A block from which every path returns 0 is `ret #0`: a load that
	 * fails or a division by zero also returns 0, and nothing else a block
	 * does can be seen.  (live[] holds 1 for such blocks during this sweep.)
	 */
	for (int i = n - 1; i >= 0; i--) {
		struct ir_block *b = &fn->blocks[order[i]];
		bool zero = b->term == IR_RET ? b->k == 0 : true;
		for (int s = 0; s < opt_nsucc(b); s++)
			zero = zero && live[b->succ[s]];
		live[order[i]] = zero;
		if (zero && b->term != IR_RET) {
			b->term = IR_RET;
			b->k = 0;
			b->nstmts = 0;
		}
	}
	for (int i = n - 1; i >= 0; i--) {
		struct ir_block *b = &fn->blocks[order[i]];
		if (b->term == IR_BRANCH && b->succ[0] == b->succ[1])
			b->term = IR_JUMP;
		uint32_t l = 0;
		for (int s = 0; s < opt_nsucc(b); s++)
			l |= live[b->succ[s]];
		/*
		 * `and #m; jeq #0` is `jset #m` with the targets swapped (and
		 * `and #m; jeq #m`, m one bit, is `jset #m`) when the masked A is
		 * not read afterwards.
		 */
		if (b->term == IR_BRANCH && b->nstmts && !(l & OPT_REG_BIT(OPT_A)) &&
		    b->jcode == (BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K) &&
		    b->stmts[b->nstmts - 1].code == (BPFKIT_ALU | BPFKIT_AND | BPFKIT_K)) {
			uint32_t m = b->stmts[b->nstmts - 1].k;
			if (b->k == 0 || (b->k == m && m && !(m & (m - 1)))) {
				if (b->k == 0) {
					int t = b->succ[0];
					b->succ[0] = b->succ[1];
					b->succ[1] = t;
				}
				b->jcode = BPFKIT_JMP | BPFKIT_JSET | BPFKIT_K;
				b->k = m;
				b->nstmts--;
			}
		}
		l |= opt_term_uses(b);
		int o = b->nstmts;
		uint64_t probe = 0;   /* farthest end of an absolute load later in the block */
		for (int s = b->nstmts - 1; s >= 0; s--) {
			/* `ld #k; tax` with A dead after it is `ldx #k` (the ld then dies) */
			if (b->stmts[s].code == (BPFKIT_MISC | BPFKIT_TAX) && !(l & OPT_REG_BIT(OPT_A)) &&
			    s > 0 && b->stmts[s - 1].code == (BPFKIT_LD | BPFKIT_IMM))
				b->stmts[s] = (struct ir_stmt){BPFKIT_LDX | BPFKIT_IMM, IR_SAFE,
							       b->stmts[s - 1].k};
			const struct ir_stmt *st = &b->stmts[s];
			uint32_t defs = opt_defs(st);
			uint64_t end = abs_end(st);
			if (!(defs & l) && ((st->flags & IR_SAFE) || (end && end <= probe)))
				continue;
			l = (l & ~defs) | opt_uses(st);
			if (end > probe)
				probe = end;
			b->stmts[--o] = *st;
		}
		if (o > 0) {
			memmove(b->stmts, b->stmts + o, (size_t)(b->nstmts - o) * sizeof *b->stmts);
			b->nstmts -= o;
		}
		live[order[i]] = l;
	}
	mem_free(al, order);
	mem_free(al, live);
	return 0;
}
