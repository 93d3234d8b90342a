/*
 * proxy.c: the PROXY protocol v1/v2 header and the --proxy-from list (see
 * proxy.h).  Pure functions over bytes and addresses: no I/O, no globals.
 * The listener (listen.c) reads the header and calls proxy_parse() on the
 * bytes so far; the session's peer becomes the header's source address.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proxy.h"

/* v2: the 12-octet signature, then version/command, family, length. */
static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
#define V2_FIXED		16
#define V2_CMD_LOCAL		0x0
#define V2_CMD_PROXY		0x1
#define V2_FAM_TCP4		0x11
#define V2_FAM_TCP6		0x21
#define V2_ADDR4_LEN		12	/* two addresses, two ports */
#define V2_ADDR6_LEN		36
#define V2_TLV_CRC32C		0x03
#define V2_TLV_SSL		0x20
#define V2_SSL_FIXED		5	/* client bits, verify result */
#define V2_CLIENT_SSL		0x01

static const char v1_prefix[] = "PROXY ";
#define V1_PREFIX_LEN		(sizeof(v1_prefix) - 1)

static enum proxy_status
bad(const char **why, const char *msg)
{
	*why = msg;
	return PROXY_BAD;
}

/* ---- the source list ---- */

static int
parse_bits(const char *s, int max)
{
	int v = 0;

	if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || (v = v * 10 + (*s - '0')) > max)
			return -1;
	}
	return v;
}

static void
clear_host_bits(unsigned char *addr, int bits, int len)
{
	int i;

	for (i = 0; i < len; i++) {
		int keep = bits - i * 8;

		if (keep <= 0)
			addr[i] = 0;
		else if (keep < 8)
			addr[i] &= (unsigned char)(0xff << (8 - keep));
	}
}

static int
parse_net(struct proxy_net *net, const char *text)
{
	char item[INET6_ADDRSTRLEN + 5], *slash;
	int len;

	if (strlen(text) >= sizeof(item))
		return -1;
	memcpy(item, text, strlen(text) + 1);
	if ((slash = strchr(item, '/')) != NULL)
		*slash = '\0';
	memset(net, 0, sizeof(*net));
	if (inet_pton(AF_INET, item, net->addr) == 1) {
		net->family = AF_INET;
		len = 4;
	} else if (inet_pton(AF_INET6, item, net->addr) == 1) {
		net->family = AF_INET6;
		len = 16;
	} else {
		return -1;
	}
	net->bits = len * 8;
	if (slash != NULL && (net->bits = parse_bits(slash + 1, len * 8)) < 0)
		return -1;
	clear_host_bits(net->addr, net->bits, len);
	return 0;
}

int
proxy_nets_parse(struct proxy_nets *nets, const char *list, char *err,
    size_t errlen)
{
	char buf[PROXY_NETS_MAX * (INET6_ADDRSTRLEN + 5)];
	char *item, *next;

	nets->n = 0;
	if (strlen(list) >= sizeof(buf)) {
		snprintf(err, errlen, "--proxy-from: list too long");
		return -1;
	}
	memcpy(buf, list, strlen(list) + 1);
	for (item = buf; item != NULL; item = next) {
		if ((next = strchr(item, ',')) != NULL)
			*next++ = '\0';
		if (nets->n == PROXY_NETS_MAX) {
			snprintf(err, errlen, "--proxy-from: more than %d "
			    "blocks", PROXY_NETS_MAX);
			return -1;
		}
		if (parse_net(&nets->net[nets->n], item) < 0) {
			snprintf(err, errlen, "--proxy-from: '%s' is not an "
			    "address or CIDR block", item);
			return -1;
		}
		nets->n++;
	}
	return 0;
}

static int
prefix_equal(const unsigned char *a, const unsigned char *b, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ b[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

int
proxy_nets_match(const struct proxy_nets *nets, const struct sockaddr *sa,
    socklen_t salen)
{
	const unsigned char *addr;
	int family, i;

	if (sa->sa_family == AF_INET && salen >= sizeof(struct sockaddr_in)) {
		addr = (const unsigned char *)
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr;
		family = AF_INET;
	} else if (sa->sa_family == AF_INET6 &&
	    salen >= sizeof(struct sockaddr_in6)) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;

		addr = a6->s6_addr;
		family = AF_INET6;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			addr += 12;
			family = AF_INET;
		}
	} else {
		return 0;
	}
	for (i = 0; i < nets->n; i++)
		if (nets->net[i].family == family &&
		    prefix_equal(addr, nets->net[i].addr, nets->net[i].bits))
			return 1;
	return 0;
}

