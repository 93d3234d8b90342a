/*
 * pop3c.c: the interactive POP3 client (SPEC section 4).
 *
 * pop3c [-d DIR] [-t SECONDS] [-u USER] [HOST] PORT connects, prints the
 * greeting, then sends each input line as a command and prints the whole
 * reply: multi-line replies up to the terminator, byte-stuffing undone,
 * line ends shown as LF.  RETR also saves the message, exactly as the
 * server sent it (un-stuffed, CRLF kept), to a new file in the download
 * folder.
 *
 * This file is the user interface: one command table drives dispatch
 * (which replies are multi-line and what pop3c does around them), the
 * local `help`, and tab completion; GNU readline is used only when stdin
 * is a terminal, otherwise lines are read plainly, with no prompt and no
 * terminal codes.  The protocol engine (connecting, reading and decoding
 * replies, saving, TLS) is client.c.  A password is never sent in clear
 * to a host other than loopback without asking first.
 *
 * Errors: functions that meet a failure print one line on stderr
 * themselves ("pop3c: ...") and return -1 (or a status), so the caller
 * only decides whether to go on.  Connection trouble (refused, closed,
 * timed out) ends the program with status 1, bad usage with 64, and the
 * program ends with 0 once QUIT has been answered.
 */
#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <readline/readline.h>
#include <readline/history.h>

#include "client.h"
#include "params.h"
#include "proto.h"

#define EXIT_CONN	1	/* connection failed or ended unexpectedly */
#define EXIT_ERR	2	/* -e: stopped at -ERR or a protocol error */
#define EXIT_USAGE	64	/* sysexits EX_USAGE */

/* Seconds to wait for a connection or for the next bytes of a reply;
 * generous, since a server may scan a large maildrop before answering. */
#define CLIENT_TIMEOUT_DEFAULT	120

/* Longest command text: POP3_CMD_MAX octets on the wire, CRLF included. */
#define CMD_TEXT_MAX		(POP3_CMD_MAX - 2)

/* What kind of arguments a command takes (drives completion and help). */
enum argkind {
	ARG_NONE,
	ARG_TEXT,		/* free text: a name, a mechanism */
	ARG_MSG,		/* a message number */
	ARG_MSG_OPT,		/* an optional message number */
	ARG_MSG_LINES		/* a message number and a line count */
};

/* When the reply to a command is multi-line (after +OK only). */
enum multi {
	M_ONE,			/* always one line */
	M_ALWAYS,
	M_NOARG			/* only when the command has no argument */
};

/* What pop3c itself does around a command (struct cmd's flags). */
#define C_NOHIST	0x01	/* never in history: may hold credentials */
#define C_BLANKS	0x02	/* trailing blanks belong to the argument */
#define C_AUTH		0x04	/* opens a SASL exchange ("+ " allowed) */
#define C_LOGIN		0x08	/* +OK shows the session is past login */
#define C_LISTING	0x10	/* multi-line +OK: "n size" lines to learn */
#define C_RETR		0x20	/* multi-line +OK: the message, saved */
#define C_QUIT		0x40	/* ends the session once sent */

/* Passed to a command's before hook: the line about to be sent. */
struct cmd_line {
	char		*line;		/* what is sent; the hook may replace */
	char		*buf;		/* room for a replacement */
	size_t		 bufsz;
	const char	*word;		/* the command word as typed */
	size_t		 wlen;
	size_t		 nargs;
	const char	*arg;		/* first argument, or NULL */
	int		 typed;		/* typed (0: sent for -u) */
};
struct client;

struct cmd {
	const char	*name;
	enum argkind	 arg;
	enum multi	 multi;
	int		 flags;		/* C_* */
	int		 complete;	/* offered by tab completion */
	const char	*usage;
	const char	*help;
	/* Answered by pop3c, never sent: 0 to go on, 1 to end pop3c, -1
	 * (said). */
	int		(*local)(struct client *, const char *args);
	/* Before sending: 0 to send cl->line, 1 when done without sending
	 * (*rc is run_line's answer). */
	int		(*before)(struct client *, struct cmd_line *, int *);
	/* After a +OK status line: learn from it. */
	void		(*after)(struct client *, int multi, const char *arg);
};

static int	cmd_help(struct client *, const char *);
static int	cmd_exit(struct client *, const char *);
static int	cmd_reconnect(struct client *, const char *);
static int	cmd_tls(struct client *, const char *);
static int	cmd_save(struct client *, const char *);
static int	before_pass(struct client *, struct cmd_line *, int *);
static int	before_stls(struct client *, struct cmd_line *, int *);
static int	before_retr(struct client *, struct cmd_line *, int *);
static int	before_quit(struct client *, struct cmd_line *, int *);
static void	after_user(struct client *, int, const char *);
static void	after_stat(struct client *, int, const char *);
static void	after_list(struct client *, int, const char *);
static void	after_dele(struct client *, int, const char *);
static void	after_rset(struct client *, int, const char *);

static const struct cmd cmds[] = {
	{ "USER", ARG_TEXT, M_ONE, 0, 1, "USER name",
	    "give the mailbox (user) name",
	    NULL, NULL, after_user },
	{ "PASS", ARG_TEXT, M_ONE, C_NOHIST | C_BLANKS | C_LOGIN, 1,
	    "PASS [password]",
	    "give the password; asked without echo when left out",
	    NULL, before_pass, NULL },
	{ "APOP", ARG_TEXT, M_ONE, C_LOGIN, 1, "APOP name digest",
	    "log in with an MD5 digest (RFC 1939 section 7)",
	    NULL, NULL, NULL },
	{ "AUTH", ARG_TEXT, M_ONE, C_NOHIST | C_AUTH | C_LOGIN, 1,
	    "AUTH mechanism [response]",
	    "log in with SASL (RFC 5034)",
	    NULL, NULL, NULL },
	{ "STAT", ARG_NONE, M_ONE, C_LOGIN, 1, "STAT",
	    "show the number of messages and their total size",
	    NULL, NULL, after_stat },
	{ "LIST", ARG_MSG_OPT, M_NOARG, C_LOGIN | C_LISTING,
	    1, "LIST [n]",
	    "show the size of every message, or of message n",
	    NULL, NULL, after_list },
	{ "UIDL", ARG_MSG_OPT, M_NOARG, 0, 1, "UIDL [n]",
	    "show the unique-id of every message, or of message n",
	    NULL, NULL, NULL },
	{ "RETR", ARG_MSG, M_ALWAYS, C_LOGIN | C_RETR,
	    1, "RETR n",
	    "show message n and save it in the download folder",
	    NULL, before_retr, NULL },
	{ "TOP", ARG_MSG_LINES, M_ALWAYS, 0, 1, "TOP n k",
	    "show the header and the first k body lines of message n",
	    NULL, NULL, NULL },
	{ "DELE", ARG_MSG, M_ONE, C_LOGIN, 1, "DELE n",
	    "mark message n for deletion at QUIT",
	    NULL, NULL, after_dele },
	{ "RSET", ARG_NONE, M_ONE, C_LOGIN, 1, "RSET",
	    "unmark all messages marked for deletion",
	    NULL, NULL, after_rset },
	{ "NOOP", ARG_NONE, M_ONE, 0, 1, "NOOP",
	    "do nothing (keeps the session alive)",
	    NULL, NULL, NULL },
	{ "CAPA", ARG_NONE, M_ALWAYS, 0, 1, "CAPA",
	    "list the server's capabilities",
	    NULL, NULL, NULL },
	{ "STLS", ARG_NONE, M_ONE, 0, 1, "STLS",
	    "switch the connection to TLS (RFC 2595)",
	    NULL, before_stls, NULL },
	{ "QUIT", ARG_NONE, M_ONE, C_QUIT, 1, "QUIT",
	    "delete the marked messages, end the session and exit",
	    NULL, before_quit, NULL },
	/* Answered by pop3c itself (completed in lower case). */
	{ "HELP", ARG_TEXT, M_ONE, 0, 1, "help [command]",
	    "show this list, or what a command does", cmd_help,
	    NULL, NULL },
	{ "?", ARG_TEXT, M_ONE, 0, 0, "? [command]",
	    "the same as help", cmd_help,
	    NULL, NULL },
	{ "EXIT", ARG_NONE, M_ONE, 0, 1, "exit",
	    "QUIT if connected, then leave pop3c", cmd_exit,
	    NULL, NULL },
	{ "RECONNECT", ARG_NONE, M_ONE, 0, 1, "reconnect",
	    "open a new session with the same options (and -u login)",
	    cmd_reconnect,
	    NULL, NULL },
	{ "CONNECT", ARG_NONE, M_ONE, 0, 0, "connect",
	    "the same as reconnect", cmd_reconnect,
	    NULL, NULL },
	{ "TLS", ARG_NONE, M_ONE, 0, 1, "tls",
	    "show the TLS protocol, cipher and server certificate", cmd_tls,
	    NULL, NULL },
	{ "SAVE", ARG_MSG, M_ONE, 0, 1, "save n [file]",
	    "save message n without showing it (RETR): in the download "
	    "folder, or as file (never replaced)", cmd_save,
	    NULL, NULL },
};
#define NCMDS	(sizeof(cmds) / sizeof(cmds[0]))

