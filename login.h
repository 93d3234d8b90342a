/*
 * login.h: a session with a user database in two processes (privilege
 * separation, the shape of popa3d and of Dovecot's login processes).
 *
 * The login process, forked for the connection and confined to no file
 * at all, parses everything the client sends before a login: the TLS
 * handshake, STLS, the commands.  It asks its parent, the monitor, to
 * check each name and password; the monitor reads the users file, keeps
 * the failure delays and penalties, and answers.  Once a login is right
 * the monitor opens the user's maildrop, narrows its own confinement to
 * it and serves the rest of the session: on the connection itself when
 * it is plain (the login process is ended first), or through the login
 * process, which keeps the TLS state and relays, when it is TLS.
 */
#ifndef LOGIN_H
#define LOGIN_H

#include "session.h"

/*
 * Serve one connection on rfd/wfd for peer with cfg->users set, in the
 * monitor: the caller has confined it (session_confine), read the PROXY
 * header and admitted the peer.  Returns when the session is over and
 * the login process has ended; closes nothing of the caller's.
 */
void	login_session(int rfd, int wfd, const struct session_cfg *cfg,
	    const struct peer *peer);

#endif
