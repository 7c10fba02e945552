/*
 * asm.c - the assembler for bpf_asm source (the syntax of the Linux kernel's
 * tools/bpf/bpf_asm), plus one bpfkit directive:
 *
 *     .insn CODE, JT, JF, K     one instruction, written as its four fields
 *
 * The disassembler prints `.insn` for codes that have no spelling.  When the
 * code is a known jump and its target lies inside the program, the target is
 * tracked like a label (so inserted trampolines never change what it jumps
 * to); any other `.insn` is copied verbatim.
 *
 * Stages: a hand-written lexer (asm_lex) feeds a line-oriented
 * recursive-descent parser that appends one source instruction per line to a
 * mem_insns vector, with a parallel side table (struct asm_meta) that holds
 * each jump's unresolved targets.  Then asm_resolve binds labels, asm_relax
 * gives far conditional jumps `ja` trampolines until the layout is stable,
 * and asm_output writes the final program.
 *
 * Invariants:
 * - Mnemonics and operand shapes come from OPCODE_TABLE (opcodes.h); the only
 *   hand table here lists bpf_asm's aliases and pseudo-ops (ldi, jne, ...).
 * - Jumps only go forward: referring to a label that is already defined is a
 *   backward jump, reported where the reference is parsed.
 * - Errors unwind with longjmp to the one setjmp in asm_run().  Everything
 *   allocated lives in struct asm_state (arena, vector) and is freed by
 *   bpfkit_asm(), so no error path leaks.  The first error in the source is
 *   the one reported (the lexer turns bad characters into TK_BAD tokens that
 *   are reported only when the parser reaches them).
 */
#include "internal.h"

#include <limits.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

/* ---- tokens and state ---- */

enum asm_tk { TK_EOF, TK_NL, TK_IDENT, TK_NUM, TK_PUNCT, TK_BAD };

struct asm_tok {
	enum asm_tk kind;
	const char *text;
	size_t len;
	int line, col;
	const char *why; /* TK_BAD: what is wrong */
};

struct asm_label {
	const char *name; /* points into the source */
	size_t len;
	size_t index;     /* the instruction it names; == count at definition */
	int line;
	struct asm_label *next;
};

/* A jump target, from parse to layout. */
enum { TG_NONE, TG_LABEL, TG_NEXT, TG_OFFSET, TG_INDEX, TG_RAW };
struct asm_target {
	uint8_t kind;
	const char *name; /* TG_LABEL */
	size_t len;
	int line, col, span;
	size_t index;     /* TG_INDEX: source instruction; TG_OFFSET: raw offset */
};

enum { J_NONE, J_COND, J_JA };
struct asm_meta {
	uint8_t jump;
	uint8_t tramp;           /* bit s: side s goes through a trampoline */
	int line, col, span;     /* the mnemonic */
	struct asm_target tg[2]; /* J_COND: true, false; J_JA: tg[0] */
};

struct asm_state {
	const struct bpfkit_alloc *alloc;
	struct bpfkit_error *err;
	jmp_buf jb;
	struct mem_arena arena;
	struct mem_insns insns;
	struct asm_meta *meta; /* parallel to insns */
	size_t meta_cap;
	struct asm_label **buckets;
	size_t nbuckets, nlabels;
	size_t *pos; /* final index of each source instruction, [n] = length */
	/* lexer */
	const char *p, *end, *line_start;
	int line;
	bool line_has_tok;
	struct asm_tok la[2];
	int nla;
	const char *prev_end; /* end of the last consumed token */
};

/* ---- errors ---- */

static _Noreturn void asm_fail(struct asm_state *st, int line, int col, int span,
			       const char *fmt, ...) BK_PRINTF(5, 6);
static void asm_fail(struct asm_state *st, int line, int col, int span, const char *fmt, ...)
{
	char msg[sizeof st->err->message];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	error_at(st->err, line, col, span, "%s", msg);
	longjmp(st->jb, 1);
}

static _Noreturn void asm_oom(struct asm_state *st)
{
	error_oom(st->err);
	longjmp(st->jb, 1);
}

static int asm_clamp(size_t n)
{
	return n > INT_MAX ? INT_MAX : (int)n;
}

/* Names in messages are cut to a readable length. */
static int asm_shown(size_t len)
{
	return len > 64 ? 64 : (int)len;
}

/* "'foo'", "end of line" or "end of input", for messages. */
static const char *asm_desc(const struct asm_tok *t, char *buf, size_t n)
{
	if (t->kind == TK_EOF)
		return "end of input";
	if (t->kind == TK_NL)
		return "end of line";
	snprintf(buf, n, "'%.*s'", t->len > 32 ? 32 : (int)t->len, t->text);
	return buf;
}