struct client {
	struct client_conn conn;
	int		 interactive;	/* stdin is a terminal: readline */
	int		 no_pager;	/* --no-pager */
	/* save n: RETR without showing; into save_path when given */
	int		 saving;
	const char	*save_path;
	int		 save_fd;	/* save_path's file, -1 once handled */
	uint64_t	 save_size;	/* LIST's size, 0 unknown */
	const char	*save_num;
	struct timespec	 save_drawn;	/* the progress line's last redraw */
	FILE		*tty;		/* where the prompt and echo go */
	const char	*host;
	const char	*port;
	char		 hostbuf[256];	/* host cut out of an argument */
	char		 portbuf[8];
	char		 userbuf[POP3_CMD_MAX];
	int		 errexit;	/* -e */
	int		 use_tls;	/* --tls or pop3s:// */
	const char	*login;		/* -u or the URL's user */
	int		 fd;		/* the connection, -1 when closed */
	int		 timeout_ms;
	int		 connected;
	int		 lost;		/* the server closed it: exit 1 */
	char		 user[64];	/* accepted USER, for the prompt */
	int		 maildir;	/* -d is a Maildir */
	int		 uidl;		/* server has UIDL: 1 yes, -1 no, 0 ? */
	int		 have_uid;	/* retr_uid holds the message's */
	int		 capa_asked;	/* CAPA asked in this session */
	int		 transaction;	/* logged in, as far as pop3c can tell */
	char		 retr_uid[UIDL_MAX + 1];
	const char	*cafile;
	int		 insecure;
	int		 starttls_first;	/* --starttls: STLS after greeting */
	int		 local;		/* the server is on loopback */
	const char	*dir;		/* download folder as given */
	int		 dirfd;
	char		 prompt[300];
	int		 quit_sent;
	int		 failed;	/* a -ERR or protocol error (for -e) */
	int		 proto_failed;	/* the server broke the protocol */
	int		 dropping;	/* Ctrl-C: drop the awaited reply */
	int		 last_ok;	/* last status line began with +OK */
	int		 sasl;		/* inside AUTH: the server sent "+ " */
	uint64_t	 max_size;	/* --max-size: RETR bound without LIST */
	/* Message numbers for completion: 1..count, minus the deleted.
	 * Bounded by STAT's count when known, and by STORE_MAX_MESSAGES. */
	int		 count_known;
	uint64_t	 count;
	int		 stat_known;
	uint64_t	 stat_count;	/* STAT's count plus this session's DELEs */
	/* Sizes from LIST (size + 1; 0 unknown), for RETR's bound. */
	uint64_t	*sizes;
	size_t		 nsizes;
	uint64_t	 ndeleted;
	unsigned char	*deleted;	/* bitmap, STORE_MAX_MESSAGES bits */
	/* Completion generator state (readline calls it repeatedly). */
	size_t		 gen_i;
	uint64_t	 gen_n;
	int		 gen_lower;
	/* History file, or "" when history is not kept. */
	char		 histpath[PATH_MAX];
};

static int	run_line(struct client *, char *, int);
static void	save_progress(void *, uint64_t);
static void	save_remove(struct client *, int);
static int	on_signal_event(void);
static int	next_line(struct client *, char **);
static int	quit_guard(struct client *);
static int	lost(const struct client *);
static int	errexit_stop(struct client *);

/* The one pointer readline's callbacks use (STYLE 5). */
static struct client *rlc;
/* Set by the SIGINT handler. */
static volatile sig_atomic_t got_sigint;

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: pop3c [-d DIR] [-t SECONDS] [-u USER] [--tls | --starttls]\n"
	    "             [-e] [--cafile FILE] [--insecure] [--max-size N]\n"
	    "             [--no-pager] SERVER\n"
	    "       pop3c --help | --version\n"
	    "SERVER is [HOST] PORT, HOST, HOST:PORT, [IPV6]:PORT, [IPV6] PORT, or\n"
	    "a URL pop3://[USER@]HOST[:PORT] or pop3s://... (TLS; USER is\n"
	    "percent-decoded); HOST defaults to localhost, PORT to 110 (995 with\n"
	    "TLS).\n"
	    "  -d DIR       save retrieved messages in DIR (default: .)\n"
	    "  -e, --errexit  stop at the first -ERR, failed login or protocol\n"
	    "               error: send QUIT and exit 2\n"
	    "  -t SECONDS   wait at most this long for the server (default: %d)\n"
	    "  -u USER      log in as USER at start (the password is asked)\n"
	    "  --tls        TLS from the first byte (POP3S, usually port 995)\n"
	    "  --starttls   switch to TLS with STLS before anything else\n"
	    "  --cafile F   trust the CA certificates in F, not the system's\n"
	    "  --insecure   do not verify the server's certificate\n"
	    "  --max-size N stop a message that LIST gave no size beyond N\n"
	    "               octets (K, M, G suffixes; default 1G)\n"
	    "  --no-pager   on a terminal, show a reply taller than the screen\n"
	    "               directly, not through $PAGER (default: less)\n"
	    "Exit status: 0 after QUIT, 1 connection failed or lost, 2 stopped by\n"
	    "-e, 64 bad usage.  Notes such as 'saved to' go to stderr.\n"
	    "Type 'help' at the prompt for the commands.\n",
	    CLIENT_TIMEOUT_DEFAULT);
}

/* The line after a usage error; returns EXIT_USAGE. */
static int
usage_hint(void)
{
	fputs("usage: pop3c [OPTIONS] [HOST] PORT | HOST[:PORT] | "
	    "pop3[s]://[USER@]HOST[:PORT]; try 'pop3c --help'\n", stderr);
	return EXIT_USAGE;
}

/* A one-line usage error on stderr; returns EXIT_USAGE. */
static int
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("pop3c: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return usage_hint();
}

/* "N", "NK", "NM" or "NG" (binary units), not 0.  0, or -1. */
static int
parse_size(const char *arg, uint64_t *out)
{
	char num[24];
	size_t len = strlen(arg);
	unsigned shift = 0;
	uint64_t v;

	if (len == 0 || len >= sizeof(num))
		return -1;
	memcpy(num, arg, len + 1);
	switch (num[len - 1]) {
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	}
	if (shift != 0)
		num[len - 1] = '\0';
	if (proto_number(num, UINT64_MAX >> 31, &v) < 0 || v == 0)
		return -1;
	*out = v << shift;
	return 0;
}

/* Copy n octets of s into buf (cap) as a string.  0, or -1 if too long. */
static int
copy_part(char *buf, size_t cap, const char *s, size_t n)
{
	if (n >= cap)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return 0;
}

/*
 * Percent-decode n octets of s into buf (cap) as a string (RFC 3986 section
 * 2.1).  0, or -1 for a bad escape, an octet that could end or split a
 * command (a control character), or no room.
 */
static int
hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int
pct_decode(char *buf, size_t cap, const char *s, size_t n)
{
	size_t i, o = 0;
	int ch, h, l;

	for (i = 0; i < n; i++) {
		ch = (unsigned char)s[i];
		if (ch == '%') {
			if (n - i < 3 || (h = hex_digit(s[i + 1])) < 0 ||
			    (l = hex_digit(s[i + 2])) < 0)
				return -1;
			ch = h << 4 | l;
			i += 2;
		}
		if (ch < 0x20 || ch == 0x7f || o + 1 >= cap)
			return -1;
		buf[o++] = (char)ch;
	}
	buf[o] = '\0';
	return 0;
}

/*
 * The server's address from the arguments after the options: [HOST] PORT,
 * HOST, HOST:PORT, [V6], [V6]:PORT, [V6] PORT, a bare IPv6 address, or a
 * pop3:// or pop3s:// URL with an optional USER@ (percent-decoded).  Sets
 * c->host, c->port (default 110, 995 with TLS); *user and *tls from a URL.  0, or -1
 * (said).
 */
static int
parse_target(struct client *c, int argc, char **argv, const char **user,
    int *tls)
{
	const char *a = argv[0], *port = NULL, *colon, *end;
	size_t hlen;
	uint64_t v;

	if (argc == 2) {
		port = argv[1];
		hlen = strlen(a);
		if (hlen >= 2 && a[0] == '[' && a[hlen - 1] == ']') {
			a++;
			hlen -= 2;
		}
	} else if (a[0] != '\0' && a[strspn(a, "0123456789")] == '\0') {
		port = a;		/* pop3c PORT */
		a = "localhost";
		hlen = strlen(a);
	} else {
		if (strncasecmp(a, "pop3://", 7) == 0)
			a += 7;
		else if (strncasecmp(a, "pop3s://", 8) == 0) {
			a += 8;
			*tls = 1;
		}
		if (a != argv[0]) {
			const char *at;

			end = a + strcspn(a, "/?#");
			if (*end != '\0' && strcmp(end, "/") != 0) {
				fprintf(stderr, "pop3c: a POP3 URL has no path: "
				    "'%s'\n", argv[0]);
				return -1;
			}
			at = memchr(a, '@', end - a);
			if (at != NULL) {
				if (at == a || pct_decode(c->userbuf,
				    sizeof(c->userbuf), a, at - a) < 0 ||
				    c->userbuf[0] == '\0') {
					fprintf(stderr, "pop3c: bad user in "
					    "'%s'\n", argv[0]);
					return -1;
				}
				if (*user == NULL)
					*user = c->userbuf;
				a = at + 1;
			}
		} else
			end = a + strlen(a);
		if (a[0] == '[') {
			const char *rb = memchr(a, ']', end - a);

			if (rb == NULL || (rb + 1 != end && rb[1] != ':')) {
				fprintf(stderr, "pop3c: bad address '%s'\n",
				    argv[0]);
				return -1;
			}
			if (rb + 1 != end)
				port = rb + 2;
			a++;
			hlen = rb - a;
		} else if ((colon = memchr(a, ':', end - a)) != NULL &&
		    memchr(colon + 1, ':', end - colon - 1) == NULL) {
			port = colon + 1;	/* HOST:PORT */
			hlen = colon - a;
		} else
			hlen = end - a;		/* a name, or bare IPv6 */
		if (port != NULL) {
			if (copy_part(c->portbuf, sizeof(c->portbuf), port,
			    end - port) < 0) {
				fprintf(stderr, "pop3c: bad port in '%s'\n",
				    argv[0]);
				return -1;
			}
			port = c->portbuf;
		}
	}
	if (hlen == 0) {
		fprintf(stderr, "pop3c: empty host name\n");
		return -1;
	}
	if (copy_part(c->hostbuf, sizeof(c->hostbuf), a, hlen) < 0) {
		fprintf(stderr, "pop3c: host name too long\n");
		return -1;
	}
	/* Names, IPv4, IPv6 with a zone: nothing else reaches the resolver. */
	if (c->hostbuf[strspn(c->hostbuf, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:%")] != '\0') {
		fprintf(stderr, "pop3c: bad host name '%s'\n", c->hostbuf);
		return -1;
	}
	c->host = c->hostbuf;
	if (port == NULL)
		port = *tls ? "995" : "110";
	if (proto_number(port, 65535, &v) < 0 || v == 0) {
		fprintf(stderr, "pop3c: bad port '%s'\n", port);
		return -1;
	}
	c->port = port;
	return 0;
}

static void
on_sigint(int sig)
{
	(void)sig;
	got_sigint = 1;
}

/* ---- output ---------------------------------------------------------- */

/* Flush stdout; a failure (a closed pipe) ends the program. */
static int
out_flush(void)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		int e = errno;

		fprintf(stderr, "pop3c: writing to standard output: %s\n",
		    strerror(e));
		return -1;
	}
	return 0;
}

