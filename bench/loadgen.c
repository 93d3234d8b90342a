/*
 * bench/loadgen.c: the POP3 load generator of `make bench`.
 *
 *   loadgen rate HOST PORT CLIENTS SECONDS USER PASS
 *	CLIENTS concurrent clients on one epoll loop, each running session
 *	after session: connect, greeting, USER, PASS, STAT, QUIT, wait for the
 *	server's close.  Commands one at a time (no pipelining).  USER "-"
 *	skips USER/PASS.
 *   loadgen ops HOST PORT USER PASS NMSG SESSIONS MODE
 *	SESSIONS sessions one after another; MODE "login" (login+STAT),
 *	"all" (login+STAT, LIST, UIDL, then TOP n 0 for n = 1..NMSG one by
 *	one, each answer read before the next command is sent) or "top"
 *	(login+STAT, then the TOPs alone); every answer is checked (counts,
 *	terminators).
 *   loadgen retr HOST PORT USER PASS FILE REPS
 *	RETR 1 of the message in FILE, REPS times (a new session each); the
 *	wire is compared byte for byte with the stuffed CRLF form computed
 *	from FILE; LIST 1 must give the CRLF size.
 *   loadgen hold HOST PORT USER PASS N
 *	N logged-in sessions (USER, PASS, STAT) held open; prints "ready",
 *	waits for a line on stdin, then QUITs them all.
 *
 * Every mode prints key=value lines, including cpu= (the generator's own
 * user+system CPU time from getrusage, in % of one core over the
 * measured interval), so a reader can see it is not the bottleneck.
 */
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "common.h"

static struct sockaddr_in addr;

static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void
set_addr(const char *host, const char *port)
{
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons(atoi(port));
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "loadgen: bad IPv4 address %s\n", host);
		exit(64);
	}
}

static int
dial(int nonblock)
{
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC |
	    (nonblock ? SOCK_NONBLOCK : 0), 0);

	if (fd < 0)
		die("socket");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---------------------------------------------------------------- */
/* Blocking client for ops, retr and hold. */

struct conn {
	int	fd;
	size_t	off, len;
	char	buf[1 << 16];
};

static void
send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write");
		}
		p += w;
		n -= w;
	}
}

static void
cmd(struct conn *c, const char *s)
{
	send_all(c->fd, s, strlen(s));
}

