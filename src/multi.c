/*
 * multi.c - the multi-filter matcher: N compiled rules, every rule that
 * accepts a packet found at once (docs/multi.md).
 *
 * Build, in order:
 *   1. validate each rule (pcap mode) and dedupe identical programs;
 *   2. analyse each distinct program symbolically: A, X and M[] hold
 *      constants, packet fields (load & mask at an absolute offset, or at an
 *      offset relative to X = 4*(pkt[b]&0xf) of `ldx msh`) or unknown; a
 *      `jeq #k` on a field is an atom whose true edge implies field == k;
 *      branches decided by constants are pruned;
 *   3. choose a cut per program: a set of fields such that every path from
 *      the entry to an accepting return crosses the true edge of an atom on
 *      one of them.  Start with every field, then drop fields, least
 *      selective first (fewest distinct values over the rule set), while the
 *      rest still cut.  A program with no cut is residual;
 *   4. index: per field, a hash table value -> programs whose cut has an
 *      atom (field == value).
 * Before 2, each program is walked path-sensitively into a decision DAG
 * over raw header fields (struct dnode): when that succeeds the program is
 * "decided", its atoms and cut come from the DAG instead of step 2 (so a
 * tail shared by paths with different X still yields atoms), and it is
 * never run.
 * After the index, the DAGs take a 16-byte match-time form (struct mnode)
 * and the few tests most DAGs start with (ethertype, IP protocol...) are
 * hoisted: evaluated once per packet into a class, for which every DAG has a
 * copy with those tests already followed (build_classes).
 * Match: compute the packet's class; evaluate each indexed field once (a
 * bit filter first, then its table); the programs listed under its value
 * are candidates unless their class copy rejects outright; each candidate,
 * and every residual program, is decided from its class copy (tested values
 * read once per packet) or, when it has no DAG, runs in full on the fast
 * interpreter, the JIT or the reference interpreter; a program that accepts
 * adds its rules, sorted at the end (straight into a bitmap up to 4,096
 * rules, else through a bitmap or a radix sort).
 *
 * Invariant (exactness): the result for every packet is exactly the set of
 * rules whose own program returns non-zero.  A program that accepts took,
 * on its path, the true edge of an atom of its cut; the atom's load had
 * succeeded and a field is a pure function of the packet, so evaluating the
 * field gives the same value and the program is a candidate; candidates
 * are confirmed by running them or by their DAG, which mirrors every path of
 * the program: a load is a "present" node (or is implied by the next node
 * reading the same field), a test reads the field the path loaded, a return
 * is a leaf.  A field that cannot be loaded (short
 * packet) has no value and makes no candidates: a path through that atom
 * would have ended with 0 at the load.  Symbolic values are path-insensitive
 * (two paths giving different values meet as unknown).  A class copy of a
 * DAG decides as the DAG does whenever the class is used: only when every
 * hoisted test's value is present, so each hoisted node's outcome is the
 * class bit; a packet with one absent uses the DAGs as built.
 *
 * The matcher is read-only after build, so threads may share it; per-packet
 * scratch lives in a caller's struct bpfkit_multi_state.  Memory comes from
 * the caller's hook through a counting wrapper, so stats report the bytes.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Symbolic values                                                     */

enum sym_kind { SYM_UNKNOWN, SYM_CONST, SYM_LOAD, SYM_MSH, SYM_LEN };

struct sym {
	uint8_t kind;
	uint8_t size;   /* LOAD: 1, 2 or 4 bytes */
	uint8_t based;  /* LOAD: offset counts from 4*(pkt[base]&0xf) */
	uint32_t base;  /* LOAD based, MSH: the byte `ldx msh` reads */
	uint32_t val;   /* CONST: the value; LOAD: the offset; MSH: the constant added */
	uint32_t mask;  /* LOAD: the mask applied to the loaded value */
};

#define NREG 18 /* A, X, M[0..15] */
#define REG_A 0
#define REG_X 1
#define REG_M 2

/* Flow bits per instruction, kept from analysis to cut. */
enum { FLOW_T = 1, FLOW_F = 2, FLOW_ACCEPT = 4 };

static const struct sym sym_unknown = {SYM_UNKNOWN, 0, 0, 0, 0, 0};

static struct sym sym_const(uint32_t v)
{
	return (struct sym){SYM_CONST, 0, 0, 0, v, 0};
}

static bool sym_eq(const struct sym *a, const struct sym *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case SYM_CONST: return a->val == b->val;
	case SYM_LOAD:
		return a->size == b->size && a->based == b->based && a->base == b->base &&
		       a->val == b->val && a->mask == b->mask;
	case SYM_MSH: return a->base == b->base && a->val == b->val;
	default: return true;
	}
}

static uint32_t size_mask(unsigned size)
{
	return size == 4 ? 0xffffffffu : size == 2 ? 0xffffu : 0xffu;
}

/* ------------------------------------------------------------------ */
/* The matcher                                                         */

/* One entry of a field's table: programs cands[start .. start+count). */
struct slot {
	uint32_t key, start, count; /* count 0: empty */
};

struct field {
	uint32_t base, off, mask;
	uint8_t size, based;
	uint32_t tmask;       /* table size - 1 */
	uint32_t shift;       /* 32 - log2(table size): slot_hash's shift */
	uint32_t fshift;      /* filter bit of v: slot_hash(v, fshift), 8x the slots */
	struct slot *slots;
	uint64_t *filter;     /* bit set for each value in slots: most misses stop here */
	uint32_t distinct;    /* build: distinct values among atoms (selectivity) */
	uint32_t first_pair;  /* build: list of this field's pairs */
};

/* One distinct program and how to run it. */
struct runner {
	bpfkit_jit_fn fn;               /* JIT code, or NULL */
	const struct bpfkit_fast *fast; /* fast interpreter, or NULL */
	const struct bpfkit_insn *insns;
	uint32_t len;
	uint32_t first, nrules;         /* its rules: rule_ids[first .. first+nrules) */
	uint32_t entry;                 /* its decision DAG's entry, or DEC_NONE */
};

/*
 * Decision DAGs.  A program whose every test compares a header field
 * (`load & mask` of a raw field) or the wire length with a constant, and
 * whose every load is of a raw field, is decided without running it: its
 * instructions become nodes "raw & mask OP k" (loads become "present"
 * nodes: mask 0, JGE 0) and returns become the leaves DEC_ACCEPT and
 * DEC_REJECT.  A node whose raw field is absent (past caplen) rejects, as the
 * program's load of it would have returned 0.
 */
#define DEC_ACCEPT 0xffffffffu
#define DEC_REJECT 0xfffffffeu
#define DEC_NONE 0xfffffffdu
#define DEC_LEAF 0xfffffff0u   /* indices at or above are not nodes */

enum { DOP_JEQ, DOP_JGT, DOP_JGE, DOP_JSET };

struct dnode {
	uint32_t mask, k;
	uint32_t next[2];   /* [0] false, [1] true */
	uint32_t raw;
	uint32_t op;
};

/*
 * The match-time form of the DAG nodes, 16 bytes: node i of struct dnode is
 * mnodes[i + 2]; mnodes[MN_ACCEPT] and mnodes[MN_REJECT] are the leaves,
 * nodes whose both edges lead to themselves (on value 0, always present),
 * so DAG walks run without a branch per step.  A node tests value vid =
 * vop >> 2 (a raw field and a mask, read and masked once per packet) with
 * op vop & 3; an absent value rejects.  progs[].entry is in this numbering
 * after the build (DEC_NONE still means undecided).
 */
#define MN_ACCEPT 0u
#define MN_REJECT 1u
/* At most this many hoisted tests: 2^MAX_HOT + 1 entry rows. */
#define MAX_HOT 6

struct mnode {
	uint32_t k;
	uint32_t next[2];   /* [0] false, [1] true */
	uint32_t vop;       /* vid << 2 | op */
};

/* A tested value: raw field raw (UINT32_MAX: the constant 0) & mask. */
struct tval {
	uint32_t raw, mask;
};

/* A raw field: size bytes at off (plus 4*(pkt[base]&0xf) when based); size 0: wire length. */
struct raw {
	uint32_t off, base;
	uint8_t size, based;
};

struct bpfkit_multi {
	struct bpfkit_alloc counting;   /* wraps user; counts live bytes */
	const struct bpfkit_alloc *user;
	struct bpfkit_alloc user_copy;
	size_t bytes;
	size_t nrules, nprogs, nfields, nresidual, residual_rules, ncands, jitted;
	struct runner *progs;
	struct bpfkit_fast **fasts;
	struct bpfkit_jit **jits;
	uint32_t *rule_ids;
	struct field *fields;
	uint32_t *cands;
	uint32_t *residual;
	struct bpfkit_insn *code;
	struct dnode *nodes;     /* build only (freed by move_dags) */
	size_t nnodes, decided;
	struct raw *raws;
	size_t nraws;
	struct mnode *mnodes;    /* nnodes + 2 */
	struct tval *vals;       /* vals[0]: the constant 0 */
	size_t nvals;
	/* Hoisted tests (see build_classes): hot[h] is a test (vop, k) whose
	 * outcome is bit h of the packet's class; centry[c * nprogs + j] is
	 * program j's entry with the hot tests at its start already followed
	 * for class c; row 1 << nhot: every entry as is (a hot value absent). */
	struct mnode hot[MAX_HOT];
	unsigned nhot;
	uint32_t *centry;
};

struct bpfkit_multi_state {
	const struct bpfkit_alloc *alloc;
	struct bpfkit_alloc alloc_copy;
	uint32_t gen;
	size_t nprogs, nrules;
	uint32_t *stamp;
	uint32_t *pend;         /* this packet's candidate programs */
	uint32_t *ids, *tmp;    /* matched rule ids; radix sort's buffer */
	uint64_t *bits;         /* (nrules + 63) / 64 words, zero between calls */
	uint64_t *rval;         /* tested values (m->vals), bit 32: absent */
	uint32_t *rgen;         /* rval[i] is this packet's when rgen[i] == gen */
	size_t nvals;
};

/* The counting hook: a 16-byte header holds each block's size. */
#define COUNT_HDR 16

static void *count_fn(void *ud, void *ptr, size_t size)
{
	struct bpfkit_multi *m = ud;
	char *base = NULL;
	size_t old = 0;
	if (ptr) {
		base = (char *)ptr - COUNT_HDR;
		memcpy(&old, base, sizeof old);
	}
	if (size == 0) {
		mem_free(m->user, base);
		m->bytes -= old;
		return NULL;
	}
	if (size > SIZE_MAX - COUNT_HDR)
		return NULL;
	char *nb = mem_realloc(m->user, base, size + COUNT_HDR);
	if (!nb)
		return NULL;
	m->bytes = m->bytes - old + size;
	memcpy(nb, &size, sizeof size);
	return nb + COUNT_HDR;
}

/* ------------------------------------------------------------------ */
/* Build-time tables                                                   */

/* An atom: the true edge of jeq at insn means field == value. */
struct atom {
	uint32_t insn, field, value;
};

/* A (field, value) pair of the index. */
struct pair {
	uint32_t field, value, count, start, last_prog, next_in_field;
	uint32_t pop;   /* programs with a relevant atom on it: the bucket it would make */
};

struct memo {
	uint32_t next, node;
};

