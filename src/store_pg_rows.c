/* SPDX-License-Identifier: ISC */
/*
 * store_pg_rows: storing, reading and changing rows in the PostgreSQL
 * backend.
 *
 * Every statement lets the database arbitrate between instances:
 * de-duplication is an upsert that returns a row only for a new key, so of
 * two instances receiving one webhook at once exactly one stores it; a
 * claim is one UPDATE over a FOR UPDATE SKIP LOCKED sub-select that records
 * its connection as lease_owner, so a late release from an instance whose
 * lease ran out cannot drop the lease of the one that took the row over.
 * The writes run inside the transaction store.c opened; an append batches
 * its statements in pipelines.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"
#include "store_pg.h"

#define EVENT_COLS                                                             \
	"seq, source, event_id, type, payload, state, reason, error,"          \
	" attempts, received_ms, age_base_ms, updated_ms"

/*
 * The operator lists, as SQLite's (see store_sqlite_sql.c): every row a
 * page looks at, at most $11 (NULL: no bound), in seq order between $9 and
 * $10 (a key narrows them to its seq), with hit last; $1 key, $2 source,
 * $3 type, $4 reason, $5 id (NULL: any), $6 since, $7 until (0:
 * unbounded), $8 state mask, $12 whether to read the payloads of the hits.
 */
#define LIST_HIT                                                               \
	"coalesce(($1::bigint IS NULL OR seq = $1::bigint)"                    \
	" AND ($2::text IS NULL OR source = $2::text)"                         \
	" AND ($3::text IS NULL OR type = $3::text)"                           \
	" AND ($4::text IS NULL OR reason = $4::text)"                         \
	" AND ($5::text IS NULL OR event_id = $5::text)"                       \
	" AND ($6::bigint = 0 OR received_ms >= $6::bigint)"                   \
	" AND ($7::bigint = 0 OR received_ms <= $7::bigint)"                   \
	" AND (($8::integer >> state) & 1) = 1, false)"
#define LIST_SELECT                                                            \
	"SELECT seq, source, event_id, type, CASE WHEN $12::boolean "          \
	"AND " LIST_HIT " THEN payload END, state, reason, error, attempts,"   \
	" received_ms, age_base_ms, updated_ms, " LIST_HIT " FROM events"
#define LIST_RANGE " seq > $9::bigint AND seq < $10::bigint"
#define LIST_ASC   " ORDER BY seq LIMIT $11::bigint"
#define LIST_DESC  " ORDER BY seq DESC LIMIT $11::bigint"

/*
 * A key counts as new when absent or older than the window; a row comes
 * back only then.  LEAST() keeps a key stored earlier in this same
 * transaction a duplicate even with an empty window.  A concurrent insert of
 * the same key waits on the unique index and then takes the update branch.
 */
static const char sql_seen_request[] =
    "INSERT INTO seen_requests (source, webhook_id, seen_ms)"
    " VALUES ($1::text, $2::text, $3::bigint)"
    " ON CONFLICT (source, webhook_id) DO UPDATE SET seen_ms = "
    "EXCLUDED.seen_ms"
    " WHERE seen_requests.seen_ms < LEAST($4::bigint, EXCLUDED.seen_ms)"
    " RETURNING 1";

/* An event with an id: stored only when its key is new, in one trip. */
static const char sql_insert_seen[] =
    "WITH fresh AS (INSERT INTO seen_events (source, event_id, seen_ms)"
    " VALUES ($1::text, $2::text, $8::bigint)"
    " ON CONFLICT (source, event_id) DO UPDATE SET seen_ms = "
    "EXCLUDED.seen_ms"
    " WHERE seen_events.seen_ms < LEAST($9::bigint, EXCLUDED.seen_ms)"
    " RETURNING 1)"
    " INSERT INTO events (source, event_id, type, payload, state, reason,"
    " error, attempts, received_ms, age_base_ms, next_ms, lease_ms,"
    " updated_ms)"
    " SELECT $1::text, $2::text, $3::text, $4::bytea, $5::smallint,"
    " $6::text, $7::text, 0, $8::bigint, $8::bigint, $8::bigint, 0,"
    " $8::bigint WHERE EXISTS (SELECT 1 FROM fresh) RETURNING seq";

