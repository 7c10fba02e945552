/*
 * emit.c - IR -> cBPF.
 *
 * Layout: blocks reachable from the entry in reverse post-order of a
 * depth-first search that visits the true successor first, so each block's
 * false successor tends to follow it (falls through) and every jump goes
 * forward - except that a bare `ret #0` is never the one that falls through
 * when the other successor can be (see dfs).  A jump to the block placed
 * next is left out.
 *
 * A conditional jump reaches at most 255 instructions.  A farther target is
 * reached through a trampoline placed in the gap after some block: a copy of
 * the target when it is a bare `ret`, else a `ja`.  Trampolines are shared:
 * a branch first looks for one to its target within reach, and only when
 * there is none puts one right after its own block (so a long list of tests
 * that all accept needs one `ret` every 255 instructions, not one per test).
 * Positions are computed, then checked, repeating until no branch needs a
 * new trampoline (sizes only grow, so this ends); then the program is
 * written from the same positions.
 */
#include "internal.h"

#include <string.h>

/* The trampolines to one target, by gap (sorted). */
struct tramps {
	int *gap;
	int n, cap;
};

struct layout {
	const struct bpfkit_alloc *alloc;
	int *order;          /* position -> block */
	int *pos;            /* block -> position, -1 unreachable */
	int n;
	uint32_t *start;     /* position -> first instruction */
	uint32_t *gapstart;  /* position -> first instruction of the gap after it */
	int *ngap;           /* position -> trampolines in the gap after it */
	int **gaplist;       /* position -> their targets (in gap order) */
	int *gapcap;
	struct tramps *to;   /* block -> its trampolines */
	bool failed;
};

static bool bare_ret0(const struct ir_block *b)
{
	return b->term == IR_RET && b->k == 0 && b->nstmts == 0;
}

/*
 * Post-order of a depth-first search (iterative, to survive very long
 * filters).  Successors are visited true first, so in reverse post-order the
 * false one follows its branch; but when the false one is a bare `ret #0` it
 * is visited first and the other one follows instead: rejecting jumps away
 * and the test that might accept falls through (what a JIT turns into a
 * branch-free select).  Returns -1 when out of memory.
 */
static int dfs(const struct ir_func *fn, const struct bpfkit_alloc *alloc, int b, uint8_t *seen,
	       int *post, int *npost)
{
	struct frame { int b, next; };
	struct frame stackbuf[64];
	struct frame *stack = stackbuf;
	int cap = 64, sp = 0, rc = 0;
	seen[b] = 1;
	stack[sp++] = (struct frame){b, 0};
	while (sp > 0) {
		struct frame *f = &stack[sp - 1];
		const struct ir_block *blk = &fn->blocks[f->b];
		int nsucc = blk->term == IR_BRANCH ? 2 : blk->term == IR_JUMP ? 1 : 0;
		if (f->next < nsucc) {
			int i = f->next++;
			if (nsucc == 2 && bare_ret0(&fn->blocks[blk->succ[1]]) &&
			    !bare_ret0(&fn->blocks[blk->succ[0]]))
				i = 1 - i;
			int s = blk->succ[i];
			if (!seen[s]) {
				seen[s] = 1;
				if (sp == cap) {
					struct frame *ns = mem_alloc_array(alloc, (size_t)cap * 2,
									   sizeof *ns);
					if (!ns) {
						rc = -1;
						break;
					}
					memcpy(ns, stack, (size_t)sp * sizeof *ns);
					if (stack != stackbuf)
						mem_free(alloc, stack);
					stack = ns;
					cap *= 2;
				}
				stack[sp++] = (struct frame){s, 0};
			}
			continue;
		}
		post[(*npost)++] = f->b;
		sp--;
	}
	if (stack != stackbuf)
		mem_free(alloc, stack);
	return rc;
}

/* A jump to the block placed next (with no trampolines between) is left out. */
static bool falls_through(const struct layout *l, int i, const struct ir_block *b)
{
	return b->term == IR_JUMP && i + 1 < l->n && l->order[i + 1] == b->succ[0] &&
	       l->ngap[i] == 0;
}

static uint32_t block_size(const struct layout *l, int i, const struct ir_block *b)
{
	if (b->term == IR_RET)
		return (uint32_t)b->nstmts + 1;
	if (b->term == IR_JUMP)
		return (uint32_t)b->nstmts + (falls_through(l, i, b) ? 0 : 1);
	return (uint32_t)b->nstmts + 1;
}

