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
 * only while the finisher still owns it.  A beat's activity figures go
 * as three arrays in one statement; the rest are a few single-row
 * statements.  One thread at a time, on the connection's own frame.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "store_pg.h"

static int
activity_put(struct pg *q, const struct nb_activity_row *r, size_t n)
{
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

static int
pgs_alert_beat(void *state, const struct nb_alert_beat *b, int *leader)
{
	struct pg *q = state;
	struct params p;
	size_t i, changed = 0;

	if (activity_put(q, b->act, b->nact) == -1)
		return -1;
	memset(&p, 0, sizeof(p));
	pgs_par_text(&p, b->owner);
	if (pgs_run(q, PS_AL_REPORTS_CLEAR, &p, __func__) == -1)
		return -1;
	for (i = 0; i < b->nrep; i++) {
		memset(&p, 0, sizeof(p));
		pgs_par_text(&p, b->owner);
		pgs_par_text(&p, nb_alert_name(b->rep[i].kind));
		pgs_par_text(&p, b->rep[i].source);
		pgs_par_int(&p, b->rep[i].status);
		pgs_par_text(&p, b->rep[i].text);
		pgs_par_int(&p, b->rep[i].seen_ms);
		if (pgs_run(q, PS_AL_REPORT_PUT, &p, __func__) == -1)
			return -1;
	}
	memset(&p, 0, sizeof(p));
	pgs_par_text(&p, b->owner);
	pgs_par_int(&p, b->now_ms);
	pgs_par_int(&p, b->lease_until_ms);
	if (pgs_run_count(q, PS_AL_LEAD, &p, &changed, __func__) == -1)
		return -1;
	*leader = changed > 0;
	return 0;
}

static int
state_put(void *state, const struct nb_alert_state *s)
{
	struct params p = {0};

	pgs_par_text(&p, nb_alert_name(s->kind));
	pgs_par_text(&p, s->source);
	pgs_par_int(&p, s->firing);
	pgs_par_int(&p, s->started_ms);
	pgs_par_int(&p, s->resolved_ms);
	pgs_par_int(&p, s->mark);
	pgs_par_int(&p, s->pending);
	pgs_par_int(&p, s->notified_ms);
	pgs_par_int(&p, s->changed_ms);
	pgs_par_text(&p, s->text);
	pgs_par_text(&p, s->summary);
	pgs_par_text(&p, s->details);
	return pgs_run(state, PS_AL_STATE_PUT, &p, __func__);
}

static int
note_add(void *state, const struct nb_alert_note *n, int64_t now)
{
	struct params p = {0};

	pgs_par_text(&p, n->msg_id);
	pgs_par_text(&p, nb_alert_name(n->kind));
	pgs_par_text(&p, n->source);
	pgs_par_int(&p, n->resolved);
	pgs_par_text(&p, n->body);
	pgs_par_int(&p, now);
	return pgs_run(state, PS_AL_NOTE_ADD, &p, __func__);
}

static int
renew(void *state, const char *owner, int64_t now_ms, int64_t lease_until_ms,
    int *held)
{
	struct params p = {0};
	size_t changed = 0;

	pgs_par_text(&p, owner);
	pgs_par_int(&p, now_ms);
	pgs_par_int(&p, lease_until_ms);
	if (pgs_run_count(state, PS_AL_RENEW, &p, &changed, __func__) == -1)
		return -1;
	*held = changed > 0;
	return 0;
}

static int
prune(void *state, int64_t before_ms)
{
	struct params p = {0};

	pgs_par_int(&p, before_ms);
	if (pgs_run(state, PS_AL_PRUNE_OUTBOX, &p, __func__) == -1 ||
	    pgs_run(state, PS_AL_PRUNE_REPORTS, &p, __func__) == -1)
		return -1;
	return 0;
}

static int
pgs_alert_claim(void *state, const char *owner, int64_t now_ms,
    int64_t lease_until_ms, size_t limit, struct nb_alert_note **out, size_t *n)
{
	struct pg *q = state;
	struct nb_alert_note *v = NULL;
	struct params p = {0};
	struct pgs_result r;
	PGresult *res;
	int rows, rc = -1;

	pgs_par_text(&p, owner);
	pgs_par_int(&p, now_ms);
	pgs_par_int(&p, lease_until_ms);
	pgs_par_int(&p, (int64_t)limit);
	if ((res = pgs_exec(q, PS_AL_CLAIM, &p, 0, __func__)) == NULL)
		return -1;
	rows = PQntuples(res);
	if (rows > 0 && (v = calloc((size_t)rows, sizeof(*v))) == NULL) {
		log_error("out of memory", " notes=%d", rows);
		goto out;
	}
	pgs_result_init(&r, res);
	for (r.i = 0; r.i < rows; r.i++)
		if (nb_store_note_read(&r.base, &v[r.i]) == -1)
			goto out;
	*out = v;
	*n = (size_t)rows;
	v = NULL;
	rc = 0;
out:
	nb_alert_notes_free(v, (size_t)rows);
	PQclear(res);
	return rc;
}

static int
pgs_alert_finish(void *state, const char *owner, int64_t id,
    enum nb_alert_outcome how, int64_t now_ms, int64_t next_ms,
    const char *error)
{
	struct pg *q = state;
	struct params p = {0};

	pgs_par_int(&p, id);
	pgs_par_text(&p, owner);
	if (how == NB_ALERT_RETRY) {
		pgs_par_int(&p, next_ms);
		pgs_par_text(&p, error);
		return pgs_run(q, PS_AL_RETRY, &p, __func__);
	}
	pgs_par_int(&p, (int64_t)how);
	pgs_par_int(&p, now_ms);
	pgs_par_text(&p, error);
	return pgs_run(q, PS_AL_DONE, &p, __func__);
}

const struct nb_store_alert_ops pgs_alert_ops = {
    .beat = pgs_alert_beat,
    .renew = renew,
    .state_put = state_put,
    .note_add = note_add,
    .prune = prune,
    .claim = pgs_alert_claim,
    .finish = pgs_alert_finish,
};
