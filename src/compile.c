/*
 * compile.c - bpfkit_compile: the pcap-filter compiler's pipeline.
 *
 * One arena holds tokens, AST and IR for the whole compile and is freed in
 * one call; the finished program is copied out by emit_run.  The front end
 * (lexer, parser, code generator) reports errors by unwinding to the single
 * setjmp in bpfkit_compile through compile_error.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

_Noreturn void compile_error(struct compile_ctx *cc, int col, int span, const char *fmt, ...)
{
	char msg[sizeof cc->err->message];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (col > 0)
		error_at(cc->err, cc->err_line, col, span, "%s", msg);
	else
		error_set(cc->err, "%s", msg);
	longjmp(cc->fail, 1);
}

void *compile_alloc(struct compile_ctx *cc, size_t size)
{
	void *p = mem_arena_alloc(&cc->arena, size);
	if (!p)
		compile_error(cc, 0, 0, "out of memory");
	memset(p, 0, size);
	return p;
}

/*
 * The pipeline, as a list of calls.  The one setjmp of the compiler is here:
 * compile_error unwinds to it from anywhere in the front end.
 */
/* True when every return of the program is `ret #0`: no packet can match. */
static bool accepts_nothing(const struct bpfkit_prog *p)
{
	for (size_t i = 0; i < p->len; i++) {
		uint16_t c = p->insns[i].code;
		if (BPFKIT_CLASS(c) == BPFKIT_RET && (c != (BPFKIT_RET | BPFKIT_K) || p->insns[i].k))
			return false;
	}
	return true;
}

/*
 * Optimizes and emits fn into out.  At -O2 the pipeline runs on copies of
 * fn in up to three configurations:
 * - with and without the order pass (opt_order.c): ordering a chain's parts
 *   makes rejected packets leave earlier, but it can stop two chains from
 *   sharing their last part (IPv4's and IPv6's port tests), so the ordered
 *   program is kept only when it is no longer;
 * - that choice is made without merge's common suffixes, then the chosen
 *   configuration runs again with them and the shorter program is kept:
 *   decided with suffixes, sharing a suffix between IPv4 and IPv6 would
 *   often beat ordering by one instruction and cost several per packet.
 * Functions of more than ORDER_TRIAL blocks (long lists, where compile time
 * matters more) run once, ordered, with suffixes.  A dump shows the passes
 * of the program kept.
 */
#define ORDER_TRIAL 2000

static int run_emit(struct ir_func *fn, int level, unsigned flags,
		    const struct bpfkit_alloc *alloc, struct bpfkit_prog *out,
		    struct bpfkit_error *err)
{
	if (opt_run(fn, level, flags, alloc, NULL, NULL, err) != 0)
		return -1;
	return emit_run(fn, alloc, out, err);
}

/* Keeps the shorter of *best and *cand in *best (ties: *best). */
static void keep_shorter(const struct bpfkit_alloc *alloc, struct bpfkit_prog *best,
			 struct bpfkit_prog *cand, unsigned *best_flags, unsigned cand_flags)
{
	if (cand->len < best->len) {
		bpfkit_prog_free(alloc, best);
		*best = *cand;
		*best_flags = cand_flags;
	} else {
		bpfkit_prog_free(alloc, cand);
	}
}

static int optimize(struct compile_ctx *cc, const struct bpfkit_alloc *alloc, struct ir_func *fn,
		    struct bpfkit_prog *out)
{
	const unsigned all = OPT_RUN_ORDER | OPT_RUN_SUFFIX;
	if (cc->optimize < 2 || fn->nblocks > ORDER_TRIAL) {
		if (opt_run(fn, cc->optimize, all, alloc, cc->dump_pass, cc->dump, cc->err) != 0)
			return -1;
		return emit_run(fn, alloc, out, cc->err);
	}
	struct ir_func plain, suffix, again;
	if (ir_copy(&plain, fn) != 0 || ir_copy(&suffix, fn) != 0 ||
	    (cc->dump_pass && ir_copy(&again, fn) != 0)) {
		error_oom(cc->err);
		return -1;
	}
	struct bpfkit_prog other;
	unsigned flags = OPT_RUN_ORDER;
	if (run_emit(fn, cc->optimize, OPT_RUN_ORDER, alloc, out, cc->err) != 0)
		return -1;
	if (run_emit(&plain, cc->optimize, 0, alloc, &other, cc->err) != 0)
		goto fail;
	keep_shorter(alloc, out, &other, &flags, 0);
	if (run_emit(&suffix, cc->optimize, flags | OPT_RUN_SUFFIX, alloc, &other, cc->err) != 0)
		goto fail;
	keep_shorter(alloc, out, &other, &flags, flags | OPT_RUN_SUFFIX);
	if (cc->dump_pass &&
	    opt_run(&again, cc->optimize, flags, alloc, cc->dump_pass, cc->dump, cc->err) != 0)
		goto fail;
	return 0;
fail:
	bpfkit_prog_free(alloc, out);
	return -1;
}

