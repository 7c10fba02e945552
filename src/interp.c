/* interp.c - placeholder until written */
#include "internal.h"
BPFKIT_API uint32_t bpfkit_interp(const struct bpfkit_insn *insns, size_t n, const uint8_t *pkt,
				  uint32_t caplen, uint32_t wirelen, const struct bpfkit_meta *meta)
{
	return 0;
}
BPFKIT_API uint32_t bpfkit_interp_trace(const struct bpfkit_insn *insns, size_t n,
					const uint8_t *pkt, uint32_t caplen, uint32_t wirelen,
					const struct bpfkit_meta *meta, bpfkit_trace_fn trace,
					void *ctx)
{
	return 0;
}
