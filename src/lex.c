/*
 * lex.c - splits a pcap-filter(7) expression into tokens.
 *
 * Every token records its 1-based line and column and its width, so the
 * parser and code generator can point at it.  Numbers are decimal, 0x hex or
 * 0-prefixed octal; a run of digits and dots is an IPv4 address (1 to 4
 * parts); MAC addresses (xx:xx:xx:xx:xx:xx, xx-xx-..., xxxx.xxxx.xxxx) and
 * IPv6 addresses are recognized only when the whole run parses, so that
 * "tcp[13:1]" stays a number, a colon and a number.  Names may contain
 * '-', '.' and '_' inside (tcp-syn, www.example.com).  A backslash before a
 * name keeps it from being a keyword ("ether proto \ip").
 */
#include "internal.h"
#include "proto.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *name;
	int cls;
} kw_rows[KW__COUNT] = {
	[KW_NONE] = {"", 0},
#define KW_ROW(id, s, c) [KW_##id] = {s, KWC_##c},
	KW_TABLE(KW_ROW)
#undef KW_ROW
};

int proto_kw_class(int kw)
{
	return kw > 0 && kw < KW__COUNT ? kw_rows[kw].cls : 0;
}

int lex_keyword(const char *s)
{
	for (int i = 1; i < KW__COUNT; i++)
		if (strcmp(kw_rows[i].name, s) == 0)
			return i;
	if (strcmp(s, "length") == 0)   /* libpcap's other spelling of "len" */
		return KW_LEN;
	/* libpcap's other spellings of pflog and 802.11 keywords */
	static const struct { const char *s; int kw; } other[] = {
		{"rset", KW_RULESET}, {"direction", KW_DIR}, {"address1", KW_ADDR1},
		{"address2", KW_ADDR2}, {"address3", KW_ADDR3}, {"address4", KW_ADDR4},
		{"es-is", KW_ESIS}, {"is-is", KW_ISIS},
	};
	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
		if (strcmp(other[i].s, s) == 0)
			return other[i].kw;
	return -1;
}

const char *lex_keyword_name(int kw)
{
	return kw > 0 && kw < KW__COUNT ? kw_rows[kw].name : "?";
}

struct lexer {
	struct compile_ctx *cc;
	const char *src;
	size_t pos;
	int line;
	size_t line_start;
	struct lex_token *v;
	int n, cap;
};

static struct lex_token *push(struct lexer *lx, enum lex_kind kind, size_t start, size_t len)
{
	if (lx->n == lx->cap) {
		int cap = lx->cap ? lx->cap * 2 : 32;
		struct lex_token *v = compile_alloc(lx->cc, (size_t)cap * sizeof *v);
		if (lx->n)
			memcpy(v, lx->v, (size_t)lx->n * sizeof *v);
		lx->v = v;
		lx->cap = cap;
	}
	struct lex_token *t = &lx->v[lx->n++];
	memset(t, 0, sizeof *t);
	t->kind = kind;
	t->line = lx->line;
	t->col = (int)(start - lx->line_start) + 1;
	t->span = len ? (int)len : 1;
	t->text = mem_arena_strndup(&lx->cc->arena, lx->src + start, len);
	if (!t->text)
		compile_error(lx->cc, 0, 0, "out of memory");
	return t;
}

static bool is_name_char(int c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_';
}

/* Parses a number (decimal, 0x hex, 0 octal) filling all of s[0..n); false otherwise. */
static bool parse_num(const char *s, size_t n, uint32_t *out, bool *overflow)
{
	uint64_t v = 0;
	unsigned base = 10;
	size_t i = 0;
	*overflow = false;
	if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	} else if (n > 1 && s[0] == '0') {
		base = 8;
		i = 1;
	}
	if (i >= n)
		return false;
	for (; i < n; i++) {
		int c = (unsigned char)s[i], d;
		if (isdigit(c))
			d = c - '0';
		else if (isxdigit(c))
			d = tolower(c) - 'a' + 10;
		else
			return false;
		if ((unsigned)d >= base)
			return false;
		v = v * base + (unsigned)d;
		if (v > 0xffffffffu)
			*overflow = true, v = 0xffffffffu;
	}
	*out = (uint32_t)v;
	return true;
}

