/*
 * pop3d.c: main() of the POP3 server.  Reads the options, sets up logging
 * and signals, picks the mode and hands over:
 *
 *   pop3d [OPTIONS] PORT MAILDROP   own listener (worker pool)
 *   pop3d [OPTIONS] MAILDROP        sockets from systemd (Accept=no: pool;
 *                                   Accept=yes: one session), else one
 *                                   session on stdin/stdout (inetd, xinetd)
 */
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "index.h"
#include "listen.h"
#include "log.h"
#include "login.h"
#include "params.h"
#include "proto.h"
#include "proxy.h"
#include "sandbox.h"
#include "session.h"
#include "source.h"
#include "tls.h"

static const char usage_text[] =
"usage: pop3d [OPTIONS] PORT MAILDROP   serve MAILDROP on PORT\n"
"       pop3d [OPTIONS] MAILDROP        under systemd, xinetd or inetd\n"
"\n"
"  -t, --timeout SECONDS     idle timeout: to a whole command line, and for\n"
"                            each write (default 600)\n"
"  -L, --login-timeout SECONDS  with --users, time to log in (default 60)\n"
"  -m, --max-sessions N      sessions at once in listener modes (default 1000)\n"
"  -S, --max-per-source N    sessions at once from one address in listener\n"
"                            modes (default 32, loopback exempt; 0: no limit)\n"
"  -l, --layout LAYOUT       maildrop layout: flat, maildir or auto (default:\n"
"                            a Maildir if it holds cur/, new/ and tmp/)\n"
"  -o, --order ORDER         flat numbering: directory (default) or arrival\n"
"  -x, --exclusive           lock the maildrop for the whole session\n"
"  -w, --lock-wait SECONDS   with --exclusive, wait this long for the lock (5)\n"
"  -D, --delete-now          remove a message at DELE instead of at QUIT\n"
"  -M, --max-messages N      refuse maildrops with more messages (1000000)\n"
"  -u, --users FILE          user database (name:hash[:maildrop] lines);\n"
"                            maildrops default to MAILDROP/NAME\n"
"  -c, --tls-cert FILE       TLS certificate chain (PEM): enables STLS\n"
"  -k, --tls-key FILE        TLS private key (PEM)\n"
"  -T, --tls                 TLS from the first byte (POP3S, port 995)\n"
"  -P, --allow-plaintext     accept passwords without TLS off loopback\n"
"  -U, --user NAME           drop privileges to NAME after setting up\n"
"  -R, --proxy-from CIDR[,CIDR...]\n"
"                            require a PROXY protocol v1/v2 header from these\n"
"                            sources (HAProxy, nginx) and use its address\n"
"  -I, --index-dir DIR       keep maildrop indexes (sizes) in DIR; '' for\n"
"                            none (default: $CACHE_DIRECTORY, else\n"
"                            /var/cache/pop3d, else ~/.cache/pop3d)\n"
"      --no-sandbox          do not confine sessions (Landlock, seccomp)\n"
"  -h, --help                show this help\n"
"  -V, --version             show the version\n";

/* Long options without a letter. */
#define OPT_NO_SANDBOX	0x100

