/*
 * exprgen.c - grammar-based pcap-filter expressions and branch-directed
 * packets (see exprgen.h).
 *
 * Invariants: every production has a leaf as its choice 0, and below
 * max_depth only leaves are chosen, so generation always ends; text never
 * exceeds the caller's buffer (an expression that would is replaced by a
 * leaf); the same choices give the same text.  exprgen_direct only reads the
 * caller's packet and hands out copies no longer than EXPRGEN_PKT_MAX.
 */
#include "exprgen.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Choices                                                             */

void exprgen_init_bytes(struct exprgen *g, const uint8_t *data, size_t len)
{
	memset(g, 0, sizeof *g);
	g->data = data;
	g->len = len;
	g->max_depth = 5;
}

void exprgen_init_seed(struct exprgen *g, uint64_t seed)
{
	memset(g, 0, sizeof *g);
	g->rng = seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
	if (!g->rng)
		g->rng = 1;
	g->max_depth = 4;
}

static uint32_t next_raw(struct exprgen *g)
{
	if (g->data) {
		if (g->pos >= g->len)
			return 0;
		return g->data[g->pos++];
	}
	uint64_t x = g->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	g->rng = x;
	return (uint32_t)(x >> 24);
}

uint32_t exprgen_choose(struct exprgen *g, uint32_t n)
{
	if (n <= 1)
		return 0;
	return next_raw(g) % n;
}

uint32_t exprgen_u32(struct exprgen *g)
{
	if (!g->data)
		return next_raw(g);
	uint32_t v = 0;
	for (int i = 0; i < 4; i++)
		v = v << 8 | (next_raw(g) & 0xff);
	return v;
}

/* ------------------------------------------------------------------ */
/* Text                                                                */

struct out {
	char *buf;
	size_t n, cap;
	bool full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	if (o->full)
		return;
	va_list ap;
	va_start(ap, fmt);
	int w = vsnprintf(o->buf + o->n, o->cap - o->n, fmt, ap);
	va_end(ap);
	if (w < 0 || (size_t)w >= o->cap - o->n) {
		o->full = true;
		o->buf[o->n] = 0;
		return;
	}
	o->n += (size_t)w;
}

#define PICK(g, arr) (arr)[exprgen_choose((g), sizeof(arr) / sizeof((arr)[0]))]

/* Constants near the edges where folding and comparisons go wrong. */
static uint32_t gen_const(struct exprgen *g)
{
	static const uint32_t edges[] = {
		0, 1, 2, 3, 4, 6, 7, 8, 14, 15, 16, 17, 20, 31, 32, 33, 53, 63, 64, 80, 100,
		127, 128, 255, 256, 443, 1500, 4095, 0x8000, 0xffff, 0x10000, 0x7fffffff,
		0x80000000u, 0x80000001u, 0xfffffffeu, 0xffffffffu,
	};
	switch (exprgen_choose(g, 4)) {
	case 0:
	case 1:
		return PICK(g, edges);
	case 2:
		return exprgen_choose(g, 256);
	default:
		return exprgen_u32(g);
	}
}

static void put_const(struct exprgen *g, struct out *o, uint32_t v)
{
	if (exprgen_choose(g, 4) == 3)
		put(o, "0x%x", v);
	else
		put(o, "%u", v);
}

static const char *const load_protos[] = {
	"ether", "link", "ip", "ip6", "tcp", "udp", "icmp", "arp", "igmp", "sctp", "icmp6",
};

static void gen_arith(struct exprgen *g, struct out *o, int depth);

/* proto [ index ] or proto [ index : size ] */
static void gen_load(struct exprgen *g, struct out *o, int depth)
{
	static const unsigned sizes[] = {1, 2, 4};
	put(o, "%s[", PICK(g, load_protos));
	if (depth < g->max_depth && exprgen_choose(g, 5) == 4)
		gen_arith(g, o, depth + 1);
	else
		put(o, "%u", exprgen_choose(g, 4) == 3 ? exprgen_choose(g, 200)
						       : exprgen_choose(g, 40));
	if (exprgen_choose(g, 2))
		put(o, ":%u", PICK(g, sizes));
	put(o, "]");
}

/*
 * arith: constant | len | load | arith op arith | ( arith op arith ) | - arith
 * Division and modulo by a constant, by zero and by a loaded value appear.
 */
