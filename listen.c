/*
 * listen.c: listener modes and the pre-forked worker pool (see listen.h).
 *
 * The master process only binds, forks and reaps.  Workers report each
 * change between idle and busy on a pipe, so the master keeps spare idle
 * workers (POOL_SPARE_MIN..POOL_SPARE_MAX) and grows the pool on demand up
 * to the session limit.  No fork lies on a session's path.  When every
 * allowed session is busy the master itself accepts the extra connection
 * and answers -ERR [SYS/TEMP].
 */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#ifdef USE_SYSTEMD
#include <systemd/sd-daemon.h>
#else
static inline int
sd_notify(int unset, const char *state)
{
	(void)unset;
	(void)state;
	return 0;
}

static inline int
sd_notifyf(int unset, const char *fmt, ...)
{
	(void)unset;
	(void)fmt;
	return 0;
}
#endif

#include "listen.h"
#include "log.h"
#include "login.h"
#include "params.h"
#include "proto.h"
#include "proxy.h"
#include "sandbox.h"
#include "session.h"
#include "source.h"

struct wmsg {
	pid_t	pid;
	int	busy;
};

struct worker {
	pid_t	pid;
	int	seat;		/* its seat in the source table */
	int	busy;
	int	retiring;
};

struct pool {
	struct worker	*w;
	int		 n, max;
	int		 busy, idle;
	int		 report[2];	/* workers -> master */
	const int	*fds;
	int		 nfds;
	const struct session_cfg *cfg;
	struct source_table *sources;	/* shared by all workers */
	unsigned char	*seat_used;	/* [max] */
	int		 seat;		/* the next worker's seat */
	int		 per_source;	/* --max-per-source; <0: default */
};

static volatile sig_atomic_t got_term, got_chld, got_retire;

static void
on_signal(int sig)
{
	if (sig == SIGCHLD)
		got_chld = 1;
	else if (sig == SIGUSR1)
		got_retire = 1;
	else
		got_term = 1;
}

static void
set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;	/* no SA_RESTART: waits end with EINTR */
	sigaction(sig, &sa, NULL);
}

int
listen_systemd(int *fds, int max, int *conn)
{
	int n = 0;

	*conn = -1;
#ifdef USE_SYSTEMD
	int i, passed = sd_listen_fds(1);

	if (passed < 0) {
		errno = -passed;
		return log_warn("sd_listen_fds");
	}
	for (i = 0; i < passed; i++) {
		int fd = SD_LISTEN_FDS_START + i;

		if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) > 0) {
			if (n == max)
				return log_warnx("more than %d sockets passed", max);
			/*
			 * systemd passes blocking sockets (NonBlocking=no).
			 * Workers and the master race for each connection
			 * after poll(); the loser must get EAGAIN, not sleep
			 * in accept() (the master with signals blocked).
			 */
			if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) |
			    O_NONBLOCK) < 0)
				return log_warn("passed fd %d", fd);
			fds[n++] = fd;
		} else if (passed == 1 &&
		    sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 0) > 0) {
			*conn = fd;	/* Accept=yes: a connection */
		} else {
			return log_warnx("passed fd %d is not a stream socket",
			    fd);
		}
	}
#else
	(void)fds;
	(void)max;
#endif
	return n;
}

int
listen_port(const char *port, int *fds, int max)
{
	struct addrinfo hints, *res, *ai;
	int n = 0, err, saved = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((err = getaddrinfo(NULL, port, &hints, &res)) != 0)
		return log_warnx("port %s: %s", port, gai_strerror(err));
	for (ai = res; ai != NULL && n < max; ai = ai->ai_next) {
		int fd, on = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on,
			    sizeof(on));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, 512) < 0) {
			saved = errno;
			close(fd);
			/* The port held by another program for one family:
			 * serving the other half would send some clients
			 * elsewhere.  A family the host lacks is skipped. */
			if (saved == EADDRINUSE || saved == EACCES)
				break;
			continue;
		}
		fds[n++] = fd;
	}
	freeaddrinfo(res);
	if (n == 0 || saved == EADDRINUSE || saved == EACCES) {
		while (n > 0)
			close(fds[--n]);
		errno = saved;
		return log_warn("cannot listen on port %s", port);
	}
	return n;
}

/* Tell the master this worker became busy or idle. */
static void
report(int fd, int busy)
{
	struct wmsg m = { getpid(), busy };

	/* Below PIPE_BUF: atomic; a failure only skews spare counting. */
	if (write(fd, &m, sizeof(m)) != sizeof(m))
		log_warn("report to master");
}

