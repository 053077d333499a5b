/* SPDX-License-Identifier: ISC */
/*
 * metrics: counters and histograms, rendered in Prometheus text format.
 *
 * Every update is a relaxed atomic add, so the front end, the writer and the
 * deliverer record without locks; rendering reads a consistent-enough
 * snapshot.  Queue figures (depth, oldest age) and paused sources are not
 * kept here: metrics_page.c renders them from a board snapshot.
 * Thread-safe throughout.
 */
#ifndef NB_METRICS_H
#define NB_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct nb_metrics;

/* NULL on allocation failure. */
struct nb_metrics *nb_metrics_new(void);
void nb_metrics_free(struct nb_metrics *);

/* One answered webhook request; error is the contract code or NULL. */
void nb_metrics_request(struct nb_metrics *, int status, const char *error);

/* Events of answered requests. */
void nb_metrics_events(
    struct nb_metrics *, int accepted, int duplicates, int quarantined);

/*
 * n events acknowledged but neither stored nor sent (a source's
 * drop_types): nudgebridge_events_total{outcome="filtered"}.
 */
void nb_metrics_filtered(struct nb_metrics *, size_t n);

/*
 * A request whose signature verified: receipt time minus its
 * webhook-timestamp, in seconds (negative: the sender's clock is ahead).
 */
void nb_metrics_skew(struct nb_metrics *, double seconds);

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
 * A family rendered by another module (the activity table, the alerts):
 * appends its text to out, 0 or -1.  Runs on the rendering thread.
 */
typedef int (*nb_metrics_collect_fn)(void *arg, struct evbuffer *out);

/* At most this many collectors. */
#define NB_METRICS_COLLECTORS 4

/*
 * Adds a collector that nb_metrics_render() runs after its own families.
 * Call before rendering starts (wiring time); arg must outlive m.  0, or
 * -1 when all NB_METRICS_COLLECTORS are taken.
 */
int nb_metrics_collect(
    struct nb_metrics *m, nb_metrics_collect_fn fn, void *arg);

/*
 * The page's parts (metrics_page.h puts them together): the counters and
 * histograms above, from build_info to the delivery latency; then the
 * collectors' families, in the order they were added.  0 or -1 (m NULL).
 */
int nb_metrics_render_counters(struct nb_metrics *m, struct evbuffer *out);
int nb_metrics_render_collected(struct nb_metrics *m, struct evbuffer *out);

/*
 * Exposition helpers: a family's HELP and TYPE lines; a label value,
 * escaped as the text format requires; a sample name{label="value"} v
 * with an integer or a float (label NULL: a bare name, integers only).
 * 0 or -1.
 */
int nb_metrics_head(
    struct evbuffer *out, const char *name, const char *type, const char *help);
int nb_metrics_label_value(struct evbuffer *out, const char *v);
int nb_metrics_sample_u(struct evbuffer *out, const char *name,
    const char *label, const char *value, uint64_t v);
int nb_metrics_sample_f(struct evbuffer *out, const char *name,
    const char *label, const char *value, double v);

#endif
