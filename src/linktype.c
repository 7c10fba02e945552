/*
 * linktype.c - link-type names and numbers, and the compiler's description
 * of each link layer it supports.
 *
 * Names are libpcap's DLT_ names without the prefix, matched without regard
 * to case ("DLT_" and "LINKTYPE_" prefixes are accepted too); numbers are DLT
 * values as libpcap's pcap_datalink_name_to_val() returns them (RAW is 12;
 * the capture-file number 101 means the same link type).
 * The link table says, per link type, how the network protocol is marked and
 * where the network layer starts; codegen.c derives every offset from it.
 */
#include "internal.h"
#include "proto.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	int dlt;
} names[] = {
	{"NULL", 0}, {"EN10MB", 1}, {"EN3MB", 2}, {"AX25", 3}, {"PRONET", 4}, {"CHAOS", 5},
	{"IEEE802", 6}, {"ARCNET", 7}, {"SLIP", 8}, {"PPP", 9}, {"FDDI", 10},
	{"ATM_RFC1483", 11}, {"RAW", 12}, {"SLIP_BSDOS", 15}, {"PPP_BSDOS", 16},
	{"ATM_CLIP", 19}, {"PPP_SERIAL", 50}, {"PPP_ETHER", 51}, {"SYMANTEC_FIREWALL", 99},
	{"C_HDLC", 104}, {"IEEE802_11", 105}, {"FRELAY", 107}, {"LOOP", 108}, {"ENC", 109},
	{"LINUX_SLL", 113}, {"LTALK", 114}, {"PFLOG", 117}, {"PRISM_HEADER", 119},
	{"IP_OVER_FC", 122}, {"SUNATM", 123}, {"IEEE802_11_RADIO", 127},
	{"ARCNET_LINUX", 129}, {"JUNIPER_MLPPP", 130}, {"APPLE_IP_OVER_IEEE1394", 138},
	{"MTP2_WITH_PHDR", 139}, {"MTP2", 140}, {"MTP3", 141}, {"SCCP", 142},
	{"DOCSIS", 143}, {"LINUX_IRDA", 144}, {"IEEE802_11_RADIO_AVS", 163},
	{"PPP_PPPD", 166}, {"LINUX_LAPD", 177}, {"BLUETOOTH_HCI_H4", 187}, {"USB_LINUX", 189},
	{"PPI", 192}, {"IEEE802_15_4", 195}, {"ERF", 197}, {"LAPD", 203},
	{"USB_LINUX_MMAPPED", 220}, {"IPNET", 226}, {"CAN_SOCKETCAN", 227}, {"IPV4", 228},
	{"IPV6", 229}, {"IEEE802_15_4_NOFCS", 230}, {"DBUS", 231}, {"NFLOG", 239},
	{"NETANALYZER", 240}, {"IPOIB", 242}, {"USBPCAP", 249}, {"BLUETOOTH_LE_LL", 251},
	{"NETLINK", 253}, {"PKTAP", 258}, {"EPON", 259}, {"VSOCK", 271},
	{"ETHERNET_MPACKET", 274}, {"DISPLAYPORT_AUX", 275}, {"LINUX_SLL2", 276},
	{"EBHSCR", 279}, {"USER0", 147}, {"USER15", 162},
};

int bpfkit_linktype_parse(const char *name)
{
	if (!name || !*name)
		return -1;
	char *end;
	unsigned long v = strtoul(name, &end, 0);
	if (*end == 0 && name[0] >= '0' && name[0] <= '9')
		return v <= 0xffff ? (int)v : -1;
	if (strncasecmp(name, "DLT_", 4) == 0)
		name += 4;
	else if (strncasecmp(name, "LINKTYPE_", 9) == 0)
		name += 9;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(names[i].name, name) == 0)
			return names[i].dlt;
	return -1;
}

const char *bpfkit_linktype_name(int dlt)
{
	if (dlt == 101)
		dlt = 12;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (names[i].dlt == dlt)
			return names[i].name;
	return NULL;
}

/*
 * The link layers the code generator knows.  off_type: the protocol field;
 * off_nl: the network layer; off_mac: the destination MAC (source follows).
 */
static const struct proto_link links[] = {
	{1, "EN10MB", LT_ETHER, 12, 14, 0, PFX_NONE},
	{113, "LINUX_SLL", LT_SLL, 14, 16, -1, PFX_NONE},
	{276, "LINUX_SLL2", LT_SLL2, 0, 20, -1, PFX_NONE},
	{0, "NULL", LT_NULL, 0, 4, -1, PFX_NONE},
	{108, "LOOP", LT_LOOP, 0, 4, -1, PFX_NONE},
	{12, "RAW", LT_RAW, -1, 0, -1, PFX_NONE},
	{101, "RAW", LT_RAW, -1, 0, -1, PFX_NONE},
	{228, "IPV4", LT_IPV4, -1, 0, -1, PFX_NONE},
	{229, "IPV6", LT_IPV6, -1, 0, -1, PFX_NONE},
	/* codegen_link.c, codegen_wlan.c */
	{9, "PPP", LT_PPP, 2, 4, -1, PFX_NONE},
	{50, "PPP_SERIAL", LT_PPP, 2, 4, -1, PFX_NONE},
	{166, "PPP_PPPD", LT_PPP, 2, 4, -1, PFX_NONE},
	{16, "PPP_BSDOS", LT_PPP_BSDOS, 5, 24, -1, PFX_NONE},
	{104, "C_HDLC", LT_CHDLC, 2, 4, -1, PFX_NONE},
	{8, "SLIP", LT_SLIP, -1, 16, -1, PFX_NONE},
	{15, "SLIP_BSDOS", LT_SLIP, -1, 24, -1, PFX_NONE},
	{117, "PFLOG", LT_PFLOG, -1, (int)CODEGEN_VAR_PL, -1, PFX_NONE},
	/* off_type: the LLC header; off_nl: after LLC + SNAP */
	{10, "FDDI", LT_LLC, 13, 21, 1, PFX_NONE},
	{6, "IEEE802", LT_LLC, 14, 22, 2, PFX_NONE},
	/* off_mac: the 802.11 header */
	{105, "IEEE802_11", LT_WLAN, (int)CODEGEN_VAR_PL, (int)CODEGEN_VAR_PL + 8, 0, PFX_NONE},
	{127, "IEEE802_11_RADIO", LT_WLAN, (int)CODEGEN_VAR_PL, (int)CODEGEN_VAR_PL + 8,
	 (int)CODEGEN_VAR_HDR, PFX_RADIOTAP},
	{119, "PRISM_HEADER", LT_WLAN, (int)CODEGEN_VAR_PL, (int)CODEGEN_VAR_PL + 8,
	 (int)CODEGEN_VAR_HDR, PFX_PRISM},
	{163, "IEEE802_11_RADIO_AVS", LT_WLAN, (int)CODEGEN_VAR_PL, (int)CODEGEN_VAR_PL + 8,
	 (int)CODEGEN_VAR_HDR, PFX_AVS},
	{192, "PPI", LT_WLAN, (int)CODEGEN_VAR_PL, (int)CODEGEN_VAR_PL + 8, (int)CODEGEN_VAR_HDR,
	 PFX_PPI},
};

const struct proto_link *linktype_link(int dlt)
{
	for (size_t i = 0; i < sizeof links / sizeof links[0]; i++)
		if (links[i].dlt == dlt)
			return &links[i];
	return NULL;
}
