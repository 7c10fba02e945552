/*
 * opt_order.c - the parts of a conjunction run cheapest-to-reject first.
 *
 * `tcp port 80` on IPv4 is four tests in a row: protocol, fragment offset,
 * source port or destination port.  Each either rejects the packet or goes
 * on to the next; only the last accepts.  Such a chain may run its parts in
 * any order: the packet is accepted exactly when every part passes, and a
 * part that reads past the captured bytes or divides by zero rejects it in
 * every order, because every other way out of the chain also rejects (the
 * part's own tests and loads are the same whichever part ran before it).
 * So the order is free, and the best one makes a packet that will be
 * rejected leave early: the fragment test, which almost every packet
 * passes, goes last.
 *
 * Parts.  In the graph without the edges to blocks that can only return 0
 * ("reject"), a block E's immediate post-dominator N is where every
 * surviving path from E meets.  The blocks reachable from E before N form a
 * part when only E is entered from outside; N starts the next part when
 * all of its predecessors are in this one.  A chain is a run of two or more
 * parts; the last one's N may be shared (the accepting return, usually).
 *
 * Order.  A part that passes with probability p and costs c instructions
 * on average should run before one with a smaller (1 - p) / c: sorting by
 * c / (1 - p) minimises the expected cost of a conjunction of independent
 * tests.  p and c come from static guesses about the value each branch
 * tests (docs/optimizer.md): a 32-bit word equal to a constant (an
 * address) is rare, a port less so, an EtherType or IP protocol number of
 * a common protocol likely, the fragment-offset test almost always passes.
 * The sort keeps parts in program order where one writes a register (A, X
 * or an M[] cell) that another reads, or both write one read later.
 *
 * Moving a part rewires three kinds of edges: those entering the chain, and
 * each part's edges to its old successor.  Nothing else changes, so the
 * program's size is the same.  Chains nested inside a part are ordered
 * first (innermost heads last in topological order).
 */
#include "opt.h"

#include <string.h>

#define MAXPART 64    /* blocks in one part */
#define MAXCHAIN 32   /* parts in one chain */

struct part {
	int entry, next;   /* next: where the part goes on (now) */
	int live_next;     /* the same block before any chain moved: its liveness */
	int nblk;
	int *blk;          /* the part's blocks, in a chain's buffer */
	uint32_t uses, defs;
	double cost, pass;
	int seq;
};

struct ord {
	struct ir_func *fn;
	const struct bpfkit_alloc *al;
	int nb;
	int *order, n;     /* topological order */
	int *tpos;         /* position in order; -1 unreachable */
	int *npred;
	int *ipdom;        /* immediate post-dominator without reject edges; nb: exit */
	uint8_t *dead;     /* every path from here returns 0 */
	uint8_t *member;   /* entry of a part of some chain */
	uint8_t *mark;     /* scratch: in the part being built */
	int *blocks;       /* scratch: MAXPART */
	double *reach;     /* scratch, per block */
	uint32_t *live;
	/* A at each block's exit: the load size it came from, the mask and-ed in */
	uint8_t *asize;
	uint32_t *amask;
	int *fwd;          /* a reordered chain's old head -> its new first block */
	int *pcount;       /* predecessors as first counted (the lists' lengths) */
};

static int resolve(const struct ord *o, int b)
{
	while (b >= 0 && b < o->nb && o->fwd[b] >= 0)
		b = o->fwd[b];
	return b;
}

static int intersect(const struct ord *o, int a, int b)
{
	while (a != b) {
		if (a == o->nb || (b != o->nb && o->tpos[a] > o->tpos[b])) {
			int t = a;
			a = b;
			b = t;
		}
		/* a is earlier: climb from it */
		a = o->ipdom[a];
		if (a < 0)
			return -1;
	}
	return a;
}

