/* SPDX-License-Identifier: ISC */
/*
 * commit: group commit on a writer thread.
 *
 * Submitters (the HTTP front end, on base's thread) put requests on a
 * bounded queue; the writer thread takes up to NB_COMMIT_MAX_GROUP of them
 * at a time and stores them with one nb_store_append(), so one fsync covers
 * every request that arrived while the previous transaction committed.
 * Finished requests move to the done list of the channel they were
 * submitted on and one event_active() wakes that channel's base, whose
 * callback runs the completions: callbacks never run on the writer.  The
 * committer's own channel is on base; nb_commit_attach() adds one per
 * further base (one per HTTP worker thread).  Channels live until
 * nb_commit_free() (or an early nb_commit_detach()).
 *
 * On a store that wants it (SQLite), a checkpointer thread with a
 * connection of its own copies the write-ahead log into the database every
 * NB_COMMIT_CHECKPOINT_MS (ten times a second, like Redis's serverCron),
 * whoever wrote it: the copy and its fsync then never run inside the
 * writer's commits, where they held up every request of a group.
 *
 * The writer owns its store connection; nothing else touches it.  A failed
 * commit marks the committer unhealthy: submits are refused at once (the
 * caller answers 503) and the writer probes the store every
 * NB_COMMIT_PROBE_MS until a probe commits.  One mutex guards the queue,
 * the done lists, the channel list and the flags; the store is used
 * without it.  The writer activates wake events with the mutex held (a
 * channel cannot be freed under it); libevent never takes the mutex, so
 * the order mutex -> base lock is the only one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "nudgebridge/commit.h"
#include "nudgebridge/log.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/timeutil.h"

#define NB_COMMIT_PROBE_MS	1000
#define NB_COMMIT_CHECKPOINT_MS 100

/*
 * The person index (nb_store_fold()) is written a chunk of rows at a
 * time, each a short transaction of its own between groups: as soon as the
 * queue is empty and NB_COMMIT_FOLD_CHUNK rows are due, the rest after
 * NB_COMMIT_FOLD_IDLE_MS of idleness, and, in chunks of
 * NB_COMMIT_FOLD_LOAD_CHUNK, whatever it takes after a group to keep fewer
 * than NB_COMMIT_FOLD_BOUND rows unfolded, so that the rows a search reads
 * without the index stay few even under unbroken load.  A chunk writes
 * each page of the index it touches once (a larger one costs less per row
 * and holds up the next group longer).  After a failed fold the next idle
 * one waits NB_COMMIT_PROBE_MS.
 */
#define NB_COMMIT_FOLD_CHUNK	  1024
#define NB_COMMIT_FOLD_LOAD_CHUNK 4096
#define NB_COMMIT_FOLD_BOUND	  16384
#define NB_COMMIT_FOLD_IDLE_MS	  50

struct item {
	struct nb_append *req;
	nb_commit_cb cb;
	void *arg;
	int rc;
	struct nb_commit_chan *chan;
	struct item *next;
};

/* A singly linked FIFO. */
struct itemq {
	struct item *head;
	struct item **tail;
	size_t len;
};

/* Where completions of one base go. */
struct nb_commit_chan {
	struct nb_commit *c;
	struct event *wake; /* activated by the writer, runs done_cb */
	struct itemq done;  /* under c->lock */
	struct nb_commit_chan *next;
};

struct nb_commit {
	struct nb_commit_chan *chans; /* the first is base's, under lock */
	struct nb_store *store;
	struct nb_metrics *metrics;

	pthread_t thread;
	int started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* queue not empty, or stopping */

	/* The checkpointer, when the store wants one; its store is its own. */
	struct nb_store *ckpt_store;
	pthread_t ckpt_thread;
	int ckpt_started;
	pthread_cond_t ckpt_cond; /* stopping */

	/* Under lock. */
	struct itemq queue;
	int stopping;
	int healthy;
	uint64_t transactions;
	nb_commit_notify_cb notify;
	void *notify_arg;
};

static void
itemq_init(struct itemq *q)
{
	q->head = NULL;
	q->tail = &q->head;
	q->len = 0;
}

static void
itemq_push(struct itemq *q, struct item *it)
{
	it->next = NULL;
	*q->tail = it;
	q->tail = &it->next;
	q->len++;
}

