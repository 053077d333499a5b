/* SPDX-License-Identifier: ISC */
/*
 * events: finding and forgetting events, for every face.
 *
 * The operations of contract section 8 as JSON in and JSON out, so the
 * admin API (admin_events.h), the command line (`nudgebridge events` and
 * `nudgebridge erase`) and the console all say the same: a search page
 * ({"events": [...], "next": cursor or null}, newest first), one event
 * with its stored text, its Track message and its attempt history, an
 * erasure's answer and the audit.  The filters are the dead-letter
 * filters (operate.h) plus email, uid and an opaque cursor; state defaults to
 * all.  A page looks at a bounded number of rows (NB_STORE_CHUNK_SCAN),
 * whatever the filter; the command line follows the cursor for its
 * operator, the API hands it out.  Addresses are never logged nor kept
 * here.  Any thread, on its own store connection.
 */
#ifndef NB_EVENTS_H
#define NB_EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nudgebridge/operate.h"
#include "nudgebridge/store.h"

struct evkeyvalq;
struct nb_config;

/* Rows of a search page unless limit says otherwise, and the most. */
#define NB_EVENTS_LIMIT_DEFAULT 50
#define NB_EVENTS_LIMIT_MAX	1000

/* A search: the dead-letter filters plus a person and the cursor. */
struct nb_events_query {
	struct nb_operate_query dq; /* dq.filter is the store filter */
	/* private: owned copies dq.filter.email and .uid point to */
	char *email;
	char *uid;
};

/* Frees what q owns.  Safe on a zeroed struct. */
void nb_events_query_clear(struct nb_events_query *q);

/*
 * Fills q from a JSON object: the keys of nb_operate_query_parse() except
 * dry_run, plus "email" and "uid" (non-empty, no control characters) and
 * "after" (a cursor from a page's "next").  state defaults to all, limit
 * to NB_EVENTS_LIMIT_DEFAULT (at most NB_EVENTS_LIMIT_MAX).  0, or -1
 * with a message in err (never the address).
 */
int nb_events_query_from_json(struct nb_events_query *q, const json_t *obj,
    int64_t now_ms, char *err, size_t errlen);

/* The same from URL query parameters (limit as digits). */
int nb_events_query_from_kv(struct nb_events_query *q,
    const struct evkeyvalq *kv, int64_t now_ms, char *err, size_t errlen);

/*
 * A search page, newest first: {"events": [...], "next": "<cursor>" or
 * null}; each event as nb_operate_event_json() shows it.  pages > 1 follows
 * the cursor up to that many store pages while the page has fewer rows
 * than asked for (the command line's way; the API looks at one).  NULL
 * when the store failed or memory ran out.
 */
json_t *nb_events_list(
    struct nb_store *s, const struct nb_events_query *q, size_t pages);

/*
 * One event by key: nb_operate_event_json()'s fields (its "attempts" count
 * becomes "tries"), "event" (the stored event object), "track" (its Track
 * message under cfg's mapping of its source, or null with "track_error") and
 * "attempts" (each {"at", "status" (null when none came), "error",
 * "batch_size", "latency_ms"}, oldest first).  *found is 0 when no row has that
 * key.  NULL on a store failure.
 */
json_t *nb_events_show(struct nb_store *s, const struct nb_config *cfg,
    const char *key, int *found);

/*
 * Validates an erase request's JSON body ({"email": ...} or {"uid": ...},
 * "dry_run") into e (its strings borrowed from obj).  0, or -1 with err.
 */
int nb_events_erase_args(
    struct nb_store_erase *e, const json_t *obj, char *err, size_t errlen);

/*
 * Runs e (see nb_store_erase()), logs it (the digest, never the value) and
 * returns the answer: {"erased", "pending", "delivered", "dead",
 * "dry_run", "kind", "subject", "audit_id", "at"}; NULL when the erase
 * failed (events still held: run it again).
 */
json_t *nb_events_erase(struct nb_store *s, const struct nb_store_erase *e);

/* An audit entry as the API shows it. */
json_t *nb_events_audit_json(const struct nb_store_audit *a);

/*
 * A page of the audit, newest first: {"audit": [...], "next": cursor or
 * null}; after is a cursor from "next" or NULL.  NULL on a store failure;
 * *bad when after or limit is malformed.
 */
json_t *nb_events_audit(
    struct nb_store *s, const char *after, size_t limit, int *bad);

/*
 * The longest an erase waits for events a deliverer holds under cfg: past
 * the longest lease a deliverer takes (store.lease_s, or one request's
 * timeout and its margin).
 */
int64_t nb_events_erase_wait_ms(const struct nb_config *cfg);

/* `nudgebridge events list|show ...`: argv[0] is "events".  Exit status. */
int nb_events_main(int argc, char **argv);

/* `nudgebridge erase ...`: argv[0] is "erase".  Exit status. */
int nb_erase_main(int argc, char **argv);

#endif