static void analyse(struct ord *o)
{
	struct ir_func *fn = o->fn;
	for (int i = o->n - 1; i >= 0; i--) {
		int b = o->order[i];
		const struct ir_block *blk = &fn->blocks[b];
		if (blk->term == IR_RET) {
			o->dead[b] = blk->k == 0;
			o->ipdom[b] = blk->k == 0 ? -1 : o->nb;
			continue;
		}
		int live[2], nl = 0;
		for (int s = 0; s < opt_nsucc(blk); s++)
			if (!o->dead[blk->succ[s]])
				live[nl++] = blk->succ[s];
		if (nl == 0) {
			o->dead[b] = 1;
			o->ipdom[b] = -1;
		} else if (nl == 1 || live[0] == live[1]) {
			o->ipdom[b] = live[0];
		} else {
			o->ipdom[b] = intersect(o, live[0], live[1]);
		}
	}
	/* what A holds at each block's exit, for the branch guesses */
	for (int i = 0; i < o->n; i++) {
		int b = o->order[i];
		const struct ir_block *blk = &fn->blocks[b];
		uint8_t size = 0;
		uint32_t mask = 0xffffffffu;
		if (o->npred[b] == 1)
			for (int j = i - 1; j >= 0; j--) {
				const struct ir_block *p = &fn->blocks[o->order[j]];
				if ((opt_nsucc(p) >= 1 && p->succ[0] == b) ||
				    (opt_nsucc(p) == 2 && p->succ[1] == b)) {
					size = o->asize[o->order[j]];
					mask = o->amask[o->order[j]];
					break;
				}
				if (i - j > 8)
					break;
			}
		for (int s = 0; s < blk->nstmts; s++) {
			const struct ir_stmt *st = &blk->stmts[s];
			if (!(opt_defs(st) & OPT_REG_BIT(OPT_A)))
				continue;
			int m = BPFKIT_MODE(st->code);
			if (BPFKIT_CLASS(st->code) == BPFKIT_LD &&
			    (m == BPFKIT_ABS || m == BPFKIT_IND)) {
				int sz = BPFKIT_SIZE(st->code);
				size = sz == BPFKIT_B ? 1 : sz == BPFKIT_H ? 2 : 4;
				mask = 0xffffffffu;
			} else if (st->code == (BPFKIT_ALU | BPFKIT_AND | BPFKIT_K) && size) {
				mask &= st->k;
			} else {
				size = 0;
				mask = 0xffffffffu;
			}
		}
		o->asize[b] = size;
		o->amask[b] = mask;
	}
}

static int popcount(uint32_t x)
{
	int n = 0;
	for (; x; x &= x - 1)
		n++;
	return n;
}

/* A guess of how often the branch ending b goes to its true side. */
static double p_true(const struct ord *o, int b)
{
	const struct ir_block *blk = &o->fn->blocks[b];
	if (BPFKIT_SRC(blk->jcode) == BPFKIT_X)
		return 0.5;
	int size = o->asize[b];
	uint32_t mask = o->amask[b], k = blk->k;
	uint32_t full = size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffffu;
	switch (BPFKIT_OP(blk->jcode)) {
	case BPFKIT_JEQ:
		if (!size)
			return 0.5;
		if ((mask & full) != full)
			return popcount(mask & full) <= 4 ? 0.5 : 1.0 / 16;
		if (size == 4)
			return 1.0 / 1024;
		if (size == 2) {
			static const uint32_t common[] = {0x0800, 0x86dd, 0x0806, 0x8100,
							  0x88a8, 0x8035};
			for (size_t i = 0; i < sizeof common / sizeof common[0]; i++)
				if (k == common[i])
					return 0.3;
			return 1.0 / 64;
		}
		if (k == 6 || k == 17)
			return 0.35;
		return 1.0 / 20;
	case BPFKIT_JSET:
		if (size == 2 && k == 0x1fff)
			return 0.02;   /* a fragment offset: rare */
		return 0.5;
	default:
		if (size == 2 && k == 0x5dc)
			return 0.9;    /* an EtherType, not an 802.3 length */
		return 0.5;
	}
}

