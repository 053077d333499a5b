/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_rows: reading and changing stored rows in the SQLite backend.
 *
 * Claims (candidates off the partial index outside any transaction, then
 * read and lease exactly those rows under the write lock), the set-based
 * marks of the deliverer and of replays, retries, operator lists and
 * counts, purge, stats and the retention prune.  A set-based statement
 * takes its seqs as one JSON array, so a batch costs one statement.  All
 * writes run inside the transaction store.c opened.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/log.h"
#include "nudgebridge/person.h"
#include "store_sqlite.h"

/*
 * The list statement for f (see LIST_SELECT), its parameters bound, or
 * NULL (logged).  The index is the primary key unless f asks for a key or
 * for dead letters only (a person: sq_people_list()).
 */
static sqlite3_stmt *
list_stmt(struct sq *q, const struct nb_store_filter *f, int with_payload)
{
	sqlite3_stmt *st;
	enum sq_stmt id;
	unsigned states = nb_store_filter_states(f);

	if (f->key != NULL)
		id = ST_LIST_KEY;
	else if (states == NB_STATE_MASK_DEAD)
		id = f->newest_first ? ST_LIST_DEAD_DESC : ST_LIST_DEAD_ASC;
	else
		id = f->newest_first ? ST_LIST_DESC : ST_LIST_ASC;
	if ((st = sq_stmt_get(q, id)) == NULL)
		return NULL;
	sq_list_bind(st, f, with_payload);
	return st;
}

/* Claim order: next attempt time, then seq. */
static int
due_cmp(int64_t next_a, int64_t seq_a, int64_t next_b, int64_t seq_b)
{
	if (next_a != next_b)
		return next_a < next_b ? -1 : 1;
	if (seq_a != seq_b)
		return seq_a < seq_b ? -1 : 1;
	return 0;
}

static int
candidate_cmp(const void *a, const void *b)
{
	const struct sq_candidate *x = a, *y = b;

	return due_cmp(x->next_ms, x->seq, y->next_ms, y->seq);
}

/* Room for one more candidate in q->cand.  0 or -1 (logged). */
static int
cand_reserve(struct sq *q)
{
	struct sq_candidate *nc;
	size_t cap;

	if (q->ncand < q->candcap)
		return 0;
	cap = q->candcap == 0 ? 64 : q->candcap * 2;
	if ((nc = reallocarray(q->cand, cap, sizeof(*nc))) == NULL) {
		log_error("out of memory", " rows=%zu", q->ncand);
		return -1;
	}
	q->cand = nc;
	q->candcap = cap;
	return 0;
}

/*
 * Collects up to limit due rows per source (cheap: seq and next_ms off the
 * partial index), outside any transaction, so the write lock is held only
 * for the rows chosen; keeps the oldest limit of them in q->cand.
 */
int
sq_claim_prepare(void *state, const struct nb_store_claim *c, size_t *found)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	size_t i;
	int step;

	q->ncand = 0;
	for (i = 0; i < c->nsources; i++) {
		if ((st = sq_stmt_get(q, ST_CLAIM_CANDIDATES)) == NULL)
			return -1;
		sqlite3_bind_text(st, 1, c->sources[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, c->now_ms);
		sqlite3_bind_int64(st, 3,
		    c->limit > INT64_MAX ? INT64_MAX : (int64_t)c->limit);
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			if (cand_reserve(q) == -1) {
				sqlite3_reset(st);
				return -1;
			}
			q->cand[q->ncand].seq = sqlite3_column_int64(st, 0);
			q->cand[q->ncand].next_ms = sqlite3_column_int64(st, 1);
			q->ncand++;
		}
		sqlite3_reset(st);
		if (step != SQLITE_DONE) {
			sq_db_log(q, __func__, "claim candidates");
			return -1;
		}
	}
	if (q->ncand > 1)
		qsort(q->cand, q->ncand, sizeof(*q->cand), candidate_cmp);
	if (q->ncand > c->limit)
		q->ncand = c->limit;
	*found = q->ncand;
	return 0;
}

/* A claimed row and its next_ms, to put the rows in claim order. */
struct claimed {
	int64_t next_ms;
	int64_t seq;
	size_t idx;
};

