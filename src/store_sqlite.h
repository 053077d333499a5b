/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite: what the files of the SQLite backend share.
 *
 * The backend is one connection (struct sq) split along its seams, each
 * file above the ones it calls: store_sqlite_sql.c holds every SQL text
 * (schema, migrations, statements), store_sqlite.c the base (statement
 * cache, logging, seq arrays, size cap), store_sqlite_read.c rows read
 * back, store_sqlite_attempt.c the attempt history, store_sqlite_append.c
 * the group append, store_sqlite_people.c the person index written late,
 * store_sqlite_rows.c everything else that reads or changes stored rows
 * (claims, marks, lists, purge, prune), store_sqlite_find.c erasure and
 * the audit, and store_sqlite_ops.c, at the top, opening, migrations, the
 * transaction frame, the probe and checkpoint, and the table of
 * operations store.c calls.  The sq_
 * functions below are private to those files.  One thread at a time.
 */
#ifndef NB_STORE_SQLITE_H
#define NB_STORE_SQLITE_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store_backend.h"

/*
 * Under the size cap appends leave this much (or an eighth of the cap, when
 * smaller) free, and the probe fails unless twice that is free.  The probe
 * also fails unless this much is free on the filesystem of the database.
 */
#define SQ_PROBE_HEADROOM (64 * 1024)

/*
 * An append writes a whole group with a few multi-row statements (see
 * sq_append()): each one takes 2^k rows, k = 0..SQ_CHUNK_LOG, so any count
 * is a handful of statements, each prepared once per connection.
 */
#define SQ_CHUNK_LOG 6
#define SQ_CHUNK_MAX (1 << SQ_CHUNK_LOG)

/* The schema version that adds the person keys (see sq_backfill_keys()). */
#define SQ_VERSION_KEYS 6

/* The payload's column in the statements that return one. */
#define SQ_COL_PAYLOAD 12

/*
 * The person index (table people, see store_sqlite_people.c) files the
 * rows of seqs s with the same s >> SQ_PEOPLE_SHIFT in one bucket.
 */
#ifndef SQ_PEOPLE_SHIFT
#define SQ_PEOPLE_SHIFT 14
#endif

enum sq_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_PAGE_COUNT,
	ST_FREELIST_COUNT,
	ST_USER_VERSION,
	ST_INSTALL_ADD,
	ST_INSTALL_GET,
	ST_SEEN_REQUEST,
	ST_SEEN_EVENT,
	ST_NEXT_SEQ,
	ST_SAVEPOINT,
	ST_RELEASE_SAVEPOINT,
	ST_ROLLBACK_SAVEPOINT,
	ST_CLAIM_CANDIDATES,
	ST_CLAIM_READ,
	ST_CLAIM_SET,
	ST_EXTEND,
	ST_DELIVERED,
	ST_MARK_SOURCES,
	ST_RETRY,
	ST_RELEASE,
	ST_DEAD,
	ST_RECOVER,
	ST_LIST_KEY,
	ST_LIST_ASC,
	ST_LIST_DESC,
	ST_LIST_DEAD_ASC,
	ST_LIST_DEAD_DESC,
	ST_PEOPLE_STATE,
	ST_PEOPLE_ASC,
	ST_PEOPLE_DESC,
	ST_PEOPLE_TAIL_ASC,
	ST_PEOPLE_TAIL_DESC,
	ST_PEOPLE_FOLD,
	ST_PEOPLE_FOLDED,
	ST_PEOPLE_FORGET,
	ST_PEOPLE_PRUNE,
	ST_REPLAY_PENDING,
	ST_REQUARANTINE,
	ST_PURGE_PAYLOADS,
	ST_PURGE,
	ST_STATS,
	ST_COUNT_ADD,
	ST_ERROR_ADD,
	ST_ERROR_TRIM,
	ST_ERRORS,
	ST_PRUNE_REQUESTS,
	ST_PRUNE_EVENTS,
	ST_PRUNE_PAYLOADS,
	ST_PRUNE_DELIVERED,
	ST_ATTEMPT_ADD,
	ST_LINK_TRIM,
	ST_LINK_ADD,
	ST_LINK_LAST,
	ST_LINKS_DROP,
	ST_ATTEMPTS_ORPHAN,
	ST_ATTEMPTS,
	ST_PRUNE_LINKS,
	ST_PRUNE_ATTEMPTS,
	ST_EPOCH,
	ST_EPOCH_BUMP,
	ST_ERASE_FLAG,
	ST_ERASE_HELD,
	ST_SENDABLE,
	ST_AUDIT_ADD,
	ST_AUDIT_LIST,
	ST_SECURE_DELETE,
	ST_PROBE,
	ST_SYNC_FULL,
	ST_SYNC_NORMAL,
	ST_AL_ACTIVITY_PUT,
	ST_AL_ACTIVITY,
	ST_AL_REPORTS_CLEAR,
	ST_AL_REPORT_PUT,
	ST_AL_REPORTS,
	ST_AL_LEAD,
	ST_AL_RENEW,
	ST_AL_STATES,
	ST_AL_STATE_PUT,
	ST_AL_NOTE_ADD,
	ST_AL_PRUNE_OUTBOX,
	ST_AL_PRUNE_REPORTS,
	ST_AL_CLAIM,
	ST_AL_DONE,
	ST_AL_RETRY,
	ST_COUNT
};

