/*
 * test_maildir.c: unit tests of maildir.c on temporary directories.
 */
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "maildir.h"
#include "tap.h"

static char dir[] = "/tmp/test_maildir.XXXXXX";

/* Run cmd in the scratch folder (the working directory). */
static void
sh(const char *cmd)
{
	if (system(cmd) != 0)
		fprintf(stderr, "# failed: %s\n", cmd);
}

static void
put(const char *path, const char *content)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, content, strlen(content)) < 0)
		perror(path);
	if (fd >= 0)
		close(fd);
}

static int
exists(const char *path)
{
	struct stat sb;

	return lstat(path, &sb) == 0;
}

static int
opendir_fd(const char *path)
{
	return open(path, O_RDONLY | O_DIRECTORY);
}

static void
test_detect(void)
{
	int fd = opendir_fd(".");

	sh("rm -rf *");
	ok(maildir_detect(fd) == 0, "empty folder is no Maildir");
	sh("mkdir cur new");
	ok(maildir_detect(fd) == 0, "no tmp/: no Maildir");
	put("tmp", "x");
	ok(maildir_detect(fd) == 0, "tmp a file: no Maildir");
	sh("rm tmp && mkdir tmp");
	ok(maildir_detect(fd) == 1, "cur, new, tmp: a Maildir");
	sh("rmdir cur && mkdir elsewhere && ln -s elsewhere cur");
	ok(maildir_detect(fd) == 0, "cur a symlink to a folder: no Maildir");
	sh("rm cur && mkdir cur");
	put("cur/1.x", "a message");
	ok(maildir_detect(fd) == 1, "files inside do not matter");
	close(fd);
}

static void
test_names(void)
{
	char buf[32];

	ok(maildir_is_msg_name("1700000000.M1P2.host"), "a delivery name");
	ok(!maildir_is_msg_name(".hidden"), "a dotfile is no message");
	ok(!maildir_is_msg_name(""), "empty name");
	ok(maildir_base_len("123.abc:2,S") == 7, "base ends at ':'");
	ok(maildir_base_len("123.abc") == 7, "no ':': all of it");
	ok(maildir_base_len(":2,S") == 0, "':' first");
	ok(maildir_base_len("a:b:c") == 1, "first ':' counts");
	ok(maildir_cur_name("123.abc", buf, sizeof(buf)) == 0 &&
	    strcmp(buf, "123.abc:2,") == 0, "cur name appends :2,");
	ok(maildir_cur_name("123.abc:2,S", buf, sizeof(buf)) == 0 &&
	    strcmp(buf, "123.abc:2,S") == 0, "info kept as it is");
	ok(maildir_cur_name("01234567890123456789012345678", buf,
	    sizeof(buf)) == -1, "too long for the buffer");
	ok(maildir_cur_name("0123456789012345678901234567", buf,
	    sizeof(buf)) == 0, "fits exactly");
}

static void
test_wsize(void)
{
	uint64_t w = 0;

	ok(maildir_wsize("1795.M1P2.vm,S=38,W=43:2,S", &w) == 1 && w == 43,
	    "Dovecot's ,W= read");
	ok(maildir_wsize("1795.M1P2.vm,W=7,S=5", &w) == 1 && w == 7,
	    ",W= before ,S=");
	ok(maildir_wsize("1795.M1P2.vm,S=38", &w) == 0, "no ,W=");
	ok(maildir_wsize("1795.M1P2.vm:2,W=43", &w) == 0,
	    "only in the base, not in the flags");
	ok(maildir_wsize("1795.M1P2.vm,W=", &w) == 0, "no digits");
	ok(maildir_wsize("1795.M1P2.vm,W=4x", &w) == 0, "not a number");
	ok(maildir_wsize("1795.M1P2.vm,W=99999999999999999999", &w) == 0,
	    "20 digits: refused, no overflow");
	ok(maildir_wsize("1795.M1P2.vm,W=9999999999999999999", &w) == 1 &&
	    w == 9999999999999999999ULL, "19 digits");
	ok(maildir_wsize("1795.x,W=1,W=2", &w) == 1 && w == 1, "the first");
}