/* ---- pager ----------------------------------------------------------- */

/*
 * On a terminal, the body of a reply taller than the screen goes through
 * $PAGER (less when unset).  What is shown is held until it is taller
 * than the screen (or fills PAGER_HOLD_MAX); then the pager starts and
 * gets it, and the rest as it comes.  A shorter reply goes to stdout.
 * The text is already made visible (client_vis); the pager only shows it.
 */
struct pager {
	FILE		*out;		/* what client_body writes to */
	char		*hold;
	size_t		 len;
	int		 rows, cols;	/* the screen */
	int		 lines, col;	/* taken so far (status line included) */
	pid_t		 pid;		/* the pager, or 0 */
	int		 fd;		/* its stdin, or -1 */
	int		 gone;		/* quit, failed or interrupted: drop */
	int		 direct;	/* no pager could start: to stdout */
};

/* Write to the pager's pipe; give up on Ctrl-C or when it has quit. */
static void
pager_put(struct pager *pg, const char *p, size_t n)
{
	while (n > 0 && !pg->gone) {
		struct pollfd pfd = { .fd = pg->fd, .events = POLLOUT };
		ssize_t k;

		if (got_sigint) {	/* client_body sees the flag next */
			pg->gone = 1;
			break;
		}
		k = write(pg->fd, p, n);
		if (k > 0) {
			p += k;
			n -= k;
			continue;
		}
		if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				pg->gone = 1;
			continue;
		}
		pg->gone = 1;		/* EPIPE: the user quit the pager */
	}
}

/* Start the pager and give it what is held.  On failure the text goes to
 * stdout after all. */
