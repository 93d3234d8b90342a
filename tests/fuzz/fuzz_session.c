/*
 * fuzz_session.c: libFuzzer harness for a whole pop3d session.  The input
 * is what a client sends: it goes into one end of a socketpair, closed
 * after it, and session_run() serves the other end on a small temporary
 * maildrop (the open mode, no user database: every command is reachable
 * without a password delay).  Replies go to a memory file and are checked
 * for shape: the greeting first, every line ended by CRLF, and a bounded
 * amount per command.
 *
 * A first byte below 0x40 is not sent but picks options: 1 --exclusive,
 * 2 --delete-now, 4 --order arrival, 8 the shared size cache,
 * 16 --max-messages 4 (fewer than the maildrop holds), 32 a Maildir
 * (messages in new/ and in cur/ with flags) instead of the flat folder.
 *
 * The maildrop holds messages in the awkward shapes (dot lines, CRLF, no
 * final newline, a bare CR at the end, empty, header only, a dotfile)
 * next to entries that are no messages (a folder, a symlink); files that
 * a session removed are put back before the next input.
 */
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "params.h"
#include "session.h"
#include "store.h"

static const struct {
	const char	*name;
	const char	*body;
} msgs[] = {
	{ "01-plain", "From: a@example.org\nTo: b@example.org\n"
	    "Subject: plain\n\nline one\nline two\nline three\n" },
	{ "02-dots", "Subject: dots\n\n.\n..\n.hidden\n...three\n. \n"
	    ".\r\nend\n" },
	{ "03-crlf", "Subject: crlf\r\n\r\nbody one\r\nbody two\r\n" },
	{ "04-nofinal", "Subject: no final newline\n\nlast line" },
	{ "05-bare-cr", "Subject: bare\rcr\n\nends in a bare CR\r" },
	{ "06-empty", "" },
	{ "07-header-only", "Subject: header only\nX-Note: no body\n" },
	{ ".dotfile", "Subject: a dotfile is a message too\n\nyes\n" },
};
#define NMSGS	(sizeof(msgs) / sizeof(msgs[0]))

/* The Maildir: the same messages under Maildir names. */
static const struct {
	const char	*name;
	int		 msg;		/* index in msgs */
} mdmsgs[] = {
	{ "new/1700000001.M1P10.fuzz", 0 },
	{ "new/1700000002.M2P10.fuzz", 1 },
	{ "cur/1600000003.M3P10.fuzz:2,S", 2 },
	{ "cur/1600000004.M4P10.fuzz:2,", 3 },
	{ "cur/1600000005.M5P10.fuzz:2,RST", 4 },
	{ "cur/1600000006.M6P10.fuzz", 5 },
	{ "new/1700000007.M7P10.fuzz:2,S", 6 },
};
#define NMDMSGS	(sizeof(mdmsgs) / sizeof(mdmsgs[0]))

/* Input beyond this is not sent: it fits the socket buffer at once. */
#define INPUT_MAX	65536

static char maildrop[PATH_MAX];
static char mdroot[PATH_MAX];	/* the Maildir: a folder of the flat one */
static int outfd = -1;
static struct store_cache *cache;

static void
put_file(const char *dir, const char *name, const char *body)
{
	char path[PATH_MAX];
	size_t n = strlen(body);
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    write(fd, body, n) != (ssize_t)n || close(fd) < 0) {
		perror(path);
		abort();
	}
}

/* Put back what the last session removed. */
static void
restore(void)
{
	struct stat sb;
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < NMSGS; i++) {
		snprintf(path, sizeof(path), "%s/%s", maildrop, msgs[i].name);
		if (lstat(path, &sb) < 0 ||
		    (size_t)sb.st_size != strlen(msgs[i].body))
			put_file(maildrop, msgs[i].name, msgs[i].body);
	}
}

/* Empty new/, cur/ and tmp/ of the Maildir. */
static void
empty_maildir(void)
{
	static const char *subs[] = { "new", "cur", "tmp" };
	char path[PATH_MAX];
	struct dirent *de;
	size_t i;
	DIR *d;

	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", mdroot, subs[i]);
		if ((d = opendir(path)) == NULL)
			abort();
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) < 0)
				abort();
		}
		closedir(d);
	}
}

