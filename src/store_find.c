/* SPDX-License-Identifier: ISC */
/*
 * store_find: finding a person's events, their attempt history, and
 * forgetting them.
 *
 * The dispatcher's half of search and erasure, over store.c's frame (see
 * store_frame.h): the backends find rows through the person's index key,
 * and every row they find is checked here against its stored event, so a
 * key two people share never shows or erases a stranger's event.  The
 * erase protocol (flag what deliverers hold, delete the rest, wait for the
 * holders, delete what they let go) is written once here over the
 * backends' erase primitive; store.h's comment above nb_store_erase() says
 * why it keeps the guarantee.  One thread at a time, like the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nudgebridge/log.h"
#include "nudgebridge/person.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"
#include "store_frame.h"

#define ERASE_WAIT_DEFAULT_MS 300000 /* the longest wait for held rows */
#define ERASE_POLL_MS	      20     /* between looks at held rows */

int
nb_store_attempts(struct nb_store *s, int64_t seq,
    struct nb_store_attempt_row **out, size_t *n)
{
	struct nb_store_array a = {0};

	*out = NULL;
	*n = 0;
	if (seq <= 0)
		return 0;
	if (nb_store_ready(s) == -1)
		return -1;
	if (nb_store_collect(s->ops, s->state, NB_STORE_Q_ATTEMPTS,
		nb_store_bind_int, &seq, &a) == -1) {
		nb_store_attempts_free(a.v, a.n);
		return -1;
	}
	*out = a.v;
	*n = a.n;
	return 0;
}

int
nb_store_erase_epoch(struct nb_store *s, int64_t *epoch)
{
	*epoch = 0;
	if (nb_store_ready(s) == -1)
		return -1;
	return s->ops->epoch(s->state, epoch);
}

int
nb_store_sendable(
    struct nb_store *s, const int64_t *seqs, size_t n, unsigned char *keep)
{
	if (n == 0)
		return 0;
	memset(keep, 0, n);
	if (nb_store_ready(s) == -1)
		return -1;
	return s->ops->sendable(s->state, seqs, n, keep);
}

int
nb_store_audit_list(struct nb_store *s, int64_t before_id, size_t limit,
    struct nb_store_audit **out, size_t *n, int64_t *next)
{
	struct nb_store_array a = {0};
	int64_t args[2];

	*out = NULL;
	*n = 0;
	*next = 0;
	if (limit == 0)
		return 0;
	if (limit > 1000)
		limit = 1000;
	if (nb_store_ready(s) == -1)
		return -1;
	/* One more than asked says whether a next page exists. */
	args[0] = before_id > 0 ? before_id : INT64_MAX;
	args[1] = (int64_t)limit + 1;
	if (nb_store_collect(s->ops, s->state, NB_STORE_Q_AUDIT,
		nb_store_bind_int2, args, &a) == -1) {
		free(a.v);
		return -1;
	}
	*out = a.v;
	*n = a.n;
	if (*n > limit) {
		*n = limit;
		*next = (*out)[limit - 1].id;
	}
	return 0;
}

/* An erase under way: the person's rows found so far and what became. */
struct erase_arg {
	const struct nb_store_erase *e;
	struct nb_store_filter f;  /* the person's rows, oldest first */
	struct nb_store_seqs held; /* flagged, waiting for their holders */
	struct nb_store_seqs step; /* the rows of the transaction running */
	int64_t now_ms;
	int64_t next; /* the listing's cursor, 0 at the end */
	/*
	 * What the transaction running deleted, then the sums committed, by
	 * state (pending, delivered, dead: enum nb_event_state's values).
	 */
	int64_t deleted[3], sums[3];
	struct nb_store_audit *audit;
	int64_t start_mono_ms; /* now_ms is e->now_ms plus the time since */
};

/* The erase's clock: the caller's now, moving on as the erase goes. */
static int64_t
erase_now(const struct erase_arg *a)
{
	return a->e->now_ms + (nb_time_mono_ms() - a->start_mono_ms);
}