struct build {
	struct bpfkit_multi *m;
	const struct bpfkit_alloc *tmp;   /* the caller's hook, for scratch */
	struct bpfkit_error *err;
	bool oom;
	/* fields */
	size_t cap_fields;
	uint32_t *field_map;               /* ids + 1, 0 empty */
	size_t field_map_mask;
	/* pairs */
	struct pair *pairs;
	size_t npairs, cap_pairs;
	uint32_t *pair_map;
	size_t pair_map_mask;
	/* atoms of every program, and each program's range */
	struct atom *atoms;
	size_t natoms, cap_atoms;
	uint32_t *atom_first;              /* per program, nprogs + 1 */
	uint8_t *flow;                     /* per instruction of m->code */
	size_t *code_first;                /* per program */
	/* decision DAGs */
	size_t cap_nodes, cap_raws;
	uint32_t *raw_map;
	size_t raw_map_mask;
	uint32_t *memo_head;               /* per instruction: its first memo entry */
	size_t cap_memo_head;
	struct memo *memo;
	size_t nmemo, cap_memo;
	struct sym *memo_regs;             /* NREG per memo entry */
	size_t cap_memo_regs;
	struct sym *frames;                /* NREG per walk depth */
	size_t cap_frames;
	uint32_t *node_first;              /* per program + 1: its DAG's nodes */
	uint8_t *dcut, *dreach;            /* per DAG node of one program */
	size_t cap_dcut, cap_dreach;
	uint8_t *cutp;                     /* b->cut or b->dcut: the current cut */
	bool run_all;
	/* scratch for one program */
	size_t cap_insns;
	struct sym *regs;
	uint8_t *live, *canacc, *reach, *cut;
};

static bool grow(struct build *b, void **p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : 64;
	while (n < need)
		n *= 2;
	void *q = mem_realloc(b->tmp, *p, n * size);
	if (!q || (size && n > SIZE_MAX / size)) {
		if (q)
			*p = q;
		b->oom = true;
		return false;
	}
	*p = q;
	*cap = n;
	return true;
}

static uint32_t hash32(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (uint32_t)x;
}

/* A field table's slot for value v: multiplicative hashing, top bits. */
static inline uint32_t slot_hash(uint32_t v, uint32_t shift)
{
	return (uint32_t)(v * 2654435761u) >> shift;
}

static uint32_t field_hash(const struct sym *s)
{
	uint64_t a = ((uint64_t)s->val << 32) | s->mask;
	uint64_t c = ((uint64_t)s->base << 8) | ((uint64_t)s->size << 1) | s->based;
	return hash32(a ^ hash32(c) * 0x9e3779b97f4a7c15ull);
}

/* The first empty slot of an open-addressing id map from hash h. */
static size_t map_free_slot(const uint32_t *map, size_t mask, uint32_t h)
{
	size_t k = h & mask;
	while (map[k])
		k = (k + 1) & mask;
	return k;
}

/*
 * Rebuilds an open-addressing id map at size 2 * need rounded to a power of
 * two, holding ids 0..n-1 (slots store id + 1) placed by hash(b, id).
 */
static bool map_rebuild(struct build *b, uint32_t **map, size_t *mask, size_t need, size_t n,
			uint32_t (*hash)(const struct build *, size_t))
{
	size_t size = 16;
	while (size < need * 2)
		size *= 2;
	uint32_t *nm = mem_alloc_array(b->tmp, size, sizeof *nm);
	if (!nm) {
		b->oom = true;
		return false;
	}
	memset(nm, 0, size * sizeof *nm);
	mem_free(b->tmp, *map);
	*map = nm;
	*mask = size - 1;
	for (size_t i = 0; i < n; i++)
		nm[map_free_slot(nm, *mask, hash(b, i))] = (uint32_t)i + 1;
	return true;
}

static uint32_t field_hash_id(const struct build *b, size_t i)
{
	const struct field *f = &b->m->fields[i];
	struct sym t = {SYM_LOAD, f->size, f->based, f->base, f->off, f->mask};
	return field_hash(&t);
}

/* The field's id, added when new; UINT32_MAX when out of memory. */
static uint32_t field_intern(struct build *b, const struct sym *s)
{
	struct bpfkit_multi *m = b->m;
	if (m->nfields * 2 + 2 > b->field_map_mask &&
	    !map_rebuild(b, &b->field_map, &b->field_map_mask, m->nfields + 1, m->nfields,
			 field_hash_id))
		return UINT32_MAX;
	size_t h = field_hash(s) & b->field_map_mask;
	for (; b->field_map[h]; h = (h + 1) & b->field_map_mask) {
		const struct field *f = &m->fields[b->field_map[h] - 1];
		if (f->size == s->size && f->based == s->based && f->base == s->base &&
		    f->off == s->val && f->mask == s->mask)
			return b->field_map[h] - 1;
	}
	if (!grow(b, (void **)&m->fields, &b->cap_fields, m->nfields + 1, sizeof *m->fields))
		return UINT32_MAX;
	/* m->fields comes from the scratch hook during build and is copied at the end. */
	struct field *f = &m->fields[m->nfields];
	memset(f, 0, sizeof *f);
	f->base = s->base;
	f->off = s->val;
	f->mask = s->mask;
	f->size = s->size;
	f->based = s->based;
	f->first_pair = UINT32_MAX;
	b->field_map[h] = (uint32_t)m->nfields + 1;
	return (uint32_t)m->nfields++;
}

static uint32_t pair_hash(uint32_t field, uint32_t value)
{
	return hash32(((uint64_t)field << 32) | value);
}

static uint32_t pair_hash_id(const struct build *b, size_t i)
{
	return pair_hash(b->pairs[i].field, b->pairs[i].value);
}

/*
 * The pair's index, added (and counted in its field's `distinct`) when new.
 * Looking up an existing pair never allocates, so it cannot fail.
 */
static uint32_t pair_intern(struct build *b, uint32_t field, uint32_t value)
{
	size_t h = 0;
	if (b->pair_map) {
		h = pair_hash(field, value) & b->pair_map_mask;
		for (; b->pair_map[h]; h = (h + 1) & b->pair_map_mask) {
			const struct pair *p = &b->pairs[b->pair_map[h] - 1];
			if (p->field == field && p->value == value)
				return b->pair_map[h] - 1;
		}
	}
	if (!b->pair_map || b->npairs * 2 + 2 > b->pair_map_mask) {
		if (!map_rebuild(b, &b->pair_map, &b->pair_map_mask, b->npairs + 1, b->npairs,
				 pair_hash_id))
			return UINT32_MAX;
		h = map_free_slot(b->pair_map, b->pair_map_mask, pair_hash(field, value));
	}
	if (!grow(b, (void **)&b->pairs, &b->cap_pairs, b->npairs + 1, sizeof *b->pairs))
		return UINT32_MAX;
	struct field *f = &b->m->fields[field];
	b->pairs[b->npairs] = (struct pair){field, value, 0, 0, UINT32_MAX, f->first_pair, 0};
	f->first_pair = (uint32_t)b->npairs;
	f->distinct++;
	b->pair_map[h] = (uint32_t)b->npairs + 1;
	return (uint32_t)b->npairs++;
}

/* ------------------------------------------------------------------ */
/* Analysis of one program                                             */

static void meet(struct build *b, size_t to, const struct sym *s)
{
	struct sym *d = &b->regs[to * NREG];
	if (!b->live[to]) {
		memcpy(d, s, NREG * sizeof *d);
		b->live[to] = 1;
		return;
	}
	for (int r = 0; r < NREG; r++)
		if (!sym_eq(&d[r], &s[r]))
			d[r] = sym_unknown;
}

/* An indirect load of size bytes at X + k. */
static struct sym load_ind(const struct sym *x, uint32_t k, unsigned size)
{
	if (x->kind == SYM_CONST) {
		uint64_t off = (uint64_t)x->val + k;
		if (off > UINT32_MAX)
			return sym_unknown;
		return (struct sym){SYM_LOAD, (uint8_t)size, 0, 0, (uint32_t)off, size_mask(size)};
	}
	if (x->kind == SYM_MSH) {
		uint64_t off = (uint64_t)x->val + k;
		if (off > UINT32_MAX)
			return sym_unknown;
		return (struct sym){SYM_LOAD, (uint8_t)size, 1, x->base, (uint32_t)off,
				    size_mask(size)};
	}
	return sym_unknown;
}

static unsigned load_size(uint16_t code)
{
	switch (BPFKIT_SIZE(code)) {
	case BPFKIT_W: return 4;
	case BPFKIT_H: return 2;
	default: return 1;
	}
}

static void jump_edges(const struct bpfkit_insn *in, const struct sym *s, bool *t, bool *f);
static void step(const struct bpfkit_insn *in, struct sym *s);

/*
 * Propagates symbolic registers over the program (a DAG: jumps go forward),
 * sets flow[] (feasible edges, accepting returns) and appends the program's
 * atoms that can lead to an accepting return.  False on out of memory.
 */
static bool analyse(struct build *b, const struct bpfkit_insn *p, size_t n, uint8_t *flow,
		    uint32_t prog)
{
	size_t need = n + 1;
	if (need > b->cap_insns) {
		size_t cap = b->cap_insns ? b->cap_insns : 64;
		while (cap < need)
			cap *= 2;
		void *r = mem_realloc(b->tmp, b->regs, cap * NREG * sizeof *b->regs);
		if (r)
			b->regs = r;
		uint8_t **bytes[] = {&b->live, &b->canacc, &b->reach, &b->cut};
		for (size_t i = 0; r && i < sizeof bytes / sizeof bytes[0]; i++)
			if ((r = mem_realloc(b->tmp, *bytes[i], cap)) != NULL)
				*bytes[i] = r;
		if (!r) {
			b->oom = true;
			return false;
		}
		b->cap_insns = cap;
	}
	memset(b->live, 0, n);
	memset(flow, 0, n);
	struct sym *s0 = b->regs;
	for (int r = 0; r < NREG; r++)
		s0[r] = sym_const(0);
	b->live[0] = 1;
	size_t atoms_before = b->natoms;
	for (size_t i = 0; i < n; i++) {
		if (!b->live[i])
			continue;
		struct sym s[NREG];
		memcpy(s, &b->regs[i * NREG], sizeof s);
		const struct bpfkit_insn *in = &p[i];
		uint16_t c = in->code;
		struct sym *A = &s[REG_A], *X = &s[REG_X];
		switch (BPFKIT_CLASS(c)) {
		case BPFKIT_RET: {
			bool acc = BPFKIT_RVAL(c) == BPFKIT_K ? in->k != 0 :
				   !(A->kind == SYM_CONST && A->val == 0);
			if (acc)
				flow[i] |= FLOW_ACCEPT;
			continue;
		}
		case BPFKIT_JMP: {
			uint16_t op = BPFKIT_OP(c);
			if (op == BPFKIT_JA) {
				flow[i] |= FLOW_T;
				meet(b, i + 1 + in->k, s);
				continue;
			}
			bool t, f;
			jump_edges(in, s, &t, &f);
			/* an equality on a field is an atom (its true edge may matter) */
			if (op == BPFKIT_JEQ && A->kind == SYM_LOAD && in->jt != in->jf &&
			    (BPFKIT_SRC(c) == BPFKIT_K || X->kind == SYM_CONST) && t) {
				uint32_t k = BPFKIT_SRC(c) == BPFKIT_K ? in->k : X->val;
				uint32_t fid = field_intern(b, A);
				if (fid == UINT32_MAX ||
				    !grow(b, (void **)&b->atoms, &b->cap_atoms,
					  b->natoms + 1, sizeof *b->atoms))
					return false;
				b->atoms[b->natoms++] = (struct atom){(uint32_t)i, fid, k};
			}
			if (t) {
				flow[i] |= FLOW_T;
				meet(b, i + 1 + in->jt, s);
			}
			if (f) {
				flow[i] |= FLOW_F;
				meet(b, i + 1 + in->jf, s);
			}
			continue;
		}
		default:
			step(in, s);
			break;
		}
		flow[i] |= FLOW_T;
		meet(b, i + 1, s);
	}
	/* Which instructions can still reach an accepting return. */
	for (size_t i = n; i-- > 0;) {
		const struct bpfkit_insn *in = &p[i];
		uint8_t ok = (flow[i] & FLOW_ACCEPT) != 0;
		if (BPFKIT_CLASS(in->code) == BPFKIT_JMP) {
			if (BPFKIT_OP(in->code) == BPFKIT_JA)
				ok = b->canacc[i + 1 + in->k];
			else
				ok = ((flow[i] & FLOW_T) && b->canacc[i + 1 + in->jt]) ||
				     ((flow[i] & FLOW_F) && b->canacc[i + 1 + in->jf]);
		} else if (BPFKIT_CLASS(in->code) != BPFKIT_RET) {
			ok = (flow[i] & FLOW_T) && b->canacc[i + 1];
		}
		b->canacc[i] = ok && b->live[i];
	}
	/* Keep the atoms whose true edge matters; count their values. */
	size_t w = atoms_before;
	for (size_t a = atoms_before; a < b->natoms; a++) {
		struct atom at = b->atoms[a];
		const struct bpfkit_insn *in = &p[at.insn];
		if (!(flow[at.insn] & FLOW_T) || !b->canacc[at.insn + 1 + in->jt])
			continue;
		uint32_t pi = pair_intern(b, at.field, at.value);
		if (pi == UINT32_MAX)
			return false;
		if (b->pairs[pi].last_prog != prog) {
			b->pairs[pi].last_prog = prog;
			b->pairs[pi].pop++;
		}
		b->atoms[w++] = at;
	}
	b->natoms = w;
	return true;
}

