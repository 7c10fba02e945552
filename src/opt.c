/*
 * opt.c - the optimizer's pipeline, and the block orders and liveness its
 * passes share.
 *
 * -O1: fold, thread, dce, merge.  -O2 (the default) adds value numbering,
 * chain reordering and bucketed equality chains, and runs the cleanup passes
 * again after them.  Every pass
 * keeps the meaning of the program for every packet, short ones included
 * (docs/optimizer.md says why each is sound); ir_verify runs after each.
 */
#include "opt.h"

#include <string.h>

int opt_nsucc(const struct ir_block *b)
{
	return b->term == IR_BRANCH ? 2 : b->term == IR_JUMP ? 1 : 0;
}

int opt_topo(const struct ir_func *fn, const struct bpfkit_alloc *al, int *order)
{
	/* reverse post-order of an iterative depth-first search */
	int nb = fn->nblocks;
	uint8_t *seen = mem_alloc(al, (size_t)nb);
	int *stack = mem_alloc_array(al, (size_t)nb, sizeof *stack);
	int *next = mem_alloc_array(al, (size_t)nb, sizeof *next);
	int n = -1;
	if (!seen || !stack || !next)
		goto out;
	memset(seen, 0, (size_t)nb);
	n = 0;
	int sp = 0;
	stack[sp++] = fn->entry;
	next[fn->entry] = 0;
	seen[fn->entry] = 1;
	int npost = 0;
	while (sp) {
		int b = stack[sp - 1];
		const struct ir_block *blk = &fn->blocks[b];
		if (next[b] < opt_nsucc(blk)) {
			int s = blk->succ[next[b]++];
			if (!seen[s]) {
				seen[s] = 1;
				next[s] = 0;
				stack[sp++] = s;
			}
			continue;
		}
		order[npost++] = b;
		sp--;
	}
	for (int i = 0; i < npost / 2; i++) {
		int t = order[i];
		order[i] = order[npost - 1 - i];
		order[npost - 1 - i] = t;
	}
	n = npost;
out:
	mem_free(al, seen);
	mem_free(al, stack);
	mem_free(al, next);
	return n;
}

void opt_liveness(const struct ir_func *fn, const int *order, int n, uint32_t *live)
{
	for (int i = n - 1; i >= 0; i--) {
		const struct ir_block *b = &fn->blocks[order[i]];
		uint32_t l = 0;
		for (int s = 0; s < opt_nsucc(b); s++)
			l |= live[b->succ[s]];
		l |= opt_term_uses(b);
		for (int s = b->nstmts - 1; s >= 0; s--) {
			l &= ~opt_defs(&b->stmts[s]);
			l |= opt_uses(&b->stmts[s]);
		}
		live[order[i]] = l;
	}
}

/* ---- forward walks ---- */

int opt_walk_init(struct opt_walk *w, struct ir_func *fn, const struct bpfkit_alloc *al,
		  bool liveness)
{
	memset(w, 0, sizeof *w);
	w->fn = fn;
	w->al = al;
	opt_vals_init(&w->vals, al);
	int nb = fn->nblocks;
	w->order = mem_alloc_array(al, (size_t)nb, sizeof *w->order);
	w->in = mem_alloc_array(al, (size_t)nb, sizeof *w->in);
	if (liveness)
		w->live = mem_alloc_array(al, (size_t)nb, sizeof *w->live);
	if (!w->order || !w->in || (liveness && !w->live))
		goto fail;
	memset(w->in, 0, (size_t)nb * sizeof *w->in);
	w->n = opt_topo(fn, al, w->order);
	if (w->n < 0)
		goto fail;
	if (liveness) {
		memset(w->live, 0, (size_t)nb * sizeof *w->live);
		opt_liveness(fn, w->order, w->n, w->live);
	}
	/* at the entry A and X are 0; M[] is unknown */
	struct opt_ctx *e = &w->in[fn->entry];
	e->set = true;
	e->st.r[OPT_A] = e->st.r[OPT_X] = opt_const(&w->vals, 0);
	for (int i = OPT_M0; i < OPT_NREGS; i++)
		e->st.r[i] = -1;
	if (w->vals.failed)
		goto fail;
	return 0;
fail:
	opt_walk_free(w);
	return -1;
}

bool opt_walk_take(struct opt_walk *w, int b, struct opt_ctx *ctx)
{
	struct opt_ctx *in = &w->in[b];
	if (!in->set)
		return false;
	*ctx = *in;
	memset(in, 0, sizeof *in);
	for (int i = 0; i < OPT_NREGS; i++)
		if (ctx->st.r[i] < 0)
			ctx->st.r[i] = opt_opaque(&w->vals);
	return true;
}

