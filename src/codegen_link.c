/*
 * codegen_link.c - code generation for the link layers beyond Ethernet,
 * Linux cooked and raw IP: PPP (and its serial, pppd, BSD/OS variants),
 * Cisco HDLC, SLIP, OpenBSD pflog, FDDI, Token Ring and the 802.11 family
 * (the 802.11-specific parts are in codegen_wlan.c).  The meaning is
 * libpcap 1.10.3's unoptimized program for the same expression.
 *
 * Offsets that depend on a length read from the packet carry a tag
 * (CODEGEN_VAR_PL, CODEGEN_VAR_HDR; internal.h): loads through them become
 * "ldx M[r]; ld [x + k]", and codegen_link_prologue() prepends, before any
 * test, the code that stores those lengths - only when some load uses them,
 * as libpcap does (its prologue's loads can reject short packets).
 * Protocol knowledge (type maps, header fields, names) lives in the tables
 * below.  Like codegen.c, every block loads what it tests.
 */
#include "internal.h"
#include "proto.h"

#include <string.h>

/* ---- blocks ---- */

static int blk(struct compile_ctx *cc, struct ir_func *fn)
{
	int b = ir_block_new(fn);
	if (b < 0)
		compile_error(cc, 0, 0, "out of memory");
	return b;
}

static uint16_t ldsize(int size)
{
	return size == 1 ? BPFKIT_B : size == 2 ? BPFKIT_H : BPFKIT_W;
}

uint32_t codegen_link_reg(uint32_t off)
{
	if (off & CODEGEN_VAR_PL)
		return CODEGEN_REG_PL;
	if (off & CODEGEN_VAR_HDR)
		return CODEGEN_REG_HDR;
	return off & CODEGEN_VAR_GT ? CODEGEN_REG_GT : CODEGEN_REG_GN;
}

void codegen_link_ld(struct ir_func *fn, int b, int size, uint32_t off)
{
	if (off & CODEGEN_VAR_MASK) {
		uint32_t reg = codegen_link_reg(off);
		ir_stmt_add(fn, b, BPFKIT_LDX | BPFKIT_MEM, reg);
		ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_IND | ldsize(size), off & ~CODEGEN_VAR_MASK);
		return;
	}
	ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_ABS | ldsize(size), off);
}

void codegen_link_ldx_iphl(struct ir_func *fn, int b, uint32_t nl)
{
	if (!(nl & CODEGEN_VAR_MASK)) {
		ir_stmt_add(fn, b, BPFKIT_LDX | BPFKIT_MSH | BPFKIT_B, nl);
		return;
	}
	codegen_link_ld(fn, b, 1, nl);
	ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, 0xf);
	ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_LSH | BPFKIT_K, 2);
	ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_X, 0);
	ir_stmt_add(fn, b, BPFKIT_MISC | BPFKIT_TAX, 0);
}

void codegen_link_ind_load(struct ir_func *fn, int b, int size, uint32_t base, bool iphl,
			   uint32_t nl, int scratch)
{
	if (iphl) {
		ir_stmt_add(fn, b, BPFKIT_ST, (uint32_t)scratch);
		codegen_link_ldx_iphl(fn, b, nl);
		ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_MEM, (uint32_t)scratch);
	} else if (base & CODEGEN_VAR_MASK) {
		ir_stmt_add(fn, b, BPFKIT_LDX | BPFKIT_MEM, codegen_link_reg(base));
	}
	if (iphl || (base & CODEGEN_VAR_MASK))
		ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_X, 0);
	ir_stmt_add(fn, b, BPFKIT_MISC | BPFKIT_TAX, 0);
	ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_IND | ldsize(size), base & ~CODEGEN_VAR_MASK);
}

/* ld size [off]; [and mask]; jcode k -> t / f */
static int cmp(struct compile_ctx *cc, struct ir_func *fn, int size, uint32_t off,
	       uint32_t mask, uint16_t jop, uint32_t k, int t, int f)
{
	int b = blk(cc, fn);
	codegen_link_ld(fn, b, size, off);
	if (mask != 0xffffffffu)
		ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, mask);
	return ir_branch(fn, b, BPFKIT_JMP | jop | BPFKIT_K, k, t, f);
}

static int eq(struct compile_ctx *cc, struct ir_func *fn, int size, uint32_t off, uint32_t k,
	      int t, int f)
{
	return cmp(cc, fn, size, off, 0xffffffffu, BPFKIT_JEQ, k, t, f);
}

