/*
 * test_pcapio.c - the capture reader and writer (src/pcapio.c).
 *
 * libpcap is the oracle: every capture in ../shared/pcaps is read by both
 * (libpcap with nanosecond timestamps) and compared packet by packet, then
 * written back and re-read (read -> write -> read must be identical), and
 * written as pcapng for libpcap to read again.  Hand-built files cover what
 * the shared set lacks (big-endian and ns pcap, several pcapng sections in
 * both byte orders, if_tsresol forms, SPB, the obsolete PB, unknown blocks)
 * and every structural error, each checked for the byte offset it names.
 */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"
#include "bpfkit.h"

#include <dirent.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- building captures ---- */

struct bb {
	uint8_t *d;
	size_t len, cap;
	bool big;
};

static void bb_put(struct bb *b, const void *p, size_t n)
{
	if (n > b->cap - b->len) {
		size_t ncap = b->cap ? b->cap : 256;
		while (ncap - b->len < n)
			ncap *= 2;
		b->d = realloc(b->d, ncap);
		if (!b->d)
			abort();
		b->cap = ncap;
	}
	if (n)
		memcpy(b->d + b->len, p, n);
	b->len += n;
}

static void bb_u8(struct bb *b, uint8_t v)
{
	bb_put(b, &v, 1);
}

static void bb_u16(struct bb *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	if (b->big) {
		x[0] = (uint8_t)(v >> 8);
		x[1] = (uint8_t)v;
	}
	bb_put(b, x, 2);
}

static void bb_u32(struct bb *b, uint32_t v)
{
	if (b->big) {
		bb_u16(b, (uint16_t)(v >> 16));
		bb_u16(b, (uint16_t)v);
	} else {
		bb_u16(b, (uint16_t)v);
		bb_u16(b, (uint16_t)(v >> 16));
	}
}

static void bb_pad4(struct bb *b)
{
	while (b->len % 4)
		bb_u8(b, 0);
}

static void set32(struct bb *b, size_t at, uint32_t v)
{
	size_t save = b->len;
	b->len = at;
	bb_u32(b, v);
	b->len = save;
}

static const uint8_t payload[200] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x06,
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
};

static void pcap_hdr(struct bb *b, uint32_t magic, uint16_t major, uint16_t minor,
		     uint32_t snaplen, uint32_t linkfield)
{
	bb_u32(b, magic);
	bb_u16(b, major);
	bb_u16(b, minor);
	bb_u32(b, 0);
	bb_u32(b, 0);
	bb_u32(b, snaplen);
	bb_u32(b, linkfield);
}

static void pcap_rec(struct bb *b, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t wirelen)
{
	bb_u32(b, sec);
	bb_u32(b, frac);
	bb_u32(b, caplen);
	bb_u32(b, wirelen);
	for (uint32_t i = 0; i < caplen; i++)
		bb_u8(b, payload[i % sizeof payload]);
}

/* Starts a block; returns its start for block_end. */
static size_t block_start(struct bb *b, uint32_t type)
{
	size_t at = b->len;
	bb_u32(b, type);
	bb_u32(b, 0);
	return at;
}

static void block_end(struct bb *b, size_t at)
{
	bb_pad4(b);
	uint32_t total = (uint32_t)(b->len - at + 4);
	set32(b, at + 4, total);
	bb_u32(b, total);
}

static void shb(struct bb *b, bool big)
{
	b->big = big;
	size_t at = block_start(b, 0x0a0d0d0a);
	bb_u32(b, 0x1a2b3c4d);
	bb_u16(b, 1);
	bb_u16(b, 0);
	bb_u32(b, 0xffffffff);
	bb_u32(b, 0xffffffff);
	block_end(b, at);
}

/* An IDB; tsresol < 0 means no option, fcslen < 0 none, tsoffset 0 none. */
static void idb(struct bb *b, uint16_t linktype, uint32_t snaplen, int tsresol, int fcslen,
		int64_t tsoffset)
{
	size_t at = block_start(b, 1);
	bb_u16(b, linktype);
	bb_u16(b, 0);
	bb_u32(b, snaplen);
	bool opts = false;
	if (tsresol >= 0) {
		bb_u16(b, 9);
		bb_u16(b, 1);
		bb_u8(b, (uint8_t)tsresol);
		bb_pad4(b);
		opts = true;
	}
	if (fcslen >= 0) {
		bb_u16(b, 13);
		bb_u16(b, 1);
		bb_u8(b, (uint8_t)fcslen);
		bb_pad4(b);
		opts = true;
	}
	if (tsoffset) {
		bb_u16(b, 14);
		bb_u16(b, 8);
		uint64_t v = (uint64_t)tsoffset;
		if (b->big) {
			bb_u32(b, (uint32_t)(v >> 32));
			bb_u32(b, (uint32_t)v);
		} else {
			bb_u32(b, (uint32_t)v);
			bb_u32(b, (uint32_t)(v >> 32));
		}
		opts = true;
	}
	if (opts)
		bb_u32(b, 0);
	block_end(b, at);
}

static void epb(struct bb *b, uint32_t type, uint32_t ifid, uint64_t t, uint32_t caplen,
		uint32_t wirelen)
{
	size_t at = block_start(b, type);
	if (type == 2) {
		bb_u16(b, (uint16_t)ifid);
		bb_u16(b, 0);
	} else {
		bb_u32(b, ifid);
	}
	bb_u32(b, (uint32_t)(t >> 32));
	bb_u32(b, (uint32_t)t);
	bb_u32(b, caplen);
	bb_u32(b, wirelen);
	for (uint32_t i = 0; i < caplen; i++)
		bb_u8(b, payload[i % sizeof payload]);
	block_end(b, at);
}

static void spb(struct bb *b, uint32_t wirelen, uint32_t stored)
{
	size_t at = block_start(b, 3);
	bb_u32(b, wirelen);
	for (uint32_t i = 0; i < stored; i++)
		bb_u8(b, payload[i % sizeof payload]);
	block_end(b, at);
}

