/* SPDX-License-Identifier: ISC */
/*
 * httpd: one evhttp listener with everything every listener of ours needs.
 *
 * The webhook listener (http) and the operator API (admin) both serve
 * through this module, so both get the same edge: the connection guard
 * (cap, whole-request deadline, TLS; conn.h), the gate in front of
 * evhttp's parser (head and body limits, a budget of body bytes in flight,
 * JSON answers for everything refused; gate.h), and a back-off when
 * accept() runs out of descriptors.  A listener plugs in its request
 * handler and, optionally, a policy that may refuse a request by its head
 * alone.  It also holds the reply helpers the listeners share.  A listener
 * lives on the thread of the base it is given.
 */
#ifndef NB_HTTPD_H
#define NB_HTTPD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>
#include <jansson.h>

#include "nudgebridge/gate.h"

/* Retry-After sent with every 503, seconds. */
#define NB_HTTPD_RETRY_AFTER_S 5

/* Accept back-off after EMFILE/ENFILE: first and longest pause. */
#define NB_HTTPD_ACCEPT_PAUSE_MIN_MS 10
#define NB_HTTPD_ACCEPT_PAUSE_MAX_MS 1000

/* The "limits" settings (config.c fills them; see docs/security.md). */
struct nb_limits_config {
	size_t max_body_bytes;	       /* default 1048576 */
	int64_t timestamp_tolerance_s; /* default 300 */
	int64_t dedupe_window_s;       /* default 604800 */
	size_t max_header_bytes;       /* default 16384 */
	int read_timeout_s;	       /* per connection, default 30 */
	int drain_s;		       /* shutdown drain deadline, default 10 */
	size_t max_connections;	       /* main listener, default 4096 */
	int request_timeout_s;	       /* one whole request, default 60 */
	/* Body bytes of all requests in flight, default 64 x max_body_bytes */
	size_t max_inflight_body_bytes;
};

/* The limits of one listener. */
struct nb_httpd_limits {
	size_t max_header_bytes;	/* request line and headers: 431 */
	size_t max_body_bytes;		/* 413 body_too_large */
	const char *too_large_message;	/* its message (static) */
	size_t max_connections;		/* 0: no cap */
	int read_timeout_s;		/* idle connection */
	int request_timeout_s;		/* one whole request, 0: none */
	size_t max_inflight_body_bytes; /* 503 past it, 0: no budget */
};

struct event_base;
struct evbuffer;
struct evhttp_request;
struct nb_metrics;
struct nb_tls;

/* What a listener plugs in; every callback runs on the listener's thread. */
struct nb_httpd_ops {
	/* Every request the gate let through; answers it exactly once. */
	void (*request)(struct evhttp_request *req, void *arg);
	/* May refuse a request by its head (see gate.h); NULL: none. */
	int (*head)(
	    void *arg, const struct nb_gate_head *h, struct nb_gate_refusal *r);
	/* Told of every refusal the gate answers; NULL: none. */
	void (*refused)(void *arg, const struct nb_gate_head *h,
	    const struct nb_gate_refusal *r, size_t body);
	void *arg;
	const char *name;	    /* "http", "admin": for logs */
	struct nb_metrics *metrics; /* accept errors; may be NULL */
	/*
	 * Totals shared with the other listeners of one port (worker
	 * threads), which then share max_connections and the body budget;
	 * NULL: this listener's own.
	 */
	atomic_size_t *conns_total;
	atomic_size_t *inflight;
};

struct nb_httpd;

/*
 * A listener on base.  With fd -1 it binds addr ("host:port", port 0 picks
 * a free one); otherwise it serves the listening socket fd (taken over,
 * closed on failure too; addr only names it in errors).  ops is copied.
 * NULL with err set on failure.
 */
struct nb_httpd *nb_httpd_new(struct event_base *base, const char *addr,
    evutil_socket_t fd, const struct nb_httpd_ops *ops,
    const struct nb_httpd_limits *l, char *err, size_t errlen);

/* The port actually bound. */
int nb_httpd_port(const struct nb_httpd *);

/* Limits for connections and requests from now on. */
void nb_httpd_set_limits(struct nb_httpd *, const struct nb_httpd_limits *l);

/* TLS for new connections (see nb_conn_set_tls()); NULL: plain HTTP. */
void nb_httpd_set_tls(struct nb_httpd *, struct nb_tls *tls);

/* 1 when new connections use TLS. */
int nb_httpd_tls(const struct nb_httpd *);

/* Stops accepting; open connections still get their answers.  Idempotent. */
void nb_httpd_stop_accepting(struct nb_httpd *);

/* Closes the listener and every connection, frees.  NULL is ok. */
void nb_httpd_free(struct nb_httpd *);

/*
 * A listening TCP socket on host:port with SO_REUSEPORT, so that several
 * listeners (one per thread) share the port.  -1 with err set on failure;
 * addr only names it in errors.
 */
evutil_socket_t nb_httpd_reuseport_socket(
    const char *addr, const char *host, int port, char *err, size_t errlen);

/* Splits "host:port" ("[::1]:8080" for IPv6).  0 or -1. */
int nb_httpd_split_addr(
    const char *addr, char *host, size_t hostlen, uint16_t *port);

/* The reason phrase of status, or NULL for one we never send. */
const char *nb_httpd_status_phrase(int status);

/*
 * Sends status with body (may be NULL; not taken) and the standard
 * phrase.  A HEAD request gets the headers alone: evhttp would write the
 * body and break the framing of the next answer.  Answers exactly once.
 */
void nb_httpd_send(
    struct evhttp_request *req, int status, struct evbuffer *body);

/*
 * Sends text (len bytes, a new line is added) as application/json with
 * Cache-Control: no-store.  Without text (NULL: it could not be made) or
 * without memory the answer becomes a 503 "unavailable" with Retry-After,
 * so that the sender retries.
 */
void nb_httpd_reply_text(
    struct evhttp_request *req, int status, const char *text, size_t len);

/* Sends body (a stolen reference; NULL becomes a 503) as JSON. */
void nb_httpd_reply_json(struct evhttp_request *req, int status, json_t *body);

/* Sends {"error":code,"message":message} with status. */
void nb_httpd_reply_error(struct evhttp_request *req, int status,
    const char *code, const char *message);

#endif
