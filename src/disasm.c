/*
 * disasm.c - writes a program in every format bpfkit knows (the readers are
 * in progread.c): bpf_asm source, tcpdump's -d listing, -dd C array, -ddd
 * decimal lines, the xt_bpf/bpf_asm one-line string, raw bytes, JSON and a
 * Graphviz control-flow graph.
 *
 * Invariants:
 * - ASM reassembles (bpfkit_asm) to exactly the same program for any input:
 *   an instruction that bpf_asm cannot spell (unknown code, non-zero unused
 *   field, jump leaving the program) is written as `.insn CODE, JT, JF, K`.
 * - LISTING is byte for byte libpcap's bpf_image() output (tcpdump -d),
 *   including its quirks (signed offsets, `unimp` for LDX|LEN, "ret" with no
 *   operand for RET|A).  fmt_listing_exact() says when it reads back exactly.
 * - Every mnemonic comes from opcode_table; all text goes through a mem_buf,
 *   so allocation failure is checked once, at the end.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

_Static_assert(sizeof(struct bpfkit_insn) == 8, "struct bpfkit_insn must be sock_filter");

static const char *const format_names[] = {
	[BPFKIT_FMT_AUTO] = "auto",
	[BPFKIT_FMT_ASM] = "asm",
	[BPFKIT_FMT_LISTING] = "listing",
	[BPFKIT_FMT_C] = "c",
	[BPFKIT_FMT_DDD] = "ddd",
	[BPFKIT_FMT_IPTABLES] = "iptables",
	[BPFKIT_FMT_RAW] = "raw",
	[BPFKIT_FMT_JSON] = "json",
	[BPFKIT_FMT_DOT] = "dot",
};
#define NFORMATS (sizeof format_names / sizeof format_names[0])

BPFKIT_API int bpfkit_format_parse(const char *name)
{
	if (!name)
		return -1;
	for (size_t i = 0; i < NFORMATS; i++)
		if (strcasecmp(name, format_names[i]) == 0)
			return (int)i;
	return -1;
}

BPFKIT_API const char *bpfkit_format_name(enum bpfkit_format fmt)
{
	if ((unsigned)fmt >= NFORMATS)
		return NULL;
	return format_names[fmt];
}

/* ---- shared helpers ---- */

/* libpcap spells two ancillary loads differently from bpf_asm. */
const char *fmt_listing_anc(uint32_t off)
{
	if (off == BPFKIT_AD_VLAN_TAG_PRESENT)
		return "vlanp";
	if (off == BPFKIT_AD_RANDOM)
		return "random";
	const struct anc_info *a = opcode_anc(BPFKIT_SKF_AD_OFF + off);
	return a && off < BPFKIT_AD_MAX ? a->name : NULL;
}

/* libpcap's bpf_image knows every row of the table but LDX|W|LEN. */
static const struct opcode_info *listing_lookup(uint16_t code)
{
	const struct opcode_info *o = opcode_lookup(code);
	return o && o->code != (BPFKIT_LDX | BPFKIT_W | BPFKIT_LEN) ? o : NULL;
}

static bool is_abs_load(const struct opcode_info *o)
{
	return o->operand == OPND_ABS && BPFKIT_CLASS(o->code) == BPFKIT_LD;
}

/* Operands whose k field is ignored, so bpf_asm and listings drop it. */
static bool k_unused(const struct opcode_info *o)
{
	return o->operand == OPND_NONE || o->operand == OPND_X || o->operand == OPND_A ||
	       o->operand == OPND_LEN;
}

/* tcpdump prints these immediates as signed decimal, the rest in hex. */
static bool k_decimal(const struct opcode_info *o)
{
	if (BPFKIT_CLASS(o->code) == BPFKIT_RET)
		return true;
	if (BPFKIT_CLASS(o->code) != BPFKIT_ALU)
		return false;
	unsigned op = BPFKIT_OP(o->code);
	return op != BPFKIT_OR && op != BPFKIT_AND && op != BPFKIT_XOR;
}

