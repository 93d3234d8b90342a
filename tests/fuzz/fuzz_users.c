/*
 * fuzz_users.c: libFuzzer harness for the two parsers of a login.
 *
 * The users-file parser (users.c users_parse_line): each line of the
 * input parsed as the file's lines are, and the result checked against the
 * format "name:hash[:maildrop]": an entry has a valid name, a non-empty
 * hash without ':', no CR or LF anywhere, points into the line, and joins
 * back into the line as it was (up to the first CR or LF, an empty
 * maildrop field dropped); every other verdict is checked against the
 * reason it gives.
 *
 * The SASL PLAIN decoder (auth.c auth_plain_decode), fed the first line
 * as a response: on success authcid and password point into the buffer,
 * the authzid was empty or the same name, and nothing of the base64 text
 * is left after the decoded bytes; on failure there is a reason and the
 * whole buffer is wiped (it may have held a password).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "params.h"
#include "users.h"

static int
inside(const char *p, const char *buf, size_t len)
{
	return p >= buf && p <= buf + len && memchr(p, '\0',
	    buf + len + 1 - p) != NULL;
}

static void
check_line(const char *src, size_t n)
{
	struct users_entry e;
	enum users_line v;
	char *line, *join;
	size_t cut, jl;

	if ((line = malloc(n + 1)) == NULL || (join = malloc(n + 3)) == NULL)
		abort();
	memcpy(line, src, n);
	line[n] = '\0';
	/* The line as the parser should see it: up to the first CR or LF,
	 * or the first NUL (fgets gives a string). */
	cut = strcspn(line, "\r\n");
	memset(&e, 0, sizeof(e));
	v = users_parse_line(line, &e);
	switch (v) {
	case USERS_LINE_SKIP:
		if (cut != 0 && src[0] != '#')
			abort();
		break;
	case USERS_LINE_MALFORMED: {
		const char *colon = memchr(src, ':', cut);

		if (cut == 0 || src[0] == '#' || (colon != NULL &&
		    colon + 1 < src + cut && colon[1] != ':'))
			abort();
		break;
	}
	case USERS_LINE_BADNAME: {
		const char *colon = memchr(src, ':', cut);
		char name[80];
		size_t nl;

		if (colon == NULL)
			abort();
		nl = colon - src;
		if (nl < sizeof(name)) {
			memcpy(name, src, nl);
			name[nl] = '\0';
			if (users_valid_name(name))
				abort();
		}
		break;
	}
	case USERS_LINE_ENTRY:
		if (!inside(e.name, line, n) || !inside(e.hash, line, n) ||
		    (e.maildrop != NULL && !inside(e.maildrop, line, n)))
			abort();
		if (!users_valid_name(e.name) || e.hash[0] == '\0' ||
		    strchr(e.hash, ':') != NULL ||
		    (e.maildrop != NULL && e.maildrop[0] == '\0'))
			abort();
		if (strpbrk(e.name, "\r\n") || strpbrk(e.hash, "\r\n") ||
		    (e.maildrop != NULL && strpbrk(e.maildrop, "\r\n")))
			abort();
		jl = strlen(e.name) + 1 + strlen(e.hash) +
		    (e.maildrop ? 1 + strlen(e.maildrop) : 0);
		if (jl > n)
			abort();
		strcpy(join, e.name);
		strcat(join, ":");
		strcat(join, e.hash);
		if (e.maildrop != NULL) {
			strcat(join, ":");
			strcat(join, e.maildrop);
		}
		if (!(jl == cut && memcmp(join, src, cut) == 0) &&
		    !(e.maildrop == NULL && jl + 1 == cut &&
		    memcmp(join, src, jl) == 0 && src[jl] == ':'))
			abort();
		break;
	default:
		abort();
	}
	free(join);
	free(line);
}

static void
check_plain(const char *src, size_t n)
{
	char buf[SASL_LINE_MAX + 1], *authc = NULL, *pass = NULL;
	const char *why = NULL;
	size_t len, i;

	if (n > SASL_LINE_MAX)
		n = SASL_LINE_MAX;
	memcpy(buf, src, n);
	buf[n] = '\0';
	len = strlen(buf);
	if (auth_plain_decode(buf, &authc, &pass, &why) < 0) {
		if (why == NULL || why[0] == '\0')
			abort();
		for (i = 0; i < len; i++)
			if (buf[i] != '\0')
				abort();
		return;
	}
	if (authc == NULL || pass == NULL || authc <= buf || pass <= authc ||
	    pass > buf + len || pass + strlen(pass) > buf + len)
		abort();
	/* authzid NUL authcid NUL password NUL, the rest wiped. */
	if (authc[-1] != '\0' || pass[-1] != '\0' ||
	    pass - 1 != authc + strlen(authc))
		abort();
	if (buf[0] != '\0' && strcmp(buf, authc) != 0)
		abort();
	for (i = pass + strlen(pass) - buf; i < len; i++)
		if (buf[i] != '\0')
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *first = memchr(p, '\n', size);

	check_plain(p, first ? (size_t)(first - p) : size);

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t n = (nl ? nl + 1 : end) - p;
		const char *z = memchr(p, '\0', n);

		/* fgets stops at nothing but LF; strlen then stops at a NUL. */
		check_line(p, z ? (size_t)(z - p) : n);
		p += n;
	}
	return 0;
}
