/*
 * ir.c - the compiler's intermediate representation: a control-flow graph.
 *
 * Blocks live in one array and refer to each other by index.  A block is a
 * list of straight-line statements (cBPF loads, stores, ALU, tax/txa) and one
 * terminator: a return or a two-way branch.  Invariants (ir_verify checks
 * them): every successor index is a block; the graph reachable from the entry
 * is acyclic (cBPF jumps only forward); statement codes are known non-jump
 * instructions.  codegen.c keeps one more rule the passes rely on: no value
 * in A or X lives from one block into the next (each block loads what it
 * tests), so a branch whose outcome is known can be bypassed.
 */
#include "internal.h"

#include <string.h>

void ir_init(struct ir_func *fn, struct mem_arena *arena)
{
	memset(fn, 0, sizeof *fn);
	fn->arena = arena;
	fn->entry = -1;
}

int ir_block_new(struct ir_func *fn)
{
	if (fn->failed)
		return -1;
	if (fn->nblocks == fn->cap) {
		int cap = fn->cap ? fn->cap * 2 : 64;
		struct ir_block *v = mem_arena_alloc(fn->arena, (size_t)cap * sizeof *v);
		if (!v) {
			fn->failed = true;
			return -1;
		}
		if (fn->nblocks)
			memcpy(v, fn->blocks, (size_t)fn->nblocks * sizeof *v);
		fn->blocks = v;
		fn->cap = cap;
	}
	struct ir_block *b = &fn->blocks[fn->nblocks];
	memset(b, 0, sizeof *b);
	b->term = IR_RET;
	b->succ[0] = b->succ[1] = -1;
	return fn->nblocks++;
}

int ir_copy(struct ir_func *dst, const struct ir_func *src)
{
	*dst = *src;
	dst->cap = src->nblocks ? src->nblocks : 1;
	dst->blocks = mem_arena_alloc(src->arena, (size_t)dst->cap * sizeof *dst->blocks);
	if (!dst->blocks)
		return -1;
	for (int i = 0; i < src->nblocks; i++) {
		struct ir_block *b = &dst->blocks[i];
		*b = src->blocks[i];
		b->cap = b->nstmts;
		b->stmts = NULL;
		if (b->nstmts) {
			b->stmts = mem_arena_alloc(src->arena, (size_t)b->nstmts * sizeof *b->stmts);
			if (!b->stmts)
				return -1;
			memcpy(b->stmts, src->blocks[i].stmts, (size_t)b->nstmts * sizeof *b->stmts);
		}
	}
	return 0;
}

void ir_stmt_add(struct ir_func *fn, int bi, uint16_t code, uint32_t k)
{
	if (bi < 0 || fn->failed)
		return;
	struct ir_block *b = &fn->blocks[bi];
	if (b->nstmts == b->cap) {
		int cap = b->cap ? b->cap * 2 : 4;
		struct ir_stmt *v = mem_arena_alloc(fn->arena, (size_t)cap * sizeof *v);
		if (!v) {
			fn->failed = true;
			return;
		}
		if (b->nstmts)
			memcpy(v, b->stmts, (size_t)b->nstmts * sizeof *v);
		b->stmts = v;
		b->cap = cap;
	}
	b->stmts[b->nstmts++] = (struct ir_stmt){.code = code, .k = k};
}

int ir_ret(struct ir_func *fn, uint32_t k)
{
	int b = ir_block_new(fn);
	if (b >= 0)
		fn->blocks[b].k = k;
	return b;
}

int ir_branch(struct ir_func *fn, int bi, uint16_t jcode, uint32_t k, int t, int f)
{
	if (bi < 0 || fn->failed)
		return bi;
	struct ir_block *b = &fn->blocks[bi];
	b->term = IR_BRANCH;
	b->jcode = jcode;
	b->k = k;
	b->succ[0] = t;
	b->succ[1] = f;
	return bi;
}

static bool stmt_code_ok(uint16_t code)
{
	const struct opcode_info *op = opcode_lookup(code);
	if (!op)
		return false;
	int cls = BPFKIT_CLASS(code);
	return cls != BPFKIT_JMP && cls != BPFKIT_RET;
}

