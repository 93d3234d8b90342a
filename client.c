/*
 * client.c: pop3c's protocol engine (client.h): connecting, reading and
 * decoding replies, saving a message, TLS.  Called by pop3c.c, and by
 * tests and fuzzers through client_init() and client_reply().  No
 * readline, no terminal, no globals: everything lives in the caller's
 * struct client_conn and struct client_sink.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "params.h"
#include "proto.h"
#include "tls.h"

/* Copies of a saved message (N.eml, N-1.eml, ...) tried before giving up. */
#define SAVE_NAME_TRIES		1000

void
client_warnx(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("pop3c: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- the connection -------------------------------------------------- */

/* Wait for a non-blocking connect; 0, or -1 with errno. */
static int
connect_wait(int fd, int timeout_ms, const volatile sig_atomic_t *intr)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int n, err = 0;

	do
		n = poll(&pfd, 1, timeout_ms);
	while (n < 0 && errno == EINTR && (intr == NULL || !*intr));
	if (n < 0)
		return -1;
	if (n == 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -1;
	if (err != 0) {
		errno = err;
		return -1;
	}
	return 0;
}

int
client_connect(const char *host, const char *port, int timeout_ms,
    const volatile sig_atomic_t *intr)
{
	struct addrinfo hints, *res, *ai;
	int fd = -1, e;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		client_warnx("cannot resolve host %s: %s", host,
		    e == EAI_SYSTEM ? strerror(errno) : gai_strerror(e));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		char addr[NI_MAXHOST];

		if (getnameinfo(ai->ai_addr, ai->ai_addrlen, addr,
		    sizeof(addr), NULL, 0, NI_NUMERICHOST) != 0)
			snprintf(addr, sizeof(addr), "?");
		fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd >= 0 && (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS &&
		    connect_wait(fd, timeout_ms, intr) == 0)))
			break;
		e = errno;
		if (fd >= 0)
			close(fd);
		fd = -1;
		if (intr != NULL && *intr) {
			client_warnx("interrupted");
			break;
		}
		if (strcmp(addr, host) == 0)
			client_warnx("cannot connect to %s port %s: %s", host,
			    port, strerror(e));
		else
			client_warnx("cannot connect to %s (%s) port %s: %s",
			    host, addr, port, strerror(e));
	}
	freeaddrinfo(res);
	return fd;
}

void
client_init(struct client_conn *c, int rfd, int wfd, int timeout_ms)
{
	pio_init_fd(&c->io, rfd, wfd);
	reader_init(&c->r, &c->io);
	writer_init(&c->w, &c->io, timeout_ms);
	c->timeout_ms = timeout_ms;
	c->err = 0;
	c->tls_on = 0;
	c->tls = NULL;
	c->status = CLIENT_ST_ERR;
	c->line[0] = '\0';
	c->linelen = 0;
}

/* The result for a reader_fill() that returned n <= 0. */
static enum client_rc
fill_failed(struct client_conn *c, ssize_t n)
{
	if (n == 0)
		return CLIENT_EOF;
	if (errno == ETIMEDOUT)
		return CLIENT_TIMEOUT;
	if (errno == EINTR)
		return CLIENT_INTR;
	c->err = errno;
	return CLIENT_IOERR;
}

void
client_say(const struct client_conn *c, enum client_rc rc, int midway)
{
	switch (rc) {
	case CLIENT_OK:
		break;
	case CLIENT_EOF:
		client_warnx("connection closed by the server%s",
		    midway ? " in the middle of a reply" : "");
		break;
	case CLIENT_TIMEOUT:
		client_warnx("no reply from the server for %d seconds",
		    c->timeout_ms / 1000);
		break;
	case CLIENT_INTR:
		client_warnx("interrupted");
		break;
	case CLIENT_IOERR:
		client_warnx("reading from the server: %s", strerror(c->err));
		break;
	case CLIENT_PROTO:
		client_warnx("the server's reply does not begin with +OK or "
		    "-ERR");
		break;
	}
}

