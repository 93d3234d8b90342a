/*
 * sandbox.c: Landlock and the seccomp allow-list (see sandbox.h).
 *
 * Landlock is used through its raw system calls with the best ABI the
 * kernel reports; rights the kernel does not know are left out, so an
 * older kernel confines less but still confines.  The seccomp filter is
 * one table below, built with libseccomp; anything else traps into a
 * SIGSYS handler that logs the call once and ends the process.
 */
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <linux/filter.h>
#include <linux/seccomp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <linux/landlock.h>

#include "log.h"
#include "proto.h"
#include "sandbox.h"
#include "users.h"

/* Rights of later ABIs than the build host's headers may know. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE	(1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV	(1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP	(1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP	(1ULL << 1)
#endif
#ifndef LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET
#define LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET	(1ULL << 0)
#define LANDLOCK_SCOPE_SIGNAL		(1ULL << 1)
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZER_BUILD	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZER_BUILD	1
#endif
#endif

/* The ruleset attribute of ABI 6 (file system, TCP, scopes); a kernel
 * with an older ABI takes it as long as the fields it lacks are zero. */
struct ll_ruleset {
	uint64_t	fs;
	uint64_t	net;
	uint64_t	scoped;
};

#define FS_ABI1	((1ULL << 13) - 1)	/* EXECUTE .. MAKE_SYM */

/* What each kind of path may do (sandbox.h), before masking with what
 * the kernel handles.  A maildrop needs MAKE_REG and REFER for renames
 * (a Maildir's new/ to cur/, the commit's rename-check-unlink step). */
#define R_READ	LANDLOCK_ACCESS_FS_READ_FILE
#define R_MAIL	(LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR | \
	LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_REG | \
	LANDLOCK_ACCESS_FS_REFER)
#define R_STATE	(R_MAIL | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_MAKE_DIR | \
	LANDLOCK_ACCESS_FS_REMOVE_DIR)
/* Rights that apply to a file rather than a directory. */
#define R_FILE	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | \
	LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE | \
	LANDLOCK_ACCESS_FS_IOCTL_DEV)

/*
 * The system calls a session makes, in every mode (stdio, listener
 * worker, TLS, --users, --exclusive, --delete-now, --order arrival).
 * arg >= 0: allowed only when that argument equals value.  err: refused
 * with that errno instead of trapping (a library that copes with it).
 */
struct allow {
	const char	*name;
	int		 arg;
	uint64_t	 value;
	int		 err;
	int		 who;	/* W_* below: who may make the call */
};

#define W_SESSION	0x01	/* every confined process but a login
				 * process */
#define W_FILES		0x02	/* the same: paths */
#define W_WORKER	0x04	/* the open mode's listener worker */
#define W_MONITOR	0x08	/* a login process's monitor, before login */
#define W_REAP		0x10	/* a monitor: wait for its login process */
#define W_LOGIN		0x20	/* a login process */
#define W_ALL		(W_SESSION | W_LOGIN)	/* every confined process */
/* Not a group: W_FILES calls fail with EACCES instead of trapping. */
#define W_NOFILES	0x40

