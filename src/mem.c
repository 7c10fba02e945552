/*
 * mem.c - every allocation of the library goes through the caller's hook
 * (struct bpfkit_alloc), so tests can fail the Nth one.  On top of it: a bump
 * arena for one unit of work, and growable buffers with a sticky failure
 * flag so emitters check for out-of-memory once, at the end.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *mem_realloc(const struct bpfkit_alloc *a, void *ptr, size_t size)
{
	if (a && a->fn)
		return a->fn(a->ud, ptr, size);
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, size);
}

void *mem_alloc(const struct bpfkit_alloc *a, size_t size)
{
	return mem_realloc(a, NULL, size ? size : 1);
}

void mem_free(const struct bpfkit_alloc *a, void *ptr)
{
	if (ptr)
		mem_realloc(a, ptr, 0);
}

void *mem_alloc_array(const struct bpfkit_alloc *a, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	return mem_alloc(a, n * size);
}

BPFKIT_API void bpfkit_free(const struct bpfkit_alloc *alloc, void *ptr)
{
	mem_free(alloc, ptr);
}

BPFKIT_API void bpfkit_prog_free(const struct bpfkit_alloc *alloc, struct bpfkit_prog *prog)
{
	if (!prog)
		return;
	mem_free(alloc, prog->insns);
	prog->insns = NULL;
	prog->len = 0;
}

/* ---- arena ---- */

struct mem_chunk {
	struct mem_chunk *next;
	size_t size;
	/* data follows, 16-byte aligned */
};

#define CHUNK_HDR ((sizeof(struct mem_chunk) + 15) & ~(size_t)15)
#define CHUNK_MIN 8192

void mem_arena_init(struct mem_arena *ar, const struct bpfkit_alloc *a)
{
	ar->alloc = a;
	ar->chunks = NULL;
	ar->cur = ar->end = NULL;
}

void *mem_arena_alloc(struct mem_arena *ar, size_t size)
{
	size_t need = (size + 15) & ~(size_t)15;
	if (need < size)
		return NULL;
	if (!ar->cur || (size_t)(ar->end - ar->cur) < need) {
		size_t csize = need > CHUNK_MIN ? need : CHUNK_MIN;
		if (csize > SIZE_MAX - CHUNK_HDR)
			return NULL;
		struct mem_chunk *c = mem_alloc(ar->alloc, CHUNK_HDR + csize);
		if (!c)
			return NULL;
		c->next = ar->chunks;
		c->size = csize;
		ar->chunks = c;
		ar->cur = (char *)c + CHUNK_HDR;
		ar->end = ar->cur + csize;
	}
	void *p = ar->cur;
	ar->cur += need;
	return p;
}

char *mem_arena_strndup(struct mem_arena *ar, const char *s, size_t n)
{
	char *p = mem_arena_alloc(ar, n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

void mem_arena_free(struct mem_arena *ar)
{
	struct mem_chunk *c = ar->chunks;
	while (c) {
		struct mem_chunk *next = c->next;
		mem_free(ar->alloc, c);
		c = next;
	}
	ar->chunks = NULL;
	ar->cur = ar->end = NULL;
}

/* ---- byte buffer ---- */

void mem_buf_init(struct mem_buf *b, const struct bpfkit_alloc *a)
{
	b->alloc = a;
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = false;
}

static bool buf_reserve(struct mem_buf *b, size_t extra)
{
	if (b->failed)
		return false;
	if (extra > SIZE_MAX - b->len - 1) {
		b->failed = true;
		return false;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = mem_realloc(b->alloc, b->data, cap);
	if (!p) {
		b->failed = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void mem_buf_put(struct mem_buf *b, const void *data, size_t n)
{
	if (!buf_reserve(b, n))
		return;
	if (n)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void mem_buf_puts(struct mem_buf *b, const char *s)
{
	mem_buf_put(b, s, strlen(s));
}

void mem_buf_printf(struct mem_buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(small, sizeof small, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	if ((size_t)n < sizeof small) {
		mem_buf_put(b, small, (size_t)n);
		return;
	}
	if (!buf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

char *mem_buf_take(struct mem_buf *b, size_t *len)
{
	if (!b->failed && !b->data)
		buf_reserve(b, 0);
	if (b->failed) {
		mem_buf_free(b);
		return NULL;
	}
	char *p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void mem_buf_free(struct mem_buf *b)
{
	mem_free(b->alloc, b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* ---- instruction vector ---- */

void mem_insns_init(struct mem_insns *p, const struct bpfkit_alloc *a)
{
	p->alloc = a;
	p->v = NULL;
	p->len = p->cap = 0;
	p->failed = false;
}

void mem_insns_push(struct mem_insns *p, struct bpfkit_insn insn)
{
	if (p->failed)
		return;
	if (p->len == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct bpfkit_insn *v = NULL;
		if (cap <= SIZE_MAX / sizeof *v)
			v = mem_realloc(p->alloc, p->v, cap * sizeof *v);
		if (!v) {
			p->failed = true;
			return;
		}
		p->v = v;
		p->cap = cap;
	}
	p->v[p->len++] = insn;
}

void mem_insns_free(struct mem_insns *p)
{
	mem_free(p->alloc, p->v);
	p->v = NULL;
	p->len = p->cap = 0;
}
