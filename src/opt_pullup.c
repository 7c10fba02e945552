/*
 * opt_pullup.c - reorders chains of tests so that tests of the same value
 * are next to each other (and value numbering then loads it once):
 * `host a or host b` tests src a, dst a, src b, dst b; after this pass
 * src a, src b, dst a, dst b, and the two reloads go.
 *
 * A chain: blocks C1..Cn where each Ci branches either to a common exit E or
 * to C(i+1) (Cn: to F), and every Ci after C1 is reached only from C(i-1).
 * Which tests run before the exit is taken does not change the outcome when
 * the tests have no effect but their outcome: so chain blocks may only load,
 * compute and branch (no stores, no division by X), may not read registers
 * another chain block writes, and E and F may not read what the chain
 * writes.  Loads are the catch: on a short packet a load ends the run, so a
 * test may only move before another when its loads cannot fail there.  The
 * chain is cut into segments: a segment starts with any block, which stays
 * first, and continues with blocks whose loads all lie inside what is known
 * captured once the segment's first block ran (facts from a forward walk
 * over the unchanged program: reordering keeps, on every edge out of a
 * chain, the same loads done, so the facts other chains start from stay
 * true).  Inside a segment blocks are grouped by the value they test, in
 * order of first appearance, the first block's group first.
 */
#include "opt.h"

#include <stdlib.h>
#include <string.h>

struct link {
	int b;       /* block */
	int key;     /* value number of A at its branch */
	int group;   /* order of the key's first appearance in the segment */
	int idx;     /* position in the chain */
};