static struct item *
itemq_pop(struct itemq *q)
{
	struct item *it = q->head;

	if (it == NULL)
		return NULL;
	if ((q->head = it->next) == NULL)
		q->tail = &q->head;
	q->len--;
	it->next = NULL;
	return it;
}

/* Moves every item of from to the end of to. */
static void
itemq_splice(struct itemq *to, struct itemq *from)
{
	if (from->head == NULL)
		return;
	*to->tail = from->head;
	to->tail = from->tail;
	to->len += from->len;
	itemq_init(from);
}

/* Runs and frees the completions of a detached list. */
static void
run_callbacks(struct itemq *list)
{
	struct item *it;

	while ((it = itemq_pop(list)) != NULL) {
		it->cb(it->req, it->rc, it->arg);
		free(it);
	}
}

static void
done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_commit_chan *ch = arg;
	struct nb_commit *c = ch->c;
	struct itemq list;

	(void)fd;
	(void)what;
	itemq_init(&list);
	pthread_mutex_lock(&c->lock);
	itemq_splice(&list, &ch->done);
	pthread_mutex_unlock(&c->lock);
	run_callbacks(&list);
}

static struct nb_commit_chan *
chan_new(struct nb_commit *c, struct event_base *base)
{
	struct nb_commit_chan *ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL)
		return NULL;
	ch->c = c;
	itemq_init(&ch->done);
	if ((ch->wake = event_new(base, -1, 0, done_cb, ch)) == NULL) {
		free(ch);
		return NULL;
	}
	return ch;
}

/* Runs what is left on ch's done list here, then frees ch (unlinked). */
static void
chan_free(struct nb_commit_chan *ch)
{
	struct itemq list;

	if (ch == NULL)
		return;
	event_free(ch->wake);
	itemq_init(&list);
	pthread_mutex_lock(&ch->c->lock);
	itemq_splice(&list, &ch->done);
	pthread_mutex_unlock(&ch->c->lock);
	run_callbacks(&list);
	free(ch);
}

static void
deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* One transaction for the requests of group; results into the done list. */
static void
commit_group(struct nb_commit *c, struct itemq *group)
{
	struct nb_append *reqs[NB_COMMIT_MAX_GROUP];
	nb_commit_notify_cb notify;
	void *notify_arg;
	struct nb_commit_chan *ch;
	struct item *it;
	int64_t t0;
	size_t n = 0, events = 0;
	int rc;

	for (it = group->head; it != NULL; it = it->next)
		reqs[n++] = it->req;
	t0 = nb_time_mono_ms();
	rc = nb_store_append(c->store, reqs, n);
	if (rc == 0) {
		for (it = group->head; it != NULL; it = it->next)
			events +=
			    (size_t)(it->req->accepted + it->req->quarantined);
		if (c->metrics != NULL)
			nb_metrics_commit(c->metrics,
			    (double)(nb_time_mono_ms() - t0) / 1000.0, events);
	}
	for (it = group->head; it != NULL; it = it->next)
		it->rc = rc;

	pthread_mutex_lock(&c->lock);
	c->transactions++;
	if (rc == -1 && c->healthy)
		log_error(
		    "store failing, refusing webhooks", " requests=%zu", n);
	c->healthy = rc == 0;
	while ((it = itemq_pop(group)) != NULL)
		itemq_push(&it->chan->done, it);
	for (ch = c->chans; ch != NULL; ch = ch->next)
		if (ch->done.len > 0)
			event_active(ch->wake, EV_READ, 0);
	notify = c->notify;
	notify_arg = c->notify_arg;
	pthread_mutex_unlock(&c->lock);

	if (rc == 0 && events > 0 && notify != NULL)
		notify(notify_arg);
}