/*
 * The part entered at e, ending at o->ipdom[e]: fills p and o->blocks;
 * false when it is not a part (too big, entered from outside e).
 */
static bool part_of(struct ord *o, int e, struct part *p)
{
	int next = o->ipdom[e];
	if (next < 0 || next == o->nb || o->dead[next])
		return false;
	int live_next = next;
	next = resolve(o, next);
	int n = 0, head = 0;
	o->blocks[n++] = e;
	o->mark[e] = 1;
	bool ok = true;
	while (head < n && ok) {
		const struct ir_block *blk = &o->fn->blocks[o->blocks[head++]];
		for (int s = 0; s < opt_nsucc(blk) && ok; s++) {
			int t = blk->succ[s];
			if (t == next || o->dead[t] || o->mark[t])
				continue;
			if (n == MAXPART || o->fn->blocks[t].term == IR_RET) {
				ok = false;
				break;
			}
			o->mark[t] = 1;
			o->blocks[n++] = t;
		}
	}
	/* entered only at e, and next entered only from the part */
	int into_next = 0;
	for (int i = 0; i < n && ok; i++) {
		const struct ir_block *blk = &o->fn->blocks[o->blocks[i]];
		for (int s = 0; s < opt_nsucc(blk); s++) {
			int t = blk->succ[s];
			if (t == next && (s == 0 || blk->succ[0] != t))
				into_next++;
		}
	}
	int inner = 0;
	for (int i = 0; i < n && ok; i++) {
		const struct ir_block *blk = &o->fn->blocks[o->blocks[i]];
		for (int s = 0; s < opt_nsucc(blk); s++) {
			int t = blk->succ[s];
			if (t != e && o->mark[t] && (s == 0 || blk->succ[0] != t))
				inner++;
		}
	}
	int want = 0;
	for (int i = 1; i < n; i++)
		want += o->npred[o->blocks[i]];
	if (inner != want)
		ok = false;
	/*
	 * A topological order of the part on the graph as it is now (chains
	 * inside it may have been reordered since tpos was computed): Kahn's
	 * algorithm over the part's own edges, mark holding position + 1.
	 */
	int indeg[MAXPART], topo[MAXPART], nt = 0;
	for (int i = 0; i < n; i++) {
		o->mark[o->blocks[i]] = (uint8_t)(i + 1);
		indeg[i] = 0;
	}
	for (int i = 0; i < n && ok; i++) {
		const struct ir_block *blk = &o->fn->blocks[o->blocks[i]];
		for (int s = 0; s < opt_nsucc(blk); s++)
			if (o->mark[blk->succ[s]] && (s == 0 || blk->succ[0] != blk->succ[1]))
				indeg[o->mark[blk->succ[s]] - 1]++;
	}
	for (int i = 0; i < n && ok; i++)
		if (indeg[i] == 0)
			topo[nt++] = i;
	for (int h = 0; h < nt && ok; h++) {
		const struct ir_block *blk = &o->fn->blocks[o->blocks[topo[h]]];
		for (int s = 0; s < opt_nsucc(blk); s++) {
			int t = blk->succ[s];
			if (o->mark[t] && (s == 0 || blk->succ[0] != blk->succ[1]) &&
			    --indeg[o->mark[t] - 1] == 0)
				topo[nt++] = o->mark[t] - 1;
		}
	}
	for (int i = 0; i < n; i++)
		o->mark[o->blocks[i]] = 0;
	if (!ok || nt != n || topo[0] != 0)
		return false;
	int sorted[MAXPART];
	for (int i = 0; i < n; i++)
		sorted[i] = o->blocks[topo[i]];
	memcpy(o->blocks, sorted, (size_t)n * sizeof *sorted);
	*p = (struct part){.entry = e, .next = next, .live_next = live_next, .nblk = n};
	p->seq = into_next == o->npred[next];   /* next belongs to this chain */
	/* registers: defined anywhere, read before written on some path */
	uint32_t in[MAXPART];
	for (int i = n - 1; i >= 0; i--) {
		const struct ir_block *blk = &o->fn->blocks[o->blocks[i]];
		uint32_t l = 0;
		for (int s = 0; s < opt_nsucc(blk); s++)
			for (int j = i + 1; j < n; j++)
				if (o->blocks[j] == blk->succ[s])
					l |= in[j];
		l |= opt_term_uses(blk);
		for (int s = blk->nstmts - 1; s >= 0; s--) {
			l &= ~opt_defs(&blk->stmts[s]);
			l |= opt_uses(&blk->stmts[s]);
			p->defs |= opt_defs(&blk->stmts[s]);
		}
		in[i] = l;
	}
	p->uses = in[0];
	/* expected cost and chance of passing */
	for (int i = 0; i < n; i++)
		o->reach[o->blocks[i]] = i == 0;
	for (int i = 0; i < n; i++) {
		int b = o->blocks[i];
		const struct ir_block *blk = &o->fn->blocks[b];
		double r = o->reach[b];
		p->cost += r * (blk->nstmts + (blk->term == IR_BRANCH));
		double pt = blk->term == IR_BRANCH ? p_true(o, b) : 1;
		for (int s = 0; s < opt_nsucc(blk); s++) {
			if (s == 1 && blk->succ[1] == blk->succ[0])
				break;
			double q = s == 0 ? pt : 1 - pt;
			if (blk->term == IR_BRANCH && blk->succ[0] == blk->succ[1])
				q = 1;
			int t = blk->succ[s];
			if (t == next)
				p->pass += r * q;
			else if (!o->dead[t])
				o->reach[t] += r * q;
		}
	}
	return true;
}

