/*
 * fuzz_reply.c: libFuzzer harness for pop3c's reply reader (client.c
 * client_reply: status line, then a multi-line body un-stuffed, shown and
 * saved).  The input is what a server sends, read through an in-memory
 * connection in reads of 1..64 bytes; up to 32 replies are read in a row,
 * each checked against a plain model of the wire:
 *
 * - the status line is the bytes up to LF, CRLF removed, cut to
 *   CLIENT_LINE_MAX - 1 octets when longer (nothing removed then), and
 *   its kind (+OK, "+" continuation, -ERR, neither) follows from it;
 * - a body runs to the line "." (CRLF or LF), every other line keeps its
 *   bytes less a leading '.', and what is saved is exactly that; the
 *   next reply starts right after the terminator;
 * - at end of input in the middle of a body, what was saved is a prefix
 *   of that; past the size limit the read stops (CLIENT_TOOBIG);
 * - a listing's entries have a word of at most UIDL_MAX octets;
 * - what is shown is safe for a terminal: valid UTF-8 with no control
 *   character but TAB and LF, no DEL and no C1 character.
 *
 * Input: bytes 0-3 say, bit by bit, which replies are multi-line, byte 4
 * which of them are listings, bytes 5-8 the read sizes (the low 6 bits;
 * the top bit of byte 5 sets a body limit of 100 octets); the rest is the
 * server's bytes.
 */
#include <sys/mman.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"

#define REPLIES_MAX	32

struct feed {
	const uint8_t	*p;
	size_t		 n, off;
	uint8_t		 sizes[4];
	unsigned	 calls;
};

static ssize_t
feed_read(struct pio *io, void *buf, size_t n)
{
	struct feed *f = io->ctx;
	size_t k = 1 + f->sizes[f->calls++ % 4] % 64;

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

static size_t
feed_pending(struct pio *io)
{
	struct feed *f = io->ctx;

	return f->n - f->off;
}

#define LIMIT_OCTETS	100

static int nullfd = -1, savefd = -1;
static char *saved, *want;

/* A listing's entry: the word is bounded and NUL ended. */
static void
entry(void *arg, uint64_t n, const char *word)
{
	(void)n;
	if (strlen(word) > UIDL_MAX)
		abort();
	++*(size_t *)arg;
}

/* Strict UTF-8 without C0 (but TAB and LF), DEL or C1 characters. */
static void
check_shown(const unsigned char *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = p[i], cp, need, k;

		if (c < 0x80) {
			if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
				abort();
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			cp = c & 0x07;
		} else
			abort();
		if (need >= n - i)
			abort();
		for (k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				abort();
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp <= 0x9f))
			abort();
		i += need + 1;
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if ((nullfd = open("/dev/null", O_RDONLY)) < 0 ||
	    (savefd = memfd_create("pop3c-fuzz-save", MFD_CLOEXEC)) < 0)
		abort();
	return 0;
}

/* The body at s[0..n) decoded into out: its length; *used gets the
 * bytes up to and including the terminator, or n when there is none
 * (*done then 0). */
