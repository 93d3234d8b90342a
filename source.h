/*
 * source.h: state kept per source address and shared by the processes of
 * a listener: how many sessions each address holds (--max-per-source).
 * The table lives in a shared mapping made before the workers fork; each
 * worker owns one seat in it, so the master can release the seat of a
 * worker that died in the middle of a session.  Called by listen.c once
 * the connection's peer is final (after any PROXY header).
 */
#ifndef SOURCE_H
#define SOURCE_H

#include <stdint.h>

#include "session.h"

struct source_table;

/*
 * A table for up to seats sessions at once, shared with every process
 * forked after this call.  NULL after logging.
 */
struct source_table *source_new(int seats);
void	source_free(struct source_table *t);
/* Drop this process's view of t (a login process must not reach it);
 * the others keep using it. */
void	source_forget(struct source_table *t);

/*
 * Take seat for a session of peer, unless peer's address already holds
 * limit sessions (limit <= 0: no limit).  0 when admitted, -1 when the
 * address is over its limit (the seat stays free).  A peer without an
 * address (AF_UNSPEC) is always admitted.
 */
int	source_admit(struct source_table *t, int seat, const struct peer *peer,
	    int limit);

/* Give seat back: the session ended, or its worker died. */
void	source_release(struct source_table *t, int seat);

/*
 * Record a failed login from peer at now_ns (monotonic) and return the
 * penalty its answer must wait, in nanoseconds: 0 for the first failure,
 * then LOGIN_PENALTY_FIRST doubling up to LOGIN_PENALTY_MAX while
 * failures keep coming within LOGIN_PENALTY_FORGET seconds.  Peers
 * without an address and loopback peers get none.
 */
uint64_t source_login_failed(struct source_table *t, const struct peer *peer,
	    uint64_t now_ns);

/* A login from peer succeeded: forget its failures. */
void	source_login_ok(struct source_table *t, const struct peer *peer);

#endif
