/*
 * fuzz_multi.c - differential libFuzzer target for the multi-filter matcher
 * (also built as a plain corpus replayer with fuzz/replay.c).  The input:
 *
 *   byte 0      number of rules (1 + byte % 8), the engine (byte / 8 % 3) and,
 *               bit 7, BPFKIT_MULTI_RUN_ALL (run every candidate rather than
 *               decide it from its decision DAG)
 *   per rule    3 bytes: a template (see rule_text) and two parameters
 *   the rest    packet bytes; the packet runs at every caplen from 0 to its
 *               size, and a second packet is the first with bytes rotated
 *
 * Every packet's matched rules must equal, exactly, the rules whose own
 * program (bpfkit_interp) accepts it; else abort().
 */
#include "bpfkit.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void rule_text(char *s, size_t n, uint8_t t, uint8_t a, uint8_t b)
{
	switch (t % 18) {
	case 0: snprintf(s, n, "host 10.0.%u.%u", a % 4, b % 4); break;
	case 1: snprintf(s, n, "net 10.%u.0.0/16", a % 4); break;
	case 2: snprintf(s, n, "tcp port %u", a % 8 + 78); break;
	case 3: snprintf(s, n, "udp dst port %u or src host 10.0.0.%u", b % 8 + 50, a % 4); break;
	case 4: snprintf(s, n, "ip proto %u", a % 20); break;
	case 5: snprintf(s, n, "tcp[tcpflags] & %u != 0", a); break;
	case 6: snprintf(s, n, "len > %u", a); break;
	case 7: snprintf(s, n, "ether[%u] = %u", a % 64, b); break;
	case 8: snprintf(s, n, "not port %u", a % 8 + 78); break;
	case 9: snprintf(s, n, "vlan %u and ip", a % 4); break;
	case 10: snprintf(s, n, "ip6 and udp port %u", a % 8 + 50); break;
	case 11: snprintf(s, n, "ip[%u:2] & 0x%x = %u", a % 24, b, a & b); break;
	case 12: snprintf(s, n, "arp or (ip and src host 10.0.%u.1)", a % 4); break;
	case 13: snprintf(s, n, "greater %u and tcp dst port %u", a, b % 8 + 78); break;
	case 14: snprintf(s, n, "not (ip[%u] > %u) or udp", a % 24, b); break;
	case 15: snprintf(s, n, "tcp[%u:2] & 0x%x = 0 and not host 10.0.0.%u", a % 24, b,
			  a % 4);
		break;
	case 16: snprintf(s, n, "ip6 and (tcp port %u or ip6[%u] = %u)", a % 8 + 78, b % 48,
			  a);
		break;
	default: snprintf(s, n, "ether proto 0x%x", b % 2 ? 0x800 : 0x86dd); break;
	}
}

static void check(const struct bpfkit_multi *m, struct bpfkit_multi_state *st,
		  const struct bpfkit_prog *progs, size_t n, const uint8_t *pkt, uint32_t len)
{
	for (uint32_t cap = 0; cap <= len; cap++) {
		const uint32_t *ids;
		size_t k = bpfkit_multi_match(m, st, pkt, cap, len, &ids), j = 0;
		for (size_t i = 0; i < n; i++) {
			bool own = bpfkit_interp(progs[i].insns, progs[i].len, pkt, cap, len,
						 NULL) != 0;
			bool got = j < k && ids[j] == i;
			j += got;
			if (own != got)
				abort();
		}
		if (j != k)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n = 1 + data[0] % 8;
	unsigned engine = (unsigned)(data[0] / 8) % 3;
	if (data[0] & 0x80)
		engine |= BPFKIT_MULTI_RUN_ALL;
	if (size < 1 + 3 * n)
		return 0;
	struct bpfkit_prog progs[8];
	size_t got = 0;
	for (size_t i = 0; i < n; i++) {
		char s[128];
		const uint8_t *r = data + 1 + 3 * i;
		rule_text(s, sizeof s, r[0], r[1], r[2]);
		struct bpfkit_error err;
		if (bpfkit_compile(s, NULL, &progs[got], &err) == 0)
			got++;
	}
	const uint8_t *pkt = data + 1 + 3 * n;
	size_t len = size - 1 - 3 * n;
	if (len > 256)
		len = 256;
	struct bpfkit_multi *m;
	struct bpfkit_multi_state *st;
	struct bpfkit_error err;
	if (bpfkit_multi_build(progs, got, engine, NULL, &m, &err) != 0 ||
	    bpfkit_multi_state_new(m, NULL, &st, &err) != 0)
		abort();
	check(m, st, progs, got, pkt, (uint32_t)len);
	uint8_t rot[256];
	for (size_t i = 0; i < len; i++)
		rot[i] = pkt[(i + 1) % len];
	check(m, st, progs, got, rot, (uint32_t)len);
	bpfkit_multi_state_free(st);
	bpfkit_multi_free(m);
	for (size_t i = 0; i < got; i++)
		bpfkit_prog_free(NULL, &progs[i]);
	return 0;
}
