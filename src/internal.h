/*
 * internal.h - what each file of libbpfkit exports to the others.
 *
 * One section per source file.  Internal names carry their file's prefix
 * (mem_, error_, opcode_, asm_, fmt_, validate_, interp_); everything else in
 * a file is static.  Nothing here is part of the public API.
 */
#ifndef BPFKIT_INTERNAL_H
#define BPFKIT_INTERNAL_H

#define BPFKIT_BUILDING 1
#include "bpfkit.h"
#include "opcodes.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define BK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define BK_UNUSED __attribute__((unused))
#else
#define BK_PRINTF(f, a)
#define BK_UNUSED
#endif

/* ---- mem.c: the allocation hook, a bump arena, growable buffers ---- */

void *mem_alloc(const struct bpfkit_alloc *a, size_t size);
void *mem_realloc(const struct bpfkit_alloc *a, void *ptr, size_t size);
void mem_free(const struct bpfkit_alloc *a, void *ptr);
/* n * size with overflow check; NULL on overflow or failure. */
void *mem_alloc_array(const struct bpfkit_alloc *a, size_t n, size_t size);

/*
 * A bump arena: every allocation of one unit of work comes from it and is
 * released by one mem_arena_free().  Allocations are 16-byte aligned.
 */
struct mem_chunk;
struct mem_arena {
	const struct bpfkit_alloc *alloc;
	struct mem_chunk *chunks;
	char *cur, *end;
};
void mem_arena_init(struct mem_arena *ar, const struct bpfkit_alloc *a);
void *mem_arena_alloc(struct mem_arena *ar, size_t size);  /* NULL on failure */
char *mem_arena_strndup(struct mem_arena *ar, const char *s, size_t n);
void mem_arena_free(struct mem_arena *ar);

/*
 * A growable byte buffer with a sticky failure flag: appends after a failed
 * allocation do nothing, and the owner checks `failed` once at the end.
 */
struct mem_buf {
	const struct bpfkit_alloc *alloc;
	char *data;
	size_t len, cap;
	bool failed;
};
void mem_buf_init(struct mem_buf *b, const struct bpfkit_alloc *a);
void mem_buf_put(struct mem_buf *b, const void *data, size_t n);
void mem_buf_puts(struct mem_buf *b, const char *s);
void mem_buf_printf(struct mem_buf *b, const char *fmt, ...) BK_PRINTF(2, 3);
/* Hands the NUL-terminated data to the caller; NULL (and frees) if failed. */
char *mem_buf_take(struct mem_buf *b, size_t *len);
void mem_buf_free(struct mem_buf *b);

/* A growable instruction vector, same sticky-failure rule. */
struct mem_insns {
	const struct bpfkit_alloc *alloc;
	struct bpfkit_insn *v;
	size_t len, cap;
	bool failed;
};
void mem_insns_init(struct mem_insns *p, const struct bpfkit_alloc *a);
void mem_insns_push(struct mem_insns *p, struct bpfkit_insn insn);
void mem_insns_free(struct mem_insns *p);

/* ---- error.c: filling struct bpfkit_error ---- */

/* Resets every field, then formats the message.  err may be NULL. */
void error_set(struct bpfkit_error *err, const char *fmt, ...) BK_PRINTF(2, 3);
/* A message about source text at line:column spanning span columns. */
void error_at(struct bpfkit_error *err, int line, int column, int span, const char *fmt, ...)
	BK_PRINTF(5, 6);
/* A message about instruction index insn. */
void error_insn(struct bpfkit_error *err, long insn, const char *fmt, ...) BK_PRINTF(3, 4);
/* A message about byte offset off of the input. */
void error_offset(struct bpfkit_error *err, long long off, const char *fmt, ...) BK_PRINTF(3, 4);
void error_oom(struct bpfkit_error *err);

/* ---- opcode.c: queries on the tables of opcodes.h ---- */

