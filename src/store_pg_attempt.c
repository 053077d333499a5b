/* SPDX-License-Identifier: ISC */
/*
 * store_pg_attempt: the attempt history of the PostgreSQL backend.
 *
 * One row per batch attempt; a row of events is linked to its failed
 * attempts (its first NB_STORE_ATTEMPTS_KEPT and its latest) so an
 * operator can see why it failed, and the delivering attempts go with the
 * retention prune.  The marks of store_pg_rows.c and the erasure of
 * store_pg_find.c call these inside the transaction store.c opened; the
 * delivering attempt itself goes in with the delivered mark, in one
 * statement (store_pg_sql.c).
 */
#include <stdint.h>

#include <libpq-fe.h>

#include "store_pg.h"

/* The array buffer of the statements here (arr[7] is the lease marks'). */
#define ARR_ATTEMPT 6

int
pgs_attempt_record(struct pg *q, struct nb_store_attempt *a)
{
	struct params p = {0};
	PGresult *res;

	if (a == NULL || a->id != 0)
		return 0;
	pgs_par_int(&p, a->at_ms);
	pgs_par_int(&p, a->end_ms);
	pgs_par_int(&p, a->status);
	pgs_par_text(&p, a->error);
	pgs_par_int(&p, (int64_t)a->batch_size);
	if ((res = pgs_exec(q, PS_ATTEMPT_ADD, &p, 0, __func__)) == NULL)
		return -1;
	a->id = PQntuples(res) == 1 ? pgs_col_int64(res, 0, 0) : 0;
	PQclear(res);
	return a->id != 0 ? 0 : -1;
}

int
pgs_links_add(
    struct pg *q, const int64_t *seqs, size_t n, size_t stride, int64_t attempt)
{
	struct params p = {0};

	if (n == 0)
		return 0;
	if (pgs_seqs_param(&p, &q->arr[ARR_ATTEMPT], seqs, n, stride) == -1)
		return -1;
	pgs_par_int(&p, attempt);
	pgs_par_int(&p, NB_STORE_ATTEMPTS_KEPT);
	return pgs_run(q, PS_LINK_ADD, &p, __func__);
}

int
pgs_links_drop(struct pg *q, const int64_t *seqs, size_t n)
{
	struct params p = {0};

	if (n == 0)
		return 0;
	if (pgs_seqs_param(&p, &q->arr[ARR_ATTEMPT], seqs, n, sizeof(*seqs)) ==
	    -1)
		return -1;
	return pgs_run(q, PS_LINKS_DROP, &p, __func__);
}

int
pgs_prune_attempts(
    struct pg *q, int64_t delivered_before_ms, size_t limit, int *more)
{
	struct params p = {0};
	size_t pruned;

	pgs_par_int(&p, delivered_before_ms);
	pgs_par_int(&p, (int64_t)limit);
	if (pgs_run_count(q, PS_PRUNE_ATTEMPTS, &p, &pruned, __func__) == -1)
		return -1;
	if (pruned == limit)
		*more = 1;
	return 0;
}
