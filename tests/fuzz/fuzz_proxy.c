/*
 * fuzz_proxy.c: libFuzzer harness for the PROXY protocol parser and the
 * --proxy-from list (proxy.c), both fed what a hostile peer or a mistyped
 * option could give.
 *
 * Byte 0 even: the rest is the first bytes of a connection, and
 * proxy_parse() must keep its contract: a complete header is at most
 * PROXY_V1_MAX or PROXY_V2_MAX octets, within the bytes given, with a
 * TCP/IPv4 or IPv6 client unless it says LOCAL/UNKNOWN, and looks like a
 * header; every shorter prefix of it, and of a valid beginning, is
 * PROXY_MORE (stateless: a split read changes nothing); a rejection says
 * why.  Byte 0 odd: the rest is a --proxy-from list; a list that parses
 * has sane prefixes and matching an address never fails.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "proxy.h"

static void
check_addr(const struct sockaddr_storage *ss, socklen_t len)
{
	if (ss->ss_family == AF_INET) {
		if (len != sizeof(struct sockaddr_in))
			abort();
	} else if (ss->ss_family == AF_INET6) {
		if (len != sizeof(struct sockaddr_in6))
			abort();
	} else
		abort();
}

static void
fuzz_header(const unsigned char *buf, size_t n)
{
	struct proxy_hdr h, h2;
	const char *why = NULL;
	enum proxy_status st;
	size_t k, step;

	memset(&h, 0, sizeof(h));
	st = proxy_parse(buf, n, &h, &why);
	switch (st) {
	case PROXY_DONE:
		if (h.len == 0 || h.len > n || (h.version != 1 &&
		    h.version != 2) || h.len > (h.version == 1 ? PROXY_V1_MAX :
		    PROXY_V2_MAX))
			abort();
		if (!h.local) {
			check_addr(&h.src, h.srclen);
			check_addr(&h.dst, h.dstlen);
		}
		if (!proxy_looks_like(buf, n))
			abort();
		/* The same header from exactly its own bytes. */
		memset(&h2, 0, sizeof(h2));
		if (proxy_parse(buf, h.len, &h2, &why) != PROXY_DONE ||
		    h2.len != h.len || h2.version != h.version ||
		    h2.local != h.local || h2.tls != h.tls ||
		    h2.srclen != h.srclen || memcmp(&h2.src, &h.src,
		    h.srclen) != 0)
			abort();
		break;
	case PROXY_MORE:
		if (n >= PROXY_V2_MAX)
			abort();
		break;
	case PROXY_BAD:
		if (why == NULL || why[0] == '\0')
			abort();
		break;
	default:
		abort();
	}
	/* Shorter prefixes of a header or of a valid beginning: MORE. */
	if (st == PROXY_BAD)
		return;
	k = st == PROXY_DONE ? h.len : n;
	step = k > 512 ? k / 256 : 1;
	while (k > step) {
		k -= step;
		if (proxy_parse(buf, k, &h2, &why) != PROXY_MORE)
			abort();
	}
}

static void
fuzz_nets(const unsigned char *data, size_t n)
{
	struct proxy_nets nets;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	char err[256], *list;
	int i;

	if ((list = malloc(n + 1)) == NULL)
		abort();
	memcpy(list, data, n);
	list[n] = '\0';
	memset(&nets, 0, sizeof(nets));
	err[0] = '\0';
	if (proxy_nets_parse(&nets, list, err, sizeof(err)) < 0) {
		if (err[0] == '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		free(list);
		return;
	}
	if (nets.n < 0 || nets.n > PROXY_NETS_MAX)
		abort();
	for (i = 0; i < nets.n; i++)
		if ((nets.net[i].family != AF_INET &&
		    nets.net[i].family != AF_INET6) || nets.net[i].bits < 0 ||
		    nets.net[i].bits > (nets.net[i].family == AF_INET ? 32 : 128))
			abort();
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0xc0000201);	/* 192.0.2.1 */
	(void)proxy_nets_match(&nets, (struct sockaddr *)&sin, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.0.2.1", &sin6.sin6_addr);
	/* An IPv4-mapped address counts as its IPv4 address. */
	if (proxy_nets_match(&nets, (struct sockaddr *)&sin6, sizeof(sin6)) !=
	    proxy_nets_match(&nets, (struct sockaddr *)&sin, sizeof(sin)))
		abort();
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	(void)proxy_nets_match(&nets, (struct sockaddr *)&sin6, sizeof(sin6));
	free(list);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		fuzz_nets(data + 1, size - 1);
	else
		fuzz_header(data + 1, size - 1);
	return 0;
}
