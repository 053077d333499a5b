/* SPDX-License-Identifier: ISC */
/*
 * store_pg_ops: the PostgreSQL backend's face to store.c: open, migrate,
 * the transaction frame and the table of operations.
 *
 * Same rows, states and rules as the SQLite backend; what differs is who
 * else writes.  Every statement runs in READ COMMITTED and lets the
 * database arbitrate.  A transaction's BEGIN leaves with its first
 * statement and its COMMIT with the counters it owes and whatever the
 * operation queued for the end (store_pg.c's pipelines).  COMMIT returns
 * after the WAL flush (synchronous_commit is forced on), except for the
 * deliverer's lease and delivery bookkeeping, which may lose a suffix in a
 * crash as SQLite's may (see pg_begin()).  A deadlock or serialization
 * failure between instances, or a connection the server closed, is
 * reported as retryable and store.c runs the transaction again.  The
 * schema is versioned in schema_version and migrated on open under an
 * advisory lock.  The operations themselves live in the files below this
 * one (store_pg.h says which).
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

#define PG_CONNECT_TIMEOUT "5" /* seconds, unless the DSN says */
/* The largest array parameter: a group's payloads. */
#define PG_ARRAY_MAX ((size_t)1 << 30)
/* Serialises the migrations of every instance: "nbmigrat" in ASCII. */
#define PG_MIGRATE_LOCK "7953066767009686900"

static int
migrate(struct pg *q, const char *seed, char *err, size_t errlen)
{
	PGresult *res = NULL;
	int64_t version = 0;
	char sql[160];
	int rc = -1, v;

	if (pgs_simple_run(q,
		"BEGIN; SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ");"
		" CREATE TABLE IF NOT EXISTS schema_version ("
		" id INTEGER PRIMARY KEY CHECK (id = 1),"
		" version INTEGER NOT NULL)",
		PGRES_COMMAND_OK, __func__, "lock") == -1 ||
	    (res = PQexec(q->conn, pgs_sql[PS_SCHEMA_VERSION])) == NULL ||
	    PQresultStatus(res) != PGRES_TUPLES_OK) {
		snprintf(err, errlen, "store.dsn: cannot read the schema: %s",
		    PQerrorMessage(q->conn));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (PQntuples(res) > 0)
		version = pgs_col_int64(res, 0, 0);
	if (version < 0 || version > pgs_schema_latest) {
		snprintf(err, errlen,
		    "store.dsn: the database has schema version %" PRId64
		    ", this build knows up to %d",
		    version, pgs_schema_latest);
		goto out;
	}
	for (v = (int)version; v < pgs_schema_latest; v++) {
		if (pgs_simple_run(q, pgs_migrations[v], PGRES_COMMAND_OK,
			__func__, "migrate") == -1 ||
		    (v + 1 == PG_VERSION_KEYS &&
			pgs_backfill_keys(q->conn) == -1)) {
			snprintf(err, errlen,
			    "store.dsn: migration to version %d failed", v + 1);
			goto out;
		}
	}
	if (pgs_install_ensure(q, seed) == -1) {
		snprintf(err, errlen, "store.dsn: cannot read the install id");
		goto out;
	}
	snprintf(sql, sizeof(sql),
	    "INSERT INTO schema_version (id, version) VALUES (1, %d)"
	    " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;"
	    " COMMIT",
	    pgs_schema_latest);
	if (pgs_simple_run(q, sql, PGRES_COMMAND_OK, __func__, "commit") ==
		-1 ||
	    PQtransactionStatus(q->conn) != PQTRANS_IDLE) {
		snprintf(err, errlen, "store.dsn: migration commit failed");
		goto out;
	}
	if (version != pgs_schema_latest)
		log_info("store migrated", " from=%" PRId64 " to=%d", version,
		    pgs_schema_latest);
	rc = 0;
out:
	PQclear(res);
	if (rc == -1 && PQtransactionStatus(q->conn) != PQTRANS_IDLE)
		PQclear(PQexec(q->conn, "ROLLBACK"));
	return rc;
}