static void *
writer_main(void *arg)
{
	struct nb_commit *c = arg;
	struct itemq group;
	struct timespec ts;
	struct item *it;
	size_t unfolded;
	int ok, fold_failed = 0;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->queue.len == 0 && !c->stopping) {
			/*
			 * The count may read the store (after a rollback): not
			 * under the lock the HTTP threads take to queue.
			 */
			pthread_mutex_unlock(&c->lock);
			unfolded = c->healthy ? nb_store_unfolded(c->store) : 0;
			pthread_mutex_lock(&c->lock);
			if (c->queue.len > 0 || c->stopping)
				break;
			if (c->healthy && unfolded == 0) {
				pthread_cond_wait(&c->cond, &c->lock);
				continue;
			}
			/* A chunk due folds at once, the rest once idle. */
			deadline_in(&ts,
			    unfolded > 0 && !fold_failed
				? NB_COMMIT_FOLD_IDLE_MS
				: NB_COMMIT_PROBE_MS);
			if ((unfolded < NB_COMMIT_FOLD_CHUNK || fold_failed) &&
			    pthread_cond_timedwait(&c->cond, &c->lock, &ts) !=
				ETIMEDOUT)
				continue;
			pthread_mutex_unlock(&c->lock);
			if (unfolded > 0) {
				fold_failed = nb_store_fold(c->store,
						  NB_COMMIT_FOLD_CHUNK) == -1;
				pthread_mutex_lock(&c->lock);
				continue;
			}
			ok = nb_store_probe(c->store) == 0;
			pthread_mutex_lock(&c->lock);
			if (ok && !c->healthy) {
				log_info("store commits again", NULL);
				c->healthy = 1;
			}
		}
		if (c->queue.len == 0 && c->stopping)
			break;
		itemq_init(&group);
		while (group.len < NB_COMMIT_MAX_GROUP &&
		    (it = itemq_pop(&c->queue)) != NULL)
			itemq_push(&group, it);
		pthread_mutex_unlock(&c->lock);
		commit_group(c, &group);
		/* Under load too: one try per group even after a failure. */
		while (c->healthy &&
		    nb_store_unfolded(c->store) >= NB_COMMIT_FOLD_BOUND)
			if ((fold_failed =
				    nb_store_fold(c->store,
					NB_COMMIT_FOLD_LOAD_CHUNK) == -1))
				break;
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void *
checkpointer_main(void *arg)
{
	struct nb_commit *c = arg;
	struct timespec ts;

	pthread_mutex_lock(&c->lock);
	while (!c->stopping) {
		deadline_in(&ts, NB_COMMIT_CHECKPOINT_MS);
		if (pthread_cond_timedwait(&c->ckpt_cond, &c->lock, &ts) !=
		    ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&c->lock);
		(void)nb_store_checkpoint(c->ckpt_store);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* A monotonic clock, so timed waits survive wall-clock steps. */
static int
cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t ca;
	int ok;

	if (pthread_condattr_init(&ca) != 0)
		return -1;
	ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(cond, &ca) == 0;
	pthread_condattr_destroy(&ca);
	return ok ? 0 : -1;
}

/* Stops and joins the threads that were started; the writer drains first. */
static void
stop_threads(struct nb_commit *c)
{
	pthread_mutex_lock(&c->lock);
	c->stopping = 1;
	pthread_cond_signal(&c->cond);
	pthread_cond_signal(&c->ckpt_cond);
	pthread_mutex_unlock(&c->lock);
	if (c->started)
		pthread_join(c->thread, NULL);
	if (c->ckpt_started)
		pthread_join(c->ckpt_thread, NULL);
	c->started = c->ckpt_started = 0;
}

struct nb_commit *
nb_commit_new(struct event_base *base, const struct nb_store_config *cfg,
    struct nb_metrics *m, char *err, size_t errlen)
{
	struct nb_commit *c = NULL, *ret = NULL;
	int locks = 0;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		snprintf(err, errlen, "committer: out of memory");
		goto out;
	}
	c->metrics = m;
	c->healthy = 1;
	itemq_init(&c->queue);
	if (pthread_mutex_init(&c->lock, NULL) != 0) {
		snprintf(err, errlen, "committer: cannot create a mutex");
		goto out;
	}
	locks = 1;
	if (cond_init(&c->cond) == -1) {
		snprintf(err, errlen, "committer: cannot create a condvar");
		goto out;
	}
	locks = 2;
	if (cond_init(&c->ckpt_cond) == -1) {
		snprintf(err, errlen, "committer: cannot create a condvar");
		goto out;
	}
	locks = 3;
	if ((c->chans = chan_new(c, base)) == NULL) {
		snprintf(err, errlen, "committer: cannot create an event");
		goto out;
	}
	if (nb_store_open(&c->store, cfg, err, errlen) == -1)
		goto out;
	if (nb_store_recover(c->store) == -1) {
		snprintf(err, errlen, "store: recovery failed");
		goto out;
	}
	if (nb_store_wants_checkpoints(c->store) &&
	    nb_store_open(&c->ckpt_store, cfg, err, errlen) == -1)
		goto out;
	if (pthread_create(&c->thread, NULL, writer_main, c) != 0) {
		snprintf(err, errlen, "committer: cannot start the writer");
		goto out;
	}
	c->started = 1;
	if (c->ckpt_store != NULL) {
		if (pthread_create(
			&c->ckpt_thread, NULL, checkpointer_main, c) != 0) {
			snprintf(err, errlen,
			    "committer: cannot start the checkpointer");
			goto out;
		}
		c->ckpt_started = 1;
	}
	ret = c;
	c = NULL;
out:
	if (c != NULL) {
		if (locks >= 3)
			stop_threads(c);
		nb_store_close(c->ckpt_store);
		nb_store_close(c->store);
		chan_free(c->chans);
		if (locks >= 3)
			pthread_cond_destroy(&c->ckpt_cond);
		if (locks >= 2)
			pthread_cond_destroy(&c->cond);
		if (locks >= 1)
			pthread_mutex_destroy(&c->lock);
		free(c);
	}
	return ret;
}

