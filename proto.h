/*
 * proto.h: POP3 wire handling shared by pop3d and pop3c.  No globals.
 *
 * - struct pio: a connection as a pair of read/write functions, so that
 *   TLS can wrap it later without the callers noticing.
 * - struct reader: bounded line reader over a pio with an idle deadline.
 * - struct writer: buffered writer with a write-all flush.
 * - proto_number(): strict parsing of a decimal argument.
 * - struct dotenc: file bytes -> wire (bare LF to CRLF, leading '.' doubled).
 * - struct dotdec: wire -> text (undoes byte-stuffing, finds the final '.').
 */
#ifndef PROTO_H
#define PROTO_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

#include "params.h"

struct pio {
	/* Both return bytes moved, 0 at end of input, -1 with errno
	 * (EAGAIN when the fd is non-blocking and not ready). */
	ssize_t	(*read)(struct pio *, void *, size_t);
	ssize_t	(*write)(struct pio *, const void *, size_t);
	/* Bytes the layer holds already decoded (TLS); 0 for plain fds. */
	size_t	(*pending)(struct pio *);
	int	 rfd;
	int	 wfd;
	/* Set by a layer with its EAGAIN: what it waits for, POLLIN on rfd
	 * or POLLOUT on wfd (TLS may need to write to read, and the other
	 * way round); 0 for the direction's own. */
	short	 want;
	void	*ctx;		/* layer's own state, e.g. an SSL * */
};

/* Set up p for plain reading from rfd and writing to wfd. */
void	pio_init_fd(struct pio *p, int rfd, int wfd);

enum line_status {
	LINE_OK,	/* a complete line; terminator stripped */
	LINE_TOOLONG,	/* more than the cap: rest of the line will be skipped */
	LINE_NUL,	/* a complete line that held a NUL byte */
	LINE_EOF,	/* peer closed (a partial last line is dropped) */
	LINE_TIMEOUT,	/* nothing arrived before the deadline */
	LINE_ERROR,	/* read failed; errno set */
	LINE_INTR	/* poll interrupted by a signal; caller checks its flags */
};

struct reader {
	struct pio	*io;
	size_t		 start, end;	/* unread bytes are buf[start..end) */
	int		 skipping;	/* discarding the rest of a long line */
	sigset_t	 waitmask;	/* signals let in while waiting */
	char		 buf[RBUF_SIZE];
};

/* Bind r to io with an empty buffer. */
void	reader_init(struct reader *r, struct pio *io);

/*
 * Read one line terminated by LF (a CR before it is removed too) into out,
 * at most cap - 1 bytes plus NUL.  A line whose octets, terminator included,
 * exceed maxlen yields LINE_TOOLONG at once; the following call first
 * discards up to and including the LF.  timeout_ms bounds the time to the
 * whole line, however its bytes trickle in; < 0 waits forever.
 * *len receives the length of the line (valid for LINE_OK and LINE_NUL).
 */
enum line_status reader_line(struct reader *r, char *out, size_t cap,
	    size_t maxlen, size_t *len, int timeout_ms);

/*
 * Make buffered bytes available: returns how many are in the buffer,
 * reading once if it is empty.  0 at end of input, -1 on error or timeout
 * (errno ETIMEDOUT) or interrupt (EINTR).  Bytes stay until reader_consume.
 */
ssize_t	reader_fill(struct reader *r, int timeout_ms);
void	reader_consume(struct reader *r, size_t n);
/* Put n bytes read elsewhere (by another process) after the buffered
 * ones, as if read here; what does not fit in the buffer is dropped. */
void	reader_push(struct reader *r, const void *p, size_t n);
#define reader_data(r)	((r)->buf + (r)->start)

/* Zero every byte of the buffer but those not read yet: the lines already
 * returned (a password) and stale bytes a compaction left behind. */
void	reader_wipe(struct reader *r);

/* Bytes already buffered (pipelined input waiting). */
size_t	reader_buffered(const struct reader *r);

struct writer {
	struct pio	*io;
	size_t		 len;
	int		 failed;	/* a write failed: everything after is dropped */
	int		 err;		/* its errno (ETIMEDOUT: the deadline) */
	int		 timeout_ms;	/* for a peer that stops reading; <0 forever */
	uint64_t	 total;		/* bytes handed to the peer */
	char		 buf[WBUF_SIZE];
};

