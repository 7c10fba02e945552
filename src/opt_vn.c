/*
 * opt_vn.c - value numbering across blocks: no load or computation is
 * repeated on a path where its value is already in a register.
 *
 * A forward walk in topological order gives every statement the registers'
 * value numbers on entry (the meet over all paths: a register whose paths
 * disagree holds an opaque value).  Then, for each statement:
 * - it goes when it writes only values its registers already hold (a load
 *   whose value is in A was done on every path, so it cannot fail now);
 * - a statement whose result is a known constant becomes `ld #k` / `ldx #k`;
 * - a load of the value X holds becomes `txa` (of the value A holds: `tax`);
 * - an ALU operation or a branch on X when X is a known constant uses the
 *   constant (not for shifts by 32 or more, whose meaning differs);
 * - it is marked IR_SAFE when it cannot fail on any path (dce relies on it).
 * The last run (opt_pass_vn_abs) also makes `ld [x + k]` with a known X
 * the absolute load of the same bytes: the code generator writes IPv6
 * transport loads relative to X = 40 so that tails can be shared with IPv4;
 * where no tail was shared X is still known and the `ldx` then dies.
 * Rewrites never change a register's value, so facts computed before a
 * rewrite stay true after it.
 */
#include "opt.h"

#include <string.h>

static bool is_load(uint16_t c)
{
	int cls = BPFKIT_CLASS(c);
	return cls == BPFKIT_LD || cls == BPFKIT_LDX;
}

/*
 * Drops runs of statements that end with every register as it was before
 * them and cannot fail (`ld [30]; and #m` when A already holds [30] & m).
 * Runs on a copy of the entry context; blocks are short, so the quadratic
 * search is cheap (it gives up on long blocks).
 */
static void drop_round_trips(struct opt_walk *w, struct ir_block *blk, const struct opt_ctx *in)
{
	enum { MAXRUN = 32 };
	if (blk->nstmts < 2 || blk->nstmts > MAXRUN)
		return;
	struct opt_state st[MAXRUN + 1];
	bool safe[MAXRUN];
	struct opt_facts f;
	if (!opt_facts_copy(w->al, &f, &in->facts))
		return;
	st[0] = in->st;
	for (int s = 0; s < blk->nstmts; s++) {
		st[s + 1] = st[s];
		safe[s] = opt_eval(&w->vals, w->al, &st[s + 1], &f, &blk->stmts[s], true) == 1;
	}
	opt_facts_free(w->al, &f);
	int o = 0;
	for (int i = 0; i < blk->nstmts;) {
		int end = -1;
		for (int j = i; j < blk->nstmts && safe[j]; j++)
			if (!memcmp(&st[j + 1], &st[i], sizeof st[i]))
				end = j;
		if (end > i) {
			i = end + 1;
			continue;
		}
		blk->stmts[o++] = blk->stmts[i++];
	}
	blk->nstmts = o;
}

/*
 * `tax` making X = X + c (A = X + c: `ld #c; add x`, how a constant offset
 * from a variable base is written), read after it only by indirect loads of
 * this block and dead at its exit: the tax goes and c moves into the loads'
 * offsets, `ld #0xab; add x; tax; ldb [x + 40]` becomes `ldb [x + 211]`
 * (dce then drops the add).  Exact when the old X's largest value plus c
 * does not reach 2^32: the 32-bit sum in A then equals the true sum, and
 * [(X + c) + k] reads the bytes of [X + (c + k)].  before[s] is the state
 * before statement s.  Returns X's value at the block's exit.
 */
static int fold_index_add(struct opt_walk *w, struct ir_block *blk, const struct opt_state *before,
			  int x_out, uint32_t live_out)
{
	for (int t = 0; t < blk->nstmts; t++) {
		if (blk->stmts[t].code != (BPFKIT_MISC | BPFKIT_TAX))
			continue;
		int xv = before[t].r[OPT_X], av = before[t].r[OPT_A];
		if (xv < 0 || av < 0)
			continue;
		const struct opt_val *a = &w->vals.v[av];
		uint32_t c;
		if (a->kind != OV_ALU || a->op != BPFKIT_ADD)
			continue;
		if (!(a->a == xv && opt_is_const(&w->vals, a->b, &c)) &&
		    !(a->b == xv && opt_is_const(&w->vals, a->a, &c)))
			continue;
		uint64_t hi = w->vals.v[xv].hi;
		if (hi + c > 0xffffffffu)
			continue;
		int end = blk->nstmts;
		bool ok = true;
		for (int j = t + 1; j < blk->nstmts && ok; j++) {
			const struct ir_stmt *s = &blk->stmts[j];
			if (opt_uses(s) & OPT_REG_BIT(OPT_X))
				ok = (BPFKIT_CLASS(s->code) == BPFKIT_LD ||
				      BPFKIT_CLASS(s->code) == BPFKIT_LDX) &&
				     BPFKIT_MODE(s->code) == BPFKIT_IND &&
				     (uint64_t)s->k + c <= 0xffffffffu;
			if (ok && (opt_defs(s) & OPT_REG_BIT(OPT_X))) {
				end = j;
				break;
			}
		}
		if (!ok || (end == blk->nstmts &&
			    ((live_out | opt_term_uses(blk)) & OPT_REG_BIT(OPT_X))))
			continue;
		for (int j = t + 1; j < end; j++)
			if (opt_uses(&blk->stmts[j]) & OPT_REG_BIT(OPT_X))
				blk->stmts[j].k += c;
		memmove(&blk->stmts[t], &blk->stmts[t + 1],
			(size_t)(blk->nstmts - t - 1) * sizeof blk->stmts[0]);
		blk->nstmts--;
		return end == blk->nstmts + 1 ? xv : x_out;
	}
	return x_out;
}