static void
test_move(void)
{
	struct maildir md;
	char buf[256];
	int fd = opendir_fd(".");

	sh("rm -rf *; mkdir cur new tmp");
	put("new/100.a.host", "one");
	put("new/101.b.host:2,S", "two");
	put("new/102.c.host", "three");
	put("cur/102.c.host:2,", "other");
	ok(maildir_open(&md, fd) == 0, "open new and cur");
	ok(maildir_move(&md, "100.a.host", buf, sizeof(buf)) == 1 &&
	    strcmp(buf, "100.a.host:2,") == 0, "moved with :2,");
	ok(exists("cur/100.a.host:2,") && !exists("new/100.a.host"),
	    "file is in cur/ only");
	ok(maildir_move(&md, "100.a.host", buf, sizeof(buf)) == 0,
	    "second move: gone (0)");
	ok(maildir_move(&md, "101.b.host:2,S", buf, sizeof(buf)) == 1 &&
	    exists("cur/101.b.host:2,S"), "name with info moved as it is");
	errno = 0;
	ok(maildir_move(&md, "102.c.host", buf, sizeof(buf)) == -1 &&
	    errno == EEXIST, "never over a file of cur/");
	ok(exists("new/102.c.host"), "and the new one stays");
	maildir_close(&md);
	ok(md.fd[0] == -1 && md.fd[1] == -1, "closed");
	sh("rm -rf new");
	ok(maildir_open(&md, fd) == -1, "open fails without new/");
	close(fd);
}

static void
test_order(void)
{
	struct timespec t1 = { 1000, 5 }, t2 = { 1000, 6 }, t3 = { 2000, 0 };

	ok(maildir_order("900.x", &t3, "1000.a", &t1) < 0,
	    "name's timestamp first, mtime later");
	ok(maildir_order("1000.x", &t1, "999.a", &t1) > 0,
	    "timestamps compared as numbers");
	ok(maildir_order("1000.x", &t2, "1000.y", &t1) > 0,
	    "same stamp: mtime (ns)");
	ok(maildir_order("1000.b", &t1, "1000.a:2,S", &t1) > 0,
	    "same stamp and mtime: base name");
	ok(maildir_order("1000.a:2,", &t1, "1000.a:2,S", &t1) < 0,
	    "then the whole name");
	ok(maildir_order("1000.a", &t1, "1000.a", &t1) == 0, "equal");
	ok(maildir_order("nostamp", &t1, "1500.a", &t1) < 0,
	    "no stamp: the mtime's second (1000 < 1500)");
	ok(maildir_order("nostamp", &t3, "1500.a", &t1) > 0,
	    "no stamp: the mtime's second (2000 > 1500)");
	ok(maildir_order("12abc", &t1, "1500.a", &t1) < 0,
	    "digits without '.' are no stamp");
	ok(maildir_order("9999999999999999999.a", &t1, "1500.a", &t1) < 0,
	    "19 digits are no stamp (no overflow)");
}

static void
test_find(void)
{
	struct maildir_names *nm;
	const char *p;
	int fd;

	sh("rm -rf *; mkdir cur");
	put("cur/100.a:2,S", "x");
	put("cur/101.b:2,", "x");
	put("cur/101.bb:2,", "x");
	put("cur/102.c", "x");
	put("cur/.103.d:2,", "x");
	sh("mkdir cur/104.e:2,");
	fd = opendir_fd("cur");
	ok((nm = maildir_names_read(fd)) != NULL, "read names");
	p = maildir_names_find(nm, "100.a:2,");
	ok(p != NULL && strcmp(p, "100.a:2,S") == 0, "found under new flags");
	p = maildir_names_find(nm, "101.b:2,T");
	ok(p != NULL && strcmp(p, "101.b:2,") == 0,
	    "base 101.b, not 101.bb");
	p = maildir_names_find(nm, "101.bb");
	ok(p != NULL && strcmp(p, "101.bb:2,") == 0, "base 101.bb");
	p = maildir_names_find(nm, "102.c:2,");
	ok(p != NULL && strcmp(p, "102.c") == 0, "name without info");
	ok(maildir_names_find(nm, ".103.d:2,") == NULL, "dotfile not listed");
	ok(maildir_names_find(nm, "104.e:2,") == NULL, "folder not listed");
	ok(maildir_names_find(nm, "105.f:2,") == NULL, "unknown base");
	ok(maildir_names_find(nm, "1") == NULL, "prefix of a base");
	maildir_names_free(nm);
	put("cur/100.a:2,", "x");
	nm = maildir_names_read(fd);
	p = nm ? maildir_names_find(nm, "100.a:2,") : NULL;
	ok(p != NULL && strcmp(p, "100.a:2,") == 0,
	    "two names with one base: the exact one");
	maildir_names_free(nm);
	sh("rm -rf cur/*");
	nm = maildir_names_read(fd);
	ok(nm != NULL && maildir_names_find(nm, "100.a") == NULL,
	    "empty folder");
	maildir_names_free(nm);
	close(fd);
}

int
main(void)
{
	log_init("test_maildir", 1);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (chdir(dir) < 0) {
		perror(dir);
		return 1;
	}
	test_detect();
	test_names();
	test_wsize();
	test_move();
	test_order();
	test_find();
	if (chdir("/") == 0) {
		char cmd[64];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		sh(cmd);
	}
	return tap_done();
}
