/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite: the embedded SQLite backend's base: statements and bounds.
 *
 * Statements are prepared once per connection, cached by id and reused;
 * a failure is logged once with SQLite's extended code.  The set-based
 * statements take their rows as one JSON array of seqs, written here
 * without snprintf().  store.max_size_bytes caps the bytes in use (see
 * bytes_used()).  Every other file of the backend builds on these:
 * store_sqlite_sql.c holds the SQL text, store_sqlite_append.c the
 * appends, store_sqlite_rows.c the rest of the row work, and
 * store_sqlite_ops.c, at the top, opens the store and hands the
 * operations to store.c.
 */
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"
#include "store_sqlite.h"

void
sq_db_log(struct sq *q, const char *fn, const char *op)
{
	char qerr[256];

	nb_log(NB_LOG_ERROR, fn, "sqlite failure", " op=%s rc=%d error=%s", op,
	    sqlite3_extended_errcode(q->db),
	    nb_log_quote(qerr, sizeof(qerr), sqlite3_errmsg(q->db)));
}

/* The cached statement id, reset and unbound, or NULL (logged). */
sqlite3_stmt *
sq_stmt_get(struct sq *q, enum sq_stmt id)
{
	sqlite3_stmt *st = q->stmts[id];

	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	if (sqlite3_prepare_v3(q->db, sq_stmt_sql[id], -1,
		SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		sq_db_log(q, __func__, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	q->stmts[id] = st;
	return st;
}

/* Ends a statement's run: logs a failure (before the reset clears it). */
static int
stmt_end(struct sq *q, sqlite3_stmt *st, int ok, const char *fn, const char *op)
{
	if (!ok)
		sq_db_log(q, fn, op);
	sqlite3_reset(st);
	return ok ? 0 : -1;
}

static int64_t
row_i64(const struct nb_store_row *r, int col)
{
	return sqlite3_column_int64(((const struct sq_result *)r)->st, col);
}

static const char *
row_text(const struct nb_store_row *r, int col)
{
	return (const char *)sqlite3_column_text(
	    ((const struct sq_result *)r)->st, col);
}

void
sq_result_init(struct sq_result *r, sqlite3_stmt *st)
{
	r->base.i64 = row_i64;
	r->base.text = row_text;
	r->st = st;
}

struct sq_binder {
	struct nb_store_binder base; /* first: what the binders see */
	sqlite3_stmt *st;
	int i; /* the parameters bound */
};

static void
bind_i64(struct nb_store_binder *b, int64_t v)
{
	struct sq_binder *s = (struct sq_binder *)b;

	sqlite3_bind_int64(s->st, ++s->i, v);
}

static void
bind_str(struct nb_store_binder *b, const char *v)
{
	struct sq_binder *s = (struct sq_binder *)b;

	if (v == NULL)
		sqlite3_bind_null(s->st, ++s->i);
	else
		sqlite3_bind_text(s->st, ++s->i, v, -1, SQLITE_STATIC);
}

sqlite3_stmt *
sq_stmt_bound(
    struct sq *q, enum sq_stmt id, nb_store_bind_fn bind, const void *arg)
{
	struct sq_binder b = {{bind_i64, bind_str}, NULL, 0};

	if ((b.st = sq_stmt_get(q, id)) == NULL)
		return NULL;
	if (bind != NULL)
		bind(&b.base, arg);
	return b.st;
}

/* Runs a statement that returns no row (or ignores them); resets it. */
int
sq_stmt_run(struct sq *q, sqlite3_stmt *st, const char *fn, const char *op)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	return stmt_end(q, st, rc == SQLITE_DONE, fn, op);
}

/* Runs a statement returning one integer in *v; resets it. */
int
sq_stmt_int64(
    struct sq *q, sqlite3_stmt *st, int64_t *v, const char *fn, const char *op)
{
	int ok;

	if ((ok = sqlite3_step(st) == SQLITE_ROW))
		*v = sqlite3_column_int64(st, 0);
	return stmt_end(q, st, ok, fn, op);
}

int
sq_run_id(struct sq *q, enum sq_stmt id, const char *fn)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, id)) == NULL)
		return -1;
	return sq_stmt_run(q, st, fn, sq_stmt_sql[id]);
}

