/* SPDX-License-Identifier: ISC */
/*
 * store_pg: what the files of the PostgreSQL backend share.
 *
 * The backend is one libpq connection (struct pg) split along its seams,
 * each file above the ones it calls: store_pg_sql.c holds every SQL text
 * (migrations and the statements each connection prepares once),
 * store_pg.c the base (the connection, reconnects and the pipelined
 * batches every statement goes out in), store_pg_attempt.c the attempt
 * history, store_pg_count.c the per-writer counters and recent errors,
 * store_pg_append.c the group append, store_pg_rows.c the rest of the row
 * work (claims, marks, lists, prune), store_pg_find.c erasure and the
 * audit, store_pg_fleet.c the instances, and store_pg_ops.c, at the top,
 * opening, migrations under an advisory lock, the transaction frame and
 * the table of operations store.c calls.  The pgs_ functions below are
 * private to those files.  One thread at a time.
 */
#ifndef NB_STORE_PG_H
#define NB_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "nudgebridge/buf.h"
#include "store_backend.h"

#define PG_BATCH_MAX  64 /* statements per pipeline */
#define PG_MAX_PARAMS 14
#define PG_OWNER_MAX  96
#define PG_ARRAYS     10 /* array parameters one statement may take */
/* The schema version that adds the person keys (see pgs_backfill_keys()). */
#define PG_VERSION_KEYS 6

/* The statements each connection prepares once (store_pg_sql.c). */
enum pgs_stmt {
	PS_SEEN_REQUESTS,
	PS_SEEN_EVENTS,
	PS_INSERT,
	PS_CLAIM,
	PS_EXTEND,
	PS_RELEASE,
	PS_DELIVERED,
	PS_DEAD,
	PS_RETRY,
	PS_REPLAY_PENDING,
	PS_REQUARANTINE,
	PS_PURGE,
	PS_LIST_ASC,
	PS_LIST_DESC,
	PS_LIST_DEAD_ASC,
	PS_LIST_DEAD_DESC,
	PS_LIST_EMAIL_ASC,
	PS_LIST_EMAIL_DESC,
	PS_LIST_UID_ASC,
	PS_LIST_UID_DESC,
	PS_ATTEMPT_ADD,
	PS_LINK_ADD,
	PS_LINK_LAST,
	PS_LINKS_DROP,
	PS_ATTEMPTS,
	PS_PRUNE_ATTEMPTS,
	PS_EPOCH,
	PS_EPOCH_BUMP,
	PS_ERASE_FLAG,
	PS_SENDABLE,
	PS_AUDIT_ADD,
	PS_AUDIT_LIST,
	PS_PRUNE_REQUESTS,
	PS_PRUNE_EVENTS,
	PS_PRUNE_DELIVERED,
	PS_PROBE,
	PS_STATS,
	PS_ERRORS,
	PS_COUNT_ADD,
	PS_ERROR_ADD,
	PS_ERROR_TRIM,
	PS_FOLD_COUNTS,
	PS_FOLD_ERRORS,
	PS_FOLD_TRIM,
	PS_SCHEMA_VERSION,
	PS_BEAT,
	PS_FORGET,
	PS_LIVE,
	PS_LEAVE,
	PS_INSTALL_ADD,
	PS_INSTALL_GET,
	PS_AL_ACTIVITY_PUT,
	PS_AL_ACTIVITY,
	PS_AL_REPORTS_CLEAR,
	PS_AL_REPORT_PUT,
	PS_AL_REPORTS,
	PS_AL_LEAD,
	PS_AL_RENEW,
	PS_AL_STATES,
	PS_AL_STATE_PUT,
	PS_AL_NOTE_ADD,
	PS_AL_PRUNE_OUTBOX,
	PS_AL_PRUNE_REPORTS,
	PS_AL_CLAIM,
	PS_AL_DONE,
	PS_AL_RETRY,
	PS_COUNT
};

/* store_pg_sql.c */
extern const char *const pgs_migrations[];
extern const int pgs_schema_latest;
extern const char *const pgs_sql[PS_COUNT];
extern const char pgs_backfill_read[];
extern const char pgs_backfill_write[];
/* Sent before PS_CLAIM in its transaction: see store_pg_sql.c. */
extern const char pgs_claim_plan[];
/* Run on every new connection: see store_pg_sql.c. */
extern const char pgs_session[];
/*
 * The statements that answer operator and scraper reads: test_store_pg's
 * plan test fails when any of them may read events or payloads in full.
 */
extern const enum pgs_stmt pgs_reads[];
extern const size_t pgs_nreads;

/* Parameters of one statement: text, or binary (arrays, bytea). */
struct params {
	const char *v[PG_MAX_PARAMS];
	int len[PG_MAX_PARAMS];
	int fmt[PG_MAX_PARAMS];
	char num[PG_MAX_PARAMS][24];
	int n;
};

