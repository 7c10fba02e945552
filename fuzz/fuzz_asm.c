/*
 * fuzz_asm.c - libFuzzer target for the bpf_asm assembler (also built as a
 * plain corpus replayer with fuzz/replay.c).  Any input must either fail
 * cleanly (-1, empty output, a message; a position inside the input when
 * one is given) or give a program whose every jump lands inside it.  Inputs
 * with a `.insn` line are exempt from the jump check: that directive copies
 * an instruction verbatim, out-of-range offsets included.
 */
#include "bpfkit.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool has_insn_directive(const uint8_t *d, size_t n)
{
	static const char word[] = ".insn";
	for (size_t i = 0; i + 5 <= n; i++) {
		size_t j = 0;
		while (j < 5 && (d[i + j] | 0x20) == (word[j] | 0x20))
			j++;
		if (j == 5)
			return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct bpfkit_prog prog = {(struct bpfkit_insn *)1, 1};
	struct bpfkit_error err;
	if (bpfkit_asm((const char *)data, size, NULL, &prog, &err) != 0) {
		if (prog.insns || prog.len || !err.message[0])
			abort();
		if (err.line < 0 || err.column < 0 || (err.column > 0 && err.span < 1))
			abort();
		if ((size_t)err.line > size + 1 || (size_t)err.column > size + 1)
			abort();
		return 0;
	}
	if (!prog.insns || prog.len == 0)
		abort();
	if (!has_insn_directive(data, size)) {
		for (size_t i = 0; i < prog.len; i++) {
			const struct bpfkit_insn *in = &prog.insns[i];
			size_t room = prog.len - i - 1;
			if (BPFKIT_CLASS(in->code) != BPFKIT_JMP)
				continue;
			if (in->code == (BPFKIT_JMP | BPFKIT_JA)) {
				if (in->k >= room)
					abort();
			} else if (in->jt >= room || in->jf >= room) {
				abort();
			}
		}
	}
	bpfkit_prog_free(NULL, &prog);
	return 0;
}
