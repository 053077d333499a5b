/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_alert: the alert tables of the SQLite backend.
 *
 * One process owns a SQLite store, so the lease and the claims never
 * meet a second instance here; they are kept anyway so the code above
 * them is the same on both backends.  Every write is a handful of cached
 * single-row statements inside the frame store.c opened (the tables are
 * small: a row per source, key, condition and recent notification); the
 * reads walk whole tables, which is what they are bounded by.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "store_sqlite.h"

static void
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Takes (ST_AL_LEAD) or renews (ST_AL_RENEW) the evaluator lease. */
static int
lease(struct sq *q, enum sq_stmt id, const char *owner, int64_t now_ms,
    int64_t lease_until_ms, int *held)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, id)) == NULL)
		return -1;
	bind_text(st, 1, owner);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, lease_until_ms);
	if (sq_stmt_run(q, st, __func__, id == ST_AL_LEAD ? "lead" : "renew") ==
	    -1)
		return -1;
	*held = sqlite3_changes(q->db) > 0;
	return 0;
}

static int
sq_alert_beat(void *state, const struct nb_alert_beat *b, int *leader)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < b->nact; i++) {
		if ((st = sq_stmt_get(q, ST_AL_ACTIVITY_PUT)) == NULL)
			return -1;
		bind_text(st, 1, b->act[i].source);
		bind_text(st, 2, b->act[i].fp);
		sqlite3_bind_int64(st, 3, b->act[i].ms);
		if (sq_stmt_run(q, st, __func__, "activity") == -1)
			return -1;
	}
	if ((st = sq_stmt_get(q, ST_AL_REPORTS_CLEAR)) == NULL)
		return -1;
	bind_text(st, 1, b->owner);
	if (sq_stmt_run(q, st, __func__, "reports") == -1)
		return -1;
	for (i = 0; i < b->nrep; i++) {
		if ((st = sq_stmt_get(q, ST_AL_REPORT_PUT)) == NULL)
			return -1;
		bind_text(st, 1, b->owner);
		bind_text(st, 2, nb_alert_name(b->rep[i].kind));
		bind_text(st, 3, b->rep[i].source);
		sqlite3_bind_int(st, 4, b->rep[i].status);
		bind_text(st, 5, b->rep[i].text);
		sqlite3_bind_int64(st, 6, b->rep[i].seen_ms);
		if (sq_stmt_run(q, st, __func__, "report") == -1)
			return -1;
	}
	return lease(
	    q, ST_AL_LEAD, b->owner, b->now_ms, b->lease_until_ms, leader);
}

static int
state_put(void *state, const struct nb_alert_state *s)
{
	struct sq *q = state;
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_AL_STATE_PUT)) == NULL)
		return -1;
	bind_text(st, 1, nb_alert_name(s->kind));
	bind_text(st, 2, s->source);
	sqlite3_bind_int(st, 3, s->firing);
	sqlite3_bind_int64(st, 4, s->started_ms);
	sqlite3_bind_int64(st, 5, s->resolved_ms);
	sqlite3_bind_int64(st, 6, s->mark);
	sqlite3_bind_int64(st, 7, s->pending);
	sqlite3_bind_int64(st, 8, s->notified_ms);
	sqlite3_bind_int64(st, 9, s->changed_ms);
	bind_text(st, 10, s->text);
	bind_text(st, 11, s->summary);
	bind_text(st, 12, s->details);
	return sq_stmt_run(q, st, __func__, "state");
}

static int
note_add(void *state, const struct nb_alert_note *n, int64_t now)
{
	struct sq *q = state;
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_AL_NOTE_ADD)) == NULL)
		return -1;
	bind_text(st, 1, n->msg_id);
	bind_text(st, 2, nb_alert_name(n->kind));
	bind_text(st, 3, n->source);
	sqlite3_bind_int(st, 4, n->resolved);
	bind_text(st, 5, n->body);
	sqlite3_bind_int64(st, 6, now);
	return sq_stmt_run(q, st, __func__, "note");
}

static int
renew(void *state, const char *owner, int64_t now_ms, int64_t lease_until_ms,
    int *held)
{
	return lease(state, ST_AL_RENEW, owner, now_ms, lease_until_ms, held);
}

static int
prune(void *state, int64_t before_ms)
{
	static const enum sq_stmt prunes[] = {
	    ST_AL_PRUNE_OUTBOX, ST_AL_PRUNE_REPORTS};
	struct sq *q = state;
	sqlite3_stmt *st;
	size_t i;

	for (i = 0; i < sizeof(prunes) / sizeof(prunes[0]); i++) {
		if ((st = sq_stmt_get(q, prunes[i])) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, before_ms);
		if (sq_stmt_run(q, st, __func__, "prune") == -1)
			return -1;
	}
	return 0;
}

static int
sq_alert_claim(void *state, const char *owner, int64_t now_ms,
    int64_t lease_until_ms, size_t limit, struct nb_alert_note **out, size_t *n)
{
	struct sq *q = state;
	struct nb_alert_note *v = NULL;
	struct sq_result row;
	sqlite3_stmt *st;
	size_t len = 0, cap = 0;
	int step, rc = -1;
	void *p;

	if ((st = sq_stmt_get(q, ST_AL_CLAIM)) == NULL)
		return -1;
	bind_text(st, 1, owner);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_int64(st, 3, lease_until_ms);
	sqlite3_bind_int64(st, 4, (int64_t)limit);
	sq_result_init(&row, st);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if ((p = nb_store_grow(v, len, &cap, sizeof(*v))) == NULL) {
			log_error("out of memory", " rows=%zu", len);
			goto out;
		}
		v = p;
		if (nb_store_note_read(&row.base, &v[len++]) == -1)
			goto out;
	}
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, "claim");
		goto out;
	}
	*out = v;
	*n = len;
	v = NULL;
	rc = 0;
out:
	sqlite3_reset(st);
	nb_alert_notes_free(v, len);
	return rc;
}

static int
sq_alert_finish(void *state, const char *owner, int64_t id,
    enum nb_alert_outcome how, int64_t now_ms, int64_t next_ms,
    const char *error)
{
	struct sq *q = state;
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(
		 q, how == NB_ALERT_RETRY ? ST_AL_RETRY : ST_AL_DONE)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, owner);
	if (how == NB_ALERT_RETRY) {
		sqlite3_bind_int64(st, 3, next_ms);
		bind_text(st, 4, error);
	} else {
		sqlite3_bind_int(st, 3, (int)how);
		sqlite3_bind_int64(st, 4, now_ms);
		bind_text(st, 5, error);
	}
	return sq_stmt_run(q, st, __func__, "finish");
}

const struct nb_store_alert_ops sq_alert_ops = {
    .beat = sq_alert_beat,
    .renew = renew,
    .state_put = state_put,
    .note_add = note_add,
    .prune = prune,
    .claim = sq_alert_claim,
    .finish = sq_alert_finish,
};
