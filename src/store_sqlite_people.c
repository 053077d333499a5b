/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_people: the person index of the SQLite backend, folded late.
 *
 * The append writes each row's person keys into events, unindexed.  Later,
 * outside the append's transaction, sq_fold() files the rows after the mark
 * people_fold.folded into people, keyed by (bucket, kind, key, seq) with
 * bucket = seq >> SQ_PEOPLE_SHIFT, so that it writes only the pages of the
 * newest bucket (in the cache, so the rows go in seq order: sorting them
 * first saved no page) instead of a random page of a large index per
 * event.  A search (sq_people_list()) reads the folded part bucket by
 * bucket, one index seek each, and the rows after the mark straight from
 * events, a range of its primary key that the committer keeps short.  Both
 * read the one mark they read first, so a fold in between changes nothing
 * they see.  Erase and purge drop the entries of the rows they delete; the
 * retention prune drops the buckets below the oldest row left.
 */
#include <stdint.h>
#include <string.h>

#include "nudgebridge/person.h"
#include "store_sqlite.h"

/* Where the rows of the index end, read once per call. */
struct people_state {
	int64_t folded;	    /* the rows up to it are in people */
	int64_t min_bucket; /* the oldest bucket, -1: none */
	int64_t top;	    /* the newest row, 0: none */
};

/* A page being read: what sq_list() counts, over several statements. */
struct walk {
	struct sq *q;
	const struct nb_store_filter *f;
	int with_payload;
	struct nb_store_rows *v;
	size_t looked, hits;
	int64_t seq; /* the last row looked at */
	int done;    /* the page is full, or its scan bound reached */
};

static int
people_state(struct sq *q, struct people_state *ps)
{
	sqlite3_stmt *st;
	int step;

	if ((st = sq_stmt_get(q, ST_PEOPLE_STATE)) == NULL)
		return -1;
	memset(ps, 0, sizeof(*ps));
	ps->min_bucket = -1;
	if ((step = sqlite3_step(st)) == SQLITE_ROW) {
		ps->folded = sqlite3_column_int64(st, 0);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			ps->min_bucket = sqlite3_column_int64(st, 1);
		ps->top = sqlite3_column_int64(st, 2);
		step = sqlite3_step(st);
	}
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, "people state");
		return -1;
	}
	return 0;
}

/*
 * Runs the list statement id over the seqs between lo and hi (excluded),
 * bucket b (the tail: b < 0), taking its rows as sq_list() does.
 */
static int
walk_run(struct walk *w, enum sq_stmt id, int64_t b, int64_t lo, int64_t hi)
{
	const struct nb_store_filter *f = w->f;
	int tail = b < 0;
	sqlite3_stmt *st;
	int step = SQLITE_DONE;

	if (lo + 1 >= hi)
		return 0;
	if ((st = sq_stmt_get(w->q, id)) == NULL)
		return -1;
	sq_list_bind(st, f, w->with_payload);
	sqlite3_bind_int64(st, 9, lo);
	sqlite3_bind_int64(st, 10, hi);
	sqlite3_bind_int64(
	    st, 11, f->max_scan == 0 ? -1 : (int64_t)(f->max_scan - w->looked));
	if (!tail) {
		sqlite3_bind_int64(st, 15, b);
		sqlite3_bind_int(st, 16, f->email != NULL ? 0 : 1);
		sqlite3_bind_int64(st, 17,
		    f->email != NULL
			? nb_person_key_email(f->email, strlen(f->email))
			: nb_person_key_uid(f->uid, strlen(f->uid)));
	}
	while (!w->done && (step = sqlite3_step(st)) == SQLITE_ROW) {
		w->seq =
		    sqlite3_column_int64(st, tail ? 0 : SQ_COL_PAYLOAD + 2);
		w->looked++;
		if (f->max_scan != 0 && w->looked == f->max_scan)
			w->done = 1;
		if (!sqlite3_column_int(st, SQ_COL_PAYLOAD + 1))
			continue;
		if (sq_rows_push(w->v, st, w->with_payload) == -1) {
			sqlite3_reset(st);
			return -1;
		}
		if (f->limit != 0 && ++w->hits == f->limit)
			w->done = 1;
	}
	sqlite3_reset(st);
	if (!w->done && step != SQLITE_DONE) {
		sq_db_log(w->q, __func__, "list");
		return -1;
	}
	return 0;
}