/*
 * Writes v in decimal at p (at most 20 bytes, no NUL); returns the length.
 * snprintf() cost a thousand instructions a seq here, as much as the rest
 * of the list.
 */
size_t
sq_i64_put(char *p, int64_t v)
{
	char tmp[20];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = 0, len = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		p[len++] = '-';
	while (n > 0)
		p[len++] = tmp[--n];
	return len;
}

/*
 * Writes seqs as a JSON array ("[3,4,9]") into q->json for the ?1 of the
 * set-based statements; stride is the distance between two seqs in bytes.
 * 0 or -1 (logged).
 */
int
sq_seqs_json(struct sq *q, const int64_t *seqs, size_t n, size_t stride)
{
	const char *base = (const char *)seqs;
	size_t need, len = 0, i;
	char *nj;
	int64_t v;

	/* 20 digits, a sign and a comma per seq, brackets and the NUL. */
	if (n > (SIZE_MAX - 3) / 22) {
		log_error("too many rows", " n=%zu", n);
		return -1;
	}
	need = n * 22 + 3;
	if (need > q->jsoncap) {
		if ((nj = realloc(q->json, need)) == NULL) {
			log_error("out of memory", " n=%zu", n);
			return -1;
		}
		q->json = nj;
		q->jsoncap = need;
	}
	q->json[len++] = '[';
	for (i = 0; i < n; i++) {
		memcpy(&v, base + i * stride, sizeof(v));
		if (i > 0)
			q->json[len++] = ',';
		len += sq_i64_put(q->json + len, v);
	}
	q->json[len++] = ']';
	q->json[len] = '\0';
	return 0;
}

/*
 * Bytes in use (pages that are not free) inside the current transaction.
 * store.max_size_bytes caps this figure: an append that would leave more in
 * use fails and stores nothing, and PRAGMA max_page_count stops the file
 * itself from growing past the cap.  Deleting rows frees pages for reuse,
 * so a purge makes room again.
 */
static int
bytes_used(struct sq *q, int64_t *used)
{
	sqlite3_stmt *st;
	int64_t pages, freepages;

	if ((st = sq_stmt_get(q, ST_PAGE_COUNT)) == NULL ||
	    sq_stmt_int64(q, st, &pages, __func__, "page_count") == -1)
		return -1;
	if ((st = sq_stmt_get(q, ST_FREELIST_COUNT)) == NULL ||
	    sq_stmt_int64(q, st, &freepages, __func__, "freelist_count") == -1)
		return -1;
	*used = (pages - freepages) * q->page_size;
	return 0;
}

/*
 * The room under the size cap that appends leave free.  The deliverer's
 * bookkeeping needs pages of its own (a claim's lease makes each row a few
 * bytes longer), so a store that appends filled to the last page could
 * never drain.
 */
int64_t
sq_cap_spare(const struct sq *q)
{
	int64_t spare = q->max_size_bytes / 8;

	return spare < SQ_PROBE_HEADROOM ? spare : SQ_PROBE_HEADROOM;
}

/* Fails when the transaction would leave more than the cap minus spare. */
int
sq_cap_check(struct sq *q, int64_t spare)
{
	int64_t used;

	if (q->max_size_bytes <= 0)
		return 0;
	if (bytes_used(q, &used) == -1)
		return -1;
	if (used + spare > q->max_size_bytes) {
		log_error("store full",
		    " used_bytes=%" PRId64 " spare_bytes=%" PRId64
		    " max_size_bytes=%" PRId64,
		    used, spare, q->max_size_bytes);
		return -1;
	}
	return 0;
}