/* An event without an id is never a duplicate. */
static const char sql_insert[] =
    "INSERT INTO events (source, event_id, type, payload, state, reason,"
    " error, attempts, received_ms, age_base_ms, next_ms, lease_ms,"
    " updated_ms)"
    " VALUES ($1::text, $2::text, $3::text, $4::bytea, $5::smallint,"
    " $6::text, $7::text, 0, $8::bigint, $8::bigint, $8::bigint, 0,"
    " $8::bigint) RETURNING seq";

/*
 * SKIP LOCKED: a row another claimer is taking right now is left to it
 * rather than waited for; one that it took and committed fails the
 * re-checked lease condition.  RETURNING has no order, hence the outer sort.
 */
static const char sql_claim[] =
    "WITH c AS (UPDATE events SET lease_ms = $3::bigint,"
    " lease_owner = $5::text WHERE seq IN (SELECT seq FROM events"
    " WHERE state = 0 AND source = ANY ($1::text[])"
    " AND next_ms <= $2::bigint AND lease_ms <= $2::bigint"
    " ORDER BY next_ms, seq LIMIT $4::bigint FOR UPDATE SKIP LOCKED)"
    " RETURNING " EVENT_COLS ", next_ms)"
    " SELECT " EVENT_COLS " FROM c ORDER BY next_ms, seq";

/*
 * Lease changes only touch rows this connection leased (or nobody did): an
 * instance whose lease ran out must not drop the lease of the one that took
 * the row over.
 */
static const char sql_extend[] =
    "UPDATE events SET lease_ms = $2::bigint"
    " WHERE seq = ANY ($1::bigint[]) AND state = 0"
    " AND (lease_owner IS NULL OR lease_owner = $3::text)";

static const char sql_release[] =
    "UPDATE events SET lease_ms = 0, lease_owner = NULL"
    " WHERE seq = ANY ($1::bigint[]) AND state = 0"
    " AND (lease_owner IS NULL OR lease_owner = $2::text)";

/*
 * The changes that move counters return what they changed, per source (and
 * state and reason for deletions), for the transaction's tally.
 */
#define PER_SOURCE(cte) " SELECT source, count(*) FROM " cte " GROUP BY source"

static const char sql_retry[] =
    "WITH c AS (UPDATE events AS e SET attempts = e.attempts + 1,"
    " error = $4::text, next_ms = r.next_ms, lease_ms = 0,"
    " lease_owner = NULL"
    " FROM unnest($1::bigint[], $2::bigint[]) AS r (seq, next_ms)"
    " WHERE e.seq = r.seq AND e.state = 0"
    " AND (e.lease_owner IS NULL OR e.lease_owner = $3::text)"
    " RETURNING e.source)" PER_SOURCE("c");

static const char sql_delivered[] =
    "WITH c AS (UPDATE events SET state = 1, lease_ms = 0, lease_owner = NULL,"
    " updated_ms = $2::bigint WHERE seq = ANY ($1::bigint[]) AND state = 0"
    " RETURNING source)" PER_SOURCE("c");

static const char sql_dead[] =
    "WITH c AS (UPDATE events SET state = 2, reason = $2::text,"
    " error = $3::text, lease_ms = 0, lease_owner = NULL,"
    " updated_ms = $4::bigint"
    " WHERE seq = ANY ($1::bigint[]) AND state = 0"
    " RETURNING source)" PER_SOURCE("c");

/* The primary key, or the index of dead letters; oldest or newest first. */
static const char sql_list_asc[] = LIST_SELECT " WHERE" LIST_RANGE LIST_ASC;
static const char sql_list_desc[] = LIST_SELECT " WHERE" LIST_RANGE LIST_DESC;
static const char sql_list_dead_asc[] =
    LIST_SELECT " WHERE state = 2 AND" LIST_RANGE LIST_ASC;
