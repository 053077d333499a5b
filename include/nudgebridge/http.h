/* SPDX-License-Identifier: ISC */
/*
 * http: the main listener (evhttp): webhooks in, health and metrics out.
 *
 * POST /v1/webhooks/{source} runs the contract's checks in order (method,
 * source, size, content type, signature, payload), hands the request to the
 * committer and answers only when its transaction ended: 200 with the counts
 * after a durable commit, 503 with Retry-After otherwise.  It never touches
 * the disk and never knows the deliverer.  GET /healthz, /readyz and
 * /metrics complete the surface; it listens through httpd.h, which gives
 * it the same edge as the admin API.  Runs on the thread of the base it is
 * given.
 */
#ifndef NB_HTTP_H
#define NB_HTTP_H

#include <stddef.h>

struct event_base;
struct nb_activity;
struct nb_board;
struct nb_commit;
struct nb_config;
struct nb_metrics;

/* What the listener needs from the rest of the daemon (all borrowed). */
struct nb_http_deps {
	struct event_base *base;
	struct nb_commit *committer;
	struct nb_metrics *metrics;
	/* Queue figures and paused sources for /metrics; may be NULL. */
	struct nb_board *board;
	/* Records each verified request's source and key; may be NULL. */
	struct nb_activity *activity;
};

struct nb_http;

/*
 * Binds cfg->listen ("host:port"; port 0 picks a free one) and starts
 * serving on deps->base, plus cfg->http_threads - 1 threads of their own
 * on the same port (SO_REUSEPORT).  Takes a reference on cfg.  NULL with
 * err set on failure.
 */
struct nb_http *nb_http_new(const struct nb_http_deps *deps,
    struct nb_config *cfg, char *err, size_t errlen);

/* The port actually bound. */
int nb_http_port(const struct nb_http *);

/* Serves new requests under cfg (takes a reference). */
void nb_http_reload(struct nb_http *, struct nb_config *cfg);

/*
 * Starts draining: /readyz answers 503 and new webhooks get 503
 * "unavailable"; requests already handed to the committer still get their
 * real answer.
 */
void nb_http_drain(struct nb_http *);

/* Number of webhook requests waiting for their commit. */
size_t nb_http_inflight(const struct nb_http *);

/*
 * Stops the worker threads (http_threads > 1) and waits for them; worker
 * 0, on the main base, is not a thread.  Call before nb_commit_free(),
 * which then runs the completions still waiting for the workers on the
 * calling thread.  Idempotent; NULL is ok.
 */
void nb_http_stop(struct nb_http *);

/*
 * Closes the listener and frees (stopping the workers first).  With
 * worker threads, free deps->committer before (its channels live on the
 * workers' bases).  NULL is ok.
 */
void nb_http_free(struct nb_http *);

#endif
