/* SPDX-License-Identifier: ISC */
/*
 * store_pg_count: the counters and recent errors of the PostgreSQL backend.
 *
 * Several instances (a committer and a deliverer each) change rows of the
 * same sources at once.  One counters row per source would make every
 * transaction of every writer queue on that row's lock until the holder
 * commits, so each connection adds to rows of its own: the slot is its
 * backend pid, which no two live connections share.  Readers sum a
 * source's slots (O(sources x writers), never O(rows)).  The prune folds
 * the slots of connections that are gone into slot 0, so the rows do not
 * pile up across restarts; folding moves counts and never loses any, even
 * when it races a writer (whose next upsert starts its slot afresh).
 * Recent errors are slotted the same way and merged when read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "store_pg.h"

/*
 * O(sources): the summed slots, then per source the oldest pending row
 * (the first entry of events_pending_age) and the live leases (a range of
 * events_lease, which holds only leased rows).  Sorted bytewise like
 * SQLite, whatever the database's collation.
 */
static const char sql_stats[] =
    "SELECT c.source, c.pending, c.delivered, c.dead, c.quarantined,"
    " c.received_total, c.delivered_total, c.dead_total,"
    " coalesce((SELECT min(e.received_ms) FROM events AS e"
    " WHERE e.source = c.source AND e.state = 0), 0),"
    " (SELECT count(*) FROM events AS e WHERE e.source = c.source"
    " AND e.lease_ms <> 0 AND e.lease_ms > $1::bigint)"
    " FROM (SELECT source, sum(pending) AS pending,"
    " sum(delivered) AS delivered, sum(dead) AS dead,"
    " sum(quarantined) AS quarantined,"
    " sum(received_total) AS received_total,"
    " sum(delivered_total) AS delivered_total,"
    " sum(dead_total) AS dead_total FROM counters GROUP BY source) AS c"
    " ORDER BY c.source COLLATE \"C\"";

/* The newest $2 errors per source since $1, slots merged. */
static const char sql_errors[] =
    "SELECT source, error, reason, state, count, last_ms FROM"
    " (SELECT source, error, sum(count) AS count, max(last_ms) AS last_ms,"
    " (array_agg(state ORDER BY last_ms DESC))[1] AS state,"
    " (array_agg(reason ORDER BY last_ms DESC))[1] AS reason,"
    " row_number() OVER (PARTITION BY source"
    " ORDER BY max(last_ms) DESC) AS n"
    " FROM recent_errors GROUP BY source, error"
    " HAVING max(last_ms) >= $1::bigint) AS e"
    " WHERE n <= $2::bigint ORDER BY source COLLATE \"C\", last_ms DESC";

/* A slot's row takes the sums of the row it would have been. */
#define COUNT_MERGE                                                            \
	" ON CONFLICT (source, slot) DO UPDATE SET"                            \
	" pending = counters.pending + EXCLUDED.pending,"                      \
	" delivered = counters.delivered + EXCLUDED.delivered,"                \
	" dead = counters.dead + EXCLUDED.dead,"                               \
	" quarantined = counters.quarantined + EXCLUDED.quarantined,"          \
	" received_total = counters.received_total"                            \
	" + EXCLUDED.received_total,"                                          \
	" delivered_total = counters.delivered_total"                          \
	" + EXCLUDED.delivered_total,"                                         \
	" dead_total = counters.dead_total + EXCLUDED.dead_total"

static const char sql_count_add[] =
    "INSERT INTO counters (source, slot, pending, delivered, dead,"
    " quarantined, received_total, delivered_total, dead_total)"
    " VALUES ($1::text, $2::integer, $3::bigint, $4::bigint, $5::bigint,"
    " $6::bigint, $7::bigint, $8::bigint, $9::bigint)" COUNT_MERGE;

/* The latest occurrence's state and reason win. */
#define ERROR_MERGE                                                            \
	" DO UPDATE SET count = recent_errors.count + EXCLUDED.count,"         \
	" state = CASE WHEN EXCLUDED.last_ms >= recent_errors.last_ms"         \
	" THEN EXCLUDED.state ELSE recent_errors.state END,"                   \
	" reason = CASE WHEN EXCLUDED.last_ms >= recent_errors.last_ms"        \
	" THEN EXCLUDED.reason ELSE recent_errors.reason END,"                 \
	" last_ms = GREATEST(recent_errors.last_ms, EXCLUDED.last_ms)"

