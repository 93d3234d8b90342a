/*
 * maildir.h: the Maildir layout (cur/, new/, tmp/), as delivery agents
 * write it and IMAP servers read it.  Used by store.c only; knows
 * directories and names, not messages' contents nor sessions.
 *
 * A message is a regular file of new/ or cur/ whose name does not begin
 * with a dot; tmp/ holds files being written and is never looked at.  A
 * name is "BASE" or "BASE:2,FLAGS"; the base never changes (delivery
 * makes it unique), the flags after ':' change when a reader marks the
 * message seen, replied, trashed, so a file is found again by its base.
 */
#ifndef MAILDIR_H
#define MAILDIR_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Where a message lies. */
enum maildir_sub {
	MAILDIR_NEW = 0,
	MAILDIR_CUR = 1
};

struct maildir {
	int	fd[2];		/* new/ and cur/, by enum maildir_sub */
};

/*
 * 1 when dirfd holds the directories cur, new and tmp (symlinks are not
 * followed), 0 when it does not, -1 on a system error (logged).
 */
int	maildir_detect(int dirfd);

/* Open new/ and cur/ under the Maildir dirfd.  0, or -1 (logged). */
int	maildir_open(struct maildir *md, int dirfd);
void	maildir_close(struct maildir *md);

/* 1 when name in new/ or cur/ may be a message: not "", no leading dot. */
int	maildir_is_msg_name(const char *name);

/* Length of the base of name: the part before the first ':'. */
size_t	maildir_base_len(const char *name);

/*
 * The wire size Dovecot writes into the base of a name (",W=N"): 1 with
 * *size set, else 0.  A claim of the name's, to be confirmed.
 */
int	maildir_wsize(const char *name, uint64_t *size);

/*
 * The name name would have in cur/: name with ":2," appended, or name as
 * it is when it has an info part (a ':') already.  0, or -1 when buf is too
 * small.
 */
int	maildir_cur_name(const char *name, char *buf, size_t bufsz);

/*
 * Move name from new/ to cur/ (renameat2 with RENAME_NOREPLACE, so a file
 * of cur/ is never overwritten and only one of several concurrent readers
 * wins), under its cur/ name (maildir_cur_name), written into buf.
 * 1 moved; 0 gone from new/ (someone else moved or removed it); -1 not
 * moved, with errno (EEXIST: a file of that name is in cur/ already).
 */
int	maildir_move(struct maildir *md, const char *name, char *buf,
	    size_t bufsz);

/*
 * Delivery-time order of two messages: the leading decimal timestamp of
 * the names (what every delivery agent puts first; a name without one
 * counts as its mtime's second), then the mtime, then the base name, then
 * the whole name.  Returns <0, 0, >0 like strcmp.
 */
int	maildir_order(const char *a, const struct timespec *amtime,
	    const char *b, const struct timespec *bmtime);

/*
 * The names of one directory, sorted by base, read in one pass, to find
 * files again by base name after a reader changed their flags.
 */
struct maildir_names;

/* Read dirfd's message names.  NULL on error (logged). */
struct maildir_names *maildir_names_read(int dirfd);
void	maildir_names_free(struct maildir_names *);
/*
 * The current name in nm of the file whose base is that of name (the
 * name itself when it is still there), or NULL when none has that base.
 */
const char *maildir_names_find(const struct maildir_names *nm,
	    const char *name);

#endif
