/* SPDX-License-Identifier: ISC */
/*
 * admin: the operator API on its own listener (loopback by default).
 *
 * Every request needs "Authorization: Bearer <admin.token>", compared in
 * constant time; without a configured token the listener is not started.
 * It offers what the dlq command line offers (list, show, replay, purge with
 * the same filters) plus queue statistics.  Store calls run on the base's
 * thread through the main-thread connection; they are short, indexed
 * queries.  Failed authentications are logged and slowed down.
 */
#ifndef NB_ADMIN_H
#define NB_ADMIN_H

#include <stddef.h>

struct event_base;
struct nb_config;
struct nb_alerter;
struct nb_metrics;
struct nb_paused;
struct nb_store;

/* What the admin API needs from the rest of the daemon (all borrowed). */
struct nb_admin_deps {
	struct event_base *base;
	struct nb_store *store; /* main-thread connection */
	struct nb_metrics *metrics;
	/* Copies paused sources (see board.h); may be NULL. */
	size_t (*paused)(void *arg, struct nb_paused *out, size_t max);
	void *paused_arg;
	/* What fires now, for GET /v1/alerts; may be NULL. */
	struct nb_alerter *alerter;
};

struct nb_admin;

/*
 * Binds cfg->admin_listen when cfg->admin_token is set; returns a non-NULL
 * handle either way (one that serves nothing without a token).  Refuses a
 * non-loopback address without a token.  The listener has the main
 * listener's edge (httpd.h): admin.max_connections, limits.max_header_bytes,
 * limits.read_timeout_s and limits.request_timeout_s, a 64 KiB body limit,
 * all before authentication.  NULL with err set on failure.
 */
struct nb_admin *nb_admin_new(const struct nb_admin_deps *deps,
    struct nb_config *cfg, char *err, size_t errlen);

/* The bound port, or 0 when the admin API is off. */
int nb_admin_port(const struct nb_admin *);

/* Picks up a new token, settings and limits (the listen address stays). */
void nb_admin_reload(struct nb_admin *, struct nb_config *cfg);

/* The daemon is shutting down: /v1/stats reports "draining": true. */
void nb_admin_drain(struct nb_admin *);

/* Closes the listener and frees.  NULL is ok. */
void nb_admin_free(struct nb_admin *);

#endif
