/*
 * jit_x86_64.c - compiles a classic BPF program (libpcap dialect, no
 * metadata) to x86-64 machine code: docs/engines.md, section "jit".
 *
 * The pipeline is three steps over side tables indexed by instruction:
 *   analyse   reachability, basic blocks, per block the packet extent its
 *             absolute loads need (hoisted backwards while every path must
 *             load at least as far, and skipped when every path into the
 *             block already checked as far), per group of indirect loads
 *             sharing one X the extent they need, which M[] cells are read;
 *   size      the emitter runs without a buffer, learning each label's
 *             offset; a jump whose displacement does not fit in 8 bits
 *             becomes a 32-bit jump, and sizing repeats until no jump grows;
 *   emit      the same emitter writes into pages mapped PROT_READ|WRITE,
 *             which are then switched to PROT_READ|EXEC.
 *
 * Invariants:
 * - Only programs accepted by bpfkit_validate(..., BPFKIT_VALIDATE_PCAP) are
 *   compiled, so opcodes, M[] indexes, constant divisors and shifts, and jump
 *   targets are known good; jumps only go forward.
 * - The code returns exactly what bpfkit_interp(insns, n, pkt, caplen,
 *   wirelen, NULL) returns.  A failing bounds check may fire earlier than the
 *   load it guards, but only when every path from there ends with 0 anyway.
 * - Every packet access is covered by a check made in 64-bit or 32-bit
 *   arithmetic that cannot wrap.
 * - Registers: A = eax, X = ecx, packet = rdi, caplen = rsi (zero-extended),
 *   wirelen = r9d, scratch r8, edx (div, chains), xmm0-3 (jeq chains).  M[k]
 *   lives in the red zone at [rsp - 64 + 4k]: the code is a leaf and calls
 *   nothing.  A and X are zeroed at entry only when read before written.
 * - A load whose value only the next jump reads may compare in memory
 *   against the byte-swapped constant (A is then dead, left stale).
 * - Jeq chains compare in SSE2 registers against a constant pool after the
 *   code (16-byte aligned, same pages, read only); never when blinding.
 * - Pairs (emit_pair) compute two compares' outcomes with setcc into r8b
 *   and dl and branch once; the second one's bounds checks run first and
 *   fail to a fallback after the code (labels n + 1 + i).  Never when blinding.
 * - With BPFKIT_JIT_BLIND, no 32-bit value taken from the program (k of any
 *   instruction, load extents) appears verbatim: each is emitted as k ^ r and
 *   an xor with r, r fresh per constant from a generator seeded by getrandom.
 * - Pages are never writable and executable at once.
 */
#include "internal.h"

#include <string.h>

#if defined(__x86_64__) && !defined(__ILP32__) && defined(__unix__)
#define JIT_SUPPORTED 1
#else
#define JIT_SUPPORTED 0
#endif

#if JIT_SUPPORTED
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/random.h>
#endif
#endif

/* Longer programs are refused (callers fall back to an interpreter). */
#define JIT_MAX_INSNS (1u << 20)

struct bpfkit_jit {
	bpfkit_jit_fn fn;           /* first: bpfkit_jit_run loads only this */
	void *map;
	size_t map_size, code_size;
	struct bpfkit_alloc alloc;  /* a copy of the caller's hook ({0} for malloc) */
};

#if JIT_SUPPORTED

/* ------------------------------------------------------------------ */
/* Analysis                                                            */

enum {
	I_REACH = 1 << 0,   /* some path from instruction 0 gets here */
	I_LEADER = 1 << 1,  /* first instruction of a basic block */
	I_LIVE_A = 1 << 2,  /* some path from here reads A before writing it */
	I_LIVE_X = 1 << 3   /* the same for X */
};

struct block {
	size_t first, last;
	size_t succ[2];     /* leaders of the successors */
	int nsucc;
	uint64_t own;       /* largest k + size of the block's absolute loads */
	uint64_t need;      /* own, raised to what every successor path needs */
	uint64_t known_in;  /* extent every path into the block has checked */
	uint64_t check;     /* extent to check at entry, 0 when none */
};

struct analysis {
	const struct bpfkit_insn *insns;
	size_t n;
	uint8_t *flags;         /* I_* per instruction */
	size_t *block_of;       /* leader -> block index */
	uint64_t *ind_check;    /* extent to check before an indirect load, 0: covered */
	struct block *blocks;
	size_t nblocks;
	uint8_t *npred;         /* predecessors per instruction, saturating at 2 */
	uint32_t *chain;        /* at the head of a jeq chain (emit_chain): its length */
	uint32_t *pair;         /* at a pair's first instruction: its first jump + 1 (NULL: none) */
	size_t npairs;
	uint16_t mem_read;      /* M[] cells some reachable instruction reads */
	bool uses_len, uses_ind;
	bool defers;            /* some exit to ret #0 is deferred (see emit_branch) */
	size_t defer_from;      /* no bounds check is emitted at or after this pc + 1 */
	size_t defer_first;     /* the first jump, deferred before a rare test (or SIZE_MAX) */
};

static uint32_t load_size(uint16_t code)
{
	switch (BPFKIT_SIZE(code)) {
	case BPFKIT_W:
		return 4;
	case BPFKIT_H:
		return 2;
	default:
		return 1;
	}
}

static const struct opcode_info *info(const struct bpfkit_insn *in)
{
	return opcode_lookup(in->code);
}

static bool is_ret0(const struct bpfkit_insn *in)
{
	return in->code == (BPFKIT_RET | BPFKIT_K) && in->k == 0;
}

/*
 * A conditional jump at pc may defer its exit to `ret #0` (emit_branch) only
 * near the end of the program: deferring runs everything after the jump on
 * packets that would have left, so it pays only when that tail is short
 * (measured: deferring the protocol test of a 50-port list made it 1.4x
 * slower; a long tail is a long wasted walk).  A program of at most
 * DEFER_PAST_CHECK instructions is all tail: `tcp[tcpflags] & ... ==
 * tcp-syn` (12) runs without a branch on the packet's bytes, 3-5% faster
 * than with its first two tests as a branch.
 */
#define DEFER_MAX_TAIL 8
#define DEFER_PAST_CHECK 12   /* longer programs defer only after their last check */

static bool may_defer(size_t n, size_t pc)
{
	return n <= DEFER_PAST_CHECK || n - (pc + 1) <= DEFER_MAX_TAIL;
}

/*
 * A test random bytes almost never pass starts at pc: `ld [k]` (a 32-bit
 * load), perhaps `and #m` with m of at least 8 bits, then `jeq #c` (a host
 * or net address).
 */
static bool rare_test_at(const struct bpfkit_insn *insns, size_t n, size_t pc)
{
	if (pc + 1 >= n || insns[pc].code != (BPFKIT_LD | BPFKIT_W | BPFKIT_ABS))
		return false;
	size_t j = pc + 1;
	if (insns[j].code == (BPFKIT_ALU | BPFKIT_AND | BPFKIT_K)) {
		if (__builtin_popcount(insns[j].k) < 8 || ++j >= n)
			return false;
	}
	return insns[j].code == (BPFKIT_JMP | BPFKIT_JEQ | BPFKIT_K);
}

/* The jump at pc has `ret #0` on one side and next on the other. */
static bool exit_beside(const struct bpfkit_insn *insns, size_t pc, size_t next)
{
	size_t t = pc + 1 + insns[pc].jt, f = pc + 1 + insns[pc].jf;
	return (t == next && is_ret0(&insns[f])) || (f == next && is_ret0(&insns[t]));
}

/* Successor instruction indexes of pc; returns how many (0 for a return). */
static int successors(const struct bpfkit_insn *in, size_t pc, size_t out[2])
{
	unsigned f = info(in)->flags;
	if (f & F_RET)
		return 0;
	if (f & F_JUMP) {
		out[0] = pc + 1 + in->k;
		return 1;
	}
	if (f & F_COND) {
		out[0] = pc + 1 + in->jt;
		out[1] = pc + 1 + in->jf;
		return out[0] == out[1] ? 1 : 2;
	}
	out[0] = pc + 1;
	return 1;
}

/*
 * A jeq chain: CHAIN_MIN or more `jeq #k` in a row on the same A, all
 * jumping to one target T when equal and each falling to the next when not,
 * entered only at its head, the others without a bounds check (a port list:
 * `port 20 or port 21 or ...`).  emit_chain compares A with every constant
 * at once in SSE2 registers: one branch instead of one per constant.
 *
 * The lanes are as narrow as A can be: when the head is entered only from a
 * `ldh` (`ldb`) just before it, A < 2^16 (2^8), and when every constant fits
 * too, 8 (16) constants go in a 16-byte slot instead of 4.  an->chain keeps
 * the length in its low bits and log2 of the lane width above CHAIN_WSHIFT.
 */
#define CHAIN_MIN 6
#define CHAIN_WSHIFT 28
#define CHAIN_LEN(c) ((size_t)((c) & ((1u << CHAIN_WSHIFT) - 1)))
#define CHAIN_WIDTH(c) (1u << ((c) >> CHAIN_WSHIFT))

