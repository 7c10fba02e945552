/*
 * gen.c - a deterministic generator of realistic packets (bpfkit gen).
 *
 * Each call of bpfkit_gen_next() draws one "kind" from a weighted table (the
 * kinds a link type can carry), builds that packet front to back into a frame
 * buffer, then patches lengths and checksums from the inside out.  Large IPv4
 * and IPv6 datagrams are built whole and handed out as consecutive fragments,
 * so every transport checksum is valid over the reassembled datagram.
 *
 * Invariants:
 * - Determinism: all randomness comes from one splitmix64 stream seeded by
 *   the caller; every field is written byte by byte in network order.  The one
 *   host-order field is DLT_NULL's address family, which by definition
 *   follows the byte order of the machine writing the capture.
 * - Every checksum is valid: IPv4 header, TCP/UDP/ICMP/ICMPv6 (pseudo-header
 *   with the final destination when a routing header is present), IGMP, SCTP
 *   CRC32c.  UDP checksums are never 0.
 * - Frames fit the link's MTU: Ethernet frames are 60..1514 bytes (short ones
 *   zero padded), other links carry at most a 1500-byte network packet.
 * - Wire length is the frame length; caplen is cut only by a snaplen.
 */
#include "internal.h"

#include <string.h>

#define LT_NULL 0u
#define LT_EN10MB 1u
#define LT_RAW 101u
#define LT_LINUX_SLL 113u

#define FRAME_CAP 4096
#define ETH_MIN 60
#define MTU 1500

#define ET_IPV4 0x0800
#define ET_ARP 0x0806
#define ET_VLAN 0x8100
#define ET_QINQ 0x88a8
#define ET_IPV6 0x86dd
#define ET_MPLS 0x8847
#define ET_PPPOE_DISC 0x8863
#define ET_PPPOE_SESS 0x8864
#define ET_TEB 0x6558

#define IP_ICMP 1
#define IP_IGMP 2
#define IP_IPIP 4
#define IP_TCP 6
#define IP_UDP 17
#define IP_GRE 47
#define IP_ICMP6 58
#define IP_SCTP 132
#define IP6_HBH 0
#define IP6_RT 43
#define IP6_FRAG 44
#define IP6_NONE 59
#define IP6_DST 60

#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_PSH 0x08
#define TH_ACK 0x10

/* How the network packet of a frame is wrapped (struct frame.encap). */
enum encap {
	ENC_LINK,  /* the capture's link header (Ethernet, SLL, none, AF family) */
	ENC_ETH,   /* a plain Ethernet header (inner frames of VXLAN, Geneve) */
	ENC_VLAN,  /* Ethernet + one 802.1Q tag */
	ENC_QINQ,  /* Ethernet + 802.1ad S-tag + 802.1Q C-tag */
	ENC_MPLS,  /* link header + MPLS label stack (IPv4 only) */
	ENC_PPPOE, /* link header + PPPoE session + PPP (IPv4 only) */
	ENC_SNAP,  /* 802.3 length + LLC/SNAP (Ethernet only) */
	ENC_NONE   /* nothing: the caller already wrote what precedes */
};

struct frame {
	uint8_t b[FRAME_CAP];
	size_t len;
	size_t limit;      /* the frame may not grow past this (MTU) */
	enum encap encap;
	size_t len16_off;  /* PPPoE or 802.3 length field to patch, 0 when none */
};

/* A network-layer header being built; l4 checksums use src and fdst. */
struct net {
	int v6;
	size_t off;        /* IP header offset in the frame */
	size_t l4;         /* transport header offset */
	uint8_t src[16], dst[16], fdst[16];
	uint8_t proto;
	uint8_t ttl;
	unsigned ext;      /* IPv6 extension headers (EXT_*) */
	const uint8_t *opt; /* IPv4 options (multiple of 4 bytes) */
	size_t optlen;
	int df;
};

enum { EXT_HBH = 1, EXT_DST1 = 2, EXT_RT = 4, EXT_DST2 = 8, EXT_HBH_RA = 16 };

/* A datagram handed out as fragments over the next calls. */
struct frag {
	int active, v6;
	struct frame dg;
	size_t link;       /* bytes before the IP header */
	size_t hlen;       /* IP header length (IPv4) or 40 */
	size_t done;       /* payload bytes already sent */
	size_t piece;      /* payload bytes per fragment (multiple of 8) */
	uint32_t id;
	uint8_t proto;     /* IPv6: the upper-layer protocol */
};

struct kind {
	const char *name;
	unsigned weight;
	unsigned links;    /* LINK_* mask */
	void (*build)(struct bpfkit_gen *g, struct frame *f);
};
enum { LINK_ETH = 1, LINK_SLL = 2, LINK_IP = 4 };

struct bpfkit_gen {
	struct bpfkit_alloc alloc_copy;
	const struct bpfkit_alloc *alloc;
	uint32_t linktype;
	unsigned linkmask;
	uint32_t snaplen;
	uint64_t rng;
	int64_t now_ns;
	uint16_t ip_id;
	uint32_t frag_id;
	unsigned total_weight;
	struct frag frag;
	struct frame cur;
};

/* ---- randomness (splitmix64: same sequence on every machine) ---- */

static uint64_t rnd64(struct bpfkit_gen *g)
{
	uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [0, n) for n >= 1. */
static uint32_t rnd(struct bpfkit_gen *g, uint32_t n)
{
	return (uint32_t)(((rnd64(g) >> 32) * (uint64_t)n) >> 32);
}

static uint32_t rnd_range(struct bpfkit_gen *g, uint32_t lo, uint32_t hi)
{
	return lo + rnd(g, hi - lo + 1);
}

/*
 * A random port in the dynamic range, avoiding the few there that tcpdump or
 * Wireshark decode by number (49152 BCM-LI, 54328 Elasticsearch discovery).
 */
static unsigned high_port(struct bpfkit_gen *g)
{
	unsigned p;
	do
		p = rnd_range(g, 49153, 65535);
	while (p == 54328);
	return p;
}

/* True with probability pct/100. */
static int chance(struct bpfkit_gen *g, unsigned pct)
{
	return rnd(g, 100) < pct;
}

/* ---- writing into a frame (never past FRAME_CAP) ---- */

static size_t room(const struct frame *f)
{
	return f->len < f->limit ? f->limit - f->len : 0;
}

static void put(struct frame *f, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (n > FRAME_CAP - f->len)
		n = FRAME_CAP - f->len;
	memcpy(f->b + f->len, p, n);
	f->len += n;
}

static void put8(struct frame *f, unsigned v)
{
	uint8_t b = (uint8_t)v;
	put(f, &b, 1);
}

static void put16(struct frame *f, unsigned v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	put(f, b, 2);
}

static void put32(struct frame *f, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	put(f, b, 4);
}

static void putz(struct frame *f, size_t n)
{
	while (n-- > 0)
		put8(f, 0);
}

static void put_rand(struct bpfkit_gen *g, struct frame *f, size_t n)
{
	while (n-- > 0)
		put8(f, (unsigned)rnd64(g));
}

static void put_text(struct frame *f, const char *s)
{
	put(f, s, strlen(s));
}

/*
 * Opaque application data: a 4-byte tag, then random bytes.  The tag keeps
 * Wireshark's heuristic dissectors (RTCP, CLTP, X11...) from claiming random
 * payloads on arbitrary ports and calling them malformed.
 */
static void put_opaque(struct bpfkit_gen *g, struct frame *f, size_t n)
{
	static const uint8_t tag[4] = {0xfe, 0x01, 'b', 'k'};
	put(f, tag, n < 4 ? n : 4);
	put_rand(g, f, n < 4 ? 0 : n - 4);
}

static void set16(struct frame *f, size_t off, unsigned v)
{
	if (off + 2 <= FRAME_CAP) {
		f->b[off] = (uint8_t)(v >> 8);
		f->b[off + 1] = (uint8_t)v;
	}
}

/* ---- checksums ---- */

static uint32_t sum_bytes(uint32_t sum, const uint8_t *p, size_t n)
{
	size_t i;
	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < n)
		sum += (uint32_t)p[i] << 8;
	return sum;
}