/* Fills the positions from the sizes; returns the total length (64 bits: no wrap). */
static uint64_t place(const struct ir_func *fn, struct layout *l)
{
	uint64_t at = 0;
	for (int i = 0; i < l->n; i++) {
		l->start[i] = (uint32_t)at;
		at += block_size(l, i, &fn->blocks[l->order[i]]);
		l->gapstart[i] = (uint32_t)at;
		at += (uint64_t)l->ngap[i];
		if (at > 0x7fffffff)
			return at;
	}
	return at;
}

/* Where the trampoline to t in gap g is. */
static uint32_t tramp_at(const struct layout *l, int g, int t)
{
	for (int j = 0; j < l->ngap[g]; j++)
		if (l->gaplist[g][j] == t)
			return l->gapstart[g] + (uint32_t)j;
	return 0;
}

/* A trampoline to t reachable from a jump at insn `after - 1` of position i; 0 when none. */
static bool find_tramp(const struct layout *l, int i, int t, uint32_t after, uint32_t *at)
{
	const struct tramps *tr = &l->to[t];
	int lo = 0, hi = tr->n;
	while (lo < hi) {   /* first gap >= i */
		int mid = (lo + hi) / 2;
		if (tr->gap[mid] < i)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == tr->n)
		return false;
	uint32_t p = tramp_at(l, tr->gap[lo], t);
	if (p < after || p - after > 255)
		return false;
	*at = p;
	return true;
}

static bool push(const struct bpfkit_alloc *a, int **v, int *n, int *cap, int at, int x)
{
	if (*n == *cap) {
		int c = *cap ? *cap * 2 : 4;
		int *nv = mem_realloc(a, *v, (size_t)c * sizeof *nv);
		if (!nv)
			return false;
		*v = nv;
		*cap = c;
	}
	memmove(&(*v)[at + 1], &(*v)[at], (size_t)(*n - at) * sizeof **v);
	(*v)[at] = x;
	(*n)++;
	return true;
}

/*
 * Puts a trampoline to t for a branch at position i (next instruction
 * after): in the farthest gap still in reach, so that the branches after
 * this one can share it.  A little slack absorbs trampolines added between.
 */
static void add_tramp(struct layout *l, int i, int t, uint32_t after)
{
	int lo = i, hi = l->n - 1;
	while (lo < hi) {   /* last gap whose end is within after + 255 - slack */
		int mid = lo + (hi - lo + 1) / 2;
		if (l->gapstart[mid] + (uint32_t)l->ngap[mid] - after <= 255 - 24 &&
		    l->start[l->pos[t]] > l->gapstart[mid])
			lo = mid;
		else
			hi = mid - 1;
	}
	i = lo;
	struct tramps *tr = &l->to[t];
	int at = 0;
	while (at < tr->n && tr->gap[at] < i)
		at++;
	if (!push(l->alloc, &tr->gap, &tr->n, &tr->cap, at, i) ||
	    !push(l->alloc, &l->gaplist[i], &l->ngap[i], &l->gapcap[i], l->ngap[i], t))
		l->failed = true;
}

/* The offset a branch at position i uses for target t (direct or trampoline). */
static uint32_t branch_off(const struct layout *l, int i, int t, uint32_t after, bool *ok)
{
	uint32_t tgt = l->start[l->pos[t]];
	if (tgt - after <= 255) {
		*ok = true;
		return tgt - after;
	}
	uint32_t p;
	*ok = find_tramp(l, i, t, after, &p);
	return *ok ? p - after : 0;
}

static void layout_free(struct layout *l, int nb)
{
	if (l->to)
		for (int i = 0; i < nb; i++)
			mem_free(l->alloc, l->to[i].gap);
	if (l->gaplist)
		for (int i = 0; i < nb; i++)
			mem_free(l->alloc, l->gaplist[i]);
	mem_free(l->alloc, l->order);
	mem_free(l->alloc, l->pos);
	mem_free(l->alloc, l->start);
	mem_free(l->alloc, l->gapstart);
	mem_free(l->alloc, l->ngap);
	mem_free(l->alloc, l->gaplist);
	mem_free(l->alloc, l->gapcap);
	mem_free(l->alloc, l->to);
}

