/*
 * source.c: per-source state shared by a listener's processes (see
 * source.h).
 *
 * One shared mapping of a memfd, made before the workers fork, holds one
 * key per seat (the address a worker's session came from) and a hash
 * table of session counts per address (linear probing, twice as many
 * slots as seats, so it never fills).  It holds data only: the lock is a
 * POSIX record lock on the memfd, which the kernel keeps (and drops when
 * its holder dies), and sizes and pointers live in each process's own
 * handle.  A confined session that scribbles on the mapping can skew
 * counts and penalties, never steer another process's reads or writes;
 * one that holds the lock costs the others LOCK_WAIT_MS per call, then
 * they go on without the table.  The master releases a dead worker's
 * seat.
 *
 * Login failures live in a second, fixed-size table (LOGIN_PENALTY_SLOTS):
 * an address hashes to a window of a few slots; a new address takes a
 * free or stale slot there, else the oldest one.  Losing an entry only
 * forgets a penalty early; an attacker spraying addresses gains nothing he
 * would not gain from fresh addresses anyway.
 */
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "log.h"
#include "params.h"
#include "proto.h"
#include "source.h"

struct srckey {
	uint8_t		family;		/* 0: none */
	uint8_t		addr[16];
};

struct srcent {
	struct srckey	key;
	uint32_t	count;
};

struct penalty {
	struct srckey	key;
	uint32_t	failures;	/* in a row, lately */
	uint64_t	last_ns;	/* the last failure, monotonic */
};

/* Slots an address may occupy in the penalty table. */
#define PENALTY_WINDOW	8

/* The shared mapping: the penalties, then the entries and the seats. */
struct source_shared {
	struct penalty	pen[LOGIN_PENALTY_SLOTS];
};

struct source_table {
	int		 fd;		/* the memfd: mapping and lock */
	struct source_shared *sh;
	size_t		seats;
	size_t		mask;		/* hash slots - 1 */
	size_t		maplen;
	struct srckey	*seat;		/* [seats], in the mapping */
	struct srcent	*ent;		/* [mask + 1], in the mapping */
};

/* How long a process waits for the lock before it gives up on the table
 * for this call (a holder that never lets go must not stop the others). */
#define LOCK_WAIT_MS	2000

/* The address of peer as a key: IPv4-mapped IPv6 counts as IPv4. */
static int
make_key(const struct peer *p, struct srckey *k)
{
	memset(k, 0, sizeof(*k));
	if (p->addr.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)&p->addr;

		k->family = 4;
		memcpy(k->addr, &sin->sin_addr, 4);
		return 0;
	}
	if (p->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)&p->addr;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			k->family = 4;
			memcpy(k->addr, &s6->sin6_addr.s6_addr[12], 4);
		} else {
			k->family = 6;
			memcpy(k->addr, &s6->sin6_addr, 16);
		}
		return 0;
	}
	return -1;
}

static size_t
key_hash(const struct srckey *k)
{
	uint64_t h = 1469598103934665603ULL ^ k->family;
	size_t i;

	for (i = 0; i < sizeof(k->addr); i++)
		h = (h ^ k->addr[i]) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 29));
}

static int
key_eq(const struct srckey *a, const struct srckey *b)
{
	return a->family == b->family &&
	    memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

/* Slot of k, or of the empty slot where it would go. */
static size_t
find(const struct source_table *t, const struct srckey *k)
{
	size_t i = key_hash(k) & t->mask, n;

	for (n = 0; n <= t->mask; n++) {
		if (t->ent[i].key.family == 0 || key_eq(&t->ent[i].key, k))
			break;
		i = (i + 1) & t->mask;
	}
	return i;	/* a full table (never: 2 slots a seat) ends anywhere */
}

/* Empty slot i, moving later entries of its run back (linear probing). */
static void
remove_slot(struct source_table *t, size_t i)
{
	size_t j = i, home, n = 0;

	for (;;) {
		t->ent[i].key.family = 0;
		t->ent[i].count = 0;
		for (;;) {
			j = (j + 1) & t->mask;
			if (t->ent[j].key.family == 0 || ++n > t->mask)
				return;
			home = key_hash(&t->ent[j].key) & t->mask;
			/* Stays unless its home lies cyclically in (i, j]. */
			if (i <= j ? (home <= i || home > j) :
			    (home <= i && home > j))
				break;
		}
		t->ent[i] = t->ent[j];
		i = j;
	}
}

/* 0 with the lock held, -1 (logged) when it could not be had. */
static int
lock(struct source_table *t)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct timespec tick = { 0, 1000 * 1000 };
	long long until = proto_now_ms() + LOCK_WAIT_MS;

	for (;;) {
		if (fcntl(t->fd, F_SETLK, &fl) == 0)
			return 0;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			log_warn("source table lock");
			return -1;
		}
		if (proto_now_ms() >= until) {
			log_warnx("source table: lock held for %d ms: going "
			    "on without it", LOCK_WAIT_MS);
			return -1;
		}
		nanosleep(&tick, NULL);
	}
}

static void
unlock(struct source_table *t)
{
	struct flock fl = { .l_type = F_UNLCK, .l_whence = SEEK_SET };

	fcntl(t->fd, F_SETLK, &fl);
}