static uint16_t sum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Internet checksum of frame bytes [off, f->len) into the field at field. */
static void csum_at(struct frame *f, size_t off, size_t field, uint32_t seed)
{
	set16(f, field, 0);
	set16(f, field, sum_fold(sum_bytes(seed, f->b + off, f->len - off)));
}

static uint32_t pseudo_sum(const struct net *n, size_t len)
{
	size_t alen = n->v6 ? 16 : 4;
	uint32_t sum = sum_bytes(0, n->src, alen);
	sum = sum_bytes(sum, n->fdst, alen);
	return sum + n->proto + (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
}

/* TCP, UDP or ICMPv6 checksum over the pseudo-header; field is relative to n->l4. */
static void l4_csum(struct frame *f, const struct net *n, size_t field)
{
	size_t len = f->len - n->l4;
	set16(f, n->l4 + field, 0);
	uint16_t c = sum_fold(sum_bytes(pseudo_sum(n, len), f->b + n->l4, len));
	if (c == 0 && n->proto == IP_UDP)
		c = 0xffff;
	set16(f, n->l4 + field, c);
}

/* CRC32c (Castagnoli, reflected 0x82f63b78), bitwise: SCTP packets are few. */
static uint32_t crc32c(const uint8_t *p, size_t n)
{
	uint32_t crc = 0xffffffffu;
	while (n-- > 0) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1)));
	}
	return ~crc;
}

/* ---- the host population ---- */

static const uint8_t public4[][4] = {
	{93, 184, 216, 34}, {8, 8, 8, 8}, {1, 1, 1, 1}, {142, 250, 74, 46},
	{151, 101, 1, 140}, {203, 0, 113, 7}, {198, 51, 100, 23}, {104, 16, 132, 229},
};
static const uint8_t public6[][16] = {
	{0x26, 0x06, 0x47, 0x00, 0x47, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x11},
	{0x20, 0x01, 0x48, 0x60, 0x48, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0x88, 0x88},
	{0x2a, 0x00, 0x14, 0x50, 0x40, 0x01, 0x08, 0x2a, 0, 0, 0, 0, 0, 0, 0x20, 0x0e},
	{0x26, 0x20, 0x00, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfe},
};
static const uint8_t oui[][3] = {
	{0x00, 0x1b, 0x21}, {0x3c, 0x22, 0xfb}, {0xb8, 0x27, 0xeb}, {0x52, 0x54, 0x00},
};
static const uint8_t gateway_mac[6] = {0x00, 0x00, 0x0c, 0x07, 0xac, 0x01};
static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static void local4(struct bpfkit_gen *g, uint8_t a[4])
{
	if (chance(g, 50)) {
		a[0] = 192, a[1] = 168, a[2] = 1, a[3] = (uint8_t)rnd_range(g, 2, 40);
	} else {
		a[0] = 10, a[1] = 0, a[2] = (uint8_t)rnd(g, 4), a[3] = (uint8_t)rnd_range(g, 1, 60);
	}
}

static void remote4(struct bpfkit_gen *g, uint8_t a[4])
{
	if (chance(g, 60))
		memcpy(a, public4[rnd(g, sizeof public4 / sizeof public4[0])], 4);
	else
		local4(g, a);
}

static void local6(struct bpfkit_gen *g, uint8_t a[16])
{
	memset(a, 0, 16);
	a[0] = 0x20, a[1] = 0x01, a[2] = 0x0d, a[3] = 0xb8, a[5] = (uint8_t)rnd_range(g, 1, 2);
	a[15] = (uint8_t)rnd_range(g, 1, 40);
}

static void linklocal6(struct bpfkit_gen *g, uint8_t a[16])
{
	memset(a, 0, 16);
	a[0] = 0xfe, a[1] = 0x80;
	a[8] = 0x02, a[13] = 0xfe, a[14] = 0x12, a[15] = (uint8_t)rnd_range(g, 1, 40);
}

static void remote6(struct bpfkit_gen *g, uint8_t a[16])
{
	if (chance(g, 60))
		memcpy(a, public6[rnd(g, sizeof public6 / sizeof public6[0])], 16);
	else
		local6(g, a);
}

static int is_local(const uint8_t *a, int v6)
{
	if (v6)
		return (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d) || (a[0] == 0xfe);
	return a[0] == 10 || (a[0] == 192 && a[1] == 168);
}

/* A host's MAC address: stable per address, a gateway's for remote ones. */
static void mac_of(const uint8_t *a, int v6, uint8_t mac[6])
{
	if (!is_local(a, v6)) {
		memcpy(mac, gateway_mac, 6);
		return;
	}
	uint32_t h = 2166136261u;
	for (int i = 0; i < (v6 ? 16 : 4); i++)
		h = (h ^ (v6 && i < 8 && a[0] == 0xfe ? 0 : a[i])) * 16777619u;
	memcpy(mac, oui[h % 4], 3);
	mac[3] = (uint8_t)(h >> 8), mac[4] = (uint8_t)(h >> 16), mac[5] = (uint8_t)(h >> 24);
}

/* The destination MAC: broadcast, IPv4/IPv6 multicast mapping, or the host's. */
static void dst_mac(const uint8_t *a, int v6, uint8_t mac[6])
{
	if (v6 && a[0] == 0xff) {
		mac[0] = 0x33, mac[1] = 0x33;
		memcpy(mac + 2, a + 12, 4);
	} else if (!v6 && a[0] >= 224 && a[0] <= 239) {
		mac[0] = 0x01, mac[1] = 0x00, mac[2] = 0x5e;
		mac[3] = a[1] & 0x7f, mac[4] = a[2], mac[5] = a[3];
	} else if (!v6 && a[3] == 255) {
		memcpy(mac, bcast_mac, 6);
	} else {
		mac_of(a, v6, mac);
	}
}

/* ---- link layer ---- */

static void put_eth(struct frame *f, const uint8_t dmac[6], const uint8_t smac[6], unsigned type)
{
	put(f, dmac, 6);
	put(f, smac, 6);
	put16(f, type);
}

/* The capture's own link header for a packet of ethertype type. */
static void put_link(struct bpfkit_gen *g, struct frame *f, unsigned type,
		     const uint8_t dmac[6], const uint8_t smac[6])
{
	switch (g->linktype) {
	case LT_EN10MB:
		put_eth(f, dmac, smac, type);
		break;
	case LT_LINUX_SLL: {
		unsigned pkttype = 0;
		if (memcmp(dmac, bcast_mac, 6) == 0)
			pkttype = 1;
		else if (dmac[0] & 1)
			pkttype = 2;
		else if (chance(g, 40))
			pkttype = 4;
		put16(f, pkttype);
		put16(f, 1);   /* ARPHRD_ETHER */
		put16(f, 6);
		put(f, smac, 6);
		putz(f, 2);
		put16(f, type);
		break;
	}
	case LT_NULL: {
		/* Host byte order; IPv6 as one of the BSD values libpcap tests for. */
		static const uint32_t af6[] = {24, 28, 30};
		uint32_t af = type == ET_IPV4 ? 2 : af6[rnd(g, 3)];
		put(f, &af, 4);
		break;
	}
	default: /* RAW: no header */
		break;
	}
}

static unsigned vlan_tci(struct bpfkit_gen *g)
{
	static const unsigned vids[] = {10, 20, 100, 200, 1001};
	unsigned prio = rnd(g, 8);
	return prio << 13 | vids[rnd(g, 5)];
}