static int cmp_link(const void *x, const void *y)
{
	const struct link *a = x, *b = y;
	if (a->group != b->group)
		return a->group < b->group ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* A chain link may only load, compute and branch. */
static bool pure_block(const struct ir_block *b)
{
	if (b->term != IR_BRANCH)
		return false;
	for (int s = 0; s < b->nstmts; s++) {
		uint16_t c = b->stmts[s].code;
		int cls = BPFKIT_CLASS(c);
		if (cls == BPFKIT_ST || cls == BPFKIT_STX)
			return false;
		if (cls == BPFKIT_ALU && BPFKIT_SRC(c) == BPFKIT_X &&
		    (BPFKIT_OP(c) == BPFKIT_DIV || BPFKIT_OP(c) == BPFKIT_MOD))
			return false;
	}
	return true;
}

static uint32_t block_defs(const struct ir_block *b)
{
	uint32_t d = 0;
	for (int s = 0; s < b->nstmts; s++)
		d |= opt_defs(&b->stmts[s]);
	return d;
}

/* Index of b's successor that is not e, when the other one is e; else -1. */
static int cont_of(const struct ir_block *b, int e)
{
	if (b->succ[0] == e && b->succ[1] != e)
		return 1;
	if (b->succ[1] == e && b->succ[0] != e)
		return 0;
	return -1;
}

struct chains {
	int *head_next;   /* per block: the chain's exit when it heads a chain, else -1 */
	int *npred;
};

/* Reorders one chain starting at c1 with exit e, given c1's entry context. */
static int do_chain(struct opt_walk *w, int c1, int e, const struct opt_ctx *in,
		    const int *npred, struct link *buf)
{
	struct ir_func *fn = w->fn;
	/* collect */
	int n = 0;
	uint32_t defs = 0;
	for (int b = c1;;) {
		const struct ir_block *blk = &fn->blocks[b];
		int c = cont_of(blk, e);
		if (c < 0 || !pure_block(blk) || (n > 0 && npred[b] != 1))
			break;
		buf[n] = (struct link){.b = b, .idx = n};
		n++;
		defs |= block_defs(blk);
		b = blk->succ[c];
		if (b == c1)
			break;
	}
	if (n < 3)
		return 0;
	int last = buf[n - 1].b;
	int f = fn->blocks[last].succ[cont_of(&fn->blocks[last], e)];
	if ((defs & (w->live[e] | w->live[f])) || (defs & ~(OPT_REG_BIT(OPT_A) |
							    OPT_REG_BIT(OPT_X))))
		return 0;
	for (int i = 0; i < n; i++)
		if (w->live[buf[i].b] & defs)
			return 0;
	/* keys and segments */
	struct opt_facts seg;
	if (!opt_facts_copy(w->al, &seg, &in->facts))
		return -1;
	int start = 0;
	for (int i = 0; i <= n; i++) {
		bool fits = i < n;
		struct opt_state st;
		for (int r = 0; r < OPT_NREGS; r++)
			st.r[r] = opt_opaque(&w->vals);
		const struct ir_block *blk = i < n ? &fn->blocks[buf[i].b] : NULL;
		for (int s = 0; blk && s < blk->nstmts; s++)
			if (opt_eval(&w->vals, w->al, &st, &seg, &blk->stmts[s], false) != 1)
				fits = false;
		if (blk)
			buf[i].key = st.r[OPT_A];
		if (i > start && fits)
			continue;
		if (i > start) {
			/* close the segment [start, i): group by key, first block first */
			for (int j = start; j < i; j++) {
				buf[j].group = j - start;
				for (int m = start; m < j; m++)
					if (buf[m].key == buf[j].key) {
						buf[j].group = buf[m].group;
						break;
					}
			}
			qsort(&buf[start + 1], (size_t)(i - start - 1), sizeof *buf, cmp_link);
		}
		if (i == n)
			break;
		/* block i starts a segment: what it loads is known captured after it */
		start = i;
		for (int r = 0; r < OPT_NREGS; r++)
			st.r[r] = opt_opaque(&w->vals);
		for (int s = 0; s < blk->nstmts; s++)
			opt_eval(&w->vals, w->al, &st, &seg, &blk->stmts[s], true);
		buf[i].key = st.r[OPT_A];
	}
	opt_facts_free(w->al, &seg);
	if (w->vals.failed)
		return -1;
	/* relink: each block continues to the next in the new order */
	for (int i = 0; i < n; i++) {
		struct ir_block *blk = &fn->blocks[buf[i].b];
		blk->succ[cont_of(blk, e)] = i + 1 < n ? buf[i + 1].b : f;
	}
	return 0;
}

int opt_pass_pullup(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	struct opt_walk w;
	if (opt_walk_init(&w, fn, al, true) != 0)
		return -1;
	int nb = fn->nblocks, rc = -1;
	int *npred = mem_alloc_array(al, (size_t)nb, sizeof *npred);
	int *exit_of = mem_alloc_array(al, (size_t)nb, sizeof *exit_of);
	struct opt_ctx *heads = mem_alloc_array(al, (size_t)nb, sizeof *heads);
	struct link *buf = mem_alloc_array(al, (size_t)nb, sizeof *buf);
	if (!npred || !exit_of || !heads || !buf)
		goto out;
	memset(npred, 0, (size_t)nb * sizeof *npred);
	memset(heads, 0, (size_t)nb * sizeof *heads);
	for (int i = 0; i < w.n; i++) {
		const struct ir_block *b = &fn->blocks[w.order[i]];
		for (int s = 0; s < opt_nsucc(b); s++)
			npred[b->succ[s]]++;
		exit_of[w.order[i]] = -1;
	}
	/* chain heads: a link whose continuation is a link with the same exit */
	uint8_t *inchain = (uint8_t *)mem_alloc(al, (size_t)nb);
	if (!inchain)
		goto out;
	memset(inchain, 0, (size_t)nb);
	for (int i = 0; i < w.n; i++) {
		int b = w.order[i];
		const struct ir_block *blk = &fn->blocks[b];
		if (inchain[b] || !pure_block(blk))
			continue;
		for (int s = 0; s < 2; s++) {
			int e = blk->succ[s], nx = blk->succ[1 - s];
			if (e == nx || npred[nx] != 1)
				continue;
			const struct ir_block *nb2 = &fn->blocks[nx];
			if (!pure_block(nb2) || cont_of(nb2, e) < 0)
				continue;
			exit_of[b] = e;
			for (int c = b, guard = 0; guard < nb; guard++) {
				inchain[c] = 1;
				const struct ir_block *cb = &fn->blocks[c];
				int k = cont_of(cb, e);
				if (k < 0)
					break;
				c = cb->succ[k];
				if (inchain[c] || npred[c] != 1 || !pure_block(&fn->blocks[c]))
					break;
			}
			break;
		}
	}
	mem_free(al, inchain);
	/* the facts at each head, from the unchanged program */
	for (int i = 0; i < w.n; i++) {
		int b = w.order[i];
		struct ir_block *blk = &fn->blocks[b];
		struct opt_ctx ctx;
		if (!opt_walk_take(&w, b, &ctx))
			continue;
		if (exit_of[b] >= 0) {
			heads[b] = ctx;
			heads[b].set = true;
			if (!opt_facts_copy(al, &heads[b].facts, &ctx.facts))
				heads[b].facts.n = 0;
		}
		if (ctx.facts.dead || blk->term == IR_RET) {
			opt_facts_free(al, &ctx.facts);
			continue;
		}
		for (int s = 0; s < blk->nstmts; s++)
			opt_eval(&w.vals, al, &ctx.st, &ctx.facts, &blk->stmts[s], true);
		for (int s = 0; s < opt_nsucc(blk); s++) {
			struct opt_ctx e;
			opt_walk_edge(&w, blk, &ctx, s, &e);
			opt_walk_send(&w, blk->succ[s], &e);
		}
		opt_facts_free(al, &ctx.facts);
	}
	rc = 0;
	for (int i = 0; i < w.n && rc == 0; i++) {
		int b = w.order[i];
		if (exit_of[b] >= 0 && heads[b].set && !heads[b].facts.dead)
			rc = do_chain(&w, b, exit_of[b], &heads[b], npred, buf);
	}
	if (w.vals.failed)
		rc = -1;
out:
	if (heads)
		for (int i = 0; i < nb; i++)
			opt_facts_free(al, &heads[i].facts);
	mem_free(al, heads);
	mem_free(al, npred);
	mem_free(al, exit_of);
	mem_free(al, buf);
	opt_walk_free(&w);
	return rc;
}