static const struct allow allow_list[] = {
	/* The connection and message files: plain fds, OpenSSL's socket BIO
	 * (recv/send), the reader's and writer's waits, the PROXY header
	 * (recv with MSG_PEEK), syslog (send on its open socket). */
	{ "read", -1, 0, 0, W_ALL }, { "pread64", -1, 0, 0, W_ALL },
	{ "write", -1, 0, 0, W_ALL }, { "writev", -1, 0, 0, W_ALL },
	{ "recvfrom", -1, 0, 0, W_ALL }, { "sendto", -1, 0, 0, W_SESSION },
	/* A login process sends on its own sockets only, to no address (an
	 * inherited datagram socket could reach any named socket). */
	{ "sendto", 4, 0, 0, W_LOGIN },
	{ "poll", -1, 0, 0, W_ALL }, { "ppoll", -1, 0, 0, W_ALL },
	{ "lseek", -1, 0, 0, W_ALL }, { "close", -1, 0, 0, W_ALL },
	{ "shutdown", -1, 0, 0, W_ALL }, { "fstat", -1, 0, 0, W_ALL },
	/* fcntl: file status flags (O_NONBLOCK; F_SETFL without O_ASYNC,
	 * which would let a process aim signals at others: added in
	 * seccomp()), close-on-exec, and the per-source table's record
	 * lock (source.c). */
	{ "fcntl", 1, F_GETFL, 0, W_ALL }, { "fcntl", 1, F_GETFD, 0, W_ALL },
	{ "fcntl", 1, F_SETFD, 0, W_ALL }, { "fcntl", 1, F_SETLK, 0, W_SESSION },
	/* The maildrop: scan (fstatat, getdents64), open with O_NOFOLLOW,
	 * the directory lock, DELE/QUIT removal, the directory sync; the
	 * users file at login (fopen), the listing through a duplicate of
	 * the directory fd (fdopendir); RETR of a file already in wire form
	 * (sendfile). Landlock decides which paths.  A login process gets
	 * EACCES from these even where Landlock is missing. */
	{ "openat", -1, 0, 0, W_FILES }, { "newfstatat", -1, 0, 0, W_FILES },
	{ "statx", -1, 0, 0, W_FILES }, { "getdents64", -1, 0, 0, W_FILES },
	{ "flock", -1, 0, 0, W_FILES }, { "unlinkat", -1, 0, 0, W_FILES },
	{ "renameat", -1, 0, 0, W_FILES }, { "renameat2", -1, 0, 0, W_FILES },
	{ "fsync", -1, 0, 0, W_FILES }, { "dup", -1, 0, 0, W_FILES },
	{ "sendfile", -1, 0, 0, W_FILES },
	/* The index folder: a file there is trusted only when it belongs
	 * to pop3d's user. */
	{ "geteuid", -1, 0, 0, W_ALL },
	/* Memory: malloc, OpenSSL and libcrypt's yescrypt (megabytes per
	 * hash) grow and return memory. */
	{ "brk", -1, 0, 0, W_ALL }, { "mmap", -1, 0, 0, W_ALL },
	{ "munmap", -1, 0, 0, W_ALL }, { "mremap", -1, 0, 0, W_ALL },
	{ "madvise", -1, 0, 0, W_ALL }, { "mprotect", -1, 0, 0, W_ALL },
	/* Time and waiting: deadlines, the failed-login delay, the
	 * --exclusive lock wait (when the vDSO is not used). */
	{ "clock_gettime", -1, 0, 0, W_ALL },
	{ "gettimeofday", -1, 0, 0, W_ALL }, { "time", -1, 0, 0, W_ALL },
	{ "nanosleep", -1, 0, 0, W_ALL }, { "clock_nanosleep", -1, 0, 0, W_ALL },
	{ "restart_syscall", -1, 0, 0, W_ALL },
	/* Signals: SIGTERM let in only inside ppoll, handlers return. */
	{ "rt_sigprocmask", -1, 0, 0, W_ALL },
	{ "rt_sigaction", -1, 0, 0, W_ALL }, { "rt_sigreturn", -1, 0, 0, W_ALL },
	{ "sigaltstack", -1, 0, 0, W_ALL },
	/* TLS keys and nonces, hash salts. */
	{ "getrandom", -1, 0, 0, W_ALL },
	/* glibc's qsort asks for the machine's memory (sysconf
	 * _SC_PHYS_PAGES) the first time it sorts a large array: ordering
	 * a maildrop by arrival or delivery time. */
	{ "sysinfo", -1, 0, 0, W_ALL },
	/* The listener worker between sessions: accept, tune the socket,
	 * name the peer, report idle/busy (write), end; syslog's LOG_PID. */
	{ "accept4", -1, 0, 0, W_WORKER }, { "setsockopt", -1, 0, 0, W_WORKER },
	{ "getpeername", -1, 0, 0, W_WORKER },
	{ "getsockname", -1, 0, 0, W_WORKER },
	{ "getpid", -1, 0, 0, W_ALL }, { "exit", -1, 0, 0, W_ALL },
	{ "exit_group", -1, 0, 0, W_ALL },
	/* With a user database, the monitor: fork the login process with
	 * its socket (the child then asks to die with its parent, checks it
	 * is still there and stacks its own filter), stop it at shutdown
	 * or once it handed a plain session over.  After the login the
	 * monitor keeps W_REAP, and kill for that one process only. */
	{ "clone", -1, 0, 0, W_MONITOR }, { "socketpair", -1, 0, 0, W_MONITOR },
	{ "kill", -1, 0, 0, W_MONITOR }, { "seccomp", -1, 0, 0, W_MONITOR },
	{ "set_robust_list", -1, 0, 0, W_MONITOR },	/* fork's child */
	{ "prctl", 0, PR_SET_PDEATHSIG, 0, W_MONITOR },
	{ "getppid", -1, 0, 0, W_MONITOR },
	/* The monitor holds none of the client's fds before the login:
	 * they are swapped for a dead socket and come back with a plain
	 * session's hand-over (sendmsg in the login process). */
	{ "dup2", -1, 0, 0, W_MONITOR }, { "recvmsg", -1, 0, 0, W_MONITOR },
	{ "sendmsg", -1, 0, 0, W_MONITOR | W_LOGIN },
	{ "wait4", -1, 0, 0, W_REAP },
	/* Locks inside libc and OpenSSL (uncontended: one thread). */
	{ "futex", -1, 0, 0, W_ALL },
	/* stdio asks whether stderr is a terminal. */
	{ "ioctl", 1, TCGETS, 0, W_ALL },
	/* The login narrows the file system further (only ever narrows). */
	{ "landlock_create_ruleset", -1, 0, 0, W_ALL },
	{ "landlock_add_rule", -1, 0, 0, W_ALL },
	{ "landlock_restrict_self", -1, 0, 0, W_ALL },
	/* syslog() reconnects after a syslog daemon restart while holding
	 * its lock: refuse quietly (the line is lost), never trap there. */
	{ "socket", -1, 0, EACCES, W_ALL }, { "connect", -1, 0, EACCES, W_ALL },
#ifdef SANITIZER_BUILD
	/* Sanitizer builds only: ASan/UBSan reports and LeakSanitizer at
	 * exit (a tracer thread that stops and reads the process). */
	{ "clone", -1, 0, 0, W_ALL }, { "clone3", -1, 0, ENOSYS, W_ALL },
	{ "fcntl", -1, 0, 0, W_ALL },
	{ "ptrace", -1, 0, 0, W_ALL }, { "wait4", -1, 0, 0, W_ALL },
	{ "waitid", -1, 0, 0, W_ALL }, { "prctl", -1, 0, 0, W_ALL },
	{ "sched_yield", -1, 0, 0, W_ALL }, { "tgkill", -1, 0, 0, W_ALL },
	{ "kill", -1, 0, 0, W_ALL }, { "readlink", -1, 0, 0, W_ALL },
	{ "readlinkat", -1, 0, 0, W_ALL }, { "getdents", -1, 0, 0, W_ALL },
	{ "open", -1, 0, 0, W_ALL }, { "stat", -1, 0, 0, W_ALL },
	{ "lstat", -1, 0, 0, W_ALL },
	{ "gettid", -1, 0, 0, W_ALL }, { "getppid", -1, 0, 0, W_ALL },
	{ "getrlimit", -1, 0, 0, W_ALL },
	{ "prlimit64", -1, 0, 0, W_ALL }, { "setrlimit", -1, 0, 0, W_ALL },
	{ "sched_getaffinity", -1, 0, 0, W_ALL }, { "uname", -1, 0, 0, W_ALL },
	{ "pipe", -1, 0, 0, W_ALL }, { "pipe2", -1, 0, 0, W_ALL },
	{ "dup2", -1, 0, 0, W_ALL }, { "dup3", -1, 0, 0, W_ALL },
	{ "getuid", -1, 0, 0, W_ALL },
	{ "mkdir", -1, 0, 0, W_ALL }, { "access", -1, 0, 0, W_ALL },
	{ "execve", -1, 0, EACCES, W_ALL }, { "fork", -1, 0, EACCES, W_ALL },
	{ "vfork", -1, 0, EACCES, W_ALL },
#endif
};

