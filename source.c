/*
 * source.c: per-source state shared by a listener's processes (see
 * source.h).
 *
 * One anonymous shared mapping, made before the workers fork, holds a
 * process-shared robust mutex, one key per seat (the address a worker's
 * session came from) and a hash table of session counts per address
 * (linear probing, twice as many slots as seats, so it never fills).  A
 * worker that dies holding the mutex leaves it to the next locker, which
 * takes it over (EOWNERDEAD); the master then releases the dead worker's
 * seat.
 *
 * Login failures live in a second, fixed-size table (LOGIN_PENALTY_SLOTS):
 * an address hashes to a window of a few slots; a new address takes a
 * free or stale slot there, else the oldest one.  Losing an entry only
 * forgets a penalty early; an attacker spraying addresses gains nothing he
 * would not gain from fresh addresses anyway.
 */
#include <sys/mman.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "params.h"
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

/*
 * The shared mapping holds data only: the lock, the penalties, then the
 * entries and the seats.  Sizes and pointers live in each process's own
 * handle (copied by fork), so a process that scribbles on the mapping can
 * skew counts but never steer another process's reads or writes.
 */
struct source_shared {
	pthread_mutex_t	lock;
	struct penalty	pen[LOGIN_PENALTY_SLOTS];
};

struct source_table {
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
	struct timespec ts;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += LOCK_WAIT_MS / 1000;
	r = pthread_mutex_timedlock(&t->sh->lock, &ts);
	if (r == EOWNERDEAD) {
		log_warnx("source table: a worker died holding its lock");
		pthread_mutex_consistent(&t->sh->lock);
		return 0;
	}
	if (r != 0) {
		errno = r;
		log_warn("source table lock");
		return -1;
	}
	return 0;
}

static void
unlock(struct source_table *t)
{
	pthread_mutex_unlock(&t->sh->lock);
}

struct source_table *
source_new(int seats)
{
	struct source_table *t;
	pthread_mutexattr_t ma;
	size_t slots = 16, len;
	void *m;
	int r;

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
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
	    -1, 0);
	if (m == MAP_FAILED) {
		log_warn("mmap source table");
		free(t);
		return NULL;
	}
	t->sh = m;	/* the mapping is zeroed: every seat and slot free */
	t->seats = seats;
	t->mask = slots - 1;
	t->maplen = len;
	/* The 4-byte aligned entries first: a srckey is 17 bytes. */
	t->ent = (struct srcent *)(t->sh + 1);
	t->seat = (struct srckey *)(t->ent + slots);
	if ((r = pthread_mutexattr_init(&ma)) != 0 ||
	    (r = pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED)) ||
	    (r = pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST)) ||
	    (r = pthread_mutex_init(&t->sh->lock, &ma)) != 0) {
		errno = r;
		log_warn("source table mutex");
		munmap(m, len);
		free(t);
		return NULL;
	}
	pthread_mutexattr_destroy(&ma);
	return t;
}

void
source_free(struct source_table *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->sh->lock);
	munmap(t->sh, t->maplen);
	free(t);
}

void
source_forget(struct source_table *t)
{
	if (t == NULL)
		return;
	munmap(t->sh, t->maplen);
	free(t);
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