/* log2 of the narrowest lane (bytes) holding A and the m constants at pc. */
static uint32_t chain_lane_log2(const struct analysis *an, size_t pc, size_t m)
{
	const struct bpfkit_insn *insns = an->insns;
	if (pc == 0 || (an->flags[pc] & I_LEADER) || BPFKIT_CLASS(insns[pc - 1].code) != BPFKIT_LD)
		return 2;
	uint32_t mode = BPFKIT_MODE(insns[pc - 1].code), size = BPFKIT_SIZE(insns[pc - 1].code);
	if ((mode != BPFKIT_ABS && mode != BPFKIT_IND) || (size != BPFKIT_H && size != BPFKIT_B))
		return 2;
	uint32_t max = size == BPFKIT_H ? 0xffff : 0xff;
	for (size_t i = 0; i < m; i++)
		if (insns[pc + i].k > max)
			return 2;   /* a constant A cannot equal: left to the general code */
	return size == BPFKIT_H ? 1 : 0;
}

static void find_chains(struct analysis *an)
{
	const struct bpfkit_insn *insns = an->insns;
	for (size_t pc = 0; pc < an->n; pc++) {
		if (!(an->flags[pc] & I_REACH))
			continue;
		size_t m = opcode_jeq_chain(insns, an->n, pc, an->npred), c = m ? 1 : 0;
		/* the later members must not check bounds (a check is an exit) */
		while (c < m && !an->blocks[an->block_of[pc + c]].check)
			c++;
		m = c;
		if (m >= CHAIN_MIN) {
			an->chain[pc] = (uint32_t)m | chain_lane_log2(an, pc, m) << CHAIN_WSHIFT;
			pc += m - 1;
		}
	}
}

static void analyse(struct analysis *an)
{
	const struct bpfkit_insn *insns = an->insns;
	size_t n = an->n;

	/* Reachability and leaders: jumps go forward, so one pass in order. */
	an->flags[0] = I_REACH | I_LEADER;
	for (size_t pc = 0; pc < n; pc++) {
		if (!(an->flags[pc] & I_REACH))
			continue;
		size_t s[2];
		int ns = successors(&insns[pc], pc, s);
		bool ends = (info(&insns[pc])->flags & (F_RET | F_JUMP | F_COND)) != 0;
		for (int j = 0; j < ns; j++) {
			an->flags[s[j]] |= I_REACH | (ends ? I_LEADER : 0);
			if (an->npred[s[j]] < 2)
				an->npred[s[j]]++;
		}
	}

	/*
	 * Liveness of A and X at each instruction, backwards (jumps go
	 * forward): the entry zeroes only a live register, and a load whose
	 * value only a compare reads becomes a compare against memory.
	 */
	for (size_t pc = n; pc-- > 0;) {
		size_t s[2];
		unsigned f = info(&insns[pc])->flags;
		int ns = successors(&insns[pc], pc, s);
		uint8_t out = 0;
		for (int j = 0; j < ns; j++)
			out |= an->flags[s[j]] & (I_LIVE_A | I_LIVE_X);
		if (f & F_WR_A)
			out &= (uint8_t)~I_LIVE_A;
		if (f & F_WR_X)
			out &= (uint8_t)~I_LIVE_X;
		if (f & F_RD_A)
			out |= I_LIVE_A;
		if (f & F_RD_X)
			out |= I_LIVE_X;
		an->flags[pc] |= out;
	}

	/* Blocks and what each needs of the packet. */
	an->nblocks = 0;
	for (size_t pc = 0; pc < n; pc++) {
		if (!(an->flags[pc] & I_REACH))
			continue;
		const struct bpfkit_insn *in = &insns[pc];
		const struct opcode_info *o = info(in);
		struct block *b;
		if (an->flags[pc] & I_LEADER) {
			b = &an->blocks[an->nblocks];
			an->block_of[pc] = an->nblocks++;
			*b = (struct block){pc, pc, {0, 0}, 0, 0, 0, UINT64_MAX, 0};
		} else {
			b = &an->blocks[an->nblocks - 1];
		}
		b->last = pc;
		if (o->operand == OPND_ABS || o->operand == OPND_MSH) {
			uint64_t ext = (uint64_t)in->k + load_size(in->code);
			if (ext > b->own)
				b->own = ext;
		}
		if (o->operand == OPND_MEM && (o->flags & F_RD_M))
			an->mem_read |= (uint16_t)(1u << in->k);
		if (o->operand == OPND_LEN)
			an->uses_len = true;
		if (o->operand == OPND_IND)
			an->uses_ind = true;
		bool ends = (o->flags & (F_RET | F_JUMP | F_COND)) != 0;
		if (!ends && pc + 1 < n && (an->flags[pc + 1] & I_LEADER)) {
			b->succ[0] = pc + 1;
			b->nsucc = 1;
		} else if (ends) {
			b->nsucc = successors(in, pc, b->succ);
		}
	}

	/*
	 * Backward: a block needs what its own loads need, or more when every
	 * successor needs more (each path from here then loads that far before
	 * it can return, so a packet too short for it gives 0 anyway).  A block
	 * that is `ret #0` returns 0 whatever the packet: it needs "everything"
	 * (UINT64_MAX), so the paths beside it set the need (`ldb [23]; jeq #6,
	 * L, drop` checks as far as L's loads go).  A block all of whose paths
	 * drop keeps its own need (any check would do; its own is cheapest).
	 */
	for (size_t i = an->nblocks; i-- > 0;) {
		struct block *b = &an->blocks[i];
		if (b->first == b->last && is_ret0(&insns[b->first])) {
			b->need = UINT64_MAX;
			continue;
		}
		uint64_t succ_min = b->nsucc ? UINT64_MAX : 0;
		for (int j = 0; j < b->nsucc; j++) {
			uint64_t s = an->blocks[an->block_of[b->succ[j]]].need;
			if (s < succ_min)
				succ_min = s;
		}
		b->need = b->own > succ_min ? b->own : succ_min;
	}
	for (size_t i = 0; i < an->nblocks; i++)
		if (an->blocks[i].need == UINT64_MAX)
			an->blocks[i].need = an->blocks[i].own;

	/* Forward: check at entry only what no path into the block has checked. */
	an->blocks[0].known_in = 0;
	for (size_t i = 0; i < an->nblocks; i++) {
		struct block *b = &an->blocks[i];
		uint64_t out = b->known_in;
		if (b->need > b->known_in) {
			b->check = b->need;
			out = b->need;
		}
		for (int j = 0; j < b->nsucc; j++) {
			struct block *s = &an->blocks[an->block_of[b->succ[j]]];
			if (out < s->known_in)
				s->known_in = out;
		}
	}

	find_chains(an);

	/*
	 * Indirect loads: within a block, the loads between two writes of X
	 * share one check, placed at the first of them, for the largest k + size.
	 */
	for (size_t i = 0; i < an->nblocks; i++) {
		const struct block *b = &an->blocks[i];
		size_t group = SIZE_MAX;
		for (size_t pc = b->first; pc <= b->last; pc++) {
			const struct opcode_info *o = info(&insns[pc]);
			if (o->operand == OPND_IND) {
				uint64_t ext = (uint64_t)insns[pc].k + load_size(insns[pc].code);
				if (group == SIZE_MAX)
					group = pc;
				if (ext > an->ind_check[group])
					an->ind_check[group] = ext;
			}
			if (o->flags & F_WR_X)
				group = SIZE_MAX;
		}
	}

	/*
	 * Deferring an exit past a bounds check runs loads and a length test on
	 * packets that would have left, and keeps the keep mask (two registers
	 * set up on entry, an `and` on every accept) for exits most traffic
	 * never takes: in programs longer than DEFER_PAST_CHECK, exits defer
	 * only after the last check (`net 10.0.0.0/8` on bench-real.pcap: 3.07
	 * -> 2.87 ns).  Short programs are all tail, and deferring their first
	 * test saves the one mispredicted branch (`ip6 and tcp` on a mix of
	 * IPv4 and IPv6: 2.29 ns deferred, 2.88 not).
	 */
	an->defer_from = 0;
	for (size_t i = 0; i < an->nblocks && n > DEFER_PAST_CHECK; i++)
		if (an->blocks[i].check && an->blocks[i].first > an->defer_from)
			an->defer_from = an->blocks[i].first;
	for (size_t pc = 0; pc < n && n > DEFER_PAST_CHECK; pc++)
		if (an->ind_check[pc] && pc > an->defer_from)
			an->defer_from = pc;
	/*
	 * The program's first test may defer its exit when what it falls into
	 * is a 32-bit address compare (rare_test_at): its outcome (IPv4 or not)
	 * is what a mix of protocols makes random, and the compare after it,
	 * which random bytes almost never pass, rejects the packets it lets
	 * through with a branch that predicts well (`host 10.0.0.1 and port
	 * 53`: 29% faster on the generated mix, the same on bench-real.pcap).
	 * Deferring later tests the same way was measured and is not done: it
	 * makes common packets run tests meant for rare ones (`net 10.0.0.0/8`:
	 * IPv6 packets ran the ARP address tests, 10% slower on real traffic).
	 */
	an->defers = false;
	an->defer_first = SIZE_MAX;
	size_t first = 0;
	while (first < n && !(info(&insns[first])->flags & (F_COND | F_JUMP | F_RET)))
		first++;
	if (first < n && (info(&insns[first])->flags & F_COND) &&
	    exit_beside(insns, first, first + 1) && rare_test_at(insns, n, first + 1)) {
		an->defer_first = first;
		an->defers = true;
	}
	for (size_t pc = an->defer_from; pc < n; pc++) {
		const struct bpfkit_insn *in = &insns[pc];
		if ((info(in)->flags & F_COND) && in->jt != in->jf && may_defer(n, pc) &&
		    (an->flags[pc] & I_REACH) &&
		    (is_ret0(&insns[pc + 1 + in->jt]) || is_ret0(&insns[pc + 1 + in->jf])))
			an->defers = true;
	}
}