/* The seqs of the next chunk of the person's rows into a->step. */
static int
erase_list(struct nb_store *s, struct erase_arg *a)
{
	struct nb_store_filter page = a->f;
	struct nb_store_rows v = {0};
	size_t i;
	int rc = -1;

	page.limit = NB_STORE_CHUNK;
	page.max_scan = NB_STORE_CHUNK_SCAN;
	a->step.n = 0;
	if (nb_store_list_call(s, &page, 0, &v, &a->next) == -1)
		goto out;
	for (i = 0; i < v.n; i++)
		if (nb_store_seqs_push(&a->step, v.v[i].seq) == -1)
			goto out;
	rc = 0;
out:
	nb_store_rows_clear(&v);
	return rc;
}

/*
 * One transaction of the first step: the next chunk of the person's rows
 * is listed (inside, so what is deleted is what was checked), its held
 * rows flagged and the rest deleted.
 */
static int
erase_chunk(struct nb_store *s, void *arg)
{
	struct erase_arg *a = arg;
	size_t held = a->held.n;

	memset(a->deleted, 0, sizeof(a->deleted));
	if (erase_list(s, a) == -1)
		return -1;
	if (a->step.n == 0)
		return 0;
	if (s->ops->erase(s->state, a->step.v, a->step.n, a->now_ms, &a->held,
		a->deleted, &s->tally) == -1) {
		a->held.n = held; /* a run again starts from the same list */
		return -1;
	}
	return 0;
}

/* One look at the held rows: deletes those let go, keeps the others. */
static int
erase_held(struct nb_store *s, void *arg)
{
	struct erase_arg *a = arg;

	memset(a->deleted, 0, sizeof(a->deleted));
	a->step.n = 0;
	return s->ops->erase(s->state, a->held.v, a->held.n, a->now_ms,
	    &a->step, a->deleted, &s->tally);
}

static int
erase_audit(struct nb_store *s, void *arg)
{
	struct erase_arg *a = arg;

	return s->ops->audit_add(s->state, a->audit);
}

static void
sums_add(struct erase_arg *a)
{
	int i;

	for (i = 0; i < 3; i++)
		a->sums[i] += a->deleted[i];
}

/* The dry run counts by state from a listing of its own. */
static int
erase_count(struct nb_store *s, struct erase_arg *a)
{
	struct nb_store_rows v = {0};
	struct nb_store_filter page;
	size_t i;
	int rc = -1;

	do {
		page = a->f;
		page.limit = NB_STORE_CHUNK;
		page.max_scan = NB_STORE_CHUNK_SCAN;
		if (nb_store_list_call(s, &page, 0, &v, &a->next) == -1)
			goto out;
		/* The states are the indexes of sums. */
		for (i = 0; i < v.n; i++)
			a->sums[v.v[i].state]++;
		nb_store_rows_clear(&v);
		a->f.after_seq = a->next;
	} while (a->next != 0);
	rc = 0;
out:
	nb_store_rows_clear(&v);
	return rc;
}

