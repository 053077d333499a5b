/* SPDX-License-Identifier: ISC */
/*
 * store_pg: the PostgreSQL backend of the store, for several bridge
 * instances sharing one database: the connection.
 *
 * Same rows, states and rules as the SQLite backend; what differs is who
 * else writes.  Every statement runs in READ COMMITTED and lets the
 * database arbitrate (see store_pg_rows.c).  COMMIT returns after the WAL
 * flush (synchronous_commit is forced on).  store.c opens and ends the
 * transactions; a deadlock or serialization failure between instances is
 * reported as retryable and the whole transaction runs again.  The schema
 * is versioned in schema_version and migrated on open under an advisory
 * lock.  store.max_size_bytes is SQLite's.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "nudgebridge/log.h"
#include "nudgebridge/timeutil.h"
#include "store_pg.h"

#define PG_CONNECT_TIMEOUT "5"	 /* seconds, unless the DSN says */
#define PG_RESET_MIN_MS	   1000	 /* first reconnect retry after */
#define PG_RESET_MAX_MS	   10000 /* back-off cap between retries */
#define PG_STR_(x)	   #x
#define PG_STR(x)	   PG_STR_(x)
#define PG_ERRORS_KEPT	   PG_STR(NB_STORE_ERRORS_KEPT)
/* Serialises the migrations of every instance: "nbmigrat" in ASCII. */
#define PG_MIGRATE_LOCK "7953066767009686900"

/* Migrations: pg_migrations[i] takes the schema from version i to i + 1. */
static const char *const pg_migrations[] = {
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
    /*
     * 2: counters instead of scans, as SQLite's version 3, with one
     * difference: several instances write at once, so a counters row is
     * per source and per writer (slot: the backend pid of the connection
     * that writes it), and a transaction only ever updates its own
     * connection's rows.  Readers sum the slots; the prune folds the rows
     * of connections that are gone into slot 0, where this migration puts
     * what it counts from the rows as they are.  recent_errors is slotted
     * the same way.
     */
    "CREATE TABLE counters ("
    " source TEXT NOT NULL,"
    " slot INTEGER NOT NULL,"
    " pending BIGINT NOT NULL DEFAULT 0,"
    " delivered BIGINT NOT NULL DEFAULT 0,"
    " dead BIGINT NOT NULL DEFAULT 0,"
    " quarantined BIGINT NOT NULL DEFAULT 0,"
    " received_total BIGINT NOT NULL DEFAULT 0,"
    " delivered_total BIGINT NOT NULL DEFAULT 0,"
    " dead_total BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY (source, slot));"
    "INSERT INTO counters SELECT source, 0,"
    " count(*) FILTER (WHERE state = 0), count(*) FILTER (WHERE state = 1),"
    " count(*) FILTER (WHERE state = 2),"
    " count(*) FILTER (WHERE state = 2"
    " AND reason = '" NB_REASON_QUARANTINED "'),"
    " count(*), count(*) FILTER (WHERE state = 1),"
    " count(*) FILTER (WHERE state = 2) FROM events GROUP BY source;"
    "CREATE TABLE recent_errors ("
    " source TEXT NOT NULL,"
    " error TEXT NOT NULL,"
    " slot INTEGER NOT NULL,"
    " count BIGINT NOT NULL,"
    " last_ms BIGINT NOT NULL,"
    " state SMALLINT NOT NULL,"
    " reason TEXT,"
    " PRIMARY KEY (source, error, slot));"
    "INSERT INTO recent_errors SELECT source, error, 0, count, last_ms,"
    " state, reason FROM (SELECT source, error, count(*) AS count,"
    " max(updated_ms) AS last_ms,"
    " (array_agg(state ORDER BY updated_ms DESC))[1] AS state,"
    " (array_agg(reason ORDER BY updated_ms DESC))[1] AS reason,"
    " row_number() OVER (PARTITION BY source"
    " ORDER BY max(updated_ms) DESC) AS n"
    " FROM events WHERE error IS NOT NULL AND error <> ''"
    " GROUP BY source, error) AS e WHERE n <= " PG_ERRORS_KEPT ";"
    "CREATE INDEX events_lease ON events (source, lease_ms)"
    " WHERE lease_ms <> 0;"
    "CREATE INDEX events_pending_age ON events (source, received_ms)"
    " WHERE state = 0;"
    /* The lists of dead letters and the retention prune, as SQLite's. */
    "CREATE INDEX events_dead ON events (seq) WHERE state = 2;"
    "CREATE INDEX events_delivered ON events (updated_ms) WHERE state = 1;",
};
#define PG_SCHEMA_LATEST                                                       \
	((int)(sizeof(pg_migrations) / sizeof(pg_migrations[0])))

/*
 * Per session: READ COMMITTED whatever the server default, and a durable
 * COMMIT: synchronous_commit "off" becomes "on"; local, on, remote_write
 * and remote_apply all wait for at least the local WAL flush and stay.
 */
static const char sql_session[] =
    "SET default_transaction_isolation TO 'read committed';"
    "SELECT set_config('synchronous_commit', 'on', false)"
    " WHERE current_setting('synchronous_commit') = 'off'";

void
pgs_par_text(struct params *p, const char *s)
{
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

void
pgs_par_int(struct params *p, int64_t v)
{
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, v);
	pgs_par_text(p, p->num[p->n]);
}

/* A binary parameter; the caller checked len <= INT_MAX. */
void
pgs_par_bin(struct params *p, const char *data, size_t len)
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

