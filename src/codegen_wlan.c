/*
 * codegen_wlan.c - 802.11 for the pcap-filter compiler: addresses by frame
 * type and DS bits (wlan host/src/dst/addr1..4/ra/ta, broadcast, multicast),
 * the type/subtype/dir primitives and the prologue that computes where the
 * 802.11 payload starts (24 bytes, +2 for QoS data, rounded up to 4 when a
 * radiotap header announces padding).  The meaning is libpcap 1.10.3's
 * unoptimized program, test for test, because a load past the capture
 * rejects the packet and so the order of loads decides verdicts.
 *
 * The 802.11 header starts at link->off_mac: 0 on IEEE802_11, tagged
 * CODEGEN_VAR_HDR (after a radio header read from the packet) otherwise.
 */
#include "internal.h"
#include "proto.h"

#include <string.h>

/* Frame control: byte 0 holds type (0x0c) and subtype (0xf0); byte 1 the DS bits. */
enum {
	FC_TYPE = 0x0c, FC_SUBTYPE = 0xf0, FC_CTL_BIT = 0x04, FC_DATA_BIT = 0x08,
	FC_QOS_BIT = 0x80, FC_TODS = 0x01, FC_FROMDS = 0x02, FC_DIR = 0x03,
	T_MGT = 0x00, T_CTL = 0x04, T_DATA = 0x08,
	ADDR1 = 4, ADDR2 = 10, ADDR3 = 16, ADDR4 = 24, WLAN_HDRLEN = 24
};

static const struct { const char *name; uint32_t v; } wlan_types[] = {
	{"mgt", T_MGT}, {"management", T_MGT}, {"ctl", T_CTL}, {"control", T_CTL},
	{"data", T_DATA},
};

static const struct { uint32_t type; const char *name; uint32_t v; } wlan_subtypes[] = {
	{T_MGT, "assoc-req", 0x00}, {T_MGT, "assocreq", 0x00},
	{T_MGT, "assoc-resp", 0x10}, {T_MGT, "assocresp", 0x10},
	{T_MGT, "reassoc-req", 0x20}, {T_MGT, "reassocreq", 0x20},
	{T_MGT, "reassoc-resp", 0x30}, {T_MGT, "reassocresp", 0x30},
	{T_MGT, "probe-req", 0x40}, {T_MGT, "probereq", 0x40},
	{T_MGT, "probe-resp", 0x50}, {T_MGT, "proberesp", 0x50},
	{T_MGT, "beacon", 0x80}, {T_MGT, "atim", 0x90},
	{T_MGT, "disassoc", 0xa0}, {T_MGT, "disassociation", 0xa0},
	{T_MGT, "auth", 0xb0}, {T_MGT, "authentication", 0xb0},
	{T_MGT, "deauth", 0xc0}, {T_MGT, "deauthentication", 0xc0},
	{T_CTL, "ps-poll", 0xa0}, {T_CTL, "rts", 0xb0}, {T_CTL, "cts", 0xc0},
	{T_CTL, "ack", 0xd0}, {T_CTL, "cf-end", 0xe0}, {T_CTL, "cf-end-ack", 0xf0},
	{T_DATA, "data", 0x00}, {T_DATA, "data-cf-ack", 0x10}, {T_DATA, "data-cf-poll", 0x20},
	{T_DATA, "data-cf-ack-poll", 0x30}, {T_DATA, "null", 0x40}, {T_DATA, "cf-ack", 0x50},
	{T_DATA, "cf-poll", 0x60}, {T_DATA, "cf-ack-poll", 0x70}, {T_DATA, "qos-data", 0x80},
	{T_DATA, "qos-data-cf-ack", 0x90}, {T_DATA, "qos-data-cf-poll", 0xa0},
	{T_DATA, "qos-data-cf-ack-poll", 0xb0}, {T_DATA, "qos", 0xc0},
	{T_DATA, "qos-cf-poll", 0xe0}, {T_DATA, "qos-cf-ack-poll", 0xf0},
};

static const struct { const char *name; uint32_t v; } wlan_dirs[] = {
	{"nods", 0}, {"tods", 1}, {"fromds", 2}, {"dstods", 3},
};

struct wg {
	struct compile_ctx *cc;
	struct ir_func *fn;
	uint32_t hdr;           /* the 802.11 header (maybe tagged) */
	const uint8_t *mac;     /* the address compared, or NULL: the group bit */
};

static int blk(struct wg *w)
{
	int b = ir_block_new(w->fn);
	if (b < 0)
		compile_error(w->cc, 0, 0, "out of memory");
	return b;
}