/* Whether an accepting return is reachable with the true edges in b->cut removed. */
static bool accept_reachable(struct build *b, const struct bpfkit_insn *p, size_t n,
			     const uint8_t *flow)
{
	uint8_t *reach = b->reach;
	memset(reach, 0, n);
	reach[0] = 1;
	for (size_t i = 0; i < n; i++) {
		if (!reach[i])
			continue;
		if (flow[i] & FLOW_ACCEPT)
			return true;
		const struct bpfkit_insn *in = &p[i];
		switch (BPFKIT_CLASS(in->code)) {
		case BPFKIT_RET: break;
		case BPFKIT_JMP:
			if (BPFKIT_OP(in->code) == BPFKIT_JA) {
				reach[i + 1 + in->k] = 1;
				break;
			}
			if ((flow[i] & FLOW_T) && !b->cutp[i])
				reach[i + 1 + in->jt] = 1;
			if (flow[i] & FLOW_F)
				reach[i + 1 + in->jf] = 1;
			break;
		default:
			if (flow[i] & FLOW_T)
				reach[i + 1] = 1;
		}
	}
	return false;
}

/*
 * Program j's decision DAG (nodes node_first[j] .. node_first[j + 1], each
 * node's successors below it): whether DEC_ACCEPT is reachable from the
 * entry with the true edges of the nodes in b->cutp removed.
 */
static bool dag_accept_reachable(struct build *b, size_t j)
{
	const struct bpfkit_multi *m = b->m;
	uint32_t f = b->node_first[j], e = m->progs[j].entry;
	if (e >= DEC_LEAF)
		return e == DEC_ACCEPT;
	memset(b->dreach, 0, e - f + 1);
	b->dreach[e - f] = 1;
	for (uint32_t i = e + 1; i-- > f;) {
		if (!b->dreach[i - f])
			continue;
		const struct dnode *d = &m->nodes[i];
		for (int t = 0; t < 2; t++) {
			if (t == 1 && b->cutp[i - f])
				continue;
			uint32_t nx = d->next[t];
			if (nx == DEC_ACCEPT)
				return true;
			if (nx < DEC_LEAF)
				b->dreach[nx - f] = 1;
		}
	}
	return false;
}

/* Whether program j still accepts some packet with its cut's true edges removed. */
static bool cut_leaks(struct build *b, size_t j, const struct bpfkit_insn *p, size_t n,
		      const uint8_t *flow)
{
	if (b->m->progs[j].entry != DEC_NONE)
		return dag_accept_reachable(b, j);
	return accept_reachable(b, p, n, flow);
}

/*
 * The atoms of decided program j, from its DAG (path-sensitive, unlike
 * analyse()'s): every JEQ node on a raw field whose true edge can still
 * reach DEC_ACCEPT; an atom's insn is its node's index within the program.
 */
static bool dag_atoms(struct build *b, size_t j)
{
	struct bpfkit_multi *m = b->m;
	uint32_t f = b->node_first[j], l = b->node_first[j + 1];
	if (!grow(b, (void **)&b->dreach, &b->cap_dreach, l - f + 1, 1))
		return false;
	uint8_t *can = b->dreach;
	for (uint32_t i = f; i < l; i++) {
		const struct dnode *d = &m->nodes[i];
		can[i - f] = 0;
		for (int t = 0; t < 2; t++)
			can[i - f] |= d->next[t] == DEC_ACCEPT ||
				      (d->next[t] < DEC_LEAF && can[d->next[t] - f]);
	}
	for (uint32_t i = f; i < l; i++) {
		const struct dnode *d = &m->nodes[i];
		const struct raw *r = &m->raws[d->raw];
		uint32_t t = d->next[1];
		if (d->op != DOP_JEQ || r->size == 0 || t == d->next[0] ||
		    !(t == DEC_ACCEPT || (t < DEC_LEAF && can[t - f])))
			continue;
		struct sym v = {SYM_LOAD, r->size, r->based, r->base, r->off, d->mask};
		uint32_t fid = field_intern(b, &v);
		if (fid == UINT32_MAX ||
		    !grow(b, (void **)&b->atoms, &b->cap_atoms, b->natoms + 1, sizeof *b->atoms))
			return false;
		uint32_t pi = pair_intern(b, fid, d->k);
		if (pi == UINT32_MAX)
			return false;
		if (b->pairs[pi].last_prog != j) {
			b->pairs[pi].last_prog = (uint32_t)j;
			b->pairs[pi].pop++;
		}
		b->atoms[b->natoms++] = (struct atom){i - f, fid, d->k};
	}
	return true;
}

/*
 * Which of two fields of one program leaves its cut first: the one whose
 * values (among this program's atoms) the most programs share, i.e. the
 * biggest bucket it would join; then the narrower one.
 */
struct field_rank {
	uint32_t field, pop, bits;
};

static bool drops_first(const struct field_rank *a, const struct field_rank *b)
{
	if (a->pop != b->pop)
		return a->pop > b->pop;
	return a->bits < b->bits;
}

/*
 * Chooses program j's cut (see the top of the file): afterwards the atoms
 * of fields in the cut have b->cutp[insn] set; false when there is none.
 */
static bool choose_cut(struct build *b, const struct bpfkit_insn *p, size_t n,
		       const uint8_t *flow, size_t j, uint32_t *fids, struct field_rank *ranks,
		       size_t *nfids)
{
	size_t na = b->atom_first[j + 1] - b->atom_first[j];
	bool dag = b->m->progs[j].entry != DEC_NONE;
	size_t ncut = dag ? b->node_first[j + 1] - b->node_first[j] : n;
	if (dag && (!grow(b, (void **)&b->dcut, &b->cap_dcut, ncut + 1, 1) ||
		    !grow(b, (void **)&b->dreach, &b->cap_dreach, ncut + 1, 1)))
		return false; /* out of memory: b->oom, checked by the caller */
	b->cutp = dag ? b->dcut : b->cut;
	memset(b->cutp, 0, ncut);
	*nfids = 0;
	if (na == 0)
		return false; /* b->atoms may be NULL */
	const struct atom *at = b->atoms + b->atom_first[j];
	for (size_t a = 0; a < na; a++) {
		b->cutp[at[a].insn] = 1;
		size_t f = 0;
		while (f < *nfids && fids[f] != at[a].field)
			f++;
		if (f == *nfids)
			fids[(*nfids)++] = at[a].field;
	}
	if (cut_leaks(b, j, p, n, flow))
		return false;
	/* Fields in the order they leave (insertion sort: few fields). */
	for (size_t i = 0; i < *nfids; i++) {
		struct field_rank *r = &ranks[i];
		r->field = fids[i];
		r->pop = 0;
		r->bits = (uint32_t)__builtin_popcount(b->m->fields[fids[i]].mask);
		for (size_t a = 0; a < na; a++) {
			if (at[a].field != fids[i])
				continue;
			uint32_t pop = b->pairs[pair_intern(b, at[a].field, at[a].value)].pop;
			if (pop > r->pop)
				r->pop = pop;
		}
	}
	for (size_t i = 1; i < *nfids; i++)
		for (size_t k = i; k > 0 && drops_first(&ranks[k], &ranks[k - 1]); k--) {
			struct field_rank t = ranks[k];
			ranks[k] = ranks[k - 1];
			ranks[k - 1] = t;
		}
	size_t kept = 0;
	for (size_t i = 0; i < *nfids; i++) {
		uint32_t fid = ranks[i].field;
		for (size_t a = 0; a < na; a++)
			if (at[a].field == fid)
				b->cutp[at[a].insn] = 0;
		if (cut_leaks(b, j, p, n, flow)) {
			for (size_t a = 0; a < na; a++)
				if (at[a].field == fid)
					b->cutp[at[a].insn] = 1;
			fids[kept++] = fid;
		}
	}
	*nfids = kept;
	return true;
}


/* ------------------------------------------------------------------ */
/* Decision DAGs (see struct dnode)                                    */

static uint32_t raw_hash(const struct raw *r)
{
	return hash32(((uint64_t)r->off << 32 | r->base) ^
		      ((uint64_t)(r->size << 1 | r->based) << 56));
}

static uint32_t raw_hash_id(const struct build *b, size_t i)
{
	return raw_hash(&b->m->raws[i]);
}

/* The raw field's id, added when new; UINT32_MAX when out of memory. */
static uint32_t raw_intern(struct build *b, const struct raw *r)
{
	struct bpfkit_multi *m = b->m;
	if (m->nraws * 2 + 2 > b->raw_map_mask &&
	    !map_rebuild(b, &b->raw_map, &b->raw_map_mask, m->nraws + 1, m->nraws, raw_hash_id))
		return UINT32_MAX;
	size_t h = raw_hash(r) & b->raw_map_mask;
	for (; b->raw_map[h]; h = (h + 1) & b->raw_map_mask) {
		const struct raw *o = &m->raws[b->raw_map[h] - 1];
		if (o->off == r->off && o->base == r->base && o->size == r->size &&
		    o->based == r->based)
			return b->raw_map[h] - 1;
	}
	if (!grow(b, (void **)&m->raws, &b->cap_raws, m->nraws + 1, sizeof *m->raws))
		return UINT32_MAX;
	m->raws[m->nraws] = *r;
	b->raw_map[h] = (uint32_t)m->nraws + 1;
	return (uint32_t)m->nraws++;
}

/* The raw field a symbolic load or length reads (kind LOAD or LEN). */
static struct raw sym_raw(const struct sym *v)
{
	if (v->kind == SYM_LEN)
		return (struct raw){0, 0, 0, 0};
	return (struct raw){v->val, v->base, v->size, v->based};
}

