/* SPDX-License-Identifier: ISC */
/*
 * store_pg_count: the counters and recent errors of the PostgreSQL backend.
 *
 * Several instances (a committer and a deliverer each) change rows of the
 * same sources at once.  One counters row per source would make every
 * transaction of every writer queue on that row's lock until the holder
 * commits, so each connection adds to rows of its own: the slot is its
 * backend pid, which no two live connections share.  Readers sum a
 * source's slots (O(sources x writers), never O(rows)).  The prune folds
 * the slots of connections that are gone into slot 0, so the rows do not
 * pile up across restarts; folding moves counts and never loses any, even
 * when it races a writer (whose next upsert starts its slot afresh).
 * Recent errors are slotted the same way and merged when read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "store_pg.h"

int
pgs_stats(void *state, int64_t now_ms, struct nb_source_stats **out, size_t *n)
{
	struct pg *q = state;
	struct nb_source_stats *s = NULL;
	struct params p = {0};
	struct pgs_result r;
	PGresult *res = NULL;
	int rows;
	int rc = -1;

	pgs_par_int(&p, now_ms);
	if ((res = pgs_exec(q, PS_STATS, &p, 0, __func__)) == NULL)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (s = calloc((size_t)rows, sizeof(*s))) == NULL) {
		log_error("out of memory", " sources=%d", rows);
		goto out;
	}
	pgs_result_init(&r, res);
	for (r.i = 0; r.i < rows; r.i++)
		nb_store_stats_read(&r.base, &s[r.i]);
	*out = s;
	*n = (size_t)rows;
	s = NULL;
	rc = 0;
out:
	PQclear(res);
	free(s);
	return rc;
}

int
pgs_errors(void *state, int64_t since_ms, size_t per_source,
    struct nb_store_error **out, size_t *n)
{
	struct pg *q = state;
	struct nb_store_error *e = NULL;
	struct params p = {0};
	PGresult *res = NULL;
	int i, rows = 0, failed = 0, rc = -1;

	pgs_par_int(&p, since_ms);
	pgs_par_int(
	    &p, per_source > INT64_MAX ? INT64_MAX : (int64_t)per_source);
	if ((res = pgs_exec(q, PS_ERRORS, &p, 0, __func__)) == NULL)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (e = calloc((size_t)rows, sizeof(*e))) == NULL)
		failed = 1;
	for (i = 0; i < rows && !failed; i++) {
		snprintf(e[i].source, sizeof(e[i].source), "%s",
		    PQgetvalue(res, i, 0));
		e[i].error = pgs_col_strdup(res, i, 1, &failed);
		e[i].reason = pgs_col_strdup(res, i, 2, &failed);
		e[i].state = (enum nb_event_state)pgs_col_int64(res, i, 3);
		e[i].count = pgs_col_int64(res, i, 4);
		e[i].last_ms = pgs_col_int64(res, i, 5);
		if (e[i].error == NULL)
			failed = 1;
	}
	if (failed) {
		log_error("out of memory", " errors=%d", rows);
		goto out;
	}
	*out = e;
	*n = (size_t)rows;
	e = NULL;
	rc = 0;
out:
	nb_store_errors_free(e, (size_t)rows);
	PQclear(res);
	return rc;
}

/* Room for k more statements in b: sends it first when full. */
static int
batch_room(struct pg *q, struct pgs_batch *b, size_t k)
{
	if (b->n + k <= PG_BATCH_MAX)
		return 0;
	if (pgs_batch_run(q, b, __func__) == -1)
		return -1;
	pgs_batch_reset(b);
	return 0;
}

/* Adds one source's counter changes to this connection's slot. */
static int
count_add(
    struct pg *q, struct pgs_batch *b, const struct nb_store_count *c, int slot)
{
	struct params *p;

	if (batch_room(q, b, 1) == -1)
		return -1;
	p = pgs_batch_add(b, PS_COUNT_ADD, 0);
	pgs_par_text(p, c->source);
	pgs_par_int(p, slot);
	pgs_par_int(p, c->pending);
	pgs_par_int(p, c->delivered);
	pgs_par_int(p, c->dead);
	pgs_par_int(p, c->quarantined);
	pgs_par_int(p, c->received);
	pgs_par_int(p, c->delivered_total);
	pgs_par_int(p, c->dead_total);
	return 0;
}

/* Records one error in this connection's slot, then trims the slot. */
static int
error_add(struct pg *q, struct pgs_batch *b, const struct nb_store_errnote *e,
    int slot)
{
	struct params *p;

	if (batch_room(q, b, 2) == -1)
		return -1;
	p = pgs_batch_add(b, PS_ERROR_ADD, 0);
	pgs_par_text(p, e->source);
	pgs_par_text(p, e->error);
	pgs_par_int(p, slot);
	pgs_par_int(p, e->count);
	pgs_par_int(p, e->at_ms);
	pgs_par_int(p, (int64_t)e->state);
	pgs_par_text(p, e->reason);
	p = pgs_batch_add(b, PS_ERROR_TRIM, 0);
	pgs_par_text(p, e->source);
	pgs_par_int(p, slot);
	pgs_par_int(p, NB_STORE_ERRORS_KEPT);
	return 0;
}

/*
 * Queues the tally's statements in b, for the COMMIT's round trip; a
 * tally too large for one batch sends the batch ahead.
 */
int
pgs_tally_add(struct pg *q, struct pgs_batch *b, const struct nb_store_tally *t)
{
	int slot = PQbackendPID(q->conn);
	size_t i;

	for (i = 0; i < t->nc; i++)
		if (count_add(q, b, &t->c[i], slot) == -1)
			return -1;
	for (i = 0; i < t->ne; i++)
		if (error_add(q, b, &t->e[i], slot) == -1)
			return -1;
	return 0;
}

/* Folds the slots of connections that are gone into slot 0. */
int
pgs_fold(struct pg *q)
{
	struct pgs_batch *b = &q->batch;
	struct params *p;
	int rc;

	pgs_batch_reset(b);
	pgs_batch_add(b, PS_FOLD_COUNTS, 0);
	pgs_batch_add(b, PS_FOLD_ERRORS, 0);
	p = pgs_batch_add(b, PS_FOLD_TRIM, 0);
	pgs_par_int(p, NB_STORE_ERRORS_KEPT);
	rc = pgs_batch_run(q, b, __func__);
	pgs_batch_reset(b);
	return rc;
}