struct opcode_info {
	uint16_t code;
	const char *mnem;     /* bpf_asm mnemonic */
	enum operand operand;
	unsigned flags;
	const char *id;       /* "LD_H_ABS" */
};
extern const struct opcode_info opcode_table[OP__COUNT];

/* The row for code, NULL when the kernel's classic checker does not know it. */
const struct opcode_info *opcode_lookup(uint16_t code);

struct anc_info {
	uint32_t off;         /* offset after SKF_AD_OFF */
	const char *name;     /* bpf_asm keyword, without '#' */
	const char *alias;    /* another accepted spelling, or NULL */
};
extern const struct anc_info anc_table[ANC__COUNT];
/*
 * a op b for an ALU operation (BPFKIT_OP; NEG ignores b) on constants; false
 * for a division or modulo by 0 and for shifts by 32 or more (whose result
 * differs between engines' modes), which are never folded.
 */
bool opcode_alu_fold(int op, uint32_t a, uint32_t b, uint32_t *out);
/*
 * The jeq chain at pc, shared by the engines: how many `jeq #k` from pc on
 * jump to pc's true target when equal and each fall to the next when not,
 * the later ones entered only from the one before (npred[i]: predecessors of
 * instruction i).  0 when pc is no `jeq #k` or jumps nowhere when equal.
 */
size_t opcode_jeq_chain(const struct bpfkit_insn *insns, size_t n, size_t pc,
			const uint8_t *npred);
/* The ancillary load at absolute offset k (>= SKF_AD_OFF), NULL when none. */
const struct anc_info *opcode_anc(uint32_t k);
/* The ancillary load spelled name (len bytes), NULL when none. */
const struct anc_info *opcode_anc_by_name(const char *name, size_t len);

/* ---- disasm.c: program writers (readers are in progread.c) ---- */

/* True when the listing (tcpdump -d) of insns reads back to the same program. */
bool fmt_listing_exact(const struct bpfkit_insn *insns, size_t n);
/* One statement or branch in bpf_asm syntax (branches without targets). */
void fmt_asm_stmt(struct mem_buf *b, const struct bpfkit_insn *in);
/* libpcap's listing name for ancillary offset off (after SKF_AD_OFF), or NULL. */
const char *fmt_listing_anc(uint32_t off);

/* ---- compile.c: bpfkit_compile, the pipeline ---- */

#include <setjmp.h>
struct compile_ctx {
	struct mem_arena arena;       /* tokens, AST, IR: freed in one call */
	const char *dump_pass;        /* --dump-ir: the pass after which to dump, or NULL */
	struct mem_buf *dump;         /* where the dump goes */
	struct bpfkit_error *err;
	jmp_buf fail;                 /* the one setjmp, in bpfkit_compile */
	const char *expr;
	int linktype;
	uint32_t snaplen, netmask;
	int optimize;
	unsigned flags;               /* BPFKIT_COMPILE_* */
	int err_line;                 /* line compile_error reports (1 by default) */
};
/* Fills cc->err with a message at col/span (0: no position) and unwinds. */
_Noreturn void compile_error(struct compile_ctx *cc, int col, int span, const char *fmt, ...)
	BK_PRINTF(4, 5);
/* Arena allocation that unwinds on failure; zeroed. */
void *compile_alloc(struct compile_ctx *cc, size_t size);

/* ---- lex.c: tokens of a pcap-filter expression ---- */

enum lex_kind {
	LEX_EOF, LEX_NAME, LEX_NUM, LEX_IPV4, LEX_IPV6, LEX_MAC, LEX_KW,
	LEX_LPAREN, LEX_RPAREN, LEX_LBRACK, LEX_RBRACK, LEX_COLON,
	LEX_ADD, LEX_SUB, LEX_MUL, LEX_DIV, LEX_MOD, LEX_BAND, LEX_BOR, LEX_XOR, LEX_SHL, LEX_SHR,
	LEX_GT, LEX_GE, LEX_LT, LEX_LE, LEX_EQ, LEX_NE,
	LEX_AND, LEX_OR, LEX_NOT   /* and && / or || / not ! */
};