/*
 * accept() failing for want of resources (descriptors, memory) leaves the
 * connection queued, so the next poll returns at once: back off instead
 * of spinning, 10 ms doubling to ACCEPT_BACKOFF_MAX_MS, and log the first
 * failure and then at most one line a minute with a count.
 */
struct backoff {
	int		ms;		/* the next pause; 0: none */
	long long	logged;		/* ms of the last line */
	unsigned long	quiet;		/* failures not logged since */
};

static int
out_of_resources(int e)
{
	return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

/* After an accept() that failed with errno: note it, and how long to wait
 * before the next try (ms). */
static int
backoff_failed(struct backoff *b, const char *who)
{
	long long now = proto_now_ms();

	if (b->logged == 0 || now - b->logged >= 60000) {
		if (b->quiet > 0)
			log_warn("%s (and %lu more times)", who, b->quiet);
		else
			log_warn("%s", who);
		b->logged = now;
		b->quiet = 0;
	} else
		b->quiet++;
	b->ms = b->ms == 0 ? 10 : b->ms * 2;
	if (b->ms > ACCEPT_BACKOFF_MAX_MS)
		b->ms = ACCEPT_BACKOFF_MAX_MS;
	return b->ms;
}

/* Wait for a connection; signals are let in only inside ppoll, so a
 * SIGTERM can never slip in between the flag check and the wait.  -1 with
 * errno EMFILE and the like when accept() lacked resources. */
static int
accept_one(const int *fds, int nfds, const sigset_t *waitmask)
{
	struct pollfd pfd[LISTEN_MAXFDS];
	int i, fd, lack = 0;

	for (i = 0; i < nfds; i++) {
		pfd[i].fd = fds[i];
		pfd[i].events = POLLIN;
	}
	if (ppoll(pfd, nfds, NULL, waitmask) < 0)
		return -1;
	for (i = 0; i < nfds; i++) {
		if (!(pfd[i].revents & POLLIN))
			continue;
		fd = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (out_of_resources(errno))
			lack = errno;
		else if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != ECONNABORTED && errno != EINTR)
			log_warn("accept");
	}
	errno = lack != 0 ? lack : EAGAIN;
	return -1;
}

/* Sleep ms unless a signal in waitmask comes first. */
static void
pause_ms(int ms, const sigset_t *waitmask)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	ppoll(NULL, 0, &ts, waitmask);
}

