/* SPDX-License-Identifier: ISC */
/*
 * store_alert: the public face of the alert tables, over the backends.
 *
 * Each operation is one call of the backend's alert table, inside
 * store.c's transaction frame when it writes (so a conflict between
 * instances on PostgreSQL runs it again from the start, and a failure
 * rolls all of it back), or on its own when it only reads.  The writes
 * commit with the LEASE durability of the deliverer's bookkeeping: a
 * crash may lose the last beat or claim, which the next beat or a lease
 * running out makes good; a lost notification state can at worst tell
 * an alert twice.  No SQL here: store_sqlite_alert.c and
 * store_pg_alert.c hold it, and the steps an apply is made of; the rows
 * they read are taken apart here, by store_rows.h's readers.
 */
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "nudgebridge/store_alert.h"
#include "store_backend.h"

void
nb_alert_view_clear(struct nb_alert_view *v)
{
	if (v == NULL)
		return;
	free(v->act);
	free(v->rep);
	free(v->st);
	memset(v, 0, sizeof(*v));
}

void
nb_alert_notes_free(struct nb_alert_note *notes, size_t n)
{
	size_t i;

	if (notes == NULL)
		return;
	for (i = 0; i < n; i++)
		free(notes[i].body);
	free(notes);
}

struct beat_arg {
	const struct nb_alert_beat *b;
	int *leader;
};

static int
beat_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct beat_arg *a = arg;

	*a->leader = 0;
	return o->alert->beat(state, a->b, a->leader);
}

int
nb_store_alert_beat(
    struct nb_store *s, const struct nb_alert_beat *b, int *leader)
{
	struct beat_arg a = {b, leader};

	return nb_store_frame(s, NB_STORE_SYNC_LEASE, beat_fn, &a, __func__);
}

/* What nb_store_alert_read() reads. */
#define READ_ACTIVITY 1u
#define READ_ALL      7u

struct read_arg {
	int64_t since_ms;
	unsigned what;
	struct nb_alert_view *v;
};

/* One query's rows appended to an array of the view, cap its room. */
struct rows_arg {
	struct nb_alert_view *v;
	size_t cap;
};

/* arr with room for one more row (nb_store_grow()), or NULL (logged). */
static void *
grow(void *arr, size_t n, size_t *cap, size_t size)
{
	void *p;

	if ((p = nb_store_grow(arr, n, cap, size)) == NULL)
		log_error("out of memory", " rows=%zu", n);
	return p;
}

static int
activity_cb(void *ctx, const struct nb_store_row *r)
{
	struct rows_arg *a = ctx;
	void *p;

	if ((p = grow(a->v->act, a->v->nact, &a->cap, sizeof(*a->v->act))) ==
	    NULL)
		return -1;
	a->v->act = p;
	nb_store_activity_read(r, &a->v->act[a->v->nact++]);
	return 0;
}

static int
reports_cb(void *ctx, const struct nb_store_row *r)
{
	struct rows_arg *a = ctx;
	void *p;

	if ((p = grow(a->v->rep, a->v->nrep, &a->cap, sizeof(*a->v->rep))) ==
	    NULL)
		return -1;
	a->v->rep = p;
	nb_store_report_read(r, &a->v->rep[a->v->nrep++]);
	return 0;
}

static int
states_cb(void *ctx, const struct nb_store_row *r)
{
	struct rows_arg *a = ctx;
	void *p;

	if ((p = grow(a->v->st, a->v->nst, &a->cap, sizeof(*a->v->st))) == NULL)
		return -1;
	a->v->st = p;
	nb_store_state_read(r, &a->v->st[a->v->nst++]);
	return 0;
}

static int
query(const struct nb_store_ops *o, void *state, enum nb_store_query which,
    int64_t since_ms, nb_store_row_fn fn, struct nb_alert_view *v)
{
	const int64_t args[NB_STORE_QUERY_ARGS] = {since_ms, 0};
	struct rows_arg a = {v, 0};

	return o->query(state, which, args, fn, &a);
}