struct lex_token {
	enum lex_kind kind;
	int kw;              /* LEX_KW: a KW_ value */
	int line, col, span; /* 1-based position and length in columns */
	const char *text;    /* NUL-terminated copy (arena) */
	uint32_t num;        /* LEX_NUM value; LEX_IPV4 address; parts in nparts */
	int nparts;          /* LEX_IPV4: 1..4 dotted parts; negated when a part > 255 */
	uint8_t bytes[16];   /* LEX_IPV6 / LEX_MAC */
	bool escaped;        /* written with a leading backslash: never a keyword */
};

struct lex_tokens {
	struct lex_token *v;
	int n;
};

struct compile_ctx;
/* Splits expr into tokens (ending with LEX_EOF); errors unwind through cc. */
void lex_run(struct compile_ctx *cc, const char *expr, struct lex_tokens *out);
/* The keyword spelled s, or -1. */
int lex_keyword(const char *s);
const char *lex_keyword_name(int kw);

/* ---- parse.c: the abstract syntax tree ---- */

enum parse_node_kind { PN_AND, PN_OR, PN_NOT, PN_PRIM, PN_REL };

/* Arithmetic: proto[index:size], numbers, len, binary and unary operators. */
enum parse_arith_kind { PA_NUM, PA_LEN, PA_LOAD, PA_BIN, PA_NEG };
struct parse_arith {
	enum parse_arith_kind kind;
	int col, span;
	uint32_t num;             /* PA_NUM */
	int op;                   /* PA_BIN: LEX_ADD ... LEX_SHR */
	int proto;                /* PA_LOAD: a KW_ protocol */
	int size;                 /* PA_LOAD: 1, 2 or 4 */
	struct parse_arith *l, *r;  /* PA_BIN operands; PA_LOAD: l = index; PA_NEG: l */
};

struct parse_node {
	enum parse_node_kind kind;
	int col, span;
	struct parse_node *l, *r;   /* PN_AND, PN_OR; PN_NOT: l */
	/* PN_PRIM: qualifiers (KW_ values, 0 = default) and the primitive */
	int proto, dir, type;
	int prim;                   /* KW_ of a keyword primitive, 0 for "qualifiers id" */
	const struct lex_token *id; /* the value (NULL when none) */
	int masklen;                /* net X/len: 0..128; -1 none */
	const struct lex_token *mask;  /* net X mask Y */
	const struct lex_token *id2;   /* a second value (llc type name ...) */
	/* PN_REL */
	int relop;                  /* LEX_GT ... LEX_NE */
	struct parse_arith *a, *b;
	int seq;                    /* textual order of primitives, from 0 */
};

/* NULL for the empty expression (accept all). */
struct parse_node *parse_run(struct compile_ctx *cc, const struct lex_tokens *toks);

/* ---- codegen.c, linktype.c: AST -> IR for one link type ---- */

struct ir_func;
void codegen_run(struct compile_ctx *cc, const struct parse_node *root, struct ir_func *fn);
/* The link-layer description for dlt, NULL when the compiler lacks it. */
struct proto_link;
const struct proto_link *linktype_link(int dlt);

/* ---- codegen_link.c, codegen_wlan.c: link layers beyond Ethernet, cooked, raw ---- */

/*
 * An offset (in a struct proto_link row or as codegen.c computes it) may carry
 * a tag saying it is relative to a length read from the packet: the link
 * payload (pflog, 802.11) in M[CODEGEN_REG_PL], or the 802.11 header behind a
 * radio header (radiotap, Prism, AVS, PPI) in M[CODEGEN_REG_HDR].  The
 * prologue (codegen_link_prologue) stores them before any test; scratch words
 * below CODEGEN_REG_GT (geneve's, stored by codegen.c) stay free for arithmetic.
 */