static void
pager_start(struct pager *pg)
{
	const char *cmd = getenv("PAGER");
	int fds[2], ep[2], e;
	ssize_t k;

	if (cmd != NULL && cmd[strspn(cmd, " \t")] == '\0')
		cmd = NULL;
	fflush(stdout);
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto direct;
	if (pipe2(ep, O_CLOEXEC) < 0) {
		close(fds[0]);
		close(fds[1]);
		goto direct;
	}
	if ((pg->pid = fork()) < 0) {
		pg->pid = 0;
		close(fds[0]);
		close(fds[1]);
		close(ep[0]);
		close(ep[1]);
		goto direct;
	}
	if (pg->pid == 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sigemptyset(&sa.sa_mask);
		sa.sa_handler = SIG_DFL;
		(void)sigaction(SIGPIPE, &sa, NULL);
		(void)sigaction(SIGINT, &sa, NULL);
		if (dup2(fds[0], 0) < 0)
			_exit(127);
		if (cmd != NULL)
			execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		else
			execlp("less", "less", (char *)NULL);
		e = errno;
		(void)write(ep[1], &e, sizeof(e));
		_exit(127);
	}
	close(fds[0]);
	close(ep[1]);
	while ((k = read(ep[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(ep[0]);
	if (k > 0) {		/* exec failed: no pager here */
		while (waitpid(pg->pid, NULL, 0) < 0 && errno == EINTR)
			;
		pg->pid = 0;
		close(fds[1]);
		goto direct;
	}
	pg->fd = fds[1];
	if (fcntl(pg->fd, F_SETFL, O_NONBLOCK) < 0)
		pg->gone = 1;
	pager_put(pg, pg->hold, pg->len);
	pg->len = 0;
	return;
direct:
	client_warnx("cannot start the pager %s: %s", cmd ? cmd : "less",
	    strerror(errno));
	pg->direct = 1;
	fwrite(pg->hold, 1, pg->len, stdout);
	pg->len = 0;
}

/* Count the screen lines n more bytes take (TAB, wrapping, UTF-8). */
static void
pager_count(struct pager *pg, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char ch = p[i];

		if (ch == '\n') {
			pg->lines++;
			pg->col = 0;
			continue;
		}
		if ((ch & 0xc0) == 0x80)
			continue;	/* within a UTF-8 sequence */
		pg->col = ch == '\t' ? (pg->col + 8) & ~7 : pg->col + 1;
		if (pg->col > pg->cols) {
			pg->lines++;
			pg->col = ch == '\t' ? 0 : 1;
		}
	}
}

static ssize_t
pager_write(void *cookie, const char *p, size_t n)
{
	struct pager *pg = cookie;
	int held = 0;

	if (pg->direct)
		return fwrite(p, 1, n, stdout) == n ? (ssize_t)n : -1;
	if (pg->pid != 0) {
		pager_put(pg, p, n);
		return n;		/* dropped when gone: never an error */
	}
	pager_count(pg, p, n);
	if (pg->len + n <= PAGER_HOLD_MAX) {
		memcpy(pg->hold + pg->len, p, n);
		pg->len += n;
		held = 1;
	}
	if (pg->lines >= pg->rows || !held) {
		pager_start(pg);
		if (!held)
			(void)pager_write(pg, p, n);
	}
	return n;
}

/*
 * The FILE a body is shown on: stdout itself, or (a terminal and no
 * --no-pager) one that pages a tall reply.  lines: taken already.
 */
static FILE *
pager_open(struct client *c, struct pager *pg, int lines)
{
	static const cookie_io_functions_t io = { .write = pager_write };
	struct winsize ws;

	memset(pg, 0, sizeof(*pg));
	pg->fd = -1;
	pg->out = stdout;
	if (!c->interactive || c->no_pager || !isatty(1) ||
	    ioctl(1, TIOCGWINSZ, &ws) < 0 || ws.ws_row < 2 ||
	    ws.ws_col == 0)
		return stdout;
	pg->rows = ws.ws_row;
	pg->cols = ws.ws_col;
	pg->lines = lines;
	if ((pg->hold = malloc(PAGER_HOLD_MAX)) == NULL)
		return stdout;
	if ((pg->out = fopencookie(pg, "w", io)) == NULL) {
		free(pg->hold);
		pg->hold = NULL;
		pg->out = stdout;
		return stdout;
	}
	return pg->out;
}

/* The body is over: show what is held (short), or end the pager (wait
 * for the user to quit it; at once after Ctrl-C). */
static void
pager_close(struct pager *pg, int interrupted)
{
	if (pg->out == stdout)
		return;
	(void)fclose(pg->out);
	pg->out = stdout;
	if (pg->pid == 0 && !pg->direct)
		fwrite(pg->hold, 1, pg->len, stdout);
	free(pg->hold);
	pg->hold = NULL;
	if (pg->pid == 0)
		return;
	close(pg->fd);
	if (interrupted || pg->gone)
		(void)kill(pg->pid, SIGTERM);
	while (waitpid(pg->pid, NULL, 0) < 0 && errno == EINTR)
		;
	pg->pid = 0;
	got_sigint = 0;		/* a Ctrl-C meant for the pager */
}

/* ---- replies --------------------------------------------------------- */

static void
mark_deleted(struct client *c, const char *arg, int on)
{
	uint64_t n;

	if (!on) {
		memset(c->deleted, 0, STORE_MAX_MESSAGES / 8 + 1);
		c->ndeleted = 0;
		return;
	}
	if (arg == NULL || proto_number(arg, STORE_MAX_MESSAGES, &n) < 0 ||
	    n == 0)
		return;
	if (!(c->deleted[n / 8] & (1u << (n % 8)))) {
		c->deleted[n / 8] |= 1u << (n % 8);
		c->ndeleted++;
	}
}

/* "+OK n size": the count is n plus what this session marked. */
static void
learn_stat(struct client *c)
{
	uint64_t n;

	if (client_stat_count(c->conn.line, STORE_MAX_MESSAGES, &n) < 0)
		return;
	c->count = n + c->ndeleted;
	c->count_known = 1;
	c->stat_count = c->count;
	c->stat_known = 1;
}

/* The highest message number the server may name. */
static uint64_t
number_bound(const struct client *c)
{
	return c->stat_known ? c->stat_count : STORE_MAX_MESSAGES;
}

/* Note the size LIST gave message n (kept for RETR's bound). */
static void
learn_size(struct client *c, uint64_t n, const char *word)
{
	uint64_t size;

	if (n == 0 || n > number_bound(c) ||
	    proto_number(word, UINT64_MAX - 1, &size) < 0)
		return;
	if (n >= c->nsizes) {
		size_t cap = c->nsizes ? c->nsizes : 64;
		uint64_t *v;

		while (cap <= n)
			cap *= 2;
		if (cap > STORE_MAX_MESSAGES + 1)
			cap = STORE_MAX_MESSAGES + 1;
		if ((v = realloc(c->sizes, cap * sizeof(*v))) == NULL)
			return;		/* no bound but --max-size then */
		memset(v + c->nsizes, 0, (cap - c->nsizes) * sizeof(*v));
		c->sizes = v;
		c->nsizes = cap;
	}
	c->sizes[n] = size + 1;
}

static void
listing_entry(void *arg, uint64_t n, const char *word)
{
	learn_size(arg, n, word);
}

/* "+OK n size" to LIST n. */
static void
learn_list_one(struct client *c)
{
	const char *p = c->conn.line + 3;
	char num[24], size[24];
	uint64_t n;

	if (sscanf(p, " %23[0-9] %23[0-9]", num, size) == 2 &&
	    proto_number(num, STORE_MAX_MESSAGES, &n) == 0)
		learn_size(c, n, size);
}

/* How far RETR n may go: LIST's size and a margin, else --max-size. */
static uint64_t
retr_bound(const struct client *c, const char *arg)
{
	uint64_t n;

	if (arg != NULL && proto_number(arg, STORE_MAX_MESSAGES, &n) == 0 &&
	    n < c->nsizes && c->sizes[n] != 0)
		return c->sizes[n] - 1 + CLIENT_SAVE_MARGIN;
	return c->max_size;
}

/* Read and show a status line.  0, or -1 when the connection cannot go
 * on (said). */
static int
status_line(struct client *c)
{
	enum client_rc rc;
	int midway;

	while ((rc = client_status_line(&c->conn, &midway)) == CLIENT_INTR &&
	    c->interactive && !c->dropping) {
		/* Ctrl-C before the reply: drop it when it comes. */
		c->dropping = 1;
		client_warnx("interrupted: the reply will be dropped (Ctrl-C "
		    "again closes the connection)");
	}
	if (rc == CLIENT_PROTO) {
		client_show_line(stdout, c->conn.line, c->conn.linelen);
		c->proto_failed = 1;
	}
	if (rc != CLIENT_OK) {
		client_say(&c->conn, rc, midway);
		return -1;
	}
	return 0;
}

/*
 * Read and show the reply to a command: the status line and, for a +OK to
 * a multi-line command, the body.  arg is the first argument (RETR saves
 * the message under its number).  0, or -1 when the connection is lost
 * (said).
 */
static int
reply(struct client *c, const struct cmd *cmd, int multi, const char *arg)
{
	struct client_sink s;
	struct client_save sv;
	struct pager pg;
	enum client_rc rc;
	int in_auth = c->sasl || (cmd != NULL && (cmd->flags & C_AUTH));

	c->dropping = 0;
	if (status_line(c) < 0)
		return -1;
	if (!c->saving || c->conn.status != CLIENT_ST_OK)
		client_show_line(stdout, c->conn.line, c->conn.linelen);
	c->last_ok = c->conn.status == CLIENT_ST_OK;
	c->sasl = 0;
	if (c->conn.status == CLIENT_ST_CONT) {
		if (in_auth)
			c->sasl = 1;
		else {
			client_warnx("protocol error: a \"+\" continuation "
			    "outside AUTH (nothing typed is sent as a SASL "
			    "response)");
			c->failed = c->proto_failed = 1;
		}
	} else if (c->conn.status == CLIENT_ST_ERR)
		c->failed = 1;
	/* A login, or a command only valid after one, went through. */
	if (c->last_ok && (in_auth || (cmd != NULL && (cmd->flags & C_LOGIN))))
		c->transaction = 1;
	if (!c->last_ok || cmd == NULL) {
		if (out_flush() < 0)
			return -1;
		return 0;
	}
	if (cmd->after != NULL)
		cmd->after(c, multi, arg);
	if (!multi)
		return out_flush();

	memset(&s, 0, sizeof(s));
	pg.out = stdout;
	s.out = c->saving ? NULL : pager_open(c, &pg, 1);
	s.fd = -1;
	s.listing = (cmd->flags & C_LISTING) != 0;
	s.entry = listing_entry;
	s.arg = c;
	s.intr = c->interactive ? &got_sigint : NULL;
	s.interrupted = c->dropping;
	sv.fd = -1;
	if (cmd->flags & C_RETR) {
		s.max_octets = retr_bound(c, arg);
		if (c->saving && c->save_path != NULL) {
			if (!c->dropping)
				s.fd = c->save_fd;
		} else if (!c->dropping && client_save_open(&sv, c->dirfd,
		    c->dir, c->maildir, arg,
		    c->have_uid ? c->retr_uid : NULL) == 0)
			s.fd = sv.fd;
		if (c->saving && s.fd >= 0 && c->interactive && isatty(2)) {
			s.progress = save_progress;
			save_progress(c, 0);
		}
	}
	rc = client_body(&c->conn, &s);
	pager_close(&pg, s.interrupted || rc != CLIENT_OK);
	if (s.progress != NULL) {
		fputs("\r\033[K", stderr);	/* the progress line, cleared */
		fflush(stderr);
	}
	if (s.interrupted && !c->dropping) {
		fputc('\n', stdout);
		client_warnx("interrupted: the rest of the reply was dropped");
	}
	if (rc == CLIENT_TOOBIG)
		c->proto_failed = 1;
	if (rc == CLIENT_TOOBIG)
		client_warnx("message %s went on past %llu octets (%s): "
		    "stopped, connection closed", arg ? arg : "?",
		    (unsigned long long)s.max_octets,
		    s.max_octets == c->max_size ? "--max-size" :
		    "its LIST size and a margin");
	else if (rc == CLIENT_INTR)
		client_warnx("interrupted again: connection closed");
	else if (rc != CLIENT_OK)
		client_say(&c->conn, rc, 1);
	if (rc == CLIENT_OK && s.listing && !s.interrupted) {
		uint64_t bound = number_bound(c);

		if (s.maxnum > bound)
			client_warnx("the listing names message %llu, beyond "
			    "%llu%s: message numbers not learned",
			    (unsigned long long)s.maxnum,
			    (unsigned long long)bound,
			    c->stat_known ? " (STAT)" : "");
		else {
			c->count = s.maxnum;
			c->count_known = 1;
		}
	}
	if (s.fd >= 0 && c->saving && c->save_path != NULL) {
		if (s.save_failed)
			client_warnx("writing the saved message: %s",
			    strerror(s.save_errno));
		c->save_fd = -1;
		if (rc != CLIENT_OK || s.save_failed || s.interrupted ||
		    close(s.fd) < 0) {
			save_remove(c, s.fd);
		} else {
			fflush(stdout);
			fprintf(stderr, "saved to %s (%llu octets)\n",
			    c->save_path, (unsigned long long)s.saved);
		}
	} else if (s.fd >= 0) {
		if (s.save_failed)
			client_warnx("writing the saved message: %s",
			    strerror(s.save_errno));
		if (rc != CLIENT_OK || s.save_failed || s.interrupted) {
			if (client_save_abort(&sv) == 0)
				client_warnx("message not saved");
		} else if (client_save_commit(&sv) == 0) {
			/* A note: on stderr, apart from the message text. */
			fflush(stdout);
			fprintf(stderr, "saved to %s/%s (%llu octets)\n",
			    c->dir, sv.shown, (unsigned long long)s.saved);
		}
	}
	if (out_flush() < 0)
		return -1;
	return rc == CLIENT_OK ? 0 : -1;
}

/* save n: the progress line on the terminal (stderr), redrawn in place
 * at most ten times a second. */
static void
save_progress(void *arg, uint64_t saved)
{
	struct client *c = arg;
	struct timespec now;
	long ms;

	if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
		return;
	ms = (now.tv_sec - c->save_drawn.tv_sec) * 1000 +
	    (now.tv_nsec - c->save_drawn.tv_nsec) / 1000000;
	if (saved != 0 && ms < 100)
		return;
	c->save_drawn = now;
	if (c->save_size > 0)
		fprintf(stderr, "\rsaving message %s: %llu of %llu octets "
		    "(%llu%%)\033[K", c->save_num, (unsigned long long)saved,
		    (unsigned long long)c->save_size,
		    (unsigned long long)(saved >= c->save_size ? 100 :
		    saved / (c->save_size / 100 + 1)));
	else
		fprintf(stderr, "\rsaving message %s: %llu octets\033[K",
		    c->save_num, (unsigned long long)saved);
	fflush(stderr);
}

/* save n FILE did not complete: close (fd >= 0) and remove the file. */
static void
save_remove(struct client *c, int fd)
{
	if (fd >= 0)
		(void)close(fd);
	if (unlink(c->save_path) < 0)
		client_warnx("cannot remove %s: %s", c->save_path,
		    strerror(errno));
	else
		client_warnx("message not saved");
}

/* save n [file]: RETR n, saved (to file when given) and not shown. */
static int
cmd_save(struct client *c, const char *args)
{
	char line[40], num[24];
	size_t nlen = strcspn(args, " \t");
	const char *file = args + nlen;
	uint64_t n;
	int rc;

	file += strspn(file, " \t");
	if (nlen == 0 || nlen >= sizeof(num)) {
		client_warnx("usage: save n [file]");
		c->failed = 1;
		return 0;
	}
	memcpy(num, args, nlen);
	num[nlen] = '\0';
	if (proto_number(num, STORE_MAX_MESSAGES, &n) < 0 || n == 0) {
		client_warnx("save: bad message number '%s'", num);
		c->failed = 1;
		return 0;
	}
	if (!c->connected) {
		client_warnx("not connected: 'reconnect' opens a new session, "
		    "'exit' leaves");
		c->failed = 1;
		return 0;
	}
	c->save_fd = -1;
	c->save_path = NULL;
	if (*file != '\0') {
		c->save_fd = open(file, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (c->save_fd < 0) {
			client_warnx("cannot save to %s: %s%s", file,
			    strerror(errno), errno == EEXIST ?
			    " (not replaced)" : "");
			c->failed = 1;
			return 0;
		}
		c->save_path = file;
	}
	snprintf(line, sizeof(line), "RETR %llu", (unsigned long long)n);
	snprintf(num, sizeof(num), "%llu", (unsigned long long)n);
	c->save_num = num;
	c->save_size = n < c->nsizes && c->sizes[n] != 0 ? c->sizes[n] - 1 :
	    0;
	memset(&c->save_drawn, 0, sizeof(c->save_drawn));
	c->saving = 1;
	rc = run_line(c, line, 0);
	c->saving = 0;
	if (c->save_path != NULL && c->save_fd >= 0)
		save_remove(c, c->save_fd);	/* -ERR, or no reply */
	c->save_fd = -1;
	c->save_path = NULL;
	c->save_num = NULL;
	return rc;
}

/*
 * Ask CAPA once (not shown) and learn whether the server has UIDL: before
 * the first RETR while no login is known, as a maildrop served without one
 * answers at once.  0, or -1 when the connection failed (said).
 */
static int
ask_capa(struct client *c)
{
	char buf[CLIENT_CAPA_SEEN + 1], *p;
	struct client_sink s;
	enum client_rc rc;
	int midway;

	c->capa_asked = 1;
	if (client_send(&c->conn, "CAPA") < 0)
		return -1;
	if ((rc = client_status_line(&c->conn, &midway)) != CLIENT_OK)
		goto failed;
	if (c->conn.status != CLIENT_ST_OK)
		return 0;
	memset(buf, 0, sizeof(buf));
	memset(&s, 0, sizeof(s));
	/* The first CLIENT_CAPA_SEEN octets are looked at, the rest read. */
	if ((s.out = fmemopen(buf, sizeof(buf) - 1, "w")) == NULL)
		client_warnx("fmemopen: %s", strerror(errno));
	s.fd = -1;
	s.max_octets = CLIENT_CAPA_MAX;
	rc = client_body(&c->conn, &s);
	if (s.out != NULL)
		(void)fclose(s.out);
	midway = 1;
	if (rc != CLIENT_OK)
		goto failed;
	for (p = buf; *p != '\0'; p += strcspn(p, "\n"), p += *p == '\n')
		if (strncasecmp(p, "UIDL", 4) == 0 &&
		    (p[4] == '\n' || p[4] == ' ' || p[4] == '\0'))
			c->uidl = 1;
	return 0;
failed:
	if (rc == CLIENT_PROTO)
		c->proto_failed = 1;
	client_say(&c->conn, rc, midway);
	return -1;
}

/*
 * Before RETR n: ask "UIDL n" (not shown) for the file's name, unless the
 * server is known to lack UIDL.  0 (c->have_uid set when one came), or -1
 * when the connection failed (said).
 */
static int
fetch_uid(struct client *c, const char *arg)
{
	char cmd[40], num[24], uid[UIDL_MAX + 2];
	uint64_t n;
	int midway, len;
	enum client_rc rc;

	if (c->uidl < 0 || proto_number(arg, STORE_MAX_MESSAGES, &n) < 0 ||
	    n == 0)
		return 0;
	/* Not known to be logged in (an open maildrop needs no login). */
	if (!c->transaction && c->uidl == 0 && !c->capa_asked &&
	    ask_capa(c) < 0)
		return -1;
	if (!c->transaction && c->uidl == 0)
		return 0;
	snprintf(cmd, sizeof(cmd), "UIDL %llu", (unsigned long long)n);
	if (client_send(&c->conn, cmd) < 0)
		return -1;
	if ((rc = client_status_line(&c->conn, &midway)) != CLIENT_OK) {
		if (rc == CLIENT_PROTO)
			c->proto_failed = 1;
		client_say(&c->conn, rc, midway);
		return -1;
	}
	if (c->conn.status != CLIENT_ST_OK) {
		if (c->uidl == 0)
			c->uidl = -1;	/* no UIDL: N.eml from now on */
		return 0;
	}
	/* "+OK n unique-id": 1 to 70 octets 0x21..0x7E (RFC 1939). */
	if (sscanf(c->conn.line, "+OK %23s %71s", num, uid) != 2 ||
	    strcmp(num, arg) != 0 || (len = strlen(uid)) > UIDL_MAX ||
	    uid[strspn(uid, "!\"#$%&'()*+,-./0123456789:;<=>?@"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz"
	    "{|}~")] != '\0')
		return 0;
	memcpy(c->retr_uid, uid, len + 1);
	c->have_uid = 1;
	c->uidl = 1;
	return 0;
}

/* ---- commands -------------------------------------------------------- */

static const struct cmd *
find_cmd(const char *word, size_t len)
{
	size_t i;

	for (i = 0; i < NCMDS; i++)
		if (strlen(cmds[i].name) == len &&
		    strncasecmp(cmds[i].name, word, len) == 0)
			return &cmds[i];
	return NULL;
}

static int
cmd_help(struct client *c, const char *args)
{
	const struct cmd *cmd;
	size_t i;

	(void)c;
	if (*args != '\0') {
		if ((cmd = find_cmd(args, strcspn(args, " \t"))) == NULL) {
			client_warnx("no command %.*s; 'help' lists them",
			    (int)strcspn(args, " \t"), args);
			return 0;
		}
		printf("%s\n  %s%s\n", cmd->usage, cmd->help,
		    cmd->local != NULL && cmd->local != cmd_save ?
		    " (answered by pop3c, not sent)" : "");
		return out_flush();
	}
	printf("Commands are sent to the server as typed, in either case:\n");
	for (i = 0; i < NCMDS; i++) {
		if (i > 0 && cmds[i].local != NULL && cmds[i - 1].local == NULL)
			printf("Answered by pop3c itself:\n");
		printf("  %-26s %s\n", cmds[i].usage, cmds[i].help);
	}
	printf("Tab completes command names and message numbers (once STAT "
	    "or LIST has run);\nRETR saves to the download folder, save "
	    "without showing; Ctrl-D sends QUIT\nand exits.\n");
	return out_flush();
}

/* Read one line from a terminal fd without echo, prompting on out (or on
 * fd when out is NULL).  1, or 0 if cancelled (Ctrl-C, Ctrl-D), or -1
 * (said). */
static int
tty_secret(int fd, FILE *out, const char *prompt, char *buf, size_t cap)
{
	struct termios old, quiet;
	size_t len = 0;
	int rc = 1, toolong = 0;

	if (tcgetattr(fd, &old) < 0) {
		client_warnx("terminal: %s", strerror(errno));
		return -1;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL | ICANON;
	if (tcsetattr(fd, TCSAFLUSH, &quiet) < 0) {
		client_warnx("terminal: %s", strerror(errno));
		return -1;
	}
	if (out != NULL) {
		fflush(stdout);
		fputs(prompt, out);
		fflush(out);
	} else if (proto_write_fd(fd, prompt, strlen(prompt)) < 0)
		rc = -1;
	got_sigint = 0;
	while (rc == 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		char ch;
		ssize_t n;

		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR && !got_sigint)
				continue;
			rc = errno == EINTR ? 0 : -1;
			break;
		}
		n = read(fd, &ch, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n == 0 ? 0 : -1;
			break;
		}
		if (ch == '\n')
			break;
		if (len + 1 < cap)
			buf[len++] = ch;
		else
			toolong = 1;
	}
	got_sigint = 0;
	buf[len] = '\0';
	if (tcsetattr(fd, TCSAFLUSH, &old) < 0)
		client_warnx("terminal: %s", strerror(errno));
	if (rc != 1) {
		if (out != NULL)
			fputc('\n', out);
		else
			(void)proto_write_fd(fd, "\n", 1);
	}
	if (rc < 0)
		client_warnx("reading the password: %s", strerror(errno));
	if (rc == 1 && toolong) {
		client_warnx("password too long");
		rc = 0;
	}
	return rc;
}

static int input_line(char *, size_t, int *);

/* Ask for a password: on the terminal without echo (stdin's, else
 * /dev/tty), else the next input line.  1, or 0 when cancelled. */
static int
ask_password(struct client *c, char *buf, size_t cap)
{
	int fd, rc, toolong = 0;

	if (c->interactive)
		return tty_secret(0, c->tty, "Password: ", buf, cap);
	fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		struct sigaction sa, old;

		/* Catch Ctrl-C meanwhile, so echo is always turned back on. */
		memset(&sa, 0, sizeof(sa));
		sigemptyset(&sa.sa_mask);
		sa.sa_handler = on_sigint;
		if (sigaction(SIGINT, &sa, &old) < 0) {
			client_warnx("sigaction: %s", strerror(errno));
			close(fd);
			return -1;
		}
		rc = tty_secret(fd, NULL, "Password: ", buf, cap);
		(void)sigaction(SIGINT, &old, NULL);
		close(fd);
		return rc;
	}
	rc = input_line(buf, cap, &toolong);
	if (rc == 1 && toolong) {
		client_warnx("password too long");
		return 0;
	}
	return rc;
}

/* Add a typed line to the history, and to the file at once (so it survives
 * a crash); a repeat of the previous line is not added again. */
static void
remember(struct client *c, const char *line)
{
	HIST_ENTRY *last = history_get(history_base + history_length - 1);

	if (last != NULL && strcmp(last->line, line) == 0)
		return;
	add_history(line);
	if (c->histpath[0] != '\0' && append_history(1, c->histpath) != 0) {
		client_warnx("cannot write history %s: %s", c->histpath,
		    strerror(errno));
		c->histpath[0] = '\0';
	}
}

/* STLS: ask, then handshake.  show: print the reply.  0 to go on (the
 * server refused), -1 (said) when the connection cannot go on. */
static int
starttls(struct client *c, int show)
{
	if (c->conn.tls_on) {
		client_warnx("TLS is already on");
		return 0;
	}
	if (client_send(&c->conn, "STLS") < 0 || status_line(c) < 0)
		return -1;
	if (show) {
		client_show_line(stdout, c->conn.line, c->conn.linelen);
		if (out_flush() < 0)
			return -1;
	}
	if (c->conn.status != CLIENT_ST_OK) {
		if (!show) {
			fflush(stdout);
			fputs("pop3c: the server refused STLS: ", stderr);
			client_show_line(stderr, c->conn.line,
			    c->conn.linelen);
		}
		return show ? 0 : -1;
	}
	if (client_tls_start(&c->conn, c->host, c->cafile, c->insecure) < 0)
		return -1;
	if (show)
		fprintf(c->tty ? c->tty : stderr, "TLS is on (%s)\n",
		    client_tls_describe(&c->conn));
	return 0;
}

/* May a password go to the server?  Yes over TLS or to loopback; else
 * only when the user says so on the terminal.  1 yes, 0 no (said). */
static int
clear_ok(struct client *c)
{
	char answer[16];
	FILE *in, *out;
	int yes;

	if (c->conn.tls_on || c->local)
		return 1;
	in = fopen("/dev/tty", "r+e");
	if (in == NULL) {
		client_warnx("not sending a password unencrypted to %s; use "
		    "--starttls or --tls", c->host);
		return 0;
	}
	out = in;
	fprintf(out, "The connection to %s is not encrypted. Send the "
	    "password anyway? [y/N] ", c->host);
	fflush(out);
	yes = fgets(answer, sizeof(answer), in) != NULL &&
	    (answer[0] == 'y' || answer[0] == 'Y');
	fclose(in);
	if (!yes)
		client_warnx("password not sent");
	return yes;
}

/* PASS without a password: ask for it without echo. */
static int
before_pass(struct client *c, struct cmd_line *cl, int *rc)
{
	char pw[POP3_CMD_MAX];
	int n;

	if (cl->nargs > 0)
		return 0;
	n = ask_password(c, pw, sizeof(pw));
	if (n <= 0) {
		explicit_bzero(pw, sizeof(pw));
		*rc = n < 0 ? -1 : 0;
		return 1;
	}
	n = snprintf(cl->buf, cl->bufsz, "%.*s %s", (int)cl->wlen, cl->word,
	    pw);
	explicit_bzero(pw, sizeof(pw));
	if (n < 0 || (size_t)n > CMD_TEXT_MAX) {
		explicit_bzero(cl->buf, cl->bufsz);
		client_warnx("command too long (at most %d octets)",
		    CMD_TEXT_MAX);
		*rc = 0;
		return 1;
	}
	cl->line = cl->buf;
	return 0;
}

/* STLS: sent, answered and the handshake made by starttls(). */
static int
before_stls(struct client *c, struct cmd_line *cl, int *rc)
{
	(void)cl;
	*rc = starttls(c, 1);
	return 1;
}

/* RETR n: the unique-id first, for the saved file's name. */
static int
before_retr(struct client *c, struct cmd_line *cl, int *rc)
{
	if (cl->arg == NULL || c->save_path != NULL ||
	    fetch_uid(c, cl->arg) == 0)
		return 0;
	*rc = -1;
	return 1;
}

/* A typed QUIT with deletions pending asks first on a terminal. */
static int
before_quit(struct client *c, struct cmd_line *cl, int *rc)
{
	if (!cl->typed || (*rc = quit_guard(c)) > 0)
		return 0;
	return 1;
}

static void
after_user(struct client *c, int multi, const char *arg)
{
	(void)multi;
	if (arg != NULL)
		snprintf(c->user, sizeof(c->user), "%s", arg);
}

static void
after_stat(struct client *c, int multi, const char *arg)
{
	(void)multi;
	(void)arg;
	learn_stat(c);
}

static void
after_list(struct client *c, int multi, const char *arg)
{
	(void)arg;
	if (!multi)
		learn_list_one(c);
}

static void
after_dele(struct client *c, int multi, const char *arg)
{
	(void)multi;
	mark_deleted(c, arg, 1);
}

static void
after_rset(struct client *c, int multi, const char *arg)
{
	(void)multi;
	(void)arg;
	mark_deleted(c, NULL, 0);
}

/*
 * Handle one input line.  Returns 0 to go on, 1 when QUIT was answered,
 * -1 when the connection is lost (said).  typed is 0 for the lines -u
 * sends, which stay out of history.
 */
static int
run_line(struct client *c, char *line, int typed)
{
	char buf[POP3_CMD_MAX + 1], first[32];
	const struct cmd *cmd = NULL;
	struct cmd_line cl;
	char *p, *word, *arg = NULL, *end;
	size_t wlen, nargs = 0;
	int multi = 0, secret = c->sasl, rc;

	while (*line == ' ' || *line == '\t')
		line++;
	end = line + strlen(line);
	word = line;
	wlen = strcspn(word, " \t");
	if (!c->sasl)
		cmd = find_cmd(word, wlen);
	/* Line ends never belong to a command; blanks do, in a password. */
	while (end > line && (end[-1] == '\r' || end[-1] == '\n' ||
	    ((cmd == NULL || !(cmd->flags & C_BLANKS)) &&
	    (end[-1] == ' ' || end[-1] == '\t'))))
		*--end = '\0';
	if (*line == '\0' && !c->sasl)
		return 0;
	if (cmd != NULL && (cmd->flags & C_NOHIST))
		secret = 1;
	if (typed && c->interactive && !secret)
		remember(c, line);
	/* Arguments (for multi-line choice, naming and completion state). */
	for (p = word + wlen; *p != '\0';) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		if (nargs++ == 0)
			arg = p;
		p += strcspn(p, " \t");
	}
	if (secret && !c->sasl && !clear_ok(c)) {
		c->failed = 1;
		return 0;
	}
	if (cmd != NULL && cmd->local != NULL)
		return cmd->local(c, word + wlen + strspn(word + wlen, " \t"));
	if (!c->connected) {
		client_warnx("not connected: 'reconnect' opens a new session, "
		    "'exit' leaves");
		c->failed = 1;
		return 0;
	}
	if (cmd != NULL)
		multi = cmd->multi == M_ALWAYS ||
		    (cmd->multi == M_NOARG && nargs == 0);
	if (strlen(line) > CMD_TEXT_MAX) {
		client_warnx("command too long (at most %d octets)", CMD_TEXT_MAX);
		c->failed = 1;
		return 0;
	}
	if (cmd != NULL && arg != NULL) {
		/* Keep just the first argument for naming and marking. */
		size_t alen = strcspn(arg, " \t");

		if (alen < sizeof(first)) {
			memcpy(first, arg, alen);
			first[alen] = '\0';
			arg = first;
		} else
			arg = NULL;
	}
	c->have_uid = 0;
	if (cmd != NULL && cmd->before != NULL) {
		cl.line = line;
		cl.buf = buf;
		cl.bufsz = sizeof(buf);
		cl.word = word;
		cl.wlen = wlen;
		cl.nargs = nargs;
		cl.arg = arg;
		cl.typed = typed;
		if (cmd->before(c, &cl, &rc) != 0)
			return rc;
		line = cl.line;
		if (line == buf)
			arg = NULL;
	}
	rc = client_send(&c->conn, line);
	explicit_bzero(buf, sizeof(buf));
	if (rc < 0)
		return -1;
	if (cmd != NULL && (cmd->flags & C_QUIT))
		c->quit_sent = 1;
	if (reply(c, cmd, multi, arg) < 0)
		return -1;
	return c->quit_sent ? 1 : 0;
}

/* ---- input ----------------------------------------------------------- */

/* One line from a non-terminal stdin.  1, 0 at end of input, -1 (said).
 * A line that does not fit in cap is discarded and *toolong set. */
static int
input_line(char *buf, size_t cap, int *toolong)
{
	size_t len;
	int ch;

	*toolong = 0;
	if (fgets(buf, cap, stdin) == NULL) {
		if (ferror(stdin)) {
			client_warnx("reading standard input: %s", strerror(errno));
			return -1;
		}
		return 0;
	}
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n') {
		buf[len - 1] = '\0';
		return 1;
	}
	if (feof(stdin))
		return 1;
	*toolong = 1;
	while ((ch = getchar()) != EOF && ch != '\n')
		;
	return 1;
}

