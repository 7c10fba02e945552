/*
 * codegen.c - AST -> IR for one link type, with libpcap's meaning.
 *
 * Generation runs backwards with continuations: gen(node, t, f) returns the
 * entry block of code that goes to block t when node holds and to f when it
 * does not, so "a and b" is gen(a, gen(b, t, f), f) and nothing is copied.
 * Each test is one block that loads what it compares (no value lives across
 * blocks; ir.c's passes rely on it).  The order of tests and loads follows
 * libpcap's unoptimized code, because a load past the captured bytes rejects
 * the whole packet: the order decides verdicts on short packets.
 *
 * Encapsulations ("vlan", "mpls", "pppoes") move the offsets of everything
 * written after them in the expression, whatever the and/or structure - as in
 * libpcap.  A first walk in textual order records the layer state each
 * primitive sees (enc[], by the primitive's sequence number).
 */
#include "internal.h"
#include "proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum enc_kind { ENC_LINK, ENC_PPP, ENC_MPLS };

struct enc {
	enum enc_kind kind;
	enum proto_ltkind lt;   /* the link's kind (ENC_LINK) */
	int off_type;           /* protocol field (ENC_LINK, ENC_PPP) */
	int off_nl;             /* network layer */
	int vlans;
	int geneve;             /* after this many geneves: offsets into the inner packet */
};

struct gen {
	struct compile_ctx *cc;
	struct ir_func *fn;
	const struct proto_link *link;
	struct enc *encs;       /* by parse_node.seq */
	int nenc;
	struct enc e;           /* the state of the primitive being generated */
	const struct parse_node *at;  /* for error positions */
	bool after_geneve;      /* what gen() builds runs only after a geneve matched */
};

static _Noreturn BK_PRINTF(2, 3) void fail(struct gen *g, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (g->at)
		compile_error(g->cc, g->at->col, g->at->span, "%s", msg);
	compile_error(g->cc, 0, 0, "%s", msg);
}

/* An error whose caret is under one token (a value out of range ...). */
static _Noreturn BK_PRINTF(3, 4) void fail_tok(struct gen *g, const struct lex_token *tok,
					       const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	compile_error(g->cc, tok->col, tok->span, "%s", msg);
}

/* ---- blocks ---- */

static int blk(struct gen *g)
{
	int b = ir_block_new(g->fn);
	if (b < 0)
		compile_error(g->cc, 0, 0, "out of memory");
	return b;
}

static void st(struct gen *g, int b, uint16_t code, uint32_t k)
{
	ir_stmt_add(g->fn, b, code, k);
}

static uint16_t ldsize(int size)
{
	return size == 1 ? BPFKIT_B : size == 2 ? BPFKIT_H : BPFKIT_W;
}

/* relop -> (jump op, swap targets) */
static int jump(struct gen *g, int b, int relop, bool x, uint32_t k, int t, int f)
{
	uint16_t src = x ? BPFKIT_X : BPFKIT_K;
	switch (relop) {
	case LEX_EQ: return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JEQ | src, k, t, f);
	case LEX_NE: return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JEQ | src, k, f, t);
	case LEX_GT: return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JGT | src, k, t, f);
	case LEX_GE: return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JGE | src, k, t, f);
	case LEX_LT: return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JGE | src, k, f, t);
	case LEX_LE: return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JGT | src, k, f, t);
	case LEX_BAND: return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JSET | src, k, t, f);
	default: return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JEQ | src, k, t, f);
	}
}

/* ld size [off]; [and #mask]; compare k */
static int test(struct gen *g, int size, uint32_t off, uint32_t mask, int relop, uint32_t k,
		int t, int f)
{
	int b = blk(g);
	codegen_link_ld(g->fn, b, size, off);   /* tagged offsets: codegen_link.c */
	if (mask != 0xffffffffu)
		st(g, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, mask);
	return jump(g, b, relop, false, k, t, f);
}

/* ldxb 4*([nl]&0xf); ld size [x + nl + off]; compare k */
static int test_x(struct gen *g, int size, uint32_t off, int relop, uint32_t k, int t, int f)
{
	int b = blk(g);
	codegen_link_ldx_iphl(g->fn, b, (uint32_t)g->e.off_nl);
	st(g, b, BPFKIT_LD | BPFKIT_IND | ldsize(size),
	   ((uint32_t)g->e.off_nl + off) & ~CODEGEN_VAR_MASK);
	return jump(g, b, relop, false, k, t, f);
}

/*
 * The same over IPv6 (a fixed 40-byte header): X = 40 and the load relative
 * to X, so that the tests after it are the IPv4 ones, block for block, and
 * the optimizer's tail merging shares them (the loads read the same bytes as
 * [nl + 40 + off] and fail on the same packets).  With a variable network
 * offset, the absolute load.
 */
static int test_x6(struct gen *g, int size, uint32_t off, int relop, uint32_t k, int t, int f)
{
	uint32_t nlo = (uint32_t)g->e.off_nl;
	if (nlo & CODEGEN_VAR_MASK)
		return test(g, size, nlo + 40 + off, 0xffffffffu, relop, k, t, f);
	int b = blk(g);
	st(g, b, BPFKIT_LDX | BPFKIT_IMM, 40);
	st(g, b, BPFKIT_LD | BPFKIT_IND | ldsize(size), nlo + off);
	return jump(g, b, relop, false, k, t, f);
}

/* ---- link-layer protocol checks ---- */

static uint32_t host_u32(uint32_t v)
{
	/* the value "ld [0]" reads from a host-order 32-bit field holding v */
	const union { uint16_t s; uint8_t b[2]; } probe = {1};
	if (probe.b[0])
		return (v >> 24) | ((v >> 8) & 0xff00) | ((v << 8) & 0xff0000) | (v << 24);
	return v;
}

static int ppp_proto(uint32_t etype)
{
	switch (etype) {
	case ETYPE_IP: return 0x21;
	case ETYPE_IPV6: return 0x57;
	case ETYPE_ATALK: return 0x29;
	case SAP_IPX: return 0x2b;
	case ETYPE_DECNET: return 0x27;
	case SAP_ISO: return 0x23;
	case SAP_STP: return 0x31;
	case ETYPE_NS: return 0x25;
	default: return -1;
	}
}

/*
 * The 802.2/SNAP forms libpcap also accepts on Ethernet (T = type field, N =
 * payload): a value <= 1500 is an LLC SAP after an 802.3 length (ISO, NetBEUI
 * and SAP 6 compare both SAP bytes, IPX also matches its ethertype, SNAP and
 * raw 802.3 0xffff); AppleTalk and AARP also match inside SNAP.  Linux cooked
 * v1 marks 802.2 frames with protocol 4 and raw 802.3 (IPX) with 1.
 */
static int llc_linktype(struct gen *g, uint32_t v, int t, int f)
{
	const struct enc *e = &g->e;
	uint32_t T = (uint32_t)e->off_type, N = (uint32_t)e->off_nl;
	bool sll = e->lt == LT_SLL;
	/* is802_2(yes, no): the frame carries 802.2 LLC */
#define IS8022(yes, no) (sll ? test(g, 2, T, 0xffffffffu, LEX_EQ, 4, yes, no) \
			     : test(g, 2, T, 0xffffffffu, LEX_GT, 1500, no, yes))
	switch (v) {
	case SAP_ISO: case SAP_NETBEUI: case 0x06:
		return IS8022(test(g, 2, N, 0xffffffffu, LEX_EQ, v << 8 | v, t, f), f);
	case SAP_IPX: {
		int snap0 = f;
		if (!sll) {
			int raw = test(g, 2, N, 0xffffffffu, LEX_EQ, 0xffff, t, f);
			snap0 = test(g, 1, N, 0xffffffffu, LEX_EQ, SAP_IPX, t, raw);
		}
		int snap = test(g, 4, N + 4, 0xffffffffu, LEX_EQ, ETYPE_IPX,
				test(g, 4, N, 0xffffffffu, LEX_EQ, 0xaaaa0300u, t, snap0),
				snap0);
		int llc = sll ? IS8022(test(g, 1, N, 0xffffffffu, LEX_EQ, SAP_IPX, t, snap), f)
			      : IS8022(snap, f);
		if (sll)
			llc = test(g, 2, T, 0xffffffffu, LEX_EQ, 1, t, llc);
		return test(g, 2, T, 0xffffffffu, LEX_EQ, ETYPE_IPX, t, llc);
	}
	case ETYPE_ATALK: case ETYPE_AARP: {
		uint32_t oui = v == ETYPE_ATALK ? 0xaaaa0308u : 0xaaaa0300u;
		uint32_t pid = v == ETYPE_ATALK ? 0x0007809bu : ETYPE_AARP;
		int snap = test(g, 4, N + 4, 0xffffffffu, LEX_EQ, pid,
				test(g, 4, N, 0xffffffffu, LEX_EQ, oui, t, f), f);
		return test(g, 2, T, 0xffffffffu, LEX_EQ, v, t, IS8022(snap, f));
	}
	default:
		if (v <= 1500)   /* T + 2: N, except after geneve (as libpcap) */
			return IS8022(test(g, 1, T + 2, 0xffffffffu, LEX_EQ, v, t, f), f);
		return test(g, 2, T, 0xffffffffu, LEX_EQ, v, t, f);
	}
#undef IS8022
}

/* The packet's network protocol is etype (an ethertype, or an LLC SAP <= 1500). */
static int linktype(struct gen *g, uint32_t etype, int t, int f)
{
	const struct enc *e = &g->e;
	if (e->kind == ENC_PPP) {
		int p = ppp_proto(etype);
		return p < 0 ? test(g, 2, (uint32_t)e->off_type, 0xffffffffu, LEX_EQ, etype, t, f)
			     : test(g, 2, (uint32_t)e->off_type, 0xffffffffu, LEX_EQ,
				    (uint32_t)p, t, f);
	}
	if (e->kind == ENC_MPLS) {
		uint32_t v = etype == ETYPE_IP ? 0x40 : etype == ETYPE_IPV6 ? 0x60 : 0;
		if (!v)
			fail(g, "unsupported protocol over mpls");
		int ver = test(g, 1, (uint32_t)e->off_nl, 0xf0, LEX_EQ, v, t, f);
		return test(g, 1, (uint32_t)e->off_nl - 2, 1, LEX_EQ, 1, ver, f);
	}
	switch (e->lt) {
	case LT_ETHER: case LT_SLL:
		return llc_linktype(g, etype, t, f);
	case LT_SLL2:
		return test(g, 2, (uint32_t)e->off_type, 0xffffffffu, LEX_EQ, etype, t, f);
	case LT_NULL: case LT_LOOP: {
		uint32_t af = etype == ETYPE_IP ? 2 : etype == ETYPE_IPV6 ? 10 : 0;
		if (!af)
			return f;
		return test(g, 4, 0, 0xffffffffu, LEX_EQ, e->lt == LT_NULL ? host_u32(af) : af,
			    t, f);
	}
	case LT_RAW:
		if (etype == ETYPE_IP)
			return test(g, 1, 0, 0xf0, LEX_EQ, 0x40, t, f);
		if (etype == ETYPE_IPV6)
			return test(g, 1, 0, 0xf0, LEX_EQ, 0x60, t, f);
		return f;
	case LT_IPV4:
		return etype == ETYPE_IP ? t : f;
	case LT_IPV6:
		return etype == ETYPE_IPV6 ? t : f;
	default:
		if (e->off_type != g->link->off_type) {
			/* 802.11 behind VLAN tags: the same LLC/SNAP tests, moved */
			struct proto_link moved = *g->link;
			moved.off_type = e->off_type;
			return codegen_link_linktype(g->cc, g->fn, &moved, etype, t, f);
		}
		return codegen_link_linktype(g->cc, g->fn, g->link, etype, t, f);
	}
}

