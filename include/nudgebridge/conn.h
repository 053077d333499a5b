/* SPDX-License-Identifier: ISC */
/*
 * conn: the connections of one listener, counted, gated and given deadlines.
 *
 * evhttp 2.1 bounds idle time (read_timeout_s) but a client that sends one
 * byte now and then resets that timer forever, it has no cap on
 * connections, and it buffers every body whole before anyone looks at it.
 * This module hooks evhttp's bufferevent callback, so it sees every
 * accepted connection, and enforces: at most max_connections at a time
 * (the ones above are closed at once); each request whole (TLS handshake,
 * line, headers, body) within request_timeout_s of the accept or of the
 * previous answer; and the gate (gate.h) in front of evhttp's parser, with
 * a budget of body bytes in flight shared by the listener.  A request
 * being answered has no deadline.  It also creates the TLS bufferevents
 * when TLS is on.  One guard per event base, used on that base's thread.
 */
#ifndef NB_CONN_H
#define NB_CONN_H

#include <stdatomic.h>
#include <stddef.h>

#include "nudgebridge/gate.h"

struct evhttp;
struct evhttp_request;
struct event_base;
struct nb_tls;
struct nb_conn;

/*
 * What the listener decides (see gate.h): head() may refuse a request by
 * its head; refused() is told of every request the gate refuses (h NULL
 * when the head could not be parsed), to count and log it.  Called on the
 * guard's thread.
 */
struct nb_conn_policy {
	int (*head)(
	    void *arg, const struct nb_gate_head *h, struct nb_gate_refusal *r);
	void (*refused)(void *arg, const struct nb_gate_head *h,
	    const struct nb_gate_refusal *r, size_t body);
	void *arg;
};

struct nb_conn_limits {
	size_t max_conns;      /* open at once, 0: no cap */
	int request_timeout_s; /* one whole request, 0: none */
	size_t max_inflight;   /* body bytes in flight, 0: no budget */
	struct nb_gate_limits gate;
};

/*
 * Installs the guard as evh's bufferevent callback; policy is copied.
 * NULL on failure.
 */
struct nb_conn *nb_conn_new(struct event_base *base, struct evhttp *evh,
    const struct nb_conn_policy *policy);

/*
 * Limits for what happens from now on (the gate limits of connections
 * already open change at their next request).
 */
void nb_conn_set_limits(struct nb_conn *, const struct nb_conn_limits *l);

/*
 * Counts this guard's connections in *total and its reserved body bytes in
 * *inflight as well (both must outlive it and start at 0) and applies the
 * limits to those totals: guards of several threads serving one port then
 * share one limit.  Either may be NULL.  Call before the first connection.
 */
void nb_conn_share(
    struct nb_conn *, atomic_size_t *total, atomic_size_t *inflight);

/*
 * Serves new connections with TLS under tls (taken over; the previous
 * context is freed, its connections keep it until they close), or in plain
 * HTTP when tls is NULL.
 */
void nb_conn_set_tls(struct nb_conn *, struct nb_tls *tls);

/* 1 when new connections use TLS. */
int nb_conn_tls(const struct nb_conn *);

/*
 * To be called for every request evhttp hands over, before anything else:
 * the request's connection leaves its deadline until the answer is sent,
 * and the answer's completion releases the request's body budget.
 * Returns 1 when req is the gate's stand-in for a refused request: *r then
 * holds the answer to send, and *close whether the connection ends after
 * it; else 0.
 */
int nb_conn_request(struct nb_conn *, struct evhttp_request *req,
    struct nb_gate_refusal *r, int *close);

/* Connections open now. */
size_t nb_conn_count(const struct nb_conn *);

/*
 * Frees the guard.  Call after evhttp_free() of the server it was
 * installed on (which closes the connections).  NULL is ok.
 */
void nb_conn_free(struct nb_conn *);

#endif
