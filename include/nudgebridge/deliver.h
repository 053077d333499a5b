/* SPDX-License-Identifier: ISC */
/*
 * deliver: pending events go to Segment's /v1/batch, on a thread of its own.
 *
 * The deliverer owns a thread, its event_base, its own store connection and
 * one transfer engine (xfer.h: libcurl multi driven by that base, curl's
 * hiperfifo.c shape).  Sources that share a write key, endpoint and OAuth
 * client form one lane (lane.h), which claims due rows, maps and checks
 * them, packs batches (batch.h) and sends them under its rate limit and
 * in-flight cap.  What an answer does is policy.h's: 2xx delivered; network
 * errors, timeouts, 408, 429, 5xx and any other status retried with backoff
 * (Retry-After, else a 429's X-RateLimit-Reset, honoured), so a transient
 * misconfiguration never loses events; 400 bisected down to single
 * messages; 401/403 or a refused OAuth key pause the lane until a reload or
 * the pause ends.  The committer wakes it through nb_deliver_wake(); the
 * caller initialises libcurl and libevent's thread support first.
 */
#ifndef NB_DELIVER_H
#define NB_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/board.h" /* struct nb_paused */
#include "nudgebridge/config.h"
#include "nudgebridge/lane.h"

struct nb_deliver;
struct nb_fleet;
struct nb_metrics;

/*
 * Creates a deliverer for cfg (takes its own reference) and opens its store
 * connection.  m may be NULL.  Returns NULL with a message in err.
 */
struct nb_deliver *nb_deliver_new(
    struct nb_config *cfg, struct nb_metrics *m, char *err, size_t errlen);

/* Starts the thread.  0 or -1. */
int nb_deliver_start(struct nb_deliver *);

/* New rows were committed: look now rather than at the next tick.  Any thread.
 */
void nb_deliver_wake(struct nb_deliver *);

/*
 * Switches to cfg (takes a reference) at the thread's next turn: new write
 * keys, endpoints and sources; paused lanes resume.  Any thread.
 */
void nb_deliver_reload(struct nb_deliver *, struct nb_config *cfg);

/*
 * Copies the currently paused sources into out (at most max); returns how
 * many there are.  Any thread.
 */
size_t nb_deliver_paused(
    struct nb_deliver *, struct nb_paused *out, size_t max);

/*
 * Drains and stops: claims and sends what is due until nothing is due or
 * drain_ms passed, then cancels what is in flight (leases released), joins
 * the thread.  Blocks the caller.  0 if nothing due was left, -1 otherwise.
 */
int nb_deliver_stop(struct nb_deliver *, int drain_ms);

/* Frees a stopped (or never started) deliverer.  NULL is ok. */
void nb_deliver_free(struct nb_deliver *);

/*
 * This instance among those sharing the store (fleet.h): its share of
 * segment.rate_limit_rps, which the lanes take, and the live instances.
 * Borrowed; lives as long as the deliverer.
 */
struct nb_fleet *nb_deliver_fleet(struct nb_deliver *);

/*
 * Replaces the mapper (nb_lane_map_segment() by default) before the
 * thread starts.  For tests that need messages the real mapper never
 * makes.
 */
void nb_deliver_set_map(struct nb_deliver *, nb_lane_map_fn map);

#endif
