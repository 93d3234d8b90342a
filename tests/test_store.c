/*
 * test_store.c: unit tests of store.c on temporary maildrops.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "store.h"
#include "tap.h"

static char dir[] = "/tmp/test_store.XXXXXX";
static struct store_opts opts;

static void
put(const char *name, const char *content, time_t mtime)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, content, strlen(content)) < 0)
		perror(path);
	close(fd);
	if (mtime) {
		struct timeval tv[2] = { { mtime, 0 }, { mtime, 0 } };

		utimes(path, tv);
	}
}

static void
clear(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/* %s/.[!.]* 2>/dev/null", dir, dir);
	if (system(cmd) < 0)
		perror("system");
}

static int
exists(const char *name)
{
	char path[512];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &sb) == 0;
}

static void
rename_in(const char *from, const char *to)
{
	char a[512], b[512];

	snprintf(a, sizeof(a), "%s/%s", dir, from);
	snprintf(b, sizeof(b), "%s/%s", dir, to);
	if (rename(a, b) < 0)
		perror(a);
}

/* Send message n (top < 0: whole) and capture what goes on the wire. */
static enum store_status
capture(struct store *st, size_t n, long top, char *out, size_t *len)
{
	struct writer *w = malloc(sizeof(*w));
	struct pio io;
	enum store_status r;
	int sv[2];
	ssize_t k;

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pio_init_fd(&io, sv[0], sv[0]);
	writer_init(w, &io, 1000);
	{
		struct store_msg *sm;
		uint64_t size;

		if ((r = store_msg_open(st, n, &sm, &size)) == STORE_OK) {
			writer_put(w, "+OK\r\n", 5);
			r = store_msg_send(sm, top, w);
		}
	}
	writer_flush(w);
	shutdown(sv[0], SHUT_WR);
	*len = 0;
	while ((k = read(sv[1], out + *len, 65536 - *len)) > 0)
		*len += k;
	close(sv[0]);
	close(sv[1]);
	free(w);
	return r;
}

/* The number of the message in file name (numbering is readdir order). */
static size_t
num(struct store *st, const char *name)
{
	size_t i, n = store_last(st), len = strlen(name);
	const char *u;

	for (i = 1; i <= n; i++)
		if (store_uid(st, i, &u) == STORE_OK &&
		    strncmp(u, name, len) == 0 && u[len] == ':')
			return i;
	return 0;
}

static struct store *
open_store(void)
{
	struct store *st = NULL;

	if (store_open(&st, dir, &opts) != STORE_OK)
		return NULL;
	return st;
}

static void
test_scan(void)
{
	struct store *st;
	size_t count;
	uint64_t octets, size;
	char path[512], target[] = "/tmp/test_store_outside";

	clear();
	st = open_store();
	store_stat(st, &count, &octets);
	ok(st && count == 0 && octets == 0, "empty maildrop: 0 messages");
	store_close(st);

	put("lf", "a\nb\n", 0);			/* 6 on the wire */
	put("crlf", "a\r\nb\r\n", 0);		/* 6 */
	put(".hidden", "x", 0);			/* 3: CRLF added */
	put(target + 5, "outside\n", 0);	/* placeholder, removed below */
	snprintf(path, sizeof(path), "%s/%s", dir, target + 5);
	unlink(path);
	put("../test_store_outside", "secret\n", 0);
	snprintf(path, sizeof(path), "%s/link", dir);
	if (symlink(target, path) < 0)
		perror("symlink");
	snprintf(path, sizeof(path), "%s/sub", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/fifo", dir);
	mkfifo(path, 0644);

	st = open_store();
	store_stat(st, &count, &octets);
	ok(st && count == 3, "regular files only (dotfile in, link/dir/fifo out)");
	ok(octets == 15, "sizes as sent: LF 6 + CRLF 6 + unterminated 3 = %llu",
	    (unsigned long long)octets);
	ok(store_size(st, 4, &size) == STORE_NOMSG, "no message 4");
	ok(store_size(st, 0, &size) == STORE_NOMSG, "no message 0");
	store_close(st);
	unlink(target);
}

static void
test_numbers_fixed(void)
{
	struct store *st;
	uint64_t s1, s2;
	const char *u1, *u2;
	size_t count;
	uint64_t octets;

	clear();
	put("a", "1\n", 0);
	put("b", "22\n", 0);
	st = open_store();
	store_size(st, 1, &s1);
	store_uid(st, 1, &u1);
	put("c", "333\n", 0);			/* arrives during the session */
	store_size(st, 1, &s2);
	store_uid(st, 1, &u2);
	store_stat(st, &count, &octets);
	ok(count == 2 && s1 == s2 && strcmp(u1, u2) == 0,
	    "numbering fixed for the session");
	store_close(st);
}

static void
test_send(void)
{
	static char out[65536];
	struct store *st;
	size_t len;
	const char *want;

	clear();
	put("m", "Subject: x\n\n.dot\nline2\nline3", 0);
	st = open_store();
	want = "+OK\r\nSubject: x\r\n\r\n..dot\r\nline2\r\nline3\r\n.\r\n";
	ok(capture(st, 1, -1, out, &len) == STORE_OK &&
	    len == strlen(want) && memcmp(out, want, len) == 0, "RETR bytes");
	want = "+OK\r\nSubject: x\r\n\r\n..dot\r\n.\r\n";
	ok(capture(st, 1, 1, out, &len) == STORE_OK &&
	    len == strlen(want) && memcmp(out, want, len) == 0, "TOP 1 bytes");

	/* Replaced after the snapshot: refused, nothing written. */
	put("m", "Subject: y\n\nother\n", 0);
	ok(capture(st, 1, -1, out, &len) == STORE_GONE && len == 0,
	    "replaced file answers GONE and writes nothing");
	store_close(st);

	st = open_store();
	unlink("/nonexistent");
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/m", dir);
		unlink(path);
	}
	ok(capture(st, 1, -1, out, &len) == STORE_GONE && len == 0,
	    "vanished file answers GONE");
	store_close(st);
}

