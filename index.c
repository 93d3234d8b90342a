/*
 * index.c: the maildrop index (see index.h).  Called by store.c, and by
 * pop3d.c to pick the folder once at start.
 *
 * The file: a header, n fixed records, then the names (each NUL-ended).
 * Native byte order (the header says which); a 64-bit checksum over
 * everything after the checksum field.  Bounded: at most
 * STORE_MAX_MESSAGES records and INDEX_MAX_BYTES in all.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "index.h"
#include "log.h"
#include "params.h"
#include "proto.h"

#define INDEX_MAGIC	"pop3dIX"	/* 8 bytes with the NUL */
#define INDEX_VERSION	2	/* 2: the four-lane checksum */
#define INDEX_ORDER	0x01020304u

struct disk_head {
	char		magic[8];
	uint32_t	version;
	uint32_t	order;		/* INDEX_ORDER as written */
	uint64_t	sum;		/* checksum of all bytes after it */
	uint64_t	md_dev, md_ino;
	int64_t		md_mtime_s, md_mtime_ns, md_ctime_s, md_ctime_ns;
	uint32_t	settled;
	uint32_t	nrec;
	uint64_t	names;		/* bytes of names after the records */
};

struct disk_rec {
	uint64_t	dev, ino, fsize;
	int64_t		mtime_s, mtime_ns, ctime_s, ctime_ns;
	uint64_t	size;
	uint32_t	flags;
	uint32_t	name;		/* offset in the names */
};

struct index {
	struct disk_head h;
	const char	*recs;		/* the records, in buf */
	const char	*names;		/* the names, in buf */
	size_t		 n;
	uint32_t	*byino;		/* record numbers hashed by inode (open
					 * addressing, UINT32_MAX: free), made
					 * on the first lookup the cursor misses */
	size_t		 mask;		/* slots in byino - 1 */
	size_t		 cursor;	/* the record after the last found */
	struct index_rec found;		/* what index_find returned */
	char		*buf;		/* the file as read */
};

/* Record i, decoded (records may sit unaligned in the buffer). */
static void
get_rec(const struct index *ix, size_t i, struct index_rec *r)
{
	struct disk_rec d;

	memcpy(&d, ix->recs + i * sizeof(d), sizeof(d));
	r->dev = d.dev;
	r->ino = d.ino;
	r->fsize = d.fsize;
	r->mtime.tv_sec = d.mtime_s;
	r->mtime.tv_nsec = d.mtime_ns;
	r->ctime.tv_sec = d.ctime_s;
	r->ctime.tv_nsec = d.ctime_ns;
	r->size = d.size;
	r->flags = d.flags;
	r->name = ix->names + d.name;
}

static uint64_t
rec_ino(const struct index *ix, size_t i)
{
	uint64_t ino;

	memcpy(&ino, ix->recs + i * sizeof(struct disk_rec) +
	    offsetof(struct disk_rec, ino), sizeof(ino));
	return ino;
}

/* Word-at-a-time checksum (not cryptographic: it finds torn and damaged
 * files, the owner check keeps out others' files).  Four independent lanes
 * over 32-byte blocks, so that the multiplications overlap: the index of
 * 10,000 messages (some 800 KB) is checked at every session that reads
 * it. */
static uint64_t
checksum(const char *p, size_t n)
{
	uint64_t h[4] = { 0x9E3779B97F4A7C15ULL ^ n, 0xC2B2AE3D27D4EB4FULL,
	    0x165667B19E3779F9ULL, 0x27D4EB2F165667C5ULL }, w, r;
	int k;

	while (n >= 32) {
		for (k = 0; k < 4; k++) {
			memcpy(&w, p + 8 * k, 8);
			h[k] = (h[k] ^ w) * 0x100000001b3ULL;
			h[k] ^= h[k] >> 31;
		}
		p += 32;
		n -= 32;
	}
	r = h[0] ^ (h[1] * 0x9E3779B97F4A7C15ULL) ^
	    (h[2] * 0xC2B2AE3D27D4EB4FULL) ^ (h[3] * 0x165667B19E3779F9ULL);
	while (n >= 8) {
		memcpy(&w, p, 8);
		r = (r ^ w) * 0x100000001b3ULL;
		r ^= r >> 31;
		p += 8;
		n -= 8;
	}
	w = 0;
	memcpy(&w, p, n);
	r = (r ^ w) * 0x100000001b3ULL;
	return r ^ (r >> 29);
}

