/* SPDX-License-Identifier: ISC */
/*
 * conn: the connections of the main listener, counted and given deadlines.
 *
 * evhttp 2.1 bounds idle time (limits.read_timeout_s) but a client that
 * sends one byte now and then resets that timer forever, and it has no cap
 * on connections.  This module hooks evhttp's bufferevent callback, so it
 * sees every accepted connection, and enforces two rules: at most
 * limits.max_connections at a time (the ones above are closed at once),
 * and each request must arrive whole (TLS handshake, line, headers, body)
 * within limits.request_timeout_s of the accept or of the previous answer,
 * or the connection is closed.  A request being answered has no deadline.
 * It also creates the TLS bufferevents when TLS is on.  Main thread only.
 */
#ifndef NB_CONN_H
#define NB_CONN_H

#include <stdatomic.h>
#include <stddef.h>

struct evhttp;
struct evhttp_request;
struct event_base;
struct nb_tls;
struct nb_conn;

/* Installs the guard as evh's bufferevent callback.  NULL on failure. */
struct nb_conn *nb_conn_new(struct event_base *base, struct evhttp *evh);

/*
 * Limits for connections accepted from now on: max_conns open at once,
 * request_timeout_s per request (0 disables the deadline).
 */
void nb_conn_set_limits(
    struct nb_conn *, size_t max_conns, int request_timeout_s);

/*
 * Counts this guard's connections in *total as well (which must outlive
 * it and start at 0) and applies max_conns to that total: guards of
 * several threads serving one port then share one limit.  Call before the
 * first connection.
 */
void nb_conn_share_total(struct nb_conn *, atomic_size_t *total);

/*
 * Serves new connections with TLS under tls (taken over; the previous
 * context is freed, its connections keep it until they close), or in plain
 * HTTP when tls is NULL.
 */
void nb_conn_set_tls(struct nb_conn *, struct nb_tls *tls);

/* 1 when new connections use TLS. */
int nb_conn_tls(const struct nb_conn *);

/*
 * To be called by the request handler for every request before anything
 * else: the request's connection leaves its deadline until the answer is
 * sent.
 */
void nb_conn_request(struct nb_conn *, struct evhttp_request *req);

/* Connections open now. */
size_t nb_conn_count(const struct nb_conn *);

/*
 * Frees the guard.  Call after evhttp_free() of the server it was
 * installed on (which closes the connections).  NULL is ok.
 */
void nb_conn_free(struct nb_conn *);

#endif
