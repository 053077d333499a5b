/* SPDX-License-Identifier: ISC */
/*
 * store_rows: what every store backend reads and writes the same way.
 *
 * Dead-letter keys, the states a filter selects, the growing array of
 * rows read back, and the tally: what one transaction changed, per source,
 * for the counters the backend writes in that same transaction.  It sits below
 * both the dispatcher (store.c) and the backends (store_sqlite*.c,
 * store_pg*.c), so a backend never calls up into the dispatcher: the arrows run
 * store.c -> backend -> store_rows.c.  No SQL, no I/O; any thread, on its own
 * data.  Private to the store modules.
 */
#ifndef NB_STORE_ROWS_H
#define NB_STORE_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "nudgebridge/store_types.h"

/*
 * Dead-letter keys: the decimal seq.  format writes it into key
 * (NB_STORE_KEY_MAX bytes).  parse returns 0 and the seq for a key of 1..19
 * ASCII digits naming a positive seq, else -1 (such a key matches no row).
 */
void nb_store_key_format(int64_t seq, char key[NB_STORE_KEY_MAX]);
int nb_store_key_parse(const char *key, int64_t *seq);

/*
 * r's dedupe window as a length (received_ms - dedupe_after_ms), the form
 * the multi-row dedupe statements take it in.  -1 on overflow.
 */
int nb_store_window_len(const struct nb_append *r, int64_t *len);

/*
 * A new install id (NB_SEGMENT_INSTALL_ID_LEN lower-case hex digits of
 * random bytes, NUL-terminated): what a backend stores when its store has
 * none yet.
 */
void nb_store_install_new(char out[NB_SEGMENT_INSTALL_ID_LEN + 1]);

/* The states a filter selects: its mask, or dead letters when 0. */
unsigned nb_store_filter_states(const struct nb_store_filter *f);

/* A growing array of rows read back. */
struct nb_store_rows {
	struct nb_stored_event *v;
	size_t n;
	size_t cap;
};

/* Frees the strings of one row (not the row itself). */
void nb_store_row_free(struct nb_stored_event *);

/* Frees the rows and their strings and empties the array. */
void nb_store_rows_clear(struct nb_store_rows *);

/*
 * Appends one zeroed row and returns it, or NULL when out of memory
 * (logged).  The row is counted at once, so a row read only in part is
 * still freed by nb_store_rows_clear().
 */
struct nb_stored_event *nb_store_rows_next(struct nb_store_rows *);

/*
 * Hands the rows over as a plain array (*out, *n; NULL and 0 when empty)
 * and empties v.
 */
void nb_store_rows_take(
    struct nb_store_rows *v, struct nb_stored_event **out, size_t *n);

/* A growing array of n elements (of one size), room for cap: a query's rows. */
struct nb_store_array {
	void *v;
	size_t n;
	size_t cap;
};

/*
 * Appends one zeroed element of size and returns it, or NULL when out of
 * memory (not logged; the array is as it was).
 */
void *nb_store_array_push(struct nb_store_array *, size_t size);

/* A growing array of seqs. */
struct nb_store_seqs {
	int64_t *v;
	size_t n;
	size_t cap;
};

/* Appends seq.  0 or -1 (logged; out of memory). */
int nb_store_seqs_push(struct nb_store_seqs *, int64_t seq);

/* Frees the array and empties it. */
void nb_store_seqs_clear(struct nb_store_seqs *);

/*
 * Where a row counts: the counters pending, delivered, dead (quarantined
 * included) and quarantined.  NB_BUCKET_NONE is "not stored" (before an
 * append, after a purge or prune).
 */
enum nb_store_bucket {
	NB_BUCKET_NONE = -1,
	NB_BUCKET_PENDING,
	NB_BUCKET_DELIVERED,
	NB_BUCKET_DEAD,
	NB_BUCKET_QUARANTINED,
};

/* The bucket of a row in state with reason (NULL unless dead). */
enum nb_store_bucket nb_store_bucket_of(
    enum nb_event_state state, const char *reason);

/* What one transaction changes in one source's counters. */
struct nb_store_count {
	char source[NB_SOURCE_NAME_MAX + 1];
	int64_t pending, delivered, dead, quarantined; /* gauges: deltas */
	int64_t received, delivered_total, dead_total; /* totals: additions */
};

/* An error to record (see struct nb_store_error). */
struct nb_store_errnote {
	char source[NB_SOURCE_NAME_MAX + 1];
	char *error;
	char *reason;
	enum nb_event_state state;
	int64_t count;
	int64_t at_ms;
};

/*
 * What a transaction changed, filled by the primitives that change rows
 * and by store.c, written by the backend's commit.  Reset (its memory
 * kept) at the start of every transaction.
 */
struct nb_store_tally {
	struct nb_store_count *c;
	size_t nc, capc;
	struct nb_store_errnote *e;
	size_t ne, cape;
};