/* ---- the network protocol ---- */

/* PPP protocol numbers for the ethertypes (and SAPs) libpcap maps. */
static const struct { uint32_t etype, ppp; } ppp_map[] = {
	{ETYPE_IP, 0x21}, {ETYPE_IPV6, 0x57}, {ETYPE_DECNET, 0x27}, {ETYPE_ATALK, 0x29},
	{0x0600, 0x25} /* XNS */, {0xfe, 0x23} /* ISO (OSI) */, {0x42, 0x31} /* bridging */,
	{0xe0, 0x2b} /* IPX SAP */, {ETYPE_IPX, 0x2b}, {ETYPE_MPLS, 0x281},
	{ETYPE_MPLS_MC, 0x283},
};

static uint32_t ppp_type(uint32_t etype)
{
	for (size_t i = 0; i < sizeof ppp_map / sizeof ppp_map[0]; i++)
		if (ppp_map[i].etype == etype)
			return ppp_map[i].ppp;
	return etype;
}

/* BSD/OS PPP: IPv4 is also Van Jacobson compressed / uncompressed TCP. */
static const uint32_t bsdos_ip[] = {0x21, 0x2d, 0x2f};

/* 802.2 SAPs libpcap compares as DSAP and SSAP together (the others: DSAP alone). */
static const uint32_t sap_pair[] = {0x06 /* IP */, 0xfe /* ISO */, 0xf0 /* NetBEUI */};

/* The protocol check on an 802.2 LLC header at llc (FDDI, Token Ring, 802.11 data). */
static int llc_type(struct compile_ctx *cc, struct ir_func *fn, uint32_t llc, uint32_t etype,
		    int t, int f)
{
	if (etype == ETYPE_ATALK) {
		/* SNAP with Apple's OUI 08:00:07 */
		int snap = eq(cc, fn, 4, llc, 0xaaaa0308u, t, f);
		return eq(cc, fn, 4, llc + 4, 0x0007809bu, snap, f);
	}
	if (etype <= 1500) {
		for (size_t i = 0; i < sizeof sap_pair / sizeof sap_pair[0]; i++)
			if (sap_pair[i] == etype)
				return eq(cc, fn, 2, llc, etype << 8 | etype, t, f);
		return eq(cc, fn, 1, llc, etype, t, f);
	}
	return eq(cc, fn, 2, llc + 6, etype, t, f);
}

/* Address families the pflog header carries (Linux values, as libpcap 1.10.3). */
enum { PFLOG_AF = 1, PFLOG_INET = 2, PFLOG_INET6 = 10 };

int codegen_link_linktype(struct compile_ctx *cc, struct ir_func *fn,
			  const struct proto_link *link, uint32_t etype, int t, int f)
{
	uint32_t type = (uint32_t)link->off_type;
	switch (link->kind) {
	case LT_PPP:
		return eq(cc, fn, 2, type, ppp_type(etype), t, f);
	case LT_PPP_BSDOS:
		if (etype == ETYPE_IP) {
			int next = f;
			for (int i = 2; i >= 0; i--)
				next = eq(cc, fn, 2, type, bsdos_ip[i], t, next);
			return next;
		}
		return eq(cc, fn, 2, type, ppp_type(etype), t, f);
	case LT_CHDLC:
		/* OSI is 0xfefe, an Ethernet-type lookalike */
		return eq(cc, fn, 2, type, etype == 0xfe ? 0xfefe : etype, t, f);
	case LT_SLIP:
		/* libpcap tests byte 0 of the SLIP header, not of the IP header */
		if (etype == ETYPE_IP)
			return cmp(cc, fn, 1, 0, 0xf0, BPFKIT_JEQ, 0x40, t, f);
		if (etype == ETYPE_IPV6)
			return cmp(cc, fn, 1, 0, 0xf0, BPFKIT_JEQ, 0x60, t, f);
		return f;
	case LT_PFLOG:
		if (etype == ETYPE_IP)
			return eq(cc, fn, 1, PFLOG_AF, PFLOG_INET, t, f);
		if (etype == ETYPE_IPV6)
			return eq(cc, fn, 1, PFLOG_AF, PFLOG_INET6, t, f);
		return f;
	case LT_LLC:
		return llc_type(cc, fn, type, etype, t, f);
	case LT_WLAN: {
		/* data frames only: type bits 0x0c of frame control == 0x08 */
		uint32_t hdr = (uint32_t)link->off_mac;
		int llc = llc_type(cc, fn, type, etype, t, f);
		int data = cmp(cc, fn, 1, hdr, 0xffffffffu, BPFKIT_JSET, 0x08, llc, f);
		return cmp(cc, fn, 1, hdr, 0xffffffffu, BPFKIT_JSET, 0x04, f, data);
	}
	default:
		compile_error(cc, 0, 0, "link type %s is not supported", link->name);
	}
}

