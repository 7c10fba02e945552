/*
 * progread.c - reads a program in any format bpfkit writes (see disasm.c
 * for the writers and docs/formats.md for the formats): tcpdump -ddd
 * lines, the xt_bpf one-line string, a C array (tcpdump -dd, optionally
 * wrapped in its declaration), tcpdump -d listings, JSON, raw bytes, and
 * bpf_asm source (through bpfkit_asm).  BPFKIT_FMT_AUTO picks the format
 * from the content.
 *
 * Invariants:
 * - Readers are tolerant of surrounding whitespace, CR before LF, a final
 *   newline and a trailing comma, and strict about everything else: every
 *   error names a line and column (text) or a byte offset (raw).
 * - Instruction fields are range-checked (code <= 0xffff, jt/jf <= 255,
 *   k <= 0xffffffff); counts must match the instructions that follow.
 * - Nothing is allocated from the input's claims (a count only checks), so
 *   a huge count cannot cause a huge allocation.  On failure *out is
 *   {NULL, 0} and nothing is left allocated.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

/* ---- text cursor and errors ---- */

struct text {
	const char *s;
	size_t len, pos;
	struct bpfkit_error *err;
};

static void text_error(struct text *t, size_t at, size_t span, const char *fmt, ...)
	BK_PRINTF(4, 5);

static void text_error(struct text *t, size_t at, size_t span, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (at > t->len)
		at = t->len;
	int line = 1;
	size_t bol = 0;
	for (size_t i = 0; i < at; i++)
		if (t->s[i] == '\n') {
			line++;
			bol = i + 1;
		}
	error_at(t->err, line, (int)(at - bol + 1), span ? (int)span : 1, "%s", msg);
	if (t->err)
		t->err->offset = (long long)at;
}

static int peek(const struct text *t)
{
	return t->pos < t->len ? (unsigned char)t->s[t->pos] : -1;
}

/* A printable description of the character at pos, for messages. */
static const char *describe(const struct text *t, size_t pos, char buf[16])
{
	if (pos >= t->len)
		return "end of input";
	unsigned char c = (unsigned char)t->s[pos];
	if (c == '\n' || c == '\r')
		return "end of line";
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, 16, "'%c'", c);
	else
		snprintf(buf, 16, "byte 0x%02x", c);
	return buf;
}

static void unexpected(struct text *t, const char *wanted)
{
	char buf[16];
	text_error(t, t->pos, 1, "expected %s, found %s", wanted, describe(t, t->pos, buf));
}

static bool is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_value(int c)
{
	return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10;
}

static bool is_ident(int c, bool first)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (!first && is_digit(c));
}

/* Spaces and tabs only: the separators inside one line. */
static void skip_blank(struct text *t)
{
	while (t->pos < t->len && (t->s[t->pos] == ' ' || t->s[t->pos] == '\t'))
		t->pos++;
}

