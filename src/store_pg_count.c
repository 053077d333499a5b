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
pgs_query(void *state, enum nb_store_query which, nb_store_bind_fn bind,
    const void *barg, nb_store_row_fn fn, void *ctx)
{
	static const enum pgs_stmt ids[] = {
	    [NB_STORE_Q_STATS] = PS_STATS,
	    [NB_STORE_Q_ERRORS] = PS_ERRORS,
	    [NB_STORE_Q_ACTIVITY] = PS_AL_ACTIVITY,
	    [NB_STORE_Q_REPORTS] = PS_AL_REPORTS,
	    [NB_STORE_Q_STATES] = PS_AL_STATES,
	    [NB_STORE_Q_AL_CLAIM] = PS_AL_CLAIM,
	    [NB_STORE_Q_ATTEMPTS] = PS_ATTEMPTS,
	    [NB_STORE_Q_AUDIT] = PS_AUDIT_LIST,
	};
	struct params p = {0};
	struct pgs_result r;
	PGresult *res;
	int rows, rc = 0;

	pgs_par_bind(&p, bind, barg);
	if ((res = pgs_exec(state, ids[which], &p, 0, __func__)) == NULL)
		return -1;
	rows = PQntuples(res);
	pgs_result_init(&r, res);
	for (r.i = 0; r.i < rows && rc == 0; r.i++)
		rc = fn(ctx, &r.base);
	PQclear(res);
	return rc;
}

int
pgs_exec_write(void *state, enum nb_store_write which, nb_store_bind_fn bind,
    const void *barg, size_t *changed)
{
	static const enum pgs_stmt ids[] = {
	    [NB_STORE_W_AL_REPORTS_CLEAR] = PS_AL_REPORTS_CLEAR,
	    [NB_STORE_W_AL_REPORT_PUT] = PS_AL_REPORT_PUT,
	    [NB_STORE_W_AL_LEAD] = PS_AL_LEAD,
	    [NB_STORE_W_AL_RENEW] = PS_AL_RENEW,
	    [NB_STORE_W_AL_STATE_PUT] = PS_AL_STATE_PUT,
	    [NB_STORE_W_AL_NOTE_ADD] = PS_AL_NOTE_ADD,
	    [NB_STORE_W_AL_PRUNE_OUTBOX] = PS_AL_PRUNE_OUTBOX,
	    [NB_STORE_W_AL_PRUNE_REPORTS] = PS_AL_PRUNE_REPORTS,
	    [NB_STORE_W_AL_RETRY] = PS_AL_RETRY,
	    [NB_STORE_W_AL_DONE] = PS_AL_DONE,
	};
	struct params p = {0};

	pgs_par_bind(&p, bind, barg);
	return pgs_run_count(state, ids[which], &p, changed, __func__);
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
