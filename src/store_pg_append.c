/* SPDX-License-Identifier: ISC */
/*
 * store_pg_append: a group of webhook requests stored in one transaction
 * of the PostgreSQL backend.
 *
 * Three round trips whatever the group's size: the webhook ids of all
 * requests in one statement (BEGIN rides along), then the event ids of the
 * new requests in one statement, then the rows and payloads of the new
 * events in one statement that goes out with the COMMIT.  Each takes its
 * keys or rows as binary array parameters.  A key upsert returns only the
 * keys that were new, so of two instances receiving one webhook at once
 * exactly one stores it.  A key that comes twice in one group goes in a
 * later round (statement), after its first occurrence, so the outcome is
 * that of storing the requests one after the other; rounds past the first
 * are rare (a sender repeating itself within a group).
 */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "nudgebridge/nudgespot.h"
#include "store_pg.h"

/* A dedupe key of an append: a request's webhook id or an event's id. */
struct pk {
	struct nb_append *r;
	const char *key;
	int64_t window; /* received_ms - dedupe_after_ms */
	size_t round;	/* how often the same key came before it */
	size_t pos;	/* its place in its statement's arrays, from 1 */
	int fresh;	/* out: new, or older than the window (now recorded) */
};

/* Room for n keys and their sort order in q->scratch. */
static int
scratch(struct pg *q, size_t n, struct pk **keys, struct pk ***order)
{
	size_t need;
	void *p;

	if (n > SIZE_MAX / (sizeof(struct pk) + sizeof(struct pk *))) {
		log_error("too many keys", " n=%zu", n);
		return -1;
	}
	need = n * (sizeof(struct pk) + sizeof(struct pk *));
	if (need > q->scratchcap) {
		if ((p = realloc(q->scratch, need)) == NULL) {
			log_error("out of memory", " keys=%zu", n);
			return -1;
		}
		q->scratch = p;
		q->scratchcap = need;
	}
	*keys = q->scratch;
	*order =
	    (struct pk **)(void *)((char *)q->scratch + n * sizeof(struct pk));
	return 0;
}

static int
pk_cmp(const void *a, const void *b)
{
	const struct pk *x = *(struct pk *const *)a,
			*y = *(struct pk *const *)b;
	int c;

	if ((c = strcmp(x->r->source, y->r->source)) != 0 ||
	    (c = strcmp(x->key, y->key)) != 0)
		return c;
	return x < y ? -1 : x > y;
}

/* Numbers each key's occurrence among the same keys before it. */
static size_t
pk_rounds(struct pk *k, struct pk **order, size_t n)
{
	size_t i, last = 0;

	for (i = 0; i < n; i++)
		order[i] = &k[i];
	qsort(order, n, sizeof(*order), pk_cmp);
	for (i = 0; i < n; i++) {
		order[i]->round = i > 0 &&
			strcmp(order[i]->r->source, order[i - 1]->r->source) ==
			    0 &&
			strcmp(order[i]->key, order[i - 1]->key) == 0
		    ? order[i - 1]->round + 1
		    : 0;
		if (order[i]->round > last)
			last = order[i]->round;
	}
	return last;
}

/*
 * Adds to q's batch the statement for the keys of round with the window of
 * k[from] that are not yet in a statement (pos 0), into arrays arr[0..2];
 * slots[pos - 1] is the key at pos.  The number of keys.
 */
static size_t
keys_statement(struct pg *q, enum pgs_stmt id, struct pk *k, size_t n,
    size_t from, size_t round, struct nb_buf *arr, struct pk **slots)
{
	struct params *p;
	size_t i, count = 0;
	int64_t w = k[from].window;

	for (i = from; i < n; i++)
		if (k[i].round == round && k[i].pos == 0 && k[i].window == w) {
			k[i].pos = ++count;
			slots[count - 1] = &k[i];
		}
	pgs_arr_start(&arr[0], PG_OID_TEXT, count);
	pgs_arr_start(&arr[1], PG_OID_TEXT, count);
	pgs_arr_start(&arr[2], PG_OID_INT8, count);
	for (i = from; i < n; i++) {
		if (k[i].round != round || k[i].window != w || k[i].pos == 0)
			continue;
		pgs_arr_text(&arr[0], k[i].r->source);
		pgs_arr_text(&arr[1], k[i].key);
		pgs_arr_int8(&arr[2], k[i].r->received_ms);
	}
	p = pgs_batch_add(&q->batch, id, 0);
	pgs_par_arr(p, &arr[0]);
	pgs_par_arr(p, &arr[1]);
	pgs_par_arr(p, &arr[2]);
	pgs_par_int(p, w);
	return count;
}

