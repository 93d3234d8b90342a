/*
 * bench/gen_maildrop.c: deterministic maildrops for the benchmark.
 *
 *   gen_maildrop OUTDIR
 *
 * creates, from a fixed seed (same bytes on every machine and run):
 *   OUTDIR/m10/    10 messages of about 4 KB
 *   OUTDIR/m10k/   10,000 messages of about 4 KB
 *   OUTDIR/big/    one message of exactly 256 MiB
 * LF line endings; about 6% of the body lines begin with '.'.
 *   OUTDIR/bigcrlf/ one message of exactly 256 MiB already in wire form:
 * CRLF line endings, no line beginning with '.' (a '-' in its place).  Every file
 * gets a fixed mtime, so UIDs are the same from run to run.
 *
 * and the same files, hard-linked, as Maildirs for Dovecot:
 *   OUTDIR/maildir/<name>/{cur,new,tmp}/<time>.M<i>P1.bench,S=<size>,W=<crlf size>:2,S
 * (S= and W= as Dovecot's LDA writes them; ":2,S" = already seen, so
 * Dovecot never renames them).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MTIME_BASE	1700000000L

static uint64_t rng;

static uint64_t
rnd(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545F4914F6CDD1DULL;
}

static unsigned
rndn(unsigned n)
{
	return (unsigned)((rnd() >> 33) % n);
}

static const char *words[] = {
	"the", "garden", "meeting", "invoice", "schedule", "volunteer",
	"harbour", "lane", "compost", "tomatoes", "please", "reply", "by",
	"friday", "attached", "minutes", "of", "and", "for", "with", "our",
	"new", "plot", "water", "rota", "committee", "thanks", "again",
	"seedlings", "spring", "autumn", "tools", "shed", "key", "fence",
	"neighbours", "budget", "report", "quarterly", "update", "is", "a",
	"to", "in", "we", "will", "be", "on", "at", "this", "that", "from",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static struct {
	uint64_t lines, dotlines;
} stats;

/* One body line into p (no newline); returns its length. */
static size_t
body_line(char *p)
{
	size_t n = 0, want;
	unsigned r = rndn(1000);

	if (r < 60) {			/* 6%: a line beginning with '.' */
		static const char *dots[] = {
			".", "..", ". indented remark", ".signature follows",
			"...and so on", ".hidden",
		};
		const char *d = dots[rndn(6)];

		n = strlen(d);
		memcpy(p, d, n);
		stats.dotlines++;
		if (rndn(2) == 0)
			return n;
		p[n++] = ' ';
	} else if (r < 110) {		/* ~5% empty lines: paragraphs */
		return 0;
	}
	want = 30 + rndn(47);
	while (n < want) {
		const char *w = words[rndn(NWORDS)];
		size_t l = strlen(w);

		if (n && p[n - 1] != ' ')
			p[n++] = ' ';
		memcpy(p + n, w, l);
		n += l;
	}
	return n;
}

static char *
headers(unsigned long i, size_t *len)
{
	static char h[1024];
	int n = snprintf(h, sizeof(h),
	    "Return-Path: <sender%lu@example.org>\n"
	    "Received: from mail.example.org (mail.example.org [192.0.2.%lu])\n"
	    "\tby mx.example.net with ESMTP id B%08lX\n"
	    "\tfor <user@example.net>; Mon, 3 Mar 2025 09:14:02 +0100\n"
	    "From: Sender %lu <sender%lu@example.org>\n"
	    "To: User <user@example.net>\n"
	    "Subject: Benchmark message %lu about the %s %s\n"
	    "Date: Mon, 3 Mar 2025 09:%02lu:%02lu +0100\n"
	    "Message-ID: <%lu.%08lX@example.org>\n"
	    "MIME-Version: 1.0\n"
	    "Content-Type: text/plain; charset=us-ascii\n"
	    "Content-Transfer-Encoding: 7bit\n"
	    "\n",
	    i % 97, i % 250 + 1, i, i % 97, i % 97, i,
	    words[i % NWORDS], words[(i * 7) % NWORDS], i / 60 % 60, i % 60,
	    i, (unsigned long)(i * 2654435761u));

	*len = n;
	return h;
}

static void
xwrite(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0) {
			perror("write");
			exit(1);
		}
		p += w;
		n -= w;
	}
}

/* Append line end at b[*n]: LF, or CRLF when crlf. */
static void
put_eol(char *b, size_t *n, int crlf)
{
	if (crlf)
		b[(*n)++] = '\r';
	b[(*n)++] = '\n';
}

/*
 * Writes one message of (about, or with exact=1 exactly) target bytes;
 * returns the number of CRs the wire form adds (for the CRLF size).  With
 * crlf, the file is already in wire form: CRLF line ends, no line
 * beginning with '.'.
 */
