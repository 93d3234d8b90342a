/*
 * test_proxy.c: unit tests of proxy.c, table-driven.  Every header is fed
 * whole, then as each of its prefixes (the bytes a split read leaves), and
 * with a POP3 command after it, which must never be counted as header.
 */
#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdint.h>
#include <stdlib.h>

#include "proxy.h"
#include "tap.h"

/* ---- building v2 headers ---- */

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

struct hbuf {
	unsigned char	b[4096];
	size_t		n;
};

static void
put(struct hbuf *h, const void *p, size_t n)
{
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void
put8(struct hbuf *h, unsigned v)
{
	h->b[h->n++] = (unsigned char)v;
}

static void
put16(struct hbuf *h, unsigned v)
{
	put8(h, v >> 8);
	put8(h, v & 0xff);
}

/* Signature, version/command, family; the length is set by v2_end. */
static void
v2_begin(struct hbuf *h, unsigned vercmd, unsigned fam)
{
	h->n = 0;
	put(h, sig, sizeof(sig));
	put8(h, vercmd);
	put8(h, fam);
	put16(h, 0);
}

static void
v2_end(struct hbuf *h)
{
	h->b[14] = (unsigned char)((h->n - 16) >> 8);
	h->b[15] = (unsigned char)((h->n - 16) & 0xff);
}

static void
v2_addr4(struct hbuf *h, const char *src, const char *dst, unsigned sp,
    unsigned dp)
{
	struct in_addr a;

	inet_pton(AF_INET, src, &a);
	put(h, &a, 4);
	inet_pton(AF_INET, dst, &a);
	put(h, &a, 4);
	put16(h, sp);
	put16(h, dp);
}

static void
v2_addr6(struct hbuf *h, const char *src, const char *dst, unsigned sp,
    unsigned dp)
{
	struct in6_addr a;

	inet_pton(AF_INET6, src, &a);
	put(h, &a, 16);
	inet_pton(AF_INET6, dst, &a);
	put(h, &a, 16);
	put16(h, sp);
	put16(h, dp);
}

static void
tlv(struct hbuf *h, unsigned type, const void *v, size_t n)
{
	put8(h, type);
	put16(h, (unsigned)n);
	put(h, v, n);
}

/* CRC-32C written independently of proxy.c's, checked on its test vector. */
static uint32_t
ref_crc32c(const unsigned char *p, size_t n)
{
	uint32_t crc = ~0u;
	size_t i;
	int k;

	for (i = 0; i < n; i++)
		for (crc ^= p[i], k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78 : crc >> 1;
	return ~crc;
}

/* Append a CRC32C TLV; v2_end must have run; flip corrupts it. */
static void
v2_crc(struct hbuf *h, int flip)
{
	unsigned char zero[4] = { 0, 0, 0, 0 };
	uint32_t c;
	size_t at;

	tlv(h, 0x03, zero, 4);
	v2_end(h);
	at = h->n - 4;
	c = ref_crc32c(h->b, h->n) ^ (flip ? 1 : 0);
	h->b[at] = c >> 24;
	h->b[at + 1] = (c >> 16) & 0xff;
	h->b[at + 2] = (c >> 8) & 0xff;
	h->b[at + 3] = c & 0xff;
}

/* ---- expectations ---- */

struct want {
	enum proxy_status st;
	int		 local, tls, version;
	const char	*src;		/* "addr port", NULL: not checked */
};

static void
addr_text(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)ss;

		inet_ntop(AF_INET, &s->sin_addr, a, sizeof(a));
		port = ntohs(s->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const void *)ss;

		inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof(a));
		port = ntohs(s->sin6_port);
	}
	snprintf(buf, len, "%s %u", a, port);
}

/*
 * Whole, each prefix, and with POP3 bytes after it.  A good header is
 * PROXY_MORE for every proper prefix and PROXY_DONE with its exact length
 * after; a bad one is never PROXY_DONE, and PROXY_BAD whole.
 */