static int
file_name(char *buf, size_t len, const struct stat *md)
{
	int k;

	k = snprintf(buf, len, "md-%" PRIx64 "-%" PRIx64,
	    (uint64_t)md->st_dev, (uint64_t)md->st_ino);
	return (k < 0 || (size_t)k >= len) ? -1 : 0;
}

/* A usable index folder: a directory we can write in. */
static int
try_dir(const char *path, int create)
{
	struct stat sb;
	int fd;

	if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) < 0 || faccessat(fd, ".", W_OK | X_OK,
	    AT_EACCESS) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
index_dir_open(const char *dir, char *path, size_t len)
{
	const char *env, *home;
	char buf[PATH_MAX];
	int fd, k;

	path[0] = '\0';
	if (dir != NULL) {
		if (dir[0] == '\0')
			return -1;
		if ((fd = try_dir(dir, 0)) < 0) {
			log_warn("index folder %s unusable, serving without an "
			    "index", dir);
			return -1;
		}
		snprintf(path, len, "%s", dir);
		return fd;
	}
	if ((env = getenv("CACHE_DIRECTORY")) != NULL && env[0] != '\0') {
		/* systemd joins several with ':'; the first is ours. */
		k = snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(env, ":"),
		    env);
		if (k > 0 && (size_t)k < sizeof(buf) &&
		    (fd = try_dir(buf, 0)) >= 0)
			goto found;
	}
	if ((fd = try_dir("/var/cache/pop3d", 1)) >= 0) {
		snprintf(buf, sizeof(buf), "/var/cache/pop3d");
		goto found;
	}
	if ((env = getenv("XDG_CACHE_HOME")) != NULL && env[0] == '/')
		k = snprintf(buf, sizeof(buf), "%s/pop3d", env);
	else if ((home = getenv("HOME")) != NULL && home[0] == '/') {
		k = snprintf(buf, sizeof(buf), "%s/.cache", home);
		if (k > 0 && (size_t)k < sizeof(buf))
			(void)mkdir(buf, 0700);
		k = snprintf(buf, sizeof(buf), "%s/.cache/pop3d", home);
	} else
		return -1;
	if (k < 0 || (size_t)k >= sizeof(buf) || (fd = try_dir(buf, 1)) < 0)
		return -1;
found:
	snprintf(path, len, "%s", buf);
	return fd;
}

static int
read_all(int fd, char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = read(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

/* Check the file in ix->buf (len bytes) and find its parts. */
static int
parse(struct index *ix, size_t len, const struct stat *md)
{
	const struct disk_head *h = &ix->h;
	const size_t rs = sizeof(struct disk_rec);
	size_t i, hs = offsetof(struct disk_head, sum) + sizeof(h->sum);

	if (len < sizeof(*h))
		return -1;
	memcpy(&ix->h, ix->buf, sizeof(ix->h));
	if (memcmp(h->magic, INDEX_MAGIC, sizeof(h->magic)) != 0 ||
	    h->version != INDEX_VERSION || h->order != INDEX_ORDER ||
	    h->md_dev != (uint64_t)md->st_dev ||
	    h->md_ino != (uint64_t)md->st_ino ||
	    h->nrec > STORE_MAX_MESSAGES || h->names > INDEX_MAX_BYTES ||
	    len != sizeof(*h) + h->nrec * rs + h->names ||
	    checksum(ix->buf + hs, len - hs) != h->sum)
		return -1;
	if (h->names > 0 && ix->buf[len - 1] != '\0')
		return -1;
	ix->recs = ix->buf + sizeof(*h);
	ix->names = ix->recs + h->nrec * rs;
	for (i = 0; i < h->nrec; i++) {
		uint32_t off;

		memcpy(&off, ix->recs + i * rs +
		    offsetof(struct disk_rec, name), sizeof(off));
		if (off >= h->names || ix->names[off] == '\0')
			return -1;
	}
	ix->n = h->nrec;
	return 0;
}

struct index *
index_load(int idxfd, const struct stat *md)
{
	struct index *ix;
	struct stat sb;
	char name[64];
	int fd;

	if (idxfd < 0 || file_name(name, sizeof(name), md) < 0)
		return NULL;
	fd = openat(idxfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK);
	if (fd < 0) {
		if (errno != ENOENT)
			log_warn("index %s", name);
		return NULL;
	}
	/* Only our own regular file of a sane size: a file someone else can
	 * write could lie about sizes. */
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode) ||
	    sb.st_uid != geteuid() || (sb.st_mode & 022) != 0 ||
	    sb.st_size < (off_t)sizeof(struct disk_head) ||
	    sb.st_size > INDEX_MAX_BYTES) {
		close(fd);
		return NULL;
	}
	if ((ix = calloc(1, sizeof(*ix))) == NULL ||
	    (ix->buf = malloc(sb.st_size)) == NULL) {
		log_warn("malloc");
		free(ix);
		close(fd);
		return NULL;
	}
	if (read_all(fd, ix->buf, sb.st_size) < 0 ||
	    parse(ix, sb.st_size, md) < 0) {
		close(fd);
		index_free(ix);
		return NULL;
	}
	close(fd);
	return ix;
}

