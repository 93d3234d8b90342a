/*
 * store.c: the maildrop (see store.h).  Called by the session code only.
 *
 * Directory entries are untrusted: names are looked at with fstatat
 * (symlinks never followed), files opened with O_NOFOLLOW and checked with
 * fstat against the identity taken at scan time.  In a Maildir a name may
 * change under us (a reader changes its flags): a message not found under
 * its name is looked up again by its base name, and the identity decides.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "index.h"
#include "log.h"
#include "maildir.h"
#include "params.h"
#include "store.h"

struct msg {
	char		*name;
	dev_t		 dev;
	ino_t		 ino;
	off_t		 fsize;		/* bytes in the file */
	struct timespec	 mtime, ctime;
	uint64_t	 size;		/* bytes on the wire */
	uint32_t	 flags;		/* INDEX_PLAIN */
	int		 deleted;
	int		 removed;	/* unlinked already (delete_now) */
	enum maildir_sub sub;		/* Maildir: in new/ or cur/ */
	char		*uid;		/* made on first use */
};

struct store_msg {
	struct store	*st;
	struct msg	*m;
	int		 fd;		/* -1 when closed */
};

struct store {
	int		 dirfd;
	struct stat	 dsb;		/* the maildrop directory at scan */
	int		 locked;	/* exclusive lock held all session */
	int		 borrowed;	/* names belong to the dir snapshot */
	char		*nameblk;	/* names taken from the index, in one
					 * block (flat); NULL: one each */
	int		 maildir;	/* a Maildir: md is open */
	struct maildir	 md;
	struct maildir_names *names;	/* Maildir: cur/ names, when read */
	int		 move_warned;	/* logged a failed move to cur/ */
	struct store_opts opts;
	struct msg	*msgs;
	size_t		 n;
	int		 counted;	/* count and octets are current */
	size_t		 count;		/* messages not marked deleted */
	uint64_t	 octets;	/* their wire size */
	struct store_msg cur;		/* the message being sent */
	unsigned long	 rmseq;		/* private names at removal */
	char		 chunk[FILE_CHUNK];
};

/*
 * The last listing of a maildrop, kept by each process (a listener's
 * workers each have their own copy after fork).  It is reused while the
 * directory's mtime and ctime are unchanged and were already in the past
 * when it was taken (a change in the same clock tick would not move them),
 * so the next session on the same worker reads neither the folder nor the
 * index.  Files changed in place do not touch the directory:
 * store_msg_open then finds a changed file, answers -ERR [SYS/TEMP] and
 * drops the snapshot.
 */
struct dirsnap {
	int		 valid;
	dev_t		 dev;
	ino_t		 ino;
	struct timespec	 mtime, ctime;
	enum store_order order;
	struct msg	*msgs;		/* owns the names */
	size_t		 n;
	char		*nameblk;	/* the names' block, if in one */
};

struct store_cache {
	struct dirsnap	  snap;
};

struct store_cache *
store_cache_new(void)
{
	struct store_cache *c = calloc(1, sizeof(*c));

	if (c == NULL)
		log_warn("calloc");
	return c;
}

static void
snap_clear(struct dirsnap *sn)
{
	size_t i;

	for (i = 0; i < sn->n && sn->nameblk == NULL; i++)
		free(sn->msgs[i].name);
	free(sn->nameblk);
	free(sn->msgs);
	memset(sn, 0, sizeof(*sn));
}

void
store_cache_free(struct store_cache *c)
{
	if (c == NULL)
		return;
	snap_clear(&c->snap);
	free(c);
}

static int
ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/*
 * sb is still m's file: device and inode, and also size and mtime, since a
 * file system soon gives a freed inode number to the next new file.
 */
static int
same_file(const struct stat *sb, const struct msg *m)
{
	return S_ISREG(sb->st_mode) && sb->st_dev == m->dev &&
	    sb->st_ino == m->ino && sb->st_size == m->fsize &&
	    ts_eq(sb->st_mtim, m->mtime);
}

/* Not even its inode changed: a file rewritten in place with its size and
 * mtime put back still has a new ctime.  (A Maildir reader's renames move
 * the ctime too: there identity is as for removal.) */
static int
unchanged(const struct store *st, const struct stat *sb, const struct msg *m)
{
	return same_file(sb, m) &&
	    (st->maildir || ts_eq(sb->st_ctim, m->ctime));
}

/* A message was found changed: the directory listing may be stale, and
 * so may the index (a file changed in place does not touch the folder). */
static void
snap_drop(struct store *st)
{
	if (st->opts.cache != NULL)
		st->opts.cache->snap.valid = 0;
	if (!st->maildir)
		index_drop(st->opts.index_fd, &st->dsb);
}

/* The directory m's name is relative to. */
static int
msg_dirfd(const struct store *st, const struct msg *m)
{
	return st->maildir ? st->md.fd[m->sub] : st->dirfd;
}

/*
 * m's file is not under its name: in a Maildir, a reader may have changed
 * its flags.  Look its base name up in the names of its folder (read again
 * unless they give a name not tried yet).  1 with m->name updated, 0 when
 * no file has that base, -1 on error (logged).
 */
