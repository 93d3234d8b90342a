/*
 * auth.c: the login policy of pop3d (see auth.h).
 *
 * Timing is the policy's core: a failed login is answered at an absolute
 * deadline on the monotonic clock, in nanoseconds, computed from the
 * moment the command arrived (AUTH_FAIL_DELAY_MS, or the peer's penalty
 * when longer), so neither the reply nor its time tells a wrong password
 * from an unknown name.  users.c makes the unknown name cost a hash check
 * of the same algorithm and cost as the users file's own entries.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "log.h"
#include "params.h"
#include "proto.h"
#include "source.h"
#include "users.h"

/* Sleep until the monotonic clock reads at least ns. */
static void
sleep_until(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ULL),
	    (long)(ns % 1000000000ULL) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
		;	/* EINTR: a signal; the deadline stands */
}

enum auth_result
auth_login(const struct session_cfg *cfg, const struct peer *peer,
    const char *name, char *password, uint64_t since_ns, char *maildrop,
    size_t len)
{
	enum users_result r;
	uint64_t answer, penalty;

	r = users_check(cfg->users, name, password, NULL, maildrop, len);
	explicit_bzero(password, strlen(password));
	if (r == USERS_OK) {
		source_login_ok(cfg->sources, peer);
		log_info("login %s from %s", name, peer->text);
		return AUTH_OK;
	}
	answer = since_ns + AUTH_FAIL_DELAY_MS * 1000000ULL;
	penalty = source_login_failed(cfg->sources, peer, since_ns);
	if (since_ns + penalty > answer)
		answer = since_ns + penalty;
	sleep_until(answer);
	if (users_valid_name(name))
		log_info("login failed for %s from %s", name, peer->text);
	else
		log_info("login failed for an invalid name from %s",
		    peer->text);
	return r == USERS_ERROR ? AUTH_ERROR : AUTH_FAIL;
}

static int
b64val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode base64 in place; length, or -1 when malformed. */
static long
b64decode(char *s)
{
	size_t i, n = strlen(s), o = 0;
	unsigned v = 0;
	int bits = 0, pad = 0;

	for (i = 0; i < n; i++) {
		int d;

		if (s[i] == '=') {
			pad++;
			continue;
		}
		if (pad || (d = b64val((unsigned char)s[i])) < 0)
			return -1;
		v = (v << 6) | d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			s[o++] = (v >> bits) & 0xff;
		}
	}
	if ((n % 4) != 0 || pad > 2)
		return -1;
	return o;
}

int
auth_plain_decode(char *resp, char **authcp, char **passp, const char **why)
{
	size_t len = strlen(resp);
	char *authz, *authc, *pass, *end;
	long n;

	if (strcmp(resp, "=") == 0)
		resp[0] = '\0';
	if ((n = b64decode(resp)) < 0) {
		*why = "invalid base64 in authentication";
		goto fail;
	}
	/* The base64 text after the decoded bytes spelled the password. */
	explicit_bzero(resp + n, len - n);
	end = resp + n;
	authz = resp;
	authc = memchr(authz, '\0', n);
	pass = authc ? memchr(authc + 1, '\0', end - authc - 1) : NULL;
	if (authc == NULL || pass == NULL ||
	    memchr(pass + 1, '\0', end - pass - 1) != NULL) {
		*why = "malformed PLAIN response";
		goto fail;
	}
	authc++;
	*end = '\0';
	pass++;
	if (*authz != '\0' && strcmp(authz, authc) != 0) {
		*why = "[AUTH] cannot act as another user";
		goto fail;
	}
	*authcp = authc;
	*passp = pass;
	return 0;
fail:
	explicit_bzero(resp, len);
	return -1;
}