static const char sql_list_dead_desc[] =
    LIST_SELECT " WHERE state = 2 AND" LIST_RANGE LIST_DESC;

const struct pgs_read pgs_list_reads[] = {
    {"list", sql_list_asc},
    {"list", sql_list_desc},
    {"list", sql_list_dead_asc},
    {"list", sql_list_dead_desc},
};
const size_t pgs_nlist_reads =
    sizeof(pgs_list_reads) / sizeof(pgs_list_reads[0]);

/*
 * A replay changes a row only while it is as the replay read it ($5 its
 * state, $6 its reason): another instance may have changed it since.
 */
static const char sql_replay_pending[] =
    "UPDATE events SET state = 0, reason = NULL, error = NULL,"
    " attempts = 0, next_ms = $2::bigint, age_base_ms = $2::bigint,"
    " lease_ms = 0, lease_owner = NULL, updated_ms = $2::bigint,"
    " event_id = coalesce($3::text, event_id),"
    " type = coalesce($4::text, type) WHERE seq = $1::bigint"
    " AND state = $5::smallint AND reason IS NOT DISTINCT FROM $6::text"
    " AND state <> 0";

static const char sql_requarantine[] =
    "UPDATE events SET error = $2::text, updated_ms = $3::bigint"
    " WHERE seq = $1::bigint AND state = 2"
    " AND reason = '" NB_REASON_QUARANTINED "'";

static const char sql_purge[] =
    "WITH c AS (DELETE FROM events WHERE seq = ANY ($1::bigint[])"
    " RETURNING source, state, reason)"
    " SELECT source, count(*), state, reason FROM c"
    " GROUP BY source, state, reason";

/* The prune takes $2 of each at a time, oldest first. */
static const char sql_prune_requests[] =
    "DELETE FROM seen_requests WHERE (source, webhook_id) IN"
    " (SELECT source, webhook_id FROM seen_requests"
    " WHERE seen_ms < $1::bigint ORDER BY seen_ms LIMIT $2::bigint)";
static const char sql_prune_events[] =
    "DELETE FROM seen_events WHERE (source, event_id) IN"
    " (SELECT source, event_id FROM seen_events"
    " WHERE seen_ms < $1::bigint ORDER BY seen_ms LIMIT $2::bigint)";
static const char sql_prune_delivered[] =
    "WITH c AS (DELETE FROM events WHERE seq IN (SELECT seq FROM events"
    " WHERE state = 1 AND updated_ms < $1::bigint"
    " ORDER BY updated_ms LIMIT $2::bigint) RETURNING source)" PER_SOURCE("c");

static const char sql_probe[] =
    "INSERT INTO meta (id, probe_ms) VALUES (1, $1::bigint)"
    " ON CONFLICT (id) DO UPDATE SET probe_ms = EXCLUDED.probe_ms";

static char *
col_strdup(const PGresult *res, int row, int col, int *failed)
{
	char *d;

	if (PQgetisnull(res, row, col))
		return NULL;
	if ((d = strdup(PQgetvalue(res, row, col))) == NULL)
		*failed = 1;
	return d;
}

/* Reads an EVENT_COLS row into ev (zeroed first).  0 or -1 (ENOMEM). */
static int
row_read(const PGresult *res, int row, struct nb_stored_event *ev)
{
	unsigned char *bin;
	size_t len = 0;
	int failed = 0;

	memset(ev, 0, sizeof(*ev));
	ev->seq = pgs_col_int64(res, row, 0);
	nb_store_key_format(ev->seq, ev->key);
	ev->source = col_strdup(res, row, 1, &failed);
	ev->id = col_strdup(res, row, 2, &failed);
	ev->type = col_strdup(res, row, 3, &failed);
	bin = PQunescapeBytea(
	    (const unsigned char *)PQgetvalue(res, row, 4), &len);
	if (bin == NULL || (ev->raw = malloc(len + 1)) == NULL)
		failed = 1;
	else {
		if (len > 0)
			memcpy(ev->raw, bin, len);
		ev->raw[len] = '\0';
		ev->rawlen = len;
	}
	PQfreemem(bin);
	ev->state = (enum nb_event_state)pgs_col_int64(res, row, 5);
	ev->reason = col_strdup(res, row, 6, &failed);
	ev->error = col_strdup(res, row, 7, &failed);
	ev->attempts = (int)pgs_col_int64(res, row, 8);
	ev->received_ms = pgs_col_int64(res, row, 9);
	ev->age_base_ms = pgs_col_int64(res, row, 10);
	ev->updated_ms = pgs_col_int64(res, row, 11);
	if (ev->source == NULL)
		failed = 1;
	return failed ? -1 : 0;
}