static void
test_commit(void)
{
	struct store *st, *other;
	size_t removed, failed, count;
	uint64_t octets;

	clear();
	put("a", "1\n", 0);
	put("b", "2\n", 0);
	put("c", "3\n", 0);
	st = open_store();
	other = open_store();
	ok(store_dele(st, 1) == STORE_OK && store_dele(st, 2) == STORE_OK,
	    "mark two");
	ok(store_dele(st, 1) == STORE_DELETED, "mark twice refused");
	store_rset(st);
	store_stat(st, &count, &octets);
	ok(count == 3, "RSET unmarks");
	store_dele(st, 1);
	store_dele(st, 2);
	store_close(st);
	ok(exists("a") && exists("b"), "closing without commit removes nothing");

	st = open_store();
	/* Mark a and b again; another session removes a. */
	store_dele(st, num(st, "a"));
	store_dele(st, num(st, "b"));
	store_dele(other, num(other, "a"));
	store_commit(other, &removed, &failed);
	ok(removed == 1 && !exists("a"), "other session removed one");
	store_commit(st, &removed, &failed);
	ok(removed == 1 && failed == 0 && !exists("b") && exists("c"),
	    "commit removes only what is left of the marked, once");
	store_close(st);
	store_close(other);

	/* A marked file replaced by a new one of the same name is kept. */
	clear();
	put("a", "1\n", 0);
	st = open_store();
	store_dele(st, 1);
	{
		char p1[512], p2[512];

		snprintf(p1, sizeof(p1), "%s/tmpnew", dir);
		snprintf(p2, sizeof(p2), "%s/a", dir);
		put("tmpnew", "new mail\n", 0);
		rename(p1, p2);
	}
	store_commit(st, &removed, &failed);
	ok(removed == 0 && exists("a"), "replaced file not removed at commit");
	store_close(st);
}

static void
test_delete_now(void)
{
	struct store *st;
	size_t removed, failed, count, i;
	uint64_t octets, size;

	clear();
	put("a", "1\n", 0);
	put("b", "2\n", 0);
	opts.delete_now = 1;
	st = open_store();
	i = num(st, "a");
	ok(store_dele(st, i) == STORE_OK && !exists("a"), "delete-now unlinks at DELE");
	store_rset(st);
	store_stat(st, &count, &octets);
	ok(count == 1 && store_size(st, i, &size) == STORE_DELETED,
	    "delete-now: RSET cannot bring it back, numbers stay");
	store_commit(st, &removed, &failed);
	ok(exists("b"), "commit leaves the rest");
	store_close(st);
	opts.delete_now = 0;
}

