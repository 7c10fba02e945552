/*
 * opt_merge.c - the shape of the graph: jumps to jumps, identical tails,
 * straight-line chains.
 *
 * - An edge to an empty jump goes to the jump's target; a jump to a bare
 *   `ret` becomes that `ret`.
 * - Common tails: blocks with the same statements, terminator and (merged)
 *   successors become one block.  Blocks are compared bottom-up, in reverse
 *   topological order, through a hash table, so the pass is linear.  Merging
 *   identical blocks is always sound: what a block does depends only on its
 *   code and its entry state.  IR_SAFE marks are intersected.
 * - A block that jumps to a block with no other predecessor absorbs it.
 */
#include "opt.h"

#include <string.h>

static int skip_jumps(const struct ir_func *fn, int t)
{
	for (int guard = 0; guard < 64; guard++) {
		const struct ir_block *b = &fn->blocks[t];
		if (b->nstmts || b->term != IR_JUMP || b->succ[0] == t)
			break;
		t = b->succ[0];
	}
	return t;
}

static uint64_t block_hash(const struct ir_block *b)
{
	uint64_t h = 0xcbf29ce484222325u ^ (uint64_t)b->term;
	if (b->term == IR_BRANCH)
		h = (h ^ b->jcode) * 0x100000001b3u;
	if (b->term != IR_JUMP)
		h = (h ^ b->k) * 0x100000001b3u;
	for (int s = 0; s < opt_nsucc(b); s++)
		h = (h ^ (uint32_t)b->succ[s]) * 0x100000001b3u;
	for (int s = 0; s < b->nstmts; s++) {
		h = (h ^ b->stmts[s].code) * 0x100000001b3u;
		h = (h ^ b->stmts[s].k) * 0x100000001b3u;
	}
	return h ^ (h >> 31);
}

static bool block_same(const struct ir_block *x, const struct ir_block *y)
{
	if (x->term != y->term || x->nstmts != y->nstmts || (x->term != IR_JUMP && x->k != y->k))
		return false;
	if (x->term == IR_BRANCH && (x->jcode != y->jcode || x->succ[1] != y->succ[1]))
		return false;
	if (x->term != IR_RET && x->succ[0] != y->succ[0])
		return false;
	for (int s = 0; s < x->nstmts; s++)
		if (x->stmts[s].code != y->stmts[s].code || x->stmts[s].k != y->stmts[s].k)
			return false;
	return true;
}

static void retarget(struct ir_func *fn, struct ir_block *b, const int *canon)
{
	for (int s = 0; s < opt_nsucc(b); s++)
		b->succ[s] = skip_jumps(fn, canon[b->succ[s]]);
	if (b->term == IR_BRANCH && b->succ[0] == b->succ[1])
		b->term = IR_JUMP;
	if (b->term == IR_JUMP) {
		const struct ir_block *t = &fn->blocks[b->succ[0]];
		if (t->term == IR_RET && !t->nstmts) {
			b->term = IR_RET;
			b->k = t->k;
		}
	}
}

static int tails(struct ir_func *fn, const struct bpfkit_alloc *al, const int *order, int n,
		 int *canon)
{
	size_t cap = 16;
	while (cap < (size_t)n * 2)
		cap *= 2;
	int *tab = mem_alloc_array(al, cap, sizeof *tab);
	if (!tab)
		return -1;
	for (size_t i = 0; i < cap; i++)
		tab[i] = -1;
	for (int i = n - 1; i >= 0; i--) {
		int bi = order[i];
		struct ir_block *b = &fn->blocks[bi];
		retarget(fn, b, canon);
		size_t j = block_hash(b) & (cap - 1);
		for (; tab[j] >= 0; j = (j + 1) & (cap - 1)) {
			struct ir_block *r = &fn->blocks[tab[j]];
			if (block_same(r, b)) {
				canon[bi] = tab[j];
				for (int s = 0; s < r->nstmts; s++)
					r->stmts[s].flags &= b->stmts[s].flags;
				break;
			}
		}
		if (tab[j] < 0)
			tab[j] = bi;
	}
	mem_free(al, tab);
	fn->entry = skip_jumps(fn, canon[fn->entry]);
	return 0;
}

/* Appends block t to b (b jumps to t, t has no other predecessor). */
static void absorb(struct ir_func *fn, int b, int t)
{
	struct ir_block *tb = &fn->blocks[t];
	for (int s = 0; s < tb->nstmts && !fn->failed; s++) {
		ir_stmt_add(fn, b, tb->stmts[s].code, tb->stmts[s].k);
		struct ir_block *bb = &fn->blocks[b];
		bb->stmts[bb->nstmts - 1].flags = tb->stmts[s].flags;
	}
	struct ir_block *bb = &fn->blocks[b];
	tb = &fn->blocks[t];
	bb->term = tb->term;
	bb->jcode = tb->jcode;
	bb->k = tb->k;
	bb->succ[0] = tb->succ[0];
	bb->succ[1] = tb->succ[1];
}

int opt_pass_merge(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	int nb = fn->nblocks;
	int *order = mem_alloc_array(al, (size_t)nb, sizeof *order);
	int *canon = mem_alloc_array(al, (size_t)nb, sizeof *canon);
	int *npred = mem_alloc_array(al, (size_t)nb, sizeof *npred);
	int rc = -1;
	if (!order || !canon || !npred)
		goto out;
	for (int i = 0; i < nb; i++)
		canon[i] = i;
	int n = opt_topo(fn, al, order);
	if (n < 0 || tails(fn, al, order, n, canon) != 0)
		goto out;
	n = opt_topo(fn, al, order);
	if (n < 0)
		goto out;
	memset(npred, 0, (size_t)nb * sizeof *npred);
	for (int i = 0; i < n; i++) {
		const struct ir_block *b = &fn->blocks[order[i]];
		for (int s = 0; s < opt_nsucc(b); s++)
			npred[b->succ[s]]++;
	}
	npred[fn->entry]++;
	for (int i = 0; i < n && !fn->failed; i++) {
		int b = order[i];
		if (npred[b] == 0)
			continue;   /* absorbed */
		for (int guard = 0; guard < nb; guard++) {
			struct ir_block *bb = &fn->blocks[b];
			if (bb->term != IR_JUMP)
				break;
			int t = bb->succ[0];
			if (t == b || npred[t] != 1)
				break;
			absorb(fn, b, t);
			npred[t] = 0;
		}
	}
	rc = fn->failed ? -1 : 0;
out:
	mem_free(al, order);
	mem_free(al, canon);
	mem_free(al, npred);
	return rc;
}
