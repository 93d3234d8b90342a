/*
 * login.c: the login process and its monitor (see login.h).
 *
 * The two talk over a socketpair in fixed-size messages: the login
 * process sends an ask (name, password, when the command came) and gets
 * an answer (an enum auth_result); after AUTH_OK it sends the hand-over
 * (TLS or not, bytes sent, input read but not served) and, with TLS,
 * the same socket then carries the session's plaintext both ways.  The
 * monitor trusts nothing in a message beyond its bounds: a login process
 * taken over by a client can only ask for password checks, at the pace
 * the failure delay and the penalties allow.
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "log.h"
#include "login.h"
#include "params.h"
#include "proto.h"
#include "sandbox.h"
#include "session.h"
#include "source.h"
#include "store.h"

#define LINK_ASK	0x41534b31	/* "ASK1" */
#define LINK_HAND	0x48414e31	/* "HAN1" */

struct link_ask {
	uint32_t	type;
	char		name[65];
	char		password[SASL_LINE_MAX + 1];
};

struct link_answer {
	uint32_t	result;		/* enum auth_result */
	char		refused[128];	/* AUTH_OK: why the maildrop cannot
					 * be opened; "": it is open */
};

struct link_hand {
	uint32_t	type;
	uint32_t	tls_on;
	uint64_t	sent;
	uint32_t	nbuf;
	char		buf[RBUF_SIZE];
};

/* The relay's buffers: the client's commands are short, replies long. */
#define RELAY_UP	RBUF_SIZE
#define RELAY_DOWN	WBUF_SIZE

/*
 * The monitor's wait for the login process: a hand-over is due within
 * this of the answer, and the whole login phase cannot take longer than
 * the login process's own limits allow (login timeout, two handshakes,
 * the penalties of its failed logins, a slow last write) plus this.
 */
#define HAND_OVER_MS	10000
/* Bytes of stack wiped after a login: more than a TLS record's decryption,
 * a command's parsing and a password hash use. */
#define STACK_WIPE	(128 * 1024)
#define MONITOR_SLACK_S	30

/* The login process: write all of p (blocking).  0, or -1. */
static int
link_write(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);

		if (w > 0) {
			c += w;
			n -= w;
		} else if (w == 0 || errno != EINTR)
			return -1;
	}
	return 0;
}

/*
 * Zero the stack below the caller: a password decrypted, parsed and
 * checked there deeper down must not stay in memory a shallow loop (the
 * relay, the rest of a session) never overwrites.
 */
static void __attribute__((noinline))
wipe_stack(void)
{
	char pad[STACK_WIPE];

	explicit_bzero(pad, sizeof(pad));
	__asm__ __volatile__("" : : "r"(pad) : "memory");
}

/* ---- the login process ---- */

