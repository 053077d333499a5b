/* SPDX-License-Identifier: ISC */
/*
 * store_list: pages of rows, and the replays and purges that walk them.
 *
 * A list is one backend call per page, keyset-paged on seq and bounded in
 * the rows it may scan (NB_STORE_CHUNK_SCAN), so its cost does not grow
 * with the store; a page filtered by person has each row checked against
 * its stored event (the index keys are hashes).  A replay or a purge walks
 * its filter page by page, each chunk in a transaction of its own through
 * store.c's frame, so a large selection never holds the write lock for
 * long and a dry run counts exactly what the real one would touch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "nudgebridge/person.h"
#include "nudgebridge/store.h"
#include "store_frame.h"

/*
 * Drops from v the rows from index from on that are not about f's person
 * (its address and its uid, when both are given).
 */
static void
person_check(const struct nb_store_filter *f, struct nb_store_rows *v,
    size_t from, int with_payload)
{
	const struct nb_person by_email = {f->email, NULL};
	const struct nb_person by_uid = {NULL, f->uid};
	struct nb_stored_event *ev;
	size_t i, k = from;

	for (i = from; i < v->n; i++) {
		ev = &v->v[i];
		if ((f->email != NULL &&
			!nb_person_match(&by_email, ev->raw, ev->rawlen)) ||
		    (f->uid != NULL &&
			!nb_person_match(&by_uid, ev->raw, ev->rawlen))) {
			nb_store_row_free(ev);
			continue;
		}
		if (!with_payload) {
			free(ev->raw);
			ev->raw = NULL;
			ev->rawlen = 0;
		}
		if (k != i)
			v->v[k] = *ev;
		k++;
	}
	v->n = k;
}

int
nb_store_list_call(struct nb_store *s, const struct nb_store_filter *f,
    int with_payload, struct nb_store_rows *v, int64_t *next)
{
	size_t from = v->n;
	int person = f->email != NULL || f->uid != NULL;

	if (s->ops->list(s->state, f, with_payload || person, v, next) == -1)
		return -1;
	if (person)
		person_check(f, v, from, with_payload);
	return 0;
}

/*
 * The cursor a page left (or the filter's own bounds for the first) as the
 * bound of the next page: after_seq oldest first, before_seq newest first.
 */
static void
page_on(struct nb_store_filter *f, int64_t next)
{
	if (f->newest_first)
		f->before_seq = next;
	else
		f->after_seq = next;
}

int
nb_store_list_page(struct nb_store *s, const struct nb_store_filter *f,
    struct nb_stored_event **out, size_t *n, int64_t *next)
{
	static const struct nb_store_filter all;
	struct nb_store_rows v = {0};

	*out = NULL;
	*n = 0;
	*next = 0;
	if (nb_store_key_none(f))
		return 0;
	if (nb_store_ready(s) == -1)
		return -1;
	if (nb_store_list_call(s, f != NULL ? f : &all, 1, &v, next) == -1) {
		nb_store_rows_clear(&v);
		return -1;
	}
	nb_store_rows_take(&v, out, n);
	return 0;
}

int
nb_store_list(struct nb_store *s, const struct nb_store_filter *f,
    struct nb_stored_event **out, size_t *n)
{
	static const struct nb_store_filter all;
	struct nb_store_filter page = f != NULL ? *f : all;
	struct nb_store_rows v = {0};
	int64_t next = 0;

	*out = NULL;
	*n = 0;
	if (page.max_scan > 0)
		return nb_store_list_page(s, f, out, n, &next);
	if (nb_store_key_none(f))
		return 0;
	if (nb_store_ready(s) == -1)
		return -1;
	/* Pages of a bounded scan each, until the limit or the last row. */
	page.max_scan = NB_STORE_CHUNK_SCAN;
	for (;;) {
		if (f != NULL && f->limit != 0)
			page.limit = f->limit - v.n;
		if (nb_store_list_call(s, &page, 1, &v, &next) == -1) {
			nb_store_rows_clear(&v);
			return -1;
		}
		if (next == 0 ||
		    (f != NULL && f->limit != 0 && v.n >= f->limit))
			break;
		page_on(&page, next);
	}
	nb_store_rows_take(&v, out, n);
	return 0;
}

/*
 * A replay or purge: the filter it walks, the cursor after the chunks done
 * and what they did.
 */
struct chunk_arg {
	struct nb_store_filter f;
	size_t left; /* rows still allowed by the filter's limit, 0: any */
	int dry_run;
	int64_t now_ms;
	nb_store_revalidate_fn fn;
	/* What one chunk did, counted again if its transaction runs again. */
	int64_t next; /* its cursor, 0 at the end */
	size_t listed, cdone, creq;
	/* The sums of the chunks committed. */
	size_t done, requarantined;
};

/*
 * Lists the next chunk of a.f (at most NB_STORE_CHUNK rows, among at most
 * NB_STORE_CHUNK_SCAN) into v.
 */
static int
chunk_list(struct nb_store *s, struct chunk_arg *a, int payload,
    struct nb_store_rows *v)
{
	struct nb_store_filter page = a->f;

	page.limit =
	    a->left != 0 && a->left < NB_STORE_CHUNK ? a->left : NB_STORE_CHUNK;
	page.max_scan = NB_STORE_CHUNK_SCAN;
	a->next = 0;
	a->listed = a->cdone = a->creq = 0;
	if (nb_store_list_call(s, &page, payload, v, &a->next) == -1)
		return -1;
	a->listed = v->n;
	/* A chunk that used up the limit is the last. */
	if (a->left != 0 && v->n >= a->left)
		a->next = 0;
	return 0;
}