void opt_walk_edge(struct opt_walk *w, const struct ir_block *blk, const struct opt_ctx *ctx,
		   int s, struct opt_ctx *e)
{
	*e = (struct opt_ctx){.st = ctx->st, .set = true};
	if (!opt_facts_copy(w->al, &e->facts, &ctx->facts))
		e->facts.n = 0;   /* fewer facts: still sound */
	if (blk->term == IR_BRANCH)
		opt_facts_learn(&w->vals, w->al, &e->facts, blk->jcode, blk->k,
				ctx->st.r[OPT_A], ctx->st.r[OPT_X], s == 0);
}

void opt_walk_send(struct opt_walk *w, int t, struct opt_ctx *ctx)
{
	opt_ctx_meet(&w->vals, w->al, &w->in[t], ctx);
	opt_facts_free(w->al, &ctx->facts);
}

void opt_walk_free(struct opt_walk *w)
{
	if (w->in)
		for (int i = 0; i < w->fn->nblocks; i++)
			opt_facts_free(w->al, &w->in[i].facts);
	mem_free(w->al, w->in);
	mem_free(w->al, w->order);
	mem_free(w->al, w->live);
	opt_vals_free(&w->vals);
	w->in = NULL;
	w->order = NULL;
	w->live = NULL;
}

/* ---- the pipeline ---- */

const char *const opt_pass_names[] = {
	"codegen", "fold", "thread", "vn", "pullup", "dce", "merge", "switch", "order", "promote",
	NULL,
};

enum pass {
	P_FOLD, P_THREAD, P_VN, P_PULLUP, P_DCE, P_MERGE, P_SWITCH, P_ORDER, P_PROMOTE, P_END, P_VNABS
};

static int run_pass(struct ir_func *fn, enum pass p, unsigned flags, const struct bpfkit_alloc *al)
{
	switch (p) {
	case P_FOLD: ir_pass_fold(fn); return 0;
	case P_THREAD: return opt_pass_thread(fn, al);
	case P_VN: return opt_pass_vn(fn, al);
	case P_PULLUP: return opt_pass_pullup(fn, al);
	case P_DCE: return opt_pass_dce(fn, al);
	case P_MERGE: return opt_pass_merge(fn, al, (flags & OPT_RUN_SUFFIX) != 0);
	case P_SWITCH: return opt_pass_switch(fn, al);
	case P_VNABS: return opt_pass_vn_abs(fn, al);
	case P_ORDER: return opt_pass_order(fn, al);
	case P_PROMOTE: return opt_pass_promote(fn, al);
	case P_END: break;
	}
	return 0;
}

static const enum pass level1[] = {P_FOLD, P_THREAD, P_DCE, P_MERGE, P_END};
/* pullup wants blocks that load what they test: before value numbering */
static const enum pass level2[] = {
	P_FOLD, P_THREAD, P_DCE, P_MERGE, P_PULLUP, P_ORDER,
	P_THREAD, P_VN, P_DCE, P_MERGE,
	P_THREAD, P_VNABS, P_DCE, P_PROMOTE, P_DCE, P_MERGE, P_SWITCH, P_END,
};

int opt_run(struct ir_func *fn, int level, unsigned flags, const struct bpfkit_alloc *al,
	    const char *dump_pass, struct mem_buf *dump, struct bpfkit_error *err)
{
	if (dump_pass && !strcmp(dump_pass, "codegen")) {
		ir_dump(fn, dump);
		dump_pass = NULL;
	}
	if (level <= 0)
		return 0;
	const enum pass *list = level == 1 ? level1 : level2;
	/* common suffixes only after ordering: a shared suffix would pin the parts it joins */
	unsigned now = level == 1 ? flags : flags & ~(unsigned)OPT_RUN_SUFFIX;
	for (int i = 0; list[i] != P_END; i++) {
		if (list[i] == P_ORDER)
			now = flags;
		if (list[i] == P_ORDER && !(flags & OPT_RUN_ORDER)) {
			if (dump_pass && !strcmp(dump_pass, "order")) {
				mem_buf_printf(dump, "; after order: nothing moved (the ordered "
					       "program was longer)\n");
				ir_dump(fn, dump);
			}
			continue;
		}
		if (run_pass(fn, list[i], now, al) != 0) {
			error_oom(err);
			return -1;
		}
		/*
		 * Value numbering leaves IR_SAFE marks that dce can use as they are
		 * (dce only removes safe statements and blocks that return 0, which
		 * keeps every other mark true); any other pass changes the graph.
		 */
		fn->marks_fresh = list[i] == P_VN || list[i] == P_VNABS ||
				  (list[i] == P_DCE && fn->marks_fresh);
		if (ir_verify(fn, err) != 0)
			return -1;
		enum pass named = list[i] == P_VNABS ? P_VN : list[i];
		if (dump_pass && !strcmp(dump_pass, opt_pass_names[named + 1])) {
			mem_buf_printf(dump, "; after %s\n", dump_pass);
			ir_dump(fn, dump);
		}
	}
	return 0;
}