static int walk(struct ir_func *fn, const struct bpfkit_alloc *al, bool rewrite, bool absolute)
{
	enum { MAXFOLD = 64 };
	struct opt_walk w;
	if (opt_walk_init(&w, fn, al, absolute) != 0)
		return -1;
	for (int i = 0; i < w.n; i++) {
		int b = w.order[i];
		struct ir_block *blk = &fn->blocks[b];
		struct opt_ctx ctx;
		if (!opt_walk_take(&w, b, &ctx)) {
			/* not reached by a feasible path: say nothing is safe */
			for (int s = 0; s < blk->nstmts; s++)
				blk->stmts[s].flags &= (uint8_t)~IR_SAFE;
			continue;
		}
		if (rewrite)
			drop_round_trips(&w, blk, &ctx);
		int o = 0;
		struct opt_state befores[MAXFOLD];
		for (int s = 0; s < blk->nstmts; s++) {
			struct ir_stmt *st = &blk->stmts[s];
			struct opt_state before = ctx.st;
			int safe = opt_eval(&w.vals, al, &ctx.st, &ctx.facts, st, true);
			struct ir_stmt ns = *st;
			ns.flags = safe ? IR_SAFE : 0;
			if (rewrite && safe) {
				uint32_t defs = opt_defs(st);
				bool same = true;
				for (int r = 0; r < OPT_NREGS; r++)
					if ((defs & OPT_REG_BIT(r)) && ctx.st.r[r] != before.r[r])
						same = false;
				if (same)
					continue;   /* drop it */
				uint32_t k;
				int cls = BPFKIT_CLASS(st->code);
				int dst = defs == OPT_REG_BIT(OPT_A) ? OPT_A
					  : defs == OPT_REG_BIT(OPT_X) ? OPT_X : -1;
				if (dst >= 0 && opt_is_const(&w.vals, ctx.st.r[dst], &k)) {
					ns.code = dst == OPT_A ? BPFKIT_LD | BPFKIT_IMM
							       : BPFKIT_LDX | BPFKIT_IMM;
					ns.k = k;
				} else if (absolute && cls == BPFKIT_ALU &&
					   BPFKIT_SRC(st->code) == BPFKIT_X &&
					   BPFKIT_OP(st->code) != BPFKIT_NEG &&
					   opt_is_const(&w.vals, before.r[OPT_X], &k) &&
					   (k || (BPFKIT_OP(st->code) != BPFKIT_DIV &&
						  BPFKIT_OP(st->code) != BPFKIT_MOD)) &&
					   (k < 32 || (BPFKIT_OP(st->code) != BPFKIT_LSH &&
						       BPFKIT_OP(st->code) != BPFKIT_RSH))) {
					/* op x with a known X: op #k (X may then die) */
					ns.code = (uint16_t)((st->code & ~BPFKIT_X) | BPFKIT_K);
					ns.k = k;
				} else if (dst == OPT_A && (is_load(st->code) || cls == BPFKIT_ALU) &&
					   ctx.st.r[OPT_A] == before.r[OPT_X]) {
					ns.code = BPFKIT_MISC | BPFKIT_TXA;
					ns.k = 0;
				} else if (dst == OPT_X && is_load(st->code) &&
					   ctx.st.r[OPT_X] == before.r[OPT_A]) {
					ns.code = BPFKIT_MISC | BPFKIT_TAX;
					ns.k = 0;
				}
			}
			uint32_t x;
			if (absolute && is_load(ns.code) && BPFKIT_MODE(ns.code) == BPFKIT_IND &&
			    opt_is_const(&w.vals, before.r[OPT_X], &x) && x < 0x80000000u &&
			    ns.k < 0x80000000u - x) {
				/*
				 * [x + k] with a known X: the same bytes, absolute (below
				 * 2^31: far offsets mean Linux's ancillary data)
				 */
				ns.code = (uint16_t)((ns.code & ~0xe0) | BPFKIT_ABS);
				ns.k += x;
			}
			if (o < MAXFOLD)
				befores[o] = before;
			blk->stmts[o++] = ns;
		}
		blk->nstmts = o;
		if (absolute && o <= MAXFOLD && !ctx.facts.dead) {
			uint32_t live_out = 0;
			for (int s = 0; s < opt_nsucc(blk); s++)
				live_out |= w.live[blk->succ[s]];
			ctx.st.r[OPT_X] = fold_index_add(&w, blk, befores, ctx.st.r[OPT_X], live_out);
		}
		if (blk->term == IR_RET || ctx.facts.dead) {
			opt_facts_free(al, &ctx.facts);
			continue;
		}
		uint32_t k;
		if (rewrite && blk->term == IR_BRANCH && BPFKIT_SRC(blk->jcode) == BPFKIT_X &&
		    opt_is_const(&w.vals, ctx.st.r[OPT_X], &k)) {
			blk->jcode = (uint16_t)((blk->jcode & ~BPFKIT_X) | BPFKIT_K);
			blk->k = k;
		}
		int ns = opt_nsucc(blk);
		for (int s = 0; s < ns; s++) {
			struct opt_ctx e;
			opt_walk_edge(&w, blk, &ctx, s, &e);
			opt_walk_send(&w, blk->succ[s], &e);
		}
		opt_facts_free(al, &ctx.facts);
		if (w.vals.failed)
			break;
	}
	int rc = w.vals.failed ? -1 : 0;
	opt_walk_free(&w);
	return rc;
}

int opt_pass_vn(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	return walk(fn, al, true, false);
}

int opt_pass_vn_abs(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	return walk(fn, al, true, true);
}

int opt_mark_safe(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	return walk(fn, al, false, false);
}