/* Waits until the held rows are let go (each deleted then), or the end. */
static int
erase_wait(struct nb_store *s, struct erase_arg *a)
{
	struct timespec ts = {0, ERASE_POLL_MS * 1000000L};
	int64_t wait =
	    a->e->wait_ms > 0 ? a->e->wait_ms : ERASE_WAIT_DEFAULT_MS;
	int64_t deadline = nb_time_mono_ms() + wait;
	struct nb_store_seqs tmp;

	while (a->held.n > 0) {
		a->now_ms = erase_now(a);
		if (nb_store_tx(s, NB_STORE_SYNC_FULL, erase_held, a,
			"nb_store_erase") == -1)
			return -1;
		sums_add(a);
		/* The rows still held are the next look's. */
		tmp = a->held;
		a->held = a->step;
		a->step = tmp;
		if (a->held.n == 0)
			break;
		if (nb_time_mono_ms() >= deadline) {
			log_error("erase: events still held by a deliverer",
			    " events=%zu wait_ms=%lld", a->held.n,
			    (long long)wait);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* The audit entry of an erase (its counts, its subject). */
static void
audit_fill(struct nb_store_audit *out, const struct nb_store_erase *e,
    const int64_t sums[3], int complete)
{
	memset(out, 0, sizeof(*out));
	out->at_ms = e->now_ms;
	snprintf(out->actor, sizeof(out->actor), "%s",
	    e->actor != NULL ? e->actor : "cli");
	snprintf(out->kind, sizeof(out->kind), "%s",
	    e->who.email != NULL ? "email" : "uid");
	nb_person_digest(&e->who, out->subject);
	out->dry_run = e->dry_run;
	out->pending = sums[0];
	out->delivered = sums[1];
	out->dead = sums[2];
	out->events = sums[0] + sums[1] + sums[2];
	out->complete = complete;
}

/* The erase proper: chunks, then the wait.  Scrubbing is the caller's. */
static int
erase_run(struct nb_store *s, struct erase_arg *a)
{
	if (a->e->dry_run)
		return erase_count(s, a);
	for (;;) {
		a->now_ms = erase_now(a);
		if (nb_store_tx(s, NB_STORE_SYNC_FULL, erase_chunk, a,
			"nb_store_erase") == -1)
			return -1;
		sums_add(a);
		/* Deleted rows are gone; the cursor covers the held ones. */
		if (a->next == 0)
			break;
		a->f.after_seq = a->next;
	}
	return erase_wait(s, a);
}

int
nb_store_erase(struct nb_store *s, const struct nb_store_erase *e,
    struct nb_store_audit *out)
{
	struct erase_arg a;
	int rc = -1, scrubbed = 0;

	memset(&a, 0, sizeof(a));
	memset(out, 0, sizeof(*out));
	if ((e->who.email == NULL) == (e->who.uid == NULL)) {
		log_error("erase needs one of email and uid", NULL);
		return -1;
	}
	a.e = e;
	a.start_mono_ms = nb_time_mono_ms();
	a.f.email = e->who.email;
	a.f.uid = e->who.email == NULL ? e->who.uid : NULL;
	a.f.states = NB_STATE_MASK_PENDING | NB_STATE_MASK_DELIVERED |
	    NB_STATE_MASK_DEAD;
	if (nb_store_ready(s) == -1)
		goto out;
	if (!e->dry_run) {
		if (s->ops->scrub != NULL && s->ops->scrub(s->state, 1) == -1)
			goto out;
		scrubbed = 1;
	}
	/* A failed erase is audited too: what it erased is gone. */
	rc = erase_run(s, &a);
	audit_fill(out, e, a.sums, rc == 0);
	a.audit = out;
	if (nb_store_tx(s, NB_STORE_SYNC_FULL, erase_audit, &a, __func__) == -1)
		rc = -1;
out:
	/* The scrub runs after a failure too: what was deleted is gone. */
	if (scrubbed && s->ops->scrub(s->state, 0) == -1)
		rc = -1;
	nb_store_seqs_clear(&a.held);
	nb_store_seqs_clear(&a.step);
	return rc;
}

size_t
nb_store_unfolded(struct nb_store *s)
{
	if (s->ops->unfolded == NULL || nb_store_ready(s) == -1)
		return 0;
	return s->ops->unfolded(s->state);
}

static int
fold_fn(struct nb_store *s, void *arg)
{
	return s->ops->fold(s->state, *(const size_t *)arg);
}

int
nb_store_fold(struct nb_store *s, size_t max)
{
	if (s->ops->fold == NULL || max == 0)
		return 0;
	return nb_store_tx(s, NB_STORE_SYNC_LEASE, fold_fn, &max, __func__);
}