static int
msg_refind(struct store *st, struct msg *m)
{
	struct maildir_names *nm = NULL;
	const char *p = NULL;
	char *name;
	int r = 0;

	if (!st->maildir)
		return 0;
	/* The names of cur/ are kept: a QUIT after a reader marked many
	 * messages seen reads cur/ once, not once a message. */
	if (m->sub == MAILDIR_CUR && st->names != NULL)
		p = maildir_names_find(st->names, m->name);
	if (p == NULL || strcmp(p, m->name) == 0) {
		if ((nm = maildir_names_read(msg_dirfd(st, m))) == NULL)
			return -1;
		p = maildir_names_find(nm, m->name);
	}
	if (p != NULL && strcmp(p, m->name) != 0) {
		if ((name = strdup(p)) == NULL) {
			r = log_warn("strdup");
		} else {
			free(m->name);	/* a Maildir store owns its names */
			m->name = name;
			r = 1;
		}
	}
	if (nm != NULL && m->sub == MAILDIR_CUR) {
		maildir_names_free(st->names);
		st->names = nm;
	} else {
		maildir_names_free(nm);
	}
	return r;
}

/* Tries at a Maildir name a reader keeps renaming. */
#define REFIND_TRIES	3

/* Open the file of m and check it is still the one of the snapshot. */
static int
msg_open(struct store *st, struct msg *m, enum store_status *why)
{
	struct stat sb;
	int fd, k, tries = 0;

	while ((fd = openat(msg_dirfd(st, m), m->name,
	    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)) < 0 &&
	    errno == ENOENT && tries++ < REFIND_TRIES) {
		if ((k = msg_refind(st, m)) < 0) {
			*why = STORE_IOERR;
			return -1;
		}
		if (k == 0) {
			errno = ENOENT;
			break;
		}
	}
	if (fd < 0) {
		if (errno == ENOENT || errno == ELOOP) {
			*why = STORE_GONE;
			snap_drop(st);
			return -1;
		}
		*why = STORE_IOERR;
		return log_warn("open %s", m->name);
	}
	if (fstat(fd, &sb) < 0) {
		*why = STORE_IOERR;
		log_warn("fstat %s", m->name);
		close(fd);
		return -1;
	}
	if (!unchanged(st, &sb, m)) {
		*why = STORE_GONE;
		snap_drop(st);
		close(fd);
		return -1;
	}
	return fd;
}

/* Wire size of an open file, read through once. */
static int
file_wire_size(struct store *st, int fd, const char *name, uint64_t *size,
    uint32_t *flags)
{
	struct dotsize ds;
	ssize_t k;

	dotsize_init(&ds);
	while ((k = read(fd, st->chunk, sizeof(st->chunk))) != 0) {
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return log_warn("read %s", name);
		}
		dotsize_feed(&ds, st->chunk, k);
	}
	*size = dotsize_total(&ds);
	*flags = dotsize_plain(&ds) ? INDEX_PLAIN : 0;
	return 0;
}

/*
 * A Maildir file the index knows but for its ctime: a reader renamed it
 * (a flag change), or it was rewritten in place.  Its size is taken from
 * the index only when Dovecot's ",W=" in its name says the same.  1 with
 * m->size set, else 0 (the file is read).
 */
static int
renamed_size(struct index *ix, const struct stat *sb, const char *name,
    struct msg *m)
{
	const struct index_rec *ir;
	uint64_t w;

	if (!maildir_wsize(name, &w) ||
	    (ir = index_find_renamed(ix, sb)) == NULL || ir->size != w)
		return 0;
	m->size = w;
	return 1;
}

/*
 * Look at one entry of dirfd (the maildrop, or new/ or cur/ of a Maildir
 * as sub says); 1 when it is a message (m filled in).
 */
