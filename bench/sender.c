/*
 * bench/sender.c: the machine's ceiling for RETR.
 *
 *   sender PORT FILE
 *   sender - [FILE]
 *
 * Computes once, in memory, the exact wire form of FILE (the same bytes
 * a POP3 server sends for RETR: CRLF, byte-stuffed, ".\r\n") and then
 * serves connections one at a time on 127.0.0.1:PORT with just enough
 * POP3 for loadgen: a greeting, "+OK" to USER/PASS/STAT/NOOP, "LIST 1"
 * with the size, "RETR" as one status line plus the whole buffer handed
 * to the kernel in as few write(2) calls as it takes, QUIT.  No file
 * I/O and no conversion on the path: what is left is the loopback copy.
 *
 * With "-" as PORT it serves one session on stdin/stdout instead: run
 * under `systemd-socket-activate --accept --inetd` it is the floor of the
 * stdio mode (fork + exec of a small C program per session).
 *
 *   sender --top PORT DIR
 *
 * The ceiling for TOP n 0: loads every file of the flat maildrop DIR at
 * start (directory order, as pop3d numbers them), keeps each one's whole
 * answer to "TOP n 0" (status line, the header stuffed with CRLF ends, the
 * empty line, ".\r\n") and its wire size, and answers USER, PASS,
 * "STAT" (count and total), "TOP n 0" and QUIT from memory: one read and
 * one write per command, no other system call on the path.
 */
#include <sys/socket.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <strings.h>

#include "common.h"

static void
out(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n) {
		ssize_t w = write(fd, s, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		s += w;
		n -= w;
	}
}

static unsigned char *wire;
static size_t wlen;
static uint64_t octets;

/* --top: the answer to TOP n 0 of each message, and the STAT line. */
struct top {
	char	*ans;
	size_t	 len;
};
static struct top *tops;
static size_t ntops;
static char statline[64];

/* The wire answer to "TOP n 0" of the file's bytes in[0..n). */
static void
top_make(struct top *t, const unsigned char *in, size_t n, uint64_t *octets)
{
	const unsigned char *p = in, *end = in + n;
	static const char st[] = "+OK top of message follows\r\n";
	char *o;
	int hdr = 1;

	if ((t->ans = malloc(sizeof(st) + 2 * n + 8)) == NULL)
		die("malloc");
	memcpy(t->ans, st, sizeof(st) - 1);
	o = t->ans + sizeof(st) - 1;
	*octets = 0;
	while (p < end) {
		const unsigned char *nl = memchr(p, '\n', end - p);
		size_t k = (nl ? nl : end) - p;

		if (k && p[k - 1] == '\r')
			k--;
		*octets += k + 2;
		if (hdr) {
			if (k && *p == '.')
				*o++ = '.';
			memcpy(o, p, k);
			o += k;
			*o++ = '\r';
			*o++ = '\n';
			if (k == 0)
				hdr = 0;	/* the empty line: body follows */
		}
		p = nl ? nl + 1 : end;
	}
	memcpy(o, ".\r\n", 3);
	t->len = o + 3 - t->ans;
}

static void
top_load(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t total = 0;
	size_t cap = 0;

	if (d == NULL)
		die(dir);
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat sb;
		unsigned char *in;
		uint64_t oct;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if ((fd = open(path, O_RDONLY)) < 0 || fstat(fd, &sb) < 0)
			die(path);
		if (!S_ISREG(sb.st_mode)) {
			close(fd);
			continue;
		}
		if ((in = malloc(sb.st_size + 1)) == NULL)
			die("malloc");
		if (read(fd, in, sb.st_size) != sb.st_size)
			die(path);
		close(fd);
		if (ntops == cap) {
			cap = cap ? 2 * cap : 1024;
			if ((tops = realloc(tops, cap * sizeof(*tops))) == NULL)
				die("realloc");
		}
		top_make(&tops[ntops++], in, sb.st_size, &oct);
		total += oct;
		free(in);
	}
	closedir(d);
	snprintf(statline, sizeof(statline), "+OK %zu %llu\r\n", ntops,
	    (unsigned long long)total);
}

