/* SPDX-License-Identifier: ISC */
/*
 * admin: the operator API on its own listener (loopback by default).
 *
 * Every request needs "Authorization: Bearer <admin.token>", compared in
 * constant time; without a configured token the listener is not started.
 * It is the HTTP face of the operate core (operate.h): what the dlq,
 * events and erase commands offer (list, show, replay, purge, search, one
 * event with its attempts, erase and the audit, with the same filters)
 * plus queue statistics and alerts.  It runs on a thread of its own, with
 * its own event base and store connection, so no operator's request ever
 * delays a webhook; an erase, which may wait for a deliverer, gets a
 * thread and a connection of its own.  The queue figures of /v1/stats
 * come from the board (board.h).
 * Other threads hand it a reload, a drain or a stop under a mutex and wake
 * it with event_active().  Failed authentications are logged and slowed
 * down.
 */
#ifndef NB_ADMIN_H
#define NB_ADMIN_H

#include <stddef.h>

struct nb_board;
struct nb_config;
struct nb_fleet;
struct nb_alerter;
struct nb_metrics;

/* What the admin API needs from the rest of the daemon (all borrowed). */
struct nb_admin_deps {
	struct nb_metrics *metrics;
	/* Queue figures and paused sources for /v1/stats (thread-safe). */
	struct nb_board *board;
	/* The live instances and this one's rate share; may be NULL. */
	struct nb_fleet *fleet;
	/* What fires now, for GET /v1/alerts; may be NULL. */
	struct nb_alerter *alerter;
};

struct nb_admin;

/*
 * Makes the admin's event base and binds cfg->admin_listen on it when
 * cfg->admin_token is set; returns a non-NULL handle either way (one that
 * serves nothing without a token).  Takes a reference on cfg.  The
 * listener has the main listener's edge (httpd.h): admin.max_connections,
 * limits.max_header_bytes, limits.read_timeout_s and
 * limits.request_timeout_s, a 64 KiB body limit, all before
 * authentication.  Nothing is served before nb_admin_start().  The store
 * (cfg->store) is opened by nb_admin_start() or the admin thread when first
 * needed.  NULL with err set on failure.
 */
struct nb_admin *nb_admin_new(const struct nb_admin_deps *deps,
    struct nb_config *cfg, char *err, size_t errlen);

/*
 * Starts the admin thread (after privileges are dropped), having taken the
 * first sample of the per-minute rates on the calling thread.  0 or -1.
 */
int nb_admin_start(struct nb_admin *);

/* The bound port, or 0 when the admin API is off. */
int nb_admin_port(const struct nb_admin *);

/*
 * Picks up a new token, settings and limits (the listen address stays)
 * on the admin thread, soon after.  Takes a reference on cfg.  Any thread.
 */
void nb_admin_reload(struct nb_admin *, struct nb_config *cfg);

/* The daemon is shutting down: /v1/stats reports "draining": true. */
void nb_admin_drain(struct nb_admin *);

/*
 * Stops the admin thread (the step or request it is in finishes first),
 * closes the listener with its connections and frees.  Operations still
 * in progress end there, unanswered; each chunk they did stays done.  An
 * erase under way is waited for (it ends within its wait) and answered.
 * Call before deps->board is freed.  NULL is ok.
 */
void nb_admin_free(struct nb_admin *);

#endif