/* ---- network-layer checks ---- */

static int nl(struct gen *g)
{
	return g->e.off_nl;
}

/* ip proto v */
static int ip_proto(struct gen *g, uint32_t v, int t, int f)
{
	int c = test(g, 1, (uint32_t)nl(g) + 9, 0xffffffffu, LEX_EQ, v, t, f);
	return linktype(g, ETYPE_IP, c, f);
}

/* ip6 proto v, also behind one fragment header */
static int ip6_proto(struct gen *g, uint32_t v, int t, int f)
{
	int inner = test(g, 1, (uint32_t)nl(g) + 40, 0xffffffffu, LEX_EQ, v, t, f);
	int frag = test(g, 1, (uint32_t)nl(g) + 6, 0xffffffffu, LEX_EQ, IPP_FRAG6, inner, f);
	int direct = test(g, 1, (uint32_t)nl(g) + 6, 0xffffffffu, LEX_EQ, v, t, frag);
	return linktype(g, ETYPE_IPV6, direct, f);
}

/* not a fragment after the first: (ip[6:2] & 0x1fff) == 0 */
static int nofrag(struct gen *g, int t, int f)
{
	return test(g, 2, (uint32_t)nl(g) + 6, 0xffffffffu, LEX_BAND, 0x1fff, f, t);
}

/* The transport protocols and where "proto" alone looks for them. */
enum { ON_IP = 1, ON_IP6 = 2 };
static const struct {
	int kw;
	uint32_t proto;
	int on;
} transports[] = {
	{KW_TCP, IPP_TCP, ON_IP | ON_IP6}, {KW_UDP, IPP_UDP, ON_IP | ON_IP6},
	{KW_SCTP, IPP_SCTP, ON_IP | ON_IP6}, {KW_ICMP, IPP_ICMP, ON_IP},
	{KW_ICMP6, IPP_ICMP6, ON_IP6}, {KW_IGMP, IPP_IGMP, ON_IP}, {KW_IGRP, IPP_IGRP, ON_IP},
	{KW_PIM, IPP_PIM, ON_IP | ON_IP6}, {KW_VRRP, IPP_VRRP, ON_IP},
	{KW_CARP, IPP_CARP, ON_IP}, {KW_AH, IPP_AH, ON_IP | ON_IP6},
	{KW_ESP, IPP_ESP, ON_IP | ON_IP6},
};

static int transport_row(int kw)
{
	for (size_t i = 0; i < sizeof transports / sizeof transports[0]; i++)
		if (transports[i].kw == kw)
			return (int)i;
	return -1;
}

/* "tcp", "udp", ...: the protocol over IPv4 or IPv6 as libpcap tests it. */
static int transport(struct gen *g, int row, int t, int f)
{
	uint32_t v = transports[row].proto;
	if (transports[row].on == ON_IP)
		return ip_proto(g, v, t, f);
	if (transports[row].on == ON_IP6)
		return ip6_proto(g, v, t, f);
	return ip_proto(g, v, t, ip6_proto(g, v, t, f));
}

/* ---- values ---- */

static const struct { const char *name; uint32_t etype; } ether_names[] = {
	{"ip", ETYPE_IP}, {"ip6", ETYPE_IPV6}, {"arp", ETYPE_ARP}, {"rarp", ETYPE_RARP},
	{"atalk", ETYPE_ATALK}, {"aarp", ETYPE_AARP}, {"decnet", ETYPE_DECNET},
	{"lat", ETYPE_LAT}, {"sca", ETYPE_SCA}, {"moprc", ETYPE_MOPRC},
	{"mopdl", ETYPE_MOPDL}, {"loopback", ETYPE_LOOPBACK},
	/* LLC SAPs, as libpcap's "ether proto \\NAME" falls back to them */
	{"iso", SAP_ISO}, {"stp", SAP_STP}, {"ipx", SAP_IPX}, {"netbeui", SAP_NETBEUI},
};

static uint32_t number(struct gen *g, const struct lex_token *id, const char *what)
{
	if (id->kind != LEX_NUM)
		fail(g, "%s '%s' is not a number", what, id->text);
	return id->num;
}

/*
 * A port number or service name.  As libpcap does, a name is looked up for tcp and
 * udp only, and the lookup decides the protocol (*rp, a KW_ value, 0 = any): tcp when
 * the name is known for tcp (any when udp gives the same number), else udp.
 */
static uint32_t port_value(struct gen *g, const struct lex_token *id, int *rp)
{
	*rp = 0;
	if (id->kind == LEX_NUM) {
		if (id->num > 65535)
			fail(g, "port %s out of range", id->text);
		return id->num;
	}
	if (id->kind != LEX_NAME)
		fail(g, "'%s' is not a port", id->text);
	int tp = names_port(id->text, "tcp"), up = names_port(id->text, "udp");
	if (tp >= 0) {
		*rp = up == tp ? 0 : KW_TCP;
		return (uint32_t)tp;
	}
	if (up < 0)
		fail(g, "unknown port '%s'", id->text);
	*rp = KW_UDP;
	return (uint32_t)up;
}

/* The protocol a port primitive tests: the qualifier, else what the name resolved to. */
static int port_proto(struct gen *g, int proto, int rp, const char *what, const char *text)
{
	if (rp == 0 || proto == 0)
		return proto ? proto : rp;
	if ((proto == KW_TCP || proto == KW_UDP || proto == KW_SCTP) && proto != rp)
		fail(g, "%s '%s' is %s", what, text, lex_keyword_name(rp));
	return proto;
}

/* ---- ports ---- */

struct portspec {
	int dir;
	uint32_t lo, hi;   /* a range when lo != hi or range */
	bool range;
};

/* One port field at off (0 src, 2 dst) holds the port (or is in the range). */
static int port_field(struct gen *g, bool v6, uint32_t off, const struct portspec *ps, int t,
		      int f)
{
	if (!ps->range || ps->lo == ps->hi) {   /* lo <= port <= lo is port == lo */
		if (v6)
			return test_x6(g, 2, off, LEX_EQ, ps->lo, t, f);
		return test_x(g, 2, off, LEX_EQ, ps->lo, t, f);
	}
	int hi, lo;
	if (v6) {
		hi = test_x6(g, 2, off, LEX_GT, ps->hi, f, t);
		lo = test_x6(g, 2, off, LEX_GE, ps->lo, hi, f);
	} else {
		hi = test_x(g, 2, off, LEX_GT, ps->hi, f, t);
		lo = test_x(g, 2, off, LEX_GE, ps->lo, hi, f);
	}
	return lo;
}

static int port_dir(struct gen *g, bool v6, const struct portspec *ps, int t, int f)
{
	switch (ps->dir) {
	case KW_SRC: return port_field(g, v6, 0, ps, t, f);
	case KW_DST: return port_field(g, v6, 2, ps, t, f);
	case 1001: return port_field(g, v6, 0, ps, port_field(g, v6, 2, ps, t, f), f);
	case 0: case 1000: return port_field(g, v6, 0, ps, t, port_field(g, v6, 2, ps, t, f));
	default: fail(g, "this direction does not apply to ports");
	}
}

static int ports(struct gen *g, int proto, const struct portspec *ps, int t, int f)
{
	static const int all[] = {KW_SCTP, KW_TCP, KW_UDP};
	const int *list = all;
	int n = 3;
	if (proto == KW_TCP || proto == KW_UDP || proto == KW_SCTP) {
		list = &proto;
		n = 1;
	} else if (proto == KW_IP || proto == KW_IP6) {
		/* libpcap 1.10.3 refuses these; the code below would handle them */
		fail(g, "illegal qualifier of 'port': say tcp, udp or sctp, not '%s'",
		     lex_keyword_name(proto));
	} else if (proto != 0) {
		fail(g, "'%s' modifier applied to port", lex_keyword_name(proto));
	}
	/*
	 * libpcap tests IPv6 first.  The two alternatives exclude each other on
	 * the link protocol both load first, so testing IPv4 first (the
	 * commoner) gives every packet the same verdict, one test sooner.
	 */
	int v6 = f;
	if (proto != KW_IP) {
		int next = f;
		for (int i = n - 1; i >= 0; i--) {
			uint32_t p = transports[transport_row(list[i])].proto;
			int pc = port_dir(g, true, ps, t, next);
			next = test(g, 1, (uint32_t)nl(g) + 6, 0xffffffffu, LEX_EQ, p, pc, next);
		}
		v6 = linktype(g, ETYPE_IPV6, next, f);
	}
	if (proto != KW_IP6) {
		int next = v6;
		for (int i = n - 1; i >= 0; i--) {
			uint32_t p = transports[transport_row(list[i])].proto;
			int pc = port_dir(g, false, ps, t, next);
			pc = nofrag(g, pc, next);
			next = test(g, 1, (uint32_t)nl(g) + 9, 0xffffffffu, LEX_EQ, p, pc, next);
		}
		return linktype(g, ETYPE_IP, next, v6);
	}
	return v6;
}

/* ---- DECnet addresses ---- */

/*
 * A DECnet address AREA.NODE is (AREA << 10 | NODE) in 16 bits (AREA masked to 6 bits,
 * NODE to 10, as libpcap reads them with "%d.%d"); a plain number is taken as is.  The
 * packet holds it little-endian.  libpcap's constants come from ntohs() on this
 * (little-endian) host, so the header tests below read the swapped halfwords.
 */
static uint32_t decnet_value(struct gen *g, const struct lex_token *id)
{
	uint32_t a;
	if (id->kind == LEX_NUM || (id->kind == LEX_IPV4 && id->nparts != 2 &&
				    id->nparts != -2)) {
		/* libpcap master: AREA.NODE only (1.10.3 also took a number) */
		fail_tok(g, id, "invalid DECnet address '%s' (AREA.NODE expected)", id->text);
	} else if (id->kind == LEX_IPV4) {
		char *end;
		unsigned long area = strtoul(id->text, &end, 10);
		unsigned long node = strtoul(end + 1, NULL, 10);
		if (area > 63 || node > 1023)
			fail_tok(g, id, "invalid DECnet address '%s' (area 0-63, node 0-1023)",
				 id->text);
		a = ((uint32_t)area << 10 & 0xfc00) | ((uint32_t)node & 0x3ff);
	} else {
		fail(g, "decnet name support not included, '%s' cannot be translated", id->text);
	}
	return (a & 0xff) << 8 | (a >> 8 & 0xff);
}

/*
 * One direction of a DECnet host: the four header forms (short/long, with or without
 * the pad byte), each "flags match and the address at its offset equals v", tried in
 * libpcap's order.  Offsets are from the payload start; sh/lh: after the flags byte.
 */
static int decnet_dir(struct gen *g, uint32_t v, bool src, int t, int f)
{
	uint32_t base = (uint32_t)nl(g), sh = src ? 3 : 1, lh = src ? 15 : 7;
	static const struct { int size; uint32_t mask, flags; bool pad, lng; } forms[] = {
		{1, 0x7, 0x02, false, false}, {2, 0xff07, 0x8102, true, false},
		{1, 0x7, 0x06, false, true}, {2, 0xff07, 0x8106, true, true},
	};
	int next = f;
	for (int i = 3; i >= 0; i--) {
		uint32_t off = base + 2 + (forms[i].pad ? 1 : 0) + (forms[i].lng ? lh : sh);
		int a = test(g, 2, off, 0xffffffffu, LEX_EQ, v, t, next);
		next = test(g, forms[i].size, base + 2, forms[i].mask, LEX_EQ, forms[i].flags, a,
			    next);
	}
	return linktype(g, ETYPE_DECNET, next, f);
}