static void
test_order_and_uid(void)
{
	struct store *st;
	const char *u;
	char *u1;
	size_t i, n;
	uint64_t size;
	char longname[200];

	clear();
	put("zz", "old\n", 1000000000);
	put("aa", "new\n", 1700000000);
	put("mm", "mid\n", 1500000000);
	opts.order = STORE_ORDER_ARRIVAL;
	st = open_store();
	store_size(st, 1, &size);
	ok(store_uid(st, 1, &u) == STORE_OK && strncmp(u, "zz:", 3) == 0,
	    "arrival order: oldest first (%s)", u);
	store_uid(st, 3, &u);
	ok(strncmp(u, "aa:", 3) == 0, "arrival order: newest last");
	store_close(st);
	opts.order = STORE_ORDER_DIRECTORY;

	clear();
	memset(longname, 'x', 100);
	longname[100] = '\0';
	put(longname, "m\n", 1600000000);
	put("with space", "m\n", 1600000000);
	put("plain", "m\n", 1600000000);
	st = open_store();
	n = store_last(st);
	for (i = 1; i <= n; i++) {
		const char *p;
		int good;

		store_uid(st, i, &u);
		good = strlen(u) >= 1 && strlen(u) <= 70;
		for (p = u; *p; p++)
			good &= *p >= 0x21 && *p <= 0x7e;
		ok(good, "uid %zu is 1-70 printable characters: %s", i, u);
	}
	store_close(st);

	st = open_store();
	store_uid(st, 1, &u);
	u1 = strdup(u);
	store_close(st);
	st = open_store();
	store_uid(st, 1, &u);
	ok(strcmp(u1, u) == 0, "uid stable across sessions");
	store_close(st);
	free(u1);

	clear();
	put("same", "one\n", 1600000000);
	st = open_store();
	store_uid(st, 1, &u);
	u1 = strdup(u);
	store_close(st);
	put("same", "two\n", 1600000100);
	st = open_store();
	store_uid(st, 1, &u);
	ok(strcmp(u1, u) != 0, "a new file reusing the name gets a new uid");
	store_close(st);
	free(u1);
}

static void
test_exclusive(void)
{
	struct store *a, *b = NULL;

	clear();
	put("a", "1\n", 0);
	opts.exclusive = 1;
	opts.lock_wait = 0;
	a = open_store();
	ok(a != NULL, "first exclusive session gets the lock");
	ok(store_open(&b, dir, &opts) == STORE_INUSE, "second gets IN-USE");
	store_close(a);
	ok(store_open(&b, dir, &opts) == STORE_OK, "lock free after close");
	store_close(b);
	opts.exclusive = 0;
}

static void
test_cache(void)
{
	struct store *st;
	uint64_t size;

	clear();
	put("a", "1\n2\n", 0);
	opts.cache = store_cache_new();
	st = open_store();
	store_size(st, 1, &size);
	store_close(st);
	ok(size == 6, "cold size");
	put("a", "1\n2\n3\n4\n", 0);		/* same name, changed */
	st = open_store();
	store_size(st, 1, &size);
	store_close(st);
	ok(size == 12, "a changed file is measured again (%llu)",
	    (unsigned long long)size);

	/* A settled directory: its listing is reused by the next session. */
	{
		static char out[65536];
		struct timeval old[2] = { { 1600000000, 0 }, { 1600000000, 0 } };
		size_t count, len;
		uint64_t octets;

		clear();
		put("a", "1\n", 1500000000);
		put("b", "22\n", 1500000000);
		utimes(dir, old);
		sleep(2);	/* let the directory's ctime settle too */
		st = open_store();
		store_stat(st, &count, &octets);
		store_close(st);
		ok(count == 2 && octets == 7, "settled maildrop listed");
		put("a", "changed in place\n", 1500000000);	/* dir untouched */
		st = open_store();
		ok(capture(st, num(st, "a"), -1, out, &len) == STORE_GONE,
		    "file changed in place: GONE, never wrong bytes");
		store_close(st);
		st = open_store();
		store_size(st, num(st, "a"), &size);
		ok(size == 18, "next session lists it afresh (%llu)",
		    (unsigned long long)size);
		store_close(st);
		put("c", "3\n", 0);				/* dir changes */
		st = open_store();
		store_stat(st, &count, &octets);
		ok(count == 3, "new mail seen at once");
		store_close(st);
	}
	store_cache_free(opts.cache);
	opts.cache = NULL;
}

/* A Maildir: new/ moved to cur/, delivery order, base-name ids, tmp/ and
 * dotfiles never served, messages found again after a flag change. */
