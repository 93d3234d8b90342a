/*
 * store.h: the maildrop, a directory in which every regular file is one
 * message (flat), or a Maildir whose messages are the files of new/ and
 * cur/ (maildir.h).  Used by the session code; never sees a socket, only
 * the buffered writer of proto.h that RETR and TOP stream into.
 *
 * A store is a snapshot taken when the session enters TRANSACTION: message
 * numbers 1..n are fixed then and never change.  Each message remembers the
 * identity of its file (device, inode, size, mtime) and is re-checked
 * before it is served or removed, so a file that vanished or was replaced
 * is never served wrongly nor removed by mistake.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

enum store_order {
	STORE_ORDER_DIRECTORY,	/* readdir order, as os.listdir */
	STORE_ORDER_ARRIVAL	/* modification time, then name */
};

enum store_layout {
	STORE_LAYOUT_AUTO,	/* a Maildir if it has cur/, new/, tmp/ */
	STORE_LAYOUT_FLAT,	/* every regular file is a message */
	STORE_LAYOUT_MAILDIR	/* the files of new/ and cur/ */
};

enum store_status {
	STORE_OK = 0,
	STORE_NOMSG,	/* no message with that number */
	STORE_DELETED,	/* marked deleted in this session */
	STORE_GONE,	/* vanished or changed since the snapshot */
	STORE_INUSE,	/* --exclusive lock held by another session */
	STORE_NODIR,	/* the maildrop does not exist or is no directory */
	STORE_IOERR,	/* system error; logged */
	STORE_TOOBIG,	/* more messages than max_messages; logged */
	STORE_BROKEN	/* failed after part of a reply was written */
};

/* The last listing of a maildrop, kept by a process between its sessions
 * (each listener worker its own): the next session reuses it while the
 * maildrop directory is unchanged and settled.  May be NULL everywhere. */
struct store_cache;
struct store_cache *store_cache_new(void);
void	store_cache_free(struct store_cache *);

struct store_opts {
	enum store_layout	 layout;
	enum store_order	 order;		/* flat only: a Maildir is
						 * numbered by delivery time */
	int			 exclusive;	/* hold the lock all session */
	int			 lock_wait;	/* seconds, with exclusive */
	int			 delete_now;	/* unlink at DELE */
	size_t			 max_messages;	/* refuse larger maildrops; 0: default */
	int			 index_fd;	/* index folder (index.h); -1: none */
	struct store_cache	*cache;
};

struct store;

/*
 * The layout dir has under layout (AUTO: whichever it is), or -1 when it
 * is no directory or, with STORE_LAYOUT_MAILDIR, no Maildir (errno set).
 */
int	store_layout_of(const char *dir, enum store_layout layout);

/*
 * Snapshot the maildrop dir.  With o->exclusive, first take the maildrop
 * lock, waiting up to o->lock_wait seconds (STORE_INUSE after that).  A
 * Maildir's new/ messages are moved to cur/ first (":2," appended).
 * Returns STORE_OK with *out set, else STORE_NODIR (also: no Maildir where
 * o->layout asks for one), STORE_INUSE, STORE_IOERR, or STORE_TOOBIG
 * when it holds more than o->max_messages messages (never served in part).
 */
enum store_status store_open(struct store **out, const char *dir,
	    const struct store_opts *o);

/*
 * store_open() of dir relative to the directory rootfd (AT_FDCWD: the
 * working directory).  With nofollow, dir is not followed if it is a
 * symbolic link (STORE_NODIR): a user's maildrop under a root that others
 * may write to cannot be pointed elsewhere.
 */
enum store_status store_openat(struct store **out, int rootfd,
	    const char *dir, int nofollow, const struct store_opts *o);
/* The maildrop directory's descriptor, open while st is (for the sandbox,
 * which confines the session beneath it). */
int	store_dirfd(const struct store *st);
/* Release the snapshot and any lock; commits nothing. */
void	store_close(struct store *st);

/* Messages not marked deleted and their total wire size. */
void	store_stat(struct store *st, size_t *count, uint64_t *octets);
/* Highest message number of the snapshot (deleted ones included). */
size_t	store_last(const struct store *st);

/* Size / unique-id of message n (1-based).  STORE_NOMSG or STORE_DELETED. */
enum store_status store_size(const struct store *st, size_t n, uint64_t *size);
enum store_status store_uid(struct store *st, size_t n, const char **uid);

/*
 * An open message: store_msg_open checks that message n is still the file
 * of the snapshot and opens it; the caller then writes its own status line
 * and has store_msg_send stream the body.  One at a time per store; it
 * belongs to the store and needs no freeing after store_msg_send.
 */
struct store_msg;

/* Open message n: STORE_OK with *out and *size (its wire size) set, else
 * STORE_NOMSG, STORE_DELETED, STORE_GONE or STORE_IOERR. */
enum store_status store_msg_open(struct store *st, size_t n,
	    struct store_msg **out, uint64_t *size);

/*
 * Write the message dot-stuffed with CRLF line ends and the final "." into
 * w, then close it.  top_lines < 0: the whole message; else the header, the
 * empty line and that many body lines.  STORE_OK, or STORE_BROKEN when the
 * reply was cut short (write failed, the file changed while being read):
 * the session must end.
 */
enum store_status store_msg_send(struct store_msg *sm, long top_lines,
	    struct writer *w);

/* Close an opened message without sending it. */
void	store_msg_close(struct store_msg *sm);

/* Mark message n deleted (with delete_now, remove it at once). */
enum store_status store_dele(struct store *st, size_t n);
/* Unmark all (files already removed by delete_now stay removed). */
void	store_rset(struct store *st);

/*
 * The UPDATE state: under a short lock on the directory, remove every
 * marked file whose identity still matches, then sync the directory.
 * Check and removal are one step: the file is first renamed to a private
 * name (RENAME_NOREPLACE), checked there, and renamed back if it is not
 * the marked one, so a message renamed over a marked name meanwhile stays.
 * *removed counts removals, *failed files that could not be removed
 * (logged); a file already gone or replaced is in neither.
 */
enum store_status store_commit(struct store *st, size_t *removed,
	    size_t *failed);

#endif
