/*
 * opt_val.c - value numbers, facts about them, and the symbolic evaluation
 * of statements: the analysis every optimizer pass shares (see opt.h).
 *
 * Invariants: a value number's fields never change once made; equal numbers
 * are equal values on every run.  Facts only ever claim what holds on every
 * path that reaches their point: a fact that cannot be kept (a table is full,
 * memory runs out) is dropped, never guessed.
 */
#include "opt.h"

#include <string.h>

/* ---- value numbers ---- */

void opt_vals_init(struct opt_vals *t, const struct bpfkit_alloc *alloc)
{
	memset(t, 0, sizeof *t);
	t->alloc = alloc;
}

void opt_vals_free(struct opt_vals *t)
{
	mem_free(t->alloc, t->v);
	mem_free(t->alloc, t->hash);
	memset(t, 0, sizeof *t);
}

static uint64_t val_hash(const struct opt_val *v)
{
	uint64_t h = (uint64_t)v->kind * 0x9e3779b97f4a7c15u;
	h ^= ((uint64_t)v->size << 8 | v->op) * 0xbf58476d1ce4e5b9u;
	h ^= (uint64_t)(uint32_t)v->a * 0x94d049bb133111ebu;
	h ^= ((uint64_t)(uint32_t)v->b << 32 | v->k) * 0x2545f4914f6cdd1du;
	return h ^ (h >> 29);
}

static bool val_same(const struct opt_val *x, const struct opt_val *y)
{
	return x->kind == y->kind && x->size == y->size && x->op == y->op && x->a == y->a &&
	       x->b == y->b && x->k == y->k;
}

static bool grow_hash(struct opt_vals *t)
{
	size_t cap = t->hcap ? t->hcap * 2 : 256;
	int *h = mem_alloc_array(t->alloc, cap, sizeof *h);
	if (!h)
		return false;
	for (size_t i = 0; i < cap; i++)
		h[i] = -1;
	for (int i = 0; i < t->n; i++) {
		if (t->v[i].kind == OV_OPAQUE)
			continue;
		size_t j = val_hash(&t->v[i]) & (cap - 1);
		while (h[j] >= 0)
			j = (j + 1) & (cap - 1);
		h[j] = i;
	}
	mem_free(t->alloc, t->hash);
	t->hash = h;
	t->hcap = cap;
	return true;
}

/* The number of v (made when new); -1 when out of memory. */
static int intern(struct opt_vals *t, struct opt_val v)
{
	if (t->failed)
		return -1;
	if ((size_t)t->n * 2 >= t->hcap && !grow_hash(t))
		goto oom;
	size_t j = 0;
	if (v.kind != OV_OPAQUE) {
		j = val_hash(&v) & (t->hcap - 1);
		for (; t->hash[j] >= 0; j = (j + 1) & (t->hcap - 1))
			if (val_same(&t->v[t->hash[j]], &v))
				return t->hash[j];
	}
	if (t->n == t->cap) {
		int cap = t->cap ? t->cap * 2 : 256;
		struct opt_val *nv = mem_realloc(t->alloc, t->v, (size_t)cap * sizeof *nv);
		if (!nv)
			goto oom;
		t->v = nv;
		t->cap = cap;
	}
	t->v[t->n] = v;
	if (v.kind != OV_OPAQUE)
		t->hash[j] = t->n;
	return t->n++;
oom:
	t->failed = true;
	return -1;
}

static struct opt_val mk(enum opt_kind kind)
{
	struct opt_val v;
	memset(&v, 0, sizeof v);
	v.kind = (uint8_t)kind;
	v.a = v.b = -1;
	v.hi = 0xffffffffu;
	return v;
}

int opt_const(struct opt_vals *t, uint32_t k)
{
	struct opt_val v = mk(OV_CONST);
	v.k = v.lo = v.hi = k;
	v.zero = ~k;
	return intern(t, v);
}

