/*
 * fuzz_dotstuff.c: libFuzzer harness for the byte-stuffing encoder
 * (file to wire, pop3d) and decoder (wire to text, pop3c) of proto.c, as a
 * round trip:
 *
 * - decode(encode(m)) is m with CRLF line ends (a bare LF becomes CRLF, a
 *   last line without LF gets CRLF), and the decoder stops exactly at the
 *   terminating ".\r\n", the last bytes the encoder wrote;
 * - the encoder's octet counter and dotsize (the size LIST and RETR
 *   announce) both equal the length of that text, and the wire holds
 *   exactly that text plus one '.' per line that starts with one, plus
 *   the terminator;
 * - with a TOP limit, the text is the header, the empty line and at most
 *   that many body lines of the same normalized message.
 *
 * Input: byte 0 the encoder's chunk size (1..256), byte 1 the decoder's,
 * byte 2 the TOP line count (255: whole message), the rest is m.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

struct mem {
	char	*p;
	size_t	 len, cap;
};

static ssize_t
mem_write(struct pio *io, const void *buf, size_t n)
{
	struct mem *m = io->ctx;

	if (m->len + n > m->cap)
		abort();	/* more than the worst case of stuffing */
	memcpy(m->p + m->len, buf, n);
	m->len += n;
	return n;
}

static ssize_t
mem_read(struct pio *io, void *buf, size_t n)
{
	(void)io;
	(void)buf;
	(void)n;
	return 0;
}

static size_t
mem_pending(struct pio *io)
{
	(void)io;
	return 0;
}

/* m with CRLF line ends: bare LF to CRLF, CRLF added to a last line
 * without LF.  Returns the length; out holds 2 * n + 2 bytes.  *lines gets
 * the offsets just past each line end (at most n + 1 of them). */
static size_t
normalize(const uint8_t *m, size_t n, char *out, size_t *ends, size_t *nends)
{
	size_t i, o = 0;

	*nends = 0;
	for (i = 0; i < n; i++) {
		if (m[i] == '\n' && (i == 0 || m[i - 1] != '\r'))
			out[o++] = '\r';
		out[o++] = m[i];
		if (m[i] == '\n')
			ends[(*nends)++] = o;
	}
	if (n > 0 && m[n - 1] != '\n') {
		out[o++] = '\r';
		out[o++] = '\n';
		ends[(*nends)++] = o;
	}
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t estep, dstep, n, normlen, nends, want, i, k, off, outlen;
	size_t dots, used, decoded;
	size_t *ends;
	long top;
	const uint8_t *m;
	char *norm, *text;
	struct dotenc e;
	struct dotdec d;
	struct dotsize ds;
	struct writer *w;
	struct mem wire;
	struct pio io;
	int done, r;

	if (size < 3)
		return 0;
	estep = 1 + data[0];
	dstep = 1 + data[1];
	top = data[2] == 255 ? -1 : data[2];
	m = data + 3;
	n = size - 3;

	norm = malloc(2 * n + 2);
	ends = malloc((n + 1) * sizeof(*ends));
	wire.cap = 3 * n + 8;	/* '.' + CR + LF per byte at most, + ".\r\n" */
	wire.p = malloc(wire.cap);
	wire.len = 0;
	text = malloc(wire.cap + 1);
	w = malloc(sizeof(*w));
	if (norm == NULL || ends == NULL || wire.p == NULL || text == NULL ||
	    w == NULL)
		abort();
	normlen = normalize(m, n, norm, ends, &nends);

	/* What should arrive: everything, or the TOP cut. */
	want = normlen;
	if (top >= 0) {
		for (i = 0; i < nends; i++) {
			size_t start = i ? ends[i - 1] : 0;

			if (ends[i] - start == 2) {	/* the empty line */
				if (i + top < nends)
					want = ends[i + top];
				break;
			}
		}
	}

	/* Encode in chunks of estep through a writer. */
	memset(&io, 0, sizeof(io));
	io.read = mem_read;
	io.write = mem_write;
	io.pending = mem_pending;
	io.rfd = io.wfd = -1;
	io.ctx = &wire;
	writer_init(w, &io, -1);
	dotenc_init(&e, top);
	for (off = 0, r = 0; off < n && r == 0; off += k) {
		k = n - off < estep ? n - off : estep;
		if ((r = dotenc_feed(&e, (const char *)m + off, k, w)) < 0)
			abort();
	}
	if (dotenc_finish(&e, w) < 0 || writer_flush(w) < 0)
		abort();
	if (w->total != wire.len)
		abort();

	/* The counters. */
	if (e.octets != want)
		abort();
	if (top < 0) {
		dotsize_init(&ds);
		for (off = 0; off < n; off += k) {
			k = n - off < estep ? n - off : estep;
			dotsize_feed(&ds, (const char *)m + off, k);
		}
		if (dotsize_total(&ds) != normlen)
			abort();
	}
	for (i = 0, dots = 0; i < nends && (i ? ends[i - 1] : 0) < want; i++)
		if (norm[i ? ends[i - 1] : 0] == '.')
			dots++;
	if (wire.len != want + dots + 3 ||
	    memcmp(wire.p + wire.len - 3, ".\r\n", 3) != 0)
		abort();

	/* Decode in chunks of dstep: the text comes back, the terminator
	 * is found at the very end of the wire and not before. */
	dotdec_init(&d);
	decoded = 0;
	done = 0;
	for (off = 0; off < wire.len && !done; off += used) {
		k = wire.len - off < dstep ? wire.len - off : dstep;
		used = dotdec_feed(&d, wire.p + off, k, text + decoded,
		    &outlen, &done);
		if (used == 0 || used > k || outlen > k + 1)
			abort();
		decoded += outlen;
		if (decoded > want)
			abort();
	}
	if (!done || off != wire.len)
		abort();
	if (decoded != want || memcmp(text, norm, want) != 0)
		abort();

	free(w);
	free(text);
	free(wire.p);
	free(ends);
	free(norm);
	return 0;
}