/* Appends a node; its index, or DEC_NONE when out of memory or too many. */
static uint32_t node_add(struct build *b, const struct sym *v, uint32_t mask, uint32_t op,
			 uint32_t k, uint32_t t, uint32_t f)
{
	struct bpfkit_multi *m = b->m;
	struct raw r = sym_raw(v);
	uint32_t id = raw_intern(b, &r);
	if (id == UINT32_MAX || m->nnodes >= DEC_LEAF ||
	    !grow(b, (void **)&m->nodes, &b->cap_nodes, m->nnodes + 1, sizeof *m->nodes))
		return DEC_NONE;
	m->nodes[m->nnodes] = (struct dnode){mask, k, {f, t}, id, op};
	return (uint32_t)m->nnodes++;
}

/* How deep (nodes on one path) and how big (nodes per instruction) a DAG may get. */
#define DEC_MAX_DEPTH 256
#define DEC_NODES_PER_INSN 8

/* The walk over one program: memo of (instruction, registers) -> node. */
struct walk {
	struct build *b;
	const struct bpfkit_insn *p;
	size_t n, budget;
	size_t calls, max_calls;
	bool give_up;
};

/* Which edges of conditional jump in can be taken with registers s (as analyse() prunes). */
static void jump_edges(const struct bpfkit_insn *in, const struct sym *s, bool *t, bool *f)
{
	const struct sym *A = &s[REG_A], *X = &s[REG_X];
	uint16_t op = BPFKIT_OP(in->code);
	bool known = BPFKIT_SRC(in->code) == BPFKIT_K || X->kind == SYM_CONST;
	uint32_t k = BPFKIT_SRC(in->code) == BPFKIT_K ? in->k : X->val;
	*t = *f = true;
	if (A->kind == SYM_CONST && known) {
		uint32_t a = A->val;
		bool r = op == BPFKIT_JEQ ? a == k : op == BPFKIT_JGT ? a > k :
			 op == BPFKIT_JGE ? a >= k : (a & k) != 0;
		*t = r;
		*f = !r;
	} else if (A->kind == SYM_LOAD && known) {
		if ((op == BPFKIT_JEQ && (k & ~A->mask) != 0) ||
		    (op == BPFKIT_JGT && k >= A->mask) || (op == BPFKIT_JSET && (k & A->mask) == 0))
			*t = false;
	}
}

/* One instruction's effect on the registers (not loads' presence, not jumps). */
static void step(const struct bpfkit_insn *in, struct sym *s)
{
	uint16_t c = in->code;
	struct sym *A = &s[REG_A], *X = &s[REG_X];
	switch (BPFKIT_CLASS(c)) {
	case BPFKIT_LD:
	case BPFKIT_LDX: {
		struct sym *d = BPFKIT_CLASS(c) == BPFKIT_LD ? A : X;
		unsigned size = load_size(c);
		switch (BPFKIT_MODE(c)) {
		case BPFKIT_IMM: *d = sym_const(in->k); break;
		case BPFKIT_ABS:
			*d = (struct sym){SYM_LOAD, (uint8_t)size, 0, 0, in->k, size_mask(size)};
			break;
		case BPFKIT_IND: *d = load_ind(X, in->k, size); break;
		case BPFKIT_MEM: *d = s[REG_M + (in->k & 15)]; break;
		case BPFKIT_MSH: *d = (struct sym){SYM_MSH, 0, 0, in->k, 0, 0}; break;
		default: *d = (struct sym){SYM_LEN, 0, 0, 0, 0, 0}; break;
		}
		break;
	}
	case BPFKIT_ST: s[REG_M + (in->k & 15)] = *A; break;
	case BPFKIT_STX: s[REG_M + (in->k & 15)] = *X; break;
	case BPFKIT_ALU: {
		uint16_t op = BPFKIT_OP(c);
		bool known = op == BPFKIT_NEG || BPFKIT_SRC(c) == BPFKIT_K || X->kind == SYM_CONST;
		uint32_t k = BPFKIT_SRC(c) == BPFKIT_K ? in->k : X->val;
		uint32_t v;
		if (A->kind == SYM_CONST && known && opcode_alu_fold(op, A->val, k, &v))
			*A = sym_const(v);
		else if (A->kind == SYM_LOAD && known && op == BPFKIT_AND)
			A->mask &= k;
		else if (A->kind == SYM_MSH && known && op == BPFKIT_ADD &&
			 (uint64_t)A->val + k + 60 <= UINT32_MAX)
			A->val += k;
		else
			*A = sym_unknown;
		if (A->kind == SYM_LOAD && A->mask == 0)
			*A = sym_const(0);
		break;
	}
	case BPFKIT_MISC:
		if (BPFKIT_MISCOP(c) == BPFKIT_TAX)
			*X = *A;
		else
			*A = *X;
		break;
	default: break;
	}
}

/* The node memoised for (i, s), or DEC_NONE. */
static uint32_t memo_find(struct build *b, size_t i, const struct sym *s)
{
	for (uint32_t e = b->memo_head[i]; e != UINT32_MAX; e = b->memo[e].next) {
		const struct sym *t = &b->memo_regs[(size_t)e * NREG];
		int r = 0;
		while (r < NREG && sym_eq(&t[r], &s[r]))
			r++;
		if (r == NREG)
			return b->memo[e].node;
	}
	return DEC_NONE;
}

static void memo_add(struct build *b, size_t i, const struct sym *s, uint32_t node)
{
	if (!grow(b, (void **)&b->memo, &b->cap_memo, b->nmemo + 1, sizeof *b->memo) ||
	    !grow(b, (void **)&b->memo_regs, &b->cap_memo_regs, (b->nmemo + 1) * NREG,
		  sizeof *b->memo_regs))
		return;
	memcpy(&b->memo_regs[b->nmemo * NREG], s, NREG * sizeof *s);
	b->memo[b->nmemo] = (struct memo){b->memo_head[i], node};
	b->memo_head[i] = (uint32_t)b->nmemo++;
}

/*
 * The node (or leaf) that instruction i leads to with registers s, walking
 * forward path-sensitively: each (instruction, registers) pair becomes one
 * node, shared through the memo, so a tail that two paths reach with
 * different X (a constant on one, `ldx msh` on the other) is split.  Sets
 * w->give_up when the program depends on more than raw fields and
 * constants, or the DAG gets too deep or too big.
 */
static uint32_t walk_from(struct walk *w, size_t i, const struct sym *s0, unsigned depth)
{
	struct build *b = w->b;
	struct bpfkit_multi *m = b->m;
	if (depth > DEC_MAX_DEPTH || b->oom) {
		w->give_up = true;
		return DEC_REJECT;
	}
	if (++w->calls > w->max_calls) {
		w->give_up = true;
		return DEC_REJECT;
	}
	/* Two frames per depth: the registers as they change, and at entry (the memo key). */
	struct sym *s = &b->frames[(size_t)depth * 2 * NREG], *entry = s + NREG;
	memcpy(s, s0, NREG * sizeof *s);
	size_t start = i;
	uint32_t memo = memo_find(b, i, s);
	if (memo != DEC_NONE)
		return memo;
	memcpy(entry, s, NREG * sizeof *s);
	uint32_t result = DEC_REJECT;
	for (;;) {
		if (i >= w->n) {
			w->give_up = true;
			return DEC_REJECT;
		}
		const struct bpfkit_insn *in = &w->p[i];
		uint16_t c = in->code;
		uint16_t cls = BPFKIT_CLASS(c), mode = BPFKIT_MODE(c);
		if ((cls == BPFKIT_LD || cls == BPFKIT_LDX) &&
		    (mode == BPFKIT_ABS || mode == BPFKIT_IND || mode == BPFKIT_MSH)) {
			struct sym v;
			if (mode == BPFKIT_ABS)
				v = (struct sym){SYM_LOAD, (uint8_t)load_size(c), 0, 0, in->k, 0};
			else if (mode == BPFKIT_IND)
				v = load_ind(&s[REG_X], in->k, load_size(c));
			else
				v = (struct sym){SYM_LOAD, 1, 0, 0, in->k, 0};
			if (v.kind != SYM_LOAD) {
				w->give_up = true;
				return DEC_REJECT;
			}
			step(in, s);
			uint32_t nx = walk_from(w, i + 1, s, depth + 1);
			if (w->give_up)
				return DEC_REJECT;
			/* A present-check is implied by a next node on the same raw field,
			 * or (ldx msh) on a field based on this byte. */
			if (nx < DEC_LEAF) {
				const struct raw *r = &m->raws[m->nodes[nx].raw];
				bool same = r->off == v.val && r->base == v.base &&
					    r->size == v.size && r->based == v.based;
				bool base = mode == BPFKIT_MSH && r->based && r->base == in->k;
				if (same || base) {
					result = nx;
					break;
				}
			}
			result = node_add(b, &v, 0, DOP_JGE, 0, nx, nx);
			break;
		}
		if (cls == BPFKIT_ALU && BPFKIT_SRC(c) == BPFKIT_X &&
		    (BPFKIT_OP(c) == BPFKIT_DIV || BPFKIT_OP(c) == BPFKIT_MOD) &&
		    !(s[REG_X].kind == SYM_CONST && s[REG_X].val != 0)) {
			w->give_up = true;
			return DEC_REJECT;
		}
		if (cls == BPFKIT_RET) {
			const struct sym *v = BPFKIT_RVAL(c) == BPFKIT_A ? &s[REG_A] :
					      BPFKIT_RVAL(c) == BPFKIT_X ? &s[REG_X] : NULL;
			if (!v || v->kind == SYM_CONST) {
				result = (v ? v->val : in->k) ? DEC_ACCEPT : DEC_REJECT;
				break;
			}
			if (v->kind != SYM_LOAD && v->kind != SYM_LEN) {
				w->give_up = true;
				return DEC_REJECT;
			}
			uint32_t mask = v->kind == SYM_LOAD ? v->mask : 0xffffffffu;
			result = node_add(b, v, mask, DOP_JSET, 0xffffffffu, DEC_ACCEPT, DEC_REJECT);
			break;
		}
		if (cls == BPFKIT_JMP) {
			if (BPFKIT_OP(c) == BPFKIT_JA) {
				i += 1 + in->k;
				continue;
			}
			bool t, f;
			jump_edges(in, s, &t, &f);
			if (!t || !f) {
				i += 1 + (t ? in->jt : in->jf);
				continue;
			}
			const struct sym *A = &s[REG_A];
			bool known = BPFKIT_SRC(c) == BPFKIT_K || s[REG_X].kind == SYM_CONST;
			if (!known || (A->kind != SYM_LOAD && A->kind != SYM_LEN)) {
				w->give_up = true;
				return DEC_REJECT;
			}
			uint32_t k = BPFKIT_SRC(c) == BPFKIT_K ? in->k : s[REG_X].val;
			uint32_t op = BPFKIT_OP(c) == BPFKIT_JEQ ? DOP_JEQ :
				      BPFKIT_OP(c) == BPFKIT_JGT ? DOP_JGT :
				      BPFKIT_OP(c) == BPFKIT_JGE ? DOP_JGE : DOP_JSET;
			struct sym a = *A;
			uint32_t tn = walk_from(w, i + 1 + in->jt, s, depth + 1);
			if (w->give_up)
				return DEC_REJECT;
			/* s (this depth's frame) is unchanged by deeper calls. */
			uint32_t fn = walk_from(w, i + 1 + in->jf, s, depth + 1);
			if (w->give_up)
				return DEC_REJECT;
			if (tn == fn) {
				result = tn;
				break;
			}
			uint32_t mask = a.kind == SYM_LOAD ? a.mask : 0xffffffffu;
			result = node_add(b, &a, mask, op, k, tn, fn);
			break;
		}
		step(in, s);
		i++;
	}
	if (result == DEC_NONE || m->nnodes > w->budget) {
		w->give_up = true;
		return DEC_REJECT;
	}
	memo_add(b, start, entry, result);
	return result;
}