/* ld size [hdr + off]; [and mask]; jop k */
static int cmp(struct wg *w, int size, uint32_t off, uint32_t mask, uint16_t jop, uint32_t k,
	       int t, int f)
{
	int b = blk(w);
	codegen_link_ld(w->fn, b, size, w->hdr + off);
	if (mask != 0xffffffffu)
		ir_stmt_add(w->fn, b, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, mask);
	return ir_branch(w->fn, b, BPFKIT_JMP | jop | BPFKIT_K, k, t, f);
}

static int bit(struct wg *w, uint32_t off, uint32_t bits, int set, int clear)
{
	return cmp(w, 1, off, 0xffffffffu, BPFKIT_JSET, bits, set, clear);
}

static int masked(struct wg *w, uint32_t off, uint32_t mask, uint32_t v, int t, int f)
{
	return cmp(w, 1, off, mask, BPFKIT_JEQ, v, t, f);
}

/* The address at off is w->mac (low four bytes tested first), or has the group bit. */
static int match(struct wg *w, uint32_t off, int t, int f)
{
	if (!w->mac)
		return bit(w, off, 0x01, t, f);
	const uint8_t *m = w->mac;
	uint32_t lo = (uint32_t)m[2] << 24 | (uint32_t)m[3] << 16 | (uint32_t)m[4] << 8 | m[5];
	int hi = cmp(w, 2, off, 0xffffffffu, BPFKIT_JEQ, (uint32_t)m[0] << 8 | m[1], t, f);
	return cmp(w, 4, off + 2, 0xffffffffu, BPFKIT_JEQ, lo, hi, f);
}

/* Destination: addr1, or addr3 of data frames going to the distribution system. */
static int wlan_dst(struct wg *w, int t, int f)
{
	int d2 = bit(w, 1, FC_TODS, match(w, ADDR3, t, f), f);
	int d1 = bit(w, 1, FC_TODS, d2, match(w, ADDR1, t, d2));
	int data = bit(w, 0, FC_DATA_BIT, d1, f);
	int mgmt = bit(w, 0, FC_DATA_BIT, data, match(w, ADDR1, t, data));
	return bit(w, 0, FC_CTL_BIT, f, mgmt);
}

/* Source: addr2, addr3 (from the DS) or addr4 (DS to DS). */
static int wlan_src(struct wg *w, int t, int f)
{
	int s4 = bit(w, 1, FC_TODS, match(w, ADDR4, t, f), f);
	int s3 = bit(w, 1, FC_TODS, s4, match(w, ADDR3, t, s4));
	int s2 = bit(w, 1, FC_FROMDS, s3, f);
	int s1 = bit(w, 1, FC_FROMDS, s2, match(w, ADDR2, t, s2));
	int data = bit(w, 0, FC_DATA_BIT, s1, f);
	int mgmt = bit(w, 0, FC_DATA_BIT, data, match(w, ADDR2, t, data));
	return bit(w, 0, FC_CTL_BIT, f, mgmt);
}

/* addr2: absent in CTS and ACK control frames. */
static int wlan_addr2(struct wg *w, int t, int f)
{
	int m = match(w, ADDR2, t, f);
	int ack = masked(w, 0, FC_SUBTYPE, 0xd0, f, m);
	int cts = masked(w, 0, FC_SUBTYPE, 0xc0, f, ack);
	return masked(w, 0, FC_TYPE, T_CTL, cts, m);
}

int codegen_wlan_addr(struct compile_ctx *cc, struct ir_func *fn,
		      const struct proto_link *link, const struct parse_node *at, int dir,
		      const uint8_t mac[6], int t, int f)
{
	struct wg w = {cc, fn, (uint32_t)link->off_mac, mac};
	switch (dir) {
	case KW_SRC: return wlan_src(&w, t, f);
	case KW_DST: return wlan_dst(&w, t, f);
	case 0: case 1000: return wlan_src(&w, t, wlan_dst(&w, t, f));
	case 1001: return wlan_src(&w, wlan_dst(&w, t, f), f);
	case KW_ADDR1: return match(&w, ADDR1, t, f);
	case KW_ADDR2: return wlan_addr2(&w, t, f);
	case KW_ADDR3: return masked(&w, 0, FC_TYPE, T_CTL, f, match(&w, ADDR3, t, f));
	case KW_ADDR4: return masked(&w, 1, FC_DIR, 3, match(&w, ADDR4, t, f), f);
	case KW_RA: return bit(&w, 0, FC_DATA_BIT, match(&w, ADDR1, t, f), f);
	case KW_TA: return bit(&w, 0, FC_DATA_BIT, wlan_addr2(&w, t, f), f);
	default:
		compile_error(cc, at ? at->col : 0, at ? at->span : 0,
			      "this direction does not apply to 802.11 addresses");
	}
}