static void other_block(struct bb *b, uint32_t type, uint32_t body)
{
	size_t at = block_start(b, type);
	for (uint32_t i = 0; i < body; i++)
		bb_u8(b, (uint8_t)i);
	block_end(b, at);
}

/* A writer sink appending to a struct bb. */
static int pcapio_test_sink(void *ctx, const void *data, size_t len)
{
	bb_put(ctx, data, len);
	return 0;
}

/* ---- reading ---- */

struct rd {
	struct bpfkit_packet p[16];
	struct bpfkit_capture_iface ifc[16];
	size_t n;
	int end;
	struct bpfkit_error err;
};

/* Reads up to 16 packets of data; the views point into data (in-place reading). */
static void read_mem(const struct bb *b, unsigned flags, struct rd *r)
{
	struct bpfkit_capture *c;
	memset(r, 0, sizeof *r);
	if (bpfkit_capture_open_mem(b->d, b->len, flags, NULL, &c, &r->err) < 0) {
		r->end = -2;
		return;
	}
	struct bpfkit_packet p;
	while ((r->end = bpfkit_capture_next(c, &p, &r->err)) == 1) {
		if (r->n < 16) {
			r->ifc[r->n] = *p.iface;
			r->p[r->n] = p;
			r->p[r->n].iface = &r->ifc[r->n];
		}
		r->n++;
	}
	bpfkit_capture_close(c);
}

/* An error at open (-2) or while reading (-1) at offset off whose message contains msg. */
#define CHECK_ERR(b, flags, off, msg)                                                 \
	do {                                                                          \
		struct rd r_;                                                         \
		read_mem((b), (flags), &r_);                                          \
		CHECK_MSG(r_.end < 0, "expected an error \"%s\", got end %d", (msg),  \
			  r_.end);                                                    \
		CHECK_EQ(r_.err.offset, (off));                                       \
		CHECK_CONTAINS(r_.err.message, (msg));                                \
	} while (0)

static char *temp_file(const struct bb *b)
{
	char *path = strdup("/tmp/bpfkit-pcapio-XXXXXX");
	int fd = mkstemp(path);
	if (fd < 0 || write(fd, b->d, b->len) != (ssize_t)b->len)
		abort();
	close(fd);
	return path;
}

/* libpcap reads the file; each packet is compared with ours (in order). */
static void check_libpcap(const struct bb *b, const struct rd *r, const char *what)
{
	char *path = temp_file(b);
	char eb[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, eb);
	CHECK_MSG(p != NULL, "%s: libpcap: %s", what, eb);
	if (p) {
		struct pcap_pkthdr *h;
		const u_char *d;
		size_t n = 0;
		while (pcap_next_ex(p, &h, &d) == 1 && n < r->n) {
			const struct bpfkit_packet *q = &r->p[n];
			int64_t ns = bpfkit_packet_ns(q);
			CHECK_MSG(h->caplen == q->caplen && h->len == q->wirelen &&
				  memcmp(d, q->data, h->caplen) == 0,
				  "%s: packet %zu differs from libpcap's", what, n);
			CHECK_MSG((int64_t)h->ts.tv_sec == ns / 1000000000 &&
				  (int64_t)h->ts.tv_usec == ns % 1000000000,
				  "%s: packet %zu time %lld.%09lld, libpcap %lld.%09lld", what, n,
				  (long long)(ns / 1000000000), (long long)(ns % 1000000000),
				  (long long)h->ts.tv_sec, (long long)h->ts.tv_usec);
			n++;
		}
		CHECK_MSG(n == r->n, "%s: libpcap read %zu packets, we %zu", what, n, r->n);
		pcap_close(p);
	}
	unlink(path);
	free(path);
}

/* ---- hand-built pcap ---- */

TEST(pcapio_pcap_variants)
{
	static const struct {
		bool big;
		uint32_t magic;
		uint64_t units;
	} v[] = {
		{false, 0xa1b2c3d4, 1000000}, {true, 0xa1b2c3d4, 1000000},
		{false, 0xa1b23c4d, 1000000000}, {true, 0xa1b23c4d, 1000000000},
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		struct bb b = {.big = v[i].big};
		pcap_hdr(&b, v[i].magic, 2, 4, 65535, 0x24000001); /* EN10MB, FCS 4 bytes */
		pcap_rec(&b, 1700000000, 123456, 60, 60);
		pcap_rec(&b, 1700000001, 999999, 100, 1514);
		pcap_rec(&b, 0x7ffffff0, 0, 0, 0);  /* libpcap 1.10 reads the field as signed */
		struct rd r;
		read_mem(&b, 0, &r);
		CHECK_EQ(r.end, 0);
		CHECK_EQ(r.n, 3);
		CHECK_EQ(r.p[0].ts_sec, 1700000000);
		CHECK_EQ(r.p[0].ts_frac, 123456);
		CHECK_EQ(r.p[0].ts_units, v[i].units);
		CHECK_EQ(r.p[1].caplen, 100);
		CHECK_EQ(r.p[1].wirelen, 1514);
		CHECK_EQ(r.p[1].offset, 24 + 16 + 60);
		CHECK_EQ(r.p[1].linktype, 1);
		CHECK_EQ(r.ifc[1].fcslen, 4);
		CHECK(memcmp(r.p[1].data, payload, 100) == 0);
		CHECK_EQ(r.p[2].ts_sec, 0x7ffffff0);
		struct bpfkit_capture *c;
		struct bpfkit_error err;
		CHECK_EQ(bpfkit_capture_open_mem(b.d, b.len, 0, NULL, &c, &err), 0);
		const struct bpfkit_capture_header *h = bpfkit_capture_header(c);
		CHECK_EQ(h->format, BPFKIT_CAPTURE_PCAP);
		CHECK_EQ(h->big_endian, v[i].big);
		CHECK_EQ(h->linktype_field, 0x24000001);
		CHECK_EQ(h->linktype, 1);
		CHECK_EQ(h->snaplen, 65535);
		bpfkit_capture_close(c);
		check_libpcap(&b, &r, "pcap variant");
		free(b.d);
	}
}