static int decnet_host(struct gen *g, const struct parse_node *n, int t, int f)
{
	if (n->masklen >= 0 || n->mask)
		fail(g, "a mask does not apply to DECnet addresses");
	if (n->type == KW_NET)
		fail(g, "'decnet' is not a valid qualifier for 'net' (DECnet has host "
		     "addresses only)");
	uint32_t v = decnet_value(g, n->id);
	switch (n->dir) {
	case KW_SRC: return decnet_dir(g, v, true, t, f);
	case KW_DST: return decnet_dir(g, v, false, t, f);
	case 1001: return decnet_dir(g, v, true, decnet_dir(g, v, false, t, f), f);
	case 0: case 1000:
		return decnet_dir(g, v, true, t, decnet_dir(g, v, false, t, f));
	default:
		fail(g, "'%s' is not a valid qualifier for DECnet addresses",
		     lex_keyword_name(n->dir));
	}
}

/* ---- hosts and networks ---- */

/* IPv4 address field at off (masked) equals addr, for one direction choice. */
static int host4_dir(struct gen *g, uint32_t etype, uint32_t srcoff, uint32_t dstoff, int dir,
		     uint32_t addr, uint32_t mask, int t, int f)
{
	uint32_t base = (uint32_t)nl(g);
	int s, d;
	switch (dir) {
	case KW_SRC:
		s = test(g, 4, base + srcoff, mask, LEX_EQ, addr, t, f);
		return linktype(g, etype, s, f);
	case KW_DST:
		d = test(g, 4, base + dstoff, mask, LEX_EQ, addr, t, f);
		return linktype(g, etype, d, f);
	case 1001:
		d = test(g, 4, base + dstoff, mask, LEX_EQ, addr, t, f);
		d = linktype(g, etype, d, f);
		s = test(g, 4, base + srcoff, mask, LEX_EQ, addr, d, f);
		return linktype(g, etype, s, f);
	case 0: case 1000:
		d = test(g, 4, base + dstoff, mask, LEX_EQ, addr, t, f);
		d = linktype(g, etype, d, f);
		s = test(g, 4, base + srcoff, mask, LEX_EQ, addr, t, d);
		return linktype(g, etype, s, d);
	default:
		fail(g, "this direction does not apply to IP addresses");
	}
}

static int host4(struct gen *g, int proto, int dir, uint32_t addr, uint32_t mask, int t, int f)
{
	addr &= mask;
	switch (proto) {
	case KW_IP: return host4_dir(g, ETYPE_IP, 12, 16, dir, addr, mask, t, f);
	case KW_ARP: return host4_dir(g, ETYPE_ARP, 14, 24, dir, addr, mask, t, f);
	case KW_RARP: return host4_dir(g, ETYPE_RARP, 14, 24, dir, addr, mask, t, f);
	case 0: {
		int r = host4_dir(g, ETYPE_RARP, 14, 24, dir, addr, mask, t, f);
		int a = host4_dir(g, ETYPE_ARP, 14, 24, dir, addr, mask, t, r);
		return host4_dir(g, ETYPE_IP, 12, 16, dir, addr, mask, t, a);
	}
	default:
		fail(g, "'%s' modifier applied to an IPv4 address", lex_keyword_name(proto));
	}
}

static int addr6_at(struct gen *g, uint32_t off, const uint8_t a[16], const uint8_t m[16], int t,
		    int f)
{
	int next = t;
	for (int w = 3; w >= 0; w--) {
		uint32_t av = 0, mv = 0;
		for (int i = 0; i < 4; i++) {
			av = av << 8 | a[w * 4 + i];
			mv = mv << 8 | m[w * 4 + i];
		}
		next = test(g, 4, (uint32_t)nl(g) + off + (uint32_t)w * 4, mv, LEX_EQ, av & mv,
			    next, f);
	}
	return next;
}

static int host6(struct gen *g, int proto, int dir, const uint8_t a[16], int masklen, int t,
		 int f)
{
	if (proto != 0 && proto != KW_IP6)
		fail(g, "'%s' modifier applied to an IPv6 address", lex_keyword_name(proto));
	uint8_t m[16] = {0};
	for (int i = 0; i < masklen; i++)
		m[i / 8] |= (uint8_t)(0x80 >> (i % 8));
	int s, d;
	switch (dir) {
	case KW_SRC:
		return linktype(g, ETYPE_IPV6, addr6_at(g, 8, a, m, t, f), f);
	case KW_DST:
		return linktype(g, ETYPE_IPV6, addr6_at(g, 24, a, m, t, f), f);
	case 1001:
		d = linktype(g, ETYPE_IPV6, addr6_at(g, 24, a, m, t, f), f);
		return linktype(g, ETYPE_IPV6, addr6_at(g, 8, a, m, d, f), f);
	case 0: case 1000:
		d = linktype(g, ETYPE_IPV6, addr6_at(g, 24, a, m, t, f), f);
		s = linktype(g, ETYPE_IPV6, addr6_at(g, 8, a, m, t, d), d);
		return s;
	default:
		fail(g, "this direction does not apply to IPv6 addresses");
	}
}

static int ether_addr(struct gen *g, int dir, const uint8_t mac[6], int t, int f)
{
	if (g->link->kind == LT_WLAN)
		return codegen_wlan_addr(g->cc, g->fn, g->link, g->at, dir, mac, t, f);
	if (g->link->off_mac < 0 || g->e.kind != ENC_LINK)
		fail(g, "'ether' qualifiers need a link layer with MAC addresses, not %s",
		     g->link->name);
	uint32_t lo = (uint32_t)mac[2] << 24 | (uint32_t)mac[3] << 16 | (uint32_t)mac[4] << 8 |
		      mac[5];
	uint32_t hi = (uint32_t)mac[0] << 8 | mac[1];
	uint32_t base = (uint32_t)g->link->off_mac;
	int s, d;
	switch (dir) {
	case KW_SRC:
		s = test(g, 2, base + 6, 0xffffffffu, LEX_EQ, hi, t, f);
		return test(g, 4, base + 8, 0xffffffffu, LEX_EQ, lo, s, f);
	case KW_DST:
		d = test(g, 2, base, 0xffffffffu, LEX_EQ, hi, t, f);
		return test(g, 4, base + 2, 0xffffffffu, LEX_EQ, lo, d, f);
	case 1001:
		d = test(g, 2, base, 0xffffffffu, LEX_EQ, hi, t, f);
		d = test(g, 4, base + 2, 0xffffffffu, LEX_EQ, lo, d, f);
		s = test(g, 2, base + 6, 0xffffffffu, LEX_EQ, hi, d, f);
		return test(g, 4, base + 8, 0xffffffffu, LEX_EQ, lo, s, f);
	case 0: case 1000:
		d = test(g, 2, base, 0xffffffffu, LEX_EQ, hi, t, f);
		d = test(g, 4, base + 2, 0xffffffffu, LEX_EQ, lo, d, f);
		s = test(g, 2, base + 6, 0xffffffffu, LEX_EQ, hi, t, d);
		return test(g, 4, base + 8, 0xffffffffu, LEX_EQ, lo, s, d);
	default:
		fail(g, "this direction does not apply to MAC addresses");
	}
}

static bool hex12(const char *s, uint8_t mac[6])
{
	if (strlen(s) != 12)
		return false;
	for (int i = 0; i < 12; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (v < 0)
			return false;
		if (i % 2 == 0)
			mac[i / 2] = (uint8_t)(v << 4);
		else
			mac[i / 2] |= (uint8_t)v;
	}
	return true;
}

/* An IPv4 value as host/net wants it: the address and the mask of the given parts. */
static void ipv4_value(const struct lex_token *id, bool net, uint32_t *addr, uint32_t *mask)
{
	if (id->kind == LEX_NUM) {
		*addr = net ? id->num : id->num;
		*mask = 0xffffffffu;
		if (net) {
			/* "net 10": a number is a network of its significant bytes */
			uint32_t v = id->num;
			if (v == 0) { *mask = 0; }
			else if (v <= 0xff) { *addr = v << 24; *mask = 0xff000000u; }
			else if (v <= 0xffff) { *addr = v << 16; *mask = 0xffff0000u; }
			else if (v <= 0xffffff) { *addr = v << 8; *mask = 0xffffff00u; }
		}
		return;
	}
	uint32_t a = id->num;
	int parts = id->nparts;
	if (net) {
		*addr = a << (8 * (4 - parts));
		*mask = parts == 4 ? 0xffffffffu : ~(0xffffffffu >> (8 * parts));
	} else {
		/* inet_aton: the last part fills the remaining bytes */
		*addr = parts == 4 ? a : parts == 1 ? a
			: ((a >> (8 * (parts - 1))) << 24) | (a & 0xff);
		if (parts == 3)
			*addr = ((a >> 16) & 0xff) << 24 | ((a >> 8) & 0xff) << 16 | (a & 0xff);
		*mask = 0xffffffffu;
	}
}

static int link_alias(struct gen *g, int proto);

static int host_net(struct gen *g, const struct parse_node *n, int t, int f)
{
	const struct lex_token *id = n->id;
	bool net = n->type == KW_NET;
	int proto = link_alias(g, n->proto);
	if (proto == KW_DECNET)
		return decnet_host(g, n, t, f);
	if (proto == KW_ETHER || proto == KW_LINK) {
		uint8_t mac[6];
		if (net)
			fail(g, "'ether net' is not valid");
		if (id->kind == LEX_MAC)
			return ether_addr(g, n->dir, id->bytes, t, f);
		if ((id->kind == LEX_NAME || id->kind == LEX_NUM) && hex12(id->text, mac))
			return ether_addr(g, n->dir, mac, t, f);
		if (id->kind == LEX_NAME && names_ether(id->text, mac) == 0)
			return ether_addr(g, n->dir, mac, t, f);
		if (id->kind == LEX_NAME)
			fail(g, "unknown ether host '%s'", id->text);
		fail(g, "'ether host' needs a MAC address, not %s", id->text);
	}
	if (id->kind == LEX_MAC)   /* libpcap: only with ether (or link) */
		fail(g, "ethernet address used in non-ether expression (say 'ether host')");
	if (id->kind == LEX_IPV6) {
		int ml = n->masklen >= 0 ? n->masklen : 128;
		if (!net && n->masklen >= 0 && n->masklen < 128)
			fail(g, "a mask applies to 'net', not 'host'");
		if (net) {
			for (int i = ml; i < 128; i++)
				if (id->bytes[i / 8] & (0x80 >> (i % 8)))
					fail(g, "non-network bits set in \"%s/%d\"", id->text, ml);
		}
		return host6(g, proto, n->dir, id->bytes, ml, t, f);
	}
	if (proto == KW_IP6 && id->kind != LEX_NAME)
		fail(g, "'ip6 %s' needs an IPv6 address, not %s", net ? "net" : "host",
		     id->text);
	if (id->kind == LEX_IPV4 || id->kind == LEX_NUM) {
		uint32_t addr, mask;
		ipv4_value(id, net, &addr, &mask);
		if (n->masklen >= 0) {
			if (!net)
				fail(g, "a mask applies to 'net', not 'host'");
			if (id->kind == LEX_IPV4)
				addr = id->num << (8 * (4 - id->nparts));
			mask = n->masklen >= 32 ? 0xffffffffu
			       : n->masklen ? ~(0xffffffffu >> n->masklen) : 0;
		}
		if (n->mask) {
			if (!net)
				fail(g, "a mask applies to 'net', not 'host'");
			addr = id->num << (8 * (4 - id->nparts));
			mask = n->mask->num;
			/* a short dotted mask is left-aligned like the address */
			if (n->mask->kind == LEX_IPV4)
				mask <<= 8 * (4 - n->mask->nparts);
		}
		if (addr & ~mask)
			fail(g, "non-network bits set in \"%s\"", id->text);
		return host4(g, proto, n->dir, addr, mask, t, f);
	}
	/* a name */
	if (net) {
		uint32_t v;
		if (names_net(id->text, &v) != 0)
			fail(g, "unknown network '%s'", id->text);
		uint32_t mask = 0xffffffffu;
		while (v && !(v & 0xff000000u)) {
			v <<= 8;
			mask <<= 8;
		}
		return host4(g, proto, n->dir, v, mask, t, f);
	}
	if (g->cc->flags & BPFKIT_COMPILE_NO_HOST_LOOKUP)
		fail(g, "host name '%s' not looked up (host lookups are disabled)", id->text);
	uint32_t a4[64];
	uint8_t a6[64][16];
	int n4 = proto == KW_IP6 ? 0 : names_host4(id->text, a4, 64);
	int n6 = (proto == 0 || proto == KW_IP6) ? names_host6(id->text, a6, 64) : 0;
	if (n4 + n6 == 0)
		fail(g, "unknown host '%s'", id->text);
	int next = f;
	for (int i = n6 - 1; i >= 0; i--)
		next = host6(g, proto, n->dir, a6[i], 128, t, next);
	for (int i = n4 - 1; i >= 0; i--)
		next = host4(g, proto, n->dir, a4[i], 0xffffffffu, t, next);
	return next;
}

