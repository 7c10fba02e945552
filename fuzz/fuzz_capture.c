/*
 * fuzz_capture.c - libFuzzer target for the capture reader and writer.
 *
 * Invariants checked (abort() on any violation):
 *  - reading the input in place and reading it through a stream callback that
 *    hands out a few bytes at a time give the same packets and the same end
 *    (clean end, or the same error at the same byte offset);
 *  - every packet view lies inside the input and caplen never exceeds it;
 *  - when the input reads cleanly, writing it back (pcap as pcap with the same
 *    header, pcapng as pcapng) and reading that gives identical packets, and
 *    pcap written as pcapng keeps every timestamp's instant.
 */
#include "bpfkit.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct pkt {
	struct bpfkit_packet view;
	struct bpfkit_capture_iface iface;
	uint8_t *bytes;
};

struct list {
	struct pkt *v;
	size_t n, cap;
	int end;                     /* 0 clean, -1 error */
	struct bpfkit_error err;
	struct bpfkit_capture_header hdr;
};

struct chunks {
	const uint8_t *data;
	size_t size, pos, step;
};

static long chunk_read(void *ctx, void *buf, size_t size)
{
	struct chunks *s = ctx;
	size_t n = s->size - s->pos;
	if (n > s->step)
		n = s->step;
	if (n > size)
		n = size;
	memcpy(buf, s->data + s->pos, n);
	s->pos += n;
	s->step = s->step % 7 + 1;   /* vary the chunk sizes: 1..7 */
	return (long)n;
}

struct out {
	uint8_t *data;
	size_t len, cap;
};

static int out_write(void *ctx, const void *data, size_t len)
{
	struct out *o = ctx;
	if (len > o->cap - o->len) {
		size_t ncap = o->cap ? o->cap : 4096;
		while (ncap - o->len < len)
			ncap *= 2;
		uint8_t *n = realloc(o->data, ncap);
		if (!n)
			abort();
		o->data = n;
		o->cap = ncap;
	}
	memcpy(o->data + o->len, data, len);
	o->len += len;
	return 0;
}

static void list_free(struct list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].bytes);
	free(l->v);
	memset(l, 0, sizeof *l);
}

/* Reads everything from an opened capture c (NULL when open failed). */
static void collect(struct bpfkit_capture *c, struct list *l, const uint8_t *lo, size_t size)
{
	if (!c) {
		l->end = -1;
		return;
	}
	l->hdr = *bpfkit_capture_header(c);
	struct bpfkit_packet p;
	int r;
	while ((r = bpfkit_capture_next(c, &p, &l->err)) == 1) {
		if (lo && (p.data < lo || p.caplen > size ||
			   p.data - lo > (long)(size - p.caplen)))
			abort();
		if (l->n == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 16;
			l->v = realloc(l->v, l->cap * sizeof *l->v);
			if (!l->v)
				abort();
		}
		struct pkt *q = &l->v[l->n++];
		q->view = p;
		q->iface = *p.iface;
		q->bytes = malloc(p.caplen ? p.caplen : 1);
		if (!q->bytes)
			abort();
		memcpy(q->bytes, p.data, p.caplen);
	}
	l->end = r;
	if (bpfkit_capture_next(c, &p, NULL) != r)   /* the end repeats */
		abort();
	bpfkit_capture_close(c);
}

static void same_packet(const struct pkt *a, const struct pkt *b, int exact_iface)
{
	if (a->view.caplen != b->view.caplen || a->view.wirelen != b->view.wirelen ||
	    a->view.ts_sec != b->view.ts_sec || a->view.ts_frac != b->view.ts_frac ||
	    a->view.ts_units != b->view.ts_units || a->view.linktype != b->view.linktype ||
	    memcmp(a->bytes, b->bytes, a->view.caplen) != 0)
		abort();
	if (a->iface.linktype != b->iface.linktype || a->iface.snaplen != b->iface.snaplen ||
	    a->iface.ts_units != b->iface.ts_units || a->iface.fcslen != b->iface.fcslen ||
	    a->iface.tsoffset != b->iface.tsoffset)
		abort();
	if (exact_iface && (a->iface.section != b->iface.section ||
			    a->iface.index != b->iface.index || a->view.offset != b->view.offset))
		abort();
}

