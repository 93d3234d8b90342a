/*
 * tap.h: a tiny assertion header for the unit tests.  Prints one TAP line
 * per check and a plan at the end; the exit status is 1 if any failed.
 */
#ifndef TAP_H
#define TAP_H

#include <stdio.h>
#include <string.h>

static int tap_n, tap_failed;

#define ok(cond, ...) do {						\
	int tap_c = (cond);						\
	tap_n++;							\
	if (tap_c) {							\
		printf("ok %d - ", tap_n);				\
	} else {							\
		tap_failed++;						\
		printf("not ok %d - ", tap_n);				\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	if (!tap_c)							\
		printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
} while (0)

#define is_mem(a, alen, b, blen, ...)					\
	ok((alen) == (blen) && memcmp((a), (b), (alen)) == 0, __VA_ARGS__)

static inline int
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}

#endif
