/*
 * test_client.c: unit tests of pop3c's reply reader (client.c) without a
 * terminal or a socket: each reply is fed through an in-memory pio, whole
 * and in pieces of 1, 2, 3 and 7 bytes, and the status, the shown text,
 * the saved bytes and the bytes left for the next reply are compared.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "tap.h"

/* An in-memory connection: at most chunk bytes per read. */
struct mem {
	const char	*data;
	size_t		 len, pos, chunk;
};

static ssize_t
mem_read(struct pio *p, void *buf, size_t n)
{
	struct mem *m = p->ctx;

	if (n > m->len - m->pos)
		n = m->len - m->pos;
	if (n > m->chunk)
		n = m->chunk;
	memcpy(buf, m->data + m->pos, n);
	m->pos += n;
	return n;
}

static ssize_t
mem_write(struct pio *p, const void *buf, size_t n)
{
	(void)p;
	(void)buf;
	return n;
}

static size_t
mem_pending(struct pio *p)
{
	struct mem *m = p->ctx;

	return m->len - m->pos;
}

static const struct rcase {
	const char	*name;
	const char	*in;
	int		 multi, listing;
	enum client_rc	 rc;
	enum client_status st;
	const char	*line;		/* status line read */
	const char	*shown;		/* on the sink's out, status line too */
	const char	*saved;		/* NULL: nothing saved */
	uint64_t	 maxnum;
	const char	*left;		/* bytes left for the next reply */
} cases[] = {
	{ "one-line +OK", "+OK 2 320\r\n", 0, 0, CLIENT_OK, CLIENT_ST_OK,
	    "+OK 2 320", "+OK 2 320\n", NULL, 0, "" },
	{ "bare LF", "+OK hi\n", 0, 0, CLIENT_OK, CLIENT_ST_OK,
	    "+OK hi", "+OK hi\n", NULL, 0, "" },
	{ "-ERR to a multi-line command", "-ERR no such message\r\n1 2\r\n",
	    1, 0, CLIENT_OK, CLIENT_ST_ERR, "-ERR no such message",
	    "-ERR no such message\n", NULL, 0, "1 2\r\n" },
	{ "SASL continuation", "+ \r\n", 0, 0, CLIENT_OK, CLIENT_ST_CONT,
	    "+ ", "+ \n", NULL, 0, "" },
	{ "not + or -", "HELLO\r\n", 1, 0, CLIENT_PROTO, CLIENT_ST_ERR,
	    "HELLO", "HELLO\n", NULL, 0, "" },
	{ "body un-stuffed, next reply kept",
	    "+OK\r\nline1\r\n..dot\r\n\r\n.\r\n+OK next\r\n", 1, 0,
	    CLIENT_OK, CLIENT_ST_OK, "+OK", "+OK\nline1\n.dot\n\n",
	    "line1\r\n.dot\r\n\r\n", 0, "+OK next\r\n" },
	{ "lone CR shown", "+OK\r\na\rb\r\n.\r\n", 1, 0, CLIENT_OK,
	    CLIENT_ST_OK, "+OK", "+OK\na^Mb\n", "a\rb\r\n", 0, "" },
	{ "escapes made visible, saved exactly",
	    "+OK \x1b]0;t\x07\r\n\x1b[2J\x9b\x7f\x01\r\n.\r\n", 1, 0,
	    CLIENT_OK, CLIENT_ST_OK, "+OK \x1b]0;t\x07",
	    "+OK ^[]0;t^G\n^[[2J\\x9b^?^A\n",
	    "\x1b[2J\x9b\x7f\x01\r\n", 0, "" },
	{ "UTF-8 kept, C1 and bad bytes visible",
	    "+OK\r\n\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xc2\x9b[2J \xc0\x80 "
	    "\xed\xa0\x80 \xf0\x9f\x98\x80 \xe2\x82\r\n.\r\n", 1, 0,
	    CLIENT_OK, CLIENT_ST_OK, "+OK",
	    "+OK\n\xc3\xa9t\xc3\xa9 \xe2\x82\xac \\u009b[2J \\xc0\\x80 "
	    "\\xed\\xa0\\x80 \xf0\x9f\x98\x80 \\xe2\\x82\n",
	    "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xc2\x9b[2J \xc0\x80 "
	    "\xed\xa0\x80 \xf0\x9f\x98\x80 \xe2\x82\r\n", 0, "" },
	{ "lone CR in a status line", "-ERR a\rb\x01" "c\r\n", 0, 0,
	    CLIENT_OK, CLIENT_ST_ERR, "-ERR a\rb\x01" "c", "-ERR a^Mb^Ac\n",
	    NULL, 0, "" },
	{ "empty body", "+OK\r\n.\r\n", 1, 0, CLIENT_OK, CLIENT_ST_OK,
	    "+OK", "+OK\n", "", 0, "" },
	{ "listing numbers", "+OK\r\n1 10\r\n17 20\r\n3 30\r\n.\r\n", 1, 1,
	    CLIENT_OK, CLIENT_ST_OK, "+OK", "+OK\n1 10\n17 20\n3 30\n",
	    "1 10\r\n17 20\r\n3 30\r\n", 17, "" },
	{ "closed in the body", "+OK\r\nabc", 1, 0, CLIENT_EOF, CLIENT_ST_OK,
	    "+OK", "+OK\nabc\n", "abc", 0, "" },
	{ "closed before the status", "", 1, 0, CLIENT_EOF, CLIENT_ST_ERR,
	    "", "", NULL, 0, "" },
	{ "closed in the status", "+O", 1, 0, CLIENT_EOF, CLIENT_ST_ERR,
	    "+O", "", NULL, 0, "" },
};