/* ------------------------------------------------------------------ */
/* The x86-64 encoder                                                  */

enum reg { RAX = 0, RCX = 1, RDX = 2, RBX = 3, RSP = 4, RBP = 5, RSI = 6, RDI = 7, R8 = 8,
	   R9 = 9, R10 = 10, R11 = 11 };
enum { REG_A = RAX, REG_X = RCX, REG_PKT = RDI, REG_CAPLEN = RSI, REG_LEN = R9, REG_TMP = R8,
       REG_KEEP = R10, REG_ZERO = R11 };

/* Condition codes (the low nibble of Jcc). */
enum cc { CC_B = 2, CC_AE = 3, CC_E = 4, CC_NE = 5, CC_BE = 6, CC_A = 7 };
#define CC_ALWAYS (-1)

/* Group-1 ALU operations: the /digit of opcodes 0x81 / 0x83. */
enum alu1 { ALU_ADD = 0, ALU_OR = 1, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7 };

struct jump_site {
	size_t target;      /* label */
	size_t end;         /* offset just past the jump in the last pass */
	bool near;          /* rel32 instead of rel8 */
};

struct emitter {
	const struct analysis *an;
	uint8_t *buf;            /* NULL while sizing */
	size_t pos;
	size_t *label_prev;      /* label offsets of the previous pass (n + 1) */
	size_t *label_cur;       /* this pass */
	struct jump_site *sites;
	size_t nsites, max_sites;
	bool blind;
	size_t took;             /* emit_insn also compiled this many instructions after pc */
	size_t *fallback_pc;     /* pairs whose second half checks bounds (emit_pair) */
	size_t nfallbacks;
	size_t pool_prev;        /* offset of the constant pool in the previous pass */
	size_t pool_next;        /* 16-byte slots of the pool handed out so far */
	uint64_t rng[2];         /* xorshift128+ state for blinding values */
};

static void put8(struct emitter *e, unsigned b)
{
	if (e->buf)
		e->buf[e->pos] = (uint8_t)b;
	e->pos++;
}

static void put32(struct emitter *e, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		put8(e, (v >> (8 * i)) & 0xff);
}

static bool fits8(int64_t v)
{
	return v >= -128 && v <= 127;
}

/* One, two or three opcode bytes, most significant first. */
static void put_op(struct emitter *e, unsigned op)
{
	if (op > 0xffff)
		put8(e, op >> 16);
	if (op > 0xff)
		put8(e, (op >> 8) & 0xff);
	put8(e, op & 0xff);
}

static void put_rex(struct emitter *e, bool w, int reg, int index, int base)
{
	unsigned rex = 0x40 | (w ? 8 : 0) | ((reg >> 3) & 1) << 2 | ((index >> 3) & 1) << 1 |
		       ((base >> 3) & 1);
	if (rex != 0x40)
		put8(e, rex);
}

/* op reg, rm with both registers (ModRM mod = 3). */
static void emit_rr(struct emitter *e, unsigned op, bool w, int reg, int rm)
{
	put_rex(e, w, reg, 0, rm);
	put_op(e, op);
	put8(e, 0xc0 | (reg & 7) << 3 | (rm & 7));
}

/* op reg, [base + index + disp] (index < 0: none; scale 1). */
static void emit_rm(struct emitter *e, unsigned op, bool w, int reg, int base, int index,
		    int32_t disp)
{
	put_rex(e, w, reg, index < 0 ? 0 : index, base);
	put_op(e, op);
	int mod = disp == 0 && (base & 7) != RBP ? 0 : fits8(disp) ? 1 : 2;
	if (index < 0 && (base & 7) != RSP) {
		put8(e, (unsigned)mod << 6 | (reg & 7) << 3 | (base & 7));
	} else {
		put8(e, (unsigned)mod << 6 | (reg & 7) << 3 | 4);
		put8(e, (unsigned)((index < 0 ? RSP : index) & 7) << 3 | (base & 7));
	}
	if (mod == 1)
		put8(e, (uint8_t)disp);
	else if (mod == 2)
		put32(e, (uint32_t)disp);
}

/* A fresh non-zero blinding value. */
static uint32_t blind_value(struct emitter *e)
{
	for (;;) {
		uint64_t s1 = e->rng[0];
		const uint64_t s0 = e->rng[1];
		e->rng[0] = s0;
		s1 ^= s1 << 23;
		e->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
		uint32_t r = (uint32_t)((e->rng[1] + s0) >> 16);
		if (r != 0)
			return r;
	}
}

/* reg32 = imm; a program constant is blinded when asked. */
static void emit_mov_imm(struct emitter *e, int reg, uint32_t imm, bool from_prog)
{
	if (from_prog && e->blind) {
		uint32_t r = blind_value(e);
		put_rex(e, false, 0, 0, reg);
		put8(e, 0xb8 + (reg & 7));
		put32(e, imm ^ r);
		put_rex(e, false, 0, 0, reg);
		put8(e, 0x81);
		put8(e, 0xc0 | ALU_XOR << 3 | (reg & 7));
		put32(e, r);
		return;
	}
	if (imm == 0) {
		emit_rr(e, 0x31, false, reg, reg); /* xor reg, reg */
		return;
	}
	put_rex(e, false, 0, 0, reg);
	put8(e, 0xb8 + (reg & 7));
	put32(e, imm);
}

/*
 * reg32 op= imm (op a group-1 ALU operation).  Blinded: through the scratch
 * register, so the constant never appears.
 */
static void emit_alu_imm(struct emitter *e, enum alu1 op, int reg, uint32_t imm, bool from_prog)
{
	if (from_prog && e->blind) {
		emit_mov_imm(e, REG_TMP, imm, true);
		emit_rr(e, 0x01 + 8 * (unsigned)op, false, REG_TMP, reg); /* op reg, tmp */
		return;
	}
	put_rex(e, false, 0, 0, reg);
	if (fits8((int32_t)imm)) {
		put8(e, 0x83);
		put8(e, 0xc0 | (unsigned)op << 3 | (reg & 7));
		put8(e, imm & 0xff);
	} else {
		put8(e, 0x81);
		put8(e, 0xc0 | (unsigned)op << 3 | (reg & 7));
		put32(e, imm);
	}
}

static void emit_bswap(struct emitter *e, int reg)
{
	put_rex(e, false, 0, 0, reg);
	put8(e, 0x0f);
	put8(e, 0xc8 + (reg & 7));
}

/* rol reg16, 8: swaps the two low bytes, the upper 16 bits untouched (one uop). */
static void emit_rol16_8(struct emitter *e, int reg)
{
	put8(e, 0x66);
	put_rex(e, false, 0, 0, reg);
	put8(e, 0xc1);
	put8(e, 0xc0 | (reg & 7));
	put8(e, 8);
}

/* The /digit of the shift group (0xc1 / 0xd3). */
enum shift { SHIFT_SHL = 4, SHIFT_SHR = 5 };

static void emit_shift_imm(struct emitter *e, enum shift op, int reg, unsigned count)
{
	put_rex(e, false, 0, 0, reg);
	put8(e, 0xc1);
	put8(e, 0xc0 | (unsigned)op << 3 | (reg & 7));
	put8(e, count & 31);
}

/* A jump to label (CC_ALWAYS: jmp), short or near as sizing decided. */
static void emit_jump(struct emitter *e, int cc, size_t label)
{
	if (e->nsites >= e->max_sites) { /* cannot happen: max_sites bounds every path */
		e->pos += 6;
		return;
	}
	struct jump_site *s = &e->sites[e->nsites++];
	size_t len = s->near ? (cc == CC_ALWAYS ? 5 : 6) : 2;
	size_t end = e->pos + len;
	int64_t rel = (int64_t)e->label_prev[label] - (int64_t)end;
	s->target = label;
	s->end = end;
	if (!s->near) {
		put8(e, cc == CC_ALWAYS ? 0xeb : 0x70 + (unsigned)cc);
		put8(e, (uint8_t)rel);
	} else {
		if (cc == CC_ALWAYS) {
			put8(e, 0xe9);
		} else {
			put8(e, 0x0f);
			put8(e, 0x80 + (unsigned)cc);
		}
		put32(e, (uint32_t)(int32_t)rel);
	}
}

