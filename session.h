/*
 * session.h: one POP3 session (RFC 1939 states, commands, replies) on a
 * connected pair of file descriptors.  Every way of starting pop3d ends in
 * session_run(); it reaches mail only through store.h.
 */
#ifndef SESSION_H
#define SESSION_H

#include <sys/socket.h>
#include <sys/types.h>

#include <limits.h>
#include <signal.h>
#include <stdint.h>

#include "store.h"

struct peer;
struct pio;
struct proxy_nets;
struct reader;
struct tls_ctx;
struct source_table;

struct session_cfg {
	const char		*maildrop;	/* or the users' base folder */
	const char		*users;		/* user database; NULL: open */
	struct tls_ctx		*tls;		/* STLS and --tls when set */
	int			 tls_wrap;	/* TLS from the first byte */
	int			 allow_plaintext; /* passwords without TLS */
	struct store_opts	 store;
	struct source_table	*sources;	/* per-source state (penalties);
						 * NULL: none */
	int			 timeout;	/* idle seconds: to a whole
						 * command line, and per write */
	int			 login_timeout;	/* with users: seconds from
						 * the connection to a login */
	/* --proxy-from: sources that must send a PROXY header; NULL: off. */
	const struct proxy_nets	*proxy_from;
	int			 sandbox;	/* sandbox_probe(): what confines */
	const char		*index_path;	/* the index folder, for the
						 * sandbox; NULL: none */
	/* Set by a signal handler: end the session at the next wait. */
	volatile sig_atomic_t	*stop;
	/*
	 * Set in a login process (login.c) only: check a name and password
	 * through the monitor (an enum auth_result, the password wiped; with
	 * AUTH_OK, refused is the -ERR text when the user's maildrop cannot
	 * be opened, "" when it is open; -1: no monitor), and hand a
	 * logged-in session over to it (with TLS, relaying the
	 * connection until the session ends).  NULL: auth_login() here,
	 * and the session goes on here.
	 */
	int	(*check)(const struct session_cfg *, const struct peer *,
		    const char *name, char *password, uint64_t since_ns,
		    char *refused, size_t len);
	void	(*hand_over)(const struct session_cfg *, struct pio *io,
		    struct reader *in, int tls_on, uint64_t sent);
	int			 link;		/* their socket */
	/* Descriptors a login process must not keep (the listener's
	 * sockets, its report pipe); -1 ends the list. */
	const int		*close_fds;
};

/*
 * The client of a session, determined once per connection before the
 * greeting: from the socket, or from a PROXY protocol header.  Every rule
 * about the client (plaintext passwords, limits per source, login
 * penalties) and every log line use this, never the fd.
 */
struct peer {
	struct sockaddr_storage addr;	/* AF_UNSPEC when none (pipe, tty) */
	socklen_t	 addrlen;
	char		 text[64];	/* for logs: "192.0.2.1:4711",
					 * "[2001:db8::1]:4711", "local" */
	int		 local;		/* loopback, or not a socket: the
					 * plaintext-password rule */
	int		 tls;		/* the client used TLS before reaching
					 * us (a proxy said so) */
};

/*
 * Fill p from the peer of fd (getpeername); when fd is no network socket,
 * p has no address, is local and its text is $REMOTE_HOST (xinetd) or
 * "local".
 */
void	peer_from_fd(struct peer *p, int fd);

/* Fill p from the address sa (len bytes): text and local follow from it;
 * tls is cleared. */
void	peer_from_addr(struct peer *p, const struct sockaddr *sa,
	    socklen_t len);

/*
 * Confine the calling process (sandbox.h) before the first byte of a
 * client is read: to the maildrop in the open mode (a listener worker
 * once, as all its sessions serve it), else to what a login may need
 * (the users file, the maildrops), narrowed further at the login.
 * 0, or -1 after a log line: the session must not be served then.
 */
int	session_confine(const struct session_cfg *cfg);

/*
 * Serve one session: greeting, commands until QUIT, EOF, timeout, too many
 * errors or *cfg->stop; UPDATE only after QUIT.  peer is the client (see
 * struct peer).  With cfg->tls_wrap the TLS handshake comes first.
 * Returns when the session is over; closes nothing.
 */
void	session_run(int rfd, int wfd, const struct session_cfg *cfg,
	    const struct peer *peer);

/* A login checked by the monitor of a login process (login.c). */
struct session_grant {
	char		 user[65];
	char		 maildrop[PATH_MAX];	/* the users file's; "": the
						 * user's folder in MAILDROP */
	struct store	*store;		/* opened by session_open() */
	int		 tls_on;	/* the client talks TLS to the login
					 * process, which relays */
	pid_t		 relay;		/* that process; -1: none */
	uint64_t	 sent;		/* bytes the login process sent */
	const char	*buf;		/* input read, not served yet */
	size_t		 nbuf;		/* at most RBUF_SIZE */
};

/*
 * The monitor, after a right password: open the maildrop of user (the
 * users file's path maildrop, or "").  NULL with *why the -ERR text.
 */
struct store *session_open(const struct session_cfg *cfg, const char *user,
	    const char *maildrop, const char **why);

/*
 * Go on with a session whose login g the monitor checked and whose
 * maildrop it opened: confine to it, answer the login command, then
 * serve the TRANSACTION state on rfd/wfd (the connection, or the login
 * process's relay).  Takes g->store.
 */
void	session_resume(int rfd, int wfd, const struct session_cfg *cfg,
	    const struct peer *peer, const struct session_grant *g);

#endif