/*
 * gateway NAME (libpcap master's meaning, from its expected programs in the corpus;
 * 1.10.3 refuses gateway in every build with IPv6): the packet goes to or comes from
 * NAME's MAC address (/etc/ethers) and is an IPv4, ARP or RARP packet (only the one
 * named by a proto qualifier) whose addresses are none of NAME's IPv4 addresses
 * (/etc/hosts; IPv6 ones are ignored) - it was routed through NAME.  Other network
 * protocols do not match.  Only on the link types where master allows it.
 */
static int gateway(struct gen *g, const struct parse_node *n, int t, int f)
{
	static const int dlts[] = {1, 6, 10, 105, 119, 122, 127, 163, 192, 240, 241};
	int proto = n->proto;
	if (proto != 0 && proto != KW_IP && proto != KW_ARP && proto != KW_RARP)
		fail(g, "'%s' is not a valid qualifier for 'gateway'", lex_keyword_name(proto));
	if (n->dir)
		fail(g, "a direction does not apply to 'gateway'");
	const struct lex_token *id = n->id;
	if (!id || id->kind != LEX_NAME)
		fail(g, "'gateway' is not a valid qualifier for '%s'", id ? id->text : "");
	bool ok = false;
	for (size_t i = 0; i < sizeof dlts / sizeof dlts[0]; i++)
		ok = ok || (int)g->cc->linktype == dlts[i];
	if (!ok)
		fail(g, "'gateway' not supported on %s", g->link->name);
	if (g->e.kind != ENC_LINK)
		fail(g, "'gateway' cannot be used within MPLS or PPPoE");
	uint8_t mac[6];
	if (names_ether(id->text, mac) != 0)
		fail(g, "unknown Ethernet-like host '%s'", id->text);
	if (g->cc->flags & BPFKIT_COMPILE_NO_HOST_LOOKUP)
		fail(g, "host name '%s' not looked up (host lookups are disabled)", id->text);
	uint32_t a4[64];
	int n4 = names_host4(id->text, a4, 64);
	if (n4 <= 0)
		fail(g, "unknown host '%s'", id->text);
	/* master's program: for ip, then arp, then rarp (or the one proto named), the
	 * packet is of that protocol and none of the addresses is its source or
	 * destination; a match or another protocol tries the next one */
	static const struct {
		int kw;
		uint32_t etype, src, dst;
	} ps[] = {{KW_IP, ETYPE_IP, 12, 16}, {KW_ARP, ETYPE_ARP, 14, 24},
		  {KW_RARP, ETYPE_RARP, 14, 24}};
	int alt = f;
	for (int p = 2; p >= 0; p--) {
		if (proto != 0 && proto != ps[p].kw)
			continue;
		int c = t;
		for (int i = n4 - 1; i >= 0; i--) {
			c = test(g, 4, (uint32_t)nl(g) + ps[p].dst, 0xffffffffu, LEX_EQ, a4[i],
				 alt, c);
			c = test(g, 4, (uint32_t)nl(g) + ps[p].src, 0xffffffffu, LEX_EQ, a4[i],
				 alt, c);
		}
		alt = linktype(g, ps[p].etype, c, alt);
	}
	return ether_addr(g, 0, mac, alt, f);
}

/* ---- ISO (802.2 SAP 0xfe): CLNP, ES-IS, IS-IS ---- */

/* Where libpcap reads the ISO network-layer protocol id: after the 3-byte LLC
 * header on Ethernet, at the payload on Linux cooked captures. */
static uint32_t iso_off(struct gen *g)
{
	return (uint32_t)nl(g) + (g->e.lt == LT_ETHER ? 3 : 0) +
	       (uint32_t)codegen_link_iso_delta(g->link);
}

/* iso proto nlpid */
static int iso_proto(struct gen *g, uint32_t nlpid, int t, int f)
{
	return linktype(g, SAP_ISO, test(g, 1, iso_off(g), 0xffffffffu, LEX_EQ, nlpid, t, f), f);
}

/* isis proto pdu: the PDU type is the fifth byte of the IS-IS header */
static int isis_pdu(struct gen *g, uint32_t pdu, int t, int f)
{
	return iso_proto(g, ISO_ISIS, test(g, 1, iso_off(g) + (g->link->kind == LT_CHDLC ? 3 : 4),
					0xffffffffu, LEX_EQ, pdu, t, f),
			 f);
}

/* l1, l2, iih, lsp, snp, csnp, psnp: IS-IS PDU types, tried in libpcap's order. */
static const struct { int kw; uint8_t n, pdu[5]; } isis_sets[] = {
	{KW_L1, 5, {0x1a, 0x18, 0x12, 0x0f, 0x11}}, {KW_L2, 5, {0x1b, 0x19, 0x14, 0x10, 0x11}},
	{KW_IIH, 3, {0x11, 0x0f, 0x10}}, {KW_LSP, 2, {0x12, 0x14}},
	{KW_SNP, 4, {0x1b, 0x1a, 0x18, 0x19}}, {KW_CSNP, 2, {0x18, 0x19}},
	{KW_PSNP, 2, {0x1a, 0x1b}},
};

static int isis_set(struct gen *g, int kw, int t, int f)
{
	for (size_t i = 0; i < sizeof isis_sets / sizeof isis_sets[0]; i++) {
		if (isis_sets[i].kw != kw)
			continue;
		int next = f;
		for (int j = isis_sets[i].n - 1; j >= 0; j--)
			next = isis_pdu(g, isis_sets[i].pdu[j], t, next);
		return next;
	}
	return -1;
}

/* ---- proto / protochain ---- */

static uint32_t proto_number(struct gen *g, const struct parse_node *n, bool ether)
{
	const struct lex_token *id = n->id;
	if (id->kind == LEX_NUM)
		return id->num;   /* range-checked by the callers (libpcap master) */
	if (id->kind != LEX_NAME)
		fail(g, "'%s' is not a protocol", id->text);
	if (ether) {
		for (size_t i = 0; i < sizeof ether_names / sizeof ether_names[0]; i++)
			if (strcmp(ether_names[i].name, id->text) == 0)
				return ether_names[i].etype;
		fail(g, "unknown ether proto '%s'", id->text);
	}
	int v = names_proto(id->text);
	if (v < 0) {
		int kw = lex_keyword(id->text);
		int row = kw > 0 ? transport_row(kw) : -1;
		if (row < 0)
			fail(g, "unknown ip proto '%s'", id->text);
		v = (int)transports[row].proto;
	}
	return (uint32_t)v;
}

/* An IP protocol number: one byte (libpcap master refuses more; 1.10.3 compared it). */
static uint32_t ip_proto_number(struct gen *g, const struct parse_node *n)
{
	uint32_t v = proto_number(g, n, false);
	if (v > 255)
		fail_tok(g, n->id, "protocol number %u greater than maximum 255", v);
	return v;
}

/*
 * A link protocol number must fit the link's field (libpcap master): 16 bits (a PPP or
 * HDLC protocol, an EtherType); on Ethernet and Linux cooked a value <= 1500 is an
 * 802.2 DSAP, one byte.
 */
static void link_proto_range(struct gen *g, const struct lex_token *id)
{
	enum proto_ltkind lt = g->link->kind;
	const char *what = lt == LT_PPP || lt == LT_PPP_BSDOS ? "PPP protocol"
			 : lt == LT_CHDLC ? "HDLC protocol" : "EtherType";
	if (id->num > 65535)
		fail_tok(g, id, "%s %u greater than maximum 65535", what, id->num);
	if ((lt == LT_ETHER || lt == LT_SLL) && id->num > 255 && id->num <= 1500)
		fail_tok(g, id, "LLC DSAP %u greater than maximum 255 (a link protocol up "
			 "to 1500 is an 802.2 SAP)", id->num);
}

/*
 * protochain: libpcap walks the header chain with a backward jump, which no
 * validator mode accepts, so the walk is unrolled: PC_STEPS6 headers over
 * IPv6, PC_STEPS4 AH headers over IPv4.  The walk keeps the protocol in A
 * and the offset of the header from the network layer in X from step to
 * step (M[PC_OFF] holds the new offset while A loads the next protocol).
 * A step: the wanted protocol accepts; IPv6 extension headers (hop-by-hop 0,
 * routing 43, fragment 44, destination options 60) add (len + 1) * 8; AH
 * (51) sets the offset to (len + 2) * 4 - from the network layer, not from
 * the AH header, as libpcap 1.10.3 does; anything else (59, no next header,
 * included) rejects.  A step loads the next protocol and the length byte of
 * the header; both loads run on that path whatever their order, so a short
 * packet is rejected as libpcap's walk rejects it.  A longer chain (libpcap
 * keeps walking; an AH loop can even walk forever) is decided on the
 * protocol reached after the last step.
 */
#define PC_STEPS6 110
#define PC_STEPS4 24
enum { PC_OFF = 15 };

static int pc_goto(struct gen *g, int b, int to)
{
	ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0, to, to);
	g->fn->blocks[b].term = IR_JUMP;
	return b;
}

/* A == v ? t : f, on the A the walk carries */
static int pc_is(struct gen *g, uint32_t v, int t, int f)
{
	return jump(g, blk(g), LEX_EQ, false, v, t, f);
}

