/*
 * proto.c: POP3 wire handling shared by pop3d and pop3c (see proto.h).
 * Knows file descriptors and bytes, never files or sessions.
 */
#include <sys/sendfile.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

static ssize_t
fd_read(struct pio *p, void *buf, size_t n)
{
	return read(p->rfd, buf, n);
}

static ssize_t
fd_write(struct pio *p, const void *buf, size_t n)
{
	return write(p->wfd, buf, n);
}

static size_t
fd_pending(struct pio *p)
{
	(void)p;
	return 0;
}

void
pio_init_fd(struct pio *p, int rfd, int wfd)
{
	p->read = fd_read;
	p->write = fd_write;
	p->pending = fd_pending;
	p->rfd = rfd;
	p->wfd = wfd;
	p->want = 0;
	p->ctx = NULL;
}

uint64_t
proto_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

long long
proto_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Wait until fd is ready for events, at most until deadline (ms, <0 none).
 * 1 ready, 0 timed out, -1 error or EINTR.  mask (from wait_mask: the
 * mask of the caller without SIGTERM and SIGINT) lets those in during the
 * wait only: a process that keeps them blocked otherwise (the
 * listener's workers) can never miss one between its flag check and here.
 */
static void
wait_mask(sigset_t *mask)
{
	sigprocmask(SIG_SETMASK, NULL, mask);
	sigdelset(mask, SIGTERM);
	sigdelset(mask, SIGINT);
}

static int
wait_fd(int fd, short events, long long deadline, const sigset_t *mask)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	struct timespec ts, *tp = NULL;
	int n;

	if (deadline >= 0) {
		long long left = deadline - proto_now_ms();

		if (left < 0)
			left = 0;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		tp = &ts;
	}
	n = ppoll(&pfd, 1, tp, mask);
	if (n < 0)
		return -1;
	return n > 0;
}

/* Wait for what io needs next: what its layer asked for after an EAGAIN,
 * else dflt (POLLIN on rfd or POLLOUT on wfd). */
static int
pio_wait(struct pio *io, short dflt, long long deadline, const sigset_t *mask)
{
	short ev = io->want != 0 ? io->want : dflt;

	io->want = 0;
	return wait_fd(ev == POLLOUT ? io->wfd : io->rfd, ev, deadline, mask);
}

static long long
deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : proto_now_ms() + timeout_ms;
}

void
reader_init(struct reader *r, struct pio *io)
{
	r->io = io;
	r->start = r->end = 0;
	r->skipping = 0;
	wait_mask(&r->waitmask);
}

size_t
reader_buffered(const struct reader *r)
{
	return r->end - r->start + r->io->pending(r->io);
}

void
reader_wipe(struct reader *r)
{
	explicit_bzero(r->buf, r->start);
	explicit_bzero(r->buf + r->end, sizeof(r->buf) - r->end);
}

void
reader_push(struct reader *r, const void *p, size_t n)
{
	if (n > sizeof(r->buf) - r->end)
		n = sizeof(r->buf) - r->end;
	memcpy(r->buf + r->end, p, n);
	r->end += n;
}

void
reader_consume(struct reader *r, size_t n)
{
	r->start += n;
	if (r->start >= r->end)
		r->start = r->end = 0;
}

/* Read once into the free space of the buffer.  >0 bytes, 0 EOF, -1 errno
 * (ETIMEDOUT when the deadline passed, EINTR on a signal). */