/* A call outside the list: one log line naming it, then end the process
 * (never the listener: this runs in the session's process). */
static void
on_sigsys(int sig, siginfo_t *si, void *uc)
{
	char *name;

	(void)sig;
	(void)uc;
	name = seccomp_syscall_resolve_num_arch(si->si_arch, si->si_syscall);
	log_warnx("sandbox: forbidden system call %s (number %d, audit arch "
	    "0x%x): session ended", name != NULL ? name : "?",
	    si->si_syscall, si->si_arch);
	_exit(SANDBOX_EXIT);
}

static int
ll_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);

	return v < 0 ? 0 : (int)v;
}

int
sandbox_probe(int off)
{
	int avail = 0, abi;

	if (off)
		return 0;
	if ((abi = ll_abi()) > 0)
		avail |= SANDBOX_LANDLOCK;
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0 && seccomp_api_get() >= 1)
		avail |= SANDBOX_SECCOMP;
	if (avail != (SANDBOX_LANDLOCK | SANDBOX_SECCOMP))
		log_warnx("sandbox: this kernel has %s: sessions run %s",
		    avail == 0 ? "neither Landlock nor seccomp filters" :
		    avail & SANDBOX_LANDLOCK ? "no seccomp filters" :
		    "no Landlock", avail == 0 ? "unconfined" :
		    avail & SANDBOX_LANDLOCK ? "with any system call" :
		    "with every file pop3d's user can reach");
	return avail;
}

