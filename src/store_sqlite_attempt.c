/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_attempt: the attempt history of the SQLite backend.
 *
 * The attempt of a batch is one row of attempts, written in the
 * transaction of the mark that settles the batch; a delivering attempt is
 * pointed at from the rows it delivered (in the UPDATE the mark runs
 * anyway), a failed one is linked to each row (the rare path), and the
 * links of a row go when the row goes.  The marks and prunes of
 * store_sqlite_rows.c and the erasure of store_sqlite_find.c call these
 * inside the transaction store.c opened.
 */
#include <stdint.h>
#include <stdlib.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/log.h"
#include "store_sqlite.h"
int
sq_attempt_record(struct sq *q, struct nb_store_attempt *a)
{
	sqlite3_stmt *st;

	if (a == NULL || a->id != 0)
		return 0;
	if ((st = sq_stmt_get(q, ST_ATTEMPT_ADD)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, a->at_ms);
	sqlite3_bind_int64(st, 2, a->end_ms);
	sqlite3_bind_int(st, 3, a->status);
	sqlite3_bind_text(st, 4, a->error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, (int64_t)a->batch_size);
	if (sq_stmt_run(q, st, __func__, "attempt") == -1)
		return -1;
	a->id = sqlite3_last_insert_rowid(q->db);
	return 0;
}

/*
 * Steps st, which returns one attempt id a row, collecting the ids into
 * ids as a JSON array ("[]" when none); *n counts them.  Resets st.
 */
static int
ids_collect(struct sq *q, sqlite3_stmt *st, struct nb_buf *ids, size_t *n,
    const char *op)
{
	char num[24];
	int step;

	*n = 0;
	nb_buf_reset(ids);
	nb_buf_addc(ids, '[');
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n > 0)
			nb_buf_addc(ids, ',');
		nb_buf_add(
		    ids, num, sq_i64_put(num, sqlite3_column_int64(st, 0)));
		(*n)++;
	}
	nb_buf_addc(ids, ']');
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, op);
		return -1;
	}
	if (nb_buf_failed(ids)) {
		log_error("out of memory", " attempts=%zu", *n);
		return -1;
	}
	return 0;
}

/*
 * Runs st (bound but for nothing else), which deletes links and returns
 * their attempts, then deletes the failed attempts among them that no link
 * holds any more.
 */
static int
links_gone(struct sq *q, sqlite3_stmt *st, const char *op)
{
	struct nb_buf ids;
	size_t n;
	int rc = -1;

	nb_buf_init(&ids, SIZE_MAX);
	if (ids_collect(q, st, &ids, &n, op) == -1)
		goto out;
	if (n > 0) {
		if ((st = sq_stmt_get(q, ST_ATTEMPTS_ORPHAN)) == NULL)
			goto out;
		sqlite3_bind_text(st, 1, nb_buf_str(&ids), -1, SQLITE_STATIC);
		if (sq_stmt_run(q, st, __func__, op) == -1)
			goto out;
	}
	rc = 0;
out:
	nb_buf_free(&ids);
	return rc;
}

int
sq_links_add(struct sq *q, int64_t attempt)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_LINK_TRIM)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, NB_STORE_ATTEMPTS_KEPT);
	if (links_gone(q, st, "link trim") == -1)
		return -1;
	if ((st = sq_stmt_get(q, ST_LINK_ADD)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, attempt);
	return sq_stmt_run(q, st, __func__, "link");
}

int
sq_links_drop(struct sq *q)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_LINKS_DROP)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	return links_gone(q, st, "links drop");
}

int
sq_prune_attempts(struct sq *q, int64_t delivered_before_ms, size_t limit,
    int *more, int last)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_PRUNE_LINKS)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, delivered_before_ms);
	sqlite3_bind_int64(st, 2, (int64_t)limit);
	if (links_gone(q, st, "prune links") == -1)
		return -1;
	/* Only once the rows they delivered are gone. */
	if (!last)
		return 0;
	if ((st = sq_stmt_get(q, ST_PRUNE_ATTEMPTS)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, delivered_before_ms);
	sqlite3_bind_int64(st, 2, (int64_t)limit);
	if (sq_stmt_run(q, st, __func__, "prune attempts") == -1)
		return -1;
	if ((size_t)sqlite3_changes64(q->db) == limit)
		*more = 1;
	return 0;
}
