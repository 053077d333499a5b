/* SPDX-License-Identifier: ISC */
/*
 * store_pg: the PostgreSQL backend of the store, for several bridge
 * instances sharing one database.
 *
 * Same rows, states and rules as store_sqlite.c; what differs is who else
 * writes.  Every statement runs in READ COMMITTED and lets the database
 * arbitrate: de-duplication is an upsert that returns a row only for a new
 * key, so of two instances receiving one webhook at once exactly one stores
 * it; a claim is one UPDATE over a FOR UPDATE SKIP LOCKED sub-select that
 * records its connection as lease_owner, so a late release from an
 * instance whose lease ran out cannot drop the lease of the one that took
 * the row over.  COMMIT returns after the WAL flush (synchronous_commit is
 * forced on).  The schema is versioned in schema_version and migrated on
 * open under an advisory lock.  store.max_size_bytes is SQLite's.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"
#include "store_backend.h"

#define PG_CONNECT_TIMEOUT "5"	 /* seconds, unless the DSN says */
#define PG_RESET_MIN_MS	   1000	 /* first reconnect retry after */
#define PG_RESET_MAX_MS	   10000 /* back-off cap between retries */
#define PG_TX_RETRIES	   3	 /* append retries on deadlock */
#define PG_PIPE_CHUNK	   64	 /* statements per pipeline sync */
#define PG_MAX_PARAMS	   12
#define PG_OWNER_MAX	   96
/* Serialises migrations of every instance: "nbmigrat" in ASCII. */
#define PG_MIGRATE_LOCK "7953066767009686900"

/* Migrations: migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE events ("
    " seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " source TEXT NOT NULL,"
    " event_id TEXT,"
    " type TEXT,"
    " payload BYTEA NOT NULL,"
    " state SMALLINT NOT NULL,"
    " reason TEXT,"
    " error TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " received_ms BIGINT NOT NULL,"
    " age_base_ms BIGINT NOT NULL,"
    " next_ms BIGINT NOT NULL,"
    " lease_ms BIGINT NOT NULL DEFAULT 0,"
    " updated_ms BIGINT NOT NULL,"
    " lease_owner TEXT);"
    /* The queue in claim order; the source filter rides along. */
    "CREATE INDEX events_due ON events (next_ms, seq) WHERE state = 0;"
    "CREATE INDEX events_state ON events (state, received_ms);"
    "CREATE INDEX events_source_id ON events (source, event_id);"
    "CREATE TABLE seen_requests ("
    " source TEXT NOT NULL,"
    " webhook_id TEXT NOT NULL,"
    " seen_ms BIGINT NOT NULL,"
    " PRIMARY KEY (source, webhook_id));"
    "CREATE INDEX seen_requests_ms ON seen_requests (seen_ms);"
    "CREATE TABLE seen_events ("
    " source TEXT NOT NULL,"
    " event_id TEXT NOT NULL,"
    " seen_ms BIGINT NOT NULL,"
    " PRIMARY KEY (source, event_id));"
    "CREATE INDEX seen_events_ms ON seen_events (seen_ms);"
    "CREATE TABLE meta ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " probe_ms BIGINT NOT NULL);",
};
#define PG_SCHEMA_LATEST ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define EVENT_COLS                                                             \
	"seq, source, event_id, type, payload, state, reason, error,"          \
	" attempts, received_ms, age_base_ms, updated_ms"

/*
 * Operator filter, as in store_sqlite.c: $1 seq (NULL: any), $2 source, $3
 * type, $4 reason, $5 id (NULL: any), $6 since, $7 until (0: unbounded), $8
 * state mask, $9 after_seq, $10 limit (NULL: none).
 */
#define FILTER_WHERE                                                           \
	" WHERE ($1::bigint IS NULL OR seq = $1::bigint)"                      \
	" AND ($2::text IS NULL OR source = $2::text)"                         \
	" AND ($3::text IS NULL OR type = $3::text)"                           \
	" AND ($4::text IS NULL OR reason = $4::text)"                         \
	" AND ($5::text IS NULL OR event_id = $5::text)"                       \
	" AND ($6::bigint = 0 OR received_ms >= $6::bigint)"                   \
	" AND ($7::bigint = 0 OR received_ms <= $7::bigint)"                   \
	" AND (($8::integer >> state) & 1) = 1 AND seq > $9::bigint"           \
	" ORDER BY seq LIMIT $10::bigint"

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

static const char sql_retry[] =
    "UPDATE events AS e SET attempts = e.attempts + 1, error = $4::text,"
    " next_ms = r.next_ms, lease_ms = 0, lease_owner = NULL"
    " FROM unnest($1::bigint[], $2::bigint[]) AS r (seq, next_ms)"
    " WHERE e.seq = r.seq AND e.state = 0"
    " AND (e.lease_owner IS NULL OR e.lease_owner = $3::text)";

static const char sql_delivered[] =
    "UPDATE events SET state = 1, lease_ms = 0, lease_owner = NULL,"
    " updated_ms = $2::bigint WHERE seq = ANY ($1::bigint[]) AND state = 0";

static const char sql_dead[] =
    "UPDATE events SET state = 2, reason = $2::text, error = $3::text,"
    " lease_ms = 0, lease_owner = NULL, updated_ms = $4::bigint"
    " WHERE seq = ANY ($1::bigint[]) AND state = 0";

