/* SPDX-License-Identifier: ISC */
/*
 * board: queue snapshots read on a thread of their own.
 *
 * Reads are numbered.  A request asks for the read after the one that
 * was running when it came (need = started + 1) and raises the "want"
 * flag; the thread starts one read per wake-up however many requests
 * wait, then hands its snapshot to every request whose number it covers
 * by activating that request's event on the request's own base.  The
 * same event carries the NB_BOARD_WAIT_MS timeout, so a stalled store
 * costs a scrape its queue figures, never a thread that answers webhooks.
 * Snapshots are immutable and reference counted, shared by the requests
 * one read serves.  The store connection belongs to the thread; it is
 * opened on first use and reopened after a failed read.
 */
#include <sys/queue.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "nudgebridge/board.h"
#include "nudgebridge/log.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

#define BOARD_LOG_EVERY_MS 60000 /* store failures, at most */

struct snap {
	atomic_int refs;
	struct nb_board_snapshot pub;
	struct nb_queue_gauge *queues;
	struct nb_paused paused[NB_BOARD_MAX_PAUSED];
};

struct nb_board_wait {
	struct nb_board *b;
	struct event *ev;
	nb_board_cb cb;
	void *arg;
	uint64_t need;	   /* the read that serves it */
	struct snap *snap; /* handed over by the thread */
	int listed;
	LIST_ENTRY(nb_board_wait) entry;
};

struct nb_board {
	struct nb_config *cfg;
	nb_board_paused_fn paused; /* under paused_lock */
	void *paused_arg;
	pthread_mutex_t paused_lock;
	pthread_mutex_t lock; /* the rest */
	pthread_cond_t cond;
	pthread_t thread;
	int started, stop, want;
	uint64_t started_gen;
	struct nb_store *store; /* the thread's */
	int64_t last_log_ms;	/* the thread's */
	LIST_HEAD(, nb_board_wait) waiting;
};

static struct snap *
snap_ref(struct snap *s)
{
	if (s != NULL)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

static void
snap_unref(struct snap *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	free(s->queues);
	free(s);
}

size_t
nb_board_paused(struct nb_board *b, struct nb_paused *out, size_t max)
{
	size_t n = 0;

	if (b == NULL)
		return 0;
	/* Locked: nb_board_stop() may take the function away. */
	pthread_mutex_lock(&b->paused_lock);
	if (b->paused != NULL)
		n = b->paused(b->paused_arg, out, max);
	pthread_mutex_unlock(&b->paused_lock);
	return n < max ? n : max;
}

/* The store's figures into s; 0 or -1.  On the board's thread. */
static int
read_queues(struct nb_board *b, struct snap *s, int64_t now)
{
	struct nb_source_stats *st = NULL;
	char err[512], qerr[600];
	size_t n = 0, i;

	if (b->store == NULL &&
	    nb_store_open(&b->store, &b->cfg->store, err, sizeof(err)) == -1) {
		b->store = NULL;
		if (now - b->last_log_ms >= BOARD_LOG_EVERY_MS) {
			log_warn("board: cannot open the store", " error=%s",
			    nb_log_quote(qerr, sizeof(qerr), err));
			b->last_log_ms = now;
		}
		return -1;
	}
	if (nb_store_stats(b->store, now, &st, &n) == -1) {
		/* A broken connection is replaced at the next read. */
		nb_store_close(b->store);
		b->store = NULL;
		return -1;
	}
	if (n > 0 && (s->queues = calloc(n, sizeof(*s->queues))) == NULL) {
		free(st);
		return -1;
	}
	for (i = 0; i < n; i++) {
		memcpy(s->queues[i].source, st[i].source,
		    sizeof(s->queues[i].source));
		s->queues[i].pending = st[i].pending;
		s->queues[i].inflight = st[i].inflight;
		s->queues[i].delivered = st[i].delivered;
		s->queues[i].dead = st[i].dead;
		s->queues[i].quarantined = st[i].quarantined;
		s->queues[i].oldest_pending_ms = st[i].oldest_pending_ms;
	}
	free(st);
	s->pub.queues = s->queues;
	s->pub.nqueues = n;
	return 0;
}

/* A new snapshot: paused sources, and the queues when with_queues. */
static struct snap *
snap_new(struct nb_board *b, int with_queues)
{
	struct snap *s;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	atomic_init(&s->refs, 1);
	s->pub.taken_ms = nb_time_now_ms();
	s->pub.queues_ok =
	    with_queues && read_queues(b, s, s->pub.taken_ms) == 0;
	s->pub.npaused = nb_board_paused(b, s->paused, NB_BOARD_MAX_PAUSED);
	s->pub.paused = s->paused;
	return s;
}

static void
unlink_wait(struct nb_board_wait *w)
{
	LIST_REMOVE(w, entry);
	w->listed = 0;
}

static void *
board_main(void *arg)
{
	struct nb_board *b = arg;
	struct nb_board_wait *w, *next;
	struct snap *s;
	uint64_t gen;

	pthread_mutex_lock(&b->lock);
	for (;;) {
		while (!b->stop && !b->want)
			pthread_cond_wait(&b->cond, &b->lock);
		if (b->stop)
			break;
		b->want = 0;
		gen = ++b->started_gen;
		pthread_mutex_unlock(&b->lock);
		s = snap_new(b, 1);
		pthread_mutex_lock(&b->lock);
		for (w = LIST_FIRST(&b->waiting); w != NULL; w = next) {
			next = LIST_NEXT(w, entry);
			if (w->need > gen)
				continue;
			unlink_wait(w);
			w->snap = snap_ref(s);
			event_active(w->ev, EV_READ, 0);
		}
		snap_unref(s);
	}
	pthread_mutex_unlock(&b->lock);
	nb_store_close(b->store);
	b->store = NULL;
	return NULL;
}

static void
wait_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_board_wait *w = arg;
	struct nb_board *b = w->b;
	struct snap *s;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&b->lock);
	if (w->listed)
		unlink_wait(w); /* timed out */
	s = w->snap;
	w->snap = NULL;
	pthread_mutex_unlock(&b->lock);
	if (s == NULL)
		s = snap_new(b, 0);
	if (s != NULL)
		w->cb(&s->pub, w->arg);
	else
		w->cb(NULL, w->arg);
	snap_unref(s);
	event_free(w->ev);
	free(w);
}