/* The multi-row statements of an append, see sq_chunk_sql. */
enum sq_chunk {
	CH_SEEN_REQUESTS,
	CH_SEEN_EVENTS,
	CH_EVENTS,
	CH_PAYLOADS,
	CH_PAYLOADS_NEXT,
	CH_COUNT
};

/*
 * A multi-row statement: head, the row once per row (its ?1..?9 are the
 * row's own parameters, numbered on from the rows before it), then tail,
 * whose ?0 is the parameter after all the rows.
 */
struct sq_chunk_sql {
	const char *head;
	const char *row;
	int ncols; /* parameters per row */
	const char *tail;
};

/* store_sqlite_sql.c */
extern const char *const sq_migrations[];
/*
 * The statements that answer operator and scraper reads (stats, errors,
 * lists): test_store's plan test fails when any of them scans events or
 * payloads instead of searching an index.
 */
extern const enum sq_stmt sq_reads[];
extern const size_t sq_nreads;
extern const int sq_schema_latest;
extern const char sq_index_tuning[];
extern const char *const sq_stmt_sql[ST_COUNT];
extern const char sq_backfill_read[];
extern const char sq_backfill_write[];
extern const struct sq_chunk_sql sq_chunk_sql[CH_COUNT];

/* The synchronous level a write transaction commits with. */
enum sq_sync {
	SYNC_UNSET,
	SYNC_FULL,   /* durable at COMMIT: appends, operator changes */
	SYNC_NORMAL, /* lease and delivery bookkeeping, see sync_set() */
};

/* A dedupe key of an append: a request's webhook id or an event's id. */
struct sq_key {
	struct nb_append *r;
	const char *key;
	int fresh; /* out: new, or older than the window (now recorded) */
};

/* A row an append stores. */
struct sq_row {
	const struct nb_append *r;
	const struct nb_event *e;
};

/* A claim candidate: due row of one of the sources. */
struct sq_candidate {
	int64_t seq;
	int64_t next_ms;
};

struct sq {
	sqlite3 *db;
	char *path;
	char *dir; /* the folder of path, for statvfs() in the probe */
	char install_id[NB_SEGMENT_INSTALL_ID_LEN + 1];
	int64_t max_size_bytes;
	int64_t page_size;
	int64_t busy_since_ms; /* when the current wait for the lock began */
	enum sq_sync sync;
	char *json; /* seq list of the set-based statements, for json_each */
	size_t jsoncap;
	sqlite3_stmt *stmts[ST_COUNT];
	sqlite3_stmt *chunks[CH_COUNT][SQ_CHUNK_LOG + 1];
	struct sq_key *keys; /* an append's dedupe keys */
	size_t keycap;
	struct sq_row *rows; /* an append's new rows */
	size_t rowcap;
	struct sq_candidate *cand; /* a claim's candidates */
	size_t ncand, candcap;
	int secure_was; /* secure_delete before an erase */
	/*
	 * Rows appended since the last fold, at most; read from the tables
	 * when !unfolded_known (at first, and after any rollback).
	 */
	size_t unfolded;
	int unfolded_known;
};

/* store_sqlite.c: the base every file of the backend calls. */
void sq_db_log(struct sq *q, const char *fn, const char *op);
sqlite3_stmt *sq_stmt_get(struct sq *q, enum sq_stmt id);
int sq_stmt_run(struct sq *q, sqlite3_stmt *st, const char *fn, const char *op);

/* The row st stands on, for store_rows.h's readers. */
struct sq_result {
	struct nb_store_row base; /* first: what the readers see */
	sqlite3_stmt *st;
};
void sq_result_init(struct sq_result *r, sqlite3_stmt *st);

/*
 * Statement id, its parameters bound by bind(b, arg) (NULL: none), as
 * store_rows.h's binders bind them; NULL when it cannot be prepared.
 */
sqlite3_stmt *sq_stmt_bound(
    struct sq *q, enum sq_stmt id, nb_store_bind_fn bind, const void *arg);
int sq_stmt_int64(
    struct sq *q, sqlite3_stmt *st, int64_t *v, const char *fn, const char *op);