static void
test_maildir(void)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	struct store_opts mo = opts;
	struct store *st = NULL;
	char path[512], out[65536];
	const char *u1 = "", *u2 = "", *u3 = "";
	size_t i, len, count, removed, failed;
	uint64_t octets;

	clear();
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		mkdir(path, 0700);
	}
	put("new/1700000200.M2P2.host", "Subject: two\n\n2\n", 1700000200);
	/* the earlier stamp wins over the later mtime */
	put("new/1700000100.M1P1.host", "Subject: one\n\n1\n", 1700000300);
	put("cur/1700000300.M3P3.host:2,S", "Subject: three\n\n3\n",
	    1700000000);
	put("cur/.hidden:2,", "x\n", 0);
	put("new/.1700000050.M0P0.host", "x\n", 0);
	put("tmp/1700000400.M4P4.host", "Subject: half\n", 0);
	mo.layout = STORE_LAYOUT_AUTO;
	ok(store_open(&st, dir, &mo) == STORE_OK, "Maildir opened (auto)");
	if (st == NULL)
		return;
	store_stat(st, &count, &octets);
	ok(count == 3, "three messages, not tmp/ nor dotfiles (%zu)", count);
	store_uid(st, 1, &u1);
	store_uid(st, 2, &u2);
	store_uid(st, 3, &u3);
	ok(strcmp(u1, "1700000100.M1P1.host") == 0 &&
	    strcmp(u2, "1700000200.M2P2.host") == 0 &&
	    strcmp(u3, "1700000300.M3P3.host") == 0,
	    "delivery order, base names as ids (%s %s %s)", u1, u2, u3);
	ok(exists("cur/1700000100.M1P1.host:2,") &&
	    exists("cur/1700000200.M2P2.host:2,") &&
	    !exists("new/1700000100.M1P1.host"), "new/ moved to cur/, :2,");
	ok(exists("new/.1700000050.M0P0.host") &&
	    exists("tmp/1700000400.M4P4.host"), "dotfile and tmp/ untouched");
	rename_in("cur/1700000100.M1P1.host:2,", "cur/1700000100.M1P1.host:2,S");
	ok(capture(st, 1, -1, out, &len) == STORE_OK &&
	    memmem(out, len, "Subject: one", 12) != NULL,
	    "RETR after a flag change");
	ok(store_dele(st, 1) == STORE_OK, "DELE after a flag change");
	ok(store_dele(st, 3) == STORE_OK, "DELE 3");
	rename_in("cur/1700000100.M1P1.host:2,S",
	    "cur/1700000100.M1P1.host:2,RS");
	rename_in("cur/1700000300.M3P3.host:2,S",
	    "cur/1700000300.M3P3.host:2,ST");
	ok(store_commit(st, &removed, &failed) == STORE_OK && removed == 2 &&
	    failed == 0, "commit removes both under their new flags (%zu %zu)",
	    removed, failed);
	ok(!exists("cur/1700000100.M1P1.host:2,RS") &&
	    !exists("cur/1700000300.M3P3.host:2,ST") &&
	    exists("cur/1700000200.M2P2.host:2,"), "exactly those removed");
	store_close(st);
	st = NULL;

	mo.layout = STORE_LAYOUT_FLAT;
	ok(store_open(&st, dir, &mo) == STORE_OK, "a Maildir as flat");
	if (st != NULL) {
		store_stat(st, &count, &octets);
		ok(count == 0, "flat: no file at the top, no message");
		store_close(st);
		st = NULL;
	}
	clear();
	put("a", "Subject: flat\n\n", 0);
	mo.layout = STORE_LAYOUT_MAILDIR;
	ok(store_open(&st, dir, &mo) == STORE_NODIR,
	    "--layout maildir on a flat folder: NODIR");
	ok(store_layout_of(dir, STORE_LAYOUT_AUTO) == STORE_LAYOUT_FLAT &&
	    store_layout_of(dir, STORE_LAYOUT_MAILDIR) < 0 && errno == ENOTDIR,
	    "store_layout_of");
	clear();
}

int
main(void)
{
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	log_init("test_store", 1);
	opts.order = STORE_ORDER_DIRECTORY;
	opts.index_fd = -1;
	test_scan();
	test_numbers_fixed();
	test_send();
	test_commit();
	test_delete_now();
	test_order_and_uid();
	test_exclusive();
	test_cache();
	test_maildir();
	clear();
	rmdir(dir);
	return tap_done();
}