int opt_opaque(struct opt_vals *t)
{
	struct opt_val v = mk(OV_OPAQUE);
	v.k = (uint32_t)t->n;
	return intern(t, v);
}

/* An opaque value known to lie in [lo, hi] with the bits of zero clear. */
static int opaque_range(struct opt_vals *t, uint32_t lo, uint32_t hi, uint32_t zero)
{
	struct opt_val v = mk(OV_OPAQUE);
	v.k = (uint32_t)t->n;
	v.lo = lo;
	v.hi = hi;
	v.zero = zero;
	return intern(t, v);
}

bool opt_is_const(const struct opt_vals *t, int v, uint32_t *k)
{
	if (v < 0 || t->v[v].kind != OV_CONST)
		return false;
	if (k)
		*k = t->v[v].k;
	return true;
}

int opt_load(struct opt_vals *t, int size, int idx, uint32_t k)
{
	uint32_t c;
	if (idx >= 0 && opt_is_const(t, idx, &c)) {
		/* [c + k] is the absolute load [c + k] unless the sum wraps (it then fails) */
		if (c <= 0xffffffffu - k) {
			k += c;
			idx = -1;
		}
	}
	struct opt_val v = mk(OV_LOAD);
	v.size = (uint8_t)size;
	v.a = idx;
	v.k = k;
	v.hi = size == 1 ? 0xff : size == 2 ? 0xffff : 0xffffffffu;
	v.zero = ~v.hi;
	return intern(t, v);
}

int opt_msh(struct opt_vals *t, uint32_t k)
{
	struct opt_val v = mk(OV_MSH);
	v.k = k;
	v.hi = 60;
	v.zero = ~0x3cu;
	return intern(t, v);
}

int opt_len(struct opt_vals *t)
{
	return intern(t, mk(OV_LEN));
}

/* Highest bit set, or -1 for 0. */
static int top_bit(uint32_t x)
{
	int n = -1;
	while (x) {
		n++;
		x >>= 1;
	}
	return n;
}

