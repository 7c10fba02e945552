/*
 * proto.h - the pcap-filter compiler's protocol knowledge, in tables.
 *
 * KW_TABLE lists every keyword of the language with its class: a protocol
 * qualifier (P), a direction (D), a type (T) or another primitive/word (X).
 * The link-layer descriptions (header length, where the link type field is,
 * how it encodes network protocols) are struct proto_link rows in linktype.c.
 * Nothing here generates code; codegen.c reads these tables.
 */
#ifndef BPFKIT_PROTO_H
#define BPFKIT_PROTO_H

#include <stdint.h>

#define KW_TABLE(X) \
	X(LINK, "link", P) X(ETHER, "ether", P) X(FDDI, "fddi", P) X(TR, "tr", P) \
	X(WLAN, "wlan", P) X(PPP, "ppp", P) X(SLIP, "slip", P) X(IP, "ip", P) X(IP6, "ip6", P) \
	X(ARP, "arp", P) X(RARP, "rarp", P) X(SCTP, "sctp", P) X(TCP, "tcp", P) X(UDP, "udp", P) \
	X(ICMP, "icmp", P) X(ICMP6, "icmp6", P) X(IGMP, "igmp", P) X(IGRP, "igrp", P) \
	X(PIM, "pim", P) X(VRRP, "vrrp", P) X(CARP, "carp", P) X(ATALK, "atalk", P) \
	X(AARP, "aarp", P) X(DECNET, "decnet", P) X(LAT, "lat", P) X(SCA, "sca", P) \
	X(MOPRC, "moprc", P) X(MOPDL, "mopdl", P) X(ISO, "iso", P) X(ESIS, "esis", P) \
	X(CLNP, "clnp", P) X(ISIS, "isis", P) X(L1, "l1", P) X(L2, "l2", P) X(IIH, "iih", P) \
	X(LSP, "lsp", P) X(SNP, "snp", P) X(CSNP, "csnp", P) X(PSNP, "psnp", P) X(STP, "stp", P) \
	X(IPX, "ipx", P) X(NETBEUI, "netbeui", P) X(AH, "ah", P) X(ESP, "esp", P) \
	X(RADIO, "radio", P) \
	X(SRC, "src", D) X(DST, "dst", D) X(ADDR1, "addr1", D) X(ADDR2, "addr2", D) \
	X(ADDR3, "addr3", D) X(ADDR4, "addr4", D) X(RA, "ra", D) X(TA, "ta", D) \
	X(HOST, "host", T) X(NET, "net", T) X(PORT, "port", T) X(PORTRANGE, "portrange", T) \
	X(GATEWAY, "gateway", T) X(PROTO, "proto", T) X(PROTOCHAIN, "protochain", T) \
	X(BROADCAST, "broadcast", O) X(MULTICAST, "multicast", O) X(LESS, "less", O) \
	X(GREATER, "greater", O) X(LEN, "len", O) X(MASK, "mask", O) X(VLAN, "vlan", O) \
	X(MPLS, "mpls", O) X(PPPOED, "pppoed", O) X(PPPOES, "pppoes", O) \
	X(GENEVE, "geneve", O) X(VXLAN, "vxlan", O) X(LLC, "llc", O) \
	X(INBOUND, "inbound", O) X(OUTBOUND, "outbound", O) X(IFINDEX, "ifindex", O) \
	X(IFNAME, "ifname", O) X(ON, "on", O) X(RNR, "rnr", O) X(RULENUM, "rulenum", O) \
	X(REASON, "reason", O) X(ACTION, "action", O) X(SRNR, "srnr", O) \
	X(SUBRULENUM, "subrulenum", O) X(TYPE, "type", O) X(SUBTYPE, "subtype", O) \
	X(DIR, "dir", O) X(RULESET, "ruleset", O) X(BYTE, "byte", O)

enum kw_class { KWC_P = 1, KWC_D, KWC_T, KWC_O };

enum kw {
	KW_NONE = 0,
#define KW_ENUM(id, s, c) KW_##id,
	KW_TABLE(KW_ENUM)
#undef KW_ENUM
	KW__COUNT
};

