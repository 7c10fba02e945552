/*
 * packets.c - real packets from the shared captures, for differential tests:
 * up to per_file packets from each of up to max_files captures spread
 * evenly over a directory (in name order, so runs are repeatable).
 */
#include "packets.h"

#include <dirent.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

void packets_load(const char *dir, size_t max_files, size_t per_file, struct packets *out)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	char **names = NULL;
	size_t nnames = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!has_suffix(de->d_name, ".pcap") && !has_suffix(de->d_name, ".pcapng"))
			continue;
		if (nnames == cap) {
			cap = cap ? 2 * cap : 64;
			char **nn = realloc(names, cap * sizeof *names);
			if (!nn)
				break;
			names = nn;
		}
		names[nnames] = strdup(de->d_name);
		if (names[nnames])
			nnames++;
	}
	closedir(d);
	qsort(names, nnames, sizeof *names, cmp_names);
	size_t stride = nnames > max_files ? nnames / max_files : 1;
	for (size_t i = 0; i < nnames; i += stride) {
		char path[4096], errbuf[PCAP_ERRBUF_SIZE];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		pcap_t *pc = pcap_open_offline(path, errbuf);
		if (!pc)
			continue;
		struct pcap_pkthdr *hdr;
		const u_char *data;
		for (size_t got = 0; got < per_file && pcap_next_ex(pc, &hdr, &data) == 1; got++) {
			if (out->n == out->cap) {
				out->cap = out->cap ? 2 * out->cap : 256;
				struct packet *nv = realloc(out->v, out->cap * sizeof *out->v);
				if (!nv)
					break;
				out->v = nv;
			}
			struct packet *p = &out->v[out->n];
			p->data = malloc(hdr->caplen ? hdr->caplen : 1);
			if (!p->data)
				break;
			memcpy(p->data, data, hdr->caplen);
			p->caplen = hdr->caplen;
			p->wirelen = hdr->len;
			out->n++;
		}
		pcap_close(pc);
	}
	for (size_t i = 0; i < nnames; i++)
		free(names[i]);
	free(names);
}

void packets_free(struct packets *pk)
{
	for (size_t i = 0; i < pk->n; i++)
		free(pk->v[i].data);
	free(pk->v);
	pk->v = NULL;
	pk->n = pk->cap = 0;
}