/*
 * Marks fresh the keys whose positions the batch's statements returned;
 * the keys of statement s are slots[base[s]..].
 */
static int
keys_fresh(
    struct pg *q, struct pk **slots, const size_t *base, const size_t *count)
{
	PGresult *res;
	size_t s;
	int row;
	int64_t pos;

	for (s = 0; s < q->batch.n; s++) {
		res = q->batch.it[s].res;
		for (row = 0; row < PQntuples(res); row++) {
			pos = pgs_col_int64(res, row, 0);
			if (pos < 1 || (uint64_t)pos > count[s]) {
				log_error(
				    "key out of range", " pos=%" PRId64, pos);
				return -1;
			}
			slots[base[s] + (size_t)pos - 1]->fresh = 1;
		}
	}
	return 0;
}

/*
 * Records the keys k[0..n) in id's table and sets their fresh exactly as
 * storing them one by one in order would: round by round, a statement per
 * window length of the round.
 */
static int
keys_mark(
    struct pg *q, enum pgs_stmt id, struct pk *k, struct pk **order, size_t n)
{
	size_t base[PG_ARRAYS / 3], count[PG_ARRAYS / 3];
	size_t round, last, i, ns, used;
	int rc = 0;

	if (n == 0)
		return 0;
	last = pk_rounds(k, order, n);
	/* order is free again: it holds each statement's keys by position. */
	for (round = 0; round <= last && rc == 0; round++) {
		for (i = 0; i < n; i++)
			k[i].pos = 0;
		for (i = 0; i < n && rc == 0;) {
			pgs_batch_reset(&q->batch);
			/* A batch takes what the array buffers hold. */
			for (ns = used = 0; i < n && ns < PG_ARRAYS / 3; i++) {
				if (k[i].round != round || k[i].pos != 0)
					continue;
				base[ns] = used;
				count[ns] = keys_statement(q, id, k, n, i,
				    round, &q->arr[3 * ns], order + used);
				used += count[ns++];
			}
			if (ns == 0)
				break;
			while (ns-- > 0)
				if (nb_buf_failed(&q->arr[3 * ns]) ||
				    nb_buf_failed(&q->arr[3 * ns + 1]) ||
				    nb_buf_failed(&q->arr[3 * ns + 2])) {
					log_error(
					    "keys too large", " n=%zu", n);
					return -1;
				}
			if ((rc = pgs_batch_run(q, &q->batch, __func__)) == 0)
				rc = keys_fresh(q, order, base, count);
		}
	}
	pgs_batch_reset(&q->batch);
	return rc;
}

/* One key of r (its webhook id, or an event's id). */
static int
pk_set(struct pk *k, struct nb_append *r, const char *key)
{
	memset(k, 0, sizeof(*k));
	k->r = r;
	k->key = key;
	if (nb_store_window_len(r, &k->window) == -1) {
		log_error("dedupe window out of range", "%s", "");
		return -1;
	}
	return 0;
}

/* Adds one row to the insert's arrays. */
static void
row_add(struct pg *q, const struct nb_append *r, const struct nb_event *e)
{
	pgs_arr_text(&q->arr[0], r->source);
	pgs_arr_text(&q->arr[1], e->id);
	pgs_arr_text(&q->arr[2], e->type);
	pgs_arr_bytes(&q->arr[3], e->raw != NULL ? e->raw : "",
	    e->raw != NULL ? e->rawlen : 0);
	pgs_arr_int2(
	    &q->arr[4], e->error != NULL ? NB_STATE_DEAD : NB_STATE_PENDING);
	pgs_arr_text(&q->arr[5], e->error);
	pgs_arr_int8(&q->arr[6], r->received_ms);
	/* arr[7] is the lease marks' (see mark_queue()); keys go after it. */
	pgs_arr_int4_or_null(&q->arr[8], e->email_key);
	pgs_arr_int4_or_null(&q->arr[9], e->uid_key);
}