/* Send all of p with rfd (and wfd when another fd) attached.  0, or -1. */
static int
send_with_fds(int fd, const void *p, size_t n, int rfd, int wfd)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov = { (void *)p, n };
	struct msghdr msg;
	struct cmsghdr *cm;
	int fds[2] = { rfd, wfd }, nfds = rfd == wfd ? 1 : 2;
	ssize_t w;

	memset(&msg, 0, sizeof(msg));
	memset(&ctl, 0, sizeof(ctl));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.buf;
	msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	while ((w = sendmsg(fd, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	if (w <= 0)
		return -1;
	return link_write(fd, (const char *)p + w, n - w);
}

/* cfg->check: the monitor checks, this process waits for its answer. */
static int
ask(const struct session_cfg *cfg, const struct peer *peer, const char *name,
    char *password, uint64_t since_ns, char *refused, size_t len)
{
	static struct link_ask a;
	struct link_answer ans;
	size_t nl = strlen(name), pl = strlen(password);
	int r = -1;

	(void)peer;
	memset(&a, 0, sizeof(a));
	(void)since_ns;		/* the monitor's clock counts */
	a.type = LINK_ASK;
	/* A name or password too long to be right still costs a check. */
	if (nl < sizeof(a.name) && pl < sizeof(a.password)) {
		memcpy(a.name, name, nl);
		memcpy(a.password, password, pl);
	}
	explicit_bzero(password, pl);
	if (link_write(cfg->link, &a, sizeof(a)) == 0 &&
	    proto_read_fd(cfg->link, &ans, sizeof(ans)) == 0) {
		r = (int)ans.result;
		ans.refused[sizeof(ans.refused) - 1] = '\0';
		snprintf(refused, len, "%s", ans.refused);
	}
	explicit_bzero(&a, sizeof(a));
	return r;
}

/*
 * Relay between the client (c, TLS) and the monitor (fd) until the
 * monitor ends the session.  A client that stops reading a reply is
 * dropped after the idle timeout, as the monitor's own writes would be.
 */
static void
relay(struct pio *c, int fd, int timeout_ms)
{
	static char up[RELAY_UP], down[RELAY_DOWN];
	size_t ulen = 0, uoff = 0, dlen = 0, doff = 0;
	int ceof = 0, peof = 0, shut = 0;
	short rwant = POLLIN, wwant = POLLOUT;
	long long since = 0;	/* when the client last took bytes */

	for (;;) {
		struct pollfd pfd[4];
		ssize_t n;
		int moved = 0, np = 0, wait = -1;

		if (ulen == 0 && !ceof) {
			n = c->read(c, up, sizeof(up));
			if (n > 0) {
				ulen = n;
				uoff = 0;
				moved = 1;
			} else if (n == 0) {
				ceof = moved = 1;
			} else if (errno == EAGAIN) {
				rwant = c->want != 0 ? c->want : POLLIN;
				c->want = 0;
			} else if (errno != EINTR)
				break;
		}
		if (ulen > 0) {
			n = send(fd, up + uoff, ulen, MSG_NOSIGNAL);
			if (n > 0) {
				uoff += n;
				ulen -= n;
				moved = 1;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR)
				break;
		}
		if (ceof && ulen == 0 && !shut) {
			/* The monitor sees the client's end of input. */
			shutdown(fd, SHUT_WR);
			shut = 1;
		}
		if (dlen == 0 && !peof) {
			n = read(fd, down, sizeof(down));
			if (n > 0) {
				dlen = n;
				doff = 0;
				since = proto_now_ms();
				moved = 1;
			} else if (n == 0) {
				peof = moved = 1;
			} else if (errno != EAGAIN && errno != EINTR)
				break;
		}
		if (dlen > 0) {
			n = c->write(c, down + doff, dlen);
			if (n > 0) {
				doff += n;
				dlen -= n;
				since = proto_now_ms();
				moved = 1;
			} else if (n < 0 && errno == EAGAIN) {
				wwant = c->want != 0 ? c->want : POLLOUT;
				c->want = 0;
			} else if (n == 0 || errno != EINTR)
				break;
		}
		if (peof && dlen == 0)
			break;		/* the session is over */
		if (moved)
			continue;
		if (ulen == 0 && !ceof) {
			pfd[np].fd = rwant == POLLOUT ? c->wfd : c->rfd;
			pfd[np++].events = rwant;
		}
		if (ulen > 0) {
			pfd[np].fd = fd;
			pfd[np++].events = POLLOUT;
		}
		if (dlen == 0 && !peof) {
			pfd[np].fd = fd;
			pfd[np++].events = POLLIN;
		}
		if (dlen > 0) {
			pfd[np].fd = wwant == POLLIN ? c->rfd : c->wfd;
			pfd[np++].events = wwant;
			if (timeout_ms >= 0) {
				long long left = since + timeout_ms -
				    proto_now_ms();

				if (left <= 0) {
					log_warnx("relay: write timeout");
					break;
				}
				wait = (int)left;
			}
		}
		if (np == 0)
			break;
		/* Signals stay as they are: the monitor ends the session
		 * at a shutdown, and then this relay with it. */
		if (poll(pfd, np, wait) < 0 && errno != EINTR)
			break;
	}
}

/* cfg->hand_over: tell the monitor what it needs to go on; with TLS,
 * relay until the session ends. */
static void
hand_over(const struct session_cfg *cfg, struct pio *io, struct reader *in,
    int tls_on, uint64_t sent)
{
	static struct link_hand h;
	size_t n = in->end - in->start;

	memset(&h, 0, sizeof(h));
	h.type = LINK_HAND;
	h.tls_on = tls_on;
	h.sent = sent;
	h.nbuf = n <= sizeof(h.buf) ? n : sizeof(h.buf);
	memcpy(h.buf, in->buf + in->start, h.nbuf);
	wipe_stack();
	if (tls_on) {
		if (link_write(cfg->link, &h, sizeof(h)) < 0)
			return;
	} else {
		/* Plain: the connection goes back with it. */
		(void)send_with_fds(cfg->link, &h, sizeof(h), io->rfd,
		    io->wfd);
		return;		/* the monitor ends this process */
	}
	fcntl(cfg->link, F_SETFL, fcntl(cfg->link, F_GETFL) | O_NONBLOCK);
	relay(io, cfg->link, cfg->timeout > 0 ? cfg->timeout * 1000 : -1);
}

static void __attribute__((noreturn))
login_process(int rfd, int wfd, const struct session_cfg *cfg,
    const struct peer *peer, int link, pid_t monitor)
{
	struct session_cfg lcfg = *cfg;
	const int *fd;

	/* It never outlives its monitor (a shutdown that has to kill the
	 * monitor ends this one too). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != monitor)
		_exit(EX_OSERR);
	/* Nothing of the listener's (a login process taken over must not
	 * accept other clients' connections), nor the index folder, nor
	 * the memory all workers share (the per-source table), nor the
	 * worker's last listing (another session's names). */
	for (fd = cfg->close_fds; fd != NULL && *fd >= 0; fd++)
		close(*fd);
	if (cfg->store.index_fd >= 0)
		close(cfg->store.index_fd);
	source_forget(cfg->sources);
	store_cache_free(cfg->store.cache);
	lcfg.sources = NULL;
	lcfg.store.cache = NULL;
	lcfg.store.index_fd = -1;
	lcfg.index_path = NULL;
	if (sandbox_login_process(cfg->sandbox) < 0) {
		log_warnx("session %s: not served unconfined", peer->text);
		_exit(EX_OSERR);
	}
	lcfg.check = ask;
	lcfg.hand_over = hand_over;
	lcfg.link = link;
	session_run(rfd, wfd, &lcfg, peer);
	_exit(0);
}

/* ---- the monitor ---- */

struct monitor {
	const struct session_cfg *cfg;
	pid_t		 pid;		/* the login process */
	int		 fd;		/* its socket, non-blocking */
	int		 stopped;	/* told it to stop */
	sigset_t	 waitmask;	/* signals let in while waiting */
	int		 two;		/* the connection is two fds */
	struct stat	 conn[2];	/* what they are (read, write) */
	int		 back[2];	/* handed back: the same, or -1 */
};

/* A handed-back socket as the monitor set it up; a pipe or terminal
 * (stdio by hand) as it was, less O_ASYNC. */
static int
unflag(int fd)
{
	struct stat sb;
	int fl;

	if ((fl = fcntl(fd, F_GETFL)) < 0 || fstat(fd, &sb) < 0)
		return -1;
	fl &= ~O_ASYNC;
	if (S_ISSOCK(sb.st_mode))
		fl |= O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

/* 1 when fd is the very file want is (device and inode). */
static int
same_file(int fd, const struct stat *want)
{
	struct stat sb;

	return fstat(fd, &sb) == 0 && sb.st_dev == want->st_dev &&
	    sb.st_ino == want->st_ino;
}

/*
 * Wait until the socket is ready for events, or the deadline (ms) passed
 * (-1, ETIMEDOUT).  A shutdown of the server is passed on to the login
 * process once; the monitor then waits for it to end.
 */
static int
mon_wait(struct monitor *m, short events, long long deadline)
{
	struct pollfd pfd = { .fd = m->fd, .events = events };
	struct timespec ts;
	long long left;

	if ((left = deadline - proto_now_ms()) <= 0) {
		errno = ETIMEDOUT;
		return -1;
	}
	ts.tv_sec = left / 1000;
	ts.tv_nsec = (left % 1000) * 1000000;
	if (ppoll(&pfd, 1, &ts, &m->waitmask) < 0 && errno == EINTR &&
	    m->cfg->stop != NULL && *m->cfg->stop && !m->stopped) {
		kill(m->pid, SIGTERM);
		m->stopped = 1;
	}
	return 0;
}

/*
 * Read all of n bytes from the login process by deadline (ms).  1 read,
 * 0 it closed (the session ended there), -1 error or timeout.
 */
static int
mon_read(struct monitor *m, void *p, size_t n, long long deadline)
{
	char *c = p;
	size_t got = 0;

	while (got < n) {
		ssize_t r;

		if (mon_wait(m, POLLIN, deadline) < 0)
			return -1;
		if ((r = read(m->fd, c + got, n - got)) > 0)
			got += r;
		else if (r == 0)
			return got == 0 ? 0 : -1;
		else if (errno != EAGAIN && errno != EINTR)
			return -1;
	}
	return 1;
}

/*
 * mon_read() of a message that carries the connection back: its fds
 * (one, or two when it was two) land in fds[0..*nfds).
 */
static int
mon_read_fds(struct monitor *m, void *p, size_t n, long long deadline,
    int *fds, int *nfds)
{
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(2 * sizeof(int))];
	} ctl;
	struct iovec iov = { p, n };
	struct msghdr msg;
	struct cmsghdr *cm;
	ssize_t r;

	*nfds = 0;
	for (;;) {
		if (mon_wait(m, POLLIN, deadline) < 0)
			return -1;
		memset(&msg, 0, sizeof(msg));
		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		msg.msg_control = ctl.buf;
		msg.msg_controllen = sizeof(ctl.buf);
		if ((r = recvmsg(m->fd, &msg, MSG_CMSG_CLOEXEC)) > 0)
			break;
		if (r == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -1;
	}
	for (cm = CMSG_FIRSTHDR(&msg); cm != NULL; cm = CMSG_NXTHDR(&msg, cm)) {
		size_t k, got;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		got = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (k = 0; k < got; k++) {
			int f;

			memcpy(&f, CMSG_DATA(cm) + k * sizeof(int), sizeof(f));
			if (*nfds < 2)
				fds[(*nfds)++] = f;
			else
				close(f);
		}
	}
	if ((size_t)r == n)
		return 1;
	return mon_read(m, (char *)p + r, n - r, deadline) == 1 ? 1 : -1;
}

/* Write all of n bytes to the login process by deadline.  0, or -1. */
static int
mon_write(struct monitor *m, const void *p, size_t n, long long deadline)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w;

		if (mon_wait(m, POLLOUT, deadline) < 0)
			return -1;
		if ((w = send(m->fd, c, n, MSG_NOSIGNAL)) > 0) {
			c += w;
			n -= w;
		} else if (w == 0 || (errno != EAGAIN && errno != EINTR))
			return -1;
	}
	return 0;
}