/* ------------------------------------------------------------------ */
/* Instruction selection                                               */

static size_t label_fail(const struct emitter *e)
{
	return e->an->n;
}

/* The instruction that runs after pc when nothing jumps (the next reachable one). */
static size_t next_live(const struct analysis *an, size_t pc)
{
	size_t i = pc + 1;
	while (i < an->n && !(an->flags[i] & I_REACH))
		i++;
	return i;
}

/* Control goes from pc to target: nothing when target's code follows. */
static void emit_goto(struct emitter *e, int cc, size_t pc, size_t target)
{
	const struct bpfkit_insn *t = &e->an->insns[target];
	if (cc == CC_ALWAYS && target == next_live(e->an, pc))
		return;
	bool ret0 = t->code == (BPFKIT_RET | BPFKIT_K) && t->k == 0;
	emit_jump(e, cc, ret0 ? label_fail(e) : target);
}

/* if caplen < ext: go to label.  ext is a program-derived extent (k + size). */
static void emit_abs_check_to(struct emitter *e, uint64_t ext, size_t label)
{
	if (ext > UINT32_MAX) {
		emit_jump(e, CC_ALWAYS, label);
		return;
	}
	emit_alu_imm(e, ALU_CMP, REG_CAPLEN, (uint32_t)ext, true);
	emit_jump(e, CC_B, label);
}

static void emit_abs_check(struct emitter *e, uint64_t ext)
{
	emit_abs_check_to(e, ext, label_fail(e));
}

/* if X + ext > caplen (64-bit, exact): go to label. */
static void emit_ind_check_to(struct emitter *e, uint64_t ext, size_t label)
{
	if (ext > UINT32_MAX) {
		emit_jump(e, CC_ALWAYS, label);
		return;
	}
	if (!e->blind && ext <= INT32_MAX) {
		emit_rm(e, 0x8d, true, REG_TMP, REG_X, -1, (int32_t)ext); /* lea tmp, [x + ext] */
	} else {
		emit_mov_imm(e, REG_TMP, (uint32_t)ext, true);
		emit_rr(e, 0x01, true, REG_X, REG_TMP);                 /* add tmp, x (64) */
	}
	emit_rr(e, 0x39, true, REG_CAPLEN, REG_TMP);                    /* cmp tmp, caplen */
	emit_jump(e, CC_A, label);
}

static void emit_ind_check(struct emitter *e, uint64_t ext)
{
	emit_ind_check_to(e, ext, label_fail(e));
}

/*
 * A = the size bytes at [pkt + (x if ind) + k], big-endian; the checks are
 * done.  k < 2^31 goes in the displacement unless blinding; otherwise the
 * offset is built in the scratch register (zero-extended, exact).
 */
static void emit_load(struct emitter *e, int dst, uint32_t k, uint32_t size, bool ind)
{
	int index = ind ? REG_X : -1;
	int32_t disp = (int32_t)k;
	if (e->blind || k > INT32_MAX) {
		emit_mov_imm(e, REG_TMP, k, true);
		if (ind)
			emit_rr(e, 0x01, true, REG_X, REG_TMP); /* add tmp, x (64) */
		index = REG_TMP;
		disp = 0;
	}
	switch (size) {
	case 1:
		emit_rm(e, 0x0fb6, false, dst, REG_PKT, index, disp); /* movzx dst, byte */
		return;
	case 2:
		emit_rm(e, 0x0fb7, false, dst, REG_PKT, index, disp); /* movzx dst, word */
		emit_rol16_8(e, dst);
		return;
	default:
		emit_rm(e, 0x8b, false, dst, REG_PKT, index, disp);   /* mov dst, dword */
		emit_bswap(e, dst);
		return;
	}
}

/* M[k] in the red zone below the stack pointer. */
static int32_t mem_disp(uint32_t k)
{
	return -4 * BPFKIT_MEMWORDS + 4 * (int32_t)k;
}

/*
 * cmp/test already set the flags: go to jt when cc holds, else to jf.  An
 * exit to `ret #0` beside a fall-through is deferred, not taken: the keep
 * mask becomes 0 (cmov, no branch to mispredict) and the code runs on; every
 * other return ands its value with the mask.  Safe because whatever the rest
 * does (more loads, checks, divisions), it ends in some return, and 0 wins.
 */
static bool defers_at(const struct analysis *an, size_t pc)
{
	return an->defers && ((may_defer(an->n, pc) && pc >= an->defer_from) ||
			      pc == an->defer_first);
}

static void emit_branch_to(struct emitter *e, size_t pc, enum cc cc, size_t t, size_t f)
{
	size_t next = next_live(e->an, pc);
	bool defer = defers_at(e->an, pc);
	if (defer && t == next && is_ret0(&e->an->insns[f])) {
		emit_rr(e, 0x0f40 + (unsigned)(cc ^ 1), false, REG_KEEP, REG_ZERO);
	} else if (defer && f == next && is_ret0(&e->an->insns[t])) {
		emit_rr(e, 0x0f40 + (unsigned)cc, false, REG_KEEP, REG_ZERO);
	} else if (t == next) {
		emit_goto(e, (int)(cc ^ 1), pc, f);  /* x86 conditions pair as c, c ^ 1 */
	} else {
		emit_goto(e, (int)cc, pc, t);
		emit_goto(e, CC_ALWAYS, pc, f);
	}
}

/* The same for the conditional jump at pc, to its own targets. */
static void emit_branch(struct emitter *e, size_t pc, enum cc cc)
{
	const struct bpfkit_insn *in = &e->an->insns[pc];
	emit_branch_to(e, pc, cc, pc + 1 + in->jt, pc + 1 + in->jf);
}

/* cmp A, k (k == 0: test A, A when not blinding). */
static void emit_cmp_k(struct emitter *e, uint32_t k)
{
	if (k == 0 && !e->blind)
		emit_rr(e, 0x85, false, REG_A, REG_A);
	else
		emit_alu_imm(e, ALU_CMP, REG_A, k, true);
}

static bool is_pow2(uint32_t k)
{
	return k && !(k & (k - 1));
}

static unsigned log2_32(uint32_t k)
{
	unsigned s = 0;
	while (k >>= 1)
		s++;
	return s;
}

/* A = A / k or A % k (k != 0: validated). */
static void emit_div_k(struct emitter *e, uint32_t k, bool mod)
{
	if (!e->blind && is_pow2(k)) {
		if (mod)
			emit_alu_imm(e, ALU_AND, REG_A, k - 1, false);
		else if (k > 1)
			emit_shift_imm(e, SHIFT_SHR, REG_A, log2_32(k));
		return;
	}
	emit_mov_imm(e, REG_TMP, k, true);
	emit_rr(e, 0x31, false, RDX, RDX);          /* xor edx, edx */
	emit_rr(e, 0xf7, false, 6, REG_TMP);        /* div tmp */
	if (mod)
		emit_rr(e, 0x89, false, RDX, REG_A);  /* mov eax, edx */
}

/* A = A / X or A % X; X == 0 returns 0. */
static void emit_div_x(struct emitter *e, bool mod)
{
	emit_rr(e, 0x85, false, REG_X, REG_X);      /* test ecx, ecx */
	emit_jump(e, CC_E, label_fail(e));
	emit_rr(e, 0x31, false, RDX, RDX);
	emit_rr(e, 0xf7, false, 6, REG_X);          /* div ecx */
	if (mod)
		emit_rr(e, 0x89, false, RDX, REG_A);
}

/* libpcap: A = X < 32 ? A shifted by X : 0, without a branch. */
static void emit_shift_x(struct emitter *e, enum shift op)
{
	emit_rr(e, 0xd3, false, (int)op, REG_A);            /* shl/shr eax, cl */
	emit_rr(e, 0x31, false, REG_TMP, REG_TMP);          /* xor tmp, tmp */
	emit_alu_imm(e, ALU_CMP, REG_X, 32, false);         /* cmp ecx, 32 */
	emit_rr(e, 0x0f43, false, REG_A, REG_TMP);          /* cmovae eax, tmp */
}

static uint32_t swap_size(uint32_t v, uint32_t size)
{
	return size == 4 ? __builtin_bswap32(v) : size == 2 ? __builtin_bswap16((uint16_t)v) : v;
}

/*
 * A compare unit: the instructions first..jpc, ending in the conditional
 * jump jpc, compiled to code that only sets the flags (jt is taken when cc
 * holds).  Three kinds:
 *   U_MEM  a load whose value only the jump reads (A dead on both of its
 *          successors) becomes one compare of the packet bytes in memory
 *          against the constant in packet byte order: `ldh [12]; jeq
 *          #0x800` is `cmp word [pkt + 12], 0x0008`.  Equality and bit
 *          tests work in either byte order; order compares only on single
 *          bytes.  A jset, or a jeq #0 after an `and #m`, is one `test`;
 *   U_REG  `ld [26]; and #0xff000000; jeq #0x0a000000` with A dead after
 *          is `mov eax, [pkt + 26]; and eax, 0xff; cmp eax, 0x0a` (the
 *          mask swapped too, no bswap);
 *   U_A    a jump on A and k as it is: `cmp eax, k` or `test eax, k`.
 * U_MEM and U_REG never when blinding (the constants would appear
 * verbatim); U_A then emits blinded constants.
 */