/* One step over the header at X: A = its next protocol, X = the next offset. */
static int pc_skip(struct gen *g, bool ah, int next)
{
	uint32_t base = (uint32_t)nl(g);
	int b = blk(g);
	st(g, b, BPFKIT_LD | BPFKIT_IND | BPFKIT_B, base + 1);
	if (ah) {
		st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 2);
		st(g, b, BPFKIT_ALU | BPFKIT_LSH | BPFKIT_K, 2);
	} else {
		st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 1);
		st(g, b, BPFKIT_ALU | BPFKIT_LSH | BPFKIT_K, 3);
		st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_X, 0);
	}
	st(g, b, BPFKIT_ST, PC_OFF);
	st(g, b, BPFKIT_LD | BPFKIT_IND | BPFKIT_B, base);
	st(g, b, BPFKIT_LDX | BPFKIT_MEM, PC_OFF);
	return pc_goto(g, b, next);
}

static int protochain(struct gen *g, bool v6, uint32_t v, int t, int f)
{
	if ((uint32_t)nl(g) & CODEGEN_VAR_MASK)
		fail(g, "'protochain' not supported with variable length headers");
	int step = pc_is(g, v, t, f);   /* after the last step */
	for (int i = 0; i < (v6 ? PC_STEPS6 : PC_STEPS4); i++) {
		int c = pc_is(g, IPP_AH, pc_skip(g, true, step), f);
		if (v6) {
			int ext = pc_skip(g, false, step);
			c = pc_is(g, 44, ext, c);
			c = pc_is(g, 43, ext, c);
			c = pc_is(g, 60, ext, c);
			c = pc_is(g, 0, ext, c);
		}
		step = pc_is(g, v, t, c);
	}
	int b = blk(g);
	uint32_t base = (uint32_t)nl(g);
	st(g, b, BPFKIT_LD | BPFKIT_ABS | BPFKIT_B, base + (v6 ? 6 : 9));
	if (v6)
		st(g, b, BPFKIT_LDX | BPFKIT_IMM, 40);
	else
		st(g, b, BPFKIT_LDX | BPFKIT_MSH | BPFKIT_B, base);
	return linktype(g, v6 ? ETYPE_IPV6 : ETYPE_IP, pc_goto(g, b, step), f);
}

static int proto_prim(struct gen *g, const struct parse_node *n, int t, int f)
{
	if (n->type == KW_PROTOCHAIN) {
		if (n->proto != 0 && n->proto != KW_IP && n->proto != KW_IP6)
			fail(g, "'%s protochain' is not valid: protochain follows ip or ip6",
			     lex_keyword_name(n->proto));
		uint32_t v = ip_proto_number(g, n);
		if (n->proto == KW_IP)
			return protochain(g, false, v, t, f);
		if (n->proto == KW_IP6)
			return protochain(g, true, v, t, f);
		return protochain(g, false, v, t, protochain(g, true, v, t, f));
	}
	switch (link_alias(g, n->proto)) {
	case KW_ETHER: case KW_LINK: {
		uint32_t v = proto_number(g, n, true);
		if (n->id->kind == LEX_NUM)
			link_proto_range(g, n->id);
		return linktype(g, v, t, f);
	}
	case KW_IP: return ip_proto(g, ip_proto_number(g, n), t, f);
	case KW_IP6: return ip6_proto(g, ip_proto_number(g, n), t, f);
	case KW_ISO: case KW_ISIS: {
		static const struct { const char *name; uint32_t v; } iso_names[] = {
			{"clnp", ISO_CLNP}, {"esis", ISO_ESIS}, {"isis", ISO_ISIS},
		};
		uint32_t v = 0;
		size_t i = 0, nn = sizeof iso_names / sizeof iso_names[0];
		if (n->id->kind == LEX_NAME && n->proto == KW_ISO) {
			while (i < nn && strcmp(iso_names[i].name, n->id->text) != 0)
				i++;
			if (i == nn)
				fail(g, "unknown iso proto '%s'", n->id->text);
			v = iso_names[i].v;
		} else {
			/* refused when it cannot be in the field (libpcap master) */
			v = number(g, n->id, n->proto == KW_ISO ? "iso proto" : "isis proto");
			if (n->proto == KW_ISO && v > 255)
				fail_tok(g, n->id, "ISO protocol %u greater than maximum 255", v);
			if (n->proto == KW_ISIS && v > 31)
				fail_tok(g, n->id, "IS-IS PDU type %u greater than maximum 31", v);
		}
		return n->proto == KW_ISO ? iso_proto(g, v, t, f) : isis_pdu(g, v, t, f);
	}
	case 0: {
		uint32_t v = ip_proto_number(g, n);
		return ip_proto(g, v, t, ip6_proto(g, v, t, f));
	}
	default:
		fail(g, "'%s proto' is not supported", lex_keyword_name(n->proto));
	}
}

/* ---- arithmetic ---- */

struct arith_ctx {
	int depth;          /* scratch words in use */
	const struct parse_arith *loads[32];
	int nloads;
};

static void arith_collect(struct gen *g, struct arith_ctx *ac, const struct parse_arith *a)
{
	if (!a)
		return;
	if (a->kind == PA_LOAD && ac->nloads < 32)
		ac->loads[ac->nloads++] = a;
	arith_collect(g, ac, a->l);
	arith_collect(g, ac, a->r);
}

static bool load_needs_x(int proto)
{
	return transport_row(proto) >= 0 && proto != KW_ICMP6 &&
	       !(transports[transport_row(proto)].on == ON_IP6);
}

/* The protocol test a load proto[...] implies. */
/* fddi, tr, wlan, ppp and slip name the link layer as "link" does (libpcap's
 * lexer reads them all as one token) where the link type has no such header. */
static int link_alias(struct gen *g, int proto)
{
	(void)g;
	switch (proto) {
	case KW_FDDI: case KW_TR: case KW_WLAN: case KW_PPP: case KW_SLIP:
		return KW_LINK;
	case KW_ETHER:   /* ether[] reads the link header on any link type, as in libpcap */
		return KW_LINK;
	default:
		return proto;
	}
}

static const struct { int kw; uint32_t etype; } nl_loads[] = {
	{KW_ATALK, ETYPE_ATALK}, {KW_DECNET, ETYPE_DECNET},
	{KW_LAT, ETYPE_LAT}, {KW_SCA, ETYPE_SCA}, {KW_MOPRC, ETYPE_MOPRC},
	{KW_MOPDL, ETYPE_MOPDL},
};

static int load_check(struct gen *g, int proto, int t, int f)
{
	proto = link_alias(g, proto);
	if (proto == KW_RADIO) {
		if (!codegen_link_has_radio(g->link))
			fail(g, "radio information not present in capture");
		return t;
	}
	for (size_t i = 0; i < sizeof nl_loads / sizeof nl_loads[0]; i++)
		if (nl_loads[i].kw == proto)
			return linktype(g, nl_loads[i].etype, t, f);
	switch (proto) {
	case KW_ETHER: case KW_LINK:
		if (g->link->off_mac < 0 && proto == KW_ETHER)
			fail(g, "'ether[]' needs an Ethernet link layer, not %s", g->link->name);
		return t;
	case KW_IP: return linktype(g, ETYPE_IP, t, f);
	case KW_IP6: return linktype(g, ETYPE_IPV6, t, f);
	case KW_ARP: return linktype(g, ETYPE_ARP, t, f);
	case KW_RARP: return linktype(g, ETYPE_RARP, t, f);
	case KW_ICMP6:
		return linktype(g, ETYPE_IPV6, test(g, 1, (uint32_t)nl(g) + 6, 0xffffffffu, LEX_EQ,
						    IPP_ICMP6, t, f), f);
	case KW_AH: case KW_ESP:
		fail(g, "'%s[]' is an unsupported index operation", lex_keyword_name(proto));
	default: {
		int row = transport_row(proto);
		if (row < 0)
			fail(g, "'%s[]' is not supported on this link type",
			     lex_keyword_name(proto));
		int c = nofrag(g, t, f);
		c = transport(g, row, c, f);
		return linktype(g, ETYPE_IP, c, f);
	}
	}
}

static uint32_t load_base(struct gen *g, int proto)
{
	switch (link_alias(g, proto)) {
	case KW_ETHER: case KW_LINK: return codegen_link_hdr(g->link);
	case KW_RADIO: return 0;
	case KW_ICMP6: return (uint32_t)nl(g) + 40;
	default: return (uint32_t)nl(g);
	}
}

static uint16_t alu_op(int op)
{
	switch (op) {
	case LEX_ADD: return BPFKIT_ADD;
	case LEX_SUB: return BPFKIT_SUB;
	case LEX_MUL: return BPFKIT_MUL;
	case LEX_DIV: return BPFKIT_DIV;
	case LEX_MOD: return BPFKIT_MOD;
	case LEX_BAND: return BPFKIT_AND;
	case LEX_BOR: return BPFKIT_OR;
	case LEX_XOR: return BPFKIT_XOR;
	case LEX_SHL: return BPFKIT_LSH;
	default: return BPFKIT_RSH;
	}
}

/*
 * The constant that the code for a starts by loading, if it starts with one: libpcap
 * refuses a division, modulus or shift by checking only the first instruction of the
 * divisor's code, which is the leftmost leaf of its tree (an index's leftmost leaf for
 * a load), so "x / ip[0]" and "x / (0 + y)" are refused and "x / (y + 0)" is not.
 */
static bool leading_const(const struct parse_arith *a, uint32_t *k)
{
	while (a->kind != PA_NUM) {
		if (a->kind == PA_LEN)
			return false;
		a = a->l;
	}
	*k = a->num;
	return true;
}

static void check_divisor(struct gen *g, const struct parse_arith *a)
{
	uint32_t k;
	const char *msg = NULL;
	if (!leading_const(a->r, &k))
		return;
	if (a->op == LEX_DIV && k == 0)
		msg = "division by zero";
	else if (a->op == LEX_MOD && k == 0)
		msg = "modulus by zero";
	else if ((a->op == LEX_SHL || a->op == LEX_SHR) && k > 31)
		msg = "shift by more than 31 bits";
	if (msg) {
		g->at = NULL;
		compile_error(g->cc, a->r->col, a->r->span, "%s", msg);
	}
}