#define RARE_PASS 0.1

static double rank(const struct part *p)
{
	double fail = 1 - p->pass;
	return fail < 1e-6 ? 1e12 : p->cost / fail;
}

/* Points the edges from b to old at new, keeping the predecessor counts. */
static void redirect(struct ord *o, int b, int old, int new)
{
	struct ir_block *blk = &o->fn->blocks[b];
	int ns = opt_nsucc(blk);
	for (int s = 0; s < ns; s++)
		if (s == 0 || blk->succ[1] != blk->succ[0])
			o->npred[blk->succ[s]]--;
	for (int s = 0; s < ns; s++)
		if (blk->succ[s] == old)
			blk->succ[s] = new;
	for (int s = 0; s < ns; s++)
		if (s == 0 || blk->succ[1] != blk->succ[0])
			o->npred[blk->succ[s]]++;
}

/* Rewires the chain parts[0..n) into the order perm. */
static void rewire(struct ord *o, struct part *parts, int n, const int *perm, int **preds)
{
	struct ir_func *fn = o->fn;
	int e0 = parts[0].entry, last = parts[n - 1].next;
	int newnext[MAXCHAIN];
	for (int i = 0; i < n; i++)
		newnext[perm[i]] = i + 1 < n ? parts[perm[i + 1]].entry : last;
	int first = parts[perm[0]].entry;
	/* the edges into the chain (no other chain has moved them: see opt_pass_order) */
	for (int i = 0; i < o->pcount[e0]; i++)
		redirect(o, preds[e0][i], e0, first);
	/* each part's edges to its old next */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < parts[i].nblk; j++)
			redirect(o, parts[i].blk[j], parts[i].next, newnext[i]);
	if (first == e0)
		return;
	if (fn->entry == e0)
		fn->entry = first;
	o->fwd[e0] = first;
}

