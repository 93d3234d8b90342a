/*
 * users.c: the user database (see users.h).  Passwords are checked with
 * libcrypt's crypt_r(); they are never logged and the caller clears them.
 */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "users.h"

#define USERS_LINE_MAX	1024	/* longer lines are malformed */
#define NAME_MAX_LEN	64

/* A yescrypt hash of a random password: what an unknown name is checked
 * against when the users file has no usable hash to copy the cost of. */
static const char dummy_hash[] =
    "$y$j9T$LJ7K27bjK0/9Dq7KsJ75D.$MPGK3R3Q1lHWhpidN2hGIUnjXMRaOME7Ztj5Op6Osz3";

int
users_valid_name(const char *name)
{
	size_t n = strlen(name), i;

	if (n == 0 || n > NAME_MAX_LEN || name[0] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = name[i];

		if (c <= 0x20 || c >= 0x7f || c == '/' || c == ':')
			return 0;
	}
	return 1;
}

/* Constant-time comparison of two NUL-terminated strings. */
static int
same(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i;
	unsigned char d = la != lb;

	for (i = 0; i < la && i < lb; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

static int
hash_matches(const char *password, const char *hash)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *r;
	int ok;

	if (cd == NULL)
		return 0;
	r = crypt_r(password, hash, cd);
	ok = r != NULL && r[0] != '*' && same(r, hash);
	explicit_bzero(cd, sizeof(*cd));
	free(cd);
	return ok;
}

enum users_line
users_parse_line(char *line, struct users_entry *e)
{
	char *colon, *colon2;

	line[strcspn(line, "\r\n")] = '\0';
	if (line[0] == '\0' || line[0] == '#')
		return USERS_LINE_SKIP;
	if ((colon = strchr(line, ':')) == NULL || colon[1] == '\0' ||
	    colon[1] == ':')
		return USERS_LINE_MALFORMED;
	*colon = '\0';
	if (!users_valid_name(line))
		return USERS_LINE_BADNAME;
	if ((colon2 = strchr(colon + 1, ':')) != NULL)
		*colon2++ = '\0';
	e->name = line;
	e->hash = colon + 1;
	e->maildrop = colon2 != NULL && *colon2 != '\0' ? colon2 : NULL;
	return USERS_LINE_ENTRY;
}

enum users_result
users_check(const char *file, const char *name, const char *password,
    const char *base, char *maildrop, size_t len)
{
	char line[USERS_LINE_MAX + 2], *hash = NULL, *drop = NULL;
	char *model = NULL;
	int lineno = 0, found = 0, ok;
	FILE *f;

	if ((f = fopen(file, "re")) == NULL) {
		log_warn("users file %s", file);
		return USERS_ERROR;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t n = strlen(line);
		struct users_entry e;

		lineno++;
		if (n > 0 && line[n - 1] != '\n' && !feof(f)) {
			int c;

			log_warnx("%s:%d: line too long, skipped", file, lineno);
			while ((c = getc(f)) != EOF && c != '\n')
				;
			continue;
		}
		switch (users_parse_line(line, &e)) {
		case USERS_LINE_SKIP:
			continue;
		case USERS_LINE_MALFORMED:
			log_warnx("%s:%d: malformed line, skipped", file, lineno);
			continue;
		case USERS_LINE_BADNAME:
			log_warnx("%s:%d: bad user name, skipped", file, lineno);
			continue;
		case USERS_LINE_ENTRY:
			break;
		}
		if (strcmp(e.name, name) != 0) {
			/*
			 * An unknown name is checked against the first real
			 * hash of the file: the same algorithm and cost as
			 * the entries, so its time tells nothing.
			 */
			if (model == NULL && e.hash[0] == '$')
				model = strdup(e.hash);
			continue;
		}
		hash = strdup(e.hash);
		drop = e.maildrop ? strdup(e.maildrop) : NULL;
		found = 1;
		break;
	}
	if (ferror(f)) {
		log_warn("users file %s", file);
		fclose(f);
		free(hash);
		free(drop);
		free(model);
		return USERS_ERROR;
	}
	fclose(f);
	explicit_bzero(line, sizeof(line));

	ok = hash_matches(password, found && hash ? hash :
	    model != NULL ? model : dummy_hash) && found;
	free(model);
	if (ok) {
		int k = drop ? snprintf(maildrop, len, "%s", drop) :
		    base == NULL ? snprintf(maildrop, len, "%s", "") :
		    snprintf(maildrop, len, "%s/%s", base, name);

		if (k < 0 || (size_t)k >= len)
			ok = 0;
	}
	free(hash);
	free(drop);
	return ok ? USERS_OK : USERS_FAIL;
}

int
users_maildrops(const char *file, int (*fn)(const char *, void *), void *arg)
{
	char line[USERS_LINE_MAX + 2], *f2, *f3;
	int r = 0;
	FILE *f;

	if ((f = fopen(file, "re")) == NULL)
		return log_warn("users file %s", file);
	while (r == 0 && fgets(line, sizeof(line), f) != NULL) {
		size_t n = strlen(line);

		if (n > 0 && line[n - 1] != '\n' && !feof(f)) {
			int c;

			/* Too long: malformed, skipped (users_check says so). */
			while ((c = getc(f)) != EOF && c != '\n')
				;
			continue;
		}
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || (f2 = strchr(line, ':')) == NULL ||
		    (f3 = strchr(f2 + 1, ':')) == NULL || f3[1] == '\0')
			continue;
		*f2 = '\0';
		if (users_valid_name(line))
			r = fn(f3 + 1, arg);
	}
	if (ferror(f) && r == 0)
		r = log_warn("users file %s", file);
	fclose(f);
	explicit_bzero(line, sizeof(line));
	return r;
}