/* Tab completion: command names in the case typed. */
static char *
gen_command(const char *text, int state)
{
	size_t len = strlen(text);

	if (state == 0) {
		const char *t;

		rlc->gen_i = 0;
		rlc->gen_lower = 0;
		for (t = text; *t != '\0'; t++) {
			if (*t >= 'a' && *t <= 'z')
				rlc->gen_lower = 1;
			if (*t >= 'A' && *t <= 'Z') {
				rlc->gen_lower = 0;
				break;
			}
		}
	}
	while (rlc->gen_i < NCMDS) {
		const struct cmd *cmd = &cmds[rlc->gen_i++];
		char *m, *q;

		if (!cmd->complete || strncasecmp(cmd->name, text, len) != 0)
			continue;
		/* pop3c's own commands are lower case words: "RE" is RETR. */
		if (cmd->local != NULL && len > 0 && !rlc->gen_lower)
			continue;
		if ((m = strdup(cmd->name)) == NULL)
			return NULL;
		if (rlc->gen_lower || cmd->local != NULL)
			for (q = m; *q != '\0'; q++)
				if (*q >= 'A' && *q <= 'Z')
					*q += 'a' - 'A';
		return m;
	}
	return NULL;
}

/* Tab completion: message numbers not marked deleted. */
static char *
gen_number(const char *text, int state)
{
	size_t len = strlen(text);

	if (state == 0)
		rlc->gen_n = 1;
	while (rlc->gen_n <= rlc->count) {
		uint64_t n = rlc->gen_n++;
		char num[24];

		if (n <= STORE_MAX_MESSAGES &&
		    (rlc->deleted[n / 8] & (1u << (n % 8))))
			continue;
		snprintf(num, sizeof(num), "%llu", (unsigned long long)n);
		if (strncmp(num, text, len) == 0)
			return strdup(num);
	}
	return NULL;
}