bool codegen_link_has_radio(const struct proto_link *link)
{
	return link->kind == LT_WLAN && link->prefix != PFX_NONE && link->prefix != PFX_PPI;
}

/* libpcap reads the NLPID after a bare 802.2 header (no SNAP); Cisco HDLC pads a byte. */
int codegen_link_iso_delta(const struct proto_link *link)
{
	switch (link->kind) {
	case LT_LLC: case LT_WLAN: return -5;
	case LT_CHDLC: return 1;
	default: return 0;
	}
}

uint32_t codegen_link_hdr(const struct proto_link *link)
{
	return link->kind == LT_WLAN ? (uint32_t)link->off_mac : 0;
}

/* ---- link-specific primitives ---- */

/* pflog header fields (struct pfloghdr). */
enum {
	PFLOG_ACTION = 2, PFLOG_REASON = 3, PFLOG_IFNAME = 4, PFLOG_RULESET = 20,
	PFLOG_RULENR = 36, PFLOG_SUBRULENR = 40, PFLOG_DIR = 60, PFLOG_NAMELEN = 16
};

static const struct { const char *name; uint32_t v; } pf_actions[] = {
	{"pass", 0}, {"accept", 0}, {"block", 1}, {"drop", 1}, {"scrub", 2},
	{"noscrub", 3}, {"nat", 4}, {"nonat", 5}, {"binat", 6}, {"nobinat", 7},
	{"rdr", 8}, {"nordr", 9}, {"synproxy-drop", 10},
};

static const char *const pf_reasons[] = {
	"match", "bad-offset", "fragment", "short", "normalize", "memory", "bad-timestamp",
	"congestion", "ip-option", "proto-cksum", "state-mismatch", "state-insert",
	"state-limit", "src-limit", "synproxy",
};

static _Noreturn void fail_at(struct compile_ctx *cc, const struct parse_node *n,
			      const char *msg, const char *arg)
{
	compile_error(cc, n->col, n->span, msg, arg);
}

static uint32_t num_arg(struct compile_ctx *cc, const struct parse_node *n)
{
	if (!n->id || n->id->kind != LEX_NUM)
		fail_at(cc, n, "'%s' needs a number", lex_keyword_name(n->prim));
	return n->id->num;
}

/* A string field of the pflog header starts with name (no terminator: a prefix). */
static int pf_string(struct compile_ctx *cc, struct ir_func *fn, const struct parse_node *n,
		     uint32_t off, int t, int f)
{
	const char *s = n->id->text;
	size_t len = strlen(s);
	if (len >= PFLOG_NAMELEN)
		fail_at(cc, n, "'%s': interface and ruleset names can only be 15 characters",
			s);
	/* compared from the end: words, then a half word, then a byte (first tested first) */
	struct { uint32_t off, v; int size; } part[8];
	int np = 0;
	size_t i = len;
	while (i > 0) {
		int size = i >= 4 ? 4 : i >= 2 ? 2 : 1;
		i -= (size_t)size;
		uint32_t v = 0;
		for (int k = 0; k < size; k++)
			v = v << 8 | (uint8_t)s[i + (size_t)k];
		part[np].off = off + (uint32_t)i;
		part[np].v = v;
		part[np++].size = size;
	}
	int next = t;
	for (int p = np - 1; p >= 0; p--)
		next = eq(cc, fn, part[p].size, part[p].off, part[p].v, next, f);
	return next;
}

