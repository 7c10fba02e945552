/*
 * opt.h - what the optimizer's passes share (src/opt*.c): value numbers,
 * facts about values, the symbolic evaluation of a block, block orders.
 *
 * A value number names one 32-bit quantity of a run of the program: a
 * constant, a packet load, the wire length, an ALU result of other values,
 * or an opaque value (what a register holds where paths with different
 * contents meet).  Numbers are hash-consed, so two equal numbers are equal
 * values on every run: the packet does not change while a filter runs.  A
 * load's number says nothing about whether the load succeeds; that is a fact
 * of a path (struct opt_facts: the captured length known so far, loads
 * already done).
 *
 * Facts are what holds on every path into a point: per value an interval, a
 * few excluded constants and known bits, plus the bytes known captured.
 * They are kept small (OPT_MAXFACTS values, OPT_NE excluded constants) so
 * that a pass costs O(blocks) however long the filter is; dropping a fact is
 * always sound.
 */
#ifndef BPFKIT_OPT_H
#define BPFKIT_OPT_H

#include "internal.h"

enum { OPT_A = 0, OPT_X = 1, OPT_M0 = 2, OPT_NREGS = 2 + BPFKIT_MEMWORDS };
#define OPT_REG_BIT(r) (1u << (r))
#define OPT_ALL_REGS ((1u << OPT_NREGS) - 1)

enum opt_kind { OV_CONST, OV_LOAD, OV_MSH, OV_LEN, OV_ALU, OV_OPAQUE };

struct opt_val {
	uint8_t kind;
	uint8_t size;    /* OV_LOAD: 1, 2 or 4 */
	uint8_t op;      /* OV_ALU: BPFKIT_OP (NEG: b = -1) */
	int a, b;        /* OV_LOAD: index value (-1: absolute); OV_ALU: operands */
	uint32_t k;      /* OV_CONST value; OV_LOAD, OV_MSH offset; OV_OPAQUE serial */
	uint32_t lo, hi; /* what the value's form implies: an interval ... */
	uint32_t zero;   /* ... and bits known zero */
};

struct opt_vals {
	const struct bpfkit_alloc *alloc;
	struct opt_val *v;
	int n, cap;
	int *hash;       /* open addressing, -1 empty */
	size_t hcap;
	bool failed;
};

void opt_vals_init(struct opt_vals *t, const struct bpfkit_alloc *alloc);
void opt_vals_free(struct opt_vals *t);
int opt_const(struct opt_vals *t, uint32_t k);
int opt_opaque(struct opt_vals *t);
/* A load of size at k (+ the value idx when idx >= 0); folds a constant index. */
int opt_load(struct opt_vals *t, int size, int idx, uint32_t k);
int opt_msh(struct opt_vals *t, uint32_t k);
int opt_len(struct opt_vals *t);
/* op on a and b (b = -1 for NEG), simplified algebraically and folded. */
int opt_alu(struct opt_vals *t, int op, int a, int b);
bool opt_is_const(const struct opt_vals *t, int v, uint32_t *k);

#define OPT_NE 4
#define OPT_MAXFACTS 96

struct opt_fact {
	int v;
	uint32_t lo, hi;     /* lo <= value <= hi */
	uint32_t one, zero;  /* bits known set, known clear */
	uint32_t any;        /* value & any != 0 (a jset that went true); 0: nothing known */
	uint32_t ne[OPT_NE]; /* value is none of these */
	uint8_t nne;
	bool done;           /* OV_LOAD: the load has run (without running off the packet) */
};

struct opt_facts {
	struct opt_fact *f;  /* sorted by v */
	int n, cap;
	uint32_t caplen;     /* at least this many bytes are captured */
	bool dead;           /* contradictory: no run gets here */
};

/* The registers' values: A, X, M[0..15]. */
struct opt_state {
	int r[OPT_NREGS];
};

/* The facts and state on an edge or at a block's entry. */
struct opt_ctx {
	struct opt_facts facts;
	struct opt_state st;
	bool set;            /* false: nothing reaches here yet */
};

void opt_facts_free(const struct bpfkit_alloc *a, struct opt_facts *f);
/* dst = copy of src; false when out of memory (dst then holds no facts: sound) */
bool opt_facts_copy(const struct bpfkit_alloc *a, struct opt_facts *dst,
		    const struct opt_facts *src);