TEST(pcapio_pcap_errors)
{
	struct bb b = {0};
	pcap_hdr(&b, 0xa1b2c3d4, 2, 4, 100, 1);
	size_t hdr = b.len;
	pcap_rec(&b, 1, 2, 60, 60);
	size_t one = b.len;

	struct bb t = b;
	t.len = 10;
	CHECK_ERR(&t, 0, 0, "truncated pcap file header");
	t.len = 0;
	CHECK_ERR(&t, 0, 0, "empty input");
	t.len = one + 7;
	CHECK_ERR(&t, 0, (long long)one,
		  "truncated record header: 7 of 16 bytes, after 1 packets");
	t.len = one - 5;
	CHECK_ERR(&t, 0, (long long)hdr, "truncated record: caplen 60 but 55 bytes present, "
		  "after 0 packets");

	struct bb m = {0};
	bb_put(&m, b.d, b.len);
	set32(&m, 0, 0x12345678);
	CHECK_ERR(&m, 0, 0, "not a pcap or pcapng file");
	set32(&m, 0, 0xa1b2c3d4);
	m.d[4] = 2;
	m.d[6] = 5;
	CHECK_ERR(&m, 0, 4, "unknown pcap version 2.5");
	m.d[6] = 4;
	set32(&m, hdr + 8, 101);                   /* caplen above the snaplen 100 */
	CHECK_ERR(&m, BPFKIT_CAPTURE_STRICT_SNAPLEN, (long long)hdr + 8,
		  "record caplen 101 exceeds the snaplen 100");
	set32(&m, hdr + 8, 300000);                /* above libpcap's maximum too */
	CHECK_ERR(&m, 0, (long long)hdr + 8, "record caplen 300000 exceeds the snaplen 100");
	set32(&m, hdr + 8, 0xfffffff0);
	CHECK_ERR(&m, 0, (long long)hdr + 8, "impossible");
	free(m.d);
	free(b.d);

	/* A huge caplen with a snaplen of 0 (no limit): the record is truncated, and no
	 * buffer of that size is ever allocated (the stream test reads it too). */
	struct bb z = {0};
	pcap_hdr(&z, 0xa1b2c3d4, 2, 4, 0, 1);
	pcap_rec(&z, 1, 2, 10, 10);
	set32(&z, 24 + 8, 200u << 20);
	CHECK_ERR(&z, 0, 24, "truncated record: caplen 209715200 but 10 bytes present");
	free(z.d);
}

/* A record longer than the snaplen keeps snaplen bytes, as libpcap; STRICT refuses it. */
TEST(pcapio_pcap_truncate_to_snaplen)
{
	struct bb b = {0};
	pcap_hdr(&b, 0xa1b2c3d4, 2, 4, 100, 1);
	pcap_rec(&b, 1, 2, 150, 150);
	pcap_rec(&b, 3, 4, 150, 200);
	pcap_rec(&b, 5, 6, 40, 40);
	struct rd r;
	read_mem(&b, 0, &r);
	CHECK_EQ(r.end, 0);
	CHECK_EQ(r.n, 3);
	CHECK_EQ(r.p[0].caplen, 100);
	CHECK_EQ(r.p[1].caplen, 100);
	CHECK_EQ(r.p[1].wirelen, 200);
	CHECK_EQ(r.p[2].ts_sec, 5);
	check_libpcap(&b, &r, "truncate to snaplen");
	read_mem(&b, BPFKIT_CAPTURE_STRICT_SNAPLEN, &r);
	CHECK_EQ(r.end, -1);
	CHECK_EQ(r.err.offset, 24 + 8);
	free(b.d);
}

/* ---- hand-built pcapng ---- */