static int
read_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct read_arg *a = arg;

	nb_alert_view_clear(a->v);
	if (query(o, state, NB_STORE_Q_ACTIVITY, 0, activity_cb, a->v) == -1 ||
	    (a->what != READ_ACTIVITY &&
		(query(o, state, NB_STORE_Q_REPORTS, a->since_ms, reports_cb,
		     a->v) == -1 ||
		    query(o, state, NB_STORE_Q_STATES, 0, states_cb, a->v) ==
			-1))) {
		nb_alert_view_clear(a->v);
		return -1;
	}
	return 0;
}

int
nb_store_alert_read(
    struct nb_store *s, int64_t reports_since_ms, struct nb_alert_view *v)
{
	struct read_arg a = {reports_since_ms, READ_ALL, v};

	memset(v, 0, sizeof(*v));
	return nb_store_call(s, read_fn, &a);
}

int
nb_store_activity(struct nb_store *s, struct nb_activity_row **out, size_t *n)
{
	struct nb_alert_view v;
	struct read_arg a = {0, READ_ACTIVITY, &v};

	memset(&v, 0, sizeof(v));
	*out = NULL;
	*n = 0;
	if (nb_store_call(s, read_fn, &a) == -1)
		return -1;
	*out = v.act;
	*n = v.nact;
	v.act = NULL;
	nb_alert_view_clear(&v);
	return 0;
}

struct apply_arg {
	const struct nb_alert_apply *a;
	int *applied;
};

/* The steps of an apply, each the backend's, in one transaction. */
static int
apply_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	const struct nb_store_alert_ops *ao = o->alert;
	struct apply_arg *x = arg;
	const struct nb_alert_apply *a = x->a;
	int held = 0;
	size_t i;

	*x->applied = 0;
	if (ao->renew(state, a->owner, a->now_ms, a->lease_until_ms, &held) ==
	    -1)
		return -1;
	if (!held)
		return 0; /* another evaluator took over */
	for (i = 0; i < a->nst; i++)
		if (ao->state_put(state, &a->st[i]) == -1)
			return -1;
	for (i = 0; i < a->nnotes; i++)
		if (ao->note_add(state, &a->notes[i], a->now_ms) == -1)
			return -1;
	if (ao->prune(state, a->prune_before_ms) == -1)
		return -1;
	*x->applied = 1;
	return 0;
}

int
nb_store_alert_apply(
    struct nb_store *s, const struct nb_alert_apply *a, int *applied)
{
	struct apply_arg x = {a, applied};

	return nb_store_frame(s, NB_STORE_SYNC_LEASE, apply_fn, &x, __func__);
}

struct claim_arg {
	const char *owner;
	int64_t now_ms, lease_until_ms;
	size_t limit;
	struct nb_alert_note **out;
	size_t *n;
};

static int
claim_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct claim_arg *a = arg;

	nb_alert_notes_free(*a->out, *a->n);
	*a->out = NULL;
	*a->n = 0;
	return o->alert->claim(state, a->owner, a->now_ms, a->lease_until_ms,
	    a->limit, a->out, a->n);
}

int
nb_store_alert_claim(struct nb_store *s, const char *owner, int64_t now_ms,
    int64_t lease_until_ms, size_t limit, struct nb_alert_note **out, size_t *n)
{
	struct claim_arg a = {owner, now_ms, lease_until_ms, limit, out, n};

	*out = NULL;
	*n = 0;
	if (limit == 0)
		return 0;
	if (nb_store_frame(s, NB_STORE_SYNC_LEASE, claim_fn, &a, __func__) ==
	    -1) {
		nb_alert_notes_free(*out, *n);
		*out = NULL;
		*n = 0;
		return -1;
	}
	return 0;
}

struct finish_arg {
	const char *owner;
	int64_t id;
	enum nb_alert_outcome how;
	int64_t now_ms, next_ms;
	const char *error;
};

static int
finish_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct finish_arg *a = arg;

	return o->alert->finish(
	    state, a->owner, a->id, a->how, a->now_ms, a->next_ms, a->error);
}

int
nb_store_alert_finish(struct nb_store *s, const char *owner, int64_t id,
    enum nb_alert_outcome how, int64_t now_ms, int64_t next_ms,
    const char *error)
{
	struct finish_arg a = {owner, id, how, now_ms, next_ms, error};

	return nb_store_frame(s, NB_STORE_SYNC_LEASE, finish_fn, &a, __func__);
}