bool fmt_listing_exact(const struct bpfkit_insn *insns, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct bpfkit_insn *in = &insns[i];
		const struct opcode_info *o = listing_lookup(in->code);
		if (!o)
			return false;
		if (!(o->flags & F_COND) && (in->jt || in->jf))
			return false;
		if (k_unused(o) && in->k)
			return false;
	}
	return true;
}

/* ---- listing: libpcap's bpf_image ---- */

static void listing_line(struct mem_buf *b, const struct bpfkit_insn *in, size_t i)
{
	char operand[64];
	const char *op;
	const struct opcode_info *o = listing_lookup(in->code);
	int32_t sk = (int32_t)in->k;
	operand[0] = '\0';
	if (!o) {
		op = "unimp";
		snprintf(operand, sizeof operand, "0x%x", (unsigned)in->code);
	} else {
		op = o->mnem;
		switch (o->operand) {
		case OPND_ABS: {
			const char *name = NULL;
			if (is_abs_load(o) && in->k >= BPFKIT_SKF_AD_OFF)
				name = fmt_listing_anc(in->k - BPFKIT_SKF_AD_OFF);
			if (name)
				snprintf(operand, sizeof operand, "[%s]", name);
			else
				snprintf(operand, sizeof operand, "[%d]", (int)sk);
			break;
		}
		case OPND_IND:
			snprintf(operand, sizeof operand, "[x + %d]", (int)sk);
			break;
		case OPND_LEN:
			snprintf(operand, sizeof operand, "#pktlen");
			break;
		case OPND_IMM:
			snprintf(operand, sizeof operand, "#0x%x", (unsigned)in->k);
			break;
		case OPND_MEM:
			snprintf(operand, sizeof operand, "M[%d]", (int)sk);
			break;
		case OPND_MSH:
			snprintf(operand, sizeof operand, "4*([%d]&0xf)", (int)sk);
			break;
		case OPND_K:
			if (k_decimal(o))
				snprintf(operand, sizeof operand, "#%d", (int)sk);
			else
				snprintf(operand, sizeof operand, "#0x%x", (unsigned)in->k);
			break;
		case OPND_X:
			snprintf(operand, sizeof operand, "x");
			break;
		case OPND_JA:
			snprintf(operand, sizeof operand, "%d",
				 (int)(int32_t)(uint32_t)(i + 1 + in->k));
			break;
		case OPND_A:
		case OPND_NONE:
			break;
		}
	}
	if (BPFKIT_CLASS(in->code) == BPFKIT_JMP && BPFKIT_OP(in->code) != BPFKIT_JA)
		mem_buf_printf(b, "(%03d) %-8s %-16s jt %d\tjf %d", (int)i, op, operand,
			       (int)(int32_t)(uint32_t)(i + 1 + in->jt),
			       (int)(int32_t)(uint32_t)(i + 1 + in->jf));
	else
		mem_buf_printf(b, "(%03d) %-8s %s", (int)i, op, operand);
}

/* ---- asm: bpf_asm source ---- */

/* Does instruction i spell in bpf_asm syntax with in-program label targets? */
static bool asm_spellable(const struct bpfkit_insn *insns, size_t n, size_t i)
{
	const struct bpfkit_insn *in = &insns[i];
	const struct opcode_info *o = opcode_lookup(in->code);
	size_t room = n - i - 1; /* instructions after i */
	if (!o)
		return false;
	if (o->flags & F_COND)
		return in->jt < room && in->jf < room && !(o->operand == OPND_X && in->k);
	if (in->jt || in->jf)
		return false;
	if (o->operand == OPND_JA)
		return in->k < room;
	return !(k_unused(o) && in->k);
}

/* bpf_asm reads both; small values read better in decimal. */
static void asm_number(struct mem_buf *b, uint32_t k)
{
	if (k < 0x80000000u)
		mem_buf_printf(b, "%u", (unsigned)k);
	else
		mem_buf_printf(b, "0x%x", (unsigned)k);
}

static void asm_insn(struct mem_buf *b, const struct bpfkit_insn *insns, size_t n, size_t i);

