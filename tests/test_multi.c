/*
 * test_multi.c - the multi-filter matcher (bpfkit_multi_*) and `bpfkit multi`.
 *
 * Differential: random rule sets (hosts, nets, ports, protocols, tcp flags,
 * lengths, byte comparisons, vlan, and/or/not; values taken from the packets
 * so rules do match) over generated packets and over the EN10MB captures of
 * ../shared/pcaps.  For every packet the matcher's set of rules must equal,
 * exactly, the rules whose own bpfkit program accepts it (bpfkit_interp), and
 * each rule's verdict must equal libpcap's (bpf_filter on pcap_compile's
 * unoptimized program, the oracle: no either/or with its optimized one), so
 * per-rule counts equal libpcap's rule-by-rule counts.  Every engine (interp,
 * fast, jit) confirms the same way.  Decided programs (decision DAGs over
 * header fields, never run) must agree with BPFKIT_MULTI_RUN_ALL (every
 * candidate run) and each rule alone on packets cut at every length.
 * CLI: --counts equals the library, errors name RULES:LINE:COL, duplicate IDs
 * and unsafe --split names are refused, and a failed --split leaves nothing.
 */
#include "harness.h"

#include "bpfkit.h"

#include <dirent.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Packets and value pools                                             */

struct pktset {
	uint8_t **data;
	uint32_t *caplen, *wirelen;
	size_t n;
	int dlt;
};

struct pools {
	uint32_t addr[64];
	int naddr;
	uint16_t port[64];
	int nport;
};

static void pktset_add(struct pktset *ps, const uint8_t *d, uint32_t caplen, uint32_t wirelen)
{
	ps->data = realloc(ps->data, (ps->n + 1) * sizeof *ps->data);
	ps->caplen = realloc(ps->caplen, (ps->n + 1) * sizeof *ps->caplen);
	ps->wirelen = realloc(ps->wirelen, (ps->n + 1) * sizeof *ps->wirelen);
	if (!ps->data || !ps->caplen || !ps->wirelen)
		abort();
	ps->data[ps->n] = malloc(caplen ? caplen : 1);
	if (!ps->data[ps->n])
		abort();
	memcpy(ps->data[ps->n], d, caplen);
	ps->caplen[ps->n] = caplen;
	ps->wirelen[ps->n++] = wirelen;
}

static void pktset_free(struct pktset *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->data[i]);
	free(ps->data);
	free(ps->caplen);
	free(ps->wirelen);
	memset(ps, 0, sizeof *ps);
}

static void gen_packets(struct pktset *ps, uint64_t seed, size_t n)
{
	struct bpfkit_gen *g;
	struct bpfkit_error err;
	static uint8_t buf[BPFKIT_GEN_MAX_FRAME];
	ps->dlt = 1;
	if (bpfkit_gen_new(1, seed, NULL, &g, &err) != 0)
		abort();
	for (size_t i = 0; i < n; i++) {
		struct bpfkit_packet p;
		if (bpfkit_gen_next(g, buf, sizeof buf, &p, &err) != 0)
			abort();
		/* Every 7th packet cut short, so out-of-bounds fields are exercised. */
		uint32_t cap = p.caplen;
		if (i % 7 == 3 && cap > 20)
			cap = 14 + (uint32_t)(i % (cap - 14));
		pktset_add(ps, p.data, cap, p.wirelen);
	}
	bpfkit_gen_free(g);
}

/* Addresses and ports seen in IPv4 over Ethernet packets. */
static void harvest(const struct pktset *ps, struct pools *pl)
{
	memset(pl, 0, sizeof *pl);
	for (size_t i = 0; i < ps->n; i++) {
		const uint8_t *d = ps->data[i];
		uint32_t c = ps->caplen[i];
		if (c < 38 || d[12] != 8 || d[13] != 0)
			continue;
		for (int k = 0; k < 2 && pl->naddr < 64; k++) {
			const uint8_t *a = d + 26 + 4 * k;
			pl->addr[pl->naddr++] = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 |
						(uint32_t)a[2] << 8 | a[3];
		}
		unsigned ihl = 4u * (d[14] & 15);
		if ((d[23] == 6 || d[23] == 17) && c >= 14 + ihl + 4 && pl->nport < 62) {
			pl->port[pl->nport++] = (uint16_t)(d[14 + ihl] << 8 | d[15 + ihl]);
			pl->port[pl->nport++] = (uint16_t)(d[16 + ihl] << 8 | d[17 + ihl]);
		}
	}
	if (pl->naddr == 0)
		pl->addr[pl->naddr++] = 0x0a000001;
	if (pl->nport == 0)
		pl->port[pl->nport++] = 80;
}

