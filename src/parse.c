/*
 * parse.c - pcap-filter(7) expressions -> abstract syntax tree.
 *
 * A recursive-descent parser over lex.c's tokens.  As in libpcap, "and" and
 * "or" have the same precedence and associate to the left; "not" binds
 * tighter.  Qualifiers carry over: a bare value ("host a or b", "port 80 or
 * 443", "host a and not b") takes the qualifiers of the last primitive that
 * had them; after a primitive without a value ("tcp", "less 10") a bare value
 * is an error.  Arithmetic has libpcap's precedence, lowest first:
 * | ^ & (<< >>) (+ -) (* / %) unary-minus.  The parser knows no link types;
 * meaning (what a qualifier applies to) is codegen.c's business.
 */
#include "internal.h"
#include "proto.h"

#include <stdio.h>
#include <string.h>

enum { DIR_DEFAULT = 0, DIR_SRC_OR_DST = 1000, DIR_SRC_AND_DST = 1001 };

struct parser {
	struct compile_ctx *cc;
	const struct lex_token *t;
	int pos, n;
	/* the qualifiers a bare value takes; valid false after e.g. "tcp" */
	int q_proto, q_dir, q_type;
	bool q_valid;
	int seq;
};

static const struct lex_token *peek(struct parser *p)
{
	return &p->t[p->pos];
}

static const struct lex_token *peek_at(struct parser *p, int ahead)
{
	int i = p->pos + ahead;
	return &p->t[i < p->n ? i : p->n - 1];
}

static const struct lex_token *next(struct parser *p)
{
	const struct lex_token *t = &p->t[p->pos];
	if (t->kind != LEX_EOF)
		p->pos++;
	return t;
}

static _Noreturn BK_PRINTF(3, 4) void fail_at(struct parser *p, const struct lex_token *t,
					      const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	p->cc->err_line = t->line;
	compile_error(p->cc, t->col, t->span, "%s", msg);
}

static _Noreturn void syntax_error(struct parser *p, const struct lex_token *t)
{
	if (t->kind == LEX_EOF)
		fail_at(p, t, "syntax error: unexpected end of expression");
	if (t->kind == LEX_NAME && !t->escaped && strchr(t->text, '.') == NULL) {
		/* a word in a place only keywords go */
		fail_at(p, t, "syntax error: unknown keyword '%s'", t->text);
	}
	fail_at(p, t, "syntax error at '%s'", t->text);
}

static void expect(struct parser *p, enum lex_kind k, const char *what)
{
	const struct lex_token *t = peek(p);
	if (t->kind != k) {
		if (t->kind == LEX_EOF)
			fail_at(p, t, "syntax error: expected %s", what);
		fail_at(p, t, "syntax error: expected %s at '%s'", what, t->text);
	}
	next(p);
}

static struct parse_node *new_node(struct parser *p, enum parse_node_kind kind,
				   const struct lex_token *at)
{
	struct parse_node *n = compile_alloc(p->cc, sizeof *n);
	n->kind = kind;
	n->col = at->col;
	n->span = at->span;
	n->masklen = -1;
	return n;
}

static bool is_relop(enum lex_kind k)
{
	return k >= LEX_GT && k <= LEX_NE;
}

static bool is_value(const struct lex_token *t)
{
	return t->kind == LEX_NAME || t->kind == LEX_NUM || t->kind == LEX_IPV4 ||
	       t->kind == LEX_IPV6 || t->kind == LEX_MAC;
}

/* True when the tokens from here to the end of this term hold a relational operator. */
static bool looks_like_relation(struct parser *p)
{
	int depth = 0;
	for (int i = p->pos; i < p->n; i++) {
		enum lex_kind k = p->t[i].kind;
		if (k == LEX_LPAREN || k == LEX_LBRACK)
			depth++;
		else if (k == LEX_RPAREN || k == LEX_RBRACK) {
			if (--depth < 0)
				return false;
		} else if (depth == 0 && (k == LEX_AND || k == LEX_OR || k == LEX_EOF))
			return false;
		else if (depth == 0 && is_relop(k))
			return true;
	}
	return false;
}

/* ---- arithmetic ---- */

