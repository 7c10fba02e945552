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
 * - Common suffixes (cross-jumping): blocks with the same terminator and
 *   successors whose statements end alike give their common last statements
 *   to one new block that both jump to, when that saves instructions (the
 *   terminator is shared too; a jump may be needed back in).  Sound for the
 *   same reason: the suffix runs the same code on whatever state it gets.
 *   One pass through a hash table keyed by the exit and the last statement,
 *   so linear; a later block joins an existing suffix block only whole.
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

/* The exit (terminator and successors) and the last statement. */
static uint64_t exit_hash(const struct ir_block *b)
{
	uint64_t h = 0x84222325cbf29ce4u ^ (uint64_t)b->term;
	h = (h ^ (b->term == IR_BRANCH ? b->jcode : 0)) * 0x100000001b3u;
	h = (h ^ (b->term != IR_JUMP ? b->k : 0)) * 0x100000001b3u;
	for (int s = 0; s < opt_nsucc(b); s++)
		h = (h ^ (uint32_t)b->succ[s]) * 0x100000001b3u;
	const struct ir_stmt *l = &b->stmts[b->nstmts - 1];
	h = (h ^ l->code) * 0x100000001b3u;
	h = (h ^ l->k) * 0x100000001b3u;
	return h ^ (h >> 29);
}

static bool exit_same(const struct ir_block *x, const struct ir_block *y)
{
	if (x->term != y->term || (x->term != IR_JUMP && x->k != y->k) ||
	    (x->term == IR_BRANCH && x->jcode != y->jcode))
		return false;
	for (int s = 0; s < opt_nsucc(x); s++)
		if (x->succ[s] != y->succ[s])
			return false;
	const struct ir_stmt *a = &x->stmts[x->nstmts - 1], *b = &y->stmts[y->nstmts - 1];
	return a->code == b->code && a->k == b->k;
}

/* How many last statements x and y have in common. */
static int common_suffix(const struct ir_block *x, const struct ir_block *y)
{
	int l = 0;
	while (l < x->nstmts && l < y->nstmts) {
		const struct ir_stmt *a = &x->stmts[x->nstmts - 1 - l];
		const struct ir_stmt *b = &y->stmts[y->nstmts - 1 - l];
		if (a->code != b->code || a->k != b->k)
			break;
		l++;
	}
	return l;
}

/*
 * Sharing l >= 1 last statements pays: two blocks that end in the same
 * branch or return each had their own terminator and now share one, at the
 * price of at most one jump into the shared block; two that jump to the same
 * block already needed a jump for one of them, and still need just one.
 */
static bool suffix_pays(int l)
{
	return l >= 1;
}

/* dst gets src's terminator and successors. */
static void copy_exit(struct ir_block *dst, const struct ir_block *src)
{
	dst->term = src->term;
	dst->jcode = src->jcode;
	dst->k = src->k;
	dst->succ[0] = src->succ[0];
	dst->succ[1] = src->succ[1];
}

/* Appends src's statements from index from on to dst, marks included. */
static void append_stmts(struct ir_func *fn, int dst, int src, int from)
{
	for (int s = from; s < fn->blocks[src].nstmts && !fn->failed; s++) {
		const struct ir_stmt st = fn->blocks[src].stmts[s];
		ir_stmt_add(fn, dst, st.code, st.k);
		struct ir_block *db = &fn->blocks[dst];
		if (!fn->failed)
			db->stmts[db->nstmts - 1].flags = st.flags;
	}
}

/*
 * Splits b before its statement from: a new block takes the statements from
 * there on and b's exit, and b jumps to it.  The new block, or -1 when out
 * of memory.
 */
static int split_tail(struct ir_func *fn, int b, int from)
{
	int t = ir_block_new(fn);
	if (t < 0)
		return -1;
	append_stmts(fn, t, b, from);
	if (fn->failed)
		return -1;
	struct ir_block *bb = &fn->blocks[b];
	copy_exit(&fn->blocks[t], bb);
	bb->nstmts = from;
	bb->term = IR_JUMP;
	bb->succ[0] = bb->succ[1] = t;
	return t;
}

/* b's last l statements go; b jumps to t instead.  Marks of t's statements are intersected. */
static void cut_to(struct ir_func *fn, int b, int l, int t)
{
	struct ir_block *bb = &fn->blocks[b], *tb = &fn->blocks[t];
	for (int s = 0; s < l; s++)
		tb->stmts[tb->nstmts - l + s].flags &= bb->stmts[bb->nstmts - l + s].flags;
	bb->nstmts -= l;
	bb->term = IR_JUMP;
	bb->succ[0] = t;
	bb->succ[1] = t;
}