/* ------------------------------------------------------------------ */
/* Random rules                                                        */

static uint64_t rng_state;
static uint32_t rnd(uint32_t n)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return n ? (uint32_t)(rng_state >> 33) % n : 0;
}

static void ip_text(char *s, size_t n, uint32_t a)
{
	snprintf(s, n, "%u.%u.%u.%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
}

/* One primitive. */
static void prim(char *s, size_t n, const struct pools *pl)
{
	static const char *const dirs[] = {"", "src ", "dst "};
	static const char *const protos[] = {"tcp", "udp", "icmp", "ip", "ip6", "arp", "sctp",
					     "igmp", "icmp6"};
	char a[32];
	uint32_t addr = rnd(4) ? pl->addr[rnd((uint32_t)pl->naddr)] : rnd(0xffffffffu);
	uint16_t port = rnd(4) ? pl->port[rnd((uint32_t)pl->nport)] : (uint16_t)rnd(65536);
	ip_text(a, sizeof a, addr);
	switch (rnd(16)) {
	case 0: case 1: snprintf(s, n, "%shost %s", dirs[rnd(3)], a); break;
	case 2: {
		static const int lens[] = {8, 16, 24, 12, 20, 32};
		int len = lens[rnd(6)];
		uint32_t m = len == 32 ? ~0u : ~(~0u >> len);
		ip_text(a, sizeof a, addr & m);
		snprintf(s, n, "%snet %s/%d", dirs[rnd(3)], a, len);
		break;
	}
	case 3: case 4:
		snprintf(s, n, "%s%sport %u", rnd(2) ? "" : rnd(2) ? "tcp " : "udp ", dirs[rnd(3)],
			 port);
		break;
	case 5: snprintf(s, n, "%s", protos[rnd(9)]); break;
	case 6: snprintf(s, n, "ip proto %u", rnd(3) ? (unsigned)(rnd(2) ? 6 : 17) : rnd(256));
		break;
	case 7: {
		static const char *const f[] = {"tcp-syn", "tcp-ack", "tcp-fin", "tcp-rst",
						"tcp-push", "tcp-syn|tcp-ack"};
		const char *x = f[rnd(6)];
		snprintf(s, n, "tcp[tcpflags] & (%s) %s", x, rnd(2) ? "!= 0" : "== 0");
		break;
	}
	case 8: snprintf(s, n, "%s %u", rnd(2) ? "len >" : rnd(2) ? "less" : "greater",
			 rnd(1500));
		break;
	case 9: snprintf(s, n, "ip[%u] %s %u", rnd(20), rnd(2) ? "=" : rnd(2) ? "<" : ">",
			 rnd(256));
		break;
	case 10: snprintf(s, n, "ether[%u:2] & 0x%x = 0x%x", rnd(40), rnd(65536), rnd(256));
		break;
	case 11: snprintf(s, n, "udp[%u] = %u", rnd(12), rnd(256)); break;
	case 12: snprintf(s, n, "tcp[%u:2] = %u", rnd(20), port); break;
	case 13: snprintf(s, n, "portrange %u-%u", port, port + rnd(100)); break;
	case 14: snprintf(s, n, "ip6 and %sport %u", dirs[rnd(3)], port); break;
	default: snprintf(s, n, "ether proto 0x%x", rnd(2) ? 0x800u : rnd(2) ? 0x86ddu : 0x806u);
		break;
	}
}

/* A rule: primitives joined with and/or, some negated, some parenthesised. */
static void rule_text(char *s, size_t n, const struct pools *pl)
{
	size_t len = 0;
	int k = 1 + (int)rnd(3);
	if (rnd(12) == 0)
		len += (size_t)snprintf(s, n, "vlan%s and ", rnd(2) ? "" : " 100");
	for (int i = 0; i < k && len + 100 < n; i++) {
		char p[96];
		prim(p, sizeof p, pl);
		const char *op = i == 0 ? "" : rnd(3) ? " and " : " or ";
		bool neg = rnd(6) == 0;
		len += (size_t)snprintf(s + len, n - len, "%s%s(%s)", op, neg ? "not " : "", p);
	}
}

/* ------------------------------------------------------------------ */
/* Differential runs                                                   */

struct ruleset {
	char **text;
	struct bpfkit_prog *progs;
	struct bpf_program *pc0, *pc1; /* libpcap: unoptimized, optimized */
	size_t n;
};

static void ruleset_free(struct ruleset *rs)
{
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->text[i]);
		bpfkit_prog_free(NULL, &rs->progs[i]);
		pcap_freecode(&rs->pc0[i]);
		pcap_freecode(&rs->pc1[i]);
	}
	free(rs->text);
	free(rs->progs);
	free(rs->pc0);
	free(rs->pc1);
	memset(rs, 0, sizeof *rs);
}