static uint64_t
write_msg(const char *path, unsigned long i, size_t target, int exact,
    int crlf)
{
	static char buf[1 << 20];
	size_t blen, hl, k, total = 0, eol = crlf ? 2 : 1;
	uint64_t nl = 0;
	char *h = headers(i, &hl);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0) {
		perror(path);
		exit(1);
	}
	for (blen = k = 0; k < hl; k++) {
		if (h[k] == '\n')
			put_eol(buf, &blen, crlf);
		else
			buf[blen++] = h[k];
	}
	nl = 13;
	for (;;) {
		char line[256];
		size_t l = body_line(line);

		if (crlf && l > 0 && line[0] == '.')
			line[0] = '-';
		if (total + blen + l + eol >= target) {
			if (exact) {	/* pad the last line to the exact size */
				size_t rest = target - total - blen - eol;

				memset(line, 'x', rest);
				l = rest;
			}
			memcpy(buf + blen, line, l);
			blen += l;
			put_eol(buf, &blen, crlf);
			nl++;
			stats.lines++;
			break;
		}
		memcpy(buf + blen, line, l);
		blen += l;
		put_eol(buf, &blen, crlf);
		nl++;
		stats.lines++;
		if (blen > sizeof(buf) - 512) {
			xwrite(fd, buf, blen);
			total += blen;
			blen = 0;
		}
	}
	xwrite(fd, buf, blen);
	total += blen;
	if (close(fd) < 0) {
		perror("close");
		exit(1);
	}
	return crlf ? 0 : nl;
}

static void
mkdir_p(const char *p)
{
	if (mkdir(p, 0755) < 0 && errno != EEXIST) {
		perror(p);
		exit(1);
	}
}

static void
make_drop(const char *out, const char *name, unsigned long count,
    size_t size, int exact, int crlf)
{
	char dir[2048], mdir[2048], path[4096], lpath[4096];
	unsigned long i;
	const char *sub[] = { "cur", "new", "tmp" };
	unsigned s;

	snprintf(dir, sizeof(dir), "%s/%s", out, name);
	snprintf(mdir, sizeof(mdir), "%s/maildir/%s", out, name);
	mkdir_p(dir);
	mkdir_p(mdir);
	for (s = 0; s < 3; s++) {
		snprintf(path, sizeof(path), "%s/%s", mdir, sub[s]);
		mkdir_p(path);
	}
	for (i = 1; i <= count; i++) {
		struct timespec ts[2];
		struct stat sb;
		uint64_t nl;
		/* varied sizes around the target: 0.75x .. 1.25x */
		size_t target = exact ? size : size * 3 / 4 + rndn(size / 2);

		snprintf(path, sizeof(path), "%s/msg%05lu", dir, i);
		nl = write_msg(path, i + count, target, exact, crlf);
		ts[0].tv_sec = ts[1].tv_sec = MTIME_BASE + (long)i;
		ts[0].tv_nsec = ts[1].tv_nsec = 0;
		if (utimensat(AT_FDCWD, path, ts, 0) < 0 || stat(path, &sb) < 0) {
			perror(path);
			exit(1);
		}
		snprintf(lpath, sizeof(lpath),
		    "%s/cur/%ld.M%luP1.bench,S=%lld,W=%llu:2,S", mdir,
		    MTIME_BASE + (long)i, i, (long long)sb.st_size,
		    (unsigned long long)(sb.st_size + nl));
		if (link(path, lpath) < 0) {
			perror(lpath);
			exit(1);
		}
	}
}

int
main(int argc, char **argv)
{
	char p[4096];

	if (argc != 2) {
		fprintf(stderr, "usage: gen_maildrop OUTDIR\n");
		return 64;
	}
	mkdir_p(argv[1]);
	snprintf(p, sizeof(p), "%s/maildir", argv[1]);
	mkdir_p(p);
	rng = 0x9E3779B97F4A7C15ULL;
	make_drop(argv[1], "m10", 10, 4096, 0, 0);
	rng = 0xD1B54A32D192ED03ULL;
	make_drop(argv[1], "m10k", 10000, 4096, 0, 0);
	rng = 0x8CB92BA72F3D8DD7ULL;
	make_drop(argv[1], "big", 1, 256u << 20, 1, 0);
	printf("body lines %llu, beginning with '.': %llu (%.1f%%)\n",
	    (unsigned long long)stats.lines,
	    (unsigned long long)stats.dotlines,
	    100.0 * stats.dotlines / stats.lines);
	rng = 0x8CB92BA72F3D8DD7ULL;
	make_drop(argv[1], "bigcrlf", 1, 256u << 20, 1, 1);
	return 0;
}