struct nb_board_wait *
nb_board_ask(
    struct nb_board *b, struct event_base *base, nb_board_cb cb, void *arg)
{
	struct timeval tv = {
	    NB_BOARD_WAIT_MS / 1000, (NB_BOARD_WAIT_MS % 1000) * 1000};
	struct nb_board_wait *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	if ((w->ev = event_new(base, -1, 0, wait_cb, w)) == NULL ||
	    event_add(w->ev, &tv) == -1) {
		if (w->ev != NULL)
			event_free(w->ev);
		free(w);
		return NULL;
	}
	w->b = b;
	w->cb = cb;
	w->arg = arg;
	pthread_mutex_lock(&b->lock);
	w->need = b->started_gen + 1;
	w->listed = 1;
	LIST_INSERT_HEAD(&b->waiting, w, entry);
	b->want = 1;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	return w;
}

void
nb_board_cancel(struct nb_board_wait *w)
{
	struct nb_board *b;
	struct snap *s;

	if (w == NULL)
		return;
	b = w->b;
	pthread_mutex_lock(&b->lock);
	if (w->listed)
		unlink_wait(w);
	s = w->snap;
	w->snap = NULL;
	pthread_mutex_unlock(&b->lock);
	snap_unref(s);
	event_free(w->ev);
	free(w);
}

struct nb_board *
nb_board_new(struct nb_config *cfg, nb_board_paused_fn paused, void *paused_arg)
{
	struct nb_board *b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	if (pthread_mutex_init(&b->lock, NULL) != 0) {
		free(b);
		return NULL;
	}
	if (pthread_mutex_init(&b->paused_lock, NULL) != 0) {
		pthread_mutex_destroy(&b->lock);
		free(b);
		return NULL;
	}
	if (pthread_cond_init(&b->cond, NULL) != 0) {
		pthread_mutex_destroy(&b->paused_lock);
		pthread_mutex_destroy(&b->lock);
		free(b);
		return NULL;
	}
	LIST_INIT(&b->waiting);
	b->cfg = nb_config_ref(cfg);
	b->paused = paused;
	b->paused_arg = paused_arg;
	return b;
}

int
nb_board_start(struct nb_board *b)
{
	if (pthread_create(&b->thread, NULL, board_main, b) != 0)
		return -1;
	b->started = 1;
	return 0;
}

void
nb_board_stop(struct nb_board *b)
{
	if (b == NULL || !b->started)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = 1;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
	pthread_join(b->thread, NULL);
	b->started = 0;
	pthread_mutex_lock(&b->paused_lock);
	b->paused = NULL; /* what it read may go away now */
	pthread_mutex_unlock(&b->paused_lock);
}

void
nb_board_free(struct nb_board *b)
{
	if (b == NULL)
		return;
	nb_board_stop(b);
	pthread_cond_destroy(&b->cond);
	pthread_mutex_destroy(&b->paused_lock);
	pthread_mutex_destroy(&b->lock);
	nb_config_unref(b->cfg);
	free(b);
}
