/*
 * index.h: the maildrop index, derived data that outlives a process.  Used
 * by store.c only; pop3d.c picks the folder.
 *
 * One file per maildrop in the index folder (never in the maildrop: every
 * file there is a message), named after the maildrop's device and inode.
 * It lists each message's name, identity (device, inode, size, mtime,
 * ctime) and wire size, in directory order, and the state of the maildrop
 * directory (mtime, ctime) it was made from.  Written whole to a new file
 * that is renamed over the old one, so any number of processes may write
 * it at once; read whole and checked (magic, version, byte order, owner,
 * bounds, checksum, maildrop identity): anything wrong and it is ignored
 * and rebuilt.  Nothing in it is trusted over the file itself: the store
 * re-checks a message's identity when it opens it.
 */
#ifndef INDEX_H
#define INDEX_H

#include <sys/stat.h>

#include <stddef.h>
#include <stdint.h>

/* One message as the index knows it. */
struct index_rec {
	uint64_t	 dev, ino, fsize;
	struct timespec	 mtime, ctime;
	uint64_t	 size;		/* octets on the wire */
	uint32_t	 flags;		/* INDEX_* below */
	const char	*name;		/* file name in the maildrop */
};

/* The file needs no conversion: CRLF line ends only, ends in CRLF (or is
 * empty), no line starts with '.'. */
#define INDEX_PLAIN	0x1

/*
 * The index folder: dir when given (an empty string: none), else
 * $CACHE_DIRECTORY (systemd's CacheDirectory=), else /var/cache/pop3d
 * when it is (or can be made) a writable folder, else $XDG_CACHE_HOME/pop3d
 * or ~/.cache/pop3d (made if missing).  Returns an open descriptor of it,
 * or -1 for none; a folder given but unusable is logged once.  *path gets
 * the folder's name (static storage of the caller's, size len) or "".
 */
int	index_dir_open(const char *dir, char *path, size_t len);

struct index;

/*
 * Read the index of the maildrop whose fstat is md from folder idxfd.
 * NULL when there is none or it is unusable (then it is simply rebuilt).
 */
struct index *index_load(int idxfd, const struct stat *md);
void	index_free(struct index *);

/* Records, in the directory order they were written in: record i into
 * *r (its name points into the index, valid until index_free). */
size_t	index_count(const struct index *);
void	index_get(const struct index *, size_t i, struct index_rec *r);
/* All the records' names, NUL-terminated one after another: the block
 * every index_rec name points into, *len its size. */
const char *index_names(const struct index *, size_t *len);

/* 1 when the maildrop directory is as it was when the index was written
 * and had settled by then: the records are then the listing itself. */
int	index_current(const struct index *, const struct stat *md);

/* The record for this file if its identity (device, inode, size, mtime,
 * ctime) matches, else NULL; valid until the next call. */
const struct index_rec *index_find(struct index *, const struct stat *sb);

/* The same but for the ctime, which a rename moves (a Maildir reader's
 * flag change) as much as a rewrite in place does: the caller must have
 * its own proof that the content is the same. */
const struct index_rec *index_find_renamed(struct index *,
	    const struct stat *sb);

/*
 * Write the index of maildrop md: n records, in directory order.  settled:
 * md's mtime and ctime were in the past when the listing began (a change
 * within the same tick of the file system clock would not move them).
 * 0, or -1 (logged once per process).
 */
int	index_save(int idxfd, const struct stat *md, int settled,
	    const struct index_rec *recs, size_t n);

/* Drop the index of maildrop md: a message was found changed in place. */
void	index_drop(int idxfd, const struct stat *md);

#endif