/* One session of the TOP responder: each read's commands answered in one
 * write (a client that waits for each answer sends one per read). */
static void
serve_top(int fd)
{
	char buf[1024], obuf[1 << 16];
	size_t len = 0;

	out(fd, "+OK top ready\r\n", 15);
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len - 1);
		size_t olen = 0;
		char *nl;
		int quit = 0;

		if (r <= 0)
			return;
		len += r;
		while (!quit && (nl = memchr(buf, '\n', len)) != NULL) {
			const char *a = "+OK\r\n";
			size_t alen = 5;
			unsigned long n;

			*nl = '\0';
			if (strncasecmp(buf, "TOP ", 4) == 0 &&
			    (n = strtoul(buf + 4, NULL, 10)) >= 1 && n <= ntops) {
				a = tops[n - 1].ans;
				alen = tops[n - 1].len;
			} else if (strncasecmp(buf, "STAT", 4) == 0) {
				a = statline;
				alen = strlen(statline);
			} else if (strncasecmp(buf, "QUIT", 4) == 0) {
				a = "+OK bye\r\n";
				alen = 9;
				quit = 1;
			}
			if (olen + alen > sizeof(obuf)) {
				out(fd, obuf, olen);
				olen = 0;
			}
			if (alen > sizeof(obuf))
				out(fd, a, alen);
			else {
				memcpy(obuf + olen, a, alen);
				olen += alen;
			}
			len -= nl + 1 - buf;
			memmove(buf, nl + 1, len);
		}
		out(fd, obuf, olen);
		if (quit)
			return;
		if (len == sizeof(buf) - 1)
			len = 0;
	}
}

static void
serve(int in, int fd)
{
	char buf[1024];
	size_t len = 0;
	int open_ = 1;

	out(fd, "+OK sender ready\r\n", 18);
	while (open_) {
		ssize_t r = read(in, buf + len, sizeof(buf) - len - 1);
		char *nl;

		if (r <= 0)
			break;
		len += r;
		while ((nl = memchr(buf, '\n', len)) != NULL) {
			char st[128];

			*nl = '\0';
			if (strncasecmp(buf, "RETR", 4) == 0 && wire) {
				int n = snprintf(st, sizeof(st),
				    "+OK %llu octets\r\n",
				    (unsigned long long)octets);

				out(fd, st, n);
				out(fd, wire, wlen);
			} else if (strncasecmp(buf, "LIST", 4) == 0 && wire) {
				int n = snprintf(st, sizeof(st),
				    "+OK 1 %llu\r\n",
				    (unsigned long long)octets);

				out(fd, st, n);
			} else if (strncasecmp(buf, "QUIT", 4) == 0) {
				out(fd, "+OK bye\r\n", 9);
				open_ = 0;
				break;
			} else {
				out(fd, "+OK\r\n", 5);
			}
			len -= nl + 1 - buf;
			memmove(buf, nl + 1, len);
		}
		if (len == sizeof(buf) - 1)
			len = 0;
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in a;
	int one = 1, lfd, top = 0;

	if (argc == 4 && strcmp(argv[1], "--top") == 0) {
		top = 1;
		argv++;
		argc--;
	} else if (argc < 2 || argc > 3 ||
	    (argc == 2 && strcmp(argv[1], "-") != 0)) {
		fprintf(stderr, "usage: sender PORT FILE | sender - [FILE] | "
		    "sender --top PORT DIR\n");
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	if (top)
		top_load(argv[2]);
	else if (argc == 3)
		wire = wire_load(argv[2], &wlen, &octets);
	if (strcmp(argv[1], "-") == 0) {
		setsockopt(1, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		serve(0, 1);
		return 0;
	}
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons(atoi(argv[1]));
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
		die("socket");
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 64) < 0)
		die("bind/listen");
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (top)
			serve_top(fd);
		else
			serve(fd, fd);
		close(fd);
	}
}
