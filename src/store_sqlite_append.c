/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_append: a group of webhook requests stored in one
 * transaction of the SQLite backend.
 *
 * The group goes in a few multi-row statements per table rather than one
 * statement per key or row: the webhook ids of all requests, then the
 * event ids of the new requests, then the rows and payloads of the new
 * events (see sq_append()).  Nearly every key is new, so the keys go in
 * batches under a savepoint and one by one only once a batch met a
 * duplicate; the outcome is always that of storing the requests one after
 * the other.  Runs inside the transaction store.c opened.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "nudgebridge/nudgespot.h"
#include "store_sqlite.h"

/*
 * The multi-row statement of kind with 2^lg rows, reset, or NULL (logged).
 * Its bindings are not cleared: every use binds every parameter.
 */
static sqlite3_stmt *
chunk_get(struct sq *q, enum sq_chunk kind, int lg)
{
	sqlite3_stmt *st = q->chunks[kind][lg];
	const char *t, *src;
	size_t rows = (size_t)1 << lg, cap, len, i, p;
	char *sql;

	if (st != NULL) {
		sqlite3_reset(st);
		return st;
	}
	/* A "?d" of two bytes becomes "?" and at most three digits. */
	cap = strlen(sq_chunk_sql[kind].head) +
	    strlen(sq_chunk_sql[kind].tail) +
	    rows * (3 * strlen(sq_chunk_sql[kind].row) + 1) + 32;
	if ((sql = malloc(cap)) == NULL) {
		log_error("out of memory", " rows=%zu", rows);
		return NULL;
	}
	len = strlen(sq_chunk_sql[kind].head);
	memcpy(sql, sq_chunk_sql[kind].head, len);
	for (i = 0; i <= rows; i++) {
		/* rows times the row, then the tail. */
		src =
		    i < rows ? sq_chunk_sql[kind].row : sq_chunk_sql[kind].tail;
		if (i > 0 && i < rows)
			sql[len++] = ',';
		for (t = src; *t != '\0'; t++) {
			sql[len++] = *t;
			if (*t != '?' || t[1] < '0' || t[1] > '9')
				continue;
			p = t[1] == '0'
			    ? rows * (size_t)sq_chunk_sql[kind].ncols + 1
			    : i * (size_t)sq_chunk_sql[kind].ncols +
				(size_t)(t[1] - '0');
			len += sq_i64_put(sql + len, (int64_t)p);
			t++;
		}
	}
	sql[len] = '\0';
	if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
		NULL) != SQLITE_OK) {
		sq_db_log(q, __func__, "prepare");
		sqlite3_finalize(st);
		free(sql);
		return NULL;
	}
	free(sql);
	q->chunks[kind][lg] = st;
	return st;
}

/* The largest lg <= SQ_CHUNK_LOG with 2^lg <= n (n > 0). */
static int
chunk_log(size_t n)
{
	int lg = SQ_CHUNK_LOG;

	while (((size_t)1 << lg) > n)
		lg--;
	return lg;
}

/*
 * 1 when the key is new (now recorded), 0 when seen, -1 on failure: the
 * upsert refreshes only a key older than the window, so sqlite3_changes()
 * tells new from seen in one statement.
 */
static int
mark_seen(struct sq *q, enum sq_stmt id, const char *source, const char *key,
    int64_t now_ms, int64_t after_ms)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, id)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, after_ms);
	if (sq_stmt_run(q, st, __func__, "seen") == -1)
		return -1;
	return sqlite3_changes(q->db) > 0;
}

/*
 * Records k[0..n) in multi-row statements of kind, in order, as long as
 * every key is new: *all is 1 when all were, 0 as soon as one was not (or
 * a window does not fit a statement), with the keys after it left out.
 */
static int
keys_batch(struct sq *q, enum sq_chunk kind, const struct sq_key *k, size_t n,
    int *all)
{
	sqlite3_stmt *st;
	int64_t w, w2;
	size_t i = 0, len, size, j;
	int lg;

	*all = 0;
	while (i < n) {
		if (nb_store_window_len(k[i].r, &w) == -1)
			return 0;
		/* One statement takes keys of one window length only. */
		for (len = 1; i + len < n && len < SQ_CHUNK_MAX; len++)
			if (nb_store_window_len(k[i + len].r, &w2) == -1 ||
			    w2 != w)
				break;
		lg = chunk_log(len);
		size = (size_t)1 << lg;
		if ((st = chunk_get(q, kind, lg)) == NULL)
			return -1;
		for (j = 0; j < size; j++) {
			sqlite3_bind_text(st, (int)(3 * j + 1),
			    k[i + j].r->source, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, (int)(3 * j + 2), k[i + j].key,
			    -1, SQLITE_STATIC);
			sqlite3_bind_int64(
			    st, (int)(3 * j + 3), k[i + j].r->received_ms);
		}
		sqlite3_bind_int64(st, (int)(3 * size + 1), w);
		if (sq_stmt_run(q, st, __func__, "seen") == -1)
			return -1;
		if (sqlite3_changes64(q->db) != (sqlite3_int64)size)
			return 0;
		i += size;
	}
	*all = 1;
	return 0;
}