static int
scan_entry(struct store *st, int dirfd, enum maildir_sub sub,
    const struct dirent *de, struct msg *m, struct index *ix)
{
	const struct index_rec *ir;
	struct stat sb;
	int fd;

	if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
		return 0;
	if (fstatat(dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			log_warn("stat %s", de->d_name);
		return 0;
	}
	if (!S_ISREG(sb.st_mode))
		return 0;
	memset(m, 0, sizeof(*m));
	m->dev = sb.st_dev;
	m->ino = sb.st_ino;
	m->fsize = sb.st_size;
	m->mtime = sb.st_mtim;
	m->ctime = sb.st_ctim;
	m->sub = sub;
	if ((m->name = strdup(de->d_name)) == NULL)
		return log_warn("strdup");
	if ((ir = index_find(ix, &sb)) != NULL) {
		m->size = ir->size;
		m->flags = ir->flags;
	} else if (st->maildir && renamed_size(ix, &sb, de->d_name, m)) {
		/* size confirmed; flags left 0: sent through the converter */
	} else {
		enum store_status why;
		int r;

		if ((fd = msg_open(st, m, &why)) < 0) {
			free(m->name);
			return 0;	/* changed under us or unreadable: skip */
		}
		r = file_wire_size(st, fd, de->d_name, &m->size, &m->flags);
		close(fd);
		if (r < 0) {
			free(m->name);
			return 0;
		}
	}
	return 1;
}

/*
 * A Maildir entry of new/: move it to cur/, where the listing of cur/
 * that follows finds it.  1 when it stays in new/ to be served from
 * there (it could not be moved), else 0.
 */
static int
new_entry(struct store *st, const struct dirent *de)
{
	char name[NAME_MAX + 1];
	struct stat sb;

	if (de->d_type == DT_UNKNOWN && (fstatat(st->md.fd[MAILDIR_NEW],
	    de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode)))
		return 0;
	if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
		return 0;
	if (maildir_move(&st->md, de->d_name, name, sizeof(name)) >= 0)
		return 0;
	if (!st->move_warned) {
		st->move_warned = 1;
		log_warn("cannot move new/%s to cur/; served from new/",
		    de->d_name);
	}
	return 1;
}

static int
delivery_cmp(const void *a, const void *b)
{
	const struct msg *x = a, *y = b;

	return maildir_order(x->name, &x->mtime, y->name, &y->mtime);
}

/*
 * A file renamed while cur/ was read may be listed twice (under its old
 * and its new name): keep one.  Both have one base and one mtime, so they
 * are neighbours in delivery order.
 */
static void
drop_twins(struct store *st)
{
	size_t i, k;

	for (i = k = 0; i < st->n; i++) {
		if (k > 0 && st->msgs[k - 1].dev == st->msgs[i].dev &&
		    st->msgs[k - 1].ino == st->msgs[i].ino) {
			free(st->msgs[i].name);
			continue;
		}
		st->msgs[k++] = st->msgs[i];
	}
	st->n = k;
}

static int
arrival_cmp(const void *a, const void *b)
{
	const struct msg *x = a, *y = b;

	if (x->mtime.tv_sec != y->mtime.tv_sec)
		return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
	if (x->mtime.tv_nsec != y->mtime.tv_nsec)
		return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Reuse the snapshot of this directory if it is still good.  1 if so. */
static int
snap_use(struct store *st, const struct stat *dsb)
{
	struct store_cache *c = st->opts.cache;
	struct dirsnap *sn;
	size_t i;

	if (c == NULL)
		return 0;
	sn = &c->snap;
	if (sn->valid && (sn->dev != dsb->st_dev || sn->ino != dsb->st_ino ||
	    !ts_eq(sn->mtime, dsb->st_mtim) || !ts_eq(sn->ctime, dsb->st_ctim) ||
	    sn->order != st->opts.order || sn->n > st->opts.max_messages))
		sn->valid = 0;
	if (!sn->valid) {
		/* Not in use by any store now: sessions come one at a time. */
		snap_clear(sn);
		return 0;
	}
	if ((st->msgs = reallocarray(NULL, sn->n ? sn->n : 1,
	    sizeof(*st->msgs))) == NULL)
		return 0;
	memcpy(st->msgs, sn->msgs, sn->n * sizeof(*st->msgs));
	for (i = 0; i < sn->n; i++)
		st->msgs[i].uid = NULL;
	st->n = sn->n;
	st->borrowed = 1;
	return 1;
}

/* The directory had not changed for a second when the listing began. */
static int
settled(const struct stat *dsb, const struct timespec *t0)
{
	return dsb->st_mtim.tv_sec + 1 < t0->tv_sec &&
	    dsb->st_ctim.tv_sec + 1 < t0->tv_sec;
}

/* Keep the fresh listing as the snapshot if the directory had settled. */
static void
snap_keep(struct store *st, const struct stat *dsb, const struct timespec *t0)
{
	struct store_cache *c = st->opts.cache;
	struct dirsnap *sn;
	size_t i, bytes;

	if (c == NULL || st->n > SNAP_MAX_BYTES / sizeof(*st->msgs))
		return;
	for (i = 0, bytes = st->n * sizeof(*st->msgs); i < st->n; i++)
		bytes += strlen(st->msgs[i].name) + 1;
	if (bytes > SNAP_MAX_BYTES)
		return;
	/* Changed within the last second: a change in the same tick of the
	 * coarse file system clock might leave mtime as it is. */
	if (!settled(dsb, t0))
		return;
	sn = &c->snap;
	snap_clear(sn);
	if ((sn->msgs = reallocarray(NULL, st->n ? st->n : 1,
	    sizeof(*sn->msgs))) == NULL)
		return;
	memcpy(sn->msgs, st->msgs, st->n * sizeof(*sn->msgs));
	sn->n = st->n;
	sn->dev = dsb->st_dev;
	sn->ino = dsb->st_ino;
	sn->mtime = dsb->st_mtim;
	sn->ctime = dsb->st_ctim;
	sn->order = st->opts.order;
	sn->nameblk = st->nameblk;
	st->nameblk = NULL;
	sn->valid = 1;
	st->borrowed = 1;	/* the names are the snapshot's now */
}

/*
 * Add the messages of dirfd to the store: the maildrop, or new/ or cur/
 * of a Maildir (sub).  *cap is the room in st->msgs.
 */
static enum store_status
scan_dir(struct store *st, int dirfd, enum maildir_sub sub, size_t *cap,
    struct index *ix)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if ((fd = dup(dirfd)) < 0) {
		log_warn("dup");
		return STORE_IOERR;
	}
	if ((d = fdopendir(fd)) == NULL) {
		log_warn("fdopendir");
		close(fd);
		return STORE_IOERR;
	}
	rewinddir(d);
	for (;;) {
		struct msg m;
		int r;

		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (st->maildir && (!maildir_is_msg_name(de->d_name) ||
		    (sub == MAILDIR_NEW && !new_entry(st, de))))
			continue;
		if ((r = scan_entry(st, dirfd, sub, de, &m, ix)) < 0)
			goto fail;
		if (r == 0)
			continue;
		if (st->n == st->opts.max_messages) {
			log_warnx("maildrop holds more than %zu messages: "
			    "refused", st->opts.max_messages);
			free(m.name);
			closedir(d);
			return STORE_TOOBIG;
		}
		if (st->n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 64;
			struct msg *p;

			if (ncap > st->opts.max_messages)
				ncap = st->opts.max_messages;
			if ((p = reallocarray(st->msgs, ncap, sizeof(*p))) == NULL) {
				free(m.name);
				log_warn("reallocarray");
				goto fail;
			}
			st->msgs = p;
			*cap = ncap;
		}
		st->msgs[st->n++] = m;
	}
	if (errno != 0) {
		log_warn("readdir");
		goto fail;
	}
	closedir(d);
	return STORE_OK;
fail:
	closedir(d);
	return STORE_IOERR;
}

/* The listing from an index that is current. */
static enum store_status
from_index(struct store *st, const struct index *ix)
{
	size_t i, n = index_count(ix), len;
	const char *names = index_names(ix, &len);

	if (n > st->opts.max_messages) {
		log_warnx("maildrop holds more than %zu messages: refused",
		    st->opts.max_messages);
		return STORE_TOOBIG;
	}
	if ((st->msgs = calloc(n ? n : 1, sizeof(*st->msgs))) == NULL) {
		log_warn("calloc");
		return STORE_IOERR;
	}
	/* Flat: the names in one block, a copy of the index's (a Maildir's
	 * may be renamed one by one, so each is its own). */
	if (!st->maildir && (st->nameblk = malloc(len ? len : 1)) == NULL) {
		log_warn("malloc");
		return STORE_IOERR;
	}
	if (st->nameblk != NULL)
		memcpy(st->nameblk, names, len);
	for (i = 0; i < n; i++) {
		struct index_rec rec, *r = &rec;
		struct msg *m = &st->msgs[i];

		index_get(ix, i, r);
		if (st->nameblk != NULL)
			m->name = st->nameblk + (r->name - names);
		else if ((m->name = strdup(r->name)) == NULL) {
			log_warn("strdup");
			return STORE_IOERR;	/* store_close frees st->n */
		}
		st->n++;
		m->dev = r->dev;
		m->ino = r->ino;
		m->fsize = r->fsize;
		m->mtime = r->mtime;
		m->ctime = r->ctime;
		m->size = r->size;
		m->flags = r->flags;
	}
	return STORE_OK;
}

/* Write the fresh listing (in directory order) to the index; of a
 * Maildir, the files of cur/ (the index is that folder's). */
static void
save_index(struct store *st, const struct stat *dsb, const struct timespec *t0)
{
	struct index_rec *recs;
	size_t i, k;

	if (st->opts.index_fd < 0)
		return;
	if ((recs = calloc(st->n ? st->n : 1, sizeof(*recs))) == NULL) {
		log_warn("calloc");
		return;
	}
	for (i = k = 0; i < st->n; i++) {
		const struct msg *m = &st->msgs[i];

		if (st->maildir && m->sub != MAILDIR_CUR)
			continue;
		recs[k].dev = m->dev;
		recs[k].ino = m->ino;
		recs[k].fsize = m->fsize;
		recs[k].mtime = m->mtime;
		recs[k].ctime = m->ctime;
		recs[k].size = m->size;
		recs[k].flags = m->flags;
		recs[k++].name = m->name;
	}
	index_save(st->opts.index_fd, dsb, settled(dsb, t0), recs, k);
	free(recs);
}

/*
 * A Maildir: new/ first, moved to cur/ where the listing of cur/ then
 * finds it.  The index covers cur/ (keyed by that folder): with nothing
 * new and cur/ unchanged, it is the listing; else it gives the sizes of
 * files whose identity, ctime included, it knows.  A reader's flag change
 * renames a file and moves its ctime: that file is read again.
 */
static enum store_status
scan_maildir(struct store *st)
{
	struct stat cdsb;
	struct timespec t0;
	struct index *ix;
	enum store_status r;
	size_t cap = 0, i;

	if ((r = scan_dir(st, st->md.fd[MAILDIR_NEW], MAILDIR_NEW, &cap,
	    NULL)) != STORE_OK)
		return r;
	clock_gettime(CLOCK_REALTIME, &t0);
	if (fstat(st->md.fd[MAILDIR_CUR], &cdsb) < 0) {
		log_warn("fstat cur");
		return STORE_IOERR;
	}
	ix = index_load(st->opts.index_fd, &cdsb);
	if (st->n == 0 && ix != NULL && index_current(ix, &cdsb)) {
		if ((r = from_index(st, ix)) == STORE_OK)
			for (i = 0; i < st->n; i++)
				st->msgs[i].sub = MAILDIR_CUR;
	} else if ((r = scan_dir(st, st->md.fd[MAILDIR_CUR], MAILDIR_CUR,
	    &cap, ix)) == STORE_OK)
		save_index(st, &cdsb, &t0);
	index_free(ix);
	if (r != STORE_OK)
		return r;
	if (st->n > 1) {
		qsort(st->msgs, st->n, sizeof(*st->msgs), delivery_cmp);
		drop_twins(st);
	}
	return STORE_OK;
}

static enum store_status
scan(struct store *st)
{
	struct stat dsb;
	struct timespec t0;
	struct index *ix;
	enum store_status r;
	size_t cap = 0;

	if (st->maildir)
		return scan_maildir(st);
	clock_gettime(CLOCK_REALTIME, &t0);
	if (fstat(st->dirfd, &dsb) < 0) {
		log_warn("fstat maildrop");
		return STORE_IOERR;
	}
	st->dsb = dsb;
	if (snap_use(st, &dsb))
		return STORE_OK;
	ix = index_load(st->opts.index_fd, &dsb);
	if (ix != NULL && index_current(ix, &dsb)) {
		/* Unchanged since the index was made: no file is looked at. */
		r = from_index(st, ix);
	} else if ((r = scan_dir(st, st->dirfd, 0, &cap, ix)) == STORE_OK)
		save_index(st, &dsb, &t0);
	index_free(ix);
	if (r != STORE_OK)
		return r;
	if (st->opts.order == STORE_ORDER_ARRIVAL && st->n > 1)
		qsort(st->msgs, st->n, sizeof(*st->msgs), arrival_cmp);
	snap_keep(st, &dsb, &t0);
	return STORE_OK;
}

/* Take the lock on the directory, waiting up to wait seconds (<0: forever). */
static int
lock_dir(int dirfd, int wait)
{
	struct timespec pause = { 0, 50 * 1000 * 1000 };
	long tries = wait < 0 ? -1 : (long)wait * 20;

	if (wait < 0) {
		while (flock(dirfd, LOCK_EX) < 0)
			if (errno != EINTR)
				return -1;
		return 0;
	}
	for (;;) {
		if (flock(dirfd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		if (tries-- <= 0) {
			errno = EWOULDBLOCK;
			return -1;
		}
		nanosleep(&pause, NULL);
	}
}

/* Whether the open directory dirfd is a Maildir under layout: 1, 0, or
 * -1 with errno (ENOTDIR: a Maildir was asked for and this is none). */
static int
is_maildir(int dirfd, enum store_layout layout)
{
	int k;

	if (layout == STORE_LAYOUT_FLAT)
		return 0;
	if ((k = maildir_detect(dirfd)) == 0 && layout == STORE_LAYOUT_MAILDIR) {
		errno = ENOTDIR;
		return -1;
	}
	if (k < 0)
		errno = EIO;
	return k;
}

int
store_layout_of(const char *dir, enum store_layout layout)
{
	int fd, k, e;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -1;
	k = is_maildir(fd, layout);
	e = errno;
	close(fd);
	errno = e;
	if (k < 0)
		return -1;
	return k ? STORE_LAYOUT_MAILDIR : STORE_LAYOUT_FLAT;
}

enum store_status
store_open(struct store **out, const char *dir, const struct store_opts *o)
{
	return store_openat(out, AT_FDCWD, dir, 0, o);
}

enum store_status
store_openat(struct store **out, int rootfd, const char *dir, int nofollow,
    const struct store_opts *o)
{
	struct store *st;
	enum store_status r;
	int k;

	/* The chunk buffer is not zeroed: pages are touched only when used. */
	if ((st = malloc(sizeof(*st))) == NULL) {
		log_warn("malloc");
		return STORE_IOERR;
	}
	memset(st, 0, offsetof(struct store, chunk));
	st->opts = *o;
	if (st->opts.max_messages == 0 ||
	    st->opts.max_messages > STORE_MAX_MESSAGES)
		st->opts.max_messages = STORE_MAX_MESSAGES;
	st->cur.fd = -1;
	st->md.fd[0] = st->md.fd[1] = -1;
	st->dirfd = openat(rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC |
	    (nofollow ? O_NOFOLLOW : 0));
	if (st->dirfd < 0) {
		r = (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) ?
		    STORE_NODIR : STORE_IOERR;
		struct stat sb;
		int saved = errno;

		if (nofollow && fstatat(rootfd, dir, &sb,
		    AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode))
			log_warnx("maildrop %s: a symbolic link, not served",
			    dir);
		else {
			errno = saved;
			log_warn("maildrop %s", dir);
		}
		free(st);
		return r;
	}
	if ((k = is_maildir(st->dirfd, o->layout)) < 0) {
		r = errno == ENOTDIR ? STORE_NODIR : STORE_IOERR;
		if (r == STORE_NODIR)
			log_warnx("maildrop %s: no Maildir (cur/, new/, tmp/)",
			    dir);
		store_close(st);
		return r;
	}
	if (k > 0 && maildir_open(&st->md, st->dirfd) < 0) {
		store_close(st);
		return STORE_IOERR;
	}
	st->maildir = k;
	if (o->exclusive) {
		if (lock_dir(st->dirfd, o->lock_wait) < 0) {
			r = errno == EWOULDBLOCK ? STORE_INUSE : STORE_IOERR;
			if (r == STORE_IOERR)
				log_warn("lock %s", dir);
			store_close(st);
			return r;
		}
		st->locked = 1;
	}
	if ((r = scan(st)) != STORE_OK) {
		store_close(st);
		return r;
	}
	*out = st;
	return STORE_OK;
}

int
store_dirfd(const struct store *st)
{
	return st->dirfd;
}

void
store_close(struct store *st)
{
	size_t i;

	if (st == NULL)
		return;
	store_msg_close(&st->cur);
	for (i = 0; i < st->n; i++) {
		if (!st->borrowed && st->nameblk == NULL)
			free(st->msgs[i].name);
		free(st->msgs[i].uid);
	}
	free(st->nameblk);
	free(st->msgs);
	maildir_names_free(st->names);
	maildir_close(&st->md);
	close(st->dirfd);	/* drops the lock too */
	free(st);
}

void
store_stat(struct store *st, size_t *count, uint64_t *octets)
{
	size_t i;

	if (!st->counted) {
		st->count = 0;
		st->octets = 0;
		for (i = 0; i < st->n; i++) {
			if (!st->msgs[i].deleted) {
				st->count++;
				st->octets += st->msgs[i].size;
			}
		}
		st->counted = 1;
	}
	*count = st->count;
	*octets = st->octets;
}

size_t
store_last(const struct store *st)
{
	return st->n;
}

static enum store_status
lookup(const struct store *st, size_t n, struct msg **m)
{
	if (n < 1 || n > st->n)
		return STORE_NOMSG;
	*m = &st->msgs[n - 1];
	return (*m)->deleted ? STORE_DELETED : STORE_OK;
}

enum store_status
store_size(const struct store *st, size_t n, uint64_t *size)
{
	struct msg *m;
	enum store_status r;

	if ((r = lookup(st, n, &m)) == STORE_OK)
		*size = m->size;
	return r;
}

/* 64-bit FNV-1a, seeded; two seeds give the 128-bit digest of a uid. */
static uint64_t
fnv1a(uint64_t h, const char *p, size_t n)
{
	while (n-- > 0) {
		h ^= (unsigned char)*p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * The unique-id.  Flat: "name:mtime" when the name is printable ASCII
 * without space and the whole fits in 70 characters, else a digest of
 * both.  The two forms cannot collide: only the first holds a ':' before
 * digits at the end, and digests are 32 hex digits with no ':'.
 * Maildir: the base name (before ':'), which delivery made unique and
 * which survives the move to cur/ and flag changes, when it fits, else a
 * digest of it.
 */
static int
make_uid(struct msg *m, int maildir)
{
	char buf[UIDL_MAX + 1], t[32];
	size_t i, nl;
	int ok, k;

	nl = maildir ? maildir_base_len(m->name) : strlen(m->name);
	k = snprintf(t, sizeof(t), "%" PRId64, (int64_t)m->mtime.tv_sec);
	if (k < 0 || (size_t)k >= sizeof(t))
		return -1;
	if (maildir)
		t[0] = '\0';	/* the name alone */
	ok = nl > 0;
	for (i = 0; i < nl; i++)
		if ((unsigned char)m->name[i] < 0x21 ||
		    (unsigned char)m->name[i] > 0x7e)
			ok = 0;
	if (ok && maildir && nl <= UIDL_MAX) {
		k = snprintf(buf, sizeof(buf), "%.*s", (int)nl, m->name);
	} else if (ok && !maildir && nl + 1 + strlen(t) <= UIDL_MAX) {
		k = snprintf(buf, sizeof(buf), "%s:%s", m->name, t);
	} else {
		/* Flat: the name's NUL is hashed too; a Maildir base has
		 * none (and a name with no base at all, not made by any
		 * delivery agent, is hashed whole). */
		size_t hl = !maildir ? nl + 1 : nl > 0 ? nl : strlen(m->name);
		uint64_t a = fnv1a(0xcbf29ce484222325ULL, m->name, hl);
		uint64_t b = fnv1a(0x84222325cbf29ce4ULL ^ nl, m->name, hl);

		a = fnv1a(a, t, strlen(t));
		b = fnv1a(b, t, strlen(t));
		k = snprintf(buf, sizeof(buf), "%016" PRIx64 "%016" PRIx64, a, b);
	}
	if (k < 0 || (size_t)k >= sizeof(buf))
		return -1;
	if ((m->uid = strdup(buf)) == NULL)
		return log_warn("strdup");
	return 0;
}

enum store_status
store_uid(struct store *st, size_t n, const char **uid)
{
	struct msg *m;
	enum store_status r;

	if ((r = lookup(st, n, &m)) != STORE_OK)
		return r;
	if (m->uid == NULL && make_uid(m, st->maildir) < 0)
		return STORE_IOERR;
	*uid = m->uid;
	return STORE_OK;
}

enum store_status
store_msg_open(struct store *st, size_t n, struct store_msg **out,
    uint64_t *size)
{
	struct msg *m;
	enum store_status r;
	int fd;

	if ((r = lookup(st, n, &m)) != STORE_OK)
		return r;
	if ((fd = msg_open(st, m, &r)) < 0)
		return r;
	store_msg_close(&st->cur);
	st->cur.st = st;
	st->cur.m = m;
	st->cur.fd = fd;
	*out = &st->cur;
	*size = m->size;
	return STORE_OK;
}

void
store_msg_close(struct store_msg *sm)
{
	if (sm->st != NULL && sm->fd >= 0)
		close(sm->fd);
	sm->fd = -1;
}

/*
 * RETR of a whole message, the hot path: the file in large reads, each
 * converted in one pass straight into a large output buffer (16 bytes
 * copied and scanned for LF at a time; at a LF, CR added unless there is
 * one, a '.' starting the next line doubled), then handed to the writer in
 * one call, which writes it at once.  The buffers are allocated for the
 * message (glibc maps blocks this large and unmaps them when freed, so an
 * idle session keeps none of it).
 */
#define RETR_IN		(256 * 1024)
#define RETR_SLACK	64		/* a vector load or store past the end */

struct retr {
	int		bol;		/* the last chunk ended a line */
	int		prev;		/* its last byte */
	uint64_t	dots;		/* stuffing added */
	uint64_t	out;		/* bytes produced */
	char		in[RETR_IN + RETR_SLACK];
	char		obuf[2 * RETR_IN + RETR_SLACK];
};

/* Convert in[0..n) (RETR_SLACK readable bytes after it) into out (room for
 * 2n + RETR_SLACK); the number of bytes written. */
static size_t
retr_encode(struct retr *r, const char *in, size_t n, char *out)
{
	const char *p = in, *end = in + n;
	char *o = out;
#ifdef __SSE2__
	const __m128i lf = _mm_set1_epi8('\n');
#endif

	if (n == 0)
		return 0;
	if (r->bol && *p == '.') {
		*o++ = '.';
		r->dots++;
	}
	while (p < end) {
		size_t room = end - p, k;
		int prev;
#ifdef __SSE2__
		/* 64 bytes a step: lines are some 70 bytes long, so most
		 * steps find the line's end and few are spent in between. */
		const __m128i *vp = (const __m128i *)(const void *)p;
		__m128i *vo = (__m128i *)(void *)o;
		__m128i v0 = _mm_loadu_si128(vp), v1 = _mm_loadu_si128(vp + 1);
		__m128i v2 = _mm_loadu_si128(vp + 2), v3 = _mm_loadu_si128(vp + 3);
		uint64_t mask;

		_mm_storeu_si128(vo, v0);
		_mm_storeu_si128(vo + 1, v1);
		_mm_storeu_si128(vo + 2, v2);
		_mm_storeu_si128(vo + 3, v3);
		mask = (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v0, lf)) |
		    (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v1, lf)) << 16 |
		    (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v2, lf)) << 32 |
		    (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v3, lf)) << 48;
		if (room < 64)
			mask &= ((uint64_t)1 << room) - 1;
		if (mask == 0) {
			k = room < 64 ? room : 64;
			p += k;
			o += k;
			continue;
		}
		k = __builtin_ctzll(mask);
#else
		for (k = 0; k < room && p[k] != '\n'; k++)
			o[k] = p[k];
		if (k == room) {
			p += k;
			o += k;
			continue;
		}
#endif
		p += k;
		o += k;
		prev = p > in ? (unsigned char)p[-1] : r->prev;
		if (prev != '\r')
			*o++ = '\r';
		*o++ = '\n';
		if (++p < end && *p == '.') {
			*o++ = '.';
			r->dots++;
		}
	}
	r->prev = (unsigned char)end[-1];
	r->bol = r->prev == '\n';
	r->out += o - out;
	return o - out;
}

/*
 * RETR of a file that needs no conversion (INDEX_PLAIN, its wire size its
 * file size) to a plain connection: the kernel copies it from the file to
 * the socket.  A file that ends early closes the session.
 */
static enum store_status
retr_sendfile(struct store_msg *sm, struct writer *w)
{
	struct msg *m = sm->m;
	int r;

	r = writer_sendfile(w, sm->fd, (uint64_t)m->fsize);
	store_msg_close(sm);
	if (r != 0) {
		if (r > 0)
			log_warnx("%s shrank while being sent", m->name);
		return STORE_BROKEN;
	}
	if (writer_put(w, ".\r\n", 3) < 0)
		return STORE_BROKEN;
	return STORE_OK;
}

static enum store_status
retr_send(struct store_msg *sm, struct writer *w)
{
	struct msg *m = sm->m;
	struct retr *r;
	off_t left = m->fsize;
	enum store_status st = STORE_OK;

	if ((r = malloc(sizeof(*r))) == NULL) {
		log_warn("malloc");
		store_msg_close(sm);
		return STORE_BROKEN;
	}
	r->bol = 1;
	r->prev = '\n';
	r->dots = r->out = 0;
	while (left > 0) {
		ssize_t k = read(sm->fd, r->in,
		    left < RETR_IN ? (size_t)left : RETR_IN);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k < 0)
				log_warn("read %s", m->name);
			else
				log_warnx("%s shrank while being sent", m->name);
			st = STORE_BROKEN;
			break;
		}
		left -= k;
		if (writer_put(w, r->obuf, retr_encode(r, r->in, k, r->obuf)) < 0) {
			st = STORE_BROKEN;
			break;
		}
	}
	store_msg_close(sm);
	if (st == STORE_OK && r->out - r->dots + (r->bol ? 0 : 2) != m->size) {
		log_warnx("%s changed while being sent", m->name);
		st = STORE_BROKEN;
	}
	if (st == STORE_OK && writer_put(w, r->bol ? ".\r\n" : "\r\n.\r\n",
	    r->bol ? 3 : 5) < 0)
		st = STORE_BROKEN;
	free(r);
	return st;
}

