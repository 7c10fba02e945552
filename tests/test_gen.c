/*
 * test_gen.c - the packet generator (src/gen.c).
 *
 * The generated packets are checked by an independent dissector written here
 * (its own checksum, CRC32c and header walking code, none shared with
 * gen.c): every checksum valid, every length field consistent, every kind of
 * the mix present.  Then tcpdump and, when installed, tshark read the packets
 * from pcap files written with libpcap and must find nothing malformed.
 */
#include "harness.h"

#include "bpfkit.h"

#include <pcap/pcap.h>
#include <stdlib.h>
#include <unistd.h>

#define NPKT 10000
/* FNV-1a over the bytes and timestamps of the first 1000 EN10MB packets of seed 7. */
#define GEN_DIGEST_SEED7 0xa20e07a42d160c9eull
static const uint32_t linktypes[] = {1, 101, 113, 0};

/* ---- kinds the dissector recognises ---- */

enum kind {
	K_IP4, K_IP6, K_TCP, K_UDP, K_DNS, K_DNS_RESP, K_MDNS, K_NTP, K_ICMP_ECHO, K_ICMP_UNREACH,
	K_ICMP6_ECHO, K_ICMP6_NS, K_ICMP6_NA, K_MLD, K_ARP_REQ, K_ARP_REPLY, K_VLAN, K_QINQ,
	K_MPLS, K_PPPOE_DISC, K_PPPOE_SESS, K_GRE, K_VXLAN, K_GENEVE, K_SCTP, K_IGMP, K_IP4_OPT,
	K_IP4_FRAG_FIRST, K_IP4_FRAG_REST, K_IP6_HBH, K_IP6_RT, K_IP6_DST, K_IP6_FRAG, K_STP,
	K_SNAP, K_BCAST, K_MCAST4, K_MCAST6, K_SYN, K_SYNACK, K_ACK, K_FIN, K_RST, K_PSH,
	K_OPT_MSS, K_OPT_SACKOK, K_OPT_TS, K_OPT_WS, K_OPT_SACK, K_PORT_80, K_PORT_443,
	K_PORT_22, K_PORT_25, K_PORT_53, K_PORT_8080, K_PORT_HIGH, K_SIZE_60, K_SIZE_1514,
	K_NET_10, K_NET_192, K_COUNT
};

static const char *const kind_names[K_COUNT] = {
	"ip4", "ip6", "tcp", "udp", "dns", "dns-response", "mdns", "ntp", "icmp-echo",
	"icmp-unreach", "icmp6-echo", "icmp6-ns", "icmp6-na", "mld", "arp-request", "arp-reply",
	"vlan", "qinq", "mpls", "pppoe-discovery", "pppoe-session", "gre", "vxlan", "geneve",
	"sctp", "igmp", "ip4-options", "ip4-frag-first", "ip4-frag-rest", "ip6-hbh",
	"ip6-routing", "ip6-dstopts", "ip6-frag", "stp", "snap", "broadcast", "multicast4",
	"multicast6", "syn", "syn-ack", "ack", "fin", "rst", "psh", "opt-mss", "opt-sackok",
	"opt-ts", "opt-ws", "opt-sack", "port-80", "port-443", "port-22", "port-25", "port-53",
	"port-8080", "port-high", "size-60", "size-1514", "net-10/16", "net-192.168.1/24",
};

struct dissect {
	unsigned counts[K_COUNT];
	unsigned checksums;    /* checksums verified */
	unsigned failures;
	long pkt;              /* index of the packet being parsed */
	char first[200];       /* the first failure */
	/* One datagram being reassembled (the generator sends fragments in a row). */
	uint8_t frag[8192];
	size_t frag_len, frag_hlen;
	int frag_active, frag_v6;
	uint32_t frag_id;
	uint8_t frag_proto;
	uint8_t frag_src[16], frag_dst[16];
};

static void fail(struct dissect *d, const char *what)
{
	if (d->failures++ == 0)
		snprintf(d->first, sizeof d->first, "packet %ld: %s", d->pkt, what);
}

static unsigned rd16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One's complement sum of 16-bit big-endian words, folded (not inverted). */
static unsigned ones(uint64_t acc, const uint8_t *p, size_t n)
{
	while (n >= 2) {
		acc += rd16(p);
		p += 2;
		n -= 2;
	}
	if (n)
		acc += (unsigned)p[0] << 8;
	while (acc > 0xffff)
		acc = (acc >> 16) + (acc & 0xffff);
	return (unsigned)acc;
}

/* A correct checksum makes the sum over the covered bytes all ones. */
static void verify_sum(struct dissect *d, unsigned sum, const char *what)
{
	d->checksums++;
	if (sum != 0xffff)
		fail(d, what);
}

static unsigned pseudo(const uint8_t *src, const uint8_t *dst, int v6, unsigned proto,
		       size_t len)
{
	size_t alen = v6 ? 16 : 4;
	uint64_t acc = ones(0, src, alen);
	acc += ones(0, dst, alen);
	return ones(acc + proto + (len >> 16) + (len & 0xffff), NULL, 0);
}

/* Table-driven CRC32c, a different construction from gen.c's bitwise loop. */
static uint32_t crc32c_table(const uint8_t *p, size_t n)
{
	static uint32_t table[256];
	if (!table[1]) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
			table[i] = c;
		}
	}
	uint32_t crc = 0xffffffffu;
	for (size_t i = 0; i < n; i++)
		crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return crc ^ 0xffffffffu;
}

/* ---- application layer ---- */