/*
 * Reports an error about token t: the lexer's own complaint when t is a bad
 * token, else before + the token's description + after.
 */
static _Noreturn void asm_fail_tok(struct asm_state *st, const struct asm_tok *t,
				   const char *before, const char *after)
{
	int span = t->len ? asm_clamp(t->len) : 1;
	if (t->kind == TK_BAD) {
		unsigned char c = (unsigned char)t->text[0];
		if (t->why)
			asm_fail(st, t->line, t->col, span, "%s", t->why);
		if (c >= 0x21 && c < 0x7f)
			asm_fail(st, t->line, t->col, span, "unexpected character '%c'", c);
		asm_fail(st, t->line, t->col, span, "unexpected character '\\x%02x'", c);
	}
	char buf[48];
	asm_fail(st, t->line, t->col, span, "%s%s%s", before, asm_desc(t, buf, sizeof buf), after);
}

/* ---- lexer ---- */

static bool asm_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static bool asm_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool asm_ident_char(char c)
{
	return asm_ident_start(c) || (c >= '0' && c <= '9');
}

static void asm_newline(struct asm_state *st, const char *after)
{
	if (st->line < INT_MAX)
		st->line++;
	st->line_start = after;
	st->line_has_tok = false;
}

/*
 * Comments: ';' to the end of the line; '/' '*' ... '*' '/' (may span lines:
 * it then also ends the statement, like a newline); '#' when it is the first
 * token of a line or is followed by a blank or the end of the line.  Any
 * other '#' is a token (the prefix of #k, #len, #proto ...).
 */
static void asm_lex(struct asm_state *st, struct asm_tok *t)
{
	for (;;) {
		while (st->p < st->end && asm_blank(*st->p))
			st->p++;
		const char *s = st->p;
		*t = (struct asm_tok){TK_EOF, s, 0, st->line,
				      asm_clamp((size_t)(s - st->line_start) + 1), NULL};
		if (s == st->end)
			return;
		char c = *s;
		if (c == '\n') {
			t->kind = TK_NL;
			t->len = 1;
			st->p++;
			asm_newline(st, st->p);
			return;
		}
		if (c == ';' || (c == '#' && (!st->line_has_tok || s + 1 == st->end ||
					      asm_blank(s[1]) || s[1] == '\n'))) {
			while (st->p < st->end && *st->p != '\n' && *st->p != '\0')
				st->p++;
			continue;
		}
		if (c == '/' && s + 1 < st->end && s[1] == '*') {
			const char *q = s + 2;
			bool nl = false;
			while (q < st->end && !(q[0] == '*' && q + 1 < st->end && q[1] == '/')) {
				if (*q == '\0') {
					st->p = q;
					break;
				}
				if (*q == '\n') {
					nl = true;
					asm_newline(st, q + 1);
				}
				q++;
			}
			if (q < st->end && *q == '\0')
				continue; /* the NUL is reported as a token */
			if (q >= st->end) {
				t->kind = TK_BAD;
				t->len = 2;
				t->why = "unterminated comment";
				st->p = st->end;
				return;
			}
			st->p = q + 2;
			if (nl) {
				t->kind = TK_NL;
				t->len = 2;
				return;
			}
			continue;
		}
		st->line_has_tok = true;
		if (asm_ident_start(c) || (c >= '0' && c <= '9')) {
			t->kind = asm_ident_start(c) ? TK_IDENT : TK_NUM;
			while (st->p < st->end && asm_ident_char(*st->p))
				st->p++;
			t->len = (size_t)(st->p - s);
			return;
		}
		t->len = 1;
		st->p++;
		if (c != '\0' && strchr(":,[]()+*&#%-.", c)) {
			t->kind = TK_PUNCT;
			return;
		}
		t->kind = TK_BAD;
		t->why = c == '\0' ? "NUL byte in the source" : NULL;
		return;
	}
}

static struct asm_tok *asm_peek(struct asm_state *st, int i)
{
	while (st->nla <= i)
		asm_lex(st, &st->la[st->nla++]);
	return &st->la[i];
}

static struct asm_tok asm_next(struct asm_state *st)
{
	struct asm_tok t = *asm_peek(st, 0);
	st->la[0] = st->la[1];
	st->nla--;
	st->prev_end = t.text + t.len;
	return t;
}

static bool asm_is_punct(const struct asm_tok *t, char c)
{
	return t->kind == TK_PUNCT && t->text[0] == c;
}

/* Case-insensitive comparison of an identifier with a lower-case word. */
static bool asm_is_word(const struct asm_tok *t, const char *word)
{
	size_t n = strlen(word);
	if (t->kind != TK_IDENT || t->len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = t->text[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != word[i])
			return false;
	}
	return true;
}