/* Replays one listed row; counts what happened (or would). */
static int
replay_row(
    struct nb_store *s, struct chunk_arg *a, const struct nb_stored_event *ev)
{
	struct nb_store_mark m = {.kind = NB_STORE_MARK_PENDING,
	    .ms = a->now_ms,
	    .source = ev->source,
	    .state = ev->state,
	    .was_reason = ev->reason};
	const char *rule;
	char *id = NULL, *type = NULL;
	size_t changed = 1;
	int rc = -1;

	if (ev->state == NB_STATE_PENDING)
		return 0;
	if (ev->state == NB_STATE_DEAD && ev->reason != NULL &&
	    strcmp(ev->reason, NB_REASON_QUARANTINED) == 0) {
		/* Without a validator a quarantined row cannot be judged. */
		if (a->fn == NULL)
			return 0;
		if ((rule = a->fn(ev->raw, ev->rawlen, &id, &type)) != NULL) {
			m.kind = NB_STORE_MARK_REQUARANTINE;
			m.error = rule;
		}
	}
	m.id = id;
	m.type = type;
	if (!a->dry_run &&
	    s->ops->mark(s->state, &m, &ev->seq, 1, &changed, &s->tally) == -1)
		goto out;
	/* A row another instance changed since it was read is not counted. */
	if (m.kind == NB_STORE_MARK_PENDING)
		a->cdone += changed;
	else
		a->creq += changed;
	rc = 0;
out:
	free(id);
	free(type);
	return rc;
}

/* One chunk of a replay; inside its transaction unless a dry run. */
static int
replay_chunk(struct nb_store *s, void *arg)
{
	struct chunk_arg *a = arg;
	struct nb_store_rows v = {0};
	size_t i;
	int rc = -1;

	if (chunk_list(s, a, 1, &v) == -1)
		goto out;
	for (i = 0; i < v.n; i++)
		if (replay_row(s, a, &v.v[i]) == -1)
			goto out;
	rc = 0;
out:
	nb_store_rows_clear(&v);
	return rc;
}

/* One chunk of a purge (a dry run only counts). */
static int
purge_chunk(struct nb_store *s, void *arg)
{
	struct nb_store_mark m = {.kind = NB_STORE_MARK_PURGE};
	struct chunk_arg *a = arg;
	struct nb_store_rows v = {0};
	int64_t *seqs = NULL;
	size_t i, changed = 0;
	int rc = -1;

	if (chunk_list(s, a, 0, &v) == -1)
		goto out;
	if (a->dry_run || v.n == 0) {
		a->cdone = v.n;
		rc = 0;
		goto out;
	}
	if ((seqs = calloc(v.n, sizeof(*seqs))) == NULL) {
		log_error("out of memory", " rows=%zu", v.n);
		goto out;
	}
	for (i = 0; i < v.n; i++)
		seqs[i] = v.v[i].seq;
	if (s->ops->mark(s->state, &m, seqs, v.n, &changed, &s->tally) == -1)
		goto out;
	a->cdone = changed;
	rc = 0;
out:
	free(seqs);
	nb_store_rows_clear(&v);
	return rc;
}

/*
 * Runs fn over a's filter chunk by chunk, each in a transaction of its own
 * (none for a dry run), until the rows or the limit run out.
 */
static int
chunks_run(
    struct nb_store *s, struct chunk_arg *a, nb_store_tx_fn fn, const char *op)
{
	for (;;) {
		if (a->dry_run) {
			if (nb_store_ready(s) == -1 || fn(s, a) == -1)
				return -1;
		} else if (nb_store_tx(s, NB_STORE_SYNC_FULL, fn, a, op) == -1)
			return -1;
		a->done += a->cdone;
		a->requarantined += a->creq;
		if (a->next == 0)
			return 0;
		/* The limit counts the rows listed, as one listing would. */
		if (a->left != 0 && (a->left -= a->listed) == 0)
			return 0;
		page_on(&a->f, a->next);
	}
}

/* The walk of a replay or purge over f (NULL: every dead letter). */
static void
chunk_init(struct chunk_arg *a, const struct nb_store_filter *f, int dry_run)
{
	static const struct nb_store_filter all;

	memset(a, 0, sizeof(*a));
	a->f = f != NULL ? *f : all;
	a->f.states = nb_store_filter_states(f);
	a->f.newest_first = 0;
	a->left = a->f.limit;
	a->dry_run = dry_run;
}

int
nb_store_replay(struct nb_store *s, const struct nb_store_filter *f,
    int dry_run, int64_t now_ms, nb_store_revalidate_fn fn, size_t *replayed,
    size_t *requarantined)
{
	struct chunk_arg a;

	*replayed = *requarantined = 0;
	chunk_init(&a, f, dry_run);
	/* Pending rows are never replayed; keep them out of the limit too. */
	a.f.states &= ~NB_STATE_MASK_PENDING;
	a.now_ms = now_ms;
	a.fn = fn;
	if (a.f.states == 0 || nb_store_key_none(f))
		return 0;
	if (chunks_run(s, &a, replay_chunk, __func__) == -1)
		return -1;
	*replayed = a.done;
	*requarantined = a.requarantined;
	return 0;
}

int
nb_store_purge(struct nb_store *s, const struct nb_store_filter *f, int dry_run,
    size_t *purged)
{
	struct chunk_arg a;

	*purged = 0;
	chunk_init(&a, f, dry_run);
	if (nb_store_key_none(f))
		return 0;
	if (chunks_run(s, &a, purge_chunk, __func__) == -1)
		return -1;
	*purged = a.done;
	return 0;
}
