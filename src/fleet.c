/* SPDX-License-Identifier: ISC */
/*
 * fleet: the heartbeat and the share of the budgets.
 *
 * Why the sum of the shares stays within a budget: an instance sends only
 * while every other one counts it.  It is counted from the other's first
 * beat after its registration (so it waits two beat periods, the others
 * beating once per period) until its heartbeat is a lease old at the
 * database's clock; it stops a beat period before that by its own
 * monotonic clock, measured from the moment it sent its last successful
 * beat, which is earlier than the database wrote it.  Each sender takes
 * 1/N, N the live instances it counts, among them every sender, so the
 * shares add up to at most the budget (late beats aside: an instance that
 * beats late counts a newcomer that much later).  Deliverer thread only,
 * except nb_fleet_snapshot(), which reads under the mutex.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "nudgebridge/fleet.h"
#include "nudgebridge/log.h"
#include "nudgebridge/store.h"

struct nb_fleet {
	/* deliverer thread only */
	int shared;
	int64_t lease_ms, beat_ms;
	int64_t last_try_ms; /* mono: the last beat attempt started */
	int64_t last_ok_ms;  /* mono: the last successful one started, 0 */
	int64_t joined_ms;   /* mono: sending allowed from */
	struct nb_store_instance self;
	struct nb_store_instance list[NB_FLEET_LIST_MAX]; /* a beat's */

	/* guarded by mu: what nb_fleet_snapshot() copies */
	pthread_mutex_t mu;
	struct nb_store_instance shown[NB_FLEET_LIST_MAX];
	size_t nshown;
	size_t live;
	double share;
};

double
nb_fleet_share(int64_t mono_ms, int64_t last_ok_ms, int64_t joined_ms,
    int64_t lease_ms, int64_t beat_ms, size_t live)
{
	if (last_ok_ms == 0 || mono_ms - last_ok_ms >= lease_ms - beat_ms ||
	    mono_ms < joined_ms || live == 0)
		return 0;
	return 1.0 / (double)live;
}

struct nb_fleet *
nb_fleet_new(int shared, int64_t lease_ms)
{
	unsigned char id[(NB_STORE_INSTANCE_ID_MAX - 1) / 2];
	struct nb_fleet *f;
	char *p;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return NULL;
	if (pthread_mutex_init(&f->mu, NULL) != 0) {
		free(f);
		return NULL;
	}
	f->shared = shared;
	f->lease_ms = lease_ms;
	f->beat_ms = lease_ms / 4;
	if (f->beat_ms < NB_FLEET_BEAT_MIN_MS)
		f->beat_ms = NB_FLEET_BEAT_MIN_MS;
	if (f->beat_ms > NB_FLEET_BEAT_MAX_MS)
		f->beat_ms = NB_FLEET_BEAT_MAX_MS;
	randombytes_buf(id, sizeof(id));
	sodium_bin2hex(f->self.id, sizeof(f->self.id), id, sizeof(id));
	if (gethostname(f->self.host, sizeof(f->self.host)) == -1)
		snprintf(f->self.host, sizeof(f->self.host), "unknown");
	f->self.host[sizeof(f->self.host) - 1] = '\0';
	/* The database and JSON take text: keep a name to printable ASCII. */
	for (p = f->self.host; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e)
			*p = '?';
	f->self.pid = (int64_t)getpid();
	f->share = shared ? 0 : 1;
	f->live = 1;
	return f;
}

void
nb_fleet_free(struct nb_fleet *f)
{
	if (f == NULL)
		return;
	pthread_mutex_destroy(&f->mu);
	free(f);
}

int64_t
nb_fleet_beat_ms(const struct nb_fleet *f)
{
	return f->beat_ms;
}

/* One beat, started at mono (0 when it failed). */
static void
beat(struct nb_fleet *f, struct nb_store *st, int64_t mono)
{
	size_t n = 0, live = 0;

	f->last_try_ms = mono;
	if (nb_store_beat(st, &f->self, f->lease_ms, f->list, NB_FLEET_LIST_MAX,
		&n, &live) == -1)
		return;
	/* Counted out, or never in: wait until the others count it. */
	if (nb_fleet_share(
		mono, f->last_ok_ms, 0, f->lease_ms, f->beat_ms, 1) == 0) {
		f->joined_ms = mono + 2 * f->beat_ms;
		log_info("instance registered",
		    " instance=%s live=%zu wait_ms=%" PRId64, f->self.id, live,
		    2 * f->beat_ms);
	}
	f->last_ok_ms = mono;
	pthread_mutex_lock(&f->mu);
	memcpy(f->shown, f->list, n * sizeof(*f->list));
	f->nshown = n;
	f->live = live;
	pthread_mutex_unlock(&f->mu);
}

double
nb_fleet_tick(
    struct nb_fleet *f, struct nb_store *st, int64_t mono_ms, int64_t now_ms)
{
	double share = 1;

	if (!f->shared) {
		/* The only instance: its heartbeat is now. */
		pthread_mutex_lock(&f->mu);
		if (f->self.started_ms == 0)
			f->self.started_ms = now_ms;
		f->self.beat_ms = now_ms;
		f->shown[0] = f->self;
		f->nshown = 1;
		pthread_mutex_unlock(&f->mu);
		return 1;
	}
	if (f->last_try_ms == 0 || mono_ms - f->last_try_ms >= f->beat_ms)
		beat(f, st, mono_ms);
	pthread_mutex_lock(&f->mu);
	share = nb_fleet_share(mono_ms, f->last_ok_ms, f->joined_ms,
	    f->lease_ms, f->beat_ms, f->live);
	f->share = share;
	pthread_mutex_unlock(&f->mu);
	return share;
}

void
nb_fleet_leave(struct nb_fleet *f, struct nb_store *st)
{
	if (!f->shared || f->last_ok_ms == 0)
		return;
	if (nb_store_leave(st, f->self.id) == 0)
		log_info("instance left", " instance=%s", f->self.id);
	f->last_ok_ms = 0;
}

size_t
nb_fleet_snapshot(struct nb_fleet *f, struct nb_store_instance *out, size_t max,
    struct nb_fleet_status *st)
{
	size_t n;

	pthread_mutex_lock(&f->mu);
	n = f->nshown < max ? f->nshown : max;
	if (n > 0)
		memcpy(out, f->shown, n * sizeof(*out));
	memset(st, 0, sizeof(*st));
	st->shared = f->shared;
	st->live = f->live;
	st->share = f->share;
	st->beat_ms = f->beat_ms;
	st->lease_ms = f->lease_ms;
	snprintf(st->self, sizeof(st->self), "%s", f->self.id);
	pthread_mutex_unlock(&f->mu);
	return n;
}
