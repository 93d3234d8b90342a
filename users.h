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

/*
 * Check name and password against file.  On USERS_OK, maildrop receives
 * the user's maildrop: the third field if given, else base/name.  An
 * unknown name costs a hash computation like a known one.
 */
enum users_result users_check(const char *file, const char *name,
	    const char *password, const char *base, char *maildrop,
	    size_t len);

#endif