enum unit_kind { U_A, U_MEM, U_REG };

struct cmp_unit {
	size_t first, jpc;
	enum unit_kind kind;
	enum cc cc;
	uint32_t size, off, v, mask;   /* U_MEM, U_REG: load size and k, constant, mask */
	bool ind, test;
};

/* The U_MEM or U_REG unit whose load is at pc; false when it does not qualify. */
static bool load_cmp_unit(const struct analysis *an, size_t pc, struct cmp_unit *u)
{
	const struct bpfkit_insn *ld = &an->insns[pc];
	uint32_t mode = BPFKIT_MODE(ld->code);
	if (BPFKIT_CLASS(ld->code) != BPFKIT_LD || (mode != BPFKIT_ABS && mode != BPFKIT_IND) ||
	    ld->k > INT32_MAX || pc + 1 >= an->n || (an->flags[pc + 1] & I_LEADER))
		return false;
	uint32_t size = load_size(ld->code);
	size_t jpc = pc + 1;
	uint32_t sizemask = size == 4 ? UINT32_MAX : size == 2 ? 0xffff : 0xff;
	uint32_t m = sizemask;
	bool masked = an->insns[pc + 1].code == (BPFKIT_ALU | BPFKIT_AND | BPFKIT_K);
	if (masked) {
		if (pc + 2 >= an->n || (an->flags[pc + 2] & I_LEADER))
			return false;
		m &= an->insns[pc + 1].k;
		jpc = pc + 2;
	}
	const struct bpfkit_insn *j = &an->insns[jpc];
	if (!(info(j)->flags & F_COND) || BPFKIT_SRC(j->code) != BPFKIT_K || j->jt == j->jf)
		return false;
	size_t t = jpc + 1 + j->jt, f = jpc + 1 + j->jf;
	if ((an->flags[t] | an->flags[f]) & I_LIVE_A)
		return false;
	uint32_t v;
	bool test = false, reg = false;
	enum cc cc;
	switch (BPFKIT_OP(j->code)) {
	case BPFKIT_JEQ:
		if (j->k & ~m || (masked && m == 0))
			return false;   /* decided; left to the plain code */
		cc = CC_E;
		v = j->k;
		if (masked && j->k == 0) {
			test = true;    /* (A & m) == 0: test [mem], m */
			v = m;
		} else if (masked && m != sizemask) {
			reg = true;     /* load, and, cmp */
		}
		break;
	case BPFKIT_JSET:
		test = true;
		cc = CC_NE;
		v = j->k & m;
		if (masked && v == 0)
			return false;
		break;
	case BPFKIT_JGT:
	case BPFKIT_JGE:
		if (masked || size != 1 || j->k > sizemask)
			return false;
		cc = BPFKIT_OP(j->code) == BPFKIT_JGT ? CC_A : CC_AE;
		v = j->k;
		break;
	default:
		return false;
	}
	*u = (struct cmp_unit){.first = pc, .jpc = jpc, .kind = reg ? U_REG : U_MEM, .cc = cc,
			       .size = size, .off = ld->k, .v = swap_size(v & sizemask, size),
			       .mask = swap_size(m, size), .ind = mode == BPFKIT_IND, .test = test};
	return true;
}

/* The U_A unit of the jump at pc (jeq, jgt, jge, jset with k; jt != jf). */
static bool a_cmp_unit(const struct analysis *an, bool blind, size_t pc, struct cmp_unit *u)
{
	const struct bpfkit_insn *j = &an->insns[pc];
	enum cc cc;
	if (BPFKIT_CLASS(j->code) != BPFKIT_JMP || BPFKIT_SRC(j->code) != BPFKIT_K ||
	    !(info(j)->flags & F_COND) || j->jt == j->jf)
		return false;
	switch (BPFKIT_OP(j->code)) {
	case BPFKIT_JEQ:
		cc = CC_E;
		break;
	case BPFKIT_JGT:
		cc = j->k == 0 && !blind ? CC_NE : CC_A;
		break;
	case BPFKIT_JGE:
		cc = CC_AE;
		break;
	case BPFKIT_JSET:
		cc = CC_NE;
		break;
	default:
		return false;
	}
	*u = (struct cmp_unit){.first = pc, .jpc = pc, .kind = U_A, .cc = cc};
	return true;
}

/* The flags of the unit u, nothing else (the branch is the caller's). */
static void emit_unit_cmp(struct emitter *e, const struct cmp_unit *u)
{
	uint32_t k = e->an->insns[u->jpc].k;
	int index = u->ind ? REG_X : -1;
	if (u->kind == U_A) {
		if (BPFKIT_OP(e->an->insns[u->jpc].code) != BPFKIT_JSET) {
			emit_cmp_k(e, k);
		} else if (e->blind) {
			emit_mov_imm(e, REG_TMP, k, true);
			emit_rr(e, 0x85, false, REG_TMP, REG_A);
		} else {
			emit_rr(e, 0xf7, false, 0, REG_A);      /* test eax, imm32 */
			put32(e, k);
		}
		return;
	}
	if (u->kind == U_REG) {
		static const unsigned movs[5] = {0, 0x0fb6, 0x0fb7, 0, 0x8b};
		emit_rm(e, movs[u->size], false, REG_A, REG_PKT, index, (int32_t)u->off);
		emit_alu_imm(e, ALU_AND, REG_A, u->mask, false);
		emit_alu_imm(e, ALU_CMP, REG_A, u->v, false);
		return;
	}
	uint32_t v = u->v;
	if (u->size == 2)
		put8(e, 0x66);
	bool imm8 = u->size == 1 ||
		    (!u->test && (u->size == 2 ? fits8((int16_t)v) : fits8((int32_t)v)));
	if (u->test)
		emit_rm(e, u->size == 1 ? 0xf6 : 0xf7, false, 0, REG_PKT, index, (int32_t)u->off);
	else
		emit_rm(e, u->size == 1 ? 0x80 : imm8 ? 0x83 : 0x81, false, ALU_CMP, REG_PKT,
			index, (int32_t)u->off);
	if (imm8) {
		put8(e, v & 0xff);
	} else if (u->size == 2) {
		put8(e, v & 0xff);
		put8(e, v >> 8);
	} else {
		put32(e, v);
	}
}

/* The load at pc as a U_MEM or U_REG unit with its branch; false: nothing emitted. */
static bool emit_load_cmp(struct emitter *e, size_t pc)
{
	struct cmp_unit u;
	if (e->blind || !load_cmp_unit(e->an, pc, &u))
		return false;
	emit_unit_cmp(e, &u);
	emit_branch(e, u.jpc, u.cc);
	e->took = u.jpc - pc;
	return true;
}

/* A jump on A and k (jt != jf). */
static void emit_a_jump(struct emitter *e, size_t pc)
{
	struct cmp_unit u;
	if (a_cmp_unit(e->an, e->blind, pc, &u)) {
		emit_unit_cmp(e, &u);
		emit_branch(e, pc, u.cc);
	}
}

/*
 * Pairs: two compare units whose jumps share a target S, the second unit a
 * block of its own entered only from the first jump (`src or dst`: `ld
 * [26]; jeq #h, S, B2; B2: ld [30]; jeq #h, S, O`, and likewise `and`, with
 * S the drop).  Which of the two sends a packet to S is often random per
 * packet (request or reply), whether one does much less so; emit_pair
 * computes both conditions without a branch (setcc, or) and branches once.
 * A needs to be dead at S (it differs by path) unless neither unit loads it.
 * The second block's bounds checks move in front of the first compare and
 * go, when they fail, to a fallback after the code that makes the first
 * compare alone (a short packet goes to S or returns 0, as B2's failing
 * check would).
 */
struct pair {
	struct cmp_unit u1, u2;
	size_t s, o;          /* the shared target; the second jump's other one */
	enum cc cc1, cc2;     /* unit 1 (2) goes to S when cc1 (cc2) holds */
};

static bool unit_at(const struct analysis *an, size_t pc, struct cmp_unit *u)
{
	return load_cmp_unit(an, pc, u) || a_cmp_unit(an, false, pc, u);
}

/* The jump at pc becomes a cmov of the keep mask, no branch (emit_branch). */
static bool deferred(const struct analysis *an, size_t pc)
{
	return defers_at(an, pc) && exit_beside(an->insns, pc, next_live(an, pc));
}

/*
 * The pair whose first jump is jpc, when it qualifies.  Not when either
 * jump is a deferred exit: that one has no branch to save (measured: `ip6
 * and tcp` 2.31 -> 2.55 ns paired).  Not when neither unit loads: two tests
 * of one A (`jeq #132; jeq #6` of a protocol list, the leaves of a switch
 * tree) are rarely "one or the other at random", and the pair only adds
 * work (bpfkit's 50-port tree: 9% slower on the generated mix).
 */