static void
tune_conn(int fd)
{
	int on = 1;

	/* A reply split over two writes would wait for a delayed ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/*
 * Sessions one address may hold: an explicit --max-per-source applies to
 * everyone; the default spares loopback peers (local tools, a proxy on the
 * same host).
 */
static int
source_limit(const struct pool *p, const struct peer *peer)
{
	if (p->per_source >= 0)
		return p->per_source;
	return peer->local ? 0 : MAX_PER_SOURCE_DEFAULT;
}

/* Turn a connection away with one line; it is not read from. */
static void
turn_away(int fd, const char *msg)
{
	if (write(fd, msg, strlen(msg)) < 0)
		log_warn("refusing a connection");
}

/* Take exactly n bytes that a peek has shown to be there. */
static int
take(int fd, size_t n)
{
	unsigned char junk[PROXY_V2_MAX];
	ssize_t k;

	while (n > 0) {
		if ((k = recv(fd, junk, n, MSG_DONTWAIT)) <= 0)
			return -1;
		n -= (size_t)k;
	}
	return 0;
}

/* Wait until fd is readable or the deadline passes; SIGTERM and SIGINT get
 * in during the wait only.  1 readable, 0 timed out, -1 interrupted. */
static int
wait_readable(int fd, long long deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct timespec ts;
	sigset_t mask;
	long long left = deadline - proto_now_ms();

	if (left <= 0)
		return 0;
	ts.tv_sec = left / 1000;
	ts.tv_nsec = (left % 1000) * 1000000;
	sigprocmask(SIG_SETMASK, NULL, &mask);
	sigdelset(&mask, SIGTERM);
	sigdelset(&mask, SIGINT);
	return ppoll(&pfd, 1, &ts, &mask);
}

int
listen_proxy(int fd, const struct session_cfg *cfg, struct peer *peer)
{
	unsigned char buf[PROXY_V2_MAX];
	struct proxy_hdr h;
	const char *why = "";
	size_t have = 0;
	ssize_t k;
	long long deadline;
	int secs, r;

	if (cfg->proxy_from == NULL)
		return 0;
	if (peer->addr.ss_family == AF_UNSPEC && !peer->local) {
		/* A network socket whose peer is gone already (reset). */
		log_warnx("connection closed before its PROXY header");
		return -1;
	}
	if (peer->addr.ss_family == AF_UNSPEC ||
	    !proxy_nets_match(cfg->proxy_from, (struct sockaddr *)&peer->addr,
	    peer->addrlen)) {
		/* Not a proxy: a header already sent is refused here, one
		 * sent later by the session (the first line). */
		k = recv(fd, buf, 16, MSG_PEEK | MSG_DONTWAIT);
		if (k > 0 && proxy_looks_like(buf, (size_t)k)) {
			log_warnx("%s: PROXY header from a source not in "
			    "--proxy-from: connection closed", peer->text);
			return -1;
		}
		return 0;
	}
	secs = cfg->timeout < PROXY_TIMEOUT ? cfg->timeout : PROXY_TIMEOUT;
	deadline = proto_now_ms() + secs * 1000LL;
	for (;;) {
		/* Peek, parse the bytes so far, then take only what belongs
		 * to the header: the rest is the session's. */
		k = recv(fd, buf + have, sizeof(buf) - have,
		    MSG_PEEK | MSG_DONTWAIT);
		if (k == 0) {
			log_warnx("%s: closed before its PROXY header",
			    peer->text);
			return -1;
		}
		if (k < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR) {
				log_warn("%s: reading the PROXY header",
				    peer->text);
				return -1;
			}
			if ((r = wait_readable(fd, deadline)) == 0) {
				log_warnx("%s: no PROXY header within %d s: "
				    "connection closed", peer->text, secs);
				return -1;
			}
			if (r < 0 && (errno != EINTR || *cfg->stop))
				return -1;
			continue;
		}
		switch (proxy_parse(buf, have + (size_t)k, &h, &why)) {
		case PROXY_MORE:
			if (take(fd, (size_t)k) < 0)
				return log_warn("%s: reading the PROXY header",
				    peer->text);
			have += (size_t)k;
			continue;
		case PROXY_BAD:
			log_warnx("%s: bad PROXY header (%s): connection "
			    "closed", peer->text, why);
			return -1;
		case PROXY_DONE:
			break;
		}
		break;
	}
	if (take(fd, h.len - have) < 0)
		return log_warn("%s: reading the PROXY header", peer->text);
	if (h.local) {
		log_warnx("%s: PROXY header without a client (%s): "
		    "connection closed", peer->text,
		    h.version == 1 ? "UNKNOWN" : "LOCAL");
		return -1;
	}
	peer_from_addr(peer, (struct sockaddr *)&h.src, h.srclen);
	peer->tls = h.tls;
	return 0;
}

/*
 * One connection, in order: who the peer is, the PROXY header when the
 * peer is a listed proxy, admission per source, the session, the seat
 * given back.
 */
static void
serve(struct pool *p, const struct session_cfg *cfg, int fd)
{
	struct peer peer;

	tune_conn(fd);
	peer_from_fd(&peer, fd);
	if (cfg->users != NULL && session_confine(cfg) < 0)
		return;
	if (listen_proxy(fd, cfg, &peer) < 0)
		return;
	if (source_admit(p->sources, p->seat, &peer,
	    source_limit(p, &peer)) < 0) {
		log_warnx("%s: too many connections from this address",
		    peer.text);
		turn_away(fd, "-ERR [SYS/TEMP] too many connections from your "
		    "address\r\n");
		return;
	}
	/* SIGTERM stays blocked but for the session's waits (proto.c),
	 * which then end with EINTR and the session checks cfg->stop. */
	if (*cfg->stop)
		;
	else if (cfg->users != NULL)
		login_session(fd, fd, cfg, &peer);
	else
		session_run(fd, fd, cfg, &peer);
	source_release(p->sources, p->seat);
}