static int suffixes(struct ir_func *fn, const struct bpfkit_alloc *al, const int *order, int n)
{
	size_t cap = 16;
	while (cap < (size_t)n * 2)
		cap *= 2;
	int *tab = mem_alloc_array(al, cap, sizeof *tab);
	bool *made = mem_alloc_array(al, (size_t)fn->nblocks + (size_t)n, sizeof *made);
	int rc = -1;
	if (!tab || !made)
		goto out;
	for (size_t i = 0; i < cap; i++)
		tab[i] = -1;
	memset(made, 0, ((size_t)fn->nblocks + (size_t)n) * sizeof *made);
	for (int i = 0; i < n && !fn->failed; i++) {
		int bi = order[i];
		if (fn->blocks[bi].nstmts == 0)
			continue;
		size_t j = exit_hash(&fn->blocks[bi]) & (cap - 1);
		while (tab[j] >= 0 && !exit_same(&fn->blocks[tab[j]], &fn->blocks[bi]))
			j = (j + 1) & (cap - 1);
		if (tab[j] < 0) {
			tab[j] = bi;
			continue;
		}
		int r = tab[j];
		const struct ir_block *rb = &fn->blocks[r], *b = &fn->blocks[bi];
		int l = common_suffix(rb, b);
		if (made[r]) {
			/* a shared suffix block: joined only whole */
			if (l == rb->nstmts && suffix_pays(l))
				cut_to(fn, bi, l, r);
			continue;
		}
		if (!suffix_pays(l))
			continue;
		int t = split_tail(fn, r, fn->blocks[r].nstmts - l);
		if (t < 0)
			break;
		cut_to(fn, bi, l, t);
		made[t] = true;
		tab[j] = t;
	}
	rc = fn->failed ? -1 : 0;
out:
	mem_free(al, tab);
	mem_free(al, made);
	return rc;
}

/*
 * A block ending with `ld #k` that jumps to a block starting with `tax`
 * whose A is dead after the `tax` (what sharing a suffix leaves when one
 * path puts a constant in X through A) sets X itself: its `ld #k` becomes
 * `ldx #k` and it jumps past the `tax` (the target is split there), which
 * hoist_constants can then move up into a branch.  live: at block entries.
 */
static void bypass_tax(struct ir_func *fn, const int *order, int n, const uint32_t *live)
{
	const uint32_t abit = OPT_REG_BIT(OPT_A);
	for (int i = 0; i < n && !fn->failed; i++) {
		int bi = order[i];
		const struct ir_block *b = &fn->blocks[bi];
		if (b->term != IR_JUMP || b->nstmts == 0 ||
		    b->stmts[b->nstmts - 1].code != (BPFKIT_LD | BPFKIT_IMM))
			continue;
		int si = b->succ[0];
		const struct ir_block *sb = &fn->blocks[si];
		if (sb->nstmts == 0 || sb->stmts[0].code != (BPFKIT_MISC | BPFKIT_TAX))
			continue;
		/* A after the tax: read before written? */
		bool a_live = true, decided = false;
		for (int s = 1; s < sb->nstmts && !decided; s++) {
			if (opt_uses(&sb->stmts[s]) & abit)
				decided = true;
			else if (opt_defs(&sb->stmts[s]) & abit)
				a_live = false, decided = true;
		}
		if (!decided) {
			uint32_t l = opt_term_uses(sb);
			for (int t = 0; t < opt_nsucc(sb); t++)
				l |= live[sb->succ[t]];
			a_live = (l & abit) != 0;
		}
		if (a_live)
			continue;
		/* rest: the target after its tax (made once; the target then jumps to it) */
		int rest = sb->nstmts == 1 && sb->term == IR_JUMP ? sb->succ[0] : split_tail(fn, si, 1);
		if (rest < 0)
			return;
		struct ir_block *bb = &fn->blocks[bi];
		bb->stmts[bb->nstmts - 1].code = BPFKIT_LDX | BPFKIT_IMM;
		bb->stmts[bb->nstmts - 1].flags = IR_SAFE;
		bb->succ[0] = bb->succ[1] = rest;
	}
}

/*
 * A block that only sets X to constants (`ldx #k`: what a suffix often
 * leaves behind, IPv6 setting X = 40 for the transport loads it now shares
 * with IPv4) and jumps on would need a `ja` (its successor has another
 * predecessor, else it would have been absorbed).  When its only
 * predecessor ends with a branch that does not read X and X is dead on the
 * branch's other edge, the `ldx` moves up into it and the block empties
 * (tails then retargets the branch).
 */