/* n rules that both libpcap and bpfkit compile for dlt. */
static void ruleset_make(struct ruleset *rs, size_t n, int dlt, const struct pools *pl)
{
	memset(rs, 0, sizeof *rs);
	rs->text = calloc(n, sizeof *rs->text);
	rs->progs = calloc(n, sizeof *rs->progs);
	rs->pc0 = calloc(n, sizeof *rs->pc0);
	rs->pc1 = calloc(n, sizeof *rs->pc1);
	pcap_t *p = pcap_open_dead(dlt, 262144);
	if (!rs->text || !rs->progs || !rs->pc0 || !rs->pc1 || !p)
		abort();
	struct bpfkit_compile_opts opts = {.linktype = dlt, .optimize = 2,
					   .flags = BPFKIT_COMPILE_NO_HOST_LOOKUP};
	for (int tries = 0; rs->n < n && tries < (int)n * 20; tries++) {
		char s[512];
		size_t i = rs->n;
		rule_text(s, sizeof s, pl);
		struct bpfkit_error err;
		if (pcap_compile(p, &rs->pc0[i], s, 0, PCAP_NETMASK_UNKNOWN) != 0)
			continue;
		if (pcap_compile(p, &rs->pc1[i], s, 1, PCAP_NETMASK_UNKNOWN) != 0) {
			pcap_freecode(&rs->pc0[i]);
			continue;
		}
		if (bpfkit_compile(s, &opts, &rs->progs[i], &err) != 0) {
			pcap_freecode(&rs->pc0[i]);
			pcap_freecode(&rs->pc1[i]);
			continue;
		}
		rs->text[i] = strdup(s);
		rs->n++;
	}
	pcap_close(p);
}

static const char *const engine_names[] = {"fast", "jit", "interp"};

/*
 * Matches every packet with each engine; checks against each rule alone and
 * libpcap.  Returns the number of (rule, packet) matches.
 */