static char **
complete(const char *text, int start, int end)
{
	const char *b = rl_line_buffer, *p;
	const struct cmd *cmd;
	size_t wlen;
	int argn = 0;

	(void)end;
	rl_attempted_completion_over = 1;	/* never file names */
	p = b + strspn(b, " \t");
	if (p - b >= start)
		return rl_completion_matches(text, gen_command);
	wlen = strcspn(p, " \t");
	if ((cmd = find_cmd(p, wlen)) == NULL || rlc->sasl)
		return NULL;
	/* How many arguments come before the cursor's word. */
	for (p += wlen;; argn++) {
		p += strspn(p, " \t");
		if (p - b >= start)
			break;
		p += strcspn(p, " \t");
	}
	if (argn != 0 || !rlc->count_known ||
	    (cmd->arg != ARG_MSG && cmd->arg != ARG_MSG_OPT &&
	    cmd->arg != ARG_MSG_LINES))
		return NULL;
	return rl_completion_matches(text, gen_number);
}

/* Ctrl-C at the prompt: readline has shown ^C; start a fresh line. */
static int
on_signal_event(void)
{
	if (got_sigint) {
		got_sigint = 0;
		rl_replace_line("", 0);
		rl_crlf();
		rl_on_new_line();
		rl_redisplay();
	}
	return 0;
}

