/* progread.c - placeholder until written */
#include "internal.h"
BPFKIT_API int bpfkit_prog_read(const void *data, size_t len, enum bpfkit_format fmt,
				const struct bpfkit_alloc *alloc, struct bpfkit_prog *out,
				enum bpfkit_format *detected, struct bpfkit_error *err)
{
	error_set(err, "not implemented");
	return -1;
}
