/*
 * client.h: pop3c's protocol engine.  The connection to a POP3 server,
 * the reply reader and decoder (status lines, multi-line bodies with
 * byte-stuffing undone), saving a message to a file, TLS, and showing
 * the server's bytes.  No readline and no terminal here: pop3c.c drives
 * it with the lines a user types; a test or a fuzzer can drive it with
 * any fd or any struct pio.
 *
 * Ownership of messages: functions returning enum client_rc print
 * nothing; client_say() turns a result into the one line pop3c prints.
 * Functions returning int print their own one-line reason on stderr
 * ("pop3c: ...") before returning -1.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "params.h"
#include "proto.h"

enum client_rc {
	CLIENT_OK,		/* the line or body was read */
	CLIENT_EOF,		/* the server closed the connection */
	CLIENT_TIMEOUT,		/* nothing for timeout_ms */
	CLIENT_INTR,		/* a signal interrupted the wait */
	CLIENT_IOERR,		/* read failed: errno in c->err */
	CLIENT_PROTO,		/* a status line not starting with + or - */
	CLIENT_TOOBIG		/* a body went past s->max_octets: stopped */
};

/* What a status line said. */
enum client_status {
	CLIENT_ST_OK,		/* "+OK" */
	CLIENT_ST_ERR,		/* "-ERR" or any other "-" */
	CLIENT_ST_CONT		/* "+" not followed by "OK": SASL continuation */
};

struct client_conn {
	struct pio	 io;		/* replaceable before client_init's reader */
	struct reader	 r;
	struct writer	 w;
	int		 timeout_ms;
	int		 err;		/* errno of the last CLIENT_IOERR */
	int		 tls_on;
	struct tls_ctx	*tls;		/* client context, made on first use */
	enum client_status status;	/* of the last status line read */
	size_t		 plen;		/* a status line cut short by a signal: */
	int		 pcut;		/* its bytes so far, and if it was cut */
	char		 line[CLIENT_LINE_MAX];	/* last status line, NUL ended */
	size_t		 linelen;
	char		 dec[RBUF_SIZE + 2];	/* decoded body bytes */
};

/*
 * Showing the server's bytes safely, as a stream: printable ASCII, TAB,
 * LF and valid UTF-8 pass; CRLF becomes LF; every other control character
 * is made visible: C0 and DEL as ^X (ESC is ^[, a lone CR ^M), C1 (as a
 * byte or in UTF-8) and bytes that are not UTF-8 as \xHH.  A UTF-8
 * sequence or a CR split between two calls is held until the next.
 */
struct client_vis {
	unsigned char	 seq[4];	/* a UTF-8 sequence so far */
	int		 len, need;	/* bytes held, bytes it will have */
	int		 cr;		/* a CR waits: LF follows, or ^M */
};

/* Show n bytes on out (held bytes first). */
void	client_vis(FILE *out, struct client_vis *v, const char *p, size_t n);
/* Show what is held (an unfinished sequence, a CR) and reset v. */
void	client_vis_end(FILE *out, struct client_vis *v);

/*
 * Where the body of a multi-line reply goes as it arrives.  Zero it, set
 * fd to -1 or a file, then set the inputs.
 */
struct client_sink {
	/* inputs */
	FILE		*out;		/* shown here, CRLF as LF; NULL: not */
	int		 fd;		/* saved here byte for byte; -1: not */
	int		 listing;	/* parse "n word" lines (LIST, UIDL) */
	/* listing: called for each line "n word..." (n a number, word its
	 * second word, NUL ended, at most UIDL_MAX octets, "" if none) */
	void		(*entry)(void *arg, uint64_t n, const char *word);
	void		*arg;
	uint64_t	 max_octets;	/* stop the body beyond this; 0: no */
	const volatile sig_atomic_t *intr;	/* Ctrl-C: drain, see below */
	/* called after each part of the body is saved, with s->saved */
	void		(*progress)(void *arg, uint64_t saved);
	/* results */
	uint64_t	 octets;	/* body octets decoded */
	int		 interrupted;	/* *intr was set: the rest was dropped */
	uint64_t	 saved;		/* octets written to fd */
	int		 save_failed;	/* a write to fd failed ... */
	int		 save_errno;	/* ... with this errno */
	uint64_t	 maxnum;	/* listing: largest first number seen */
	/* state */
	struct client_vis vis;
	size_t		 elen;		/* listing: bytes of the line so far */
	char		 ebuf[CLIENT_ENTRY_MAX + 1];
};

/* Print "pop3c: " and the formatted line on stderr (stdout flushed
 * first, so the two stay in order on a terminal). */
void	client_warnx(const char *fmt, ...)
	    __attribute__((format(printf, 1, 2)));

/*
 * Connect to each address of host in turn, waiting at most timeout_ms for
 * each; *intr (may be NULL) set by a signal handler stops the attempts.
 * The connected socket (non-blocking, close-on-exec), or -1 (said).
 */
int	client_connect(const char *host, const char *port, int timeout_ms,
	    const volatile sig_atomic_t *intr);