TEST(pcapio_pcapng_sections)
{
	struct bb b = {0};
	shb(&b, false);
	idb(&b, 1, 0, -1, -1, 0);                 /* EN10MB, us */
	idb(&b, 101, 128, 9, 4, 0);               /* RAW, ns, FCS 4 */
	other_block(&b, 4, 12);                   /* NRB */
	epb(&b, 6, 1, 1700000000123456789ull, 100, 100);
	other_block(&b, 5, 20);                   /* ISB */
	epb(&b, 6, 0, 1700000000123456ull, 60, 64);
	other_block(&b, 0x40000bad, 8);           /* custom */
	other_block(&b, 0x0000000a, 16);          /* DSB */
	other_block(&b, 0x12345678, 4);           /* unknown */
	size_t sec2 = b.len;
	shb(&b, true);                            /* second section, big-endian */
	idb(&b, 113, 0, 0x80 | 20, -1, 0);        /* LINUX_SLL, 2^-20 s */
	idb(&b, 1, 50, 3, -1, 1000);              /* ms, tsoffset +1000 s */
	epb(&b, 6, 0, ((uint64_t)1700000000 << 20) | 524288, 44, 44);
	epb(&b, 2, 1, 1700000000123ull, 50, 80);  /* obsolete Packet Block */
	spb(&b, 70, 70);                          /* SPB: first interface, no snaplen */
	struct rd r;
	read_mem(&b, 0, &r);
	CHECK_EQ(r.end, 0);
	CHECK_EQ(r.n, 5);
	CHECK_EQ(r.p[0].linktype, 101);
	CHECK_EQ(r.p[0].ts_sec, 1700000000);
	CHECK_EQ(r.p[0].ts_frac, 123456789);
	CHECK_EQ(r.p[0].ts_units, 1000000000);
	CHECK_EQ(r.ifc[0].fcslen, 4);
	CHECK_EQ(r.ifc[0].snaplen, 128);
	CHECK_EQ(r.ifc[0].index, 1);
	CHECK_EQ(r.p[1].ts_frac, 123456);
	CHECK_EQ(r.p[1].wirelen, 64);
	CHECK_EQ(r.ifc[1].section, 0);
	CHECK_EQ(r.p[2].linktype, 113);
	CHECK_EQ(r.ifc[2].section, 1);
	CHECK_EQ(r.p[2].ts_sec, 1700000000);
	CHECK_EQ(r.p[2].ts_frac, 524288);
	CHECK_EQ(r.p[2].ts_units, 1 << 20);
	CHECK_EQ(bpfkit_packet_ns(&r.p[2]), 1700000000500000000ll);
	CHECK_EQ(r.p[2].offset, sec2 + 28 + 32 + 44);
	CHECK_EQ(r.p[3].ts_sec, 1700000000 + 1000);
	CHECK_EQ(r.p[3].ts_frac, 123);
	CHECK_EQ(r.p[3].ts_units, 1000);
	CHECK_EQ(r.p[3].wirelen, 80);
	CHECK_EQ(r.ifc[3].index, 1);
	CHECK(memcmp(r.p[3].data, payload, 50) == 0);
	CHECK_EQ(r.p[4].caplen, 70);
	CHECK_EQ(r.p[4].linktype, 113);
	CHECK_EQ(r.p[4].ts_sec, 0);

	/* The writer: one section, only the interfaces used, identical packets. */
	struct bb out = {0};
	struct bpfkit_capture_writer *w;
	struct bpfkit_error err;
	struct bpfkit_capture_header ng = {.format = BPFKIT_CAPTURE_PCAPNG};
	CHECK_EQ(bpfkit_capture_writer_open(&ng, pcapio_test_sink, &out, NULL, &w, &err), 0);
	for (size_t i = 1; i < 4; i++)
		CHECK_EQ(bpfkit_capture_write(w, &r.p[i], &err), 0);
	CHECK_EQ(bpfkit_capture_writer_close(w, &err), 0);
	struct rd back;
	read_mem(&out, 0, &back);
	CHECK_EQ(back.end, 0);
	CHECK_EQ(back.n, 3);
	for (size_t i = 0; i < 3 && i < back.n; i++) {
		const struct bpfkit_packet *a = &r.p[i + 1], *q = &back.p[i];
		CHECK_EQ(a->ts_sec, q->ts_sec);
		CHECK_EQ(a->ts_frac, q->ts_frac);
		CHECK_EQ(a->ts_units, q->ts_units);
		CHECK_EQ(a->caplen, q->caplen);
		CHECK_EQ(a->wirelen, q->wirelen);
		CHECK_EQ(a->linktype, q->linktype);
		CHECK_EQ(a->iface->tsoffset, q->iface->tsoffset);
		CHECK(memcmp(a->data, q->data, a->caplen) == 0);
	}
	CHECK_EQ(back.ifc[2].index, 2);           /* three interfaces written, in use order */
	/* SHB 28 + IDB us 20 + EPB 92 + IDB 2^-20 32 + EPB 76 + IDB ms tsoffset 44 + EPB 84 */
	CHECK_EQ(out.len, 28 + 20 + 92 + 32 + 76 + 44 + 84);
	free(out.d);
	free(b.d);
}

/* Forms of if_tsresol against libpcap's nanosecond view of the same file. */
TEST(pcapio_pcapng_tsresol)
{
	static const int res[] = {-1, 0, 3, 6, 9, 0x80 | 10, 0x80 | 30};
	for (size_t i = 0; i < sizeof res / sizeof res[0]; i++) {
		struct bb b = {0};
		shb(&b, i % 2 == 1);
		idb(&b, 1, 0, res[i], -1, 0);
		uint64_t units = res[i] < 0 ? 1000000 : (res[i] & 0x80) ?
			(uint64_t)1 << (res[i] & 0x7f) : 1;
		if (res[i] >= 0 && !(res[i] & 0x80))
			for (int e = 0; e < res[i]; e++)
				units *= 10;
		uint64_t t = 1700000000ull * units + units / 4;
		epb(&b, 6, 0, t, 60, 60);
		struct rd r;
		read_mem(&b, 0, &r);
		CHECK_EQ(r.end, 0);
		CHECK_EQ(r.n, 1);
		CHECK_EQ(r.p[0].ts_units, units);
		CHECK_EQ(r.p[0].ts_sec, 1700000000);
		CHECK_EQ(r.p[0].ts_frac, units / 4);
		check_libpcap(&b, &r, "tsresol");
		free(b.d);
	}
}

TEST(pcapio_pcapng_errors)
{
	struct bb b = {0};
	shb(&b, false);
	size_t idb_at = b.len;
	idb(&b, 1, 100, -1, -1, 0);
	size_t epb_at = b.len;
	epb(&b, 6, 0, 5, 60, 60);
	size_t end = b.len;
	struct bb t = b;

	t.len = end - 3;
	CHECK_ERR(&t, 0, (long long)epb_at, "truncated enhanced packet block: length 92 but 89");
	CHECK_ERR(&t, 0, (long long)epb_at, "after 0 packets");
	t.len = epb_at + 5;
	CHECK_ERR(&t, 0, (long long)epb_at, "truncated block header: 5 of 12 bytes");
	t.len = 20;
	CHECK_ERR(&t, 0, 0, "truncated section header block");

	struct bb m = {0};
	bb_put(&m, b.d, b.len);
#define RESET() memcpy(m.d, b.d, b.len)
	set32(&m, end - 4, 96);
	CHECK_ERR(&m, 0, (long long)end - 4,
		  "trailing block length 96 does not match the leading 92");
	RESET();
	set32(&m, epb_at + 4, 90);
	CHECK_ERR(&m, 0, (long long)epb_at + 4, "not a multiple of 4");
	set32(&m, epb_at + 4, 8);
	CHECK_ERR(&m, 0, (long long)epb_at + 4, "too small");
	set32(&m, epb_at + 4, 0xfffffff0);
	CHECK_ERR(&m, 0, (long long)epb_at + 4, "impossible");
	RESET();
	set32(&m, epb_at + 20, 61);
	CHECK_ERR(&m, 0, (long long)epb_at + 20, "overruns its block (room for 60)");
	RESET();
	set32(&m, epb_at + 8, 3);
	CHECK_ERR(&m, 0, (long long)epb_at + 8, "interface 3 is not defined");
	RESET();
	set32(&m, idb_at + 12, 50);                /* snaplen 50 < caplen 60 */
	CHECK_ERR(&m, 0, (long long)epb_at + 20, "exceeds the interface's snaplen 50");
	RESET();
	set32(&m, 8, 0x11223344);
	CHECK_ERR(&m, 0, 8, "bad byte-order magic");
	RESET();
	m.d[14] = 1;                               /* version 1.1 */
	CHECK_ERR(&m, 0, 12, "unknown pcapng version 1.1");
	free(m.d);
	free(b.d);

	/* An SPB before any interface; an IDB option overrunning its block; a too-fine
	 * if_tsresol. */
	struct bb s = {0};
	shb(&s, true);
	spb(&s, 10, 10);
	CHECK_ERR(&s, 0, 28, "simple packet block before any interface");
	free(s.d);
	struct bb o = {0};
	shb(&o, false);
	idb(&o, 1, 0, 9, -1, 0);
	set32(&o, 28 + 16, 9 | (40u << 16));      /* option 9, length 40 */
	CHECK_ERR(&o, 0, 28 + 18, "option 9 length 40 overruns its block");
	set32(&o, 28 + 16, 9 | (1u << 16));
	o.d[28 + 20] = 20;                         /* 10^-20 s */
	CHECK_ERR(&o, 0, 28 + 20, "if_tsresol 0x14");
	free(o.d);
}