static int
mkdir_p(char *path)
{
	char *s;

	for (s = path + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char save = *s;

		*s = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*s = save;
			return -1;
		}
		*s = save;
		if (save == '\0')
			return 0;
	}
}

/* Find, create and read the history file; c->histpath stays "" when
 * history cannot be kept (said). */
static void
history_start(struct client *c)
{
	const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
	char dir[PATH_MAX];
	int n, fd;

	c->histpath[0] = '\0';
	using_history();
	stifle_history(HISTORY_MAX);
	if (x != NULL && x[0] == '/')	/* relative ones are invalid */
		n = snprintf(dir, sizeof(dir), "%s/pop3c", x);
	else {
		if (home == NULL || home[0] == '\0') {
			struct passwd *pw = getpwuid(getuid());

			if (pw == NULL || pw->pw_dir == NULL)
				return;
			home = pw->pw_dir;
		}
		n = snprintf(dir, sizeof(dir), "%s/.local/state/pop3c", home);
	}
	if (n < 0 || (size_t)n >= sizeof(dir) - sizeof("/history"))
		return;
	if (mkdir_p(dir) < 0) {
		client_warnx("cannot create %s: %s (history not kept)", dir,
		    strerror(errno));
		return;
	}
	n = snprintf(c->histpath, sizeof(c->histpath), "%s/history", dir);
	if (n < 0 || (size_t)n >= sizeof(c->histpath)) {
		c->histpath[0] = '\0';
		return;
	}
	fd = open(c->histpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0600);
	if (fd < 0 || close(fd) < 0) {
		client_warnx("cannot open %s: %s (history not kept)", c->histpath,
		    strerror(errno));
		c->histpath[0] = '\0';
		return;
	}
	if ((errno = read_history(c->histpath)) != 0) {
		client_warnx("cannot read %s: %s (history not kept)", c->histpath,
		    strerror(errno));
		c->histpath[0] = '\0';
		return;
	}
	(void)history_truncate_file(c->histpath, HISTORY_MAX);
}

static void
history_end(struct client *c)
{
	if (c->histpath[0] != '\0' &&
	    (errno = history_truncate_file(c->histpath, HISTORY_MAX)) != 0)
		client_warnx("cannot trim %s: %s", c->histpath, strerror(errno));
}

/* Next command line: 1 with *line set (free it), 0 at end of input. */
static int
next_line(struct client *c, char **line)
{
	char buf[POP3_CMD_MAX + 2];
	int rc, toolong;

	if (c->interactive && c->sasl) {
		/* A SASL response holds credentials: no echo, no history.
		 * Ctrl-C or Ctrl-D cancels the exchange (RFC 5034 "*"). */
		if (out_flush() < 0)
			return -1;
		rc = tty_secret(0, c->tty, "(response, not shown) ", buf,
		    sizeof(buf));
		if (rc < 0)
			return -1;
		if (rc == 0)
			snprintf(buf, sizeof(buf), "*");
		*line = strdup(buf);
		explicit_bzero(buf, sizeof(buf));
		if (*line == NULL) {
			client_warnx("out of memory");
			return -1;
		}
		return 1;
	}
	if (c->interactive) {
		if (out_flush() < 0)
			return -1;
		*line = readline(c->prompt);
		return *line != NULL;
	}
	for (;;) {
		if ((rc = input_line(buf, sizeof(buf), &toolong)) <= 0)
			return rc;
		if (!toolong)
			break;
		client_warnx("command too long (at most %d octets)", CMD_TEXT_MAX);
	}
	if ((*line = strdup(buf)) == NULL) {
		client_warnx("out of memory");
		return -1;
	}
	return 1;
}

/* The prompt: [user@]host:port[ (tls)][ *N]> , or (closed). */
static void
build_prompt(struct client *c)
{
	char marks[32] = "";

	if (c->connected && c->ndeleted > 0)
		snprintf(marks, sizeof(marks), " *%llu",
		    (unsigned long long)c->ndeleted);
	snprintf(c->prompt, sizeof(c->prompt),
	    strchr(c->host, ':') ? "%s%s[%.200s]:%s%s%s> " :
	    "%s%s%.200s:%s%s%s> ", c->connected ? c->user : "",
	    c->connected && c->user[0] != '\0' ? "@" : "", c->host, c->port,
	    !c->connected ? " (closed)" : c->conn.tls_on ? " (tls)" : "",
	    marks);
}

/* Close the connection (TLS ended first). */
static void
close_session(struct client *c)
{
	if (c->fd < 0)
		return;
	client_end(&c->conn);
	if (close(c->fd) < 0)
		client_warnx("close: %s", strerror(errno));
	c->fd = -1;
	c->connected = 0;
}

/* The server closed the connection: say what was lost, and close. */
static void
connection_lost(struct client *c)
{
	if (c->ndeleted > 0)
		client_warnx("the session is over: %llu message%s marked with "
		    "DELE %s not deleted", (unsigned long long)c->ndeleted,
		    c->ndeleted == 1 ? "" : "s",
		    c->ndeleted == 1 ? "was" : "were");
	close_session(c);
	c->lost = 1;
	if (c->interactive)
		client_warnx("'reconnect' opens a new session, 'exit' leaves");
}

/*
 * readline's idle hook (about ten times a second at the prompt): notice
 * at once when the server closes the connection, or says something
 * unasked (shown, so the next reply is not mistaken for it).
 */
static int
watch_connection(void)
{
	struct client *c = rlc;
	struct pollfd pfd;
	char *saved;
	ssize_t n;
	int point;

	(void)on_signal_event();	/* signals come here with this hook */
	if (!c->connected)
		return 0;
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	if (reader_buffered(&c->conn.r) == 0 && poll(&pfd, 1, 0) <= 0)
		return 0;
	n = reader_fill(&c->conn.r, 0);
	if (n < 0 && (errno == ETIMEDOUT || errno == EINTR))
		return 0;		/* part of a TLS record */
	/* Print above the line being typed, then put it back. */
	saved = rl_copy_text(0, rl_end);
	point = rl_point;
	rl_set_prompt("");
	rl_replace_line("", 0);
	rl_redisplay();
	if (n > 0) {
		fflush(stdout);
		fputs("pop3c: the server sent, unasked: ", stderr);
		client_show_line(stderr, reader_data(&c->conn.r), n);
		reader_consume(&c->conn.r, n);
	} else {
		client_warnx("the server closed the connection");
		connection_lost(c);
	}
	fflush(stderr);
	build_prompt(c);
	rl_set_prompt(c->prompt);
	if (saved != NULL) {
		rl_replace_line(saved, 0);
		rl_point = point;
		free(saved);
	}
	rl_forced_update_display();
	return 0;
}

/* Connect, TLS, greeting, STLS, -u login.  0, or an exit status
 * (said). */