/*
 * Records the keys k[0..n) (kind's table; one is its one-row statement)
 * and sets their fresh exactly as one mark_seen() per key in order would.
 * Nearly every key is new, so they go in multi-row statements under a
 * savepoint; a statement that changed fewer rows than it has met a
 * duplicate without saying which, and then the savepoint is rolled back and
 * the keys go one by one.
 */
static int
keys_mark(struct sq *q, enum sq_chunk kind, enum sq_stmt one, struct sq_key *k,
    size_t n)
{
	size_t i;
	int all, fresh;

	if (n == 0)
		return 0;
	if (sq_run_id(q, ST_SAVEPOINT, __func__) == -1 ||
	    keys_batch(q, kind, k, n, &all) == -1)
		return -1;
	if (!all && sq_run_id(q, ST_ROLLBACK_SAVEPOINT, __func__) == -1)
		return -1;
	if (sq_run_id(q, ST_RELEASE_SAVEPOINT, __func__) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (all) {
			k[i].fresh = 1;
			continue;
		}
		fresh = mark_seen(q, one, k[i].r->source, k[i].key,
		    k[i].r->received_ms, k[i].r->dedupe_after_ms);
		if (fresh == -1)
			return -1;
		k[i].fresh = fresh;
	}
	return 0;
}

/* Fails (logged) unless the last rowid the connection inserted is want. */
static int
seq_check(struct sq *q, int64_t want, const char *table)
{
	int64_t got = sqlite3_last_insert_rowid(q->db);

	if (got == want)
		return 0;
	log_error("seq mismatch", " table=%s expected=%" PRId64 " got=%" PRId64,
	    table, want, got);
	return -1;
}

/*
 * Stores rows[0..n) and their payloads in multi-row statements.  A row
 * named by its seq costs a lookup from the root of the table to prove the
 * seq unused, where a row left to take the table's next rowid lands after
 * the last one.  So the events rows take their seqs from AUTOINCREMENT,
 * which gives the rows of one statement consecutive seqs from one past the
 * last seq given, under the write lock; and the payloads take the
 * payloads table's next rowid whenever that is the same seq (the newest
 * row still has its payload: unless it was purged), else they name theirs.
 * The last seq of every statement is checked, so a payload can never be
 * filed under another row's seq.
 */
static int
rows_insert(struct sq *q, const struct sq_row *rows, size_t n)
{
	const struct sq_row *w;
	sqlite3_stmt *st;
	int64_t last, plast, want;
	size_t i = 0, size, j;
	int lg, p, dead, follow;

	if (n == 0)
		return 0;
	if ((st = sq_stmt_get(q, ST_NEXT_SEQ)) == NULL)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW) {
		sq_db_log(q, __func__, "next seq");
		sqlite3_reset(st);
		return -1;
	}
	last = sqlite3_column_int64(st, 0);
	plast = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if (last < 0 || (uint64_t)(INT64_MAX - last) < n) {
		log_error("seq exhausted", " last=%" PRId64, last);
		return -1;
	}
	follow = plast == last;
	while (i < n) {
		lg = chunk_log(n - i);
		size = (size_t)1 << lg;
		want = last + (int64_t)(i + size);
		/* seq NULL: AUTOINCREMENT's, and the row's registers line up
		 * with the statement's columns (fewer copies than leaving
		 * seq out). */
		if ((st = chunk_get(q, CH_EVENTS, lg)) == NULL)
			return -1;
		for (j = 0; j < size; j++) {
			w = &rows[i + j];
			dead = w->e->error != NULL;
			p = (int)(9 * j);
			sqlite3_bind_text(
			    st, p + 1, w->r->source, -1, SQLITE_STATIC);
			sqlite3_bind_text(
			    st, p + 2, w->e->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(
			    st, p + 3, w->e->type, -1, SQLITE_STATIC);
			sqlite3_bind_int(
			    st, p + 4, dead ? NB_STATE_DEAD : NB_STATE_PENDING);
			sqlite3_bind_text(st, p + 5,
			    dead ? NB_REASON_QUARANTINED : NULL, -1,
			    SQLITE_STATIC);
			sqlite3_bind_text(
			    st, p + 6, w->e->error, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, p + 7, w->r->received_ms);
			/* No key: NULL, outside the person indexes. */
			if (w->e->email_key != 0)
				sqlite3_bind_int64(st, p + 8, w->e->email_key);
			else
				sqlite3_bind_null(st, p + 8);
			if (w->e->uid_key != 0)
				sqlite3_bind_int64(st, p + 9, w->e->uid_key);
			else
				sqlite3_bind_null(st, p + 9);
		}
		if (sq_stmt_run(q, st, __func__, "insert") == -1 ||
		    seq_check(q, want, "events") == -1)
			return -1;
		st = chunk_get(q, follow ? CH_PAYLOADS_NEXT : CH_PAYLOADS, lg);
		if (st == NULL)
			return -1;
		for (j = 0; j < size; j++) {
			w = &rows[i + j];
			p = follow ? (int)j : (int)(2 * j + 1);
			if (!follow)
				sqlite3_bind_int64(
				    st, p, last + 1 + (int64_t)(i + j));
			/* A zero-length blob needs a non-NULL pointer to stay
			 * NOT NULL. */
			sqlite3_bind_blob64(st, p + 1,
			    w->e->raw != NULL ? w->e->raw : "",
			    w->e->raw != NULL ? w->e->rawlen : 0,
			    SQLITE_STATIC);
		}
		if (sq_stmt_run(q, st, __func__, "insert payload") == -1 ||
		    (follow && seq_check(q, want, "payloads") == -1))
			return -1;
		i += size;
	}
	return 0;
}