/* ---- streams: pipes and small reads ---- */

struct drip {
	const uint8_t *d;
	size_t len, pos;
};

static long drip_read(void *ctx, void *buf, size_t size)
{
	struct drip *s = ctx;
	size_t n = s->len - s->pos;
	if (n > 3)
		n = 3;
	if (n > size)
		n = size;
	memcpy(buf, s->d + s->pos, n);
	s->pos += n;
	return (long)n;
}

/* Records of up to 300 KB (more than the first buffer), read through a pipe. */
TEST(pcapio_stream_pipe)
{
	struct bb b = {0};
	pcap_hdr(&b, 0xa1b2c3d4, 2, 4, 0, 1);
	uint32_t sizes[] = {60, 300000, 1514, 70000, 0, 9000, 262144, 64};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
		pcap_rec(&b, (uint32_t)i, 7, sizes[i], sizes[i] + 4);
	int fds[2];
	CHECK_EQ(pipe(fds), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(fds[0]);
		size_t off = 0;
		while (off < b.len) {
			size_t n = b.len - off < 4093 ? b.len - off : 4093;
			ssize_t k = write(fds[1], b.d + off, n);
			if (k <= 0)
				_exit(1);
			off += (size_t)k;
		}
		_exit(0);
	}
	close(fds[1]);
	struct bpfkit_capture *c;
	struct bpfkit_error err;
	CHECK_EQ(bpfkit_capture_open_fd(fds[0], 0, NULL, &c, &err), 0);
	struct bpfkit_packet p;
	size_t n = 0;
	while (c && bpfkit_capture_next(c, &p, &err) == 1) {
		CHECK_EQ(p.caplen, sizes[n]);
		CHECK_EQ(p.wirelen, sizes[n] + 4);
		CHECK_EQ(p.ts_sec, n);
		bool same = true;
		for (uint32_t i = 0; i < p.caplen; i++)
			same &= p.data[i] == payload[i % sizeof payload];
		CHECK(same);
		n++;
	}
	CHECK_EQ(n, sizeof sizes / sizeof sizes[0]);
	bpfkit_capture_close(c);
	close(fds[0]);
	waitpid(pid, NULL, 0);

	/* Three bytes at a time through the callback, truncated in the last record. */
	struct drip s = {b.d, b.len - 10, 0};
	CHECK_EQ(bpfkit_capture_open(drip_read, &s, 0, NULL, &c, &err), 0);
	n = 0;
	int r;
	while ((r = bpfkit_capture_next(c, &p, &err)) == 1)
		n++;
	CHECK_EQ(r, -1);
	CHECK_EQ(n, 7);
	CHECK_CONTAINS(err.message, "after 7 packets");
	CHECK_EQ(err.offset, (long long)(b.len - 16 - 64));
	CHECK_EQ(bpfkit_capture_next(c, &p, &err), -1);   /* the error repeats */
	bpfkit_capture_close(c);
	free(b.d);
}

/* ---- the writer ---- */

static int failing_sink(void *ctx, const void *data, size_t len)
{
	return -1;
}