/* Appends row row of res.  0 or -1 (logged). */
static int
row_push(struct nb_store_rows *v, const PGresult *res, int row)
{
	struct nb_stored_event *ev;

	if ((ev = nb_store_rows_next(v)) == NULL)
		return -1;
	if (row_read(res, row, ev) == -1) {
		log_error("out of memory", " rows=%zu", v->n);
		return -1;
	}
	return 0;
}

/* Appends every row of res.  0 or -1 (logged). */
static int
rows_push_result(struct nb_store_rows *v, const PGresult *res)
{
	int i, rows = PQntuples(res);

	for (i = 0; i < rows; i++)
		if (row_push(v, res, i) == -1)
			return -1;
	return 0;
}

/*
 * The list statement for f and its parameters in p.  A key narrows the
 * range to its own seq, so any of them finds it in one probe.
 */
static const char *
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
	if (nb_store_filter_states(f) == NB_STATE_MASK_DEAD && f->key == NULL)
		return f->newest_first ? sql_list_dead_desc : sql_list_dead_asc;
	return f->newest_first ? sql_list_desc : sql_list_asc;
}

/*
 * Phase one: the request keys, in order; fresh[i] says whether request i
 * is new (a request without webhook id always is).
 */
static int
append_requests(struct pg *q, struct pipe *pp, struct nb_append *const *reqs,
    size_t n, unsigned char *fresh)
{
	struct params *p;
	size_t i, k, idx[PG_PIPE_CHUNK];

	pp->n = 0;
	for (i = 0; i <= n; i++) {
		if (i < n && reqs[i]->webhook_id == NULL)
			fresh[i] = 1;
		else if (i < n) {
			idx[pp->n] = i;
			p = pgs_pipe_add(pp, sql_seen_request);
			pgs_par_text(p, reqs[i]->source);
			pgs_par_text(p, reqs[i]->webhook_id);
			pgs_par_int(p, reqs[i]->received_ms);
			pgs_par_int(p, reqs[i]->dedupe_after_ms);
		}
		if (pp->n == PG_PIPE_CHUNK || (i == n && pp->n > 0)) {
			if (pgs_pipe_flush(q, pp, __func__) == -1)
				return -1;
			for (k = 0; k < pp->n; k++)
				fresh[idx[k]] = pp->rows[k] > 0;
			pp->n = 0;
		}
	}
	return 0;
}

/* Counts what the batched inserts of events did. */
static int
count_inserts(struct pipe *pp, struct nb_append *const *reqs,
    const size_t *ridx, const size_t *eidx, struct nb_store_tally *t)
{
	const struct nb_event *e;
	struct nb_append *r;
	size_t k;

	for (k = 0; k < pp->n; k++) {
		r = reqs[ridx[k]];
		e = &r->events[eidx[k]];
		if (pp->rows[k] == 0)
			r->duplicates++;
		else if (e->error == NULL)
			r->accepted++;
		else {
			r->quarantined++;
			if (nb_store_tally_error(t, r->source, e->error,
				NB_STATE_DEAD, NB_REASON_QUARANTINED,
				r->received_ms, 1) == -1)
				return -1;
		}
	}
	pp->n = 0;
	return 0;
}

