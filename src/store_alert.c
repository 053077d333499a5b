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

/*
 * The parameters of the writes and the claim, in the order of their
 * statements on both backends.
 */

static void
bind_text_arg(struct nb_store_binder *b, const void *arg)
{
	b->text(b, arg);
}

/* The evaluator lease: taken (LEAD) or renewed (RENEW) until until_ms. */
struct lease_arg {
	const char *owner;
	int64_t now_ms, until_ms;
};

static void
bind_lease(struct nb_store_binder *b, const void *arg)
{
	const struct lease_arg *a = arg;

	b->text(b, a->owner);
	b->i64(b, a->now_ms);
	b->i64(b, a->until_ms);
}

struct report_arg {
	const char *owner;
	const struct nb_alert_report *r;
};

static void
bind_report(struct nb_store_binder *b, const void *arg)
{
	const struct report_arg *a = arg;

	b->text(b, a->owner);
	b->text(b, nb_alert_name(a->r->kind));
	b->text(b, a->r->source);
	b->i64(b, a->r->status);
	b->text(b, a->r->text);
	b->i64(b, a->r->seen_ms);
}

static void
bind_state(struct nb_store_binder *b, const void *arg)
{
	const struct nb_alert_state *s = arg;

	b->text(b, nb_alert_name(s->kind));
	b->text(b, s->source);
	b->i64(b, s->firing);
	b->i64(b, s->started_ms);
	b->i64(b, s->resolved_ms);
	b->i64(b, s->mark);
	b->i64(b, s->pending);
	b->i64(b, s->notified_ms);
	b->i64(b, s->changed_ms);
	b->text(b, s->text);
	b->text(b, s->summary);
	b->text(b, s->details);
}

struct note_arg {
	const struct nb_alert_note *n;
	int64_t now_ms;
};

static void
bind_note(struct nb_store_binder *b, const void *arg)
{
	const struct note_arg *a = arg;

	b->text(b, a->n->msg_id);
	b->text(b, nb_alert_name(a->n->kind));
	b->text(b, a->n->source);
	b->i64(b, a->n->resolved);
	b->text(b, a->n->body);
	b->i64(b, a->now_ms);
}

/* Runs the lease write which; *held: the owner holds the lease now. */
static int
lease(const struct nb_store_ops *o, void *state, enum nb_store_write which,
    const struct lease_arg *a, int *held)
{
	size_t changed = 0;

	if (o->exec(state, which, bind_lease, a, &changed) == -1)
		return -1;
	*held = changed > 0;
	return 0;
}

struct beat_arg {
	const struct nb_alert_beat *b;
	int *leader;
};

static int
beat_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct beat_arg *x = arg;
	const struct nb_alert_beat *b = x->b;
	struct lease_arg l = {b->owner, b->now_ms, b->lease_until_ms};
	struct report_arg r = {b->owner, NULL};
	size_t i;

	*x->leader = 0;
	if (o->alert->activity_put(state, b->act, b->nact) == -1 ||
	    o->exec(state, NB_STORE_W_AL_REPORTS_CLEAR, bind_text_arg, b->owner,
		NULL) == -1)
		return -1;
	for (i = 0; i < b->nrep; i++) {
		r.r = &b->rep[i];
		if (o->exec(state, NB_STORE_W_AL_REPORT_PUT, bind_report, &r,
			NULL) == -1)
			return -1;
	}
	return lease(o, state, NB_STORE_W_AL_LEAD, &l, x->leader);
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

static int
read_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct read_arg *a = arg;
	struct nb_store_array act = {0}, rep = {0}, st = {0};
	int rc;

	nb_alert_view_clear(a->v);
	rc = nb_store_collect(o, state, NB_STORE_Q_ACTIVITY, NULL, NULL, &act);
	if (rc == 0 && a->what != READ_ACTIVITY &&
	    (nb_store_collect(o, state, NB_STORE_Q_REPORTS, nb_store_bind_int,
		 &a->since_ms, &rep) == -1 ||
		nb_store_collect(
		    o, state, NB_STORE_Q_STATES, NULL, NULL, &st) == -1))
		rc = -1;
	a->v->act = act.v;
	a->v->nact = act.n;
	a->v->rep = rep.v;
	a->v->nrep = rep.n;
	a->v->st = st.v;
	a->v->nst = st.n;
	if (rc == -1)
		nb_alert_view_clear(a->v);
	return rc;
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