static void
check(const char *name, const unsigned char *b, size_t n, const struct want *w)
{
	static const char more[] = "USER alice\r\nPASS x\r\n";
	unsigned char *buf = malloc(n + sizeof(more));
	struct proxy_hdr h;
	const char *why = NULL;
	char text[128];
	size_t k;
	int prefixes_ok = 1;
	enum proxy_status st;

	if (buf == NULL)
		abort();
	memcpy(buf, b, n);
	memcpy(buf + n, more, sizeof(more) - 1);
	for (k = 0; k < n; k++) {
		st = proxy_parse(buf, k, &h, &why);
		if (st == PROXY_DONE || (w->st == PROXY_DONE && st != PROXY_MORE)) {
			prefixes_ok = 0;
			printf("# %s: prefix of %zu octets: %d (%s)\n", name, k,
			    st, st == PROXY_BAD ? why : "");
		}
	}
	ok(prefixes_ok, "%s: every prefix wants more%s", name,
	    w->st == PROXY_DONE ? "" : " or is refused");
	st = proxy_parse(buf, n, &h, &why);
	ok(st == w->st, "%s: whole: %s", name, st == PROXY_BAD ? why :
	    st == PROXY_DONE ? "done" : "more");
	if (w->st == PROXY_DONE && st == PROXY_DONE) {
		ok(h.len == n && h.local == w->local && h.tls == w->tls &&
		    h.version == w->version, "%s: length %zu of %zu, local %d, "
		    "tls %d, version %d", name, h.len, n, h.local, h.tls,
		    h.version);
		if (w->src != NULL) {
			addr_text(&h.src, text, sizeof(text));
			ok(strcmp(text, w->src) == 0, "%s: source %s", name,
			    text);
		}
		st = proxy_parse(buf, n + sizeof(more) - 1, &h, &why);
		ok(st == PROXY_DONE && h.len == n, "%s: POP3 bytes after it "
		    "are left alone", name);
	}
	if (w->st == PROXY_BAD) {
		st = proxy_parse(buf, n + sizeof(more) - 1, &h, &why);
		ok(st == PROXY_BAD, "%s: still refused with more bytes", name);
	}
	free(buf);
}

/* The header itself names the case, CR and LF made visible. */
static void
check_str(const char *s, const struct want *w)
{
	char name[512];
	size_t i, k = 0;

	for (i = 0; s[i] != '\0' && k < sizeof(name) - 3; i++) {
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\t') {
			name[k++] = '\\';
			name[k++] = s[i] == '\r' ? 'r' : s[i] == '\n' ? 'n' : 't';
		} else
			name[k++] = s[i];
	}
	name[k] = '\0';
	check(name, (const unsigned char *)s, strlen(s), w);
}

/* ---- version 1 ---- */

