/* SPDX-License-Identifier: ISC */
/*
 * admin_events: the admin API's routes of contract section 8.
 *
 * GET /v1/events (a search page), GET /v1/events/{key} (one event with
 * its Track message and attempt history), POST /v1/erase and GET
 * /v1/audit, over events.h.  Reads run on the admin thread's store
 * connection, one bounded page each.  An erase may wait for a deliverer
 * to let go of the events it holds, up to its lease, so it runs on a
 * thread of its own with a store connection of its own and is answered
 * from the admin thread when it is done; one at a time (a second is told
 * to retry).  Called on the admin listener's thread only, after admin.c
 * authenticated the request.
 */
#ifndef NB_ADMIN_EVENTS_H
#define NB_ADMIN_EVENTS_H

struct event_base;
struct evhttp_request;
struct nb_admin_events;
struct nb_config;
struct nb_store;

/* The routes' state on base (the admin thread's).  NULL when out of memory. */
struct nb_admin_events *nb_admin_events_new(struct event_base *base);

/*
 * Waits for an erase under way (it then ends within its wait, and its
 * request is answered 503 unless the base runs again) and frees.  NULL
 * is ok.
 */
void nb_admin_events_free(struct nb_admin_events *);

/*
 * Answers req when path is one of the routes (then 1), under cfg (a
 * reference is taken for an erase) with the admin thread's store
 * connection (borrowed; NULL while it cannot be opened: reads are then
 * answered 503); 0 when the path is not one of them.
 */
int nb_admin_events_route(struct nb_admin_events *, struct nb_config *cfg,
    struct nb_store *store, struct evhttp_request *req, const char *path);

#endif
