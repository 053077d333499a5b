/* SPDX-License-Identifier: ISC */
/*
 * commit: group commit on a writer thread.
 *
 * The HTTP front end never touches the disk.  It hands each verified request
 * to nb_commit_submit(); the writer thread takes every request waiting at
 * that moment, stores them in one transaction (one fsync for all), and the
 * completion callbacks run back on the submitter's event_base thread.  While
 * one transaction commits, new requests queue up for the next one, so the
 * fsync cost is shared under load.  The queue is bounded: a full queue, a
 * failing store or a shutdown answers -1 at once (the caller sends 503).
 */
#ifndef NB_COMMIT_H
#define NB_COMMIT_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "nudgebridge/store.h"

#define NB_COMMIT_MAX_QUEUE 4096 /* requests waiting for the writer */
#define NB_COMMIT_MAX_GROUP 512	 /* requests in one transaction */

struct nb_commit;
struct nb_metrics;

/*
 * Called on the base's thread once req's transaction ended: rc 0 means
 * committed and durable (req's counts are filled), -1 means not stored.
 */
typedef void (*nb_commit_cb)(struct nb_append *req, int rc, void *arg);

/* Called on the writer thread after each commit that stored new events. */
typedef void (*nb_commit_notify_cb)(void *arg);

/*
 * Opens its own store connection from cfg, runs nb_store_recover() on it
 * once (drops leases left by a previous run; a no-op for backends shared by
 * several instances), and starts the writer thread.  Completions are
 * delivered on base (libevent must be set up for threads:
 * evthread_use_pthreads(), before base is created).  m may be NULL.
 * Returns NULL with a message in err on failure.
 */
struct nb_commit *nb_commit_new(struct event_base *base,
    const struct nb_store_config *cfg, struct nb_metrics *m, char *err,
    size_t errlen);

/* Sets the hook run after commits that stored events (wakes delivery). */
void nb_commit_set_notify(
    struct nb_commit *, nb_commit_notify_cb cb, void *arg);

/*
 * Queues req; cb(req, rc, arg) runs exactly once later, on base's thread.
 * req and everything it points to must stay valid until then.  Returns -1
 * without calling cb when the queue is full, the store is failing (see
 * nb_commit_healthy()) or the committer is stopping.
 */
int nb_commit_submit(
    struct nb_commit *, struct nb_append *req, nb_commit_cb cb, void *arg);

struct nb_commit_chan;

/*
 * A further completion channel on base (another thread's event loop): a
 * request submitted with nb_commit_submit_on() on it has its callback
 * run on base's thread.  NULL when out of memory.  The channel lives until
 * nb_commit_free(), which runs whatever completions are still waiting
 * on the calling thread and frees the channel's event: base's loop must
 * have stopped by then and base must still exist.
 */
struct nb_commit_chan *nb_commit_attach(
    struct nb_commit *, struct event_base *base);

/* nb_commit_submit() for the base of ch. */
int nb_commit_submit_on(struct nb_commit_chan *ch, struct nb_append *req,
    nb_commit_cb cb, void *arg);

/*
 * Frees ch before nb_commit_free() (e.g. when its base goes away
 * first), running its waiting completions on the calling thread.  Only
 * when no request submitted on ch is still queued.  NULL is ok.
 */
void nb_commit_detach(struct nb_commit_chan *ch);

/*
 * 1 when the last transaction (or the periodic probe after a failure)
 * committed, 0 while the store is failing.  While unhealthy, submits are
 * refused and the writer probes the store about once a second
 * (nb_store_probe()).  Thread-safe.
 */
int nb_commit_healthy(struct nb_commit *);

/*
 * Transactions the writer has run so far (committed or not): with the
 * number of submitted requests it shows how well commits are grouped.
 * Thread-safe.
 */
uint64_t nb_commit_transactions(struct nb_commit *);

/*
 * Stops taking requests, lets the writer commit those already queued, joins
 * the thread and closes the store.  Callbacks not yet run on base run from
 * inside this call, on the caller's thread, so call it from base's thread
 * (the loop need not be running).  NULL is ok.
 */
void nb_commit_free(struct nb_commit *);

#endif