/* Rights the kernel's ABI handles. */
static void
ll_handled(int abi, struct ll_ruleset *rs)
{
	memset(rs, 0, sizeof(*rs));
	rs->fs = FS_ABI1;
	if (abi >= 2)
		rs->fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		rs->fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 4)
		rs->net = LANDLOCK_ACCESS_NET_BIND_TCP |
		    LANDLOCK_ACCESS_NET_CONNECT_TCP;
	if (abi >= 5)
		rs->fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	if (abi >= 6)
		rs->scoped = LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET |
		    LANDLOCK_SCOPE_SIGNAL;
}

/* Allow rights beneath the file or directory open as fd. */
static int
ll_rule_fd(int rsfd, int fd, uint64_t rights, uint64_t handled)
{
	struct landlock_path_beneath_attr pb;
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return log_warn("sandbox: fstat");
	memset(&pb, 0, sizeof(pb));
	pb.parent_fd = fd;
	pb.allowed_access = rights & handled;
	if (!S_ISDIR(sb.st_mode))
		pb.allowed_access &= R_FILE;
	if (syscall(SYS_landlock_add_rule, rsfd, LANDLOCK_RULE_PATH_BENEATH,
	    &pb, 0) < 0)
		return log_warn("sandbox: landlock_add_rule");
	return 0;
}

/* Allow rights under path; a path that does not exist is skipped. */
static int
ll_rule(int rsfd, const char *path, uint64_t rights, uint64_t handled)
{
	int fd, r;

	if ((fd = open(path, O_PATH | O_CLOEXEC)) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		return log_warn("sandbox: %s", path);
	}
	if ((r = ll_rule_fd(rsfd, fd, rights, handled)) < 0)
		log_warnx("sandbox: rule for %s", path);
	close(fd);
	return r;
}

#ifdef SANITIZER_BUILD
/* Sanitizer builds: the report folder named by log_path= in *_OPTIONS. */
static int
ll_sanitizer(int rsfd, const char *env, uint64_t handled)
{
	char dir[PATH_MAX];
	const char *v = getenv(env), *p, *slash;
	size_t len;

	if (v == NULL || (p = strstr(v, "log_path=")) == NULL)
		return 0;
	p += strlen("log_path=");
	len = strcspn(p, ": ");
	if (len >= sizeof(dir))
		return 0;
	memcpy(dir, p, len);
	dir[len] = '\0';
	if ((slash = strrchr(dir, '/')) == NULL)
		return 0;
	dir[slash - dir + (slash == dir)] = '\0';
	return ll_rule(rsfd, dir, R_STATE, handled);
}
#endif

