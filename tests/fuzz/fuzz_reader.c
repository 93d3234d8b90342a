/*
 * fuzz_reader.c: libFuzzer harness for the line reader (proto.c
 * reader_line), checked against a plain model of the contract in proto.h.
 *
 * Input: byte 0 picks the limits (command line or SASL line) and the
 * read pattern, bytes 1-4 the sizes of successive reads (1..64 each,
 * cycled), the rest is the stream.  Reads may also fail with EAGAIN or
 * EINTR, which the reader must survive without losing or duplicating a
 * byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "params.h"
#include "proto.h"

struct feed {
	const uint8_t	*p;
	size_t		 n, off;
	uint8_t		 sizes[4];
	unsigned	 calls;
	int		 faults;	/* inject EAGAIN and EINTR */
};

static ssize_t
feed_read(struct pio *io, void *buf, size_t n)
{
	struct feed *f = io->ctx;
	size_t k;

	f->calls++;
	if (f->faults && f->calls % 7 == 3) {
		errno = f->calls % 2 ? EAGAIN : EINTR;
		return -1;
	}
	k = 1 + f->sizes[f->calls % 4] % 64;
	if (k > n)
		k = n;
	if (k > f->n - f->off)
		k = f->n - f->off;
	memcpy(buf, f->p + f->off, k);
	f->off += k;
	return k;
}

static ssize_t
feed_write(struct pio *io, const void *buf, size_t n)
{
	(void)io;
	(void)buf;
	return n;
}

/* What the layer still holds: while there is some, the reader does not
 * poll the fd (a /dev/null, always readable, for the end of input). */
static size_t
feed_pending(struct pio *io)
{
	struct feed *f = io->ctx;

	return f->n - f->off;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int nullfd = -1;
	static struct reader r;
	struct feed f;
	struct pio io;
	char out[SASL_LINE_MAX + 1];
	size_t maxlen, cap, pos, len, guard;
	enum line_status st;

	if (size < 5)
		return 0;
	if (nullfd < 0 && (nullfd = open("/dev/null", O_RDONLY)) < 0)
		abort();
	if (data[0] & 1) {
		maxlen = SASL_LINE_MAX;
		cap = SASL_LINE_MAX + 1;
	} else {
		maxlen = POP3_CMD_MAX;
		cap = POP3_CMD_MAX + 1;
	}
	memset(&f, 0, sizeof(f));
	memcpy(f.sizes, data + 1, 4);
	f.faults = (data[0] & 2) != 0;
	f.p = data + 5;
	f.n = size - 5;
	memset(&io, 0, sizeof(io));
	io.read = feed_read;
	io.write = feed_write;
	io.pending = feed_pending;
	io.rfd = nullfd;
	io.wfd = -1;
	io.ctx = &f;
	reader_init(&r, &io);

	/* The model: lines end at LF; one CR before it goes; a line of more
	 * than maxlen octets (LF included) is one LINE_TOOLONG, and so is an
	 * unterminated tail of maxlen octets or more; a shorter
	 * unterminated tail is dropped at EOF. */
	pos = 0;
	for (guard = 0;; guard++) {
		const uint8_t *s = f.p + pos, *nl;
		size_t left = f.n - pos, octets, l;

		if (guard > 2 * f.n + 64)
			abort();	/* the reader loops without progress */
		st = reader_line(&r, out, cap, maxlen, &len, 1000);
		if (st == LINE_INTR)
			continue;
		nl = memchr(s, '\n', left);
		if (nl == NULL) {
			if (left >= maxlen) {
				if (st != LINE_TOOLONG)
					abort();
				pos = f.n;
				continue;
			}
			if (st != LINE_EOF)
				abort();
			break;
		}
		octets = nl - s + 1;
		pos += octets;
		if (octets > maxlen) {
			if (st != LINE_TOOLONG)
				abort();
			continue;
		}
		l = octets - 1;
		if (l > 0 && s[l - 1] == '\r')
			l--;
		if (st != (memchr(s, '\0', l) ? LINE_NUL : LINE_OK))
			abort();
		if (len != l || memcmp(out, s, l) != 0 || out[l] != '\0')
			abort();
	}
	/* EOF stays EOF. */
	while ((st = reader_line(&r, out, cap, maxlen, &len, 1000)) ==
	    LINE_INTR)
		;
	if (st != LINE_EOF)
		abort();
	return 0;
}