static const char sql_error_add[] =
    "INSERT INTO recent_errors (source, error, slot, count, last_ms, state,"
    " reason) VALUES ($1::text, $2::text, $3::integer, $4::bigint,"
    " $5::bigint, $6::smallint, $7::text)"
    " ON CONFLICT (source, error, slot)" ERROR_MERGE;

/* A slot keeps the newest $3 errors of a source. */
static const char sql_error_trim[] =
    "DELETE FROM recent_errors WHERE source = $1::text"
    " AND slot = $2::integer AND error NOT IN (SELECT error"
    " FROM recent_errors WHERE source = $1::text AND slot = $2::integer"
    " ORDER BY last_ms DESC LIMIT $3::bigint)";

/* The slots whose connection is gone. */
#define GONE                                                                   \
	" slot <> 0 AND slot NOT IN (SELECT pid FROM pg_stat_activity"         \
	" WHERE pid IS NOT NULL)"

static const char sql_fold_counts[] =
    "WITH gone AS (DELETE FROM counters WHERE" GONE " RETURNING *)"
    " INSERT INTO counters (source, slot, pending, delivered, dead,"
    " quarantined, received_total, delivered_total, dead_total)"
    " SELECT source, 0, sum(pending), sum(delivered), sum(dead),"
    " sum(quarantined), sum(received_total), sum(delivered_total),"
    " sum(dead_total) FROM gone GROUP BY source" COUNT_MERGE;

static const char sql_fold_errors[] =
    "WITH gone AS (DELETE FROM recent_errors WHERE" GONE " RETURNING *)"
    " INSERT INTO recent_errors (source, error, slot, count, last_ms, state,"
    " reason) SELECT source, error, 0, sum(count), max(last_ms),"
    " (array_agg(state ORDER BY last_ms DESC))[1],"
    " (array_agg(reason ORDER BY last_ms DESC))[1]"
    " FROM gone GROUP BY source, error"
    " ON CONFLICT (source, error, slot)" ERROR_MERGE;

/* Slot 0 keeps the newest few errors of each source. */
static const char sql_fold_trim[] =
    "DELETE FROM recent_errors AS r USING (SELECT source, error,"
    " row_number() OVER (PARTITION BY source ORDER BY last_ms DESC) AS n"
    " FROM recent_errors WHERE slot = 0) AS k"
    " WHERE r.slot = 0 AND r.source = k.source AND r.error = k.error"
    " AND k.n > $1::bigint";

const struct pgs_read pgs_reads[] = {
    {"stats", sql_stats},
    {"errors", sql_errors},
};
const size_t pgs_nreads = sizeof(pgs_reads) / sizeof(pgs_reads[0]);

int
pgs_stats(void *state, int64_t now_ms, struct nb_source_stats **out, size_t *n)
{
	struct pg *q = state;
	struct nb_source_stats *s = NULL;
	struct params p = {0};
	PGresult *res = NULL;
	int i, rows;
	int rc = -1;

	pgs_par_int(&p, now_ms);
	if ((res = pgs_exec(
		 q, sql_stats, &p, PGRES_TUPLES_OK, __func__, "stats")) == NULL)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (s = calloc((size_t)rows, sizeof(*s))) == NULL) {
		log_error("out of memory", " sources=%d", rows);
		goto out;
	}
	for (i = 0; i < rows; i++) {
		snprintf(s[i].source, sizeof(s[i].source), "%s",
		    PQgetvalue(res, i, 0));
		s[i].pending = pgs_col_int64(res, i, 1);
		s[i].delivered = pgs_col_int64(res, i, 2);
		s[i].dead = pgs_col_int64(res, i, 3);
		s[i].quarantined = pgs_col_int64(res, i, 4);
		s[i].received_total = pgs_col_int64(res, i, 5);
		s[i].delivered_total = pgs_col_int64(res, i, 6);
		s[i].dead_total = pgs_col_int64(res, i, 7);
		s[i].oldest_pending_ms = pgs_col_int64(res, i, 8);
		s[i].inflight = pgs_col_int64(res, i, 9);
	}
	*out = s;
	*n = (size_t)rows;
	s = NULL;
	rc = 0;
out:
	PQclear(res);
	free(s);
	return rc;
}

/* A copy of column col of row (NULL stays NULL); sets *failed on ENOMEM. */
static char *
dup_col(const PGresult *res, int row, int col, int *failed)
{
	char *d;

	if (PQgetisnull(res, row, col))
		return NULL;
	if ((d = strdup(PQgetvalue(res, row, col))) == NULL)
		*failed = 1;
	return d;
}

