/* SPDX-License-Identifier: ISC */
/*
 * metrics: counters and histograms, rendered in Prometheus text format.
 *
 * Every update is a relaxed atomic add, so the front end, the writer and the
 * deliverer record without locks; rendering reads a consistent-enough
 * snapshot.  Queue figures (depth, oldest age) and paused sources are not
 * kept here: the caller passes a board snapshot (board.h) at render time.
 * Thread-safe throughout.
 */
#ifndef NB_METRICS_H
#define NB_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct nb_board_snapshot;
struct nb_metrics;

/* NULL on allocation failure. */
struct nb_metrics *nb_metrics_new(void);
void nb_metrics_free(struct nb_metrics *);

/* One answered webhook request; error is the contract code or NULL. */
void nb_metrics_request(struct nb_metrics *, int status, const char *error);

/* Events of answered requests. */
void nb_metrics_events(
    struct nb_metrics *, int accepted, int duplicates, int quarantined);

/* Events of answered requests that drop_types filtered out. */
void nb_metrics_filtered(struct nb_metrics *, int filtered);

/* One store transaction: its duration and how many events it stored. */
void nb_metrics_commit(struct nb_metrics *, double seconds, size_t events);

/*
 * One batch attempt: Segment's status (0 for a network error or timeout),
 * its message count and how long it took.
 */
void nb_metrics_delivery(
    struct nb_metrics *, int status, size_t messages, double seconds);

/* n events rescheduled for another attempt. */
void nb_metrics_retry(struct nb_metrics *, size_t n);

/* n events dead-lettered with reason. */
void nb_metrics_dead(struct nb_metrics *, const char *reason, size_t n);

/*
 * One batch request's body: json_bytes before compression, wire_bytes as
 * sent (equal without gzip).
 */
void nb_metrics_sent(struct nb_metrics *, size_t json_bytes, size_t wire_bytes);

/* One OAuth token request: the endpoint's status, 0 when none came. */
void nb_metrics_oauth(struct nb_metrics *, int status);

/* n events delivered (2xx), and the receipt-to-delivery latency of each. */
void nb_metrics_delivered(struct nb_metrics *, size_t n, double latency_s);

/*
 * accept() failed on a listener; reason is "emfile", "enfile", "nomem" or
 * "other".
 */
void nb_metrics_accept_error(struct nb_metrics *, const char *reason);

/*
 * Appends the whole exposition to out: the counters above, plus per-source
 * queue gauges and paused-source gauges from snap (NULL, or without
 * queue figures: those gauges are left out).  0 or -1.
 */
int nb_metrics_render(struct nb_metrics *, const struct nb_board_snapshot *snap,
    int64_t now_ms, struct evbuffer *out);

#endif