/*
 * Phase two: the events of new requests, in order.  An event with an id is
 * stored only when its key is new; the same key twice in the group is
 * caught because the statements run one after the other.
 */
static int
append_events(struct pg *q, struct pipe *pp, struct nb_append *const *reqs,
    size_t n, const unsigned char *fresh, struct nb_store_tally *t)
{
	const struct nb_event *e;
	struct nb_append *r;
	struct params *p;
	size_t i, j, ridx[PG_PIPE_CHUNK], eidx[PG_PIPE_CHUNK];
	int dead;

	pp->n = 0;
	for (i = 0; i < n; i++) {
		r = reqs[i];
		r->accepted = r->duplicates = r->quarantined = 0;
		if (!fresh[i]) {
			r->duplicates = (int)r->nevents;
			continue;
		}
		for (j = 0; j < r->nevents; j++) {
			e = &r->events[j];
			dead = e->error != NULL;
			if (e->rawlen > INT_MAX) {
				log_error(
				    "event too large", " bytes=%zu", e->rawlen);
				return -1;
			}
			ridx[pp->n] = i;
			eidx[pp->n] = j;
			p = pgs_pipe_add(
			    pp, e->id != NULL ? sql_insert_seen : sql_insert);
			pgs_par_text(p, r->source);
			pgs_par_text(p, e->id);
			pgs_par_text(p, e->type);
			pgs_par_bin(p, e->raw, e->rawlen);
			pgs_par_int(p, dead ? NB_STATE_DEAD : NB_STATE_PENDING);
			pgs_par_text(p, dead ? NB_REASON_QUARANTINED : NULL);
			pgs_par_text(p, e->error);
			pgs_par_int(p, r->received_ms);
			if (e->id != NULL)
				pgs_par_int(p, r->dedupe_after_ms);
			if (pp->n == PG_PIPE_CHUNK) {
				if (pgs_pipe_flush(q, pp, __func__) == -1)
					return -1;
				if (count_inserts(pp, reqs, ridx, eidx, t) ==
				    -1)
					return -1;
			}
		}
	}
	if (pgs_pipe_flush(q, pp, __func__) == -1)
		return -1;
	return count_inserts(pp, reqs, ridx, eidx, t);
}

/*
 * The request keys first, then the events of the new requests: the two
 * key spaces are independent, so this decides exactly as storing request
 * by request would, in two pipelines instead of one trip per statement.
 */
int
pgs_append(void *state, struct nb_append *const *reqs, size_t n,
    struct nb_store_tally *t)
{
	struct pg *q = state;
	unsigned char *fresh = NULL;
	size_t i;
	int rc = -1;

	if (q->pipe == NULL && (q->pipe = malloc(sizeof(*q->pipe))) == NULL) {
		log_error("out of memory", " requests=%zu", n);
		return -1;
	}
	if ((fresh = calloc(n, 1)) == NULL) {
		log_error("out of memory", " requests=%zu", n);
		return -1;
	}
	if (append_requests(q, q->pipe, reqs, n, fresh) == -1 ||
	    append_events(q, q->pipe, reqs, n, fresh, t) == -1)
		goto out;
	for (i = 0; i < n; i++)
		if (nb_store_tally_append(t, reqs[i]) == -1)
			goto out;
	rc = 0;
out:
	free(fresh);
	return rc;
}

int
pgs_claim(void *state, const struct nb_store_claim *c, struct nb_store_rows *v)
{
	struct pg *q = state;
	struct params p = {0};
	PGresult *res = NULL;
	char *names = NULL;
	int rc = -1;

	if ((names = pgs_text_array(c->sources, c->nsources)) == NULL)
		goto out;
	pgs_par_text(&p, names);
	pgs_par_int(&p, c->now_ms);
	pgs_par_int(&p, c->lease_until_ms);
	pgs_par_int(&p, c->limit > INT64_MAX ? INT64_MAX : (int64_t)c->limit);
	pgs_par_text(&p, q->owner);
	if ((res = pgs_exec(
		 q, sql_claim, &p, PGRES_TUPLES_OK, __func__, "claim")) == NULL)
		goto out;
	if (rows_push_result(v, res) == -1)
		goto out;
	rc = 0;
out:
	PQclear(res);
	free(names);
	return rc;
}