/* All whitespace, newlines included. */
static void skip_space(struct text *t)
{
	while (t->pos < t->len) {
		char c = t->s[t->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v')
			break;
		t->pos++;
	}
}

/* At a line end (after blanks): LF, CR LF, a final CR, or the end. */
static bool at_eol(struct text *t)
{
	skip_blank(t);
	int c = peek(t);
	if (c == -1 || c == '\n')
		return true;
	return c == '\r' && (t->pos + 1 == t->len || t->s[t->pos + 1] == '\n');
}

static bool eat_eol(struct text *t)
{
	if (!at_eol(t)) {
		unexpected(t, "end of line");
		return false;
	}
	if (peek(t) == '\r')
		t->pos++;
	if (peek(t) == '\n')
		t->pos++;
	return true;
}

static bool eat(struct text *t, char c)
{
	if (peek(t) == c) {
		t->pos++;
		return true;
	}
	char want[8];
	snprintf(want, sizeof want, "'%c'", c);
	unexpected(t, want);
	return false;
}

enum num_style {
	NUM_DEC,  /* decimal digits only */
	NUM_HEX,  /* decimal, or 0x hex */
	NUM_C     /* C literal: decimal, 0x hex, 0 octal, with u/l suffixes */
};

/*
 * Reads an unsigned number at the cursor; fails (with an error naming
 * field) when there is none or it exceeds max.
 */
static bool read_uint(struct text *t, enum num_style style, uint64_t max, const char *field,
		      uint64_t *out)
{
	size_t start = t->pos;
	unsigned base = 10;
	uint64_t v = 0;
	bool big = false, any = false;
	if (!is_digit(peek(t))) {
		char want[48];
		snprintf(want, sizeof want, "a number (%s)", field);
		unexpected(t, want);
		return false;
	}
	if (style != NUM_DEC && peek(t) == '0' && t->pos + 1 < t->len &&
	    (t->s[t->pos + 1] == 'x' || t->s[t->pos + 1] == 'X')) {
		base = 16;
		t->pos += 2;
	} else if (style == NUM_C && peek(t) == '0') {
		base = 8;
	}
	while (t->pos < t->len) {
		int c = (unsigned char)t->s[t->pos];
		unsigned d;
		if (base == 16 && is_hex(c))
			d = (unsigned)hex_value(c);
		else if (is_digit(c) && (base != 8 || c < '8'))
			d = (unsigned)(c - '0');
		else
			break;
		if (v > (UINT64_MAX - d) / base)
			big = true;
		else
			v = v * base + d;
		any = true;
		t->pos++;
	}
	if (!any) {
		unexpected(t, "hex digits");
		return false;
	}
	if (style == NUM_C)
		while (t->pos < t->len && strchr("uUlL", t->s[t->pos]))
			t->pos++;
	if (is_ident(peek(t), false) || peek(t) == '.') {
		unexpected(t, "a separator after the number");
		return false;
	}
	if (big || v > max) {
		text_error(t, start, t->pos - start, "%s %.*s out of range (0..%llu)", field,
			   (int)(t->pos - start > 24 ? 24 : t->pos - start), t->s + start,
			   (unsigned long long)max);
		return false;
	}
	*out = v;
	return true;
}

static const char *const field_names[4] = {"code", "jt", "jf", "k"};
static const uint64_t field_max[4] = {0xffff, 0xff, 0xff, 0xffffffffu};

/* Appends; false once an allocation failed (the caller stops, and the
 * entry point reports out of memory). */
static bool push(struct mem_insns *p, struct bpfkit_insn in)
{
	mem_insns_push(p, in);
	return !p->failed;
}

static struct bpfkit_insn make_insn(const uint64_t f[4])
{
	struct bpfkit_insn in = {(uint16_t)f[0], (uint8_t)f[1], (uint8_t)f[2], (uint32_t)f[3]};
	return in;
}

/* "code jt jf k": four decimal numbers separated by blanks. */
static bool read_quad(struct text *t, struct bpfkit_insn *in)
{
	uint64_t f[4];
	for (int i = 0; i < 4; i++) {
		if (i)
			skip_blank(t);
		if (!read_uint(t, NUM_DEC, field_max[i], field_names[i], &f[i]))
			return false;
	}
	*in = make_insn(f);
	return true;
}

/* ---- ddd: the count, then one "code jt jf k" line per instruction ---- */

static bool read_ddd(struct text *t, struct mem_insns *p)
{
	uint64_t count = 0;
	size_t count_pos = 0, count_end = 0;
	bool have_count = false;
	while (t->pos < t->len) {
		if (at_eol(t)) {
			if (!eat_eol(t))
				return false;
			continue;
		}
		if (!have_count) {
			count_pos = t->pos;
			if (!read_uint(t, NUM_DEC, UINT32_MAX, "count", &count))
				return false;
			count_end = t->pos;
			have_count = true;
		} else {
			struct bpfkit_insn in;
			if (p->len == count) {
				text_error(t, t->pos, 1, "more instructions than the count %llu",
					   (unsigned long long)count);
				return false;
			}
			if (!read_quad(t, &in))
				return false;
			if (!push(p, in))
				return true;
		}
		if (!eat_eol(t))
			return false;
	}
	if (!have_count) {
		text_error(t, t->pos, 1, "expected the instruction count");
		return false;
	}
	if (p->len != count) {
		text_error(t, count_pos, count_end - count_pos,
			   "the count says %llu instructions but %zu follow",
			   (unsigned long long)count, p->len);
		return false;
	}
	return true;
}

/* ---- iptables: "N,code jt jf k,code jt jf k,..." on one line ---- */

static bool read_iptables(struct text *t, struct mem_insns *p)
{
	uint64_t count;
	skip_space(t);
	size_t count_pos = t->pos;
	if (!read_uint(t, NUM_DEC, UINT32_MAX, "count", &count))
		return false;
	size_t count_end = t->pos;
	skip_blank(t);
	if (!eat(t, ','))
		return false;
	for (;;) {
		skip_blank(t);
		size_t here = t->pos;
		skip_space(t);
		if (t->pos == t->len)
			break;
		t->pos = here;
		struct bpfkit_insn in;
		if (p->len == count) {
			text_error(t, t->pos, 1, "more instructions than the count %llu",
				   (unsigned long long)count);
			return false;
		}
		if (!read_quad(t, &in))
			return false;
		if (!push(p, in))
			return true;
		skip_blank(t);
		if (peek(t) == ',') {
			t->pos++;
			continue;
		}
		here = t->pos;
		skip_space(t);
		if (t->pos == t->len)
			break;
		t->pos = here;
		unexpected(t, "',' or the end");
		return false;
	}
	if (p->len != count) {
		text_error(t, count_pos, count_end - count_pos,
			   "the count says %llu instructions but %zu follow",
			   (unsigned long long)count, p->len);
		return false;
	}
	return true;
}

/* ---- C: "{ 0x28, 0, 0, 0x0000000c }," lines, optionally declared ---- */

/* Whitespace and C comments. */
static bool skip_c_space(struct text *t)
{
	for (;;) {
		skip_space(t);
		if (t->pos + 1 < t->len && t->s[t->pos] == '/' && t->s[t->pos + 1] == '/') {
			while (t->pos < t->len && t->s[t->pos] != '\n')
				t->pos++;
		} else if (t->pos + 1 < t->len && t->s[t->pos] == '/' && t->s[t->pos + 1] == '*') {
			size_t start = t->pos;
			t->pos += 2;
			while (t->pos + 1 < t->len &&
			       !(t->s[t->pos] == '*' && t->s[t->pos + 1] == '/'))
				t->pos++;
			if (t->pos + 1 >= t->len) {
				text_error(t, start, 2, "unterminated comment");
				return false;
			}
			t->pos += 2;
		} else {
			return true;
		}
	}
}

static bool c_eat(struct text *t, char c)
{
	return skip_c_space(t) && eat(t, c);
}

/*
 * decl  = ident { ident | '*' } '[' [ number ] ']' '=' '{'
 * entry = '{' number ',' number ',' number ',' number [ ',' ] '}'
 * file  = [ decl ] { entry ',' } [ entry ] [ '}' [ ';' ] ]   (the '}' iff decl)
 */
static bool read_c(struct text *t, struct mem_insns *p)
{
	bool wrapped = false;
	bool sized = false;
	uint64_t size = 0;
	size_t size_pos = 0, size_end = 0;
	if (!skip_c_space(t))
		return false;
	if (is_ident(peek(t), true)) {
		while (skip_c_space(t) && (is_ident(peek(t), true) || peek(t) == '*'))
			while (is_ident(peek(t), false) || peek(t) == '*')
				t->pos++;
		if (!c_eat(t, '[') || !skip_c_space(t))
			return false;
		if (peek(t) != ']') {
			size_pos = t->pos;
			if (!read_uint(t, NUM_C, UINT32_MAX, "array size", &size))
				return false;
			size_end = t->pos;
			sized = true;
		}
		if (!c_eat(t, ']') || !c_eat(t, '=') || !c_eat(t, '{'))
			return false;
		wrapped = true;
	}
	for (;;) {
		if (!skip_c_space(t))
			return false;
		if (wrapped && peek(t) == '}') {
			t->pos++;
			if (!skip_c_space(t))
				return false;
			if (peek(t) == ';')
				t->pos++;
			if (!skip_c_space(t))
				return false;
			if (t->pos != t->len) {
				unexpected(t, "the end after the array");
				return false;
			}
			break;
		}
		if (t->pos == t->len) {
			if (wrapped) {
				unexpected(t, "'}' closing the array");
				return false;
			}
			break;
		}
		uint64_t f[4];
		if (!eat(t, '{'))
			return false;
		for (int i = 0; i < 4; i++) {
			if ((i && !c_eat(t, ',')) || !skip_c_space(t))
				return false;
			if (!read_uint(t, NUM_C, field_max[i], field_names[i], &f[i]))
				return false;
		}
		if (!skip_c_space(t))
			return false;
		if (peek(t) == ',')
			t->pos++;
		if (!c_eat(t, '}'))
			return false;
		if (!push(p, make_insn(f)))
			return true;
		if (!skip_c_space(t))
			return false;
		if (peek(t) == ',') {
			t->pos++;
			continue;
		}
		if (t->pos == t->len || (wrapped && peek(t) == '}'))
			continue;
		unexpected(t, "',' between instructions");
		return false;
	}
	if (sized && size != p->len) {
		text_error(t, size_pos, size_end - size_pos,
			   "the array size says %llu instructions but %zu follow",
			   (unsigned long long)size, p->len);
		return false;
	}
	return true;
}

/* ---- listing: libpcap's bpf_image lines, "(000) ldh      [12]" ---- */

/* A signed decimal or 0x hex number; v in -2^31 .. 2^32-1. */
static bool read_int(struct text *t, const char *field, int64_t *v)
{
	bool neg = false;
	uint64_t u;
	if (peek(t) == '-') {
		neg = true;
		t->pos++;
	}
	if (!read_uint(t, NUM_HEX, neg ? 0x80000000u : 0xffffffffu, field, &u))
		return false;
	*v = neg ? -(int64_t)u : (int64_t)u;
	return true;
}

static bool eat_word(struct text *t, const char *w)
{
	size_t n = strlen(w);
	if (t->len - t->pos >= n && memcmp(t->s + t->pos, w, n) == 0) {
		t->pos += n;
		return true;
	}
	return false;
}

/* The shapes of listing operands; a row of the opcode table matches one. */
enum shape { SH_EMPTY, SH_X, SH_LEN, SH_HASH, SH_ABS, SH_IND, SH_MEM, SH_MSH, SH_TARGET };

static bool shape_fits(enum shape sh, enum operand op)
{
	switch (sh) {
	case SH_EMPTY: return op == OPND_NONE || op == OPND_A;
	case SH_X: return op == OPND_X;
	case SH_LEN: return op == OPND_LEN;
	case SH_HASH: return op == OPND_IMM || op == OPND_K;
	case SH_ABS: return op == OPND_ABS;
	case SH_IND: return op == OPND_IND;
	case SH_MEM: return op == OPND_MEM;
	case SH_MSH: return op == OPND_MSH;
	case SH_TARGET: return op == OPND_JA;
	}
	return false;
}

/* Parses one operand; *k receives its number (or ancillary offset). */
static bool listing_operand(struct text *t, enum shape *sh, int64_t *k)
{
	int c = peek(t);
	*k = 0;
	if (at_eol(t) || (t->len - t->pos >= 2 && memcmp(t->s + t->pos, "jt", 2) == 0)) {
		*sh = SH_EMPTY;
		return true;
	}
	if (eat_word(t, "#pktlen")) {
		*sh = SH_LEN;
		return true;
	}
	if (c == 'x' && !is_ident(t->pos + 1 < t->len ? t->s[t->pos + 1] : 0, false)) {
		t->pos++;
		*sh = SH_X;
		return true;
	}
	if (c == '#') {
		t->pos++;
		*sh = SH_HASH;
		return read_int(t, "operand", k);
	}
	if (eat_word(t, "M[")) {
		*sh = SH_MEM;
		return read_int(t, "memory slot", k) && eat(t, ']');
	}
	if (eat_word(t, "4*([")) {
		*sh = SH_MSH;
		return read_int(t, "offset", k) && eat(t, ']') && eat(t, '&') &&
		       (eat_word(t, "0xf") || (unexpected(t, "0xf"), false)) && eat(t, ')');
	}
	if (c == '-' || is_digit(c)) {
		*sh = SH_TARGET;
		return read_int(t, "jump target", k);
	}
	if (c == '[') {
		t->pos++;
		skip_blank(t);
		if (peek(t) == 'x' && !is_ident(t->pos + 1 < t->len ? t->s[t->pos + 1] : 0, false)) {
			t->pos++;
			skip_blank(t);
			if (!eat(t, '+'))
				return false;
			skip_blank(t);
			*sh = SH_IND;
			if (!read_int(t, "offset", k))
				return false;
			skip_blank(t);
			return eat(t, ']');
		}
		*sh = SH_ABS;
		if (is_ident(peek(t), true)) {
			size_t start = t->pos;
			while (is_ident(peek(t), false))
				t->pos++;
			for (uint32_t off = 0; off < BPFKIT_AD_MAX; off += 4) {
				const char *name = fmt_listing_anc(off);
				if (name && strlen(name) == t->pos - start &&
				    memcmp(name, t->s + start, t->pos - start) == 0) {
					*k = (int64_t)(BPFKIT_SKF_AD_OFF + off);
					return eat(t, ']');
				}
			}
			text_error(t, start, t->pos - start, "unknown ancillary load '%.*s'",
				   (int)(t->pos - start), t->s + start);
			return false;
		}
		if (!read_int(t, "offset", k))
			return false;
		skip_blank(t);
		return eat(t, ']');
	}
	unexpected(t, "an operand");
	return false;
}

/* jt/jf print absolute targets; turn one back into a relative offset. */
static bool listing_branch(struct text *t, const char *word, size_t idx, uint8_t *rel)
{
	int64_t target;
	skip_blank(t);
	if (!eat_word(t, word)) {
		char want[8];
		snprintf(want, sizeof want, "'%s'", word);
		unexpected(t, want);
		return false;
	}
	skip_blank(t);
	size_t start = t->pos;
	if (!read_int(t, word, &target))
		return false;
	int64_t d = target - (int64_t)idx - 1;
	if (d < 0 || d > 255) {
		text_error(t, start, t->pos - start,
			   "%s target %lld is not 1..256 instructions after %zu", word,
			   (long long)target, idx);
		return false;
	}
	*rel = (uint8_t)d;
	return true;
}

static bool listing_line(struct text *t, struct mem_insns *p)
{
	size_t idx = p->len, start;
	uint64_t num;
	struct bpfkit_insn in = {0, 0, 0, 0};
	if (!eat(t, '('))
		return false;
	start = t->pos;
	if (!read_uint(t, NUM_DEC, UINT32_MAX, "instruction number", &num))
		return false;
	if (num != idx) {
		text_error(t, start, t->pos - start, "instruction number %llu, expected %zu",
			   (unsigned long long)num, idx);
		return false;
	}
	if (!eat(t, ')'))
		return false;
	skip_blank(t);
	start = t->pos;
	while (t->pos < t->len && t->s[t->pos] >= 'a' && t->s[t->pos] <= 'z')
		t->pos++;
	size_t mlen = t->pos - start;
	const char *mnem = t->s + start;
	if (mlen == 5 && memcmp(mnem, "unimp", 5) == 0) {
		text_error(t, start, mlen,
			   "instruction %zu is 'unimp': the listing does not keep its fields", idx);
		return false;
	}
	if (mlen == 0) {
		unexpected(t, "a mnemonic");
		return false;
	}
	if (peek(t) != -1 && peek(t) != ' ' && peek(t) != '\t' && !at_eol(t)) {
		unexpected(t, "a blank after the mnemonic");
		return false;
	}
	skip_blank(t);
	size_t opnd_pos = t->pos;
	enum shape sh;
	int64_t k;
	if (!listing_operand(t, &sh, &k))
		return false;
	const struct opcode_info *o = NULL;
	for (size_t i = 0; i < OP__COUNT; i++)
		if (strlen(opcode_table[i].mnem) == mlen &&
		    memcmp(opcode_table[i].mnem, mnem, mlen) == 0 &&
		    shape_fits(sh, opcode_table[i].operand)) {
			o = &opcode_table[i];
			break;
		}
	if (!o) {
		text_error(t, start, t->pos - start, "'%.*s' does not take the operand '%.*s'",
			   (int)mlen, mnem, (int)(t->pos - opnd_pos), t->s + opnd_pos);
		return false;
	}
	in.code = o->code;
	if (sh == SH_TARGET)
		in.k = (uint32_t)((uint64_t)k - idx - 1);
	else
		in.k = (uint32_t)k;
	if (o->flags & F_COND) {
		skip_blank(t);
		if (!listing_branch(t, "jt", idx, &in.jt) || !listing_branch(t, "jf", idx, &in.jf))
			return false;
	}
	if (!eat_eol(t))
		return false;
	push(p, in);
	return true;
}

static bool read_listing(struct text *t, struct mem_insns *p)
{
	while (t->pos < t->len) {
		if (at_eol(t)) {
			if (!eat_eol(t))
				return false;
			continue;
		}
		if (!listing_line(t, p))
			return false;
	}
	return true;
}

/* ---- JSON: {"insns": [{"code": 40, "jt": 0, "jf": 0, "k": 12}, ...]} ---- */

#define JSON_MAX_DEPTH 64

static void json_ws(struct text *t)
{
	while (t->pos < t->len && strchr(" \t\r\n", t->s[t->pos]) && t->s[t->pos])
		t->pos++;
}

/* Length of a valid UTF-8 sequence at p (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

static bool json_hex4(struct text *t, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		if (!is_hex(peek(t))) {
			unexpected(t, "four hex digits after \\u");
			return false;
		}
		*v = *v << 4 | (unsigned)hex_value(peek(t));
		t->pos++;
	}
	return true;
}

/*
 * string = '"' { char | '\' escape } '"'.  The first cap-1 decoded bytes
 * go to key (NUL-terminated); *klen gets the full decoded length.
 */
static bool json_string(struct text *t, char *key, size_t cap, size_t *klen)
{
	size_t n = 0;
	if (!eat(t, '"'))
		return false;
	for (;;) {
		int c = peek(t);
		char dec[4];
		size_t dlen = 1;
		if (c == -1) {
			unexpected(t, "'\"' closing the string");
			return false;
		}
		if (c == '"') {
			t->pos++;
			break;
		}
		if (c < 0x20) {
			text_error(t, t->pos, 1, "control character 0x%02x in a string", c);
			return false;
		}
		if (c == '\\') {
			size_t esc = t->pos++;
			int e = peek(t);
			const char *simple = strchr("\"\\/bfnrt", e);
			if (e != -1 && simple) {
				static const char out[] = "\"\\/\b\f\n\r\t";
				dec[0] = out[simple - "\"\\/bfnrt"];
				t->pos++;
			} else if (e == 'u') {
				unsigned u, lo;
				t->pos++;
				if (!json_hex4(t, &u))
					return false;
				if (u >= 0xdc00 && u <= 0xdfff) {
					text_error(t, esc, t->pos - esc, "lone low surrogate");
					return false;
				}
				if (u >= 0xd800 && u <= 0xdbff) {
					if (!eat_word(t, "\\u")) {
						text_error(t, esc, t->pos - esc,
							   "high surrogate without its low half");
						return false;
					}
					if (!json_hex4(t, &lo))
						return false;
					if (lo < 0xdc00 || lo > 0xdfff) {
						text_error(t, esc, t->pos - esc,
							   "high surrogate without its low half");
						return false;
					}
				}
				dec[0] = '?'; /* keys we look for are ASCII */
				dlen = 1;
			} else {
				text_error(t, esc, 2, "invalid escape in a string");
				return false;
			}
		} else {
			dlen = utf8_len((const unsigned char *)t->s + t->pos, t->len - t->pos);
			if (!dlen) {
				text_error(t, t->pos, 1, "invalid UTF-8 in a string");
				return false;
			}
			memcpy(dec, t->s + t->pos, dlen);
			t->pos += dlen;
		}
		for (size_t i = 0; i < dlen; i++, n++)
			if (key && n + 1 < cap)
				key[n] = dec[i];
	}
	if (key)
		key[n < cap ? n : cap - 1] = '\0';
	if (klen)
		*klen = n;
	return true;
}

/*
 * number = [ '-' ] int [ frac ] [ exp ].  When field is set, the number must
 * be an integer 0..max and lands in *v.
 */
static bool json_number(struct text *t, const char *field, uint64_t max, uint64_t *v)
{
	size_t start = t->pos;
	bool integral = true;
	if (peek(t) == '-') {
		t->pos++;
		integral = false;
	}
	if (peek(t) == '0') {
		t->pos++;
	} else if (is_digit(peek(t))) {
		while (is_digit(peek(t)))
			t->pos++;
	} else {
		unexpected(t, "a digit");
		return false;
	}
	if (peek(t) == '.') {
		integral = false;
		t->pos++;
		if (!is_digit(peek(t))) {
			unexpected(t, "a digit after '.'");
			return false;
		}
		while (is_digit(peek(t)))
			t->pos++;
	}
	if (peek(t) == 'e' || peek(t) == 'E') {
		integral = false;
		t->pos++;
		if (peek(t) == '+' || peek(t) == '-')
			t->pos++;
		if (!is_digit(peek(t))) {
			unexpected(t, "a digit in the exponent");
			return false;
		}
		while (is_digit(peek(t)))
			t->pos++;
	}
	if (!field)
		return true;
	size_t end = t->pos;
	if (!integral) {
		text_error(t, start, end - start, "%s must be an integer 0..%llu", field,
			   (unsigned long long)max);
		return false;
	}
	t->pos = start;
	if (!read_uint(t, NUM_DEC, max, field, v))
		return false;
	t->pos = end;
	return true;
}

static bool json_value(struct text *t, int depth);

/* array = '[' [ value { ',' value } ] ']'; object likewise with "key": value. */
static bool json_container(struct text *t, int depth)
{
	bool object = peek(t) == '{';
	char close = object ? '}' : ']';
	if (depth >= JSON_MAX_DEPTH) {
		text_error(t, t->pos, 1, "nesting deeper than %d levels", JSON_MAX_DEPTH);
		return false;
	}
	t->pos++;
	json_ws(t);
	if (peek(t) == close) {
		t->pos++;
		return true;
	}
	for (;;) {
		json_ws(t);
		if (object) {
			if (!json_string(t, NULL, 0, NULL))
				return false;
			json_ws(t);
			if (!eat(t, ':'))
				return false;
			json_ws(t);
		}
		if (!json_value(t, depth + 1))
			return false;
		json_ws(t);
		if (peek(t) == ',') {
			t->pos++;
			continue;
		}
		return eat(t, close);
	}
}

/* value = object | array | string | number | true | false | null */
static bool json_value(struct text *t, int depth)
{
	int c = peek(t);
	if (c == '{' || c == '[')
		return json_container(t, depth);
	if (c == '"')
		return json_string(t, NULL, 0, NULL);
	if (c == '-' || is_digit(c))
		return json_number(t, NULL, 0, NULL);
	if (eat_word(t, "true") || eat_word(t, "false") || eat_word(t, "null"))
		return true;
	unexpected(t, "a JSON value");
	return false;
}

/* insn = '{' "code", "jt", "jf", "k" and any other keys '}' | '[' 4 integers ']' */
static bool json_insn(struct text *t, struct mem_insns *p)
{
	uint64_t f[4];
	size_t open = t->pos;
	if (peek(t) == '[') {
		t->pos++;
		for (int i = 0; i < 4; i++) {
			json_ws(t);
			if (i) {
				if (!eat(t, ','))
					return false;
				json_ws(t);
			}
			if (!json_number(t, field_names[i], field_max[i], &f[i]))
				return false;
		}
		json_ws(t);
		if (!eat(t, ']'))
			return false;
		if (!push(p, make_insn(f)))
			return true;
		return true;
	}
	if (peek(t) != '{') {
		unexpected(t, "an instruction object");
		return false;
	}
	bool seen[4] = {false, false, false, false};
	t->pos++;
	json_ws(t);
	if (peek(t) != '}') {
		for (;;) {
			char key[8];
			size_t klen, kpos;
			json_ws(t);
			kpos = t->pos;
			if (!json_string(t, key, sizeof key, &klen))
				return false;
			json_ws(t);
			if (!eat(t, ':'))
				return false;
			json_ws(t);
			int which = -1;
			for (int i = 0; i < 4; i++)
				if (klen == strlen(field_names[i]) && strcmp(key, field_names[i]) == 0)
					which = i;
			if (which < 0) {
				if (!json_value(t, 2))
					return false;
			} else {
				if (seen[which]) {
					text_error(t, kpos, t->pos - kpos, "duplicate key \"%s\"",
						   field_names[which]);
					return false;
				}
				seen[which] = true;
				if (!json_number(t, field_names[which], field_max[which],
						 &f[which]))
					return false;
			}
			json_ws(t);
			if (peek(t) == ',') {
				t->pos++;
				continue;
			}
			break;
		}
	}
	if (!eat(t, '}'))
		return false;
	for (int i = 0; i < 4; i++)
		if (!seen[i]) {
			text_error(t, open, 1, "instruction %zu has no \"%s\"", p->len,
				   field_names[i]);
			return false;
		}
	push(p, make_insn(f));
	return true;
}

static bool json_insns(struct text *t, struct mem_insns *p)
{
	if (!eat(t, '['))
		return false;
	json_ws(t);
	if (peek(t) == ']') {
		t->pos++;
		return true;
	}
	for (;;) {
		json_ws(t);
		if (!json_insn(t, p))
			return false;
		json_ws(t);
		if (peek(t) == ',') {
			t->pos++;
			continue;
		}
		return eat(t, ']');
	}
}

/* file = insns-array | '{' "insns": insns-array and any other keys '}' */
static bool read_json(struct text *t, struct mem_insns *p)
{
	json_ws(t);
	if (peek(t) == '[') {
		if (!json_insns(t, p))
			return false;
	} else if (peek(t) == '{') {
		bool have = false;
		size_t open = t->pos++;
		json_ws(t);
		if (peek(t) != '}') {
			for (;;) {
				char key[8];
				size_t klen, kpos;
				json_ws(t);
				kpos = t->pos;
				if (!json_string(t, key, sizeof key, &klen))
					return false;
				json_ws(t);
				if (!eat(t, ':'))
					return false;
				json_ws(t);
				if (klen == 5 && strcmp(key, "insns") == 0) {
					if (have) {
						text_error(t, kpos, 7, "duplicate key \"insns\"");
						return false;
					}
					have = true;
					if (!json_insns(t, p))
						return false;
				} else if (!json_value(t, 1)) {
					return false;
				}
				json_ws(t);
				if (peek(t) == ',') {
					t->pos++;
					continue;
				}
				break;
			}
		}
		if (!eat(t, '}'))
			return false;
		if (!have) {
			text_error(t, open, 1, "no \"insns\" array in the object");
			return false;
		}
	} else {
		unexpected(t, "'{' or '['");
		return false;
	}
	json_ws(t);
	if (t->pos != t->len) {
		unexpected(t, "the end after the JSON value");
		return false;
	}
	return true;
}

/* ---- raw: struct sock_filter array in host byte order ---- */

static bool read_raw(const void *data, size_t len, struct mem_insns *p,
		     struct bpfkit_error *err)
{
	if (len % sizeof(struct bpfkit_insn)) {
		error_offset(err, (long long)(len - len % sizeof(struct bpfkit_insn)),
			     "raw program of %zu bytes: not a multiple of %zu", len,
			     sizeof(struct bpfkit_insn));
		return false;
	}
	const unsigned char *b = data;
	for (size_t off = 0; off < len; off += sizeof(struct bpfkit_insn)) {
		struct bpfkit_insn in;
		memcpy(&in, b + off, sizeof in);
		if (!push(p, in))
			return true;
	}
	return true;
}

/* ---- detection ---- */

static bool is_binary(const unsigned char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == 0 || (s[i] < 0x20 && !strchr("\t\n\v\f\r", s[i])) || s[i] == 0x7f)
			return true;
	return false;
}