static const struct option longopts[] = {
	{ "timeout",		required_argument, NULL, 't' },
	{ "login-timeout",	required_argument, NULL, 'L' },
	{ "max-sessions",	required_argument, NULL, 'm' },
	{ "max-per-source",	required_argument, NULL, 'S' },
	{ "layout",		required_argument, NULL, 'l' },
	{ "order",		required_argument, NULL, 'o' },
	{ "exclusive",		no_argument,	   NULL, 'x' },
	{ "lock-wait",		required_argument, NULL, 'w' },
	{ "delete-now",		no_argument,	   NULL, 'D' },
	{ "max-messages",	required_argument, NULL, 'M' },
	{ "users",		required_argument, NULL, 'u' },
	{ "tls-cert",		required_argument, NULL, 'c' },
	{ "tls-key",		required_argument, NULL, 'k' },
	{ "tls",		no_argument,	   NULL, 'T' },
	{ "allow-plaintext",	no_argument,	   NULL, 'P' },
	{ "user",		required_argument, NULL, 'U' },
	{ "proxy-from",		required_argument, NULL, 'R' },
	{ "index-dir",		required_argument, NULL, 'I' },
	{ "no-sandbox",		no_argument,	   NULL, OPT_NO_SANDBOX },
	{ "help",		no_argument,	   NULL, 'h' },
	{ "version",		no_argument,	   NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

/* fd 2 may be the client's socket under inetd: print only when it is not. */
static int
stderr_is_safe(void)
{
	struct stat sb;

	return fstat(2, &sb) == 0 && !S_ISSOCK(sb.st_mode);
}

static void __attribute__((noreturn, format(printf, 2, 3)))
die(int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (stderr_is_safe())
		fprintf(stderr, "pop3d: %s\n", msg);
	log_init("pop3d", 0);
	log_warnx("%s", msg);
	exit(code);
}

static int
number_arg(const char *opt, const char *s, int min, int max)
{
	uint64_t v;

	if (proto_number(s, (uint64_t)max, &v) < 0 || v < (uint64_t)min)
		die(EX_USAGE, "%s: expected a number from %d to %d, got '%s'",
		    opt, min, max, s);
	return (int)v;
}

/* Become user name (groups too), for good. */
static void
drop_privileges(const char *name)
{
	struct passwd *pw;

	errno = 0;
	if ((pw = getpwnam(name)) == NULL)
		die(EX_NOUSER, "--user %s: no such user", name);
	if (getuid() == pw->pw_uid && geteuid() == pw->pw_uid &&
	    getgid() == pw->pw_gid && pw->pw_uid != 0)
		return;		/* started as that user already */
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 ||
	    setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
		die(EX_OSERR, "cannot become user %s: %s", name,
		    strerror(errno));
	if (pw->pw_uid != 0 && (setuid(0) == 0 || geteuid() == 0))
		die(EX_OSERR, "privileges of root still held after --user");
}

/* One session on a connection that is already there: who the peer is,
 * the PROXY header when the peer is a listed proxy, the session. */
static void
one_session(int rfd, int wfd, const struct session_cfg *cfg)
{
	struct peer peer;
	struct stat sb;
	int on = 1;

	/* On a TCP socket (xinetd, Accept=yes) avoid delayed-ACK stalls. */
	setsockopt(wfd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
	/*
	 * A socket is the client's alone here: make it non-blocking, so
	 * that every write has a deadline (a client that stops reading must
	 * not pin the process in write()).  A terminal or pipe is left as
	 * it is: it is shared with whoever started pop3d by hand.
	 */
	if (fstat(rfd, &sb) == 0 && S_ISSOCK(sb.st_mode) &&
	    fcntl(rfd, F_SETFL, fcntl(rfd, F_GETFL) | O_NONBLOCK) < 0)
		log_warn("O_NONBLOCK on the connection");
	if (wfd != rfd && fstat(wfd, &sb) == 0 && S_ISSOCK(sb.st_mode) &&
	    fcntl(wfd, F_SETFL, fcntl(wfd, F_GETFL) | O_NONBLOCK) < 0)
		log_warn("O_NONBLOCK on the connection");
	peer_from_fd(&peer, rfd);
	/* Confined before the first byte from the client (a PROXY header,
	 * TLS, commands) is parsed. */
	if (session_confine(cfg) < 0) {
		log_warnx("session %s: not served unconfined", peer.text);
		return;
	}
	if (listen_proxy(rfd, cfg, &peer) < 0)
		return;
	if (cfg->users != NULL)
		login_session(rfd, wfd, cfg, &peer);
	else
		session_run(rfd, wfd, cfg, &peer);
}

/* The stdio modes: one session, with a source table of its own. */
static void
stdio_session(int rfd, int wfd, const struct session_cfg *cfg)
{
	struct session_cfg scfg = *cfg;

	scfg.sources = source_new(1);
	one_session(rfd, wfd, &scfg);
	source_free(scfg.sources);
}

int
main(int argc, char *argv[])
{
	static volatile sig_atomic_t never;
	static struct proxy_nets proxy_from;
	struct session_cfg cfg;
	struct stat sb;
	const char *port = NULL, *cert = NULL, *key = NULL, *user = NULL;
	const char *index_dir = NULL;
	char index_path[PATH_MAX];
	char err[512];
	int fds[LISTEN_MAXFDS], nfds, conn, c, max_sessions = MAX_SESSIONS_DEFAULT;
	int max_per_source = -1, no_sandbox = 0;

	memset(&cfg, 0, sizeof(cfg));
	cfg.timeout = IDLE_TIMEOUT_DEFAULT;
	cfg.login_timeout = LOGIN_TIMEOUT_DEFAULT;
	cfg.store.order = STORE_ORDER_DIRECTORY;
	cfg.store.lock_wait = LOCK_WAIT_DEFAULT;
	cfg.store.max_messages = STORE_MAX_MESSAGES;
	cfg.stop = &never;

	while ((c = getopt_long(argc, argv, "t:L:m:S:l:o:xw:DM:u:c:k:TPU:R:I:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			cfg.timeout = number_arg("--timeout", optarg, 1, 86400);
			break;
		case 'L':
			cfg.login_timeout = number_arg("--login-timeout",
			    optarg, 1, 86400);
			break;
		case 'm':
			max_sessions = number_arg("--max-sessions", optarg, 1,
			    100000);
			break;
		case 'S':
			max_per_source = number_arg("--max-per-source", optarg,
			    0, 100000);
			break;
		case 'l':
			if (strcmp(optarg, "auto") == 0)
				cfg.store.layout = STORE_LAYOUT_AUTO;
			else if (strcmp(optarg, "flat") == 0)
				cfg.store.layout = STORE_LAYOUT_FLAT;
			else if (strcmp(optarg, "maildir") == 0)
				cfg.store.layout = STORE_LAYOUT_MAILDIR;
			else
				die(EX_USAGE, "--layout: expected 'flat', "
				    "'maildir' or 'auto', got '%s'", optarg);
			break;
		case 'o':
			if (strcmp(optarg, "arrival") == 0)
				cfg.store.order = STORE_ORDER_ARRIVAL;
			else if (strcmp(optarg, "directory") == 0)
				cfg.store.order = STORE_ORDER_DIRECTORY;
			else
				die(EX_USAGE, "--order: expected 'directory' or "
				    "'arrival', got '%s'", optarg);
			break;
		case 'x':
			cfg.store.exclusive = 1;
			break;
		case 'w':
			cfg.store.lock_wait = number_arg("--lock-wait", optarg,
			    0, 3600);
			break;
		case 'D':
			cfg.store.delete_now = 1;
			break;
		case 'M':
			cfg.store.max_messages = number_arg("--max-messages",
			    optarg, 1, STORE_MAX_MESSAGES);
			break;
		case 'u':
			cfg.users = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 'T':
			cfg.tls_wrap = 1;
			break;
		case 'P':
			cfg.allow_plaintext = 1;
			break;
		case 'U':
			user = optarg;
			break;
		case 'R':
			if (proxy_nets_parse(&proxy_from, optarg, err,
			    sizeof(err)) < 0)
				die(EX_USAGE, "%s", err);
			cfg.proxy_from = &proxy_from;
			break;
		case 'I':
			index_dir = optarg;
			break;
		case OPT_NO_SANDBOX:
			no_sandbox = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return EX_OK;
		case 'V':
			printf("pop3d %s\n", POP3D_VERSION);
			return EX_OK;
		default:
			if (stderr_is_safe())
				fputs(usage_text, stderr);
			return EX_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 2) {
		port = argv[0];
		number_arg("PORT", port, 1, 65535);
		cfg.maildrop = argv[1];
	} else if (argc == 1) {
		cfg.maildrop = argv[0];
	} else {
		die(EX_USAGE, "expected PORT MAILDROP or MAILDROP "
		    "(pop3d --help for more)");
	}
	if (stat(cfg.maildrop, &sb) < 0)
		die(EX_NOINPUT, "maildrop %s: %s", cfg.maildrop, strerror(errno));
	if (!S_ISDIR(sb.st_mode))
		die(EX_NOINPUT, "maildrop %s: not a directory", cfg.maildrop);
	if (cfg.users == NULL &&
	    store_layout_of(cfg.maildrop, cfg.store.layout) < 0)
		die(EX_NOINPUT, "maildrop %s: %s", cfg.maildrop,
		    errno == ENOTDIR ? "not a Maildir (cur/, new/ and tmp/)" :
		    strerror(errno));

	if ((cert == NULL) != (key == NULL))
		die(EX_USAGE, "--tls-cert and --tls-key go together");
	if (cfg.tls_wrap && cert == NULL)
		die(EX_USAGE, "--tls needs --tls-cert and --tls-key");
	if (cert != NULL &&
	    (cfg.tls = tls_server_new(cert, key, err, sizeof(err))) == NULL)
		die(EX_CONFIG, "%s", err);
	if (cfg.users != NULL && access(cfg.users, R_OK) < 0)
		die(EX_NOINPUT, "users file %s: %s", cfg.users, strerror(errno));

	signal(SIGPIPE, SIG_IGN);

	log_init("pop3d", stderr_is_safe());	/* the reason below */
	if ((nfds = listen_systemd(fds, LISTEN_MAXFDS, &conn)) < 0)
		die(EX_USAGE, "unusable sockets passed by systemd");
	if (nfds == 0 && conn < 0 && port != NULL) {
		log_init("pop3d", 1);
		if ((nfds = listen_port(port, fds, LISTEN_MAXFDS)) < 0)
			return EX_OSERR;
	}
	/* Sockets bound and key read: now give up root, before any client. */
	if (user != NULL)
		drop_privileges(user);
	if (geteuid() == 0) {
		if (cfg.users != NULL)
			die(EX_USAGE, "refusing to serve a user database as root: "
			    "use --user NAME");
		log_init("pop3d", port != NULL && nfds > 0);
		log_warnx("running as root; consider --user NAME");
	}
	/* As the user that serves: the index is written as that user. */
	cfg.store.index_fd = index_dir_open(index_dir, index_path,
	    sizeof(index_path));
	if (cfg.store.index_fd >= 0)
		cfg.index_path = index_path;
	cfg.sandbox = sandbox_probe(no_sandbox);
	if (conn >= 0) {
		log_init("pop3d", 0);
		stdio_session(conn, conn, &cfg);
		c = EX_OK;
	} else if (nfds > 0) {
		log_init("pop3d", port != NULL);
		c = listen_run(fds, nfds, &cfg, max_sessions,
		    max_per_source);
	} else {
		log_init("pop3d", 0);
		stdio_session(0, 1, &cfg);
		c = EX_OK;
	}
	tls_free(cfg.tls);
	return c;
}