/* ---- version 1: "PROXY TCP4 src dst sport dport\r\n" ---- */

/* A port: 0..65535 in decimal, no sign, no leading zero. */
static int
parse_port(const char *s)
{
	return parse_bits(s, 65535);
}

static enum proxy_status
set_v1_addr(struct sockaddr_storage *ss, socklen_t *sl, int family,
    const char *addr, const char *port)
{
	int p = parse_port(port);

	memset(ss, 0, sizeof(*ss));
	if (p < 0)
		return PROXY_BAD;
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
			return PROXY_BAD;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		*sl = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
			return PROXY_BAD;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		*sl = sizeof(*sin6);
	}
	return PROXY_DONE;
}

static enum proxy_status
parse_v1(const unsigned char *buf, size_t n, struct proxy_hdr *h,
    const char **why)
{
	char line[PROXY_V1_MAX + 1], *f[7], *p;
	size_t i, len, lim = n < PROXY_V1_MAX ? n : PROXY_V1_MAX;
	int nf, family;

	/* Printable text, then CRLF. */
	for (i = 0; i < lim; i++) {
		if (buf[i] == '\r' && (i + 1 == n || buf[i + 1] == '\n'))
			break;
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return bad(why, "v1 header: not text, or not ended by "
			    "CRLF");
	}
	if (i == lim)
		return n >= PROXY_V1_MAX ? bad(why, "v1 header: longer "
		    "than 107 octets") : PROXY_MORE;
	if (i + 2 > PROXY_V1_MAX)
		return bad(why, "v1 header: longer than 107 octets");
	if (i + 1 == n)
		return PROXY_MORE;	/* CR seen, LF still to come */
	len = i;
	memcpy(line, buf, len);
	line[len] = '\0';

	/* Fields separated by exactly one space. */
	for (nf = 0, p = line; nf < 7; nf++) {
		f[nf] = p;
		if ((p = strchr(p, ' ')) == NULL) {
			nf++;
			break;
		}
		*p++ = '\0';
	}
	memset(h, 0, sizeof(*h));
	h->version = 1;
	h->len = len + 2;
	if (nf >= 2 && strcmp(f[1], "UNKNOWN") == 0) {
		h->local = 1;	/* the rest of the line is to be ignored */
		return PROXY_DONE;
	}
	if (nf < 2 || (strcmp(f[1], "TCP4") != 0 && strcmp(f[1], "TCP6") != 0))
		return bad(why, "v1 header: protocol is not TCP4, TCP6 or "
		    "UNKNOWN");
	if (nf != 6 || p != NULL)
		return bad(why, "v1 header: not five fields after PROXY");
	for (i = 2; i < 6; i++)
		if (*f[i] == '\0')
			return bad(why, "v1 header: empty field");
	family = f[1][3] == '4' ? AF_INET : AF_INET6;
	if (set_v1_addr(&h->src, &h->srclen, family, f[2], f[4]) != PROXY_DONE ||
	    set_v1_addr(&h->dst, &h->dstlen, family, f[3], f[5]) != PROXY_DONE)
		return bad(why, "v1 header: bad address or port");
	return PROXY_DONE;
}

/* ---- version 2: binary ---- */

/* CRC-32C (Castagnoli), as the v2 CRC32C TLV carries it. */
static uint32_t
crc32c(const unsigned char *p, size_t n)
{
	uint32_t crc = 0xffffffff;
	int k;

	while (n-- > 0) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78 & (0 - (crc & 1)));
	}
	return ~crc;
}

static uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static int
check_crc(const unsigned char *buf, size_t total, size_t at)
{
	unsigned char copy[PROXY_V2_MAX];

	memcpy(copy, buf, total);
	memset(copy + at, 0, 4);
	return crc32c(copy, total) == get32(buf + at);
}

