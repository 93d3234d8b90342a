/*
 * bench/common.h: shared by the benchmark tools (loadgen, sender).
 *
 * wire_load() builds, in memory, the exact bytes a POP3 server must send
 * for "RETR n" after its status line: every line ends in CRLF (a bare LF
 * becomes CRLF, a last line without a newline gets one), a line that
 * begins with '.' gets one more '.', and the terminating ".\r\n" follows.
 * Byte-stuffing is a bijection, so comparing the wire with this buffer is
 * the same as comparing the un-stuffed message with the file's CRLF form.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline void
die(const char *what)
{
	fprintf(stderr, "bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/*
 * Returns a malloc'd buffer of the wire form (stuffed, CRLF, with the
 * final ".\r\n"); *wlen its length; *octets the message size as LIST
 * reports it (CRLF form, before stuffing).
 */
static inline unsigned char *
wire_load(const char *path, size_t *wlen, uint64_t *octets)
{
	int fd = open(path, O_RDONLY);
	struct stat sb;
	const unsigned char *in, *p, *end;
	unsigned char *out, *o;
	uint64_t oct = 0;

	if (fd < 0 || fstat(fd, &sb) < 0)
		die(path);
	in = sb.st_size ? mmap(NULL, sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0)
	    : (const unsigned char *)"";
	if (in == MAP_FAILED)
		die("mmap");
	/* worst case: every byte a '.' line of its own */
	out = malloc((size_t)sb.st_size * 3 + 8);
	if (out == NULL)
		die("malloc");
	o = out;
	p = in;
	end = in + sb.st_size;
	while (p < end) {
		const unsigned char *nl = memchr(p, '\n', end - p);
		size_t n = (nl ? nl : end) - p;

		if (n && p[n - 1] == '\r')	/* CRLF already in the file */
			n--;
		if (n && *p == '.')
			*o++ = '.';
		memcpy(o, p, n);
		o += n;
		*o++ = '\r';
		*o++ = '\n';
		oct += n + 2;
		p = nl ? nl + 1 : end;
	}
	memcpy(o, ".\r\n", 3);
	o += 3;
	if (sb.st_size)
		munmap((void *)in, sb.st_size);
	close(fd);
	*wlen = o - out;
	*octets = oct;
	return out;
}

#endif
