/*
 * names.c - names in filter expressions, resolved through the C library only
 * (getaddrinfo, getservbyname, getprotobyname, getnetbyname, ether_hostton),
 * as libpcap resolves them.  Callers accept numbers before asking here.
 */
#include "internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/ether.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static int host_any(const char *name, int family, void *out, int max)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(name, NULL, &hints, &res) != 0)
		return 0;
	int n = 0;
	for (struct addrinfo *ai = res; ai && n < max; ai = ai->ai_next) {
		if (ai->ai_family == AF_INET && family == AF_INET) {
			uint32_t a = ntohl(((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr.s_addr);
			uint32_t *o = out;
			bool dup = false;
			for (int i = 0; i < n; i++)
				dup |= o[i] == a;
			if (!dup)
				o[n++] = a;
		} else if (ai->ai_family == AF_INET6 && family == AF_INET6) {
			uint8_t(*o)[16] = out;
			const uint8_t *a =
				((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr.s6_addr;
			bool dup = false;
			for (int i = 0; i < n; i++)
				dup |= memcmp(o[i], a, 16) == 0;
			if (!dup)
				memcpy(o[n++], a, 16);
		}
	}
	freeaddrinfo(res);
	return n;
}

int names_host4(const char *name, uint32_t *out, int max)
{
	return host_any(name, AF_INET, out, max);
}

int names_host6(const char *name, uint8_t (*out)[16], int max)
{
	return host_any(name, AF_INET6, out, max);
}

int names_port(const char *name, const char *proto)
{
	struct servent *se = getservbyname(name, proto);
	return se ? ntohs((uint16_t)se->s_port) : -1;
}

int names_proto(const char *name)
{
	struct protoent *pe = getprotobyname(name);
	return pe ? pe->p_proto : -1;
}

int names_net(const char *name, uint32_t *net)
{
	struct netent *ne = getnetbyname(name);
	if (!ne || ne->n_addrtype != AF_INET)
		return -1;
	*net = (uint32_t)ne->n_net;
	return 0;
}

int names_ether(const char *name, uint8_t mac[6])
{
	struct ether_addr ea;
	if (ether_hostton(name, &ea) != 0)
		return -1;
	memcpy(mac, ea.ether_addr_octet, 6);
	return 0;
}