static void gen_arith(struct exprgen *g, struct out *o, int depth)
{
	static const char *const ops[] = {"+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>"};
	uint32_t c = exprgen_choose(g, depth >= g->max_depth ? 3 : 8);
	switch (c) {
	case 0:
		put_const(g, o, gen_const(g));
		break;
	case 1:
		put(o, "len");
		break;
	case 2:
		gen_load(g, o, depth);
		break;
	case 3:
	case 4: {
		const char *op = PICK(g, ops);
		/*
		 * libpcap 1.10 gives % and ^ no precedence (they take everything to
		 * their right): parenthesized, the text means the same to every parser.
		 */
		bool paren = c == 3 || op[0] == '%' || op[0] == '^';
		if (paren)
			put(o, "(");
		gen_arith(g, o, depth + 1);
		put(o, " %s ", op);
		if (op[0] == '<' || op[0] == '>') {
			put(o, "%u", exprgen_choose(g, 34));
		} else if ((op[0] == '/' || op[0] == '%') && exprgen_choose(g, 3) != 0) {
			static const uint32_t divs[] = {0, 1, 2, 3, 4, 7, 8, 16, 255, 256,
							0x80000000u, 0xffffffffu};
			put(o, "%u", PICK(g, divs));
		} else {
			gen_arith(g, o, depth + 1);
		}
		if (paren)
			put(o, ")");
		break;
	}
	case 5:
		/* (- x): libpcap 1.10 reads "- x % y" as "-(x % y)". */
		put(o, "(-");
		gen_arith(g, o, depth + 1);
		put(o, ")");
		break;
	case 6:
		put(o, "(");
		gen_arith(g, o, depth + 1);
		put(o, ")");
		break;
	default:
		gen_load(g, o, depth + 1);
		break;
	}
}

static void put_ip4(struct exprgen *g, struct out *o)
{
	static const char *const fixed[] = {"10.0.0.1", "192.168.1.1", "127.0.0.1", "0.0.0.0",
					    "255.255.255.255", "224.0.0.1", "172.16.5.4"};
	if (exprgen_choose(g, 2))
		put(o, "%s", PICK(g, fixed));
	else
		put(o, "%u.%u.%u.%u", exprgen_choose(g, 256), exprgen_choose(g, 256),
		    exprgen_choose(g, 256), exprgen_choose(g, 256));
}

static void put_ip6(struct exprgen *g, struct out *o)
{
	static const char *const fixed[] = {"::1", "fe80::1", "2001:db8::1", "::", "ff02::1",
					    "2001:db8:0:1::53"};
	put(o, "%s", PICK(g, fixed));
}

static void put_mac(struct exprgen *g, struct out *o)
{
	static const char *const fixed[] = {"00:11:22:33:44:55", "ff:ff:ff:ff:ff:ff",
					    "01:00:5e:00:00:01", "00:00:00:00:00:00"};
	if (exprgen_choose(g, 2))
		put(o, "%s", PICK(g, fixed));
	else
		put(o, "%02x:%02x:%02x:%02x:%02x:%02x", exprgen_choose(g, 256),
		    exprgen_choose(g, 256), exprgen_choose(g, 256), exprgen_choose(g, 256),
		    exprgen_choose(g, 256), exprgen_choose(g, 256));
}

static const char *const dirs[] = {"", "src ", "dst ", "src or dst ", "src and dst "};

static void gen_net(struct exprgen *g, struct out *o)
{
	uint32_t c = exprgen_choose(g, 4);
	put(o, "%s%s", c == 3 ? "ip6 " : "", PICK(g, dirs));
	switch (c) {
	case 0: {
		unsigned bits = exprgen_choose(g, 33);
		uint32_t a = exprgen_u32(g);
		a = bits ? a & ~(uint32_t)0 << (32 - bits) : 0;
		put(o, "net %u.%u.%u.%u/%u", a >> 24, a >> 16 & 255, a >> 8 & 255, a & 255, bits);
		break;
	}
	case 1:
		put(o, "net %u.%u", exprgen_choose(g, 256), exprgen_choose(g, 256));
		break;
	case 2:
		put(o, "net 10.%u.0.0 mask 255.255.0.0", exprgen_choose(g, 256));
		break;
	default: {
		static const char *const v6[] = {"fe80::/10", "2001:db8::/32", "::/0", "ff00::/8",
						 "::1/128"};
		put(o, "net %s", PICK(g, v6));
		break;
	}
	}
}