static const struct {
	const char *name;
	uint32_t value;
} constants[] = {
	{"icmptype", 0}, {"icmpcode", 1}, {"icmp-echoreply", 0}, {"icmp-unreach", 3},
	{"icmp-sourcequench", 4}, {"icmp-redirect", 5}, {"icmp-echo", 8},
	{"icmp-routeradvert", 9}, {"icmp-routersolicit", 10}, {"icmp-timxceed", 11},
	{"icmp-paramprob", 12}, {"icmp-tstamp", 13}, {"icmp-tstampreply", 14},
	{"icmp-ireq", 15}, {"icmp-ireqreply", 16}, {"icmp-maskreq", 17},
	{"icmp-maskreply", 18},
	{"icmp6type", 0}, {"icmp6code", 1}, {"icmp6-destinationunreach", 1},
	{"icmp6-packettoobig", 2}, {"icmp6-timeexceeded", 3}, {"icmp6-parameterproblem", 4},
	{"icmp6-echo", 128}, {"icmp6-echoreply", 129}, {"icmp6-multicastlistenerquery", 130},
	{"icmp6-multicastlistenerreportv1", 131}, {"icmp6-multicastlistenerdone", 132},
	{"icmp6-routersolicit", 133}, {"icmp6-routeradvert", 134},
	{"icmp6-neighborsolicit", 135}, {"icmp6-neighboradvert", 136},
	{"icmp6-redirect", 137}, {"icmp6-routerrenum", 138},
	{"icmp6-nodeinformationquery", 139}, {"icmp6-nodeinformationresponse", 140},
	{"icmp6-ineighbordiscoverysolicit", 141}, {"icmp6-ineighbordiscoveryadvert", 142},
	{"icmp6-multicastlistenerreportv2", 143}, {"icmp6-homeagentdiscoveryrequest", 144},
	{"icmp6-homeagentdiscoveryreply", 145}, {"icmp6-mobileprefixsolicit", 146},
	{"icmp6-mobileprefixadvert", 147}, {"icmp6-certpathsolicit", 148},
	{"icmp6-certpathadvert", 149}, {"icmp6-multicastrouteradvert", 151},
	{"icmp6-multicastroutersolicit", 152}, {"icmp6-multicastrouterterm", 153},
	{"tcpflags", 13}, {"tcp-fin", 0x01}, {"tcp-syn", 0x02}, {"tcp-rst", 0x04},
	{"tcp-push", 0x08}, {"tcp-ack", 0x10}, {"tcp-urg", 0x20}, {"tcp-ece", 0x40},
	{"tcp-cwr", 0x80},
};

static struct parse_arith *new_arith(struct parser *p, enum parse_arith_kind kind,
				     const struct lex_token *at)
{
	struct parse_arith *a = compile_alloc(p->cc, sizeof *a);
	a->kind = kind;
	a->col = at->col;
	a->span = at->span;
	return a;
}

static struct parse_arith *arith_or(struct parser *p);

/* aprimary: NUM | constant | len | proto '[' arith [':' size] ']' | '(' arith ')' | '-' aprimary */
static struct parse_arith *arith_primary(struct parser *p)
{
	const struct lex_token *t = peek(p);
	struct parse_arith *a;
	switch (t->kind) {
	case LEX_NUM:
		next(p);
		a = new_arith(p, PA_NUM, t);
		a->num = t->num;
		return a;
	case LEX_NAME:
		for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
			if (strcmp(constants[i].name, t->text) == 0) {
				next(p);
				a = new_arith(p, PA_NUM, t);
				a->num = constants[i].value;
				return a;
			}
		fail_at(p, t, "unknown name '%s' in arithmetic expression", t->text);
	case LEX_SUB:
		next(p);
		a = new_arith(p, PA_NEG, t);
		a->l = arith_primary(p);
		return a;
	case LEX_LPAREN:
		next(p);
		a = arith_or(p);
		expect(p, LEX_RPAREN, "')'");
		return a;
	case LEX_KW:
		if (t->kw == KW_LEN) {
			next(p);
			return new_arith(p, PA_LEN, t);
		}
		if (proto_kw_class(t->kw) == KWC_P && peek_at(p, 1)->kind == LEX_LBRACK) {
			next(p);
			next(p);
			a = new_arith(p, PA_LOAD, t);
			a->proto = t->kw;
			a->l = arith_or(p);
			a->size = 1;
			if (peek(p)->kind == LEX_COLON) {
				next(p);
				const struct lex_token *s = peek(p);
				if (s->kind != LEX_NUM)
					syntax_error(p, s);
				next(p);
				if (s->num != 1 && s->num != 2 && s->num != 4)
					fail_at(p, s, "data size must be 1, 2, or 4");
				a->size = (int)s->num;
			}
			const struct lex_token *e = peek(p);
			expect(p, LEX_RBRACK, "']'");
			a->span = e->col + e->span - a->col;
			return a;
		}
		break;
	default:
		break;
	}
	syntax_error(p, t);
}