static int pflog_prim(struct compile_ctx *cc, struct ir_func *fn, const struct parse_node *n,
		      int t, int f)
{
	switch (n->prim) {
	case KW_IFNAME: case KW_ON:
		return pf_string(cc, fn, n, PFLOG_IFNAME, t, f);
	case KW_RULESET:
		return pf_string(cc, fn, n, PFLOG_RULESET, t, f);
	case KW_RNR: case KW_RULENUM:
		return eq(cc, fn, 4, PFLOG_RULENR, num_arg(cc, n), t, f);
	case KW_SRNR: case KW_SUBRULENUM:
		return eq(cc, fn, 4, PFLOG_SUBRULENR, num_arg(cc, n), t, f);
	case KW_INBOUND: case KW_OUTBOUND:
		return eq(cc, fn, 1, PFLOG_DIR, n->prim == KW_INBOUND ? 1 : 2, t, f);
	case KW_REASON: {
		const char *s = n->id->text;
		if (n->id->kind == LEX_NUM)
			return eq(cc, fn, 1, PFLOG_REASON, n->id->num, t, f);
		for (size_t i = 0; i < sizeof pf_reasons / sizeof pf_reasons[0]; i++)
			if (strcmp(pf_reasons[i], s) == 0)
				return eq(cc, fn, 1, PFLOG_REASON, (uint32_t)i, t, f);
		fail_at(cc, n, "unknown PF reason \"%s\"", s);
	}
	case KW_ACTION: {
		const char *s = n->id->text;
		for (size_t i = 0; i < sizeof pf_actions / sizeof pf_actions[0]; i++)
			if (strcmp(pf_actions[i].name, s) == 0)
				return eq(cc, fn, 1, PFLOG_ACTION, pf_actions[i].v, t, f);
		fail_at(cc, n, "unknown PF action \"%s\"", s);
	}
	default:
		return -1;
	}
}

/* Linux cooked captures: the packet type (4 = outgoing) and interface index
 * (-1: none; LINUX_SLL has no interface index field). */
static const struct { int dlt; uint32_t pkttype; int size; int ifindex; } cooked[] = {
	{113, 0, 2, -1}, {276, 10, 1, 4},
};

int codegen_link_prim(struct compile_ctx *cc, struct ir_func *fn,
		      const struct proto_link *link, const struct parse_node *n, int t, int f)
{
	int prim = n->prim;
	if (link->kind == LT_PFLOG) {
		int r = pflog_prim(cc, fn, n, t, f);
		if (r >= 0)
			return r;
	}
	if ((prim == KW_INBOUND || prim == KW_OUTBOUND) && link->dlt == 8) {
		/* the SLIP header's first byte: 0 received, else sent (SLIP_BSDOS: refused) */
		int in = prim == KW_INBOUND;
		return eq(cc, fn, 1, 0, 0, in ? t : f, in ? f : t);
	}
	if (prim == KW_RULESET && link->kind != LT_PFLOG)
		fail_at(cc, n, "%s", "'ruleset' applies only to pflog captures (link type PFLOG)");
	if (prim == KW_INBOUND || prim == KW_OUTBOUND || prim == KW_IFINDEX) {
		for (size_t i = 0; i < sizeof cooked / sizeof cooked[0]; i++) {
			if (cooked[i].dlt != link->dlt)
				continue;
			if (prim == KW_IFINDEX) {
				if (cooked[i].ifindex < 0)
					break;
				return eq(cc, fn, 4, (uint32_t)cooked[i].ifindex, num_arg(cc, n), t, f);
			}
			int out = prim == KW_OUTBOUND;
			return eq(cc, fn, cooked[i].size, cooked[i].pkttype, 4, out ? t : f,
				  out ? f : t);
		}
		/* libpcap master refuses the Linux-only ancillary loads 1.10.3 emits here */
		if (prim == KW_IFINDEX)
			compile_error(cc, n->col, n->span, "'ifindex' is not supported on link "
				      "type %s (only LINUX_SLL2 has an interface index)",
				      link->name);
		compile_error(cc, n->col, n->span, "'%s' is not supported on link type %s "
			      "(LINUX_SLL, LINUX_SLL2, SLIP and PFLOG have a direction)",
			      lex_keyword_name(prim), link->name);
	}
	if (prim == KW_IFNAME || prim == KW_ON || prim == KW_RNR || prim == KW_RULENUM ||
	    prim == KW_REASON || prim == KW_ACTION || prim == KW_SRNR || prim == KW_SUBRULENUM)
		fail_at(cc, n, "'%s' applies only to pflog captures (link type PFLOG)",
			lex_keyword_name(prim));
	if (link->kind == LT_WLAN || prim == KW_TYPE || prim == KW_SUBTYPE || prim == KW_DIR)
		return codegen_wlan_prim(cc, fn, link, n, t, f);
	if (link->kind == LT_LLC && (prim == KW_BROADCAST || prim == KW_MULTICAST))
		return -1;   /* codegen.c's MAC code, at off_mac */
	if (prim == KW_LLC && !n->id && link->kind == LT_LLC)
		return t;    /* every FDDI / Token Ring frame carries LLC */
	return -1;
}