static bool pair_from(const struct analysis *an, size_t jpc, struct pair *p)
{
	const struct bpfkit_insn *j1 = &an->insns[jpc];
	if (!(an->flags[jpc] & I_REACH) || !(info(j1)->flags & F_COND))
		return false;
	bool found = false;
	for (size_t back = 1; back <= 2 && back <= jpc && !found; back++)
		found = load_cmp_unit(an, jpc - back, &p->u1) && p->u1.jpc == jpc;
	if (!found && !a_cmp_unit(an, false, jpc, &p->u1))
		return false;
	size_t t1 = jpc + 1 + j1->jt, f1 = jpc + 1 + j1->jf, b2 = next_live(an, jpc);
	if ((b2 != t1 && b2 != f1) || an->npred[b2] != 1 || an->chain[b2] ||
	    !unit_at(an, b2, &p->u2))
		return false;
	const struct bpfkit_insn *j2 = &an->insns[p->u2.jpc];
	size_t t2 = p->u2.jpc + 1 + j2->jt, f2 = p->u2.jpc + 1 + j2->jf;
	p->s = b2 == t1 ? f1 : t1;
	if ((p->s != t2 && p->s != f2) || deferred(an, jpc) || deferred(an, p->u2.jpc))
		return false;
	if (p->u1.kind == U_A && p->u2.kind == U_A)
		return false;
	p->o = p->s == t2 ? f2 : t2;
	p->cc1 = p->s == t1 ? p->u1.cc : (enum cc)(p->u1.cc ^ 1);
	p->cc2 = p->s == t2 ? p->u2.cc : (enum cc)(p->u2.cc ^ 1);
	return an->blocks[an->block_of[b2]].check <= UINT32_MAX && an->ind_check[b2] <= INT32_MAX;
}

/* an->pair: every pair, in order, none overlapping a chain or another pair. */
static void find_pairs(struct analysis *an)
{
	for (size_t pc = 0; pc < an->n; pc++) {
		struct pair p;
		if (an->chain[pc]) {
			pc += CHAIN_LEN(an->chain[pc]) - 1;
		} else if (pair_from(an, pc, &p)) {
			an->pair[p.u1.first] = (uint32_t)pc + 1;
			an->npairs++;
			pc = p.u2.jpc;
		}
	}
}

/* The label a jump to target goes to (the shared exit for `ret #0`). */
static size_t target_label(const struct emitter *e, size_t target)
{
	return is_ret0(&e->an->insns[target]) ? label_fail(e) : target;
}

/* The pair starting at pc (an->pair): both conditions in flags, one branch. */
static void emit_pair(struct emitter *e, size_t pc)
{
	const struct analysis *an = e->an;
	struct pair p;
	pair_from(an, an->pair[pc] - 1, &p);
	const struct block *b2 = &an->blocks[an->block_of[p.u2.first]];
	size_t fallback = an->n + 1 + e->nfallbacks;
	if (b2->check)
		emit_abs_check_to(e, b2->check, fallback);
	if (an->ind_check[p.u2.first])
		emit_ind_check_to(e, an->ind_check[p.u2.first], fallback);
	if (b2->check || an->ind_check[p.u2.first])
		e->fallback_pc[e->nfallbacks++] = pc;
	emit_unit_cmp(e, &p.u1);
	emit_rr(e, 0x0f90 + (unsigned)p.cc1, false, 0, REG_TMP);   /* setcc r8b */
	emit_unit_cmp(e, &p.u2);
	emit_rr(e, 0x0f90 + (unsigned)p.cc2, false, 0, RDX);       /* setcc dl */
	emit_rr(e, 0x08, false, REG_TMP, RDX);                     /* or dl, r8b */
	emit_branch_to(e, p.u2.jpc, CC_NE, p.s, p.o);
	e->took = p.u2.jpc - pc;
}

/* After the code: each fallback makes its pair's first compare alone. */
static void emit_fallbacks(struct emitter *e)
{
	const struct analysis *an = e->an;
	for (size_t i = 0; i < e->nfallbacks; i++) {
		struct pair p;
		pair_from(an, an->pair[e->fallback_pc[i]] - 1, &p);
		e->label_cur[an->n + 1 + i] = e->pos;
		emit_unit_cmp(e, &p.u1);
		emit_jump(e, (int)p.cc1, target_label(e, p.s));
		emit_jump(e, CC_ALWAYS, label_fail(e));
	}
}

/* 16-byte slots of the pool the chain c (an->chain) takes. */
static size_t chain_slots(uint32_t c)
{
	size_t lanes = 16 / CHAIN_WIDTH(c);
	return (CHAIN_LEN(c) + lanes - 1) / lanes;
}

/* op xmm_reg, [rip + pool slot] (66 0F op /r, RIP-relative). */
static void emit_xmm_pool(struct emitter *e, unsigned op, int xmm, size_t slot)
{
	put8(e, 0x66);
	put8(e, 0x0f);
	put8(e, op);
	put8(e, (unsigned)(xmm & 7) << 3 | 5);
	int64_t rel = (int64_t)(e->pool_prev + 16 * slot) - (int64_t)(e->pos + 4);
	put32(e, (uint32_t)(int32_t)rel);
}

/* op xmm_reg, xmm_rm (prefix 0F op /r, registers). */
static void emit_xmm_rr_p(struct emitter *e, unsigned prefix, unsigned op, int reg, int rm)
{
	put8(e, prefix);
	put8(e, 0x0f);
	put8(e, op);
	put8(e, 0xc0 | (unsigned)(reg & 7) << 3 | (rm & 7));
}

static void emit_xmm_rr(struct emitter *e, unsigned op, int reg, int rm)
{
	emit_xmm_rr_p(e, 0x66, op, reg, rm);
}

/*
 * The jeq chain c at pc (find_chains): A broadcast to every lane of xmm0
 * (4 dwords, 8 words or 16 bytes), compared with a slot of the pool at a
 * time, the results or-ed into two accumulators (xmm2, xmm3: half the
 * dependency chain); one branch to the chain's target when any lane matched,
 * else on to the last jeq's jf.  Only SSE2 (every x86-64 has it); xmm0-3 are
 * call-clobbered, the caller expects nothing of them.
 */
static void emit_chain(struct emitter *e, size_t pc, uint32_t c)
{
	size_t m = CHAIN_LEN(c), nslots = chain_slots(c);
	uint32_t width = CHAIN_WIDTH(c);
	const struct bpfkit_insn *last = &e->an->insns[pc + m - 1];
	unsigned pcmpeq = width == 4 ? 0x76 : width == 2 ? 0x75 : 0x74;
	size_t slot = e->pool_next;
	e->pool_next += nslots;
	emit_xmm_rr(e, 0x6e, 0, REG_A);                       /* movd xmm0, eax */
	if (width == 1)
		emit_xmm_rr(e, 0x60, 0, 0);                   /* punpcklbw xmm0, xmm0 */
	if (width < 4) {
		emit_xmm_rr_p(e, 0xf2, 0x70, 0, 0);           /* pshuflw xmm0, xmm0, 0 */
		put8(e, 0);
	}
	emit_xmm_rr(e, 0x70, 0, 0);                           /* pshufd xmm0, xmm0, 0 */
	put8(e, 0);
	for (size_t i = 0; i < nslots; i++) {
		int acc = 2 + (int)(i & 1), dst = i < 2 ? acc : 1;
		emit_xmm_rr(e, 0x6f, dst, 0);                 /* movdqa dst, xmm0 */
		emit_xmm_pool(e, pcmpeq, dst, slot + i);      /* pcmpeq dst, [pool] */
		if (dst != acc)
			emit_xmm_rr(e, 0xeb, acc, dst);       /* por acc, dst */
	}
	if (nslots > 1)
		emit_xmm_rr(e, 0xeb, 2, 3);                   /* por xmm2, xmm3 */
	emit_xmm_rr(e, 0xd7, RDX, 2);                         /* pmovmskb edx, xmm2 */
	emit_rr(e, 0x85, false, RDX, RDX);                    /* test edx, edx */
	emit_goto(e, CC_NE, pc + m - 1, pc + m + last->jt);
	emit_goto(e, CC_ALWAYS, pc + m - 1, pc + m + last->jf);
	e->took = m - 1;
}

/* The pool after the code: each chain's constants a lane each, the last slot padded. */
static void emit_pool(struct emitter *e)
{
	const struct analysis *an = e->an;
	while (e->pos % 16)
		put8(e, 0xcc);
	e->pool_prev = e->pos;
	for (size_t pc = 0; pc < an->n; pc++) {
		uint32_t c = an->chain[pc];
		if (!c || !(an->flags[pc] & I_REACH))
			continue;
		size_t m = CHAIN_LEN(c), width = CHAIN_WIDTH(c);
		for (size_t i = 0; i < chain_slots(c) * 16 / width; i++) {
			uint32_t k = an->insns[pc + (i < m ? i : 0)].k;
			for (size_t b = 0; b < width; b++)
				put8(e, (k >> (8 * b)) & 0xff);
		}
	}
}