static void gen_port(struct exprgen *g, struct out *o)
{
	static const char *const protos[] = {"", "tcp ", "udp ", "sctp "};
	static const uint32_t ports[] = {0, 20, 22, 53, 80, 443, 8080, 65535};
	put(o, "%s%s", PICK(g, protos), PICK(g, dirs));
	uint32_t a = exprgen_choose(g, 2) ? PICK(g, ports) : exprgen_u32(g) & 0xffff;
	if (exprgen_choose(g, 3) == 2) {
		uint32_t b = exprgen_choose(g, 2) ? a + exprgen_choose(g, 100)
						  : exprgen_u32(g) & 0xffff;
		put(o, "portrange %u-%u", a, b > 65535 ? 65535 : b);
	} else {
		put(o, "port %u", a);
	}
}

static void gen_host(struct exprgen *g, struct out *o)
{
	switch (exprgen_choose(g, 5)) {
	case 0:
	case 1:
		put(o, "%s%shost ", exprgen_choose(g, 3) == 2 ? "ip " : "", PICK(g, dirs));
		put_ip4(g, o);
		break;
	case 2:
		put(o, "%s%shost ", exprgen_choose(g, 2) ? "ip6 " : "", PICK(g, dirs));
		put_ip6(g, o);
		break;
	case 3:
		put(o, "ether %shost ", PICK(g, dirs));
		put_mac(g, o);
		break;
	default:
		put(o, "arp %shost ", PICK(g, dirs));
		put_ip4(g, o);
		break;
	}
}

static void gen_primitive(struct exprgen *g, struct out *o, int depth)
{
	static const char *const words[] = {
		"ip", "ip6", "arp", "rarp", "tcp", "udp", "icmp", "icmp6", "sctp", "igmp",
		"vlan", "mpls", "ether broadcast", "ether multicast", "ip multicast",
		"ip6 multicast", "ip proto 6", "ip6 proto 17", "proto 1", "ether proto 0x800",
		"ether proto 0x86dd", "pppoes", "llc",
	};
	static const char *const flags[] = {
		"tcp[tcpflags] & tcp-syn != 0",
		"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
		"tcp[tcpflags] & (tcp-fin|tcp-rst) != 0",
		"tcp[13] & 2 != 0",
		"icmp[icmptype] == icmp-echo",
		"icmp[icmptype] != icmp-echoreply",
		"tcp[tcpflags] == 0x12",
	};
	static const char *const relops[] = {"=", "==", "!=", "<", "<=", ">", ">="};
	switch (exprgen_choose(g, 12)) {
	case 0:
		put(o, "%s", PICK(g, words));
		break;
	case 1:
		gen_host(g, o);
		break;
	case 2:
		gen_net(g, o);
		break;
	case 3:
		gen_port(g, o);
		break;
	case 4:
	case 5:
	case 6:
		gen_arith(g, o, depth);
		put(o, " %s ", PICK(g, relops));
		gen_arith(g, o, depth);
		break;
	case 7:
		put(o, "%s", PICK(g, flags));
		break;
	case 8:
		put(o, "%s %u", exprgen_choose(g, 2) ? "vlan" : "mpls", exprgen_choose(g, 2)
			? exprgen_choose(g, 8) * 50 : exprgen_u32(g) & 0xfff);
		break;
	case 9:
		put(o, "%s %u", exprgen_choose(g, 2) ? "greater" : "less", gen_const(g) & 0xffff);
		break;
	case 10:
		put(o, "%s proto %u", exprgen_choose(g, 2) ? "ip" : "ip6", exprgen_choose(g, 2)
			? (uint32_t)PICK(g, ((const uint8_t[]){1, 6, 17, 47, 50, 58, 132}))
			: exprgen_choose(g, 256));
		break;
	default:
		put(o, "len %s %u", PICK(g, relops), gen_const(g));
		break;
	}
}