int sq_run_id(struct sq *q, enum sq_stmt id, const char *fn);
size_t sq_i64_put(char *p, int64_t v);
int sq_seqs_json(struct sq *q, const int64_t *seqs, size_t n, size_t stride);
int64_t sq_cap_spare(const struct sq *q);
int sq_cap_check(struct sq *q, int64_t spare);

/* store_sqlite_append.c */
int sq_append(void *state, struct nb_append *const *reqs, size_t n,
    struct nb_store_tally *t);

/* store_sqlite_rows.c */
int sq_claim_prepare(
    void *state, const struct nb_store_claim *c, size_t *found);
int sq_claim(
    void *state, const struct nb_store_claim *c, struct nb_store_rows *v);
int sq_mark(void *state, const struct nb_store_mark *m, const int64_t *seqs,
    size_t n, size_t *changed, struct nb_store_tally *t);
int sq_retry(void *state, const struct nb_store_retry *rows, size_t n,
    const char *error, int64_t at_ms, struct nb_store_attempt *att,
    struct nb_store_tally *t);
int sq_list(void *state, const struct nb_store_filter *f, int with_payload,
    struct nb_store_rows *v, int64_t *next);
int sq_query(void *state, enum nb_store_query which, nb_store_bind_fn bind,
    const void *barg, nb_store_row_fn fn, void *ctx);
int sq_exec(void *state, enum nb_store_write which, nb_store_bind_fn bind,
    const void *barg, size_t *changed);
int sq_prune(void *state, int64_t dedupe_after_ms, int64_t delivered_before_ms,
    size_t limit, int *more, struct nb_store_tally *t);
int sq_tally_write(struct sq *q, const struct nb_store_tally *t);
/*
 * Deletes the rows in q->json with their payloads and attempt links,
 * tallying each; deleted (NULL: not wanted) counts them by state.
 */
int sq_purge_rows(struct sq *q, size_t *changed, struct nb_store_tally *t,
    int64_t deleted[3]);

/* store_sqlite_read.c */
/* Binds f's parameters of a list statement (see LIST_SELECT). */
void sq_list_bind(
    sqlite3_stmt *st, const struct nb_store_filter *f, int with_payload);
/* Appends the current row of a list statement st to v.  0 or -1 (logged). */
int sq_rows_push(struct nb_store_rows *v, sqlite3_stmt *st, int with_payload);

/* store_sqlite_attempt.c */
/* Records a (NULL, or already recorded: nothing) and sets its id. */
int sq_attempt_record(struct sq *q, struct nb_store_attempt *a);
/* Links the rows in q->json to attempt (a failure; see ST_LINK_TRIM). */
int sq_links_add(struct sq *q, int64_t attempt);
/* Drops the links of the rows in q->json and the attempts they held. */
int sq_links_drop(struct sq *q);
/*
 * The prune's share of attempt history: the links of the delivered rows
 * it takes next, and when last, the delivering attempts past retention.
 */
int sq_prune_attempts(struct sq *q, int64_t delivered_before_ms, size_t limit,
    int *more, int last);

/* store_sqlite_find.c */
int sq_epoch(void *state, int64_t *epoch);
int sq_sendable(
    void *state, const int64_t *seqs, size_t n, unsigned char *keep);
int sq_erase(void *state, const int64_t *seqs, size_t n, int64_t now_ms,
    struct nb_store_seqs *held, int64_t deleted[3], struct nb_store_tally *t);
int sq_audit_add(void *state, struct nb_store_audit *a);
int sq_scrub(void *state, int on);
/* Version 4: the person keys of the rows stored before it. */
int sq_backfill_keys(struct sq *q);

/* store_sqlite_people.c: the person index, folded late. */
/*
 * sq_list() for a filter by person (f->email or f->uid, no f->key): the
 * person's folded entries, then the rows appended since, in f's order.
 */
int sq_people_list(struct sq *q, const struct nb_store_filter *f,
    int with_payload, struct nb_store_rows *v, int64_t *next);
/*
 * Inside: indexes the oldest max unindexed rows (nb_store_fold()); the
 * count still left is kept for sq_unfolded().
 */
int sq_fold(void *state, size_t max);
/* Rows not yet folded, at most (counted in memory once known). */
size_t sq_unfolded(void *state);
/* Inside: drops the entries of the rows in q->json, before they go. */
int sq_people_forget(struct sq *q);
/*
 * Inside: drops up to limit entries of the buckets wholly below the
 * oldest row stored; *more when cut.
 */
int sq_people_prune(struct sq *q, size_t limit, int *more);

/* store_sqlite_alert.c */
extern const struct nb_store_alert_ops sq_alert_ops;

#endif