static int
fill(struct conn *c)
{
	ssize_t r;

	if (c->off == c->len)
		c->off = c->len = 0;
	else if (c->off > sizeof(c->buf) / 2) {
		memmove(c->buf, c->buf + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
	}
	if (c->len == sizeof(c->buf)) {
		fprintf(stderr, "loadgen: line too long\n");
		exit(1);
	}
	do
		r = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		die("read");
	if (r == 0) {
		fprintf(stderr, "loadgen: server closed the connection\n");
		exit(1);
	}
	c->len += r;
	return (int)r;
}

/* Next line, CRLF stripped, NUL-terminated in place. */
static char *
line(struct conn *c)
{
	for (;;) {
		char *s = c->buf + c->off;
		char *nl = memchr(s, '\n', c->len - c->off);

		if (nl) {
			c->off = nl + 1 - c->buf;
			if (nl > s && nl[-1] == '\r')
				nl--;
			*nl = '\0';
			return s;
		}
		fill(c);
	}
}

static char *
ok(struct conn *c, const char *what)
{
	char *s = line(c);

	if (strncmp(s, "+OK", 3) != 0) {
		fprintf(stderr, "loadgen: %s: %s\n", what, s);
		exit(1);
	}
	return s;
}

/* A multi-line answer: returns its number of lines (terminator excluded). */
static size_t
multiline(struct conn *c, const char *what)
{
	size_t n = 0;

	ok(c, what);
	for (;;) {
		char *s = line(c);

		if (s[0] == '.' && s[1] == '\0')
			return n;
		n++;
	}
}

static struct conn *
session(const char *user, const char *pass)
{
	struct conn *c = calloc(1, sizeof(*c));
	char b[600];

	if (c == NULL)
		die("calloc");
	if ((c->fd = dial(0)) < 0)
		die("connect");
	ok(c, "greeting");
	if (strcmp(user, "-") != 0) {
		snprintf(b, sizeof(b), "USER %s\r\n", user);
		cmd(c, b);
		ok(c, "USER");
		snprintf(b, sizeof(b), "PASS %s\r\n", pass);
		cmd(c, b);
		ok(c, "PASS");
	}
	return c;
}

static void
quit(struct conn *c)
{
	cmd(c, "QUIT\r\n");
	ok(c, "QUIT");
	close(c->fd);
	free(c);
}

static int
mode_ops(char **av)
{
	const char *user = av[0], *pass = av[1];
	long nmsg = atol(av[2]), nsess = atol(av[3]), i, k;
	int all = strcmp(av[4], "all") == 0, top = strcmp(av[4], "top") == 0;
	char b[64];

	for (k = 0; k < nsess; k++) {
		double t0 = now_s(), c0 = cpu_s(), t1, t2, t3, t4;
		struct conn *c = session(user, pass);
		char *s;

		cmd(c, "STAT\r\n");
		s = ok(c, "STAT");
		t1 = now_s();
		if (atol(s + 4) != nmsg) {
			fprintf(stderr, "loadgen: STAT: %s, expected %ld\n", s, nmsg);
			return 1;
		}
		if (!all && !top) {
			printf("session=%ld login_stat_ms=%.3f\n", k,
			    (t1 - t0) * 1e3);
			quit(c);
			continue;
		}
		if (top) {
			t3 = t2 = t1;
			goto tops;
		}
		cmd(c, "LIST\r\n");
		if (multiline(c, "LIST") != (size_t)nmsg) {
			fprintf(stderr, "loadgen: LIST: wrong count\n");
			return 1;
		}
		t2 = now_s();
		cmd(c, "UIDL\r\n");
		if (multiline(c, "UIDL") != (size_t)nmsg) {
			fprintf(stderr, "loadgen: UIDL: wrong count\n");
			return 1;
		}
		t3 = now_s();
tops:
		for (i = 1; i <= nmsg; i++) {
			snprintf(b, sizeof(b), "TOP %ld 0\r\n", i);
			cmd(c, b);
			if (multiline(c, "TOP") < 5) {
				fprintf(stderr, "loadgen: TOP %ld: short\n", i);
				return 1;
			}
		}
		t4 = now_s();
		quit(c);
		printf("session=%ld login_stat_ms=%.3f list_ms=%.3f uidl_ms=%.3f "
		    "top_ms=%.3f cpu=%.1f\n", k, (t1 - t0) * 1e3,
		    (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3,
		    100 * (cpu_s() - c0) / (now_s() - t0));
		fflush(stdout);
	}
	return 0;
}

static int
mode_retr(char **av)
{
	const char *user = av[0], *pass = av[1];
	long reps = atol(av[3]), k;
	size_t wlen;
	uint64_t octets;
	unsigned char *want = wire_load(av[2], &wlen, &octets);
	static char big[4 << 20];

	for (k = 0; k < reps; k++) {
		struct conn *c = session(user, pass);
		size_t got = 0;
		double t0, t1, c0;
		char *s;

		cmd(c, "LIST 1\r\n");
		s = ok(c, "LIST 1");
		if (strtoull(s + 6, NULL, 10) != octets) {
			fprintf(stderr, "loadgen: LIST 1: %s, expected %llu "
			    "octets\n", s, (unsigned long long)octets);
			return 1;
		}
		c0 = cpu_s();
		t0 = now_s();
		cmd(c, "RETR 1\r\n");
		ok(c, "RETR");
		/* whatever followed the status line in the buffer */
		if (c->len > c->off) {
			size_t n = c->len - c->off;

			if (n > wlen || memcmp(c->buf + c->off, want, n) != 0)
				goto bad;
			got = n;
			c->off = c->len = 0;
		}
		while (got < wlen) {
			size_t want_n = wlen - got;
			ssize_t r = read(c->fd, big,
			    want_n < sizeof(big) ? want_n : sizeof(big));

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				die("read (RETR)");
			if (memcmp(big, want + got, r) != 0)
				goto bad;
			got += r;
		}
		t1 = now_s();
		quit(c);
		printf("rep=%ld wire_bytes=%zu octets=%llu secs=%.4f gbps=%.3f "
		    "verified=1 cpu=%.1f\n", k, wlen,
		    (unsigned long long)octets, t1 - t0, wlen / (t1 - t0) / 1e9,
		    100 * (cpu_s() - c0) / (t1 - t0));
		fflush(stdout);
		continue;
bad:
		fprintf(stderr, "loadgen: RETR: bytes differ from the expected "
		    "wire form near offset %zu\n", got);
		return 1;
	}
	return 0;
}

static int
mode_hold(char **av)
{
	long n = atol(av[2]), i;
	struct conn **cs = calloc(n, sizeof(*cs));
	char b[16];

	for (i = 0; i < n; i++) {
		cs[i] = session(av[0], av[1]);
		cmd(cs[i], "STAT\r\n");
		ok(cs[i], "STAT");
	}
	printf("ready sessions=%ld\n", n);
	fflush(stdout);
	(void)!fgets(b, sizeof(b), stdin);
	for (i = 0; i < n; i++)
		quit(cs[i]);
	printf("done\n");
	return 0;
}

/* ---------------------------------------------------------------- */
/* Session rate: many clients on one epoll loop. */

enum { S_GREET, S_USER, S_PASS, S_STAT, S_QUIT, S_EOF };

struct client {
	int	fd;
	int	step;
	size_t	len;
	char	buf[512];
};

static int ep;
static const char *r_user, *r_pass;
static unsigned long done_n, err_n;

static void
start(struct client *cl)
{
	struct epoll_event ev = { .events = EPOLLIN };

	for (;;) {
		cl->fd = dial(1);
		if (cl->fd >= 0)
			break;
		err_n++;
	}
	cl->step = S_GREET;
	cl->len = 0;
	ev.data.ptr = cl;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, cl->fd, &ev) < 0)
		die("epoll_ctl");
}