static int
claimed_cmp(const void *a, const void *b)
{
	const struct claimed *x = a, *y = b;

	return due_cmp(x->next_ms, x->seq, y->next_ms, y->seq);
}

/* Orders v's rows from first on by (next_ms, seq); next_ms[i] is row i's. */
static int
claimed_sort(struct nb_store_rows *v, const int64_t *next_ms)
{
	struct nb_stored_event *sorted = NULL;
	struct claimed *k = NULL;
	size_t i;
	int rc = -1;

	/* The claim reads its rows in candidate order: usually sorted. */
	for (i = 1; i < v->n; i++)
		if (due_cmp(next_ms[i - 1], v->v[i - 1].seq, next_ms[i],
			v->v[i].seq) > 0)
			break;
	if (i >= v->n)
		return 0;
	if ((k = calloc(v->n, sizeof(*k))) == NULL ||
	    (sorted = calloc(v->cap, sizeof(*sorted))) == NULL) {
		log_error("out of memory", " rows=%zu", v->n);
		goto out;
	}
	for (i = 0; i < v->n; i++) {
		k[i].next_ms = next_ms[i];
		k[i].seq = v->v[i].seq;
		k[i].idx = i;
	}
	qsort(k, v->n, sizeof(*k), claimed_cmp);
	for (i = 0; i < v->n; i++)
		sorted[i] = v->v[k[i].idx];
	free(v->v);
	v->v = sorted;
	sorted = NULL;
	rc = 0;
out:
	free(sorted);
	free(k);
	return rc;
}

/*
 * Reads the candidates that are still claimable, payloads included, under
 * the write lock (another claimer may have won a row since they were
 * chosen), into v with each row's next_ms in next[].
 */
static int
claim_read(struct sq *q, const struct nb_store_claim *c,
    struct nb_store_rows *v, int64_t *next)
{
	sqlite3_stmt *st;
	int step;

	if ((st = sq_stmt_get(q, ST_CLAIM_READ)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->now_ms);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_type(st, SQ_COL_PAYLOAD) == SQLITE_NULL) {
			log_error("payload missing", " seq=%" PRId64,
			    (int64_t)sqlite3_column_int64(st, 0));
			sqlite3_reset(st);
			return -1;
		}
		/* The rows are the candidates, so next[] has room. */
		next[v->n] = sqlite3_column_int64(st, SQ_COL_PAYLOAD + 1);
		if (sq_rows_push(v, st, 1) == -1) {
			sqlite3_reset(st);
			return -1;
		}
	}
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, "claim read");
		return -1;
	}
	return 0;
}

int
sq_claim(void *state, const struct nb_store_claim *c, struct nb_store_rows *v)
{
	struct sq *q = state;
	int64_t *next = NULL;
	sqlite3_stmt *st;
	int rc = -1;

	if (q->ncand == 0)
		return 0;
	if (sq_seqs_json(q, &q->cand[0].seq, q->ncand, sizeof(*q->cand)) == -1)
		return -1;
	if ((next = calloc(q->ncand, sizeof(*next))) == NULL) {
		log_error("out of memory", " rows=%zu", q->ncand);
		return -1;
	}
	if (claim_read(q, c, v, next) == -1)
		goto out;
	if (v->n > 0) {
		/* The same list and conditions: the rows just read. */
		if ((st = sq_stmt_get(q, ST_CLAIM_SET)) == NULL)
			goto out;
		sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, c->lease_until_ms);
		sqlite3_bind_int64(st, 3, c->now_ms);
		if (sq_stmt_run(q, st, __func__, "claim") == -1)
			goto out;
		if (sqlite3_changes64(q->db) != (sqlite3_int64)v->n) {
			log_error("claim mismatch", " read=%zu leased=%" PRId64,
			    v->n, (int64_t)sqlite3_changes64(q->db));
			goto out;
		}
	}
	if (claimed_sort(v, next) == -1)
		goto out;
	rc = 0;
out:
	free(next);
	return rc;
}

/*
 * A replay's change of one row (PENDING or REQUARANTINE), made only while
 * the row is as it was read; tallies it when made.  PENDING and
 * REQUARANTINE take one row at a time (a replay's rows each have their own
 * id and type).
 */