static int arith_level(enum lex_kind k)
{
	switch (k) {
	case LEX_BOR: return 1;
	case LEX_XOR: return 2;
	case LEX_BAND: return 3;
	case LEX_SHL: case LEX_SHR: return 4;
	case LEX_ADD: case LEX_SUB: return 5;
	case LEX_MUL: case LEX_DIV: case LEX_MOD: return 6;
	default: return 0;
	}
}

/* Precedence climbing over the binary operators, all left-associative. */
static struct parse_arith *arith_binary(struct parser *p, int level)
{
	if (level > 6)
		return arith_primary(p);
	struct parse_arith *l = arith_binary(p, level + 1);
	while (arith_level(peek(p)->kind) == level) {
		const struct lex_token *op = next(p);
		struct parse_arith *a = new_arith(p, PA_BIN, op);
		a->op = op->kind;
		a->l = l;
		a->r = arith_binary(p, level + 1);
		l = a;
	}
	return l;
}

static struct parse_arith *arith_or(struct parser *p)
{
	return arith_binary(p, 1);
}

/* relation: arith relop arith */
static struct parse_node *relation(struct parser *p)
{
	const struct lex_token *start = peek(p);
	struct parse_node *n = new_node(p, PN_REL, start);
	n->a = arith_or(p);
	const struct lex_token *op = peek(p);
	if (!is_relop(op->kind))
		syntax_error(p, op);
	next(p);
	n->relop = op->kind;
	n->b = arith_or(p);
	const struct lex_token *last = &p->t[p->pos - 1];
	n->span = last->col + last->span - n->col;
	n->seq = p->seq++;
	p->q_valid = false;
	return n;
}

/* ---- primitives ---- */

static struct parse_node *prim(struct parser *p, const struct lex_token *at, int kw)
{
	struct parse_node *n = new_node(p, PN_PRIM, at);
	n->prim = kw;
	n->seq = p->seq++;
	return n;
}

static void end_span(struct parser *p, struct parse_node *n)
{
	const struct lex_token *last = &p->t[p->pos - 1];
	if (last->line == p->t[p->pos - 1].line && last->col + last->span > n->col)
		n->span = last->col + last->span - n->col;
}

/* value: NAME | NUM | IPV4 | IPV6 | MAC, optionally '/' len or 'mask' addr */
static struct parse_node *value(struct parser *p, const struct lex_token *start)
{
	const struct lex_token *t = peek(p);
	if (!is_value(t))
		syntax_error(p, t);
	next(p);
	if (t->kind == LEX_NAME && !t->escaped && is_value(peek(p)) &&
	    lex_keyword(t->text) < 0)
		fail_at(p, t, "unknown keyword '%s'", t->text);
	if (t->kind == LEX_IPV4 && t->nparts < 0 && p->q_proto != KW_DECNET)
		fail_at(p, t, "invalid IPv4 address '%s'", t->text);
	struct parse_node *n = prim(p, start ? start : t, 0);
	n->proto = p->q_proto;
	n->dir = p->q_dir;
	n->type = p->q_type;
	n->id = t;
	if (peek(p)->kind == LEX_DIV) {
		next(p);
		const struct lex_token *m = peek(p);
		if (m->kind != LEX_NUM)
			syntax_error(p, m);
		next(p);
		if (t->kind != LEX_IPV4 && t->kind != LEX_IPV6)
			fail_at(p, t, "'/' applies only to IPv4 and IPv6 addresses");
		unsigned max = t->kind == LEX_IPV4 ? 32 : 128;
		if (m->num > max)
			fail_at(p, m, "mask length must be <= %u", max);
		n->masklen = (int)m->num;
	} else if (peek(p)->kind == LEX_KW && peek(p)->kw == KW_MASK) {
		next(p);
		const struct lex_token *m = peek(p);
		if ((m->kind != LEX_IPV4 || m->nparts < 0) && m->kind != LEX_IPV6)
			fail_at(p, m, "'mask' needs an address");
		next(p);
		if (t->kind != LEX_IPV4)
			fail_at(p, t, "'mask' applies only to IPv4 networks");
		n->mask = m;
	}
	end_span(p, n);
	return n;
}