/*
 * Depth-first search for cycles, iterative (filters can be very long):
 * state 0 unseen, 1 on the stack, 2 done; stack holds (block, next successor).
 */
static int acyclic(const struct ir_func *fn, uint8_t *state, struct bpfkit_error *err)
{
	const struct bpfkit_alloc *al = fn->arena->alloc;
	int *stack = mem_alloc_array(al, (size_t)fn->nblocks * 2, sizeof *stack);
	if (!stack) {
		error_oom(err);
		return -1;
	}
	int sp = 0, rc = 0;
	stack[sp++] = fn->entry;
	stack[sp++] = 0;
	state[fn->entry] = 1;
	while (sp) {
		int b = stack[sp - 2], next = stack[sp - 1];
		const struct ir_block *blk = &fn->blocks[b];
		int nsucc = blk->term == IR_BRANCH ? 2 : blk->term == IR_JUMP ? 1 : 0;
		if (next == nsucc) {
			state[b] = 2;
			sp -= 2;
			continue;
		}
		stack[sp - 1] = next + 1;
		int s = blk->succ[next];
		if (state[s] == 1) {
			error_set(err, "IR: block %d is on a cycle", s);
			rc = -1;
			break;
		}
		if (state[s] == 0) {
			state[s] = 1;
			stack[sp++] = s;
			stack[sp++] = 0;
		}
	}
	mem_free(al, stack);
	return rc;
}

int ir_verify(const struct ir_func *fn, struct bpfkit_error *err)
{
	if (fn->failed) {
		error_oom(err);
		return -1;
	}
	if (fn->entry < 0 || fn->entry >= fn->nblocks) {
		error_set(err, "IR: entry block %d out of range", fn->entry);
		return -1;
	}
	for (int i = 0; i < fn->nblocks; i++) {
		const struct ir_block *b = &fn->blocks[i];
		for (int s = 0; s < b->nstmts; s++)
			if (!stmt_code_ok(b->stmts[s].code)) {
				error_set(err, "IR: block %d statement %d has code %#x", i, s,
					  b->stmts[s].code);
				return -1;
			}
		if (b->term == IR_RET)
			continue;
		if (b->term == IR_JUMP) {
			if (b->succ[0] < 0 || b->succ[0] >= fn->nblocks) {
				error_set(err, "IR: block %d jump target out of range", i);
				return -1;
			}
			continue;
		}
		uint16_t c = b->jcode;
		if (BPFKIT_CLASS(c) != BPFKIT_JMP || BPFKIT_OP(c) == BPFKIT_JA || !opcode_lookup(c)) {
			error_set(err, "IR: block %d branch has code %#x", i, c);
			return -1;
		}
		for (int s = 0; s < 2; s++)
			if (b->succ[s] < 0 || b->succ[s] >= fn->nblocks) {
				error_set(err, "IR: block %d successor %d out of range", i, s);
				return -1;
			}
	}
	uint8_t stackbuf[256];
	uint8_t *state = stackbuf;
	const struct bpfkit_alloc *none = fn->arena->alloc;
	if (fn->nblocks > (int)sizeof stackbuf) {
		state = mem_alloc(none, (size_t)fn->nblocks);
		if (!state) {
			error_oom(err);
			return -1;
		}
	}
	memset(state, 0, (size_t)fn->nblocks);
	int rc = acyclic(fn, state, err);
	if (state != stackbuf)
		mem_free(none, state);
	return rc;
}

/* The outcome of a branch when the block computes a constant into A, else -1. */
static int known_outcome(const struct ir_block *b)
{
	if (b->term != IR_BRANCH || b->nstmts != 1 || BPFKIT_SRC(b->jcode) == BPFKIT_X)
		return -1;
	if (b->stmts[0].code != (BPFKIT_LD | BPFKIT_IMM))
		return -1;
	uint32_t a = b->stmts[0].k, k = b->k;
	switch (BPFKIT_OP(b->jcode)) {
	case BPFKIT_JEQ: return a == k;
	case BPFKIT_JGT: return a > k;
	case BPFKIT_JGE: return a >= k;
	case BPFKIT_JSET: return (a & k) != 0;
	default: return -1;
	}
}