/* xxxx.xxxx.xxxx: three groups of exactly four hex digits. */
static bool parse_mac_groups(const char *s, size_t n, uint8_t mac[6])
{
	if (n != 14)
		return false;
	for (int g = 0; g < 3; g++) {
		const char *p = s + g * 5;
		for (int j = 0; j < 4; j++)
			if (!isxdigit((unsigned char)p[j]))
				return false;
		if (g < 2 && p[4] != '.')
			return false;
		char buf[5] = {p[0], p[1], p[2], p[3], 0};
		unsigned long v = strtoul(buf, NULL, 16);
		mac[g * 2] = (uint8_t)(v >> 8);
		mac[g * 2 + 1] = (uint8_t)v;
	}
	return true;
}

/*
 * The MAC spellings libpcap accepts: six groups of 1-2 hex digits separated all by
 * ':', all by '-' or all by '.', or xxxx.xxxx.xxxx.
 */
static bool parse_mac(const char *s, size_t n, uint8_t mac[6])
{
	char sep = 0;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i])) {
			sep = s[i];
			break;
		}
	if (sep == '.' && parse_mac_groups(s, n, mac))
		return true;
	if (sep != ':' && sep != '-' && sep != '.')
		return false;
	size_t i = 0;
	for (int part = 0; part < 6; part++) {
		unsigned v = 0;
		int digits = 0;
		while (i < n && isxdigit((unsigned char)s[i]) && digits < 2) {
			int c = tolower((unsigned char)s[i++]);
			v = v * 16 + (unsigned)(isdigit(c) ? c - '0' : c - 'a' + 10);
			digits++;
		}
		if (!digits)
			return false;
		mac[part] = (uint8_t)v;
		if (part < 5) {
			if (i >= n || s[i] != sep)
				return false;
			i++;
		}
	}
	return i == n;
}

static void lex_word(struct lexer *lx)
{
	const char *s = lx->src;
	size_t start = lx->pos;
	bool escaped = false;
	if (s[start] == '\\') {
		escaped = true;
		start++;
	}
	/* A run that may be a MAC or IPv6 address. */
	size_t e = start;
	while (isxdigit((unsigned char)s[e]) || s[e] == ':' || s[e] == '.' || s[e] == '-')
		e++;
	bool has_colon = memchr(s + start, ':', e - start) != NULL;
	uint8_t mac[6];
	if (!escaped && !is_name_char((unsigned char)s[e]) && s[e] != ':' &&
	    parse_mac(s + start, e - start, mac)) {
		/* ab-cd-ef-00-00-02, ab.cd.ef.0.0.2, abcd.ef00.0003 */
		struct lex_token *t = push(lx, LEX_MAC, start, e - start);
		memcpy(t->bytes, mac, 6);
		lx->pos = e;
		return;
	}
	if (has_colon && !is_name_char((unsigned char)s[e])) {
		size_t n = e - start;
		if (parse_mac(s + start, n, mac)) {
			struct lex_token *t = push(lx, LEX_MAC, start, n);
			memcpy(t->bytes, mac, 6);
			lx->pos = e;
			return;
		}
		char buf[64];
		if (n < sizeof buf && memchr(s + start, '-', n) == NULL) {
			memcpy(buf, s + start, n);
			buf[n] = 0;
			uint8_t a6[16];
			if (inet_pton(AF_INET6, buf, a6) == 1) {
				struct lex_token *t = push(lx, LEX_IPV6, start, n);
				memcpy(t->bytes, a6, 16);
				lx->pos = e;
				return;
			}
		}
	}
	if (s[start] == ':')
		compile_error(lx->cc, (int)(start - lx->line_start) + 1, 1, "syntax error");
	/* A name, number or IPv4 address. */
	e = start;
	while (is_name_char((unsigned char)s[e]))
		e++;
	/* names do not end in '-' or '_' (so "len-1" is not one name? libpcap: it is) */
	size_t n = e - start;
	lx->pos = e;
	bool all_num = true, has_dot = false;
	for (size_t i = 0; i < n; i++) {
		if (s[start + i] == '.')
			has_dot = true;
		else if (!isdigit((unsigned char)s[start + i]))
			all_num = false;
	}
	if (!escaped && all_num && has_dot) {
		struct lex_token *t = push(lx, LEX_IPV4, start, n);
		uint32_t a = 0;
		int parts = 0;
		bool bad = false;
		size_t i = 0;
		while (i <= n) {
			size_t j = i;
			uint64_t v = 0;
			while (j < n && s[start + j] != '.') {
				if (v <= 255)
					v = v * 10 + (unsigned)(s[start + j] - '0');
				j++;
			}
			if (j == i || parts == 4)
				compile_error(lx->cc, t->col, t->span, "invalid IPv4 address '%s'",
					      t->text);
			/* a part above 255 is refused by the parser unless the value is a
			 * DECnet address (AREA.NODE), which libpcap lexes the same way */
			bad |= v > 255;
			a = a << 8 | (uint32_t)(v & 0xff);
			parts++;
			i = j + 1;
		}
		t->num = a;
		t->nparts = bad ? -parts : parts;
		return;
	}
	uint32_t v;
	bool over;
	if (!escaped && isdigit((unsigned char)s[start]) && parse_num(s + start, n, &v, &over)) {
		struct lex_token *t = push(lx, LEX_NUM, start, n);
		if (over)
			compile_error(lx->cc, t->col, t->span, "number %s out of range", t->text);
		t->num = v;
		return;
	}
	struct lex_token *t = push(lx, LEX_NAME, start, n);
	t->escaped = escaped;
	if (escaped) {
		t->col--;
		t->span++;
	}
	if (!escaped) {
		int kw = lex_keyword(t->text);
		if (kw > 0) {
			t->kind = LEX_KW;
			t->kw = kw;
		} else if (strcmp(t->text, "and") == 0) {
			t->kind = LEX_AND;
		} else if (strcmp(t->text, "or") == 0) {
			t->kind = LEX_OR;
		} else if (strcmp(t->text, "not") == 0) {
			t->kind = LEX_NOT;
		}
	}
}