/* One instruction, preceded by the checks the analysis placed there. */
static void emit_insn(struct emitter *e, size_t pc)
{
	const struct analysis *an = e->an;
	const struct bpfkit_insn *in = &an->insns[pc];
	const uint32_t k = in->k;

	e->label_cur[pc] = e->pos;
	if (!(an->flags[pc] & I_REACH))
		return;
	if (an->flags[pc] & I_LEADER) {
		const struct block *b = &an->blocks[an->block_of[pc]];
		if (b->check)
			emit_abs_check(e, b->check);
	}
	if (an->ind_check[pc])
		emit_ind_check(e, an->ind_check[pc]);
	if ((info(in)->flags & F_COND) && in->jt == in->jf) {
		emit_goto(e, CC_ALWAYS, pc, pc + 1 + in->jt);
		return;
	}
	if (an->chain[pc] && !e->blind) {
		emit_chain(e, pc, an->chain[pc]);
		return;
	}
	if (an->pair && an->pair[pc] && !e->blind) {
		emit_pair(e, pc);
		return;
	}

	switch (in->code) {
#define X(id, code, mnem, opnd, flags) case code: goto op_##id;
	OPCODE_TABLE(X)
#undef X
	default:
		return; /* validated: cannot happen */
	}

op_LD_W_ABS:
	if (emit_load_cmp(e, pc))
		return;
	emit_load(e, REG_A, k, 4, false);
	return;
op_LD_H_ABS:
	if (emit_load_cmp(e, pc))
		return;
	emit_load(e, REG_A, k, 2, false);
	return;
op_LD_B_ABS:
	if (emit_load_cmp(e, pc))
		return;
	emit_load(e, REG_A, k, 1, false);
	return;
op_LD_W_IND:
	if (emit_load_cmp(e, pc))
		return;
	emit_load(e, REG_A, k, 4, true);
	return;
op_LD_H_IND:
	if (emit_load_cmp(e, pc))
		return;
	emit_load(e, REG_A, k, 2, true);
	return;
op_LD_B_IND:
	if (emit_load_cmp(e, pc))
		return;
	emit_load(e, REG_A, k, 1, true);
	return;
op_LD_W_LEN:
	emit_rr(e, 0x89, false, REG_LEN, REG_A);
	return;
op_LD_IMM:
	emit_mov_imm(e, REG_A, k, true);
	return;
op_LD_MEM:
	emit_rm(e, 0x8b, false, REG_A, RSP, -1, mem_disp(k));
	return;
op_LDX_IMM:
	emit_mov_imm(e, REG_X, k, true);
	return;
op_LDX_MEM:
	emit_rm(e, 0x8b, false, REG_X, RSP, -1, mem_disp(k));
	return;
op_LDX_LEN:
	emit_rr(e, 0x89, false, REG_LEN, REG_X);
	return;
op_LDX_MSH:
	emit_load(e, REG_X, k, 1, false);
	emit_alu_imm(e, ALU_AND, REG_X, 0xf, false);
	emit_shift_imm(e, SHIFT_SHL, REG_X, 2);
	return;
op_ST:
	emit_rm(e, 0x89, false, REG_A, RSP, -1, mem_disp(k));
	return;
op_STX:
	emit_rm(e, 0x89, false, REG_X, RSP, -1, mem_disp(k));
	return;

op_ADD_K:
	emit_alu_imm(e, ALU_ADD, REG_A, k, true);
	return;
op_SUB_K:
	emit_alu_imm(e, ALU_SUB, REG_A, k, true);
	return;
op_MUL_K:
	if (!e->blind && is_pow2(k)) {
		if (k > 1)
			emit_shift_imm(e, SHIFT_SHL, REG_A, log2_32(k));
	} else if (!e->blind) {
		emit_rr(e, 0x69, false, REG_A, REG_A);  /* imul eax, eax, imm32 */
		put32(e, k);
	} else {
		emit_mov_imm(e, REG_TMP, k, true);
		emit_rr(e, 0x0faf, false, REG_A, REG_TMP);
	}
	return;
op_DIV_K:
	emit_div_k(e, k, false);
	return;
op_MOD_K:
	emit_div_k(e, k, true);
	return;
op_OR_K:
	emit_alu_imm(e, ALU_OR, REG_A, k, true);
	return;
op_AND_K:
	emit_alu_imm(e, ALU_AND, REG_A, k, true);
	return;
op_XOR_K:
	emit_alu_imm(e, ALU_XOR, REG_A, k, true);
	return;
op_LSH_K:
	if (k & 31)
		emit_shift_imm(e, SHIFT_SHL, REG_A, k);
	return;
op_RSH_K:
	if (k & 31)
		emit_shift_imm(e, SHIFT_SHR, REG_A, k);
	return;
op_ADD_X:
	emit_rr(e, 0x01, false, REG_X, REG_A);
	return;
op_SUB_X:
	emit_rr(e, 0x29, false, REG_X, REG_A);
	return;
op_MUL_X:
	emit_rr(e, 0x0faf, false, REG_A, REG_X);
	return;
op_DIV_X:
	emit_div_x(e, false);
	return;
op_MOD_X:
	emit_div_x(e, true);
	return;
op_OR_X:
	emit_rr(e, 0x09, false, REG_X, REG_A);
	return;
op_AND_X:
	emit_rr(e, 0x21, false, REG_X, REG_A);
	return;
op_XOR_X:
	emit_rr(e, 0x31, false, REG_X, REG_A);
	return;
op_LSH_X:
	emit_shift_x(e, SHIFT_SHL);
	return;
op_RSH_X:
	emit_shift_x(e, SHIFT_SHR);
	return;
op_NEG:
	emit_rr(e, 0xf7, false, 3, REG_A);
	return;

op_JA:
	emit_goto(e, CC_ALWAYS, pc, pc + 1 + k);
	return;
op_JEQ_K:
op_JGT_K:
op_JGE_K:
op_JSET_K:
	emit_a_jump(e, pc);
	return;
op_JEQ_X:
	emit_rr(e, 0x39, false, REG_X, REG_A);          /* cmp eax, ecx */
	emit_branch(e, pc, CC_E);
	return;
op_JGT_X:
	emit_rr(e, 0x39, false, REG_X, REG_A);
	emit_branch(e, pc, CC_A);
	return;
op_JGE_X:
	emit_rr(e, 0x39, false, REG_X, REG_A);
	emit_branch(e, pc, CC_AE);
	return;
op_JSET_X:
	emit_rr(e, 0x85, false, REG_X, REG_A);
	emit_branch(e, pc, CC_NE);
	return;

op_RET_K:
	emit_mov_imm(e, REG_A, k, true);
	if (k != 0 && an->defers)
		emit_rr(e, 0x21, false, REG_KEEP, REG_A);   /* and eax, keep */
	put8(e, 0xc3);
	return;
op_RET_A:
	if (an->defers)
		emit_rr(e, 0x21, false, REG_KEEP, REG_A);
	put8(e, 0xc3);
	return;
op_TAX:
	emit_rr(e, 0x89, false, REG_A, REG_X);
	return;
op_TXA:
	emit_rr(e, 0x89, false, REG_X, REG_A);
	return;
}

/* The whole function: set-up, every instruction, the shared "return 0". */
static void emit_program(struct emitter *e)
{
	const struct analysis *an = e->an;
	e->pos = 0;
	e->nsites = 0;
	e->pool_next = 0;
	e->nfallbacks = 0;
	if (an->uses_ind)
		emit_rr(e, 0x89, false, RSI, RSI);      /* mov esi, esi: zero-extend caplen */
	if (an->uses_len)
		emit_rr(e, 0x89, false, RDX, REG_LEN);  /* wirelen survives div's edx */
	if (an->flags[0] & I_LIVE_A)
		emit_rr(e, 0x31, false, REG_A, REG_A);
	if (an->defers) {
		put_rex(e, false, 0, 0, REG_KEEP);          /* mov keep, -1 */
		put8(e, 0xb8 + (REG_KEEP & 7));
		put32(e, UINT32_MAX);
		emit_rr(e, 0x31, false, REG_ZERO, REG_ZERO);
	}
	if (an->flags[0] & I_LIVE_X)
		emit_rr(e, 0x31, false, REG_X, REG_X);
	if (an->mem_read) {
		emit_rr(e, 0x31, false, REG_TMP, REG_TMP);
		for (uint32_t k = 0; k < BPFKIT_MEMWORDS; k++)
			if (an->mem_read & (1u << k))
				emit_rm(e, 0x89, false, REG_TMP, RSP, -1, mem_disp(k));
	}
	for (size_t pc = 0; pc < an->n; pc++) {
		emit_insn(e, pc);
		for (; e->took; e->took--)
			e->label_cur[++pc] = e->pos;
	}
	e->label_cur[label_fail(e)] = e->pos;
	emit_rr(e, 0x31, false, REG_A, REG_A);
	put8(e, 0xc3);
	emit_fallbacks(e);
	if (e->pool_next)
		emit_pool(e);
}

/* ------------------------------------------------------------------ */
/* Memory and randomness                                               */