static size_t differential(const struct ruleset *rs, const struct pktset *ps, const char *what,
			   struct bpfkit_multi_stats *stats)
{
	size_t total = 0, pcap_bad = 0;
	uint8_t *own = malloc(rs->n ? rs->n : 1);
	uint64_t *bits = calloc((rs->n + 63) / 64 + 1, sizeof *bits);
	if (!own || !bits)
		abort();
	for (unsigned e = 0; e < 3; e++) {
		struct bpfkit_multi *m;
		struct bpfkit_multi_state *st;
		struct bpfkit_error err;
		if (bpfkit_multi_build(rs->progs, rs->n, e, NULL, &m, &err) != 0) {
			CHECK_MSG(0, "%s: build: %s", what, err.message);
			break;
		}
		if (bpfkit_multi_state_new(m, NULL, &st, &err) != 0)
			abort();
		if (e == 0 && stats)
			bpfkit_multi_stats(m, stats);
		size_t bad = 0;
		for (size_t k = 0; k < ps->n; k++) {
			const uint8_t *d = ps->data[k];
			uint32_t c = ps->caplen[k], w = ps->wirelen[k];
			for (size_t i = 0; i < rs->n; i++)
				own[i] = bpfkit_interp(rs->progs[i].insns, rs->progs[i].len, d, c, w,
						       NULL) != 0;
			const uint32_t *ids;
			size_t nm = bpfkit_multi_match(m, st, d, c, w, &ids);
			size_t j = 0;
			for (size_t i = 0; i < rs->n; i++) {
				bool got = j < nm && ids[j] == i;
				j += got;
				if (got != own[i] && bad++ < 5)
					CHECK_MSG(0, "%s/%s: packet %zu rule %zu '%s': matcher %d, "
						  "rule alone %d", what, engine_names[e], k + 1, i,
						  rs->text[i], got, own[i]);
				if (e == 0 && got) {
					total++;
				}
				if (e == 0) {
					/* The oracle: libpcap's unoptimized program. */
					bool l0 = bpf_filter(rs->pc0[i].bf_insns, d, w, c) != 0;
					if (got != l0 && pcap_bad++ < 5)
						CHECK_MSG(0, "%s: packet %zu rule '%s': bpfkit %d, "
							  "libpcap %d", what, k + 1, rs->text[i],
							  got, l0);
				}
			}
			CHECK_MSG(j == nm, "%s: ids not increasing or out of range", what);
			size_t nb = bpfkit_multi_match_bitmap(m, st, d, c, w, bits);
			CHECK_EQ(nb, nm);
			for (size_t i = 0; i < rs->n && bad < 5; i++)
				if (((bits[i / 64] >> (i % 64)) & 1) != own[i]) {
					CHECK_MSG(0, "%s: bitmap differs at rule %zu", what, i);
					bad++;
				}
		}
		bpfkit_multi_state_free(st);
		bpfkit_multi_free(m);
	}
	free(own);
	free(bits);
	return total;
}

TEST(multi_random_rules_match_libpcap_on_generated_packets)
{
	size_t residual = 0, rules = 0, matches = 0;
	for (uint64_t seed = 1; seed <= 4; seed++) {
		struct pktset ps = {0};
		struct pools pl;
		gen_packets(&ps, seed, 1500);
		harvest(&ps, &pl);
		rng_state = seed * 7919;
		struct ruleset rs;
		ruleset_make(&rs, 150, 1, &pl);
		CHECK(rs.n >= 100);
		struct bpfkit_multi_stats st;
		char what[64];
		snprintf(what, sizeof what, "generated seed %llu", (unsigned long long)seed);
		matches += differential(&rs, &ps, what, &st);
		residual += st.residual_rules;
		rules += st.rules;
		ruleset_free(&rs);
		pktset_free(&ps);
	}
	CHECK(matches > 1000); /* the rules do match packets */
	if (getenv("BPFKIT_TEST_VERBOSE"))
		fprintf(stderr, "multi: %zu of %zu random rules residual, %zu matches\n",
			residual, rules, matches);
}

/*
 * The decision-DAG path against running every candidate: random rule sets
 * (lengths, byte comparisons, not, or) on packets cut at every length.
 */