static int
mark_one(struct sq *q, const struct nb_store_mark *m, int64_t seq,
    size_t *changed, struct nb_store_tally *t)
{
	sqlite3_stmt *st;

	if (m->kind == NB_STORE_MARK_PENDING) {
		/* The attempt that delivered it stays in its history. */
		if ((st = sq_stmt_get(q, ST_LINK_LAST)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, seq);
		if (sq_stmt_run(q, st, __func__, "replay link") == -1)
			return -1;
		if ((st = sq_stmt_get(q, ST_REPLAY_PENDING)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, seq);
		sqlite3_bind_int64(st, 2, m->ms);
		sqlite3_bind_text(st, 3, m->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, m->type, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, (int)m->state);
		sqlite3_bind_text(st, 6, m->was_reason, -1, SQLITE_STATIC);
	} else {
		if ((st = sq_stmt_get(q, ST_REQUARANTINE)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, seq);
		sqlite3_bind_text(st, 2, m->error, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, m->ms);
	}
	if (sq_stmt_run(q, st, __func__, "replay") == -1)
		return -1;
	if (sqlite3_changes(q->db) == 0)
		return 0;
	(*changed)++;
	return nb_store_tally_replay(t, m->source, m->state, m->was_reason,
	    m->kind == NB_STORE_MARK_PENDING ? NULL : m->error, m->ms);
}

/*
 * Steps a statement that returns the source of each row it changed (a
 * purge also the row's state and reason: then each row moves from its own
 * bucket, and by_state, unless NULL, counts it by state), tallying one
 * move per row, and dead's error when dead is not NULL; resets it.
 * *changed counts the rows.
 */
static int
run_moves(struct sq *q, sqlite3_stmt *st, struct nb_store_tally *t,
    enum nb_store_bucket from, enum nb_store_bucket to,
    const struct nb_store_mark *dead, size_t *changed, int64_t *by_state,
    const char *op)
{
	const char *source, *reason;
	int step, state, rc = 0;

	*changed = 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		source = (const char *)sqlite3_column_text(st, 0);
		if (source == NULL)
			source = "";
		if (sqlite3_column_count(st) >= 3) {
			reason = (const char *)sqlite3_column_text(st, 2);
			state = sqlite3_column_int(st, 1);
			from = nb_store_bucket_of(
			    (enum nb_event_state)state, reason);
			if (by_state != NULL && state >= 0 && state <= 2)
				by_state[state]++;
		}
		if (rc == 0 &&
		    (nb_store_tally_move(t, source, from, to, 1) == -1 ||
			(dead != NULL &&
			    nb_store_tally_error(t, source, dead->error,
				NB_STATE_DEAD, dead->reason, dead->ms,
				1) == -1)))
			rc = -1;
		(*changed)++;
	}
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, op);
		rc = -1;
	}
	sqlite3_reset(st);
	return rc;
}

int
sq_purge_rows(
    struct sq *q, size_t *changed, struct nb_store_tally *t, int64_t deleted[3])
{
	sqlite3_stmt *st;