static int seed_random(uint64_t out[2], struct bpfkit_error *err)
{
	uint8_t *p = (uint8_t *)out;
	size_t got = 0;
#if defined(__linux__)
	while (got < 16) {
		ssize_t r = getrandom(p + got, 16 - got, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
#endif
	if (got < 16) {
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
		got = 0;
		while (fd >= 0 && got < 16) {
			ssize_t r = read(fd, p + got, 16 - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (fd >= 0)
			close(fd);
	}
	if (got < 16) {
		error_set(err, "jit: constant blinding needs random numbers "
			  "(getrandom and /dev/urandom failed)");
		return -1;
	}
	if (out[0] == 0 && out[1] == 0)
		out[1] = 1; /* xorshift128+ must not start at zero */
	return 0;
}

/* Maps the sized code's pages writable, emits into them, then makes them read+exec. */
static int map_code(struct bpfkit_jit *jit, struct emitter *e, struct bpfkit_error *err)
{
	long page = sysconf(_SC_PAGESIZE);
	size_t ps = page > 0 ? (size_t)page : 4096;
	size_t len = e->pos; /* from the last sizing pass */
	size_t size = (len + ps - 1) / ps * ps;
	void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (map == MAP_FAILED) {
		error_set(err, "jit: cannot map %zu bytes for code", size);
		return -1;
	}
	memset(map, 0xcc, size); /* int3 past the end */
	e->buf = map;
	emit_program(e);
	if (e->pos != len || memcmp(e->label_cur, e->label_prev,
				    (e->an->n + 1) * sizeof *e->label_cur) != 0) {
		munmap(map, size);
		error_set(err, "jit: internal error: code size changed between passes");
		return -1;
	}
	if (mprotect(map, size, PROT_READ | PROT_EXEC) != 0) {
		munmap(map, size);
		error_set(err, "jit: cannot make the code executable (mprotect refused)");
		return -1;
	}
	jit->map = map;
	jit->map_size = size;
	jit->code_size = len;
	jit->fn = (bpfkit_jit_fn)map;
	return 0;
}

/* Sizes the code until no jump grows, then emits it into executable pages. */
static int generate(struct bpfkit_jit *jit, const struct analysis *an, bool blind,
		    const struct bpfkit_alloc *alloc, struct bpfkit_error *err)
{
	struct emitter e = {0};
	int rc = -1;
	e.an = an;
	e.blind = blind;
	size_t nlabels = an->n + 1 + an->npairs;   /* instructions, the exit, fallbacks */
	e.max_sites = 6 * an->n + 8;
	e.label_prev = mem_alloc_array(alloc, nlabels, sizeof *e.label_prev);
	e.label_cur = mem_alloc_array(alloc, nlabels, sizeof *e.label_cur);
	e.sites = mem_alloc_array(alloc, e.max_sites, sizeof *e.sites);
	e.fallback_pc = mem_alloc_array(alloc, an->npairs + 1, sizeof *e.fallback_pc);
	if (!e.label_prev || !e.label_cur || !e.sites || !e.fallback_pc) {
		error_oom(err);
		goto out;
	}
	memset(e.label_prev, 0, nlabels * sizeof *e.label_prev);
	memset(e.label_cur, 0, nlabels * sizeof *e.label_cur);
	memset(e.sites, 0, e.max_sites * sizeof *e.sites);
	if (blind && seed_random(e.rng, err) < 0)
		goto out;
	for (;;) {
		bool grew = false;
		e.buf = NULL;
		emit_program(&e);
		for (size_t i = 0; i < e.nsites; i++) {
			struct jump_site *s = &e.sites[i];
			int64_t rel = (int64_t)e.label_cur[s->target] - (int64_t)s->end;
			if (!s->near && !fits8(rel)) {
				s->near = true;
				grew = true;
			}
		}
		memcpy(e.label_prev, e.label_cur, nlabels * sizeof *e.label_cur);
		if (!grew)
			break;
	}
	rc = map_code(jit, &e, err);
out:
	mem_free(alloc, e.label_prev);
	mem_free(alloc, e.label_cur);
	mem_free(alloc, e.sites);
	mem_free(alloc, e.fallback_pc);
	return rc;
}

static int compile(const struct bpfkit_insn *insns, size_t n, unsigned flags,
		   const struct bpfkit_alloc *alloc, struct bpfkit_jit *jit,
		   struct bpfkit_error *err)
{
	struct analysis an = {0};
	int rc = -1;
	an.insns = insns;
	an.n = n;
	an.flags = mem_alloc_array(alloc, n, sizeof *an.flags);
	an.block_of = mem_alloc_array(alloc, n, sizeof *an.block_of);
	an.ind_check = mem_alloc_array(alloc, n, sizeof *an.ind_check);
	an.blocks = mem_alloc_array(alloc, n, sizeof *an.blocks);
	an.npred = mem_alloc(alloc, n);
	an.chain = mem_alloc_array(alloc, n, sizeof *an.chain);
	if (!an.flags || !an.block_of || !an.ind_check || !an.blocks || !an.npred || !an.chain) {
		error_oom(err);
		goto out;
	}
	memset(an.flags, 0, n * sizeof *an.flags);
	memset(an.ind_check, 0, n * sizeof *an.ind_check);
	memset(an.npred, 0, n);
	memset(an.chain, 0, n * sizeof *an.chain);
	analyse(&an);
	if (!(flags & BPFKIT_JIT_BLIND)) {
		an.pair = mem_alloc_array(alloc, n, sizeof *an.pair);
		if (!an.pair) {
			error_oom(err);
			goto out;
		}
		memset(an.pair, 0, n * sizeof *an.pair);
		find_pairs(&an);
	}
	rc = generate(jit, &an, (flags & BPFKIT_JIT_BLIND) != 0, alloc, err);
out:
	mem_free(alloc, an.flags);
	mem_free(alloc, an.block_of);
	mem_free(alloc, an.ind_check);
	mem_free(alloc, an.blocks);
	mem_free(alloc, an.npred);
	mem_free(alloc, an.chain);
	mem_free(alloc, an.pair);
	return rc;
}

BPFKIT_API int bpfkit_jit_available(void)
{
	return 1;
}

BPFKIT_API int bpfkit_jit_compile(const struct bpfkit_insn *insns, size_t n, unsigned flags,
				  const struct bpfkit_alloc *alloc, struct bpfkit_jit **out,
				  struct bpfkit_error *err)
{
	struct bpfkit_jit *jit;
	if (out)
		*out = NULL;
	if (!out) {
		error_set(err, "jit: no place for the result");
		return -1;
	}
	if (flags & ~(unsigned)BPFKIT_JIT_BLIND) {
		error_set(err, "jit: unknown flags 0x%x", flags & ~(unsigned)BPFKIT_JIT_BLIND);
		return -1;
	}
	if (bpfkit_validate(insns, n, BPFKIT_VALIDATE_PCAP, err) < 0)
		return -1;
	if (n > JIT_MAX_INSNS) {
		error_insn(err, -1, "jit: program has %zu instructions; the jit takes at most %u",
			   n, JIT_MAX_INSNS);
		return -1;
	}
	jit = mem_alloc(alloc, sizeof *jit);
	if (!jit) {
		error_oom(err);
		return -1;
	}
	memset(jit, 0, sizeof *jit);
	if (alloc)
		jit->alloc = *alloc;
	if (compile(insns, n, flags, alloc, jit, err) < 0) {
		mem_free(alloc, jit);
		return -1;
	}
	*out = jit;
	return 0;
}

BPFKIT_API void bpfkit_jit_free(struct bpfkit_jit *jit)
{
	if (!jit)
		return;
	struct bpfkit_alloc alloc = jit->alloc;
	if (jit->map)
		munmap(jit->map, jit->map_size);
	mem_free(&alloc, jit);
}

#else /* !JIT_SUPPORTED */

BPFKIT_API int bpfkit_jit_available(void)
{
	return 0;
}

BPFKIT_API int bpfkit_jit_compile(const struct bpfkit_insn *insns, size_t n, unsigned flags,
				  const struct bpfkit_alloc *alloc, struct bpfkit_jit **out,
				  struct bpfkit_error *err)
{
	(void)insns;
	(void)n;
	(void)flags;
	(void)alloc;
	if (out)
		*out = NULL;
	error_set(err, "jit: unsupported on this architecture (x86-64 only)");
	return -1;
}

BPFKIT_API void bpfkit_jit_free(struct bpfkit_jit *jit)
{
	(void)jit;
}

#endif /* JIT_SUPPORTED */

BPFKIT_API bpfkit_jit_fn bpfkit_jit_function(const struct bpfkit_jit *jit)
{
	return jit->fn;
}

BPFKIT_API uint32_t bpfkit_jit_run(const struct bpfkit_jit *jit, const uint8_t *pkt,
				   uint32_t caplen, uint32_t wirelen)
{
	return jit->fn(pkt, caplen, wirelen);
}

const uint8_t *jit_code(const struct bpfkit_jit *jit, size_t *len)
{
	*len = jit->code_size;
	return (const uint8_t *)jit->map;
}
