/*
 * fuzz_engines.c - differential libFuzzer target for the engines (also built
 * as a plain corpus replayer with fuzz/replay.c).  The input is decoded into
 * a valid program and packets:
 *
 *   byte 0       flags: bit 0 Linux dialect (meta, ancillary loads); bit 1
 *                jeq chains: code bytes >= 0x80 become `jeq #k`, and each
 *                run of `jeq #k` is linked into one chain
 *                (each falls to the next, all jump to the first's target),
 *                the port-list shape the engines compile as one set test;
 *                such a jeq's code byte also narrows k: bit 6 to 8 bits,
 *                else bit 5 to 16 (the jit's byte and word lanes after
 *                `ldb` / `ldh`); bit 2 pairs: a conditional jump and
 *                the next one within three instructions get a common
 *                target, the first falling into the second's block on its
 *                other side (`src or dst`: the jit's pairs)
 *   then         instructions, 8 bytes each (code byte, jt, jf, k as 4 bytes,
 *                one spare byte), until a 0xff marker byte or the input runs
 *                out; each is made valid (see make_valid) and a return is
 *                appended
 *   then         packet bytes: the rest of the input
 *
 * The program runs on the packet cut at every length from 0 to its size
 * (and a few wire lengths) and every engine of `engines` must return what the
 * reference interpreter returns, else abort().  In the Linux dialect the meta
 * fields come from the packet's first bytes.  Engines that exist only on some
 * builds (the JIT) add a row; a row whose prepare refuses a valid program is
 * a failure too.
 */
#include "bpfkit.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------------ */
/* Engines                                                             */

#include "../tests/engines.h"

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

enum { MAXINSNS = 256 };

/* Every opcode the validators know; the input's code byte picks one. */
static const uint16_t codes[] = {
	0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x80, 0x00, 0x60, 0x01, 0x61, 0x81, 0xb1, 0x02, 0x03,
	0x04, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x94, 0xa4, 0x0c, 0x1c, 0x2c, 0x3c, 0x4c,
	0x5c, 0x6c, 0x7c, 0x9c, 0xac, 0x84, 0x05, 0x15, 0x25, 0x35, 0x45, 0x1d, 0x2d, 0x3d, 0x4d,
	0x06, 0x16, 0x07, 0x87,
};
enum { NCODES = sizeof codes / sizeof codes[0] };

static uint32_t rd32le(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/*
 * Bends insns[i] into a valid one: jump targets inside the program,
 * constant divisors non-zero, constant shifts below 32, M[] indexes below
 * 16, absolute loads at SKF_AD_OFF and above only known ancillary fields in
 * the Linux dialect (pcap: moved below it).  Offsets stay wild otherwise so
 * loads land before, at and past the packet's end and in the Linux negative
 * ranges.
 */
static void make_valid(struct bpfkit_insn *in, size_t i, size_t n, bool lnx, uint8_t spare)
{
	size_t left = n - 1 - i;
	uint16_t c = in->code;
	if ((c & 0x07) == 0x05) { /* jumps */
		if (c == 0x05)
			in->k = left ? in->k % (uint32_t)left : 0;
		in->jt = (uint8_t)(left ? in->jt % (left < 256 ? left : 256) : 0);
		in->jf = (uint8_t)(left ? in->jf % (left < 256 ? left : 256) : 0);
	}
	if ((c == 0x34 || c == 0x94) && in->k == 0)
		in->k = 1;
	if (c == 0x64 || c == 0x74)
		in->k &= 31;
	if (c == 0x60 || c == 0x61 || c == 0x02 || c == 0x03)
		in->k &= 15;
	/* The spare byte steers offsets toward interesting places. */
	if ((c & 0x07) == 0x00 && (c & 0xe0) == 0x20) {
		if (in->k >= BPFKIT_SKF_AD_OFF) {
			if (lnx)
				in->k = BPFKIT_SKF_AD_OFF + 4 * (in->k % 16);
			else
				in->k -= 0x1000;
		} else if (spare < 0xc0) {
			in->k = spare; /* small offsets most of the time */
		} else if (lnx && spare < 0xe0) {
			in->k = (spare & 1 ? BPFKIT_SKF_NET_OFF : BPFKIT_SKF_LL_OFF) + (in->k & 63);
		}
	} else if (c == 0xb1 || (c & 0xe0) == 0x40) {
		if (spare < 0xc0)
			in->k = spare & 63;
	}
}

/* The program (valid in pcap mode; see fix_memory for socket mode); *used: bytes read. */
static size_t decode(const uint8_t *data, size_t size, bool lnx, bool chains,
		     struct bpfkit_insn *prog, size_t *used)
{
	size_t n = 0, pos = 0;
	while (pos + 8 <= size && n < MAXINSNS - 1 && data[pos] != 0xff) {
		const uint8_t *p = data + pos;
		bool chained = chains && (p[0] & 0x80);
		uint16_t code = chained ? 0x15 : codes[p[0] % NCODES];
		uint32_t k = rd32le(p + 3);
		if (chained)
			k &= p[0] & 0x40 ? 0xff : p[0] & 0x20 ? 0xffff : UINT32_MAX;
		prog[n] = (struct bpfkit_insn){code, p[1], p[2], k};
		n++;
		pos += 8;
	}
	if (pos < size && data[pos] == 0xff)
		pos++;
	/* A return last. */
	prog[n++] = (struct bpfkit_insn){0x16, 0, 0, 0};
	for (size_t i = 0, j = 0; i + 1 < n; i++, j += 8)
		make_valid(&prog[i], i, n, lnx, data[j + 7]);
	*used = pos;
	return n;
}

/* Links each run of jeq #k into a chain (see the header); targets stay in range. */
static void make_chains(struct bpfkit_insn *prog, size_t n)
{
	for (size_t i = 1; i + 1 < n; i++) {
		struct bpfkit_insn *prev = &prog[i - 1], *in = &prog[i];
		if (prev->code != 0x15 || in->code != 0x15 || prev->jt == 0)
			continue;
		prev->jf = 0;
		in->jt = (uint8_t)(prev->jt - 1); /* i + 1 + jt == i - 1 + 1 + prev->jt */
	}
}

/* Links jumps into pairs (see the header); targets stay in range. */
static void make_pairs(struct bpfkit_insn *prog, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++) {
		struct bpfkit_insn *a = &prog[i];
		if ((a->code & 0x07) != 0x05 || a->code == 0x05)
			continue;
		bool on_jf = a->jf & 1;   /* the shared target on the first's jf side */
		size_t s = i + 1 + (on_jf ? a->jf : a->jt);
		for (size_t j = i + 1; j < n && j <= i + 3; j++) {
			struct bpfkit_insn *b = &prog[j];
			if ((b->code & 0x07) != 0x05 || b->code == 0x05)
				continue;
			if (s > j) {
				if (on_jf)
					a->jt = 0;
				else
					a->jf = 0;
				if (b->jf & 1)
					b->jf = (uint8_t)(s - j - 1);
				else
					b->jt = (uint8_t)(s - j - 1);
			}
			break;
		}
	}
}

