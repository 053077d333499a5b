/* SPDX-License-Identifier: ISC */
/*
 * board: the queue figures operators read, fetched off the request threads.
 *
 * /metrics (and, later, the admin API's /v1/stats) shows per-source queue
 * gauges that only the store knows, and the sources whose delivery is
 * paused.  A store read can be a PostgreSQL round trip, or stall with the
 * database, so it never runs on a thread that answers webhooks: the board
 * has a thread and a store connection of its own.  A caller asks for a
 * snapshot taken after it asked; all the requests that arrive while a read
 * runs are served by the one read that starts after it, so concurrent
 * scrapes cost one read.  The answer comes back on the caller's event base;
 * when the read takes longer than NB_BOARD_WAIT_MS the caller gets a
 * snapshot without queue figures instead.  The board never knows who
 * pauses sources: main wires in a function that lists them.  Thread-safe;
 * libevent must be set up for threads (evthread_use_pthreads()).
 */
#ifndef NB_BOARD_H
#define NB_BOARD_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/config.h"

#define NB_BOARD_WAIT_MS    5000
#define NB_BOARD_MAX_PAUSED 256

/* The text of a pause, for stats and the console. */
#define NB_PAUSED_TEXT_MAX 240

/*
 * One source whose delivery is paused: Segment or the OAuth token endpoint
 * refused its credentials.
 */
struct nb_paused {
	char source[NB_SOURCE_NAME_MAX + 1];
	int status;	  /* Segment's 401/403, the token endpoint's 400/401 */
	int64_t until_ms; /* wall clock */
	/* The OAuth token endpoint's "error" code; "" for Segment's refusal. */
	char oauth_error[NB_OAUTH_ERROR_MAX];
	char text[NB_PAUSED_TEXT_MAX]; /* why, for operators */
};

/* The queue of one source that has rows. */
struct nb_queue_gauge {
	char source[NB_SOURCE_NAME_MAX + 1];
	int64_t pending;   /* in flight included */
	int64_t inflight;  /* pending with a live lease */
	int64_t delivered; /* still retained */
	int64_t dead;	   /* dead letters, quarantined included */
	int64_t quarantined;
	int64_t oldest_pending_ms; /* received_at of the oldest pending, 0 */
};

/* What a caller gets; everything borrowed for the callback's duration. */
struct nb_board_snapshot {
	int64_t taken_ms; /* wall clock of the read */
	int queues_ok;	  /* 0: no queue figures (store failed, too slow) */
	const struct nb_queue_gauge *queues; /* sorted by source */
	size_t nqueues;
	const struct nb_paused *paused;
	size_t npaused;
};

/* Lists paused sources into out (at most max); returns how many there are. */
typedef size_t (*nb_board_paused_fn)(
    void *arg, struct nb_paused *out, size_t max);

/* Gets a snapshot on the asking base's thread. */
typedef void (*nb_board_cb)(const struct nb_board_snapshot *snap, void *arg);

struct nb_board;
struct nb_board_wait;

/*
 * A board reading the store cfg->store names (takes a reference on cfg);
 * paused (may be NULL) lists paused sources from any thread.  The store
 * is opened by the board's thread when first needed.  NULL when out of
 * memory.
 */
struct nb_board *nb_board_new(
    struct nb_config *cfg, nb_board_paused_fn paused, void *paused_arg);

/* Starts the board's thread.  0 or -1. */
int nb_board_start(struct nb_board *);

/*
 * Asks for a snapshot read after now; cb(snap, arg) runs once, on base's
 * thread.  Returns a handle for nb_board_cancel(), or NULL when out of
 * memory (cb is then never called).  Call on base's thread.
 */
struct nb_board_wait *nb_board_ask(
    struct nb_board *, struct event_base *base, nb_board_cb cb, void *arg);

/*
 * Forgets a request whose callback has not run yet: it never will.  Call
 * on the asking base's thread, never from the callback.  NULL is ok.
 */
void nb_board_cancel(struct nb_board_wait *);

/* The paused sources, read now (the function given to nb_board_new()). */
size_t nb_board_paused(struct nb_board *, struct nb_paused *out, size_t max);

/*
 * Stops the thread (a read in progress finishes first); requests still
 * waiting then get no answer but can be cancelled.  Call before what the
 * paused function reads goes away.  Idempotent; NULL is ok.
 */
void nb_board_stop(struct nb_board *);

/*
 * Stops the thread and frees.  Cancel the requests still waiting first.
 * NULL is ok.
 */
void nb_board_free(struct nb_board *);

#endif