/* A DNS name at *off in msg (len bytes): labels or a backward pointer. */
static int dns_name(const uint8_t *msg, size_t len, size_t *off)
{
	size_t at = *off, total = 0;
	int jumped = 0;
	for (int guard = 0; guard < 64; guard++) {
		if (at >= len)
			return -1;
		unsigned l = msg[at];
		if ((l & 0xc0) == 0xc0) {
			if (at + 1 >= len)
				return -1;
			size_t to = (l & 0x3f) << 8 | msg[at + 1];
			if (to >= at)
				return -1;
			if (!jumped)
				*off = at + 2;
			jumped = 1;
			at = to;
			continue;
		}
		if (l > 63)
			return -1;
		if (l == 0) {
			if (!jumped)
				*off = at + 1;
			return 0;
		}
		for (unsigned i = 1; i <= l; i++) {
			uint8_t ch = at + i < len ? msg[at + i] : 0;
			if (!(ch == '-' || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')))
				return -1;
		}
		total += l + 1;
		if (total > 255)
			return -1;
		at += l + 1;
	}
	return -1;
}

static void dns(struct dissect *d, const uint8_t *p, size_t len)
{
	if (len < 12) {
		fail(d, "DNS shorter than its header");
		return;
	}
	d->counts[K_DNS]++;
	if (p[2] & 0x80)
		d->counts[K_DNS_RESP]++;
	size_t off = 12;
	unsigned qd = rd16(p + 4), an = rd16(p + 6) + rd16(p + 8) + rd16(p + 10);
	for (unsigned i = 0; i < qd; i++) {
		if (dns_name(p, len, &off) || off + 4 > len) {
			fail(d, "bad DNS question");
			return;
		}
		off += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		if (dns_name(p, len, &off) || off + 10 > len) {
			fail(d, "bad DNS record");
			return;
		}
		unsigned type = rd16(p + off), rdlen = rd16(p + off + 8);
		off += 10;
		if (rdlen > len - off || (type == 1 && rdlen != 4) || (type == 28 && rdlen != 16)) {
			fail(d, "bad DNS rdata");
			return;
		}
		if (type == 15) {
			size_t o = off + 2;
			if (dns_name(p, off + rdlen, &o) || o != off + rdlen)
				fail(d, "bad MX rdata");
		}
		off += rdlen;
	}
	if (off != len)
		fail(d, "DNS message length");
}

/* ---- network and transport layers ---- */

static void ip4(struct dissect *d, const uint8_t *p, size_t avail);
static void ip6(struct dissect *d, const uint8_t *p, size_t avail);
static void ether(struct dissect *d, const uint8_t *p, size_t len, int outer);

static void count_port(struct dissect *d, unsigned a, unsigned b)
{
	static const unsigned ports[] = {80, 443, 22, 25, 53, 8080};
	static const enum kind pk[] = {K_PORT_80, K_PORT_443, K_PORT_22, K_PORT_25, K_PORT_53,
				       K_PORT_8080};
	for (int i = 0; i < 6; i++)
		if (a == ports[i] || b == ports[i]) {
			d->counts[pk[i]]++;
			return;
		}
	if (a >= 1024 && b >= 1024)
		d->counts[K_PORT_HIGH]++;
}

static void tcp(struct dissect *d, const uint8_t *p, size_t len)
{
	if (len < 20 || (size_t)(p[12] >> 4) * 4 > len || p[12] >> 4 < 5) {
		fail(d, "bad TCP header length");
		return;
	}
	d->counts[K_TCP]++;
	unsigned flags = p[13] & 0x3f, hl = (p[12] >> 4) * 4u;
	if (flags == 0x02)
		d->counts[K_SYN]++;
	else if (flags == 0x12)
		d->counts[K_SYNACK]++;
	else if (flags & 0x04)
		d->counts[K_RST]++;
	else if (flags & 0x01)
		d->counts[K_FIN]++;
	else if (flags & 0x08)
		d->counts[K_PSH]++;
	else if (flags == 0x10)
		d->counts[K_ACK]++;
	else
		fail(d, "odd TCP flags");
	for (size_t o = 20; o < hl;) {
		unsigned kind = p[o];
		if (kind == 0)
			break;
		if (kind == 1) {
			o++;
			continue;
		}
		if (o + 1 >= hl || p[o + 1] < 2 || o + p[o + 1] > hl) {
			fail(d, "bad TCP option");
			return;
		}
		unsigned l = p[o + 1];
		if ((kind == 2 && l != 4) || (kind == 3 && l != 3) || (kind == 4 && l != 2) ||
		    (kind == 8 && l != 10) || (kind == 5 && (l - 2) % 8 != 0))
			fail(d, "bad TCP option length");
		if (kind == 2)
			d->counts[K_OPT_MSS]++;
		if (kind == 3)
			d->counts[K_OPT_WS]++;
		if (kind == 4)
			d->counts[K_OPT_SACKOK]++;
		if (kind == 5)
			d->counts[K_OPT_SACK]++;
		if (kind == 8)
			d->counts[K_OPT_TS]++;
		o += l;
	}
	unsigned sp = rd16(p), dp = rd16(p + 2);
	count_port(d, sp, dp);
	if ((sp == 53 || dp == 53) && len > hl) {
		if (len - hl < 2 || rd16(p + hl) != len - hl - 2)
			fail(d, "DNS over TCP length");
		else
			dns(d, p + hl + 2, len - hl - 2);
	}
}

static void udp(struct dissect *d, const uint8_t *p, size_t len)
{
	if (len < 8 || rd16(p + 4) != len) {
		fail(d, "UDP length field");
		return;
	}
	d->counts[K_UDP]++;
	unsigned sp = rd16(p), dp = rd16(p + 2);
	count_port(d, sp, dp);
	const uint8_t *pl = p + 8;
	size_t n = len - 8;
	if (sp == 53 || dp == 53) {
		dns(d, pl, n);
	} else if (sp == 5353 && dp == 5353) {
		d->counts[K_MDNS]++;
		dns(d, pl, n);
	} else if (dp == 123) {
		d->counts[K_NTP]++;
		if (n != 48 || (pl[0] & 0x38) != 0x20)
			fail(d, "NTP packet");
	} else if (dp == 4789) {
		if (n < 8 + 14 || pl[0] != 0x08) {
			fail(d, "VXLAN header");
			return;
		}
		d->counts[K_VXLAN]++;
		ether(d, pl + 8, n - 8, 0);
	} else if (dp == 6081) {
		size_t hl = 8 + (pl[0] & 0x3f) * 4u;
		if (n < hl + 14 || rd16(pl + 2) != 0x6558 || (pl[0] >> 6) != 0) {
			fail(d, "Geneve header");
			return;
		}
		d->counts[K_GENEVE]++;
		ether(d, pl + hl, n - hl, 0);
	}
}

/* Transport layer: checksums over the pseudo-header, then the protocol. */
static void upper(struct dissect *d, unsigned proto, const uint8_t *src, const uint8_t *dst,
		  int v6, const uint8_t *p, size_t len)
{
	switch (proto) {
	case 6:
		verify_sum(d, ones(pseudo(src, dst, v6, proto, len), p, len), "TCP checksum");
		tcp(d, p, len);
		break;
	case 17:
		if (len >= 8 && rd16(p + 6) == 0)
			fail(d, "UDP checksum absent");
		verify_sum(d, ones(pseudo(src, dst, v6, proto, len), p, len), "UDP checksum");
		udp(d, p, len);
		break;
	case 1:
		if (v6 || len < 8) {
			fail(d, "ICMP");
			return;
		}
		verify_sum(d, ones(0, p, len), "ICMP checksum");
		if (p[0] == 0 || p[0] == 8) {
			d->counts[K_ICMP_ECHO]++;
		} else if (p[0] == 3) {
			d->counts[K_ICMP_UNREACH]++;
			ip4(d, p + 8, len - 8);
		} else {
			fail(d, "ICMP type");
		}
		break;
	case 58:
		if (!v6 || len < 8) {
			fail(d, "ICMPv6");
			return;
		}
		verify_sum(d, ones(pseudo(src, dst, 1, proto, len), p, len), "ICMPv6 checksum");
		if (p[0] == 128 || p[0] == 129)
			d->counts[K_ICMP6_ECHO]++;
		else if (p[0] == 135 && len == 32)
			d->counts[K_ICMP6_NS]++;
		else if (p[0] == 136 && len == 32)
			d->counts[K_ICMP6_NA]++;
		else if (p[0] == 143)
			d->counts[K_MLD]++;
		else
			fail(d, "ICMPv6 type or length");
		break;
	case 2:
		if (len != 8) {
			fail(d, "IGMP length");
			return;
		}
		verify_sum(d, ones(0, p, len), "IGMP checksum");
		if (p[0] == 0x16 || p[0] == 0x17)
			d->counts[K_IGMP]++;
		else
			fail(d, "IGMP type");
		break;
	case 132: {
		if (len < 16 || len > 2048) {
			fail(d, "SCTP length");
			return;
		}
		uint8_t copy[2048];
		memcpy(copy, p, len < sizeof copy ? len : sizeof copy);
		memset(copy + 8, 0, 4);
		uint32_t c = crc32c_table(copy, len);
		uint32_t stored = p[8] | (uint32_t)p[9] << 8 | (uint32_t)p[10] << 16 |
				  (uint32_t)p[11] << 24;
		d->checksums++;
		if (c != stored)
			fail(d, "SCTP CRC32c");
		for (size_t o = 12; o < len;) {
			unsigned cl = o + 4 <= len ? rd16(p + o + 2) : 0;
			if (cl < 4 || cl > len - o) {
				fail(d, "SCTP chunk length");
				return;
			}
			o += (cl + 3) & ~3u;
		}
		d->counts[K_SCTP]++;
		break;
	}
	case 47: {
		if (len < 4 || rd16(p + 2) != 0x0800) {
			fail(d, "GRE header");
			return;
		}
		size_t hl = (p[0] & 0x20) ? 8 : 4;
		d->counts[K_GRE]++;
		ip4(d, p + hl, len - hl);
		break;
	}
	default:
		fail(d, "unknown IP protocol");
	}
}

static int same_net(const uint8_t *a, int v0, int v1, int v2)
{
	return a[0] == v0 && a[1] == v1 && (v2 < 0 || a[2] == v2);
}

static void ip4(struct dissect *d, const uint8_t *p, size_t avail)
{
	if (avail < 20 || p[0] >> 4 != 4 || (p[0] & 15) < 5) {
		fail(d, "IPv4 version or header length");
		return;
	}
	size_t hl = (p[0] & 15) * 4u, tot = rd16(p + 2);
	if (tot < hl || tot > avail) {
		fail(d, "IPv4 total length");
		return;
	}
	d->counts[K_IP4]++;
	verify_sum(d, ones(0, p, hl), "IPv4 header checksum");
	if (same_net(p + 12, 10, 0, -1) || same_net(p + 16, 10, 0, -1))
		d->counts[K_NET_10]++;
	if (same_net(p + 12, 192, 168, 1) || same_net(p + 16, 192, 168, 1))
		d->counts[K_NET_192]++;
	if (hl > 20) {
		d->counts[K_IP4_OPT]++;
		for (size_t o = 20; o < hl;) {
			if (p[o] == 0)
				break;
			if (p[o] == 1) {
				o++;
				continue;
			}
			if (o + 1 >= hl || p[o + 1] < 2 || o + p[o + 1] > hl) {
				fail(d, "bad IPv4 option");
				return;
			}
			o += p[o + 1];
		}
	}
	unsigned frag = rd16(p + 6), off = (frag & 0x1fff) * 8u;
	int more = (frag & 0x2000) != 0;
	if (!more && off == 0) {
		upper(d, p[9], p + 12, p + 16, 0, p + hl, tot - hl);
		return;
	}
	/* Fragments: reassemble in order, then check the whole datagram. */
	if (off == 0) {
		d->counts[K_IP4_FRAG_FIRST]++;
		d->frag_active = 1;
		d->frag_v6 = 0;
		d->frag_id = rd16(p + 4);
		d->frag_proto = p[9];
		memcpy(d->frag_src, p + 12, 4);
		memcpy(d->frag_dst, p + 16, 4);
		d->frag_len = 0;
	} else {
		d->counts[K_IP4_FRAG_REST]++;
		if (!d->frag_active || d->frag_v6 || d->frag_id != rd16(p + 4) ||
		    off != d->frag_len) {
			fail(d, "IPv4 fragment out of order");
			return;
		}
	}
	if (more && (tot - hl) % 8 != 0)
		fail(d, "IPv4 fragment not a multiple of 8");
	if (d->frag_len + tot - hl > sizeof d->frag) {
		fail(d, "reassembled datagram too large");
		return;
	}
	memcpy(d->frag + d->frag_len, p + hl, tot - hl);
	d->frag_len += tot - hl;
	if (!more) {
		d->frag_active = 0;
		upper(d, d->frag_proto, d->frag_src, d->frag_dst, 0, d->frag, d->frag_len);
	}
}

static void ip6(struct dissect *d, const uint8_t *p, size_t avail)
{
	if (avail < 40 || p[0] >> 4 != 6 || rd16(p + 4) + 40u > avail) {
		fail(d, "IPv6 version or payload length");
		return;
	}
	d->counts[K_IP6]++;
	size_t end = 40 + rd16(p + 4), o = 40;
	unsigned nh = p[6];
	const uint8_t *fdst = p + 24;
	for (int first = 1;; first = 0) {
		if (nh == 0 || nh == 60 || nh == 43) {
			if (o + 8 > end || o + (p[o + 1] + 1u) * 8 > end) {
				fail(d, "IPv6 extension header length");
				return;
			}
			size_t l = (p[o + 1] + 1u) * 8;
			if (nh == 0) {
				d->counts[K_IP6_HBH]++;
				if (!first)
					fail(d, "hop-by-hop not first");
			} else if (nh == 60) {
				d->counts[K_IP6_DST]++;
			} else {
				d->counts[K_IP6_RT]++;
				if (p[o + 2] != 2 || l != 24 || p[o + 3] != 1) {
					fail(d, "routing header not type 2 with one address");
					return;
				}
				fdst = p + o + 8;
			}
			nh = p[o];
			o += l;
			continue;
		}
		if (nh == 44) {
			if (o + 8 > end) {
				fail(d, "IPv6 fragment header");
				return;
			}
			d->counts[K_IP6_FRAG]++;
			unsigned fo = rd16(p + o + 2) & 0xfff8;
			int more = p[o + 3] & 1;
			size_t n = end - o - 8;
			if (fo == 0) {
				d->frag_active = 1;
				d->frag_v6 = 1;
				d->frag_id = rd32(p + o + 4);
				d->frag_proto = p[o];
				memcpy(d->frag_src, p + 8, 16);
				memcpy(d->frag_dst, fdst, 16);
				d->frag_len = 0;
			} else if (!d->frag_active || !d->frag_v6 ||
				   d->frag_id != rd32(p + o + 4) || fo != d->frag_len) {
				fail(d, "IPv6 fragment out of order");
				return;
			}
			if ((more && n % 8) || d->frag_len + n > sizeof d->frag) {
				fail(d, "IPv6 fragment size");
				return;
			}
			memcpy(d->frag + d->frag_len, p + o + 8, n);
			d->frag_len += n;
			if (!more) {
				d->frag_active = 0;
				upper(d, d->frag_proto, d->frag_src, d->frag_dst, 1, d->frag,
				      d->frag_len);
			}
			return;
		}
		upper(d, nh, p + 8, fdst, 1, p + o, end - o);
		return;
	}
}

/* ---- link layer ---- */

static void arp(struct dissect *d, const uint8_t *p, size_t len)
{
	if (len < 28 || rd16(p) != 1 || rd16(p + 2) != 0x0800 || p[4] != 6 || p[5] != 4) {
		fail(d, "ARP header");
		return;
	}
	if (rd16(p + 6) == 1)
		d->counts[K_ARP_REQ]++;
	else if (rd16(p + 6) == 2)
		d->counts[K_ARP_REPLY]++;
	else
		fail(d, "ARP opcode");
}

static void ethertype(struct dissect *d, unsigned type, const uint8_t *p, size_t len)
{
	switch (type) {
	case 0x0800:
		ip4(d, p, len);
		break;
	case 0x86dd:
		ip6(d, p, len);
		break;
	case 0x0806:
		arp(d, p, len);
		break;
	case 0x8100:
		if (len < 4) {
			fail(d, "802.1Q tag");
			return;
		}
		d->counts[K_VLAN]++;
		ethertype(d, rd16(p + 2), p + 4, len - 4);
		break;
	case 0x88a8:
		if (len < 8 || rd16(p + 2) != 0x8100) {
			fail(d, "802.1ad without C-tag");
			return;
		}
		d->counts[K_QINQ]++;
		ethertype(d, rd16(p + 6), p + 8, len - 8);
		break;
	case 0x8847: {
		size_t o = 0;
		for (;;) {
			if (o + 4 > len) {
				fail(d, "MPLS stack without bottom");
				return;
			}
			int bottom = p[o + 2] & 1;
			o += 4;
			if (bottom)
				break;
		}
		d->counts[K_MPLS]++;
		ip4(d, p + o, len - o);
		break;
	}
	case 0x8863: {
		if (len < 6 || p[0] != 0x11 || rd16(p + 4) > len - 6) {
			fail(d, "PPPoE discovery header");
			return;
		}
		size_t end = 6 + rd16(p + 4);
		for (size_t o = 6; o < end;) {
			if (o + 4 > end || rd16(p + o + 2) > end - o - 4) {
				fail(d, "PPPoE tag");
				return;
			}
			o += 4 + rd16(p + o + 2);
		}
		d->counts[K_PPPOE_DISC]++;
		break;
	}
	case 0x8864:
		if (len < 8 || p[0] != 0x11 || p[1] != 0 || rd16(p + 4) > len - 6 || rd16(p + 4) < 2 ||
		    rd16(p + 6) != 0x0021) {
			fail(d, "PPPoE session header");
			return;
		}
		d->counts[K_PPPOE_SESS]++;
		ip4(d, p + 8, rd16(p + 4) - 2u);
		break;
	default:
		fail(d, "unknown ethertype");
	}
}

/* 802.2 LLC after an 802.3 length field (or SLL protocol 4). */
static void llc(struct dissect *d, const uint8_t *p, size_t len)
{
	if (len >= 3 && p[0] == 0x42 && p[1] == 0x42 && p[2] == 0x03) {
		if (len < 3 + 35 || rd16(p + 3) != 0) {
			fail(d, "STP BPDU");
			return;
		}
		d->counts[K_STP]++;
	} else if (len >= 8 && p[0] == 0xaa && p[1] == 0xaa && p[2] == 0x03) {
		d->counts[K_SNAP]++;
		ethertype(d, rd16(p + 6), p + 8, len - 8);
	} else {
		fail(d, "unknown LLC");
	}
}

static void ether(struct dissect *d, const uint8_t *p, size_t len, int outer)
{
	if (len < 14) {
		fail(d, "short Ethernet frame");
		return;
	}
	if (outer) {
		static const uint8_t bc[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
		if (memcmp(p, bc, 6) == 0)
			d->counts[K_BCAST]++;
		else if (p[0] == 0x01 && p[1] == 0x00 && p[2] == 0x5e)
			d->counts[K_MCAST4]++;
		else if (p[0] == 0x33 && p[1] == 0x33)
			d->counts[K_MCAST6]++;
		if (p[6] & 1)
			fail(d, "multicast source MAC");
	}
	unsigned type = rd16(p + 12);
	if (type <= 1500) {
		if (type > len - 14) {
			fail(d, "802.3 length beyond the frame");
			return;
		}
		llc(d, p + 14, type);
	} else {
		ethertype(d, type, p + 14, len - 14);
	}
}

static void dissect_packet(struct dissect *d, uint32_t linktype, const uint8_t *p, size_t len)
{
	switch (linktype) {
	case 1:
		ether(d, p, len, 1);
		break;
	case 101:
		if (len && p[0] >> 4 == 4)
			ip4(d, p, len);
		else
			ip6(d, p, len);
		break;
	case 113:
		if (len < 16 || rd16(p + 2) != 1 || rd16(p + 4) != 6) {
			fail(d, "SLL header");
			return;
		}
		if (rd16(p + 14) == 4)
			llc(d, p + 16, len - 16);
		else
			ethertype(d, rd16(p + 14), p + 16, len - 16);
		break;
	case 0: {
		uint32_t af;
		memcpy(&af, p, 4); /* host order, as the capture's writer's */
		if (af == 2)
			ip4(d, p + 4, len - 4);
		else if (af == 24 || af == 28 || af == 30)
			ip6(d, p + 4, len - 4);
		else
			fail(d, "DLT_NULL family");
		break;
	}
	}
}

/* ---- helpers ---- */

static struct bpfkit_gen *new_gen(uint32_t lt, uint64_t seed)
{
	struct bpfkit_gen *g = NULL;
	struct bpfkit_error err;
	if (bpfkit_gen_new(lt, seed, NULL, &g, &err) != 0)
		harness_fail(__FILE__, __LINE__, "bpfkit_gen_new(%u): %s", lt, err.message);
	return g;
}

/* Generates n packets and dissects them; returns 0 when generation worked. */
static int run_dissect(uint32_t lt, uint64_t seed, long n, struct dissect *d, unsigned *minlen,
		       unsigned *maxlen)
{
	struct bpfkit_gen *g = new_gen(lt, seed);
	if (!g)
		return -1;
	uint8_t buf[BPFKIT_GEN_MAX_FRAME];
	*minlen = ~0u;
	*maxlen = 0;
	for (long i = 0; i < n; i++) {
		struct bpfkit_packet pk;
		struct bpfkit_error err;
		if (bpfkit_gen_next(g, buf, sizeof buf, &pk, &err) != 0) {
			harness_fail(__FILE__, __LINE__, "gen_next: %s", err.message);
			bpfkit_gen_free(g);
			return -1;
		}
		if (pk.caplen != pk.wirelen || pk.data != buf || pk.linktype != lt)
			fail(d, "caplen, wirelen, data or linktype");
		if (pk.caplen < *minlen)
			*minlen = pk.caplen;
		if (pk.caplen > *maxlen)
			*maxlen = pk.caplen;
		if (lt == 1 && pk.caplen == 60)
			d->counts[K_SIZE_60]++;
		if (lt == 1 && pk.caplen == 1514)
			d->counts[K_SIZE_1514]++;
		d->pkt = i;
		dissect_packet(d, lt, buf, pk.caplen);
	}
	bpfkit_gen_free(g);
	return 0;
}

/* ---- tests ---- */

TEST(gen_determinism)
{
	for (size_t t = 0; t < 4; t++) {
		uint32_t lt = linktypes[t];
		long n = lt == 1 ? NPKT : 2000;
		struct bpfkit_gen *a = new_gen(lt, 42), *b = new_gen(lt, 42), *c = new_gen(lt, 43);
		if (!a || !b || !c)
			return;
		uint8_t ba[BPFKIT_GEN_MAX_FRAME], bb[BPFKIT_GEN_MAX_FRAME], bc[BPFKIT_GEN_MAX_FRAME];
		long same = 0, differ = 0, diff_from_c = 0;
		int64_t last = 0;
		for (long i = 0; i < n; i++) {
			struct bpfkit_packet pa, pb, pc;
			CHECK_EQ(bpfkit_gen_next(a, ba, sizeof ba, &pa, NULL), 0);
			CHECK_EQ(bpfkit_gen_next(b, bb, sizeof bb, &pb, NULL), 0);
			CHECK_EQ(bpfkit_gen_next(c, bc, sizeof bc, &pc, NULL), 0);
			if (pa.caplen == pb.caplen && pa.wirelen == pb.wirelen &&
			    pa.ts_sec == pb.ts_sec && pa.ts_frac == pb.ts_frac &&
			    memcmp(ba, bb, pa.caplen) == 0)
				same++;
			else
				differ++;
			if (pa.caplen != pc.caplen || memcmp(ba, bc, pa.caplen) != 0)
				diff_from_c++;
			int64_t ns = bpfkit_packet_ns(&pa);
			CHECK_MSG(ns > last, "timestamps must increase (packet %ld)", i);
			last = ns;
		}
		CHECK_EQ(same, n);
		CHECK_EQ(differ, 0);
		CHECK_MSG(diff_from_c > n / 2, "seed 43 vs 42: only %ld of %ld packets differ",
			  diff_from_c, n);
		bpfkit_gen_free(a);
		bpfkit_gen_free(b);
		bpfkit_gen_free(c);
	}
}

/* Fixed bytes for a fixed seed: the generator's output must not drift by accident. */
TEST(gen_stable_digest)
{
	struct bpfkit_gen *g = new_gen(1, 7);
	if (!g)
		return;
	uint8_t buf[BPFKIT_GEN_MAX_FRAME];
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < 1000; i++) {
		struct bpfkit_packet pk;
		CHECK_EQ(bpfkit_gen_next(g, buf, sizeof buf, &pk, NULL), 0);
		for (uint32_t k = 0; k < pk.caplen; k++)
			h = (h ^ buf[k]) * 1099511628211ull;
		h = (h ^ (uint64_t)bpfkit_packet_ns(&pk)) * 1099511628211ull;
	}
	bpfkit_gen_free(g);
	/* Update deliberately (and say so in docs/gen.md's history) when the mix changes. */
	CHECK_EQ(h, GEN_DIGEST_SEED7);
}

TEST(gen_linktypes)
{
	struct bpfkit_gen *g = (struct bpfkit_gen *)(uintptr_t)1;
	struct bpfkit_error err;
	CHECK_EQ(bpfkit_gen_new(105, 1, NULL, &g, &err), -1);
	CHECK(g == NULL);
	CHECK_CONTAINS(err.message, "105");
	CHECK(!bpfkit_gen_supported(105));
	for (size_t t = 0; t < 4; t++) {
		uint32_t lt = linktypes[t];
		CHECK(bpfkit_gen_supported(lt));
		struct dissect *d = calloc(1, sizeof *d);
		unsigned minlen, maxlen;
		if (run_dissect(lt, 99, 3000, d, &minlen, &maxlen) == 0) {
			CHECK_MSG(d->failures == 0, "link type %u: %u failures, first: %s", lt,
				  d->failures, d->first);
			CHECK(d->counts[K_IP4] > 0 && d->counts[K_IP6] > 0);
			size_t hdr = lt == 1 ? 14 : lt == 113 ? 16 : lt == 0 ? 4 : 0;
			CHECK_MSG(maxlen <= hdr + 1500, "link type %u: %u bytes", lt, maxlen);
			CHECK_MSG(minlen >= hdr + 18, "link type %u: %u bytes", lt, minlen);
		}
		free(d);
	}
	/* A buffer smaller than a packet may be is refused. */
	g = new_gen(1, 1);
	if (g) {
		uint8_t small[100];
		struct bpfkit_packet pk;
		CHECK_EQ(bpfkit_gen_next(g, small, sizeof small, &pk, &err), -1);
		bpfkit_gen_free(g);
	}
}

/* The full mix on Ethernet: every kind present, every checksum right, sizes in range. */
TEST(gen_mix_and_checksums)
{
	struct dissect *d = calloc(1, sizeof *d);
	unsigned minlen, maxlen;
	if (!d || run_dissect(1, 2024, NPKT, d, &minlen, &maxlen) != 0) {
		free(d);
		return;
	}
	CHECK_MSG(d->failures == 0, "%u failures, first: %s", d->failures, d->first);
	CHECK_EQ(minlen, 60);
	CHECK_EQ(maxlen, 1514);
	CHECK_MSG(d->checksums > NPKT, "only %u checksums verified", d->checksums);
	for (int k = 0; k < K_COUNT; k++)
		CHECK_MSG(d->counts[k] > 0, "no %s in %d packets", kind_names[k], NPKT);
	/* Rough proportions: mostly TCP, IPv4 well ahead of IPv6. */
	CHECK(d->counts[K_TCP] > NPKT / 4 && d->counts[K_TCP] < NPKT * 3 / 4);
	CHECK(d->counts[K_IP4] > d->counts[K_IP6]);
	free(d);
	/* Other link types: no failures, and their kinds present. */
	static const enum kind ipk[] = {K_TCP, K_UDP, K_DNS, K_ICMP_ECHO, K_ICMP6_NS, K_SCTP,
					K_IGMP, K_GRE, K_VXLAN, K_GENEVE, K_IP4_FRAG_REST,
					K_IP6_FRAG, K_IP6_RT, K_IP6_HBH};
	for (size_t t = 1; t < 4; t++) {
		d = calloc(1, sizeof *d);
		if (!d || run_dissect(linktypes[t], 5, NPKT, d, &minlen, &maxlen) != 0) {
			free(d);
			return;
		}
		CHECK_MSG(d->failures == 0, "link type %u: %u failures, first: %s", linktypes[t],
			  d->failures, d->first);
		for (size_t k = 0; k < sizeof ipk / sizeof ipk[0]; k++)
			CHECK_MSG(d->counts[ipk[k]] > 0, "link type %u: no %s", linktypes[t],
				  kind_names[ipk[k]]);
		if (linktypes[t] == 113)
			CHECK(d->counts[K_ARP_REQ] && d->counts[K_MPLS] && d->counts[K_STP] &&
			      d->counts[K_PPPOE_SESS]);
		free(d);
	}
}

/* The independent checker must notice a broken checksum (it is not vacuous). */
TEST(gen_checker_catches_corruption)
{
	struct bpfkit_gen *g = new_gen(1, 3);
	if (!g)
		return;
	uint8_t buf[BPFKIT_GEN_MAX_FRAME];
	int caught = 0, tried = 0;
	for (int i = 0; i < 200; i++) {
		struct bpfkit_packet pk;
		CHECK_EQ(bpfkit_gen_next(g, buf, sizeof buf, &pk, NULL), 0);
		struct dissect *d = calloc(1, sizeof *d);
		dissect_packet(d, 1, buf, pk.caplen);
		/* Flip a bit in a TCP or UDP payload's last byte of an unfragmented IPv4 packet. */
		if (d->failures == 0 && rd16(buf + 12) == 0x0800 && (buf[23] == 6 || buf[23] == 17) &&
		    (rd16(buf + 20) & 0x3fff) == 0) {
			size_t end = 14 + rd16(buf + 16);
			buf[end - 1] ^= 0x10;
			memset(d, 0, sizeof *d);
			dissect_packet(d, 1, buf, pk.caplen);
			tried++;
			caught += d->failures > 0;
		}
		free(d);
	}
	bpfkit_gen_free(g);
	CHECK(tried > 20);
	CHECK_EQ(caught, tried);
}

TEST(gen_snaplen)
{
	struct bpfkit_gen *a = new_gen(1, 11), *b = new_gen(1, 11);
	if (!a || !b)
		return;
	bpfkit_gen_set_snaplen(b, 96);
	uint8_t ba[BPFKIT_GEN_MAX_FRAME], bb[96];
	int cut = 0;
	for (int i = 0; i < 2000; i++) {
		struct bpfkit_packet pa, pb;
		CHECK_EQ(bpfkit_gen_next(a, ba, sizeof ba, &pa, NULL), 0);
		CHECK_EQ(bpfkit_gen_next(b, bb, sizeof bb, &pb, NULL), 0);
		CHECK_EQ(pb.wirelen, pa.wirelen);
		CHECK_EQ(pb.caplen, pa.caplen < 96 ? pa.caplen : 96);
		CHECK(memcmp(ba, bb, pb.caplen) == 0);
		CHECK_EQ(bpfkit_packet_ns(&pa), bpfkit_packet_ns(&pb));
		cut += pb.caplen < pb.wirelen;
	}
	CHECK(cut > 100);
	bpfkit_gen_free(a);
	bpfkit_gen_free(b);
}

/* Allocation goes through the hook. */
static int hook_calls;
static void *counting_alloc(void *ud, void *ptr, size_t size)
{
	(void)ud;
	hook_calls++;
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	return realloc(ptr, size);
}

static void *failing_alloc(void *ud, void *ptr, size_t size)
{
	(void)ud;
	if (size == 0)
		free(ptr);
	return NULL;
}

TEST(gen_alloc_hook)
{
	struct bpfkit_alloc hook = {counting_alloc, NULL}, bad = {failing_alloc, NULL};
	struct bpfkit_gen *g = NULL;
	struct bpfkit_error err;
	hook_calls = 0;
	CHECK_EQ(bpfkit_gen_new(1, 1, &hook, &g, &err), 0);
	bpfkit_gen_free(g);
	CHECK_EQ(hook_calls, 2);
	CHECK_EQ(bpfkit_gen_new(1, 1, &bad, &g, &err), -1);
	CHECK(g == NULL);
}

/* ---- external readers ---- */

struct tmpdir {
	char path[64];
};

/* Writes n packets per link type to DIR/gen-LT.pcap with libpcap's writer. */
static int write_pcaps(struct tmpdir *t, long n)
{
	snprintf(t->path, sizeof t->path, "/tmp/bpfkit-gen-XXXXXX");
	if (!mkdtemp(t->path))
		return -1;
	for (size_t i = 0; i < 4; i++) {
		uint32_t lt = linktypes[i];
		int dlt = lt == 101 ? DLT_RAW : lt == 113 ? DLT_LINUX_SLL : (int)lt;
		char file[128];
		snprintf(file, sizeof file, "%s/gen-%u.pcap", t->path, lt);
		pcap_t *p = pcap_open_dead_with_tstamp_precision(dlt, 65535,
								  PCAP_TSTAMP_PRECISION_NANO);
		pcap_dumper_t *dump = p ? pcap_dump_open(p, file) : NULL;
		struct bpfkit_gen *g = new_gen(lt, 5000 + i);
		if (!dump || !g) {
			if (p)
				pcap_close(p);
			return -1;
		}
		uint8_t buf[BPFKIT_GEN_MAX_FRAME];
		for (long k = 0; k < n; k++) {
			struct bpfkit_packet pk;
			if (bpfkit_gen_next(g, buf, sizeof buf, &pk, NULL) != 0)
				break;
			struct pcap_pkthdr h;
			h.ts.tv_sec = (time_t)pk.ts_sec;
			h.ts.tv_usec = (suseconds_t)pk.ts_frac; /* nanoseconds: NANO precision */
			h.caplen = pk.caplen;
			h.len = pk.wirelen;
			pcap_dump((u_char *)dump, &h, buf);
		}
		bpfkit_gen_free(g);
		pcap_dump_close(dump);
		pcap_close(p);
	}
	return 0;
}

static void remove_pcaps(struct tmpdir *t)
{
	char cmd[160];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->path);
	CHECK_EQ(system(cmd), 0);
}

static int have_tool(const char *name)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* What tcpdump -vven prints for each kind (counted when present). */
static const char *const tcpdump_kinds[][2] = {
	{"arp", "who-has"}, {"tcp", "Flags ["}, {"udp", "udp sum ok"}, {"dns", " q: "},
	{"icmp", "ICMP echo"}, {"icmp-unreach", "port 53 unreachable"}, {"icmp6", "ICMP6"},
	{"igmp", "igmp "}, {"sctp", "sctp"}, {"gre", "GRE"}, {"vxlan", "VXLAN"},
	{"geneve", "Geneve"}, {"vlan", "802.1Q (0x8100)"}, {"qinq", "802.1Q-QinQ"},
	{"mpls", "MPLS"}, {"pppoe", "PPPoE"}, {"stp", "STP"}, {"snap", "SNAP"},
	{"ntp", "NTPv4"}, {"hbh", "HBH"}, {"ip-frag", "flags [+]"}, {"ip6-frag", "frag ("},
	{"ip-options", "options ("}, {"ip6", "IPv6"},
};

TEST(gen_tcpdump)
{
	if (!have_tool("tcpdump"))
		SKIP("tcpdump is not installed");
	struct tmpdir t;
	if (write_pcaps(&t, 5000) != 0) {
		harness_fail(__FILE__, __LINE__, "cannot write the pcap files");
		return;
	}
	for (size_t i = 0; i < 4; i++) {
		char cmd[256], *out = NULL, *err = NULL;
		snprintf(cmd, sizeof cmd, "tcpdump -vvenr '%s/gen-%u.pcap'", t.path, linktypes[i]);
		int st = harness_run(cmd, &out, &err);
		CHECK_EQ(st, 0);
		if (!out) {
			free(err);
			continue;
		}
		/* Complaints, outside the hex dumps of payloads tcpdump does not decode. */
		static const char *const bad[] = {"bad cksum", "incorrect", "[|", "(invalid)",
						  "malformed", "truncated"};
		int complaints = 0;
		for (char *line = out; *line && complaints < 5;) {
			char *nl = strchr(line, '\n');
			size_t ll = nl ? (size_t)(nl - line) : strlen(line);
			if (nl)
				*nl = '\0'; /* (restored below) */
			for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
				if (strstr(line, bad[b]) && strncmp(line, "\t0x", 3) != 0) {
					harness_fail(__FILE__, __LINE__, "link type %u: tcpdump says "
						     "\"%s\": %.*s", linktypes[i], bad[b],
						     (int)(ll < 300 ? ll : 300), line);
					complaints++;
				}
			}
			if (nl)
				*nl = '\n';
			line += ll + (nl ? 1 : 0);
		}
		size_t kinds = 0, nk = sizeof tcpdump_kinds / sizeof tcpdump_kinds[0];
		char missing[512] = "";
		for (size_t k = 0; k < nk; k++) {
			if (strstr(out, tcpdump_kinds[k][1]))
				kinds++;
			else if (strlen(missing) < sizeof missing - 20)
				strcat(missing, " "), strcat(missing, tcpdump_kinds[k][0]);
		}
		size_t want = linktypes[i] == 1 ? nk : 10;
		CHECK_MSG(kinds >= want, "link type %u: tcpdump shows %zu kinds, missing:%s",
			  linktypes[i], kinds, missing);
		free(out);
		free(err);
	}
	remove_pcaps(&t);
}

