/*
 * pcapio.c - streaming pcap and pcapng reader and writer.
 *
 * Reader: the input is either the caller's memory (read in place) or a
 * stream (read(2) on a descriptor, or a callback) pulled into one buffer.
 * Unread bytes are base[pos..len); fill() makes a whole record available,
 * compacting and growing the buffer only when a record does not fit, so the
 * buffer is never larger than twice the largest record actually present (a
 * length field alone never causes an allocation) and never larger than
 * BPFKIT_CAPTURE_MAX_RECORD.  A packet view points into the buffer and stays
 * valid until the next call.  Fields are decoded byte by byte in the file's
 * byte order, so the host's order never matters.
 *
 * Writer: buffered output in host byte order through a callback or a
 * descriptor.  pcapng interfaces are written lazily, when their first packet
 * is, so the output holds exactly the interfaces its packets use.
 *
 * Every error names the byte offset of the offending field (error_offset).
 */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAP_MAGIC_NS 0xa1b23c4du
#define PCAP_HDR_LEN 24
#define PCAP_REC_LEN 16

#define NG_SHB 0x0a0d0d0au
#define NG_IDB 1u
#define NG_PB 2u     /* obsolete Packet Block */
#define NG_SPB 3u
#define NG_EPB 6u
#define NG_BOM 0x1a2b3c4du
#define NG_OPT_END 0
#define NG_OPT_TSRESOL 9
#define NG_OPT_FCSLEN 13
#define NG_OPT_TSOFFSET 14
#define NG_MAX_IFACES 65536

#define LIBPCAP_MAX_SNAPLEN 262144u
#define READ_BUF_INITIAL (256u << 10)
#define WRITE_BUF_SIZE (256u << 10)

/* FCS bits of the pcap link-type field: bit 26 says the length (bits 28-31, in 16-bit words)
 * is known. */
#define LT_FCS_PRESENT 0x04000000u
#define LT_FCS_WORDS(f) (((f) >> 28) & 0xfu)

enum { ST_READING, ST_ENDED, ST_FAILED };

struct bpfkit_capture {
	struct bpfkit_alloc alloc_copy;
	const struct bpfkit_alloc *alloc;
	bpfkit_capture_read_fn read;
	void *ctx;
	int fd, read_errno;
	bool stream, at_eof, big;
	unsigned flags;
	uint8_t *buf;                 /* owned buffer (stream mode) */
	size_t cap;
	const uint8_t *base;          /* buf, or the caller's memory */
	size_t pos, len;              /* unread bytes: base[pos..len) */
	long long base_off;           /* input offset of base[0] */
	int state;
	struct bpfkit_error saved;    /* repeated after a failure */
	struct bpfkit_capture_header hdr;
	struct bpfkit_capture_iface *ifaces;
	size_t nifaces, capifaces;
	uint32_t section;
	uint64_t packets;
	size_t prefetched;            /* memory inputs: base[..prefetched) was prefetched */
};

/* ---- byte order ---- */

static uint16_t rd16(bool big, const uint8_t *p)
{
	return big ? (uint16_t)(p[0] << 8 | p[1]) : (uint16_t)(p[1] << 8 | p[0]);
}