TEST(multi_decided_equals_run_all_at_every_caplen)
{
	size_t decided = 0, programs = 0, checked = 0;
	for (uint64_t seed = 11; seed <= 13; seed++) {
		struct pktset ps = {0};
		struct pools pl;
		gen_packets(&ps, seed, 400);
		harvest(&ps, &pl);
		rng_state = seed * 104729;
		struct ruleset rs;
		ruleset_make(&rs, 120, 1, &pl);
		struct bpfkit_multi *m[2];
		struct bpfkit_multi_state *st[2];
		struct bpfkit_error err;
		for (int v = 0; v < 2; v++) {
			unsigned flags = BPFKIT_MULTI_FAST | (v ? BPFKIT_MULTI_RUN_ALL : 0);
			if (bpfkit_multi_build(rs.progs, rs.n, flags, NULL, &m[v], &err) != 0 ||
			    bpfkit_multi_state_new(m[v], NULL, &st[v], &err) != 0)
				abort();
		}
		struct bpfkit_multi_stats s0, s1;
		bpfkit_multi_stats(m[0], &s0);
		bpfkit_multi_stats(m[1], &s1);
		CHECK_EQ(s1.decided, 0);
		CHECK(s0.hoisted > 0); /* the class path is the one tested */
		decided += s0.decided;
		programs += s0.programs;
		size_t bad = 0;
		for (size_t k = 0; k < 60 && k < ps.n; k++) {
			const uint8_t *d = ps.data[k];
			uint32_t w = ps.wirelen[k];
			for (uint32_t c = 0; c <= ps.caplen[k]; c++) {
				const uint32_t *a, *b;
				size_t na = bpfkit_multi_match(m[0], st[0], d, c, w, &a);
				size_t nb = bpfkit_multi_match(m[1], st[1], d, c, w, &b);
				bool same = na == nb && memcmp(a, b, na * sizeof *a) == 0;
				size_t j = 0;
				for (size_t i = 0; i < rs.n && same; i++) {
					bool own = bpfkit_interp(rs.progs[i].insns, rs.progs[i].len,
								 d, c, w, NULL) != 0;
					bool got = j < na && a[j] == i;
					j += got;
					same = got == own;
				}
				if (!same && bad++ < 5)
					CHECK_MSG(0, "seed %llu packet %zu caplen %u: decided %zu "
						  "rules, run-all %zu", (unsigned long long)seed,
						  k, c, na, nb);
				checked++;
			}
		}
		for (int v = 0; v < 2; v++) {
			bpfkit_multi_state_free(st[v]);
			bpfkit_multi_free(m[v]);
		}
		ruleset_free(&rs);
		pktset_free(&ps);
	}
	CHECK(checked > 5000);
	CHECK(decided * 2 > programs); /* most random rules are decided */
}

/*
 * Large rule sets, where matches no longer go straight to a bitmap (more
 * than 4,096 rules) but are sorted: random rules spread among copies of one
 * that never matches, at two sizes, so that packets match few rules (the
 * insertion and radix sorts) and many (the sort through the bitmap).
 */
TEST(multi_large_rule_sets_sorted)
{
	struct pktset ps = {0};
	struct pools pl;
	gen_packets(&ps, 21, 300);
	harvest(&ps, &pl);
	rng_state = 21 * 7919;
	struct ruleset rs;
	ruleset_make(&rs, 150, 1, &pl);
	struct bpfkit_prog none;
	struct bpfkit_error err;
	if (bpfkit_compile("ether proto 0x1234", NULL, &none, &err) != 0)
		abort();
	/* (random rules used, spread): 4,500, 20,000 and 24,000 rules. */
	static const size_t cfg[][2] = {{150, 30}, {10, 2000}, {60, 400}};
	size_t sorts[3] = {0}; /* insertion, radix, bitmap */
	for (size_t z = 0; z < 3; z++) {
		size_t nr = cfg[z][0] < rs.n ? cfg[z][0] : rs.n, spread = cfg[z][1];
		size_t n = nr * spread, nw = (n + 63) / 64;
		struct bpfkit_prog *progs = calloc(n, sizeof *progs);
		uint8_t *own = calloc(rs.n, 1);
		if (!progs || !own)
			abort();
		for (size_t i = 0; i < n; i++)
			progs[i] = i % spread == 0 ? rs.progs[i / spread] : none;
		struct bpfkit_multi *m;
		struct bpfkit_multi_state *st;
		if (bpfkit_multi_build(progs, n, BPFKIT_MULTI_FAST, NULL, &m, &err) != 0 ||
		    bpfkit_multi_state_new(m, NULL, &st, &err) != 0)
			abort();
		size_t bad = 0;
		for (size_t k = 0; k < ps.n; k++) {
			const uint8_t *d = ps.data[k];
			uint32_t c = ps.caplen[k], w = ps.wirelen[k];
			size_t want = 0;
			for (size_t i = 0; i < nr; i++) {
				own[i] = bpfkit_interp(rs.progs[i].insns, rs.progs[i].len, d, c, w,
						       NULL) != 0;
				want += own[i];
			}
			const uint32_t *ids;
			size_t nm = bpfkit_multi_match(m, st, d, c, w, &ids), j = 0;
			bool same = nm == want;
			for (size_t i = 0; i < nr && same; i++) {
				bool got = j < nm && ids[j] == i * spread;
				j += got;
				same = got == own[i];
			}
			if (!same && bad++ < 5)
				CHECK_MSG(0, "%zu rules: packet %zu: %zu matches, want %zu", n, k,
					  nm, want);
			if (nm > 1)
				sorts[nm <= 12 ? 0 : nw <= 16 * nm + 64 ? 2 : 1]++;
		}
		bpfkit_multi_state_free(st);
		bpfkit_multi_free(m);
		free(progs);
		free(own);
	}
	/* Every sort ran. */
	CHECK_MSG(sorts[0] > 10 && sorts[1] > 0 && sorts[2] > 10, "sorts %zu %zu %zu", sorts[0],
		  sorts[1], sorts[2]);
	bpfkit_prog_free(NULL, &none);
	ruleset_free(&rs);
	pktset_free(&ps);
}