#define CODEGEN_VAR_PL 0x40000000u
#define CODEGEN_VAR_HDR 0x20000000u
/* after "geneve": the inner protocol field and network layer (codegen.c stores them) */
#define CODEGEN_VAR_GT 0x10000000u
#define CODEGEN_VAR_GN 0x08000000u
#define CODEGEN_VAR_MASK (CODEGEN_VAR_PL | CODEGEN_VAR_HDR | CODEGEN_VAR_GT | CODEGEN_VAR_GN)
enum { CODEGEN_REG_PL = 12, CODEGEN_REG_HDR = 13 };  /* protochain uses 14, 15 */
enum { CODEGEN_REG_GT = 10, CODEGEN_REG_GN = 11 };    /* geneve's inner offsets */
/* The scratch word a tagged offset is relative to. */
uint32_t codegen_link_reg(uint32_t off);

struct parse_node;
/* Appends "ld size [off]" to block b; through "ldx M[r]; ld [x + k]" when off is tagged. */
void codegen_link_ld(struct ir_func *fn, int b, int size, uint32_t off);
/* Appends X = 4*(ip[0]&0xf) + the variable part of nl (a tagged offset); A clobbered. */
void codegen_link_ldx_iphl(struct ir_func *fn, int b, uint32_t nl);
/*
 * A holds an index: appends the load of size at base + A (base tagged), adding
 * the IPv4 header length at nl first when iphl; scratch: a free scratch word.
 */
void codegen_link_ind_load(struct ir_func *fn, int b, int size, uint32_t base, bool iphl,
			   uint32_t nl, int scratch);
/* The network protocol of the packet is etype (an ethertype, or an LLC SAP <= 1500). */
int codegen_link_linktype(struct compile_ctx *cc, struct ir_func *fn,
			  const struct proto_link *link, uint32_t etype, int t, int f);
/* Link-specific primitives (pflog fields, inbound, 802.11 type ...); -1 when not one. */
int codegen_link_prim(struct compile_ctx *cc, struct ir_func *fn,
		      const struct proto_link *link, const struct parse_node *n, int t, int f);
/* radio[] is allowed (radiotap, Prism, AVS); what iso's NLPID offset adds to nl. */
bool codegen_link_has_radio(const struct proto_link *link);
int codegen_link_iso_delta(const struct proto_link *link);
/* The base of link[] / ether[] loads for the link type. */
uint32_t codegen_link_hdr(const struct proto_link *link);
/* Prepends the code that reads header lengths from the packet; the new entry. */
int codegen_link_prologue(struct compile_ctx *cc, struct ir_func *fn,
			  const struct proto_link *link, int entry);
/* 802.11 (codegen_wlan.c): address dir (KW_ADDR1 ..., KW_SRC/DST, 0, 1000, 1001). */
int codegen_wlan_addr(struct compile_ctx *cc, struct ir_func *fn,
		      const struct proto_link *link, const struct parse_node *at, int dir,
		      const uint8_t mac[6], int t, int f);
/* 802.11 type, subtype, dir, broadcast, multicast, llc; -1 when not one. */
int codegen_wlan_prim(struct compile_ctx *cc, struct ir_func *fn,
		      const struct proto_link *link, const struct parse_node *n, int t, int f);
/* The 802.11 payload-length prologue (X = header start at hdr), then next. */
int codegen_wlan_prologue(struct ir_func *fn, const struct proto_link *link, int next);

/* ---- names.c: hosts, services, protocols, networks, ethers (libc only) ---- */

/* Up to max IPv4 addresses (host order) of name; the count, 0 when unknown. */
int names_host4(const char *name, uint32_t *out, int max);
/* Up to max IPv6 addresses of name; the count. */
int names_host6(const char *name, uint8_t (*out)[16], int max);
/* Port for name with proto ("tcp", "udp", "sctp"); -1 when unknown. */
int names_port(const char *name, const char *proto);
int names_proto(const char *name);
/* Network number (host order, unshifted as getnetbyname gives it); 0 on success. */
int names_net(const char *name, uint32_t *net);
int names_ether(const char *name, uint8_t mac[6]);

