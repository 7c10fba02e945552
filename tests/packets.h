/*
 * packets.h - real packets loaded from capture files (with libpcap) for the
 * differential tests of the engines.
 */
#ifndef BPFKIT_TEST_PACKETS_H
#define BPFKIT_TEST_PACKETS_H

#include <stddef.h>
#include <stdint.h>

struct packet {
	uint8_t *data;
	uint32_t caplen, wirelen;
};

struct packets {
	struct packet *v;
	size_t n, cap;
};

/* Up to per_file packets from each of up to max_files captures spread over dir. */
void packets_load(const char *dir, size_t max_files, size_t per_file, struct packets *out);
void packets_free(struct packets *pk);

#endif