static bool is_capture(const char *name)
{
	size_t n = strlen(name);
	return name[0] != '.' && ((n > 5 && strcmp(name + n - 5, ".pcap") == 0) ||
				  (n > 7 && strcmp(name + n - 7, ".pcapng") == 0));
}

TEST(multi_random_rules_match_libpcap_on_shared_pcaps)
{
	const char *dir = harness_shared_path("pcaps");
	struct dirent **ents;
	int k = scandir(dir, &ents, NULL, alphasort);
	if (k < 0)
		SKIP("%s absent: no captures", dir);
	size_t files = 0, packets = 0;
	for (int f = 0; f < k; f++) {
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, ents[f]->d_name);
		bool want = is_capture(ents[f]->d_name) && packets < 12000;
		free(ents[f]);
		if (!want)
			continue;
		char errbuf[PCAP_ERRBUF_SIZE];
		pcap_t *p = pcap_open_offline(path, errbuf);
		if (!p)
			continue;
		struct pktset ps = {0};
		ps.dlt = pcap_datalink(p);
		struct pcap_pkthdr *h;
		const u_char *d;
		while (ps.dlt == 1 && ps.n < 400 && pcap_next_ex(p, &h, &d) == 1)
			pktset_add(&ps, d, h->caplen, h->len);
		pcap_close(p);
		if (ps.n < 20) {
			pktset_free(&ps);
			continue;
		}
		struct pools pl;
		harvest(&ps, &pl);
		rng_state = files + 17;
		struct ruleset rs;
		ruleset_make(&rs, 60, ps.dlt, &pl);
		differential(&rs, &ps, path, NULL);
		files++;
		packets += ps.n;
		ruleset_free(&rs);
		pktset_free(&ps);
	}
	free(ents);
	if (files == 0)
		SKIP("no EN10MB capture in %s", dir);
	CHECK(packets > 1000);
}