/*
 * Program j's decision DAG: sets progs[j].entry, or leaves DEC_NONE when
 * some instruction on a path depends on more than raw fields and constants
 * (ALU results, X-relative compares, division by an unknown X, indirect
 * loads at unknown offsets).  False on out of memory.
 */
static bool decide(struct build *b, const struct bpfkit_insn *p, size_t n, size_t j)
{
	struct bpfkit_multi *m = b->m;
	m->progs[j].entry = DEC_NONE;
	if (b->run_all)
		return true;
	if (!grow(b, (void **)&b->memo_head, &b->cap_memo_head, n, sizeof *b->memo_head) ||
	    !grow(b, (void **)&b->frames, &b->cap_frames, (DEC_MAX_DEPTH + 2) * 2 * NREG,
		  sizeof *b->frames))
		return false;
	for (size_t i = 0; i < n; i++)
		b->memo_head[i] = UINT32_MAX;
	b->nmemo = 0;
	size_t nodes_before = m->nnodes;
	struct walk w = {b, p, n, nodes_before + DEC_NODES_PER_INSN * n + 64, 0,
			 16 * n + 256, false};
	struct sym s0[NREG];
	for (int r = 0; r < NREG; r++)
		s0[r] = sym_const(0);
	uint32_t e = walk_from(&w, 0, s0, 0);
	if (b->oom)
		return false;
	if (w.give_up) {
		m->nnodes = nodes_before;
		return true;
	}
	m->progs[j].entry = e;
	m->decided++;
	return true;
}

/* ------------------------------------------------------------------ */
/* Build                                                               */

