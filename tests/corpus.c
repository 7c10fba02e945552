/*
 * corpus.c - see corpus.h.
 */
#define _GNU_SOURCE 1   /* program_invocation_short_name */
#include "corpus.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void corpus_tsv_unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r == '\\' && r[1]) {
			r++;
			*w++ = *r == 't' ? '\t' : *r == 'n' ? '\n' : *r == 'r' ? '\r' : *r;
		} else {
			*w++ = *r;
		}
	}
	*w = 0;
}

/* The first entry's name (name_first: field 0, else field 1) of a namedb file, or NULL. */
static char *first_name(const char *corpus, const char *file, bool name_first)
{
	char path[4096];
	const char *slash = strrchr(corpus, '/');
	int dl = slash ? (int)(slash - corpus) : 1;
	snprintf(path, sizeof path, "%.*s/namedb/%s", dl, slash ? corpus : ".", file);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char line[512], *res = NULL;
	while (!res && fgets(line, sizeof line, f)) {
		char a[256], b[256];
		if (line[0] == '#' || sscanf(line, "%255s %255s", a, b) != 2)
			continue;
		res = strdup(name_first ? a : b);
	}
	fclose(f);
	return res;
}

/* true when the file has a line with word at field position pos (0 or 1). */
static bool file_has(const char *path, const char *word, int pos)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	char line[512];
	bool found = false;
	while (!found && fgets(line, sizeof line, f)) {
		char a[256], b[256];
		if (line[0] != '#' && sscanf(line, "%255s %255s", a, b) == 2)
			found = strcasecmp(pos ? b : a, word) == 0;
	}
	fclose(f);
	return found;
}

void corpus_namedb_probe(const char *corpus_tsv, bool have[3])
{
	char *h = first_name(corpus_tsv, "hosts.test-lines", false);
	char *e = first_name(corpus_tsv, "ethers.test-lines", false);
	char *n = first_name(corpus_tsv, "networks.test-lines", true);
	have[0] = h && file_has("/etc/hosts", h, 1);
	have[1] = e && file_has("/etc/ethers", e, 1);
	have[2] = n && file_has("/etc/networks", n, 0);
	free(h);
	free(e);
	free(n);
}

bool corpus_namedb_ready(const bool have[3], const char *needs)
{
	if (!needs || !*needs)
		return true;
	return !((strstr(needs, "hosts") && !have[0]) || (strstr(needs, "ethers") && !have[1]) ||
		 (strstr(needs, "networks") && !have[2]));
}

/* Reads a line into fields (NUL-terminated in r->line); their number, or -1 at the end. */
static int read_fields(struct corpus_reader *r, char **fld, int max)
{
	ssize_t len = getline(&r->line, &r->cap, r->f);
	if (len <= 0)
		return -1;
	while (len && (r->line[len - 1] == '\n' || r->line[len - 1] == '\r'))
		r->line[--len] = 0;
	int nf = 0;
	for (char *s = r->line, *t; nf < max && (t = strsep(&s, "\t"));)
		fld[nf++] = t;
	return nf;
}

int corpus_open(struct corpus_reader *r, const char *path, const char *const *names, int n,
		const char **missing)
{
	*r = (struct corpus_reader){.n = n};
	*missing = NULL;
	r->f = fopen(path, "r");
	if (!r->f)
		return -1;
	char *fld[64];
	r->ncol = read_fields(r, fld, 64);
	for (int i = 0; i < n; i++) {
		r->col[i] = -1;
		for (int j = 0; j < r->ncol; j++)
			if (strcmp(fld[j], names[i]) == 0)
				r->col[i] = j;
		if (r->col[i] < 0) {
			*missing = names[i];
			corpus_close(r);
			return -1;
		}
	}
	return 0;
}

bool corpus_next(struct corpus_reader *r, const char **v)
{
	char *fld[64];
	int nf;
	while ((nf = read_fields(r, fld, 64)) >= 0) {
		if (nf != r->ncol)
			continue;
		for (int j = 0; j < nf; j++)
			corpus_tsv_unescape(fld[j]);
		for (int i = 0; i < r->n; i++)
			v[i] = fld[r->col[i]];
		return true;
	}
	return false;
}

void corpus_close(struct corpus_reader *r)
{
	if (r->f)
		fclose(r->f);
	free(r->line);
	*r = (struct corpus_reader){0};
}

void *xmalloc(size_t n)
{
	return xrealloc(NULL, n);
}

void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "%s: out of memory\n", program_invocation_short_name);
		exit(2);
	}
	return p;
}
