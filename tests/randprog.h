/*
 * randprog.h - random classic BPF programs for differential tests.
 *
 * randprog_gen() builds a program that the Linux kernel's classic checker
 * accepts (socket mode): every opcode of the table, forward jumps inside the
 * program, constant divisors non-zero, constant shifts < 32, M[] read only
 * after a write on every path (by the kernel's own linear rule), a return
 * last.  Packet offsets cluster around small values and `caplen_hint` so
 * that loads land both inside and just past typical packets.
 */
#ifndef BPFKIT_RANDPROG_H
#define BPFKIT_RANDPROG_H

#include <stddef.h>
#include <stdint.h>

#include "bpfkit.h"

enum {
	RANDPROG_ANC = 1 << 0,   /* may use Linux ancillary loads */
	RANDPROG_NO_DIVX = 1 << 1 /* no division/modulo by X (some peers differ) */
};

/* xorshift64*: deterministic per seed. */
uint64_t randprog_next(uint64_t *state);
/* Uniform-ish in [0, n). */
uint32_t randprog_below(uint64_t *state, uint32_t n);

/* Fills out[0..return) with a valid program of 1..max instructions (max >= 1). */
size_t randprog_gen(uint64_t *state, struct bpfkit_insn *out, size_t max, uint32_t caplen_hint,
		    unsigned flags);

/* Rewrites M[] reads that the kernel's linear rule would reject into stores. */
void randprog_fix_memory(struct bpfkit_insn *prog, size_t n);

#endif