/*
 * Answer the login process's asks until a login is right (0, with g and
 * h filled in), or the login phase ends there (1), or it broke the
 * protocol or its time (-1, logged).
 */
static int
monitor(struct monitor *m, const struct peer *peer, struct session_grant *g,
    struct link_hand *h)
{
	static struct link_ask a;
	const struct session_cfg *cfg = m->cfg;
	long long deadline;
	int r, failures = 0, fds[2] = { -1, -1 }, nfds = 0;

	deadline = proto_now_ms() + 1000LL * ((cfg->login_timeout > 0 ?
	    cfg->login_timeout : cfg->timeout) + 2 * TLS_HANDSHAKE_TIMEOUT +
	    AUTH_MAX_FAILURES * LOGIN_PENALTY_MAX + cfg->timeout +
	    MONITOR_SLACK_S);
	for (;;) {
		struct link_answer ans;

		if ((r = mon_read(m, &a, sizeof(a), deadline)) <= 0)
			break;
		/* After AUTH_MAX_FAILURES the login process hangs up: one
		 * that asks again is not the code it started as. */
		if (a.type != LINK_ASK || failures >= AUTH_MAX_FAILURES) {
			log_warnx("session %s: login process: %s", peer->text,
			    a.type != LINK_ASK ? "bad message" :
			    "asked after too many failed logins");
			r = -1;
			break;
		}
		a.name[sizeof(a.name) - 1] = '\0';
		a.password[sizeof(a.password) - 1] = '\0';
		/* The failure delay counts from now, on this clock. */
		memset(&ans, 0, sizeof(ans));
		ans.result = auth_login(cfg, peer, a.name, a.password,
		    proto_now_ns(), g->maildrop, sizeof(g->maildrop));
		wipe_stack();
		if (ans.result != AUTH_OK)
			failures++;
		if (ans.result == AUTH_OK) {
			const char *why = NULL;

			memcpy(g->user, a.name, sizeof(g->user));
			/* Opened before the answer: a maildrop that cannot
			 * be opened leaves the client in AUTHORIZATION. */
			if ((g->store = session_open(cfg, g->user, g->maildrop,
			    &why)) == NULL)
				snprintf(ans.refused, sizeof(ans.refused), "%s",
				    why);
		}
		explicit_bzero(&a, sizeof(a));
		if (mon_write(m, &ans, sizeof(ans), deadline) < 0) {
			r = -1;
			break;
		}
		if (ans.result != AUTH_OK || g->store == NULL)
			continue;
		/* The login process first flushes what it has for a slow
		 * client, within the idle timeout.  A plain connection comes
		 * back with the hand-over, and must be the one it was given. */
		r = mon_read_fds(m, h, sizeof(*h), proto_now_ms() +
		    cfg->timeout * 1000LL + HAND_OVER_MS, fds, &nfds);
		if (r > 0 && h->type == LINK_HAND && !h->tls_on &&
		    nfds == 1 + m->two && same_file(fds[0], &m->conn[0]) &&
		    same_file(fds[nfds - 1], &m->conn[1])) {
			m->back[0] = fds[0];
			m->back[1] = fds[nfds - 1];
			nfds = 0;
		}
		while (nfds > 0)
			close(fds[--nfds]);
		if (r <= 0 || h->type != LINK_HAND ||
		    h->nbuf > sizeof(h->buf) ||
		    (!h->tls_on && m->back[0] < 0)) {
			log_warnx("session %s: login process: no hand-over",
			    peer->text);
			store_close(g->store);
			g->store = NULL;
			return -1;
		}
		g->tls_on = h->tls_on != 0;
		g->relay = g->tls_on ? m->pid : -1;
		g->sent = h->sent;
		g->buf = h->buf;
		g->nbuf = h->nbuf;
		return 0;
	}
	explicit_bzero(&a, sizeof(a));
	if (g->store != NULL) {
		store_close(g->store);
		g->store = NULL;
	}
	if (r < 0 && errno == ETIMEDOUT)
		log_warnx("session %s: login process over its time",
		    peer->text);
	return r < 0 ? -1 : 1;
}