/* bool: primitive | bool and bool | bool or bool | not bool | ( bool ) */
static void gen_bool(struct exprgen *g, struct out *o, int depth)
{
	uint32_t c = exprgen_choose(g, depth >= g->max_depth ? 1 : 9);
	switch (c) {
	case 0:
	case 1:
	case 2:
		gen_primitive(g, o, depth);
		break;
	case 3:
	case 4:
		gen_bool(g, o, depth + 1);
		put(o, exprgen_choose(g, 3) == 2 ? " && " : " and ");
		gen_bool(g, o, depth + 1);
		break;
	case 5:
	case 6:
		gen_bool(g, o, depth + 1);
		put(o, exprgen_choose(g, 3) == 2 ? " || " : " or ");
		gen_bool(g, o, depth + 1);
		break;
	case 7:
		put(o, exprgen_choose(g, 2) ? "not " : "!");
		gen_bool(g, o, depth + 1);
		break;
	default:
		put(o, "(");
		gen_bool(g, o, depth + 1);
		put(o, ")");
		break;
	}
}

size_t exprgen_expr(struct exprgen *g, char *out, size_t cap)
{
	struct out o = {out, 0, cap, false};
	out[0] = 0;
	gen_bool(g, &o, 0);
	if (o.full) {
		o.n = 0;
		o.full = false;
		out[0] = 0;
		gen_primitive(g, &o, g->max_depth);
		if (o.full) {
			snprintf(out, cap, "ip");
			return strlen(out);
		}
	}
	return o.n;
}

const int exprgen_linktypes[] = {
	1,   /* EN10MB */
	12,  /* RAW */
	113, /* LINUX_SLL */
	276, /* LINUX_SLL2 */
	0,   /* NULL */
	108, /* LOOP */
	105, /* IEEE802_11 */
	127, /* IEEE802_11_RADIO */
	9,   /* PPP */
	10,  /* FDDI */
	6,   /* IEEE802 */
	117, /* PFLOG */
	104, /* C_HDLC */
	228, /* IPV4 */
};
const size_t exprgen_nlinktypes = sizeof exprgen_linktypes / sizeof exprgen_linktypes[0];

/* ------------------------------------------------------------------ */
/* Branch-directed packets                                             */

#define SRC_OPS 6
#define MAX_JUMPS 96
#define MAX_LOADS 64

enum { SRC_NONE, SRC_PKT, SRC_LEN };

/* Where a value came from, and the ALU operations applied since. */
struct src {
	uint8_t kind, size, nops;
	uint32_t off;
	uint16_t op[SRC_OPS];
	uint32_t k[SRC_OPS], pre[SRC_OPS];
};

struct jump {
	uint16_t code;
	uint32_t a, b;
	struct src sa, sx;
};

struct walk {
	struct src a, x, m[BPFKIT_MEMWORDS];
	uint32_t prev_a, prev_x;
	struct jump jumps[MAX_JUMPS];
	size_t njumps;
	uint32_t load_off[MAX_LOADS], load_size[MAX_LOADS];
	size_t nloads;
	bool oob;
	uint32_t oob_off, oob_size;
	uint32_t caplen;
};

static void src_push(struct src *s, uint16_t op, uint32_t k, uint32_t pre)
{
	if (s->kind == SRC_NONE)
		return;
	if (s->nops == SRC_OPS) {
		s->kind = SRC_NONE;
		return;
	}
	s->op[s->nops] = op;
	s->k[s->nops] = k;
	s->pre[s->nops++] = pre;
}

static uint32_t load_size(uint16_t code)
{
	return BPFKIT_SIZE(code) == BPFKIT_W ? 4 : BPFKIT_SIZE(code) == BPFKIT_H ? 2 : 1;
}