static void __attribute__((noreturn))
worker_main(struct pool *p)
{
	struct session_cfg cfg = *p->cfg;
	struct backoff bo = { 0, 0, 0 };
	sigset_t none, block;
	int served = 0, i, keep[LISTEN_MAXFDS + 2];

	/* A worker never outlives its master. */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(0);
	close(p->report[0]);
	sigemptyset(&none);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_SETMASK, &block, NULL);
	set_handler(SIGTERM, on_signal);
	set_handler(SIGINT, on_signal);
	set_handler(SIGUSR1, on_signal);
	signal(SIGCHLD, SIG_DFL);
	got_term = got_retire = 0;
	cfg.stop = &got_term;
	/* What a login process must close: the listening sockets and the
	 * report pipe. */
	for (i = 0; i < p->nfds && i < LISTEN_MAXFDS; i++)
		keep[i] = p->fds[i];
	keep[i++] = p->report[1];
	keep[i] = -1;
	cfg.close_fds = keep;
	/* The open mode: every session here serves this maildrop. */
	if (cfg.users == NULL && session_confine(&cfg) < 0)
		_exit(EX_OSERR);

	while (!got_term && !got_retire && served < WORKER_SESSIONS) {
		int fd;

		if ((fd = accept_one(p->fds, p->nfds, &none)) < 0) {
			if (out_of_resources(errno))
				pause_ms(backoff_failed(&bo, "accept"), &none);
			continue;
		}
		bo.ms = 0;
		report(p->report[1], 1);
		serve(p, &cfg, fd);
		close(fd);
		served++;
		report(p->report[1], 0);
		/* Confined to one user's maildrop: a fresh worker serves the
		 * next login. */
		if (cfg.users != NULL && cfg.sandbox != 0)
			break;
	}
	_exit(0);
}

static int
spawn(struct pool *p)
{
	pid_t pid;
	int seat;

	if (p->n == p->max)
		return -1;
	/* A free seat exists: there are fewer workers than seats. */
	for (seat = 0; p->seat_used[seat]; seat++)
		;
	p->seat = seat;
	if ((pid = fork()) < 0)
		return log_warn("fork");
	if (pid == 0)
		worker_main(p);
	p->seat_used[seat] = 1;
	p->w[p->n].seat = seat;
	p->w[p->n].pid = pid;
	p->w[p->n].busy = 0;
	p->w[p->n].retiring = 0;
	p->n++;
	p->idle++;
	return 0;
}

static struct worker *
find(struct pool *p, pid_t pid)
{
	int i;

	for (i = 0; i < p->n; i++)
		if (p->w[i].pid == pid)
			return &p->w[i];
	return NULL;
}

static void
set_busy(struct pool *p, struct worker *w, int busy)
{
	if (w->busy == busy)
		return;
	w->busy = busy;
	if (!w->retiring) {
		p->idle += busy ? -1 : 1;
	}
	p->busy += busy ? 1 : -1;
}

static void
reap(struct pool *p)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		struct worker *w = find(p, pid);

		if (w == NULL)
			continue;
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM &&
		    WTERMSIG(status) != SIGUSR1)
			log_warnx("worker %d killed by signal %d", (int)pid,
			    WTERMSIG(status));
		else if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
		    WEXITSTATUS(status) != SANDBOX_EXIT)
			log_warnx("worker %d exited with %d", (int)pid,
			    WEXITSTATUS(status));
		if (w->busy)
			p->busy--;
		else if (!w->retiring)
			p->idle--;
		/* A worker killed mid-session still held its seat. */
		source_release(p->sources, w->seat);
		p->seat_used[w->seat] = 0;
		*w = p->w[--p->n];
	}
}

static void
read_reports(struct pool *p)
{
	struct wmsg m[64];
	ssize_t k;

	while ((k = read(p->report[0], m, sizeof(m))) > 0) {
		size_t i;

		for (i = 0; i < (size_t)k / sizeof(m[0]); i++) {
			struct worker *w = find(p, m[i].pid);

			if (w != NULL)
				set_busy(p, w, m[i].busy);
		}
	}
}

/* Keep POOL_SPARE_MIN..POOL_SPARE_MAX idle workers within the limit. */
static void
balance(struct pool *p)
{
	int i;

	while (p->idle < POOL_SPARE_MIN && p->n < p->max)
		if (spawn(p) < 0)
			break;
	for (i = 0; i < p->n && p->idle > POOL_SPARE_MAX; i++) {
		struct worker *w = &p->w[i];

		if (!w->busy && !w->retiring) {
			w->retiring = 1;
			p->idle--;
			kill(w->pid, SIGUSR1);
		}
	}
}

/* Every session slot is taken: answer extra connections ourselves.
 * -1 with errno when accept() lacked resources. */