/* Room for nkeys keys and nrows rows in q's scratch arrays. */
static int
scratch_reserve(struct sq *q, size_t nkeys, size_t nrows)
{
	struct sq_key *k;
	struct sq_row *r;

	if (nkeys > q->keycap) {
		if ((k = reallocarray(q->keys, nkeys, sizeof(*k))) == NULL)
			goto nomem;
		q->keys = k;
		q->keycap = nkeys;
	}
	if (nrows > q->rowcap) {
		if ((r = reallocarray(q->rows, nrows, sizeof(*r))) == NULL)
			goto nomem;
		q->rows = r;
		q->rowcap = nrows;
	}
	return 0;
nomem:
	log_error("out of memory", " keys=%zu rows=%zu", nkeys, nrows);
	return -1;
}

/* The counters' share of an append: its counts, its quarantine rules. */
static int
tally_rows(struct nb_store_tally *t, struct nb_append *const *reqs, size_t n,
    const struct sq_row *rows, size_t nrows)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (nb_store_tally_append(t, reqs[i]) == -1)
			return -1;
	for (i = 0; i < nrows; i++)
		if (rows[i].e->error != NULL &&
		    nb_store_tally_error(t, rows[i].r->source, rows[i].e->error,
			NB_STATE_DEAD, NB_REASON_QUARANTINED,
			rows[i].r->received_ms, 1) == -1)
			return -1;
	return 0;
}

/*
 * A group is stored in three passes, each a few multi-row statements
 * rather than a statement per key or row: the webhook ids of all requests,
 * then the event ids of the new requests, then the rows of the new events.
 * Each table sees its keys in request order, so the outcome is that of
 * storing the requests one after the other.  A statement per row cost more
 * than the B-tree work it did: every statement starts its cursors from the
 * root, keeps a statement journal and ends with a halt, where in one
 * statement each insert lands next to the one before.
 */
int
sq_append(void *state, struct nb_append *const *reqs, size_t n,
    struct nb_store_tally *t)
{
	struct sq *q = state;
	struct nb_append *r;
	const struct nb_event *e;
	size_t i, k, nkeys, nrows, total = 0;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		r = reqs[i];
		r->accepted = r->duplicates = r->quarantined = 0;
		if (r->nevents > SIZE_MAX - total) {
			log_error("too many events", " requests=%zu", n);
			return -1;
		}
		total += r->nevents;
	}
	if (scratch_reserve(q, n > total ? n : total, total) == -1)
		return -1;
	nkeys = 0;
	for (i = 0; i < n; i++)
		if (reqs[i]->webhook_id != NULL)
			q->keys[nkeys++] =
			    (struct sq_key){reqs[i], reqs[i]->webhook_id, 0};
	if (keys_mark(q, CH_SEEN_REQUESTS, ST_SEEN_REQUEST, q->keys, nkeys) ==
	    -1)
		return -1;
	/* A request seen before stores nothing. */
	for (k = 0; k < nkeys; k++)
		if (!q->keys[k].fresh)
			q->keys[k].r->duplicates = (int)q->keys[k].r->nevents;
	/* An event without an id is never a duplicate. */
	nkeys = 0;
	for (i = 0; i < n; i++) {
		if ((r = reqs[i])->duplicates != 0)
			continue;
		for (k = 0; k < r->nevents; k++)
			if (r->events[k].id != NULL)
				q->keys[nkeys++] =
				    (struct sq_key){r, r->events[k].id, 0};
	}
	if (keys_mark(q, CH_SEEN_EVENTS, ST_SEEN_EVENT, q->keys, nkeys) == -1)
		return -1;
	/* The same walk again, now with each event's verdict. */
	nkeys = nrows = 0;
	for (i = 0; i < n; i++) {
		if ((r = reqs[i])->duplicates != 0)
			continue;
		for (k = 0; k < r->nevents; k++) {
			e = &r->events[k];
			if (e->id != NULL && !q->keys[nkeys++].fresh) {
				r->duplicates++;
				continue;
			}
			q->rows[nrows++] = (struct sq_row){r, e};
			if (e->error != NULL)
				r->quarantined++;
			else
				r->accepted++;
		}
	}
	if (rows_insert(q, q->rows, nrows) == -1)
		return -1;
	q->unfolded += nrows; /* for sq_unfolded(), see sq_fold() */
	if (tally_rows(t, reqs, n, q->rows, nrows) == -1)
		return -1;
	return sq_cap_check(q, sq_cap_spare(q));
}