enum store_status
store_msg_send(struct store_msg *sm, long top_lines, struct writer *w)
{
	struct store *st = sm->st;
	struct msg *m = sm->m;
	struct dotenc enc;
	off_t left;
	int done;

	if (top_lines < 0 && (m->flags & INDEX_PLAIN) &&
	    m->size == (uint64_t)m->fsize && pio_is_fd(w->io))
		return retr_sendfile(sm, w);
	if (top_lines < 0)
		return retr_send(sm, w);

	dotenc_init(&enc, top_lines);
	left = m->fsize;
	while (left > 0) {
		ssize_t k = read(sm->fd, st->chunk,
		    left < (off_t)sizeof(st->chunk) ? (size_t)left : sizeof(st->chunk));

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			if (k < 0)
				log_warn("read %s", m->name);
			else
				log_warnx("%s shrank while being sent", m->name);
			store_msg_close(sm);
			return STORE_BROKEN;
		}
		left -= k;
		if ((done = dotenc_feed(&enc, st->chunk, k, w)) < 0) {
			store_msg_close(sm);
			return STORE_BROKEN;
		}
		if (done)
			break;
	}
	store_msg_close(sm);
	if (top_lines < 0 && left == 0 &&
	    enc.octets + (enc.bol ? 0 : 2) != m->size) {
		log_warnx("%s changed while being sent", m->name);
		return STORE_BROKEN;
	}
	if (dotenc_finish(&enc, w) < 0)
		return STORE_BROKEN;
	return STORE_OK;
}

