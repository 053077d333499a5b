/* SPDX-License-Identifier: ISC */
/*
 * fleet: this process among the instances sharing one store, and its
 * share of the fleet-wide budgets.
 *
 * segment.rate_limit_rps is a budget per write key for the whole fleet.
 * On a shared store (PostgreSQL) each instance registers in the store's
 * table of live instances and beats every nb_fleet_beat_ms(); it takes
 * 1/N of the budget, N the live instances at its last beat.  Two rules
 * keep the sum within the budget: an instance takes nothing until two
 * beat periods after it (re)registered, by when every other instance has
 * beaten and counts it; and nothing while its last successful beat is
 * older than the lease minus a beat, as the others may count it out.  A
 * dead instance drops out of the count within the lease; a clean stop
 * leaves at once.  On SQLite the share is 1.  The deliverer's thread
 * drives it; nb_fleet_snapshot() is for any thread.
 */
#ifndef NB_FLEET_H
#define NB_FLEET_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/store.h"

/* Beat period bounds: a quarter of the lease, within these. */
#define NB_FLEET_BEAT_MIN_MS 100
#define NB_FLEET_BEAT_MAX_MS 1000
/* Instances a beat reads and a snapshot keeps (the count is exact). */
#define NB_FLEET_LIST_MAX 64

struct nb_fleet;

/* What a snapshot says besides the instances. */
struct nb_fleet_status {
	int shared;	  /* the store is shared: instances coordinate */
	size_t live;	  /* live instances, this one included */
	double share;	  /* of each fleet budget taken now, 0..1 */
	int64_t beat_ms;  /* the beat period */
	int64_t lease_ms; /* silent this long, an instance is dead */
	char self[NB_STORE_INSTANCE_ID_MAX]; /* this instance's id */
};

/*
 * This process as an instance of a store (shared or not, see
 * nb_store_shared()) whose instances count as dead lease_ms after their
 * last beat (store.lease_s).  Makes a random instance id and reads the host
 * name and pid; registers nothing yet.  NULL when out of memory.
 */
struct nb_fleet *nb_fleet_new(int shared, int64_t lease_ms);

/* Frees (does not leave: see nb_fleet_leave()).  NULL is ok. */
void nb_fleet_free(struct nb_fleet *);

/* The beat period: the longest a caller may wait between two ticks. */
int64_t nb_fleet_beat_ms(const struct nb_fleet *);

/*
 * Beats in st when a beat is due (a shared store only; a failure is
 * logged by the store and tried again a beat later) and returns the share
 * of each fleet budget this instance may use now (0..1; 1 on a store not
 * shared).  mono_ms is the monotonic clock, now_ms the wall clock.
 */
double nb_fleet_tick(
    struct nb_fleet *, struct nb_store *st, int64_t mono_ms, int64_t now_ms);

/* Takes this instance out of a shared store's table (a clean stop). */
void nb_fleet_leave(struct nb_fleet *, struct nb_store *st);

/*
 * Copies the live instances as of the last beat (at most max, oldest
 * start first; on a store not shared, this one) into out and the status
 * into *st; returns how many were copied.  Any thread.
 */
size_t nb_fleet_snapshot(struct nb_fleet *, struct nb_store_instance *out,
    size_t max, struct nb_fleet_status *st);

/*
 * The share rule alone, for tests: at mono_ms, with the last successful
 * beat started at last_ok_ms (0: none yet), sending allowed from
 * joined_ms, the lease and beat periods, and live instances counted.
 */
double nb_fleet_share(int64_t mono_ms, int64_t last_ok_ms, int64_t joined_ms,
    int64_t lease_ms, int64_t beat_ms, size_t live);

#endif