PGresult *
pgs_exec(struct pg *q, const char *sql, const struct params *p,
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

int
pgs_run(struct pg *q, const char *sql, const struct params *p,
    ExecStatusType want, const char *fn, const char *op)
{
	PGresult *res;

	if ((res = pgs_exec(q, sql, p, want, fn, op)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

size_t
pgs_cmd_tuples(PGresult *res)
{
	const char *s = PQcmdTuples(res);

	return s != NULL && s[0] != '\0' ? (size_t)strtoull(s, NULL, 10) : 0;
}

static int
session_setup(struct pg *q, const char *fn)
{
	PQsetNoticeProcessor(q->conn, notice_cb, NULL);
	return pgs_run(q, sql_session, NULL, PGRES_TUPLES_OK, fn, "session");
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
	return pgs_run(q, "BEGIN", NULL, PGRES_COMMAND_OK, fn, "begin");
}

static int
tx_commit(struct pg *q, const char *fn)
{
	PGresult *res;
	int rc = -1;

	if ((res = pgs_exec(
		 q, "COMMIT", NULL, PGRES_COMMAND_OK, fn, "commit")) == NULL)
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

char *
pgs_int64_array(const int64_t *v, size_t n, size_t stride)
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

char *
pgs_text_array(const char *const *v, size_t n)
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

int64_t
pgs_col_int64(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col)
	    ? 0
	    : (int64_t)strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int
migrate(struct pg *q, char *err, size_t errlen)
{
	struct params p = {0};
	PGresult *res = NULL;
	int64_t version = 0;
	int rc = -1, v;

	if (tx_begin(q, __func__) == -1 ||
	    pgs_run(q, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")",
		NULL, PGRES_TUPLES_OK, __func__, "lock") == -1 ||
	    pgs_run(q,
		"CREATE TABLE IF NOT EXISTS schema_version ("
		" id INTEGER PRIMARY KEY CHECK (id = 1),"
		" version INTEGER NOT NULL)",
		NULL, PGRES_COMMAND_OK, __func__, "schema_version") == -1 ||
	    (res = pgs_exec(q,
		 "SELECT version FROM schema_version WHERE id = 1", NULL,
		 PGRES_TUPLES_OK, __func__, "version")) == NULL) {
		snprintf(err, errlen, "store.dsn: cannot read the schema: %s",
		    PQerrorMessage(q->conn));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (PQntuples(res) > 0)
		version = pgs_col_int64(res, 0, 0);
	if (version < 0 || version > PG_SCHEMA_LATEST) {
		snprintf(err, errlen,
		    "store.dsn: the database has schema version %" PRId64
		    ", this build knows up to %d",
		    version, PG_SCHEMA_LATEST);
		goto out;
	}
	for (v = (int)version; v < PG_SCHEMA_LATEST; v++) {
		if (pgs_run(q, pg_migrations[v], NULL, PGRES_COMMAND_OK,
			__func__, "migrate") == -1) {
			snprintf(err, errlen,
			    "store.dsn: migration to version %d failed", v + 1);
			goto out;
		}
	}
	if (version != PG_SCHEMA_LATEST) {
		pgs_par_int(&p, PG_SCHEMA_LATEST);
		if (pgs_run(q,
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

	if ((res = pgs_exec(q,
		 "SELECT version FROM schema_version WHERE id = 1", NULL,
		 PGRES_TUPLES_OK, __func__, "version")) == NULL)
		return -1;
	*version = PQntuples(res) > 0 ? (int)pgs_col_int64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

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

int
pgs_pipe_flush(struct pg *q, struct pipe *pp, const char *fn)
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

struct params *
pgs_pipe_add(struct pipe *pp, const char *sql)
{
	struct params *p = &pp->p[pp->n];

	memset(p, 0, sizeof(*p));
	pp->sql[pp->n++] = sql;
	return p;
}

static int
pg_ready(void *state)
{
	return conn_check(state, __func__);
}

static int
pg_begin(void *state, enum nb_store_sync sync)
{
	struct pg *q = state;

	(void)sync;
	q->sqlstate[0] = '\0';
	return tx_begin(q, __func__);
}

/* The counters and errors of the transaction first, then COMMIT. */
static int
pg_commit(void *state, const struct nb_store_tally *t)
{
	if (pgs_tally_write(state, t) == -1)
		return -1;
	return tx_commit(state, __func__);
}

static void
pg_rollback(void *state)
{
	tx_rollback(state);
}

/*
 * Two instances storing overlapping groups in different orders can
 * deadlock on the dedupe keys; PostgreSQL aborts one, which changed
 * nothing, so it is simply run again.
 */
static int
pg_retryable(void *state)
{
	struct pg *q = state;

	return strcmp(q->sqlstate, "40P01") == 0 ||
	    strcmp(q->sqlstate, "40001") == 0;
}

/*
 * No recover: other instances may hold live leases on rows, and a lease
 * left by a crashed instance runs out after store.lease_s by itself, after
 * which any instance claims the row.  Dropping every lease at start would
 * make two instances send the same rows at once on every restart.
 */
const struct nb_store_ops nb_store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .ready = pg_ready,
    .schema_version = pg_schema_version,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .retryable = pg_retryable,
    .append = pgs_append,
    .claim = pgs_claim,
    .mark = pgs_mark,
    .retry = pgs_retry,
    .prune = pgs_prune,
    .probe = pgs_probe,
    .list = pgs_list,
    .stats = pgs_stats,
    .errors = pgs_errors,
};