static void walk_step(void *ctx, const struct bpfkit_trace *t)
{
	struct walk *w = ctx;
	uint16_t c = t->insn.code;
	uint32_t k = t->insn.k;
	switch (BPFKIT_CLASS(c)) {
	case BPFKIT_LD:
	case BPFKIT_LDX: {
		struct src s = {0};
		uint32_t mode = BPFKIT_MODE(c);
		if (mode == BPFKIT_ABS || mode == BPFKIT_IND || mode == BPFKIT_MSH) {
			uint64_t off = mode == BPFKIT_IND ? (uint64_t)w->prev_x + k : k;
			uint32_t size = load_size(c);
			uint32_t o32 = off > 0xffffffffu ? 0xffffffffu : (uint32_t)off;
			if (off > w->caplen || size > w->caplen - off) {
				w->oob = true;
				w->oob_off = o32;
				w->oob_size = size;
			} else if (w->nloads < MAX_LOADS) {
				w->load_off[w->nloads] = o32;
				w->load_size[w->nloads++] = size;
			}
			if (mode != BPFKIT_MSH) {
				s.kind = SRC_PKT;
				s.off = o32;
				s.size = (uint8_t)size;
			}
		} else if (mode == BPFKIT_LEN) {
			s.kind = SRC_LEN;
		} else if (mode == BPFKIT_MEM && k < BPFKIT_MEMWORDS) {
			s = w->m[k];
		}
		if (BPFKIT_CLASS(c) == BPFKIT_LD)
			w->a = s;
		else
			w->x = s;
		break;
	}
	case BPFKIT_ST:
		if (k < BPFKIT_MEMWORDS)
			w->m[k] = w->a;
		break;
	case BPFKIT_STX:
		if (k < BPFKIT_MEMWORDS)
			w->m[k] = w->x;
		break;
	case BPFKIT_ALU: {
		uint32_t b = BPFKIT_SRC(c) == BPFKIT_X ? w->prev_x : k;
		src_push(&w->a, BPFKIT_OP(c), b, w->prev_a);
		break;
	}
	case BPFKIT_JMP:
		if (BPFKIT_OP(c) != BPFKIT_JA && w->njumps < MAX_JUMPS) {
			struct jump *j = &w->jumps[w->njumps++];
			j->code = c;
			j->a = t->a;
			j->b = BPFKIT_SRC(c) == BPFKIT_X ? t->x : k;
			j->sa = w->a;
			memset(&j->sx, 0, sizeof j->sx);
			if (BPFKIT_SRC(c) == BPFKIT_X)
				j->sx = w->x;
		}
		break;
	case BPFKIT_MISC:
		if (BPFKIT_MISCOP(c) == BPFKIT_TAX)
			w->x = w->a;
		else
			w->a = w->x;
		break;
	default:
		break;
	}
	w->prev_a = t->a;
	w->prev_x = t->x;
}

/* The value to load so that, after the remembered operations, the result is t. */
static uint32_t src_solve(const struct src *s, uint32_t t)
{
	for (int i = s->nops - 1; i >= 0; i--) {
		uint32_t k = s->k[i], pre = s->pre[i];
		switch (s->op[i]) {
		case BPFKIT_ADD: t -= k; break;
		case BPFKIT_SUB: t += k; break;
		case BPFKIT_XOR: t ^= k; break;
		case BPFKIT_AND: t = (t & k) | (pre & ~k); break;
		case BPFKIT_OR: t = (t & ~k) | (pre & k); break;
		case BPFKIT_LSH:
			t = k == 0 ? t : k < 32 ? (t >> k) | (pre & ~(0xffffffffu >> k)) : pre;
			break;
		case BPFKIT_RSH:
			t = k == 0 ? t : k < 32 ? (t << k) | (pre & ((1u << k) - 1)) : pre;
			break;
		case BPFKIT_MUL: t = k ? t / k : pre; break;
		case BPFKIT_DIV: t = k ? t * k + pre % k : pre; break;
		case BPFKIT_MOD: t = k ? pre - pre % k + t % k : pre; break;
		case BPFKIT_NEG: t = 0u - t; break;
		default: return pre;
		}
	}
	return t;
}

struct emitter {
	const uint8_t *data;
	uint32_t caplen, wirelen;
	size_t made, max;
	exprgen_pkt_fn fn;
	void *ctx;
	uint8_t buf[EXPRGEN_PKT_MAX];
};

/* Offers a copy of the base cut or zero-extended to caplen, with one field overwritten. */
static void emit(struct emitter *e, uint32_t caplen, uint32_t wirelen, uint32_t off,
		 uint32_t size, uint32_t value)
{
	if (e->made >= e->max || caplen > EXPRGEN_PKT_MAX)
		return;
	uint32_t keep = e->caplen < caplen ? e->caplen : caplen;
	if (keep)
		memcpy(e->buf, e->data, keep);
	memset(e->buf + keep, 0, caplen - keep);
	if (size && off <= caplen && size <= caplen - off) {
		for (uint32_t i = 0; i < size; i++)
			e->buf[off + i] = (uint8_t)(value >> (8 * (size - 1 - i)));
	}
	e->made++;
	e->fn(e->ctx, e->buf, caplen, wirelen < caplen ? caplen : wirelen);
}