/* ---- replies --------------------------------------------------------- */

enum client_rc
client_status_line(struct client_conn *c, int *midway)
{
	size_t len = 0;
	int cut = 0;

	*midway = 0;
	for (;;) {
		ssize_t n = reader_fill(&c->r, c->timeout_ms);
		const char *d, *nl;
		size_t take, room;

		if (n <= 0) {
			*midway = len > 0;
			c->line[len] = '\0';
			c->linelen = len;
			return fill_failed(c, n);
		}
		d = reader_data(&c->r);
		nl = memchr(d, '\n', n);
		take = nl ? (size_t)(nl - d) + 1 : (size_t)n;
		room = sizeof(c->line) - 1 - len;
		if (take > room)
			cut = 1;
		memcpy(c->line + len, d, take < room ? take : room);
		len += take < room ? take : room;
		reader_consume(&c->r, take);
		if (nl != NULL)
			break;
	}
	if (!cut && len > 0 && c->line[len - 1] == '\n')
		len--;
	if (!cut && len > 0 && c->line[len - 1] == '\r')
		len--;
	c->line[len] = '\0';
	c->linelen = len;
	if (strncmp(c->line, "+OK", 3) == 0)
		c->status = CLIENT_ST_OK;
	else if (c->line[0] == '+')
		c->status = CLIENT_ST_CONT;
	else
		c->status = CLIENT_ST_ERR;
	if (c->line[0] != '+' && c->line[0] != '-')
		return CLIENT_PROTO;
	return CLIENT_OK;
}

void
client_show_line(FILE *out, const char *line, size_t len)
{
	fwrite(line, 1, len, out);
	fputc('\n', out);
}

/* Show n bytes of a reply body, CRLF shown as LF. */
static void
show(struct client_sink *s, const char *p, size_t n)
{
	const char *end = p + n;

	if (n > 0 && s->cr) {
		s->cr = 0;
		if (*p != '\n')
			fputc('\r', s->out);
	}
	while (p < end) {
		const char *cr = memchr(p, '\r', end - p);

		if (cr == NULL) {
			fwrite(p, 1, end - p, s->out);
			return;
		}
		fwrite(p, 1, cr - p, s->out);
		if (cr + 1 == end) {
			s->cr = 1;
			return;
		}
		if (cr[1] != '\n')
			fputc('\r', s->out);
		p = cr + 1;
	}
}

/* Note the first word of each line of a listing ("n ..."). */
static void
scan_listing(struct client_sink *s, const char *p, size_t n)
{
	for (; n > 0; p++, n--) {
		if (s->bol) {
			s->bol = 0;
			s->innum = 1;
			s->num = 0;
		}
		if (*p == '\n') {
			s->bol = 1;
			s->innum = 0;
		}
		if (!s->innum)
			continue;
		if (*p >= '0' && *p <= '9' && s->num <= UINT64_MAX / 10 - 1) {
			s->num = s->num * 10 + (*p - '0');
			continue;
		}
		s->innum = 0;
		if (s->num > s->maxnum)
			s->maxnum = s->num;
	}
}

static int
write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

enum client_rc
client_body(struct client_conn *c, struct client_sink *s)
{
	struct dotdec d;
	int done = 0;

	s->bol = 1;
	dotdec_init(&d);
	while (!done) {
		ssize_t n = reader_fill(&c->r, c->timeout_ms);
		size_t used, outlen;

		if (n <= 0) {
			if (s->out != NULL) {
				if (s->cr)
					fputc('\r', s->out);
				fputc('\n', s->out);
			}
			return fill_failed(c, n);
		}
		if ((size_t)n > RBUF_SIZE)
			n = RBUF_SIZE;
		used = dotdec_feed(&d, reader_data(&c->r), n, c->dec, &outlen,
		    &done);
		reader_consume(&c->r, used);
		if (s->out != NULL)
			show(s, c->dec, outlen);
		if (s->listing)
			scan_listing(s, c->dec, outlen);
		if (s->fd >= 0 && !s->save_failed) {
			if (write_all(s->fd, c->dec, outlen) < 0) {
				s->save_errno = errno;
				s->save_failed = 1;
			} else
				s->saved += outlen;
		}
	}
	if (s->out != NULL && s->cr)
		fputc('\r', s->out);
	return CLIENT_OK;
}