/* One statement of a batch and, once run, its result. */
struct pgs_item {
	enum pgs_stmt id; /* PS_COUNT: sql, a transaction statement */
	const char *sql;
	struct params p;
	int binary;	  /* results in binary (claims, lists) */
	int sent_prepare; /* this item carried its statement's PREPARE */
	PGresult *res;
};

/*
 * Statements sent in one pipeline: one network round trip for all of
 * them.  PG_BATCH_MAX also keeps what the server writes back while we are
 * still sending far below a socket buffer, so the blocking connection
 * cannot deadlock.
 */
struct pgs_batch {
	struct pgs_item it[PG_BATCH_MAX];
	size_t n;
};

/*
 * One PGconn used by one thread with synchronous calls.  A call that finds
 * the connection broken tries PQreset() (then again after 1 s, doubling up
 * to 10 s) and fails with -1 until the server is back.
 */
struct pg {
	PGconn *conn;
	char owner[PG_OWNER_MAX]; /* lease_owner of this connection */
	char install_id[NB_SEGMENT_INSTALL_ID_LEN + 1];
	int64_t reset_mono_ms; /* last reconnect attempt */
	int64_t reset_wait_ms; /* before the next one */
	char sqlstate[6];      /* of the last failure */
	unsigned char prepared[PS_COUNT];
	int tx_want;  /* begin() called: BEGIN goes out with what comes next */
	int tx_lease; /* the transaction commits without waiting for WAL */
	int tx_open;  /* BEGIN went out */
	struct pgs_batch tail;	      /* sent with the COMMIT */
	struct pgs_batch batch;	      /* the batch being built */
	struct nb_buf arr[PG_ARRAYS]; /* array parameters */
	void *scratch;		      /* store_pg_append.c's */
	size_t scratchcap;
};

/* Statement parameters: text, a decimal integer, binary bytes. */
void pgs_par_text(struct params *p, const char *s);
void pgs_par_int(struct params *p, int64_t v);
void pgs_par_bin(struct params *p, const char *data, size_t len);

/*
 * Binary one-dimensional arrays in b (element types by OID), built for a
 * parameter: start with the element count, then add exactly that many.
 * pgs_arr_bytes() with NULL adds an SQL NULL.  Failures stick to b.
 */
#define PG_OID_BYTEA 17
#define PG_OID_INT8  20
#define PG_OID_INT2  21
#define PG_OID_INT4  23
#define PG_OID_TEXT  25
void pgs_arr_start(struct nb_buf *b, unsigned oid, size_t n);
void pgs_arr_bytes(struct nb_buf *b, const void *p, size_t len);
void pgs_arr_text(struct nb_buf *b, const char *s);
void pgs_arr_int8(struct nb_buf *b, int64_t v);
void pgs_arr_int2(struct nb_buf *b, int v);
/* An int4 (a person key), or NULL when v is 0 (no key). */
void pgs_arr_int4_or_null(struct nb_buf *b, int64_t v);
/* Adds b as the next parameter of p, binary.  -1 when b failed. */
int pgs_par_arr(struct params *p, struct nb_buf *b);
/* An int8[] of n seqs stride bytes apart, as a binary array in b. */
int pgs_seqs_param(struct params *p, struct nb_buf *b, const int64_t *seqs,
    size_t n, size_t stride);

/*
 * Empties the batch, and adds a statement to it: its parameters, cleared,
 * to fill.  The batch must have room (callers send it when full).
 */
void pgs_batch_reset(struct pgs_batch *b);
struct params *pgs_batch_add(struct pgs_batch *b, enum pgs_stmt id, int binary);
/* Adds a statement without parameters, sent as text (COMMIT, SET LOCAL). */
void pgs_batch_add_sql(struct pgs_batch *b, const char *sql);

/*
 * Sends b in one pipeline (preparing what this connection has not yet,
 * and with the BEGIN of a transaction begun but not yet opened) and reads
 * every result into b's items.  0, or -1 when a statement failed (logged
 * once, with SQLSTATE, kept in q->sqlstate): the transaction is then
 * aborted.  The results stay until pgs_batch_reset().
 */
int pgs_batch_run(struct pg *q, struct pgs_batch *b, const char *fn);

/* One statement as a batch of its own; its result (NULL: failed). */
PGresult *pgs_exec(struct pg *q, enum pgs_stmt id, const struct params *p,
    int binary, const char *fn);
/* The same for a statement whose result is not needed. */
int pgs_run(
    struct pg *q, enum pgs_stmt id, const struct params *p, const char *fn);
/* The same; *changed receives the rows the command changed. */
int pgs_run_count(struct pg *q, enum pgs_stmt id, const struct params *p,
    size_t *changed, const char *fn);