/* Orders the chain; returns true when it changed. */
static bool order_chain(struct ord *o, struct part *parts, int n, int **preds)
{
	uint32_t later = o->live[parts[n - 1].live_next];
	for (int i = 0; i < n; i++)
		later |= parts[i].uses;
	int perm[MAXCHAIN];
	bool used[MAXCHAIN] = {0};
	bool changed = false;
	bool rare = false;   /* a part placed so far rarely passes */
	for (int k = 0; k < n; k++) {
		int best = -1;
		for (int j = 0; j < n; j++) {
			if (used[j])
				continue;
			/* j may go now when no unplaced i before it must precede it */
			bool free = true;
			for (int i = 0; i < j && free; i++)
				if (!used[i] &&
				    ((parts[i].defs & parts[j].uses) || (parts[i].uses & parts[j].defs) ||
				     (parts[i].defs & parts[j].defs & later)))
					free = false;
			/*
			 * After a part few packets pass, the order of the rest hardly
			 * matters; last-first then ends the chain with its first part
			 * (a protocol test), which a sibling chain (IPv4's and IPv6's)
			 * often ends with too, so their tails can be one.
			 */
			if (free && (best < 0 || (rare ? j > best : rank(&parts[j]) < rank(&parts[best]))))
				best = j;
		}
		rare |= parts[best].pass < RARE_PASS;
		used[best] = true;
		perm[k] = best;
		changed |= best != k;
	}
	if (changed)
		rewire(o, parts, n, perm, preds);
	return changed;
}

