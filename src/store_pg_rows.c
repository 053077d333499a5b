/* SPDX-License-Identifier: ISC */
/*
 * store_pg_rows: reading and changing stored rows in the PostgreSQL
 * backend.
 *
 * A claim is one UPDATE over a FOR UPDATE SKIP LOCKED sub-select that
 * records its connection as lease_owner and reads the payloads of the rows
 * it leased from their own table, in binary (no hex to decode); a late
 * release from an instance whose lease ran out cannot drop the lease of
 * the one that took the row over.  The marks are set-based (one statement
 * per batch); those whose result is not needed (extend, release) go out
 * with the COMMIT.  Lists and the prune walk indexes a bounded step at a
 * time, as SQLite's.  All writes run inside the transaction store.c
 * opened.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "nudgebridge/person.h"
#include "nudgebridge/timeutil.h"
#include "store_pg.h"

/* The payload's column in the rows read back, the hit flag's in lists. */
#define COL_PAYLOAD 4
#define COL_HIT	    13

/*
 * Reads a row (the columns of EVENT_COLS, text or binary) into ev, zeroed
 * first; the payload when with_payload (a NULL reads as empty).  0 or -1
 * (ENOMEM).
 */
static int
row_read(
    const PGresult *res, int row, struct nb_stored_event *ev, int with_payload)
{
	int failed = 0;

	memset(ev, 0, sizeof(*ev));
	ev->seq = pgs_col_int64(res, row, 0);
	nb_store_key_format(ev->seq, ev->key);
	ev->source = pgs_col_strdup(res, row, 1, &failed);
	ev->id = pgs_col_strdup(res, row, 2, &failed);
	ev->type = pgs_col_strdup(res, row, 3, &failed);
	if (with_payload) {
		ev->rawlen = (size_t)PQgetlength(res, row, COL_PAYLOAD);
		if ((ev->raw = malloc(ev->rawlen + 1)) == NULL)
			failed = 1;
		else {
			memcpy(ev->raw, PQgetvalue(res, row, COL_PAYLOAD),
			    ev->rawlen);
			ev->raw[ev->rawlen] = '\0';
		}
	}
	ev->state = (enum nb_event_state)pgs_col_int64(res, row, 5);
	ev->reason = pgs_col_strdup(res, row, 6, &failed);
	ev->error = pgs_col_strdup(res, row, 7, &failed);
	ev->attempts = (int)pgs_col_int64(res, row, 8);
	ev->received_ms = pgs_col_int64(res, row, 9);
	ev->age_base_ms = pgs_col_int64(res, row, 10);
	ev->updated_ms = pgs_col_int64(res, row, 11);
	ev->rule = (enum nb_segment_rule)pgs_col_int64(res, row, 12);
	if (ev->source == NULL)
		failed = 1;
	return failed ? -1 : 0;
}

/* Appends row row of res.  0 or -1 (logged). */
static int
row_push(
    struct nb_store_rows *v, const PGresult *res, int row, int with_payload)
{
	struct nb_stored_event *ev;

	if ((ev = nb_store_rows_next(v)) == NULL)
		return -1;
	if (row_read(res, row, ev, with_payload) == -1) {
		log_error("out of memory", " rows=%zu", v->n);
		return -1;
	}
	return 0;
}

/* A text[] of the claim's sources, as a binary array in b. */
static int
sources_param(
    struct params *p, struct nb_buf *b, const char *const *v, size_t n)
{
	size_t i;

	pgs_arr_start(b, PG_OID_TEXT, n);
	for (i = 0; i < n; i++)
		pgs_arr_text(b, v[i]);
	return pgs_par_arr(p, b);
}