/* Writes whatever precedes a network packet of ethertype type, per f->encap. */
static void l2_begin(struct bpfkit_gen *g, struct frame *f, unsigned type,
		     const uint8_t dmac[6], const uint8_t smac[6])
{
	switch (f->encap) {
	case ENC_LINK:
		put_link(g, f, type, dmac, smac);
		break;
	case ENC_ETH:
		put_eth(f, dmac, smac, type);
		break;
	case ENC_VLAN:
		put_eth(f, dmac, smac, ET_VLAN);
		put16(f, vlan_tci(g));
		put16(f, type);
		break;
	case ENC_QINQ:
		put_eth(f, dmac, smac, ET_QINQ);
		put16(f, rnd_range(g, 100, 400));
		put16(f, ET_VLAN);
		put16(f, vlan_tci(g));
		put16(f, type);
		break;
	case ENC_MPLS: {
		put_link(g, f, ET_MPLS, dmac, smac);
		unsigned depth = rnd_range(g, 1, 3);
		for (unsigned i = 0; i < depth; i++) {
			uint32_t label = rnd_range(g, 16, 1048575);
			if (i == depth - 1 && chance(g, 10))
				label = 0; /* IPv4 explicit null */
			uint32_t tc = rnd(g, 8);
			put32(f, label << 12 | tc << 9 | (i == depth - 1 ? 0x100u : 0) |
				 rnd_range(g, 32, 255));
		}
		break;
	}
	case ENC_PPPOE:
		put_link(g, f, ET_PPPOE_SESS, dmac, smac);
		put8(f, 0x11);
		put8(f, 0x00);
		put16(f, rnd_range(g, 1, 0xfffe));
		f->len16_off = f->len;
		put16(f, 0);
		put16(f, type == ET_IPV6 ? 0x0057 : 0x0021);
		break;
	case ENC_SNAP: {
		put(f, dmac, 6);
		put(f, smac, 6);
		f->len16_off = f->len;
		put16(f, 0);
		static const uint8_t snap[6] = {0xaa, 0xaa, 0x03, 0, 0, 0};
		put(f, snap, 6);
		put16(f, type);
		break;
	}
	case ENC_NONE:
		break;
	}
}

/* ---- network layer ---- */

static void net_init(struct net *n, int v6, uint8_t proto)
{
	memset(n, 0, sizeof *n);
	n->v6 = v6;
	n->proto = proto;
	n->ttl = 64;
}

/* Link header and IP header (with IPv6 extension headers); leaves n->l4 set. */
static void net_begin(struct bpfkit_gen *g, struct frame *f, struct net *n)
{
	uint8_t dmac[6], smac[6];
	if (!(n->ext & EXT_RT))
		memcpy(n->fdst, n->dst, 16);
	dst_mac(n->dst, n->v6, dmac);
	mac_of(n->src, n->v6, smac);
	l2_begin(g, f, n->v6 ? ET_IPV6 : ET_IPV4, dmac, smac);
	n->off = f->len;
	if (!n->v6) {
		put8(f, 0x40 | (unsigned)(5 + n->optlen / 4));
		put8(f, chance(g, 10) ? 0x28 : 0x00); /* DSCP AF11 sometimes */
		put16(f, 0);
		put16(f, g->ip_id++);
		put16(f, n->df ? 0x4000 : 0);
		put8(f, n->ttl);
		put8(f, n->proto);
		put16(f, 0);
		put(f, n->src, 4);
		put(f, n->dst, 4);
		put(f, n->opt, n->optlen);
		n->l4 = f->len;
		return;
	}
	/* The chain: HBH, DST (before routing), RT, DST (final), upper layer. */
	uint8_t chain[5];
	size_t k = 0;
	if (n->ext & (EXT_HBH | EXT_HBH_RA))
		chain[k++] = IP6_HBH;
	if (n->ext & EXT_DST1)
		chain[k++] = IP6_DST;
	if (n->ext & EXT_RT)
		chain[k++] = IP6_RT;
	if (n->ext & EXT_DST2)
		chain[k++] = IP6_DST;
	chain[k] = n->proto;
	put32(f, 0x60000000u | (chance(g, 20) ? rnd(g, 0x100000) : 0));
	put16(f, 0);
	put8(f, chain[0]);
	put8(f, n->ttl);
	put(f, n->src, 16);
	put(f, n->dst, 16);
	for (size_t i = 0; i < k; i++) {
		put8(f, chain[i + 1]);
		if (chain[i] == IP6_RT) {
			/* Type 2 (Mobile IPv6): one address, segments left 1. */
			put8(f, 2);
			put8(f, 2);
			put8(f, 1);
			putz(f, 4);
			put(f, n->fdst, 16);
		} else if (chain[i] == IP6_HBH && (n->ext & EXT_HBH_RA)) {
			put8(f, 0);
			put8(f, 5); /* router alert: MLD */
			put8(f, 2);
			put16(f, 0);
			put8(f, 1); /* PadN, 0 bytes */
			put8(f, 0);
		} else {
			put8(f, 0);
			put8(f, 1); /* PadN filling the 8 bytes */
			put8(f, 4);
			putz(f, 4);
		}
	}
	n->l4 = f->len;
}

/* Patches the IP length fields and the IPv4 header checksum. */
static void net_end(struct frame *f, const struct net *n)
{
	if (n->v6) {
		set16(f, n->off + 4, (unsigned)(f->len - n->off - 40));
	} else {
		size_t hl = 20 + n->optlen;
		set16(f, n->off + 2, (unsigned)(f->len - n->off));
		set16(f, n->off + 10, 0);
		set16(f, n->off + 10, sum_fold(sum_bytes(0, f->b + n->off, hl)));
	}
}

/* Random source/destination pair: a local host and a local or remote peer. */
static void pick_pair(struct bpfkit_gen *g, struct net *n)
{
	uint8_t a[16], b[16];
	memset(a, 0, 16);
	memset(b, 0, 16);
	if (n->v6) {
		local6(g, a);
		remote6(g, b);
	} else {
		local4(g, a);
		remote4(g, b);
	}
	if (memcmp(a, b, 16) == 0)
		b[n->v6 ? 15 : 3] ^= 0x40;
	if (chance(g, 50)) {
		memcpy(n->src, a, 16);
		memcpy(n->dst, b, 16);
	} else {
		memcpy(n->src, b, 16);
		memcpy(n->dst, a, 16);
	}
}

/* ---- application payloads ---- */

static const char *const dns_names[] = {
	"www.example.com", "mail.example.org", "api.github.com", "ntp.ubuntu.com",
	"cdn.jsdelivr.net", "time.cloudflare.com", "login.corp.example", "printer.local",
	"a.root-servers.net", "www.wikipedia.org",
};

static void put_name(struct frame *f, const char *name)
{
	while (*name) {
		const char *dot = strchr(name, '.');
		size_t n = dot ? (size_t)(dot - name) : strlen(name);
		put8(f, (unsigned)n);
		put(f, name, n);
		name += n + (dot ? 1 : 0);
	}
	put8(f, 0);
}