static void
say(struct client *cl, const char *s)
{
	size_t n = strlen(s);

	/* a fresh socket's send buffer always takes a command line */
	if (write(cl->fd, s, n) != (ssize_t)n)
		cl->step = -1;
}

/* Returns 1 when the session is over (cleanly or not). */
static int
advance(struct client *cl)
{
	char b[600];

	switch (cl->step) {
	case S_GREET:
		if (strcmp(r_user, "-") == 0) {
			say(cl, "STAT\r\n");
			cl->step = S_STAT;
			break;
		}
		snprintf(b, sizeof(b), "USER %s\r\n", r_user);
		say(cl, b);
		cl->step = S_USER;
		break;
	case S_USER:
		snprintf(b, sizeof(b), "PASS %s\r\n", r_pass);
		say(cl, b);
		cl->step = S_PASS;
		break;
	case S_PASS:
		say(cl, "STAT\r\n");
		cl->step = S_STAT;
		break;
	case S_STAT:
		say(cl, "QUIT\r\n");
		cl->step = S_QUIT;
		break;
	case S_QUIT:
		cl->step = S_EOF;
		break;
	}
	return cl->step < 0;
}

static void
readable(struct client *cl)
{
	ssize_t r;
	char *nl;

	r = read(cl->fd, cl->buf + cl->len, sizeof(cl->buf) - 1 - cl->len);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r == 0 && cl->step == S_EOF) {
		done_n++;
		goto end;
	}
	if (r <= 0)
		goto fail;
	cl->len += r;
	while ((nl = memchr(cl->buf, '\n', cl->len)) != NULL) {
		size_t l = nl + 1 - cl->buf;

		if (cl->step == S_EOF || strncmp(cl->buf, "+OK", 3) != 0)
			goto fail;
		memmove(cl->buf, nl + 1, cl->len - l);
		cl->len -= l;
		if (advance(cl))
			goto fail;
	}
	if (cl->len == sizeof(cl->buf) - 1)
		goto fail;
	return;
fail:
	err_n++;
end:
	close(cl->fd);
	cl->fd = -1;
}

static int
mode_rate(char **av)
{
	long n = atol(av[0]), i, live;
	double secs = atof(av[1]), t0, deadline, c0, t1;
	struct client *cls = calloc(n, sizeof(*cls));
	struct epoll_event evs[256];

	r_user = av[2];
	r_pass = av[3];
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll_create1");
	c0 = cpu_s();
	t0 = now_s();
	deadline = t0 + secs;
	for (i = 0; i < n; i++)
		start(&cls[i]);
	live = n;
	while (live > 0) {
		int k, m = epoll_wait(ep, evs, 256, 1000);

		if (m < 0 && errno != EINTR)
			die("epoll_wait");
		for (k = 0; k < m; k++) {
			struct client *cl = evs[k].data.ptr;

			readable(cl);
			if (cl->fd < 0) {
				if (now_s() < deadline)
					start(cl);
				else
					live--;
			}
		}
		if (now_s() > deadline + 10) {
			fprintf(stderr, "loadgen: %ld sessions stuck\n", live);
			break;
		}
	}
	t1 = now_s();
	printf("clients=%ld sessions=%lu errors=%lu secs=%.3f rate=%.1f "
	    "cpu=%.1f\n", n, done_n, err_n, t1 - t0, done_n / (t1 - t0),
	    100 * (cpu_s() - c0) / (t1 - t0));
	return done_n ? 0 : 2;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 8 && strcmp(argv[1], "rate") == 0) {
		set_addr(argv[2], argv[3]);
		return mode_rate(argv + 4);
	}
	if (argc >= 9 && strcmp(argv[1], "ops") == 0) {
		set_addr(argv[2], argv[3]);
		return mode_ops(argv + 4);
	}
	if (argc >= 8 && strcmp(argv[1], "retr") == 0) {
		set_addr(argv[2], argv[3]);
		return mode_retr(argv + 4);
	}
	if (argc >= 7 && strcmp(argv[1], "hold") == 0) {
		set_addr(argv[2], argv[3]);
		return mode_hold(argv + 4);
	}
	fprintf(stderr,
	    "usage: loadgen rate HOST PORT CLIENTS SECONDS USER PASS\n"
	    "       loadgen ops HOST PORT USER PASS NMSG SESSIONS login|all|top\n"
	    "       loadgen retr HOST PORT USER PASS FILE REPS\n"
	    "       loadgen hold HOST PORT USER PASS N\n");
	return 64;
}