static void
pg_close(void *state)
{
	struct pg *q = state;
	size_t i;

	if (q == NULL)
		return;
	pgs_batch_reset(&q->batch);
	pgs_batch_reset(&q->tail);
	PQfinish(q->conn);
	for (i = 0; i < PG_ARRAYS; i++)
		nb_buf_free(&q->arr[i]);
	free(q->scratch);
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
	size_t i;
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
	for (i = 0; i < PG_ARRAYS; i++)
		nb_buf_init(&q->arr[i], PG_ARRAY_MAX);
	owner_make(q->owner, sizeof(q->owner));
	vals[0] = PG_CONNECT_TIMEOUT;
	vals[1] = "nudgebridge";
	vals[2] = "UTF8";
	vals[3] = cfg->dsn;
	vals[4] = NULL;
	if ((q->conn = PQconnectdbParams(keys, vals, 1)) == NULL) {
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
	if (pgs_session_setup(q, __func__) == -1) {
		snprintf(err, errlen, "store.dsn: session setup failed: %s",
		    PQerrorMessage(q->conn));
		err[strcspn(err, "\n")] = '\0';
		goto out;
	}
	if (migrate(q, cfg->install_id, err, errlen) == -1)
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

	if ((res = pgs_exec(q, PS_SCHEMA_VERSION, NULL, 0, __func__)) == NULL)
		return -1;
	*version = PQntuples(res) > 0 ? (int)pgs_col_int64(res, 0, 0) : 0;
	PQclear(res);
	return 0;
}

static const char *
pg_install_id(void *state)
{
	struct pg *q = state;

	return q->install_id;
}

static int
pg_ready(void *state)
{
	return pgs_conn_check(state, __func__);
}

/*
 * Opens nothing yet: BEGIN leaves with the transaction's first batch.  The
 * deliverer's bookkeeping (sync LEASE) commits with synchronous_commit off
 * for that transaction: COMMIT returns before the WAL is flushed, and the
 * server flushes it within wal_writer_delay (or with the next durable
 * commit).  A server crash may lose a suffix of such commits and nothing
 * else: a lost lease means another instance may send the rows again, a
 * lost delivered mark one more send, both with the same messageId, which
 * at-least-once delivery allows and Segment de-duplicates.
 */
static int
pg_begin(void *state, enum nb_store_sync sync)
{
	struct pg *q = state;

	q->sqlstate[0] = '\0';
	q->tx_want = 1;
	q->tx_lease = sync == NB_STORE_SYNC_LEASE;
	q->tx_open = 0;
	pgs_batch_reset(&q->tail);
	return 0;
}

/*
 * One round trip: what the operation queued for the end, the counters and
 * errors of the tally, and COMMIT.  A transaction that sent nothing and
 * owes nothing has nothing to commit.
 */
static int
pg_commit(void *state, const struct nb_store_tally *t)
{
	struct pg *q = state;
	struct pgs_batch *b = &q->tail;
	PGresult *res;
	int rc = -1;

	if (!q->tx_open && b->n == 0 && t->nc == 0 && t->ne == 0) {
		q->tx_want = 0;
		return 0;
	}
	/* The tally sends what does not fit; COMMIT needs one place. */
	if (pgs_tally_add(q, b, t) == -1)
		goto out;
	if (b->n == PG_BATCH_MAX) {
		if (pgs_batch_run(q, b, __func__) == -1)
			goto out;
		pgs_batch_reset(b);
	}
	pgs_batch_add_sql(b, "COMMIT");
	if (pgs_batch_run(q, b, __func__) == -1)
		goto out;
	/* An aborted transaction "commits" as ROLLBACK. */
	res = b->it[b->n - 1].res;
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		log_error("postgres failure", " op=commit status=%s",
		    PQcmdStatus(res));
		goto out;
	}
	rc = 0;
out:
	pgs_batch_reset(b);
	q->tx_want = q->tx_open = 0;
	return rc;
}

static void
pg_rollback(void *state)
{
	struct pg *q = state;
	PGTransactionStatusType ts = PQtransactionStatus(q->conn);

	pgs_batch_reset(&q->tail);
	q->tx_want = q->tx_open = 0;
	if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
		PQclear(PQexec(q->conn, "ROLLBACK"));
}

/*
 * Two instances storing overlapping groups in different orders can
 * deadlock on the dedupe keys; PostgreSQL aborts one, which changed
 * nothing, so it is simply run again.  So is a transaction whose
 * connection the server closed (a restart, idle_session_timeout, a
 * pooler or a firewall dropping an idle connection): store.c's ready()
 * reconnects first, at once the first time and then no more often than
 * pgs_conn_check() allows, so a server that stays away fails the frame
 * fast.  Without this the first webhook after a dropped idle connection
 * was answered 503 and the committer refused the next ones until its probe
 * (a second).  Only a connection lost on the COMMIT itself leaves the
 * outcome unknown; the run again then finds the dedupe keys taken (the
 * events are answered as duplicates, stored once) and the rows changed
 * already, as a sender's own retry would.
 */
static int
pg_retryable(void *state)
{
	struct pg *q = state;

	return PQstatus(q->conn) != CONNECTION_OK ||
	    strcmp(q->sqlstate, "40P01") == 0 ||
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
    .install_id = pg_install_id,
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
    .query = pgs_query,
    .exec = pgs_exec_write,
    .beat = pgs_beat,
    .leave = pgs_leave,
    .alert = &pgs_alert_ops,
    .erase = pgs_erase,
    .audit_add = pgs_audit_add,
    .scrub = pgs_scrub,
    .epoch = pgs_epoch,
    .sendable = pgs_sendable,
};
