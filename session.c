/*
 * session.c: the RFC 1939 state machine (see session.h).
 *
 * Commands are data: one table (verb, arguments, states, handler) and one
 * dispatcher.  A handler writes exactly one status line through reply();
 * the dispatcher checks that and counts consecutive failures.
 *
 * Without a user database the maildrop is open (SPEC 3): transaction
 * commands work straight after the greeting, and USER/PASS with any name
 * are accepted, so that both course graders and real clients work.
 */
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "params.h"
#include "proto.h"
#include "proxy.h"
#include "sandbox.h"
#include "session.h"
#include "store.h"
#include "auth.h"
#include "tls.h"

enum state { ST_AUTH = 1, ST_TRANS = 2 };

struct session {
	const struct session_cfg *cfg;
	const struct peer *peer;
	struct pio	 io;
	struct store	*store;
	enum state	 state;
	int		 user_given;
	int		 tls_on;
	int		 auth_failures;
	int		 hangup;	/* end after this reply */
	char		 user[65];
	char		 maildrop[PATH_MAX];
	int		 replied;	/* this command has its status line */
	int		 pending;	/* ... not written out yet */
	char		 status[POP3_RESP_MAX];	/* the line, CRLF included */
	int		 failed;	/* the last reply was -ERR */
	int		 bad;		/* consecutive failed commands */
	int		 quit;
	int		 broken;	/* connection unusable: end now */
	size_t		 nretr, ndele;
	long long	 login_by;	/* ms: end of the login phase; 0: none */
	uint64_t	 cmd_ns;	/* when the current command arrived */
	int		 wipe;		/* it held a password: wipe buffers */
	int		 handed;	/* logged in: the monitor goes on */
	pid_t		 relay;		/* the login process relaying; -1 */
	char		 line[POP3_CMD_MAX + 1];
	/* Buffers last: never zeroed, so an idle session touches few pages. */
	struct reader	 in;
	struct writer	 out;
};

#define MAX_ARGS	2

struct cmd {
	const char	*verb;
	int		 minargs, maxargs;
	int		 states;	/* where it is allowed */
	int		 rest;		/* one argument: the rest of the line */
	void		(*fn)(struct session *, int, char **);
};