	if (sq_links_drop(q) == -1 || sq_people_forget(q) == -1)
		return -1;
	if ((st = sq_stmt_get(q, ST_PURGE_PAYLOADS)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	if (sq_stmt_run(q, st, __func__, "purge") == -1)
		return -1;
	if ((st = sq_stmt_get(q, ST_PURGE)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	return run_moves(q, st, t, NB_BUCKET_NONE, NB_BUCKET_NONE, NULL,
	    changed, deleted, "purge");
}

int
sq_mark(void *state, const struct nb_store_mark *m, const int64_t *seqs,
    size_t n, size_t *changed, struct nb_store_tally *t)
{
	struct sq *q = state;
	enum nb_store_bucket to = NB_BUCKET_DELIVERED;
	sqlite3_stmt *st;
	enum sq_stmt id;
	size_t i, counted = 0;

	*changed = 0;
	switch (m->kind) {
	case NB_STORE_MARK_PENDING:
	case NB_STORE_MARK_REQUARANTINE:
		for (i = 0; i < n; i++)
			if (mark_one(q, m, seqs[i], changed, t) == -1)
				return -1;
		return 0;
	case NB_STORE_MARK_PURGE:
		if (sq_seqs_json(q, seqs, n, sizeof(*seqs)) == -1)
			return -1;
		return sq_purge_rows(q, changed, t, NULL);
	case NB_STORE_MARK_LINK:
		if (sq_seqs_json(q, seqs, n, sizeof(*seqs)) == -1 ||
		    sq_attempt_record(q, m->att) == -1)
			return -1;
		return sq_links_add(q, m->att->id);
	case NB_STORE_MARK_EXTEND:
		id = ST_EXTEND;
		break;
	case NB_STORE_MARK_DELIVERED:
		id = ST_DELIVERED;
		break;
	case NB_STORE_MARK_RELEASE:
		id = ST_RELEASE;
		break;
	default:
		id = ST_DEAD;
		to = nb_store_bucket_of(NB_STATE_DEAD, m->reason);
		break;
	}
	if (sq_seqs_json(q, seqs, n, sizeof(*seqs)) == -1)
		return -1;
	if (id == ST_DELIVERED || id == ST_DEAD) {
		if ((st = sq_stmt_get(q, ST_MARK_SOURCES)) == NULL)
			return -1;
		sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
		if (run_moves(q, st, t, NB_BUCKET_PENDING, to,
			id == ST_DEAD ? m : NULL, &counted, NULL, "mark") == -1)
			return -1;
	}
	if (id != ST_EXTEND && sq_attempt_record(q, m->att) == -1)
		return -1;
	if ((st = sq_stmt_get(q, id)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	if (id == ST_DEAD) {
		sqlite3_bind_text(st, 2, m->reason, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, m->error, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, m->ms);
	} else if (id != ST_RELEASE)
		sqlite3_bind_int64(st, 2, m->ms);
	if (id == ST_DELIVERED && m->att != NULL)
		sqlite3_bind_int64(st, 3, m->att->id);
	if (sq_stmt_run(q, st, __func__, "mark") == -1)
		return -1;
	*changed = (size_t)sqlite3_changes64(q->db);
	/* Under the write lock the rows counted are the rows changed. */
	if ((id == ST_DELIVERED || id == ST_DEAD) && *changed != counted) {
		log_error("mark mismatch", " counted=%zu changed=%zu", counted,
		    *changed);
		return -1;
	}
	/* A failure is linked to the rows it failed (q->json: the seqs). */
	if ((id == ST_DEAD || id == ST_RELEASE) && m->att != NULL &&
	    *changed > 0)
		return sq_links_add(q, m->att->id);
	return 0;
}

int
sq_retry(void *state, const struct nb_store_retry *rows, size_t n,
    const char *error, int64_t at_ms, struct nb_store_attempt *att,
    struct nb_store_tally *t)
{
	struct sq *q = state;
	const unsigned char *source;
	sqlite3_stmt *st;
	size_t i;
	int step;

	if (sq_attempt_record(q, att) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((st = sq_stmt_get(q, ST_RETRY)) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1, rows[i].seq);
		sqlite3_bind_int64(st, 2, rows[i].next_ms);
		sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
		/* One row at most: the error is counted when it changed. */
		if ((step = sqlite3_step(st)) == SQLITE_ROW) {
			source = sqlite3_column_text(st, 0);
			if (nb_store_tally_error(t,
				source != NULL ? (const char *)source : "",
				error, NB_STATE_PENDING, NULL, at_ms,
				1) == -1) {
				sqlite3_reset(st);
				return -1;
			}
			step = sqlite3_step(st);
		}
		sqlite3_reset(st);
		if (step != SQLITE_DONE) {
			sq_db_log(q, __func__, "retry");
			return -1;
		}
	}
	/* The rows still stored are linked (ST_LINK_ADD checks). */
	if (att == NULL || n == 0)
		return 0;
	if (sq_seqs_json(q, &rows[0].seq, n, sizeof(*rows)) == -1)
		return -1;
	return sq_links_add(q, att->id);
}

/*
 * One page: the rows the statement looks at come back in order with a hit
 * flag (the last column); the hits are kept, at most f->limit of them.
 * The page goes on from the last hit when the limit cut it, from the last
 * row looked at when the scan bound did, and nowhere when the rows ran out.
 */
int
sq_list(void *state, const struct nb_store_filter *f, int with_payload,
    struct nb_store_rows *v, int64_t *next)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	size_t looked = 0, hits = 0;
	int64_t seq = 0;
	int step;

	*next = 0;
	if (f->key == NULL && (f->email != NULL || f->uid != NULL))
		return sq_people_list(q, f, with_payload, v, next);
	if ((st = list_stmt(q, f, with_payload)) == NULL)
		return -1;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0);
		looked++;
		if (!sqlite3_column_int(st, SQ_COL_PAYLOAD + 1))
			continue;
		if (sq_rows_push(v, st, with_payload) == -1) {
			sqlite3_reset(st);
			return -1;
		}
		if (f->limit != 0 && ++hits == f->limit) {
			*next = seq;
			sqlite3_reset(st);
			return 0;
		}
	}
	sqlite3_reset(st);
	if (step != SQLITE_DONE) {
		sq_db_log(q, __func__, "list");
		return -1;
	}
	if (f->key == NULL && f->max_scan != 0 && looked == f->max_scan)
		*next = seq;
	return 0;
}

/* A statement the common layer names, and its name in failure logs. */
struct named_stmt {
	enum sq_stmt id;
	const char *op;
};

int
sq_query(void *state, enum nb_store_query which, nb_store_bind_fn bind,
    const void *barg, nb_store_row_fn fn, void *ctx)
{
	static const struct named_stmt qs[] = {
	    [NB_STORE_Q_STATS] = {ST_STATS, "stats"},
	    [NB_STORE_Q_ERRORS] = {ST_ERRORS, "errors"},
	    [NB_STORE_Q_ACTIVITY] = {ST_AL_ACTIVITY, "activity"},
	    [NB_STORE_Q_REPORTS] = {ST_AL_REPORTS, "reports"},
	    [NB_STORE_Q_STATES] = {ST_AL_STATES, "states"},
	    [NB_STORE_Q_AL_CLAIM] = {ST_AL_CLAIM, "claim"},
	    [NB_STORE_Q_ATTEMPTS] = {ST_ATTEMPTS, "attempts"},
	    [NB_STORE_Q_AUDIT] = {ST_AUDIT_LIST, "audit list"},
	};
	struct sq *q = state;
	struct sq_result r;
	sqlite3_stmt *st;
	int step;

	if ((st = sq_stmt_bound(q, qs[which].id, bind, barg)) == NULL)
		return -1;
	sq_result_init(&r, st);
	while ((step = sqlite3_step(st)) == SQLITE_ROW)
		if (fn(ctx, &r.base) == -1)
			break;
	sqlite3_reset(st);
	if (step != SQLITE_DONE && step != SQLITE_ROW)
		sq_db_log(q, __func__, qs[which].op);
	return step == SQLITE_DONE ? 0 : -1;
}

int
sq_exec(void *state, enum nb_store_write which, nb_store_bind_fn bind,
    const void *barg, size_t *changed)
{
	static const struct named_stmt ws[] = {
	    [NB_STORE_W_AL_REPORTS_CLEAR] = {ST_AL_REPORTS_CLEAR, "reports"},
	    [NB_STORE_W_AL_REPORT_PUT] = {ST_AL_REPORT_PUT, "report"},
	    [NB_STORE_W_AL_LEAD] = {ST_AL_LEAD, "lead"},
	    [NB_STORE_W_AL_RENEW] = {ST_AL_RENEW, "renew"},
	    [NB_STORE_W_AL_STATE_PUT] = {ST_AL_STATE_PUT, "state"},
	    [NB_STORE_W_AL_NOTE_ADD] = {ST_AL_NOTE_ADD, "note"},
	    [NB_STORE_W_AL_PRUNE_OUTBOX] = {ST_AL_PRUNE_OUTBOX, "prune"},
	    [NB_STORE_W_AL_PRUNE_REPORTS] = {ST_AL_PRUNE_REPORTS, "prune"},
	    [NB_STORE_W_AL_RETRY] = {ST_AL_RETRY, "finish"},
	    [NB_STORE_W_AL_DONE] = {ST_AL_DONE, "finish"},
	};
	struct sq *q = state;
	sqlite3_stmt *st;

	if ((st = sq_stmt_bound(q, ws[which].id, bind, barg)) == NULL ||
	    sq_stmt_run(q, st, __func__, ws[which].op) == -1)
		return -1;
	if (changed != NULL)
		*changed = (size_t)sqlite3_changes64(q->db);
	return 0;
}

int
sq_prune(void *state, int64_t dedupe_after_ms, int64_t delivered_before_ms,
    size_t limit, int *more, struct nb_store_tally *t)
{
	/* The payloads of delivered rows go first, while the rows say which. */
	static const enum sq_stmt ids[] = {
	    ST_PRUNE_REQUESTS, ST_PRUNE_EVENTS, ST_PRUNE_PAYLOADS};
	struct sq *q = state;
	sqlite3_stmt *st;
	size_t i, pruned;

	*more = 0;
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		if ((st = sq_stmt_get(q, ids[i])) == NULL)
			return -1;
		sqlite3_bind_int64(st, 1,
		    ids[i] == ST_PRUNE_PAYLOADS ? delivered_before_ms
						: dedupe_after_ms);
		sqlite3_bind_int64(st, 2, (int64_t)limit);
		if (sq_stmt_run(q, st, __func__, "prune") == -1)
			return -1;
		if ((size_t)sqlite3_changes64(q->db) == limit)
			*more = 1;
	}
	if (sq_prune_attempts(q, delivered_before_ms, limit, more, 0) == -1)
		return -1;
	if ((st = sq_stmt_get(q, ST_PRUNE_DELIVERED)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, delivered_before_ms);
	sqlite3_bind_int64(st, 2, (int64_t)limit);
	if (run_moves(q, st, t, NB_BUCKET_DELIVERED, NB_BUCKET_NONE, NULL,
		&pruned, NULL, "prune") == -1)
		return -1;
	if (pruned == limit)
		*more = 1;
	if (sq_people_prune(q, limit, more) == -1)
		return -1;
	/* The attempts of the rows pruned, once none is left to prune. */
	if (*more)
		return 0;
	return sq_prune_attempts(q, delivered_before_ms, limit, more, 1);
}

/* Adds one source's counter changes. */
static int
count_write(struct sq *q, const struct nb_store_count *c)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_COUNT_ADD)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, c->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->pending);
	sqlite3_bind_int64(st, 3, c->delivered);
	sqlite3_bind_int64(st, 4, c->dead);
	sqlite3_bind_int64(st, 5, c->quarantined);
	sqlite3_bind_int64(st, 6, c->received);
	sqlite3_bind_int64(st, 7, c->delivered_total);
	sqlite3_bind_int64(st, 8, c->dead_total);
	return sq_stmt_run(q, st, __func__, "counters");
}

/* Records one error, then keeps the source's newest few. */
static int
error_write(struct sq *q, const struct nb_store_errnote *e)
{
	sqlite3_stmt *st;

	if ((st = sq_stmt_get(q, ST_ERROR_ADD)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, e->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, e->error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, e->count);
	sqlite3_bind_int64(st, 4, e->at_ms);
	sqlite3_bind_int(st, 5, (int)e->state);
	sqlite3_bind_text(st, 6, e->reason, -1, SQLITE_STATIC);
	if (sq_stmt_run(q, st, __func__, "errors") == -1)
		return -1;
	if ((st = sq_stmt_get(q, ST_ERROR_TRIM)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, e->source, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, NB_STORE_ERRORS_KEPT);
	return sq_stmt_run(q, st, __func__, "errors trim");
}

int
sq_tally_write(struct sq *q, const struct nb_store_tally *t)
{
	size_t i;

	for (i = 0; i < t->nc; i++)
		if (count_write(q, &t->c[i]) == -1)
			return -1;
	for (i = 0; i < t->ne; i++)
		if (error_write(q, &t->e[i]) == -1)
			return -1;
	return 0;
}