void
index_free(struct index *ix)
{
	if (ix == NULL)
		return;
	free(ix->byino);
	free(ix->buf);
	free(ix);
}

size_t
index_count(const struct index *ix)
{
	return ix->n;
}

void
index_get(const struct index *ix, size_t i, struct index_rec *r)
{
	get_rec(ix, i, r);
}

static int
ts_eq(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

const char *
index_names(const struct index *ix, size_t *len)
{
	*len = ix->h.names;
	return ix->names;
}

int
index_current(const struct index *ix, const struct stat *md)
{
	return ix->h.settled && ix->h.md_mtime_s == md->st_mtim.tv_sec &&
	    ix->h.md_mtime_ns == md->st_mtim.tv_nsec &&
	    ix->h.md_ctime_s == md->st_ctim.tv_sec &&
	    ix->h.md_ctime_ns == md->st_ctim.tv_nsec;
}

static size_t
ino_slot(const struct index *ix, uint64_t ino)
{
	return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> 32) & ix->mask;
}

/* Record i if it is sb's file (with its ctime too if asked), in ix->found. */
static const struct index_rec *
match(struct index *ix, size_t i, const struct stat *sb, int ctime_too)
{
	struct index_rec *r = &ix->found;

	if (rec_ino(ix, i) != (uint64_t)sb->st_ino)
		return NULL;
	get_rec(ix, i, r);
	if (r->dev == (uint64_t)sb->st_dev &&
	    r->fsize == (uint64_t)sb->st_size &&
	    ts_eq(r->mtime, sb->st_mtim) &&
	    (!ctime_too || ts_eq(r->ctime, sb->st_ctim))) {
		ix->cursor = i + 1;
		return r;
	}
	return NULL;
}

/*
 * The records are in the directory order they were listed in, and a
 * listing again mostly meets them in that order: the record after the
 * last one found is tried first.  Else a hash of the inode numbers (made
 * once, in one pass) gives the candidates.
 */
static const struct index_rec *
find(struct index *ix, const struct stat *sb, int ctime_too)
{
	const struct index_rec *r;
	size_t i, slots;

	if (ix == NULL || ix->n == 0)
		return NULL;
	if (ix->cursor < ix->n &&
	    (r = match(ix, ix->cursor, sb, ctime_too)) != NULL)
		return r;
	if (ix->byino == NULL) {
		for (slots = 2; slots < 2 * ix->n; slots *= 2)
			;
		if ((ix->byino = reallocarray(NULL, slots,
		    sizeof(*ix->byino))) == NULL)
			return NULL;
		memset(ix->byino, 0xff, slots * sizeof(*ix->byino));
		ix->mask = slots - 1;
		for (i = 0; i < ix->n; i++) {
			size_t k = ino_slot(ix, rec_ino(ix, i));

			while (ix->byino[k] != UINT32_MAX)
				k = (k + 1) & ix->mask;
			ix->byino[k] = (uint32_t)i;
		}
	}
	for (i = ino_slot(ix, (uint64_t)sb->st_ino);
	    ix->byino[i] != UINT32_MAX; i = (i + 1) & ix->mask)
		if ((r = match(ix, ix->byino[i], sb, ctime_too)) != NULL)
			return r;
	return NULL;
}

