/*
 * fuzz_users.c: libFuzzer harness for the users-file parser (users.c
 * users_parse_line), each line of the input parsed as the file's lines
 * are, and the result checked against the format "name:hash[:maildrop]":
 * an entry has a valid name, a non-empty hash without ':', no CR or LF
 * anywhere, points into the line, and joins back into the line as it was
 * (up to the first CR or LF, an empty maildrop field dropped); every other
 * verdict is checked against the reason it gives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;

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