static int compile_run(struct compile_ctx *cc, const struct bpfkit_alloc *alloc,
		       struct bpfkit_prog *out)
{
	if (setjmp(cc->fail)) {
		mem_arena_free(&cc->arena);
		return -1;
	}
	struct lex_tokens toks;
	lex_run(cc, cc->expr, &toks);
	struct parse_node *ast = parse_run(cc, &toks);
	struct ir_func fn;
	ir_init(&fn, &cc->arena);
	codegen_run(cc, ast, &fn);
	if (ir_verify(&fn, cc->err) != 0)
		goto fail;
	if (optimize(cc, alloc, &fn, out) != 0)
		goto fail;
	if (bpfkit_validate(out->insns, out->len, BPFKIT_VALIDATE_PCAP, cc->err) != 0) {
		bpfkit_prog_free(alloc, out);
		goto fail;
	}
	/*
	 * As libpcap does when optimizing: a filter proved to accept nothing is
	 * an error, since it is almost certainly not what the user meant.  -O0
	 * still emits it.
	 */
	if (cc->optimize >= 1 && accepts_nothing(out)) {
		bpfkit_prog_free(alloc, out);
		error_at(cc->err, cc->err_line, 1, (int)strlen(cc->expr) > 0 ? (int)strlen(cc->expr) : 1,
			 "expression rejects all packets");
		goto fail;
	}
	mem_arena_free(&cc->arena);
	return 0;
fail:
	mem_arena_free(&cc->arena);
	return -1;
}

static int compile_with(const char *expr, const struct bpfkit_compile_opts *opts,
			struct bpfkit_prog *out, const char *pass, struct mem_buf *dump,
			struct bpfkit_error *err);

int bpfkit_compile(const char *expr, const struct bpfkit_compile_opts *opts,
		   struct bpfkit_prog *out, struct bpfkit_error *err)
{
	return compile_with(expr, opts, out, NULL, NULL, err);
}

const char *const *bpfkit_compile_passes(void)
{
	return opt_pass_names;
}

int bpfkit_compile_dump(const char *expr, const struct bpfkit_compile_opts *opts,
			const char *pass, char **text, struct bpfkit_error *err)
{
	*text = NULL;
	bool known = false;
	for (int i = 0; pass && opt_pass_names[i]; i++)
		known |= !strcmp(pass, opt_pass_names[i]);
	if (!known) {
		error_set(err, "unknown pass '%s'", pass ? pass : "");
		return -1;
	}
	const struct bpfkit_alloc *alloc = opts ? opts->alloc : NULL;
	struct mem_buf dump;
	mem_buf_init(&dump, alloc);
	struct bpfkit_prog prog;
	int rc = compile_with(expr, opts, &prog, pass, &dump, err);
	if (rc == 0)
		bpfkit_prog_free(alloc, &prog);
	if (rc == 0 && dump.len == 0)
		mem_buf_printf(&dump, "; pass %s does not run at this optimization level\n", pass);
	*text = rc == 0 ? mem_buf_take(&dump, NULL) : NULL;
	if (rc == 0 && !*text) {
		error_oom(err);
		rc = -1;
	}
	mem_buf_free(&dump);
	return rc;
}

static int compile_with(const char *expr, const struct bpfkit_compile_opts *opts,
			struct bpfkit_prog *out, const char *pass, struct mem_buf *dump,
			struct bpfkit_error *err)
{
	static const struct bpfkit_compile_opts defaults = {.linktype = 1, .optimize = 2};
	if (!opts)
		opts = &defaults;
	out->insns = NULL;
	out->len = 0;
	struct compile_ctx ctx = {
		.err = err,
		.expr = expr ? expr : "",
		.linktype = opts->linktype,
		.snaplen = opts->snaplen ? opts->snaplen : 262144,
		/* 0xffffffff: unknown (libpcap's PCAP_NETMASK_UNKNOWN) */
		.netmask = (opts->flags & BPFKIT_COMPILE_NETMASK) || opts->netmask ? opts->netmask
									 : 0xffffffffu,
		.optimize = opts->optimize,
		.flags = opts->flags,
		.err_line = 1,
		.dump_pass = pass,
		.dump = dump,
	};
	mem_arena_init(&ctx.arena, opts->alloc);
	return compile_run(&ctx, opts->alloc, out);
}