static int wlan_cast(struct compile_ctx *cc, struct ir_func *fn, const struct proto_link *link,
		     bool multi, int t, int f)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	struct wg w = {cc, fn, (uint32_t)link->off_mac, multi ? NULL : bcast};
	return wlan_dst(&w, t, f);
}

static _Noreturn void fail(struct compile_ctx *cc, const struct parse_node *n,
			   const char *fmt, const char *arg)
{
	compile_error(cc, n->col, n->span, fmt, arg);
}

static uint32_t type_value(struct compile_ctx *cc, const struct parse_node *n)
{
	const struct lex_token *id = n->id;
	if (id->kind == LEX_NUM) {
		if (id->num & ~(uint32_t)FC_TYPE)
			fail(cc, n, "invalid 802.11 type value %s", id->text);
		return id->num;
	}
	for (size_t i = 0; i < sizeof wlan_types / sizeof wlan_types[0]; i++)
		if (strcmp(wlan_types[i].name, id->text) == 0)
			return wlan_types[i].v;
	fail(cc, n, "unknown 802.11 type name \"%s\"", id->text);
}

/* type|subtype bits of a subtype name (of type `type`, or any type when type < 0). */
static uint32_t subtype_value(struct compile_ctx *cc, const struct parse_node *n,
			      const struct lex_token *id, long type)
{
	if (id->kind == LEX_NUM) {
		if (type < 0)
			fail(cc, n, "'subtype %s' needs a name (or 'type T subtype N')", id->text);
		if (id->num & ~(uint32_t)FC_SUBTYPE)
			fail(cc, n, "invalid 802.11 subtype value %s", id->text);
		return (uint32_t)type | id->num;
	}
	for (size_t i = 0; i < sizeof wlan_subtypes / sizeof wlan_subtypes[0]; i++)
		if ((type < 0 || wlan_subtypes[i].type == (uint32_t)type) &&
		    strcmp(wlan_subtypes[i].name, id->text) == 0)
			return wlan_subtypes[i].type | wlan_subtypes[i].v;
	fail(cc, n, "unknown 802.11 subtype name \"%s\"", id->text);
}

int codegen_wlan_prim(struct compile_ctx *cc, struct ir_func *fn,
		      const struct proto_link *link, const struct parse_node *n, int t, int f)
{
	int prim = n->prim;
	bool is_wlan = link->kind == LT_WLAN;
	struct wg w = {cc, fn, is_wlan ? (uint32_t)link->off_mac : 0, NULL};
	switch (prim) {
	case KW_TYPE: case KW_SUBTYPE: case KW_DIR:
		if (!is_wlan || link->prefix == PFX_PPI)
			fail(cc, n, "'%s': 802.11 frame fields are supported only on 802.11 "
			     "link types (IEEE802_11, IEEE802_11_RADIO, PRISM_HEADER, AVS)",
			     lex_keyword_name(prim));
		if (!n->id)
			fail(cc, n, "'%s' needs a value", lex_keyword_name(prim));
		if (prim == KW_DIR) {
			uint32_t v = n->id->num;
			if (n->id->kind != LEX_NUM) {
				size_t i = 0, nd = sizeof wlan_dirs / sizeof wlan_dirs[0];
				while (i < nd && strcmp(wlan_dirs[i].name, n->id->text) != 0)
					i++;
				if (i == nd)
					fail(cc, n, "unknown 802.11 direction \"%s\"", n->id->text);
				v = wlan_dirs[i].v;
			} else if (v > 3) {   /* two bits (libpcap master refuses more) */
				compile_error(cc, n->id->col, n->id->span,
					      "invalid 802.11 direction value %u (0-3)", v);
			}
			return masked(&w, 1, FC_DIR, v, t, f);
		}
		if (prim == KW_SUBTYPE)
			return masked(&w, 0, FC_TYPE | FC_SUBTYPE,
				      subtype_value(cc, n, n->id, -1), t, f);
		if (n->id2)
			return masked(&w, 0, FC_TYPE | FC_SUBTYPE,
				      subtype_value(cc, n, n->id2, type_value(cc, n)), t, f);
		return masked(&w, 0, FC_TYPE, type_value(cc, n), t, f);
	case KW_BROADCAST: case KW_MULTICAST:
		if (!is_wlan || !(n->proto == 0 || n->proto == KW_ETHER || n->proto == KW_LINK ||
				  n->proto == KW_WLAN || n->proto == KW_FDDI || n->proto == KW_TR ||
				  n->proto == KW_PPP || n->proto == KW_SLIP))
			return -1;
		return wlan_cast(cc, fn, link, prim == KW_MULTICAST, t, f);
	case KW_LLC:
		if (!is_wlan || n->id)
			return -1;
		return bit(&w, 0, FC_CTL_BIT, f, bit(&w, 0, FC_DATA_BIT, t, f));
	default:
		return -1;
	}
}

