/*
 * users.h: the user database of pop3d, a text file of lines
 *	name:hash[:maildrop]
 * with hash in crypt(3) form (yescrypt, SHA-512-crypt, bcrypt, ...).  The
 * file is read at each login, so edits need no restart; a malformed line
 * is logged and skipped.  Used by the session code at PASS and AUTH.
 */
#ifndef USERS_H
#define USERS_H

#include <stddef.h>

enum users_result {
	USERS_OK,	/* name and password match; maildrop filled in */
	USERS_FAIL,	/* unknown name or wrong password (same cost) */
	USERS_ERROR	/* the file cannot be read; logged */
};

/* 1 when name is acceptable as a login and maildrop name: 1-64 printable
 * characters, no '/', ':' or space, not starting with '.'. */
int	users_valid_name(const char *name);

/* One entry of the file; the strings point into the parsed line. */
struct users_entry {
	char	*name;
	char	*hash;		/* never empty */
	char	*maildrop;	/* NULL when not given */
};

enum users_line {
	USERS_LINE_ENTRY,	/* e filled in */
	USERS_LINE_SKIP,	/* empty or a comment */
	USERS_LINE_MALFORMED,	/* no hash field */
	USERS_LINE_BADNAME	/* the name fails users_valid_name */
};

/*
 * Parse one line of the file in place (its CR and LF, if any, are cut
 * first): "name:hash[:maildrop]".  An empty maildrop field counts as none.
 */
enum users_line users_parse_line(char *line, struct users_entry *e);

/*
 * Check name and password against file.  On USERS_OK, maildrop receives
 * the user's maildrop: the third field if given, else base/name (with base
 * NULL: an empty string, for the caller to open name under its base).  An
 * unknown name costs a hash computation like a known one.
 */
enum users_result users_check(const char *file, const char *name,
	    const char *password, const char *base, char *maildrop,
	    size_t len);

/*
 * Call fn(maildrop, arg) for each third field of file, so that a sandbox
 * set up before a login can allow every maildrop a login may lead to.
 * 0, or -1 when the file cannot be read (logged) or fn returned -1.
 */
int	users_maildrops(const char *file, int (*fn)(const char *, void *),
	    void *arg);

#endif