/* Emits code leaving the value of a in A (X and scratch words above depth clobbered). */
static void arith(struct gen *g, struct arith_ctx *ac, int b, const struct parse_arith *a)
{
	switch (a->kind) {
	case PA_NUM:
		st(g, b, BPFKIT_LD | BPFKIT_IMM, a->num);
		return;
	case PA_LEN:
		st(g, b, BPFKIT_LD | BPFKIT_LEN | BPFKIT_W, 0);
		return;
	case PA_NEG:
		arith(g, ac, b, a->l);
		st(g, b, BPFKIT_ALU | BPFKIT_NEG, 0);
		return;
	case PA_LOAD:
		if ((load_base(g, a->proto) | (uint32_t)nl(g)) & CODEGEN_VAR_MASK) {
			/* a length read from the packet: codegen_link.c */
			if (a->l->kind == PA_NUM && !load_needs_x(a->proto) &&
			    !(load_base(g, a->proto) & CODEGEN_VAR_MASK) &&
			    load_base(g, a->proto) < 0x80000000u &&
			    a->l->num < 0x80000000u - load_base(g, a->proto)) {
				/*
				 * A constant index on a fixed base is an absolute load
				 * (below 2^31: far offsets mean Linux's ancillary
				 * data).  On a variable base it is not folded: the base
				 * may be a 32-bit field of the packet, and index + X
				 * wraps where [X + index] fails.
				 */
				codegen_link_ld(g->fn, b, a->size, load_base(g, a->proto) + a->l->num);
				return;
			}
			arith(g, ac, b, a->l);
			codegen_link_ind_load(g->fn, b, a->size, load_base(g, a->proto),
					      load_needs_x(a->proto), (uint32_t)nl(g), ac->depth);
			return;
		}
		if (a->l->kind == PA_NUM && load_base(g, a->proto) < 0x80000000u &&
		    a->l->num < 0x80000000u - 64 - load_base(g, a->proto)) {
			/*
			 * A constant index: the offset goes into the load (no sum can
			 * wrap: the IPv4 header length is at most 60), so the load
			 * reads the same bytes and fails on the same packets.
			 */
			uint32_t off = load_base(g, a->proto) + a->l->num;
			if (load_needs_x(a->proto)) {
				st(g, b, BPFKIT_LDX | BPFKIT_MSH | BPFKIT_B, (uint32_t)nl(g));
				st(g, b, BPFKIT_LD | BPFKIT_IND | ldsize(a->size), off);
			} else {
				st(g, b, BPFKIT_LD | BPFKIT_ABS | ldsize(a->size), off);
			}
			return;
		}
		arith(g, ac, b, a->l);
		if (load_needs_x(a->proto)) {
			st(g, b, BPFKIT_LDX | BPFKIT_MSH | BPFKIT_B, (uint32_t)nl(g));
			st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_X, 0);
		}
		st(g, b, BPFKIT_MISC | BPFKIT_TAX, 0);
		st(g, b, BPFKIT_LD | BPFKIT_IND | ldsize(a->size), load_base(g, a->proto));
		return;
	case PA_BIN:
		check_divisor(g, a);
		if (a->r->kind == PA_NUM) {
			arith(g, ac, b, a->l);
			st(g, b, BPFKIT_ALU | alu_op(a->op) | BPFKIT_K, a->r->num);
			return;
		}
		arith(g, ac, b, a->l);
		if (ac->depth >= BPFKIT_MEMWORDS)
			compile_error(g->cc, a->col, a->span, "expression too complex");
		int slot = ac->depth++;
		st(g, b, BPFKIT_ST, (uint32_t)slot);
		arith(g, ac, b, a->r);
		st(g, b, BPFKIT_MISC | BPFKIT_TAX, 0);
		st(g, b, BPFKIT_LD | BPFKIT_MEM, (uint32_t)slot);
		st(g, b, BPFKIT_ALU | alu_op(a->op) | BPFKIT_X, 0);
		ac->depth--;
		return;
	}
}

static int relation(struct gen *g, const struct parse_node *n, int t, int f)
{
	struct arith_ctx ac = {0};
	int b = blk(g);
	if (n->b->kind == PA_NUM) {
		arith(g, &ac, b, n->a);
		jump(g, b, n->relop, false, n->b->num, t, f);
	} else {
		arith(g, &ac, b, n->a);
		st(g, b, BPFKIT_ST, 0);
		ac.depth = 1;
		arith(g, &ac, b, n->b);
		st(g, b, BPFKIT_MISC | BPFKIT_TAX, 0);
		st(g, b, BPFKIT_LD | BPFKIT_MEM, 0);
		jump(g, b, n->relop, true, 0, t, f);
	}
	arith_collect(g, &ac, n->a);
	arith_collect(g, &ac, n->b);
	int entry = b;
	for (int i = ac.nloads - 1; i >= 0; i--)
		entry = load_check(g, ac.loads[i]->proto, entry, f);
	return entry;
}

/* ---- 802.2 LLC: "llc [TYPE]" on Ethernet ---- */

static const struct { const char *name; uint32_t mask, value; } llc_types[] = {
	{"i", 1, 0}, {"s", 3, 1}, {"u", 3, 3},
	{"rr", 0xf, 0x01}, {"rnr", 0xf, 0x05}, {"rej", 0xf, 0x09},
	{"ui", 0xef, 0x03}, {"ua", 0xef, 0x63}, {"disc", 0xef, 0x43}, {"dm", 0xef, 0x0f},
	{"sabme", 0xef, 0x6f}, {"test", 0xef, 0xe3}, {"xid", 0xef, 0xaf}, {"frmr", 0xef, 0x87},
};

static int llc(struct gen *g, const struct parse_node *n, int t, int f)
{
	if (g->e.kind != ENC_LINK || g->e.lt != LT_ETHER)
		fail(g, "'llc' is not supported on %s", g->link->name);
	uint32_t N = (uint32_t)g->e.off_nl;
	int body = t;
	if (n->id) {
		size_t i = 0, nt = sizeof llc_types / sizeof llc_types[0];
		while (i < nt && strcmp(llc_types[i].name, n->id->text) != 0)
			i++;
		if (i == nt)
			fail(g, "unknown LLC type '%s' (i, s, u, rr, rnr, rej, ui, ua, disc, dm, "
			     "sabme, test, xid or frmr)", n->id->text);
		/* the control field, third byte of the LLC header */
		if (llc_types[i].mask == 1)
			body = test(g, 1, N + 2, 0xffffffffu, LEX_BAND, 1, f, t);
		else
			body = test(g, 1, N + 2, llc_types[i].mask, LEX_EQ, llc_types[i].value,
				    t, f);
	}
	/* an 802.3 length, and not raw 802.3 (0xffff: Novell) */
	int c = test(g, 2, N, 0xffffffffu, LEX_EQ, 0xffff, f, body);
	return test(g, 2, (uint32_t)g->e.off_type, 0xffffffffu, LEX_GT, 1500, f, c);
}

/* ---- primitives ---- */

static int pname(struct gen *g, int proto, int t, int f)
{
	switch (proto) {
	case KW_ISO: return linktype(g, SAP_ISO, t, f);
	case KW_STP: return linktype(g, SAP_STP, t, f);
	case KW_IPX: return linktype(g, SAP_IPX, t, f);
	case KW_NETBEUI: return linktype(g, SAP_NETBEUI, t, f);
	case KW_CLNP: return iso_proto(g, ISO_CLNP, t, f);
	case KW_ESIS: return iso_proto(g, ISO_ESIS, t, f);
	case KW_ISIS: return iso_proto(g, ISO_ISIS, t, f);
	case KW_L1: case KW_L2: case KW_IIH: case KW_LSP: case KW_SNP: case KW_CSNP:
	case KW_PSNP:
		return isis_set(g, proto, t, f);
	case KW_IP: return linktype(g, ETYPE_IP, t, f);
	case KW_IP6: return linktype(g, ETYPE_IPV6, t, f);
	case KW_ARP: return linktype(g, ETYPE_ARP, t, f);
	case KW_RARP: return linktype(g, ETYPE_RARP, t, f);
	case KW_ATALK: return linktype(g, ETYPE_ATALK, t, f);
	case KW_AARP: return linktype(g, ETYPE_AARP, t, f);
	case KW_DECNET: return linktype(g, ETYPE_DECNET, t, f);
	case KW_LAT: return linktype(g, ETYPE_LAT, t, f);
	case KW_SCA: return linktype(g, ETYPE_SCA, t, f);
	case KW_MOPRC: return linktype(g, ETYPE_MOPRC, t, f);
	case KW_MOPDL: return linktype(g, ETYPE_MOPDL, t, f);
	default: {
		int row = transport_row(proto);
		if (row >= 0)
			return transport(g, row, t, f);
		fail(g, "'%s' is not supported yet", lex_keyword_name(proto));
	}
	}
}

/*
 * vlan [ID]: the link's type field is one of the 802.1Q / 802.1ad / old QinQ
 * ethertypes, the tag's 12-bit ID (at the old network layer) is ID; the
 * primitives after it see type and payload 4 bytes further (encaps()).  On
 * 802.11 (not PPI, which libpcap 1.10.3 refuses) the ethertype is the SNAP
 * type of a data frame, tested with the link's whole type check each time.
 */
static int vlan(struct gen *g, const struct parse_node *n, int t, int f)
{
	bool wlan = g->e.lt == LT_WLAN && g->link->prefix != PFX_PPI;
	if (g->e.kind != ENC_LINK || (g->e.lt != LT_ETHER && !wlan))
		fail(g, "no VLAN support for %s", g->link->name);
	int body = t;
	if (n->id) {
		uint32_t id = number(g, n->id, "vlan id");
		if (id > 4095)
			fail(g, "vlan id %u out of range", id);
		body = test(g, 2, (uint32_t)g->e.off_nl, 0xfff, LEX_EQ, id, t, f);
	}
	if (wlan) {
		int c = linktype(g, ETYPE_QINQ_OLD, body, f);
		c = linktype(g, ETYPE_QINQ, body, c);
		return linktype(g, ETYPE_VLAN, body, c);
	}
	int c = test(g, 2, (uint32_t)g->e.off_type, 0xffffffffu, LEX_EQ, ETYPE_QINQ_OLD, body, f);
	c = test(g, 2, (uint32_t)g->e.off_type, 0xffffffffu, LEX_EQ, ETYPE_QINQ, body, c);
	return test(g, 2, (uint32_t)g->e.off_type, 0xffffffffu, LEX_EQ, ETYPE_VLAN, body, c);
}

static int mpls(struct gen *g, const struct parse_node *n, int t, int f)
{
	int body = t;
	if (n->id) {
		uint32_t label = number(g, n->id, "mpls label");
		if (label > 0xfffff)
			fail(g, "mpls label %u out of range", label);
		body = test(g, 4, (uint32_t)g->e.off_nl, 0xfffff000u, LEX_EQ, label << 12, t, f);
	}
	if (g->e.kind == ENC_MPLS)
		return test(g, 1, (uint32_t)g->e.off_nl - 2, 1, LEX_EQ, 0, body, f);
	if (g->e.kind == ENC_PPP && !((uint32_t)nl(g) & CODEGEN_VAR_MASK))
		/* inside pppoes: PPP's MPLS unicast protocol (variable-length link
		 * headers: libpcap's offsets there differ, refused below) */
		return test(g, 2, (uint32_t)g->e.off_type, 0xffffffffu, LEX_EQ, 0x281, body, f);
	if (g->e.kind != ENC_LINK ||
	    (g->e.lt != LT_ETHER && g->link->dlt != 9 && g->e.lt != LT_CHDLC))
		fail(g, "no MPLS support for %s", g->link->name);
	return linktype(g, ETYPE_MPLS, body, f);
}

/*
 * geneve [VNI]: UDP to port 6081 over IPv4 (not a later fragment) or IPv6 (UDP as the
 * first next header), Geneve version 0, the VNI in bits 8-31 of the header's second
 * word.  libpcap then computes the inner offsets, which loads the header's protocol
 * field: a packet too short for it is refused, so that load is kept (as a test that
 * always holds).  Primitives after geneve (inner offsets) are refused in gen().
 */
enum { GENEVE_PORT = 6081, GENEVE_TEB = 0x6558 };

/*
 * After a match: the inner offsets for the primitives written after geneve, as
 * libpcap computes them.  M[CODEGEN_REG_GT] = the Geneve protocol field (an
 * ethertype), M[CODEGEN_REG_GN] = the payload behind the options (4 * the low 6
 * bits of the first byte, + 8); for Transparent Ethernet Bridging (0x6558) both
 * move behind the inner Ethernet header (type at +12, payload at +14).  The
 * loads of the first byte and the protocol field reject packets too short for
 * them, as libpcap's do.  Only scratch words carry values between blocks.
 */