/* Lay the Maildir out anew: a session moves new/ to cur/. */
static void
restore_maildir(void)
{
	size_t i;

	empty_maildir();
	for (i = 0; i < NMDMSGS; i++)
		put_file(mdroot, mdmsgs[i].name, msgs[mdmsgs[i].msg].body);
}

static void
cleanup(void)
{
	char path[PATH_MAX];
	size_t i;

	for (i = 0; i < NMSGS; i++) {
		snprintf(path, sizeof(path), "%s/%s", maildrop, msgs[i].name);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/link", maildrop);
	unlink(path);
	snprintf(path, sizeof(path), "%s/folder", maildrop);
	rmdir(path);
	empty_maildir();
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", mdroot,
		    i == 0 ? "new" : i == 1 ? "cur" : "tmp");
		rmdir(path);
	}
	rmdir(mdroot);
	rmdir(maildrop);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	char path[PATH_MAX];

	(void)argc;
	(void)argv;
	/* Logging stays in the code but goes nowhere. */
	setlogmask(LOG_MASK(LOG_EMERG));
	signal(SIGPIPE, SIG_IGN);
	snprintf(maildrop, sizeof(maildrop), "%s/pop3d-fuzz.XXXXXX",
	    tmp != NULL ? tmp : "/tmp");
	if (mkdtemp(maildrop) == NULL) {
		perror("mkdtemp");
		abort();
	}
	atexit(cleanup);
	snprintf(path, sizeof(path), "%s/folder", maildrop);
	if (mkdir(path, 0700) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/link", maildrop);
	if (symlink("01-plain", path) < 0)
		abort();
	restore();
	snprintf(mdroot, sizeof(mdroot), "%s/Maildir", maildrop);
	if (mkdir(mdroot, 0700) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/new", mdroot);
	if (mkdir(path, 0700) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/cur", mdroot);
	if (mkdir(path, 0700) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/tmp", mdroot);
	if (mkdir(path, 0700) < 0)
		abort();
	restore_maildir();
	if ((outfd = memfd_create("pop3d-fuzz-out", MFD_CLOEXEC)) < 0)
		abort();
	if ((cache = store_cache_new()) == NULL)
		abort();
	return 0;
}

/* The replies: greeting first, nothing but CRLF-ended lines. */
static void
check_output(size_t sent)
{
	static char buf[1 << 20];
	off_t len = lseek(outfd, 0, SEEK_CUR);
	ssize_t k;
	size_t i;

	/* At most a few listings or messages per command sent. */
	if (len < 0 || (size_t)len > 64 + (sent + 1) * 4096)
		abort();
	if ((size_t)len > sizeof(buf))
		return;
	if ((k = pread(outfd, buf, len, 0)) != len)
		abort();
	if (k < 17 || memcmp(buf, "+OK pop3d ready\r\n", 17) != 0)
		abort();
	if (buf[k - 1] != '\n')
		abort();
	for (i = 0; i < (size_t)k; i++)
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session_cfg cfg;
	struct peer peer;
	int sv[2];
	unsigned flags = 0;

	if (size > INPUT_MAX)
		return 0;
	if (size > 0 && data[0] < 0x40) {
		flags = data[0];
		data++;
		size--;
	}
	restore();
	if (flags & 32)
		restore_maildir();
	if (ftruncate(outfd, 0) < 0 || lseek(outfd, 0, SEEK_SET) < 0)
		abort();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (size > 0 && write(sv[1], data, size) != (ssize_t)size)
		abort();
	if (shutdown(sv[1], SHUT_WR) < 0)
		abort();

	memset(&cfg, 0, sizeof(cfg));
	cfg.maildrop = flags & 32 ? mdroot : maildrop;
	cfg.users = NULL;
	cfg.timeout = 30;
	cfg.store.order = flags & 4 ? STORE_ORDER_ARRIVAL :
	    STORE_ORDER_DIRECTORY;
	cfg.store.exclusive = (flags & 1) != 0;
	cfg.store.lock_wait = 1;
	cfg.store.delete_now = (flags & 2) != 0;
	cfg.store.cache = flags & 8 ? cache : NULL;
	cfg.store.max_messages = flags & 16 ? 4 : 0;
	cfg.store.index_fd = -1;		/* no index: each run starts cold */
	peer_from_fd(&peer, sv[0]);
	session_run(sv[0], outfd, &cfg, &peer);

	close(sv[0]);
	close(sv[1]);
	check_output(size);
	return 0;
}