void
nb_commit_set_notify(struct nb_commit *c, nb_commit_notify_cb cb, void *arg)
{
	pthread_mutex_lock(&c->lock);
	c->notify = cb;
	c->notify_arg = arg;
	pthread_mutex_unlock(&c->lock);
}

struct nb_commit_chan *
nb_commit_attach(struct nb_commit *c, struct event_base *base)
{
	struct nb_commit_chan *ch;

	if ((ch = chan_new(c, base)) == NULL)
		return NULL;
	pthread_mutex_lock(&c->lock);
	/* After the committer's own channel, which stays first. */
	ch->next = c->chans->next;
	c->chans->next = ch;
	pthread_mutex_unlock(&c->lock);
	return ch;
}

void
nb_commit_detach(struct nb_commit_chan *ch)
{
	struct nb_commit_chan **pp;

	if (ch == NULL)
		return;
	pthread_mutex_lock(&ch->c->lock);
	for (pp = &ch->c->chans; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ch) {
			*pp = ch->next;
			break;
		}
	pthread_mutex_unlock(&ch->c->lock);
	chan_free(ch);
}

int
nb_commit_submit(
    struct nb_commit *c, struct nb_append *req, nb_commit_cb cb, void *arg)
{
	return nb_commit_submit_on(c->chans, req, cb, arg);
}

int
nb_commit_submit_on(struct nb_commit_chan *ch, struct nb_append *req,
    nb_commit_cb cb, void *arg)
{
	struct nb_commit *c = ch->c;
	struct item *it;
	int rc = -1;

	if ((it = calloc(1, sizeof(*it))) == NULL) {
		log_error("out of memory", NULL);
		return -1;
	}
	it->req = req;
	it->cb = cb;
	it->arg = arg;
	it->chan = ch;
	pthread_mutex_lock(&c->lock);
	if (c->stopping || !c->healthy || c->queue.len >= NB_COMMIT_MAX_QUEUE)
		goto out;
	itemq_push(&c->queue, it);
	it = NULL;
	pthread_cond_signal(&c->cond);
	rc = 0;
out:
	pthread_mutex_unlock(&c->lock);
	free(it);
	return rc;
}

int
nb_commit_healthy(struct nb_commit *c)
{
	int h;

	pthread_mutex_lock(&c->lock);
	h = c->healthy;
	pthread_mutex_unlock(&c->lock);
	return h;
}

uint64_t
nb_commit_transactions(struct nb_commit *c)
{
	uint64_t n;

	pthread_mutex_lock(&c->lock);
	n = c->transactions;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void
nb_commit_free(struct nb_commit *c)
{
	struct nb_commit_chan *ch;

	if (c == NULL)
		return;
	stop_threads(c);

	/*
	 * The writer is gone: nobody activates wake events any more.  What
	 * is left runs here, on the caller's thread (the owners of attached
	 * bases have stopped their loops, see nb_commit_attach()).
	 */
	while ((ch = c->chans) != NULL) {
		c->chans = ch->next;
		chan_free(ch);
	}

	nb_store_close(c->ckpt_store);
	nb_store_close(c->store);
	pthread_cond_destroy(&c->ckpt_cond);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