void	writer_init(struct writer *w, struct pio *io, int timeout_ms);
/* Append; flushes when full.  Return 0, or -1 once the writer has failed. */
int	writer_put(struct writer *w, const void *p, size_t n);
int	writer_printf(struct writer *w, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Write out everything buffered.  0, or -1 (w->failed set). */
int	writer_flush(struct writer *w);
/*
 * Flush w, then send n bytes of fd from its offset straight to the
 * connection with sendfile(2), each wait bounded by w's deadline.  Only
 * for a plain pio (pio_is_fd).  0 when all went; 1 when fd ended early;
 * -1 when the connection failed (w failed, w->err set).
 */
int	writer_sendfile(struct writer *w, int fd, uint64_t n);
/* 1 when io writes straight to its fd (no TLS layer). */
int	pio_is_fd(const struct pio *io);
/* Write-all loop on one buffer: all of it within timeout_ms (< 0: no
 * limit) of the call, however slowly the peer reads. */
int	pio_write_all(struct pio *io, const void *p, size_t n, int timeout_ms);
/* Write-all loop on a blocking fd (a file, a terminal), EINTR retried.
 * 0, or -1 with errno set. */
int	proto_write_fd(int fd, const void *p, size_t n);
/* The same for reading all of n bytes; an early end is -1 with EIO. */
int	proto_read_fd(int fd, void *p, size_t n);

/* Milliseconds on the monotonic clock. */
long long proto_now_ms(void);

/* Nanoseconds on the monotonic clock. */
uint64_t proto_now_ns(void);

/* 1 when the peer of fd is on loopback (127/8, ::1, a v4-mapped 127/8),
 * a local socket, or fd is no socket at all (a pipe or terminal). */
int	proto_peer_is_local(int fd);

struct sockaddr;
/* 1 when sa is a loopback address (as above) or a local socket. */
int	proto_addr_is_local(const struct sockaddr *sa);

/*
 * Parse s as a decimal number: digits only (no sign, space or other noise),
 * at most max.  0 on success with *out set, -1 otherwise.
 */
int	proto_number(const char *s, uint64_t max, uint64_t *out);

/*
 * Byte-stuffing encoder, file to wire.  Every line ends in CRLF (a bare
 * LF becomes CRLF), a '.' at the start of a line is doubled.  With
 * top_lines >= 0 only the header, the empty line after it and that many
 * body lines pass; dotenc_feed then returns 1 once the limit is reached.
 */
struct dotenc {
	int		bol;		/* at the beginning of a line */
	int		cr;		/* last byte was CR */
	int		in_header;
	size_t		linelen;	/* bytes of the current line so far */
	long		top_lines;	/* body lines still allowed; <0: all */
	int		done;
	uint64_t	octets;		/* wire bytes, stuffing not counted */
};

void	dotenc_init(struct dotenc *e, long top_lines);
/* Encode n bytes of p into w.  -1 on write failure, 1 once done, else 0. */
int	dotenc_feed(struct dotenc *e, const char *p, size_t n, struct writer *w);
/* Close the last line (CRLF if needed) and write the terminating ".\r\n". */
int	dotenc_finish(struct dotenc *e, struct writer *w);

/*
 * Wire size of a file's content: what dotenc sends for it between the
 * status line and the final ".", stuffing not counted.  Feed the file in
 * chunks, then read dotsize_total().
 */
struct dotsize {
	uint64_t	octets;
	int		last;		/* last byte seen; '\n' before any */
	int		added;		/* a CR or a '.' would be added */
};

void	dotsize_init(struct dotsize *s);
void	dotsize_feed(struct dotsize *s, const char *p, size_t n);
uint64_t dotsize_total(const struct dotsize *s);
/* 1 when the wire form is the file itself: every LF after a CR, no line
 * starting with '.', and the file empty or ending in LF. */
int	dotsize_plain(const struct dotsize *s);

/*
 * Byte-stuffing decoder, wire to text.  Feed it the bytes that follow a
 * +OK status line of a multi-line response.  It copies the text to out
 * (which must hold n + 1 bytes), with the leading dot removed from stuffed
 * lines and line ends kept as they came (CRLF).  Stops after the
 * terminating line: *done is set and the return value is the number of
 * input bytes used, so bytes after the terminator stay with the caller.
 */
struct dotdec {
	int	state;
};

void	dotdec_init(struct dotdec *d);
size_t	dotdec_feed(struct dotdec *d, const char *in, size_t n, char *out,
	    size_t *outlen, int *done);

#endif