int codegen_wlan_prologue(struct ir_func *fn, const struct proto_link *link, int next)
{
	bool var = link->prefix != PFX_NONE;
	/* X = the header's start; every block reloads what it tests */
#define START(b) do { \
		if (var) \
			ir_stmt_add(fn, b, BPFKIT_LDX | BPFKIT_MEM, CODEGEN_REG_HDR); \
		else \
			ir_stmt_add(fn, b, BPFKIT_LDX | BPFKIT_IMM, 0); \
	} while (0)
	uint16_t jeq = BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K, jset = BPFKIT_JMP | BPFKIT_JSET |
		BPFKIT_K;
	int end = next;
	if (link->prefix == PFX_RADIOTAP) {
		/* radiotap flags (present bit 1, after the TSFT when bit 0) with DATAPAD */
		int pad = ir_block_new(fn);
		ir_stmt_add(fn, pad, BPFKIT_LD | BPFKIT_MEM, CODEGEN_REG_PL);
		ir_stmt_add(fn, pad, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 3);
		ir_stmt_add(fn, pad, BPFKIT_ALU | BPFKIT_AND | BPFKIT_K, 0xfffffffcu);
		ir_stmt_add(fn, pad, BPFKIT_ST, CODEGEN_REG_PL);
		ir_branch(fn, pad, jeq, 0, next, next);
		int r4 = ir_block_new(fn), r3 = ir_block_new(fn), r2 = ir_block_new(fn);
		int r1 = ir_block_new(fn), r0 = ir_block_new(fn);
		ir_stmt_add(fn, r4, BPFKIT_LD | BPFKIT_ABS | BPFKIT_B, 8);
		ir_branch(fn, r4, jset, 0x20, pad, next);
		ir_stmt_add(fn, r3, BPFKIT_LD | BPFKIT_ABS | BPFKIT_B, 16);
		ir_branch(fn, r3, jset, 0x20, pad, next);
		ir_stmt_add(fn, r2, BPFKIT_LD | BPFKIT_ABS | BPFKIT_W, 4);
		ir_branch(fn, r2, jset, 0x01000000u, r3, r4);
		ir_stmt_add(fn, r1, BPFKIT_LD | BPFKIT_ABS | BPFKIT_W, 4);
		ir_branch(fn, r1, jset, 0x80, next, r2);
		ir_stmt_add(fn, r0, BPFKIT_LD | BPFKIT_ABS | BPFKIT_W, 4);
		ir_branch(fn, r0, jset, 0x02000000u, r1, next);
		end = r0;
	}
	int qos = ir_block_new(fn), b2 = ir_block_new(fn), b1 = ir_block_new(fn);
	int b0 = ir_block_new(fn);
	ir_stmt_add(fn, qos, BPFKIT_LD | BPFKIT_MEM, CODEGEN_REG_PL);
	ir_stmt_add(fn, qos, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, 2);
	ir_stmt_add(fn, qos, BPFKIT_ST, CODEGEN_REG_PL);
	ir_branch(fn, qos, jeq, 0, end, end);
	START(b2);
	ir_stmt_add(fn, b2, BPFKIT_LD | BPFKIT_IND | BPFKIT_B, 0);
	ir_branch(fn, b2, jset, FC_QOS_BIT, qos, end);
	START(b1);
	ir_stmt_add(fn, b1, BPFKIT_LD | BPFKIT_IND | BPFKIT_B, 0);
	ir_branch(fn, b1, jset, FC_CTL_BIT, next, b2);
	START(b0);
	ir_stmt_add(fn, b0, BPFKIT_MISC | BPFKIT_TXA, 0);
	ir_stmt_add(fn, b0, BPFKIT_ALU | BPFKIT_ADD | BPFKIT_K, WLAN_HDRLEN);
	ir_stmt_add(fn, b0, BPFKIT_ST, CODEGEN_REG_PL);
	ir_stmt_add(fn, b0, BPFKIT_LD | BPFKIT_IND | BPFKIT_B, 0);
	ir_branch(fn, b0, jset, FC_DATA_BIT, b1, next);
#undef START
	return b0;
}