/* The class of keyword kw (KWC_P ...). */
int proto_kw_class(int kw);

/* Ethertypes and IP protocol numbers the generator uses. */
enum {
	ETYPE_IP = 0x0800, ETYPE_ARP = 0x0806, ETYPE_RARP = 0x8035, ETYPE_IPV6 = 0x86dd,
	ETYPE_VLAN = 0x8100, ETYPE_QINQ = 0x88a8, ETYPE_QINQ_OLD = 0x9100,
	ETYPE_MPLS = 0x8847, ETYPE_MPLS_MC = 0x8848, ETYPE_PPPOED = 0x8863,
	ETYPE_PPPOES = 0x8864, ETYPE_ATALK = 0x809b, ETYPE_AARP = 0x80f3,
	ETYPE_DECNET = 0x6003, ETYPE_LAT = 0x6004, ETYPE_SCA = 0x6007, ETYPE_MOPRC = 0x6002,
	ETYPE_MOPDL = 0x6001, ETYPE_IPX = 0x8137, ETYPE_LOOPBACK = 0x9000, ETYPE_NS = 0x0600
};
/* 802.2 LLC SAPs (libpcap passes them where it passes ethertypes: values <= 1500). */
enum { SAP_ISO = 0xfe, SAP_STP = 0x42, SAP_IPX = 0xe0, SAP_NETBEUI = 0xf0 };
/* ISO network-layer protocol ids and IS-IS PDU types. */
enum { ISO_CLNP = 0x81, ISO_ESIS = 0x82, ISO_ISIS = 0x83 };
enum {
	IPP_ICMP = 1, IPP_IGMP = 2, IPP_TCP = 6, IPP_IGRP = 9, IPP_UDP = 17, IPP_ESP = 50,
	IPP_AH = 51, IPP_ICMP6 = 58, IPP_PIM = 103, IPP_VRRP = 112, IPP_CARP = 112,
	IPP_SCTP = 132, IPP_FRAG6 = 44
};

/* How a link type marks the network protocol of a packet. */
enum proto_ltkind {
	LT_ETHER,     /* 16-bit ethertype at off_type; <= 1500 means 802.3 length + LLC */
	LT_SLL,       /* Linux cooked: 16-bit protocol, LLC when 4 (802.2) */
	LT_SLL2,      /* Linux cooked v2: 16-bit protocol at 0 */
	LT_NULL,      /* 32-bit address family in host byte order */
	LT_LOOP,      /* 32-bit address family in network byte order */
	LT_RAW,       /* no header: version nibble of the first byte */
	LT_IPV4,      /* only IPv4 */
	LT_IPV6,      /* only IPv6 */
	LT_PPP,       /* 16-bit PPP protocol at off_type */
	LT_NONE,      /* link type the generator cannot handle */
	/* codegen_link.c */
	LT_CHDLC,     /* Cisco HDLC: 16-bit ethertype at off_type */
	LT_PPP_BSDOS, /* PPP protocol at off_type; IP also as VJ compressed/uncompressed */
	LT_SLIP,      /* no type field: libpcap tests the version nibble of byte 0 */
	LT_PFLOG,     /* OpenBSD pflog: address family byte; header length in byte 0 */
	LT_LLC,       /* FDDI, Token Ring: 802.2 LLC (+ SNAP) at off_type */
	LT_WLAN       /* 802.11: LLC in data frames; header length varies */
};

/* A radio header in front of the 802.11 header (struct proto_link.prefix). */
enum proto_prefix { PFX_NONE, PFX_RADIOTAP, PFX_PRISM, PFX_AVS, PFX_PPI };

struct proto_link {
	int dlt;
	const char *name;
	enum proto_ltkind kind;
	int off_type;    /* the link type field; -1 none */
	int off_nl;      /* start of the network layer */
	int off_mac;     /* first MAC (ether dst), -1 when the link has no MAC addresses */
	enum proto_prefix prefix;  /* LT_WLAN: the radio header in front */
};

#endif