/* The statement of a set-based mark and its parameters after $1. */
static const char *
mark_sql(struct pg *q, const struct nb_store_mark *m, struct params *p)
{
	pgs_par_text(p, NULL); /* $1, the seq array */
	switch (m->kind) {
	case NB_STORE_MARK_EXTEND:
		pgs_par_int(p, m->ms);
		pgs_par_text(p, q->owner);
		return sql_extend;
	case NB_STORE_MARK_DELIVERED:
		pgs_par_int(p, m->ms);
		return sql_delivered;
	case NB_STORE_MARK_RELEASE:
		pgs_par_text(p, q->owner);
		return sql_release;
	default:
		pgs_par_text(p, m->reason);
		pgs_par_text(p, m->error);
		pgs_par_int(p, m->ms);
		return sql_dead;
	}
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
	PGresult *res;
	size_t n;

	pgs_par_int(&p, seq);
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
	if ((res = pgs_exec(q,
		 m->kind == NB_STORE_MARK_PENDING ? sql_replay_pending
						  : sql_requarantine,
		 &p, PGRES_COMMAND_OK, __func__, "replay")) == NULL)
		return -1;
	n = pgs_cmd_tuples(res);
	PQclear(res);
	if (n == 0)
		return 0;
	*changed += n;
	return nb_store_tally_replay(t, m->source, m->state, m->was_reason,
	    m->kind == NB_STORE_MARK_PENDING ? NULL : m->error, m->ms);
}

/*
 * Runs a statement that returns (source, count[, state, reason]) rows of
 * what it changed and tallies them: a move from from to to, or, to
 * NB_BUCKET_NONE, from each row's state and reason; with err, also err's
 * error (retry: state pending; dead: as err says).
 */