/* lstat m's file, found again by base name in a Maildir.  0, or -1 with
 * errno (ENOENT: gone; anything else logged). */
static int
msg_stat(struct store *st, struct msg *m, struct stat *sb)
{
	int k, tries = 0;

	while (fstatat(msg_dirfd(st, m), m->name, sb, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return log_warn("stat %s", m->name);
		if (tries++ == REFIND_TRIES || (k = msg_refind(st, m)) == 0) {
			errno = ENOENT;
			return -1;
		}
		if (k < 0)
			return -1;
	}
	return 0;
}

/* The old way, for file systems without RENAME_NOREPLACE: check, then
 * remove by name (a rename in between can slip through). */
static int
remove_by_name(struct store *st, struct msg *m)
{
	struct stat sb;

	if (msg_stat(st, m, &sb) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!same_file(&sb, m))
		return 0;
	if (unlinkat(msg_dirfd(st, m), m->name, 0) < 0) {
		if (errno == ENOENT)
			return 0;
		return log_warn("unlink %s", m->name);
	}
	return 1;
}

/*
 * Remove m's file if it is still the one of the snapshot.  1 removed,
 * 0 gone or replaced, -1 error (logged).  Caller holds the lock.
 *
 * The file is first moved out of the way under a name no one else uses;
 * what is checked is then what gets removed.  A file that turns out to be
 * another one goes back under its name (if a newer file took the name
 * meanwhile, it keeps the private name: still in the maildrop, never lost).
 * In a Maildir the private name is a dotfile, which no reader lists, and a
 * name a reader changed is looked up by base name first.
 */
static int
remove_msg(struct store *st, struct msg *m)
{
	char priv[64];
	struct stat sb;
	int dfd = msg_dirfd(st, m), k, tries, refinds = 0;

	for (tries = 0;; tries++) {
		k = snprintf(priv, sizeof(priv), ".pop3d-remove.%ld.%lu",
		    (long)getpid(), ++st->rmseq);
		if (k < 0 || (size_t)k >= sizeof(priv))
			return log_warnx("private name too long");
		if (renameat2(dfd, m->name, dfd, priv, RENAME_NOREPLACE) == 0)
			break;
		if (errno == ENOENT) {
			if (refinds++ == REFIND_TRIES ||
			    (k = msg_refind(st, m)) == 0)
				return 0;
			if (k < 0)
				return -1;
			continue;
		}
		if (errno == EINVAL || errno == ENOSYS)
			return remove_by_name(st, m);
		if (errno != EEXIST || tries == 8)
			return log_warn("rename %s", m->name);
	}
	if (fstatat(dfd, priv, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
		log_warn("stat %s", priv);
		sb.st_mode = 0;		/* not ours: try to put it back */
	}
	if (same_file(&sb, m)) {
		if (unlinkat(dfd, priv, 0) == 0)
			return 1;
		log_warn("unlink %s", m->name);
	}
	if (renameat2(dfd, priv, dfd, m->name, RENAME_NOREPLACE) < 0)
		log_warn("%s: another file under %s meanwhile; "
		    "this one is kept as %s", m->name, m->name, priv);
	return same_file(&sb, m) ? -1 : 0;
}

/* Make removals durable: sync the folders names were removed from. */
static int
sync_dirs(struct store *st)
{
	if (!st->maildir)
		return fsync(st->dirfd);
	if (fsync(st->md.fd[MAILDIR_CUR]) < 0 ||
	    fsync(st->md.fd[MAILDIR_NEW]) < 0)
		return -1;
	return 0;
}

static int
short_lock(struct store *st)
{
	if (st->locked)
		return 0;
	if (lock_dir(st->dirfd, -1) < 0)
		return log_warn("lock maildrop");
	return 0;
}

static void
short_unlock(struct store *st)
{
	if (!st->locked)
		flock(st->dirfd, LOCK_UN);
}

enum store_status
store_dele(struct store *st, size_t n)
{
	struct msg *m;
	enum store_status r;
	struct stat sb;
	int k;

	if ((r = lookup(st, n, &m)) != STORE_OK)
		return r;
	if (!st->opts.delete_now) {
		/* Refuse a message another session has removed already. */
		if (msg_stat(st, m, &sb) < 0 || !same_file(&sb, m)) {
			snap_drop(st);
			return STORE_GONE;
		}
		m->deleted = 1;
		st->counted = 0;
		return STORE_OK;
	}
	if (short_lock(st) < 0)
		return STORE_IOERR;
	k = remove_msg(st, m);
	if (k >= 0 && sync_dirs(st) < 0)
		log_warn("fsync maildrop");
	short_unlock(st);
	if (k < 0)
		return STORE_IOERR;
	if (k == 0)
		return STORE_GONE;
	m->deleted = m->removed = 1;
	st->counted = 0;
	return STORE_OK;
}

void
store_rset(struct store *st)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		if (!st->msgs[i].removed)
			st->msgs[i].deleted = 0;
	st->counted = 0;
}

enum store_status
store_commit(struct store *st, size_t *removed, size_t *failed)
{
	size_t i;

	*removed = *failed = 0;
	for (i = 0; i < st->n; i++)
		if (st->msgs[i].deleted && !st->msgs[i].removed)
			break;
	if (i == st->n)
		return STORE_OK;
	if (short_lock(st) < 0)
		return STORE_IOERR;
	for (; i < st->n; i++) {
		struct msg *m = &st->msgs[i];
		int k;

		if (!m->deleted || m->removed)
			continue;
		if ((k = remove_msg(st, m)) < 0)
			(*failed)++;
		else if (k > 0) {
			(*removed)++;
			m->removed = 1;
		}
	}
	if (*removed > 0 && sync_dirs(st) < 0) {
		log_warn("fsync maildrop");
		short_unlock(st);
		return STORE_IOERR;
	}
	short_unlock(st);
	return STORE_OK;
}
