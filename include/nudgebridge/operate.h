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

#include "nudgebridge/store.h"

struct nb_config;
struct nb_source;

/* The operations; each face maps its commands or routes onto them. */
enum nb_operate_op {
	NB_OPERATE_LIST = 0, /* events matching a filter: a page, or all */
	NB_OPERATE_SHOW,     /* one event by key, with its Track message */
	NB_OPERATE_REPLAY,   /* a selection back to pending */
	NB_OPERATE_PURGE,    /* a selection deleted */
	NB_OPERATE_SEARCH,   /* events of any state, newest first */
	NB_OPERATE_EVENT,    /* one event with its attempt history */
	NB_OPERATE_ERASE,    /* every event of one person, audited */
	NB_OPERATE_AUDIT,    /* the erasures, newest first */
	NB_OPERATE_NOPS
};

/*
 * "list", "show", "replay", "purge", "search", "event", "erase", "audit":
 * for messages and logs.
 */
const char *nb_operate_op_str(enum nb_operate_op);

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

/* Most keys a selection ("keys") holds or a dry run lists. */
#define NB_OPERATE_MAX_KEYS 1000

/* The largest "limit"; a page of NB_OPERATE_LIST defaults to 100. */
#define NB_OPERATE_LIMIT_MAX	10000
#define NB_OPERATE_PAGE_DEFAULT 100

/* The largest "limit" of search and audit, and their defaults. */
#define NB_OPERATE_SEARCH_MAX	  1000
#define NB_OPERATE_SEARCH_DEFAULT 50
#define NB_OPERATE_AUDIT_DEFAULT  100

/* Most store pages a search that is not one page looks at. */
#define NB_OPERATE_SEARCH_PAGES 100

/* Room for the strings a query owns (one per string parameter). */
#define NB_OPERATE_QUERY_STRINGS 8

/*
 * A checked request: the store filter plus what the operations read.
 * Everything it points to is owned; clear it with nb_operate_query_clear()
 * (a job takes it over instead).
 */
struct nb_operate_query {
	struct nb_store_filter filter; /* states: the operation's default */
	int states_given;	       /* "state" was given */
	int dry_run;		       /* replay/purge: count, change nothing */
	int return_keys;	       /* a dry run also lists the keys */
	int one_page; /* list one bounded page (set by a face) */
	char **keys;  /* "keys": a selection of nkeys keys */
	size_t nkeys;
	char *strings[NB_OPERATE_QUERY_STRINGS]; /* private */
};

/* Frees what q owns and zeroes it.  Safe on a zeroed struct. */
void nb_operate_query_clear(struct nb_operate_query *q);

/*
 * Fills q (zeroed first) from a JSON object of parameters for op:
 * "source", "type", "reason", "id", "key" (strings), "since", "until" (RFC
 * 3339 or a duration ago such as 90m, 2h, 7d; relative to now_ms),
 * "state" (dead, delivered, pending or all), "limit" (1..10000; search and
 * audit 1..1000), "after" (a cursor: where the next page starts, in the
 * operation's order, into filter.after_seq), "dry_run" (bool), for replay
 * and purge "keys" (an array of 1..NB_OPERATE_MAX_KEYS keys, not with
 * "key") and "return_keys" (bool, with dry_run only), for search and
 * erase "email" and "uid" (non-empty, without control characters; erase
 * takes exactly one of them).  Show takes the filters, event only "key",
 * erase only email, uid and dry_run, audit only limit and after.  The
 * state defaults to dead for list, replay and purge, to all otherwise.
 * null means absent; obj NULL means none.  An unknown key, or one op does
 * not take, is an error: a typo must never widen a purge.  0, or -1 with
 * a message naming the key in err (never a value: q is then clear).
 */
int nb_operate_query_parse(struct nb_operate_query *q, enum nb_operate_op op,
    const json_t *obj, int64_t now_ms, char *err, size_t errlen);

/*
 * Sets parameter name of params to text converted by the grammar (integers
 * for limit and after, true/false/1/0 for booleans, a string otherwise),
 * for faces whose input is text (query strings, argv).  0, or -1 with a
 * message in err (text that is not UTF-8 included).
 */
int nb_operate_param_text(json_t *params, const char *name, const char *text,
    char *err, size_t errlen);

/*
 * The parameters of a URL query string ("source=acme&limit=5", percent
 * escapes decoded; NULL is none), each converted as
 * nb_operate_param_text() does.  A key given twice is an error.  A new
 * object, or NULL with a message in err.
 */
json_t *nb_operate_params_query(const char *query, char *err, size_t errlen);

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