static int
landlock(const struct sandbox_path *paths, size_t n, int mdfd)
{
	struct ll_ruleset rs;
	size_t i;
	int rsfd, abi = ll_abi();

	ll_handled(abi, &rs);
	rsfd = syscall(SYS_landlock_create_ruleset, &rs, sizeof(rs), 0);
	if (rsfd < 0)
		return log_warn("sandbox: landlock_create_ruleset");
	if (mdfd >= 0 && ll_rule_fd(rsfd, mdfd, R_MAIL, rs.fs) < 0)
		goto fail;
	for (i = 0; i < n; i++) {
		uint64_t rights = paths[i].access == SANDBOX_READ ? R_READ :
		    paths[i].access == SANDBOX_MAIL ? R_MAIL : R_STATE;

		if (paths[i].path != NULL &&
		    ll_rule(rsfd, paths[i].path, rights, rs.fs) < 0)
			goto fail;
	}
#ifdef SANITIZER_BUILD
	/* LeakSanitizer reads the maps and threads of the process. */
	if (ll_rule(rsfd, "/proc/self", R_READ | LANDLOCK_ACCESS_FS_READ_DIR,
	    rs.fs) < 0 ||
	    ll_sanitizer(rsfd, "ASAN_OPTIONS", rs.fs) < 0 ||
	    ll_sanitizer(rsfd, "UBSAN_OPTIONS", rs.fs) < 0)
		goto fail;
#endif
	if (syscall(SYS_landlock_restrict_self, rsfd, 0) < 0) {
		log_warn("sandbox: landlock_restrict_self");
		goto fail;
	}
	close(rsfd);
	return 0;
fail:
	close(rsfd);
	return -1;
}

/* The rules for who (and a kill of child when > 0) in a new context;
 * NULL after a log line. */
static scmp_filter_ctx
build(int who, int stacked, pid_t child)
{
	scmp_filter_ctx ctx;
	size_t i;
	int r;

	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL) {
		log_warnx("sandbox: seccomp_init failed");
		return NULL;
	}
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_TRAP)) < 0 ||
	    (stacked && (r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP,
	    0)) < 0))
		goto fail;
	for (i = 0; i < sizeof(allow_list) / sizeof(allow_list[0]); i++) {
		const struct allow *a = &allow_list[i];
		uint32_t act = a->err ? SCMP_ACT_ERRNO(a->err) : SCMP_ACT_ALLOW;
		int nr = seccomp_syscall_resolve_name(a->name);

		if ((who & W_NOFILES) && (a->who & W_FILES))
			act = SCMP_ACT_ERRNO(EACCES);
		else if (!(a->who & who))
			continue;	/* not one of this process */
		if (nr == __NR_SCMP_ERROR)
			continue;	/* not a call of this architecture */
		if (a->arg >= 0) {
			struct scmp_arg_cmp cmp;

			memset(&cmp, 0, sizeof(cmp));
			cmp.arg = (unsigned)a->arg;
			cmp.op = SCMP_CMP_EQ;
			cmp.datum_a = a->value;
			r = seccomp_rule_add_array(ctx, act, nr, 1, &cmp);
		} else
			r = seccomp_rule_add(ctx, act, nr, 0);
		/* EEXIST: listed in two groups (the sanitizer's clone). */
		if (r < 0 && r != -EOPNOTSUPP && r != -EEXIST)
			goto fail;
	}
	if ((who & W_ALL) && (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW,
	    SCMP_SYS(fcntl), 2, SCMP_A1(SCMP_CMP_EQ, F_SETFL),
	    SCMP_A2(SCMP_CMP_MASKED_EQ, O_ASYNC, 0))) < 0 && r != -EEXIST)
		goto fail;
	/* A monitor after the login may end its login process, no other. */
	if (child > 0 && (r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW,
	    SCMP_SYS(kill), 1, SCMP_A0(SCMP_CMP_EQ, (uint64_t)child))) < 0 &&
	    r != -EEXIST)
		goto fail;
	return ctx;
fail:
	seccomp_release(ctx);
	errno = -r;
	log_warn("sandbox: seccomp filter");
	return NULL;
}

/*
 * Filters built once by the listener (sandbox_prepare) before it forks
 * its workers, as BPF: a worker then only loads one, and keeps none of
 * the heap building it takes (some 80 KiB, the PSS of a session).
 */
struct prebuilt {
	int			 who;
	struct sock_fprog	 prog;
};

static struct prebuilt prebuilt[4];
static size_t nprebuilt;

/* Export ctx as a BPF program into p (through a pipe: what libseccomp
 * 2.5 offers).  0, or -1. */