TEST(pcapio_writer_pcap)
{
	struct bb b = {.big = true};
	pcap_hdr(&b, 0xa1b23c4d, 2, 4, 2000, 0x14000069);   /* IEEE802_11 (105), FCS 2 bytes */
	set32(&b, 8, (uint32_t)-3600);
	set32(&b, 12, 7);
	pcap_rec(&b, 10, 1999999999, 100, 100);            /* a fraction beyond one second */
	pcap_rec(&b, 11, 5, 200, 1500);
	struct bpfkit_capture *c;
	struct bpfkit_error err;
	CHECK_EQ(bpfkit_capture_open_mem(b.d, b.len, 0, NULL, &c, &err), 0);
	struct bb out = {0};
	struct bpfkit_capture_writer *w;
	CHECK_EQ(bpfkit_capture_writer_open(bpfkit_capture_header(c), pcapio_test_sink, &out, NULL,
					    &w, &err), 0);
	struct bpfkit_packet p;
	while (bpfkit_capture_next(c, &p, &err) == 1)
		CHECK_EQ(bpfkit_capture_write(w, &p, &err), 0);
	CHECK_EQ(bpfkit_capture_writer_close(w, &err), 0);
	struct bb junk = {0};
	CHECK_EQ(bpfkit_capture_writer_open(bpfkit_capture_header(c), pcapio_test_sink, &junk,
					    NULL, &w, &err), 0);
	p.linktype = 1;
	CHECK_EQ(bpfkit_capture_write(w, &p, &err), -1);
	CHECK_CONTAINS(err.message, "link type 1 but the pcap file has 105");
	p.linktype = 105;
	CHECK_EQ(bpfkit_capture_write(w, &p, &err), -1);     /* the failure sticks */
	CHECK_EQ(bpfkit_capture_writer_close(w, &err), -1);
	free(junk.d);
	bpfkit_capture_close(c);

	/* Same bytes as the input apart from the byte order: compare field by field. */
	struct rd a, q;
	read_mem(&b, 0, &a);
	read_mem(&out, 0, &q);
	CHECK_EQ(q.end, 0);
	CHECK_EQ(q.n, 2);
	for (size_t i = 0; i < 2; i++) {
		CHECK_EQ(a.p[i].ts_sec, q.p[i].ts_sec);
		CHECK_EQ(a.p[i].ts_frac, q.p[i].ts_frac);
		CHECK_EQ(a.p[i].caplen, q.p[i].caplen);
		CHECK_EQ(a.p[i].wirelen, q.p[i].wirelen);
		CHECK(memcmp(a.p[i].data, q.p[i].data, a.p[i].caplen) == 0);
	}
	CHECK_EQ(out.len, b.len);
	CHECK_EQ(bpfkit_capture_open_mem(out.d, out.len, 0, NULL, &c, &err), 0);
	const struct bpfkit_capture_header *h = bpfkit_capture_header(c);
	CHECK_EQ(h->linktype_field, 0x14000069);
	CHECK_EQ(h->snaplen, 2000);
	CHECK_EQ(h->thiszone, -3600);
	CHECK_EQ(h->sigfigs, 7);
	CHECK_EQ(h->ts_units, 1000000000);
	CHECK_EQ(h->fcslen, 2);

	/* A failing sink is an error at close (the header is buffered), not a crash. */
	CHECK_EQ(bpfkit_capture_writer_open(h, failing_sink, NULL, NULL, &w, &err), 0);
	CHECK_EQ(bpfkit_capture_writer_close(w, &err), -1);
	CHECK_CONTAINS(err.message, "write failed");
	bpfkit_capture_close(c);
	free(out.d);
	free(b.d);
}

/* Every allocation failing in turn: a clean error and no leak (ASan checks leaks). */
static int fail_at, alloc_count;
static void *failing_alloc(void *ud, void *ptr, size_t size)
{
	if (size == 0) {
		free(ptr);
		return NULL;
	}
	if (++alloc_count == fail_at)
		return NULL;
	return realloc(ptr, size);
}

TEST(pcapio_alloc_failure)
{
	struct bb b = {0};
	shb(&b, false);
	for (int i = 0; i < 6; i++)
		idb(&b, 1, 0, 9, -1, 0);
	epb(&b, 6, 5, 1, 60, 60);
	struct bpfkit_alloc al = {failing_alloc, NULL};
	bool completed = false;
	for (fail_at = 1; fail_at < 30 && !completed; fail_at++) {
		alloc_count = 0;
		struct drip s = {b.d, b.len, 0};
		struct bpfkit_capture *c;
		struct bpfkit_error err;
		int r = bpfkit_capture_open(drip_read, &s, 0, &al, &c, &err);
		if (r == 0) {
			struct bpfkit_packet p;
			while ((r = bpfkit_capture_next(c, &p, &err)) == 1) {
				struct bb out = {0};
				struct bpfkit_capture_header ng = {
					.format = BPFKIT_CAPTURE_PCAPNG};
				struct bpfkit_capture_writer *w;
				if (bpfkit_capture_writer_open(&ng, pcapio_test_sink, &out, &al,
							       &w, &err) == 0) {
					if (bpfkit_capture_write(w, &p, &err) == 0)
						completed = true;
					bpfkit_capture_writer_close(w, &err);
				}
				free(out.d);
			}
			bpfkit_capture_close(c);
		}
		if (r < 0)
			CHECK_CONTAINS(err.message, "out of memory");
	}
	CHECK(completed);
	free(b.d);
}

/* ---- every shared capture against libpcap, and read -> write -> read ---- */

static bool same_view(const struct bpfkit_packet *a, const struct bpfkit_packet *b)
{
	const struct bpfkit_capture_iface *x = a->iface, *y = b->iface;
	return a->caplen == b->caplen && a->wirelen == b->wirelen && a->ts_sec == b->ts_sec &&
	       a->ts_frac == b->ts_frac && a->ts_units == b->ts_units &&
	       a->linktype == b->linktype && memcmp(a->data, b->data, a->caplen) == 0 &&
	       x->linktype == y->linktype && x->snaplen == y->snaplen &&
	       x->ts_units == y->ts_units && x->fcslen == y->fcslen && x->tsoffset == y->tsoffset;
}

/* libpcap's timestamp as nanoseconds (it does not normalize a pcap fraction >= 1 s). */
static int64_t pcap_ns(const struct pcap_pkthdr *h)
{
	return (int64_t)h->ts.tv_sec * 1000000000 + (int64_t)h->ts.tv_usec;
}

/*
 * libpcap 1.10 reads pcap's seconds and fraction fields as signed 32-bit values
 * (and scales the fraction to ns in that type); bpfkit reads them unsigned, as
 * the format's specification says.  Compare modulo 2^32 for pcap.
 */
static bool same_time(const struct pcap_pkthdr *h, const struct bpfkit_packet *p,
		      enum bpfkit_capture_format fmt)
{
	if (fmt == BPFKIT_CAPTURE_PCAPNG)
		return pcap_ns(h) == bpfkit_packet_ns(p);
	int64_t scale = p->ts_units == 1000000 ? 1000 : 1;
	return (uint32_t)h->ts.tv_sec == (uint32_t)p->ts_sec &&
	       (uint32_t)h->ts.tv_usec == (uint32_t)((int64_t)(int32_t)p->ts_frac * scale);
}

struct shared_stats {
	size_t files, packets, libpcap_errors, converted;
};