static const char sql_list[] = "SELECT " EVENT_COLS " FROM events" FILTER_WHERE;

static const char sql_replay_pending[] =
    "UPDATE events SET state = 0, reason = NULL, error = NULL,"
    " attempts = 0, next_ms = $2::bigint, age_base_ms = $2::bigint,"
    " lease_ms = 0, lease_owner = NULL, updated_ms = $2::bigint,"
    " event_id = coalesce($3::text, event_id),"
    " type = coalesce($4::text, type) WHERE seq = $1::bigint";

static const char sql_requarantine[] =
    "UPDATE events SET error = $2::text, updated_ms = $3::bigint"
    " WHERE seq = $1::bigint";

static const char sql_purge_count[] =
    "SELECT count(*) FROM (SELECT seq FROM events" FILTER_WHERE ") AS f";

static const char sql_purge[] =
    "DELETE FROM events WHERE seq IN (SELECT seq FROM events" FILTER_WHERE ")";

/* Sorted bytewise like SQLite, whatever the database's collation. */
static const char sql_stats[] =
    "SELECT source, count(*) FILTER (WHERE state = 0),"
    " count(*) FILTER (WHERE state = 0 AND lease_ms > $1::bigint),"
    " count(*) FILTER (WHERE state = 1), count(*) FILTER (WHERE state = 2),"
    " count(*) FILTER (WHERE state = 2"
    " AND reason = '" NB_REASON_QUARANTINED "'),"
    " coalesce(min(received_ms) FILTER (WHERE state = 0), 0)"
    " FROM events GROUP BY source ORDER BY source COLLATE \"C\"";

static const char sql_probe[] =
    "INSERT INTO meta (id, probe_ms) VALUES (1, $1::bigint)"
    " ON CONFLICT (id) DO UPDATE SET probe_ms = EXCLUDED.probe_ms";

/*
 * Per session: READ COMMITTED whatever the server default, and a durable
 * COMMIT: synchronous_commit "off" becomes "on"; local, on, remote_write
 * and remote_apply all wait for at least the local WAL flush and stay.
 */
static const char sql_session[] =
    "SET default_transaction_isolation TO 'read committed';"
    "SELECT set_config('synchronous_commit', 'on', false)"
    " WHERE current_setting('synchronous_commit') = 'off'";

struct pipe;

/*
 * One PGconn used by one thread with synchronous calls.  A call that finds
 * the connection broken tries PQreset() (then again after 1 s, doubling up
 * to 10 s) and fails with -1 until the server is back.
 */
struct pg {
	PGconn *conn;
	char owner[PG_OWNER_MAX]; /* lease_owner of this connection */
	int64_t reset_mono_ms;	  /* last reconnect attempt */
	int64_t reset_wait_ms;	  /* before the next one */
	char sqlstate[6];	  /* of the last failure */
	struct pipe *pipe;	  /* append's statement batch */
};

/* Parameters of one statement, all text except bytea payloads. */
struct params {
	const char *v[PG_MAX_PARAMS];
	int len[PG_MAX_PARAMS];
	int fmt[PG_MAX_PARAMS];
	char num[PG_MAX_PARAMS][24];
	int n;
};