int emit_run(const struct ir_func *fn, const struct bpfkit_alloc *alloc, struct bpfkit_prog *out,
	     struct bpfkit_error *err)
{
	int nb = fn->nblocks;
	struct layout l = {.alloc = alloc};
	int *post = mem_alloc_array(alloc, (size_t)nb, sizeof *post);
	uint8_t *seen = mem_alloc(alloc, (size_t)nb);
	l.order = mem_alloc_array(alloc, (size_t)nb, sizeof *l.order);
	l.pos = mem_alloc_array(alloc, (size_t)nb, sizeof *l.pos);
	l.start = mem_alloc_array(alloc, (size_t)nb, sizeof *l.start);
	l.gapstart = mem_alloc_array(alloc, (size_t)nb, sizeof *l.gapstart);
	l.ngap = mem_alloc_array(alloc, (size_t)nb, sizeof *l.ngap);
	l.gaplist = mem_alloc_array(alloc, (size_t)nb, sizeof *l.gaplist);
	l.gapcap = mem_alloc_array(alloc, (size_t)nb, sizeof *l.gapcap);
	l.to = mem_alloc_array(alloc, (size_t)nb, sizeof *l.to);
	int rc = -1;
	if (!post || !seen || !l.order || !l.pos || !l.start || !l.gapstart || !l.ngap ||
	    !l.gaplist || !l.gapcap || !l.to) {
		error_oom(err);
		goto out;
	}
	memset(seen, 0, (size_t)nb);
	memset(l.ngap, 0, (size_t)nb * sizeof *l.ngap);
	memset(l.gapcap, 0, (size_t)nb * sizeof *l.gapcap);
	memset(l.gaplist, 0, (size_t)nb * sizeof *l.gaplist);
	memset(l.to, 0, (size_t)nb * sizeof *l.to);
	int npost = 0;
	if (dfs(fn, alloc, fn->entry, seen, post, &npost) != 0) {
		error_oom(err);
		goto out;
	}
	for (int i = 0; i < nb; i++)
		l.pos[i] = -1;
	for (int i = 0; i < npost; i++) {
		l.order[i] = post[npost - 1 - i];
		l.pos[l.order[i]] = i;
	}
	l.n = npost;
	uint64_t total;
	for (;;) {
		total = place(fn, &l);
		if (total > 0x7fffffff)
			break;
		bool changed = false;
		for (int i = 0; i < l.n && !l.failed; i++) {
			const struct ir_block *blk = &fn->blocks[l.order[i]];
			if (blk->term != IR_BRANCH)
				continue;
			uint32_t after = l.start[i] + (uint32_t)blk->nstmts + 1;
			for (int s = 0; s < 2; s++) {
				bool ok;
				branch_off(&l, i, blk->succ[s], after, &ok);
				if (!ok) {
					add_tramp(&l, i, blk->succ[s], after);
					changed = true;
					break;   /* positions moved: recompute before the next */
				}
			}
		}
		if (l.failed) {
			error_oom(err);
			goto out;
		}
		if (!changed)
			break;
	}
	if (total > 0x7fffffff) {
		error_set(err, "program too long");
		goto out;
	}
	struct bpfkit_insn *insns = mem_alloc_array(alloc, (size_t)total, sizeof *insns);
	if (!insns) {
		error_oom(err);
		goto out;
	}
	uint32_t pc = 0;
	for (int i = 0; i < l.n; i++) {
		const struct ir_block *blk = &fn->blocks[l.order[i]];
		for (int s = 0; s < blk->nstmts; s++)
			insns[pc++] = (struct bpfkit_insn){blk->stmts[s].code, 0, 0, blk->stmts[s].k};
		if (blk->term == IR_RET) {
			insns[pc++] = (struct bpfkit_insn){BPFKIT_RET | BPFKIT_K, 0, 0, blk->k};
		} else if (blk->term == IR_JUMP) {
			if (!falls_through(&l, i, blk)) {
				uint32_t tgt = l.start[l.pos[blk->succ[0]]];
				insns[pc] = (struct bpfkit_insn){BPFKIT_JMP | BPFKIT_JA, 0, 0,
								 tgt - (pc + 1)};
				pc++;
			}
		} else {
			uint32_t after = pc + 1;
			uint32_t off[2];
			for (int s = 0; s < 2; s++) {
				bool ok;
				off[s] = branch_off(&l, i, blk->succ[s], after, &ok);
			}
			insns[pc++] = (struct bpfkit_insn){blk->jcode, (uint8_t)off[0],
							   (uint8_t)off[1], blk->k};
		}
		for (int j = 0; j < l.ngap[i]; j++) {
			int t = l.gaplist[i][j];
			const struct ir_block *tb = &fn->blocks[t];
			if (tb->term == IR_RET && tb->nstmts == 0)
				insns[pc] = (struct bpfkit_insn){BPFKIT_RET | BPFKIT_K, 0, 0, tb->k};
			else
				insns[pc] = (struct bpfkit_insn){BPFKIT_JMP | BPFKIT_JA, 0, 0,
								 l.start[l.pos[t]] - (pc + 1)};
			pc++;
		}
	}
	out->insns = insns;
	out->len = pc;
	rc = 0;
out:
	mem_free(alloc, post);
	mem_free(alloc, seen);
	layout_free(&l, nb);
	return rc;
}
