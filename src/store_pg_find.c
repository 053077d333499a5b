/* SPDX-License-Identifier: ISC */
/*
 * store_pg_find: erasure and the audit in the PostgreSQL backend.
 *
 * The same rows and rules as SQLite's (store_sqlite_find.c), with what
 * several instances sharing the database need: an erase locks the rows of
 * its chunk before it looks at their leases (FOR UPDATE, which a claim's
 * SKIP LOCKED then passes by), so no claim can slip between the look and
 * the delete.  The delivering attempt goes in with the delivered mark in
 * one statement; the rare paths (failures, purges, erasure) take a round
 * trip more.  After an erase the touched tables are vacuumed: the rows'
 * space is marked free for reuse, which is as far as PostgreSQL goes
 * without rewriting a table (docs/storage.md).  Writes run inside the
 * transaction store.c opened.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/log.h"
#include "nudgebridge/person.h"
#include "store_pg.h"

/* Rows the backfill reads per statement. */
#define BACKFILL_CHUNK 500

/* The array buffer of the statements here (arr[7] is the lease marks'). */
#define ARR_FIND 6

int
pgs_epoch(void *state, int64_t *epoch)
{
	struct pg *q = state;
	PGresult *res;

	if ((res = pgs_exec(q, PS_EPOCH, NULL, 0, __func__)) == NULL)
		return -1;
	*epoch = PQntuples(res) == 1 ? pgs_col_int64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

int
pgs_sendable(void *state, const int64_t *seqs, size_t n, unsigned char *keep)
{
	struct pg *q = state;
	struct params p = {0};
	PGresult *res;
	int64_t i;
	int row;

	if (pgs_seqs_param(&p, &q->arr[ARR_FIND], seqs, n, sizeof(*seqs)) == -1)
		return -1;
	if ((res = pgs_exec(q, PS_SENDABLE, &p, 0, __func__)) == NULL)
		return -1;
	/* WITH ORDINALITY counts from 1. */
	for (row = 0; row < PQntuples(res); row++)
		if ((i = pgs_col_int64(res, row, 0)) >= 1 && (size_t)i <= n)
			keep[i - 1] = 1;
	PQclear(res);
	return 0;
}

int
pgs_erase(void *state, const int64_t *seqs, size_t n, int64_t now_ms,
    struct nb_store_seqs *held, int64_t deleted[3], struct nb_store_tally *t)
{
	struct pg *q = state;
	struct nb_store_seqs rest = {0};
	struct params p = {0};
	PGresult *res;
	size_t flagged = 0, changed = 0;
	int row, rc = -1;

	if (n == 0)
		return 0;
	if (pgs_seqs_param(&p, &q->arr[ARR_FIND], seqs, n, sizeof(*seqs)) == -1)
		return -1;
	pgs_par_int(&p, now_ms);
	if ((res = pgs_exec(q, PS_ERASE_FLAG, &p, 0, __func__)) == NULL)
		return -1;
	for (row = 0; row < PQntuples(res); row++) {
		flagged += (size_t)pgs_col_int64(res, row, 2);
		if (nb_store_seqs_push(
			pgs_col_int64(res, row, 1) ? held : &rest,
			pgs_col_int64(res, row, 0)) == -1)
			goto out;
	}
	if (rest.n > 0 &&
	    pgs_purge_rows(q, rest.v, rest.n, &changed, t, deleted) == -1)
		goto out;
	/* Deliverers look again before they send. */
	if ((flagged > 0 || changed > 0) &&
	    pgs_run(q, PS_EPOCH_BUMP, NULL, __func__) == -1)
		goto out;
	rc = 0;
out:
	PQclear(res);
	nb_store_seqs_clear(&rest);
	return rc;
}

int
pgs_audit_add(void *state, struct nb_store_audit *a)
{
	struct pg *q = state;
	struct params p = {0};
	PGresult *res;

	pgs_par_int(&p, a->at_ms);
	pgs_par_text(&p, a->actor);
	pgs_par_text(&p, a->kind);
	pgs_par_text(&p, a->subject);
	pgs_par_text(&p, a->dry_run ? "true" : "false");
	pgs_par_int(&p, a->events);
	pgs_par_int(&p, a->pending);
	pgs_par_int(&p, a->delivered);
	pgs_par_int(&p, a->dead);
	pgs_par_text(&p, a->complete ? "true" : "false");
	if ((res = pgs_exec(q, PS_AUDIT_ADD, &p, 0, __func__)) == NULL)
		return -1;
	a->id = PQntuples(res) == 1 ? pgs_col_int64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

/*
 * After an erase: VACUUM (outside any transaction) marks the space of the
 * deleted rows free in the tables and their indexes.  Nothing to do
 * before.
 */
int
pgs_scrub(void *state, int on)
{
	struct pg *q = state;
	PGresult *res;
	int rc = 0;

	if (on)
		return 0;
	res = PQexec(q->conn,
	    "VACUUM events, payloads, people, attempt_links, attempts");
	if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_error("vacuum after an erase failed", " error=%s",
		    PQresultErrorField(res, PG_DIAG_SQLSTATE) != NULL
			? PQresultErrorField(res, PG_DIAG_SQLSTATE)
			: "-");
		rc = -1;
	}
	PQclear(res);
	return rc;
}

/* Adds v (0: NULL) to a text array literal being built in b. */
static void
array_add(struct nb_buf *b, size_t i, int64_t v)
{
	nb_buf_adds(b, i == 0 ? "{" : ",");
	if (v == 0)
		nb_buf_adds(b, "NULL");
	else
		nb_buf_addf(b, "%" PRId64, v);
}

/* One chunk of the backfill after *last: *rows read. */
static int
backfill_chunk(PGconn *conn, int64_t *last, size_t *rows)
{
	const char *vals[3];
	const int fmts[2] = {0, 0};
	struct nb_buf arr[3];
	char lastv[24], lim[24];
	PGresult *res = NULL, *wr = NULL;
	int64_t ek, uk;
	int i, k, rc = -1;

	for (k = 0; k < 3; k++)
		nb_buf_init(&arr[k], SIZE_MAX);
	snprintf(lastv, sizeof(lastv), "%" PRId64, *last);
	snprintf(lim, sizeof(lim), "%d", BACKFILL_CHUNK);
	vals[0] = lastv;
	vals[1] = lim;
	res =
	    PQexecParams(conn, pgs_backfill_read, 2, NULL, vals, NULL, fmts, 1);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
		goto out;
	*rows = (size_t)PQntuples(res);
	for (i = 0; i < PQntuples(res); i++) {
		*last = pgs_col_int64(res, i, 0);
		nb_person_keys_of(PQgetvalue(res, i, 1),
		    (size_t)PQgetlength(res, i, 1), &ek, &uk);
		array_add(&arr[0], (size_t)i, *last);
		array_add(&arr[1], (size_t)i, ek);
		array_add(&arr[2], (size_t)i, uk);
	}
	if (*rows == 0) {
		rc = 0;
		goto out;
	}
	for (k = 0; k < 3; k++) {
		nb_buf_adds(&arr[k], "}");
		if (nb_buf_failed(&arr[k]))
			goto out;
		vals[k] = nb_buf_str(&arr[k]);
	}
	wr = PQexecParams(
	    conn, pgs_backfill_write, 3, NULL, vals, NULL, NULL, 0);
	if (wr == NULL || PQresultStatus(wr) != PGRES_COMMAND_OK)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		log_error("person keys backfill failed", " error=%s",
		    PQerrorMessage(conn));
	PQclear(res);
	PQclear(wr);
	for (k = 0; k < 3; k++)
		nb_buf_free(&arr[k]);
	return rc;
}

int
pgs_backfill_keys(PGconn *conn)
{
	int64_t last = 0;
	size_t rows, total = 0;

	do {
		if (backfill_chunk(conn, &last, &rows) == -1)
			return -1;
		total += rows;
	} while (rows == BACKFILL_CHUNK);
	if (total > 0)
		log_info("store person keys computed", " rows=%zu", total);
	return 0;
}