struct source_table *
source_new(int seats)
{
	struct source_table *t;
	size_t slots = 16, len;
	void *m;

	if (seats < 1)
		seats = 1;
	while (slots < 2 * (size_t)seats)
		slots *= 2;
	len = sizeof(struct source_shared) + seats * sizeof(struct srckey) +
	    slots * sizeof(struct srcent);
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		log_warn("source table");
		return NULL;
	}
	if ((t->fd = memfd_create("pop3d-sources", MFD_CLOEXEC)) < 0 ||
	    ftruncate(t->fd, len) < 0) {
		log_warn("source table memfd");
		goto fail;
	}
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, t->fd, 0);
	if (m == MAP_FAILED) {
		log_warn("mmap source table");
		goto fail;
	}
	t->sh = m;	/* a new memfd reads as zeros: every seat and slot free */
	t->seats = seats;
	t->mask = slots - 1;
	t->maplen = len;
	/* The 4-byte aligned entries first: a srckey is 17 bytes. */
	t->ent = (struct srcent *)(t->sh + 1);
	t->seat = (struct srckey *)(t->ent + slots);
	return t;
fail:
	if (t->fd >= 0)
		close(t->fd);
	free(t);
	return NULL;
}

void
source_free(struct source_table *t)
{
	if (t == NULL)
		return;
	munmap(t->sh, t->maplen);
	close(t->fd);
	free(t);
}

void
source_forget(struct source_table *t)
{
	source_free(t);		/* nothing shared is destroyed */
}

int
source_admit(struct source_table *t, int seat, const struct peer *peer,
    int limit)
{
	struct srckey k;
	size_t i;
	int ok = 0;

	if (t == NULL || seat < 0 || (size_t)seat >= t->seats ||
	    make_key(peer, &k) < 0)
		return 0;
	if (lock(t) < 0)
		return 0;
	if (t->seat[seat].family != 0) {
		/* A seat held twice would skew the counts: never happens,
		 * but give the old hold back rather than keep it forever. */
		unlock(t);
		source_release(t, seat);
		if (lock(t) < 0)
			return 0;
	}
	i = find(t, &k);
	if (limit > 0 && t->ent[i].key.family != 0 &&
	    t->ent[i].count >= (uint32_t)limit) {
		ok = -1;
	} else {
		t->ent[i].key = k;
		t->ent[i].count++;
		t->seat[seat] = k;
	}
	unlock(t);
	return ok;
}

void
source_release(struct source_table *t, int seat)
{
	size_t i;

	if (t == NULL || seat < 0 || (size_t)seat >= t->seats ||
	    lock(t) < 0)
		return;
	if (t->seat[seat].family != 0) {
		i = find(t, &t->seat[seat]);
		if (t->ent[i].key.family != 0 && --t->ent[i].count == 0)
			remove_slot(t, i);
		t->seat[seat].family = 0;
	}
	unlock(t);
}

/* The penalty slot of k; with create, a free, stale or the oldest slot of
 * its window is taken for it.  NULL when k has none. */
static struct penalty *
penalty_slot(struct source_table *t, const struct srckey *k, uint64_t now_ns,
    int create)
{
	const uint64_t forget = LOGIN_PENALTY_FORGET * 1000000000ULL;
	size_t h = key_hash(k), i;
	struct penalty *victim = NULL;

	for (i = 0; i < PENALTY_WINDOW; i++) {
		struct penalty *e = &t->sh->pen[(h + i) % LOGIN_PENALTY_SLOTS];

		if (e->key.family != 0 && key_eq(&e->key, k)) {
			if (now_ns - e->last_ns > forget)
				e->failures = 0;
			return e;
		}
		if (victim == NULL || e->key.family == 0 ||
		    (victim->key.family != 0 && e->last_ns < victim->last_ns))
			victim = e;
	}
	if (!create)
		return NULL;
	victim->key = *k;
	victim->failures = 0;
	victim->last_ns = now_ns;
	return victim;
}

uint64_t
source_login_failed(struct source_table *t, const struct peer *peer,
    uint64_t now_ns)
{
	struct srckey k;
	struct penalty *e;
	uint64_t ns = 0;
	uint32_t i;

	if (t == NULL || peer->local || make_key(peer, &k) < 0)
		return 0;
	if (lock(t) < 0)	/* no count to go by: the longest wait */
		return LOGIN_PENALTY_MAX * 1000000000ULL;
	e = penalty_slot(t, &k, now_ns, 1);
	if (e->failures > 0) {
		ns = LOGIN_PENALTY_FIRST * 1000000000ULL;
		for (i = 1; i < e->failures && ns < LOGIN_PENALTY_MAX *
		    1000000000ULL; i++)
			ns *= 2;
		if (ns > LOGIN_PENALTY_MAX * 1000000000ULL)
			ns = LOGIN_PENALTY_MAX * 1000000000ULL;
	}
	if (e->failures < UINT32_MAX)
		e->failures++;
	e->last_ns = now_ns;
	unlock(t);
	return ns;
}

void
source_login_ok(struct source_table *t, const struct peer *peer)
{
	struct srckey k;
	struct penalty *e;

	if (t == NULL || peer->local || make_key(peer, &k) < 0)
		return;
	if (lock(t) < 0)
		return;
	if ((e = penalty_slot(t, &k, 0, 0)) != NULL)
		e->key.family = 0;
	unlock(t);
}