static int
export(scmp_filter_ctx ctx, struct sock_fprog *p)
{
	const size_t max = 65536;	/* a pipe's buffer; a filter is a
					 * few KiB */
	size_t len = 0;
	ssize_t n;
	char *buf;
	int fd[2], r = -1;

	if ((buf = malloc(max)) == NULL)
		return -1;
	if (pipe2(fd, O_CLOEXEC) < 0) {
		free(buf);
		return -1;
	}
	if (seccomp_export_bpf(ctx, fd[1]) == 0) {
		close(fd[1]);
		fd[1] = -1;
		while (len < max && (n = read(fd[0], buf + len, max - len)) > 0)
			len += n;
	}
	if (fd[1] >= 0)
		close(fd[1]);
	close(fd[0]);
	if (len > 0 && len < max && len % sizeof(struct sock_filter) == 0 &&
	    (p->filter = malloc(len)) != NULL) {
		memcpy(p->filter, buf, len);
		p->len = len / sizeof(struct sock_filter);
		r = 0;
	}
	free(buf);
	return r;
}

void
sandbox_prepare(int avail, int users)
{
	const int kinds[2][3] = {
		{ W_SESSION | W_FILES | W_WORKER, 0, 0 },
		{ W_SESSION | W_FILES | W_MONITOR | W_REAP,
#ifdef SANITIZER_BUILD
		  W_LOGIN | W_FILES,
#else
		  W_LOGIN | W_NOFILES,
#endif
		  W_SESSION | W_FILES | W_REAP },
	};
	struct sock_fprog prog;
	pid_t pid;
	size_t i;
	int fd[2];

	if (!(avail & SANDBOX_SECCOMP) || pipe2(fd, O_CLOEXEC) < 0)
		return;
	/*
	 * Built in a child of its own, which sends the programs back: the
	 * listener's heap stays as it was, or the workers would dirty the
	 * pages libseccomp left half free.
	 */
	if ((pid = fork()) == 0) {
		close(fd[0]);
		for (i = 0; i < 3 && kinds[users != 0][i] != 0; i++) {
			scmp_filter_ctx ctx = build(kinds[users != 0][i], 0,
			    -1);
			int who = kinds[users != 0][i];

			if (ctx == NULL || export(ctx, &prog) < 0 ||
			    proto_write_fd(fd[1], &who, sizeof(who)) < 0 ||
			    proto_write_fd(fd[1], &prog.len,
			    sizeof(prog.len)) < 0 ||
			    proto_write_fd(fd[1], prog.filter, prog.len *
			    sizeof(*prog.filter)) < 0)
				_exit(1);
		}
		_exit(0);
	}
	close(fd[1]);
	while (pid > 0 && nprebuilt < sizeof(prebuilt) / sizeof(prebuilt[0])) {
		struct prebuilt *b = &prebuilt[nprebuilt];
		size_t len;
		void *m;

		if (proto_read_fd(fd[0], &b->who, sizeof(b->who)) < 0 ||
		    proto_read_fd(fd[0], &b->prog.len, sizeof(b->prog.len)) < 0)
			break;
		len = b->prog.len * sizeof(struct sock_filter);
		if (len == 0 || (m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
			break;
		if (proto_read_fd(fd[0], m, len) < 0) {
			munmap(m, len);
			break;
		}
		b->prog.filter = m;
		nprebuilt++;
	}
	close(fd[0]);
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

/*
 * Install the allow-list for the calls of who (W_* bits).  stacked: a
 * filter is in place already (and with it no_new_privs, which prctl, not
 * allowed there, would set again): this one narrows it.
 */
static int
seccomp(int who, int stacked, pid_t child)
{
	struct sigaction sa;
	scmp_filter_ctx ctx;
	size_t i;
	int r;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return log_warn("sandbox: sigaction SIGSYS");
	for (i = 0; i < nprebuilt && child <= 0; i++) {
		if (prebuilt[i].who != who)
			continue;
		/* no_new_privs is set (enter(), or the filter stacked on). */
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0,
		    &prebuilt[i].prog) < 0)
			return log_warn("sandbox: seccomp filter");
		return 0;
	}
	if ((ctx = build(who, stacked, child)) == NULL)
		return -1;
	if ((r = seccomp_load(ctx)) < 0) {
		seccomp_release(ctx);
		errno = -r;
		return log_warn("sandbox: seccomp filter");
	}
	seccomp_release(ctx);
	/* Give the heap building took back (see prebuilt). */
	malloc_trim(0);
	return 0;
}

/*
 * sandbox_enter(), plus the maildrop open as mdfd when >= 0.  who: the
 * allow-list's groups for a first filter; 0 adds none; with STACKED a
 * filter narrowing one inherited.
 */
#define STACKED	0x100

static int
enter(int avail, const struct sandbox_path *paths, size_t n, int mdfd,
    int who, pid_t child)
{
	int first = who != 0 && !(who & STACKED);

	if (avail == 0)
		return 0;
	/* Files the C library would open lazily later: the time zone. */
	tzset();
	/* A later layer finds no_new_privs set already (and prctl is not
	 * in the allow-list). */
	if (first && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return log_warn("sandbox: no_new_privs");
	if ((avail & SANDBOX_LANDLOCK) && landlock(paths, n, mdfd) < 0)
		return -1;
	if (who != 0 && (avail & SANDBOX_SECCOMP) &&
	    seccomp(who & ~STACKED, !first, child) < 0)
		return -1;
	return 0;
}

int
sandbox_enter(int avail, const struct sandbox_path *paths, size_t n,
    int with_seccomp)
{
	return enter(avail, paths, n, -1, with_seccomp ?
	    W_SESSION | W_FILES | W_WORKER : 0, -1);
}

int
sandbox_maildrop(int avail, const char *maildrop, const char *state)
{
	struct sandbox_path p[2] = {
		{ maildrop, SANDBOX_MAIL },
		{ state, SANDBOX_STATE }
	};

	return enter(avail, p, 2, -1, W_SESSION | W_FILES | W_WORKER, -1);
}

int
sandbox_login_process(int avail)
{
	/* No path at all: a Landlock layer without rules, and the file
	 * calls refused (sanitizer builds write their reports, where
	 * Landlock lets them). */
#ifdef SANITIZER_BUILD
	return enter(avail, NULL, 0, -1, W_LOGIN | W_FILES | STACKED, -1);
#else
	return enter(avail, NULL, 0, -1, W_LOGIN | W_NOFILES | STACKED, -1);
#endif
}

int
sandbox_login(int avail, int mdfd, const char *state, pid_t child)
{
	struct sandbox_path p = { state, SANDBOX_STATE };

	/* On the allow-list of sandbox_prelogin (or, without a login
	 * process, of the session), one without the monitor's calls. */
	return enter(avail, &p, 1, mdfd, W_SESSION | W_FILES | W_REAP | STACKED,
	    child);
}

struct collect {
	struct sandbox_path	*p;
	size_t			 n, max;
};

static int
collect_one(const char *maildrop, void *arg)
{
	struct collect *c = arg;
	char *dup;

	if (c->n == c->max) {
		size_t max = c->max ? 2 * c->max : 16;
		struct sandbox_path *p = reallocarray(c->p, max, sizeof(*p));

		if (p == NULL)
			return log_warn("sandbox");
		c->p = p;
		c->max = max;
	}
	if ((dup = strdup(maildrop)) == NULL)
		return log_warn("sandbox");
	c->p[c->n].path = dup;
	c->p[c->n++].access = SANDBOX_MAIL;
	return 0;
}

int
sandbox_prelogin(int avail, const char *users, const char *base,
    const char *state)
{
	struct collect c = { NULL, 0, 0 };
	size_t i;
	int r = -1;

	if (avail == 0)
		return 0;
	if (collect_one(users, &c) < 0 || collect_one(base, &c) < 0)
		goto out;
	c.p[0].access = SANDBOX_READ;
	if (state != NULL) {
		if (collect_one(state, &c) < 0)
			goto out;
		c.p[c.n - 1].access = SANDBOX_STATE;
	}
	/* Maildrops named in the users file: a login may lead there.  An
	 * unreadable file (logged) fails the login later, as without. */
	(void)users_maildrops(users, collect_one, &c);
	r = enter(avail, c.p, c.n, -1, W_SESSION | W_FILES | W_MONITOR | W_REAP,
	    -1);
out:
	for (i = 0; i < c.n; i++)
		free((char *)c.p[i].path);
	free(c.p);
	return r;
}