static int
run_moves(struct pg *q, const char *sql, const struct params *p,
    struct nb_store_tally *t, enum nb_store_bucket from,
    enum nb_store_bucket to, const struct nb_store_mark *err, size_t *changed,
    const char *op)
{
	PGresult *res;
	const char *source, *reason;
	int64_t n;
	int i, rc = 0;

	*changed = 0;
	if ((res = pgs_exec(q, sql, p, PGRES_TUPLES_OK, __func__, op)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(res) && rc == 0; i++) {
		source = PQgetvalue(res, i, 0);
		n = pgs_col_int64(res, i, 1);
		*changed += (size_t)n;
		if (PQnfields(res) >= 4) {
			reason = PQgetisnull(res, i, 3) ? NULL
							: PQgetvalue(res, i, 3);
			from = nb_store_bucket_of(
			    (enum nb_event_state)pgs_col_int64(res, i, 2),
			    reason);
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

int
pgs_mark(void *state, const struct nb_store_mark *m, const int64_t *seqs,
    size_t n, size_t *changed, struct nb_store_tally *t)
{
	struct pg *q = state;
	struct params p = {0};
	const char *sql;
	char *arr = NULL;
	size_t i;
	int rc = -1;

	*changed = 0;
	if (m->kind == NB_STORE_MARK_PENDING ||
	    m->kind == NB_STORE_MARK_REQUARANTINE) {
		for (i = 0; i < n; i++)
			if (mark_one(q, m, seqs[i], changed, t) == -1)
				return -1;
		return 0;
	}
	sql = m->kind == NB_STORE_MARK_PURGE ? sql_purge : mark_sql(q, m, &p);
	if (m->kind == NB_STORE_MARK_PURGE)
		pgs_par_text(&p, NULL);
	if ((arr = pgs_int64_array(seqs, n, sizeof(*seqs))) == NULL)
		goto out;
	p.v[0] = arr;
	if (m->kind == NB_STORE_MARK_DELIVERED)
		rc = run_moves(q, sql, &p, t, NB_BUCKET_PENDING,
		    NB_BUCKET_DELIVERED, NULL, changed, "mark");
	else if (m->kind == NB_STORE_MARK_DEAD)
		rc = run_moves(q, sql, &p, t, NB_BUCKET_PENDING,
		    nb_store_bucket_of(NB_STATE_DEAD, m->reason), m, changed,
		    "mark");
	else if (m->kind == NB_STORE_MARK_PURGE)
		rc = run_moves(q, sql, &p, t, NB_BUCKET_NONE, NB_BUCKET_NONE,
		    NULL, changed, "purge");
	else
		rc = pgs_run(q, sql, &p, PGRES_COMMAND_OK, __func__, "mark");
out:
	free(arr);
	return rc;
}

int
pgs_retry(void *state, const struct nb_store_retry *rows, size_t n,
    const char *error, int64_t at_ms, struct nb_store_tally *t)
{
	struct pg *q = state;
	struct nb_store_mark err = {
	    .kind = NB_STORE_MARK_RELEASE, .error = error, .ms = at_ms};
	struct params p = {0};
	char *seqs = NULL, *next = NULL;
	size_t changed;
	int rc = -1;

	if ((seqs = pgs_int64_array(&rows[0].seq, n, sizeof(*rows))) == NULL ||
	    (next = pgs_int64_array(&rows[0].next_ms, n, sizeof(*rows))) ==
		NULL)
		goto out;
	pgs_par_text(&p, seqs);
	pgs_par_text(&p, next);
	pgs_par_text(&p, q->owner);
	pgs_par_text(&p, error);
	/* No move: the rows stay pending; only the error counts. */
	rc = run_moves(q, sql_retry, &p, t, NB_BUCKET_PENDING,
	    NB_BUCKET_PENDING, &err, &changed, "retry");
out:
	free(seqs);
	free(next);
	return rc;
}

/* One page, as sq_list() makes it (see there). */
int
pgs_list(void *state, const struct nb_store_filter *f, int with_payload,
    struct nb_store_rows *v, int64_t *next)
{
	struct pg *q = state;
	struct params p = {0};
	const char *sql;
	PGresult *res;
	size_t hits = 0;
	int i, rows, rc = -1;

	*next = 0;
	sql = list_params(&p, f, with_payload);
	if ((res = pgs_exec(q, sql, &p, PGRES_TUPLES_OK, __func__, "list")) ==
	    NULL)
		return -1;
	rows = PQntuples(res);
	for (i = 0; i < rows; i++) {
		if (PQgetvalue(res, i, 12)[0] != 't')
			continue;
		if (row_push(v, res, i) == -1)
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
	static const char *const sqls[] = {
	    sql_prune_requests, sql_prune_events};
	struct pg *q = state;
	struct params p;
	PGresult *res;
	size_t i, pruned;

	*more = 0;
	for (i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		memset(&p, 0, sizeof(p));
		pgs_par_int(&p, dedupe_after_ms);
		pgs_par_int(&p, (int64_t)limit);
		if ((res = pgs_exec(q, sqls[i], &p, PGRES_COMMAND_OK, __func__,
			 "prune")) == NULL)
			return -1;
		if (pgs_cmd_tuples(res) == limit)
			*more = 1;
		PQclear(res);
	}
	memset(&p, 0, sizeof(p));
	pgs_par_int(&p, delivered_before_ms);
	pgs_par_int(&p, (int64_t)limit);
	if (run_moves(q, sql_prune_delivered, &p, t, NB_BUCKET_DELIVERED,
		NB_BUCKET_NONE, NULL, &pruned, "prune") == -1)
		return -1;
	if (pruned == limit)
		*more = 1;
	return pgs_fold(q);
}

int
pgs_probe(void *state)
{
	struct pg *q = state;
	struct params p = {0};

	pgs_par_int(&p, nb_time_now_ms());
	return pgs_run(q, sql_probe, &p, PGRES_COMMAND_OK, __func__, "probe");
}