/* Reads path with libpcap and with bpfkit in lockstep; writes our packets to out. */
static void check_one(const char *path, const char *name, bool broken, struct shared_stats *st)
{
	char eb[PCAP_ERRBUF_SIZE];
	pcap_t *lp = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, eb);
	int fd = open(path, O_RDONLY);
	struct bpfkit_capture *c = NULL;
	struct bpfkit_error err;
	int r = bpfkit_capture_open_fd(fd, 0, NULL, &c, &err);
	if (!lp) {
		st->libpcap_errors++;
		/* libpcap refuses the file: so must we, at open or at the first block. */
		struct bpfkit_packet p;
		if (r == 0)
			r = bpfkit_capture_next(c, &p, &err);
		CHECK_MSG(r < 0, "%s: libpcap refuses it (%s) but bpfkit reads it", name, eb);
		bpfkit_capture_close(c);
		close(fd);
		return;
	}
	CHECK_MSG(r == 0, "%s: libpcap opens it, bpfkit: byte %lld: %s", name, err.offset,
		  err.message);
	if (r < 0) {
		pcap_close(lp);
		close(fd);
		return;
	}
	const struct bpfkit_capture_header *hdr = bpfkit_capture_header(c);
	struct bb out = {0};
	struct bpfkit_capture_writer *w;
	CHECK_EQ(bpfkit_capture_writer_open(hdr, pcapio_test_sink, &out, NULL, &w, &err), 0);
	enum bpfkit_capture_format fmt = hdr->format;
	struct pcap_pkthdr *h;
	const u_char *d;
	struct bpfkit_packet p;
	size_t n = 0;
	int lr = 0, mismatches = 0;
	for (;;) {
		lr = pcap_next_ex(lp, &h, &d);
		r = bpfkit_capture_next(c, &p, &err);
		if (lr != 1 || r != 1)
			break;
		if ((h->caplen != p.caplen || h->len != p.wirelen || !same_time(h, &p, fmt) ||
		     memcmp(d, p.data, p.caplen) != 0) && mismatches++ < 3)
			CHECK_MSG(0, "%s: packet %zu differs from libpcap's: caplen %u/%u "
				  "len %u/%u time %lld.%llu/%lld.%lld", name, n, p.caplen,
				  h->caplen, p.wirelen, h->len, (long long)p.ts_sec,
				  (unsigned long long)p.ts_frac, (long long)h->ts.tv_sec,
				  (long long)h->ts.tv_usec);
		if (bpfkit_capture_write(w, &p, &err) < 0 && mismatches++ < 3)
			CHECK_MSG(0, "%s: packet %zu: write: %s", name, n, err.message);
		n++;
	}
	st->packets += n;
	if (lr == -1)
		st->libpcap_errors++;
	/* The same number of packets, and both end cleanly or both in an error. */
	CHECK_MSG(lr != 1 && r != 1, "%s: after %zu packets libpcap says %d, bpfkit %d (%s)",
		  name, n, lr, r, r < 0 ? err.message : "");
	CHECK_MSG((lr == -2) == (r == 0), "%s: after %zu packets libpcap %s, bpfkit %s", name, n,
		  lr == -2 ? "ends" : pcap_geterr(lp), r == 0 ? "ends" : err.message);
	CHECK_MSG(broken || r == 0, "%s: not marked broken but: byte %lld: %s", name, err.offset,
		  err.message);
	bpfkit_capture_close(c);
	pcap_close(lp);
	close(fd);
	CHECK_EQ(bpfkit_capture_writer_close(w, &err), 0);

	/* Read what we wrote beside a fresh reading of the original: identical. */
	size_t len;
	char *orig = harness_read_file(path, &len);
	struct bpfkit_capture *a = NULL, *b = NULL;
	CHECK(orig && bpfkit_capture_open_mem(orig, len, 0, NULL, &a, &err) == 0);
	CHECK_EQ(bpfkit_capture_open_mem(out.d, out.len, 0, NULL, &b, &err), 0);
	if (a && b) {
		struct bpfkit_packet pa, pb;
		size_t m = 0;
		int ra = 0, rb = 0;
		while (m < n && (ra = bpfkit_capture_next(a, &pa, &err)) == 1 &&
		       (rb = bpfkit_capture_next(b, &pb, &err)) == 1) {
			if (!same_view(&pa, &pb) && mismatches++ < 3)
				CHECK_MSG(0, "%s: packet %zu changed in the round trip", name, m);
			m++;
		}
		CHECK_MSG(m == n && bpfkit_capture_next(b, &pb, &err) == 0,
			  "%s: round trip has %zu of %zu packets", name, m, n);
		CHECK_EQ(bpfkit_capture_header(b)->format, fmt);
		if (fmt == BPFKIT_CAPTURE_PCAP) {
			const struct bpfkit_capture_header *x = bpfkit_capture_header(a);
			const struct bpfkit_capture_header *y = bpfkit_capture_header(b);
			CHECK(x->snaplen == y->snaplen && x->linktype_field == y->linktype_field &&
			      x->ts_units == y->ts_units && x->version_minor == y->version_minor);
		}
	}
	bpfkit_capture_close(a);
	bpfkit_capture_close(b);

	/* Small clean files: written as pcapng, libpcap reads the same packets. */
	if (r == 0 && len < (1 << 20) && orig) {
		struct bb ng = {0};
		struct bpfkit_capture_header nh = {.format = BPFKIT_CAPTURE_PCAPNG};
		CHECK_EQ(bpfkit_capture_open_mem(orig, len, 0, NULL, &a, &err), 0);
		CHECK_EQ(bpfkit_capture_writer_open(&nh, pcapio_test_sink, &ng, NULL, &w, &err),
			 0);
		while (a && bpfkit_capture_next(a, &p, &err) == 1)
			bpfkit_capture_write(w, &p, &err);
		/* libpcap refuses a pcapng file without an interface: declare one. */
		if (a && bpfkit_capture_iface(a, 0))
			CHECK_EQ(bpfkit_capture_writer_iface(w, bpfkit_capture_iface(a, 0), &err),
				 0);
		CHECK_EQ(bpfkit_capture_writer_close(w, &err), 0);
		bpfkit_capture_close(a);
		char *tmp = temp_file(&ng);
		lp = pcap_open_offline_with_tstamp_precision(tmp, PCAP_TSTAMP_PRECISION_NANO, eb);
		CHECK_MSG(lp != NULL, "%s as pcapng: libpcap: %s", name, eb);
		CHECK_EQ(bpfkit_capture_open_mem(orig, len, 0, NULL, &a, &err), 0);
		size_t k = 0;
		while (lp && a && bpfkit_capture_next(a, &p, &err) == 1) {
			if (pcap_next_ex(lp, &h, &d) != 1) {
				CHECK_MSG(0, "%s as pcapng: libpcap ends at packet %zu", name, k);
				break;
			}
			if ((h->caplen != p.caplen || h->len != p.wirelen ||
			     pcap_ns(h) != bpfkit_packet_ns(&p) ||
			     memcmp(d, p.data, p.caplen) != 0) &&
			    mismatches++ < 3)
				CHECK_MSG(0, "%s as pcapng: packet %zu differs", name, k);
			k++;
		}
		CHECK_EQ(k, n);
		st->converted++;
		bpfkit_capture_close(a);
		if (lp)
			pcap_close(lp);
		unlink(tmp);
		free(tmp);
		free(ng.d);
	}
	free(orig);
	free(out.d);
	st->files++;
}