static void emit_value(struct emitter *e, const struct src *s, uint32_t target)
{
	uint32_t v = src_solve(s, target);
	if (s->kind == SRC_LEN) {
		emit(e, e->caplen < v ? e->caplen : v, v, 0, 0, 0);
	} else if (s->kind == SRC_PKT && s->off <= EXPRGEN_PKT_MAX - (uint32_t)s->size) {
		uint32_t need = s->off + s->size;
		emit(e, e->caplen > need ? e->caplen : need, e->wirelen, s->off, s->size, v);
	}
}

static void emit_cut(struct emitter *e, uint64_t cut)
{
	if (cut <= e->caplen)
		emit(e, (uint32_t)cut, e->wirelen, 0, 0, 0);
}

size_t exprgen_direct(const struct bpfkit_insn *insns, size_t n, const uint8_t *data,
		      uint32_t caplen, uint32_t wirelen, size_t max, exprgen_pkt_fn fn,
		      void *ctx)
{
	static _Thread_local struct walk w;
	static _Thread_local struct emitter e;
	memset(&w, 0, sizeof w);
	w.caplen = caplen;
	bpfkit_interp_trace(insns, n, data, caplen, wirelen, NULL, walk_step, &w);
	e.data = data;
	e.caplen = caplen > EXPRGEN_PKT_MAX ? EXPRGEN_PKT_MAX : caplen;
	e.wirelen = wirelen;
	e.made = 0;
	e.max = max;
	e.fn = fn;
	e.ctx = ctx;
	for (size_t i = 0; i < w.njumps; i++) {
		const struct jump *j = &w.jumps[i];
		if (BPFKIT_OP(j->code) == BPFKIT_JSET) {
			emit_value(&e, &j->sa, j->a | j->b);
			emit_value(&e, &j->sa, j->a & ~j->b);
			emit_value(&e, &j->sa, (j->a & ~j->b) | (j->b & (0u - j->b)));
		} else {
			emit_value(&e, &j->sa, j->b);
			emit_value(&e, &j->sa, j->b + 1);
			emit_value(&e, &j->sa, j->b - 1);
		}
		if (BPFKIT_SRC(j->code) == BPFKIT_X) {
			emit_value(&e, &j->sx, j->a);
			emit_value(&e, &j->sx, j->a + 1);
			emit_value(&e, &j->sx, j->a - 1);
		}
	}
	for (size_t i = 0; i < w.nloads; i++) {
		uint64_t end = (uint64_t)w.load_off[i] + w.load_size[i];
		emit_cut(&e, w.load_off[i]);
		emit_cut(&e, end - 1);
	}
	if (w.oob && w.oob_off <= EXPRGEN_PKT_MAX - w.oob_size - 40) {
		emit(&e, w.oob_off + w.oob_size, wirelen, 0, 0, 0);
		emit(&e, w.oob_off + w.oob_size + 40, wirelen, 0, 0, 0);
	}
	return e.made;
}

/* ------------------------------------------------------------------ */
/* Generated packets                                                   */

const struct exprgen_pkts *exprgen_packets(int dlt, uint64_t seed)
{
	static struct exprgen_pkts cache[EXPRGEN_GEN_CACHE];
	static int ncache;
	int gdlt = bpfkit_gen_supported((uint32_t)dlt) ? dlt : 1;
	for (int i = 0; i < ncache; i++)
		if (cache[i].dlt == gdlt && cache[i].seed == seed)
			return &cache[i];
	if (ncache == EXPRGEN_GEN_CACHE)
		return NULL;
	struct exprgen_pkts *p = &cache[ncache];
	struct bpfkit_gen *g = NULL;
	struct bpfkit_error err;
	if (bpfkit_gen_new((uint32_t)gdlt, seed, NULL, &g, &err) != 0)
		return NULL;
	for (int i = 0; i < EXPRGEN_GEN_N; i++) {
		struct bpfkit_packet pkt;
		if (bpfkit_gen_next(g, p->data[i], sizeof p->data[i], &pkt, &err) != 0) {
			bpfkit_gen_free(g);
			return NULL;
		}
		p->caplen[i] = pkt.caplen;
		p->wirelen[i] = pkt.wirelen;
	}
	bpfkit_gen_free(g);
	p->dlt = gdlt;
	p->seed = seed;
	ncache++;
	return p;
}
