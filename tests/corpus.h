/*
 * corpus.h - reading ../shared/corpus/libpcap-filters.tsv, shared by the
 * differential tool (tests/difftest.c) and the optimizer bench
 * (bench/bench_opt.c): the TSV escaping and whether the name-database lines
 * some rows assume are installed; and the allocation wrappers both use.
 */
#ifndef BPFKIT_TESTS_CORPUS_H
#define BPFKIT_TESTS_CORPUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* TSV (PostgreSQL COPY text) unescaping, in place. */
void corpus_tsv_unescape(char *s);

/* Rows of the corpus TSV, as the fields the caller names. */
#define CORPUS_MAXCOLS 20
struct corpus_reader {
	FILE *f;
	char *line;
	size_t cap;
	int ncol;                   /* fields in the header */
	int n, col[CORPUS_MAXCOLS]; /* the caller's names' columns */
};
/*
 * Opens path and finds the columns names[0..n) (n <= CORPUS_MAXCOLS) in its
 * header.  0; -1 when the file cannot be read (*missing = NULL) or lacks a
 * column (*missing = its name); nothing is left open then.
 */
int corpus_open(struct corpus_reader *r, const char *path, const char *const *names, int n,
		const char **missing);
/*
 * The next row with as many fields as the header, unescaped in place: v[i]
 * is the field named names[i].  False at the end.
 */
bool corpus_next(struct corpus_reader *r, const char **v);
void corpus_close(struct corpus_reader *r);
/*
 * have[0..2]: whether /etc/hosts, /etc/ethers, /etc/networks hold the first
 * entry of namedb/NAME.test-lines beside the corpus file (read from the files,
 * not the resolver: an absent name would go to DNS and may take seconds).
 */
void corpus_namedb_probe(const char *corpus_tsv, bool have[3]);
/* A row's needs_namedb field ("hosts,ethers", ...) is met by have. */
bool corpus_namedb_ready(const bool have[3], const char *needs);

/* malloc / realloc that print "PROGRAM: out of memory" and exit 2 on failure. */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);

#endif