static int geneve_inner(struct gen *g, bool v4, int t)
{
	uint32_t base = (uint32_t)nl(g), k = base & ~CODEGEN_VAR_MASK;
	int b = blk(g);
	if (v4) {
		codegen_link_ldx_iphl(g->fn, b, base);   /* X = IP header start + length */
		st(g, b, BPFKIT_MISC | BPFKIT_TXA, 0);
		st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, k + 8);
	} else if (base & CODEGEN_VAR_MASK) {
		st(g, b, BPFKIT_LD | BPFKIT_MEM, codegen_link_reg(base));
		st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, k + 40 + 8);
	} else {
		st(g, b, BPFKIT_LD | BPFKIT_IMM, k + 40 + 8);
	}
	/* A = X = the Geneve header */
	st(g, b, BPFKIT_MISC | BPFKIT_TAX, 0);
	st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 2);
	st(g, b, BPFKIT_ST, CODEGEN_REG_GT);
	st(g, b, BPFKIT_LD | BPFKIT_IND | BPFKIT_B, 0);
	st(g, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, 0x3f);
	st(g, b, BPFKIT_ALU | BPFKIT_LSH | BPFKIT_K, 2);
	st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 8);
	st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_X, 0);
	st(g, b, BPFKIT_ST, CODEGEN_REG_GN);
	st(g, b, BPFKIT_LD | BPFKIT_IND | BPFKIT_H, 2);
	int teb = blk(g);
	st(g, teb, BPFKIT_LD | BPFKIT_MEM, CODEGEN_REG_GN);
	st(g, teb, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 12);
	st(g, teb, BPFKIT_ST, CODEGEN_REG_GT);
	st(g, teb, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 2);
	st(g, teb, BPFKIT_ST, CODEGEN_REG_GN);
	teb = ir_branch(g->fn, teb, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0, t, t);
	return jump(g, b, LEX_EQ, false, GENEVE_TEB, teb, t);
}

static int geneve(struct gen *g, const struct parse_node *n, int t, int f)
{
	if (g->e.kind != ENC_LINK)
		fail(g, "'geneve' is not supported inside other encapsulations");
	/* libpcap 1.10.3 reads the wrong scratch word for the payload offset there
	 * (the 802.11 link types with and without a radio header are right) */
	if (((uint32_t)nl(g) & (CODEGEN_VAR_PL | CODEGEN_VAR_HDR)) &&
	    (g->link->kind != LT_WLAN || g->link->prefix == PFX_PPI))
		fail(g, "'geneve' is not supported on %s (variable-length link header)",
		     g->link->name);
	uint32_t vni = 0;
	if (n->id) {
		vni = number(g, n->id, "geneve vni");
		if (vni > 0xffffff)
			fail(g, "geneve VNI %u greater than maximum 16777215", vni);
	}
	uint32_t base = (uint32_t)nl(g);
	/* IPv6: fixed offsets */
	int c6 = geneve_inner(g, false, t);
	if (n->id)
		c6 = test(g, 4, base + 40 + 8 + 4, 0xffffff00u, LEX_EQ, vni << 8, c6, f);
	c6 = test(g, 1, base + 40 + 8, 0xc0, LEX_EQ, 0, c6, f);
	c6 = test(g, 2, base + 40 + 2, 0xffffffffu, LEX_EQ, GENEVE_PORT, c6, f);
	c6 = test(g, 1, base + 6, 0xffffffffu, LEX_EQ, IPP_UDP, c6, f);
	c6 = linktype(g, ETYPE_IPV6, c6, f);
	/* IPv4: behind the variable-length header */
	int c4 = geneve_inner(g, true, t);
	if (n->id) {
		int b = blk(g);
		codegen_link_ldx_iphl(g->fn, b, (uint32_t)g->e.off_nl);
		st(g, b, BPFKIT_LD | BPFKIT_IND | BPFKIT_W, (base + 8 + 4) & ~CODEGEN_VAR_MASK);
		st(g, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, 0xffffff00u);
		c4 = jump(g, b, LEX_EQ, false, vni << 8, c4, c6);
	}
	{
		int b = blk(g);
		codegen_link_ldx_iphl(g->fn, b, (uint32_t)g->e.off_nl);
		st(g, b, BPFKIT_LD | BPFKIT_IND | BPFKIT_B, (base + 8) & ~CODEGEN_VAR_MASK);
		st(g, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, 0xc0);
		c4 = jump(g, b, LEX_EQ, false, 0, c4, c6);
	}
	c4 = test_x(g, 2, 2, LEX_EQ, GENEVE_PORT, c4, c6);
	c4 = nofrag(g, c4, c6);
	c4 = test(g, 1, base + 9, 0xffffffffu, LEX_EQ, IPP_UDP, c4, c6);
	return linktype(g, ETYPE_IP, c4, c6);
}

/*
 * vxlan [VNI] (libpcap master; 1.10.3 has no vxlan): UDP to port 4789 over IPv4 (not a
 * later fragment) or IPv6 (UDP as the first next header), the VXLAN flags byte exactly
 * 0x08 (VNI valid), the VNI in bits 8-31 of the header's second word.  The inner packet
 * is an Ethernet frame behind the 8-byte VXLAN header: M[CODEGEN_REG_GT] = its type
 * field, M[CODEGEN_REG_GN] = its payload, as geneve_inner stores them.  No loads past
 * the tests (master's offset code only does arithmetic).
 */
enum { VXLAN_PORT = 4789, VXLAN_FLAGS = 0x08 };

static int vxlan_inner(struct gen *g, bool v4, int t)
{
	uint32_t base = (uint32_t)nl(g), k = base & ~CODEGEN_VAR_MASK;
	int b = blk(g);
	if (v4) {
		codegen_link_ldx_iphl(g->fn, b, base);   /* X = IP header start + length */
		st(g, b, BPFKIT_MISC | BPFKIT_TXA, 0);
		st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, k + 8 + 8 + 12);
	} else if (base & CODEGEN_VAR_MASK) {
		st(g, b, BPFKIT_LD | BPFKIT_MEM, codegen_link_reg(base));
		st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, k + 40 + 8 + 8 + 12);
	} else {
		st(g, b, BPFKIT_LD | BPFKIT_IMM, k + 40 + 8 + 8 + 12);
	}
	st(g, b, BPFKIT_ST, CODEGEN_REG_GT);
	st(g, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 2);
	st(g, b, BPFKIT_ST, CODEGEN_REG_GN);
	return ir_branch(g->fn, b, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0, t, t);
}

/* IPv4: ldx iphl; ld size [x + UDP header + off]; and mask; jeq k */
static int vxlan_v4_test(struct gen *g, int size, uint32_t off, uint32_t mask, uint32_t k,
			 int t, int f)
{
	int b = blk(g);
	codegen_link_ldx_iphl(g->fn, b, (uint32_t)nl(g));
	st(g, b, BPFKIT_LD | BPFKIT_IND | ldsize(size),
	   ((uint32_t)nl(g) + off) & ~CODEGEN_VAR_MASK);
	if (mask != 0xffffffffu)
		st(g, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, mask);
	return jump(g, b, LEX_EQ, false, k, t, f);
}

static int vxlan(struct gen *g, const struct parse_node *n, int t, int f)
{
	if (g->e.kind != ENC_LINK)
		fail(g, "'vxlan' is not supported inside other encapsulations");
	/* as geneve: the payload-offset scratch words of those link types */
	if (((uint32_t)nl(g) & (CODEGEN_VAR_PL | CODEGEN_VAR_HDR)) &&
	    (g->link->kind != LT_WLAN || g->link->prefix == PFX_PPI))
		fail(g, "'vxlan' is not supported on %s (variable-length link header)",
		     g->link->name);
	uint32_t vni = 0;
	if (n->id) {
		vni = number(g, n->id, "vxlan vni");
		if (vni > 0xffffff)
			fail(g, "VXLAN VNI %u greater than maximum 16777215", vni);
	}
	uint32_t base = (uint32_t)nl(g);
	int c6 = vxlan_inner(g, false, t);
	if (n->id)
		c6 = test(g, 4, base + 40 + 8 + 4, 0xffffff00u, LEX_EQ, vni << 8, c6, f);
	c6 = test(g, 1, base + 40 + 8, 0xffffffffu, LEX_EQ, VXLAN_FLAGS, c6, f);
	c6 = test(g, 2, base + 40 + 2, 0xffffffffu, LEX_EQ, VXLAN_PORT, c6, f);
	c6 = test(g, 1, base + 6, 0xffffffffu, LEX_EQ, IPP_UDP, c6, f);
	c6 = linktype(g, ETYPE_IPV6, c6, f);
	int c4 = vxlan_inner(g, true, t);
	if (n->id)
		c4 = vxlan_v4_test(g, 4, 8 + 4, 0xffffff00u, vni << 8, c4, c6);
	c4 = vxlan_v4_test(g, 1, 8, 0xffffffffu, VXLAN_FLAGS, c4, c6);
	c4 = test_x(g, 2, 2, LEX_EQ, VXLAN_PORT, c4, c6);
	c4 = nofrag(g, c4, c6);
	c4 = test(g, 1, base + 9, 0xffffffffu, LEX_EQ, IPP_UDP, c4, c6);
	return linktype(g, ETYPE_IP, c4, c6);
}

static int pppoe(struct gen *g, const struct parse_node *n, int t, int f)
{
	if (g->e.kind != ENC_LINK)
		fail(g, "'%s' is not supported inside other encapsulations", lex_keyword_name(n->prim));
	if (n->prim == KW_PPPOED)
		return linktype(g, ETYPE_PPPOED, t, f);
	/* libpcap 1.10.3 stores the radio header's length and the 802.11 payload
	 * offset in the same scratch word there, then reads an unset one */
	if (g->link->kind == LT_WLAN && g->link->prefix != PFX_NONE)
		fail(g, "'pppoes' is not supported on %s (radio header)", g->link->name);
	int body = t;
	if (n->id) {
		uint32_t s = number(g, n->id, "pppoes session");
		if (s > 0xffff)
			fail(g, "pppoes session %u out of range", s);
		body = test(g, 4, (uint32_t)g->e.off_nl, 0xffff, LEX_EQ, s, t, f);
	}
	return linktype(g, ETYPE_PPPOES, body, f);
}

