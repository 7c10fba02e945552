/*
 * emit.c - IR -> cBPF.
 *
 * Layout: blocks reachable from the entry in reverse post-order of a
 * depth-first search that visits the true successor first, so each block's
 * false successor tends to follow it (falls through) and every jump goes
 * forward.  A conditional jump reaches at most 255 instructions; a farther
 * target goes through an unconditional "ja" placed right after the branch.
 * Sizes are computed, then offsets, repeating until no block needs a new far
 * jump (sizes only grow, so this ends), then the same code writes the program.
 */
#include "internal.h"

#include <string.h>

struct layout {
	int *order;      /* position -> block */
	int *pos;        /* block -> position, -1 unreachable */
	int n;
	uint32_t *start; /* position -> first instruction */
	uint8_t *far;    /* block -> bit 0: true target far, bit 1: false target far */
};

static void dfs(const struct ir_func *fn, int b, uint8_t *seen, int *post, int *npost)
{
	/* iterative, to survive very long filters */
	struct frame { int b, next; };
	struct frame stackbuf[64];
	struct frame *stack = stackbuf;
	int cap = 64, sp = 0;
	const struct bpfkit_alloc *none = NULL;
	seen[b] = 1;
	stack[sp++] = (struct frame){b, 0};
	while (sp > 0) {
		struct frame *f = &stack[sp - 1];
		const struct ir_block *blk = &fn->blocks[f->b];
		if (blk->term == IR_BRANCH && f->next < 2) {
			int s = blk->succ[f->next++];
			if (!seen[s]) {
				seen[s] = 1;
				if (sp == cap) {
					struct frame *ns = mem_alloc_array(none, (size_t)cap * 2,
									   sizeof *ns);
					if (!ns)
						break;
					memcpy(ns, stack, (size_t)sp * sizeof *ns);
					if (stack != stackbuf)
						mem_free(none, stack);
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
		mem_free(none, stack);
}

static uint32_t block_size(const struct ir_block *b, uint8_t far)
{
	if (b->term == IR_RET)
		return (uint32_t)b->nstmts + 1;
	return (uint32_t)b->nstmts + 1 + (far & 1) + ((far >> 1) & 1);
}

/* Fills l->start from the sizes; returns the total length. */
static uint32_t place(const struct ir_func *fn, struct layout *l)
{
	uint32_t at = 0;
	for (int i = 0; i < l->n; i++) {
		int b = l->order[i];
		l->start[i] = at;
		at += block_size(&fn->blocks[b], l->far[b]);
	}
	return at;
}

int emit_run(const struct ir_func *fn, const struct bpfkit_alloc *alloc, struct bpfkit_prog *out,
	     struct bpfkit_error *err)
{
	int nb = fn->nblocks;
	struct layout l = {0};
	int *post = mem_alloc_array(alloc, (size_t)nb, sizeof *post);
	uint8_t *seen = mem_alloc(alloc, (size_t)nb);
	l.order = mem_alloc_array(alloc, (size_t)nb, sizeof *l.order);
	l.pos = mem_alloc_array(alloc, (size_t)nb, sizeof *l.pos);
	l.start = mem_alloc_array(alloc, (size_t)nb, sizeof *l.start);
	l.far = mem_alloc(alloc, (size_t)nb);
	int rc = -1;
	if (!post || !seen || !l.order || !l.pos || !l.start || !l.far) {
		error_oom(err);
		goto out;
	}
	memset(seen, 0, (size_t)nb);
	memset(l.far, 0, (size_t)nb);
	int npost = 0;
	dfs(fn, fn->entry, seen, post, &npost);
	for (int i = 0; i < nb; i++)
		l.pos[i] = -1;
	for (int i = 0; i < npost; i++) {
		l.order[i] = post[npost - 1 - i];
		l.pos[l.order[i]] = i;
	}
	l.n = npost;
	uint32_t total;
	for (;;) {
		total = place(fn, &l);
		bool changed = false;
		for (int i = 0; i < l.n; i++) {
			int b = l.order[i];
			const struct ir_block *blk = &fn->blocks[b];
			if (blk->term != IR_BRANCH)
				continue;
			uint32_t after = l.start[i] + (uint32_t)blk->nstmts + 1;
			for (int s = 0; s < 2; s++) {
				uint32_t tgt = l.start[l.pos[blk->succ[s]]];
				if (!(l.far[b] & (1 << s)) && tgt - after > 255) {
					l.far[b] |= (uint8_t)(1 << s);
					changed = true;
				}
			}
		}
		if (!changed)
			break;
	}
	if (total > 0x7fffffff) {
		error_set(err, "program too long");
		goto out;
	}
	struct bpfkit_insn *insns = mem_alloc_array(alloc, total, sizeof *insns);
	if (!insns) {
		error_oom(err);
		goto out;
	}
	uint32_t pc = 0;
	for (int i = 0; i < l.n; i++) {
		int b = l.order[i];
		const struct ir_block *blk = &fn->blocks[b];
		for (int s = 0; s < blk->nstmts; s++)
			insns[pc++] = (struct bpfkit_insn){blk->stmts[s].code, 0, 0, blk->stmts[s].k};
		if (blk->term == IR_RET) {
			insns[pc++] = (struct bpfkit_insn){BPFKIT_RET | BPFKIT_K, 0, 0, blk->k};
			continue;
		}
		uint32_t after = pc + 1;
		uint32_t tgt[2], off[2];
		for (int s = 0; s < 2; s++)
			tgt[s] = l.start[l.pos[blk->succ[s]]];
		uint32_t ja_at = after;
		for (int s = 0; s < 2; s++) {
			if (l.far[b] & (1 << s))
				off[s] = ja_at++ - after;
			else
				off[s] = tgt[s] - after;
		}
		insns[pc++] = (struct bpfkit_insn){blk->jcode, (uint8_t)off[0], (uint8_t)off[1],
						   blk->k};
		for (int s = 0; s < 2; s++)
			if (l.far[b] & (1 << s)) {
				insns[pc] = (struct bpfkit_insn){BPFKIT_JMP | BPFKIT_JA, 0, 0,
								 tgt[s] - (pc + 1)};
				pc++;
			}
	}
	out->insns = insns;
	out->len = pc;
	rc = 0;
out:
	mem_free(alloc, post);
	mem_free(alloc, seen);
	mem_free(alloc, l.order);
	mem_free(alloc, l.pos);
	mem_free(alloc, l.start);
	mem_free(alloc, l.far);
	return rc;
}