/* Follows a chain of constant branches (they have no other effect: see above). */
static int thread(const struct ir_func *fn, int b)
{
	for (int guard = 0; guard < fn->nblocks; guard++) {
		const struct ir_block *blk = &fn->blocks[b];
		int o = known_outcome(blk);
		if (o >= 0)
			b = blk->succ[o ? 0 : 1];
		else if (((blk->term == IR_BRANCH && blk->succ[0] == blk->succ[1]) ||
			  blk->term == IR_JUMP) && blk->nstmts == 0)
			b = blk->succ[0];
		else
			break;
	}
	return b;
}

/*
 * -O1: threads every edge past constant branches (the "ld #1; jeq #0" that
 * "arp" becomes on DLT_NULL, ...); emit_run drops the blocks left unreachable.
 */
void ir_pass_fold(struct ir_func *fn)
{
	if (fn->failed)
		return;
	fn->entry = thread(fn, fn->entry);
	for (int i = 0; i < fn->nblocks; i++) {
		struct ir_block *b = &fn->blocks[i];
		int nsucc = b->term == IR_BRANCH ? 2 : b->term == IR_JUMP ? 1 : 0;
		for (int s = 0; s < nsucc; s++)
			b->succ[s] = thread(fn, b->succ[s]);
	}
}

static void dump_block(const struct ir_func *fn, int i, struct mem_buf *out)
{
	const struct ir_block *b = &fn->blocks[i];
	mem_buf_printf(out, "b%d:\n", i);
	for (int s = 0; s < b->nstmts; s++) {
		struct bpfkit_insn in = {b->stmts[s].code, 0, 0, b->stmts[s].k};
		mem_buf_puts(out, "\t");
		fmt_asm_stmt(out, &in);
		mem_buf_puts(out, b->stmts[s].flags & IR_SAFE ? "\t; safe\n" : "\n");
	}
	if (b->term == IR_RET) {
		mem_buf_printf(out, "\tret #%u\n", b->k);
	} else if (b->term == IR_JUMP) {
		mem_buf_printf(out, "\tgoto b%d\n", b->succ[0]);
	} else {
		struct bpfkit_insn in = {b->jcode, 0, 0, b->k};
		mem_buf_puts(out, "\t");
		fmt_asm_stmt(out, &in);
		mem_buf_printf(out, " -> b%d, b%d\n", b->succ[0], b->succ[1]);
	}
}

void ir_dump(const struct ir_func *fn, struct mem_buf *out)
{
	if (fn->entry < 0)
		return;
	/* reachable blocks in index order */
	uint8_t *seen = mem_alloc(fn->arena->alloc, (size_t)fn->nblocks);
	int *stack = mem_alloc_array(fn->arena->alloc, (size_t)fn->nblocks, sizeof *stack);
	if (!seen || !stack) {
		mem_free(fn->arena->alloc, seen);
		mem_free(fn->arena->alloc, stack);
		mem_buf_puts(out, "(out of memory)\n");
		return;
	}
	memset(seen, 0, (size_t)fn->nblocks);
	int sp = 0;
	stack[sp++] = fn->entry;
	seen[fn->entry] = 1;
	while (sp) {
		const struct ir_block *b = &fn->blocks[stack[--sp]];
		int nsucc = b->term == IR_BRANCH ? 2 : b->term == IR_JUMP ? 1 : 0;
		for (int s = 0; s < nsucc; s++)
			if (!seen[b->succ[s]]) {
				seen[b->succ[s]] = 1;
				stack[sp++] = b->succ[s];
			}
	}
	mem_buf_printf(out, "entry b%d\n", fn->entry);
	for (int i = 0; i < fn->nblocks; i++)
		if (seen[i])
			dump_block(fn, i, out);
	mem_free(fn->arena->alloc, seen);
	mem_free(fn->arena->alloc, stack);
}