static int prim(struct gen *g, const struct parse_node *n, int t, int f)
{
	int linkprim = codegen_link_prim(g->cc, g->fn, g->link, n, t, f);
	if (linkprim >= 0)
		return linkprim;   /* pflog, inbound, 802.11 ... (codegen_link.c) */
	switch (n->prim) {
	case 0:
		break;
	case KW_LESS: case KW_GREATER: {
		int b = blk(g);
		st(g, b, BPFKIT_LD | BPFKIT_LEN | BPFKIT_W, 0);
		uint32_t k = number(g, n->id, "length");
		return n->prim == KW_LESS ? jump(g, b, LEX_LE, false, k, t, f)
					  : jump(g, b, LEX_GE, false, k, t, f);
	}
	case KW_BROADCAST:
		if (n->proto == 0 || n->proto == KW_ETHER || link_alias(g, n->proto) == KW_LINK) {
			static const uint8_t bc[6] = {255, 255, 255, 255, 255, 255};
			return ether_addr(g, KW_DST, bc, t, f);
		}
		if (n->proto == KW_IP) {
			if (g->cc->netmask == 0xffffffffu)   /* compile.c: unknown */
				fail(g, "netmask not known, so 'ip broadcast' not supported");
			uint32_t m = ~g->cc->netmask;
			int b2 = test(g, 4, (uint32_t)nl(g) + 16, m, LEX_EQ, m, t, f);
			int b1 = test(g, 4, (uint32_t)nl(g) + 16, m, LEX_EQ, 0, t, b2);
			return linktype(g, ETYPE_IP, b1, f);
		}
		fail(g, "'%s broadcast' is not supported", lex_keyword_name(n->proto));
	case KW_MULTICAST:
		if (n->proto == 0 || n->proto == KW_ETHER || link_alias(g, n->proto) == KW_LINK) {
			if (g->link->off_mac < 0)
				fail(g, "'ether multicast' needs MAC addresses, not %s",
				     g->link->name);
			return test(g, 1, (uint32_t)g->link->off_mac, 0xffffffffu, LEX_BAND, 1, t, f);
		}
		if (n->proto == KW_IP)
			return linktype(g, ETYPE_IP, test(g, 1, (uint32_t)nl(g) + 16, 0xffffffffu,
							  LEX_GE, 0xe0, t, f), f);
		if (n->proto == KW_IP6)
			return linktype(g, ETYPE_IPV6, test(g, 1, (uint32_t)nl(g) + 24, 0xffffffffu,
							    LEX_EQ, 0xff, t, f), f);
		fail(g, "'%s multicast' is not supported", lex_keyword_name(n->proto));
	case KW_VLAN:
		return vlan(g, n, t, f);
	case KW_MPLS:
		return mpls(g, n, t, f);
	case KW_PPPOED: case KW_PPPOES:
		return pppoe(g, n, t, f);
	case KW_LLC:
		return llc(g, n, t, f);
	case KW_GENEVE:
		return geneve(g, n, t, f);
	case KW_VXLAN:
		return vxlan(g, n, t, f);
	case KW_BYTE: {
		/* byte N op V: the byte at N of the link header.  As libpcap does, '&' and
		 * '|' apply to the accumulator as it stands (nothing is loaded) and the
		 * result is compared with 0. */
		uint32_t v = n->id2->num;
		if (v > 255)   /* libpcap master; 1.10.3 compared the byte with it */
			fail_tok(g, n->id2, "byte argument %u greater than maximum 255", v);
		if (n->relop == LEX_BAND || n->relop == LEX_BOR) {
			int b = blk(g);
			st(g, b, BPFKIT_ALU | (n->relop == LEX_BAND ? BPFKIT_AND : BPFKIT_OR) |
				 BPFKIT_K, v);
			return jump(g, b, LEX_EQ, false, 0, f, t);
		}
		return test(g, 1, load_base(g, KW_LINK) + n->id->num, 0xffffffffu, n->relop, v, t,
			    f);
	}
	default:
		fail(g, "'%s' is not supported on %s", lex_keyword_name(n->prim), g->link->name);
	}
	if (!n->id)
		return pname(g, n->proto, t, f);
	switch (n->type) {
	case KW_PORT: case KW_PORTRANGE: {
		struct portspec ps = {.dir = n->dir};
		int rp, rp2, proto = n->proto;
		if (n->type == KW_PORTRANGE) {
			/* "portrange 10-20" arrives as one name */
			const char *s = n->id->text;
			const char *dash = strchr(s, '-');
			if (n->id->kind == LEX_NUM) {
				ps.lo = ps.hi = port_value(g, n->id, &rp);
			} else if (dash) {
				struct lex_token a = *n->id, b = *n->id;
				char lo[64], hi[64];
				snprintf(lo, sizeof lo, "%.*s", (int)(dash - s), s);
				snprintf(hi, sizeof hi, "%s", dash + 1);
				a.text = lo;
				b.text = hi;
				char *end;
				a.kind = b.kind = LEX_NAME;
				unsigned long v = strtoul(lo, &end, 10);
				if (*lo && !*end) { a.kind = LEX_NUM; a.num = v > 0xffffffffu ? 0xffffffffu : (uint32_t)v; }
				v = strtoul(hi, &end, 10);
				if (*hi && !*end) { b.kind = LEX_NUM; b.num = v > 0xffffffffu ? 0xffffffffu : (uint32_t)v; }
				ps.lo = port_value(g, &a, &rp);
				ps.hi = port_value(g, &b, &rp2);
				if (rp != rp2)
					rp = 0;
			} else {
				fail(g, "portrange needs LOW-HIGH, not '%s'", s);
			}
			if (ps.lo > ps.hi) {
				uint32_t x = ps.lo;
				ps.lo = ps.hi;
				ps.hi = x;
			}
			ps.range = true;
			proto = port_proto(g, proto, rp, "port in range", s);
		} else {
			ps.lo = ps.hi = port_value(g, n->id, &rp);
			proto = port_proto(g, proto, rp, "port", n->id->text);
		}
		return ports(g, proto, &ps, t, f);
	}
	case KW_PROTO: case KW_PROTOCHAIN:
		return proto_prim(g, n, t, f);
	case KW_GATEWAY:
		return gateway(g, n, t, f);
	case 0: case KW_HOST: case KW_NET:
		if (n->proto == KW_TCP || n->proto == KW_UDP || n->proto == KW_SCTP ||
		    n->proto == KW_ICMP) {
			if (n->type == 0 && n->id->kind == LEX_NUM)
				fail(g, "'%s' modifier applied to host (did you mean '%s port'?)",
				     lex_keyword_name(n->proto), lex_keyword_name(n->proto));
			fail(g, "'%s' modifier applied to %s", lex_keyword_name(n->proto),
			     n->type == KW_NET ? "net" : "host");
		}
		return host_net(g, n, t, f);
	default:
		fail(g, "'%s' is not supported", lex_keyword_name(n->type));
	}
}

/* A relation's loads all read the inner network or transport layer (ip[], tcp[]...). */
static bool geneve_inner_arith(const struct parse_arith *a)
{
	if (!a)
		return true;
	if (a->kind == PA_LOAD && a->proto != KW_IP && a->proto != KW_IP6 &&
	    transport_row(a->proto) < 0)
		return false;
	return geneve_inner_arith(a->l) && geneve_inner_arith(a->r);
}

/* n holds only when some geneve in it matched (and stored the inner offsets). */
static bool asserts_geneve(const struct parse_node *n)
{
	switch (n->kind) {
	case PN_PRIM: return n->prim == KW_GENEVE || n->prim == KW_VXLAN;
	case PN_AND: return asserts_geneve(n->l) || asserts_geneve(n->r);
	case PN_OR: return asserts_geneve(n->l) && asserts_geneve(n->r);
	default: return false;
	}
}

/*
 * Primitives that only look at the inner type field and network layer.
 * Relations: only behind one geneve that matched on every path to them -
 * elsewhere libpcap 1.10.3 reads scratch words that its allocator gave to
 * something else (the 802.11 payload offset) or that a later geneve set.
 */
static bool geneve_inner_ok(struct gen *g, const struct parse_node *n)
{
	if (n->kind == PN_REL)
		return g->e.geneve == 1 && g->after_geneve && geneve_inner_arith(n->a) &&
		       geneve_inner_arith(n->b);
	if (n->kind != PN_PRIM || n->type == KW_PROTOCHAIN || n->type == KW_GATEWAY)
		return false;
	switch (n->prim) {
	case 0:
		break;
	case KW_GENEVE: case KW_VXLAN:
		return true;
	case KW_BROADCAST: case KW_MULTICAST:
		return n->proto == KW_IP || n->proto == KW_IP6;
	default:
		return false;
	}
	switch (n->proto) {
	case 0: case KW_IP: case KW_IP6: case KW_ARP: case KW_RARP:
		return g->link->kind == LT_ETHER || g->link->kind == LT_SLL;
	case KW_ETHER: case KW_LINK:
		return false;
	default:
		/* a protocol name alone ("iso", "ipx", "tcp") or a transport qualifier */
		return (!n->id || transport_row(n->proto) >= 0) &&
		       (g->link->kind == LT_ETHER || g->link->kind == LT_SLL);
	}
}

static int gen(struct gen *g, const struct parse_node *n, int t, int f)
{
	switch (n->kind) {
	case PN_AND: {
		bool outer = g->after_geneve;
		g->after_geneve = outer || asserts_geneve(n->l);
		int r = gen(g, n->r, t, f);
		g->after_geneve = outer;
		return gen(g, n->l, r, f);
	}
	case PN_OR: {
		int r = gen(g, n->r, t, f);
		return gen(g, n->l, t, r);
	}
	case PN_NOT:
		return gen(g, n->l, f, t);
	case PN_PRIM: case PN_REL:
		g->e = g->encs[n->seq];
		g->at = n;
		if (g->e.geneve && !geneve_inner_ok(g, n))
			fail(g, "this primitive after 'geneve' or 'vxlan' (the inner packet) "
			     "is not supported yet");
		return n->kind == PN_REL ? relation(g, n, t, f) : prim(g, n, t, f);
	}
	return f;
}

/* The layer state each primitive sees, walking in textual order. */
static void encaps(struct gen *g, const struct parse_node *n, struct enc *cur)
{
	if (!n)
		return;
	if (n->kind != PN_PRIM && n->kind != PN_REL) {
		encaps(g, n->l, cur);
		encaps(g, n->r, cur);
		return;
	}
	if (n->seq >= g->nenc)
		return;
	g->encs[n->seq] = *cur;
	if (n->kind != PN_PRIM)
		return;
	switch (n->prim) {
	case KW_VLAN:
		if (cur->kind == ENC_LINK) {
			cur->off_type += 4;
			cur->off_nl += 4;
		}
		break;
	case KW_MPLS:
		cur->kind = ENC_MPLS;
		cur->off_nl += 4;
		break;
	case KW_GENEVE: case KW_VXLAN:
		/* the inner packet: Ethernet-like type field and payload (geneve_inner,
		 * vxlan_inner) */
		cur->geneve++;
		cur->lt = LT_ETHER;   /* libpcap: Ethernet's type tests, whatever the link */
		cur->off_type = (int)CODEGEN_VAR_GT;
		cur->off_nl = (int)CODEGEN_VAR_GN;
		break;
	case KW_PPPOES:
		cur->kind = ENC_PPP;
		cur->off_type = cur->off_nl + 6;
		cur->off_nl += 8;
		break;
	default:
		break;
	}
}

static int count_prims(const struct parse_node *n)
{
	if (!n)
		return 0;
	if (n->kind == PN_PRIM || n->kind == PN_REL)
		return n->seq + 1;
	int a = count_prims(n->l), b = count_prims(n->r);
	return a > b ? a : b;
}

void codegen_run(struct compile_ctx *cc, const struct parse_node *root, struct ir_func *fn)
{
	struct gen g = {.cc = cc, .fn = fn};
	g.link = linktype_link(cc->linktype);
	if (!g.link) {
		const char *name = bpfkit_linktype_name(cc->linktype);
		if (name)
			compile_error(cc, 0, 0, "link type %s is not supported by the compiler yet",
				      name);
		compile_error(cc, 0, 0, "unknown link type %d", cc->linktype);
	}
	int accept = ir_ret(fn, cc->snaplen);
	int reject = ir_ret(fn, 0);
	if (!root) {
		fn->entry = accept;
		return;
	}
	g.nenc = count_prims(root);
	g.encs = compile_alloc(cc, (size_t)(g.nenc + 1) * sizeof *g.encs);
	struct enc start = {ENC_LINK, g.link->kind, g.link->off_type, g.link->off_nl, 0, 0};
	encaps(&g, root, &start);
	fn->entry = gen(&g, root, accept, reject);
	fn->entry = codegen_link_prologue(cc, fn, g.link, fn->entry);
	if (fn->failed)
		compile_error(cc, 0, 0, "out of memory");
}