/* Hand-written rules whose cuts are known; checks the index is used. */
TEST(multi_index_and_residual)
{
	static const char *const rules[] = {
		"host 10.0.0.1", "tcp port 80", "net 192.168.0.0/16", "not tcp", "len > 100",
		"ip6 host 2001:db8::1", "tcp port 80", "udp dst port 53 and src host 10.1.2.3",
	};
	size_t n = sizeof rules / sizeof rules[0];
	struct bpfkit_prog progs[8];
	struct bpfkit_error err;
	for (size_t i = 0; i < n; i++)
		if (bpfkit_compile(rules[i], NULL, &progs[i], &err) != 0)
			abort();
	struct bpfkit_multi *m;
	CHECK_EQ(bpfkit_multi_build(progs, n, BPFKIT_MULTI_FAST, NULL, &m, &err), 0);
	struct bpfkit_multi_stats st;
	bpfkit_multi_stats(m, &st);
	CHECK_EQ(st.rules, n);
	CHECK_EQ(st.programs, n - 1);        /* "tcp port 80" twice */
	CHECK_EQ(st.residual_programs, 2);   /* not tcp, len > 100 */
	CHECK(st.fields >= 4);
	CHECK(st.bytes > 0);
	/* A TCP packet to 10.0.0.1 port 80, 200 bytes on the wire. */
	uint8_t pkt[54] = {0};
	pkt[12] = 8;
	pkt[14] = 0x45;
	pkt[23] = 6;
	pkt[30] = 10, pkt[33] = 1;
	pkt[36] = 0, pkt[37] = 80;
	struct bpfkit_multi_state *s;
	CHECK_EQ(bpfkit_multi_state_new(m, NULL, &s, &err), 0);
	const uint32_t *ids;
	size_t k = bpfkit_multi_match(m, s, pkt, sizeof pkt, 200, &ids);
	CHECK_EQ(k, 4);
	if (k == 4) {
		CHECK_EQ(ids[0], 0);
		CHECK_EQ(ids[1], 1);
		CHECK_EQ(ids[2], 4);
		CHECK_EQ(ids[3], 6);
	}
	/* Cut short before the ports: only the host rule (and len) can hold. */
	k = bpfkit_multi_match(m, s, pkt, 34, 200, &ids);
	CHECK_EQ(k, 2);
	bpfkit_multi_state_free(s);
	bpfkit_multi_free(m);
	/* An invalid program is refused, naming the rule. */
	struct bpfkit_insn bad[1] = {{0x06 | 0x08, 0, 0, 0}};
	struct bpfkit_prog two[2] = {progs[0], {bad, 1}};
	CHECK_EQ(bpfkit_multi_build(two, 2, 0, NULL, &m, &err), -1);
	CHECK_CONTAINS(err.message, "rule 1");
	for (size_t i = 0; i < n; i++)
		bpfkit_prog_free(NULL, &progs[i]);
}

/* Failing allocations: a clean -1 and no leak (ASan run) at every point. */
static int fail_at, alloc_count;
static void *failing(void *ud, void *p, size_t n)
{
	(void)ud;
	if (n == 0) {
		free(p);
		return NULL;
	}
	if (++alloc_count == fail_at)
		return NULL;
	return realloc(p, n);
}

TEST(multi_alloc_failures)
{
	static const char *const rules[] = {"host 10.0.0.1", "tcp port 80 or udp port 53",
					    "not ip"};
	struct bpfkit_prog progs[3];
	struct bpfkit_error err;
	for (size_t i = 0; i < 3; i++)
		if (bpfkit_compile(rules[i], NULL, &progs[i], &err) != 0)
			abort();
	struct bpfkit_alloc a = {failing, NULL};
	int ok = 0;
	for (fail_at = 1; fail_at < 400 && !ok; fail_at++) {
		alloc_count = 0;
		struct bpfkit_multi *m = NULL;
		if (bpfkit_multi_build(progs, 3, BPFKIT_MULTI_FAST, &a, &m, &err) == 0) {
			ok = alloc_count < fail_at;
			bpfkit_multi_free(m);
		} else {
			CHECK(m == NULL);
		}
	}
	CHECK(ok);
	for (size_t i = 0; i < 3; i++)
		bpfkit_prog_free(NULL, &progs[i]);
}

/* ------------------------------------------------------------------ */
/* The command                                                         */

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0)
		abort();
}