static uint64_t prog_hash(const struct bpfkit_insn *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;
	for (size_t i = 0; i < n; i++) {
		uint64_t w = ((uint64_t)p[i].code << 48) | ((uint64_t)p[i].jt << 40) |
			     ((uint64_t)p[i].jf << 32) | p[i].k;
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

static void build_free_scratch(struct build *b)
{
	const struct bpfkit_alloc *t = b->tmp;
	mem_free(t, b->field_map);
	mem_free(t, b->pairs);
	mem_free(t, b->pair_map);
	mem_free(t, b->atoms);
	mem_free(t, b->atom_first);
	mem_free(t, b->flow);
	mem_free(t, b->code_first);
	mem_free(t, b->regs);
	mem_free(t, b->live);
	mem_free(t, b->canacc);
	mem_free(t, b->reach);
	mem_free(t, b->cut);
	mem_free(t, b->raw_map);
	mem_free(t, b->memo_head);
	mem_free(t, b->memo);
	mem_free(t, b->memo_regs);
	mem_free(t, b->frames);
	mem_free(t, b->node_first);
	mem_free(t, b->dcut);
	mem_free(t, b->dreach);
}

/* A DAG successor (DEC_ACCEPT, DEC_REJECT or a dnode index) in mnode numbering. */
static uint32_t mnode_index(uint32_t x)
{
	return x == DEC_ACCEPT ? MN_ACCEPT : x == DEC_REJECT ? MN_REJECT : x + 2;
}

/*
 * Converts the decision DAGs (scratch) to their match-time form in counted
 * memory (struct mnode, each distinct (raw field, mask) a value id) and
 * moves the raw fields; renumbers progs[].entry.  The scratch nodes go.
 */
static int move_dags(struct build *b, int rc)
{
	struct bpfkit_multi *m = b->m;
	const struct bpfkit_alloc *c = &m->counting;
	struct mnode *mn = NULL;
	struct tval *vals = NULL;
	struct raw *raws = NULL;
	uint32_t *vmap = NULL;
	size_t vmask = 15;
	while (vmask + 1 < 2 * (m->nnodes + 1))
		vmask = vmask * 2 + 1;
	if (rc == 0) {
		mn = mem_alloc_array(c, m->nnodes + 2, sizeof *mn);
		vals = mem_alloc_array(c, m->nnodes + 1, sizeof *vals);
		raws = mem_alloc_array(c, m->nraws ? m->nraws : 1, sizeof *raws);
		vmap = mem_alloc_array(b->tmp, vmask + 1, sizeof *vmap);
		if (!mn || !vals || !raws || !vmap) {
			mem_free(c, mn);
			mem_free(c, vals);
			mem_free(c, raws);
			mn = NULL;
			vals = NULL;
			raws = NULL;
			error_oom(b->err);
			rc = -1;
		}
	}
	if (rc == 0) {
		if (m->nraws)
			memcpy(raws, m->raws, m->nraws * sizeof *raws);
		memset(vmap, 0, (vmask + 1) * sizeof *vmap);
		size_t nv = 1;
		vals[0] = (struct tval){UINT32_MAX, 0};
		for (uint32_t l = MN_ACCEPT; l <= MN_REJECT; l++)
			mn[l] = (struct mnode){0, {l, l}, DOP_JGE};
		for (size_t i = 0; i < m->nnodes; i++) {
			const struct dnode *d = &m->nodes[i];
			size_t h = hash32((uint64_t)d->raw << 32 | d->mask) & vmask;
			for (; vmap[h]; h = (h + 1) & vmask) {
				const struct tval *t = &vals[vmap[h]];
				if (t->raw == d->raw && t->mask == d->mask)
					break;
			}
			if (!vmap[h]) {
				vals[nv] = (struct tval){d->raw, d->mask};
				vmap[h] = (uint32_t)nv++;
			}
			mn[i + 2] = (struct mnode){d->k, {mnode_index(d->next[0]),
					mnode_index(d->next[1])}, vmap[h] << 2 | d->op};
		}
		m->nvals = nv;
		for (size_t j = 0; j < m->nprogs; j++)
			if (m->progs[j].entry != DEC_NONE)
				m->progs[j].entry = mnode_index(m->progs[j].entry);
	}
	mem_free(b->tmp, vmap);
	mem_free(b->tmp, m->nodes);
	mem_free(b->tmp, m->raws);
	m->nodes = NULL;
	m->mnodes = mn;
	m->vals = vals;
	m->raws = raws;
	if (rc != 0)
		m->nnodes = m->nraws = m->nvals = 0;
	return rc;
}

/* Building one class's copy of the DAGs (see build_classes). */
struct cofactor {
	struct bpfkit_multi *m;
	const uint8_t *hot;     /* per original node: index of its hot test + 1, or 0 */
	uint32_t *memo;         /* per original node: its copy, or UINT32_MAX */
	size_t cls, n, cap, budget;
	bool full;              /* out of budget or memory: the copy is abandoned */
};

/* Node x's copy for the class: hot nodes followed, the others copied. */
static uint32_t cofactor_node(struct cofactor *cf, uint32_t x)
{
	struct bpfkit_multi *m = cf->m;
	if (x <= MN_REJECT || cf->full)
		return x;
	if (cf->memo[x] != UINT32_MAX)
		return cf->memo[x];
	struct mnode d = m->mnodes[x];   /* a copy: mnodes moves as it grows */
	uint32_t r;
	if (cf->hot[x]) {
		r = cofactor_node(cf, d.next[(cf->cls >> (cf->hot[x] - 1)) & 1]);
	} else {
		uint32_t f = cofactor_node(cf, d.next[0]), t = cofactor_node(cf, d.next[1]);
		if (cf->full)
			return MN_REJECT;
		if (f == MN_REJECT && t == MN_REJECT) {
			r = MN_REJECT;   /* absent or not, it rejects */
		} else {
			if (cf->n >= cf->budget) {
				cf->full = true;
				return MN_REJECT;
			}
			if (cf->n == cf->cap) {
				size_t cap = cf->cap * 2;
				struct mnode *q = mem_realloc(&m->counting, m->mnodes,
							      cap * sizeof *q);
				if (!q) {
					cf->full = true;
					return MN_REJECT;
				}
				m->mnodes = q;
				cf->cap = cap;
			}
			r = (uint32_t)cf->n++;
			m->mnodes[r] = (struct mnode){d.k, {f, t}, d.vop};
		}
	}
	cf->memo[x] = r;
	return r;
}

/*
 * Hoisted tests.  Most DAGs start with the same few tests (ethertype, IP
 * protocol, fragment offset), which every candidate would walk again.  The
 * nhot tests (vop, k) found in the most nodes are evaluated once per packet
 * into a class (bit h: hot test h's outcome); each program's entry per
 * class skips the hot tests at the start of its DAG, following the edge the
 * class gives (exact: a node's outcome is a function of its value, and the
 * class is used only when every hot value is present, else the last row,
 * the plain entries).  An entry that becomes MN_REJECT drops the candidate
 * before any walk.  nhot is as large as keeps the table within twice the
 * nodes' bytes (at least 64 KB), up to MAX_HOT.
 */
static int build_classes(struct build *b)
{
	struct bpfkit_multi *m = b->m;
	const struct bpfkit_alloc *c = &m->counting;
	size_t nn = m->nnodes + 2, mask = 15;
	while (mask + 1 < 2 * nn)
		mask = mask * 2 + 1;
	uint32_t *map = mem_alloc_array(b->tmp, mask + 1, sizeof *map);   /* node + 1 */
	uint32_t *grp = mem_alloc_array(b->tmp, nn, sizeof *grp); /* first node with its test */
	uint32_t *cnt = mem_alloc_array(b->tmp, nn, sizeof *cnt);
	uint32_t *last = mem_alloc_array(b->tmp, nn, sizeof *last);
	uint32_t *stack = mem_alloc_array(b->tmp, nn, sizeof *stack);
	uint8_t *seen = mem_alloc(b->tmp, nn), *hot = mem_alloc(b->tmp, nn);
	int rc = -1;
	if (!map || !grp || !cnt || !last || !stack || !seen || !hot)
		goto out;
	memset(map, 0, (mask + 1) * sizeof *map);
	memset(seen, 0, nn);
	memset(hot, 0, nn);
	for (size_t i = 2; i < nn; i++) {
		const struct mnode *d = &m->mnodes[i];
		size_t h = hash32((uint64_t)d->vop << 32 | d->k) & mask;
		for (; map[h]; h = (h + 1) & mask) {
			const struct mnode *o = &m->mnodes[map[h] - 1];
			if (o->vop == d->vop && o->k == d->k)
				break;
		}
		if (!map[h])
			map[h] = (uint32_t)i + 1;
		grp[i] = map[h] - 1;
	}
	/* Each round, the test found first (past the hot ones) in the most programs. */
	size_t limit = 2 * nn * sizeof(struct mnode);
	if (limit < (64u << 10))
		limit = 64u << 10;
	size_t np = m->nprogs ? m->nprogs : 1;
	unsigned nhot = 0;
	while (nhot < MAX_HOT && ((size_t)2 << nhot) + 1 <= limit / sizeof(uint32_t) / np) {
		memset(cnt, 0, nn * sizeof *cnt);
		memset(last, 0xff, nn * sizeof *last);
		for (size_t j = 0; j < m->nprogs; j++) {
			uint32_t x = m->progs[j].entry;
			if (x == DEC_NONE || x <= MN_REJECT)
				continue;
			size_t sp = 0, top = 0;
			stack[sp++] = x;
			seen[x] = 1;
			while (top < sp) {
				uint32_t y = stack[top++], g = grp[y];
				if (!hot[g]) {
					if (last[g] != j) {
						last[g] = (uint32_t)j;
						cnt[g]++;
					}
					continue;
				}
				for (int t = 0; t < 2; t++) {
					uint32_t z = m->mnodes[y].next[t];
					if (z > MN_REJECT && !seen[z]) {
						seen[z] = 1;
						stack[sp++] = z;
					}
				}
			}
			for (size_t q = 0; q < sp; q++)
				seen[stack[q]] = 0;
		}
		size_t best = 0;
		for (size_t i = 2; i < nn; i++)
			if (grp[i] == i && !hot[i] && cnt[i] >= 2 &&
			    (size_t)cnt[i] * 32 >= m->nprogs && (!best || cnt[i] > cnt[best]))
				best = i;
		if (!best)
			break;
		hot[best] = 1;
		m->hot[nhot++] = m->mnodes[best];
	}
	size_t rows = ((size_t)1 << nhot) + 1;
	m->centry = mem_alloc_array(c, rows * np, sizeof *m->centry);
	if (!m->centry)
		goto out;
	m->nhot = nhot;
	/* Per original node, its hot test + 1 (hot[] is reused). */
	memset(hot, 0, nn);
	for (size_t i = 2; i < nn; i++)
		for (unsigned q = 0; q < nhot; q++)
			if (m->hot[q].vop == m->mnodes[i].vop && m->hot[q].k == m->mnodes[i].k)
				hot[i] = (uint8_t)(q + 1);
	struct cofactor cf = {m, hot, stack, 0, nn, nn, nn * 4 + 1024, false};
	for (size_t cl = 0; cl < rows; cl++) {
		uint32_t *row = m->centry + cl * np;
		/* A class where two JEQ tests on one value both hold never occurs. */
		bool live = cl < rows - 1;
		for (unsigned q = 0; live && q < nhot; q++)
			for (unsigned r = q + 1; r < nhot; r++)
				if ((cl >> q & 1) && (cl >> r & 1) &&
				    m->hot[q].vop == m->hot[r].vop && (m->hot[q].vop & 3) == DOP_JEQ)
					live = false;
		/* Copy the DAGs for the class while the budget lasts (copies: 3x the nodes). */
		size_t before = cf.n;
		if (live && !cf.full) {
			memset(cf.memo, 0xff, nn * sizeof *cf.memo);
			cf.cls = cl;
			for (size_t j = 0; j < m->nprogs && !cf.full; j++) {
				uint32_t x = m->progs[j].entry;
				row[j] = x == DEC_NONE ? x : cofactor_node(&cf, x);
			}
			if (!cf.full)
				continue;
			cf.n = before;
		}
		/* Else only the hot tests at the start of each DAG are followed. */
		for (size_t j = 0; j < m->nprogs; j++) {
			uint32_t x = m->progs[j].entry;
			while (live && x != DEC_NONE && x > MN_REJECT && x < nn && hot[x])
				x = m->mnodes[x].next[(cl >> (hot[x] - 1)) & 1];
			row[j] = x;
		}
	}
	rc = 0;
out:
	if (rc != 0)
		error_oom(b->err);
	mem_free(b->tmp, map);
	mem_free(b->tmp, grp);
	mem_free(b->tmp, cnt);
	mem_free(b->tmp, last);
	mem_free(b->tmp, stack);
	mem_free(b->tmp, seen);
	mem_free(b->tmp, hot);
	return rc;
}

BPFKIT_API void bpfkit_multi_free(struct bpfkit_multi *m)
{
	if (!m)
		return;
	const struct bpfkit_alloc *c = &m->counting;
	for (size_t i = 0; m->progs && i < m->nprogs; i++) {
		if (m->fasts)
			bpfkit_fast_free(m->fasts[i]);
		if (m->jits)
			bpfkit_jit_free(m->jits[i]);
	}
	for (size_t i = 0; m->fields && i < m->nfields; i++) {
		mem_free(c, m->fields[i].slots);
		mem_free(c, m->fields[i].filter);
	}
	mem_free(c, m->fields);
	mem_free(c, m->progs);
	mem_free(c, m->fasts);
	mem_free(c, m->jits);
	mem_free(c, m->rule_ids);
	mem_free(c, m->cands);
	mem_free(c, m->residual);
	mem_free(c, m->code);
	mem_free(c, m->mnodes);
	mem_free(c, m->vals);
	mem_free(c, m->centry);
	mem_free(c, m->raws);
	mem_free(m->user, m);
}

/* Dedupe: progs and rule_ids from the rules; code holds each program once. */
static int build_programs(struct build *b, const struct bpfkit_prog *rules, size_t n)
{
	struct bpfkit_multi *m = b->m;
	const struct bpfkit_alloc *c = &m->counting;
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		struct bpfkit_error verr;
		if (bpfkit_validate(rules[i].insns, rules[i].len, BPFKIT_VALIDATE_PCAP, &verr) != 0) {
			error_insn(b->err, verr.insn, "rule %zu: %s", i, verr.message);
			return -1;
		}
		total += rules[i].len;
	}
	size_t mask = 16;
	while (mask < n * 2)
		mask *= 2;
	mask--;
	uint32_t *map = mem_alloc_array(b->tmp, mask + 1, sizeof *map);
	uint32_t *of = mem_alloc_array(b->tmp, n ? n : 1, sizeof *of);     /* rule -> prog */
	uint32_t *cnt = mem_alloc_array(b->tmp, n ? n : 1, sizeof *cnt);
	size_t *first = mem_alloc_array(b->tmp, n ? n : 1, sizeof *first);  /* prog -> rule */
	m->code = mem_alloc_array(c, total ? total : 1, sizeof *m->code);
	m->rule_ids = mem_alloc_array(c, n ? n : 1, sizeof *m->rule_ids);
	int rc = -1;
	if (!map || !of || !cnt || !first || !m->code || !m->rule_ids)
		goto out;
	memset(map, 0, (mask + 1) * sizeof *map);
	size_t np = 0, used = 0;
	for (size_t i = 0; i < n; i++) {
		const struct bpfkit_prog *r = &rules[i];
		size_t h = prog_hash(r->insns, r->len) & mask;
		for (; map[h]; h = (h + 1) & mask) {
			const struct bpfkit_prog *o = &rules[first[map[h] - 1]];
			if (o->len == r->len &&
			    memcmp(o->insns, r->insns, r->len * sizeof *r->insns) == 0)
				break;
		}
		if (!map[h]) {
			first[np] = i;
			cnt[np] = 0;
			map[h] = (uint32_t)++np;
		}
		of[i] = map[h] - 1;
		cnt[of[i]]++;
	}
	m->nprogs = np;
	m->progs = mem_alloc_array(c, np ? np : 1, sizeof *m->progs);
	b->code_first = mem_alloc_array(b->tmp, np ? np : 1, sizeof *b->code_first);
	if (!m->progs || !b->code_first)
		goto out;
	size_t start = 0;
	for (size_t j = 0; j < np; j++) {
		const struct bpfkit_prog *r = &rules[first[j]];
		memcpy(m->code + used, r->insns, r->len * sizeof *r->insns);
		b->code_first[j] = used;
		m->progs[j] = (struct runner){NULL, NULL, m->code + used, (uint32_t)r->len,
					      (uint32_t)start, 0, DEC_NONE};
		used += r->len;
		start += cnt[j];
	}
	for (size_t i = 0; i < n; i++) {
		struct runner *pr = &m->progs[of[i]];
		m->rule_ids[pr->first + pr->nrules++] = (uint32_t)i;
	}
	rc = 0;
out:
	if (rc != 0)
		error_oom(b->err);
	mem_free(b->tmp, map);
	mem_free(b->tmp, of);
	mem_free(b->tmp, cnt);
	mem_free(b->tmp, first);
	return rc;
}

/* The engine of each distinct program. */
static int build_engines(struct build *b, unsigned flags)
{
	struct bpfkit_multi *m = b->m;
	const struct bpfkit_alloc *c = &m->counting;
	unsigned engine = flags & 3;
	if (engine == BPFKIT_MULTI_INTERP)
		return 0;
	m->fasts = mem_alloc_array(c, m->nprogs ? m->nprogs : 1, sizeof *m->fasts);
	m->jits = mem_alloc_array(c, m->nprogs ? m->nprogs : 1, sizeof *m->jits);
	if (m->fasts)
		memset(m->fasts, 0, m->nprogs * sizeof *m->fasts);
	if (m->jits)
		memset(m->jits, 0, m->nprogs * sizeof *m->jits);
	if (!m->fasts || !m->jits) {
		error_oom(b->err);
		return -1;
	}
	bool jit = engine == BPFKIT_MULTI_JIT && bpfkit_jit_available();
	for (size_t j = 0; j < m->nprogs; j++) {
		struct runner *r = &m->progs[j];
		struct bpfkit_error e;
		if (r->entry != DEC_NONE)
			continue;
		/* A program the JIT cannot take (or no more code pages) runs on fast. */
		if (jit && bpfkit_jit_compile(r->insns, r->len, 0, c, &m->jits[j], &e) == 0) {
			r->fn = bpfkit_jit_function(m->jits[j]);
			m->jitted++;
			continue;
		}
		if (bpfkit_fast_prepare(r->insns, r->len, 0, c, &m->fasts[j], b->err) != 0) {
			b->err->insn = -1;
			return -1;
		}
		r->fast = m->fasts[j];
	}
	return 0;
}

/* Analysis, cuts and the index. */
static int build_index(struct build *b)
{
	struct bpfkit_multi *m = b->m;
	const struct bpfkit_alloc *c = &m->counting;
	size_t np = m->nprogs, total = 0;
	for (size_t j = 0; j < np; j++)
		total += m->progs[j].len;
	b->atom_first = mem_alloc_array(b->tmp, np + 1, sizeof *b->atom_first);
	b->node_first = mem_alloc_array(b->tmp, np + 1, sizeof *b->node_first);
	b->flow = mem_alloc(b->tmp, total ? total : 1);
	if (!b->atom_first || !b->node_first || !b->flow)
		goto oom;
	/* A decided program's atoms come from its DAG; the others' from analyse(). */
	for (size_t j = 0; j < np; j++) {
		b->atom_first[j] = (uint32_t)b->natoms;
		b->node_first[j] = (uint32_t)m->nnodes;
		const struct runner *r = &m->progs[j];
		if (!decide(b, r->insns, r->len, j))
			goto oom;
		b->node_first[j + 1] = (uint32_t)m->nnodes;
		bool ok = r->entry != DEC_NONE ? dag_atoms(b, j) :
			  analyse(b, r->insns, r->len, b->flow + b->code_first[j], (uint32_t)j);
		if (!ok)
			goto oom;
	}
	b->node_first[np] = (uint32_t)m->nnodes;
	b->atom_first[np] = (uint32_t)b->natoms;
	for (size_t i = 0; i < b->npairs; i++)
		b->pairs[i].last_prog = UINT32_MAX;
	/* Cuts: count each (field, value) once per program. */
	size_t maxna = 1;
	for (size_t j = 0; j < np; j++)
		if (b->atom_first[j + 1] - b->atom_first[j] > maxna)
			maxna = b->atom_first[j + 1] - b->atom_first[j];
	uint32_t *fids = mem_alloc_array(b->tmp, maxna, sizeof *fids);
	struct field_rank *ranks = mem_alloc_array(b->tmp, maxna, sizeof *ranks);
	uint8_t *residual = mem_alloc(b->tmp, np ? np : 1);
	if (!fids || !ranks || !residual) {
		mem_free(b->tmp, fids);
		mem_free(b->tmp, ranks);
		mem_free(b->tmp, residual);
		goto oom;
	}
	for (size_t j = 0; j < np; j++) {
		const struct runner *r = &m->progs[j];
		size_t na = b->atom_first[j + 1] - b->atom_first[j], nf;
		const uint8_t *flow = b->flow + b->code_first[j];
		residual[j] = !choose_cut(b, r->insns, r->len, flow, j, fids, ranks, &nf);
		if (b->oom) {
			mem_free(b->tmp, fids);
			mem_free(b->tmp, ranks);
			mem_free(b->tmp, residual);
			goto oom;
		}
		if (residual[j]) {
			m->nresidual++;
			m->residual_rules += r->nrules;
			continue;
		}
		/* Entries: the cut atoms; reuse atom.field = UINT32_MAX to mark the others. */
		struct atom *at = b->atoms + b->atom_first[j];
		for (size_t a = 0; a < na; a++) {
			if (!b->cutp[at[a].insn]) {
				at[a].field = UINT32_MAX;
				continue;
			}
			uint32_t pi = pair_intern(b, at[a].field, at[a].value);
			if (b->pairs[pi].last_prog == j) {
				at[a].field = UINT32_MAX;
				continue;
			}
			b->pairs[pi].last_prog = (uint32_t)j;
			b->pairs[pi].count++;
		}
	}
	mem_free(b->tmp, fids);
	mem_free(b->tmp, ranks);
	size_t ncands = 0;
	for (size_t i = 0; i < b->npairs; i++) {
		b->pairs[i].start = (uint32_t)ncands;
		ncands += b->pairs[i].count;
		b->pairs[i].count = 0;
	}
	m->ncands = ncands;
	m->cands = mem_alloc_array(c, ncands ? ncands : 1, sizeof *m->cands);
	m->residual = mem_alloc_array(c, m->nresidual ? m->nresidual : 1, sizeof *m->residual);
	if (!m->cands || !m->residual) {
		mem_free(b->tmp, residual);
		goto oom;
	}
	size_t nr = 0;
	for (size_t j = 0; j < np; j++) {
		if (residual[j]) {
			m->residual[nr++] = (uint32_t)j;
			continue;
		}
		const struct atom *at = b->atoms + b->atom_first[j];
		size_t na = b->atom_first[j + 1] - b->atom_first[j];
		for (size_t a = 0; a < na; a++) {
			if (at[a].field == UINT32_MAX)
				continue;
			uint32_t pi = pair_intern(b, at[a].field, at[a].value);
			struct pair *pp = &b->pairs[pi];
			m->cands[pp->start + pp->count++] = (uint32_t)j;
		}
	}
	mem_free(b->tmp, residual);
	/* Per field, a table of its values that some cut uses; fields no cut uses go. */
	struct field *fields = mem_alloc_array(c, m->nfields ? m->nfields : 1, sizeof *fields);
	if (!fields)
		goto oom;
	size_t nf = 0;
	for (size_t f = 0; f < m->nfields; f++) {
		const struct field *src = &m->fields[f];
		size_t used = 0;
		for (uint32_t pi = src->first_pair; pi != UINT32_MAX; pi = b->pairs[pi].next_in_field)
			used += b->pairs[pi].count > 0;
		if (used == 0)
			continue;
		size_t size = 2;
		while (size < used * 2)
			size *= 2;
		struct field *d = &fields[nf];
		*d = *src;
		d->slots = mem_alloc_array(c, size, sizeof *d->slots);
		if (!d->slots)
			goto oom_fields;
		memset(d->slots, 0, size * sizeof *d->slots);
		d->tmask = (uint32_t)size - 1;
		d->shift = 32;
		for (size_t z = size; z > 1; z /= 2)
			d->shift--;
		d->fshift = d->shift > 3 ? d->shift - 3 : d->shift;
		size_t words = ((size_t)1 << (32 - d->fshift)) / 64;
		words = words ? words : 1;
		d->filter = mem_alloc_array(c, words, sizeof *d->filter);
		if (!d->filter) {
			mem_free(c, d->slots);
			goto oom_fields;
		}
		memset(d->filter, 0, words * sizeof *d->filter);
		nf++;
		for (uint32_t pi = src->first_pair; pi != UINT32_MAX;
		     pi = b->pairs[pi].next_in_field) {
			const struct pair *pp = &b->pairs[pi];
			if (!pp->count)
				continue;
			uint32_t fb = slot_hash(pp->value, d->fshift);
			d->filter[fb / 64] |= (uint64_t)1 << (fb % 64);
			uint32_t h = slot_hash(pp->value, d->shift);
			while (d->slots[h].count)
				h = (h + 1) & d->tmask;
			d->slots[h] = (struct slot){pp->value, pp->start, pp->count};
		}
	}
	mem_free(b->tmp, m->fields);
	m->fields = fields;
	m->nfields = nf;
	return 0;
oom_fields:
	for (size_t f = 0; f < nf; f++) {
		mem_free(c, fields[f].slots);
		mem_free(c, fields[f].filter);
	}
	mem_free(c, fields);
oom:
	error_oom(b->err);
	return -1;
}

BPFKIT_API int bpfkit_multi_build(const struct bpfkit_prog *rules, size_t n, unsigned flags,
				  const struct bpfkit_alloc *alloc, struct bpfkit_multi **out,
				  struct bpfkit_error *err)
{
	struct bpfkit_error dummy;
	if (!err)
		err = &dummy;
	*out = NULL;
	if (n > UINT32_MAX / 2) {
		error_set(err, "too many rules (%zu)", n);
		return -1;
	}
	struct bpfkit_multi *m = mem_alloc(alloc, sizeof *m);
	if (!m) {
		error_oom(err);
		return -1;
	}
	memset(m, 0, sizeof *m);
	if (alloc && alloc->fn) {
		m->user_copy = *alloc;
		m->user = &m->user_copy;
	}
	m->counting = (struct bpfkit_alloc){count_fn, m};
	m->nrules = n;
	struct build b;
	memset(&b, 0, sizeof b);
	b.m = m;
	b.tmp = m->user;
	b.err = err;
	b.run_all = (flags & BPFKIT_MULTI_RUN_ALL) != 0;
	int rc = build_programs(&b, rules, n);
	if (rc == 0) {
		/* During the index build m->fields lives in scratch memory. */
		rc = build_index(&b);
		if (rc != 0) {
			mem_free(b.tmp, m->fields);
			m->fields = NULL;
			m->nfields = 0;
		}
	}
	if (rc == 0 || m->nodes || m->raws)
		rc = move_dags(&b, rc);
	if (rc == 0)
		rc = build_classes(&b);
	/* Engines last: a decided program needs none. */
	if (rc == 0)
		rc = build_engines(&b, flags);
	build_free_scratch(&b);
	if (rc != 0) {
		bpfkit_multi_free(m);
		return -1;
	}
	*out = m;
	return 0;
}

BPFKIT_API void bpfkit_multi_stats(const struct bpfkit_multi *m, struct bpfkit_multi_stats *s)
{
	memset(s, 0, sizeof *s);
	s->rules = m->nrules;
	s->programs = m->nprogs;
	s->residual_programs = m->nresidual;
	s->residual_rules = m->residual_rules;
	s->fields = m->nfields;
	s->entries = m->ncands;
	s->jitted = m->jitted;
	s->bytes = m->bytes + sizeof *m;
	s->decided = m->decided;
	s->hoisted = m->nhot;
}

BPFKIT_API size_t bpfkit_multi_rules(const struct bpfkit_multi *m)
{
	return m->nrules;
}

/* ------------------------------------------------------------------ */
/* Match                                                               */

BPFKIT_API int bpfkit_multi_state_new(const struct bpfkit_multi *m,
				      const struct bpfkit_alloc *alloc,
				      struct bpfkit_multi_state **out, struct bpfkit_error *err)
{
	*out = NULL;
	struct bpfkit_multi_state *st = mem_alloc(alloc, sizeof *st);
	if (!st) {
		error_oom(err);
		return -1;
	}
	memset(st, 0, sizeof *st);
	if (alloc && alloc->fn) {
		st->alloc_copy = *alloc;
		st->alloc = &st->alloc_copy;
	}
	st->nprogs = m->nprogs;
	st->nrules = m->nrules;
	st->nvals = m->nvals;
	size_t nw = (m->nrules + 63) / 64;
	st->stamp = mem_alloc_array(st->alloc, m->nprogs ? m->nprogs : 1, sizeof *st->stamp);
	st->ids = mem_alloc_array(st->alloc, m->nrules + 4, sizeof *st->ids); /* 4: sort_ids */
	st->pend = mem_alloc_array(st->alloc, m->nprogs ? m->nprogs : 1, sizeof *st->pend);
	st->tmp = mem_alloc_array(st->alloc, m->nrules ? m->nrules : 1, sizeof *st->tmp);
	st->bits = mem_alloc_array(st->alloc, nw ? nw : 1, sizeof *st->bits);
	st->rval = mem_alloc_array(st->alloc, m->nvals ? m->nvals : 1, sizeof *st->rval);
	st->rgen = mem_alloc_array(st->alloc, m->nvals ? m->nvals : 1, sizeof *st->rgen);
	if (!st->stamp || !st->ids || !st->pend || !st->tmp || !st->bits || !st->rval || !st->rgen) {
		bpfkit_multi_state_free(st);
		error_oom(err);
		return -1;
	}
	memset(st->stamp, 0, (m->nprogs ? m->nprogs : 1) * sizeof *st->stamp);
	memset(st->bits, 0, (nw ? nw : 1) * sizeof *st->bits);
	memset(st->rgen, 0, (m->nvals ? m->nvals : 1) * sizeof *st->rgen);
	*out = st;
	return 0;
}

BPFKIT_API void bpfkit_multi_state_free(struct bpfkit_multi_state *st)
{
	if (!st)
		return;
	const struct bpfkit_alloc *a = st->alloc;
	mem_free(a, st->stamp);
	mem_free(a, st->ids);
	mem_free(a, st->tmp);
	mem_free(a, st->pend);
	mem_free(a, st->bits);
	mem_free(a, st->rval);
	mem_free(a, st->rgen);
	mem_free(a, st);
}

static inline bool field_value(const struct field *f, const uint8_t *p, uint32_t caplen,
			       uint32_t *v)
{
	uint64_t off = f->off;
	if (f->based) {
		if (f->base >= caplen)
			return false;
		off += 4u * (p[f->base] & 0xfu);
	}
	if (off > caplen || f->size > caplen - off)
		return false;
	const uint8_t *q = p + off;
	uint32_t x;
	switch (f->size) {
	case 4: x = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3]; break;
	case 2: x = (uint32_t)q[0] << 8 | q[1]; break;
	default: x = q[0]; break;
	}
	*v = x & f->mask;
	return true;
}

