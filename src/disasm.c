/* disasm.c - placeholder until written */
#include "internal.h"
BPFKIT_API int bpfkit_prog_format(const struct bpfkit_insn *insns, size_t n,
				  enum bpfkit_format fmt, const struct bpfkit_alloc *alloc,
				  char **text, size_t *len, struct bpfkit_error *err)
{
	error_set(err, "not implemented");
	return -1;
}
BPFKIT_API int bpfkit_format_parse(const char *name) { return -1; }
BPFKIT_API const char *bpfkit_format_name(enum bpfkit_format fmt) { return "?"; }
