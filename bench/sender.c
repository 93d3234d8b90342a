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
 */
#include <sys/socket.h>

#include <arpa/inet.h>
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
	int one = 1, lfd;

	if (argc < 2 || argc > 3 || (argc == 2 && strcmp(argv[1], "-") != 0)) {
		fprintf(stderr, "usage: sender PORT FILE | sender - [FILE]\n");
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	if (argc == 3)
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
		serve(fd, fd);
		close(fd);
	}
}
