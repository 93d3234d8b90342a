/*
 * log.h: logging for pop3d, in the OpenBSD shape.  Messages go to syslog
 * (facility mail) and, when log_init was asked to, to stderr as well.
 * Never to a client's connection: under inetd fd 2 may be the socket.
 */
#ifndef LOG_H
#define LOG_H

/* Open syslog as ident; to_stderr also copies every line to fd 2. */
void	log_init(const char *ident, int to_stderr);
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* warn appends ": strerror(errno)"; warnx does not.  Both return -1. */
int	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log and exit with status code (a sysexits value). */
void	log_fatal(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));
void	log_fatalx(int code, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3), noreturn));

#endif