/* A column as an integer, text or binary (NULL reads as 0). */
int64_t pgs_col_int64(const PGresult *res, int row, int col);
/* A column as a malloc'd string (NULL stays NULL); *failed on ENOMEM. */
char *pgs_col_strdup(const PGresult *res, int row, int col, int *failed);

/* Row i of res, for store_rows.h's readers (i is set by the caller). */
struct pgs_result {
	struct nb_store_row base; /* first: what the readers see */
	const PGresult *res;
	int i;
};
void pgs_result_init(struct pgs_result *r, const PGresult *res);

/* Appends the parameters bind(b, arg) binds (NULL: none) to p. */
void pgs_par_bind(struct params *p, nb_store_bind_fn bind, const void *arg);

/*
 * A simple-protocol statement string (several statements may stand in
 * it): 0, or -1 when its result is not want (logged once as op).
 */
int pgs_simple_run(struct pg *q, const char *sql, ExecStatusType want,
    const char *fn, const char *op);
/* A new session's settings (store_pg.c's sql_session); 0 or -1. */
int pgs_session_setup(struct pg *q, const char *fn);
/*
 * Makes sure the connection is usable, reconnecting after a failure that
 * broke it (at most once per back-off interval); 0 or -1 (logged).
 */
int pgs_conn_check(struct pg *q, const char *fn);

/* store_pg_append.c */
int pgs_append(void *state, struct nb_append *const *reqs, size_t n,
    struct nb_store_tally *t);

/* store_pg_rows.c */
int pgs_claim(
    void *state, const struct nb_store_claim *c, struct nb_store_rows *v);
int pgs_mark(void *state, const struct nb_store_mark *m, const int64_t *seqs,
    size_t n, size_t *changed, struct nb_store_tally *t);
int pgs_retry(void *state, const struct nb_store_retry *rows, size_t n,
    const char *error, int64_t at_ms, struct nb_store_attempt *att,
    struct nb_store_tally *t);
int pgs_list(void *state, const struct nb_store_filter *f, int with_payload,
    struct nb_store_rows *v, int64_t *next);
int pgs_prune(void *state, int64_t dedupe_after_ms, int64_t delivered_before_ms,
    size_t limit, int *more, struct nb_store_tally *t);
int pgs_probe(void *state);
/* store_pg_fleet.c */
int pgs_install_ensure(struct pg *q, const char *seed);
int pgs_beat(void *state, struct nb_store_instance *self, int64_t lease_ms,
    struct nb_store_instance *out, size_t max, size_t *n, size_t *live);
int pgs_leave(void *state, const char *id);

/* store_pg_alert.c */
extern const struct nb_store_alert_ops pgs_alert_ops;

/*
 * Deletes the rows of seqs with their payloads and attempt links, tallying
 * each; deleted (NULL: not wanted) counts them by state.
 */
int pgs_purge_rows(struct pg *q, const int64_t *seqs, size_t n, size_t *changed,
    struct nb_store_tally *t, int64_t deleted[3]);

/* store_pg_attempt.c */
/* Records a (NULL, or recorded already: nothing) and sets its id. */
int pgs_attempt_record(struct pg *q, struct nb_store_attempt *a);
/* Links the rows of seqs still stored to the failed attempt. */
int pgs_links_add(struct pg *q, const int64_t *seqs, size_t n, size_t stride,
    int64_t attempt);
/* Drops the links of the rows of seqs and the attempts they held. */
int pgs_links_drop(struct pg *q, const int64_t *seqs, size_t n);
/* The delivering attempts past retention, at most limit. */
int pgs_prune_attempts(
    struct pg *q, int64_t delivered_before_ms, size_t limit, int *more);

/* store_pg_find.c */
int pgs_epoch(void *state, int64_t *epoch);
int pgs_sendable(
    void *state, const int64_t *seqs, size_t n, unsigned char *keep);
int pgs_erase(void *state, const int64_t *seqs, size_t n, int64_t now_ms,
    struct nb_store_seqs *held, int64_t deleted[3], struct nb_store_tally *t);
int pgs_audit_add(void *state, struct nb_store_audit *a);
int pgs_scrub(void *state, int on);
/* Version 4: the person keys of the rows stored before it. */
int pgs_backfill_keys(PGconn *conn);

/* store_pg_count.c */
int pgs_query(void *state, enum nb_store_query which, nb_store_bind_fn bind,
    const void *barg, nb_store_row_fn fn, void *ctx);
int pgs_exec_write(void *state, enum nb_store_write which,
    nb_store_bind_fn bind, const void *barg, size_t *changed);
int pgs_tally_add(
    struct pg *q, struct pgs_batch *b, const struct nb_store_tally *t);
int pgs_fold(struct pg *q);

#endif