TEST(pcapio_shared_captures)
{
	const char *dir = harness_shared_path("pcaps");
	char dirpath[4096];
	snprintf(dirpath, sizeof dirpath, "%s", dir);
	DIR *dp = opendir(dirpath);
	if (!dp)
		SKIP("no shared captures at %s", dirpath);
	char mpath[4200];
	snprintf(mpath, sizeof mpath, "%s/MANIFEST.tsv", dirpath);
	char *manifest = harness_read_file(mpath, NULL);
	struct shared_stats st = {0};
	struct dirent *e;
	while ((e = readdir(dp)) != NULL) {
		const char *nm = e->d_name;
		size_t nl = strlen(nm);
		if (nm[0] == '.' || (nl > 4 && (!strcmp(nm + nl - 4, ".tsv") ||
						!strcmp(nm + nl - 3, ".md"))))
			continue;
		/* broken=yes is column 9 of the file's manifest row. */
		bool broken = true;
		char key[600];
		snprintf(key, sizeof key, "\n%s\t", nm);
		const char *row = manifest ? strstr(manifest, key) : NULL;
		if (row) {
			int tabs = 0;
			const char *q = row + 1;
			while (*q && *q != '\n' && tabs < 8)
				tabs += *q++ == '\t';
			broken = strncmp(q, "yes", 3) == 0;
		}
		char path[4700];
		snprintf(path, sizeof path, "%s/%s", dirpath, nm);
		check_one(path, nm, broken, &st);
	}
	closedir(dp);
	free(manifest);
	CHECK_MSG(st.files > 500, "only %zu shared captures", st.files);
	CHECK(st.packets > 100000);
	CHECK(st.converted > 400);
	fprintf(stderr, "pcapio: %zu captures, %zu packets, %zu libpcap errors, %zu as pcapng\n",
		st.files, st.packets, st.libpcap_errors, st.converted);
}

/*
 * The same checks on files converted by Wireshark's editcap: pcap -> pcapng,
 * pcap -> nanosecond pcap, pcapng -> pcap, over a sample of clean shared
 * captures.  Skips when editcap (package tshark / wireshark-common) is absent.
 */
TEST(pcapio_editcap_variants)
{
	char *out = NULL;
	if (harness_run("command -v editcap", &out, NULL) != 0) {
		free(out);
		SKIP("editcap not installed (apt-get install tshark)");
	}
	free(out);
	const char *dir = harness_shared_path("pcaps");
	char dirpath[4096];
	snprintf(dirpath, sizeof dirpath, "%s", dir);
	char mpath[4200];
	snprintf(mpath, sizeof mpath, "%s/MANIFEST.tsv", dirpath);
	char *manifest = harness_read_file(mpath, NULL);
	if (!manifest)
		SKIP("no shared captures at %s", dirpath);
	struct shared_stats st = {0};
	static const char *const kinds[] = {"pcapng", "nsecpcap", "pcap"};
	size_t picked = 0;
	/* Rows: file format linktype dlt packets bytes resolution endian broken ... */
	for (char *line = strchr(manifest, '\n'); line && picked < 40; line = strchr(line, '\n')) {
		line++;
		char name[512], format[16], broken[8];
		long bytes;
		if (sscanf(line, "%511[^\t]\t%15[^\t]\t%*[^\t]\t%*[^\t]\t%*[^\t]\t%ld\t%*[^\t]\t%*[^\t]"
				 "\t%7[^\t]", name, format, &bytes, broken) != 4)
			continue;
		if (strcmp(broken, "no") != 0 || bytes > 200000 || strchr(name, '\''))
			continue;
		/* Every third clean file, so the sample spans the alphabet. */
		static unsigned every;
		if (every++ % 3)
			continue;
		picked++;
		for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
			bool ng = strcmp(format, "pcapng") == 0;
			if (ng != (strcmp(kinds[k], "pcap") == 0))
				continue; /* pcap files to pcapng/nsecpcap, pcapng files to pcap */
			char tmp[] = "/tmp/bpfkit-editcap-XXXXXX";
			int fd = mkstemp(tmp);
			if (fd < 0)
				continue;
			close(fd);
			char cmd[5200];
			snprintf(cmd, sizeof cmd, "editcap -F %s '%s/%s' %s", kinds[k], dirpath, name,
				 tmp);
			char *err = NULL;
			int rc = harness_run(cmd, NULL, &err);
			/* editcap cannot write some link types as pcap: not ours to judge. */
			if (rc == 0) {
				char label[700];
				snprintf(label, sizeof label, "%s (editcap -F %s)", name, kinds[k]);
				check_one(tmp, label, false, &st);
			}
			free(err);
			unlink(tmp);
		}
	}
	free(manifest);
	CHECK_MSG(st.files >= 30, "only %zu converted captures checked", st.files);
}
