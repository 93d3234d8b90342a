/*
 * maildir.c: the Maildir layout (see maildir.h).  Called by store.c.
 *
 * Names come from the directory and are untrusted: nothing here follows a
 * symlink or assumes a name's shape beyond what it checks.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "params.h"

static const char *const subdirs[] = { "cur", "new", "tmp" };

int
maildir_detect(int dirfd)
{
	struct stat sb;
	size_t i;

	for (i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
		if (fstatat(dirfd, subdirs[i], &sb, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				return 0;
			return log_warn("stat %s", subdirs[i]);
		}
		if (!S_ISDIR(sb.st_mode))
			return 0;
	}
	return 1;
}

int
maildir_open(struct maildir *md, int dirfd)
{
	static const char *const names[] = { "new", "cur" };
	int i;

	md->fd[0] = md->fd[1] = -1;
	for (i = 0; i < 2; i++) {
		md->fd[i] = openat(dirfd, names[i],
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (md->fd[i] < 0) {
			log_warn("open %s", names[i]);
			maildir_close(md);
			return -1;
		}
	}
	return 0;
}

void
maildir_close(struct maildir *md)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (md->fd[i] >= 0)
			close(md->fd[i]);
		md->fd[i] = -1;
	}
}

int
maildir_is_msg_name(const char *name)
{
	return name[0] != '\0' && name[0] != '.';
}

size_t
maildir_base_len(const char *name)
{
	return strcspn(name, ":");
}

int
maildir_wsize(const char *name, uint64_t *size)
{
	size_t bl = maildir_base_len(name), i;
	const char *p;
	uint64_t v;

	for (p = name; (p = memchr(p, ',', bl - (p - name))) != NULL; p++) {
		if (bl - (p - name) < 4 || p[1] != 'W' || p[2] != '=')
			continue;
		v = 0;
		for (i = 3; p - name + i < bl && p[i] >= '0' && p[i] <= '9';
		    i++) {
			if (i == 3 + 19)
				return 0;	/* would overflow */
			v = v * 10 + (uint64_t)(p[i] - '0');
		}
		if (i == 3 || (p - name + i < bl && p[i] != ','))
			continue;
		*size = v;
		return 1;
	}
	return 0;
}

int
maildir_cur_name(const char *name, char *buf, size_t bufsz)
{
	int k;

	if (strchr(name, ':') != NULL)
		k = snprintf(buf, bufsz, "%s", name);
	else
		k = snprintf(buf, bufsz, "%s:2,", name);
	if (k < 0 || (size_t)k >= bufsz)
		return -1;
	return 0;
}

int
maildir_move(struct maildir *md, const char *name, char *buf, size_t bufsz)
{
	if (maildir_cur_name(name, buf, bufsz) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (renameat2(md->fd[MAILDIR_NEW], name, md->fd[MAILDIR_CUR], buf,
	    RENAME_NOREPLACE) == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}

/*
 * The leading timestamp of a name: 1 to 18 digits, then a '.'.  1 and *t
 * set, or 0 when the name does not start that way.
 */
static int
name_stamp(const char *name, int64_t *t)
{
	int64_t v = 0;
	size_t i;

	for (i = 0; name[i] >= '0' && name[i] <= '9'; i++) {
		if (i == 18)
			return 0;
		v = v * 10 + (name[i] - '0');
	}
	if (i == 0 || name[i] != '.')
		return 0;
	*t = v;
	return 1;
}

static int
base_cmp(const char *a, const char *b)
{
	size_t al = maildir_base_len(a), bl = maildir_base_len(b);
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c != 0)
		return c;
	return al < bl ? -1 : al > bl;
}

int
maildir_order(const char *a, const struct timespec *am, const char *b,
    const struct timespec *bm)
{
	int64_t at, bt;
	int c;

	if (!name_stamp(a, &at))
		at = am->tv_sec;
	if (!name_stamp(b, &bt))
		bt = bm->tv_sec;
	if (at != bt)
		return at < bt ? -1 : 1;
	if (am->tv_sec != bm->tv_sec)
		return am->tv_sec < bm->tv_sec ? -1 : 1;
	if (am->tv_nsec != bm->tv_nsec)
		return am->tv_nsec < bm->tv_nsec ? -1 : 1;
	if ((c = base_cmp(a, b)) != 0)
		return c;
	return strcmp(a, b);
}

struct maildir_names {
	char	**v;
	size_t	  n;
};

void
maildir_names_free(struct maildir_names *nm)
{
	size_t i;

	if (nm == NULL)
		return;
	for (i = 0; i < nm->n; i++)
		free(nm->v[i]);
	free(nm->v);
	free(nm);
}

static int
names_cmp(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;
	int c;

	if ((c = base_cmp(*x, *y)) != 0)
		return c;
	return strcmp(*x, *y);
}

struct maildir_names *
maildir_names_read(int dirfd)
{
	struct maildir_names *nm;
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int fd;

	if ((nm = calloc(1, sizeof(*nm))) == NULL) {
		log_warn("calloc");
		return NULL;
	}
	if ((fd = dup(dirfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		log_warn("opendir");
		if (fd >= 0)
			close(fd);
		free(nm);
		return NULL;
	}
	rewinddir(d);
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (!maildir_is_msg_name(de->d_name) ||
		    (de->d_type != DT_REG && de->d_type != DT_UNKNOWN))
			continue;
		if (nm->n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **p;

			if (ncap > 2 * (size_t)STORE_MAX_MESSAGES) {
				errno = EFBIG;
				break;
			}
			if ((p = reallocarray(nm->v, ncap, sizeof(*p))) == NULL)
				break;
			nm->v = p;
			cap = ncap;
		}
		if ((nm->v[nm->n] = strdup(de->d_name)) == NULL)
			break;
		nm->n++;
	}
	if (errno != 0) {
		log_warn("readdir");
		closedir(d);
		maildir_names_free(nm);
		return NULL;
	}
	closedir(d);
	if (nm->n > 1)
		qsort(nm->v, nm->n, sizeof(*nm->v), names_cmp);
	return nm;
}

const char *
maildir_names_find(const struct maildir_names *nm, const char *name)
{
	size_t lo = 0, hi = nm->n, first;

	/* The first entry whose base is not below name's base. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (base_cmp(nm->v[mid], name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == nm->n || base_cmp(nm->v[lo], name) != 0)
		return NULL;
	/* Several names with one base (not made by any delivery agent):
	 * prefer the name itself. */
	for (first = lo; lo < nm->n && base_cmp(nm->v[lo], name) == 0; lo++)
		if (strcmp(nm->v[lo], name) == 0)
			return nm->v[lo];
	return nm->v[first];
}
