/* SPDX-License-Identifier: ISC */
/*
 * operate: what an operator does with stored events, whoever asks.
 *
 * The admin API (admin.c) and the command line (dlq.c, events.c) are
 * faces: each turns its input into one JSON object of parameters, which
 * nb_operate_query_parse() checks against one grammar (operate_query.c);
 * an operation runs as a job; its answer is one JSON value the face sends
 * or prints.  So every face takes the same keys, refuses the same
 * mistakes and says the same things.  A job works in bounded steps (none
 * looks at more than NB_STORE_CHUNK_SCAN stored rows), so a face on an
 * event loop answers others in between; nb_operate_run() does every step
 * for a face that may block.  One operation, the erase, may wait inside
 * its step (nb_operate_blocks()).  A new operation is an enum value, a row
 * in operate.c's table and its step function; a new parameter is a row in
 * the grammar.  A job runs on one thread at a time, on the store
 * connection it was given.
 */
#ifndef NB_OPERATE_H
#define NB_OPERATE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "nudgebridge/operate_query.h"
#include "nudgebridge/store.h"

struct nb_config;
struct nb_source;

/*
 * 1 when a step of op may block for long (an erase waits for the events a
 * deliverer holds, up to a lease; see nb_store_erase()), else 0.  A face
 * on an event loop runs such a job on a thread of its own, with a store
 * connection of its own.
 */
int nb_operate_blocks(enum nb_operate_op);

/* How an operation ended; each face maps it onto its own status. */
enum nb_operate_status {
	NB_OPERATE_OK = 0,
	NB_OPERATE_INVALID,	/* the request is wrong: 400, exit 2 */
	NB_OPERATE_NOT_FOUND,	/* no event with that key: 404, exit 1 */
	NB_OPERATE_UNAVAILABLE, /* the store failed, no memory: 503, exit 1 */
};

/* "ok", "invalid", "not_found", "unavailable": for logs. */
const char *nb_operate_status_str(enum nb_operate_status);

/*
 * One stored event as the faces show it: key, id, source, type, reason,
 * error, state, attempts, received_at (RFC 3339), updated_at; with detail
 * also payload (the stored event).  New reference or NULL.
 */
json_t *nb_operate_event_json(const struct nb_stored_event *ev, int detail);

/*
 * The Track message stored event ev of source src becomes, its messageId
 * by the row's rule and the store's install id install_id (segment.h):
 * what every face shows.  New reference, or NULL (then *why names the
 * broken rule, or is NULL when ev has no payload).
 */
json_t *nb_operate_track(const struct nb_source *src, const char *install_id,
    const struct nb_stored_event *ev, const char **why);

/* What a job works with (borrowed; each job takes a reference on cfg). */
struct nb_operate_env {
	struct nb_store *store; /* the calling thread's connection */
	struct nb_config *cfg;	/* mappings for show, leases for erase */
	const char *face;	/* "cli", "admin": logs, the erase's audit */
};

struct nb_operate_job;

/*
 * Starts op on q's selection: checks what op needs (show a key, ...) and
 * touches no store.  q moves into the job and is cleared whatever the
 * outcome.  NB_OPERATE_OK with *out set, else a status with err set.
 *
 * The answers, once done:
 *   list    {"events": [event...], "next_after": cursor or null}: with
 *           q->one_page one page of at most limit (default 100) events
 *           among at most NB_STORE_CHUNK_SCAN rows looked at, else every
 *           match up to limit, oldest first;
 *   show    the event with detail, "track" (the Track message under the
 *           current mapping, or null) and, when null, "track_error" (why:
 *           "source not configured", the broken rule, "not mappable");
 *   replay  {"replayed": n, "requarantined": m, "dry_run": b}; replayed
 *           counts the re-validated quarantined events too;
 *   purge   {"purged": n, "dry_run": b};
 *   with return_keys also "keys" (the selection's first
 *   NB_OPERATE_MAX_KEYS keys, oldest first) and "keys_truncated";
 *   search  {"events": [event...], "next": "<cursor>" or null}, newest
 *           first, at most limit (default 50) events: with q->one_page
 *           among one page of NB_STORE_CHUNK_SCAN rows looked at, else
 *           among up to NB_OPERATE_SEARCH_PAGES such pages; "next" is a
 *           string so that nobody does arithmetic on it;
 *   event   the event (its "attempts" count becomes "tries"), "event"
 *           (the stored event), "track" (or null with "track_error" as
 *           for show) and "attempts" (each {"at", "status" (null when
 *           none came), "error", "batch_size", "latency_ms"}, oldest
 *           first);
 *   erase   {"at", "actor", "kind", "subject", "dry_run", "complete",
 *           "erased", "pending", "delivered", "dead", "audit_id"}: the
 *           audit entry of the erase (see nb_store_erase()), which waits
 *           for held events up to the longest lease a deliverer takes
 *           under env->cfg; logged with the digest, never the value;
 *   audit   {"audit": [entry...], "next": "<cursor>" or null}, newest
 *           first, at most limit (default 100) entries, each as erase
 *           answers but with "id" first instead of "audit_id".
 * Replay and purge walk a filter in windows of NB_STORE_CHUNK_SCAN keys up
 * to the newest row stored when they began, so rows stored later are not
 * touched; a selection of keys goes a few dozen keys a step.
 */
enum nb_operate_status nb_operate_begin(struct nb_operate_job **out,
    const struct nb_operate_env *env, enum nb_operate_op op,
    struct nb_operate_query *q, char *err, size_t errlen);

/*
 * Works one bounded step; *done becomes 1 after the last.  On a status
 * other than NB_OPERATE_OK (err says what failed) the job is over: steps
 * already done stay done (each chunk of a replay or purge is a
 * transaction of its own) and the same request again goes on.
 */
enum nb_operate_status nb_operate_step(
    struct nb_operate_job *, int *done, char *err, size_t errlen);

/* The answer of a finished job: a new reference, or NULL before. */
json_t *nb_operate_answer(const struct nb_operate_job *);

/* Frees a job, finished or not.  NULL is ok. */
void nb_operate_free(struct nb_operate_job *);

/*
 * nb_operate_begin() and every step: *answer is a new reference on
 * NB_OPERATE_OK.  For faces that may block (the command line).
 */
enum nb_operate_status nb_operate_run(const struct nb_operate_env *env,
    enum nb_operate_op op, struct nb_operate_query *q, json_t **answer,
    char *err, size_t errlen);

#endif