/* ids: value | not ids | '(' ids { (and|or) ids } ')' with the current qualifiers */
static struct parse_node *ids(struct parser *p, const struct lex_token *start)
{
	if (peek(p)->kind == LEX_NOT) {
		/* libpcap's "host not 10.0.0.1": the negation of the value's test */
		struct parse_node *n = new_node(p, PN_NOT, next(p));
		n->l = ids(p, start);
		return n;
	}
	if (peek(p)->kind != LEX_LPAREN)
		return value(p, start);
	next(p);
	struct parse_node *l = ids(p, NULL);
	while (peek(p)->kind == LEX_AND || peek(p)->kind == LEX_OR) {
		const struct lex_token *op = next(p);
		struct parse_node *n = new_node(p, op->kind == LEX_AND ? PN_AND : PN_OR, op);
		n->l = l;
		n->r = ids(p, NULL);
		l = n;
	}
	expect(p, LEX_RPAREN, "')'");
	return l;
}

static bool is_kw(const struct lex_token *t, int kw)
{
	return t->kind == LEX_KW && t->kw == kw;
}

/* An optional number after vlan, mpls, pppoes, geneve, vxlan. */
static void optional_num(struct parser *p, struct parse_node *n)
{
	if (peek(p)->kind == LEX_NUM) {
		n->id = next(p);
		end_span(p, n);
	}
}

static struct parse_node *need_num(struct parser *p, struct parse_node *n)
{
	const struct lex_token *t = peek(p);
	if (t->kind != LEX_NUM)
		syntax_error(p, t);
	n->id = next(p);
	end_span(p, n);
	return n;
}

static struct parse_node *need_name(struct parser *p, struct parse_node *n)
{
	const struct lex_token *t = peek(p);
	if (!is_value(t) && t->kind != LEX_KW)
		syntax_error(p, t);
	n->id = next(p);
	end_span(p, n);
	return n;
}

/* Primitives named by a keyword that is not a qualifier. */
static struct parse_node *other(struct parser *p, int proto)
{
	const struct lex_token *t = next(p);
	struct parse_node *n = prim(p, t, t->kw);
	n->proto = proto;
	p->q_valid = false;
	switch (t->kw) {
	case KW_LESS: case KW_GREATER: case KW_IFINDEX: case KW_RNR: case KW_RULENUM:
	case KW_SRNR: case KW_SUBRULENUM:
		return need_num(p, n);
	case KW_VLAN: case KW_MPLS: case KW_PPPOES: case KW_GENEVE: case KW_VXLAN:
		optional_num(p, n);
		return n;
	case KW_IFNAME: case KW_ON: case KW_REASON: case KW_ACTION: case KW_TYPE: case KW_RULESET:
	case KW_SUBTYPE: case KW_DIR:
		need_name(p, n);
		if (t->kw == KW_TYPE && peek(p)->kind == LEX_KW && peek(p)->kw == KW_SUBTYPE) {
			next(p);
			const struct lex_token *s = peek(p);
			if (!is_value(s))
				syntax_error(p, s);
			n->id2 = next(p);
			end_span(p, n);
		}
		return n;
	case KW_LLC:
		/* a type name; "rnr" is also pflog's keyword */
		if (peek(p)->kind == LEX_NAME || is_kw(peek(p), KW_RNR))
			n->id = next(p);
		end_span(p, n);
		return n;
	case KW_BYTE: {
		/* byte N op V: op is one of & | < > = (libpcap's byteop) */
		need_num(p, n);
		const struct lex_token *op = peek(p);
		if (op->kind != LEX_BAND && op->kind != LEX_BOR && op->kind != LEX_LT &&
		    op->kind != LEX_GT && op->kind != LEX_EQ)
			syntax_error(p, op);
		n->relop = next(p)->kind;
		const struct lex_token *v = peek(p);
		if (v->kind != LEX_NUM)
			syntax_error(p, v);
		n->id2 = next(p);
		end_span(p, n);
		return n;
	}
	case KW_PPPOED: case KW_INBOUND: case KW_OUTBOUND: case KW_BROADCAST:
	case KW_MULTICAST:
		return n;
	default:
		syntax_error(p, t);
	}
}

/*
 * head: [proto] [dir] [type] value | proto (alone) | proto broadcast|multicast
 *       | proto proto value | proto protochain value
 */