void lex_run(struct compile_ctx *cc, const char *expr, struct lex_tokens *out)
{
	struct lexer lx = {.cc = cc, .src = expr, .line = 1};
	static const struct {
		const char *s;
		enum lex_kind k;
	} ops[] = {
		{"&&", LEX_AND}, {"||", LEX_OR}, {"<<", LEX_SHL}, {">>", LEX_SHR}, {">=", LEX_GE},
		{"<=", LEX_LE}, {"==", LEX_EQ}, {"!=", LEX_NE}, {"(", LEX_LPAREN},
		{")", LEX_RPAREN}, {"[", LEX_LBRACK}, {"]", LEX_RBRACK}, {"+", LEX_ADD},
		{"-", LEX_SUB}, {"*", LEX_MUL}, {"/", LEX_DIV}, {"%", LEX_MOD}, {"&", LEX_BAND},
		{"|", LEX_BOR}, {"^", LEX_XOR}, {">", LEX_GT}, {"<", LEX_LT}, {"=", LEX_EQ},
		{"!", LEX_NOT}, {":", LEX_COLON},
	};
	for (;;) {
		int c = (unsigned char)expr[lx.pos];
		if (c == '\n') {
			lx.pos++;
			lx.line++;
			lx.line_start = lx.pos;
			continue;
		}
		if (isspace(c)) {
			lx.pos++;
			continue;
		}
		if (c == 0)
			break;
		if (isalnum(c) || c == '\\' || (c == ':' && expr[lx.pos + 1] == ':')) {
			lex_word(&lx);
			continue;
		}
		size_t i;
		for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
			size_t n = strlen(ops[i].s);
			if (strncmp(expr + lx.pos, ops[i].s, n) == 0) {
				push(&lx, ops[i].k, lx.pos, n);
				lx.pos += n;
				break;
			}
		}
		if (i == sizeof ops / sizeof ops[0])
			compile_error(cc, (int)(lx.pos - lx.line_start) + 1, 1,
				      "illegal character '%c'", isprint(c) ? c : '?');
	}
	push(&lx, LEX_EOF, lx.pos, 0);
	out->v = lx.v;
	out->n = lx.n;
}