static uint32_t rd32(bool big, const uint8_t *p)
{
	if (big)
		return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static uint64_t rd64(bool big, const uint8_t *p)
{
	uint64_t a = rd32(big, p), b = rd32(big, p + 4);
	return big ? a << 32 | b : b << 32 | a;
}

/* ---- timestamps ---- */

/* Ticks per second for an if_tsresol byte; 0 when it does not fit 64 bits. */
static uint64_t tsresol_units(uint8_t b)
{
	unsigned e = b & 0x7fu;
	if (b & 0x80u)
		return e <= 63 ? (uint64_t)1 << e : 0;
	if (e > 19)
		return 0;
	uint64_t u = 1;
	while (e--)
		u *= 10;
	return u;
}

/* The if_tsresol byte for units ticks per second; -1 when not a power of 10 or 2. */
static int units_tsresol(uint64_t units)
{
	for (int e = 0; e <= 19; e++)
		if (tsresol_units((uint8_t)e) == units)
			return e;
	for (int e = 0; e <= 63; e++)
		if (units == (uint64_t)1 << e)
			return 0x80 | e;
	return -1;
}

/* frac ticks of from per second, as ticks of to per second (rounded down). */
static uint64_t scale_frac(uint64_t frac, uint64_t from, uint64_t to)
{
	if (from == to)
		return frac;
#ifdef __SIZEOF_INT128__
	return (uint64_t)((unsigned __int128)frac * to / from);
#else
	return (uint64_t)((long double)frac * to / from);
#endif
}

BPFKIT_API int64_t bpfkit_packet_ns(const struct bpfkit_packet *pkt)
{
	uint64_t units = pkt->ts_units ? pkt->ts_units : 1000000;
	uint64_t whole = pkt->ts_frac / units, rest = pkt->ts_frac % units;
	return (int64_t)((uint64_t)pkt->ts_sec * 1000000000u + whole * 1000000000u +
			 scale_frac(rest, units, 1000000000u));
}

/* ---- reader: input buffer ---- */

static long fd_read(void *ctx, void *buf, size_t size)
{
	struct bpfkit_capture *c = ctx;
	for (;;) {
		ssize_t r = read(c->fd, buf, size);
		if (r >= 0)
			return (long)r;
		if (errno != EINTR) {
			c->read_errno = errno;
			return -1;
		}
	}
}

static int fail(struct bpfkit_capture *c, struct bpfkit_error *err)
{
	c->state = ST_FAILED;
	if (err)
		c->saved = *err;
	else
		error_set(&c->saved, "capture error");
	return -1;
}

/* Offset in the input of the next unread byte. */
static long long here(const struct bpfkit_capture *c)
{
	return c->base_off + (long long)c->pos;
}

/* Offset in the input just past the buffered bytes. */
static long long here_end(const struct bpfkit_capture *c)
{
	return c->base_off + (long long)c->len;
}

static size_t avail(const struct bpfkit_capture *c)
{
	return c->len - c->pos;
}

/*
 * Makes n bytes available at base + pos: 1 when they are, 0 when the input
 * ends first (avail() says how many are there), -1 on a read error or out of
 * memory (err set).  n is at most BPFKIT_CAPTURE_MAX_RECORD plus a header.
 */
static int fill(struct bpfkit_capture *c, size_t n, struct bpfkit_error *err)
{
	if (avail(c) >= n)
		return 1;
	if (!c->stream || c->at_eof)
		return 0;
	if (c->pos > 0) {
		memmove(c->buf, c->buf + c->pos, c->len - c->pos);
		c->len -= c->pos;
		c->base_off += (long long)c->pos;
		c->pos = 0;
	}
	while (c->len < n) {
		if (c->len == c->cap) {
			/* Grow only once the buffer is full of real data. */
			size_t ncap = c->cap * 2 < n ? c->cap * 2 : n;
			uint8_t *nb = mem_realloc(c->alloc, c->buf, ncap);
			if (!nb) {
				error_oom(err);
				return -1;
			}
			c->buf = nb;
			c->base = nb;
			c->cap = ncap;
		}
		long r = c->read(c->ctx, c->buf + c->len, c->cap - c->len);
		if (r < 0 || (size_t)r > c->cap - c->len) {
			if (c->read_errno)
				error_offset(err, here_end(c), "read failed: %s",
					     strerror(c->read_errno));
			else
				error_offset(err, here_end(c), "read failed");
			return -1;
		}
		if (r == 0) {
			c->at_eof = true;
			return 0;
		}
		c->len += (size_t)r;
	}
	return 1;
}

/*
 * Memory inputs (a mapped file) are read in place, and each record header is
 * then a cache miss that the hardware prefetchers do not hide (perf: 40% of
 * `bpfkit filter` on bench-mix.pcap).  So the reader keeps the next 2 KiB
 * prefetched, one cache line at a time, as it advances: a fifth off the
 * whole run.  Streams need none (read(2) just copied the bytes into the
 * buffer).  Prefetches never fault; these stay inside the input.
 */
#define PREFETCH_DISTANCE 2048u

static void prefetch_ahead(struct bpfkit_capture *c)
{
	if (c->stream)
		return;
	size_t limit = c->len - c->pos > PREFETCH_DISTANCE ? c->pos + PREFETCH_DISTANCE : c->len;
	if (c->prefetched < c->pos)
		c->prefetched = c->pos;
	for (; c->prefetched < limit; c->prefetched += 64) {
#if defined(__GNUC__)
		__builtin_prefetch(c->base + c->prefetched);
#endif
	}
}

/*
 * A record longer than its snaplen: libpcap keeps the first snaplen bytes when
 * caplen is at most its usual maximum (262144) and refuses it beyond; so do we,
 * unless the caller asked for BPFKIT_CAPTURE_STRICT_SNAPLEN.
 */
static bool too_long(const struct bpfkit_capture *c, uint32_t caplen)
{
	return (c->flags & BPFKIT_CAPTURE_STRICT_SNAPLEN) || caplen > LIBPCAP_MAX_SNAPLEN;
}

static bool add_iface(struct bpfkit_capture *c, const struct bpfkit_capture_iface *ifc)
{
	if (c->nifaces == c->capifaces) {
		size_t ncap = c->capifaces ? c->capifaces * 2 : 4;
		struct bpfkit_capture_iface *n =
			mem_realloc(c->alloc, c->ifaces, ncap * sizeof *n);
		if (!n)
			return false;
		c->ifaces = n;
		c->capifaces = ncap;
	}
	c->ifaces[c->nifaces++] = *ifc;
	return true;
}

/* ---- reader: pcap ---- */

static int pcap_open(struct bpfkit_capture *c, uint32_t magic, struct bpfkit_error *err)
{
	int r = fill(c, PCAP_HDR_LEN, err);
	if (r < 0)
		return -1;
	if (r == 0) {
		error_offset(err, here(c), "truncated pcap file header: %zu of %d bytes",
			     avail(c), PCAP_HDR_LEN);
		return -1;
	}
	const uint8_t *p = c->base + c->pos;
	bool big = c->big;
	uint16_t major = rd16(big, p + 4), minor = rd16(big, p + 6);
	if (major != 2 || minor != 4) {
		error_offset(err, here(c) + 4, "unknown pcap version %u.%u", major, minor);
		return -1;
	}
	struct bpfkit_capture_header *h = &c->hdr;
	h->format = BPFKIT_CAPTURE_PCAP;
	h->version_major = major;
	h->version_minor = minor;
	h->big_endian = big;
	h->thiszone = (int32_t)rd32(big, p + 8);
	h->sigfigs = rd32(big, p + 12);
	h->snaplen = rd32(big, p + 16);
	h->linktype_field = rd32(big, p + 20);
	h->linktype = h->linktype_field & 0xffffu;
	h->fcslen = h->linktype_field & LT_FCS_PRESENT ?
		(int)LT_FCS_WORDS(h->linktype_field) * 2 : -1;
	h->ts_units = magic == PCAP_MAGIC_NS ? 1000000000u : 1000000u;
	struct bpfkit_capture_iface ifc = {
		.linktype = h->linktype, .snaplen = h->snaplen, .ts_units = h->ts_units,
		.tsresol = magic == PCAP_MAGIC_NS ? 9 : 6, .fcslen = h->fcslen,
	};
	if (!add_iface(c, &ifc)) {
		error_oom(err);
		return -1;
	}
	c->pos += PCAP_HDR_LEN;
	return 0;
}

static int pcap_next(struct bpfkit_capture *c, struct bpfkit_packet *pkt,
		     struct bpfkit_error *err)
{
	long long off = here(c);
	/* The usual case, a whole record already there, costs no call. */
	int r = avail(c) >= PCAP_REC_LEN ? 1 : fill(c, PCAP_REC_LEN, err);
	if (r < 0)
		return -1;
	if (r == 0) {
		if (avail(c) == 0)
			return 0;
		error_offset(err, off,
			     "truncated record header: %zu of %d bytes, after %llu packets",
			     avail(c), PCAP_REC_LEN, (unsigned long long)c->packets);
		return -1;
	}
	const uint8_t *p = c->base + c->pos;
	bool big = c->big;
	uint32_t caplen = rd32(big, p + 8);
	uint32_t keep = caplen;
	uint32_t snaplen = c->hdr.snaplen;
	if (caplen > BPFKIT_CAPTURE_MAX_RECORD) {
		error_offset(err, off + 8, "record caplen %u is impossible (more than %u)", caplen,
			     BPFKIT_CAPTURE_MAX_RECORD);
		return -1;
	}
	if (snaplen != 0 && caplen > snaplen) {
		if (too_long(c, caplen)) {
			error_offset(err, off + 8, "record caplen %u exceeds the snaplen %u",
				     caplen, snaplen);
			return -1;
		}
		keep = snaplen;
	}
	r = avail(c) >= PCAP_REC_LEN + (size_t)caplen ? 1 :
		fill(c, PCAP_REC_LEN + (size_t)caplen, err);
	if (r < 0)
		return -1;
	if (r == 0) {
		error_offset(err, off,
			     "truncated record: caplen %u but %zu bytes present, "
			     "after %llu packets", caplen, avail(c) - PCAP_REC_LEN,
			     (unsigned long long)c->packets);
		return -1;
	}
	p = c->base + c->pos;
	pkt->ts_sec = rd32(big, p);
	pkt->ts_frac = rd32(big, p + 4);
	pkt->ts_units = c->hdr.ts_units;
	pkt->caplen = keep;
	pkt->wirelen = rd32(big, p + 12);
	pkt->data = p + PCAP_REC_LEN;
	pkt->linktype = c->hdr.linktype;
	pkt->iface = &c->ifaces[0];
	pkt->offset = off;
	c->pos += PCAP_REC_LEN + (size_t)caplen;
	prefetch_ahead(c);
	return 1;
}

/* ---- reader: pcapng ---- */

static const char *block_name(uint32_t type)
{
	switch (type) {
	case NG_SHB: return "section header";
	case NG_IDB: return "interface description";
	case NG_PB: return "packet";
	case NG_SPB: return "simple packet";
	case NG_EPB: return "enhanced packet";
	default: return "pcapng";
	}
}

static uint32_t block_min(uint32_t type)
{
	switch (type) {
	case NG_SHB: return 28;
	case NG_IDB: return 20;
	case NG_PB: return 32;
	case NG_SPB: return 16;
	case NG_EPB: return 32;
	default: return 12;
	}
}

/* Section Header Block at p (fully available): byte order, version, new section. */
static int ng_section(struct bpfkit_capture *c, const uint8_t *p, long long off, bool first,
		      struct bpfkit_error *err)
{
	uint16_t major = rd16(c->big, p + 12), minor = rd16(c->big, p + 14);
	if (major != 1 || (minor != 0 && minor != 2)) {   /* libpcap reads 1.2 as 1.0 */
		error_offset(err, off + 12, "unknown pcapng version %u.%u", major, minor);
		return -1;
	}
	c->hdr.format = BPFKIT_CAPTURE_PCAPNG;
	c->hdr.version_major = major;
	c->hdr.version_minor = minor;
	c->hdr.big_endian = c->big;
	c->nifaces = 0;
	if (!first)
		c->section++;
	return 0;
}

/* Interface Description Block body at p, blen bytes in all. */
static int ng_interface(struct bpfkit_capture *c, const uint8_t *p, uint32_t blen, long long off,
			struct bpfkit_error *err)
{
	bool big = c->big;
	if (c->nifaces >= NG_MAX_IFACES) {
		error_offset(err, off, "more than %d interfaces in one section", NG_MAX_IFACES);
		return -1;
	}
	struct bpfkit_capture_iface ifc = {
		.linktype = rd16(big, p + 8), .snaplen = rd32(big, p + 12),
		.ts_units = 1000000, .tsresol = 6, .fcslen = -1,
		.section = c->section, .index = (uint32_t)c->nifaces,
	};
	uint32_t o = 16, end = blen - 4;
	while (end - o >= 4) {
		uint16_t code = rd16(big, p + o), olen = rd16(big, p + o + 2);
		if (code == NG_OPT_END)
			break;
		if (olen > end - o - 4) {
			error_offset(err, off + o + 2, "option %u length %u overruns its block",
				     code, olen);
			return -1;
		}
		const uint8_t *v = p + o + 4;
		if (code == NG_OPT_TSRESOL && olen >= 1) {
			ifc.tsresol = v[0];
			ifc.ts_units = tsresol_units(v[0]);
			if (ifc.ts_units == 0) {
				error_offset(err, off + o + 4,
					     "if_tsresol 0x%02x is finer than "
					     "64-bit timestamps hold", v[0]);
				return -1;
			}
		} else if (code == NG_OPT_FCSLEN && olen >= 1) {
			ifc.fcslen = v[0];
		} else if (code == NG_OPT_TSOFFSET && olen >= 8) {
			ifc.tsoffset = (int64_t)rd64(big, v);
		}
		uint32_t step = 4 + (((uint32_t)olen + 3) & ~3u);
		if (step > end - o)
			break;
		o += step;
	}
	if (!add_iface(c, &ifc)) {
		error_oom(err);
		return -1;
	}
	return 0;
}

static void ng_timestamp(const struct bpfkit_capture_iface *ifc, uint64_t t,
			 struct bpfkit_packet *pkt)
{
	pkt->ts_sec = (int64_t)(t / ifc->ts_units + (uint64_t)ifc->tsoffset);
	pkt->ts_frac = t % ifc->ts_units;
	pkt->ts_units = ifc->ts_units;
}

/* A packet block (EPB, PB, SPB) at p, blen bytes; 1 with pkt filled, -1 on error. */
static int ng_packet(struct bpfkit_capture *c, uint32_t type, const uint8_t *p, uint32_t blen,
		     long long off, struct bpfkit_packet *pkt, struct bpfkit_error *err)
{
	bool big = c->big;
	const struct bpfkit_capture_iface *ifc;
	uint32_t caplen;
	if (type == NG_SPB) {
		if (c->nifaces == 0) {
			error_offset(err, off, "simple packet block before any interface");
			return -1;
		}
		ifc = &c->ifaces[0];
		pkt->wirelen = rd32(big, p + 8);
		caplen = pkt->wirelen;
		if (ifc->snaplen != 0 && caplen > ifc->snaplen)
			caplen = ifc->snaplen;
		if (caplen > blen - 16)
			caplen = blen - 16;
		ng_timestamp(ifc, 0, pkt);   /* no timestamp: the interface's epoch */
		pkt->data = p + 12;
	} else {
		uint32_t id = type == NG_PB ? rd16(big, p + 8) : rd32(big, p + 8);
		if (id >= c->nifaces) {
			error_offset(err, off + 8,
				     "interface %u is not defined (the section has %zu)", id,
				     c->nifaces);
			return -1;
		}
		ifc = &c->ifaces[id];
		caplen = rd32(big, p + 20);
		if (caplen > blen - 32) {
			error_offset(err, off + 20,
				     "packet caplen %u overruns its block (room for %u)", caplen,
				     blen - 32);
			return -1;
		}
		/* Unlike pcap, libpcap refuses these in pcapng, whatever the size. */
		if (ifc->snaplen != 0 && caplen > ifc->snaplen) {
			error_offset(err, off + 20,
				     "packet caplen %u exceeds the interface's snaplen %u", caplen,
				     ifc->snaplen);
			return -1;
		}
		pkt->wirelen = rd32(big, p + 24);
		ng_timestamp(ifc, (uint64_t)rd32(big, p + 12) << 32 | rd32(big, p + 16), pkt);
		pkt->data = p + 28;
	}
	pkt->caplen = caplen;
	pkt->linktype = ifc->linktype;
	pkt->iface = ifc;
	pkt->offset = off;
	return 1;
}

/*
 * Reads blocks until a packet: 1 with pkt filled, 0 at the end of input, -1 on
 * error.  first is set for the file's opening SHB (open stops after it).
 */
static int ng_next(struct bpfkit_capture *c, struct bpfkit_packet *pkt, bool first,
		   struct bpfkit_error *err)
{
	for (;;) {
		long long off = here(c);
		int r = fill(c, 12, err);
		if (r < 0)
			return -1;
		if (r == 0) {
			if (avail(c) == 0 && !first)
				return 0;
			error_offset(err, off,
				     "truncated block header: %zu of 12 bytes, after %llu packets",
				     avail(c), (unsigned long long)c->packets);
			return -1;
		}
		const uint8_t *p = c->base + c->pos;
		uint32_t type = rd32(c->big, p);
		if (type == NG_SHB) {
			if (rd32(false, p + 8) == NG_BOM) {
				c->big = false;
			} else if (rd32(true, p + 8) == NG_BOM) {
				c->big = true;
			} else {
				error_offset(err, off + 8, "bad byte-order magic 0x%08x",
					     rd32(c->big, p + 8));
				return -1;
			}
		}
		uint32_t blen = rd32(c->big, p + 4);
		if (blen % 4 != 0 || blen < block_min(type)) {
			error_offset(err, off + 4, "%s block total length %u is %s",
				     block_name(type), blen,
				     blen % 4 ? "not a multiple of 4" : "too small");
			return -1;
		}
		if (blen > BPFKIT_CAPTURE_MAX_RECORD) {
			error_offset(err, off + 4,
				     "%s block total length %u is impossible (more than %u)",
				     block_name(type), blen, BPFKIT_CAPTURE_MAX_RECORD);
			return -1;
		}
		r = fill(c, blen, err);
		if (r < 0)
			return -1;
		if (r == 0) {
			error_offset(err, off, "truncated %s block: length %u but %zu bytes "
				     "present, after %llu packets", block_name(type), blen,
				     avail(c), (unsigned long long)c->packets);
			return -1;
		}
		p = c->base + c->pos;
		uint32_t trail = rd32(c->big, p + blen - 4);
		if (trail != blen) {
			error_offset(err, off + blen - 4, "trailing block length %u does not "
				     "match the leading %u", trail, blen);
			return -1;
		}
		int got = 0;
		switch (type) {
		case NG_SHB:
			if (ng_section(c, p, off, first, err) < 0)
				return -1;
			break;
		case NG_IDB:
			if (ng_interface(c, p, blen, off, err) < 0)
				return -1;
			break;
		case NG_EPB:
		case NG_PB:
		case NG_SPB:
			got = ng_packet(c, type, p, blen, off, pkt, err);
			if (got < 0)
				return -1;
			break;
		default:
			break;   /* NRB, ISB, DSB, custom, unknown: skipped */
		}
		c->pos += blen;
		if (first || got)
			return got;
	}
}

/* ---- reader: public entry points ---- */

static struct bpfkit_capture *new_capture(const struct bpfkit_alloc *alloc, unsigned flags)
{
	struct bpfkit_capture *c = mem_alloc(alloc, sizeof *c);
	if (!c)
		return NULL;
	memset(c, 0, sizeof *c);
	if (alloc) {
		c->alloc_copy = *alloc;
		c->alloc = &c->alloc_copy;
	}
	c->flags = flags;
	c->fd = -1;
	c->hdr.fcslen = -1;
	return c;
}

/* Reads the magic and the file header (pcap) or first SHB (pcapng). */
static int open_common(struct bpfkit_capture *c, struct bpfkit_capture **out,
		       struct bpfkit_error *err)
{
	int r = fill(c, 4, err);
	if (r < 0)
		goto failed;
	if (r == 0) {
		if (avail(c))
			error_offset(err, 0, "truncated file: %zu bytes, no capture header",
				     avail(c));
		else
			error_offset(err, 0, "empty input: no capture header");
		goto failed;
	}
	uint32_t m = rd32(false, c->base + c->pos);
	if (m == PCAP_MAGIC_US || m == PCAP_MAGIC_NS) {
		c->big = false;
	} else if (rd32(true, c->base + c->pos) == PCAP_MAGIC_US ||
		   rd32(true, c->base + c->pos) == PCAP_MAGIC_NS) {
		c->big = true;
		m = rd32(true, c->base + c->pos);
	} else if (m == NG_SHB) {
		struct bpfkit_packet none;
		if (ng_next(c, &none, true, err) < 0)
			goto failed;
		*out = c;
		return 0;
	} else {
		error_offset(err, 0, "not a pcap or pcapng file (magic 0x%08x)",
			     rd32(true, c->base + c->pos));
		goto failed;
	}
	if (pcap_open(c, m, err) < 0)
		goto failed;
	*out = c;
	return 0;
failed:
	bpfkit_capture_close(c);
	*out = NULL;
	return -1;
}

static int open_stream(bpfkit_capture_read_fn fn, void *ctx, int fd, unsigned flags,
		       const struct bpfkit_alloc *alloc, struct bpfkit_capture **out,
		       struct bpfkit_error *err)
{
	*out = NULL;
	struct bpfkit_capture *c = new_capture(alloc, flags);
	if (c)
		c->buf = mem_alloc(alloc, READ_BUF_INITIAL);
	if (!c || !c->buf) {
		if (c)
			mem_free(alloc, c);
		error_oom(err);
		return -1;
	}
	c->base = c->buf;
	c->cap = READ_BUF_INITIAL;
	c->stream = true;
	c->read = fn;
	c->ctx = fn == fd_read ? c : ctx;
	c->fd = fd;
	return open_common(c, out, err);
}

BPFKIT_API int bpfkit_capture_open(bpfkit_capture_read_fn fn, void *ctx, unsigned flags,
				   const struct bpfkit_alloc *alloc, struct bpfkit_capture **out,
				   struct bpfkit_error *err)
{
	return open_stream(fn, ctx, -1, flags, alloc, out, err);
}

BPFKIT_API int bpfkit_capture_open_fd(int fd, unsigned flags, const struct bpfkit_alloc *alloc,
				      struct bpfkit_capture **out, struct bpfkit_error *err)
{
	return open_stream(fd_read, NULL, fd, flags, alloc, out, err);
}

BPFKIT_API int bpfkit_capture_open_mem(const void *data, size_t len, unsigned flags,
				       const struct bpfkit_alloc *alloc,
				       struct bpfkit_capture **out, struct bpfkit_error *err)
{
	*out = NULL;
	struct bpfkit_capture *c = new_capture(alloc, flags);
	if (!c) {
		error_oom(err);
		return -1;
	}
	c->base = data;
	c->len = len;
	return open_common(c, out, err);
}

BPFKIT_API int bpfkit_capture_next(struct bpfkit_capture *c, struct bpfkit_packet *pkt,
				   struct bpfkit_error *err)
{
	if (c->state == ST_ENDED)
		return 0;
	if (c->state == ST_FAILED) {
		if (err)
			*err = c->saved;
		return -1;
	}
	struct bpfkit_error local;
	if (!err)
		err = &local;
	int r = c->hdr.format == BPFKIT_CAPTURE_PCAP ? pcap_next(c, pkt, err) :
		ng_next(c, pkt, false, err);
	if (r < 0)
		return fail(c, err);
	if (r == 0) {
		c->state = ST_ENDED;
		return 0;
	}
	c->packets++;
	return 1;
}

BPFKIT_API const struct bpfkit_capture_header *bpfkit_capture_header(
	const struct bpfkit_capture *c)
{
	return &c->hdr;
}

BPFKIT_API size_t bpfkit_capture_iface_count(const struct bpfkit_capture *c)
{
	return c->nifaces;
}

BPFKIT_API const struct bpfkit_capture_iface *bpfkit_capture_iface(const struct bpfkit_capture *c,
								   size_t i)
{
	return i < c->nifaces ? &c->ifaces[i] : NULL;
}

BPFKIT_API uint64_t bpfkit_capture_packets(const struct bpfkit_capture *c)
{
	return c->packets;
}

BPFKIT_API void bpfkit_capture_close(struct bpfkit_capture *c)
{
	if (!c)
		return;
	const struct bpfkit_alloc *a = c->alloc;
	struct bpfkit_alloc copy = c->alloc_copy;
	if (a)
		a = &copy;
	mem_free(a, c->buf);
	mem_free(a, c->ifaces);
	mem_free(a, c);
}

/* ---- writer ---- */

struct writer_iface {
	uint32_t section, index;      /* the reader's identity of the interface */
	bool anonymous;               /* from a packet without iface */
	struct bpfkit_capture_iface info;
};

struct bpfkit_capture_writer {
	struct bpfkit_alloc alloc_copy;
	const struct bpfkit_alloc *alloc;
	bpfkit_capture_write_fn write;
	void *ctx;
	int fd, write_errno;
	bool failed;
	struct bpfkit_error saved;
	struct bpfkit_capture_header hdr;
	uint8_t *buf;
	size_t len;
	long long written;            /* bytes handed to the sink */
	struct writer_iface *ifaces;
	size_t nifaces, capifaces, last;
	uint64_t packets;
};

static int fd_write(void *ctx, const void *data, size_t len)
{
	struct bpfkit_capture_writer *w = ctx;
	const uint8_t *p = data;
	while (len > 0) {
		ssize_t r = write(w->fd, p, len);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			w->write_errno = errno;
			return -1;
		}
		p += r;
		len -= (size_t)r;
	}
	return 0;
}

