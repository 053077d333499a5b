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

#include "nudgebridge/http.h"

struct nb_admin;

/*
 * Binds cfg->admin_listen when cfg->admin_token is set; returns a non-NULL
 * handle either way (one that serves nothing without a token).  Refuses a
 * non-loopback address without a token.  NULL with err set on failure.
 */
struct nb_admin *nb_admin_new(const struct nb_http_deps *deps,
    struct nb_config *cfg, char *err, size_t errlen);

/* The bound port, or 0 when the admin API is off. */
int nb_admin_port(const struct nb_admin *);

/* Picks up a new token and settings (the listen address stays). */
void nb_admin_reload(struct nb_admin *, struct nb_config *cfg);

/* The daemon is shutting down: /v1/stats reports "draining": true. */
void nb_admin_drain(struct nb_admin *);

/* Closes the listener and frees.  NULL is ok. */
void nb_admin_free(struct nb_admin *);

#endif