static enum proxy_status
parse_tlvs(const unsigned char *buf, size_t off, size_t total,
    struct proxy_hdr *h, const char **why)
{
	while (off < total) {
		size_t tlen;
		unsigned type;

		if (total - off < 3)
			return bad(why, "v2 header: truncated TLV");
		type = buf[off];
		tlen = (size_t)buf[off + 1] << 8 | buf[off + 2];
		off += 3;
		if (tlen > total - off)
			return bad(why, "v2 header: TLV longer than the header");
		switch (type) {
		case V2_TLV_SSL:
			if (tlen < V2_SSL_FIXED)
				return bad(why, "v2 header: short SSL TLV");
			if (buf[off] & V2_CLIENT_SSL)
				h->tls = 1;
			break;
		case V2_TLV_CRC32C:
			if (tlen != 4 || !check_crc(buf, total, off))
				return bad(why, "v2 header: CRC32C mismatch");
			break;
		default:
			break;	/* ALPN, authority, unique-id, ...: unused */
		}
		off += tlen;
	}
	return PROXY_DONE;
}

static enum proxy_status
parse_v2(const unsigned char *buf, size_t n, struct proxy_hdr *h,
    const char **why)
{
	size_t total, alen;

	if (n < V2_FIXED)
		return PROXY_MORE;
	if ((buf[12] >> 4) != 2)
		return bad(why, "v2 header: version is not 2");
	if ((buf[12] & 0xf) != V2_CMD_LOCAL && (buf[12] & 0xf) != V2_CMD_PROXY)
		return bad(why, "v2 header: unknown command");
	total = V2_FIXED + ((size_t)buf[14] << 8 | buf[15]);
	if (total > PROXY_V2_MAX)
		return bad(why, "v2 header: too long");
	if (n < total)
		return PROXY_MORE;
	memset(h, 0, sizeof(*h));
	h->version = 2;
	h->len = total;
	if ((buf[12] & 0xf) == V2_CMD_LOCAL) {
		h->local = 1;	/* addresses, if any, are to be ignored */
		return PROXY_DONE;
	}
	if (buf[13] == V2_FAM_TCP4) {
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;

		if ((alen = V2_ADDR4_LEN) > total - V2_FIXED)
			return bad(why, "v2 header: short IPv4 addresses");
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, buf + 16, 4);
		memcpy(&d->sin_addr, buf + 20, 4);
		memcpy(&s->sin_port, buf + 24, 2);
		memcpy(&d->sin_port, buf + 26, 2);
		h->srclen = h->dstlen = sizeof(*s);
	} else if (buf[13] == V2_FAM_TCP6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;

		if ((alen = V2_ADDR6_LEN) > total - V2_FIXED)
			return bad(why, "v2 header: short IPv6 addresses");
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, buf + 16, 16);
		memcpy(&d->sin6_addr, buf + 32, 16);
		memcpy(&s->sin6_port, buf + 48, 2);
		memcpy(&d->sin6_port, buf + 50, 2);
		h->srclen = h->dstlen = sizeof(*s);
	} else {
		return bad(why, "v2 header: not TCP over IPv4 or IPv6");
	}
	return parse_tlvs(buf, V2_FIXED + alen, total, h, why);
}

/* ---- either ---- */

enum proxy_status
proxy_parse(const unsigned char *buf, size_t n, struct proxy_hdr *h,
    const char **why)
{
	size_t k;

	if (n == 0)
		return PROXY_MORE;
	if (buf[0] == v2_sig[0]) {
		k = n < sizeof(v2_sig) ? n : sizeof(v2_sig);
		if (memcmp(buf, v2_sig, k) != 0)
			return bad(why, "not a PROXY header");
		return parse_v2(buf, n, h, why);
	}
	k = n < V1_PREFIX_LEN ? n : V1_PREFIX_LEN;
	if (memcmp(buf, v1_prefix, k) != 0)
		return bad(why, "not a PROXY header");
	return parse_v1(buf, n, h, why);
}

int
proxy_looks_like(const unsigned char *buf, size_t n)
{
	return (n >= V1_PREFIX_LEN && memcmp(buf, v1_prefix,
	    V1_PREFIX_LEN) == 0) || (n >= sizeof(v2_sig) &&
	    memcmp(buf, v2_sig, sizeof(v2_sig)) == 0);
}

int
proxy_first_line(const char *line, size_t len, const unsigned char *rest,
    size_t n)
{
	/* v2's signature is an empty line, then "\r\n\0\r\nQUIT\n". */
	if (len == 0)
		return n >= sizeof(v2_sig) - 2 &&
		    memcmp(rest, v2_sig + 2, sizeof(v2_sig) - 2) == 0;
	return len >= V1_PREFIX_LEN && memcmp(line, v1_prefix,
	    V1_PREFIX_LEN) == 0;
}