/*
 * Set c up on a connection reading rfd and writing wfd (a socket: both the
 * same).  To read from something else, replace c->io after this call and
 * call reader_init(&c->r, &c->io): c->io.pending must then say how many
 * bytes are ready, as the reader polls rfd only while it says 0 (an fd of
 * /dev/null is always ready, so a read returning 0 then ends the reply).
 */
void	client_init(struct client_conn *c, int rfd, int wfd, int timeout_ms);

/*
 * Read one status line into c->line, line end removed, cut to
 * CLIENT_LINE_MAX - 1 octets (the rest of a longer line is read and
 * dropped), and set c->status.  CLIENT_PROTO when it starts with neither
 * '+' nor '-' (c->line then holds it).  midway is set when a read failed
 * after part of the line came.  After CLIENT_INTR, calling again goes on
 * with the same line.
 */
enum client_rc client_status_line(struct client_conn *c, int *midway);

/*
 * Read the body of a multi-line reply up to and including the terminating
 * line, un-stuffed, into s (shown on s->out, saved to s->fd).  The bytes
 * after the terminator stay buffered for the next reply.
 *
 * When *s->intr is set (a signal handler's flag; it is cleared), showing
 * and saving stop, s->interrupted is set, and the rest of the body is read
 * and dropped so the session can go on (CLIENT_OK).  Once s->interrupted
 * is set, a second *s->intr ends the read with CLIENT_INTR.  Past
 * s->max_octets the read ends with CLIENT_TOOBIG: the connection is then
 * in the middle of a reply and cannot go on.
 */
enum client_rc client_body(struct client_conn *c, struct client_sink *s);

/*
 * The whole reply: the status line and, when multi is set and it is +OK,
 * the body into s (s may be NULL when multi is 0).  The status line is
 * shown on s->out when s and s->out are set.  For tests and fuzzing.
 */
enum client_rc client_reply(struct client_conn *c, int multi,
	    struct client_sink *s);

/* Print why a read stopped (rc is not CLIENT_OK); midway: in a reply. */
void	client_say(const struct client_conn *c, enum client_rc rc,
	    int midway);

/* Show a status line (or any one line from the server) made visible,
 * and a newline. */
void	client_show_line(FILE *out, const char *line, size_t len);

/* Send one command line, CRLF added; the writer's buffer is cleared after
 * (it may have held a password).  0, or -1 (said). */
int	client_send(struct client_conn *c, const char *line);

/*
 * Run the TLS handshake on the connection, verifying host against cafile
 * (the system's store when NULL) unless insecure.  Bytes buffered before
 * are dropped.  0, or -1 (said).
 */
int	client_tls_start(struct client_conn *c, const char *host,
	    const char *cafile, int insecure);

/* Protocol and cipher of the TLS layer ("TLSv1.3 ..."). */
const char *client_tls_describe(struct client_conn *c);

/* Several lines on the TLS layer: protocol, cipher, the server
 * certificate's subject, issuer, validity and SHA-256 fingerprint, made
 * safe to show.  0, or -1 when TLS is not on. */
int	client_tls_info(struct client_conn *c, char *buf, size_t cap);

/* End TLS (close_notify) and free the TLS context; the fds stay open. */
void	client_end(struct client_conn *c);

/*
 * Parse the count of "+OK n size" (STAT).  0 with *n set, -1 when the
 * line does not have that form or n exceeds max.
 */
int	client_stat_count(const char *line, uint64_t max, uint64_t *n);

/*
 * Saving one message.  In a Maildir (a folder with cur/, new/ and tmp/)
 * the file is written in tmp/ and renamed into new/ when complete;
 * elsewhere it is written in the folder itself.  The name is the
 * unique-id made safe (letters, digits, '.', '_', '-' kept, a leading
 * '.' and every other octet as %XX), so one message is one file across
 * sessions; without one it is N.eml, N-1.eml, ... and never replaces a
 * file.
 */
struct client_save {
	int		 dirfd;
	const char	*dir;		/* as given, for messages */
	int		 maildir;
	int		 fd;		/* -1 when not open */
	char		 name[CLIENT_SAVE_NAME_MAX];	/* in tmp/ or dir */
	char		 shown[CLIENT_SAVE_NAME_MAX + 8];	/* "new/NAME" */
};

/* 1 when the folder dirfd holds cur/, new/ and tmp/ folders. */
int	client_is_maildir(int dirfd);

/*
 * Create the file for message number (a decimal string, else "message")
 * with unique-id uid (NULL when not known).  0 with sv->fd open; 1 when a
 * file of that unique-id exists already (said: not saved again); -1
 * (said).
 */
int	client_save_open(struct client_save *sv, int dirfd, const char *dir,
	    int maildir, const char *number, const char *uid);

/* Close the file and, in a Maildir, move it into new/.  0, or -1 (said,
 * the file removed). */
int	client_save_commit(struct client_save *sv);

/* Close and remove the partial file.  0, or -1 (said). */
int	client_save_abort(struct client_save *sv);

#endif