TEST(gen_tshark)
{
	if (!have_tool("tshark"))
		SKIP("tshark is not installed");
	struct tmpdir t;
	if (write_pcaps(&t, 5000) != 0) {
		harness_fail(__FILE__, __LINE__, "cannot write the pcap files");
		return;
	}
	const char *prefs = "-o ip.check_checksum:TRUE -o tcp.check_checksum:TRUE "
			    "-o udp.check_checksum:TRUE -o sctp.checksum:crc-32c";
	const char *bad = "_ws.malformed || _ws.expert.severity >= error || "
			  "ip.checksum.status == 0 || tcp.checksum.status == 0 || "
			  "udp.checksum.status == 0 || icmp.checksum.status == 0 || "
			  "icmpv6.checksum.status == 0 || igmp.checksum.status == 0 || "
			  "sctp.checksum.status == 0";
	for (size_t i = 0; i < 4; i++) {
		char cmd[1024], *out = NULL, *err = NULL;
		/* Packets tshark finds malformed or with a wrong checksum: none. */
		snprintf(cmd, sizeof cmd, "tshark -n -r '%s/gen-%u.pcap' %s -Y '%s'", t.path,
			 linktypes[i], prefs, bad);
		CHECK_EQ(harness_run(cmd, &out, &err), 0);
		CHECK_MSG(out && out[0] == '\0', "link type %u: tshark complains:\n%.600s",
			  linktypes[i], out ? out : "(no output)");
		free(out);
		free(err);
		/*
		 * Checksums were really checked (many TCP/UDP ones marked good, status
		 * 1), and many distinct protocols appear in frame.protocols.
		 */
		snprintf(cmd, sizeof cmd, "tshark -n -r '%s/gen-%u.pcap' %s -T fields "
			 "-e tcp.checksum.status -e udp.checksum.status -e frame.protocols "
			 "| awk -F'\\t' '$1 ~ /^1/ || $2 ~ /^1/ {good++} "
			 "{n = split($3, p, \":\"); for (i = 1; i <= n; i++) seen[p[i]] = 1} "
			 "END {print good + 0; print length(seen)}'",
			 t.path, linktypes[i], prefs);
		out = err = NULL;
		CHECK_EQ(harness_run(cmd, &out, &err), 0);
		long good = -1, protos = -1;
		if (out)
			sscanf(out, "%ld %ld", &good, &protos);
		CHECK_MSG(good > 2500, "link type %u: %ld packets with good checksums",
			  linktypes[i], good);
		CHECK_MSG(protos >= 12, "link type %u: only %ld distinct protocols", linktypes[i],
			  protos);
		free(out);
		free(err);
	}
	remove_pcaps(&t);
}