/*
 * n rows of source moved from one bucket to another: the gauges follow,
 * and the totals grow (received when a row is stored, delivered_total when
 * one becomes delivered, dead_total when one becomes dead).  0 or -1
 * (logged; out of memory).
 */
int nb_store_tally_move(struct nb_store_tally *, const char *source,
    enum nb_store_bucket from, enum nb_store_bucket to, int64_t n);

/*
 * The moves of an append from its request's counts: accepted rows stored
 * pending, quarantined rows stored dead.
 */
int nb_store_tally_append(struct nb_store_tally *, const struct nb_append *r);

/*
 * n rows of source failed with error (NULL or "" records nothing), their
 * state and reason now as given, at at_ms.  Notes with the same source and
 * error fold into one.  error and reason are copied.
 */
int nb_store_tally_error(struct nb_store_tally *, const char *source,
    const char *error, enum nb_event_state state, const char *reason,
    int64_t at_ms, int64_t n);

/*
 * One row a replay changed: made pending from where it was (state and
 * reason as read), or, with rule, left quarantined with that rule as its
 * new error at at_ms.
 */
int nb_store_tally_replay(struct nb_store_tally *, const char *source,
    enum nb_event_state state, const char *reason, const char *rule,
    int64_t at_ms);

/*
 * One result row as a backend reads it (store_sqlite.c and store_pg.c
 * make one over a statement or a result): a column by index as an
 * integer, or as text (NULL for SQL NULL).  The readers below fill a
 * struct from a row whose columns are selected in the order they list,
 * the same on every backend; text is copied, cut to the field's size.
 */
struct nb_store_row {
	int64_t (*i64)(const struct nb_store_row *, int col);
	const char *(*text)(const struct nb_store_row *, int col);
};

/*
 * The parameters of one statement as a backend binds them (store_sqlite.c
 * and store_pg.c make one over a statement): the next parameter as an
 * integer, or as text (NULL: SQL NULL; borrowed until the statement ran).
 */
struct nb_store_binder {
	void (*i64)(struct nb_store_binder *, int64_t v);
	void (*text)(struct nb_store_binder *, const char *s);
};

/* Binds a statement's parameters from arg, in the statement's order. */
typedef void (*nb_store_bind_fn)(struct nb_store_binder *b, const void *arg);

/* The binders of one integer (arg: an int64_t) and of two (an array). */
void nb_store_bind_int(struct nb_store_binder *, const void *arg);
void nb_store_bind_int2(struct nb_store_binder *, const void *arg);

/*
 * The readers: each fills out, a zeroed struct of the kind named, from a
 * row whose columns are the ones listed, in that order; strings are
 * copied (cut to the field's size) or malloc'd.  0, or -1 when out of
 * memory (not logged).  Typed as qsort's comparators are, so one
 * collector (nb_store_collect()) serves every query.
 */
typedef int (*nb_store_read_fn)(const struct nb_store_row *r, void *out);

/*
 * struct nb_source_stats: source, pending, delivered, dead, quarantined,
 * received_total, delivered_total, dead_total, oldest_pending_ms,
 * inflight.
 */
int nb_store_stats_read(const struct nb_store_row *, void *out);

/*
 * struct nb_store_error: source, error, reason, state, count, last_ms;
 * a NULL error fails as well.
 */
int nb_store_error_read(const struct nb_store_row *, void *out);

/*
 * struct nb_store_attempt_row: id, at_ms, end_ms, status, error (NULL
 * stays NULL), batch_size.
 */
int nb_store_attempt_read(const struct nb_store_row *, void *out);

/*
 * struct nb_store_audit: id, at_ms, actor, kind, subject, dry_run, events,
 * pending, delivered, dead, complete.
 */
int nb_store_audit_read(const struct nb_store_row *, void *out);

/* struct nb_activity_row: source, fp, ms. */
int nb_store_activity_read(const struct nb_store_row *, void *out);

/*
 * struct nb_alert_report: alert (by name; NB_ALERT_KINDS when unknown),
 * source, status, text, seen_ms.
 */
int nb_store_report_read(const struct nb_store_row *, void *out);

/*
 * struct nb_alert_note: id, msg_id, alert, source, resolved, body (NULL
 * as "{}"), attempts, created_ms.
 */
int nb_store_note_read(const struct nb_store_row *, void *out);

/*
 * struct nb_alert_state: alert, source, firing, started_ms, resolved_ms,
 * mark, pending, notified_ms, changed_ms, text, summary, details; known
 * is set.
 */
int nb_store_state_read(const struct nb_store_row *, void *out);

/* Empties the tally, keeping its memory. */
void nb_store_tally_reset(struct nb_store_tally *);

/* Frees the tally's memory. */
void nb_store_tally_free(struct nb_store_tally *);

#endif
