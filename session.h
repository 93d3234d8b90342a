/*
 * session.h: one POP3 session (RFC 1939 states, commands, replies) on a
 * connected pair of file descriptors.  Every way of starting pop3d ends in
 * session_run(); it reaches mail only through store.h.
 */
#ifndef SESSION_H
#define SESSION_H

#include <sys/socket.h>

#include <signal.h>

#include "store.h"

struct proxy_nets;
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

#endif
