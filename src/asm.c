/* asm.c - placeholder until written */
#include "internal.h"
BPFKIT_API int bpfkit_asm(const char *src, size_t len, const struct bpfkit_alloc *alloc,
			  struct bpfkit_prog *out, struct bpfkit_error *err)
{
	error_set(err, "not implemented");
	return -1;
}