static void
par_text(struct params *p, const char *s)
{
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

static void
par_int(struct params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
	par_text(p, p->num[p->n]);
}

/* A binary parameter; the caller checked len <= INT_MAX. */
static void
par_bin(struct params *p, const char *data, size_t len)
{
	p->v[p->n] = data != NULL ? data : "";
	p->len[p->n] = data != NULL ? (int)len : 0;
	p->fmt[p->n] = 1;
	p->n++;
}

/* Drops server notices ("relation already exists, skipping"). */
static void
notice_cb(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* Logs a failure once, with SQLSTATE and the server's message. */
static void
db_log(struct pg *q, const PGresult *res, const char *fn, const char *op)
{
	const char *state = NULL, *msg = NULL;
	char text[256], qerr[300];
	size_t len;

	if (res != NULL) {
		state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	}
	if (msg == NULL)
		msg = PQerrorMessage(q->conn);
	snprintf(
	    q->sqlstate, sizeof(q->sqlstate), "%s", state != NULL ? state : "");
	/* The first line says it ("terminating connection due to ..."). */
	snprintf(text, sizeof(text), "%s", msg);
	text[strcspn(text, "\n")] = '\0';
	len = strlen(text);
	while (len > 0 && text[len - 1] == ' ')
		text[--len] = '\0';
	if (PQstatus(q->conn) != CONNECTION_OK)
		nb_log(NB_LOG_ERROR, fn, "store connection lost",
		    " op=%s error=%s", op,
		    nb_log_quote(qerr, sizeof(qerr), text));
	else
		nb_log(NB_LOG_ERROR, fn, "postgres failure",
		    " op=%s sqlstate=%s error=%s", op,
		    state != NULL ? state : "-",
		    nb_log_quote(qerr, sizeof(qerr), text));
}

/*
 * Runs sql with params p (NULL: none) and returns its result when the
 * status is want, else NULL (logged).  The caller PQclear()s the result.
 */
static PGresult *
q_exec(struct pg *q, const char *sql, const struct params *p,
    ExecStatusType want, const char *fn, const char *op)
{
	PGresult *res;

	q->sqlstate[0] = '\0';
	if (p == NULL)
		res = PQexec(q->conn, sql);
	else
		res = PQexecParams(
		    q->conn, sql, p->n, NULL, p->v, p->len, p->fmt, 0);
	if (res == NULL || PQresultStatus(res) != want) {
		db_log(q, res, fn, op);
		PQclear(res);
		return NULL;
	}
	return res;
}

/* Runs a statement whose result is not needed. */
static int
q_run(struct pg *q, const char *sql, const struct params *p,
    ExecStatusType want, const char *fn, const char *op)
{
	PGresult *res;

	if ((res = q_exec(q, sql, p, want, fn, op)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* Rows changed by a command result. */
static size_t
cmd_tuples(PGresult *res)
{
	const char *s = PQcmdTuples(res);

	return s != NULL && s[0] != '\0' ? (size_t)strtoull(s, NULL, 10) : 0;
}

static int
session_setup(struct pg *q, const char *fn)
{
	PQsetNoticeProcessor(q->conn, notice_cb, NULL);
	return q_run(q, sql_session, NULL, PGRES_TUPLES_OK, fn, "session");
}

/*
 * Makes sure the connection is usable: after a failure that broke it,
 * reconnects, failing fast between attempts.  The wait between attempts
 * doubles from 1 s to 10 s while the server stays away, because an attempt
 * against a host that drops packets blocks for connect_timeout, and the
 * main thread's connection serves /metrics from the event loop.
 */
static int
conn_check(struct pg *q, const char *fn)
{
	char text[256], qerr[300];
	int64_t now;

	if (PQstatus(q->conn) == CONNECTION_OK &&
	    PQtransactionStatus(q->conn) == PQTRANS_IDLE)
		return 0;
	if (PQstatus(q->conn) == CONNECTION_OK) {
		/* A transaction left open by a failed call: end it. */
		PQclear(PQexec(q->conn, "ROLLBACK"));
		if (PQstatus(q->conn) == CONNECTION_OK)
			return 0;
	}
	now = nb_time_mono_ms();
	if (q->reset_mono_ms != 0 && now - q->reset_mono_ms < q->reset_wait_ms)
		return -1;
	q->reset_mono_ms = now;
	PQreset(q->conn);
	if (PQstatus(q->conn) != CONNECTION_OK) {
		q->reset_wait_ms = q->reset_wait_ms < PG_RESET_MIN_MS
		    ? PG_RESET_MIN_MS
		    : q->reset_wait_ms * 2;
		if (q->reset_wait_ms > PG_RESET_MAX_MS)
			q->reset_wait_ms = PG_RESET_MAX_MS;
		snprintf(text, sizeof(text), "%s", PQerrorMessage(q->conn));
		text[strcspn(text, "\n")] = '\0';
		nb_log(NB_LOG_ERROR, fn, "store unreachable", " error=%s",
		    nb_log_quote(qerr, sizeof(qerr), text));
		return -1;
	}
	if (session_setup(q, fn) == -1)
		return -1;
	q->reset_wait_ms = 0;
	nb_log(NB_LOG_INFO, fn, "store reconnected", "%s", "");
	return 0;
}

static int
tx_begin(struct pg *q, const char *fn)
{
	return q_run(q, "BEGIN", NULL, PGRES_COMMAND_OK, fn, "begin");
}

static int
tx_commit(struct pg *q, const char *fn)
{
	PGresult *res;
	int rc = -1;

	if ((res = q_exec(q, "COMMIT", NULL, PGRES_COMMAND_OK, fn, "commit")) ==
	    NULL)
		return -1;
	/* An aborted transaction "commits" as ROLLBACK. */
	if (strcmp(PQcmdStatus(res), "COMMIT") == 0)
		rc = 0;
	else
		nb_log(NB_LOG_ERROR, fn, "postgres failure",
		    " op=commit status=%s", PQcmdStatus(res));
	PQclear(res);
	return rc;
}

static void
tx_rollback(struct pg *q)
{
	PGTransactionStatusType ts = PQtransactionStatus(q->conn);

	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		PQclear(PQexec(q->conn, "ROLLBACK"));
}

/* "{1,2,3}": an int8[] literal. */
static char *
int64_array(const int64_t *v, size_t n, size_t stride)
{
	const char *base = (const char *)v;
	int64_t x;
	char *s;
	size_t i, off = 0, cap;
	int len;

	if (n > (SIZE_MAX - 3) / 21) {
		log_error("too many rows", " rows=%zu", n);
		return NULL;
	}
	cap = n * 21 + 3;
	if ((s = malloc(cap)) == NULL) {
		log_error("out of memory", " rows=%zu", n);
		return NULL;
	}
	s[off++] = '{';
	for (i = 0; i < n; i++) {
		memcpy(&x, base + i * stride, sizeof(x));
		len = snprintf(
		    s + off, cap - off, "%s%" PRId64, i > 0 ? "," : "", x);
		if (len < 0 || (size_t)len >= cap - off) {
			free(s);
			return NULL;
		}
		off += (size_t)len;
	}
	s[off++] = '}';
	s[off] = '\0';
	return s;
}

/* {"a","b"}: a text[] literal with " and \ escaped. */
static char *
text_array(const char *const *v, size_t n)
{
	const char *p;
	char *s;
	size_t i, off = 0, cap = 3;

	for (i = 0; i < n; i++) {
		if (strlen(v[i]) > (SIZE_MAX - cap) / 2 - 3) {
			log_error("source names too long", " n=%zu", n);
			return NULL;
		}
		cap += 2 * strlen(v[i]) + 3;
	}
	if ((s = malloc(cap)) == NULL) {
		log_error("out of memory", " sources=%zu", n);
		return NULL;
	}
	s[off++] = '{';
	for (i = 0; i < n; i++) {
		if (i > 0)
			s[off++] = ',';
		s[off++] = '"';
		for (p = v[i]; *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				s[off++] = '\\';
			s[off++] = *p;
		}
		s[off++] = '"';
	}
	s[off++] = '}';
	s[off] = '\0';
	return s;
}

static int64_t
col_int64(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col)
	    ? 0
	    : (int64_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
}

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
	ev->seq = col_int64(res, row, 0);
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
	ev->state = (enum nb_event_state)col_int64(res, row, 5);
	ev->reason = col_strdup(res, row, 6, &failed);
	ev->error = col_strdup(res, row, 7, &failed);
	ev->attempts = (int)col_int64(res, row, 8);
	ev->received_ms = col_int64(res, row, 9);
	ev->age_base_ms = col_int64(res, row, 10);
	ev->updated_ms = col_int64(res, row, 11);
	if (ev->source == NULL)
		failed = 1;
	return failed ? -1 : 0;
}

/* Appends every row of res.  0 or -1 (logged). */
static int
rows_push_result(struct nb_store_rows *v, const PGresult *res)
{
	struct nb_stored_event *ev;
	int i, rows = PQntuples(res);

	for (i = 0; i < rows; i++) {
		if ((ev = nb_store_rows_next(v)) == NULL)
			return -1;
		if (row_read(res, i, ev) == -1) {
			log_error("out of memory", " rows=%zu", v->n);
			return -1;
		}
	}
	return 0;
}

/* Fills $1..$10 of FILTER_WHERE.  -1 when f->key can match no row. */
static int
filter_params(struct params *p, const struct nb_store_filter *f)
{
	static const struct nb_store_filter all;
	int64_t seq;

	if (f == NULL)
		f = &all;
	p->n = 0;
	if (f->key != NULL) {
		if (nb_store_key_parse(f->key, &seq) == -1)
			return -1;
		par_int(p, seq);
	} else
		par_text(p, NULL);
	par_text(p, f->source);
	par_text(p, f->type);
	par_text(p, f->reason);
	par_text(p, f->id);
	par_int(p, f->since_ms);
	par_int(p, f->until_ms);
	par_int(p, (int64_t)nb_store_filter_states(f));
	par_int(p, f->after_seq > 0 ? f->after_seq : 0);
	if (f->limit == 0 || f->limit > INT64_MAX)
		par_text(p, NULL);
	else
		par_int(p, (int64_t)f->limit);
	return 0;
}

static int
migrate(struct pg *q, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *res = NULL;
	int64_t version = 0;
	int rc = -1, v;

	if (tx_begin(q, __func__) == -1 ||
	    q_run(q, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")", NULL,
		PGRES_TUPLES_OK, __func__, "lock") == -1 ||
	    q_run(q,
		"CREATE TABLE IF NOT EXISTS schema_version ("
		" id INTEGER PRIMARY KEY CHECK (id = 1),"
		" version INTEGER NOT NULL)",
		NULL, PGRES_COMMAND_OK, __func__, "schema_version") == -1 ||
	    (res = q_exec(q, "SELECT version FROM schema_version WHERE id = 1",
		 NULL, PGRES_TUPLES_OK, __func__, "version")) == NULL) {
		snprintf(err, errlen, "store.dsn: cannot read the schema: %s",
		    PQerrorMessage(q->conn));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (PQntuples(res) > 0)
		version = col_int64(res, 0, 0);
	if (version < 0 || version > PG_SCHEMA_LATEST) {
		snprintf(err, errlen,
		    "store.dsn: the database has schema version %" PRId64
		    ", this build knows up to %d",
		    version, PG_SCHEMA_LATEST);
		goto out;
	}
	for (v = (int)version; v < PG_SCHEMA_LATEST; v++) {
		if (q_run(q, migrations[v], NULL, PGRES_COMMAND_OK, __func__,
			"migrate") == -1) {
			snprintf(err, errlen,
			    "store.dsn: migration to version %d failed", v + 1);
			goto out;
		}
	}
	if (version != PG_SCHEMA_LATEST) {
		par_int(&p, PG_SCHEMA_LATEST);
		if (q_run(q,
			"INSERT INTO schema_version (id, version)"
			" VALUES (1, $1::integer) ON CONFLICT (id)"
			" DO UPDATE SET version = EXCLUDED.version",
			&p, PGRES_COMMAND_OK, __func__, "set version") == -1) {
			snprintf(err, errlen,
			    "store.dsn: cannot set the schema version");
			goto out;
		}
	}
	if (tx_commit(q, __func__) == -1) {
		snprintf(err, errlen, "store.dsn: migration commit failed");
		goto out;
	}
	if (version != PG_SCHEMA_LATEST)
		log_info("store migrated", " from=%" PRId64 " to=%d", version,
		    PG_SCHEMA_LATEST);
	rc = 0;
out:
	PQclear(res);
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

static void
pg_close(void *state)
{
	struct pg *q = state;

	if (q == NULL)
		return;
	PQfinish(q->conn);
	free(q->pipe);
	free(q);
}

/* host/pid/n: tells instances (and connections) apart in lease_owner. */
static void
owner_make(char *out, size_t outlen)
{
	static atomic_uint counter;
	char host[64];

	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	snprintf(out, outlen, "%s/%ld/%" PRId64 "/%u", host, (long)getpid(),
	    nb_time_now_ms(), atomic_fetch_add(&counter, 1));
}

static int
pg_open(
    void **state, const struct nb_store_config *cfg, char *err, size_t errlen)
{
	/* Defaults first: the DSN (expanded from dbname) overrides them. */
	static const char *const keys[] = {"connect_timeout",
	    "application_name", "client_encoding", "dbname", NULL};
	const char *vals[5];
	struct pg *q = NULL;
	int rc = -1;

	*state = NULL;
	if (cfg->dsn == NULL || cfg->dsn[0] == '\0') {
		snprintf(err, errlen, "store.dsn: missing");
		goto out;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		snprintf(err, errlen, "store: out of memory");
		goto out;
	}
	owner_make(q->owner, sizeof(q->owner));
	vals[0] = PG_CONNECT_TIMEOUT;
	vals[1] = "nudgebridge";
	vals[2] = "UTF8";
	vals[3] = cfg->dsn;
	vals[4] = NULL;
	q->conn = PQconnectdbParams(keys, vals, 1);
	if (q->conn == NULL) {
		snprintf(err, errlen, "store: out of memory");
		goto out;
	}
	if (PQstatus(q->conn) != CONNECTION_OK) {
		/* libpq's message names host and port, never the password. */
		snprintf(err, errlen, "store.dsn: cannot connect: %s",
		    PQerrorMessage(q->conn));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (session_setup(q, __func__) == -1) {
		snprintf(err, errlen, "store.dsn: session setup failed: %s",
		    PQerrorMessage(q->conn));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (migrate(q, err, errlen) == -1)
		goto out;
	*state = q;
	q = NULL;
	rc = 0;
out:
	pg_close(q);
	return rc;
}

static int
pg_schema_version(void *state, int *version)
{
	struct pg *q = state;
	PGresult *res;

	if (conn_check(q, __func__) == -1)
		return -1;
	if ((res = q_exec(q, "SELECT version FROM schema_version WHERE id = 1",
		 NULL, PGRES_TUPLES_OK, __func__, "version")) == NULL)
		return -1;
	*version = PQntuples(res) > 0 ? (int)col_int64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

/*
 * Nothing to do: other instances may hold live leases on rows, and a lease
 * left by a crashed instance runs out after store.lease_s by itself, after
 * which any instance claims the row.  Dropping every lease here would make
 * two instances send the same rows at once on every restart.
 */
static int
pg_recover(void *state)
{
	(void)state;
	return 0;
}

/*
 * A batch of statements sent in pipeline mode: one network round trip for
 * up to PG_PIPE_CHUNK statements instead of one each.  The chunk bound also
 * keeps the results the server writes back while we are still sending far
 * below a socket buffer, so the blocking connection cannot deadlock.
 */
struct pipe {
	const char *sql[PG_PIPE_CHUNK];
	struct params p[PG_PIPE_CHUNK];
	int rows[PG_PIPE_CHUNK]; /* out: rows each statement returned */
	size_t n;
};

/* Reads the results of n pipelined statements and the sync that follows. */
static int
pipe_read(struct pg *q, struct pipe *pp, const char *fn)
{
	PGresult *res;
	ExecStatusType st;
	size_t i;
	int rc = 0;

	for (i = 0; i < pp->n; i++) {
		if ((res = PQgetResult(q->conn)) == NULL) {
			db_log(q, NULL, fn, "pipeline");
			return -1;
		}
		st = PQresultStatus(res);
		if (st == PGRES_TUPLES_OK)
			pp->rows[i] = PQntuples(res);
		else {
			/* The first failure is logged; the rest were skipped.
			 */
			if (st != PGRES_PIPELINE_ABORTED)
				db_log(q, res, fn, "pipeline");
			rc = -1;
		}
		PQclear(res);
		/* Each statement's results end with a NULL. */
		if ((res = PQgetResult(q->conn)) != NULL) {
			PQclear(res);
			db_log(q, NULL, fn, "pipeline");
			return -1;
		}
	}
	if ((res = PQgetResult(q->conn)) == NULL ||
	    PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
		db_log(q, res, fn, "pipeline sync");
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return rc;
}

/* Runs the batched statements; pp->rows tells what each returned. */
static int
pipe_flush(struct pg *q, struct pipe *pp, const char *fn)
{
	size_t i;
	int rc = -1;

	if (pp->n == 0)
		return 0;
	if (PQenterPipelineMode(q->conn) != 1) {
		db_log(q, NULL, fn, "pipeline mode");
		return -1;
	}
	for (i = 0; i < pp->n; i++) {
		pp->rows[i] = 0;
		if (PQsendQueryParams(q->conn, pp->sql[i], pp->p[i].n, NULL,
			pp->p[i].v, pp->p[i].len, pp->p[i].fmt, 0) != 1) {
			db_log(q, NULL, fn, "pipeline send");
			goto out;
		}
	}
	if (PQpipelineSync(q->conn) != 1) {
		db_log(q, NULL, fn, "pipeline sync");
		goto out;
	}
	rc = pipe_read(q, pp, fn);
out:
	/*
	 * Fails only with results left unread, after a broken send or read:
	 * start over on a new connection rather than guess where the
	 * protocol stands.
	 */
	if (PQexitPipelineMode(q->conn) != 1) {
		log_error("pipeline stuck, reconnecting", "%s", "");
		PQreset(q->conn);
		if (PQstatus(q->conn) == CONNECTION_OK)
			(void)session_setup(q, fn);
		rc = -1;
	}
	return rc;
}

/* The next free statement of pp, its parameters cleared. */
static struct params *
pipe_add(struct pipe *pp, const char *sql)
{
	struct params *p = &pp->p[pp->n];

	memset(p, 0, sizeof(*p));
	pp->sql[pp->n++] = sql;
	return p;
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
			p = pipe_add(pp, sql_seen_request);
			par_text(p, reqs[i]->source);
			par_text(p, reqs[i]->webhook_id);
			par_int(p, reqs[i]->received_ms);
			par_int(p, reqs[i]->dedupe_after_ms);
		}
		if (pp->n == PG_PIPE_CHUNK || (i == n && pp->n > 0)) {
			if (pipe_flush(q, pp, __func__) == -1)
				return -1;
			for (k = 0; k < pp->n; k++)
				fresh[idx[k]] = pp->rows[k] > 0;
			pp->n = 0;
		}
	}
	return 0;
}

/* Counts what the batched inserts of events did. */
static void
count_inserts(struct pipe *pp, struct nb_append *const *reqs,
    const size_t *ridx, const size_t *eidx)
{
	struct nb_append *r;
	size_t k;

	for (k = 0; k < pp->n; k++) {
		r = reqs[ridx[k]];
		if (pp->rows[k] == 0)
			r->duplicates++;
		else if (r->events[eidx[k]].error != NULL)
			r->quarantined++;
		else
			r->accepted++;
	}
	pp->n = 0;
}

/*
 * Phase two: the events of new requests, in order.  An event with an id is
 * stored only when its key is new; the same key twice in the group is
 * caught because the statements run one after the other.
 */
static int
append_events(struct pg *q, struct pipe *pp, struct nb_append *const *reqs,
    size_t n, const unsigned char *fresh)
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
			p = pipe_add(
			    pp, e->id != NULL ? sql_insert_seen : sql_insert);
			par_text(p, r->source);
			par_text(p, e->id);
			par_text(p, e->type);
			par_bin(p, e->raw, e->rawlen);
			par_int(p, dead ? NB_STATE_DEAD : NB_STATE_PENDING);
			par_text(p, dead ? NB_REASON_QUARANTINED : NULL);
			par_text(p, e->error);
			par_int(p, r->received_ms);
			if (e->id != NULL)
				par_int(p, r->dedupe_after_ms);
			if (pp->n == PG_PIPE_CHUNK) {
				if (pipe_flush(q, pp, __func__) == -1)
					return -1;
				count_inserts(pp, reqs, ridx, eidx);
			}
		}
	}
	if (pipe_flush(q, pp, __func__) == -1)
		return -1;
	count_inserts(pp, reqs, ridx, eidx);
	return 0;
}

/*
 * The request keys first, then the events of the new requests: the two
 * key spaces are independent, so this decides exactly as storing request
 * by request would, in two pipelines instead of one trip per statement.
 */
static int
append_tx(struct pg *q, struct nb_append *const *reqs, size_t n)
{
	unsigned char *fresh = NULL;
	int rc = -1;

	if (q->pipe == NULL && (q->pipe = malloc(sizeof(*q->pipe))) == NULL) {
		log_error("out of memory", " requests=%zu", n);
		return -1;
	}
	if ((fresh = calloc(n, 1)) == NULL) {
		log_error("out of memory", " requests=%zu", n);
		return -1;
	}
	q->sqlstate[0] = '\0';
	if (tx_begin(q, __func__) == -1)
		goto out;
	if (append_requests(q, q->pipe, reqs, n, fresh) == -1 ||
	    append_events(q, q->pipe, reqs, n, fresh) == -1)
		goto out;
	if (tx_commit(q, __func__) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	free(fresh);
	return rc;
}

/*
 * Two instances storing overlapping groups in different orders can
 * deadlock on the dedupe keys; PostgreSQL aborts one, which changed
 * nothing, so it is simply run again.
 */
static int
pg_append(void *state, struct nb_append *const *reqs, size_t n)
{
	struct pg *q = state;
	int attempt;

	if (n == 0)
		return 0;
	for (attempt = 0;; attempt++) {
		if (conn_check(q, __func__) == -1)
			return -1;
		if (append_tx(q, reqs, n) == 0)
			return 0;
		if (attempt == PG_TX_RETRIES ||
		    (strcmp(q->sqlstate, "40P01") != 0 &&
			strcmp(q->sqlstate, "40001") != 0))
			return -1;
		log_warn("append retried", " attempt=%d", attempt + 1);
	}
}

static int
pg_claim(void *state, const char *const *sources, size_t nsources,
    int64_t now_ms, int64_t lease_until_ms, size_t limit,
    struct nb_stored_event **out, size_t *n)
{
	struct pg *q = state;
	struct params p = {0};
	struct nb_store_rows v = {0};
	PGresult *res = NULL;
	char *names = NULL;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (nsources == 0 || limit == 0)
		return 0;
	if (conn_check(q, __func__) == -1)
		return -1;
	if ((names = text_array(sources, nsources)) == NULL)
		goto out;
	par_text(&p, names);
	par_int(&p, now_ms);
	par_int(&p, lease_until_ms);
	par_int(&p, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
	par_text(&p, q->owner);
	if ((res = q_exec(
		 q, sql_claim, &p, PGRES_TUPLES_OK, __func__, "claim")) == NULL)
		goto out;
	if (rows_push_result(&v, res) == -1)
		goto out;
	if (v.n > 0) {
		*out = v.v;
		*n = v.n;
	} else
		free(v.v);
	memset(&v, 0, sizeof(v));
	rc = 0;
out:
	nb_store_rows_clear(&v);
	PQclear(res);
	free(names);
	return rc;
}

/*
 * Runs a one-statement update whose $1 is the seq array; p holds a
 * placeholder for $1 and the statement's other parameters.
 */
static int
update_rows(struct pg *q, const char *sql, const int64_t *seqs, size_t n,
    struct params *p, const char *fn)
{
	char *arr = NULL;
	int rc = -1;

	if (n == 0)
		return 0;
	if (conn_check(q, fn) == -1)
		return -1;
	if ((arr = int64_array(seqs, n, sizeof(*seqs))) == NULL)
		goto out;
	p->v[0] = arr;
	rc = q_run(q, sql, p, PGRES_COMMAND_OK, fn, "update");
out:
	free(arr);
	return rc;
}

static int
pg_extend(void *state, const int64_t *seqs, size_t n, int64_t lease_until_ms)
{
	struct pg *q = state;
	struct params p = {0};

	par_text(&p, NULL);
	par_int(&p, lease_until_ms);
	par_text(&p, q->owner);
	return update_rows(q, sql_extend, seqs, n, &p, __func__);
}

static int
pg_delivered(void *state, const int64_t *seqs, size_t n, int64_t now_ms)
{
	struct params p = {0};

	par_text(&p, NULL);
	par_int(&p, now_ms);
	return update_rows(state, sql_delivered, seqs, n, &p, __func__);
}

static int
pg_release(void *state, const int64_t *seqs, size_t n)
{
	struct pg *q = state;
	struct params p = {0};

	par_text(&p, NULL);
	par_text(&p, q->owner);
	return update_rows(q, sql_release, seqs, n, &p, __func__);
}

static int
pg_dead(void *state, const int64_t *seqs, size_t n, const char *reason,
    const char *error, int64_t now_ms)
{
	struct params p = {0};

	par_text(&p, NULL);
	par_text(&p, reason);
	par_text(&p, error);
	par_int(&p, now_ms);
	return update_rows(state, sql_dead, seqs, n, &p, __func__);
}

static int
pg_retry(
    void *state, const struct nb_store_retry *rows, size_t n, const char *error)
{
	struct pg *q = state;
	struct params p = {0};
	char *seqs = NULL, *next = NULL;
	int rc = -1;

	if (n == 0)
		return 0;
	if (conn_check(q, __func__) == -1)
		return -1;
	if ((seqs = int64_array(&rows[0].seq, n, sizeof(*rows))) == NULL ||
	    (next = int64_array(&rows[0].next_ms, n, sizeof(*rows))) == NULL)
		goto out;
	par_text(&p, seqs);
	par_text(&p, next);
	par_text(&p, q->owner);
	par_text(&p, error);
	rc = q_run(q, sql_retry, &p, PGRES_COMMAND_OK, __func__, "retry");
out:
	free(seqs);
	free(next);
	return rc;
}

/* Appends the rows matching f to v. */
static int
list_into(
    struct pg *q, const struct nb_store_filter *f, struct nb_store_rows *v)
{
	struct params p = {0};
	PGresult *res;
	int rc;

	if (filter_params(&p, f) == -1)
		return 0;
	if ((res = q_exec(
		 q, sql_list, &p, PGRES_TUPLES_OK, __func__, "list")) == NULL)
		return -1;
	rc = rows_push_result(v, res);
	PQclear(res);
	return rc;
}

/*
 * Lists on the connection as it is: also the replay_list primitive, which
 * must not call conn_check() (that would end the open transaction).
 */
static int
pg_replay_list(void *state, const struct nb_store_filter *f,
    struct nb_stored_event **out, size_t *n)
{
	struct nb_store_rows v = {0};

	*out = NULL;
	*n = 0;
	if (list_into(state, f, &v) == -1) {
		nb_store_rows_clear(&v);
		return -1;
	}
	*out = v.v;
	*n = v.n;
	return 0;
}

static int
pg_list(void *state, const struct nb_store_filter *f,
    struct nb_stored_event **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	if (conn_check(state, __func__) == -1)
		return -1;
	return pg_replay_list(state, f, out, n);
}

static int
pg_make_pending(
    void *state, int64_t seq, int64_t now_ms, const char *id, const char *type)
{
	struct pg *q = state;
	struct params p = {0};

	par_int(&p, seq);
	par_int(&p, now_ms);
	par_text(&p, id);
	par_text(&p, type);
	return q_run(
	    q, sql_replay_pending, &p, PGRES_COMMAND_OK, __func__, "replay");
}

static int
pg_requarantine(void *state, int64_t seq, const char *error, int64_t now_ms)
{
	struct pg *q = state;
	struct params p = {0};

	par_int(&p, seq);
	par_text(&p, error);
	par_int(&p, now_ms);
	return q_run(q, sql_requarantine, &p, PGRES_COMMAND_OK, __func__,
	    "requarantine");
}

static int
pg_replay_begin(void *state, int dry_run)
{
	struct pg *q = state;

	if (conn_check(q, __func__) == -1)
		return -1;
	return dry_run ? 0 : tx_begin(q, __func__);
}

static int
pg_replay_commit(void *state)
{
	return tx_commit(state, __func__);
}

static void
pg_replay_rollback(void *state)
{
	tx_rollback(state);
}

static int
pg_purge(
    void *state, const struct nb_store_filter *f, int dry_run, size_t *purged)
{
	struct pg *q = state;
	struct params p = {0};
	PGresult *res;

	*purged = 0;
	if (filter_params(&p, f) == -1)
		return 0;
	if (conn_check(q, __func__) == -1)
		return -1;
	if (dry_run) {
		if ((res = q_exec(q, sql_purge_count, &p, PGRES_TUPLES_OK,
			 __func__, "purge count")) == NULL)
			return -1;
		*purged = (size_t)col_int64(res, 0, 0);
	} else {
		if ((res = q_exec(q, sql_purge, &p, PGRES_COMMAND_OK, __func__,
			 "purge")) == NULL)
			return -1;
		*purged = cmd_tuples(res);
	}
	PQclear(res);
	return 0;
}

static int
pg_stats(void *state, int64_t now_ms, struct nb_source_stats **out, size_t *n)
{
	struct pg *q = state;
	struct nb_source_stats *s = NULL;
	struct params p = {0};
	PGresult *res = NULL;
	int i, rows;
	int rc = -1;

	*out = NULL;
	*n = 0;
	if (conn_check(q, __func__) == -1)
		return -1;
	par_int(&p, now_ms);
	if ((res = q_exec(
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
		s[i].pending = col_int64(res, i, 1);
		s[i].inflight = col_int64(res, i, 2);
		s[i].delivered = col_int64(res, i, 3);
		s[i].dead = col_int64(res, i, 4);
		s[i].quarantined = col_int64(res, i, 5);
		s[i].oldest_pending_ms = col_int64(res, i, 6);
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

static int
pg_prune(void *state, int64_t dedupe_after_ms, int64_t delivered_before_ms)
{
	static const char *const sqls[] = {
	    "DELETE FROM seen_requests WHERE seen_ms < $1::bigint",
	    "DELETE FROM seen_events WHERE seen_ms < $1::bigint",
	    "DELETE FROM events WHERE state = 1 AND updated_ms < $1::bigint",
	};
	struct pg *q = state;
	struct params p;
	size_t i;
	int rc = -1;

	if (conn_check(q, __func__) == -1)
		return -1;
	if (tx_begin(q, __func__) == -1)
		return -1;
	for (i = 0; i < sizeof(sqls) / sizeof(sqls[0]); i++) {
		memset(&p, 0, sizeof(p));
		par_int(&p, i == 2 ? delivered_before_ms : dedupe_after_ms);
		if (q_run(q, sqls[i], &p, PGRES_COMMAND_OK, __func__,
			"prune") == -1)
			goto out;
	}
	if (tx_commit(q, __func__) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

static int
pg_probe(void *state)
{
	struct pg *q = state;
	struct params p = {0};

	if (conn_check(q, __func__) == -1)
		return -1;
	par_int(&p, nb_time_now_ms());
	return q_run(q, sql_probe, &p, PGRES_COMMAND_OK, __func__, "probe");
}

const struct nb_store_ops nb_store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .schema_version = pg_schema_version,
    .recover = pg_recover,
    .append = pg_append,
    .claim = pg_claim,
    .extend = pg_extend,
    .delivered = pg_delivered,
    .retry = pg_retry,
    .release = pg_release,
    .dead = pg_dead,
    .list = pg_list,
    .replay_begin = pg_replay_begin,
    .replay_list = pg_replay_list,
    .make_pending = pg_make_pending,
    .requarantine = pg_requarantine,
    .replay_commit = pg_replay_commit,
    .replay_rollback = pg_replay_rollback,
    .purge = pg_purge,
    .stats = pg_stats,
    .prune = pg_prune,
    .probe = pg_probe,
};
