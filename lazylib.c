/*
 * lazylib.c: libsystemd loaded on first use, not at every start.
 *
 * A stdio session (systemd's Accept=yes with StandardInput=socket, xinetd,
 * inetd) is one exec per connection, and the dynamic loader maps and
 * relocates every library pop3d links before main() runs.  libsystemd
 * brings six more (libcap, libgcrypt, libgpg-error, liblzma, liblz4,
 * libzstd) for the four calls listen.c makes, and a stdio session makes
 * none of them: systemd passes it no listening socket and asks it for no
 * notification.  So pop3d is not linked with libsystemd; these
 * definitions of its four functions dlopen it the first time systemd's
 * environment says a call has work to do ($LISTEN_FDS, $NOTIFY_SOCKET),
 * and pass every call on unchanged.  Without that variable the library's
 * documented answer is 0, nothing done, and that is what is returned.
 *
 * Loaded only by the listener's master, before any session: workers
 * inherit the mapping, and no confined process ever loads code.
 */
#ifdef USE_SYSTEMD
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <systemd/sd-daemon.h>

#include "log.h"
#include "params.h"

#define LIBSYSTEMD	"libsystemd.so.0"	/* its soname since 2014 */

/* The real functions, found once. */
static struct {
	int	 tried;
	int	(*listen_fds)(int);
	int	(*is_socket)(int, int, int, int);
	int	(*notify)(int, const char *);
} sd;

/* 0 with sd's pointers set, or -1 (logged once). */
static int
sd_load(void)
{
	void *h;

	if (!sd.tried) {
		sd.tried = 1;
		if ((h = dlopen(LIBSYSTEMD, RTLD_NOW | RTLD_LOCAL)) == NULL ||
		    (*(void **)&sd.listen_fds = dlsym(h, "sd_listen_fds")) ==
		    NULL ||
		    (*(void **)&sd.is_socket = dlsym(h, "sd_is_socket")) ==
		    NULL ||
		    (*(void **)&sd.notify = dlsym(h, "sd_notify")) == NULL) {
			log_warnx("cannot load %s: %s", LIBSYSTEMD, dlerror());
			sd.listen_fds = NULL;
		}
	}
	return sd.listen_fds != NULL ? 0 : -1;
}

int
sd_listen_fds(int unset_environment)
{
	if (getenv("LISTEN_FDS") == NULL)
		return 0;
	if (sd_load() < 0)
		return -ENOSYS;
	return sd.listen_fds(unset_environment);
}

int
sd_is_socket(int fd, int family, int type, int listening)
{
	if (sd_load() < 0)
		return -ENOSYS;
	return sd.is_socket(fd, family, type, listening);
}

int
sd_notify(int unset_environment, const char *state)
{
	if (getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	if (sd_load() < 0)
		return -ENOSYS;
	return sd.notify(unset_environment, state);
}

int
sd_notifyf(int unset_environment, const char *format, ...)
{
	char buf[SD_NOTIFY_MAX];
	va_list ap;
	int k;

	va_start(ap, format);
	k = vsnprintf(buf, sizeof(buf), format, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= sizeof(buf))
		return -EINVAL;
	return sd_notify(unset_environment, buf);
}
#else
/* Built without systemd support: nothing to load. */
typedef int lazylib_empty;
#endif
