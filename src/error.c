/*
 * error.c - fills the caller's struct bpfkit_error.  Every setter resets all
 * fields first, so a stale line or offset never leaks into a new message.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static void reset(struct bpfkit_error *err)
{
	memset(err, 0, sizeof *err);
	err->insn = -1;
	err->offset = -1;
}

static void vset(struct bpfkit_error *err, const char *fmt, va_list ap)
{
	vsnprintf(err->message, sizeof err->message, fmt, ap);
}

void error_set(struct bpfkit_error *err, const char *fmt, ...)
{
	if (!err)
		return;
	reset(err);
	va_list ap;
	va_start(ap, fmt);
	vset(err, fmt, ap);
	va_end(ap);
}

void error_at(struct bpfkit_error *err, int line, int column, int span, const char *fmt, ...)
{
	if (!err)
		return;
	reset(err);
	err->line = line;
	err->column = column;
	err->span = span > 0 ? span : 1;
	va_list ap;
	va_start(ap, fmt);
	vset(err, fmt, ap);
	va_end(ap);
}

void error_insn(struct bpfkit_error *err, long insn, const char *fmt, ...)
{
	if (!err)
		return;
	reset(err);
	err->insn = insn;
	va_list ap;
	va_start(ap, fmt);
	vset(err, fmt, ap);
	va_end(ap);
}

void error_offset(struct bpfkit_error *err, long long off, const char *fmt, ...)
{
	if (!err)
		return;
	reset(err);
	err->offset = off;
	va_list ap;
	va_start(ap, fmt);
	vset(err, fmt, ap);
	va_end(ap);
}

void error_oom(struct bpfkit_error *err)
{
	error_set(err, "out of memory");
}