static void
reply(struct session *s, int ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Set the one status line of the current command.  It is written out by
 * the dispatcher after the handler, or by body() before a multi-line body,
 * so a command can never get two: a second call is dropped (and logged).
 */
static void
reply(struct session *s, int ok, const char *fmt, ...)
{
	char msg[POP3_RESP_MAX - 8];
	va_list ap;

	if (s->replied) {
		log_warnx("internal: a second status line dropped");
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(s->status, sizeof(s->status), "%s %s\r\n",
	    ok ? "+OK" : "-ERR", msg);
	s->replied = 1;
	s->pending = 1;
	s->failed = !ok;
}

/* Write the status line out if it is still pending. */
static void
status_out(struct session *s)
{
	if (s->pending)
		writer_put(&s->out, s->status, strlen(s->status));
	s->pending = 0;
}

/* The writer for a multi-line body: the +OK status line goes first. */
static struct writer *
body(struct session *s)
{
	status_out(s);
	return &s->out;
}

/*
 * Milliseconds the next command line may take to arrive whole: the idle
 * timeout, and while a login is due, no later than the login deadline.
 */
static int
line_timeout(const struct session *s)
{
	int idle = s->cfg->timeout > 0 ? s->cfg->timeout * 1000 : -1;
	long long left;

	if (s->login_by == 0 || s->state != ST_AUTH)
		return idle;
	left = s->login_by - proto_now_ms();
	if (left < 0)
		left = 0;
	return idle >= 0 && idle < left ? idle : (int)left;
}

/*
 * Open the maildrop of user (NULL: the open mode's): the users file's own
 * path for it (maildrop, when not ""), else user's folder under MAILDROP,
 * opened relative to MAILDROP without following a symbolic link (anyone
 * who may write to MAILDROP must not be able to point a user at another
 * folder).
 */
static enum store_status
open_maildrop(const struct session_cfg *cfg, const char *user,
    const char *maildrop, struct store **sp)
{
	enum store_status r;
	int root;

	if (user == NULL)
		return store_open(sp, cfg->maildrop, &cfg->store);
	if (maildrop[0] != '\0')
		return store_open(sp, maildrop, &cfg->store);
	if ((root = open(cfg->maildrop, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0) {
		log_warn("maildrop %s", cfg->maildrop);
		return STORE_IOERR;
	}
	r = store_openat(sp, root, user, 1, &cfg->store);
	close(root);
	return r;
}

/* The -ERR text for a maildrop that cannot be opened. */
static const char *
open_error(enum store_status r)
{
	switch (r) {
	case STORE_INUSE:
		return "[IN-USE] maildrop is locked by another session";
	case STORE_TOOBIG:
		return "[SYS/PERM] maildrop too large";
	default:
		return "[SYS/TEMP] cannot open the maildrop";
	}
}

struct store *
session_open(const struct session_cfg *cfg, const char *user,
    const char *maildrop, const char **why)
{
	struct store *st = NULL;
	enum store_status r;

	if ((r = open_maildrop(cfg, user, maildrop, &st)) != STORE_OK) {
		*why = open_error(r);
		return NULL;
	}
	return st;
}

/* Enter TRANSACTION: snapshot the maildrop.  0, or -1 after an -ERR. */
static int
enter_trans(struct session *s, const char *user)
{
	enum store_status r;

	if (s->store == NULL &&
	    (r = open_maildrop(s->cfg, user, s->maildrop, &s->store)) !=
	    STORE_OK) {
		reply(s, 0, "%s", open_error(r));
		return -1;
	}
	s->state = ST_TRANS;
	return 0;
}

/* Parse a message-number argument; on failure reply -ERR and return -1. */
static int
msgnum(struct session *s, const char *arg, size_t *n)
{
	uint64_t v;

	if (proto_number(arg, SIZE_MAX, &v) < 0 || v == 0) {
		reply(s, 0, "invalid message number");
		return -1;
	}
	*n = v;
	return 0;
}

/* Reply -ERR for a store failure about message n. */
static void
store_error(struct session *s, enum store_status r, size_t n)
{
	switch (r) {
	case STORE_NOMSG:
		reply(s, 0, "no such message");
		break;
	case STORE_DELETED:
		reply(s, 0, "message %zu already deleted", n);
		break;
	case STORE_GONE:
		reply(s, 0, "[SYS/TEMP] message %zu was removed or changed", n);
		break;
	default:
		reply(s, 0, "[SYS/TEMP] cannot read message %zu", n);
		break;
	}
}

/* Passwords may travel: over TLS, on loopback, or when allowed. */
static int
plaintext_ok(const struct session *s)
{
	return s->tls_on || s->peer->tls || s->peer->local ||
	    s->cfg->allow_plaintext;
}

static void
cmd_capa(struct session *s, int argc, char **argv)
{
	int users = s->cfg->users != NULL;
	struct writer *w;

	(void)argc;
	(void)argv;
	reply(s, 1, "Capability list follows");
	w = body(s);
	writer_printf(w, "TOP\r\nUIDL\r\n");
	if (!users)
		writer_printf(w, "USER\r\n");
	else if (plaintext_ok(s))
		writer_printf(w, "USER\r\nSASL PLAIN\r\n");
	if (s->cfg->tls != NULL && !s->tls_on)
		writer_printf(w, "STLS\r\n");
	writer_printf(w, "RESP-CODES\r\n");
	if (users)
		writer_printf(w, "AUTH-RESP-CODE\r\n");
	writer_printf(w,
	    "PIPELINING\r\n"
	    "EXPIRE NEVER\r\n"
	    "IMPLEMENTATION pop3d-%s\r\n"
	    ".\r\n", POP3D_VERSION);
}

/*
 * A login was accepted (user NULL: the open mode's): enter TRANSACTION,
 * confine to the maildrop, answer.  -1 after an -ERR.
 */
static int
logged_in(struct session *s, const char *user)
{
	size_t count;
	uint64_t octets;

	if (enter_trans(s, user) < 0)
		return -1;
	/* From here on only this user's mail is in reach. */
	if (s->cfg->users != NULL &&
	    sandbox_login(s->cfg->sandbox, store_dirfd(s->store),
	    s->cfg->index_path, s->relay) < 0) {
		store_close(s->store);
		s->store = NULL;
		s->state = ST_AUTH;
		s->hangup = 1;
		reply(s, 0, "[SYS/TEMP] cannot open the maildrop");
		return -1;
	}
	store_stat(s->store, &count, &octets);
	reply(s, 1, "maildrop has %zu messages (%llu octets)", count,
	    (unsigned long long)octets);
	return 0;
}

/* Log in as name with password (cleared here), and enter TRANSACTION. */
static void
login(struct session *s, const char *name, char *password)
{
	const char *user = NULL;
	char refused[POP3_RESP_MAX / 2] = "";
	int r;

	s->wipe = 1;
	if (s->cfg->users != NULL) {
		if (s->cfg->check != NULL)
			r = s->cfg->check(s->cfg, s->peer, name, password,
			    s->cmd_ns, refused, sizeof(refused));
		else
			r = auth_login(s->cfg, s->peer, name, password,
			    s->cmd_ns, s->maildrop, sizeof(s->maildrop));
		switch (r) {
		case AUTH_OK:
			if (refused[0] != '\0') {
				/* Right, but its maildrop cannot be opened. */
				reply(s, 0, "%s", refused);
				return;
			}
			user = name;
			break;
		case AUTH_ERROR:
			if (++s->auth_failures >= AUTH_MAX_FAILURES)
				s->hangup = 1;
			reply(s, 0, "[SYS/TEMP] cannot check passwords now");
			return;
		case AUTH_FAIL:
			if (++s->auth_failures >= AUTH_MAX_FAILURES)
				s->hangup = 1;
			reply(s, 0, "[AUTH] invalid user name or password");
			return;
		default:
			/* The monitor is gone: the server is stopping. */
			s->hangup = 1;
			reply(s, 0, "[SYS/TEMP] cannot check passwords now");
			return;
		}
	} else
		explicit_bzero(password, strlen(password));
	if (s->cfg->hand_over != NULL) {
		/* The monitor opens the maildrop and answers this command. */
		s->handed = 1;
		return;
	}
	(void)logged_in(s, user);
}

static void
cmd_user(struct session *s, int argc, char **argv)
{
	(void)argc;
	if (s->cfg->users != NULL && !plaintext_ok(s)) {
		reply(s, 0, "[AUTH] plaintext authentication disallowed on "
		    "non-encrypted connections, use STLS");
		return;
	}
	/* An unusable name fails at PASS, like a wrong password. */
	snprintf(s->user, sizeof(s->user), "%s",
	    strlen(argv[0]) < sizeof(s->user) ? argv[0] : "");
	s->user_given = 1;
	reply(s, 1, "send PASS");
}

static void
cmd_pass(struct session *s, int argc, char **argv)
{
	(void)argc;
	s->wipe = 1;
	if (!s->user_given) {
		explicit_bzero(argv[0], strlen(argv[0]));
		reply(s, 0, "send USER first");
		return;
	}
	s->user_given = 0;
	login(s, s->user, argv[0]);
}

/* AUTH PLAIN (RFC 5034, RFC 4616), with or without an initial response. */
static void
cmd_auth(struct session *s, int argc, char **argv)
{
	char buf[SASL_LINE_MAX + 1], *resp, *authc, *pass;
	const char *why;
	size_t len;

	s->wipe = 1;
	if (strcasecmp(argv[0], "PLAIN") != 0) {
		reply(s, 0, "unsupported authentication mechanism");
		return;
	}
	if (s->cfg->users != NULL && !plaintext_ok(s)) {
		reply(s, 0, "[AUTH] plaintext authentication disallowed on "
		    "non-encrypted connections, use STLS");
		return;
	}
	if (argc == 2) {
		resp = argv[1];
	} else {
		writer_put(&s->out, "+ \r\n", 4);
		if (writer_flush(&s->out) < 0 ||
		    reader_line(&s->in, buf, sizeof(buf), SASL_LINE_MAX, &len,
		    line_timeout(s)) != LINE_OK) {
			explicit_bzero(buf, sizeof(buf));
			s->broken = 1;
			reply(s, 0, "authentication aborted");
			return;
		}
		/* The failure delay counts from the response. */
		s->cmd_ns = proto_now_ns();
		resp = buf;
	}
	if (strcmp(resp, "*") == 0)
		reply(s, 0, "authentication cancelled");
	else if (auth_plain_decode(resp, &authc, &pass, &why) < 0)
		reply(s, 0, "%s", why);
	else
		login(s, authc, pass);
	explicit_bzero(buf, sizeof(buf));
}

static void
cmd_stls(struct session *s, int argc, char **argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	if (s->cfg->tls == NULL || s->tls_on) {
		reply(s, 0, s->tls_on ? "TLS already active" :
		    "TLS not available");
		return;
	}
	reply(s, 1, "begin TLS negotiation");
	status_out(s);
	if (writer_flush(&s->out) < 0) {
		s->broken = 1;
		return;
	}
	/* Whatever the client sent after STLS was sent in clear: drop it. */
	reader_init(&s->in, &s->io);
	if (tls_accept(s->cfg->tls, &s->io, TLS_HANDSHAKE_TIMEOUT * 1000, err,
	    sizeof(err)) < 0) {
		log_warnx("STLS: %s", err);
		s->broken = 1;
		return;
	}
	s->tls_on = 1;
	s->user_given = 0;
}

static void
cmd_quit(struct session *s, int argc, char **argv)
{
	size_t removed, failed, count;
	uint64_t octets;

	(void)argc;
	(void)argv;
	s->quit = 1;
	if (s->state != ST_TRANS) {
		reply(s, 1, "pop3d signing off");
		return;
	}
	if (store_commit(s->store, &removed, &failed) != STORE_OK) {
		reply(s, 0, "[SYS/TEMP] deleted messages not removed");
		return;
	}
	s->ndele += removed;
	if (failed > 0) {
		reply(s, 0, "[SYS/TEMP] %zu deleted messages not removed",
		    failed);
		return;
	}
	store_stat(s->store, &count, &octets);
	reply(s, 1, "pop3d signing off (%zu messages left)", count);
}

static void
cmd_stat(struct session *s, int argc, char **argv)
{
	size_t count;
	uint64_t octets;

	(void)argc;
	(void)argv;
	store_stat(s->store, &count, &octets);
	reply(s, 1, "%zu %llu", count, (unsigned long long)octets);
}

/* One line of a LIST or UIDL listing for message n: its size or its
 * unique-id. */
static enum store_status
list_entry(const struct session *s, size_t n, int uidl, char *buf,
    size_t len)
{
	enum store_status r;
	const char *uid;
	uint64_t size;

	if (uidl) {
		if ((r = store_uid(s->store, n, &uid)) == STORE_OK)
			snprintf(buf, len, "%zu %s", n, uid);
	} else {
		if ((r = store_size(s->store, n, &size)) == STORE_OK)
			snprintf(buf, len, "%zu %llu", n,
			    (unsigned long long)size);
	}
	return r;
}

/* LIST and UIDL: one message's line, or every message not deleted as a
 * multi-line reply. */
static void
listing(struct session *s, int argc, char **argv, int uidl)
{
	char line[POP3_RESP_MAX];
	struct writer *w;
	size_t n, count, last;
	uint64_t octets;
	enum store_status r;

	if (argc == 1) {
		if (msgnum(s, argv[0], &n) < 0)
			return;
		if ((r = list_entry(s, n, uidl, line, sizeof(line))) !=
		    STORE_OK) {
			store_error(s, r, n);
			return;
		}
		reply(s, 1, "%s", line);
		return;
	}
	if (uidl)
		reply(s, 1, "unique-id listing follows");
	else {
		store_stat(s->store, &count, &octets);
		reply(s, 1, "%zu messages (%llu octets)", count,
		    (unsigned long long)octets);
	}
	w = body(s);
	last = store_last(s->store);
	for (n = 1; n <= last; n++)
		if (list_entry(s, n, uidl, line, sizeof(line)) == STORE_OK)
			writer_printf(w, "%s\r\n", line);
	writer_put(w, ".\r\n", 3);
}

static void
cmd_list(struct session *s, int argc, char **argv)
{
	listing(s, argc, argv, 0);
}

static void
cmd_uidl(struct session *s, int argc, char **argv)
{
	listing(s, argc, argv, 1);
}

/* RETR and TOP: the store opens and checks the message, the status line
 * is ours, then the store streams the body. */
static void
send_msg(struct session *s, size_t n, long top)
{
	struct store_msg *sm;
	uint64_t size;
	enum store_status r;

	if ((r = store_msg_open(s->store, n, &sm, &size)) != STORE_OK) {
		store_error(s, r, n);
		return;
	}
	if (top < 0)
		reply(s, 1, "%llu octets", (unsigned long long)size);
	else
		reply(s, 1, "top of message follows");
	if (body(s)->failed) {
		store_msg_close(sm);
		s->broken = 1;
		return;
	}
	if (store_msg_send(sm, top, &s->out) != STORE_OK)
		s->broken = 1;
	else if (top < 0)
		s->nretr++;
}

static void
cmd_retr(struct session *s, int argc, char **argv)
{
	size_t n;

	(void)argc;
	if (msgnum(s, argv[0], &n) == 0)
		send_msg(s, n, -1);
}

static void
cmd_top(struct session *s, int argc, char **argv)
{
	uint64_t lines;
	size_t n;

	(void)argc;
	if (msgnum(s, argv[0], &n) < 0)
		return;
	if (proto_number(argv[1], LONG_MAX, &lines) < 0) {
		reply(s, 0, "invalid number of lines");
		return;
	}
	send_msg(s, n, (long)lines);
}

static void
cmd_dele(struct session *s, int argc, char **argv)
{
	enum store_status r;
	size_t n;

	(void)argc;
	if (msgnum(s, argv[0], &n) < 0)
		return;
	if ((r = store_dele(s->store, n)) != STORE_OK) {
		store_error(s, r, n);
		return;
	}
	if (s->cfg->store.delete_now)
		s->ndele++;
	reply(s, 1, "message %zu deleted", n);
}

static void
cmd_noop(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	reply(s, 1, "done");
}

static void
cmd_rset(struct session *s, int argc, char **argv)
{
	size_t count;
	uint64_t octets;

	(void)argc;
	(void)argv;
	store_rset(s->store);
	store_stat(s->store, &count, &octets);
	reply(s, 1, "maildrop has %zu messages (%llu octets)", count,
	    (unsigned long long)octets);
}

static const struct cmd commands[] = {
	{ "CAPA", 0, 0, ST_AUTH | ST_TRANS, 0, cmd_capa },
	{ "USER", 1, 1, ST_AUTH, 1, cmd_user },
	{ "AUTH", 1, 2, ST_AUTH, 0, cmd_auth },
	{ "STLS", 0, 0, ST_AUTH, 0, cmd_stls },
	{ "PASS", 1, 1, ST_AUTH, 1, cmd_pass },
	{ "QUIT", 0, 0, ST_AUTH | ST_TRANS, 0, cmd_quit },
	{ "STAT", 0, 0, ST_TRANS, 0, cmd_stat },
	{ "LIST", 0, 1, ST_TRANS, 0, cmd_list },
	{ "UIDL", 0, 1, ST_TRANS, 0, cmd_uidl },
	{ "RETR", 1, 1, ST_TRANS, 0, cmd_retr },
	{ "TOP",  2, 2, ST_TRANS, 0, cmd_top },
	{ "DELE", 1, 1, ST_TRANS, 0, cmd_dele },
	{ "NOOP", 0, 0, ST_TRANS, 0, cmd_noop },
	{ "RSET", 0, 0, ST_TRANS, 0, cmd_rset },
};

/* Split line into verb and arguments; -1 after an -ERR. */
static int
parse(struct session *s, char *line, const struct cmd **cp, int *argc,
    char **argv)
{
	const struct cmd *c = NULL;
	char *verb, *p = line;
	size_t i;

	while (*p == ' ')
		p++;
	verb = p;
	while (*p != '\0' && *p != ' ')
		p++;
	if (*p != '\0')
		*p++ = '\0';
	if (*verb == '\0') {
		reply(s, 0, "empty command");
		return -1;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcasecmp(verb, commands[i].verb) == 0)
			c = &commands[i];
	if (c == NULL) {
		reply(s, 0, "unknown command");
		return -1;
	}
	*argc = 0;
	if (c->rest) {
		/* The whole rest of the line: a password may hold spaces. */
		if (*p != '\0')
			argv[(*argc)++] = p;
	} else {
		for (;;) {
			char *end;

			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '\0')
				break;
			if (*argc == MAX_ARGS || *argc == c->maxargs) {
				reply(s, 0, "too many arguments for %s", c->verb);
				return -1;
			}
			argv[(*argc)++] = p;
			for (end = p; *end != '\0' && *end != ' ' && *end != '\t';)
				end++;
			if (*end != '\0')
				*end++ = '\0';
			p = end;
		}
	}
	if (*argc < c->minargs) {
		reply(s, 0, "missing argument for %s", c->verb);
		return -1;
	}
	*cp = c;
	return 0;
}

static void
dispatch(struct session *s, char *line)
{
	const struct cmd *c;
	char *argv[MAX_ARGS];
	int argc;

	if (parse(s, line, &c, &argc, argv) < 0)
		return;
	if (!(c->states & s->state)) {
		if (s->state == ST_TRANS) {
			reply(s, 0, "not allowed in TRANSACTION state");
			return;
		}
		/* Open maildrop: a transaction command logs in. */
		if (s->cfg->users != NULL) {
			reply(s, 0, "log in first");
			return;
		}
		if (enter_trans(s, NULL) < 0)
			return;
	}
	c->fn(s, argc, argv);
}

int
session_confine(const struct session_cfg *cfg)
{
	if (cfg->users == NULL)
		return sandbox_maildrop(cfg->sandbox, cfg->maildrop,
		    cfg->index_path);
	return sandbox_prelogin(cfg->sandbox, cfg->users, cfg->maildrop,
	    cfg->index_path);
}

static void
session_free(struct session *s)
{
	store_close(s->store);
	explicit_bzero(s->line, sizeof(s->line));
	free(s);
}

void
peer_from_addr(struct peer *p, const struct sockaddr *sa, socklen_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	memset(p, 0, sizeof(*p));
	if (len > sizeof(p->addr))
		len = sizeof(p->addr);
	memcpy(&p->addr, sa, len);
	p->addrlen = len;
	p->local = proto_addr_is_local(sa);
	if ((sa->sa_family == AF_INET || sa->sa_family == AF_INET6) &&
	    getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
	    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
		snprintf(p->text, sizeof(p->text),
		    sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
	else
		snprintf(p->text, sizeof(p->text), "local");
}

void
peer_from_fd(struct peer *p, int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	const char *env;

	memset(&ss, 0, sizeof(ss));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 &&
	    ss.ss_family != AF_UNIX) {
		peer_from_addr(p, (struct sockaddr *)&ss, sl);
		return;
	}
	/* A pipe, a terminal or a local socket: no address to go by.  A
	 * network socket without a peer (reset already) is not local. */
	memset(p, 0, sizeof(*p));
	p->addr.ss_family = AF_UNSPEC;
	p->local = ss.ss_family == AF_UNIX || errno == ENOTSOCK;
	if ((env = getenv("REMOTE_HOST")) != NULL && *env != '\0')
		snprintf(p->text, sizeof(p->text), "%s", env);
	else
		snprintf(p->text, sizeof(p->text), "local");
}

/* A session on rfd/wfd for peer, in AUTHORIZATION; NULL after a log line. */
static struct session *
session_new(int rfd, int wfd, const struct session_cfg *cfg,
    const struct peer *peer)
{
	struct session *s;

	if ((s = malloc(sizeof(*s))) == NULL) {
		log_warn("session for %s", peer->text);
		return NULL;
	}
	memset(s, 0, offsetof(struct session, in));
	s->relay = -1;
	s->cfg = cfg;
	s->peer = peer;
	s->state = ST_AUTH;
	pio_init_fd(&s->io, rfd, wfd);
	reader_init(&s->in, &s->io);
	/* The same deadline bounds every write to a client that stops
	 * reading. */
	writer_init(&s->out, &s->io, cfg->timeout > 0 ?
	    cfg->timeout * 1000 : -1);
	return s;
}

/* Commands until the session ends; why it ended. */
static const char *
session_loop(struct session *s)
{
	const struct session_cfg *cfg = s->cfg;
	const struct peer *peer = s->peer;
	const char *why = NULL;
	int first = s->state == ST_AUTH;	/* the first command line */

	while (why == NULL) {
		enum line_status ls;
		size_t len;

		if (reader_buffered(&s->in) == 0 && writer_flush(&s->out) < 0) {
			why = "write failed";
			break;
		}
		ls = reader_line(&s->in, s->line, sizeof(s->line), POP3_CMD_MAX,
		    &len, line_timeout(s));
		s->replied = s->pending = 0;
		switch (ls) {
		case LINE_OK:
			if (first && cfg->proxy_from != NULL &&
			    proxy_first_line(s->line, len, (const unsigned
			    char *)reader_data(&s->in),
			    reader_buffered(&s->in))) {
				log_warnx("%s: PROXY header from a source not "
				    "in --proxy-from: connection closed",
				    peer->text);
				why = "PROXY header refused";
				continue;
			}
			s->cmd_ns = proto_now_ns();
			/* Whatever the state, a PASS or AUTH line may hold a
			 * password (the handlers set it too). */
			s->wipe = strncasecmp(s->line + strspn(s->line, " "),
			    "PASS", 4) == 0 || strncasecmp(s->line +
			    strspn(s->line, " "), "AUTH", 4) == 0;
			dispatch(s, s->line);
			if (s->wipe) {
				/* Password bytes: the line, and the reader's
				 * buffer where the line arrived. */
				explicit_bzero(s->line, sizeof(s->line));
				reader_wipe(&s->in);
			}
			if (s->handed) {
				why = "logged in";
				continue;
			}
			break;
		case LINE_TOOLONG:
			reader_wipe(&s->in);	/* it may have been a PASS */
			reply(s, 0, "line too long");
			break;
		case LINE_NUL:
			reply(s, 0, "NUL byte in command");
			break;
		case LINE_EOF:
			why = "connection closed without QUIT";
			continue;
		case LINE_TIMEOUT:
			why = s->login_by != 0 && s->state == ST_AUTH &&
			    proto_now_ms() >= s->login_by ? "login timeout" :
			    "idle timeout";
			continue;
		case LINE_INTR:
			if (cfg->stop != NULL && *cfg->stop)
				why = "server shutting down";
			continue;
		case LINE_ERROR:
			why = "read failed";
			continue;
		}
		first = 0;
		if (!s->replied) {
			log_warnx("internal: a command without a status line");
			reply(s, 0, "internal error");
			s->broken = 1;
		}
		s->bad = s->failed ? s->bad + 1 : 0;
		if (s->bad >= MAX_BAD_COMMANDS && s->pending) {
			/* Still the command's own line (an -ERR has no
			 * body): it says we close, no second line does. */
			static const char why_close[] =
			    " (too many bad commands, closing)\r\n";
			char own[sizeof(s->status)];
			int l = (int)strlen(s->status) - 2;

			if (l > (int)(sizeof(own) - sizeof(why_close)))
				l = sizeof(own) - sizeof(why_close);
			memcpy(own, s->status, l);
			snprintf(s->status, sizeof(s->status), "%.*s%s", l,
			    own, why_close);
		}
		status_out(s);
		if (s->bad >= MAX_BAD_COMMANDS)
			why = "too many bad commands";
		else if (s->quit)
			why = "quit";
		else if (s->hangup)
			why = "too many failed logins";
		else if (s->broken)
			why = "connection broken";
	}
	return why;
}

/* The last flush, the log line, TLS closed, s freed. */
static void
session_end(struct session *s, const char *why)
{
	writer_flush(&s->out);
	if (s->out.failed)
		why = s->out.err == ETIMEDOUT ? "write timeout" : "write failed";
	log_info("session end: %s: %s, %zu retrieved, %zu deleted, "
	    "%llu bytes sent", s->peer->text, why, s->nretr, s->ndele,
	    (unsigned long long)s->out.total);
	tls_end(&s->io);
	session_free(s);
}

void
session_run(int rfd, int wfd, const struct session_cfg *cfg,
    const struct peer *peer)
{
	struct session *s;
	const char *why;

	if ((s = session_new(rfd, wfd, cfg, peer)) == NULL)
		return;
	if (cfg->users != NULL && cfg->login_timeout > 0)
		s->login_by = proto_now_ms() + cfg->login_timeout * 1000LL;
	if (cfg->tls_wrap) {
		char err[256];

		if (tls_accept(cfg->tls, &s->io, TLS_HANDSHAKE_TIMEOUT * 1000,
		    err, sizeof(err)) < 0) {
			log_info("session %s: %s", peer->text, err);
			free(s);
			return;
		}
		s->tls_on = 1;
	}
	log_info("session start: %s%s%s", peer->text, s->tls_on ? " " : "",
	    s->tls_on ? tls_describe(&s->io) : "");

	writer_printf(&s->out, "+OK pop3d ready\r\n");
	why = session_loop(s);
	if (s->handed) {
		/* The monitor answers the login and logs the end. */
		if (writer_flush(&s->out) == 0)
			cfg->hand_over(cfg, &s->io, &s->in, s->tls_on,
			    s->out.total);
		tls_end(&s->io);
		session_free(s);
		return;
	}
	session_end(s, why);
}

void
session_resume(int rfd, int wfd, const struct session_cfg *cfg,
    const struct peer *peer, const struct session_grant *g)
{
	struct session *s;
	const char *why = "cannot open the maildrop";

	if ((s = session_new(rfd, wfd, cfg, peer)) == NULL)
		return;
	snprintf(s->user, sizeof(s->user), "%s", g->user);
	snprintf(s->maildrop, sizeof(s->maildrop), "%s", g->maildrop);
	s->tls_on = g->tls_on;
	s->out.total = g->sent;
	s->store = g->store;
	s->relay = g->relay;
	reader_push(&s->in, g->buf, g->nbuf);
	if (logged_in(s, s->user) == 0)
		why = NULL;
	status_out(s);
	/* A login that fails here is not tried again in this process:
	 * the -ERR closes the session (RFC 1939 allows it). */
	if (why == NULL)
		why = session_loop(s);
	session_end(s, why);
}
