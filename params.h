/*
 * params.h: every limit of pop3d and pop3c in one place, each with its reason.
 * Included by both programs.
 */
#ifndef PARAMS_H
#define PARAMS_H

#define POP3D_VERSION		"1.0"

/* RFC 2449 section 4: a command line is at most 255 octets, CRLF included. */
#define POP3_CMD_MAX		255

/* RFC 2449 section 4: a status line is at most 512 octets, CRLF included. */
#define POP3_RESP_MAX		512

/* RFC 1939 section 3: the autologout timer is at least 10 minutes. */
#define IDLE_TIMEOUT_DEFAULT	600

/* With --users, seconds from the connection to a successful login: a
 * client that has not logged in holds a worker for no one (Dovecot's
 * login processes allow about a minute too). */
#define LOGIN_TIMEOUT_DEFAULT	60

/* Consecutive failed commands before the server hangs up (dovecot: 20). */
#define MAX_BAD_COMMANDS	50

/* Sessions served at once by a listener (SPEC 1). */
#define MAX_SESSIONS_DEFAULT	1000

/* Sessions one address may hold in the listener modes unless
 * --max-per-source says otherwise: enough for a household behind one NAT
 * address, far below MAX_SESSIONS_DEFAULT.  Loopback peers are exempt
 * from this default (local tools, a proxy on the same host). */
#define MAX_PER_SOURCE_DEFAULT	32

/* accept() failing for want of descriptors or memory: the longest pause
 * before the next try (the pauses start at 10 ms and double). */
#define ACCEPT_BACKOFF_MAX_MS	1000

/* Workers forked at start and kept idle as spares; idle ones above the
 * high mark are retired. */
#define POOL_START		4
#define POOL_SPARE_MIN		2
#define POOL_SPARE_MAX		16

/* Sessions a worker serves before it is replaced (bounds any slow leak). */
#define WORKER_SESSIONS		1000

/* --exclusive: seconds to wait for a held maildrop lock (SPEC 2). */
#define LOCK_WAIT_DEFAULT	5

/* RFC 1939 section 7: a unique-id is 1 to 70 characters in 0x21..0x7E. */
#define UIDL_MAX		70

/* Input buffer: a few pipelined command lines. */
#define RBUF_SIZE		4096

/* Output buffer: one flush per status line or large chunk of a message. */
#define WBUF_SIZE		65536

/* Zero-copy RETR: at most this much asked of one sendfile(2); the socket
 * takes what fits anyway, this only bounds a call on a blocking pipe. */
#define SENDFILE_CHUNK		(8 * 1024 * 1024)

/* Reading a message file: one read(2) per chunk of this size. */
#define FILE_CHUNK		65536

/* Messages in one maildrop and octets in one message that pop3d will serve;
 * beyond these the maildrop is refused rather than served wrongly. */
#define STORE_MAX_MESSAGES	1000000

/* What a listener's worker keeps between sessions (its last listing of a
 * maildrop, names included): a worker that once served a huge maildrop
 * must not hold its memory while idle. */
#define SNAP_MAX_BYTES		(8 * 1024 * 1024)

/* A maildrop index file: 80 octets a message plus its name.  A maildrop
 * whose index would be larger (some 2.5 million messages) is served
 * without one; a larger file is not read. */
#define INDEX_MAX_BYTES		(256 * 1024 * 1024)

/* A failed login is answered this long after it began, whatever the
 * cause, so a wrong name and a wrong password look alike. */
#define AUTH_FAIL_DELAY_MS	500

/* Repeated failed logins from one address (not loopback) wait longer,
 * in all of a listener's workers: from the second failure on, this many
 * seconds, doubling, up to the maximum (Dovecot's anvil: 2 s to 15 s);
 * forgotten after a quiet spell.  Addresses remembered at once: a fixed
 * table in the shared mapping, the oldest entry making way. */
#define LOGIN_PENALTY_FIRST	2
#define LOGIN_PENALTY_MAX	15
#define LOGIN_PENALTY_FORGET	900
#define LOGIN_PENALTY_SLOTS	4096

/* Failed logins before the server hangs up. */
#define AUTH_MAX_FAILURES	3

/* A SASL response line (RFC 5034 lifts the 255-octet limit for them). */
#define SASL_LINE_MAX		2048

/* Seconds a TLS handshake may take. */
#define TLS_HANDSHAKE_TIMEOUT	30

/* --proxy-from: CIDR blocks in the list. */
#define PROXY_NETS_MAX		64

/* PROXY protocol v1: the longest header, CRLF included (its spec). */
#define PROXY_V1_MAX		107

/* PROXY protocol v2: the longest header accepted, 16 fixed octets
 * included.  Room for IPv6 addresses and every TLV HAProxy sends (ALPN,
 * authority up to 255, unique-id up to 128, TLS details with the client
 * certificate's CN); the 64 KiB the length field allows are not needed. */
#define PROXY_V2_MAX		2048

/* Seconds a listed source has to send its PROXY header (at most the idle
 * timeout): a proxy sends it at once, on connecting. */
#define PROXY_TIMEOUT		10

/* pop3c: a server status line longer than this is cut when shown. */
#define CLIENT_LINE_MAX		4096

/* A systemd notification formatted by sd_notifyf (lazylib.c): pop3d's
 * are "STATUS=N sessions" and the like. */
#define SD_NOTIFY_MAX		256

/* pop3c: history lines kept across runs. */
#define HISTORY_MAX		1000

/* pop3c: a saved message may grow this far past the size LIST gave it
 * (servers count octets differently, e.g. LF against CRLF); beyond, a
 * server that never ends a message is stopped. */
#define CLIENT_SAVE_MARGIN	(64 * 1024)

/* pop3c: the shown text of a reply held while it may still fit on the
 * screen (a screen of UTF-8 text, 4 octets a cell, is far less); more,
 * and it goes to the pager. */
#define PAGER_HOLD_MAX		(64 * 1024)

/* pop3c --max-size default: the bound when LIST gave no size (1 GiB). */
#define CLIENT_MAX_SIZE_DEFAULT	(1024ULL * 1024 * 1024)

/* pop3c: a saved file's name: a unique-id of UIDL_MAX octets, each as
 * %XX at worst, and ".eml". */
#define CLIENT_SAVE_NAME_MAX	(3 * UIDL_MAX + 8)

/* pop3c: the part of a LIST or UIDL line kept for parsing ("n size",
 * "n unique-id": 20 digits, a space, UIDL_MAX). */
#define CLIENT_ENTRY_MAX	(20 + 1 + UIDL_MAX + 2)
/* pop3c: CAPA asked to learn UIDL: the first CLIENT_CAPA_SEEN octets are
 * searched (capabilities are short lines; UIDL comes early), and a reply
 * past CLIENT_CAPA_MAX is a hostile one that ends the session. */
#define CLIENT_CAPA_SEEN	4096
#define CLIENT_CAPA_MAX		(64 * 1024)

#endif