/* ---- ir.c: the IR, a control-flow graph of blocks ---- */

/* A straight-line statement: any cBPF instruction except jumps and returns. */
struct ir_stmt {
	uint16_t code;
	uint8_t flags;   /* IR_SAFE */
	uint32_t k;
};
/* The statement cannot fail (no load past the packet, no division by zero). */
#define IR_SAFE 0x1

enum ir_term { IR_RET, IR_BRANCH, IR_JUMP };

/*
 * A block: statements then one terminator.  IR_RET returns k; IR_BRANCH
 * runs jcode (BPFKIT_JMP|JEQ/JGT/JGE/JSET|K/X) against k and continues at
 * succ[0] when true, succ[1] when false; IR_JUMP continues at succ[0].
 * Blocks are indices into fn->blocks.
 */
struct ir_block {
	struct ir_stmt *stmts;
	int nstmts, cap;
	enum ir_term term;
	uint16_t jcode;
	uint32_t k;
	int succ[2];
};

struct ir_func {
	struct mem_arena *arena;
	struct ir_block *blocks;
	int nblocks, cap;
	int entry;
	bool failed;   /* an allocation failed: the function is unusable */
	bool marks_fresh; /* IR_SAFE marks are those of the current graph (opt.c) */
};

void ir_init(struct ir_func *fn, struct mem_arena *arena);
/* A new block (IR_RET 0 until set); -1 after an allocation failure. */
int ir_block_new(struct ir_func *fn);
void ir_stmt_add(struct ir_func *fn, int b, uint16_t code, uint32_t k);
/* dst = a copy of src in src's arena; 0, or -1 when out of memory. */
int ir_copy(struct ir_func *dst, const struct ir_func *src);
int ir_ret(struct ir_func *fn, uint32_t k);
int ir_branch(struct ir_func *fn, int b, uint16_t jcode, uint32_t k, int t, int f);
/* Checks the invariants (indices in range, reachable graph acyclic, codes allowed); 0 or -1. */
int ir_verify(const struct ir_func *fn, struct bpfkit_error *err);
/* Simple passes for -O1 and above: constant branches, unreachable blocks. */
void ir_pass_fold(struct ir_func *fn);
/* The blocks reachable from the entry, as text (--dump-ir). */
void ir_dump(const struct ir_func *fn, struct mem_buf *out);

/* ---- opt.c: the optimizer's pipeline (passes: opt_*.c, shared analysis: opt.h) ---- */

/*
 * Runs the passes of level (1 or 2) over fn.  flags: OPT_RUN_ORDER runs the
 * order pass (level 2), OPT_RUN_SUFFIX lets merge share common suffixes
 * (compile.c tries the combinations and keeps the best).  When dump_pass
 * names a pass ("codegen" is the input), the IR after it is appended to
 * dump.  0, or -1 with err set (out of memory, or an IR invariant broken by
 * a pass).
 */
#define OPT_RUN_ORDER 0x1
#define OPT_RUN_SUFFIX 0x2
int opt_run(struct ir_func *fn, int level, unsigned flags, const struct bpfkit_alloc *alloc,
	    const char *dump_pass, struct mem_buf *dump, struct bpfkit_error *err);
/* The pass names, for --dump-ir: NULL-terminated. */
extern const char *const opt_pass_names[];

/* ---- emit.c: IR -> cBPF ---- */

/* Lays out the blocks and writes the program (far jumps via ja); 0 or -1. */
int emit_run(const struct ir_func *fn, const struct bpfkit_alloc *alloc, struct bpfkit_prog *out,
	     struct bpfkit_error *err);

/* ---- jit_x86_64.c: the x86-64 JIT ---- */

/* The generated machine code and its length (tests: blinding, disassembly). */
const uint8_t *jit_code(const struct bpfkit_jit *jit, size_t *len);

#endif