static struct parse_node *qualified(struct parser *p)
{
	const struct lex_token *start = peek(p);
	int proto = 0, dir = 0, type = 0;
	if (start->kind == LEX_KW && proto_kw_class(start->kw) == KWC_P) {
		proto = next(p)->kw;
		const struct lex_token *t = peek(p);
		if (is_kw(t, KW_BROADCAST) || is_kw(t, KW_MULTICAST) || is_kw(t, KW_TYPE) ||
		    is_kw(t, KW_SUBTYPE) || is_kw(t, KW_DIR) || is_kw(t, KW_VLAN)) {
			struct parse_node *n = other(p, proto);
			n->col = start->col;
			end_span(p, n);
			return n;
		}
		if (!(t->kind == LEX_KW && (proto_kw_class(t->kw) == KWC_D ||
					     proto_kw_class(t->kw) == KWC_T))) {
			struct parse_node *n = prim(p, start, 0);
			n->proto = proto;
			p->q_valid = false;
			return n;
		}
	}
	const struct lex_token *t = peek(p);
	if (t->kind == LEX_KW && proto_kw_class(t->kw) == KWC_D) {
		next(p);
		dir = t->kw;
		if ((t->kw == KW_SRC || t->kw == KW_DST) &&
		    (peek(p)->kind == LEX_OR || peek(p)->kind == LEX_AND) &&
		    is_kw(peek_at(p, 1), t->kw == KW_SRC ? KW_DST : KW_SRC)) {
			dir = peek(p)->kind == LEX_OR ? DIR_SRC_OR_DST : DIR_SRC_AND_DST;
			next(p);
			next(p);
		}
	}
	t = peek(p);
	if (t->kind == LEX_KW && proto_kw_class(t->kw) == KWC_T) {
		/* libpcap's grammar has no direction before proto/protochain */
		if (dir && (t->kw == KW_PROTO || t->kw == KW_PROTOCHAIN))
			syntax_error(p, t);
		next(p);
		type = t->kw;
	}
	p->q_proto = proto;
	p->q_dir = dir;
	p->q_type = type;
	p->q_valid = true;
	if (type == KW_PROTO || type == KW_PROTOCHAIN) {
		/* the value may be a protocol keyword only when escaped; accept names */
		t = peek(p);
		if (t->kind == LEX_KW)
			fail_at(p, t, "syntax error: '%s' is a keyword; write '\\%s'", t->text,
				t->text);
	}
	struct parse_node *n = ids(p, start);
	if (n->kind == PN_PRIM) {
		n->col = start->col;
		end_span(p, n);
	}
	return n;
}

static struct parse_node *expr(struct parser *p);

/* term: not term | '(' expr ')' | relation | head | other | value (implied qualifiers) */
static struct parse_node *term(struct parser *p)
{
	const struct lex_token *t = peek(p);
	if (t->kind == LEX_NOT) {
		next(p);
		struct parse_node *n = new_node(p, PN_NOT, t);
		n->l = term(p);
		return n;
	}
	if (is_kw(t, KW_BYTE))
		return other(p, 0);
	if (looks_like_relation(p))
		return relation(p);
	if (t->kind == LEX_LPAREN) {
		next(p);
		struct parse_node *n = expr(p);
		expect(p, LEX_RPAREN, "')'");
		return n;
	}
	if (t->kind == LEX_KW) {
		int cls = proto_kw_class(t->kw);
		if (cls == KWC_P || cls == KWC_D || cls == KWC_T)
			return qualified(p);
		if (t->kw == KW_LEN || t->kw == KW_MASK)
			syntax_error(p, peek_at(p, 1));
		return other(p, 0);
	}
	if (is_value(t)) {
		if (!p->q_valid)
			fail_at(p, t, "syntax error: '%s' needs a qualifier (host, net, port ...)",
				t->text);
		return value(p, NULL);
	}
	syntax_error(p, t);
}

/* expr: term { (and|or) term }, left-associative, one precedence */
static struct parse_node *expr(struct parser *p)
{
	struct parse_node *l = term(p);
	while (peek(p)->kind == LEX_AND || peek(p)->kind == LEX_OR) {
		const struct lex_token *op = next(p);
		struct parse_node *n = new_node(p, op->kind == LEX_AND ? PN_AND : PN_OR, op);
		n->l = l;
		n->r = term(p);
		l = n;
	}
	return l;
}

struct parse_node *parse_run(struct compile_ctx *cc, const struct lex_tokens *toks)
{
	struct parser p = {.cc = cc, .t = toks->v, .n = toks->n, .q_valid = true};
	if (peek(&p)->kind == LEX_EOF)
		return NULL;
	struct parse_node *root = expr(&p);
	if (peek(&p)->kind != LEX_EOF)
		syntax_error(&p, peek(&p));
	return root;
}
