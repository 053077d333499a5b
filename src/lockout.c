/* SPDX-License-Identifier: ISC */
/*
 * lockout: a fixed table of failure counters keyed by client address.
 *
 * A key is the address family and the bytes that name a client: the four
 * of IPv4 (IPv4-mapped IPv6 counts as IPv4), the first eight of IPv6.
 * Each slot counts failures in a window that starts at the slot's first
 * failure; the failure past NB_LOCKOUT_FAILS within it locks the address
 * for a window.  Lookups scan the slots in use (none while nobody failed;
 * 1,024 of 40 bytes at most, a few microseconds); the slot whose last
 * failure is oldest is reused when no slot is free.  Nothing is allocated after
 * nb_lockout_new().
 */
#include <sys/socket.h>

#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include "nudgebridge/lockout.h"

#define KEY_LEN 9 /* family tag and up to 8 address bytes */

struct slot {
	unsigned char key[KEY_LEN];
	int count;	      /* failures in the window */
	int64_t first_ms;     /* the window's start */
	int64_t last_ms;      /* the last failure: eviction order */
	int64_t locked_until; /* 0: not locked */
};

/*
 * Slots are taken in order and never given back one by one, so the used
 * ones are always slots[0..used).
 */
struct nb_lockout {
	struct slot slots[NB_LOCKOUT_SLOTS];
	size_t used;
};

static const unsigned char v4mapped[12] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* The key of sa: tag 4 or 6 and the bytes that name the client. */
static void
key_of(const struct sockaddr *sa, unsigned char key[KEY_LEN])
{
	const struct sockaddr_in6 *s6;
	const unsigned char *b;

	memset(key, 0, KEY_LEN);
	if (sa != NULL && sa->sa_family == AF_INET) {
		key[0] = 4;
		memcpy(key + 1,
		    &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		    4);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		s6 = (const struct sockaddr_in6 *)(const void *)sa;
		b = s6->sin6_addr.s6_addr;
		if (memcmp(b, v4mapped, sizeof(v4mapped)) == 0) {
			key[0] = 4;
			memcpy(key + 1, b + 12, 4);
		} else {
			key[0] = 6;
			memcpy(key + 1, b, 8);
		}
	}
}

struct nb_lockout *
nb_lockout_new(void)
{
	return calloc(1, sizeof(struct nb_lockout));
}

void
nb_lockout_free(struct nb_lockout *l)
{
	free(l);
}

void
nb_lockout_clear(struct nb_lockout *l)
{
	memset(l, 0, sizeof(*l));
}

size_t
nb_lockout_count(const struct nb_lockout *l)
{
	return l->used;
}

/* The slot of key, or NB_LOCKOUT_SLOTS when it has none. */
static size_t
find(const struct nb_lockout *l, const unsigned char key[KEY_LEN])
{
	size_t i;

	for (i = 0; i < l->used; i++)
		if (memcmp(l->slots[i].key, key, KEY_LEN) == 0)
			return i;
	return NB_LOCKOUT_SLOTS;
}

int64_t
nb_lockout_wait(
    const struct nb_lockout *l, const struct sockaddr *sa, int64_t now_ms)
{
	unsigned char key[KEY_LEN];
	const struct slot *s;
	size_t i;

	key_of(sa, key);
	if ((i = find(l, key)) == NB_LOCKOUT_SLOTS)
		return 0;
	s = &l->slots[i];
	return s->locked_until > now_ms ? s->locked_until - now_ms : 0;
}

/* A free slot, or the one whose last failure is oldest. */
static struct slot *
make_room(struct nb_lockout *l)
{
	struct slot *oldest;
	size_t i;

	if (l->used < NB_LOCKOUT_SLOTS)
		return &l->slots[l->used++];
	oldest = &l->slots[0];
	for (i = 1; i < NB_LOCKOUT_SLOTS; i++)
		if (l->slots[i].last_ms < oldest->last_ms)
			oldest = &l->slots[i];
	return oldest;
}

int64_t
nb_lockout_fail(struct nb_lockout *l, const struct sockaddr *sa, int64_t now_ms)
{
	unsigned char key[KEY_LEN];
	struct slot *s;
	size_t i;

	key_of(sa, key);
	if ((i = find(l, key)) < NB_LOCKOUT_SLOTS)
		s = &l->slots[i];
	else {
		s = make_room(l);
		memset(s, 0, sizeof(*s));
		memcpy(s->key, key, KEY_LEN);
		s->first_ms = now_ms;
	}
	s->last_ms = now_ms;
	if (now_ms - s->first_ms >= NB_LOCKOUT_WINDOW_MS) {
		s->first_ms = now_ms;
		s->count = 0;
	}
	if (++s->count > NB_LOCKOUT_FAILS)
		s->locked_until = now_ms + NB_LOCKOUT_WINDOW_MS;
	return s->locked_until > now_ms ? s->locked_until - now_ms : 0;
}