TEST(multi_cli)
{
	if (access(harness_bin(), X_OK) != 0)
		SKIP("%s not built (make bpfkit)", harness_bin());
	char dir[] = "/tmp/bpfkit-multi-XXXXXX";
	if (!mkdtemp(dir))
		abort();
	char cap[256], rules[256], split[256], cmd[600];
	snprintf(cap, sizeof cap, "%s/in.pcap", dir);
	snprintf(rules, sizeof rules, "%s/rules", dir);
	snprintf(split, sizeof split, "%s/split", dir);
	char *out = NULL, *err = NULL;
	CHECK_EQ(harness_bpfkit(&out, &err, "gen -n 500 -S 3 -w %s", cap), 0);
	free(out), free(err);
	put(rules, "# comment\n\nweb tcp port 80 or tcp port 443\ndns udp port 53\n"
		   "   all  ip or not ip\nnone ether proto 0x1234\n");
	/* --counts: every rule in file order; equals `bpfkit filter -c`. */
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s -r %s --counts", rules, cap), 0);
	CHECK_CONTAINS(err, "4 rules x 500 packets: ");
	CHECK_CONTAINS(err, " ns/packet");
	const char *names[] = {"web", "dns", "all", "none"};
	const char *exprs[] = {"tcp port 80 or tcp port 443", "udp port 53", "ip or not ip",
			       "ether proto 0x1234"};
	char want[512] = "";
	for (int i = 0; i < 4; i++) {
		char *o2 = NULL, *e2 = NULL;
		CHECK_EQ(harness_bpfkit(&o2, &e2, "filter -c -r %s '%s'", cap, exprs[i]), 0);
		size_t l = strlen(want);
		snprintf(want + l, sizeof want - l, "%s\t%s", names[i], o2 ? o2 : "");
		free(o2), free(e2);
	}
	CHECK_STR(out, want);
	CHECK_CONTAINS(out, "all\t500\n");
	CHECK_CONTAINS(out, "none\t0\n");
	free(out), free(err);
	/* --matches: packet number and IDs. */
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s -r %s --matches -e fast", rules, cap), 0);
	CHECK_CONTAINS(out, "1\tall");
	free(out), free(err);
	/* --split: one capture per rule, equal to bpfkit filter -w. */
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s -r %s --split %s", rules, cap, split), 0);
	free(out), free(err);
	char a[300], b[300];
	snprintf(a, sizeof a, "%s/dns.pcap", split);
	snprintf(b, sizeof b, "%s/dns-filter.pcap", dir);
	CHECK_EQ(harness_bpfkit(&out, &err, "filter -r %s -w %s 'udp port 53'", cap, b), 0);
	free(out), free(err);
	size_t la, lb;
	char *x = harness_read_file(a, &la), *y = harness_read_file(b, &lb);
	CHECK(x && y && la == lb && memcmp(x, y, la) == 0);
	free(x), free(y);
	snprintf(a, sizeof a, "%s/none.pcap", split);
	CHECK(access(a, R_OK) == 0);
	/* Errors: a rule that does not compile names RULES:LINE:COL. */
	put(rules, "ok tcp\nbad tcp port 99999x\n");
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s -r %s", rules, cap), 1);
	CHECK_CONTAINS(err, ":2:");
	CHECK_CONTAINS(err, "error:");
	CHECK(!strstr(err, "ns/packet"));
	free(out), free(err);
	put(rules, "a tcp\nb udp\na icmp\n");
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s -r %s", rules, cap), 1);
	CHECK_CONTAINS(err, ":3:1:");
	CHECK_CONTAINS(err, "duplicate");
	free(out), free(err);
	put(rules, "x/y tcp\n");
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s -r %s --split %s/s2", rules, cap, dir), 1);
	CHECK_CONTAINS(err, ":1:1:");
	free(out), free(err);
	put(rules, "onlyid\n");
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s -r %s", rules, cap), 1);
	free(out), free(err);
	/* A truncated capture: exit 1 and no split output at all. */
	put(rules, "t tcp\nu udp\n");
	snprintf(a, sizeof a, "%s/cut.pcap", dir);
	snprintf(cmd, sizeof cmd, "head -c 20000 %s > %s", cap, a);
	CHECK_EQ(system(cmd), 0);
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s -r %s --split %s/s3", rules, a, dir), 1);
	free(out), free(err);
	snprintf(b, sizeof b, "%s/s3", dir);
	DIR *d = opendir(b);
	int entries = 0;
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL)
			entries += e->d_name[0] != '.' || strlen(e->d_name) > 2;
		closedir(d);
	}
	CHECK_EQ(entries, 0);
	/* Usage. */
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -r %s", cap), 2);
	free(out), free(err);
	CHECK_EQ(harness_bpfkit(&out, &err, "multi -f %s --counts --matches", rules), 2);
	free(out), free(err);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	CHECK_EQ(system(cmd), 0);
}