static char *
slurp(int fd, size_t *len)
{
	static char buf[65536];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	*len = n < 0 ? 0 : (size_t)n;
	buf[*len] = '\0';
	return buf;
}

static void
run_case(const struct rcase *t, size_t chunk)
{
	struct client_conn *c = calloc(1, sizeof(*c));
	struct client_sink s;
	struct mem m = { t->in, strlen(t->in), 0, chunk };
	char *shown = NULL, *saved;
	size_t shownlen = 0, savedlen;
	FILE *out = open_memstream(&shown, &shownlen);
	int devnull = open("/dev/null", O_RDONLY);
	int fd = fileno(tmpfile());
	enum client_rc rc;

	if (c == NULL || out == NULL || devnull < 0 || fd < 0) {
		ok(0, "%s: setup: %s", t->name, strerror(errno));
		return;
	}
	client_init(c, devnull, devnull, 2000);
	c->io.read = mem_read;
	c->io.write = mem_write;
	c->io.pending = mem_pending;
	c->io.ctx = &m;
	reader_init(&c->r, &c->io);
	memset(&s, 0, sizeof(s));
	s.out = out;
	s.fd = fd;
	s.listing = t->listing;
	rc = client_reply(c, t->multi, &s);
	fclose(out);
	saved = slurp(fd, &savedlen);
	ok(rc == t->rc, "%s (chunk %zu): result %d", t->name, chunk, rc);
	if (t->rc != CLIENT_EOF || t->line[0] != '\0')
		ok(c->status == t->st && strcmp(c->line, t->line) == 0,
		    "%s (chunk %zu): status line '%s'", t->name, chunk, c->line);
	ok(strcmp(shown, t->shown) == 0, "%s (chunk %zu): shown '%s'",
	    t->name, chunk, shown);
	if (t->saved != NULL)
		is_mem(saved, savedlen, t->saved, strlen(t->saved),
		    "%s (chunk %zu): saved", t->name, chunk);
	else
		ok(savedlen == 0, "%s (chunk %zu): nothing saved", t->name,
		    chunk);
	if (t->listing)
		ok(s.maxnum == t->maxnum, "%s (chunk %zu): largest number",
		    t->name, chunk);
	ok(reader_buffered(&c->r) == strlen(t->left) &&
	    memcmp(reader_data(&c->r), t->left, c->r.end - c->r.start) == 0 &&
	    memcmp(t->in + m.pos, t->left + (c->r.end - c->r.start),
	    m.len - m.pos) == 0,
	    "%s (chunk %zu): the rest stays for the next reply", t->name,
	    chunk);
	free(shown);
	close(fd);
	close(devnull);
	free(c);
}

/* A status line longer than the buffer is cut, and the next one read. */
static void
test_long_status(void)
{
	struct client_conn *c = calloc(1, sizeof(*c));
	size_t n = CLIENT_LINE_MAX * 3;
	char *in = malloc(n + 20);
	struct mem m = { in, 0, 0, 1000 };
	int devnull = open("/dev/null", O_RDONLY), midway;

	if (c == NULL || in == NULL || devnull < 0) {
		ok(0, "long status: setup");
		return;
	}
	memset(in, 'x', n);
	in[0] = '-';
	memcpy(in + n, "\r\n+OK 1 2\r\n", 11);
	m.len = n + 11;
	client_init(c, devnull, devnull, 2000);
	c->io.read = mem_read;
	c->io.pending = mem_pending;
	c->io.ctx = &m;
	reader_init(&c->r, &c->io);
	ok(client_status_line(c, &midway) == CLIENT_OK &&
	    c->linelen == CLIENT_LINE_MAX - 1 && c->status == CLIENT_ST_ERR,
	    "long status line cut to %d octets", CLIENT_LINE_MAX - 1);
	ok(client_status_line(c, &midway) == CLIENT_OK &&
	    strcmp(c->line, "+OK 1 2") == 0, "next status line read whole");
	close(devnull);
	free(in);
	free(c);
}

/* A NUL inside a line is shown as ^@, and the line goes on. */
static void
test_show_nul(void)
{
	char *shown = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&shown, &len);

	if (out == NULL) {
		ok(0, "show NUL: setup");
		return;
	}
	client_show_line(out, "-ERR a\0b\r", 9);
	fclose(out);
	ok(strcmp(shown, "-ERR a^@b^M\n") == 0, "NUL and CR in a line: %s",
	    shown);
	free(shown);
}

static void
test_stat_count(void)
{
	static const struct { const char *l; int ok; uint64_t n; } t[] = {
		{ "+OK 2 320", 1, 2 }, { "+OK 0 0", 1, 0 },
		{ "+OK 1000000 1", 1, 1000000 }, { "+OK 1000001 1", 0, 0 },
		{ "+OK", 0, 0 }, { "+OK  2 3", 0, 0 }, { "-ERR 2 3", 0, 0 },
		{ "+OK 18446744073709551616 1", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t n = 99;
		int r = client_stat_count(t[i].l, 1000000, &n);

		ok((r == 0) == t[i].ok && (!t[i].ok || n == t[i].n),
		    "STAT count of '%s'", t[i].l);
	}
}

int
main(void)
{
	static const size_t chunks[] = { 1, 2, 3, 7, 65536 };
	size_t i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		for (j = 0; j < sizeof(chunks) / sizeof(chunks[0]); j++)
			run_case(&cases[i], chunks[j]);
	test_long_status();
	test_stat_count();
	test_show_nul();
	return tap_done();
}
