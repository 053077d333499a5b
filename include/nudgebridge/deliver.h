/* SPDX-License-Identifier: ISC */
/*
 * deliver: pending events go to Segment's /v1/batch, on a thread of its own.
 *
 * The deliverer owns a thread, its event_base, its own store connection and
 * a libcurl multi handle driven by that base (curl's hiperfifo.c shape).
 * Sources that share a write key and endpoint form one lane: a lane claims
 * due rows, maps them, packs batches within the byte and count limits, and
 * sends them under its rate limit and in-flight cap.  2xx marks rows
 * delivered; network errors, timeouts, 408, 429 and 5xx reschedule them with
 * exponential backoff and jitter (Retry-After honoured); 400 bisects the
 * batch until the offending messages are dead-lettered alone; 401/403 pause
 * the lane until a reload or the pause back-off ends.  Every other status
 * (3xx, 404, 413, ...) is retried like a 5xx, so a transient
 * misconfiguration never loses events (max_age_s / max_attempts bound it).
 * The committer wakes it through nb_deliver_wake(); the caller initialises
 * libcurl and libevent's thread support first.
 */
#ifndef NB_DELIVER_H
#define NB_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/board.h" /* struct nb_paused */
#include "nudgebridge/config.h"

struct nb_deliver;
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
 * The backoff before attempt number attempts+1 (attempts >= 1 failures so
 * far): initial_ms * 2^(attempts-1), capped at max_ms, with full jitter in
 * [delay/2, delay].  retry_after_ms > 0 is a floor.  Exposed for tests.
 */
int64_t nb_deliver_backoff_ms(
    const struct nb_retry_config *r, int attempts, int64_t retry_after_ms);

#endif