static enum bpfkit_format detect(const char *s, size_t len)
{
	struct text t = {s, len, 0, NULL};
	if (len == 0)
		return BPFKIT_FMT_ASM;
	if (is_binary((const unsigned char *)s, len))
		return BPFKIT_FMT_RAW;
	skip_space(&t);
	int c = peek(&t);
	if (c == '[')
		return BPFKIT_FMT_JSON;
	if (c == '{') {
		t.pos++;
		skip_space(&t);
		return is_digit(peek(&t)) ? BPFKIT_FMT_C : BPFKIT_FMT_JSON;
	}
	if (c == '(')
		return BPFKIT_FMT_LISTING;
	if (is_digit(c)) {
		while (is_digit(peek(&t)))
			t.pos++;
		skip_blank(&t);
		if (peek(&t) == ',')
			return BPFKIT_FMT_IPTABLES;
		if (at_eol(&t))
			return BPFKIT_FMT_DDD;
		return BPFKIT_FMT_ASM;
	}
	/* A pasted C declaration, perhaps after a comment. */
	if (c == '/' && t.pos + 1 < len && (s[t.pos + 1] == '*' || s[t.pos + 1] == '/')) {
		if (!skip_c_space(&t))
			return BPFKIT_FMT_ASM;
		c = peek(&t);
		if (c == '{')
			return BPFKIT_FMT_C;
	}
	static const char *const c_words[] = {"struct", "static", "const"};
	for (size_t i = 0; i < sizeof c_words / sizeof c_words[0]; i++) {
		size_t n = strlen(c_words[i]);
		if (len - t.pos > n && memcmp(s + t.pos, c_words[i], n) == 0 &&
		    !is_ident((unsigned char)s[t.pos + n], false))
			return BPFKIT_FMT_C;
	}
	return BPFKIT_FMT_ASM;
}

