/* SPDX-License-Identifier: ISC */
/*
 * alerter: the alert thread.  Evaluates the conditions, keeps their state
 * in the store, sends the notifications.
 *
 * Every alerts.interval_ms, on a thread with its own event base and
 * store connection, it writes the activity figures that moved and this
 * instance's paused sources to the store, takes (or keeps) the evaluator
 * lease, reads back what every instance wrote, and, when it holds the
 * lease, runs alert.h's state machine over the store's totals and writes
 * the states and the notifications due in one transaction.  Any instance
 * then claims due notifications and POSTs them (alert_send.h) with
 * libcurl multi on the same thread, so a slow or hung receiver never
 * touches the threads that answer webhooks or deliver.  store_unavailable
 * is the exception: with the store down nothing can be shared, so each
 * instance watches its own committer and tells about itself from memory.
 * What fires now is kept in memory for GET /v1/alerts and /metrics, which
 * read it from their own threads.  main wires in the deliverer's pauses
 * and the committer's health as functions, so neither knows this module.
 */
#ifndef NB_ALERTER_H
#define NB_ALERTER_H

#include <stddef.h>

#include <jansson.h>

#include "nudgebridge/activity.h"
#include "nudgebridge/board.h" /* nb_board_paused_fn */
#include "nudgebridge/config.h"

struct evbuffer;
struct nb_alerter;

struct nb_alerter_deps {
	struct nb_activity *activity; /* recorded by the webhook threads */
	nb_board_paused_fn paused;    /* this instance's paused sources */
	void *paused_arg;
	int (*healthy)(void *arg); /* 1 while the store commits */
	void *healthy_arg;
};

/*
 * An alerter for cfg (takes a reference).  Opens nothing yet: the thread
 * opens its store connection when it starts.  NULL with a message in err.
 */
struct nb_alerter *nb_alerter_new(const struct nb_alerter_deps *deps,
    struct nb_config *cfg, char *err, size_t errlen);

/* Starts the thread.  0 or -1. */
int nb_alerter_start(struct nb_alerter *);

/* Switches to cfg (takes a reference) at the next evaluation.  Any thread. */
void nb_alerter_reload(struct nb_alerter *, struct nb_config *cfg);

/*
 * What fires now: {"alerts": [{"alert", "status", "source", "summary",
 * "started_at", "details"}], "evaluated_at"}; a new reference, or NULL when
 * out of memory.  Any thread.
 */
json_t *nb_alerter_firing(struct nb_alerter *);

/*
 * A metrics collector (metrics.h): nudgebridge_alert_firing{alert,source}
 * and the notification counters.  arg is the alerter.  Any thread.
 */
int nb_alerter_render(void *arg, struct evbuffer *out);

/*
 * Stops the thread: notifications in flight are abandoned (their claims
 * run out and another attempt sends them again).  Call before what the
 * deps read goes away.  Idempotent; NULL is ok.
 */
void nb_alerter_stop(struct nb_alerter *);

/* Stops and frees.  NULL is ok. */
void nb_alerter_free(struct nb_alerter *);

#endif