/* Kill the login process and wait for it. */
static void
end(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * The monitor closed its side of a relayed session: let the login process
 * hand the last bytes to the client (its own write deadline), then end
 * it; at a shutdown at once.
 */
static void
end_relay(const struct session_cfg *cfg, pid_t pid)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	long long until = proto_now_ms() + cfg->timeout * 1000LL +
	    HAND_OVER_MS;

	while (proto_now_ms() < until && !(cfg->stop != NULL && *cfg->stop)) {
		pid_t r = waitpid(pid, NULL, WNOHANG);

		if (r == pid || (r < 0 && errno != EINTR))
			return;
		nanosleep(&tick, NULL);
	}
	end(pid);
}

void
login_session(int rfd, int wfd, const struct session_cfg *cfg,
    const struct peer *peer)
{
	static struct link_hand h;
	struct session_grant g;
	struct monitor m;
	pid_t self;
	int sp[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		log_warn("session %s: socketpair", peer->text);
		return;
	}
	memset(&m, 0, sizeof(m));
	m.cfg = cfg;
	m.fd = sp[0];
	self = getpid();
	if ((m.pid = fork()) < 0) {
		log_warn("session %s: fork", peer->text);
		close(sp[0]);
		close(sp[1]);
		return;
	}
	if (m.pid == 0) {
		close(sp[0]);
		login_process(rfd, wfd, cfg, peer, sp[1], self);
	}
	close(sp[1]);
	/* The monitor holds no fd of the client's until a login is right:
	 * its own become a socket whose peer is gone. */
	m.back[0] = m.back[1] = -1;
	m.two = rfd != wfd;
	if (fstat(rfd, &m.conn[0]) < 0 || fstat(wfd, &m.conn[1]) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
	    dup2(sp[0], rfd) < 0 || dup2(sp[0], wfd) < 0) {
		log_warn("session %s: monitor", peer->text);
		end(m.pid);
		close(m.fd);
		return;
	}
	/* inetd and xinetd pass the connection as stderr too. */
	if (rfd > 2 && wfd > 2)
		;
	else if (same_file(2, &m.conn[0]) || same_file(2, &m.conn[1]))
		(void)dup2(sp[0], 2);
	close(sp[0]);
	close(sp[1]);
	fcntl(m.fd, F_SETFL, fcntl(m.fd, F_GETFL) | O_NONBLOCK);
	sigprocmask(SIG_SETMASK, NULL, &m.waitmask);
	sigdelset(&m.waitmask, SIGTERM);
	sigdelset(&m.waitmask, SIGINT);
	memset(&g, 0, sizeof(g));
	r = monitor(&m, peer, &g, &h);
	if (r != 0) {
		/* It ended the session (or broke the protocol): it is done
		 * with the client either way. */
		end(m.pid);
		close(m.fd);
	} else if (!g.tls_on) {
		/* Plain: the connection is the monitor's alone from here,
		 * under the numbers the caller knows. */
		end(m.pid);
		close(m.fd);
		r = dup2(m.back[0], rfd) < 0 || dup2(m.back[1], wfd) < 0;
		close(m.back[0]);
		if (m.back[1] != m.back[0])
			close(m.back[1]);
		/* The login process shared these descriptions: its flags
		 * are not trusted (no O_ASYNC; non-blocking, so every write
		 * keeps its deadline). */
		if (r || unflag(rfd) < 0 || unflag(wfd) < 0)
			log_warn("session %s: the connection", peer->text);
		else
			session_resume(rfd, wfd, cfg, peer, &g);
	} else {
		/* TLS: the login process relays plaintext on the socket. */
		session_resume(m.fd, m.fd, cfg, peer, &g);
		close(m.fd);
		end_relay(cfg, m.pid);
	}
	explicit_bzero(&h, sizeof(h));
}