int
sq_people_list(struct sq *q, const struct nb_store_filter *f, int with_payload,
    struct nb_store_rows *v, int64_t *next)
{
	struct walk w = {q, f, with_payload, v, 0, 0, 0, 0};
	struct people_state ps;
	int64_t lo = f->after_seq > 0 ? f->after_seq : 0;
	int64_t hi = f->before_seq > 0 ? f->before_seq : INT64_MAX;
	int64_t first, last, b, fhi;

	*next = 0;
	if (people_state(q, &ps) == -1)
		return -1;
	/* The folded part: seqs in (lo, fhi), buckets first..last. */
	fhi = hi < ps.folded + 1 ? hi : ps.folded + 1;
	first = lo >> SQ_PEOPLE_SHIFT;
	if (first < ps.min_bucket)
		first = ps.min_bucket;
	last = ps.min_bucket < 0 || fhi < 2 ? -1 : (fhi - 1) >> SQ_PEOPLE_SHIFT;
	if (!f->newest_first) {
		for (b = first; b <= last && !w.done; b++)
			if (walk_run(&w, ST_PEOPLE_ASC, b, lo, fhi) == -1)
				return -1;
		if (!w.done &&
		    walk_run(&w, ST_PEOPLE_TAIL_ASC, -1,
			lo > ps.folded ? lo : ps.folded, hi) == -1)
			return -1;
	} else {
		if (walk_run(&w, ST_PEOPLE_TAIL_DESC, -1,
			lo > ps.folded ? lo : ps.folded, hi) == -1)
			return -1;
		for (b = last; b >= first && !w.done; b--)
			if (walk_run(&w, ST_PEOPLE_DESC, b, lo, fhi) == -1)
				return -1;
	}
	if (w.done)
		*next = w.seq;
	return 0;
}

int
sq_fold(void *state, size_t max)
{
	struct sq *q = state;
	struct people_state ps;
	sqlite3_stmt *st;
	int64_t to;

	if (people_state(q, &ps) == -1)
		return -1;
	to = ps.top - ps.folded > (int64_t)max ? ps.folded + (int64_t)max
					       : ps.top;
	if (to > ps.folded) {
		if ((st = sq_stmt_get(q, ST_PEOPLE_FOLD)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, ps.folded);
		sqlite3_bind_int64(st, 2, to);
		if (sq_stmt_run(q, st, __func__, "fold") == -1)
			return -1;
		if ((st = sq_stmt_get(q, ST_PEOPLE_FOLDED)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, to);
		if (sq_stmt_run(q, st, __func__, "fold") == -1)
			return -1;
	}
	q->unfolded = ps.top > to ? (size_t)(ps.top - to) : 0;
	q->unfolded_known = 1;
	return 0;
}

size_t
sq_unfolded(void *state)
{
	struct sq *q = state;
	struct people_state ps;

	if (!q->unfolded_known) {
		if (people_state(q, &ps) == -1)
			return 0;
		q->unfolded =
		    ps.top > ps.folded ? (size_t)(ps.top - ps.folded) : 0;
		q->unfolded_known = 1;
	}
	return q->unfolded;
}

int
sq_people_forget(struct sq *q)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_PEOPLE_FORGET)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	return sq_stmt_run(q, st, __func__, "forget");
}

int
sq_people_prune(struct sq *q, size_t limit, int *more)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_PEOPLE_PRUNE)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (int64_t)limit);
	if (sq_stmt_run(q, st, __func__, "prune") == -1)
		return -1;
	if ((size_t)sqlite3_changes64(q->db) == limit)
		*more = 1;
	return 0;
}
