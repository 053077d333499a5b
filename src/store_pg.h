/* SPDX-License-Identifier: ISC */
/*
 * store_pg: what the files of the PostgreSQL backend share.
 *
 * The backend is one libpq connection (struct pg) split along its seams:
 * store_pg.c holds the connection (open, migrations under an advisory lock,
 * reconnects, statement execution, pipelines, transactions),
 * store_pg_rows.c everything that stores, reads or changes rows, and
 * store_pg_count.c the per-writer counters and recent errors.  The pgs_
 * functions below are private to those files.  One thread at a time.
 */
#ifndef NB_STORE_PG_H
#define NB_STORE_PG_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "store_backend.h"

#define PG_PIPE_CHUNK 64 /* statements per pipeline sync */
#define PG_MAX_PARAMS 12
#define PG_OWNER_MAX  96

/* Parameters of one statement, all text except bytea payloads. */
struct params {
	const char *v[PG_MAX_PARAMS];
	int len[PG_MAX_PARAMS];
	int fmt[PG_MAX_PARAMS];
	char num[PG_MAX_PARAMS][24];
	int n;
};

/*
 * A batch of statements sent in pipeline mode: one network round trip for
 * up to PG_PIPE_CHUNK statements instead of one each.  The chunk bound also
 * keeps the results the server writes back while we are still sending far
 * below a socket buffer, so the blocking connection cannot deadlock.
 */
struct pipe {
	const char *sql[PG_PIPE_CHUNK];
	struct params p[PG_PIPE_CHUNK];
	int rows[PG_PIPE_CHUNK]; /* out: rows each statement returned */
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
	int64_t reset_mono_ms;	  /* last reconnect attempt */
	int64_t reset_wait_ms;	  /* before the next one */
	char sqlstate[6];	  /* of the last failure */
	struct pipe *pipe;	  /* append's statement batch */
};

/* Statement parameters: text, a decimal integer, binary bytes. */
void pgs_par_text(struct params *p, const char *s);
void pgs_par_int(struct params *p, int64_t v);
void pgs_par_bin(struct params *p, const char *data, size_t len);

/*
 * Runs sql with params p (NULL: none) and returns its result when the
 * status is want, else NULL (logged once, with SQLSTATE, which is also kept
 * in q->sqlstate).  The caller PQclear()s the result.
 */
PGresult *pgs_exec(struct pg *q, const char *sql, const struct params *p,
    ExecStatusType want, const char *fn, const char *op);
/* The same for a statement whose result is not needed. */
int pgs_run(struct pg *q, const char *sql, const struct params *p,
    ExecStatusType want, const char *fn, const char *op);
/* Rows changed by a command result. */
size_t pgs_cmd_tuples(PGresult *res);
/* A column as an integer (NULL reads as 0). */
int64_t pgs_col_int64(const PGresult *res, int row, int col);

/*
 * Sends the statements batched in pp in one pipeline and reads their
 * results; pp->rows tells what each returned.  0, or -1 when any failed
 * (logged).
 */
int pgs_pipe_flush(struct pg *q, struct pipe *pp, const char *fn);
/* The next free statement of pp, its parameters cleared. */
struct params *pgs_pipe_add(struct pipe *pp, const char *sql);

/* "{1,2,3}": an int8[] literal of n int64s stride bytes apart; malloc'd. */
char *pgs_int64_array(const int64_t *v, size_t n, size_t stride);
/* {"a","b"}: a text[] literal with " and \ escaped; malloc'd. */
char *pgs_text_array(const char *const *v, size_t n);

/* store_pg_rows.c */
int pgs_append(void *state, struct nb_append *const *reqs, size_t n,
    struct nb_store_tally *t);
int pgs_claim(
    void *state, const struct nb_store_claim *c, struct nb_store_rows *v);
int pgs_mark(void *state, const struct nb_store_mark *m, const int64_t *seqs,
    size_t n, size_t *changed, struct nb_store_tally *t);
int pgs_retry(void *state, const struct nb_store_retry *rows, size_t n,
    const char *error, int64_t at_ms, struct nb_store_tally *t);
int pgs_list(void *state, const struct nb_store_filter *f, int with_payload,
    struct nb_store_rows *v, int64_t *next);
int pgs_prune(void *state, int64_t dedupe_after_ms, int64_t delivered_before_ms,
    size_t limit, int *more, struct nb_store_tally *t);
int pgs_probe(void *state);

/*
 * The statements that answer operator and scraper reads: test_store_pg's
 * plan test fails when any of them scans events or payloads.
 */
struct pgs_read {
	const char *name;
	const char *sql;
};
extern const struct pgs_read pgs_reads[];
extern const size_t pgs_nreads;
extern const struct pgs_read pgs_list_reads[];
extern const size_t pgs_nlist_reads;

/* store_pg_count.c */
int pgs_stats(
    void *state, int64_t now_ms, struct nb_source_stats **out, size_t *n);
int pgs_errors(void *state, int64_t since_ms, size_t per_source,
    struct nb_store_error **out, size_t *n);
int pgs_tally_write(struct pg *q, const struct nb_store_tally *t);
int pgs_fold(struct pg *q);

#endif