/*
 * The rows of the new events, with every request's counts and the
 * tally: queued as one statement for the COMMIT's round trip.  kev[] are
 * the event keys in the order they were made.
 */
static int
rows_queue(struct pg *q, struct nb_append *const *reqs, size_t n,
    const struct pk *kev, size_t nrows, struct nb_store_tally *t)
{
	const struct nb_event *e;
	struct nb_append *r;
	struct params *p;
	size_t i, j, k = 0;

	for (i = 0; i < 10; i++)
		if (i != 7)
			pgs_arr_start(&q->arr[i],
			    i == 3	 ? PG_OID_BYTEA
				: i == 4 ? PG_OID_INT2
				: i == 6 ? PG_OID_INT8
				: i >= 8 ? PG_OID_INT4
					 : PG_OID_TEXT,
			    nrows);
	for (i = 0; i < n; i++) {
		if ((r = reqs[i])->duplicates != 0)
			continue;
		for (j = 0; j < r->nevents; j++) {
			e = &r->events[j];
			if (e->id != NULL && !kev[k++].fresh) {
				r->duplicates++;
				continue;
			}
			row_add(q, r, e);
			if (e->error == NULL) {
				r->accepted++;
				continue;
			}
			r->quarantined++;
			if (nb_store_tally_error(t, r->source, e->error,
				NB_STATE_DEAD, NB_REASON_QUARANTINED,
				r->received_ms, 1) == -1)
				return -1;
		}
		if (nb_store_tally_append(t, r) == -1)
			return -1;
	}
	if (nrows == 0)
		return 0;
	p = pgs_batch_add(&q->tail, PS_INSERT, 0);
	for (i = 0; i < 10; i++)
		if (i != 7 && pgs_par_arr(p, &q->arr[i]) == -1)
			return -1;
	return 0;
}

/* The request keys; requests seen before count every event a duplicate. */
static int
requests_mark(struct pg *q, struct nb_append *const *reqs, size_t n,
    struct pk *k, struct pk **order)
{
	size_t i, nk = 0;

	for (i = 0; i < n; i++)
		if (reqs[i]->webhook_id != NULL &&
		    pk_set(&k[nk++], reqs[i], reqs[i]->webhook_id) == -1)
			return -1;
	if (keys_mark(q, PS_SEEN_REQUESTS, k, order, nk) == -1)
		return -1;
	for (i = 0; i < nk; i++)
		if (!k[i].fresh)
			k[i].r->duplicates = (int)k[i].r->nevents;
	return 0;
}

int
pgs_append(void *state, struct nb_append *const *reqs, size_t n,
    struct nb_store_tally *t)
{
	struct pg *q = state;
	struct nb_append *r;
	struct pk *k, **order;
	size_t i, j, nk, total = n, nrows = 0;

	for (i = 0; i < n; i++) {
		r = reqs[i];
		r->accepted = r->duplicates = r->quarantined = 0;
		if (r->nevents > SIZE_MAX / 2 - total) {
			log_error("too many events", " requests=%zu", n);
			return -1;
		}
		total += r->nevents;
	}
	if (scratch(q, total, &k, &order) == -1 ||
	    requests_mark(q, reqs, n, k, order) == -1)
		return -1;
	/* An event without an id is never a duplicate. */
	nk = 0;
	for (i = 0; i < n; i++) {
		if ((r = reqs[i])->duplicates != 0)
			continue;
		for (j = 0; j < r->nevents; j++) {
			if (r->events[j].rawlen > INT32_MAX) {
				log_error("event too large", " bytes=%zu",
				    r->events[j].rawlen);
				return -1;
			}
			if (r->events[j].id == NULL)
				nrows++;
			else if (pk_set(&k[nk++], r, r->events[j].id) == -1)
				return -1;
		}
	}
	if (keys_mark(q, PS_SEEN_EVENTS, k, order, nk) == -1)
		return -1;
	for (i = 0; i < nk; i++)
		nrows += (size_t)k[i].fresh;
	return rows_queue(q, reqs, n, k, nrows, t);
}
