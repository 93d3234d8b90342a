/*
 * auth.h: the login policy of pop3d, on top of users.c (the users file and
 * crypt).  One check of a name and password for a peer, answered no sooner
 * than the failure delay and the peer's penalty allow; and the decoding of
 * SASL PLAIN responses (RFC 4616).  Called by session.c for USER/PASS and
 * AUTH PLAIN; the session writes the replies.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "session.h"

enum auth_result {
	AUTH_OK,	/* logged in; maildrop filled in */
	AUTH_FAIL,	/* unknown name or wrong password: the same answer */
	AUTH_ERROR	/* the users file cannot be read; logged */
};

/*
 * Check name and password (wiped here) against cfg->users for peer.  A
 * failure returns no sooner than AUTH_FAIL_DELAY_MS after since_ns (the
 * monotonic time the command arrived), nor before the peer's penalty for
 * repeated failures (cfg->sources) has passed; an unknown name costs a
 * real hash check like a known one.  On AUTH_OK, maildrop receives the
 * maildrop the users file names for the user, or "" for the default,
 * name under cfg->maildrop.  Logs the outcome.
 */
enum auth_result auth_login(const struct session_cfg *cfg,
	    const struct peer *peer, const char *name, char *password,
	    uint64_t since_ns, char *maildrop, size_t len);

/*
 * Decode an AUTH PLAIN response in place: base64 of authzid NUL authcid
 * NUL password.  0 with *authc and *password pointing into resp; else -1
 * with *why the reason for the -ERR.  An authzid other than the authcid
 * is refused.
 */
int	auth_plain_decode(char *resp, char **authc, char **password,
	    const char **why);

#endif