int opt_pass_order(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	struct ord o = {.fn = fn, .al = al, .nb = fn->nblocks};
	int nb = fn->nblocks, rc = -1;
	int *pstore = NULL, **preds = NULL;
	struct part *parts = NULL;
	o.order = mem_alloc_array(al, (size_t)nb, sizeof *o.order);
	o.tpos = mem_alloc_array(al, (size_t)nb, sizeof *o.tpos);
	o.npred = mem_alloc_array(al, (size_t)nb, sizeof *o.npred);
	o.ipdom = mem_alloc_array(al, (size_t)nb, sizeof *o.ipdom);
	o.dead = mem_alloc(al, (size_t)nb);
	o.member = mem_alloc(al, (size_t)nb);
	o.mark = mem_alloc(al, (size_t)nb);
	o.blocks = mem_alloc_array(al, MAXPART, sizeof *o.blocks);
	o.reach = mem_alloc_array(al, (size_t)nb, sizeof *o.reach);
	o.live = mem_alloc_array(al, (size_t)nb, sizeof *o.live);
	o.asize = mem_alloc(al, (size_t)nb);
	o.amask = mem_alloc_array(al, (size_t)nb, sizeof *o.amask);
	o.fwd = mem_alloc_array(al, (size_t)nb, sizeof *o.fwd);
	o.pcount = mem_alloc_array(al, (size_t)nb, sizeof *o.pcount);
	preds = mem_alloc_array(al, (size_t)nb, sizeof *preds);
	parts = mem_alloc_array(al, MAXCHAIN, sizeof *parts);
	if (!o.order || !o.tpos || !o.npred || !o.ipdom || !o.dead || !o.member || !o.mark ||
	    !o.blocks || !o.reach || !o.live || !o.asize || !o.amask || !o.fwd || !o.pcount || !preds ||
	    !parts)
		goto out;
	o.n = opt_topo(fn, al, o.order);
	if (o.n < 0)
		goto out;
	for (int i = 0; i < nb; i++) {
		o.tpos[i] = -1;
		o.npred[i] = 0;
		o.live[i] = 0;
		o.fwd[i] = -1;
	}
	memset(o.dead, 0, (size_t)nb);
	memset(o.member, 0, (size_t)nb);
	memset(o.mark, 0, (size_t)nb);
	for (int i = 0; i < o.n; i++)
		o.tpos[o.order[i]] = i;
	size_t nedges = 0;
	for (int i = 0; i < o.n; i++) {
		const struct ir_block *blk = &fn->blocks[o.order[i]];
		for (int s = 0; s < opt_nsucc(blk); s++)
			if (s == 0 || blk->succ[1] != blk->succ[0]) {
				o.npred[blk->succ[s]]++;
				nedges++;
			}
	}
	memcpy(o.pcount, o.npred, (size_t)nb * sizeof *o.npred);
	pstore = mem_alloc_array(al, nedges + 1, sizeof *pstore);
	if (!pstore)
		goto out;
	size_t at = 0;
	for (int b = 0; b < nb; b++) {
		preds[b] = pstore + at;
		at += (size_t)o.npred[b];
	}
	int *fill = o.ipdom;   /* borrowed as a counter until analyse */
	for (int b = 0; b < nb; b++)
		fill[b] = 0;
	for (int i = 0; i < o.n; i++) {
		int b = o.order[i];
		const struct ir_block *blk = &fn->blocks[b];
		for (int s = 0; s < opt_nsucc(blk); s++)
			if (s == 0 || blk->succ[1] != blk->succ[0])
				preds[blk->succ[s]][fill[blk->succ[s]]++] = b;
	}
	for (int b = 0; b < nb; b++)
		o.ipdom[b] = -1;
	opt_liveness(fn, o.order, o.n, o.live);
	analyse(&o);

	/*
	 * Chains from their heads, in topological order, so that a part is
	 * claimed by the outermost chain that reaches it; then ordered from the
	 * last head back (inner chains first).
	 */
	int *heads = mem_alloc_array(al, 2 * (size_t)o.n + 2, sizeof *heads);
	int *chainblk = mem_alloc_array(al, MAXCHAIN * MAXPART, sizeof *chainblk);
	if (!heads || !chainblk) {
		mem_free(al, heads);
		mem_free(al, chainblk);
		goto out;
	}
	int nheads = 0;
	for (int i = 0; i < o.n; i++) {
		int b = o.order[i];
		if (o.member[b] || o.dead[b] || fn->blocks[b].term == IR_RET)
			continue;
		struct part p;
		int cur = b, len = 0;
		while (len < MAXCHAIN && !o.member[cur] && part_of(&o, cur, &p)) {
			len++;
			if (!p.seq || fn->blocks[p.next].term == IR_RET)
				break;
			cur = p.next;
		}
		if (len < 2)
			continue;
		cur = b;
		for (int k = 0; k < len; k++) {
			o.member[cur] = 1;
			cur = o.ipdom[cur];
		}
		heads[2 * nheads] = b;
		heads[2 * nheads + 1] = len;
		nheads++;
	}
	for (int h = nheads - 1; h >= 0; h--) {
		int len = heads[2 * h + 1], cur = heads[2 * h], n = 0, used = 0;
		for (; n < len; n++) {
			if (!part_of(&o, cur, &parts[n]) || (n + 1 < len && !parts[n].seq))
				break;
			parts[n].blk = chainblk + used;
			memcpy(parts[n].blk, o.blocks, (size_t)parts[n].nblk * sizeof *o.blocks);
			used += parts[n].nblk;
			cur = parts[n].next;
		}
		if (n == len)
			order_chain(&o, parts, n, preds);
	}
	mem_free(al, heads);
	mem_free(al, chainblk);
	rc = 0;
out:
	mem_free(al, o.order);
	mem_free(al, o.tpos);
	mem_free(al, o.npred);
	mem_free(al, o.ipdom);
	mem_free(al, o.dead);
	mem_free(al, o.member);
	mem_free(al, o.mark);
	mem_free(al, o.blocks);
	mem_free(al, o.reach);
	mem_free(al, o.live);
	mem_free(al, o.asize);
	mem_free(al, o.amask);
	mem_free(al, o.fwd);
	mem_free(al, o.pcount);
	mem_free(al, preds);
	mem_free(al, pstore);
	mem_free(al, parts);
	return rc;
}