enum client_rc
client_reply(struct client_conn *c, int multi, struct client_sink *s)
{
	enum client_rc rc;
	int midway;

	rc = client_status_line(c, &midway);
	if (s != NULL && s->out != NULL && (rc == CLIENT_OK ||
	    rc == CLIENT_PROTO))
		client_show_line(s->out, c->line, c->linelen);
	if (rc != CLIENT_OK || !multi || c->status != CLIENT_ST_OK ||
	    s == NULL)
		return rc;
	return client_body(c, s);
}

int
client_send(struct client_conn *c, const char *line)
{
	int rc = 0;

	if (writer_put(&c->w, line, strlen(line)) < 0 ||
	    writer_put(&c->w, "\r\n", 2) < 0 || writer_flush(&c->w) < 0) {
		client_warnx("sending to the server: %s", errno == EPIPE ?
		    "connection closed by the server" : strerror(errno));
		rc = -1;
	}
	explicit_bzero(c->w.buf, sizeof(c->w.buf));	/* may be a password */
	return rc;
}

int
client_stat_count(const char *line, uint64_t max, uint64_t *n)
{
	char num[24];
	size_t i = 0;
	const char *p;

	if (strncmp(line, "+OK ", 4) != 0)
		return -1;
	for (p = line + 4; *p >= '0' && *p <= '9' && i < sizeof(num) - 1;
	    p++)
		num[i++] = *p;
	num[i] = '\0';
	return proto_number(num, max, n);
}

/* ---- saving ---------------------------------------------------------- */

int
client_save_open(int dirfd, const char *dir, const char *arg, char *name,
    size_t cap)
{
	uint64_t n;
	char base[32];
	int i, fd;

	if (arg != NULL && proto_number(arg, UINT64_MAX, &n) == 0)
		snprintf(base, sizeof(base), "%llu", (unsigned long long)n);
	else
		snprintf(base, sizeof(base), "message");
	for (i = 0; i < SAVE_NAME_TRIES; i++) {
		int len = i == 0 ? snprintf(name, cap, "%s.eml", base) :
		    snprintf(name, cap, "%s-%d.eml", base, i);

		if (len < 0 || (size_t)len >= cap)
			break;
		fd = openat(dirfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
		if (errno != EEXIST) {
			client_warnx("cannot save to %s/%s: %s", dir, name,
			    strerror(errno));
			return -1;
		}
	}
	client_warnx("cannot save message %s: no free file name in %s", base,
	    dir);
	return -1;
}

/* ---- TLS ------------------------------------------------------------ */

int
client_tls_start(struct client_conn *c, const char *host, const char *cafile,
    int insecure)
{
	char err[512];

	if (c->tls == NULL &&
	    (c->tls = tls_client_new(cafile, insecure, err,
	    sizeof(err))) == NULL) {
		client_warnx("TLS: %s", err);
		return -1;
	}
	/* Bytes that came in clear before the handshake are not trusted. */
	reader_init(&c->r, &c->io);
	if (tls_connect(c->tls, &c->io, host, c->timeout_ms, err,
	    sizeof(err)) < 0) {
		client_warnx("TLS with %s: %s", host, err);
		return -1;
	}
	c->tls_on = 1;
	return 0;
}

const char *
client_tls_describe(struct client_conn *c)
{
	return tls_describe(&c->io);
}

void
client_end(struct client_conn *c)
{
	tls_end(&c->io);
	tls_free(c->tls);
	c->tls = NULL;
	c->tls_on = 0;
}
