/*
 * listen.h: the listener modes of pop3d.  Own sockets on a port, or the
 * sockets systemd passed; a pool of pre-forked workers, each accepting one
 * connection at a time and running session_run() on it.  The only file
 * that talks to libsystemd.
 */
#ifndef LISTEN_H
#define LISTEN_H

#include "session.h"

#define LISTEN_MAXFDS	16

/*
 * Sockets passed by systemd (LISTEN_FDS).  Returns the number of listening
 * sockets stored in fds, 0 when nothing was passed, -1 after logging a
 * passed fd that is not a stream socket.  When systemd passed one connected
 * socket (Accept=yes), returns 0 and sets *conn to it; else *conn = -1.
 */
int	listen_systemd(int *fds, int max, int *conn);

/* Bind and listen on port for IPv6 and IPv4.  Count of sockets, or -1. */
int	listen_port(const char *port, int *fds, int max);

/*
 * Serve connections on fds with the worker pool until SIGTERM or SIGINT.
 * At most max_sessions at once; one more gets -ERR [SYS/TEMP] and a
 * close.  At most max_per_source of them from one address (< 0: the
 * default, which spares loopback peers); one more gets -ERR [SYS/TEMP] and
 * a close.  Returns the exit status.
 */
int	listen_run(const int *fds, int nfds, const struct session_cfg *cfg,
	    int max_sessions, int max_per_source);

/*
 * The PROXY protocol step, between peer_from_fd() and anything else: with
 * cfg->proxy_from set and peer one of its sources, read its v1 or v2
 * header (nothing after it) within PROXY_TIMEOUT seconds (at most the idle
 * timeout) and make *peer the client it names; from any other peer, refuse
 * a header that has already arrived.  0 to go on, or -1 after one log
 * line: the caller closes the connection without a word.
 */
int	listen_proxy(int fd, const struct session_cfg *cfg, struct peer *peer);

#endif
