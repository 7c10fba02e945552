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

/* TSV (PostgreSQL COPY text) unescaping, in place. */
void corpus_tsv_unescape(char *s);
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