void fmt_asm_stmt(struct mem_buf *b, const struct bpfkit_insn *in)
{
	const struct opcode_info *o = opcode_lookup(in->code);
	if (o && BPFKIT_CLASS(in->code) == BPFKIT_JMP) {
		if (BPFKIT_SRC(in->code) == BPFKIT_X)
			mem_buf_printf(b, "%s x", o->mnem);
		else
			mem_buf_printf(b, "%s #0x%x", o->mnem, (unsigned)in->k);
		return;
	}
	asm_insn(b, in, 1, 0);
}

/* One instruction's text, without label or newline. */
static void asm_insn(struct mem_buf *b, const struct bpfkit_insn *insns, size_t n, size_t i)
{
	const struct bpfkit_insn *in = &insns[i];
	const struct opcode_info *o = opcode_lookup(in->code);
	if (!asm_spellable(insns, n, i)) {
		mem_buf_printf(b, ".insn 0x%x, %u, %u, 0x%x", (unsigned)in->code,
			       (unsigned)in->jt, (unsigned)in->jf, (unsigned)in->k);
		return;
	}
	mem_buf_puts(b, o->mnem);
	switch (o->operand) {
	case OPND_NONE:
		break;
	case OPND_ABS: {
		const struct anc_info *a = is_abs_load(o) ? opcode_anc(in->k) : NULL;
		if (a) {
			mem_buf_printf(b, " #%s", a->name);
		} else {
			mem_buf_puts(b, " [");
			asm_number(b, in->k);
			mem_buf_puts(b, "]");
		}
		break;
	}
	case OPND_IND:
		mem_buf_puts(b, " [x + ");
		asm_number(b, in->k);
		mem_buf_puts(b, "]");
		break;
	case OPND_LEN:
		mem_buf_puts(b, " #len");
		break;
	case OPND_IMM:
		mem_buf_printf(b, " #0x%x", (unsigned)in->k);
		break;
	case OPND_MEM:
		mem_buf_puts(b, " M[");
		asm_number(b, in->k);
		mem_buf_puts(b, "]");
		break;
	case OPND_MSH:
		mem_buf_puts(b, " 4*([");
		asm_number(b, in->k);
		mem_buf_puts(b, "]&0xf)");
		break;
	case OPND_K:
		if (k_decimal(o)) {
			mem_buf_puts(b, " #");
			asm_number(b, in->k);
		} else {
			mem_buf_printf(b, " #0x%x", (unsigned)in->k);
		}
		break;
	case OPND_X:
		mem_buf_puts(b, " x");
		break;
	case OPND_A:
		mem_buf_puts(b, " a");
		break;
	case OPND_JA:
		mem_buf_printf(b, " L%zu", i + 1 + (size_t)in->k);
		break;
	}
	if (o->flags & F_COND)
		mem_buf_printf(b, ", L%zu, L%zu", i + 1 + (size_t)in->jt, i + 1 + (size_t)in->jf);
}

/* Marks the instructions that some spelled jump names as its target. */
static bool *asm_targets(const struct bpfkit_insn *insns, size_t n,
			 const struct bpfkit_alloc *alloc)
{
	bool *target = mem_alloc_array(alloc, n ? n : 1, sizeof *target);
	if (!target)
		return NULL;
	memset(target, 0, (n ? n : 1) * sizeof *target);
	for (size_t i = 0; i < n; i++) {
		const struct opcode_info *o = opcode_lookup(insns[i].code);
		if (!o || !asm_spellable(insns, n, i))
			continue;
		if (o->flags & F_COND) {
			target[i + 1 + insns[i].jt] = true;
			target[i + 1 + insns[i].jf] = true;
		} else if (o->flags & F_JUMP) {
			target[i + 1 + insns[i].k] = true;
		}
	}
	return target;
}

static int write_asm(struct mem_buf *b, const struct bpfkit_insn *insns, size_t n)
{
	bool *target = asm_targets(insns, n, b->alloc);
	if (!target)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (target[i])
			mem_buf_printf(b, "L%zu:", i);
		mem_buf_puts(b, "\t");
		asm_insn(b, insns, n, i);
		mem_buf_puts(b, "\n");
	}
	mem_free(b->alloc, target);
	return 0;
}

/* ---- JSON ---- */