/* Lower-cases an identifier into buf; false when it does not fit. */
static bool asm_lower(const struct asm_tok *t, char *buf, size_t n)
{
	if (t->len >= n)
		return false;
	for (size_t i = 0; i < t->len; i++) {
		char c = t->text[i];
		buf[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	buf[t->len] = '\0';
	return true;
}

static void asm_expect(struct asm_state *st, char c)
{
	struct asm_tok t = asm_next(st);
	if (!asm_is_punct(&t, c)) {
		char before[24];
		snprintf(before, sizeof before, "expected '%c', found ", c);
		asm_fail_tok(st, &t, before, "");
	}
}

/*
 * number := ['-' | '+'] NUM       (the sign written right before the digits)
 * NUM: 0x hex, 0b binary, 0 octal, else decimal.  A negative number is
 * stored in two's complement and is allowed only when max is UINT32_MAX.
 */
static uint32_t asm_number(struct asm_state *st, uint32_t max)
{
	struct asm_tok first = asm_next(st), t = first;
	bool neg = false;
	if (asm_is_punct(&t, '-') || asm_is_punct(&t, '+')) {
		struct asm_tok *d = asm_peek(st, 0);
		if (d->kind != TK_NUM || d->text != t.text + 1)
			asm_fail_tok(st, d, t.text[0] == '-' ? "expected digits after '-', found "
				     : "expected digits after '+', found ", "");
		neg = t.text[0] == '-';
		t = asm_next(st);
	}
	if (t.kind != TK_NUM)
		asm_fail_tok(st, &t, "expected a number, found ", "");
	size_t span = (size_t)(t.text + t.len - first.text);
	const char *s = t.text, *e = t.text + t.len;
	unsigned base = 10;
	if (t.len > 1 && s[0] == '0') {
		if (s[1] == 'x' || s[1] == 'X')
			base = 16, s += 2;
		else if (s[1] == 'b' || s[1] == 'B')
			base = 2, s += 2;
		else
			base = 8, s += 1;
	}
	uint64_t v = 0;
	bool bad = s == e;
	for (; s < e && !bad; s++) {
		unsigned d;
		char c = *s;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			d = 99;
		if (d >= base)
			bad = true;
		else if (v <= UINT32_MAX)
			v = v * base + d;
	}
	if (bad)
		asm_fail(st, first.line, first.col, asm_clamp(span), "bad number '%.*s'",
			 asm_shown(span), first.text);
	if (neg) {
		if (max != UINT32_MAX || v > 0x80000000u)
			asm_fail(st, first.line, first.col, asm_clamp(span),
				 "number '%.*s' out of range", asm_shown(span), first.text);
		return (uint32_t)(0u - (uint32_t)v);
	}
	if (v > max)
		asm_fail(st, first.line, first.col, asm_clamp(span),
			 "number '%.*s' out of range (largest is %lu)", asm_shown(span),
			 first.text, (unsigned long)max);
	return (uint32_t)v;
}

/* ---- labels: a chained hash table in the arena ---- */

static size_t asm_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
	return (size_t)h;
}

static struct asm_label *asm_label_find(struct asm_state *st, const char *name, size_t len)
{
	if (!st->nbuckets)
		return NULL;
	struct asm_label *l = st->buckets[asm_hash(name, len) & (st->nbuckets - 1)];
	for (; l; l = l->next)
		if (l->len == len && memcmp(l->name, name, len) == 0)
			return l;
	return NULL;
}

static void asm_label_define(struct asm_state *st, const struct asm_tok *t)
{
	struct asm_label *old = asm_label_find(st, t->text, t->len);
	if (old)
		asm_fail(st, t->line, t->col, asm_clamp(t->len),
			 "duplicate label '%.*s' (first defined on line %d)", asm_shown(t->len),
			 t->text, old->line);
	if (st->nlabels >= st->nbuckets) {
		size_t nb = st->nbuckets ? st->nbuckets * 2 : 64;
		if (nb > SIZE_MAX / sizeof *st->buckets)
			asm_oom(st);
		struct asm_label **b = mem_arena_alloc(&st->arena, nb * sizeof *b);
		if (!b)
			asm_oom(st);
		memset(b, 0, nb * sizeof *b);
		for (size_t i = 0; i < st->nbuckets; i++) {
			struct asm_label *l = st->buckets[i], *next;
			for (; l; l = next) {
				next = l->next;
				size_t h = asm_hash(l->name, l->len) & (nb - 1);
				l->next = b[h];
				b[h] = l;
			}
		}
		st->buckets = b;
		st->nbuckets = nb;
	}
	struct asm_label *l = mem_arena_alloc(&st->arena, sizeof *l);
	if (!l)
		asm_oom(st);
	*l = (struct asm_label){t->text, t->len, st->insns.len, t->line, NULL};
	size_t h = asm_hash(t->text, t->len) & (st->nbuckets - 1);
	l->next = st->buckets[h];
	st->buckets[h] = l;
	st->nlabels++;
}

/* ---- mnemonics: opcode_table plus bpf_asm's aliases ---- */

enum { AL_SWAP = 1, AL_BARE = 2 };

/*
 * Spellings that are not opcode_table mnemonics.  `only` restricts the
 * alias to one operand shape (-1: any of canon's).  AL_SWAP: a pseudo-op
 * that is canon with its true and false targets exchanged.  AL_BARE: takes
 * an immediate without '#'.
 */
static const struct asm_alias {
	const char *name, *canon;
	int only;
	unsigned flags;
} asm_aliases[] = {
	{"ldi", "ld", OPND_IMM, AL_BARE},
	{"ldxi", "ldx", OPND_IMM, AL_BARE},
	{"ldx", "ldxb", OPND_MSH, 0}, /* ldx 4*([k]&0xf) */
	{"jmp", "ja", OPND_JA, 0},
	{"jneq", "jeq", -1, AL_SWAP},
	{"jne", "jeq", -1, AL_SWAP},
	{"jlt", "jge", -1, AL_SWAP},
	{"jle", "jgt", -1, AL_SWAP},
};
#define ASM_NALIASES (sizeof asm_aliases / sizeof asm_aliases[0])

static const struct opcode_info *asm_row(const char *mnem, enum operand opnd)
{
	for (size_t i = 0; i < OP__COUNT; i++)
		if (opcode_table[i].operand == opnd && strcmp(opcode_table[i].mnem, mnem) == 0)
			return &opcode_table[i];
	return NULL;
}

static const struct opcode_info *asm_row_any(const char *mnem)
{
	for (size_t i = 0; i < OP__COUNT; i++)
		if (strcmp(opcode_table[i].mnem, mnem) == 0)
			return &opcode_table[i];
	return NULL;
}

/* What a written mnemonic means before its operand is known. */
struct asm_family {
	const char *name;  /* as written, lower case */
	const char *canon; /* opcode_table mnemonic */
	unsigned flags;
	int only;
	bool is_ja, is_cond;
};

static bool asm_family(const char *name, struct asm_family *f)
{
	*f = (struct asm_family){name, NULL, 0, -1, false, false};
	const struct opcode_info *row = asm_row_any(name);
	if (row) {
		f->canon = row->mnem;
	} else {
		for (size_t i = 0; i < ASM_NALIASES && !f->canon; i++)
			if (strcmp(asm_aliases[i].name, name) == 0) {
				f->canon = asm_aliases[i].canon;
				f->flags = asm_aliases[i].flags;
				f->only = asm_aliases[i].only;
			}
		if (!f->canon)
			return false;
	}
	for (size_t i = 0; i < OP__COUNT; i++)
		if (strcmp(opcode_table[i].mnem, f->canon) == 0) {
			f->is_ja |= opcode_table[i].operand == OPND_JA;
			f->is_cond |= (opcode_table[i].flags & F_COND) != 0;
		}
	return true;
}

/* The row for the family with operand shape opnd; also tries the aliases
 * that share the written name (ldx -> ldxb for the MSH form). */
static const struct opcode_info *asm_family_row(const struct asm_family *f, enum operand opnd)
{
	if (f->only >= 0 && (int)opnd != f->only)
		return NULL;
	const struct opcode_info *row = asm_row(f->canon, opnd);
	for (size_t i = 0; i < ASM_NALIASES && !row; i++)
		if (strcmp(asm_aliases[i].name, f->name) == 0 && asm_aliases[i].only == (int)opnd)
			row = asm_row(asm_aliases[i].canon, opnd);
	return row;
}

/* ---- operands ---- */

enum asm_shape { SH_NONE, SH_IMM, SH_BARE, SH_LEN, SH_ANC, SH_ABS, SH_IND, SH_MEM, SH_MSH,
		 SH_X, SH_A };

struct asm_opnd {
	enum asm_shape shape;
	uint32_t k;
	const char *start;
	int line, col;
	int span;
};

static bool asm_anc(const struct asm_tok *t, uint32_t *k)
{
	char buf[16];
	if (!asm_lower(t, buf, sizeof buf))
		return false;
	const struct anc_info *a = opcode_anc_by_name(buf, t->len);
	if (!a)
		return false;
	*k = BPFKIT_SKF_AD_OFF + a->off;
	return true;
}

/* 'x' or '%x' (also 'a' / '%a' when allow_a); consumes it when present. */
static enum asm_shape asm_register(struct asm_state *st, bool allow_a)
{
	struct asm_tok *t = asm_peek(st, 0);
	int i = asm_is_punct(t, '%') ? 1 : 0;
	struct asm_tok *r = asm_peek(st, i);
	enum asm_shape sh = asm_is_word(r, "x") ? SH_X
			    : allow_a && asm_is_word(r, "a") ? SH_A : SH_NONE;
	if (sh == SH_NONE) {
		if (i)
			asm_fail_tok(st, r, allow_a ? "expected 'x' or 'a' after '%', found "
						    : "expected 'x' after '%', found ", "");
		return SH_NONE;
	}
	for (int j = 0; j <= i; j++)
		asm_next(st);
	return sh;
}

/*
 * operand := '#' number | '#' ('len' | EXTENSION) | 'len' | EXTENSION
 *          | '[' number ']' | '[' ('x' | '%x') '+' number ']'
 *          | 'M' '[' number ']' | number '*' '(' '[' number ']' '&' number ')'
 *          | 'x' | '%x' | 'a' | '%a' | number | (nothing)
 */
static void asm_operand(struct asm_state *st, struct asm_opnd *o)
{
	struct asm_tok *t = asm_peek(st, 0);
	*o = (struct asm_opnd){SH_NONE, 0, t->text, t->line, t->col, 1};
	if (t->kind == TK_NL || t->kind == TK_EOF)
		return;
	if (asm_is_punct(t, '#')) {
		asm_next(st);
		struct asm_tok *u = asm_peek(st, 0);
		if (u->kind == TK_IDENT) {
			struct asm_tok name = asm_next(st);
			if (asm_is_word(&name, "len"))
				o->shape = SH_LEN;
			else if (asm_anc(&name, &o->k))
				o->shape = SH_ANC;
			else
				asm_fail(st, name.line, name.col, asm_clamp(name.len),
					 "unknown extension '#%.*s'", asm_shown(name.len),
					 name.text);
		} else {
			o->k = asm_number(st, UINT32_MAX);
			o->shape = SH_IMM;
		}
	} else if (asm_is_punct(t, '%')) {
		o->shape = asm_register(st, true);
	} else if (asm_is_punct(t, '[')) {
		asm_next(st);
		if (asm_register(st, false) == SH_X) {
			asm_expect(st, '+');
			o->shape = SH_IND;
		} else {
			o->shape = SH_ABS;
		}
		o->k = asm_number(st, UINT32_MAX);
		asm_expect(st, ']');
	} else if (t->kind == TK_IDENT) {
		if (asm_is_word(t, "m") && asm_is_punct(asm_peek(st, 1), '[')) {
			asm_next(st);
			asm_next(st);
			o->k = asm_number(st, UINT32_MAX);
			asm_expect(st, ']');
			o->shape = SH_MEM;
		} else if (asm_is_word(t, "x") || asm_is_word(t, "a")) {
			o->shape = asm_register(st, true);
		} else if (asm_is_word(t, "len")) {
			asm_next(st);
			o->shape = SH_LEN;
		} else if (asm_anc(t, &o->k)) {
			asm_next(st);
			o->shape = SH_ANC;
		} else {
			asm_fail(st, t->line, t->col, asm_clamp(t->len), "unknown operand '%.*s'",
				 asm_shown(t->len), t->text);
		}
	} else if (t->kind == TK_NUM || asm_is_punct(t, '-') || asm_is_punct(t, '+')) {
		uint32_t scale = asm_number(st, UINT32_MAX);
		if (!asm_is_punct(asm_peek(st, 0), '*')) {
			o->k = scale;
			o->shape = SH_BARE;
		} else {
			asm_next(st);
			asm_expect(st, '(');
			asm_expect(st, '[');
			o->k = asm_number(st, UINT32_MAX);
			asm_expect(st, ']');
			asm_expect(st, '&');
			uint32_t mask = asm_number(st, UINT32_MAX);
			asm_expect(st, ')');
			o->shape = SH_MSH;
			if (scale != 4 || mask != 0xf)
				asm_fail(st, o->line, o->col,
					 asm_clamp((size_t)(st->prev_end - o->start)),
					 "only 4*([k]&0xf) is supported");
		}
	} else {
		asm_fail_tok(st, t, "bad operand ", "");
	}
	o->span = asm_clamp((size_t)(st->prev_end - o->start));
}

/* ---- instructions ---- */

/* Appends a source instruction and its (zeroed) side-table entry. */
static struct asm_meta *asm_emit(struct asm_state *st, struct bpfkit_insn in,
				 const struct asm_tok *at)
{
	size_t i = st->insns.len;
	if (i == st->meta_cap) {
		size_t cap = st->meta_cap ? st->meta_cap * 2 : 64;
		if (cap > SIZE_MAX / sizeof *st->meta)
			asm_oom(st);
		struct asm_meta *m = mem_arena_alloc(&st->arena, cap * sizeof *m);
		if (!m)
			asm_oom(st);
		if (i)
			memcpy(m, st->meta, i * sizeof *m);
		st->meta = m;
		st->meta_cap = cap;
	}
	mem_insns_push(&st->insns, in);
	if (st->insns.failed)
		asm_oom(st);
	struct asm_meta *m = &st->meta[i];
	memset(m, 0, sizeof *m);
	m->line = at->line;
	m->col = at->col;
	m->span = asm_clamp(at->len);
	return m;
}

/* label := IDENT, which must not be defined yet (jumps go forward). */
static void asm_target_ref(struct asm_state *st, struct asm_target *tg)
{
	struct asm_tok t = asm_next(st);
	if (t.kind != TK_IDENT)
		asm_fail_tok(st, &t, "expected a label, found ", "");
	if (asm_label_find(st, t.text, t.len))
		asm_fail(st, t.line, t.col, asm_clamp(t.len), "backward jump to '%.*s'",
			 asm_shown(t.len), t.text);
	*tg = (struct asm_target){TG_LABEL, t.text, t.len, t.line, t.col, asm_clamp(t.len), 0};
}

/*
 * instr := MNEMONIC operand
 *        | ('ja' | 'jmp') label
 *        | JUMP ('#' number | 'x' | '%x') ',' label [',' label]
 */
static void asm_instr(struct asm_state *st)
{
	struct asm_tok mn = asm_next(st);
	char name[8];
	struct asm_family fam;
	if (!asm_lower(&mn, name, sizeof name) || !asm_family(name, &fam))
		asm_fail(st, mn.line, mn.col, asm_clamp(mn.len), "unknown mnemonic '%.*s'",
			 asm_shown(mn.len), mn.text);
	struct bpfkit_insn in = {0, 0, 0, 0};
	if (fam.is_ja) {
		in.code = asm_family_row(&fam, OPND_JA)->code;
		struct asm_meta *m = asm_emit(st, in, &mn);
		m->jump = J_JA;
		asm_target_ref(st, &m->tg[0]);
		return;
	}
	struct asm_opnd o;
	asm_operand(st, &o);
	const struct opcode_info *row = NULL;
	switch (o.shape) {
	case SH_NONE: row = asm_family_row(&fam, OPND_NONE); break;
	case SH_IMM:
		row = asm_family_row(&fam, OPND_IMM);
		if (!row)
			row = asm_family_row(&fam, OPND_K);
		break;
	case SH_BARE: row = fam.flags & AL_BARE ? asm_family_row(&fam, OPND_IMM) : NULL; break;
	case SH_LEN: row = asm_family_row(&fam, OPND_LEN); break;
	case SH_ANC:
	case SH_ABS: row = asm_family_row(&fam, OPND_ABS); break;
	case SH_IND: row = asm_family_row(&fam, OPND_IND); break;
	case SH_MEM: row = asm_family_row(&fam, OPND_MEM); break;
	case SH_MSH: row = asm_family_row(&fam, OPND_MSH); break;
	case SH_X: row = asm_family_row(&fam, OPND_X); break;
	case SH_A: row = asm_family_row(&fam, OPND_A); break;
	}
	if (!row) {
		if (o.shape == SH_NONE)
			asm_fail(st, o.line, o.col, 1, "'%s' needs an operand", name);
		if (o.shape == SH_X && strcmp(fam.canon, "ret") == 0)
			asm_fail(st, o.line, o.col, o.span, "'ret x' is not a classic BPF "
				 "instruction (write .insn 0x0e, 0, 0, 0)");
		asm_fail(st, o.line, o.col, o.span, "bad operand for '%s'", name);
	}
	in.code = row->code;
	in.k = o.k;
	struct asm_meta *m = asm_emit(st, in, &mn);
	if (!(row->flags & F_COND))
		return;
	m->jump = J_COND;
	asm_expect(st, ',');
	asm_target_ref(st, &m->tg[0]);
	if (asm_is_punct(asm_peek(st, 0), ',')) {
		asm_next(st);
		asm_target_ref(st, &m->tg[1]);
	} else {
		m->tg[1] = (struct asm_target){TG_NEXT, NULL, 0, mn.line, mn.col, m->span, 0};
	}
	if (fam.flags & AL_SWAP) {
		struct asm_target tmp = m->tg[0];
		m->tg[0] = m->tg[1];
		m->tg[1] = tmp;
	}
}

/* directive := '.' 'insn' number ',' number ',' number ',' number */
static void asm_directive(struct asm_state *st)
{
	struct asm_tok dot = asm_next(st);
	struct asm_tok *d = asm_peek(st, 0);
	if (d->kind != TK_IDENT || d->text != dot.text + 1)
		asm_fail_tok(st, d, "expected a directive name after '.', found ", "");
	if (!asm_is_word(d, "insn"))
		asm_fail(st, dot.line, dot.col, asm_clamp(d->len + 1), "unknown directive '.%.*s'",
			 asm_shown(d->len), d->text);
	asm_next(st);
	struct bpfkit_insn in;
	in.code = (uint16_t)asm_number(st, 0xffff);
	asm_expect(st, ',');
	in.jt = (uint8_t)asm_number(st, 0xff);
	asm_expect(st, ',');
	in.jf = (uint8_t)asm_number(st, 0xff);
	asm_expect(st, ',');
	in.k = asm_number(st, UINT32_MAX);
	struct asm_tok at = dot;
	at.len = (size_t)(st->prev_end - dot.text);
	struct asm_meta *m = asm_emit(st, in, &at);
	const struct opcode_info *row = opcode_lookup(in.code);
	if (!row || BPFKIT_CLASS(in.code) != BPFKIT_JMP)
		return;
	struct asm_target off = {TG_OFFSET, NULL, 0, at.line, at.col, m->span, 0};
	if (row->flags & F_JUMP) {
		m->jump = J_JA;
		m->tg[0] = off;
		m->tg[0].index = in.k;
	} else if (row->flags & F_COND) {
		m->jump = J_COND;
		m->tg[0] = m->tg[1] = off;
		m->tg[0].index = in.jt;
		m->tg[1].index = in.jf;
	}
}

/*
 * program := { line }
 * line := { IDENT ':' } [ instr | directive ] ( NL | EOF )
 */
static void asm_parse(struct asm_state *st)
{
	for (;;) {
		struct asm_tok *t = asm_peek(st, 0);
		while (t->kind == TK_IDENT && asm_is_punct(asm_peek(st, 1), ':')) {
			struct asm_tok name = asm_next(st);
			asm_next(st);
			asm_label_define(st, &name);
			t = asm_peek(st, 0);
		}
		if (asm_is_punct(t, '.'))
			asm_directive(st);
		else if (t->kind == TK_IDENT)
			asm_instr(st);
		else if (t->kind != TK_NL && t->kind != TK_EOF)
			asm_fail_tok(st, t, "expected an instruction or a label, found ", "");
		struct asm_tok e = asm_next(st);
		if (e.kind == TK_EOF)
			return;
		if (e.kind != TK_NL)
			asm_fail_tok(st, &e, "unexpected ", " after the instruction");
	}
}

/* ---- labels to instruction indices, far jumps, output ---- */

static void asm_resolve(struct asm_state *st)
{
	size_t n = st->insns.len;
	if (n == 0) {
		error_set(st->err, "no instructions");
		longjmp(st->jb, 1);
	}
	for (size_t i = 0; i < n; i++) {
		struct asm_meta *m = &st->meta[i];
		for (int s = 0; s < 2 && m->jump != J_NONE; s++) {
			struct asm_target *tg = &m->tg[s];
			if (tg->kind == TG_LABEL) {
				struct asm_label *l = asm_label_find(st, tg->name, tg->len);
				if (!l)
					asm_fail(st, tg->line, tg->col, tg->span,
						 "unknown label '%.*s'", asm_shown(tg->len),
						 tg->name);
				if (l->index <= i)
					asm_fail(st, tg->line, tg->col, tg->span,
						 "backward jump to '%.*s'", asm_shown(tg->len),
						 tg->name);
				if (l->index >= n)
					asm_fail(st, tg->line, tg->col, tg->span,
						 "label '%.*s' is past the last instruction",
						 asm_shown(tg->len), tg->name);
				tg->kind = TG_INDEX;
				tg->index = l->index;
			} else if (tg->kind == TG_NEXT) {
				if (i + 1 >= n)
					asm_fail(st, tg->line, tg->col, tg->span, "the jump "
						 "falls through past the last instruction");
				tg->kind = TG_INDEX;
				tg->index = i + 1;
			} else if (tg->kind == TG_OFFSET) {
				bool inside = tg->index < n - i - 1;
				tg->kind = inside ? TG_INDEX : TG_RAW;
				tg->index = inside ? i + 1 + tg->index : 0;
			}
			if (m->jump == J_JA)
				break;
		}
	}
}

/*
 * Far jumps (relaxation): a conditional jump side whose target is more than
 * 255 instructions ahead jumps instead to a `ja` trampoline placed right
 * after the jump (the true side's first, then the false side's).  Inserting
 * trampolines only moves targets further away, and a jump's offsets depend
 * only on the trampolines of the instructions between it and its targets,
 * which all come later.  So one pass from the last instruction back decides
 * every jump exactly once, with all the insertions it depends on known: the
 * fixed point that relaxing until stable would reach, in linear time.
 * sfx[i] counts the trampolines of instructions i..n-1.
 */
static void asm_relax(struct asm_state *st)
{
	size_t n = st->insns.len;
	if (n + 1 > SIZE_MAX / sizeof *st->pos)
		asm_oom(st);
	size_t *sfx = mem_arena_alloc(&st->arena, (n + 1) * sizeof *sfx);
	st->pos = mem_arena_alloc(&st->arena, (n + 1) * sizeof *st->pos);
	if (!sfx || !st->pos)
		asm_oom(st);
	sfx[n] = 0;
	for (size_t i = n; i-- > 0;) {
		struct asm_meta *m = &st->meta[i];
		unsigned own = 0;
		/* A second round: the false side's trampoline pushes the true side. */
		for (int round = 0; round < 2 && m->jump == J_COND; round++)
			for (int s = 0; s < 2; s++) {
				const struct asm_target *tg = &m->tg[s];
				if (tg->kind != TG_INDEX || (m->tramp & (1u << s)))
					continue;
				size_t t = tg->index;
				if (t - i - 1 + (sfx[i + 1] - sfx[t]) + own > 255) {
					m->tramp |= (uint8_t)(1u << s);
					own++;
				}
			}
		sfx[i] = sfx[i + 1] + own;
	}
	for (size_t i = 0; i <= n; i++)
		st->pos[i] = i + (sfx[0] - sfx[i]);
	if (st->pos[n] > UINT32_MAX)
		asm_fail(st, 1, 1, 1, "program too large");
}

static void asm_output(struct asm_state *st, struct bpfkit_prog *out)
{
	size_t n = st->insns.len, total = st->pos[n];
	const size_t *pos = st->pos;
	struct bpfkit_insn *v = mem_alloc_array(st->alloc, total, sizeof *v);
	if (!v)
		asm_oom(st);
	for (size_t i = 0; i < n; i++) {
		struct bpfkit_insn in = st->insns.v[i];
		const struct asm_meta *m = &st->meta[i];
		size_t p = pos[i];
		if (m->jump == J_JA && m->tg[0].kind == TG_INDEX)
			in.k = (uint32_t)(pos[m->tg[0].index] - p - 1);
		if (m->jump == J_COND) {
			size_t slot = p + 1;
			for (int s = 0; s < 2; s++) {
				const struct asm_target *tg = &m->tg[s];
				if (tg->kind != TG_INDEX)
					continue;
				size_t off;
				if (m->tramp & (1u << s)) {
					off = slot - p - 1;
					uint32_t k = (uint32_t)(pos[tg->index] - slot - 1);
					v[slot] = (struct bpfkit_insn){BPFKIT_JMP | BPFKIT_JA,
								       0, 0, k};
					slot++;
				} else {
					off = pos[tg->index] - p - 1;
				}
				if (s == 0)
					in.jt = (uint8_t)off;
				else
					in.jf = (uint8_t)off;
			}
		}
		v[p] = in;
	}
	out->insns = v;
	out->len = total;
}

static int asm_run(struct asm_state *st, struct bpfkit_prog *out)
{
	if (setjmp(st->jb))
		return -1;
	asm_parse(st);
	asm_resolve(st);
	asm_relax(st);
	asm_output(st, out);
	return 0;
}

BPFKIT_API int bpfkit_asm(const char *src, size_t len, const struct bpfkit_alloc *alloc,
			  struct bpfkit_prog *out, struct bpfkit_error *err)
{
	if (out) {
		out->insns = NULL;
		out->len = 0;
	}
	if (!out || (!src && len)) {
		error_set(err, "bpfkit_asm: no output or no source");
		return -1;
	}
	if (!src)
		src = "";
	struct asm_state st;
	memset(&st, 0, sizeof st);
	st.alloc = alloc;
	st.err = err;
	mem_arena_init(&st.arena, alloc);
	mem_insns_init(&st.insns, alloc);
	st.p = st.line_start = st.prev_end = src;
	st.end = src + len;
	st.line = 1;
	int rc = asm_run(&st, out);
	mem_arena_free(&st.arena);
	mem_insns_free(&st.insns);
	return rc;
}