static int wfail(struct bpfkit_capture_writer *w, struct bpfkit_error *err)
{
	w->failed = true;
	if (err)
		w->saved = *err;
	return -1;
}

static int sink(struct bpfkit_capture_writer *w, const void *data, size_t len,
		struct bpfkit_error *err)
{
	if (len == 0)
		return 0;
	if (w->write(w->ctx, data, len) < 0) {
		if (w->write_errno)
			error_offset(err, w->written, "write failed: %s",
				     strerror(w->write_errno));
		else
			error_offset(err, w->written, "write failed");
		return -1;
	}
	w->written += (long long)len;
	return 0;
}

static int flush(struct bpfkit_capture_writer *w, struct bpfkit_error *err)
{
	int r = sink(w, w->buf, w->len, err);
	w->len = 0;
	return r;
}

static int put(struct bpfkit_capture_writer *w, const void *data, size_t len,
	       struct bpfkit_error *err)
{
	if (len > WRITE_BUF_SIZE - w->len) {
		if (flush(w, err) < 0)
			return -1;
		if (len > WRITE_BUF_SIZE)
			return sink(w, data, len, err);
	}
	memcpy(w->buf + w->len, data, len);
	w->len += len;
	return 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static int write_pcap_header(struct bpfkit_capture_writer *w, struct bpfkit_error *err)
{
	uint8_t h[PCAP_HDR_LEN];
	put32(h, w->hdr.ts_units == 1000000000u ? PCAP_MAGIC_NS : PCAP_MAGIC_US);
	put16(h + 4, w->hdr.version_major);
	put16(h + 6, w->hdr.version_minor);
	put32(h + 8, (uint32_t)w->hdr.thiszone);
	put32(h + 12, w->hdr.sigfigs);
	put32(h + 16, w->hdr.snaplen);
	put32(h + 20, w->hdr.linktype_field);
	return put(w, h, sizeof h, err);
}

static int write_shb(struct bpfkit_capture_writer *w, struct bpfkit_error *err)
{
	uint8_t b[28];
	put32(b, NG_SHB);
	put32(b + 4, sizeof b);
	put32(b + 8, NG_BOM);
	put16(b + 12, 1);
	put16(b + 14, 0);
	put64(b + 16, UINT64_MAX);   /* section length not given */
	put32(b + 24, sizeof b);
	return put(w, b, sizeof b, err);
}

static int write_idb(struct bpfkit_capture_writer *w, const struct bpfkit_capture_iface *ifc,
		     struct bpfkit_error *err)
{
	uint8_t b[64];
	uint32_t n = 16;
	memset(b, 0, sizeof b);
	put32(b, NG_IDB);
	put16(b + 8, (uint16_t)ifc->linktype);
	put32(b + 12, ifc->snaplen);
	if (ifc->ts_units != 1000000) {
		put16(b + n, NG_OPT_TSRESOL);
		put16(b + n + 2, 1);
		b[n + 4] = ifc->tsresol;
		n += 8;
	}
	if (ifc->fcslen >= 0) {
		put16(b + n, NG_OPT_FCSLEN);
		put16(b + n + 2, 1);
		b[n + 4] = (uint8_t)ifc->fcslen;
		n += 8;
	}
	if (ifc->tsoffset != 0) {
		put16(b + n, NG_OPT_TSOFFSET);
		put16(b + n + 2, 8);
		put64(b + n + 4, (uint64_t)ifc->tsoffset);
		n += 12;
	}
	if (n > 16)
		n += 4;   /* opt_endofopt, already zero */
	n += 4;
	put32(b + 4, n);
	put32(b + n - 4, n);
	return put(w, b, n, err);
}

static int common_open(const struct bpfkit_capture_header *hdr, bpfkit_capture_write_fn fn,
		       void *ctx, int fd, const struct bpfkit_alloc *alloc,
		       struct bpfkit_capture_writer **out, struct bpfkit_error *err)
{
	*out = NULL;
	if (hdr->format != BPFKIT_CAPTURE_PCAP && hdr->format != BPFKIT_CAPTURE_PCAPNG) {
		error_set(err, "unknown capture format %d", (int)hdr->format);
		return -1;
	}
	if (hdr->format == BPFKIT_CAPTURE_PCAP && hdr->ts_units != 1000000 &&
	    hdr->ts_units != 1000000000) {
		error_set(err, "pcap resolution must be micro- or nanoseconds, not 1/%llu s",
			  (unsigned long long)hdr->ts_units);
		return -1;
	}
	struct bpfkit_capture_writer *w = mem_alloc(alloc, sizeof *w);
	if (!w) {
		error_oom(err);
		return -1;
	}
	memset(w, 0, sizeof *w);
	if (alloc) {
		w->alloc_copy = *alloc;
		w->alloc = &w->alloc_copy;
	}
	w->buf = mem_alloc(alloc, WRITE_BUF_SIZE);
	if (!w->buf) {
		mem_free(alloc, w);
		error_oom(err);
		return -1;
	}
	w->hdr = *hdr;
	if (w->hdr.linktype_field == 0)
		w->hdr.linktype_field = w->hdr.linktype;
	w->hdr.linktype = w->hdr.linktype_field & 0xffffu;
	if (w->hdr.version_major == 0) {
		w->hdr.version_major = 2;
		w->hdr.version_minor = 4;
	}
	w->write = fn;
	w->ctx = fn == fd_write ? w : ctx;
	w->fd = fd;
	int r = w->hdr.format == BPFKIT_CAPTURE_PCAP ? write_pcap_header(w, err) :
		write_shb(w, err);
	if (r < 0) {
		bpfkit_capture_writer_close(w, NULL);
		return -1;
	}
	*out = w;
	return 0;
}

BPFKIT_API int bpfkit_capture_writer_open(const struct bpfkit_capture_header *hdr,
					  bpfkit_capture_write_fn fn, void *ctx,
					  const struct bpfkit_alloc *alloc,
					  struct bpfkit_capture_writer **out,
					  struct bpfkit_error *err)
{
	return common_open(hdr, fn, ctx, -1, alloc, out, err);
}

BPFKIT_API int bpfkit_capture_writer_open_fd(const struct bpfkit_capture_header *hdr, int fd,
					     const struct bpfkit_alloc *alloc,
					     struct bpfkit_capture_writer **out,
					     struct bpfkit_error *err)
{
	return common_open(hdr, fd_write, NULL, fd, alloc, out, err);
}

static int write_pcap_record(struct bpfkit_capture_writer *w, const struct bpfkit_packet *pkt,
			     struct bpfkit_error *err)
{
	if (pkt->linktype != w->hdr.linktype) {
		error_set(err, "packet %llu has link type %u but the pcap file has %u",
			  (unsigned long long)w->packets + 1, pkt->linktype, w->hdr.linktype);
		return -1;
	}
	if (w->hdr.snaplen != 0 && pkt->caplen > w->hdr.snaplen) {
		error_set(err, "packet %llu: caplen %u exceeds the snaplen %u",
			  (unsigned long long)w->packets + 1, pkt->caplen, w->hdr.snaplen);
		return -1;
	}
	int64_t sec = pkt->ts_sec;
	uint64_t frac = pkt->ts_frac;
	uint64_t from = pkt->ts_units ? pkt->ts_units : 1000000;
	if (from != w->hdr.ts_units) {
		sec += (int64_t)(frac / from);
		frac = scale_frac(frac % from, from, w->hdr.ts_units);
	}
	if (sec < 0 || sec > (int64_t)UINT32_MAX || frac > UINT32_MAX) {
		error_set(err, "packet %llu: timestamp %lld s does not fit a pcap record",
			  (unsigned long long)w->packets + 1, (long long)sec);
		return -1;
	}
	uint8_t h[PCAP_REC_LEN];
	put32(h, (uint32_t)sec);
	put32(h + 4, (uint32_t)frac);
	put32(h + 8, pkt->caplen);
	put32(h + 12, pkt->wirelen);
	if (put(w, h, sizeof h, err) < 0)
		return -1;
	return put(w, pkt->data, pkt->caplen, err);
}

static bool same_iface(const struct writer_iface *a, const struct writer_iface *b)
{
	const struct bpfkit_capture_iface *x = &a->info, *y = &b->info;
	return a->anonymous == b->anonymous && a->section == b->section && a->index == b->index &&
	       x->linktype == y->linktype && x->snaplen == y->snaplen &&
	       x->ts_units == y->ts_units && x->tsresol == y->tsresol &&
	       x->fcslen == y->fcslen && x->tsoffset == y->tsoffset;
}

/* The output id of interface key, writing its IDB the first time; -1 on error. */
static long long ng_iface_lookup(struct bpfkit_capture_writer *w, const struct writer_iface *k,
				 struct bpfkit_error *err)
{
	struct writer_iface key = *k;
	if (w->last < w->nifaces && same_iface(&w->ifaces[w->last], &key))
		return (long long)w->last;
	for (size_t i = 0; i < w->nifaces; i++) {
		if (same_iface(&w->ifaces[i], &key)) {
			w->last = i;
			return (long long)i;
		}
	}
	if (w->nifaces >= UINT32_MAX - 1) {
		error_set(err, "too many interfaces");
		return -1;
	}
	if (w->nifaces == w->capifaces) {
		size_t ncap = w->capifaces ? w->capifaces * 2 : 4;
		struct writer_iface *n = mem_realloc(w->alloc, w->ifaces, ncap * sizeof *n);
		if (!n) {
			error_oom(err);
			return -1;
		}
		w->ifaces = n;
		w->capifaces = ncap;
	}
	if (write_idb(w, &key.info, err) < 0)
		return -1;
	w->ifaces[w->nifaces] = key;
	w->last = w->nifaces;
	return (long long)w->nifaces++;
}

static struct writer_iface iface_key(const struct bpfkit_capture_iface *ifc)
{
	struct writer_iface key = {.section = ifc->section, .index = ifc->index, .info = *ifc};
	return key;
}

/* The output interface id for pkt's interface, writing its IDB the first time; -1 on error. */
static long long ng_iface_id(struct bpfkit_capture_writer *w, const struct bpfkit_packet *pkt,
			     struct bpfkit_error *err)
{
	struct writer_iface key = {0};
	if (pkt->iface) {
		key = iface_key(pkt->iface);
	} else {
		int res = units_tsresol(pkt->ts_units);
		if (res < 0) {
			error_set(err, "packet %llu: resolution 1/%llu s has no pcapng form",
				  (unsigned long long)w->packets + 1,
				  (unsigned long long)pkt->ts_units);
			return -1;
		}
		key.anonymous = true;
		key.info = (struct bpfkit_capture_iface){
			.linktype = pkt->linktype, .ts_units = pkt->ts_units,
			.tsresol = (uint8_t)res, .fcslen = -1,
		};
	}
	return ng_iface_lookup(w, &key, err);
}

BPFKIT_API int bpfkit_capture_writer_iface(struct bpfkit_capture_writer *w,
					   const struct bpfkit_capture_iface *ifc,
					   struct bpfkit_error *err)
{
	if (w->failed) {
		if (err)
			*err = w->saved;
		return -1;
	}
	if (w->hdr.format != BPFKIT_CAPTURE_PCAPNG)
		return 0;
	struct bpfkit_error local;
	if (!err)
		err = &local;
	struct writer_iface key = iface_key(ifc);
	if (ng_iface_lookup(w, &key, err) < 0)
		return wfail(w, err);
	return 0;
}

static int write_epb(struct bpfkit_capture_writer *w, const struct bpfkit_packet *pkt,
		     struct bpfkit_error *err)
{
	if (pkt->caplen > BPFKIT_CAPTURE_MAX_RECORD) {
		error_set(err, "packet %llu: caplen %u is too large",
			  (unsigned long long)w->packets + 1, pkt->caplen);
		return -1;
	}
	long long id = ng_iface_id(w, pkt, err);
	if (id < 0)
		return -1;
	const struct bpfkit_capture_iface *ifc = &w->ifaces[id].info;
	uint64_t from = pkt->ts_units ? pkt->ts_units : 1000000, units = ifc->ts_units;
	uint64_t frac = pkt->ts_frac;
	int64_t sec = pkt->ts_sec;
	if (from != units) {
		sec += (int64_t)(frac / from);
		frac = scale_frac(frac % from, from, units);
	}
	/* T = (sec - tsoffset) * units + frac, which must fit 64 bits. */
	uint64_t rel = (uint64_t)sec - (uint64_t)ifc->tsoffset;
	/* The reader made sec = T / units + tsoffset modulo 2^64; this inverts it exactly. */
	if (rel > (UINT64_MAX - frac) / units) {
		error_set(err, "packet %llu: timestamp does not fit a 64-bit pcapng count",
			  (unsigned long long)w->packets + 1);
		return -1;
	}
	uint64_t ticks = rel * units + frac;
	uint32_t padded = (pkt->caplen + 3) & ~3u;
	uint8_t h[28];
	put32(h, NG_EPB);
	put32(h + 4, 32 + padded);
	put32(h + 8, (uint32_t)id);
	put32(h + 12, (uint32_t)(ticks >> 32));
	put32(h + 16, (uint32_t)ticks);
	put32(h + 20, pkt->caplen);
	put32(h + 24, pkt->wirelen);
	if (put(w, h, sizeof h, err) < 0 || put(w, pkt->data, pkt->caplen, err) < 0)
		return -1;
	uint8_t tail[8] = {0};
	put32(tail + (padded - pkt->caplen), 32 + padded);
	return put(w, tail, padded - pkt->caplen + 4, err);
}

BPFKIT_API int bpfkit_capture_write(struct bpfkit_capture_writer *w,
				    const struct bpfkit_packet *pkt, struct bpfkit_error *err)
{
	if (w->failed) {
		if (err)
			*err = w->saved;
		return -1;
	}
	struct bpfkit_error local;
	if (!err)
		err = &local;
	int r = w->hdr.format == BPFKIT_CAPTURE_PCAP ? write_pcap_record(w, pkt, err) :
		write_epb(w, pkt, err);
	if (r < 0)
		return wfail(w, err);
	w->packets++;
	return 0;
}

BPFKIT_API int bpfkit_capture_writer_close(struct bpfkit_capture_writer *w,
					   struct bpfkit_error *err)
{
	if (!w)
		return 0;
	int r = 0;
	if (w->failed) {
		if (err)
			*err = w->saved;
		r = -1;
	} else if (flush(w, err) < 0) {
		r = -1;
	}
	struct bpfkit_alloc copy = w->alloc_copy;
	const struct bpfkit_alloc *a = w->alloc ? &copy : NULL;
	mem_free(a, w->buf);
	mem_free(a, w->ifaces);
	mem_free(a, w);
	return r;
}
