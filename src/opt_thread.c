/*
 * opt_thread.c - redundant-predicate elimination along edges (BPF+, Begel,
 * McCanne and Graham, SIGCOMM 1999) and branch threading.
 *
 * One forward walk in topological order.  Each block's entry facts are the
 * meet of its predecessors' edge facts.  A branch decided by its entry facts
 * becomes a jump (its statements stay: a load may still end the run on a
 * short packet; dce removes what cannot).  Then each outgoing edge, carrying
 * the block's facts plus the branch outcome, is threaded: while the target's
 * branch is decided by the edge's facts and skipping the target changes
 * nothing - none of its statements can fail (every load is inside bytes
 * already known captured, or was already done), and none writes a register
 * that is live afterwards with a different value - the edge goes straight to
 * the decided successor.
 *
 * Why one walk suffices: an edge only ever moves forward in the order, so
 * every predecessor of a block is final when the block is reached, and a
 * block's liveness depends only on blocks after it, which the walk has not
 * changed yet.
 */
#include "opt.h"

#include <string.h>

/*
 * Hops all edges together may take through decided blocks: a few hundred
 * per block keeps the pass linear; past the budget edges stop where they
 * are (sound, less optimized).
 */
#define HOPS_PER_BLOCK 256

/*
 * Where an edge in state st with facts f (updated) really goes, starting at t.
 */
static int thread_edge(struct opt_walk *w, int t, const struct opt_state *st,
		       struct opt_facts *f, long *budget)
{
	struct ir_func *fn = w->fn;
	for (; *budget > 0 && !f->dead; --*budget) {
		const struct ir_block *T = &fn->blocks[t];
		if (T->term == IR_RET)
			break;
		struct opt_state s2 = *st;
		uint32_t defs = 0;
		bool ok = true;
		for (int i = 0; i < T->nstmts && ok; i++) {
			ok = opt_eval(&w->vals, w->al, &s2, f, &T->stmts[i], false) == 1;
			defs |= opt_defs(&T->stmts[i]);
		}
		if (!ok || w->vals.failed)
			break;
		int o = 1, next = T->succ[0];
		if (T->term == IR_BRANCH) {
			o = opt_decide(&w->vals, f, T->jcode, T->k, s2.r[OPT_A], s2.r[OPT_X]);
			if (o < 0 && T->succ[0] != T->succ[1])
				break;
			next = T->succ[o > 0 || o < 0 ? 0 : 1];
		}
		/* what T writes and next reads must be what the edge already holds */
		uint32_t clash = defs & w->live[next];
		for (int r = 0; r < OPT_NREGS && ok; r++)
			if ((clash & OPT_REG_BIT(r)) && s2.r[r] != st->r[r])
				ok = false;
		if (!ok)
			break;
		if (T->term == IR_BRANCH && o >= 0)
			opt_facts_learn(&w->vals, w->al, f, T->jcode, T->k, s2.r[OPT_A],
					s2.r[OPT_X], o);
		t = next;
	}
	return t;
}

int opt_pass_thread(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	struct opt_walk w;
	if (opt_walk_init(&w, fn, al, true) != 0)
		return -1;
	long budget = (long)HOPS_PER_BLOCK * w.n + 4096;
	for (int i = 0; i < w.n; i++) {
		int b = w.order[i];
		struct opt_ctx ctx;
		if (!opt_walk_take(&w, b, &ctx))
			continue;
		struct ir_block *blk = &fn->blocks[b];
		if (ctx.facts.dead || blk->term == IR_RET) {
			opt_facts_free(al, &ctx.facts);
			continue;
		}
		for (int s = 0; s < blk->nstmts; s++)
			opt_eval(&w.vals, al, &ctx.st, &ctx.facts, &blk->stmts[s], true);
		int A = ctx.st.r[OPT_A], X = ctx.st.r[OPT_X];
		if (blk->term == IR_BRANCH) {
			int o = opt_decide(&w.vals, &ctx.facts, blk->jcode, blk->k, A, X);
			if (o >= 0 || blk->succ[0] == blk->succ[1]) {
				blk->succ[0] = blk->succ[o == 0 ? 1 : 0];
				blk->term = IR_JUMP;
			}
		}
		int ns = opt_nsucc(blk);
		for (int s = 0; s < ns; s++) {
			struct opt_ctx e;
			opt_walk_edge(&w, blk, &ctx, s, &e);
			int t = blk->succ[s];
			if (!e.facts.dead)
				t = thread_edge(&w, t, &ctx.st, &e.facts, &budget);
			blk->succ[s] = t;
			opt_walk_send(&w, t, &e);
		}
		opt_facts_free(al, &ctx.facts);
		if (w.vals.failed)
			break;
	}
	int rc = w.vals.failed ? -1 : 0;
	opt_walk_free(&w);
	return rc;
}