static inline uint32_t run_prog(const struct runner *r, const uint8_t *pkt, uint32_t caplen,
				uint32_t wirelen)
{
	if (r->fn)
		return r->fn(pkt, caplen, wirelen);
	if (r->fast)
		return bpfkit_fast_run(r->fast, pkt, caplen, wirelen);
	return bpfkit_interp(r->insns, r->len, pkt, caplen, wirelen, NULL);
}

/* Tested value id's value in this packet (raw field & mask), cached; bit 32
 * set when the raw field is past caplen. */
static inline uint64_t val_value(const struct bpfkit_multi *m, struct bpfkit_multi_state *st,
				 uint32_t id, const uint8_t *p, uint32_t caplen, uint32_t wirelen)
{
	if (st->rgen[id] == st->gen)
		return st->rval[id];
	const struct tval *t = &m->vals[id];
	uint64_t v = (uint64_t)1 << 32;
	if (t->raw == UINT32_MAX) {
		v = 0;
	} else {
		const struct raw *r = &m->raws[t->raw];
		uint64_t off = r->off;
		if (r->size == 0) {
			v = wirelen;
		} else if (!r->based || r->base < caplen) {
			if (r->based)
				off += 4u * (p[r->base] & 0xfu);
			if (off <= caplen && r->size <= caplen - off) {
				const uint8_t *q = p + off;
				switch (r->size) {
				case 4:
					v = (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 |
					    (uint32_t)q[2] << 8 | q[3];
					break;
				case 2: v = (uint32_t)q[0] << 8 | q[1]; break;
				default: v = q[0]; break;
				}
			}
		}
		if (!(v >> 32))
			v &= t->mask;
	}
	st->rgen[id] = st->gen;
	st->rval[id] = v;
	return v;
}

/* Node d's test on present (masked) value a. */
static inline bool mnode_test(const struct mnode *d, uint32_t a)
{
	switch (d->vop & 3) {
	case DOP_JEQ: return a == d->k;
	case DOP_JGT: return a > d->k;
	case DOP_JGE: return a >= d->k;
	default: return (a & d->k) != 0;
	}
}

/* Node d's successor for value v (masked; bit 32: absent, which rejects). */
static inline uint32_t mnode_step(const struct mnode *d, uint64_t v)
{
	if (v >> 32)
		return MN_REJECT;
	return d->next[mnode_test(d, (uint32_t)v)];
}

/* How many candidates ahead the match loop prefetches decision nodes. */
#define PREFETCH_AHEAD 4
/* DAG walks interleaved per group of candidates. */
#define LANES 4
/* Up to this many tested values are all read at the start of each packet. */
#define EAGER_VALS 64

/*
 * Moves the set bits of the bitmap words marked in `words` to st->ids in
 * increasing order, clearing them.  Branch-free for up to 4 bits a word:
 * st->ids has 4 spare entries, so the writes past a word's bits are
 * harmless (the next word overwrites them).
 */
static void bits_to_ids(struct bpfkit_multi_state *st, uint64_t words)
{
	uint32_t *ids = st->ids;
	size_t k = 0;
	for (; words; words &= words - 1) {
		unsigned w = (unsigned)__builtin_ctzll(words);
		uint64_t x = st->bits[w];
		st->bits[w] = 0;
		uint32_t base = w * 64;
		for (int r = 0; r < 4; r++) {
			ids[k] = base + (unsigned)__builtin_ctzll(x | (uint64_t)1 << 63);
			k += x != 0;
			x &= x - 1;
		}
		for (; x; x &= x - 1)
			ids[k++] = base + (unsigned)__builtin_ctzll(x);
	}
}

/*
 * Sorts the n matched rule ids (distinct, < nrules) in st->ids: insertion
 * for a few, else through the bitmap when its words are few beside n, else
 * an LSD radix sort on bytes.
 */
static void sort_ids(struct bpfkit_multi_state *st, size_t n)
{
	uint32_t *ids = st->ids;
	if (n <= 12) {
		for (size_t i = 1; i < n; i++) {
			uint32_t x = ids[i];
			size_t k = i;
			for (; k > 0 && ids[k - 1] > x; k--)
				ids[k] = ids[k - 1];
			ids[k] = x;
		}
		return;
	}
	size_t nw = (st->nrules + 63) / 64;
	if (nw <= 16 * n + 64) {
		size_t lo = nw, hi = 0;
		for (size_t i = 0; i < n; i++) {
			size_t w = ids[i] / 64;
			st->bits[w] |= (uint64_t)1 << (ids[i] % 64);
			lo = w < lo ? w : lo;
			hi = w > hi ? w : hi;
		}
		size_t k = 0;
		for (size_t w = lo; w <= hi; w++) {
			uint64_t x = st->bits[w];
			st->bits[w] = 0;
			for (; x; x &= x - 1)
				ids[k++] = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(x));
		}
		return;
	}
	uint32_t *src = ids, *dst = st->tmp;
	for (unsigned shift = 0; shift < 32 && (st->nrules - 1) >> shift; shift += 8) {
		size_t count[257] = {0};
		for (size_t i = 0; i < n; i++)
			count[((src[i] >> shift) & 255) + 1]++;
		for (int d = 0; d < 256; d++)
			count[d + 1] += count[d];
		for (size_t i = 0; i < n; i++)
			dst[count[(src[i] >> shift) & 255]++] = src[i];
		uint32_t *t = src;
		src = dst;
		dst = t;
	}
	if (src != ids)
		memcpy(ids, src, n * sizeof *ids);
}

