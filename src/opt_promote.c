/*
 * opt_promote.c - a scratch cell that only ever feeds X lives in X.
 *
 * The code generator keeps values it needs later in M[] (a variable header
 * length: `ld #24; st M[12]`, on some paths `ld #26; st M[12]`, then
 * `ldx M[12]`).  When X can hold the cell's value from every store to every
 * read, the cell goes: each `st M[k]` becomes `tax`, each `stx M[k]` goes,
 * each `ldx M[k]` goes and each `ld M[k]` becomes `txa`; dce then turns
 * `ld #24; tax` into `ldx #24`.
 *
 * When that is exact, for one cell k:
 * - X is dead right after every `st M[k]` (it gets overwritten with the
 *   stored value there, so no later instruction may want the old X);
 * - on every path from the entry to a read of M[k], X still holds M[k]:
 *   a forward "X == M[k]" analysis that holds at the entry (both are 0
 *   when a program starts), is made true by `st M[k]` (to be `tax`), `stx
 *   M[k]` and `ldx M[k]`, made false by any other write of X, and must hold
 *   before every read of the cell.
 * Cells failing either condition are left alone.  O(cells x blocks).
 */
#include "opt.h"

#include <string.h>

static bool is_store(const struct ir_stmt *s, uint32_t k)
{
	return (s->code == BPFKIT_ST || s->code == BPFKIT_STX) && s->k == k;
}

static bool is_read(const struct ir_stmt *s, uint32_t k)
{
	return (s->code == (BPFKIT_LD | BPFKIT_MEM) || s->code == (BPFKIT_LDX | BPFKIT_MEM)) &&
	       s->k == k;
}

/* X == M[k] after s, given it held before (in). */
static bool xm_after(const struct ir_stmt *s, uint32_t k, bool in)
{
	if (is_store(s, k) || (s->code == (BPFKIT_LDX | BPFKIT_MEM) && s->k == k))
		return true;
	if (opt_defs(s) & OPT_REG_BIT(OPT_X))
		return false;
	return in;
}

/* Whether cell k can live in X (see the header); xm: scratch per block. */
static bool promotable(const struct ir_func *fn, const int *order, int n, const uint32_t *live,
		       uint32_t k, uint8_t *xm)
{
	const uint32_t xbit = OPT_REG_BIT(OPT_X);
	bool used = false;
	memset(xm, 1, (size_t)fn->nblocks);   /* meet (and) over predecessors; the entry: 1 */
	for (int i = 0; i < n; i++) {
		const struct ir_block *b = &fn->blocks[order[i]];
		bool in = xm[order[i]];
		for (int s = 0; s < b->nstmts; s++) {
			const struct ir_stmt *st = &b->stmts[s];
			if (is_read(st, k)) {
				if (!in)
					return false;
				used = true;
			}
			in = xm_after(st, k, in);
		}
		for (int s = 0; s < opt_nsucc(b); s++)
			xm[b->succ[s]] &= in;
	}
	if (!used)
		return false;
	/* X dead after every `st M[k]`: a backward scan of each block from its live-out */
	for (int i = 0; i < n; i++) {
		const struct ir_block *b = &fn->blocks[order[i]];
		uint32_t l = opt_term_uses(b);
		for (int s = 0; s < opt_nsucc(b); s++)
			l |= live[b->succ[s]];
		for (int s = b->nstmts - 1; s >= 0; s--) {
			const struct ir_stmt *st = &b->stmts[s];
			if (st->code == BPFKIT_ST && st->k == k && (l & xbit))
				return false;
			l = (l & ~opt_defs(st)) | opt_uses(st);
		}
	}
	return true;
}

static void promote(struct ir_func *fn, const int *order, int n, uint32_t k)
{
	for (int i = 0; i < n; i++) {
		struct ir_block *b = &fn->blocks[order[i]];
		int o = 0;
		for (int s = 0; s < b->nstmts; s++) {
			struct ir_stmt st = b->stmts[s];
			if (st.code == BPFKIT_STX && st.k == k)
				continue;
			if (st.code == (BPFKIT_LDX | BPFKIT_MEM) && st.k == k)
				continue;
			if (st.code == BPFKIT_ST && st.k == k)
				st = (struct ir_stmt){BPFKIT_MISC | BPFKIT_TAX, IR_SAFE, 0};
			else if (st.code == (BPFKIT_LD | BPFKIT_MEM) && st.k == k)
				st = (struct ir_stmt){BPFKIT_MISC | BPFKIT_TXA, IR_SAFE, 0};
			b->stmts[o++] = st;
		}
		b->nstmts = o;
	}
}

int opt_pass_promote(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	int nb = fn->nblocks;
	int *order = mem_alloc_array(al, (size_t)nb, sizeof *order);
	uint32_t *live = mem_alloc_array(al, (size_t)nb, sizeof *live);
	uint8_t *xm = mem_alloc(al, (size_t)nb);
	int rc = -1;
	if (!order || !live || !xm)
		goto out;
	int n = opt_topo(fn, al, order);
	if (n < 0)
		goto out;
	/* only cells some block reads can go; liveness changes only when one did */
	uint32_t read = 0;
	for (int i = 0; i < n; i++) {
		const struct ir_block *b = &fn->blocks[order[i]];
		for (int s = 0; s < b->nstmts; s++)
			if (BPFKIT_MODE(b->stmts[s].code) == BPFKIT_MEM &&
			    (BPFKIT_CLASS(b->stmts[s].code) == BPFKIT_LD ||
			     BPFKIT_CLASS(b->stmts[s].code) == BPFKIT_LDX))
				read |= 1u << (b->stmts[s].k & (BPFKIT_MEMWORDS - 1));
	}
	bool stale = true;
	for (uint32_t k = 0; k < BPFKIT_MEMWORDS; k++) {
		if (!(read & (1u << k)))
			continue;
		if (stale)
			opt_liveness(fn, order, n, live);
		stale = promotable(fn, order, n, live, k, xm);
		if (stale)
			promote(fn, order, n, k);
	}
	rc = 0;
out:
	mem_free(al, order);
	mem_free(al, live);
	mem_free(al, xm);
	return rc;
}