static void hoist_constants(struct ir_func *fn, const int *order, int n, int *pred,
			    uint32_t *live)
{
	const uint32_t xbit = OPT_REG_BIT(OPT_X);
	for (int i = 0; i < fn->nblocks; i++)
		pred[i] = -1;
	for (int i = 0; i < n; i++) {
		const struct ir_block *b = &fn->blocks[order[i]];
		for (int s = 0; s < opt_nsucc(b); s++)
			pred[b->succ[s]] = pred[b->succ[s]] == -1 ? order[i] : -2;
	}
	pred[fn->entry] = -2;
	opt_liveness(fn, order, n, live);
	for (int i = 0; i < n && !fn->failed; i++) {
		int bi = order[i], p = pred[bi];
		struct ir_block *b = &fn->blocks[bi];
		if (p < 0 || b->term != IR_JUMP || b->nstmts == 0)
			continue;
		bool consts = true;
		for (int s = 0; s < b->nstmts; s++)
			consts &= b->stmts[s].code == (BPFKIT_LDX | BPFKIT_IMM);
		const struct ir_block *pb = &fn->blocks[p];
		if (!consts || pb->term != IR_BRANCH || (opt_term_uses(pb) & xbit))
			continue;
		int other = pb->succ[0] == bi ? pb->succ[1] : pb->succ[0];
		if (other == bi || (live[other] & xbit))
			continue;
		for (int s = 0; s < b->nstmts && !fn->failed; s++) {
			ir_stmt_add(fn, p, fn->blocks[bi].stmts[s].code, fn->blocks[bi].stmts[s].k);
			struct ir_block *nb = &fn->blocks[p];
			nb->stmts[nb->nstmts - 1].flags = IR_SAFE;
		}
		fn->blocks[bi].nstmts = 0;
		live[bi] |= xbit;   /* the constant now flows through the emptied block */
	}
}

/* Appends block t to b (b jumps to t, t has no other predecessor). */
static void absorb(struct ir_func *fn, int b, int t)
{
	append_stmts(fn, b, t, 0);
	copy_exit(&fn->blocks[b], &fn->blocks[t]);
}

/* The pass's arrays, one entry per block. */
struct arrays {
	int *order, *canon, *npred;
	uint32_t *live;
};

static void arrays_free(const struct bpfkit_alloc *al, struct arrays *a)
{
	mem_free(al, a->order);
	mem_free(al, a->canon);
	mem_free(al, a->npred);
	mem_free(al, a->live);
	memset(a, 0, sizeof *a);
}

/* (Re)makes the arrays for fn's blocks, canon the identity; false when out of memory. */
static bool arrays_make(const struct bpfkit_alloc *al, struct arrays *a, const struct ir_func *fn)
{
	arrays_free(al, a);
	size_t nb = (size_t)fn->nblocks;
	a->order = mem_alloc_array(al, nb, sizeof *a->order);
	a->canon = mem_alloc_array(al, nb, sizeof *a->canon);
	a->npred = mem_alloc_array(al, nb, sizeof *a->npred);
	a->live = mem_alloc_array(al, nb, sizeof *a->live);
	if (!a->order || !a->canon || !a->npred || !a->live)
		return false;
	for (size_t i = 0; i < nb; i++)
		a->canon[i] = (int)i;
	return true;
}

int opt_pass_merge(struct ir_func *fn, const struct bpfkit_alloc *al, bool share_suffixes)
{
	struct arrays a = {0};
	int rc = -1;
	if (!arrays_make(al, &a, fn))
		goto out;
	int n = opt_topo(fn, al, a.order);
	if (n < 0 || tails(fn, al, a.order, n, a.canon) != 0)
		goto out;
	n = opt_topo(fn, al, a.order);
	if (n < 0)
		goto out;
	if (share_suffixes) {
		/*
		 * Suffixes and bypass_tax add blocks (bypass_tax reads liveness only
		 * of blocks that exist before it adds any), so the arrays are made
		 * again for the grown function; constants move up, and tails
		 * retargets through the blocks that emptied.
		 */
		if (suffixes(fn, al, a.order, n) != 0 || !arrays_make(al, &a, fn))
			goto out;
		n = opt_topo(fn, al, a.order);
		if (n < 0)
			goto out;
		opt_liveness(fn, a.order, n, a.live);
		bypass_tax(fn, a.order, n, a.live);
		if (fn->failed || !arrays_make(al, &a, fn))
			goto out;
		n = opt_topo(fn, al, a.order);
		if (n < 0)
			goto out;
		hoist_constants(fn, a.order, n, a.npred, a.live);
		if (fn->failed || tails(fn, al, a.order, n, a.canon) != 0)
			goto out;
		n = opt_topo(fn, al, a.order);
		if (n < 0)
			goto out;
	}
	int nb = fn->nblocks;
	int *npred = a.npred;
	memset(npred, 0, (size_t)nb * sizeof *npred);
	for (int i = 0; i < n; i++) {
		const struct ir_block *b = &fn->blocks[a.order[i]];
		for (int s = 0; s < opt_nsucc(b); s++)
			npred[b->succ[s]]++;
	}
	npred[fn->entry]++;
	for (int i = 0; i < n && !fn->failed; i++) {
		int b = a.order[i];
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
	arrays_free(al, &a);
	return rc;
}
