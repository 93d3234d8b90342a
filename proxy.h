/*
 * proxy.h: the PROXY protocol, versions 1 and 2 (HAProxy's
 * proxy-protocol.txt), as sent by HAProxy (send-proxy, send-proxy-v2) and
 * nginx (proxy_protocol on) ahead of a connection's own bytes, and the
 * --proxy-from list of sources allowed to send it.  Pure functions fed
 * bytes and addresses; the listener does the reading (listen.c).
 */
#ifndef PROXY_H
#define PROXY_H

#include <sys/socket.h>

#include <stddef.h>

#include "params.h"

struct proxy_net {
	int		family;		/* AF_INET or AF_INET6 */
	int		bits;		/* prefix length */
	unsigned char	addr[16];	/* network order, host bits cleared */
};

struct proxy_nets {
	int		 n;
	struct proxy_net net[PROXY_NETS_MAX];
};

/*
 * Parse a comma-separated list of CIDR blocks or single addresses
 * ("192.0.2.0/24,2001:db8::/32,127.0.0.1").  Host bits after the prefix
 * are ignored.  0, or -1 with a one-line reason in err.
 */
int	proxy_nets_parse(struct proxy_nets *nets, const char *list, char *err,
	    size_t errlen);

/*
 * 1 when the address sa lies in one of the blocks (an IPv4-mapped IPv6
 * address counts as its IPv4 address), else 0.
 */
int	proxy_nets_match(const struct proxy_nets *nets,
	    const struct sockaddr *sa, socklen_t salen);

/* What a complete header says. */
struct proxy_hdr {
	int			version;	/* 1 or 2 */
	int			local;		/* v2 LOCAL, v1 UNKNOWN: no client */
	int			tls;		/* v2 SSL TLV: client used TLS */
	struct sockaddr_storage	src;		/* the client (unless local) */
	socklen_t		srclen;
	struct sockaddr_storage	dst;		/* the address it connected to */
	socklen_t		dstlen;
	size_t			len;		/* octets of the header */
};

enum proxy_status {
	PROXY_MORE,	/* a valid beginning: more bytes are needed */
	PROXY_DONE,	/* a complete header of h->len octets */
	PROXY_BAD	/* not a valid header: *why says what is wrong */
};

/*
 * Parse the first n bytes received on a connection.  Stateless: call again
 * with the bytes so far whenever more arrive.  PROXY_DONE fills *h; bytes
 * after h->len are the connection's own.  PROXY_MORE guarantees that the
 * header ends after byte n, so all n bytes may be consumed.  A header is
 * at most PROXY_V1_MAX (v1) or PROXY_V2_MAX (v2) octets; a longer one, a
 * v2 CRC32C TLV that does not match, a truncated TLV, an address that does
 * not parse or a family other than TCP over IPv4/IPv6 are PROXY_BAD.
 */
enum proxy_status proxy_parse(const unsigned char *buf, size_t n,
	    struct proxy_hdr *h, const char **why);

/*
 * 1 when buf begins with a whole v1 "PROXY " or a whole v2 signature: used
 * to spot a header sent by a source that is not allowed to send one.
 */
int	proxy_looks_like(const unsigned char *buf, size_t n);

/*
 * 1 when a connection's first command line (line, len octets, terminator
 * stripped) and the bytes buffered after it (rest, n octets) are the start
 * of a v1 or v2 header: for a header that arrives after the greeting.
 */
int	proxy_first_line(const char *line, size_t len,
	    const unsigned char *rest, size_t n);

#endif