static void json_string(struct mem_buf *b, const char *s, size_t len)
{
	mem_buf_puts(b, "\"");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			mem_buf_printf(b, "\\%c", c);
		else if (c == '\t')
			mem_buf_puts(b, "\\t");
		else if (c < 0x20)
			mem_buf_printf(b, "\\u%04x", c);
		else
			mem_buf_put(b, &s[i], 1);
	}
	mem_buf_puts(b, "\"");
}

static int write_json(struct mem_buf *b, const struct bpfkit_insn *insns, size_t n)
{
	struct mem_buf line;
	mem_buf_init(&line, b->alloc);
	mem_buf_puts(b, "{\"insns\": [");
	for (size_t i = 0; i < n; i++) {
		const struct bpfkit_insn *in = &insns[i];
		mem_buf_printf(b, "%s\n  {\"code\": %u, \"jt\": %u, \"jf\": %u, \"k\": %u, \"asm\": ",
			       i ? "," : "", (unsigned)in->code, (unsigned)in->jt,
			       (unsigned)in->jf, (unsigned)in->k);
		line.len = 0;
		asm_insn(&line, insns, n, i);
		if (line.failed)
			break;
		json_string(b, line.data, line.len);
		mem_buf_puts(b, "}");
	}
	mem_buf_puts(b, n ? "\n]}\n" : "]}\n");
	bool failed = line.failed;
	mem_buf_free(&line);
	return failed ? -1 : 0;
}

/* ---- DOT: basic blocks and their edges ---- */

static void dot_escaped(struct mem_buf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '"' || s[i] == '\\')
			mem_buf_put(b, "\\", 1);
		mem_buf_put(b, s[i] == '\t' ? " " : &s[i], 1);
	}
}

static void dot_edge(struct mem_buf *b, size_t from, size_t to, size_t n, const char *label)
{
	if (to < n)
		mem_buf_printf(b, "\tb%zu -> b%zu", from, to);
	else
		mem_buf_printf(b, "\tb%zu -> out", from);
	if (label)
		mem_buf_printf(b, " [label=\"%s\"]", label);
	mem_buf_puts(b, ";\n");
}

/*
 * Leaders: instruction 0, every in-program jump target, and every
 * instruction after a jump or return.  Each block is one box labelled with
 * its listing lines; edges say "true"/"false" for conditional jumps.
 */
static int write_dot(struct mem_buf *b, const struct bpfkit_insn *insns, size_t n)
{
	bool *leader = mem_alloc_array(b->alloc, n + 1, sizeof *leader);
	struct mem_buf line;
	bool out_used = false;
	if (!leader)
		return -1;
	memset(leader, 0, (n + 1) * sizeof *leader);
	leader[0] = true;
	for (size_t i = 0; i < n; i++) {
		const struct opcode_info *o = opcode_lookup(insns[i].code);
		if (!o || !(o->flags & (F_COND | F_JUMP | F_RET)))
			continue;
		leader[i + 1] = true;
		if (o->flags & F_RET)
			continue;
		uint64_t t1 = i + 1 + (uint64_t)insns[i].jt, t2 = i + 1 + (uint64_t)insns[i].jf;
		if (o->flags & F_JUMP)
			t1 = t2 = i + 1 + (uint64_t)insns[i].k;
		if (t1 < n)
			leader[t1] = true;
		else
			out_used = true;
		if (t2 < n)
			leader[t2] = true;
		else
			out_used = true;
	}
	mem_buf_init(&line, b->alloc);
	mem_buf_puts(b, "digraph bpf {\n\tnode [shape=box, fontname=\"monospace\"];\n");
	for (size_t start = 0; start < n;) {
		size_t end = start + 1;
		while (end < n && !leader[end])
			end++;
		mem_buf_printf(b, "\tb%zu [label=\"", start);
		for (size_t i = start; i < end; i++) {
			line.len = 0;
			listing_line(&line, &insns[i], i);
			if (line.failed)
				break;
			dot_escaped(b, line.data, line.len);
			mem_buf_puts(b, "\\l");
		}
		mem_buf_puts(b, "\"];\n");
		const struct bpfkit_insn *last = &insns[end - 1];
		const struct opcode_info *o = opcode_lookup(last->code);
		size_t i = end - 1;
		if (o && (o->flags & F_COND)) {
			dot_edge(b, start, i + 1 + (size_t)last->jt, n, "true");
			dot_edge(b, start, i + 1 + (size_t)last->jf, n, "false");
		} else if (o && (o->flags & F_JUMP)) {
			uint64_t t = i + 1 + (uint64_t)last->k;
			dot_edge(b, start, t < n ? (size_t)t : n, n, NULL);
		} else if (!(o && (o->flags & F_RET)) && end < n) {
			dot_edge(b, start, end, n, NULL);
		}
		start = end;
	}
	if (out_used)
		mem_buf_puts(b, "\tout [label=\"outside the program\", shape=plaintext];\n");
	mem_buf_puts(b, "}\n");
	bool failed = line.failed;
	mem_buf_free(&line);
	mem_free(b->alloc, leader);
	return failed ? -1 : 0;
}