static ssize_t
read_more(struct reader *r, long long deadline)
{
	ssize_t n;
	short want = POLLIN;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == sizeof(r->buf)) {
		errno = ENOBUFS;
		return -1;
	}
	/* Poll first: a client waiting for each reply has sent nothing yet,
	 * and pipelined input arrives in one read anyway. */
	for (;;) {
		if (r->io->pending(r->io) == 0) {
			int ready = pio_wait(r->io, want, deadline,
			    &r->waitmask);

			if (ready < 0)
				return -1;
			if (ready == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
		}
		n = r->io->read(r->io, r->buf + r->end, sizeof(r->buf) - r->end);
		if (n > 0) {
			r->end += n;
			return n;
		}
		if (n == 0)
			return 0;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		want = r->io->want;	/* TLS may wait for POLLOUT */
		r->io->want = 0;
		if (want == 0)
			want = POLLIN;
		else if (deadline >= 0 && proto_now_ms() >= deadline) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

ssize_t
reader_fill(struct reader *r, int timeout_ms)
{
	ssize_t n;

	if (r->end > r->start)
		return r->end - r->start;
	n = read_more(r, deadline_of(timeout_ms));
	if (n <= 0)
		return n;
	return r->end - r->start;
}

static enum line_status
read_status(long long deadline, struct reader *r)
{
	ssize_t n = read_more(r, deadline);

	if (n > 0)
		return LINE_OK;
	if (n == 0)
		return LINE_EOF;
	if (errno == ETIMEDOUT)
		return LINE_TIMEOUT;
	if (errno == EINTR)
		return LINE_INTR;
	return LINE_ERROR;
}

enum line_status
reader_line(struct reader *r, char *out, size_t cap, size_t maxlen,
    size_t *len, int timeout_ms)
{
	/* One deadline for the whole line: a client dripping one byte at a
	 * time cannot stretch it. */
	long long deadline = deadline_of(timeout_ms);
	enum line_status st;

	if (maxlen > sizeof(r->buf))
		maxlen = sizeof(r->buf);
	for (;;) {
		char *data = r->buf + r->start;
		size_t avail = r->end - r->start;
		char *nl = memchr(data, '\n', avail);

		if (r->skipping) {
			if (nl != NULL) {
				reader_consume(r, nl - data + 1);
				r->skipping = 0;
				continue;
			}
			reader_consume(r, avail);
		} else if (nl != NULL) {
			size_t octets = nl - data + 1, l = octets - 1;

			if (octets > maxlen || l >= cap) {
				reader_consume(r, octets);
				return LINE_TOOLONG;
			}
			if (l > 0 && data[l - 1] == '\r')
				l--;
			memcpy(out, data, l);
			out[l] = '\0';
			*len = l;
			reader_consume(r, octets);
			return memchr(out, '\0', l) ? LINE_NUL : LINE_OK;
		} else if (avail >= maxlen || avail >= cap) {
			/* No LF within maxlen octets: too long whatever follows. */
			reader_consume(r, avail);
			r->skipping = 1;
			return LINE_TOOLONG;
		}
		if ((st = read_status(deadline, r)) != LINE_OK)
			return st;
	}
}

void
writer_init(struct writer *w, struct pio *io, int timeout_ms)
{
	w->io = io;
	w->len = 0;
	w->failed = 0;
	w->err = 0;
	w->timeout_ms = timeout_ms;
	w->total = 0;
}

int
proto_write_fd(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t k = write(fd, c, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0) {
			errno = EIO;
			return -1;
		}
		c += k;
		n -= k;
	}
	return 0;
}

int
proto_read_fd(int fd, void *p, size_t n)
{
	char *c = p;

	while (n > 0) {
		ssize_t k = read(fd, c, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -1;
		if (k == 0) {
			errno = EIO;	/* ended early */
			return -1;
		}
		c += k;
		n -= k;
	}
	return 0;
}

int
pio_write_all(struct pio *io, const void *p, size_t n, int timeout_ms)
{
	const char *s = p;
	long long deadline = deadline_of(timeout_ms);

	while (n > 0) {
		ssize_t k;

		io->want = 0;
		k = io->write(io, s, n);

		if (k > 0) {
			s += k;
			n -= k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			sigset_t mask;
			int ready;

			wait_mask(&mask);
			ready = pio_wait(io, POLLOUT, deadline, &mask);
			if (ready < 0 && errno == EINTR)
				continue;
			if (ready <= 0) {
				if (ready == 0)
					errno = ETIMEDOUT;
				return -1;
			}
			continue;
		}
		if (k == 0)
			errno = EPIPE;
		return -1;
	}
	return 0;
}

int
pio_is_fd(const struct pio *io)
{
	return io->write == fd_write;
}

int
writer_sendfile(struct writer *w, int fd, uint64_t n)
{
	long long deadline;

	if (writer_flush(w) < 0)
		return -1;
	deadline = deadline_of(w->timeout_ms);
	while (n > 0) {
		ssize_t k;

		k = sendfile(w->io->wfd, fd, NULL,
		    n < SENDFILE_CHUNK ? (size_t)n : SENDFILE_CHUNK);
		if (k > 0) {
			n -= k;
			w->total += k;
			/* Each write the peer takes starts a new deadline,
			 * as in pio_write_all's callers. */
			deadline = deadline_of(w->timeout_ms);
			continue;
		}
		if (k == 0)
			return 1;	/* the file ended early */
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			sigset_t mask;
			int ready;

			wait_mask(&mask);
			w->io->want = 0;
			ready = pio_wait(w->io, POLLOUT, deadline, &mask);
			if (ready < 0 && errno == EINTR)
				continue;
			if (ready > 0)
				continue;
			if (ready == 0)
				errno = ETIMEDOUT;
		}
		w->failed = 1;
		w->err = errno;
		return -1;
	}
	return 0;
}

int
writer_flush(struct writer *w)
{
	if (w->failed)
		return -1;
	if (w->len == 0)
		return 0;
	if (pio_write_all(w->io, w->buf, w->len, w->timeout_ms) < 0) {
		w->failed = 1;
		w->err = errno;
		return -1;
	}
	w->total += w->len;
	w->len = 0;
	return 0;
}

int
writer_put(struct writer *w, const void *p, size_t n)
{
	if (w->failed)
		return -1;
	if (n > sizeof(w->buf) - w->len) {
		if (writer_flush(w) < 0)
			return -1;
		if (n >= sizeof(w->buf)) {
			if (pio_write_all(w->io, p, n, w->timeout_ms) < 0) {
				w->failed = 1;
				w->err = errno;
				return -1;
			}
			w->total += n;
			return 0;
		}
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

int
writer_printf(struct writer *w, const char *fmt, ...)
{
	char line[POP3_RESP_MAX + 1];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	if ((size_t)n >= sizeof(line)) {
		/* Cut to the RFC 2449 limit, keeping the CRLF. */
		n = sizeof(line) - 1;
		line[n - 2] = '\r';
		line[n - 1] = '\n';
	}
	return writer_put(w, line, n);
}

int
proto_number(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return -1;
		d = *s - '0';
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

void
dotenc_init(struct dotenc *e, long top_lines)
{
	e->bol = 1;
	e->cr = 0;
	e->in_header = 1;
	e->linelen = 0;
	e->top_lines = top_lines;
	e->done = 0;
	e->octets = 0;
}

/* A line of the file ended: track the header and the TOP limit. */
static void
dotenc_eol(struct dotenc *e)
{
	int blank = e->linelen == 0 || (e->linelen == 1 && e->cr);

	if (e->top_lines >= 0) {
		if (e->in_header) {
			if (blank) {
				e->in_header = 0;
				if (e->top_lines == 0)
					e->done = 1;
			}
		} else if (--e->top_lines == 0)
			e->done = 1;
	}
	e->bol = 1;
	e->cr = 0;
	e->linelen = 0;
}

int
dotenc_feed(struct dotenc *e, const char *p, size_t n, struct writer *w)
{
	const char *end = p + n;

	while (p < end && !e->done) {
		const char *nl = memchr(p, '\n', end - p);
		size_t seg = (nl ? nl : end) - p;

		if (seg > 0) {
			if (e->bol && p[0] == '.' && writer_put(w, ".", 1) < 0)
				return -1;
			if (writer_put(w, p, seg) < 0)
				return -1;
			e->cr = p[seg - 1] == '\r';
			e->bol = 0;
			e->linelen += seg;
			e->octets += seg;
		}
		if (nl == NULL)
			break;
		if (e->cr) {
			if (writer_put(w, "\n", 1) < 0)
				return -1;
			e->octets += 1;
		} else {
			if (writer_put(w, "\r\n", 2) < 0)
				return -1;
			e->octets += 2;
		}
		dotenc_eol(e);
		p = nl + 1;
	}
	return e->done;
}

int
dotenc_finish(struct dotenc *e, struct writer *w)
{
	if (!e->bol) {
		if (writer_put(w, "\r\n", 2) < 0)
			return -1;
		e->octets += 2;
		e->bol = 1;
	}
	return writer_put(w, ".\r\n", 3);
}

void
dotsize_init(struct dotsize *s)
{
	s->octets = 0;
	s->last = '\n';
	s->added = 0;
}

void
dotsize_feed(struct dotsize *s, const char *p, size_t n)
{
	const char *q = p, *end = p + n, *nl;

	if (n == 0)
		return;
	s->octets += n;
	if (s->last == '\n' && *p == '.')
		s->added = 1;
	while ((nl = memchr(q, '\n', end - q)) != NULL) {
		int prev = nl > p ? nl[-1] : s->last;

		if (prev != '\r') {
			s->octets++;
			s->added = 1;
		}
		q = nl + 1;
		if (q < end && *q == '.')
			s->added = 1;
	}
	s->last = (unsigned char)end[-1];
}

int
dotsize_plain(const struct dotsize *s)
{
	return !s->added && s->last == '\n';
}

uint64_t
dotsize_total(const struct dotsize *s)
{
	return s->octets + (s->last != '\n' ? 2 : 0);
}

enum { D_BOL, D_DOT, D_DOTCR, D_MID };

void
dotdec_init(struct dotdec *d)
{
	d->state = D_BOL;
}

size_t
dotdec_feed(struct dotdec *d, const char *in, size_t n, char *out,
    size_t *outlen, int *done)
{
	size_t i = 0, o = 0;

	*done = 0;
	while (i < n) {
		char c = in[i];

		switch (d->state) {
		case D_MID: {
			const char *nl = memchr(in + i, '\n', n - i);
			size_t seg = (nl ? (size_t)(nl - in) + 1 : n) - i;

			memcpy(out + o, in + i, seg);
			o += seg;
			i += seg;
			if (nl != NULL)
				d->state = D_BOL;
			continue;
		}
		case D_BOL:
			i++;
			if (c == '.') {
				d->state = D_DOT;
				continue;
			}
			out[o++] = c;
			d->state = c == '\n' ? D_BOL : D_MID;
			continue;
		case D_DOT:
			i++;
			if (c == '\r') {
				d->state = D_DOTCR;
				continue;
			}
			if (c == '\n') {
				d->state = D_BOL;
				*done = 1;
				*outlen = o;
				return i;
			}
			/* A stuffed line: the first dot goes. */
			out[o++] = c;
			d->state = D_MID;
			continue;
		case D_DOTCR:
			i++;
			if (c == '\n') {
				d->state = D_BOL;
				*done = 1;
				*outlen = o;
				return i;
			}
			out[o++] = '\r';
			out[o++] = c;
			d->state = D_MID;
			continue;
		}
	}
	*outlen = o;
	return i;
}

int
proto_peer_is_local(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return errno == ENOTSOCK;
	return proto_addr_is_local((const struct sockaddr *)&ss);
}

int
proto_addr_is_local(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127);
	}
	return sa->sa_family == AF_UNIX;
}