int opt_alu(struct opt_vals *t, int op, int a, int b)
{
	if (a < 0 || (op != BPFKIT_NEG && b < 0))
		return -1;
	uint32_t ka, kb = 0;
	bool ca = opt_is_const(t, a, &ka), cb = op != BPFKIT_NEG && opt_is_const(t, b, &kb);
	uint32_t r;
	if (ca && (cb || op == BPFKIT_NEG) && opcode_alu_fold(op, ka, kb, &r))
		return opt_const(t, r);
	const struct opt_val *va = &t->v[a];
	if (cb) {
		switch (op) {
		case BPFKIT_ADD: case BPFKIT_SUB: case BPFKIT_OR: case BPFKIT_XOR:
		case BPFKIT_LSH: case BPFKIT_RSH:
			if (kb == 0)
				return a;
			break;
		case BPFKIT_MUL:
			if (kb == 1)
				return a;
			if (kb == 0)
				return opt_const(t, 0);
			break;
		case BPFKIT_DIV:
			if (kb == 1)
				return a;
			break;
		case BPFKIT_AND:
			if (kb == 0)
				return opt_const(t, 0);
			if ((~kb & ~va->zero) == 0)   /* the mask keeps every bit that can be set */
				return a;
			break;
		}
	}
	if (a == b && (op == BPFKIT_SUB || op == BPFKIT_XOR))
		return opt_const(t, 0);
	if (a == b && (op == BPFKIT_AND || op == BPFKIT_OR))
		return a;
	if (ca) {
		/* constant on the left: 0 + b, 0 | b, ... are b */
		if (ka == 0 && (op == BPFKIT_ADD || op == BPFKIT_OR || op == BPFKIT_XOR))
			return b;
		if (ka == 0 && (op == BPFKIT_AND || op == BPFKIT_MUL))
			return opt_const(t, 0);
		if (ka == 1 && op == BPFKIT_MUL)
			return b;
	}
	struct opt_val v = mk(OV_ALU);
	v.op = (uint8_t)op;
	v.a = a;
	v.b = op == BPFKIT_NEG ? -1 : b;
	/* commutative operations: one order */
	if ((op == BPFKIT_ADD || op == BPFKIT_MUL || op == BPFKIT_AND || op == BPFKIT_OR ||
	     op == BPFKIT_XOR) && v.a > v.b) {
		int s = v.a;
		v.a = v.b;
		v.b = s;
	}
	const struct opt_val *vb = op == BPFKIT_NEG ? NULL : &t->v[b];
	switch (op) {
	case BPFKIT_AND:
		v.zero = va->zero | vb->zero;
		v.hi = va->hi < vb->hi ? va->hi : vb->hi;
		break;
	case BPFKIT_OR: case BPFKIT_XOR:
		v.zero = va->zero & vb->zero;
		break;
	case BPFKIT_RSH:
		if (cb && kb < 32) {
			v.hi = va->hi >> kb;
			v.zero = ~(0xffffffffu >> kb) | (va->zero >> kb);
		}
		break;
	case BPFKIT_LSH:
		if (cb && kb < 32) {
			v.zero = (va->zero << kb) | ((1u << kb) - 1);
			if (top_bit(va->hi) + (int)kb < 32)
				v.hi = va->hi << kb;
		}
		break;
	case BPFKIT_DIV:
		v.hi = va->hi;
		if (cb && kb)
			v.hi = va->hi / kb;
		break;
	case BPFKIT_MOD:
		if (cb && kb)
			v.hi = kb - 1 < va->hi ? kb - 1 : va->hi;
		break;
	case BPFKIT_ADD:
		if (top_bit(va->hi) < 31 && top_bit(vb->hi) < 31) {
			v.hi = va->hi + vb->hi;
			v.lo = va->lo + vb->lo;
		}
		break;
	case BPFKIT_MUL:
		if (top_bit(va->hi) + top_bit(vb->hi) < 30)
			v.hi = va->hi * vb->hi;
		break;
	}
	/* bits known zero bound the value */
	uint32_t most = ~v.zero;
	if (most < v.hi)
		v.hi = most;
	return intern(t, v);
}

/* ---- facts ---- */

void opt_facts_free(const struct bpfkit_alloc *a, struct opt_facts *f)
{
	mem_free(a, f->f);
	f->f = NULL;
	f->n = f->cap = 0;
}

bool opt_facts_copy(const struct bpfkit_alloc *a, struct opt_facts *dst,
		    const struct opt_facts *src)
{
	dst->caplen = src->caplen;
	dst->dead = src->dead;
	dst->n = dst->cap = 0;
	dst->f = NULL;
	if (!src->n)
		return true;
	dst->f = mem_alloc_array(a, (size_t)src->n, sizeof *dst->f);
	if (!dst->f)
		return false;
	memcpy(dst->f, src->f, (size_t)src->n * sizeof *dst->f);
	dst->n = dst->cap = src->n;
	return true;
}