/*
 * The Linux dialect's socket validator also rejects M[] reads before writes;
 * turn each read it would reject into a store (same linear rule as the kernel).
 */
static void fix_memory(struct bpfkit_insn *prog, size_t n)
{
	uint16_t masks[MAXINSNS];
	uint16_t valid = 0;
	memset(masks, 0xff, sizeof masks);
	for (size_t pc = 0; pc < n; pc++) {
		struct bpfkit_insn *in = &prog[pc];
		valid &= masks[pc];
		if (in->code == 0x02 || in->code == 0x03) {
			valid |= (uint16_t)(1u << in->k);
		} else if (in->code == 0x60 || in->code == 0x61) {
			if (!(valid & (1u << in->k))) {
				in->code = in->code == 0x60 ? 0x02 : 0x03;
				valid |= (uint16_t)(1u << in->k);
			}
		} else if (in->code == 0x05) {
			masks[pc + 1 + in->k] &= valid;
			valid = 0xffff;
		} else if ((in->code & 0x07) == 0x05) {
			masks[pc + 1 + in->jt] &= valid;
			masks[pc + 1 + in->jf] &= valid;
			valid = 0xffff;
		}
	}
}

static void meta_from(const uint8_t *pkt, size_t len, struct bpfkit_meta *m)
{
	uint8_t buf[sizeof *m];
	memset(buf, 0, sizeof buf);
	memcpy(buf, pkt, len < sizeof buf ? len : sizeof buf);
	memcpy(m, buf, sizeof *m);
	m->net_offset %= 64; /* mostly inside the packet */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool lnx = data[0] & 1;
	struct bpfkit_insn prog[MAXINSNS];
	size_t used;
	size_t n = decode(data + 1, size - 1, lnx, (data[0] & 2) != 0, prog, &used);
	if (data[0] & 2)
		make_chains(prog, n);
	if (data[0] & 4)
		make_pairs(prog, n);
	if (lnx)
		fix_memory(prog, n);
	if (bpfkit_validate(prog, n, lnx ? BPFKIT_VALIDATE_SOCKET : BPFKIT_VALIDATE_PCAP, NULL))
		abort(); /* the decoder's bug: every decoded program must be valid */
	const uint8_t *pkt = data + 1 + used;
	size_t len = size - 1 - used;
	if (len > 4096)
		len = 4096;
	/* An exact-size copy, so ASan sees any read past caplen. */
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return 0;
	struct bpfkit_meta meta;
	meta_from(pkt, len, &meta);
	for (size_t e = 0; e < NENGINES; e++) {
		if (lnx && !engines[e].linux_dialect)
			continue;
		struct bpfkit_error perr;
		void *h = engines[e].prepare(prog, n, lnx, NULL, &perr);
		if (!h)
			abort();
		for (size_t cap = 0; cap <= len; cap++) {
			/* Cut: the packet's first cap bytes at the end of a cap-byte buffer. */
			uint8_t *p = copy + (len - cap);
			memcpy(p, pkt, cap);
			const uint32_t wires[] = {(uint32_t)cap, (uint32_t)len + 7};
			for (size_t w = 0; w < 2; w++) {
				const struct bpfkit_meta *m = lnx ? &meta : NULL;
				uint32_t want = bpfkit_interp(prog, n, p, (uint32_t)cap, wires[w], m);
				uint32_t got = engines[e].run(h, p, (uint32_t)cap, wires[w], m);
				if (got != want)
					abort();
			}
		}
		engines[e].release(h);
	}
	free(copy);
	return 0;
}