int
pgs_claim(void *state, const struct nb_store_claim *c, struct nb_store_rows *v)
{
	struct pg *q = state;
	struct pgs_batch *b = &q->batch;
	struct params *p;
	PGresult *res;
	int i, rc = -1;

	/* One round trip: the plan's setting, then the claim. */
	pgs_batch_reset(b);
	pgs_batch_add_sql(b, pgs_claim_plan);
	p = pgs_batch_add(b, PS_CLAIM, 1);
	if (sources_param(p, &q->arr[0], c->sources, c->nsources) == -1)
		return -1;
	pgs_par_int(p, c->now_ms);
	pgs_par_int(p, c->lease_until_ms);
	pgs_par_int(p, c->limit > INT64_MAX ? INT64_MAX : (int64_t)c->limit);
	pgs_par_text(p, q->owner);
	if (pgs_batch_run(q, b, __func__) == -1) {
		pgs_batch_reset(b);
		return -1;
	}
	res = b->it[1].res;
	b->it[1].res = NULL;
	pgs_batch_reset(b);
	for (i = 0; i < PQntuples(res); i++) {
		/* A damaged row: reported, and the claim leases nothing. */
		if (PQgetisnull(res, i, COL_PAYLOAD)) {
			log_error("payload missing", " seq=%" PRId64,
			    pgs_col_int64(res, i, 0));
			goto out;
		}
		if (row_push(v, res, i, 1) == -1)
			goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/*
 * Runs a statement that returns (source, count[, state, reason]) rows of
 * what it changed and tallies them: a move from from to to, or, with the
 * state and reason columns, from each row's own bucket (counted by state
 * in by_state unless NULL); with err, also err's error (retry: state
 * pending; dead: as err says).
 */
static int
run_moves(struct pg *q, enum pgs_stmt id, const struct params *p,
    struct nb_store_tally *t, enum nb_store_bucket from,
    enum nb_store_bucket to, const struct nb_store_mark *err, size_t *changed,
    int64_t *by_state)
{
	PGresult *res;
	const char *source, *reason;
	int64_t n, state;
	int i, rc = 0;

	*changed = 0;
	if ((res = pgs_exec(q, id, p, 0, __func__)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(res) && rc == 0; i++) {
		source = PQgetvalue(res, i, 0);
		n = pgs_col_int64(res, i, 1);
		*changed += (size_t)n;
		if (PQnfields(res) >= 4) {
			reason = PQgetisnull(res, i, 3) ? NULL
							: PQgetvalue(res, i, 3);
			state = pgs_col_int64(res, i, 2);
			from = nb_store_bucket_of(
			    (enum nb_event_state)state, reason);
			if (by_state != NULL && state >= 0 && state <= 2)
				by_state[state] += n;
		}
		if (nb_store_tally_move(t, source, from, to, n) == -1 ||
		    (err != NULL &&
			nb_store_tally_error(t, source, err->error,
			    err->kind == NB_STORE_MARK_DEAD ? NB_STATE_DEAD
							    : NB_STATE_PENDING,
			    err->reason, err->ms, n) == -1))
			rc = -1;
	}
	PQclear(res);
	return rc;
}

/*
 * A replay's change of one row (PENDING or REQUARANTINE), made only while
 * the row is as it was read; tallied when made.
 */
static int
mark_one(struct pg *q, const struct nb_store_mark *m, int64_t seq,
    size_t *changed, struct nb_store_tally *t)
{
	struct params p = {0};
	size_t n;

	pgs_par_int(&p, seq);
	/* The attempt that delivered it stays in its history. */
	if (m->kind == NB_STORE_MARK_PENDING &&
	    pgs_run(q, PS_LINK_LAST, &p, __func__) == -1)
		return -1;
	if (m->kind == NB_STORE_MARK_PENDING) {
		pgs_par_int(&p, m->ms);
		pgs_par_text(&p, m->id);
		pgs_par_text(&p, m->type);
		pgs_par_int(&p, (int64_t)m->state);
		pgs_par_text(&p, m->was_reason);
	} else {
		pgs_par_text(&p, m->error);
		pgs_par_int(&p, m->ms);
	}
	if (pgs_run_count(q,
		m->kind == NB_STORE_MARK_PENDING ? PS_REPLAY_PENDING
						 : PS_REQUARANTINE,
		&p, &n, __func__) == -1)
		return -1;
	if (n == 0)
		return 0;
	*changed += n;
	return nb_store_tally_replay(t, m->source, m->state, m->was_reason,
	    m->kind == NB_STORE_MARK_PENDING ? NULL : m->error, m->ms);
}

/*
 * A lease change whose result nobody needs: queued to leave with the
 * COMMIT, one round trip for the whole transaction.
 */
static int
mark_queue(
    struct pg *q, const struct nb_store_mark *m, const int64_t *seqs, size_t n)
{
	struct params *p;

	if (q->tail.n == PG_BATCH_MAX) {
		log_error("batch full", " n=%zu", q->tail.n);
		return -1;
	}
	p = pgs_batch_add(&q->tail,
	    m->kind == NB_STORE_MARK_EXTEND ? PS_EXTEND : PS_RELEASE, 0);
	/* The array stays in arr[7] until the COMMIT has gone. */
	if (pgs_seqs_param(p, &q->arr[7], seqs, n, sizeof(*seqs)) == -1)
		return -1;
	if (m->kind == NB_STORE_MARK_EXTEND)
		pgs_par_int(p, m->ms);
	pgs_par_text(p, q->owner);
	return 0;
}

int
pgs_purge_rows(struct pg *q, const int64_t *seqs, size_t n, size_t *changed,
    struct nb_store_tally *t, int64_t deleted[3])
{
	struct params p = {0};

	if (pgs_links_drop(q, seqs, n) == -1 ||
	    pgs_seqs_param(&p, &q->arr[0], seqs, n, sizeof(*seqs)) == -1)
		return -1;
	return run_moves(q, PS_PURGE, &p, t, NB_BUCKET_NONE, NB_BUCKET_NONE,
	    NULL, changed, deleted);
}

/*
 * DELIVERED: the rows of p's $1, with the attempt that delivered them in
 * the same statement (see PS_DELIVERED).
 */
static int
mark_delivered(struct pg *q, const struct nb_store_mark *m, struct params *p,
    struct nb_store_tally *t, size_t *changed)
{
	const struct nb_store_attempt *a = m->att;
	int i;

	pgs_par_int(p, m->ms);
	if (a == NULL) {
		for (i = 0; i < 6; i++)
			pgs_par_text(p, NULL);
	} else {
		pgs_par_int(p, a->at_ms);
		pgs_par_int(p, a->end_ms);
		pgs_par_int(p, a->status);
		pgs_par_text(p, a->error);
		pgs_par_int(p, (int64_t)a->batch_size);
		if (a->id != 0)
			pgs_par_int(p, a->id);
		else
			pgs_par_text(p, NULL);
	}
	return run_moves(q, PS_DELIVERED, p, t, NB_BUCKET_PENDING,
	    NB_BUCKET_DELIVERED, NULL, changed, NULL);
}

int
pgs_mark(void *state, const struct nb_store_mark *m, const int64_t *seqs,
    size_t n, size_t *changed, struct nb_store_tally *t)
{
	struct pg *q = state;
	struct params p = {0};
	size_t i;

	*changed = 0;
	switch (m->kind) {
	case NB_STORE_MARK_PENDING:
	case NB_STORE_MARK_REQUARANTINE:
		for (i = 0; i < n; i++)
			if (mark_one(q, m, seqs[i], changed, t) == -1)
				return -1;
		return 0;
	case NB_STORE_MARK_EXTEND:
		return mark_queue(q, m, seqs, n);
	case NB_STORE_MARK_RELEASE:
	case NB_STORE_MARK_LINK:
		/* The links go now, the release with the COMMIT. */
		if (m->att != NULL &&
		    (pgs_attempt_record(q, m->att) == -1 ||
			pgs_links_add(q, seqs, n, sizeof(*seqs), m->att->id) ==
			    -1))
			return -1;
		if (m->kind == NB_STORE_MARK_LINK)
			return 0;
		return mark_queue(q, m, seqs, n);
	case NB_STORE_MARK_PURGE:
		return pgs_purge_rows(q, seqs, n, changed, t, NULL);
	default:
		break;
	}
	if (pgs_seqs_param(&p, &q->arr[0], seqs, n, sizeof(*seqs)) == -1)
		return -1;
	if (m->kind == NB_STORE_MARK_DELIVERED)
		return mark_delivered(q, m, &p, t, changed);
	if (pgs_attempt_record(q, m->att) == -1)
		return -1;
	pgs_par_text(&p, m->reason);
	pgs_par_text(&p, m->error);
	pgs_par_int(&p, m->ms);
	if (run_moves(q, PS_DEAD, &p, t, NB_BUCKET_PENDING,
		nb_store_bucket_of(NB_STATE_DEAD, m->reason), m, changed,
		NULL) == -1)
		return -1;
	if (m->att == NULL || *changed == 0)
		return 0;
	return pgs_links_add(q, seqs, n, sizeof(*seqs), m->att->id);
}

int
pgs_retry(void *state, const struct nb_store_retry *rows, size_t n,
    const char *error, int64_t at_ms, struct nb_store_attempt *att,
    struct nb_store_tally *t)
{
	struct pg *q = state;
	struct nb_store_mark err = {
	    .kind = NB_STORE_MARK_RELEASE, .error = error, .ms = at_ms};
	struct params p = {0};
	size_t changed;

	if (pgs_attempt_record(q, att) == -1)
		return -1;
	if (pgs_seqs_param(&p, &q->arr[0], &rows[0].seq, n, sizeof(*rows)) ==
		-1 ||
	    pgs_seqs_param(
		&p, &q->arr[1], &rows[0].next_ms, n, sizeof(*rows)) == -1)
		return -1;
	pgs_par_text(&p, q->owner);
	pgs_par_text(&p, error);
	/* No move: the rows stay pending; only the error counts. */
	if (run_moves(q, PS_RETRY, &p, t, NB_BUCKET_PENDING, NB_BUCKET_PENDING,
		&err, &changed, NULL) == -1)
		return -1;
	if (att == NULL || changed == 0)
		return 0;
	return pgs_links_add(q, &rows[0].seq, n, sizeof(*rows), att->id);
}

/*
 * The list statement for f and its parameters in p.  A key narrows the
 * range to its own seq, so any of them finds it in one probe.
 */
static enum pgs_stmt
list_params(struct params *p, const struct nb_store_filter *f, int payload)
{
	int64_t seq = 0, lo, hi;

	lo = f->after_seq > 0 ? f->after_seq : 0;
	hi = f->before_seq > 0 ? f->before_seq : INT64_MAX;
	if (f->key != NULL && nb_store_key_parse(f->key, &seq) == 0) {
		lo = seq - 1 > lo ? seq - 1 : lo;
		hi = seq < INT64_MAX - 1 && seq + 1 < hi ? seq + 1 : hi;
		pgs_par_int(p, seq);
	} else
		pgs_par_text(p, NULL);
	pgs_par_text(p, f->source);
	pgs_par_text(p, f->type);
	pgs_par_text(p, f->reason);
	pgs_par_text(p, f->id);
	pgs_par_int(p, f->since_ms);
	pgs_par_int(p, f->until_ms);
	pgs_par_int(p, (int64_t)nb_store_filter_states(f));
	pgs_par_int(p, lo);
	pgs_par_int(p, hi);
	if (f->max_scan == 0 || f->max_scan > INT64_MAX)
		pgs_par_text(p, NULL);
	else
		pgs_par_int(p, (int64_t)f->max_scan);
	pgs_par_text(p, payload ? "true" : "false");
	if (f->key != NULL)
		return f->newest_first ? PS_LIST_DESC : PS_LIST_ASC;
	if (f->email == NULL && f->uid == NULL)
		return nb_store_filter_states(f) == NB_STATE_MASK_DEAD
		    ? (f->newest_first ? PS_LIST_DEAD_DESC : PS_LIST_DEAD_ASC)
		    : (f->newest_first ? PS_LIST_DESC : PS_LIST_ASC);
	/* A person's lists walk people and take its keys, $13 and $14. */
	if (f->email != NULL)
		pgs_par_int(p, nb_person_key_email(f->email, strlen(f->email)));
	else
		pgs_par_text(p, NULL);
	if (f->uid != NULL)
		pgs_par_int(p, nb_person_key_uid(f->uid, strlen(f->uid)));
	else
		pgs_par_text(p, NULL);
	if (f->email != NULL)
		return f->newest_first ? PS_LIST_EMAIL_DESC : PS_LIST_EMAIL_ASC;
	return f->newest_first ? PS_LIST_UID_DESC : PS_LIST_UID_ASC;
}

/* One page, as sq_list() makes it (see there). */
int
pgs_list(void *state, const struct nb_store_filter *f, int with_payload,
    struct nb_store_rows *v, int64_t *next)
{
	struct pg *q = state;
	struct params p = {0};
	enum pgs_stmt id;
	PGresult *res;
	size_t hits = 0;
	int i, rows, rc = -1;

	*next = 0;
	id = list_params(&p, f, with_payload);
	if ((res = pgs_exec(q, id, &p, 1, __func__)) == NULL)
		return -1;
	rows = PQntuples(res);
	for (i = 0; i < rows; i++) {
		if (pgs_col_int64(res, i, COL_HIT) == 0)
			continue;
		if (row_push(v, res, i, with_payload) == -1)
			goto out;
		if (f->limit != 0 && ++hits == f->limit) {
			*next = pgs_col_int64(res, i, 0);
			rc = 0;
			goto out;
		}
	}
	if (f->key == NULL && f->max_scan != 0 && (size_t)rows == f->max_scan)
		*next = pgs_col_int64(res, rows - 1, 0);
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Old dedupe keys, retained delivered rows, and the slots of the gone. */
int
pgs_prune(void *state, int64_t dedupe_after_ms, int64_t delivered_before_ms,
    size_t limit, int *more, struct nb_store_tally *t)
{
	static const enum pgs_stmt keys[] = {
	    PS_PRUNE_REQUESTS, PS_PRUNE_EVENTS};
	struct pg *q = state;
	struct params p;
	size_t i, pruned;

	*more = 0;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		memset(&p, 0, sizeof(p));
		pgs_par_int(&p, dedupe_after_ms);
		pgs_par_int(&p, (int64_t)limit);
		if (pgs_run_count(q, keys[i], &p, &pruned, __func__) == -1)
			return -1;
		if (pruned == limit)
			*more = 1;
	}
	memset(&p, 0, sizeof(p));
	pgs_par_int(&p, delivered_before_ms);
	pgs_par_int(&p, (int64_t)limit);
	if (run_moves(q, PS_PRUNE_DELIVERED, &p, t, NB_BUCKET_DELIVERED,
		NB_BUCKET_NONE, NULL, &pruned, NULL) == -1)
		return -1;
	if (pruned == limit)
		*more = 1;
	/* The attempts of the rows pruned, once none is left to prune. */
	if (!*more &&
	    pgs_prune_attempts(q, delivered_before_ms, limit, more) == -1)
		return -1;
	return pgs_fold(q);
}

/* A minimal durable write, with the COMMIT: one round trip. */
int
pgs_probe(void *state)
{
	struct pg *q = state;
	struct params *p;

	p = pgs_batch_add(&q->tail, PS_PROBE, 0);
	pgs_par_int(p, nb_time_now_ms());
	return 0;
}