static int
refuse(const int *fds, int nfds)
{
	static const char msg[] = "-ERR [SYS/TEMP] too many sessions, "
	    "try again later\r\n";
	int i, lack = 0;

	for (i = 0; i < nfds; i++) {
		int fd = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (out_of_resources(errno))
				lack = errno;
			continue;
		}
		if (write(fd, msg, sizeof(msg) - 1) < 0)
			log_warn("refusing a connection");
		close(fd);
		log_warnx("session limit reached: connection refused");
	}
	errno = lack;
	return lack != 0 ? -1 : 0;
}

static void
shutdown_pool(struct pool *p)
{
	struct timespec pause = { 0, 20 * 1000 * 1000 };
	int i, tries;

	for (i = 0; i < p->n; i++)
		kill(p->w[i].pid, SIGTERM);
	for (tries = 0; p->n > 0 && tries < 500; tries++) {
		reap(p);
		if (p->n > 0)
			nanosleep(&pause, NULL);
	}
	for (i = 0; i < p->n; i++)
		kill(p->w[i].pid, SIGKILL);
	while (p->n > 0 && waitpid(-1, NULL, 0) > 0)
		reap(p);
}

int
listen_run(const int *fds, int nfds, const struct session_cfg *cfg,
    int max_sessions, int max_per_source)
{
	struct pool pool, *p = &pool;
	struct session_cfg pcfg;
	struct pollfd pfd[LISTEN_MAXFDS + 1];
	sigset_t block, old;
	struct backoff bo = { 0, 0, 0 };
	long long resume = 0;
	int i, last_busy = -1;

	memset(p, 0, sizeof(*p));
	p->max = max_sessions;
	p->fds = fds;
	p->nfds = nfds;
	/* Each worker keeps its last listing (store.h) between sessions. */
	pcfg = *cfg;
	pcfg.store.cache = store_cache_new();
	p->cfg = &pcfg;
	/* The workers' system-call filters, built once here. */
	sandbox_prepare(cfg->sandbox, cfg->users != NULL);
	p->per_source = max_per_source;
	if ((p->w = calloc(max_sessions, sizeof(*p->w))) == NULL ||
	    (p->seat_used = calloc(max_sessions, 1)) == NULL) {
		log_warn("calloc");
		return EX_OSERR;
	}
	if ((p->sources = source_new(max_sessions)) == NULL)
		return EX_OSERR;
	pcfg.sources = p->sources;	/* login penalties, for all workers */
	if (pipe2(p->report, O_CLOEXEC) < 0) {
		log_warn("pipe");
		return EX_OSERR;
	}
	fcntl(p->report[0], F_SETFL, O_NONBLOCK);

	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	set_handler(SIGCHLD, on_signal);
	set_handler(SIGTERM, on_signal);
	set_handler(SIGINT, on_signal);
	sigdelset(&old, SIGCHLD);
	sigdelset(&old, SIGTERM);
	sigdelset(&old, SIGINT);

	for (i = 0; i < POOL_START && i < max_sessions; i++)
		spawn(p);
	sd_notify(0, "READY=1");
	log_info("listening, up to %d sessions", max_sessions);

	while (!got_term) {
		struct timespec ts, *tp = NULL;
		int nw = 1, saturated;

		if (p->busy != last_busy) {
			sd_notifyf(0, "STATUS=%d sessions", p->busy);
			last_busy = p->busy;
		}
		saturated = p->idle == 0 && p->n >= p->max;
		pfd[0].fd = p->report[0];
		pfd[0].events = POLLIN;
		if (saturated && bo.ms > 0 && proto_now_ms() < resume) {
			/* accept() lacked resources: not before resume */
			long long left = resume - proto_now_ms();

			ts.tv_sec = left / 1000;
			ts.tv_nsec = (left % 1000) * 1000000L;
			tp = &ts;
		} else if (saturated) {
			for (i = 0; i < nfds; i++) {
				pfd[nw].fd = fds[i];
				pfd[nw++].events = POLLIN;
			}
		}
		if (ppoll(pfd, nw, tp, &old) < 0 && errno != EINTR) {
			log_warn("ppoll");
			break;
		}
		if (got_chld) {
			got_chld = 0;
			reap(p);
		}
		read_reports(p);
		if (saturated && p->idle == 0 && nw > 1) {
			if (refuse(fds, nfds) < 0)
				resume = proto_now_ms() +
				    backoff_failed(&bo, "accept (refusing)");
			else
				bo.ms = 0;
		}
		balance(p);
	}
	sd_notify(0, "STOPPING=1");
	log_info("shutting down");
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	shutdown_pool(p);
	free(p->w);
	free(p->seat_used);
	source_free(p->sources);
	store_cache_free(pcfg.store.cache);
	return EX_OK;
}
