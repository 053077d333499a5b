/* SPDX-License-Identifier: ISC */
/*
 * store_pg_alert: the alert tables of the PostgreSQL backend.
 *
 * Several instances beat, evaluate and send at once, and the database
 * arbitrates: the lease row's conditional upsert makes one evaluator,
 * whose writes go through only while its renewed lease still stands (the
 * renewal locks the row until commit, so a taker waits and then finds it
 * taken); reports are keyed by owner; a claim takes notifications with
 * SKIP LOCKED and an owned lease, and a finish touches a notification
 * only while the finisher still owns it (the statements: store_pg_sql.c).
 * A beat's activity figures go as three arrays in one statement, written
 * here; the rest are single-row statements the common layer
 * (store_alert.c) binds and runs through pgs_query() and
 * pgs_exec_write().  One thread at a time, on the connection's own frame.
 */
#include <libpq-fe.h>

#include "nudgebridge/activity.h"
#include "store_pg.h"

/* The figures of a beat as three arrays: one statement for them all. */
static int
activity_put(void *state, const struct nb_activity_row *r, size_t n)
{
	struct pg *q = state;
	struct params p = {0};
	size_t i;

	if (n == 0)
		return 0;
	pgs_arr_start(&q->arr[0], PG_OID_TEXT, n);
	pgs_arr_start(&q->arr[1], PG_OID_TEXT, n);
	pgs_arr_start(&q->arr[2], PG_OID_INT8, n);
	for (i = 0; i < n; i++) {
		pgs_arr_text(&q->arr[0], r[i].source);
		pgs_arr_text(&q->arr[1], r[i].fp);
		pgs_arr_int8(&q->arr[2], r[i].ms);
	}
	if (pgs_par_arr(&p, &q->arr[0]) == -1 ||
	    pgs_par_arr(&p, &q->arr[1]) == -1 ||
	    pgs_par_arr(&p, &q->arr[2]) == -1)
		return -1;
	return pgs_run(q, PS_AL_ACTIVITY_PUT, &p, __func__);
}

const struct nb_store_alert_ops pgs_alert_ops = {
    .activity_put = activity_put,
};