static int
apply_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct apply_arg *x = arg;
	const struct nb_alert_apply *a = x->a;
	struct lease_arg l = {a->owner, a->now_ms, a->lease_until_ms};
	struct note_arg n = {NULL, a->now_ms};
	int held = 0;
	size_t i;

	*x->applied = 0;
	if (lease(o, state, NB_STORE_W_AL_RENEW, &l, &held) == -1)
		return -1;
	if (!held)
		return 0; /* another evaluator took over */
	for (i = 0; i < a->nst; i++)
		if (o->exec(state, NB_STORE_W_AL_STATE_PUT, bind_state,
			&a->st[i], NULL) == -1)
			return -1;
	for (i = 0; i < a->nnotes; i++) {
		n.n = &a->notes[i];
		if (o->exec(state, NB_STORE_W_AL_NOTE_ADD, bind_note, &n,
			NULL) == -1)
			return -1;
	}
	if (o->exec(state, NB_STORE_W_AL_PRUNE_OUTBOX, nb_store_bind_int,
		&a->prune_before_ms, NULL) == -1 ||
	    o->exec(state, NB_STORE_W_AL_PRUNE_REPORTS, nb_store_bind_int,
		&a->prune_before_ms, NULL) == -1)
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
	struct nb_store_array notes; /* the notes claimed */
};

static void
bind_claim(struct nb_store_binder *b, const void *arg)
{
	const struct claim_arg *a = arg;

	b->text(b, a->owner);
	b->i64(b, a->now_ms);
	b->i64(b, a->lease_until_ms);
	b->i64(b, (int64_t)a->limit);
}

static int
claim_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct claim_arg *a = arg;

	nb_alert_notes_free(a->notes.v, a->notes.n);
	memset(&a->notes, 0, sizeof(a->notes));
	return nb_store_collect(
	    o, state, NB_STORE_Q_AL_CLAIM, bind_claim, a, &a->notes);
}

int
nb_store_alert_claim(struct nb_store *s, const char *owner, int64_t now_ms,
    int64_t lease_until_ms, size_t limit, struct nb_alert_note **out, size_t *n)
{
	struct claim_arg a = {owner, now_ms, lease_until_ms, limit, {0}};

	*out = NULL;
	*n = 0;
	if (limit == 0)
		return 0;
	if (nb_store_frame(s, NB_STORE_SYNC_LEASE, claim_fn, &a, __func__) ==
	    -1) {
		nb_alert_notes_free(a.notes.v, a.notes.n);
		return -1;
	}
	*out = a.notes.v;
	*n = a.notes.n;
	return 0;
}

struct finish_arg {
	const char *owner;
	int64_t id;
	enum nb_alert_outcome how;
	int64_t now_ms, next_ms;
	const char *error;
};

/* RETRY: id, owner, next_ms, error; else id, owner, how, now_ms, error. */
static void
bind_finish(struct nb_store_binder *b, const void *arg)
{
	const struct finish_arg *a = arg;

	b->i64(b, a->id);
	b->text(b, a->owner);
	if (a->how == NB_ALERT_RETRY)
		b->i64(b, a->next_ms);
	else {
		b->i64(b, (int64_t)a->how);
		b->i64(b, a->now_ms);
	}
	b->text(b, a->error);
}

static int
finish_fn(const struct nb_store_ops *o, void *state, void *arg)
{
	struct finish_arg *a = arg;

	return o->exec(state,
	    a->how == NB_ALERT_RETRY ? NB_STORE_W_AL_RETRY : NB_STORE_W_AL_DONE,
	    bind_finish, a, NULL);
}

int
nb_store_alert_finish(struct nb_store *s, const char *owner, int64_t id,
    enum nb_alert_outcome how, int64_t now_ms, int64_t next_ms,
    const char *error)
{
	struct finish_arg a = {owner, id, how, now_ms, next_ms, error};

	return nb_store_frame(s, NB_STORE_SYNC_LEASE, finish_fn, &a, __func__);
}
