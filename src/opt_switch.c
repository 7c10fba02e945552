/*
 * opt_switch.c - long chains of equality tests on one value become a ladder
 * of range tests over buckets, so a packet runs about 2 * sqrt(n) tests
 * instead of up to n (`port 20 or port 21 or ... ` with 50 ports: about 14
 * instead of 50 for a packet that matches none).
 *
 * A chain: a block ending in `jeq #c1` whose false successor is a block with
 * no statements, no other predecessor, ending in `jeq #c2` with the same
 * true successor T, and so on; the last false successor is F.  Every test
 * reads the A the first block left, and none can fail, so their order is
 * free: the constants are sorted, cut into buckets of about sqrt(n), and
 * `jgt` on each bucket's largest constant picks the bucket to scan.  The
 * program grows by one instruction per bucket.  Chains shorter than
 * MIN_CHAIN are left alone.
 */
#include "opt.h"

#include <stdlib.h>
#include <string.h>

#define MIN_CHAIN 8

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static bool is_link(const struct ir_block *b, int t)
{
	return b->term == IR_BRANCH && b->jcode == (BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K) &&
	       b->succ[0] == t && b->succ[1] != t;
}

/* Rebuilds the chain headed by h (blocks in chain[0..n), constants k). */
static int rebuild(struct ir_func *fn, int *chain, int n, uint32_t *k, int t, int f)
{
	qsort(k, (size_t)n, sizeof *k, cmp_u32);
	int m = 0;
	for (int i = 0; i < n; i++)
		if (!m || k[m - 1] != k[i])
			k[m++] = k[i];
	int size = 4;
	while (size * size < m)
		size++;
	int nb = (m + size - 1) / size;
	/* bucket heads, built from the last: chain[1..] are reused, ladders are new */
	int used = 1, next_ladder = -1;
	for (int j = nb - 1; j >= 0; j--) {
		int lo = j * size, hi = lo + size < m ? lo + size : m;
		int head = f;
		for (int i = hi - 1; i >= lo; i--) {
			int b = used < n ? chain[used++] : ir_block_new(fn);
			if (b < 0)
				return -1;
			ir_branch(fn, b, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, k[i], t, head);
			head = b;
		}
		if (next_ladder < 0) {
			next_ladder = head;
			continue;
		}
		/* A > the bucket's largest: the buckets after it */
		int l = j == 0 ? chain[0] : ir_block_new(fn);
		if (l < 0)
			return -1;
		ir_branch(fn, l, BPFKIT_JMP | BPFKIT_JGT | BPFKIT_K, k[hi - 1], next_ladder, head);
		next_ladder = l;
	}
	if (nb == 1) {
		/* one bucket: the head keeps its statements and jumps into it */
		struct ir_block *h = &fn->blocks[chain[0]];
		h->term = IR_JUMP;
		h->succ[0] = next_ladder;
	}
	return 0;
}

int opt_pass_switch(struct ir_func *fn, const struct bpfkit_alloc *al)
{
	int nb = fn->nblocks, rc = -1;
	int *order = mem_alloc_array(al, (size_t)nb, sizeof *order);
	int *npred = mem_alloc_array(al, (size_t)nb, sizeof *npred);
	int *chain = mem_alloc_array(al, (size_t)nb, sizeof *chain);
	uint32_t *k = mem_alloc_array(al, (size_t)nb, sizeof *k);
	uint8_t *done = mem_alloc(al, (size_t)nb);
	int n = order && npred && chain && k && done ? opt_topo(fn, al, order) : -1;
	if (n < 0)
		goto out;
	memset(npred, 0, (size_t)nb * sizeof *npred);
	memset(done, 0, (size_t)nb);
	for (int i = 0; i < n; i++) {
		const struct ir_block *b = &fn->blocks[order[i]];
		for (int s = 0; s < opt_nsucc(b); s++)
			npred[b->succ[s]]++;
	}
	rc = 0;
	for (int i = 0; i < n && rc == 0; i++) {
		int h = order[i];
		if (done[h] || !is_link(&fn->blocks[h], fn->blocks[h].succ[0]))
			continue;
		int t = fn->blocks[h].succ[0], len = 0, cur = h;
		while (1) {
			const struct ir_block *b = &fn->blocks[cur];
			chain[len] = cur;
			k[len++] = b->k;
			done[cur] = 1;
			int nx = b->succ[1];
			const struct ir_block *nb2 = &fn->blocks[nx];
			if (nb2->nstmts || npred[nx] != 1 || !is_link(nb2, t) || done[nx])
				break;
			cur = nx;
		}
		if (len >= MIN_CHAIN)
			rc = rebuild(fn, chain, len, k, t, fn->blocks[cur].succ[1]);
	}
	if (fn->failed)
		rc = -1;
out:
	mem_free(al, order);
	mem_free(al, npred);
	mem_free(al, chain);
	mem_free(al, k);
	mem_free(al, done);
	return rc;
}