static int find(const struct opt_facts *f, int v)
{
	int lo = 0, hi = f->n;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (f->f[mid].v < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct opt_fact *lookup(const struct opt_facts *f, int v)
{
	int i = find(f, v);
	return i < f->n && f->f[i].v == v ? &f->f[i] : NULL;
}

/* The fact record for v, made with the value's own bounds when absent; NULL when full. */
static struct opt_fact *fact_of(struct opt_vals *t, const struct bpfkit_alloc *al,
				struct opt_facts *f, int v)
{
	int i = find(f, v);
	if (i < f->n && f->f[i].v == v)
		return &f->f[i];
	if (f->n >= OPT_MAXFACTS)
		return NULL;
	if (f->n == f->cap) {
		int cap = f->cap ? f->cap * 2 : 8;
		struct opt_fact *nf = mem_realloc(al, f->f, (size_t)cap * sizeof *nf);
		if (!nf)
			return NULL;
		f->f = nf;
		f->cap = cap;
	}
	memmove(&f->f[i + 1], &f->f[i], (size_t)(f->n - i) * sizeof *f->f);
	f->n++;
	struct opt_fact *r = &f->f[i];
	memset(r, 0, sizeof *r);
	r->v = v;
	r->lo = t->v[v].lo;
	r->hi = t->v[v].hi;
	r->zero = t->v[v].zero;
	return r;
}

static bool ne_has(const struct opt_fact *r, uint32_t k)
{
	for (int i = 0; i < r->nne; i++)
		if (r->ne[i] == k)
			return true;
	return false;
}

void opt_facts_meet(struct opt_facts *dst, const struct opt_facts *src)
{
	if (src->dead)
		return;
	if (dst->dead) {
		/* nothing came along dst: take src (the caller copies facts itself) */
		return;
	}
	if (src->caplen < dst->caplen)
		dst->caplen = src->caplen;
	int o = 0;
	for (int i = 0; i < dst->n; i++) {
		struct opt_fact *d = &dst->f[i];
		const struct opt_fact *s = lookup(src, d->v);
		if (!s)
			continue;
		struct opt_fact r = *d;
		r.lo = d->lo < s->lo ? d->lo : s->lo;
		r.hi = d->hi > s->hi ? d->hi : s->hi;
		r.one = d->one & s->one;
		r.zero = d->zero & s->zero;
		r.any = d->any && s->any ? d->any | s->any : 0;
		r.done = d->done && s->done;
		r.nne = 0;
		for (int j = 0; j < d->nne; j++)
			if (ne_has(s, d->ne[j]))
				r.ne[r.nne++] = d->ne[j];
		dst->f[o++] = r;
	}
	dst->n = o;
}

/* Adds k to the excluded constants of r (the oldest goes when full). */
static void ne_add(struct opt_fact *r, uint32_t k)
{
	if (ne_has(r, k) || k < r->lo || k > r->hi)
		return;
	if (r->nne == OPT_NE) {
		memmove(&r->ne[0], &r->ne[1], (OPT_NE - 1) * sizeof r->ne[0]);
		r->nne--;
	}
	r->ne[r->nne++] = k;
}

/* Tightens r->lo / r->hi past excluded constants at the ends; marks contradictions. */
static void settle(struct opt_facts *f, struct opt_fact *r)
{
	for (bool again = true; again;) {
		again = false;
		if (r->lo > r->hi || (r->one & r->zero) || (r->any && !(r->any & ~r->zero))) {
			f->dead = true;
			return;
		}
		if (r->lo < r->one)
			r->lo = r->one;   /* the known-set bits are a lower bound */
		if (r->hi > ~r->zero)
			r->hi = ~r->zero;
		for (int i = 0; i < r->nne; i++) {
			if (r->ne[i] == r->lo && r->lo < r->hi) {
				r->lo++;
				again = true;
			} else if (r->ne[i] == r->hi && r->lo < r->hi) {
				r->hi--;
				again = true;
			} else if (r->ne[i] == r->lo && r->lo == r->hi) {
				f->dead = true;
				return;
			}
		}
	}
}

void opt_facts_learn(struct opt_vals *t, const struct bpfkit_alloc *al, struct opt_facts *f,
		     uint16_t jcode, uint32_t k, int a, int x, int way)
{
	if (a < 0 || f->dead)
		return;
	if (BPFKIT_SRC(jcode) == BPFKIT_X) {
		uint32_t c;
		if (!opt_is_const(t, x, &c))
			return;
		k = c;
	}
	struct opt_fact *r = fact_of(t, al, f, a);
	if (!r)
		return;
	switch (BPFKIT_OP(jcode)) {
	case BPFKIT_JEQ:
		if (way) {
			if (k < r->lo || k > r->hi || ne_has(r, k) || (k & r->zero) ||
			    (~k & r->one)) {
				f->dead = true;
				return;
			}
			if (r->any && !(k & r->any)) {
				f->dead = true;
				return;
			}
			r->lo = r->hi = k;
			r->one = k;
			r->zero = ~k;
			r->nne = 0;
		} else {
			ne_add(r, k);
		}
		break;
	case BPFKIT_JGT:
		if (way) {
			if (k == 0xffffffffu) {
				f->dead = true;
				return;
			}
			if (k + 1 > r->lo)
				r->lo = k + 1;
		} else if (k < r->hi) {
			r->hi = k;
		}
		break;
	case BPFKIT_JGE:
		if (way) {
			if (k > r->lo)
				r->lo = k;
		} else {
			if (k == 0) {
				f->dead = true;
				return;
			}
			if (k - 1 < r->hi)
				r->hi = k - 1;
		}
		break;
	case BPFKIT_JSET:
		if (!way)
			r->zero |= k;
		else if (k && !(k & (k - 1)))
			r->one |= k;
		else if ((k & ~r->zero) && !((k & ~r->zero) & ((k & ~r->zero) - 1)))
			r->one |= k & ~r->zero;   /* one possible bit left: it is set */
		else if (!r->any || __builtin_popcount(k & ~r->zero) < __builtin_popcount(r->any))
			r->any = k & ~r->zero;    /* keep the narrower claim */
		break;
	}
	settle(f, r);
}

int opt_decide(struct opt_vals *t, const struct opt_facts *f, uint16_t jcode, uint32_t k, int a,
	       int x)
{
	if (a < 0)
		return -1;
	if (BPFKIT_SRC(jcode) == BPFKIT_X) {
		if (a == x) {
			switch (BPFKIT_OP(jcode)) {
			case BPFKIT_JEQ: case BPFKIT_JGE: return 1;
			case BPFKIT_JGT: return 0;
			default: return -1;   /* jset x with A == X: A != 0 */
			}
		}
		uint32_t c;
		if (!opt_is_const(t, x, &c))
			return -1;
		k = c;
	}
	const struct opt_val *v = &t->v[a];
	uint32_t lo = v->lo, hi = v->hi, one = 0, zero = v->zero, any = 0;
	const struct opt_fact *r = lookup(f, a);
	if (r) {
		lo = r->lo > lo ? r->lo : lo;
		hi = r->hi < hi ? r->hi : hi;
		one = r->one;
		zero |= r->zero;
		any = r->any;
	}
	switch (BPFKIT_OP(jcode)) {
	case BPFKIT_JEQ:
		if (lo == hi)
			return lo == k;
		if (k < lo || k > hi || (k & zero) || (~k & one) || (r && ne_has(r, k)) ||
		    (any && !(k & any)))
			return 0;
		return -1;
	case BPFKIT_JGT:
		if (lo > k)
			return 1;
		if (hi <= k)
			return 0;
		return -1;
	case BPFKIT_JGE:
		if (lo >= k)
			return 1;
		if (hi < k)
			return 0;
		return -1;
	case BPFKIT_JSET:
		if (k & one)
			return 1;
		if (!(k & ~zero))
			return 0;
		if (any && !(any & ~k))
			return 1;   /* a bit of any is set, and all of any is in k */
		if (lo == hi)
			return (lo & k) != 0;
		return -1;
	}
	return -1;
}

void opt_ctx_meet(struct opt_vals *t, const struct bpfkit_alloc *al, struct opt_ctx *dst,
		  const struct opt_ctx *src)
{
	if (src->facts.dead)
		return;
	if (!dst->set || dst->facts.dead) {
		opt_facts_free(al, &dst->facts);
		if (!opt_facts_copy(al, &dst->facts, &src->facts))
			dst->facts.n = 0;
		dst->st = src->st;
		dst->set = true;
		return;
	}
	opt_facts_meet(&dst->facts, &src->facts);
	/*
	 * A register whose paths disagree holds a new opaque value, in the hull
	 * of what the paths hold (X is 24 or 26 after a variable header: an
	 * index with a known bound); no bound, no value.
	 */
	for (int i = 0; i < OPT_NREGS; i++) {
		int a = dst->st.r[i], b = src->st.r[i];
		if (a == b)
			continue;
		dst->st.r[i] = -1;
		if (a < 0 || b < 0)
			continue;
		const struct opt_val *va = &t->v[a], *vb = &t->v[b];
		uint32_t lo = va->lo < vb->lo ? va->lo : vb->lo;
		uint32_t hi = va->hi > vb->hi ? va->hi : vb->hi;
		uint32_t zero = va->zero & vb->zero;
		if (lo > 0 || hi < 0xffffffffu || zero)
			dst->st.r[i] = opaque_range(t, lo, hi, zero);
	}
}

/* ---- statements ---- */

static bool load_done(const struct opt_facts *f, int v)
{
	const struct opt_fact *r = lookup(f, v);
	return r && r->done;
}

/* Records that the load v (size at k, index idx) ran: bytes captured, or v done. */
static void load_ran(struct opt_vals *t, const struct bpfkit_alloc *al, struct opt_facts *f,
		     int v)
{
	const struct opt_val *lv = &t->v[v];
	if (lv->a < 0 && lv->kind == OV_LOAD) {
		uint32_t end = lv->k + lv->size;
		if (end > f->caplen)
			f->caplen = end;
		return;
	}
	struct opt_fact *r = fact_of(t, al, f, v);
	if (r)
		r->done = true;
}

static bool may_be_zero(struct opt_vals *t, const struct opt_facts *f, int v)
{
	uint32_t c;
	if (opt_is_const(t, v, &c))
		return c == 0;
	const struct opt_fact *r = lookup(f, v);
	if (t->v[v].lo > 0 || (r && (r->lo > 0 || r->one || ne_has(r, 0))))
		return false;
	return true;
}

int opt_eval(struct opt_vals *t, const struct bpfkit_alloc *al, struct opt_state *st,
	     struct opt_facts *f, const struct ir_stmt *s, bool commit)
{
	uint16_t c = s->code;
	uint32_t k = s->k;
	int *A = &st->r[OPT_A], *X = &st->r[OPT_X];
	int size;
	switch (BPFKIT_CLASS(c)) {
	case BPFKIT_LD:
	case BPFKIT_LDX: {
		int *dst = BPFKIT_CLASS(c) == BPFKIT_LD ? A : X;
		size = BPFKIT_SIZE(c) == BPFKIT_B ? 1 : BPFKIT_SIZE(c) == BPFKIT_H ? 2 : 4;
		switch (BPFKIT_MODE(c)) {
		case BPFKIT_IMM:
			*dst = opt_const(t, k);
			return 1;
		case BPFKIT_MEM:
			*dst = k < BPFKIT_MEMWORDS ? st->r[OPT_M0 + k] : -1;
			if (*dst < 0)
				*dst = opt_opaque(t);
			return 1;
		case BPFKIT_LEN:
			*dst = opt_len(t);
			return 1;
		case BPFKIT_ABS: {
			/* Linux's ancillary offsets are not loads here (pcap programs) */
			int v = opt_load(t, size, -1, k);
			int safe = k <= 0xffffffffu - (uint32_t)size &&
				   k + (uint32_t)size <= f->caplen;
			*dst = v;
			if (v >= 0 && !safe && commit)
				load_ran(t, al, f, v);
			return safe;
		}
		case BPFKIT_IND: {
			if (*X < 0) {
				*dst = opt_opaque(t);
				return 0;
			}
			int v = opt_load(t, size, *X, k);
			if (v < 0) {
				*dst = -1;
				return 0;
			}
			const struct opt_val *lv = &t->v[v];
			int safe = lv->a < 0 ? lv->k <= 0xffffffffu - (uint32_t)size &&
						       lv->k + (uint32_t)size <= f->caplen
					     : load_done(f, v);
			*dst = v;
			if (!safe && commit)
				load_ran(t, al, f, v);
			return safe;
		}
		case BPFKIT_MSH: {
			int v = opt_msh(t, k);
			int safe = k < f->caplen;
			*dst = v;
			if (!safe && commit && k < 0xffffffffu && k + 1 > f->caplen)
				f->caplen = k + 1;
			return safe;
		}
		}
		*dst = -1;
		return 0;
	}
	case BPFKIT_ST:
		if (k < BPFKIT_MEMWORDS)
			st->r[OPT_M0 + k] = *A;
		return 1;
	case BPFKIT_STX:
		if (k < BPFKIT_MEMWORDS)
			st->r[OPT_M0 + k] = *X;
		return 1;
	case BPFKIT_ALU: {
		int op = BPFKIT_OP(c);
		if (op == BPFKIT_NEG) {
			*A = opt_alu(t, op, *A, -1);
			return 1;
		}
		int b;
		int safe = 1;
		if (BPFKIT_SRC(c) == BPFKIT_X) {
			b = *X;
			if ((op == BPFKIT_DIV || op == BPFKIT_MOD) && (b < 0 || may_be_zero(t, f, b)))
				safe = 0;
		} else {
			b = opt_const(t, k);
			if ((op == BPFKIT_DIV || op == BPFKIT_MOD) && k == 0)
				safe = 0;
		}
		*A = opt_alu(t, op, *A, b);
		if (*A < 0)
			*A = opt_opaque(t);
		/* after a division by X that did not fail, X is not 0 */
		if (!safe && commit && b >= 0 && BPFKIT_SRC(c) == BPFKIT_X)
			opt_facts_learn(t, al, f, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0, b, -1, 0);
		return safe;
	}
	case BPFKIT_MISC:
		if (BPFKIT_MISCOP(c) == BPFKIT_TAX)
			*X = *A;
		else
			*A = *X;
		return 1;
	}
	return 0;
}

uint32_t opt_uses(const struct ir_stmt *s)
{
	uint16_t c = s->code;
	switch (BPFKIT_CLASS(c)) {
	case BPFKIT_LD:
	case BPFKIT_LDX:
		if (BPFKIT_MODE(c) == BPFKIT_IND)
			return OPT_REG_BIT(OPT_X);
		if (BPFKIT_MODE(c) == BPFKIT_MEM && s->k < BPFKIT_MEMWORDS)
			return OPT_REG_BIT(OPT_M0 + s->k);
		return 0;
	case BPFKIT_ST:
		return OPT_REG_BIT(OPT_A);
	case BPFKIT_STX:
		return OPT_REG_BIT(OPT_X);
	case BPFKIT_ALU:
		if (BPFKIT_OP(c) != BPFKIT_NEG && BPFKIT_SRC(c) == BPFKIT_X)
			return OPT_REG_BIT(OPT_A) | OPT_REG_BIT(OPT_X);
		return OPT_REG_BIT(OPT_A);
	case BPFKIT_MISC:
		return OPT_REG_BIT(BPFKIT_MISCOP(c) == BPFKIT_TAX ? OPT_A : OPT_X);
	}
	return 0;
}

uint32_t opt_defs(const struct ir_stmt *s)
{
	uint16_t c = s->code;
	switch (BPFKIT_CLASS(c)) {
	case BPFKIT_LD:
	case BPFKIT_ALU:
		return OPT_REG_BIT(OPT_A);
	case BPFKIT_LDX:
		return OPT_REG_BIT(OPT_X);
	case BPFKIT_ST:
	case BPFKIT_STX:
		return s->k < BPFKIT_MEMWORDS ? OPT_REG_BIT(OPT_M0 + s->k) : 0;
	case BPFKIT_MISC:
		return OPT_REG_BIT(BPFKIT_MISCOP(c) == BPFKIT_TAX ? OPT_X : OPT_A);
	}
	return 0;
}

uint32_t opt_term_uses(const struct ir_block *b)
{
	if (b->term != IR_BRANCH)
		return 0;
	return OPT_REG_BIT(OPT_A) | (BPFKIT_SRC(b->jcode) == BPFKIT_X ? OPT_REG_BIT(OPT_X) : 0);
}