/* ---- the prologue ---- */

static bool uses_reg(const struct ir_func *fn, uint32_t reg)
{
	for (int i = 0; i < fn->nblocks; i++) {
		const struct ir_block *b = &fn->blocks[i];
		for (int s = 0; s < b->nstmts; s++)
			if ((b->stmts[s].code == (BPFKIT_LDX | BPFKIT_MEM) ||
			     b->stmts[s].code == (BPFKIT_LD | BPFKIT_MEM)) && b->stmts[s].k == reg)
				return true;
	}
	return false;
}

/* Stores the radio header's length (the 802.11 header's offset) in M[REG_HDR]. */
static int prefix_len(struct compile_ctx *cc, struct ir_func *fn, enum proto_prefix pfx,
		      int next)
{
	int b = blk(cc, fn);
	switch (pfx) {
	case PFX_RADIOTAP: case PFX_PPI:
		/* 16-bit little-endian length at offset 2 */
		ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_ABS | BPFKIT_B, 3);
		ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_LSH | BPFKIT_K, 8);
		ir_stmt_add(fn, b, BPFKIT_MISC | BPFKIT_TAX, 0);
		ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_ABS | BPFKIT_B, 2);
		ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_OR | BPFKIT_X, 0);
		break;
	case PFX_AVS:
		/* 32-bit big-endian length at offset 4 */
		ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_ABS | BPFKIT_W, 4);
		break;
	case PFX_PRISM: {
		/* an AVS header (magic 0x80211000 in the top 20 bits) or 144 bytes of Prism */
		int avs = blk(cc, fn), prism = blk(cc, fn);
		ir_stmt_add(fn, avs, BPFKIT_LD | BPFKIT_ABS | BPFKIT_W, 4);
		ir_stmt_add(fn, avs, BPFKIT_ST, CODEGEN_REG_HDR);
		ir_branch(fn, avs, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0, next, next);
		ir_stmt_add(fn, prism, BPFKIT_LD | BPFKIT_IMM, 144);
		ir_stmt_add(fn, prism, BPFKIT_ST, CODEGEN_REG_HDR);
		ir_branch(fn, prism, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0, next, next);
		ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_ABS | BPFKIT_W, 0);
		ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, 0xfffff000u);
		return ir_branch(fn, b, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0x80211000u, avs,
				 prism);
	}
	case PFX_NONE:
		return next;
	}
	ir_stmt_add(fn, b, BPFKIT_ST, CODEGEN_REG_HDR);
	return ir_branch(fn, b, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0, next, next);
}

/* PPI: the header must announce 802.11 (DLT 105, little-endian at offset 4). */
enum { PPI_DLT_OFF = 4, PPI_DLT_80211 = 0x69000000u };

int codegen_link_prologue(struct compile_ctx *cc, struct ir_func *fn,
			  const struct proto_link *link, int entry)
{
	bool pl = uses_reg(fn, CODEGEN_REG_PL), hdr = uses_reg(fn, CODEGEN_REG_HDR);
	int next = entry;
	if (link->kind == LT_PFLOG && pl) {
		/* header length in byte 0, rounded up to a multiple of 4 */
		int b = blk(cc, fn);
		ir_stmt_add(fn, b, BPFKIT_LD | BPFKIT_ABS | BPFKIT_B, 0);
		ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 3);
		ir_stmt_add(fn, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, 0xfffffffcu);
		ir_stmt_add(fn, b, BPFKIT_ST, CODEGEN_REG_PL);
		return ir_branch(fn, b, BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, 0, next, next);
	}
	if (link->kind != LT_WLAN)
		return entry;
	if (pl)
		next = codegen_wlan_prologue(fn, link, next);
	if (link->prefix != PFX_NONE && (pl || hdr))
		next = prefix_len(cc, fn, link->prefix, next);
	if (link->prefix == PFX_PPI) {
		int reject = ir_ret(fn, 0);
		next = eq(cc, fn, 4, PPI_DLT_OFF, PPI_DLT_80211, next, reject);
	}
	if (fn->failed)
		compile_error(cc, 0, 0, "out of memory");
	return next;
}
