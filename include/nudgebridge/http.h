/* SPDX-License-Identifier: ISC */
/*
 * http: the main listener (evhttp): webhooks in, health and metrics out.
 *
 * POST /v1/webhooks/{source} runs the contract's checks in order (method,
 * source, size, content type, signature, payload), hands the request to the
 * committer and answers only when its transaction ended: 200 with the counts
 * after a durable commit, 503 with Retry-After otherwise.  It never touches
 * the disk and never knows the deliverer.  GET /healthz, /readyz and
 * /metrics complete the surface.  Runs on the thread of the base it is
 * given.
 */
#ifndef NB_HTTP_H
#define NB_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "nudgebridge/commit.h"
#include "nudgebridge/config.h"
#include "nudgebridge/deliver.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/store.h"

/* Retry-After sent with 503, seconds. */
#define NB_HTTP_RETRY_AFTER_S 5

/* What the listeners need from the rest of the daemon (all borrowed). */
struct nb_http_deps {
	struct event_base *base;
	struct nb_committer *committer;
	struct nb_store *store; /* main-thread connection: stats */
	struct nb_metrics *metrics;
	/* Copies paused sources, see nb_deliver_paused(); may be NULL. */
	size_t (*paused)(void *arg, struct nb_paused *out, size_t max);
	void *paused_arg;
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
 * 0, on the main base, is not a thread.  Call before nb_committer_free(),
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

/*
 * Sends a JSON answer: status, then body (stolen reference).  Shared with
 * the admin listener.
 */
struct evhttp_request;
void nb_http_reply_json(struct evhttp_request *req, int status, json_t *body);

/* Sends {"error":code,"message":message} with status. */
void nb_http_reply_error(struct evhttp_request *req, int status,
    const char *code, const char *message);

/* Splits "host:port" ("[::1]:8080" for IPv6).  0 or -1. */
int nb_http_split_addr(
    const char *addr, char *host, size_t hostlen, uint16_t *port);

/*
 * Creates an evhttp server on base bound to addr ("host:port", port 0 picks
 * one) that accepts every method (the callers answer 405 themselves),
 * defaults to application/json and reads over-long bodies to their end.
 * *sockp receives the bound socket, *portp the bound port.  NULL with err
 * set on failure.  Shared with the admin listener.
 */
struct evhttp;
struct evhttp_bound_socket;
struct evhttp *nb_http_listen(struct event_base *base, const char *addr,
    struct evhttp_bound_socket **sockp, int *portp, char *err, size_t errlen);

#endif