/* dst = what holds in both dst and src */
void opt_facts_meet(struct opt_facts *dst, const struct opt_facts *src);
/* Learns that the branch jcode/k on value a (x: X's value) went way (1 true). */
void opt_facts_learn(struct opt_vals *t, const struct bpfkit_alloc *al, struct opt_facts *f,
		     uint16_t jcode, uint32_t k, int a, int x, int way);
/* The outcome of jcode/k on value a (and X value x) under f: 1, 0, or -1 unknown. */
int opt_decide(struct opt_vals *t, const struct opt_facts *f, uint16_t jcode, uint32_t k, int a,
	       int x);
/* Merges the context src into dst (dst unset: copy). */
void opt_ctx_meet(struct opt_vals *t, const struct bpfkit_alloc *al, struct opt_ctx *dst,
		  const struct opt_ctx *src);

/*
 * Runs one statement symbolically: updates st and, when commit, f with what
 * holds after the statement ran without failing.  Returns 1 when the
 * statement cannot fail under f (no load past the captured bytes, no
 * division by zero), 0 when it may.
 */
int opt_eval(struct opt_vals *t, const struct bpfkit_alloc *al, struct opt_state *st,
	     struct opt_facts *f, const struct ir_stmt *s, bool commit);
/* The registers a statement reads and writes (OPT_REG_BIT masks). */
uint32_t opt_uses(const struct ir_stmt *s);
uint32_t opt_defs(const struct ir_stmt *s);
/* Registers a terminator reads. */
uint32_t opt_term_uses(const struct ir_block *b);

/*
 * Blocks reachable from the entry in a topological order (every edge goes
 * forward); returns the count, fills order (fn->nblocks ints); -1 when out of
 * memory.
 */
int opt_topo(const struct ir_func *fn, const struct bpfkit_alloc *al, int *order);
/* Live registers at each block's entry (live[fn->nblocks]), from a topo order. */
void opt_liveness(const struct ir_func *fn, const int *order, int n, uint32_t *live);
/* Number of successors (1 for IR_JUMP, 2 for IR_BRANCH, 0 for IR_RET). */
int opt_nsucc(const struct ir_block *b);

/*
 * A forward walk in topological order: each block's entry context is the
 * meet of what its processed predecessors sent along their edges.
 */
struct opt_walk {
	struct ir_func *fn;
	const struct bpfkit_alloc *al;
	struct opt_vals vals;
	int *order;          /* topological order of the reachable blocks */
	int n;
	struct opt_ctx *in;  /* per block: the meet so far */
	uint32_t *live;      /* per block: live registers at entry (when asked for) */
};
int opt_walk_init(struct opt_walk *w, struct ir_func *fn, const struct bpfkit_alloc *al,
		  bool liveness);
/* Moves block b's entry context to ctx; false when nothing reaches b. */
bool opt_walk_take(struct opt_walk *w, int b, struct opt_ctx *ctx);
/*
 * The context on blk's edge s (0: true or the jump, 1: false), from ctx, the
 * context after blk's statements: its facts plus the branch outcome.
 */
void opt_walk_edge(struct opt_walk *w, const struct ir_block *blk, const struct opt_ctx *ctx,
		   int s, struct opt_ctx *e);
/* Meets ctx into target t's entry and frees ctx's facts. */
void opt_walk_send(struct opt_walk *w, int t, struct opt_ctx *ctx);
void opt_walk_free(struct opt_walk *w);
/* Marks every statement IR_SAFE or not (the analysis of opt_vn.c, no rewriting). */
int opt_mark_safe(struct ir_func *fn, const struct bpfkit_alloc *al);

/* The passes; each returns 0, or -1 when out of memory (fn stays valid). */
int opt_pass_vn(struct ir_func *fn, const struct bpfkit_alloc *al);
int opt_pass_vn_abs(struct ir_func *fn, const struct bpfkit_alloc *al);
int opt_pass_thread(struct ir_func *fn, const struct bpfkit_alloc *al);
int opt_pass_dce(struct ir_func *fn, const struct bpfkit_alloc *al);
int opt_pass_merge(struct ir_func *fn, const struct bpfkit_alloc *al, bool suffixes);
int opt_pass_pullup(struct ir_func *fn, const struct bpfkit_alloc *al);
int opt_pass_switch(struct ir_func *fn, const struct bpfkit_alloc *al);
int opt_pass_order(struct ir_func *fn, const struct bpfkit_alloc *al);
int opt_pass_promote(struct ir_func *fn, const struct bpfkit_alloc *al);

#endif