BPFKIT_API size_t bpfkit_multi_match(const struct bpfkit_multi *m, struct bpfkit_multi_state *st,
				     const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
				     const uint32_t **ids)
{
	if (++st->gen == 0) {
		memset(st->stamp, 0, st->nprogs * sizeof *st->stamp);
		memset(st->rgen, 0, st->nvals * sizeof *st->rgen);
		st->gen = 1;
	}
	/* At most 64 bitmap words (4,096 rules): matches go straight to the
	 * bitmap, `words` marking the words used, and come out sorted. */
	bool direct = st->nrules <= 64 * 64;
	uint64_t words = 0;
	/* The packet's class: the hot tests' outcomes (last row: one is absent). */
	size_t cl = 0;
	for (unsigned q = 0; q < m->nhot; q++) {
		const struct mnode *d = &m->hot[q];
		uint64_t v = val_value(m, st, d->vop >> 2, pkt, caplen, wirelen);
		if (v >> 32) {
			cl = (size_t)1 << m->nhot;
			break;
		}
		cl |= (size_t)mnode_test(d, (uint32_t)v) << q;
	}
	const uint32_t *ent = m->centry + cl * m->nprogs;
	/* Candidates first (each once; not those the class rejects), prefetching
	 * their runners; then each is decided or run, its first nodes prefetched
	 * a few candidates ahead. */
	size_t nids = 0, np = 0;
	uint32_t *pend = st->pend;
	for (size_t f = 0; f < m->nfields; f++) {
		const struct field *fd = &m->fields[f];
		uint32_t v;
		if (!field_value(fd, pkt, caplen, &v))
			continue;
		uint32_t fb = slot_hash(v, fd->fshift);
		if (!(fd->filter[fb / 64] >> (fb % 64) & 1))
			continue;
		uint32_t h = slot_hash(v, fd->shift);
		for (;; h = (h + 1) & fd->tmask) {
			const struct slot *s = &fd->slots[h];
			if (!s->count)
				break;
			if (s->key != v)
				continue;
			for (uint32_t c = 0; c < s->count; c++) {
				uint32_t j = m->cands[s->start + c];
				if (st->stamp[j] == st->gen)
					continue;
				st->stamp[j] = st->gen;
				if (ent[j] == MN_REJECT)
					continue;
				__builtin_prefetch(&m->progs[j]);
				pend[np++] = j;
			}
			break;
		}
	}
	for (size_t i = 0; i < m->nresidual; i++)
		if (ent[m->residual[i]] != MN_REJECT)
			pend[np++] = m->residual[i];
	/* Few values and enough walks to pay for reading them all now: then DAG
	 * walks need no cache check. */
	bool eager = m->nvals <= EAGER_VALS && np * 4 >= m->nvals;
	if (eager)
		for (uint32_t r = 0; r < m->nvals; r++)
			val_value(m, st, r, pkt, caplen, wirelen);
	const struct mnode *mn = m->mnodes;
	for (size_t i = 0; i < PREFETCH_AHEAD && i < np; i++) {
		uint32_t e = ent[pend[i]];
		if (e != DEC_NONE)
			__builtin_prefetch(&mn[e]);
	}
	/* LANES DAG walks at once: their node loads overlap instead of chaining.
	 * A lane at a leaf stays there (the leaves lead to themselves); an
	 * undecided program's lane waits at MN_REJECT and the program runs. */
	for (size_t i = 0; i < np; i += LANES) {
		size_t nl = np - i < LANES ? np - i : LANES;
		uint32_t e[LANES];
		for (size_t l = 0; l < LANES; l++) {
			uint32_t x = l < nl ? ent[pend[i + l]] : MN_REJECT;
			e[l] = x == DEC_NONE ? MN_REJECT : x;
			size_t ahead = i + l + PREFETCH_AHEAD;
			if (ahead < np) {
				uint32_t f = ent[pend[ahead]];
				if (f != DEC_NONE && f > MN_REJECT) {
					/* Its nodes lie below it (children first). */
					__builtin_prefetch(&mn[f]);
					__builtin_prefetch(&mn[f - (f >= 4 ? 4 : 0)]);
				}
			}
		}
		bool active = true;
		if (eager) {
			const uint64_t *rv = st->rval;
			while (active) {
				active = false;
				for (size_t l = 0; l < LANES; l++) {
					if (e[l] <= MN_REJECT)
						continue;
					const struct mnode *d = &mn[e[l]];
					e[l] = mnode_step(d, rv[d->vop >> 2]);
					active |= e[l] > MN_REJECT;
				}
			}
		} else {
			while (active) {
				active = false;
				for (size_t l = 0; l < LANES; l++) {
					if (e[l] <= MN_REJECT)
						continue;
					const struct mnode *d = &mn[e[l]];
					uint64_t v = val_value(m, st, d->vop >> 2, pkt, caplen,
							       wirelen);
					e[l] = mnode_step(d, v);
					active |= e[l] > MN_REJECT;
				}
			}
		}
		for (size_t l = 0; l < nl; l++) {
			const struct runner *r = &m->progs[pend[i + l]];
			bool acc = r->entry == DEC_NONE ? run_prog(r, pkt, caplen, wirelen) != 0 :
				   e[l] == MN_ACCEPT;
			if (!acc)
				continue;
			if (direct) {
				for (uint32_t k = 0; k < r->nrules; k++) {
					uint32_t id = m->rule_ids[r->first + k];
					st->bits[id / 64] |= (uint64_t)1 << (id % 64);
					words |= (uint64_t)1 << (id / 64);
				}
				nids += r->nrules;
			} else {
				for (uint32_t k = 0; k < r->nrules; k++)
					st->ids[nids++] = m->rule_ids[r->first + k];
			}
		}
	}
	if (direct)
		bits_to_ids(st, words);
	else if (nids > 1)
		sort_ids(st, nids);
	if (ids)
		*ids = st->ids;
	return nids;
}

BPFKIT_API size_t bpfkit_multi_match_bitmap(const struct bpfkit_multi *m,
					    struct bpfkit_multi_state *st, const uint8_t *pkt,
					    uint32_t caplen, uint32_t wirelen, uint64_t *bitmap)
{
	const uint32_t *ids;
	size_t n = bpfkit_multi_match(m, st, pkt, caplen, wirelen, &ids);
	memset(bitmap, 0, ((m->nrules + 63) / 64) * sizeof *bitmap);
	for (size_t i = 0; i < n; i++)
		bitmap[ids[i] / 64] |= (uint64_t)1 << (ids[i] % 64);
	return n;
}
