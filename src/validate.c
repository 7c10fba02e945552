/* validate.c - placeholder until written */
#include "internal.h"
BPFKIT_API int bpfkit_validate(const struct bpfkit_insn *insns, size_t n, enum bpfkit_vmode mode,
			       struct bpfkit_error *err)
{
	error_set(err, "not implemented");
	return -1;
}
