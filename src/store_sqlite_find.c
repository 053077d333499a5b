/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_find: erasure and the audit in the SQLite backend.
 *
 * Erasure deletes with secure_delete on, so SQLite overwrites what it
 * frees, and ends with a TRUNCATE checkpoint, so the write-ahead log that
 * held the old pages is emptied.  Keys of rows stored before version 4 are
 * computed from their payloads once, by sq_backfill_keys() at migration. Writes
 * run inside the transaction store.c opened.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nudgebridge/buf.h"
#include "nudgebridge/log.h"
#include "nudgebridge/person.h"
#include "store_sqlite.h"

/* Rows the backfill reads per statement. */
#define BACKFILL_CHUNK 500
/* TRUNCATE checkpoints tried, 20 ms apart, while another one runs. */
#define SCRUB_TRIES 100

int
sq_epoch(void *state, int64_t *epoch)
{
	struct sq *q = state;
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_EPOCH)) == NULL)
		return -1;
	return sq_stmt_int64(q, st, epoch, __func__, "epoch");
}

int
sq_sendable(void *state, const int64_t *seqs, size_t n, unsigned char *keep)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	int64_t i;
	int step;

	if (sq_seqs_json(q, seqs, n, sizeof(*seqs)) == -1 ||
	    (st = sq_stmt_get(q, ST_SENDABLE)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		if ((i = sqlite3_column_int64(st, 0)) >= 0 && (size_t)i < n)
			keep[i] = 1;
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, "sendable");
		return -1;
	}
	return 0;
}

/*
 * The rows of seqs (in q->json) held at now_ms: appended to held, and
 * is_held[i] set for each.
 */
static int
held_read(struct sq *q, int64_t now_ms, struct nb_store_seqs *held,
    unsigned char *is_held, const int64_t *seqs, size_t n)
{
	sqlite3_stmt *st;
	int64_t i;
	int step;

	if ((st = sq_stmt_get(q, ST_ERASE_HELD)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if ((i = sqlite3_column_int64(st, 0)) < 0 || (size_t)i >= n)
			continue;
		is_held[i] = 1;
		if (nb_store_seqs_push(held, seqs[i]) == -1) {
			sqlite3_reset(st);
			return -1;
		}
	}
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, "erase held");
		return -1;
	}
	return 0;
}

int
sq_erase(void *state, const int64_t *seqs, size_t n, int64_t now_ms,
    struct nb_store_seqs *held, int64_t deleted[3], struct nb_store_tally *t)
{
	struct sq *q = state;
	struct nb_store_seqs rest = {0};
	unsigned char *is_held = NULL;
	sqlite3_stmt *st;
	size_t i, flagged, changed = 0;
	int rc = -1;

	if (n == 0)
		return 0;
	if ((is_held = calloc(n, 1)) == NULL) {
		log_error("out of memory", " rows=%zu", n);
		return -1;
	}
	if (sq_seqs_json(q, seqs, n, sizeof(*seqs)) == -1 ||
	    (st = sq_stmt_get(q, ST_ERASE_FLAG)) == NULL)
		goto out;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	if (sq_stmt_run(q, st, __func__, "erase flag") == -1)
		goto out;
	flagged = (size_t)sqlite3_changes64(q->db);
	if (held_read(q, now_ms, held, is_held, seqs, n) == -1)
		goto out;
	for (i = 0; i < n; i++)
		if (!is_held[i] && nb_store_seqs_push(&rest, seqs[i]) == -1)
			goto out;
	if (rest.n > 0) {
		if (sq_seqs_json(q, rest.v, rest.n, sizeof(*rest.v)) == -1 ||
		    sq_purge_rows(q, &changed, t, deleted) == -1)
			goto out;
	}
	/* Deliverers look again before they send. */
	if ((flagged > 0 || changed > 0) &&
	    sq_run_id(q, ST_EPOCH_BUMP, __func__) == -1)
		goto out;
	rc = 0;
out:
	nb_store_seqs_clear(&rest);
	free(is_held);
	return rc;
}