static int
open_session(struct client *c)
{
	int fd, rc;

	c->quit_sent = c->sasl = c->failed = c->proto_failed = 0;
	c->count_known = c->stat_known = 0;
	c->count = c->stat_count = 0;
	mark_deleted(c, NULL, 0);
	if (c->nsizes > 0)
		memset(c->sizes, 0, c->nsizes * sizeof(*c->sizes));
	c->user[0] = '\0';
	c->uidl = 0;
	c->capa_asked = 0;
	c->transaction = 0;
	if ((fd = client_connect(c->host, c->port, c->timeout_ms,
	    &got_sigint)) < 0)
		return EXIT_CONN;
	c->fd = fd;
	c->connected = 1;
	client_init(&c->conn, fd, fd, c->timeout_ms);
	c->local = proto_peer_is_local(fd);
	if (c->use_tls && client_tls_start(&c->conn, c->host, c->cafile,
	    c->insecure) < 0)
		return EXIT_CONN;
	if (status_line(c) < 0)
		return lost(c);
	client_show_line(stdout, c->conn.line, c->conn.linelen);
	if (out_flush() < 0)
		return EXIT_CONN;
	if (c->conn.status != CLIENT_ST_OK) {
		client_warnx("the server did not accept the session");
		return EXIT_CONN;
	}
	if (c->starttls_first && starttls(c, 0) < 0)
		return EXIT_CONN;
	if (c->login != NULL) {
		char cmd[POP3_CMD_MAX + 1];

		rc = snprintf(cmd, sizeof(cmd), "USER %s", c->login);
		if (rc < 0 || (size_t)rc > CMD_TEXT_MAX) {
			client_warnx("user name too long");
			c->failed = 1;
		} else {
			if (run_line(c, cmd, 0) < 0)
				return lost(c);
			snprintf(cmd, sizeof(cmd), "PASS");
			if (c->last_ok && run_line(c, cmd, 0) < 0)
				return lost(c);
			if (!c->last_ok)
				c->failed = 1;
		}
		if (c->errexit && c->failed)
			return errexit_stop(c);
	}
	return 0;
}

static int
cmd_reconnect(struct client *c, const char *args)
{
	int rc;

	(void)args;
	if (c->connected) {
		client_warnx("still connected: QUIT first");
		return 0;
	}
	rc = open_session(c);
	if (rc != 0) {
		close_session(c);
		if (!c->interactive)
			return -1;
	} else
		c->lost = 0;
	return 0;
}

static int
cmd_exit(struct client *c, const char *args)
{
	char quit[] = "QUIT";
	int rc;

	(void)args;
	if (!c->connected)
		return 1;
	rc = run_line(c, quit, 1);
	return rc < 0 ? -1 : rc;
}

static int
cmd_tls(struct client *c, const char *args)
{
	char info[2048];

	(void)args;
	if (!c->connected || !c->conn.tls_on) {
		client_warnx("TLS is not on (--tls, --starttls or STLS)");
		return 0;
	}
	if (client_tls_info(&c->conn, info, sizeof(info)) < 0) {
		client_warnx("TLS: no details");
		return 0;
	}
	fputs(info, stdout);
	return out_flush();
}

/*
 * On a terminal, QUIT with pending deletions asks first: y sends QUIT,
 * anything else RSET and then QUIT, Ctrl-D goes back to the prompt.
 * 1 to send QUIT, 0 not now, -1 (said) connection lost.
 */
static int
quit_guard(struct client *c)
{
	char q[64], rset[] = "RSET", *a;
	int yes;

	if (!c->interactive || c->ndeleted == 0)
		return 1;
	snprintf(q, sizeof(q), "apply %llu deletion%s? [y/N] ",
	    (unsigned long long)c->ndeleted, c->ndeleted == 1 ? "" : "s");
	if ((a = readline(q)) == NULL) {
		fputc('\n', c->tty);
		return 0;
	}
	yes = a[0] == 'y' || a[0] == 'Y';
	free(a);
	if (yes)
		return 1;
	if (run_line(c, rset, 0) < 0)
		return -1;
	return c->last_ok ? 1 : 0;
}

/* The exit status once the connection is lost (said). */
static int
lost(const struct client *c)
{
	return c->errexit && c->proto_failed ? EXIT_ERR : EXIT_CONN;
}

/* -e: a -ERR or a protocol error was met: QUIT and stop with 2. */
static int
errexit_stop(struct client *c)
{
	char quit[] = "QUIT";

	client_warnx("stopped at the first error (-e)");
	if (!c->quit_sent && c->connected) {
		c->sasl = 0;
		(void)run_line(c, quit, 0);
	}
	return EXIT_ERR;
}

/* After QUIT: more input is an error (stdin not a terminal).  The exit
 * status. */
static int
after_quit(struct client *c)
{
	char *line;
	int rc;

	if (c->interactive)
		return 0;
	while ((rc = next_line(c, &line)) > 0) {
		int blank = line[strspn(line, " \t\r")] == '\0';

		explicit_bzero(line, strlen(line));
		free(line);
		if (!blank) {
			client_warnx("input after QUIT: not sent");
			return c->errexit ? EXIT_ERR : 0;
		}
	}
	return 0;
}

static int
session(struct client *c)
{
	char quit[] = "QUIT", *line;
	int rc;

	if ((rc = open_session(c)) != 0)
		return rc;
	for (;;) {
		if (c->interactive)
			build_prompt(c);
		rc = next_line(c, &line);
		if (rc < 0)
			return EXIT_CONN;
		if (rc == 0) {
			if (!c->connected)
				return c->lost ? EXIT_CONN : 0;
			/* End of input (Ctrl-D): QUIT as if typed. */
			if (c->interactive)
				fputs("QUIT\n", c->tty);
			c->sasl = 0;
			if ((rc = quit_guard(c)) < 0)
				return lost(c);
			if (rc == 0)
				continue;
			rc = run_line(c, quit, 0);
			return rc < 0 ? lost(c) : 0;
		}
		rc = run_line(c, line, 1);
		explicit_bzero(line, strlen(line));
		free(line);
		if (rc < 0) {
			if (!c->interactive || !c->connected)
				return c->connected ? lost(c) : EXIT_CONN;
			connection_lost(c);
			continue;
		}
		if (rc > 0) {
			if (!c->connected)
				return c->lost ? EXIT_CONN : 0;
			close_session(c);
			return after_quit(c);
		}
		if (c->errexit && c->failed)
			return errexit_stop(c);
	}
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "tls", no_argument, NULL, 'T' },
		{ "starttls", no_argument, NULL, 'S' },
		{ "cafile", required_argument, NULL, 'C' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "max-size", required_argument, NULL, 'M' },
		{ "errexit", no_argument, NULL, 'e' },
		{ "no-pager", no_argument, NULL, 'P' },
		{ NULL, 0, NULL, 0 }
	};
	struct client *c;
	struct sigaction sa;
	const char *user = NULL, *dir = ".";
	uint64_t v;
	int timeout = CLIENT_TIMEOUT_DEFAULT;
	int ch, rc, tls = 0, starttls_first = 0, insecure = 0, errexit = 0;
	int no_pager = 0;
	const char *cafile = NULL;
	uint64_t max_size = CLIENT_MAX_SIZE_DEFAULT;

	while ((ch = getopt_long(argc, argv, "d:et:u:hVTSC:kM:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'e':
			errexit = 1;
			break;
		case 'P':
			no_pager = 1;
			break;
		case 't':
			if (proto_number(optarg, INT_MAX / 1000, &v) < 0 ||
			    v == 0) {
				return usage_error("bad timeout '%s'", optarg);
			}
			timeout = (int)v;
			break;
		case 'u':
			user = optarg;
			break;
		case 'T':
			tls = 1;
			break;
		case 'S':
			starttls_first = 1;
			break;
		case 'C':
			cafile = optarg;
			break;
		case 'k':
			insecure = 1;
			break;
		case 'M':
			if (parse_size(optarg, &max_size) < 0) {
				return usage_error("bad size '%s'", optarg);
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("pop3c %s\n", POP3D_VERSION);
			return 0;
		default:
			return usage_hint();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1 || argc > 2)
		return usage_error("%s", argc < 1 ? "the server is missing" :
		    "too many arguments");
	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->deleted = calloc(1, STORE_MAX_MESSAGES / 8 + 1)) == NULL) {
		fprintf(stderr, "pop3c: out of memory\n");
		return EXIT_CONN;
	}
	rlc = c;
	if (parse_target(c, argc, argv, &user, &tls) < 0)
		return usage_hint();
	if (tls && starttls_first)
		return usage_error("--tls (or pop3s://) and --starttls exclude "
		    "each other");
	c->errexit = errexit;
	c->no_pager = no_pager;
	c->dir = dir;
	c->cafile = cafile;
	c->insecure = insecure;
	c->max_size = max_size;
	c->interactive = isatty(0);
	if ((c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "pop3c: download folder %s: %s\n", dir,
		    strerror(errno));
		return EXIT_USAGE;
	}
	c->maildir = client_is_maildir(c->dirfd);

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) < 0)
		return fprintf(stderr, "pop3c: sigaction: %s\n",
		    strerror(errno)), EXIT_CONN;
	if (c->interactive) {
		sa.sa_handler = on_sigint;
		sa.sa_flags = SA_RESTART;
		if (sigaction(SIGINT, &sa, NULL) < 0)
			return fprintf(stderr, "pop3c: sigaction: %s\n",
			    strerror(errno)), EXIT_CONN;
	}

	c->timeout_ms = timeout * 1000;
	c->use_tls = tls;
	c->login = user;
	c->starttls_first = starttls_first;
	c->fd = -1;
	c->save_fd = -1;

	if (c->interactive) {
		/* With stdout redirected, prompts still go to the terminal. */
		c->tty = isatty(1) ? stdout : stderr;
		rl_outstream = c->tty;
		rl_readline_name = "pop3c";
		rl_attempted_completion_function = complete;
		rl_basic_word_break_characters = " \t";
		rl_signal_event_hook = on_signal_event;
		rl_event_hook = watch_connection;
		history_start(c);
	}
	rc = session(c);
	if (c->interactive)
		history_end(c);
	if (out_flush() < 0 && rc == 0)
		rc = EXIT_CONN;
	close_session(c);
	(void)close(c->dirfd);
	free(c->deleted);
	free(c->sizes);
	free(c);
	return rc;
}