/* A DNS message: a query, or its response with one or two answers. */
static void put_dns(struct bpfkit_gen *g, struct frame *f, int response, int mdns)
{
	static const unsigned qtypes[] = {1, 1, 1, 28, 28, 15};
	const char *name = mdns ? "printer.local" : dns_names[rnd(g, 10)];
	unsigned qtype = qtypes[rnd(g, 6)];
	unsigned answers = response ? rnd_range(g, 1, 2) : 0;
	put16(f, mdns ? 0 : rnd(g, 65536));
	put16(f, response ? (mdns ? 0x8400 : 0x8180) : (mdns ? 0 : 0x0100));
	put16(f, response && mdns ? 0 : 1);
	put16(f, answers);
	put16(f, 0);
	put16(f, 0);
	if (!(response && mdns)) {
		put_name(f, name);
		put16(f, qtype);
		put16(f, 1);
	}
	for (unsigned i = 0; i < answers; i++) {
		if (mdns)
			put_name(f, name);
		else
			put16(f, 0xc00c);
		put16(f, qtype);
		put16(f, mdns ? 0x8001 : 1);
		put32(f, rnd_range(g, 30, 86400));
		if (qtype == 1) {
			put16(f, 4);
			put_rand(g, f, 4);
		} else if (qtype == 28) {
			put16(f, 16);
			put16(f, 0x2001);
			put16(f, 0x0db8);
			put_rand(g, f, 12);
		} else {
			put16(f, 2 + 5 + 2); /* preference, "\x04mail" + pointer */
			put16(f, 10 * (i + 1));
			put8(f, 4);
			put_text(f, "mail");
			put16(f, 0xc00c);
		}
	}
}

static void put_lorem(struct bpfkit_gen *g, struct frame *f, size_t n)
{
	static const char words[] = "lorem ipsum dolor sit amet consectetur adipiscing elit sed "
				    "do eiusmod tempor incididunt ut labore et dolore magna ";
	size_t at = rnd(g, sizeof words - 1);
	while (n-- > 0) {
		put8(f, (unsigned char)words[at]);
		at = (at + 1) % (sizeof words - 1);
	}
}