int
sq_audit_add(void *state, struct nb_store_audit *a)
{
	struct sq *q = state;
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_AUDIT_ADD)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, a->at_ms);
	sqlite3_bind_text(st, 2, a->actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->subject, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, a->dry_run);
	sqlite3_bind_int64(st, 6, a->events);
	sqlite3_bind_int64(st, 7, a->pending);
	sqlite3_bind_int64(st, 8, a->delivered);
	sqlite3_bind_int64(st, 9, a->dead);
	sqlite3_bind_int(st, 10, a->complete);
	if (sq_stmt_run(q, st, __func__, "audit") == -1)
		return -1;
	a->id = sqlite3_last_insert_rowid(q->db);
	return 0;
}

/*
 * secure_delete on for an erase (the previous setting kept), then back
 * and a TRUNCATE checkpoint: the pages an erase changed reach the
 * database, whose freed bytes SQLite zeroed, and the log that held their
 * older copies is emptied.  A reader or writer of another connection can
 * keep the checkpoint from finishing (SQLITE_BUSY after the busy handler
 * gave up, or at once while another connection checkpoints: tried again
 * for two seconds); the erase then fails, and running it again truncates.
 */
int
sq_scrub(void *state, int on)
{
	struct timespec ts = {0, 20 * 1000000L};
	struct sq *q = state;
	sqlite3_stmt *st;
	int64_t was;
	char sql[40];
	int rc, tries;

	if (on) {
		if ((st = sq_stmt_get(q, ST_SECURE_DELETE)) == NULL ||
		    sq_stmt_int64(q, st, &was, __func__, "secure_delete") == -1)
			return -1;
		q->secure_was = (int)was;
	}
	snprintf(sql, sizeof(sql), "PRAGMA secure_delete = %d",
	    on ? 1 : q->secure_was);
	if (sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK) {
		sq_db_log(q, __func__, "secure_delete");
		return -1;
	}
	if (on)
		return 0;
	/* Another connection's checkpoint running now makes it BUSY at once. */
	for (tries = 0;; tries++) {
		rc = sqlite3_wal_checkpoint_v2(
		    q->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
		if (rc != SQLITE_BUSY || tries == SCRUB_TRIES)
			break;
		nanosleep(&ts, NULL);
	}
	if (rc != SQLITE_OK) {
		sq_db_log(q, __func__, "checkpoint truncate");
		return -1;
	}
	return 0;
}

/* Writes the keys of the rows of the current backfill chunk. */
static int
backfill_chunk(struct sq *q, sqlite3_stmt *rd, sqlite3_stmt *wr, int64_t *last,
    size_t *rows)
{
	int64_t ek, uk;
	int step;

	*rows = 0;
	sqlite3_bind_int64(rd, 1, *last);
	sqlite3_bind_int64(rd, 2, BACKFILL_CHUNK);
	while ((step = sqlite3_step(rd)) == SQLITE_ROW) {
		*last = sqlite3_column_int64(rd, 0);
		(*rows)++;
		nb_person_keys_of(sqlite3_column_blob(rd, 1),
		    (size_t)sqlite3_column_bytes(rd, 1), &ek, &uk);
		if (ek == 0 && uk == 0)
			continue;
		sqlite3_reset(wr);
		sqlite3_bind_int64(wr, 1, *last);
		if (ek != 0)
			sqlite3_bind_int64(wr, 2, ek);
		else
			sqlite3_bind_null(wr, 2);
		if (uk != 0)
			sqlite3_bind_int64(wr, 3, uk);
		else
			sqlite3_bind_null(wr, 3);
		if (sqlite3_step(wr) != SQLITE_DONE) {
			sq_db_log(q, __func__, "backfill write");
			sqlite3_reset(rd);
			return -1;
		}
	}
	sqlite3_reset(rd);
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, "backfill read");
		return -1;
	}
	return 0;
}

int
sq_backfill_keys(struct sq *q)
{
	sqlite3_stmt *rd = NULL, *wr = NULL;
	int64_t last = 0;
	size_t rows, total = 0;
	int rc = -1;

	if (sqlite3_prepare_v2(q->db, sq_backfill_read, -1, &rd, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(q->db, sq_backfill_write, -1, &wr, NULL) !=
		SQLITE_OK) {
		sq_db_log(q, __func__, "prepare");
		goto out;
	}
	do {
		if (backfill_chunk(q, rd, wr, &last, &rows) == -1)
			goto out;
		total += rows;
	} while (rows == BACKFILL_CHUNK);
	if (total > 0)
		log_info("store person keys computed", " rows=%zu", total);
	rc = 0;
out:
	sqlite3_finalize(rd);
	sqlite3_finalize(wr);
	return rc;
}
