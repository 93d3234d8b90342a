/*
 * session.h: one POP3 session (RFC 1939 states, commands, replies) on a
 * connected pair of file descriptors.  Every way of starting pop3d ends in
 * session_run(); it reaches mail only through store.h.
 */
#ifndef SESSION_H
#define SESSION_H

#include <signal.h>

#include "store.h"

struct tls_ctx;

struct session_cfg {
	const char		*maildrop;	/* or the users' base folder */
	const char		*users;		/* user database; NULL: open */
	struct tls_ctx		*tls;		/* STLS and --tls when set */
	int			 tls_wrap;	/* TLS from the first byte */
	int			 allow_plaintext; /* passwords without TLS */
	struct store_opts	 store;
	int			 timeout;	/* idle seconds */
	/* Set by a signal handler: end the session at the next wait. */
	volatile sig_atomic_t	*stop;
};

/*
 * Serve one session: greeting, commands until QUIT, EOF, timeout, too many
 * errors or *cfg->stop; UPDATE only after QUIT.  peer names the client in
 * the log.  With cfg->tls_wrap the TLS handshake comes first.  Returns when the session is over; closes nothing.
 */
void	session_run(int rfd, int wfd, const struct session_cfg *cfg,
	    const char *peer);

#endif