static size_t
model_body(const uint8_t *s, size_t n, char *out, size_t *used, int *done)
{
	size_t q = 0, o = 0;

	*done = 0;
	while (q < n) {
		const uint8_t *nl = memchr(s + q, '\n', n - q);
		size_t l = (nl ? (size_t)(nl - s) + 1 : n) - q;
		const uint8_t *line = s + q;

		if (nl != NULL && ((l == 2 && line[0] == '.') ||
		    (l == 3 && line[0] == '.' && line[1] == '\r'))) {
			*done = 1;
			*used = q + l;
			return o;
		}
		if (line[0] == '.') {
			line++;
			l--;
		}
		memcpy(out + o, line, l);
		o += l;
		q += (line - (s + q)) + l;
	}
	*used = n;
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct client_conn c;
	struct client_sink sink;
	struct feed f;
	uint32_t multi;
	size_t pos, i, entries = 0, shownlen = 0;
	uint64_t limit;
	char *showbuf = NULL;
	FILE *shown;

	if (size < 9)
		return 0;
	multi = (uint32_t)data[0] | (uint32_t)data[1] << 8 |
	    (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
	memset(&f, 0, sizeof(f));
	memcpy(f.sizes, data + 5, 4);
	limit = data[5] & 0x80 ? LIMIT_OCTETS : 0;
	f.p = data + 9;
	f.n = size - 9;
	free(saved);
	free(want);
	if ((saved = malloc(f.n + 1)) == NULL ||
	    (want = malloc(f.n + 1)) == NULL)
		abort();

	client_init(&c, nullfd, -1, 1000);
	c.io.read = feed_read;
	c.io.write = feed_write;
	c.io.pending = feed_pending;
	c.io.ctx = &f;
	reader_init(&c.r, &c.io);
	if ((shown = open_memstream(&showbuf, &shownlen)) == NULL)
		abort();

	pos = 0;
	for (i = 0; i < REPLIES_MAX; i++) {
		const uint8_t *s = f.p + pos, *nl;
		size_t left = f.n - pos, raw, l, used, wl;
		int m = (multi >> i) & 1, done;
		enum client_rc rc;
		uint64_t cnt;
		ssize_t k;

		memset(&sink, 0, sizeof(sink));
		sink.out = shown;
		sink.fd = savefd;
		sink.listing = (data[4] >> (i % 8)) & 1;
		sink.entry = entry;
		sink.arg = &entries;
		sink.max_octets = limit;
		if (ftruncate(savefd, 0) < 0 || lseek(savefd, 0, SEEK_SET) < 0)
			abort();
		rc = client_reply(&c, m, &sink);
		if (c.linelen >= sizeof(c.line) || c.line[c.linelen] != '\0')
			abort();

		/* The status line. */
		if ((nl = memchr(s, '\n', left)) == NULL) {
			if (rc != CLIENT_EOF)
				abort();
			break;
		}
		raw = nl - s + 1;
		l = raw;
		if (raw > sizeof(c.line) - 1)
			l = sizeof(c.line) - 1;
		else {
			l--;
			if (l > 0 && s[l - 1] == '\r')
				l--;
		}
		if (c.linelen != l || memcmp(c.line, s, l) != 0)
			abort();
		if (l >= 3 && memcmp(s, "+OK", 3) == 0) {
			if (c.status != CLIENT_ST_OK)
				abort();
		} else if (l >= 1 && s[0] == '+') {
			if (c.status != CLIENT_ST_CONT)
				abort();
		} else if (c.status != CLIENT_ST_ERR)
			abort();
		if (l == 0 || (s[0] != '+' && s[0] != '-')) {
			if (rc != CLIENT_PROTO)
				abort();
		} else if (rc != CLIENT_OK && !(m && c.status == CLIENT_ST_OK &&
		    (rc == CLIENT_EOF || rc == CLIENT_TOOBIG)))
			abort();
		if (client_stat_count(c.line, 1000, &cnt) == 0 && cnt > 1000)
			abort();
		pos += raw;
		if (!m || c.status != CLIENT_ST_OK || l == 0 ||
		    rc == CLIENT_PROTO)
			continue;

		/* The body. */
		wl = model_body(f.p + pos, f.n - pos, want, &used, &done);
		k = pread(savefd, saved, f.n + 1, 0);
		if (k < 0 || (uint64_t)k != sink.saved || sink.save_failed)
			abort();
		if (limit > 0 && wl > limit) {
			/* Stopped at the limit, or at the end of input. */
			if ((rc != CLIENT_TOOBIG && (done || rc != CLIENT_EOF)) ||
			    (size_t)k > limit || memcmp(saved, want, k) != 0)
				abort();
			break;
		}
		if (done) {
			if (rc != CLIENT_OK || (size_t)k != wl ||
			    memcmp(saved, want, wl) != 0)
				abort();
		} else if (rc != CLIENT_EOF || (size_t)k > wl ||
		    memcmp(saved, want, k) != 0)
			abort();
		pos += used;
		if (!done)
			break;
	}
	/* No TLS here: the pio's ctx is the feed, nothing to end. */
	c.io.ctx = NULL;
	if (fclose(shown) != 0)
		abort();
	check_shown((const unsigned char *)showbuf, shownlen);
	free(showbuf);
	return 0;
}
