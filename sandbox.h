/*
 * sandbox.h: confinement of a session process with Landlock (file system,
 * TCP) and a seccomp allow-list (system calls).  Called by main() once to
 * probe the kernel, by the listener and main() for the open mode, and by
 * the session code around the login with a user database.
 *
 * Confinement only ever narrows: a process confined to one maildrop can
 * never reach another one, so a listener worker that served a session
 * with a user database exits after it.
 */
#ifndef SANDBOX_H
#define SANDBOX_H

#include <sys/types.h>

#include <stddef.h>

/* What the kernel offers, from sandbox_probe(). */
#define SANDBOX_LANDLOCK	0x1
#define SANDBOX_SECCOMP		0x2

/* Exit status of a session ended by a forbidden system call: the one log
 * line is written by the sandbox, the listener adds none. */
#define SANDBOX_EXIT		70

/* What a confined process may still reach in the file system. */
enum sandbox_access {
	SANDBOX_READ,		/* read one file (the users file) */
	SANDBOX_MAIL,		/* a maildrop: read, list, remove, rename */
	SANDBOX_STATE		/* derived data (the index): read and write */
};

struct sandbox_path {
	const char		*path;
	enum sandbox_access	 access;
};

/*
 * Probe the kernel once, before any client: returns SANDBOX_LANDLOCK and
 * SANDBOX_SECCOMP bits for what works, 0 with off set (--no-sandbox).
 * Logs one line when something is missing, so pop3d runs unconfined (or
 * half confined) knowingly.
 */
int	sandbox_probe(int off);

/*
 * The listener, before it forks its workers: build the seccomp filters
 * they will load (the open mode's, or with users the monitor's, the
 * login process's and the logged-in session's), so no worker keeps the
 * heap that building one takes.  Nothing happens without seccomp.
 */
void	sandbox_prepare(int avail, int users);

/*
 * Confine the calling process: a Landlock layer allowing only paths[0..n)
 * (the best ABI the kernel offers: file system, TCP bind and connect,
 * abstract sockets and signals out of the domain), then no_new_privs and,
 * with seccomp set, the system call allow-list, whose violation logs one
 * line naming the call and ends the process with SANDBOX_EXIT.  avail is
 * sandbox_probe()'s result; with 0 nothing happens.  Logging must be set
 * up before (the syslog socket stays open).  0 on success, -1 after a log
 * line: the caller must not serve the session then.
 */
int	sandbox_enter(int avail, const struct sandbox_path *paths, size_t n,
	    int seccomp);

/*
 * The monitor of a login with a user database (login.c), before the
 * login: the users file (read only) and every maildrop a login can lead
 * to (base and the maildrops the users file names), nothing else, and
 * the allow-list with the monitor's calls (fork the login process, stop
 * and wait for it).  state may be NULL.
 */
int	sandbox_prelogin(int avail, const char *users, const char *base,
	    const char *state);

/*
 * The login process, forked by a monitor confined with sandbox_prelogin:
 * no file at all (a Landlock layer without rules) and a second filter
 * without the monitor's calls.  It parses everything the client sends
 * before a login and asks the monitor to check passwords.
 */
int	sandbox_login_process(int avail);

/* After a login: narrow the file system to the maildrop directory open
 * as mdfd (not a path: it cannot have been swapped since), and state,
 * and the allow-list to a session's calls, plus waiting for child (the
 * login process relaying the session, or -1) and killing it. */
int	sandbox_login(int avail, int mdfd, const char *state, pid_t child);

/* The open mode: maildrop (and state) and the allow-list. */
int	sandbox_maildrop(int avail, const char *maildrop, const char *state);

#endif