/* ---- the entry point ---- */

BPFKIT_API int bpfkit_prog_read(const void *data, size_t len, enum bpfkit_format fmt,
				const struct bpfkit_alloc *alloc, struct bpfkit_prog *out,
				enum bpfkit_format *detected, struct bpfkit_error *err)
{
	struct mem_insns p;
	struct text t = {data, len, 0, err};
	bool ok;
	if (!out) {
		error_set(err, "no place for the program");
		return -1;
	}
	out->insns = NULL;
	out->len = 0;
	if (!data && len) {
		error_set(err, "no input");
		return -1;
	}
	if (!data)
		t.s = data = "";
	if (fmt == BPFKIT_FMT_AUTO)
		fmt = detect(data, len);
	if (detected)
		*detected = fmt;
	mem_insns_init(&p, alloc);
	switch (fmt) {
	case BPFKIT_FMT_ASM:
		if (bpfkit_asm(data, len, alloc, out, err) == 0)
			return 0;
		out->insns = NULL;
		out->len = 0;
		return -1;
	case BPFKIT_FMT_LISTING:
		ok = read_listing(&t, &p);
		break;
	case BPFKIT_FMT_C:
		ok = read_c(&t, &p);
		break;
	case BPFKIT_FMT_DDD:
		ok = read_ddd(&t, &p);
		break;
	case BPFKIT_FMT_IPTABLES:
		ok = read_iptables(&t, &p);
		break;
	case BPFKIT_FMT_RAW:
		ok = read_raw(data, len, &p, err);
		break;
	case BPFKIT_FMT_JSON:
		ok = read_json(&t, &p);
		break;
	case BPFKIT_FMT_DOT:
		error_set(err, "format dot cannot be read");
		return -1;
	default:
		error_set(err, "unknown program format %d", (int)fmt);
		return -1;
	}
	if (p.failed) { /* any error after a failed allocation is a consequence */
		error_oom(err);
		ok = false;
	}
	if (!ok) {
		mem_insns_free(&p);
		return -1;
	}
	out->insns = p.v;
	out->len = p.len;
	return 0;
}