const struct index_rec *
index_find(struct index *ix, const struct stat *sb)
{
	return find(ix, sb, 1);
}

const struct index_rec *
index_find_renamed(struct index *ix, const struct stat *sb)
{
	return find(ix, sb, 0);
}

int
index_save(int idxfd, const struct stat *md, int settled,
    const struct index_rec *recs, size_t n)
{
	struct disk_head h;
	struct disk_rec *dr;
	char name[64], tmp[96], *buf, *names;
	size_t i, namebytes = 0, len, hs;
	int fd, k;

	if (idxfd < 0 || file_name(name, sizeof(name), md) < 0)
		return -1;
	if (n > STORE_MAX_MESSAGES)
		return -1;
	for (i = 0; i < n; i++)
		namebytes += strlen(recs[i].name) + 1;
	len = sizeof(h) + n * sizeof(*dr) + namebytes;
	if (len > INDEX_MAX_BYTES)
		return -1;	/* too large to keep: served without */
	if ((buf = malloc(len)) == NULL)
		return log_warn("malloc");
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, INDEX_MAGIC, sizeof(h.magic));
	h.version = INDEX_VERSION;
	h.order = INDEX_ORDER;
	h.md_dev = md->st_dev;
	h.md_ino = md->st_ino;
	h.md_mtime_s = md->st_mtim.tv_sec;
	h.md_mtime_ns = md->st_mtim.tv_nsec;
	h.md_ctime_s = md->st_ctim.tv_sec;
	h.md_ctime_ns = md->st_ctim.tv_nsec;
	h.settled = settled != 0;
	h.nrec = n;
	h.names = namebytes;
	dr = (struct disk_rec *)(buf + sizeof(h));
	names = (char *)(dr + n);
	for (i = 0, namebytes = 0; i < n; i++) {
		struct disk_rec d;
		size_t nl = strlen(recs[i].name) + 1;

		memset(&d, 0, sizeof(d));
		d.dev = recs[i].dev;
		d.ino = recs[i].ino;
		d.fsize = recs[i].fsize;
		d.mtime_s = recs[i].mtime.tv_sec;
		d.mtime_ns = recs[i].mtime.tv_nsec;
		d.ctime_s = recs[i].ctime.tv_sec;
		d.ctime_ns = recs[i].ctime.tv_nsec;
		d.size = recs[i].size;
		d.flags = recs[i].flags;
		d.name = namebytes;
		memcpy(&dr[i], &d, sizeof(d));
		memcpy(names + namebytes, recs[i].name, nl);
		namebytes += nl;
	}
	memcpy(buf, &h, sizeof(h));
	hs = offsetof(struct disk_head, sum) + sizeof(h.sum);
	h.sum = checksum(buf + hs, len - hs);
	memcpy(buf + offsetof(struct disk_head, sum), &h.sum, sizeof(h.sum));

	k = snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", name, (long)getpid());
	if (k < 0 || (size_t)k >= sizeof(tmp)) {
		free(buf);
		return -1;
	}
	fd = openat(idxfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0) {
		free(buf);
		return log_warn("index %s", tmp);
	}
	if (proto_write_fd(fd, buf, len) < 0) {
		log_warn("write index %s", tmp);
		close(fd);
		unlinkat(idxfd, tmp, 0);
		free(buf);
		return -1;
	}
	free(buf);
	if (close(fd) < 0 || renameat(idxfd, tmp, idxfd, name) < 0) {
		log_warn("index %s", name);
		unlinkat(idxfd, tmp, 0);
		return -1;
	}
	return 0;
}

void
index_drop(int idxfd, const struct stat *md)
{
	char name[64];

	if (idxfd < 0 || file_name(name, sizeof(name), md) < 0)
		return;
	if (unlinkat(idxfd, name, 0) < 0 && errno != ENOENT)
		log_warn("remove index %s", name);
}