/* TCP payload for a server port, up to max bytes (max >= 1). */
static void put_tcp_payload(struct bpfkit_gen *g, struct frame *f, unsigned port, int to_server,
			    size_t max)
{
	size_t start = f->len, want;
	/* Segment sizes: many full ones, the rest anywhere. */
	want = chance(g, 40) ? max : rnd_range(g, 1, (uint32_t)max);
	switch (port) {
	case 80:
	case 8080:
		if (to_server) {
			static const char *const paths[] = {"/", "/index.html", "/api/v1/items",
							    "/static/app.js", "/favicon.ico"};
			put_text(f, "GET ");
			put_text(f, paths[rnd(g, 5)]);
			put_text(f, " HTTP/1.1\r\nHost: www.example.com\r\n"
				    "User-Agent: bpfkit-gen/1.0\r\nAccept: */*\r\n\r\n");
		} else if (chance(g, 30)) {
			put_text(f, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
				    "Content-Length: 48213\r\n\r\n<html>\r\n");
		} else {
			put_lorem(g, f, want);
		}
		break;
	case 443:
		if (want < 6)
			want = 6;
		put8(f, 0x17);
		put16(f, 0x0303);
		put16(f, (unsigned)(want - 5));
		put_rand(g, f, want - 5);
		break;
	case 25:
		if (to_server) {
			static const char *const cmds[] = {"EHLO mail.example.org\r\n",
				"MAIL FROM:<alice@example.org>\r\n", "RCPT TO:<bob@example.com>\r\n",
				"DATA\r\n", "QUIT\r\n"};
			put_text(f, cmds[rnd(g, 5)]);
		} else {
			put_text(f, chance(g, 50) ? "250 OK\r\n" : "220 mx.example.com ESMTP\r\n");
		}
		break;
	case 53: {
		put16(f, 0);
		size_t m = f->len;
		put_dns(g, f, !to_server, 0);
		set16(f, m - 2, (unsigned)(f->len - m));
		break;
	}
	case 22:
		if (chance(g, 10))
			put_text(f, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
		else
			put_rand(g, f, want < 48 ? 48 : want); /* encrypted records */
		break;
	default:
		put_opaque(g, f, want);
		break;
	}
	if (f->len - start > max)
		f->len = start + max;
}

/* ---- kinds: IP ---- */

static const unsigned server_ports[] = {80, 443, 22, 25, 53, 8080, 0};

/* A TCP segment of some connection, either direction. */
static void build_tcp(struct bpfkit_gen *g, struct frame *f, int v6)
{
	static const uint8_t flagset[] = {TH_SYN, TH_SYN | TH_ACK, TH_ACK, TH_ACK, TH_ACK,
		TH_PSH | TH_ACK, TH_PSH | TH_ACK, TH_PSH | TH_ACK, TH_ACK, TH_FIN | TH_ACK,
		TH_RST, TH_RST | TH_ACK, TH_FIN | TH_PSH | TH_ACK};
	struct net n;
	net_init(&n, v6, IP_TCP);
	n.df = 1;
	pick_pair(g, &n);
	unsigned sport = server_ports[rnd(g, 7)];
	if (sport == 0)
		sport = high_port(g);
	unsigned cport = rnd_range(g, 32768, 60999);
	uint8_t flags = flagset[rnd(g, sizeof flagset)];
	int to_server = (flags == TH_SYN) ? 1 : flags == (TH_SYN | TH_ACK) ? 0 : chance(g, 50);
	net_begin(g, f, &n);
	put16(f, to_server ? cport : sport);
	put16(f, to_server ? sport : cport);
	put32(f, (uint32_t)rnd64(g));
	put32(f, (flags & TH_ACK) ? (uint32_t)rnd64(g) : 0);
	size_t hl_at = f->len;
	put16(f, 0);
	put16(f, flags & TH_RST ? 0 : rnd_range(g, 500, 65535));
	put16(f, 0); /* checksum */
	put16(f, 0); /* urgent */
	if (flags & TH_SYN) {
		/* Linux's layouts: MSS, SACK-permitted, timestamps, window scale. */
		int sack = chance(g, 85), ts = chance(g, 80);
		put8(f, 2), put8(f, 4), put16(f, v6 ? 1440 : 1460);
		if (!ts)
			put8(f, 1), put8(f, 1);
		if (sack)
			put8(f, 4), put8(f, 2);
		else
			put8(f, 1), put8(f, 1);
		if (ts) {
			put8(f, 8), put8(f, 10);
			put32(f, (uint32_t)rnd64(g));
			put32(f, flags & TH_ACK ? (uint32_t)rnd64(g) : 0);
		}
		put8(f, 1), put8(f, 3), put8(f, 3), put8(f, rnd_range(g, 6, 10));
	} else if (!(flags & TH_RST) && chance(g, 75)) {
		put8(f, 1), put8(f, 1), put8(f, 8), put8(f, 10);
		put32(f, (uint32_t)rnd64(g));
		put32(f, (uint32_t)rnd64(g));
		if (flags == TH_ACK && chance(g, 15)) {
			uint32_t left = (uint32_t)rnd64(g);
			put8(f, 1), put8(f, 1), put8(f, 5), put8(f, 10);
			put32(f, left);
			put32(f, left + rnd_range(g, 1, 30000));
		}
	}
	unsigned hl = (unsigned)(f->len - n.l4);
	set16(f, hl_at, (hl / 4) << 12 | flags);
	if ((flags & TH_PSH) || (flags == TH_ACK && chance(g, 50)))
		put_tcp_payload(g, f, sport, to_server, room(f));
	l4_csum(f, &n, 16);
	net_end(f, &n);
}

static void k_tcp4(struct bpfkit_gen *g, struct frame *f)
{
	build_tcp(g, f, 0);
}

static void k_tcp6(struct bpfkit_gen *g, struct frame *f)
{
	build_tcp(g, f, 1);
}

static void udp_begin(struct frame *f, unsigned sport, unsigned dport)
{
	/* Callers draw random ports in separate statements: argument order is unspecified. */
	put16(f, sport);
	put16(f, dport);
	put16(f, 0);
	put16(f, 0);
}

static void udp_end(struct frame *f, const struct net *n)
{
	set16(f, n->l4 + 4, (unsigned)(f->len - n->l4));
	l4_csum(f, n, 6);
}

/* DNS over UDP to a resolver, or mDNS to the multicast group. */
static void build_dns(struct bpfkit_gen *g, struct frame *f, int v6)
{
	struct net n;
	net_init(&n, v6, IP_UDP);
	int response = chance(g, 50);
	if (chance(g, 15)) {
		/* mDNS */
		if (v6) {
			linklocal6(g, n.src);
			n.dst[0] = 0xff, n.dst[1] = 0x02, n.dst[15] = 0xfb;
		} else {
			local4(g, n.src);
			n.dst[0] = 224, n.dst[3] = 251;
		}
		n.ttl = 255;
		net_begin(g, f, &n);
		udp_begin(f, 5353, 5353);
		put_dns(g, f, response, 1);
	} else {
		uint8_t client[16] = {0}, server[16] = {0};
		if (v6) {
			local6(g, client);
			memcpy(server, public6[1], 16);
		} else {
			local4(g, client);
			static const uint8_t res[][4] = {{8, 8, 8, 8}, {1, 1, 1, 1}, {192, 168, 1, 1}};
			memcpy(server, res[rnd(g, 3)], 4);
		}
		memcpy(n.src, response ? server : client, 16);
		memcpy(n.dst, response ? client : server, 16);
		unsigned cport = rnd_range(g, 32768, 60999);
		net_begin(g, f, &n);
		udp_begin(f, response ? 53 : cport, response ? cport : 53);
		put_dns(g, f, response, 0);
	}
	udp_end(f, &n);
	net_end(f, &n);
}

static void k_dns4(struct bpfkit_gen *g, struct frame *f)
{
	build_dns(g, f, 0);
}

static void k_dns6(struct bpfkit_gen *g, struct frame *f)
{
	build_dns(g, f, 1);
}

/* Other UDP: NTP, subnet broadcasts, high-port traffic of any size. */
static void build_udp(struct bpfkit_gen *g, struct frame *f, int v6)
{
	struct net n;
	net_init(&n, v6, IP_UDP);
	pick_pair(g, &n);
	unsigned what = rnd(g, 10);
	if (what < 3) {
		net_begin(g, f, &n);
		udp_begin(f, 123, 123);
		put8(f, 0x23);    /* NTPv4 client */
		put8(f, 0);
		put8(f, 6);
		put8(f, 0xe9);
		putz(f, 36);
		/* Transmit timestamp: seconds since 1900, then a binary fraction. */
		put32(f, (uint32_t)(g->now_ns / 1000000000 + 2208988800ll));
		put32(f, (uint32_t)rnd64(g));
	} else if (what < 5 && !v6) {
		local4(g, n.src);
		memcpy(n.dst, n.src, 4);
		n.dst[3] = 255;
		net_begin(g, f, &n);
		unsigned sp = high_port(g);
		udp_begin(f, sp, high_port(g));
		put_opaque(g, f, rnd_range(g, 8, 200));
	} else {
		net_begin(g, f, &n);
		unsigned sp = high_port(g);
		udp_begin(f, sp, high_port(g));
		size_t max = room(f);
		put_opaque(g, f, chance(g, 30) ? max : rnd_range(g, 1, (uint32_t)max));
	}
	udp_end(f, &n);
	net_end(f, &n);
}

static void k_udp4(struct bpfkit_gen *g, struct frame *f)
{
	build_udp(g, f, 0);
}

static void k_udp6(struct bpfkit_gen *g, struct frame *f)
{
	build_udp(g, f, 1);
}

static void put_ping_data(struct bpfkit_gen *g, struct frame *f, size_t n)
{
	put32(f, (uint32_t)(g->now_ns / 1000000000));
	put32(f, (uint32_t)(g->now_ns / 1000 % 1000000));
	for (size_t i = 8; i < n; i++)
		put8(f, (unsigned)i);
}

/* ICMP echo (sometimes with Record Route) and port unreachable. */
static void k_icmp(struct bpfkit_gen *g, struct frame *f)
{
	static const uint8_t rr[40] = {1, 7, 39, 4}; /* NOP, RR with 9 empty slots */
	struct net n;
	net_init(&n, 0, IP_ICMP);
	pick_pair(g, &n);
	if (chance(g, 25)) {
		/* Port unreachable quoting a whole DNS query. */
		struct net q;
		net_init(&q, 0, IP_UDP);
		memcpy(q.src, n.dst, 4);
		memcpy(q.dst, n.src, 4);
		net_begin(g, f, &n);
		put8(f, 3), put8(f, 3), put16(f, 0), put32(f, 0);
		f->encap = ENC_NONE;
		net_begin(g, f, &q);
		udp_begin(f, rnd_range(g, 32768, 60999), 53);
		put_dns(g, f, 0, 0);
		udp_end(f, &q);
		net_end(f, &q);
	} else {
		if (chance(g, 15)) {
			n.opt = rr;
			n.optlen = sizeof rr;
		}
		int reply = chance(g, 50);
		net_begin(g, f, &n);
		put8(f, reply ? 0 : 8), put8(f, 0), put16(f, 0);
		put16(f, rnd_range(g, 1, 65535));
		put16(f, rnd_range(g, 1, 2000));
		put_ping_data(g, f, chance(g, 80) ? 56 : rnd_range(g, 8, (uint32_t)room(f)));
	}
	csum_at(f, n.l4, n.l4 + 2, 0);
	net_end(f, &n);
}

/* ICMPv6 echo, neighbour solicitation and advertisement. */
static void k_icmp6(struct bpfkit_gen *g, struct frame *f)
{
	struct net n;
	net_init(&n, 1, IP_ICMP6);
	unsigned what = rnd(g, 3);
	if (what == 0) {
		pick_pair(g, &n);
		net_begin(g, f, &n);
		put8(f, chance(g, 50) ? 128 : 129), put8(f, 0), put16(f, 0);
		put16(f, rnd_range(g, 1, 65535));
		put16(f, rnd_range(g, 1, 2000));
		put_ping_data(g, f, 56);
	} else {
		uint8_t target[16], mac[6];
		if (chance(g, 50))
			linklocal6(g, target);
		else
			local6(g, target);
		n.ttl = 255;
		if (what == 1) {
			local6(g, n.src);
			if (memcmp(n.src, target, 16) == 0)
				n.src[15] ^= 0x40;
			/* Solicited-node multicast ff02::1:ffXX:XXXX. */
			n.dst[0] = 0xff, n.dst[1] = 0x02, n.dst[11] = 1, n.dst[12] = 0xff;
			memcpy(n.dst + 13, target + 13, 3);
			mac_of(n.src, 1, mac);
		} else {
			memcpy(n.src, target, 16);
			if (chance(g, 30)) {
				n.dst[0] = 0xff, n.dst[1] = 0x02, n.dst[15] = 1;
			} else {
				local6(g, n.dst);
				if (memcmp(n.dst, n.src, 16) == 0)
					n.dst[15] ^= 0x40;
			}
			mac_of(target, 1, mac);
		}
		net_begin(g, f, &n);
		put8(f, what == 1 ? 135 : 136), put8(f, 0), put16(f, 0);
		put32(f, what == 1 ? 0 : (n.dst[0] == 0xff ? 0x20000000u : 0x60000000u));
		put(f, target, 16);
		put8(f, what == 1 ? 1 : 2), put8(f, 1); /* source / target link-layer address */
		put(f, mac, 6);
	}
	l4_csum(f, &n, 2);
	net_end(f, &n);
}

/* IGMPv2 membership report or leave, with the Router Alert option. */
static void k_igmp(struct bpfkit_gen *g, struct frame *f)
{
	static const uint8_t ra[4] = {0x94, 0x04, 0x00, 0x00};
	static const uint8_t groups[][4] = {{239, 255, 255, 250}, {224, 0, 0, 251},
					    {239, 1, 2, 3}, {224, 0, 1, 60}};
	struct net n;
	net_init(&n, 0, IP_IGMP);
	n.opt = ra;
	n.optlen = 4;
	n.ttl = 1;
	local4(g, n.src);
	const uint8_t *grp = groups[rnd(g, 4)];
	int leave = chance(g, 20);
	if (leave) {
		n.dst[0] = 224, n.dst[3] = 2;
	} else {
		memcpy(n.dst, grp, 4);
	}
	net_begin(g, f, &n);
	put8(f, leave ? 0x17 : 0x16), put8(f, 0), put16(f, 0);
	put(f, grp, 4);
	csum_at(f, n.l4, n.l4 + 2, 0);
	net_end(f, &n);
}

/* SCTP: INIT, INIT ACK, DATA, SACK or HEARTBEAT, with a CRC32c checksum. */
static void k_sctp(struct bpfkit_gen *g, struct frame *f)
{
	struct net n;
	net_init(&n, chance(g, 25), IP_SCTP);
	n.df = 1;
	pick_pair(g, &n);
	unsigned what = rnd(g, 5);
	net_begin(g, f, &n);
	put16(f, rnd_range(g, 40000, 60000));
	put16(f, 5001);
	put32(f, what == 0 ? 0 : (uint32_t)rnd64(g));
	put32(f, 0);
	switch (what) {
	case 0: /* INIT */
	case 1: /* INIT ACK with a state cookie */
		put8(f, what == 0 ? 1 : 2), put8(f, 0), put16(f, what == 0 ? 20 : 20 + 4 + 24);
		put32(f, (uint32_t)rnd64(g) | 1);
		put32(f, 106496);
		put16(f, 10), put16(f, 10);
		put32(f, (uint32_t)rnd64(g));
		if (what == 1) {
			put16(f, 7), put16(f, 4 + 24);
			put_rand(g, f, 24);
		}
		break;
	case 2: { /* DATA */
		size_t len = rnd_range(g, 1, 600);
		put8(f, 0), put8(f, 3), put16(f, (unsigned)(16 + len));
		put32(f, (uint32_t)rnd64(g));
		put16(f, 0), put16(f, rnd(g, 100));
		put32(f, 0);
		put_rand(g, f, len);
		putz(f, (4 - len % 4) % 4);
		break;
	}
	case 3: /* SACK */
		put8(f, 3), put8(f, 0), put16(f, 16);
		put32(f, (uint32_t)rnd64(g));
		put32(f, 106496);
		put16(f, 0), put16(f, 0);
		break;
	default: /* HEARTBEAT with heartbeat info */
		put8(f, 4), put8(f, 0), put16(f, 4 + 4 + 12);
		put16(f, 1), put16(f, 4 + 12);
		put_rand(g, f, 12);
		break;
	}
	uint32_t c = crc32c(f->b + n.l4, f->len - n.l4);
	f->b[n.l4 + 8] = (uint8_t)c, f->b[n.l4 + 9] = (uint8_t)(c >> 8);
	f->b[n.l4 + 10] = (uint8_t)(c >> 16), f->b[n.l4 + 11] = (uint8_t)(c >> 24);
	net_end(f, &n);
}

/* An inner IPv4 packet for tunnels and tags: TCP, DNS, UDP or ICMP. */
static void inner_ip4(struct bpfkit_gen *g, struct frame *f)
{
	switch (rnd(g, 4)) {
	case 0:
		k_tcp4(g, f);
		break;
	case 1:
		k_dns4(g, f);
		break;
	case 2:
		k_udp4(g, f);
		break;
	default:
		k_icmp(g, f);
		break;
	}
}

/* GRE (sometimes with a key) carrying IPv4 between two routers. */
static void k_gre(struct bpfkit_gen *g, struct frame *f)
{
	struct net n;
	net_init(&n, 0, IP_GRE);
	memcpy(n.src, public4[5], 4);
	memcpy(n.dst, public4[6], 4);
	if (chance(g, 50)) {
		memcpy(n.src, public4[6], 4);
		memcpy(n.dst, public4[5], 4);
	}
	net_begin(g, f, &n);
	int key = chance(g, 40);
	put16(f, key ? 0x2000 : 0);
	put16(f, ET_IPV4);
	if (key)
		put32(f, rnd_range(g, 1, 1000));
	f->encap = ENC_NONE;
	inner_ip4(g, f);
	net_end(f, &n);
}

/* VXLAN (4789) or Geneve (6081) over UDP/IPv4 carrying an Ethernet frame. */
static void build_overlay(struct bpfkit_gen *g, struct frame *f, int geneve)
{
	struct net n;
	net_init(&n, 0, IP_UDP);
	n.src[0] = 10, n.src[1] = 0, n.src[2] = 3, n.src[3] = (uint8_t)rnd_range(g, 1, 8);
	memcpy(n.dst, n.src, 4);
	n.dst[3] = (uint8_t)rnd_range(g, 9, 16);
	net_begin(g, f, &n);
	udp_begin(f, high_port(g), geneve ? 6081 : 4789);
	uint32_t vni = rnd_range(g, 1, 5000);
	if (geneve) {
		int opt = chance(g, 30);
		put8(f, opt ? 2 : 0);
		put8(f, 0);
		put16(f, ET_TEB);
		put32(f, vni << 8);
		if (opt) {
			put16(f, 0xff01), put8(f, 1), put8(f, 1);
			put_rand(g, f, 4);
		}
	} else {
		put32(f, 0x08000000u);
		put32(f, vni << 8);
	}
	f->encap = ENC_ETH;
	inner_ip4(g, f);
	udp_end(f, &n);
	net_end(f, &n);
}

static void k_vxlan(struct bpfkit_gen *g, struct frame *f)
{
	build_overlay(g, f, 0);
}

static void k_geneve(struct bpfkit_gen *g, struct frame *f)
{
	build_overlay(g, f, 1);
}

/* IPv6 with extension headers: MLDv2 (hop-by-hop), destination options, routing. */
static void k_ip6ext(struct bpfkit_gen *g, struct frame *f)
{
	struct net n;
	if (chance(g, 30)) {
		/* MLDv2 report to ff02::16 with a hop-by-hop router alert. */
		net_init(&n, 1, IP_ICMP6);
		n.ext = EXT_HBH_RA;
		n.ttl = 1;
		linklocal6(g, n.src);
		n.dst[0] = 0xff, n.dst[1] = 0x02, n.dst[15] = 0x16;
		net_begin(g, f, &n);
		put8(f, 143), put8(f, 0), put16(f, 0);
		put16(f, 0), put16(f, 1);
		put8(f, 4), put8(f, 0), put16(f, 0); /* CHANGE_TO_EXCLUDE, no sources */
		put16(f, 0xff02), putz(f, 12), put16(f, 0xfb);
		l4_csum(f, &n, 2);
		net_end(f, &n);
		return;
	}
	static const unsigned combos[] = {EXT_HBH, EXT_DST2, EXT_RT, EXT_HBH | EXT_DST1 | EXT_RT,
					  EXT_RT | EXT_DST2, EXT_HBH | EXT_DST2};
	unsigned what = rnd(g, 3);
	net_init(&n, 1, what == 0 ? IP_TCP : what == 1 ? IP_UDP : IP_ICMP6);
	n.ext = combos[rnd(g, 6)];
	pick_pair(g, &n);
	if (n.ext & EXT_RT) {
		/* dst is the care-of address; the final destination is another host. */
		local6(g, n.fdst);
		if (memcmp(n.fdst, n.dst, 16) == 0)
			n.fdst[15] ^= 0x40;
	}
	net_begin(g, f, &n);
	if (what == 0) {
		put16(f, rnd_range(g, 32768, 60999)), put16(f, 443);
		put32(f, (uint32_t)rnd64(g)), put32(f, (uint32_t)rnd64(g));
		put16(f, 0x5000 | TH_ACK), put16(f, 501), put32(f, 0);
		l4_csum(f, &n, 16);
	} else if (what == 1) {
		unsigned sp = high_port(g);
		udp_begin(f, sp, high_port(g));
		put_opaque(g, f, rnd_range(g, 4, 300));
		udp_end(f, &n);
	} else {
		put8(f, 128), put8(f, 0), put16(f, 0);
		put16(f, rnd_range(g, 1, 65535)), put16(f, rnd_range(g, 1, 200));
		put_ping_data(g, f, 56);
		l4_csum(f, &n, 2);
	}
	net_end(f, &n);
}

/*
 * A datagram too large for the MTU: ICMP/ICMPv6 echo or UDP, built whole into
 * g->frag.dg and sent as fragments by next_fragment().
 */
static void start_fragmented(struct bpfkit_gen *g, int v6)
{
	struct frag *fr = &g->frag;
	struct frame *f = &fr->dg;
	struct net n;
	int udp = chance(g, 50);
	net_init(&n, v6, udp ? IP_UDP : v6 ? IP_ICMP6 : IP_ICMP);
	pick_pair(g, &n);
	f->len = 0;
	f->limit = FRAME_CAP;
	f->encap = ENC_LINK;
	f->len16_off = 0;
	net_begin(g, f, &n);
	size_t payload = rnd_range(g, 1600, 2900);
	if (udp) {
		unsigned sp = high_port(g);
		udp_begin(f, sp, high_port(g));
		put_opaque(g, f, payload - 8);
		udp_end(f, &n);
	} else {
		put8(f, v6 ? 128 : 8), put8(f, 0), put16(f, 0);
		put16(f, rnd_range(g, 1, 65535)), put16(f, rnd_range(g, 1, 200));
		put_ping_data(g, f, payload - 8);
		if (v6)
			l4_csum(f, &n, 2);
		else
			csum_at(f, n.l4, n.l4 + 2, 0);
	}
	net_end(f, &n);
	fr->active = 1;
	fr->v6 = v6;
	fr->link = n.off;
	fr->hlen = n.l4 - n.off;
	fr->done = 0;
	fr->proto = n.proto;
	fr->id = v6 ? (uint32_t)rnd64(g) : g->ip_id - 1u;
	/* Fragment payloads: the MTU's worth, or IPv6's 1280 minimum sometimes. */
	size_t mtu = v6 && chance(g, 30) ? 1280 : MTU;
	fr->piece = (mtu - fr->hlen - (v6 ? 8 : 0)) & ~(size_t)7;
}

/* Emits the next fragment of g->frag into f. */
static void next_fragment(struct bpfkit_gen *g, struct frame *f)
{
	struct frag *fr = &g->frag;
	const uint8_t *dg = fr->dg.b;
	size_t total = fr->dg.len - fr->link - fr->hlen;
	size_t n = total - fr->done;
	int more = n > fr->piece;
	if (more)
		n = fr->piece;
	put(f, dg, fr->link + fr->hlen);
	size_t ip = fr->link;
	if (fr->v6) {
		set16(f, ip + 4, (unsigned)(8 + n));
		f->b[ip + 6] = IP6_FRAG;
		put8(f, fr->proto);
		put8(f, 0);
		put16(f, (unsigned)(fr->done | (more ? 1 : 0)));
		put32(f, fr->id);
	} else {
		set16(f, ip + 2, (unsigned)(fr->hlen + n));
		set16(f, ip + 6, (unsigned)((more ? 0x2000 : 0) | (fr->done / 8)));
		set16(f, ip + 10, 0);
		set16(f, ip + 10, sum_fold(sum_bytes(0, f->b + ip, fr->hlen)));
	}
	put(f, dg + fr->link + fr->hlen + fr->done, n);
	fr->done += n;
	if (!more)
		fr->active = 0;
}

static void k_frag4(struct bpfkit_gen *g, struct frame *f)
{
	start_fragmented(g, 0);
	next_fragment(g, f);
}

static void k_frag6(struct bpfkit_gen *g, struct frame *f)
{
	start_fragmented(g, 1);
	next_fragment(g, f);
}

/* ---- kinds: below IP ---- */

static void k_arp(struct bpfkit_gen *g, struct frame *f)
{
	uint8_t a[4], b[4], ma[6], mb[6];
	local4(g, a);
	memcpy(b, a, 4);
	b[3] = chance(g, 40) ? 1 : (uint8_t)rnd_range(g, 2, 40);
	if (b[3] == a[3])
		b[3] = 1;
	mac_of(a, 0, ma);
	mac_of(b, 0, mb);
	int reply = chance(g, 40);
	if (reply)
		l2_begin(g, f, ET_ARP, ma, mb);
	else
		l2_begin(g, f, ET_ARP, bcast_mac, ma);
	put16(f, 1), put16(f, ET_IPV4), put8(f, 6), put8(f, 4), put16(f, reply ? 2 : 1);
	if (reply) {
		put(f, mb, 6), put(f, b, 4), put(f, ma, 6), put(f, a, 4);
	} else {
		put(f, ma, 6), put(f, a, 4), putz(f, 6), put(f, b, 4);
	}
}

static void k_vlan(struct bpfkit_gen *g, struct frame *f)
{
	f->encap = ENC_VLAN;
	switch (rnd(g, 5)) {
	case 0:
		k_arp(g, f);
		break;
	case 1:
		k_tcp6(g, f);
		break;
	default:
		inner_ip4(g, f);
		break;
	}
}

static void k_qinq(struct bpfkit_gen *g, struct frame *f)
{
	f->encap = ENC_QINQ;
	inner_ip4(g, f);
}

static void k_mpls(struct bpfkit_gen *g, struct frame *f)
{
	f->encap = ENC_MPLS;
	inner_ip4(g, f);
}

static void k_pppoe_sess(struct bpfkit_gen *g, struct frame *f)
{
	f->encap = ENC_PPPOE;
	inner_ip4(g, f);
}

/* PPPoE discovery: PADI (broadcast) or PADO (access concentrator's offer). */
static void k_pppoe_disc(struct bpfkit_gen *g, struct frame *f)
{
	uint8_t host[4], hmac[6];
	static const uint8_t ac_mac[6] = {0x00, 0x90, 0x1a, 0x42, 0x10, 0x01};
	local4(g, host);
	mac_of(host, 0, hmac);
	int offer = chance(g, 50);
	if (offer)
		put_link(g, f, ET_PPPOE_DISC, hmac, ac_mac);
	else
		put_link(g, f, ET_PPPOE_DISC, bcast_mac, hmac);
	put8(f, 0x11), put8(f, offer ? 0x07 : 0x09), put16(f, 0);
	size_t len_at = f->len;
	put16(f, 0);
	size_t start = f->len;
	put16(f, 0x0101), put16(f, 0);            /* Service-Name: any */
	if (offer) {
		put16(f, 0x0102), put16(f, 9);    /* AC-Name */
		put_text(f, "bpfkit-ac");
	}
	put16(f, 0x0103), put16(f, 4);            /* Host-Uniq */
	put_rand(g, f, 4);
	set16(f, len_at, (unsigned)(f->len - start));
}

/* 802.3 + LLC: a spanning-tree BPDU (STP or RSTP). */
static void k_stp(struct bpfkit_gen *g, struct frame *f)
{
	static const uint8_t stp_mac[6] = {0x01, 0x80, 0xc2, 0x00, 0x00, 0x00};
	static const uint8_t bridge[6] = {0x00, 0x1e, 0x13, 0x5a, 0x77, 0x01};
	int rstp = chance(g, 50);
	if (g->linktype == LT_LINUX_SLL) {
		put_link(g, f, 0x0004, stp_mac, bridge);
	} else {
		put(f, stp_mac, 6);
		put(f, bridge, 6);
		put16(f, rstp ? 39 : 38);
	}
	put8(f, 0x42), put8(f, 0x42), put8(f, 0x03);
	put16(f, 0), put8(f, rstp ? 2 : 0), put8(f, rstp ? 2 : 0);
	put8(f, rstp ? 0x3c : 0x00);
	put16(f, 0x8000), put(f, bridge, 6);       /* root */
	put32(f, rstp ? 0 : 4);                   /* path cost */
	put16(f, 0x8000 | rnd(g, 16) << 12), put(f, bridge, 6);
	put16(f, 0x8000 | rnd_range(g, 1, 24));   /* port */
	put16(f, 0), put16(f, 20 << 8), put16(f, 2 << 8), put16(f, 15 << 8);
	if (rstp)
		put8(f, 0);
}

/* RFC 1042 LLC/SNAP encapsulation of an IPv4 packet. */
static void k_snap(struct bpfkit_gen *g, struct frame *f)
{
	f->encap = ENC_SNAP;
	if (chance(g, 50))
		k_dns4(g, f);
	else
		k_icmp(g, f);
}

/*
 * The mix: relative weights (960 in all on Ethernet); other link types draw
 * from the rows they can carry.  docs/gen.md lists the resulting shares.
 */
static const struct kind kinds[] = {
	{"tcp4", 300, LINK_ETH | LINK_SLL | LINK_IP, k_tcp4},
	{"tcp6", 90, LINK_ETH | LINK_SLL | LINK_IP, k_tcp6},
	{"dns4", 70, LINK_ETH | LINK_SLL | LINK_IP, k_dns4},
	{"dns6", 30, LINK_ETH | LINK_SLL | LINK_IP, k_dns6},
	{"udp4", 60, LINK_ETH | LINK_SLL | LINK_IP, k_udp4},
	{"udp6", 20, LINK_ETH | LINK_SLL | LINK_IP, k_udp6},
	{"icmp", 40, LINK_ETH | LINK_SLL | LINK_IP, k_icmp},
	{"icmp6", 40, LINK_ETH | LINK_SLL | LINK_IP, k_icmp6},
	{"igmp", 15, LINK_ETH | LINK_SLL | LINK_IP, k_igmp},
	{"sctp", 15, LINK_ETH | LINK_SLL | LINK_IP, k_sctp},
	{"gre", 15, LINK_ETH | LINK_SLL | LINK_IP, k_gre},
	{"vxlan", 15, LINK_ETH | LINK_SLL | LINK_IP, k_vxlan},
	{"geneve", 15, LINK_ETH | LINK_SLL | LINK_IP, k_geneve},
	{"ip6ext", 25, LINK_ETH | LINK_SLL | LINK_IP, k_ip6ext},
	{"frag4", 10, LINK_ETH | LINK_SLL | LINK_IP, k_frag4},
	{"frag6", 10, LINK_ETH | LINK_SLL | LINK_IP, k_frag6},
	{"arp", 40, LINK_ETH | LINK_SLL, k_arp},
	{"mpls", 20, LINK_ETH | LINK_SLL, k_mpls},
	{"pppoe-disc", 5, LINK_ETH | LINK_SLL, k_pppoe_disc},
	{"pppoe-sess", 20, LINK_ETH | LINK_SLL, k_pppoe_sess},
	{"stp", 10, LINK_ETH | LINK_SLL, k_stp},
	{"vlan", 60, LINK_ETH, k_vlan},
	{"qinq", 20, LINK_ETH, k_qinq},
	{"snap", 15, LINK_ETH, k_snap},
};

/* ---- the public API ---- */

static unsigned link_mask(uint32_t linktype)
{
	switch (linktype) {
	case LT_EN10MB:
		return LINK_ETH;
	case LT_LINUX_SLL:
		return LINK_SLL;
	case LT_RAW:
	case LT_NULL:
		return LINK_IP;
	default:
		return 0;
	}
}

BPFKIT_API int bpfkit_gen_supported(uint32_t linktype)
{
	return link_mask(linktype) != 0;
}

BPFKIT_API int bpfkit_gen_new(uint32_t linktype, uint64_t seed, const struct bpfkit_alloc *alloc,
			      struct bpfkit_gen **out, struct bpfkit_error *err)
{
	*out = NULL;
	unsigned mask = link_mask(linktype);
	if (!mask) {
		error_set(err, "link type %u is not one the generator makes "
			       "(EN10MB, RAW, LINUX_SLL, NULL)", linktype);
		return -1;
	}
	struct bpfkit_gen *g = mem_alloc(alloc, sizeof *g);
	if (!g) {
		error_oom(err);
		return -1;
	}
	memset(g, 0, sizeof *g);
	if (alloc)
		g->alloc_copy = *alloc;
	g->alloc = alloc ? &g->alloc_copy : NULL;
	g->linktype = linktype;
	g->linkmask = mask;
	g->rng = seed;
	/* 2024-01-01T00:00:00Z plus up to a day, from the seed. */
	g->now_ns = 1704067200000000000ll + (int64_t)(rnd64(g) % 86400000000000ull);
	g->ip_id = (uint16_t)rnd64(g);
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (kinds[i].links & mask)
			g->total_weight += kinds[i].weight;
	*out = g;
	return 0;
}

BPFKIT_API void bpfkit_gen_set_snaplen(struct bpfkit_gen *g, uint32_t snaplen)
{
	g->snaplen = snaplen;
}

BPFKIT_API int bpfkit_gen_next(struct bpfkit_gen *g, uint8_t *buf, size_t size,
			       struct bpfkit_packet *pkt, struct bpfkit_error *err)
{
	size_t need = BPFKIT_GEN_MAX_FRAME;
	if (g->snaplen && g->snaplen < need)
		need = g->snaplen;
	if (size < need) {
		error_set(err, "packet buffer of %zu bytes is smaller than %zu", size, need);
		return -1;
	}
	struct frame *f = &g->cur;
	f->len = 0;
	f->encap = ENC_LINK;
	f->len16_off = 0;
	f->limit = g->linktype == LT_EN10MB ? 14 + MTU : g->linktype == LT_LINUX_SLL ? 16 + MTU
		   : g->linktype == LT_NULL ? 4 + MTU : MTU;
	if (g->frag.active) {
		g->now_ns += rnd_range(g, 2000, 40000);
		next_fragment(g, f);
	} else {
		/* Gaps: bursts of microseconds, pauses of milliseconds. */
		g->now_ns += chance(g, 70) ? rnd_range(g, 1000, 200000) : rnd_range(g, 200000, 20000000);
		uint32_t pick = rnd(g, g->total_weight);
		const struct kind *k = kinds;
		for (;; k++) {
			if (!(k->links & g->linkmask))
				continue;
			if (pick < k->weight)
				break;
			pick -= k->weight;
		}
		k->build(g, f);
	}
	if (f->len16_off)
		set16(f, f->len16_off, (unsigned)(f->len - f->len16_off - 2));
	if (g->linktype == LT_EN10MB && f->len < ETH_MIN) {
		memset(f->b + f->len, 0, ETH_MIN - f->len);
		f->len = ETH_MIN;
	}
	uint32_t caplen = (uint32_t)f->len;
	if (g->snaplen && caplen > g->snaplen)
		caplen = g->snaplen;
	memcpy(buf, f->b, caplen);
	memset(pkt, 0, sizeof *pkt);
	pkt->data = buf;
	pkt->caplen = caplen;
	pkt->wirelen = (uint32_t)f->len;
	pkt->ts_sec = g->now_ns / 1000000000;
	pkt->ts_frac = (uint64_t)(g->now_ns % 1000000000);
	pkt->ts_units = 1000000000u;
	pkt->linktype = g->linktype;
	pkt->offset = -1;
	return 0;
}

BPFKIT_API void bpfkit_gen_free(struct bpfkit_gen *g)
{
	if (g)
		mem_free(g->alloc, g);
}
