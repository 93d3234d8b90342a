/*
 * test_proto.c: unit tests of proto.c, table-driven.  Every stream case is
 * fed whole, byte by byte, and split at each boundary.
 */
#include <sys/socket.h>

#include <sys/wait.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "tap.h"

/* ---- strict numbers ---- */

static void
test_numbers(void)
{
	static const struct { const char *s; uint64_t max; int ok; uint64_t v; } t[] = {
		{ "1", 100, 1, 1 }, { "0", 100, 1, 0 }, { "100", 100, 1, 100 },
		{ "101", 100, 0, 0 }, { "007", 100, 1, 7 }, { "", 100, 0, 0 },
		{ "-1", 100, 0, 0 }, { "+1", 100, 0, 0 }, { " 1", 100, 0, 0 },
		{ "1 ", 100, 0, 0 }, { "1a", 100, 0, 0 }, { "0x10", 100, 0, 0 },
		{ "18446744073709551615", UINT64_MAX, 1, UINT64_MAX },
		{ "18446744073709551616", UINT64_MAX, 0, 0 },
		{ "99999999999999999999999", UINT64_MAX, 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t v = 12345;
		int r = proto_number(t[i].s, t[i].max, &v);

		ok((r == 0) == t[i].ok && (!t[i].ok || v == t[i].v),
		    "number '%s' max %llu", t[i].s, (unsigned long long)t[i].max);
	}
}

/* ---- the encoder, through a writer on a pipe ---- */

struct capture {
	int	 fds[2];
	char	 out[1 << 16];
	size_t	 len;
};

static void
drain(struct capture *c)
{
	ssize_t k;

	while ((k = read(c->fds[0], c->out + c->len, sizeof(c->out) - c->len)) > 0)
		c->len += k;
}

/* Encode in with top, feeding pieces of step bytes (0: whole). */
static size_t
encode(const char *in, size_t n, long top, size_t step, char *out,
    uint64_t *octets)
{
	struct capture c = { .len = 0 };
	struct pio io;
	struct writer *w = malloc(sizeof(*w));
	struct dotenc e;
	size_t i;

	socketpair(AF_UNIX, SOCK_STREAM, 0, c.fds);
	pio_init_fd(&io, c.fds[0], c.fds[1]);
	writer_init(w, &io, 1000);
	dotenc_init(&e, top);
	if (step == 0)
		step = n ? n : 1;
	for (i = 0; i < n; i += step)
		if (dotenc_feed(&e, in + i, n - i < step ? n - i : step, w) == 1)
			break;
	dotenc_finish(&e, w);
	*octets = e.octets;
	writer_flush(w);
	close(c.fds[1]);
	drain(&c);
	close(c.fds[0]);
	free(w);
	memcpy(out, c.out, c.len);
	return c.len;
}

static const struct enc_case {
	const char *name, *in, *out;
	long top;
} enc_cases[] = {
	{ "empty", "", ".\r\n", -1 },
	{ "one LF line", "a\n", "a\r\n.\r\n", -1 },
	{ "CRLF kept", "a\r\nb\r\n", "a\r\nb\r\n.\r\n", -1 },
	{ "mixed endings", "a\r\nb\nc\r\n", "a\r\nb\r\nc\r\n.\r\n", -1 },
	{ "no final newline", "a\nb", "a\r\nb\r\n.\r\n", -1 },
	{ "dot stuffed", ".\n..x\n.y\nz.\n", "..\r\n...x\r\n..y\r\nz.\r\n.\r\n", -1 },
	{ "dot last without newline", "a\n.", "a\r\n..\r\n.\r\n", -1 },
	{ "bare CR kept", "a\rb\n", "a\rb\r\n.\r\n", -1 },
	{ "blank lines", "\n\n", "\r\n\r\n.\r\n", -1 },
	{ "top 0", "H: 1\nH: 2\n\nb1\nb2\n", "H: 1\r\nH: 2\r\n\r\n.\r\n", 0 },
	{ "top 1", "H: 1\n\nb1\nb2\n", "H: 1\r\n\r\nb1\r\n.\r\n", 1 },
	{ "top beyond", "H: 1\n\nb1\nb2", "H: 1\r\n\r\nb1\r\nb2\r\n.\r\n", 10 },
	{ "top CRLF", "H: 1\r\n\r\n.b1\r\nb2\r\n", "H: 1\r\n\r\n..b1\r\n.\r\n", 1 },
	{ "top no body", "H: 1\nH: 2\n", "H: 1\r\nH: 2\r\n.\r\n", 0 },
	{ "top blank body lines", "H\n\n\n\nx\n", "H\r\n\r\n\r\n\r\n.\r\n", 2 },
};

/* Expected octets: output minus the final ".\r\n" and minus stuffing. */
static void
test_encoder(void)
{
	char out[4096];
	size_t i, step;

	for (i = 0; i < sizeof(enc_cases) / sizeof(enc_cases[0]); i++) {
		const struct enc_case *t = &enc_cases[i];
		size_t n = strlen(t->in), want = strlen(t->out);
		int all = 1;

		for (step = 0; step <= (n ? n : 1); step++) {
			uint64_t oct;
			size_t got = encode(t->in, n, t->top, step, out, &oct);

			if (got != want || memcmp(out, t->out, want) != 0)
				all = 0;
		}
		ok(all, "encode %s, whole and every split", t->name);
	}
}

/* dotsize agrees with the encoder on every case, whatever the split. */
static void
test_dotsize(void)
{
	size_t i, cut;

	for (i = 0; i < sizeof(enc_cases) / sizeof(enc_cases[0]); i++) {
		const struct enc_case *t = &enc_cases[i];
		size_t n = strlen(t->in);
		char out[4096];
		uint64_t oct;
		int all = 1;

		if (t->top >= 0)
			continue;
		encode(t->in, n, -1, 0, out, &oct);
		for (cut = 0; cut <= n; cut++) {
			struct dotsize ds;
			uint64_t total;

			dotsize_init(&ds);
			dotsize_feed(&ds, t->in, cut);
			dotsize_feed(&ds, t->in + cut, n - cut);
			total = dotsize_total(&ds);
			if (total != oct)
				all = 0;
		}
		ok(all, "dotsize of %s matches the encoder", t->name);
	}
}

/* ---- the decoder ---- */

static const struct dec_case {
	const char *name, *in, *text;
	size_t rest;		/* bytes after the terminator left unused */
} dec_cases[] = {
	{ "empty body", ".\r\n", "", 0 },
	{ "plain", "a\r\nb\r\n.\r\n", "a\r\nb\r\n", 0 },
	{ "unstuff", "..\r\n...x\r\n.y\r\n.\r\n", ".\r\n..x\r\ny\r\n", 0 },
	{ "dot inside", "a.\r\n a .\r\n.\r\n", "a.\r\n a .\r\n", 0 },
	{ "bytes after", "a\r\n.\r\n+OK next\r\n", "a\r\n", 10 },
	{ "bare LF terminator", "a\n.\n", "a\n", 0 },
	{ ".CR not LF", ".\rx\r\n.\r\n", "\rx\r\n", 0 },
};

static void
test_decoder(void)
{
	size_t i, step;

	for (i = 0; i < sizeof(dec_cases) / sizeof(dec_cases[0]); i++) {
		const struct dec_case *t = &dec_cases[i];
		size_t n = strlen(t->in);
		int all = 1;

		for (step = 1; step <= n; step++) {
			struct dotdec d;
			char out[256], buf[256];
			size_t olen = 0, used = 0;
			int done = 0;

			dotdec_init(&d);
			while (!done && used < n) {
				size_t take = n - used < step ? n - used : step, got;

				used += dotdec_feed(&d, t->in + used, take, buf, &got,
				    &done);
				memcpy(out + olen, buf, got);
				olen += got;
			}
			if (!done || olen != strlen(t->text) ||
			    memcmp(out, t->text, olen) != 0 || n - used != t->rest)
				all = 0;
		}
		ok(all, "decode %s, in pieces of every size", t->name);
	}
}

/* ---- the line reader ---- */

static void
feed_lines(const char *in, size_t n, size_t step, char *log, size_t cap)
{
	int sv[2];
	struct pio io;
	struct reader *r = malloc(sizeof(*r));
	char line[POP3_CMD_MAX + 1];
	size_t i, len;
	enum line_status st;

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	pio_init_fd(&io, sv[0], sv[0]);
	reader_init(r, &io);
	log[0] = '\0';
	if (fork() == 0) {
		close(sv[0]);
		for (i = 0; i < n; i += step) {
			if (write(sv[1], in + i, n - i < step ? n - i : step) < 0)
				_exit(1);
			usleep(step < 8 ? 200 : 0);
		}
		_exit(0);
	}
	close(sv[1]);
	while ((st = reader_line(r, line, sizeof(line), POP3_CMD_MAX, &len,
	    5000)) != LINE_EOF && st != LINE_TIMEOUT && st != LINE_ERROR) {
		char ent[300];

		if (st == LINE_OK)
			snprintf(ent, sizeof(ent), "[%s]", line);
		else if (st == LINE_TOOLONG)
			snprintf(ent, sizeof(ent), "[LONG]");
		else if (st == LINE_NUL)
			snprintf(ent, sizeof(ent), "[NUL]");
		else
			continue;
		strncat(log, ent, cap - strlen(log) - 1);
	}
	close(sv[0]);
	free(r);
	while (wait(NULL) > 0)
		;
}

static void
test_reader(void)
{
	static char l253[254], l254[255], l255[256], big[4000];
	static char keep[5][8200];	/* inputs and expectations built below */
	char log[2048], in[8192];
	struct { const char *name; const char *in; size_t n; const char *want; } t[6];
	size_t i, k, steps[] = { 0, 1, 2, 7, 100 };

	memset(l253, 'a', 253);
	memset(l254, 'b', 254);
	memset(l255, 'c', 255);
	memset(big, 'd', sizeof(big) - 1);

	/* 253 + CRLF = 255 octets: fits.  254 + CRLF = 256: too long. */
	snprintf(in, sizeof(in), "%s\r\nSTAT\r\n", l253);
	t[0].name = "253 octets + CRLF";
	t[0].in = strcpy(keep[0], in);
	snprintf(log, sizeof(log), "[%s][STAT]", l253);
	t[0].want = strcpy(keep[1], log);
	snprintf(in, sizeof(in), "%s\r\nSTAT\r\n", l254);
	t[1].name = "254 octets + CRLF";
	t[1].in = strcpy(keep[2], in);
	t[1].want = "[LONG][STAT]";
	snprintf(in, sizeof(in), "%s\nSTAT\n", l254);
	t[2].name = "254 octets + bare LF";
	t[2].in = strcpy(keep[3], in);
	snprintf(log, sizeof(log), "[%s][STAT]", l254);
	t[2].want = strcpy(keep[4], log);
	snprintf(in, sizeof(in), "%s\r\nNOOP\r\n", big);
	t[3].name = "3999 octets";
	t[3].in = in;
	t[3].want = "[LONG][NOOP]";
	t[4].name = "CR LF split, bare LF, CR inside";
	t[4].in = "A\r\nB\nC\rD\r\n\r\n";
	t[4].want = "[A][B][C\rD][]";
	t[5].name = "NUL";
	t[5].in = "NO\0OP\r\nQUIT\r\n";
	t[5].want = "[NUL][QUIT]";

	for (i = 0; i < 6; i++) {
		size_t n = i == 5 ? 13 : strlen(t[i].in);
		int all = 1;

		for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			feed_lines(t[i].in, n, steps[k] ? steps[k] : n, log,
			    sizeof(log));
			if (strcmp(log, t[i].want) != 0) {
				printf("# step %zu got %.80s\n", steps[k], log);
				all = 0;
			}
		}
		ok(all, "reader: %s", t[i].name);
	}
}

/* proto_read_fd: all of n bytes however they arrive; an early end is
 * -1 with EIO, never a short read taken for whole. */
static void
test_read_fd(void)
{
	char buf[8];
	int p[2];

	if (pipe(p) < 0)
		abort();
	ok(write(p[1], "abcd", 4) == 4 && write(p[1], "efgh", 4) == 4 &&
	    proto_read_fd(p[0], buf, 8) == 0 && memcmp(buf, "abcdefgh", 8) == 0,
	    "read_fd: two writes read as one");
	ok(write(p[1], "xyz", 3) == 3 && close(p[1]) == 0 &&
	    proto_read_fd(p[0], buf, 8) == -1 && errno == EIO,
	    "read_fd: an end after 3 of 8 bytes is EIO");
	close(p[0]);
}

int
main(void)
{
	test_numbers();
	test_encoder();
	test_dotsize();
	test_decoder();
	test_reader();
	test_read_fd();
	return tap_done();
}
