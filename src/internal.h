/*
 * internal.h - what each file of libbpfkit exports to the others.
 *
 * One section per source file.  Internal names carry their file's prefix
 * (mem_, error_, opcode_, asm_, fmt_, validate_, interp_); everything else in
 * a file is static.  Nothing here is part of the public API.
 */
#ifndef BPFKIT_INTERNAL_H
#define BPFKIT_INTERNAL_H

#define BPFKIT_BUILDING 1
#include "bpfkit.h"
#include "opcodes.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define BK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define BK_UNUSED __attribute__((unused))
#else
#define BK_PRINTF(f, a)
#define BK_UNUSED
#endif

/* ---- mem.c: the allocation hook, a bump arena, growable buffers ---- */

void *mem_alloc(const struct bpfkit_alloc *a, size_t size);
void *mem_realloc(const struct bpfkit_alloc *a, void *ptr, size_t size);
void mem_free(const struct bpfkit_alloc *a, void *ptr);
/* n * size with overflow check; NULL on overflow or failure. */
void *mem_alloc_array(const struct bpfkit_alloc *a, size_t n, size_t size);

/*
 * A bump arena: every allocation of one unit of work comes from it and is
 * released by one mem_arena_free().  Allocations are 16-byte aligned.
 */
struct mem_chunk;
struct mem_arena {
	const struct bpfkit_alloc *alloc;
	struct mem_chunk *chunks;
	char *cur, *end;
};
void mem_arena_init(struct mem_arena *ar, const struct bpfkit_alloc *a);
void *mem_arena_alloc(struct mem_arena *ar, size_t size);  /* NULL on failure */
char *mem_arena_strndup(struct mem_arena *ar, const char *s, size_t n);
void mem_arena_free(struct mem_arena *ar);

/*
 * A growable byte buffer with a sticky failure flag: appends after a failed
 * allocation do nothing, and the owner checks `failed` once at the end.
 */
struct mem_buf {
	const struct bpfkit_alloc *alloc;
	char *data;
	size_t len, cap;
	bool failed;
};
void mem_buf_init(struct mem_buf *b, const struct bpfkit_alloc *a);
void mem_buf_put(struct mem_buf *b, const void *data, size_t n);
void mem_buf_puts(struct mem_buf *b, const char *s);
void mem_buf_printf(struct mem_buf *b, const char *fmt, ...) BK_PRINTF(2, 3);
/* Hands the NUL-terminated data to the caller; NULL (and frees) if failed. */
char *mem_buf_take(struct mem_buf *b, size_t *len);
void mem_buf_free(struct mem_buf *b);

/* A growable instruction vector, same sticky-failure rule. */
struct mem_insns {
	const struct bpfkit_alloc *alloc;
	struct bpfkit_insn *v;
	size_t len, cap;
	bool failed;
};
void mem_insns_init(struct mem_insns *p, const struct bpfkit_alloc *a);
void mem_insns_push(struct mem_insns *p, struct bpfkit_insn insn);
void mem_insns_free(struct mem_insns *p);

/* ---- error.c: filling struct bpfkit_error ---- */

/* Resets every field, then formats the message.  err may be NULL. */
void error_set(struct bpfkit_error *err, const char *fmt, ...) BK_PRINTF(2, 3);
/* A message about source text at line:column spanning span columns. */
void error_at(struct bpfkit_error *err, int line, int column, int span, const char *fmt, ...)
	BK_PRINTF(5, 6);
/* A message about instruction index insn. */
void error_insn(struct bpfkit_error *err, long insn, const char *fmt, ...) BK_PRINTF(3, 4);
/* A message about byte offset off of the input. */
void error_offset(struct bpfkit_error *err, long long off, const char *fmt, ...) BK_PRINTF(3, 4);
void error_oom(struct bpfkit_error *err);

/* ---- opcode.c: queries on the tables of opcodes.h ---- */

struct opcode_info {
	uint16_t code;
	const char *mnem;     /* bpf_asm mnemonic */
	enum operand operand;
	unsigned flags;
	const char *id;       /* "LD_H_ABS" */
};
extern const struct opcode_info opcode_table[OP__COUNT];

/* The row for code, NULL when the kernel's classic checker does not know it. */
const struct opcode_info *opcode_lookup(uint16_t code);

struct anc_info {
	uint32_t off;         /* offset after SKF_AD_OFF */
	const char *name;     /* bpf_asm keyword, without '#' */
	const char *alias;    /* another accepted spelling, or NULL */
};
extern const struct anc_info anc_table[ANC__COUNT];
/* The ancillary load at absolute offset k (>= SKF_AD_OFF), NULL when none. */
const struct anc_info *opcode_anc(uint32_t k);
/* The ancillary load spelled name (len bytes), NULL when none. */
const struct anc_info *opcode_anc_by_name(const char *name, size_t len);

/* ---- disasm.c: program writers (readers are in progread.c) ---- */

/* True when the listing (tcpdump -d) of insns reads back to the same program. */
bool fmt_listing_exact(const struct bpfkit_insn *insns, size_t n);
/* libpcap's listing name for ancillary offset off (after SKF_AD_OFF), or NULL. */
const char *fmt_listing_anc(uint32_t off);

#endif
