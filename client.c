/*
 * client.c: pop3c's protocol engine (client.h): connecting, reading and
 * decoding replies, saving a message, TLS.  Called by pop3c.c, and by
 * tests and fuzzers through client_init() and client_reply().  No
 * readline, no terminal, no globals: everything lives in the caller's
 * struct client_conn and struct client_sink.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

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
	c->plen = 0;
	c->pcut = 0;
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
	case CLIENT_TOOBIG:
		client_warnx("the reply went on past its size: stopped");
		break;
	}
}

/* ---- replies --------------------------------------------------------- */

enum client_rc
client_status_line(struct client_conn *c, int *midway)
{
	size_t len = c->plen;
	int cut = c->pcut;

	*midway = 0;
	c->plen = 0;
	c->pcut = 0;
	for (;;) {
		ssize_t n = reader_fill(&c->r, c->timeout_ms);
		const char *d, *nl;
		size_t take, room;

		if (n <= 0) {
			enum client_rc rc = fill_failed(c, n);

			*midway = len > 0;
			c->line[len] = '\0';
			c->linelen = len;
			if (rc == CLIENT_INTR) {
				c->plen = len;
				c->pcut = cut;
			}
			return rc;
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

/* ---- showing the server's bytes ------------------------------------- */

static void
vis_byte(FILE *out, unsigned char ch)
{
	if (ch < 0x20 || ch == 0x7f)
		fprintf(out, "^%c", ch ^ 0x40);
	else
		fprintf(out, "\\x%02x", ch);
}

/* Bytes a UTF-8 sequence starting with ch has, 0 if ch cannot start one. */
static int
utf8_len(unsigned char ch)
{
	if (ch >= 0xc2 && ch <= 0xdf)
		return 2;
	if (ch >= 0xe0 && ch <= 0xef)
		return 3;
	if (ch >= 0xf0 && ch <= 0xf4)
		return 4;
	return 0;
}

/* May ch follow the bytes of v->seq?  RFC 3629 section 4: no overlong
 * forms, no surrogates, nothing above U+10FFFF. */
static int
utf8_next_ok(const struct client_vis *v, unsigned char ch)
{
	unsigned char lo = 0x80, hi = 0xbf;

	if (v->len == 1) {
		switch (v->seq[0]) {
		case 0xe0: lo = 0xa0; break;
		case 0xed: hi = 0x9f; break;
		case 0xf0: lo = 0x90; break;
		case 0xf4: hi = 0x8f; break;
		}
	}
	return ch >= lo && ch <= hi;
}

static void
vis_held(FILE *out, struct client_vis *v)
{
	int i;

	for (i = 0; i < v->len; i++)
		vis_byte(out, v->seq[i]);
	v->len = v->need = 0;
}

void
client_vis(FILE *out, struct client_vis *v, const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p, *end = u + n;

	while (u < end) {
		const unsigned char *run = u;

		/* The common case: plain text up to a byte that needs care. */
		if (v->len == 0 && !v->cr) {
			while (u < end && ((*u >= 0x20 && *u < 0x7f) ||
			    *u == '\t' || *u == '\n'))
				u++;
			if (u > run)
				fwrite(run, 1, u - run, out);
			if (u == end)
				break;
		}
		if (v->cr) {
			v->cr = 0;
			if (*u == '\n') {
				fputc('\n', out);
				u++;
				continue;
			}
			fputs("^M", out);
			continue;	/* this byte anew */
		}
		if (v->len > 0) {
			if (!utf8_next_ok(v, *u)) {
				vis_held(out, v);
				continue;	/* this byte anew */
			}
			v->seq[v->len++] = *u++;
			if (v->len < v->need)
				continue;
			if (v->seq[0] == 0xc2 && v->seq[1] < 0xa0)
				fprintf(out, "\\u%04x", v->seq[1]);	/* C1 */
			else
				fwrite(v->seq, 1, v->len, out);
			v->len = v->need = 0;
			continue;
		}
		if (*u == '\r')
			v->cr = 1;
		else if ((v->need = utf8_len(*u)) > 0)
			v->seq[v->len++] = *u;
		else
			vis_byte(out, *u);
		u++;
	}
}

void
client_vis_end(FILE *out, struct client_vis *v)
{
	vis_held(out, v);
	if (v->cr)
		fputs("^M", out);
	v->cr = 0;
}

void
client_show_line(FILE *out, const char *line, size_t len)
{
	struct client_vis v;

	memset(&v, 0, sizeof(v));
	client_vis(out, &v, line, len);
	client_vis_end(out, &v);
	fputc('\n', out);
}

/* A complete listing line in s->ebuf: "n word ...". */
static void
listing_line(struct client_sink *s)
{
	char *p = s->ebuf, *w;
	uint64_t n = 0;
	size_t wl;

	if (*p < '0' || *p > '9')
		return;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (UINT64_MAX - 9) / 10)
			n = UINT64_MAX;		/* saturate: bounded by caller */
		else
			n = n * 10 + (*p - '0');
	}
	if (*p != ' ' && *p != '\0' && *p != '\r')
		return;
	if (n > s->maxnum)
		s->maxnum = n;
	w = p + strspn(p, " ");
	wl = strcspn(w, " \r");
	if (wl > UIDL_MAX)
		return;
	w[wl] = '\0';
	if (s->entry != NULL)
		s->entry(s->arg, n, w);
}

/* Cut a listing into lines; a line longer than CLIENT_ENTRY_MAX is judged
 * by its start. */
static void
scan_listing(struct client_sink *s, const char *p, size_t n)
{
	for (; n > 0; p++, n--) {
		if (*p == '\n') {
			s->ebuf[s->elen] = '\0';
			listing_line(s);
			s->elen = 0;
		} else if (s->elen < CLIENT_ENTRY_MAX)
			s->ebuf[s->elen++] = *p;
	}
}

enum client_rc
client_body(struct client_conn *c, struct client_sink *s)
{
	struct dotdec d;
	int done = 0;

	dotdec_init(&d);
	while (!done) {
		ssize_t n;
		size_t used, outlen;

		if (s->intr != NULL && *s->intr) {
			*(volatile sig_atomic_t *)s->intr = 0;
			if (s->interrupted)
				return CLIENT_INTR;
			s->interrupted = 1;
		}
		n = reader_fill(&c->r, c->timeout_ms);
		if (n < 0 && errno == EINTR && s->intr != NULL) {
			continue;	/* the flag decides */
		}
		if (n <= 0) {
			if (s->out != NULL) {
				client_vis_end(s->out, &s->vis);
				fputc('\n', s->out);
			}
			return fill_failed(c, n);
		}
		if ((size_t)n > RBUF_SIZE)
			n = RBUF_SIZE;
		used = dotdec_feed(&d, reader_data(&c->r), n, c->dec, &outlen,
		    &done);
		reader_consume(&c->r, used);
		s->octets += outlen;
		if (s->max_octets > 0 && s->octets > s->max_octets) {
			if (s->out != NULL) {
				client_vis_end(s->out, &s->vis);
				fputc('\n', s->out);
			}
			return CLIENT_TOOBIG;
		}
		if (s->interrupted)
			continue;
		if (s->out != NULL)
			client_vis(s->out, &s->vis, c->dec, outlen);
		if (s->listing)
			scan_listing(s, c->dec, outlen);
		if (s->fd >= 0 && !s->save_failed) {
			if (proto_write_fd(s->fd, c->dec, outlen) < 0) {
				s->save_errno = errno;
				s->save_failed = 1;
			} else {
				s->saved += outlen;
				if (s->progress != NULL)
					s->progress(s->arg, s->saved);
			}
		}
	}
	if (s->out != NULL)
		client_vis_end(s->out, &s->vis);
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
client_is_maildir(int dirfd)
{
	static const char *const sub[] = { "cur", "new", "tmp" };
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
		if (fstatat(dirfd, sub[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			return 0;
	return 1;
}

/* The unique-id as a file name (injective: '%' itself is escaped). */
static void
safe_name(const char *uid, char *out, size_t cap)
{
	size_t o = 0;
	const unsigned char *u;

	for (u = (const unsigned char *)uid; *u != '\0' && o + 4 < cap; u++) {
		if ((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z') ||
		    (*u >= '0' && *u <= '9') || *u == '_' || *u == '-' ||
		    (*u == '.' && u != (const unsigned char *)uid))
			out[o++] = *u;
		else
			o += snprintf(out + o, cap - o, "%%%02X", *u);
	}
	out[o] = '\0';
}

/* Does NAME exist in new/ or cur/ of a Maildir, or in the folder? */
static int
exists_at(int dirfd, const char *sub, const char *name)
{
	char path[CLIENT_SAVE_NAME_MAX + 8];
	struct stat st;

	snprintf(path, sizeof(path), "%s%s%s", sub, *sub ? "/" : "", name);
	return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

int
client_save_open(struct client_save *sv, int dirfd, const char *dir,
    int maildir, const char *number, const char *uid)
{
	const char *pre = maildir ? "tmp/" : "";
	char base[CLIENT_SAVE_NAME_MAX - 8], path[CLIENT_SAVE_NAME_MAX + 8];
	uint64_t n;
	int i, tries = uid != NULL ? 1 : SAVE_NAME_TRIES;

	sv->dirfd = dirfd;
	sv->dir = dir;
	sv->maildir = maildir;
	sv->fd = -1;
	if (uid != NULL)
		safe_name(uid, base, sizeof(base));
	else if (number != NULL && proto_number(number, UINT64_MAX, &n) == 0)
		snprintf(base, sizeof(base), "%llu", (unsigned long long)n);
	else
		snprintf(base, sizeof(base), "message");
	for (i = 0; i < tries; i++) {
		int len = i == 0 ?
		    snprintf(sv->name, sizeof(sv->name), "%s.eml", base) :
		    snprintf(sv->name, sizeof(sv->name), "%s-%d.eml", base, i);

		if (len < 0 || (size_t)len >= sizeof(sv->name)) {
			client_warnx("cannot save message %s: name too long",
			    base);	/* never a cut name */
			return -1;
		}
		snprintf(sv->shown, sizeof(sv->shown), "%s%s",
		    maildir ? "new/" : "", sv->name);
		/* In a Maildir the name must be free in new/ and cur/ too. */
		if (maildir && (exists_at(dirfd, "new", sv->name) ||
		    exists_at(dirfd, "cur", sv->name))) {
			errno = EEXIST;
			continue;
		}
		snprintf(path, sizeof(path), "%s%s", pre, sv->name);
		sv->fd = openat(dirfd, path,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (sv->fd >= 0)
			return 0;
		if (errno != EEXIST) {
			client_warnx("cannot save to %s/%s: %s", dir, path,
			    strerror(errno));
			return -1;
		}
	}
	if (uid != NULL) {
		fflush(stdout);
		fprintf(stderr, "already saved as %s/%s\n", dir, sv->shown);
		return 1;
	}
	client_warnx("cannot save message %s: no free file name in %s", base,
	    dir);
	return -1;
}

int
client_save_abort(struct client_save *sv)
{
	char path[CLIENT_SAVE_NAME_MAX + 8];

	if (sv->fd >= 0)
		(void)close(sv->fd);
	sv->fd = -1;
	snprintf(path, sizeof(path), "%s%s", sv->maildir ? "tmp/" : "",
	    sv->name);
	if (unlinkat(sv->dirfd, path, 0) < 0) {
		client_warnx("cannot remove %s/%s: %s", sv->dir, path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
client_save_commit(struct client_save *sv)
{
	char from[CLIENT_SAVE_NAME_MAX + 8];
	int fd = sv->fd;

	sv->fd = -1;
	if (close(fd) < 0) {
		client_warnx("closing the saved message: %s", strerror(errno));
		return client_save_abort(sv), -1;
	}
	if (!sv->maildir)
		return 0;
	snprintf(from, sizeof(from), "tmp/%s", sv->name);
	if (renameat2(sv->dirfd, from, sv->dirfd, sv->shown,
	    RENAME_NOREPLACE) < 0) {
		client_warnx("cannot move %s/%s into new/: %s", sv->dir, from,
		    strerror(errno));
		return client_save_abort(sv), -1;
	}
	return 0;
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
		if (strstr(err, "certificate") != NULL)
			client_warnx("hint: --cafile FILE trusts the CA that "
			    "signed the server's certificate; --insecure skips "
			    "the check");
		else if (strstr(err, "wrong version number") != NULL ||
		    strstr(err, "packet length too long") != NULL ||
		    strstr(err, "record layer failure") != NULL)
			client_warnx("the server did not answer in TLS: a plain "
			    "POP3 port? (try --starttls, or leave out --tls)");
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

int
client_tls_info(struct client_conn *c, char *buf, size_t cap)
{
	char raw[2048], *p;

	if (!c->tls_on || tls_peer_info(&c->io, raw, sizeof(raw)) < 0)
		return -1;
	/* Names in a certificate are the server's bytes too. */
	for (p = raw; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 && *p != '\n')
			*p = '?';
		else if ((unsigned char)*p == 0x7f)
			*p = '?';
	snprintf(buf, cap, "%s", raw);
	return 0;
}

void
client_end(struct client_conn *c)
{
	tls_end(&c->io);
	tls_free(c->tls);
	c->tls = NULL;
	c->tls_on = 0;
}