static void
test_v1(void)
{
	static const struct {
		const char	*s;
		struct want	 w;
	} t[] = {
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\n",
		    { PROXY_DONE, 0, 0, 1, "192.0.2.7 56324" } },
		{ "PROXY TCP6 2001:db8::7 2001:db8::1 65535 110\r\n",
		    { PROXY_DONE, 0, 0, 1, "2001:db8::7 65535" } },
		{ "PROXY TCP6 ::ffff:192.0.2.7 ::1 0 110\r\n",
		    { PROXY_DONE, 0, 0, 1, "::ffff:192.0.2.7 0" } },
		{ "PROXY UNKNOWN\r\n", { PROXY_DONE, 1, 0, 1, NULL } },
		{ "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
		    { PROXY_DONE, 1, 0, 1, NULL } },
		/* The longest possible, 107 octets with CRLF. */
		{ "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		    { PROXY_DONE, 1, 0, 1, NULL } },
		{ "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		    { PROXY_DONE, 0, 0, 1,
		      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535" } },
		/* Malformed. */
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110\r\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110 9\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7  198.51.100.1 56324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110 \r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 2001:db8::7 2001:db8::1 56324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP6 192.0.2.7 198.51.100.1 56324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.256 198.51.100.1 56324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 65536 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 056324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 -1 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY UDP4 192.0.2.7 198.51.100.1 56324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY tcp4 192.0.2.7 198.51.100.1 56324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY\r\n", { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY \r\n", { PROXY_BAD, 0, 0, 0, NULL } },
		{ "proxy TCP4 192.0.2.7 198.51.100.1 56324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		{ "USER alice\r\n", { PROXY_BAD, 0, 0, 0, NULL } },
		{ "PROXY TCP4 192.0.2.7\t198.51.100.1 56324 110\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
		/* 108 octets with CRLF: one too many. */
		{ "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
		  "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n",
		    { PROXY_BAD, 0, 0, 0, NULL } },
	};
	static const char withnul[] = "PROXY TCP4 \0.0.2.7 198.51.100.1 1 2\r\n";
	char longline[300];
	struct want bad = { PROXY_BAD, 0, 0, 0, NULL };
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		check_str(t[i].s, &t[i].w);

	/* No CRLF within 107 octets: refused at 107, whatever follows. */
	memset(longline, 'A', sizeof(longline));
	memcpy(longline, "PROXY TCP4 ", 11);
	longline[sizeof(longline) - 1] = '\0';
	check_str(longline, &bad);

	/* A NUL inside. */
	check("v1 with NUL", (const unsigned char *)withnul,
	    sizeof(withnul) - 1, &bad);
}

/* ---- version 2 ---- */

static void
test_v2(void)
{
	struct want w4 = { PROXY_DONE, 0, 0, 2, "192.0.2.7 56324" };
	struct want w6 = { PROXY_DONE, 0, 0, 2, "2001:db8::7 4711" };
	struct want tls = { PROXY_DONE, 0, 1, 2, "192.0.2.7 56324" };
	struct want local = { PROXY_DONE, 1, 0, 2, NULL };
	struct want bad = { PROXY_BAD, 0, 0, 0, NULL };
	unsigned char ssl[64], big[PROXY_V2_MAX];
	struct hbuf h;

	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	v2_end(&h);
	check("v2 TCP4", h.b, h.n, &w4);

	v2_begin(&h, 0x21, 0x21);
	v2_addr6(&h, "2001:db8::7", "2001:db8::1", 4711, 110);
	v2_end(&h);
	check("v2 TCP6", h.b, h.n, &w6);

	/* TLVs HAProxy sends: ALPN, authority, unique-id, NOOP padding. */
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	tlv(&h, 0x01, "pop3", 4);
	tlv(&h, 0x02, "mail.example.org", 16);
	tlv(&h, 0x05, "0123456789abcdef", 16);
	tlv(&h, 0x04, "", 0);
	v2_end(&h);
	check("v2 TCP4 with TLVs", h.b, h.n, &w4);

	/* SSL TLV: client bit set (with a version sub-TLV), then not set. */
	memset(ssl, 0, sizeof(ssl));
	ssl[0] = 0x01 | 0x02;
	ssl[5] = 0x21;
	ssl[7] = 7;
	memcpy(ssl + 8, "TLSv1.3", 7);
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	tlv(&h, 0x20, ssl, 15);
	v2_end(&h);
	check("v2 SSL TLV, client used TLS", h.b, h.n, &tls);
	ssl[0] = 0x02;
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	tlv(&h, 0x20, ssl, 5);
	v2_end(&h);
	check("v2 SSL TLV, client bit clear", h.b, h.n, &w4);
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	tlv(&h, 0x20, ssl, 4);
	v2_end(&h);
	check("v2 SSL TLV too short", h.b, h.n, &bad);

	/* CRC32C: the reference on its check value, then right and wrong. */
	ok(ref_crc32c((const unsigned char *)"123456789", 9) == 0xe3069283,
	    "reference CRC-32C check value");
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	v2_crc(&h, 0);
	check("v2 with a right CRC32C", h.b, h.n, &w4);
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	v2_crc(&h, 1);
	check("v2 with a wrong CRC32C", h.b, h.n, &bad);

	/* LOCAL: no client, addresses ignored (the caller refuses it). */
	v2_begin(&h, 0x20, 0x00);
	v2_end(&h);
	check("v2 LOCAL", h.b, h.n, &local);
	v2_begin(&h, 0x20, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	v2_end(&h);
	check("v2 LOCAL with addresses", h.b, h.n, &local);

	/* Malformed. */
	v2_begin(&h, 0x11, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	v2_end(&h);
	check("v2 version 1 in the binary form", h.b, h.n, &bad);
	v2_begin(&h, 0x22, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	v2_end(&h);
	check("v2 unknown command", h.b, h.n, &bad);
	v2_begin(&h, 0x21, 0x12);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	v2_end(&h);
	check("v2 UDP", h.b, h.n, &bad);
	v2_begin(&h, 0x21, 0x00);
	v2_end(&h);
	check("v2 PROXY with family UNSPEC", h.b, h.n, &bad);
	v2_begin(&h, 0x21, 0x31);
	memset(big, 0, 216);
	put(&h, big, 216);
	v2_end(&h);
	check("v2 UNIX addresses", h.b, h.n, &bad);
	v2_begin(&h, 0x21, 0x11);
	put(&h, "\xc0\x00\x02\x07\xc6\x33\x64\x01\x00", 9);
	v2_end(&h);
	check("v2 TCP4 addresses cut short", h.b, h.n, &bad);
	v2_begin(&h, 0x21, 0x21);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	v2_end(&h);
	check("v2 TCP6 with IPv4-sized addresses", h.b, h.n, &bad);
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	put(&h, "\x01\x00", 2);
	v2_end(&h);
	check("v2 truncated TLV", h.b, h.n, &bad);
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	put(&h, "\x01\x00\x09pop3", 7);
	v2_end(&h);
	check("v2 TLV longer than the header", h.b, h.n, &bad);
	h.n = 0;
	put(&h, sig, 11);
	put8(&h, 0x0b);
	put(&h, "\x21\x11\x00\x0c", 4);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	check("v2 wrong signature", h.b, h.n, &bad);

	/* Length: the largest accepted, and one more. */
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	memset(big, 'x', sizeof(big));
	tlv(&h, 0x05, big, PROXY_V2_MAX - h.n - 3);
	v2_end(&h);
	check("v2 of the largest size accepted", h.b, h.n, &w4);
	v2_begin(&h, 0x21, 0x11);
	v2_addr4(&h, "192.0.2.7", "198.51.100.1", 56324, 110);
	tlv(&h, 0x05, big, PROXY_V2_MAX - h.n - 2);
	v2_end(&h);
	check("v2 one octet too long", h.b, h.n, &bad);
	h.b[14] = h.b[15] = 0xff;
	check("v2 claiming 64 KiB", h.b, 16, &bad);
}

/* ---- looks like a header ---- */

static void
test_looks_like(void)
{
	static const struct { const char *s; size_t n; int yes; } t[] = {
		{ "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", 32, 1 },
		{ "PROXY ", 6, 1 },
		{ "PROXY", 5, 0 },
		{ "USER alice\r\n", 12, 0 },
		{ "\r\n\r\n\0\r\nQUIT\n\x21\x11", 14, 1 },
		{ "\r\n\r\n\0\r\nQUIT", 11, 0 },
		{ "\r\nQUIT\r\n", 8, 0 },
		{ "", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ok(proxy_looks_like((const unsigned char *)t[i].s, t[i].n) ==
		    t[i].yes, "looks like a header: case %zu", i);
}

/* ---- a header seen as the first command line ---- */

static void
test_first_line(void)
{
	static const struct {
		const char *line, *rest;
		size_t restlen;
		int yes;
	} t[] = {
		{ "PROXY TCP4 192.0.2.7 198.51.100.1 56324 110", "", 0, 1 },
		{ "PROXY UNKNOWN", "STAT\r\n", 6, 1 },
		{ "PROXY", "", 0, 0 },
		{ "STAT", "", 0, 0 },
		{ "", "\r\n\0\r\nQUIT\n\x21\x11\x00\x0c", 14, 1 },
		{ "", "\r\n\0\r\nQUIT\n", 10, 1 },
		{ "", "\r\n\0\r\nQUIT", 9, 0 },
		{ "", "STAT\r\n", 6, 0 },
		{ "", "", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ok(proxy_first_line(t[i].line, strlen(t[i].line),
		    (const unsigned char *)t[i].rest, t[i].restlen) == t[i].yes,
		    "first line: case %zu", i);
}

/* ---- the source list ---- */

static int
match(const struct proxy_nets *nets, const char *addr)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;

	memset(&s4, 0, sizeof(s4));
	memset(&s6, 0, sizeof(s6));
	if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		return proxy_nets_match(nets, (struct sockaddr *)&s4,
		    sizeof(s4));
	}
	if (inet_pton(AF_INET6, addr, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		return proxy_nets_match(nets, (struct sockaddr *)&s6,
		    sizeof(s6));
	}
	return -1;
}

static void
test_nets(void)
{
	static const struct { const char *list, *addr; int yes; } t[] = {
		{ "127.0.0.1", "127.0.0.1", 1 },
		{ "127.0.0.1", "127.0.0.2", 0 },
		{ "127.0.0.1", "::ffff:127.0.0.1", 1 },
		{ "127.0.0.1", "::1", 0 },
		{ "::1", "::1", 1 },
		{ "::1", "127.0.0.1", 0 },
		{ "10.0.0.0/8", "10.255.3.4", 1 },
		{ "10.0.0.0/8", "11.0.0.1", 0 },
		{ "10.1.2.3/8", "10.200.0.1", 1 },	/* host bits ignored */
		{ "192.0.2.128/25", "192.0.2.127", 0 },
		{ "192.0.2.128/25", "192.0.2.129", 1 },
		{ "192.0.2.0/31", "192.0.2.1", 1 },
		{ "192.0.2.0/31", "192.0.2.2", 0 },
		{ "0.0.0.0/0", "203.0.113.9", 1 },
		{ "0.0.0.0/0", "2001:db8::1", 0 },
		{ "::/0", "2001:db8::1", 1 },
		{ "2001:db8::/32", "2001:db8:ffff::1", 1 },
		{ "2001:db8::/32", "2001:db9::1", 0 },
		{ "2001:db8::/33", "2001:db8:8000::1", 0 },
		{ "::ffff:0:0/96", "::ffff:1.2.3.4", 0 },	/* seen as IPv4 */
		{ "192.0.2.1,198.51.100.0/24,::1", "198.51.100.77", 1 },
		{ "192.0.2.1,198.51.100.0/24,::1", "::1", 1 },
		{ "192.0.2.1,198.51.100.0/24,::1", "192.0.2.2", 0 },
	};
	static const char *bad[] = {
		"", ",", "127.0.0.1,", "127.0.0.1/33", "::1/129", "10.0.0.0/",
		"10.0.0.0/-1", "10.0.0.0/08", "localhost", "10.0.0/8",
		"10.0.0.0/8/8", "127.0.0.1 ", " 127.0.0.1", "1.2.3.4;5.6.7.8",
	};
	struct proxy_nets nets;
	char err[256], many[4096];
	size_t i;
	int r;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		r = proxy_nets_parse(&nets, t[i].list, err, sizeof(err));
		ok(r == 0 && match(&nets, t[i].addr) == t[i].yes,
		    "%s %s %s", t[i].addr, t[i].yes ? "in" : "not in",
		    t[i].list);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		r = proxy_nets_parse(&nets, bad[i], err, sizeof(err));
		ok(r < 0 && strstr(err, "--proxy-from") != NULL,
		    "list '%s' refused: %s", bad[i], err);
	}

	/* The limit on blocks. */
	many[0] = '\0';
	for (i = 0; i < PROXY_NETS_MAX; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
		    "%s10.0.%zu.0/24", i ? "," : "", i);
	ok(proxy_nets_parse(&nets, many, err, sizeof(err)) == 0 &&
	    nets.n == PROXY_NETS_MAX && match(&nets, "10.0.63.9") == 1,
	    "%d blocks accepted", PROXY_NETS_MAX);
	snprintf(many + strlen(many), sizeof(many) - strlen(many),
	    ",10.1.0.0/16");
	ok(proxy_nets_parse(&nets, many, err, sizeof(err)) < 0,
	    "%d blocks refused: %s", PROXY_NETS_MAX + 1, err);
}

int
main(void)
{
	test_v1();
	test_v2();
	test_looks_like();
	test_first_line();
	test_nets();
	return tap_done();
}