static void write_all(const struct list *l, const struct bpfkit_capture_header *hdr,
		      struct out *o)
{
	struct bpfkit_capture_writer *w;
	struct bpfkit_error err;
	if (bpfkit_capture_writer_open(hdr, out_write, o, NULL, &w, &err) < 0)
		abort();
	for (size_t i = 0; i < l->n; i++) {
		struct bpfkit_packet p = l->v[i].view;
		p.data = l->v[i].bytes;
		p.iface = &l->v[i].iface;
		if (bpfkit_capture_write(w, &p, &err) < 0)
			abort();
	}
	if (bpfkit_capture_writer_close(w, &err) < 0)
		abort();
}

/* Seconds and a fraction below units: the instant, whatever the representation. */
static void normalize(const struct bpfkit_packet *p, int64_t *sec, uint64_t *frac)
{
	*sec = p->ts_sec + (int64_t)(p->ts_frac / p->ts_units);
	*frac = p->ts_frac % p->ts_units;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct list mem = {0}, str = {0};
	struct bpfkit_capture *c;
	struct bpfkit_error err;
	unsigned flags = size > 0 && (data[size - 1] & 1) ? BPFKIT_CAPTURE_STRICT_SNAPLEN : 0;

	bpfkit_capture_open_mem(data, size, flags, NULL, &c, &mem.err);
	collect(c, &mem, data, size);
	struct chunks ch = {data, size, 0, 1};
	bpfkit_capture_open(chunk_read, &ch, flags, NULL, &c, &str.err);
	collect(c, &str, NULL, size);

	if (mem.n != str.n || mem.end != str.end)
		abort();
	for (size_t i = 0; i < mem.n; i++)
		same_packet(&mem.v[i], &str.v[i], 1);
	if (mem.end < 0 && (mem.err.offset != str.err.offset ||
			    strcmp(mem.err.message, str.err.message) != 0 || mem.err.offset < 0))
		abort();

	if (mem.end == 0) {
		/* Same format back, then re-read: identical packets. */
		struct out o = {0};
		write_all(&mem, &mem.hdr, &o);
		struct list back = {0};
		if (bpfkit_capture_open_mem(o.data, o.len, 0, NULL, &c, &err) < 0)
			abort();
		collect(c, &back, o.data, o.len);
		if (back.end != 0 || back.n != mem.n)
			abort();
		for (size_t i = 0; i < mem.n; i++)
			same_packet(&mem.v[i], &back.v[i], 0);
		if (mem.hdr.format == BPFKIT_CAPTURE_PCAP &&
		    (back.hdr.snaplen != mem.hdr.snaplen ||
		     back.hdr.linktype_field != mem.hdr.linktype_field ||
		     back.hdr.ts_units != mem.hdr.ts_units ||
		     back.hdr.thiszone != mem.hdr.thiszone ||
		     back.hdr.sigfigs != mem.hdr.sigfigs))
			abort();
		list_free(&back);

		/* pcap as pcapng: the same instants, lengths and bytes. */
		if (mem.hdr.format == BPFKIT_CAPTURE_PCAP) {
			struct bpfkit_capture_header ng = {.format = BPFKIT_CAPTURE_PCAPNG};
			o.len = 0;
			write_all(&mem, &ng, &o);
			if (bpfkit_capture_open_mem(o.data, o.len, 0, NULL, &c, &err) < 0)
				abort();
			collect(c, &back, o.data, o.len);
			if (back.end != 0 || back.n != mem.n)
				abort();
			for (size_t i = 0; i < mem.n; i++) {
				const struct bpfkit_packet *a = &mem.v[i].view;
				const struct bpfkit_packet *b = &back.v[i].view;
				int64_t sa, sb;
				uint64_t fa, fb;
				normalize(a, &sa, &fa);
				normalize(b, &sb, &fb);
				if (sa != sb || fa != fb || a->caplen != b->caplen ||
				    a->wirelen != b->wirelen || a->linktype != b->linktype ||
				    memcmp(mem.v[i].bytes, back.v[i].bytes, a->caplen) != 0)
					abort();
			}
			list_free(&back);
		}
		free(o.data);
	}
	list_free(&mem);
	list_free(&str);
	return 0;
}