int
pgs_errors(void *state, int64_t since_ms, size_t per_source,
    struct nb_store_error **out, size_t *n)
{
	struct pg *q = state;
	struct nb_store_error *e = NULL;
	struct params p = {0};
	PGresult *res = NULL;
	int i, rows = 0, failed = 0, rc = -1;

	pgs_par_int(&p, since_ms);
	pgs_par_int(
	    &p, per_source > INT64_MAX ? INT64_MAX : (int64_t)per_source);
	if ((res = pgs_exec(q, sql_errors, &p, PGRES_TUPLES_OK, __func__,
		 "errors")) == NULL)
		goto out;
	rows = PQntuples(res);
	if (rows > 0 && (e = calloc((size_t)rows, sizeof(*e))) == NULL)
		failed = 1;
	for (i = 0; i < rows && !failed; i++) {
		snprintf(e[i].source, sizeof(e[i].source), "%s",
		    PQgetvalue(res, i, 0));
		e[i].error = dup_col(res, i, 1, &failed);
		e[i].reason = dup_col(res, i, 2, &failed);
		e[i].state = (enum nb_event_state)pgs_col_int64(res, i, 3);
		e[i].count = pgs_col_int64(res, i, 4);
		e[i].last_ms = pgs_col_int64(res, i, 5);
		if (e[i].error == NULL)
			failed = 1;
	}
	if (failed) {
		log_error("out of memory", " errors=%d", rows);
		goto out;
	}
	*out = e;
	*n = (size_t)rows;
	e = NULL;
	rc = 0;
out:
	nb_store_errors_free(e, (size_t)rows);
	PQclear(res);
	return rc;
}

/* Adds one source's counter changes to this connection's slot. */
static int
count_write(struct pg *q, const struct nb_store_count *c, int slot)
{
	struct params p = {0};

	pgs_par_text(&p, c->source);
	pgs_par_int(&p, slot);
	pgs_par_int(&p, c->pending);
	pgs_par_int(&p, c->delivered);
	pgs_par_int(&p, c->dead);
	pgs_par_int(&p, c->quarantined);
	pgs_par_int(&p, c->received);
	pgs_par_int(&p, c->delivered_total);
	pgs_par_int(&p, c->dead_total);
	return pgs_run(
	    q, sql_count_add, &p, PGRES_COMMAND_OK, __func__, "counters");
}

/* Records one error in this connection's slot, then trims the slot. */
static int
error_write(struct pg *q, const struct nb_store_errnote *e, int slot)
{
	struct params p = {0};

	pgs_par_text(&p, e->source);
	pgs_par_text(&p, e->error);
	pgs_par_int(&p, slot);
	pgs_par_int(&p, e->count);
	pgs_par_int(&p, e->at_ms);
	pgs_par_int(&p, (int64_t)e->state);
	pgs_par_text(&p, e->reason);
	if (pgs_run(q, sql_error_add, &p, PGRES_COMMAND_OK, __func__,
		"errors") == -1)
		return -1;
	memset(&p, 0, sizeof(p));
	pgs_par_text(&p, e->source);
	pgs_par_int(&p, slot);
	pgs_par_int(&p, NB_STORE_ERRORS_KEPT);
	return pgs_run(
	    q, sql_error_trim, &p, PGRES_COMMAND_OK, __func__, "errors trim");
}

int
pgs_tally_write(struct pg *q, const struct nb_store_tally *t)
{
	int slot = PQbackendPID(q->conn);
	size_t i;

	for (i = 0; i < t->nc; i++)
		if (count_write(q, &t->c[i], slot) == -1)
			return -1;
	for (i = 0; i < t->ne; i++)
		if (error_write(q, &t->e[i], slot) == -1)
			return -1;
	return 0;
}

int
pgs_fold(struct pg *q)
{
	struct params p = {0};

	if (pgs_run(q, sql_fold_counts, NULL, PGRES_COMMAND_OK, __func__,
		"fold counters") == -1 ||
	    pgs_run(q, sql_fold_errors, NULL, PGRES_COMMAND_OK, __func__,
		"fold errors") == -1)
		return -1;
	pgs_par_int(&p, NB_STORE_ERRORS_KEPT);
	return pgs_run(
	    q, sql_fold_trim, &p, PGRES_COMMAND_OK, __func__, "fold trim");
}