/* ---- the entry point ---- */

BPFKIT_API int bpfkit_prog_format(const struct bpfkit_insn *insns, size_t n,
				  enum bpfkit_format fmt, const struct bpfkit_alloc *alloc,
				  char **text, size_t *len, struct bpfkit_error *err)
{
	struct mem_buf b;
	int rc = 0;
	if (text)
		*text = NULL;
	if (len)
		*len = 0;
	if (!text) {
		error_set(err, "no place for the text");
		return -1;
	}
	if (n && !insns) {
		error_set(err, "no instructions");
		return -1;
	}
	mem_buf_init(&b, alloc);
	switch (fmt) {
	case BPFKIT_FMT_ASM:
		rc = write_asm(&b, insns, n);
		break;
	case BPFKIT_FMT_LISTING:
		for (size_t i = 0; i < n; i++) {
			listing_line(&b, &insns[i], i);
			mem_buf_puts(&b, "\n");
		}
		break;
	case BPFKIT_FMT_C:
		for (size_t i = 0; i < n; i++)
			mem_buf_printf(&b, "{ 0x%x, %u, %u, 0x%08x },\n", (unsigned)insns[i].code,
				       (unsigned)insns[i].jt, (unsigned)insns[i].jf,
				       (unsigned)insns[i].k);
		break;
	case BPFKIT_FMT_DDD:
		mem_buf_printf(&b, "%zu\n", n);
		for (size_t i = 0; i < n; i++)
			mem_buf_printf(&b, "%u %u %u %u\n", (unsigned)insns[i].code,
				       (unsigned)insns[i].jt, (unsigned)insns[i].jf,
				       (unsigned)insns[i].k);
		break;
	case BPFKIT_FMT_IPTABLES:
		mem_buf_printf(&b, "%zu,", n);
		for (size_t i = 0; i < n; i++)
			mem_buf_printf(&b, "%u %u %u %u,", (unsigned)insns[i].code,
				       (unsigned)insns[i].jt, (unsigned)insns[i].jf,
				       (unsigned)insns[i].k);
		mem_buf_puts(&b, "\n");
		break;
	case BPFKIT_FMT_RAW:
		if (n > SIZE_MAX / sizeof *insns)
			b.failed = true;
		else
			mem_buf_put(&b, insns, n * sizeof *insns);
		break;
	case BPFKIT_FMT_JSON:
		rc = write_json(&b, insns, n);
		break;
	case BPFKIT_FMT_DOT:
		rc = write_dot(&b, insns, n);
		break;
	case BPFKIT_FMT_AUTO:
	default:
		mem_buf_free(&b);
		if (bpfkit_format_name(fmt))
			error_set(err, "format %s cannot be written", bpfkit_format_name(fmt));
		else
			error_set(err, "unknown program format %d", (int)fmt);
		return -1;
	}
	size_t got = 0;
	char *data = rc == 0 ? mem_buf_take(&b, &got) : NULL;
	if (!data) {
		mem_buf_free(&b);
		error_oom(err);
		return -1;
	}
	*text = data;
	if (len)
		*len = got;
	return 0;
}
