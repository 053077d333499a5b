/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite: the embedded SQLite backend of the store.
 *
 * One file, WAL journal with synchronous=FULL: a COMMIT returns only after
 * the WAL is fsync'd, and readers (the admin thread, the `dlq` command in
 * another process) never block the writer.  Every multi-statement write runs
 * in BEGIN IMMEDIATE, so writers from several connections queue on the
 * busy timeout instead of failing on a stale snapshot.  Statements are
 * prepared once per connection and reused.  An append stores its whole
 * group in a few multi-row statements per table (see sq_append()).  The
 * deliverer's bookkeeping (claim, extend, release, delivered) commits with
 * synchronous=NORMAL (see sync_set() for why that keeps every guarantee)
 * and works on a whole batch per statement.  An event's payload lives in a
 * table of its own (schema version 2), written once by the append and deleted
 * with its row, so that bookkeeping rewrites only the short events row.
 * De-duplication keys live in two WITHOUT ROWID tables (see the schema).  The
 * schema is versioned with PRAGMA user_version and migrated on open;
 * store.max_size_bytes caps the bytes in use (see bytes_used()).
 */
#include <sys/statvfs.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "nudgebridge/log.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"
#include "store_backend.h"

#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_BUSY_SLEEP_NS   (100 * 1000)
/*
 * Under the size cap appends leave this much (or an eighth of the cap, when
 * smaller) free, and the probe fails unless twice that is free.  The probe
 * also fails unless this much is free on the filesystem of the database.
 */
#define SQ_PROBE_HEADROOM (64 * 1024)

/* Migrations: migrations[i] takes the schema from version i to i + 1. */
static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE events ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " source TEXT NOT NULL,"
    " event_id TEXT,"
    " type TEXT,"
    " payload BLOB NOT NULL,"
    " state INTEGER NOT NULL,"
    " reason TEXT,"
    " error TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " received_ms INTEGER NOT NULL,"
    " age_base_ms INTEGER NOT NULL,"
    " next_ms INTEGER NOT NULL,"
    " lease_ms INTEGER NOT NULL DEFAULT 0,"
    " updated_ms INTEGER NOT NULL);"
    "CREATE INDEX events_due ON events (source, next_ms, seq)"
    " WHERE state = 0;"
    "CREATE INDEX events_state ON events (state, received_ms);"
    "CREATE INDEX events_source_id ON events (source, event_id);"
    "CREATE TABLE seen_requests ("
    " source TEXT NOT NULL,"
    " webhook_id TEXT NOT NULL,"
    " seen_ms INTEGER NOT NULL,"
    " PRIMARY KEY (source, webhook_id)) WITHOUT ROWID;"
    "CREATE INDEX seen_requests_ms ON seen_requests (seen_ms);"
    "CREATE TABLE seen_events ("
    " source TEXT NOT NULL,"
    " event_id TEXT NOT NULL,"
    " seen_ms INTEGER NOT NULL,"
    " PRIMARY KEY (source, event_id)) WITHOUT ROWID;"
    "CREATE INDEX seen_events_ms ON seen_events (seen_ms);"
    "CREATE TABLE meta ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " probe_ms INTEGER NOT NULL);",
    /*
     * 2: payloads move out of events into a table of their own, keyed by
     * the event's seq.  SQLite rewrites a whole record on any update, so
     * with the ~600-byte payload inline every lease and delivered mark
     * copied and logged a page per six rows; an events row is now under a
     * hundred bytes.  events is rebuilt rather than altered in place (DROP
     * COLUMN): the copy packs the short rows densely and frees every old
     * page, where an in-place rewrite would keep the old rows' pages mostly
     * empty (and counted under the size cap) and journal the whole table
     * in one statement.  The AUTOINCREMENT high-water mark moves along, so
     * a purged row's seq is still never reused; the drop takes the v1
     * indexes with it, events_due is made again and the tuning below adds
     * the rest.
     */
    "CREATE TABLE payloads ("
    " seq INTEGER PRIMARY KEY,"
    " payload BLOB NOT NULL);"
    "INSERT INTO payloads (seq, payload)"
    " SELECT seq, payload FROM events ORDER BY seq;"
    "CREATE TABLE events_v2 ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " source TEXT NOT NULL,"
    " event_id TEXT,"
    " type TEXT,"
    " state INTEGER NOT NULL,"
    " reason TEXT,"
    " error TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " received_ms INTEGER NOT NULL,"
    " age_base_ms INTEGER NOT NULL,"
    " next_ms INTEGER NOT NULL,"
    " lease_ms INTEGER NOT NULL DEFAULT 0,"
    " updated_ms INTEGER NOT NULL);"
    "INSERT INTO events_v2 (seq, source, event_id, type, state, reason,"
    " error, attempts, received_ms, age_base_ms, next_ms, lease_ms,"
    " updated_ms)"
    " SELECT seq, source, event_id, type, state, reason, error, attempts,"
    " received_ms, age_base_ms, next_ms, lease_ms, updated_ms"
    " FROM events ORDER BY seq;"
    "DELETE FROM sqlite_sequence WHERE name = 'events_v2';"
    "UPDATE sqlite_sequence SET name = 'events_v2' WHERE name = 'events';"
    "DROP TABLE events;"
    "ALTER TABLE events_v2 RENAME TO events;"
    "CREATE INDEX events_due ON events (source, next_ms, seq)"
    " WHERE state = 0;",
};
#define SQ_SCHEMA_LATEST ((int)(sizeof(migrations) / sizeof(migrations[0])))

/*
 * Index tuning, applied on every open after the migrations.  Indexes are
 * not part of the schema version: a build without these statements works
 * on a store that has them, and the other way round, only slower.
 *
 * - events_leased makes start-up recovery visit only leased rows instead of
 *   every pending one (a full pass over a million-row backlog).
 * - events_delivered serves the retention prune; it replaces events_state,
 *   which every delivered mark had to move an entry of and which misled the
 *   planner into scanning all pending rows for lease and delivery updates.
 * - events_source_id served no query (the operator filter on an id cannot
 *   use it) yet cost every append a random B-tree insert.
 */
static const char sq_index_tuning[] =
    "CREATE INDEX IF NOT EXISTS events_leased ON events (seq)"
    " WHERE lease_ms <> 0;"
    "CREATE INDEX IF NOT EXISTS events_delivered ON events (updated_ms)"
    " WHERE state = 1;"
    "DROP INDEX IF EXISTS events_state;"
    "DROP INDEX IF EXISTS events_source_id;";

/*
 * WAL pages before a connection's own automatic checkpoint (SQLite's
 * default is 1000).  A checkpoint runs inside the COMMIT that crosses the
 * mark and ends with an fsync of the database file that takes 10 to 20 ms
 * on a busy disk, so every request of the committer's next group waited
 * for it.  The server keeps the WAL copied in the background instead
 * (sq_checkpoint(), every NB_COMMIT_CHECKPOINT_MS from commit.c), which
 * does not block writers; this mark remains the backstop that lets the WAL
 * start again from its beginning (SQLite reuses the file only after a
 * checkpoint has copied all of it, which a background copy racing the
 * writers rarely manages), and then the committer copies only the few
 * pages written since the last background pass.  A larger WAL also means
 * that a page claimed, then marked delivered, is copied back once.
 */
#define SQ_WAL_AUTOCHECKPOINT 16000

/*
 * The columns of events that row_read() takes, payload aside, each
 * prefixed with t ("" or a table alias and a dot).
 */
#define EVENT_COLS_OF(t)                                                       \
	t "seq, " t "source, " t "event_id, " t "type, " t "state, " t         \
	  "reason, " t "error, " t "attempts, " t "received_ms, " t            \
	  "age_base_ms, " t "updated_ms"
#define EVENT_COLS   EVENT_COLS_OF("")
#define EVENT_COLS_E EVENT_COLS_OF("e.")
/* The payload's column in the statements that return one after those. */
#define COL_PAYLOAD 11

/*
 * Operator filter: ?1 seq (NULL: any), ?2 source, ?3 type, ?4 reason, ?5 id
 * (NULL: any), ?6 since, ?7 until (0: unbounded), ?8 state mask, ?9
 * after_seq, ?10 limit (-1: none).
 */
#define FILTER_WHERE                                                           \
	" WHERE (?1 IS NULL OR seq = ?1) AND (?2 IS NULL OR source = ?2)"      \
	" AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR reason = ?4)"       \
	" AND (?5 IS NULL OR event_id = ?5)"                                   \
	" AND (?6 = 0 OR received_ms >= ?6) AND (?7 = 0 OR received_ms <= ?7)" \
	" AND ((?8 >> state) & 1) = 1 AND seq > ?9"                            \
	" ORDER BY seq LIMIT ?10"

enum sq_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_PAGE_COUNT,
	ST_FREELIST_COUNT,
	ST_USER_VERSION,
	ST_SEEN_REQUEST,
	ST_SEEN_EVENT,
	ST_NEXT_SEQ,
	ST_SAVEPOINT,
	ST_RELEASE_SAVEPOINT,
	ST_ROLLBACK_SAVEPOINT,
	ST_CLAIM_CANDIDATES,
	ST_CLAIM_READ,
	ST_CLAIM_SET,
	ST_EXTEND,
	ST_DELIVERED,
	ST_RETRY,
	ST_RELEASE,
	ST_DEAD,
	ST_RECOVER,
	ST_LIST,
	ST_REPLAY_PENDING,
	ST_REQUARANTINE,
	ST_PURGE_COUNT,
	ST_PURGE_PAYLOADS,
	ST_PURGE,
	ST_STATS,
	ST_PRUNE_REQUESTS,
	ST_PRUNE_EVENTS,
	ST_PRUNE_PAYLOADS,
	ST_PRUNE_DELIVERED,
	ST_PROBE,
	ST_SYNC_FULL,
	ST_SYNC_NORMAL,
	ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_PAGE_COUNT] = "PRAGMA page_count",
    [ST_FREELIST_COUNT] = "PRAGMA freelist_count",
    [ST_USER_VERSION] = "PRAGMA user_version",
    /*
     * A key counts as new when absent or older than the window.  The
     * min() keeps a key stored earlier in this same transaction a
     * duplicate even with an empty window.
     */
    [ST_SEEN_REQUEST] =
	"INSERT INTO seen_requests (source, webhook_id, seen_ms)"
	" VALUES (?1, ?2, ?3) ON CONFLICT (source, webhook_id)"
	" DO UPDATE SET seen_ms = excluded.seen_ms"
	" WHERE seen_requests.seen_ms < min(?4, excluded.seen_ms)",
    [ST_SEEN_EVENT] = "INSERT INTO seen_events (source, event_id, seen_ms)"
		      " VALUES (?1, ?2, ?3) ON CONFLICT (source, event_id)"
		      " DO UPDATE SET seen_ms = excluded.seen_ms"
		      " WHERE seen_events.seen_ms < min(?4, excluded.seen_ms)",
    /*
     * The last seq given: AUTOINCREMENT gives the next row one more (past
     * the high-water mark and past every row, so a purged row's seq is
     * never reused); then the last seq in payloads.  See rows_insert().
     */
    [ST_NEXT_SEQ] =
	"SELECT max(coalesce((SELECT seq FROM sqlite_sequence"
	" WHERE name = 'events'), 0), coalesce((SELECT max(seq) FROM events),"
	" 0)), coalesce((SELECT max(seq) FROM payloads), 0)",
    [ST_SAVEPOINT] = "SAVEPOINT sq_keys",
    [ST_RELEASE_SAVEPOINT] = "RELEASE sq_keys",
    [ST_ROLLBACK_SAVEPOINT] = "ROLLBACK TO sq_keys",
    [ST_CLAIM_CANDIDATES] = "SELECT seq, next_ms FROM events"
			    " WHERE state = 0 AND source = ?1"
			    " AND next_ms <= ?2 AND lease_ms <= ?2"
			    " ORDER BY next_ms, seq LIMIT ?3",
    /*
     * The set-based statements take their seqs as one JSON array in ?1
     * ("[3,4,9]"), so a batch of rows costs one statement, not one per
     * row.  "+state" keeps the planner on the rowid lookups of the IN list
     * instead of a scan of an index on state.  OR FAIL spares them a
     * statement journal (the copy SQLite keeps of every page a statement
     * changes, to undo just that statement when it fails): a failed one
     * rolls back its whole transaction anyway.
     *
     * A claim reads the rows that are still claimable, payloads included,
     * and then leases exactly those: both run in one write transaction, so
     * nothing can change a row in between.  The update touches only the
     * short events rows; payloads are never rewritten.  CROSS JOIN keeps
     * json_each the outer loop, so every row and payload is one rowid
     * lookup, in the order of ?1; a NULL payload (LEFT JOIN) is a damaged
     * row, reported rather than skipped.
     */
    [ST_CLAIM_READ] = "SELECT " EVENT_COLS_E ", p.payload, e.next_ms"
		      " FROM json_each(?1) AS j"
		      " CROSS JOIN events AS e ON e.seq = j.value"
		      " LEFT JOIN payloads AS p ON p.seq = e.seq"
		      " WHERE e.state = 0 AND e.next_ms <= ?2"
		      " AND e.lease_ms <= ?2",
    [ST_CLAIM_SET] = "UPDATE OR FAIL events SET lease_ms = ?2"
		     " WHERE seq IN (SELECT value FROM json_each(?1))"
		     " AND +state = 0 AND next_ms <= ?3 AND lease_ms <= ?3",
    [ST_EXTEND] = "UPDATE OR FAIL events SET lease_ms = ?2"
		  " WHERE seq IN (SELECT value FROM json_each(?1))"
		  " AND +state = 0",
    [ST_DELIVERED] = "UPDATE OR FAIL events SET state = 1, lease_ms = 0,"
		     " updated_ms = ?2"
		     " WHERE seq IN (SELECT value FROM json_each(?1))"
		     " AND +state = 0",
    [ST_RETRY] = "UPDATE events SET attempts = attempts + 1, error = ?3,"
		 " next_ms = ?2, lease_ms = 0"
		 " WHERE seq = ?1 AND state = 0",
    [ST_RELEASE] = "UPDATE OR FAIL events SET lease_ms = 0"
		   " WHERE seq IN (SELECT value FROM json_each(?1))"
		   " AND +state = 0",
    [ST_DEAD] = "UPDATE OR FAIL events SET state = 2, reason = ?2, error = ?3,"
		" lease_ms = 0, updated_ms = ?4"
		" WHERE seq IN (SELECT value FROM json_each(?1))"
		" AND +state = 0",
    /* Only leased rows, off the partial index events_leased. */
    [ST_RECOVER] = "UPDATE events SET lease_ms = 0"
		   " WHERE lease_ms <> 0 AND +state = 0",
    [ST_LIST] = "SELECT " EVENT_COLS ", (SELECT payload FROM payloads AS p"
		" WHERE p.seq = events.seq) FROM events" FILTER_WHERE,
    [ST_REPLAY_PENDING] =
	"UPDATE events SET state = 0, reason = NULL, error = NULL,"
	" attempts = 0, next_ms = ?2, age_base_ms = ?2, lease_ms = 0,"
	" updated_ms = ?2, event_id = coalesce(?3, event_id),"
	" type = coalesce(?4, type) WHERE seq = ?1",
    [ST_REQUARANTINE] = "UPDATE events SET error = ?2, updated_ms = ?3"
			" WHERE seq = ?1",
    [ST_PURGE_COUNT] =
	"SELECT count(*) FROM (SELECT seq FROM events" FILTER_WHERE ")",
    /* A purge deletes the payloads first, in the same transaction. */
    [ST_PURGE_PAYLOADS] = "DELETE FROM payloads WHERE seq IN"
			  " (SELECT seq FROM events" FILTER_WHERE ")",
    [ST_PURGE] =
	"DELETE FROM events WHERE seq IN (SELECT seq FROM events" FILTER_WHERE
	")",
    [ST_STATS] = "SELECT source, sum(state = 0),"
		 " sum(state = 0 AND lease_ms > ?1), sum(state = 1),"
		 " sum(state = 2),"
		 " sum(state = 2 AND reason = '" NB_REASON_QUARANTINED "'),"
		 " coalesce(min(CASE WHEN state = 0 THEN received_ms END),"
		 " 0) FROM events GROUP BY source ORDER BY source",
    [ST_PRUNE_REQUESTS] = "DELETE FROM seen_requests WHERE seen_ms < ?1",
    [ST_PRUNE_EVENTS] = "DELETE FROM seen_events WHERE seen_ms < ?1",
    [ST_PRUNE_PAYLOADS] = "DELETE FROM payloads WHERE seq IN"
			  " (SELECT seq FROM events"
			  " WHERE state = 1 AND updated_ms < ?1)",
    [ST_PRUNE_DELIVERED] = "DELETE FROM events"
			   " WHERE state = 1 AND updated_ms < ?1",
    [ST_PROBE] = "INSERT INTO meta (id, probe_ms) VALUES (1, ?1)"
		 " ON CONFLICT (id) DO UPDATE SET probe_ms = excluded.probe_ms",
    [ST_SYNC_FULL] = "PRAGMA synchronous = FULL",
    [ST_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
};

/*
 * An append writes a whole group with a few multi-row statements (see
 * sq_append()): each one takes 2^k rows, k = 0..SQ_CHUNK_LOG, so any count
 * is a handful of statements, each prepared once per connection.
 */
#define SQ_CHUNK_LOG 6
#define SQ_CHUNK_MAX (1 << SQ_CHUNK_LOG)

enum sq_chunk {
	CH_SEEN_REQUESTS,
	CH_SEEN_EVENTS,
	CH_EVENTS,
	CH_PAYLOADS,
	CH_PAYLOADS_NEXT,
	CH_COUNT
};

/*
 * A multi-row statement: head, the row once per row (its ?1..?9 are the
 * row's own parameters, numbered on from the rows before it), then tail,
 * whose ?0 is the parameter after all the rows.
 *
 * All are OR FAIL, without a statement journal, like the set-based
 * updates: a failed append rolls back its whole transaction.
 *
 * The seen_* upserts are those of ST_SEEN_REQUEST and ST_SEEN_EVENT with
 * the window given as its length: ?0 is received_ms - dedupe_after_ms,
 * the same for every row of the statement, so that the key is refreshed
 * exactly when it is older than min(dedupe_after_ms, received_ms) of its
 * own row.  Rows run in order, each seeing the keys of the rows before.
 */
static const struct {
	const char *head;
	const char *row;
	int ncols; /* parameters per row */
	const char *tail;
} chunk_sql[CH_COUNT] = {
    [CH_SEEN_REQUESTS] =
	{"INSERT OR FAIL INTO seen_requests (source, webhook_id,"
	 " seen_ms) VALUES ",
	    "(?1,?2,?3)", 3,
	    " ON CONFLICT (source, webhook_id)"
	    " DO UPDATE SET seen_ms = excluded.seen_ms"
	    " WHERE seen_requests.seen_ms < min(excluded.seen_ms - ?0,"
	    " excluded.seen_ms)"},
    [CH_SEEN_EVENTS] =
	{"INSERT OR FAIL INTO seen_events (source, event_id, seen_ms)"
	 " VALUES ",
	    "(?1,?2,?3)", 3,
	    " ON CONFLICT (source, event_id)"
	    " DO UPDATE SET seen_ms = excluded.seen_ms"
	    " WHERE seen_events.seen_ms < min(excluded.seen_ms - ?0,"
	    " excluded.seen_ms)"},
    [CH_EVENTS] = {"INSERT OR FAIL INTO events (seq, source, event_id, type,"
		   " state, reason, error, attempts, received_ms,"
		   " age_base_ms, next_ms, lease_ms, updated_ms) VALUES ",
	"(NULL,?1,?2,?3,?4,?5,?6,0,?7,?7,?7,0,?7)", 7, ""},
    [CH_PAYLOADS] = {"INSERT OR FAIL INTO payloads (seq, payload) VALUES ",
	"(?1,?2)", 2, ""},
    /* The payloads table's own next rowid, see rows_insert(). */
    [CH_PAYLOADS_NEXT] = {"INSERT OR FAIL INTO payloads (seq, payload)"
			  " VALUES ",
	"(NULL,?1)", 1, ""},
};

/* The synchronous level a write transaction commits with. */
enum sq_sync {
	SYNC_UNSET,
	SYNC_FULL,   /* durable at COMMIT: appends, operator changes */
	SYNC_NORMAL, /* lease and delivery bookkeeping, see sync_set() */
};

/* A dedupe key of an append: a request's webhook id or an event's id. */
struct sq_key {
	struct nb_append *r;
	const char *key;
	int fresh; /* out: new, or older than the window (now recorded) */
};

/* A row an append stores. */
struct sq_row {
	const struct nb_append *r;
	const struct nb_event *e;
};

struct sq {
	sqlite3 *db;
	char *path;
	char *dir; /* the folder of path, for statvfs() in the probe */
	int64_t max_size_bytes;
	int64_t page_size;
	int64_t busy_since_ms; /* when the current wait for the lock began */
	enum sq_sync sync;
	char *json; /* seq list of the set-based statements, for json_each */
	size_t jsoncap;
	sqlite3_stmt *stmts[ST_COUNT];
	sqlite3_stmt *chunks[CH_COUNT][SQ_CHUNK_LOG + 1];
	struct sq_key *keys; /* an append's dedupe keys */
	size_t keycap;
	struct sq_row *rows; /* an append's new rows */
	size_t rowcap;
};

/* A claim candidate: due row of one of the sources. */
struct candidate {
	int64_t seq;
	int64_t next_ms;
};

/*
 * Waits for another connection's write transaction.  SQLite's own handler
 * (sqlite3_busy_timeout) sleeps 1, 2, 5, 10, 15, 20, 25 ... ms between
 * tries, so a writer that finds the lock held for one millisecond (the
 * deliverer marking a batch) waits 3 to 8 ms or more, and so does every
 * request of the group commit behind it.  This one tries again every
 * SQ_BUSY_SLEEP_NS, up to SQ_BUSY_TIMEOUT_MS in all.
 */
static int
busy_cb(void *arg, int tries)
{
	struct sq *q = arg;
	struct timespec ts = {0, SQ_BUSY_SLEEP_NS};

	if (tries == 0)
		q->busy_since_ms = nb_time_mono_ms();
	else if (nb_time_mono_ms() - q->busy_since_ms >= SQ_BUSY_TIMEOUT_MS)
		return 0;
	nanosleep(&ts, NULL);
	return 1;
}

static void
db_log(struct sq *q, const char *fn, const char *op)
{
	char qerr[256];

	nb_log(NB_LOG_ERROR, fn, "sqlite failure", " op=%s rc=%d error=%s", op,
	    sqlite3_extended_errcode(q->db),
	    nb_log_quote(qerr, sizeof(qerr), sqlite3_errmsg(q->db)));
}

/* The cached statement id, reset and unbound, or NULL (logged). */
static sqlite3_stmt *
stmt_get(struct sq *q, enum sq_stmt id)
{
	sqlite3_stmt *st = q->stmts[id];

	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	if (sqlite3_prepare_v3(q->db, stmt_sql[id], -1,
		SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK) {
		db_log(q, __func__, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	q->stmts[id] = st;
	return st;
}

/* Runs a statement that returns no row (or ignores them); resets it. */
static int
stmt_run(struct sq *q, sqlite3_stmt *st, const char *fn, const char *op)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		db_log(q, fn, op);
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	return 0;
}

/* Runs a statement returning one integer in *v; resets it. */
static int
stmt_int64(
    struct sq *q, sqlite3_stmt *st, int64_t *v, const char *fn, const char *op)
{
	if (sqlite3_step(st) != SQLITE_ROW) {
		db_log(q, fn, op);
		sqlite3_reset(st);
		return -1;
	}
	*v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return 0;
}

static int
run_id(struct sq *q, enum sq_stmt id, const char *fn)
{
	sqlite3_stmt *st;

	if ((st = stmt_get(q, id)) == NULL)
		return -1;
	return stmt_run(q, st, fn, stmt_sql[id]);
}

/*
 * Sets the synchronous level of the next transactions on this connection.
 * FULL (the default) fsyncs the WAL at every COMMIT.  NORMAL, used only for
 * the deliverer's lease and delivery marks (claim, extend, release,
 * delivered), writes the WAL without an fsync; the WAL is fsync'd at the
 * next FULL commit of any connection (an append) and before every
 * checkpoint, so the database stays consistent and can only lose a suffix
 * of such marks on power loss (never an append committed after them).  A
 * lost lease is dropped by nb_store_recover() at start anyway; a lost
 * delivered mark makes the row pending again and it is sent once more with
 * the same messageId, which at-least-once delivery allows and Segment
 * de-duplicates.
 */
static int
sync_set(struct sq *q, enum sq_sync want)
{
	if (q->sync == want)
		return 0;
	if (run_id(q, want == SYNC_NORMAL ? ST_SYNC_NORMAL : ST_SYNC_FULL,
		__func__) == -1) {
		q->sync = SYNC_UNSET;
		return -1;
	}
	q->sync = want;
	return 0;
}

static int
tx_begin_sync(struct sq *q, enum sq_sync want)
{
	if (sync_set(q, want) == -1)
		return -1;
	return run_id(q, ST_BEGIN, __func__);
}

static int
tx_begin(struct sq *q)
{
	return tx_begin_sync(q, SYNC_FULL);
}

/*
 * Writes v in decimal at p (at most 20 bytes, no NUL); returns the length.
 * snprintf() cost a thousand instructions a seq here, as much as the rest
 * of the list.
 */
static size_t
i64_put(char *p, int64_t v)
{
	char tmp[20];
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	size_t n = 0, len = 0;

	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		p[len++] = '-';
	while (n > 0)
		p[len++] = tmp[--n];
	return len;
}

/*
 * Writes seqs as a JSON array ("[3,4,9]") into q->json for the ?1 of the
 * set-based statements; stride is the distance between two seqs in bytes.
 * 0 or -1 (logged).
 */
static int
seqs_json(struct sq *q, const int64_t *seqs, size_t n, size_t stride)
{
	const char *base = (const char *)seqs;
	size_t need, len = 0, i;
	char *nj;
	int64_t v;

	/* 20 digits, a sign and a comma per seq, brackets and the NUL. */
	if (n > (SIZE_MAX - 3) / 22) {
		log_error("too many rows", " n=%zu", n);
		return -1;
	}
	need = n * 22 + 3;
	if (need > q->jsoncap) {
		if ((nj = realloc(q->json, need)) == NULL) {
			log_error("out of memory", " n=%zu", n);
			return -1;
		}
		q->json = nj;
		q->jsoncap = need;
	}
	q->json[len++] = '[';
	for (i = 0; i < n; i++) {
		memcpy(&v, base + i * stride, sizeof(v));
		if (i > 0)
			q->json[len++] = ',';
		len += i64_put(q->json + len, v);
	}
	q->json[len++] = ']';
	q->json[len] = '\0';
	return 0;
}

static int
tx_commit(struct sq *q)
{
	return run_id(q, ST_COMMIT, __func__);
}

/*
 * SQLite may already have rolled back on its own (SQLITE_FULL, IOERR), so
 * only roll back a transaction that is still open.
 */
static void
tx_rollback(struct sq *q)
{
	if (!sqlite3_get_autocommit(q->db))
		(void)run_id(q, ST_ROLLBACK, __func__);
}

static char *
col_strdup(sqlite3_stmt *st, int col, int *failed)
{
	const unsigned char *s;
	char *d;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	s = sqlite3_column_text(st, col);
	if (s == NULL || (d = strdup((const char *)s)) == NULL) {
		*failed = 1;
		return NULL;
	}
	return d;
}

/*
 * Copies the blob in column col of st to ev->raw, NUL-terminated (a NULL
 * reads as empty).  0 or -1 (ENOMEM).
 */
static int
raw_read(sqlite3_stmt *st, int col, struct nb_stored_event *ev)
{
	const void *blob;
	int len;

	blob = sqlite3_column_blob(st, col);
	len = sqlite3_column_bytes(st, col);
	if ((ev->raw = malloc((size_t)len + 1)) == NULL)
		return -1;
	if (len > 0)
		memcpy(ev->raw, blob, (size_t)len);
	ev->raw[len] = '\0';
	ev->rawlen = (size_t)len;
	return 0;
}

/*
 * Reads an EVENT_COLS row into ev (zeroed first), with the payload from
 * column COL_PAYLOAD when with_payload.  0 or -1 (ENOMEM).
 */
static int
row_read(sqlite3_stmt *st, struct nb_stored_event *ev, int with_payload)
{
	int failed = 0;

	memset(ev, 0, sizeof(*ev));
	ev->seq = sqlite3_column_int64(st, 0);
	nb_store_key_format(ev->seq, ev->key);
	ev->source = col_strdup(st, 1, &failed);
	ev->id = col_strdup(st, 2, &failed);
	ev->type = col_strdup(st, 3, &failed);
	ev->state = (enum nb_event_state)sqlite3_column_int(st, 4);
	ev->reason = col_strdup(st, 5, &failed);
	ev->error = col_strdup(st, 6, &failed);
	ev->attempts = sqlite3_column_int(st, 7);
	ev->received_ms = sqlite3_column_int64(st, 8);
	ev->age_base_ms = sqlite3_column_int64(st, 9);
	ev->updated_ms = sqlite3_column_int64(st, 10);
	if (with_payload && raw_read(st, COL_PAYLOAD, ev) == -1)
		failed = 1;
	if (ev->source == NULL)
		failed = 1;
	return failed ? -1 : 0;
}

/* Appends the current row of st.  0 or -1 (logged). */
static int
rows_push(struct nb_store_rows *v, sqlite3_stmt *st, int with_payload)
{
	struct nb_stored_event *ev;

	if ((ev = nb_store_rows_next(v)) == NULL)
		return -1;
	if (row_read(st, ev, with_payload) == -1) {
		log_error("out of memory", " rows=%zu", v->n);
		return -1;
	}
	return 0;
}

/* Binds ?1..?10 of FILTER_WHERE.  -1 when f->key can match no row. */
static int
bind_filter(sqlite3_stmt *st, const struct nb_store_filter *f)
{
	static const struct nb_store_filter all;
	int64_t seq;

	if (f == NULL)
		f = &all;
	if (f->key != NULL) {
		if (nb_store_key_parse(f->key, &seq) == -1)
			return -1;
		sqlite3_bind_int64(st, 1, seq);
	}
	sqlite3_bind_text(st, 2, f->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, f->type, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, f->reason, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, f->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, f->since_ms);
	sqlite3_bind_int64(st, 7, f->until_ms);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)nb_store_filter_states(f));
	sqlite3_bind_int64(st, 9, f->after_seq > 0 ? f->after_seq : 0);
	sqlite3_bind_int64(st, 10,
	    f->limit == 0 || f->limit > INT64_MAX ? -1 : (int64_t)f->limit);
	return 0;
}

/*
 * Bytes in use (pages that are not free) inside the current transaction.
 * store.max_size_bytes caps this figure: an append that would leave more in
 * use fails and stores nothing, and PRAGMA max_page_count stops the file
 * itself from growing past the cap.  Deleting rows frees pages for reuse,
 * so a purge makes room again.
 */
static int
bytes_used(struct sq *q, int64_t *used)
{
	sqlite3_stmt *st;
	int64_t pages, freepages;

	if ((st = stmt_get(q, ST_PAGE_COUNT)) == NULL ||
	    stmt_int64(q, st, &pages, __func__, "page_count") == -1)
		return -1;
	if ((st = stmt_get(q, ST_FREELIST_COUNT)) == NULL ||
	    stmt_int64(q, st, &freepages, __func__, "freelist_count") == -1)
		return -1;
	*used = (pages - freepages) * q->page_size;
	return 0;
}

/*
 * The room under the size cap that appends leave free.  The deliverer's
 * bookkeeping needs pages of its own (a claim's lease makes each row a few
 * bytes longer), so a store that appends filled to the last page could
 * never drain.
 */
static int64_t
cap_spare(const struct sq *q)
{
	int64_t spare = q->max_size_bytes / 8;

	return spare < SQ_PROBE_HEADROOM ? spare : SQ_PROBE_HEADROOM;
}

/* Fails when the transaction would leave more than the cap minus spare. */
static int
cap_check(struct sq *q, int64_t spare)
{
	int64_t used;

	if (q->max_size_bytes <= 0)
		return 0;
	if (bytes_used(q, &used) == -1)
		return -1;
	if (used + spare > q->max_size_bytes) {
		log_error("store full",
		    " used_bytes=%" PRId64 " spare_bytes=%" PRId64
		    " max_size_bytes=%" PRId64,
		    used, spare, q->max_size_bytes);
		return -1;
	}
	return 0;
}

/* The folder that holds path ("." for a bare name), malloc'd, or NULL. */
static char *
dir_of(const char *path)
{
	const char *slash;
	char *dir;
	size_t len;

	if ((slash = strrchr(path, '/')) == NULL)
		return strdup(".");
	len = slash == path ? 1 : (size_t)(slash - path);
	if ((dir = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(dir, path, len);
	dir[len] = '\0';
	return dir;
}

/*
 * Fails when the filesystem of the database has less than spare bytes free
 * for an unprivileged writer.  The probe's tiny row still fits into WAL
 * space a failed commit already allocated, so without this check a full
 * disk would look healthy again a second later.
 */
static int
disk_check(struct sq *q, int64_t spare)
{
	struct statvfs vfs;
	uint64_t avail;
	char qdir[256];

	if (statvfs(q->dir, &vfs) == -1) {
		log_error("statvfs failed", " dir=%s error=%s",
		    nb_log_quote(qdir, sizeof(qdir), q->dir), strerror(errno));
		return -1;
	}
	avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	if (avail < (uint64_t)spare) {
		log_error("filesystem full",
		    " free_bytes=%" PRIu64 " spare_bytes=%" PRId64, avail,
		    spare);
		return -1;
	}
	return 0;
}

static int
exec_sql(struct sq *q, const char *sql, const char *fn)
{
	char *msg = NULL;
	char qerr[256];

	if (sqlite3_exec(q->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		nb_log(NB_LOG_ERROR, fn, "sqlite failure", " op=exec error=%s",
		    nb_log_quote(qerr, sizeof(qerr), msg));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Runs a PRAGMA and copies the first column of its first row to out. */
static int
pragma_text(struct sq *q, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *s;
	int rc = -1;

	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	s = sqlite3_column_text(st, 0);
	snprintf(out, outlen, "%s", s != NULL ? (const char *)s : "");
	rc = 0;
out:
	sqlite3_finalize(st);
	return rc;
}

static int
migrate(struct sq *q, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int64_t version;
	char sql[64];
	int rc = -1, v;

	if (tx_begin(q) == -1) {
		snprintf(err, errlen, "store.path: cannot lock %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		return -1;
	}
	if ((st = stmt_get(q, ST_USER_VERSION)) == NULL ||
	    stmt_int64(q, st, &version, __func__, "user_version") == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	if (version < 0 || version > SQ_SCHEMA_LATEST) {
		snprintf(err, errlen,
		    "store.path: %s has schema version %" PRId64
		    ", this build knows up to %d",
		    q->path, version, SQ_SCHEMA_LATEST);
		goto out;
	}
	for (v = (int)version; v < SQ_SCHEMA_LATEST; v++) {
		if (exec_sql(q, migrations[v], __func__) == -1) {
			snprintf(err, errlen,
			    "store.path: %s: migration to version %d failed",
			    q->path, v + 1);
			goto out;
		}
	}
	if (exec_sql(q, sq_index_tuning, __func__) == -1) {
		snprintf(err, errlen, "store.path: %s: cannot tune the indexes",
		    q->path);
		goto out;
	}
	if (version != SQ_SCHEMA_LATEST) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
		    SQ_SCHEMA_LATEST);
		if (exec_sql(q, sql, __func__) == -1) {
			snprintf(err, errlen,
			    "store.path: %s: cannot set "
			    "the schema version",
			    q->path);
			goto out;
		}
	}
	if (tx_commit(q) == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	if (version != SQ_SCHEMA_LATEST)
		log_info("store migrated", " from=%" PRId64 " to=%d", version,
		    SQ_SCHEMA_LATEST);
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

static void
sq_close(void *state)
{
	struct sq *q = state;
	int i, k;

	if (q == NULL)
		return;
	for (i = 0; i < ST_COUNT; i++)
		sqlite3_finalize(q->stmts[i]);
	for (i = 0; i < CH_COUNT; i++)
		for (k = 0; k <= SQ_CHUNK_LOG; k++)
			sqlite3_finalize(q->chunks[i][k]);
	sqlite3_close(q->db);
	free(q->keys);
	free(q->rows);
	free(q->json);
	free(q->dir);
	free(q->path);
	free(q);
}

static int
sq_open(
    void **state, const struct nb_store_config *cfg, char *err, size_t errlen)
{
	struct sq *q = NULL;
	char mode[16], sql[64];
	int64_t pages;
	int rc = -1;

	*state = NULL;
	if (cfg->path == NULL || cfg->path[0] == '\0') {
		snprintf(err, errlen, "store.path: missing");
		goto out;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL ||
	    (q->path = strdup(cfg->path)) == NULL ||
	    (q->dir = dir_of(cfg->path)) == NULL) {
		snprintf(err, errlen, "store: out of memory");
		goto out;
	}
	q->max_size_bytes = cfg->max_size_bytes;
	if (sqlite3_open_v2(q->path, &q->db,
		SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX,
		NULL) != SQLITE_OK) {
		snprintf(err, errlen, "store.path: cannot open %s: %s", q->path,
		    q->db != NULL ? sqlite3_errmsg(q->db) : "no memory");
		goto out;
	}
	sqlite3_extended_result_codes(q->db, 1);
	sqlite3_busy_handler(q->db, busy_cb, q);
	if (pragma_text(q, "PRAGMA journal_mode = WAL", mode, sizeof(mode)) ==
		-1 ||
	    strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "store.path: %s: cannot use WAL: %s",
		    q->path, sqlite3_errmsg(q->db));
		goto out;
	}
	if (exec_sql(q, "PRAGMA synchronous = FULL", __func__) == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	q->sync = SYNC_FULL;
	snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint = %d",
	    SQ_WAL_AUTOCHECKPOINT);
	if (pragma_text(q, sql, mode, sizeof(mode)) == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	if (migrate(q, err, errlen) == -1)
		goto out;
	/*
	 * A set-based update inside a transaction keeps a statement journal of
	 * the pages it changes, and SQLite spills one over 64 KiB to a temp
	 * file (open, write, close on every delivered mark).  In memory it is
	 * a few hundred KiB for a full batch, freed when the statement ends.
	 * Only after the migrations: a statement of a migration may journal
	 * a whole table (the copies of version 2 reuse free pages), and that
	 * belongs in a temp file, not in memory.
	 */
	if (exec_sql(q, "PRAGMA temp_store = MEMORY", __func__) == -1) {
		snprintf(err, errlen, "store.path: %s: %s", q->path,
		    sqlite3_errmsg(q->db));
		goto out;
	}
	if (pragma_text(q, "PRAGMA page_size", mode, sizeof(mode)) == -1 ||
	    (q->page_size = strtoll(mode, NULL, 10)) <= 0) {
		snprintf(err, errlen, "store.path: %s: cannot read page size",
		    q->path);
		goto out;
	}
	if (q->max_size_bytes > 0) {
		/* SQLite keeps the current size when the cap is below it. */
		pages = q->max_size_bytes / q->page_size;
		if (pages < 1)
			pages = 1;
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %" PRId64,
		    pages);
		if (pragma_text(q, sql, mode, sizeof(mode)) == -1) {
			snprintf(err, errlen, "store.max_size_bytes: %s",
			    sqlite3_errmsg(q->db));
			goto out;
		}
	}
	*state = q;
	q = NULL;
	rc = 0;
out:
	sq_close(q);
	return rc;
}

static int
sq_schema_version(void *state, int *version)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	int64_t v;

	if ((st = stmt_get(q, ST_USER_VERSION)) == NULL ||
	    stmt_int64(q, st, &v, __func__, "user_version") == -1)
		return -1;
	*version = (int)v;
	return 0;
}

static int
sq_recover(void *state)
{
	struct sq *q = state;

	if (sync_set(q, SYNC_FULL) == -1 ||
	    run_id(q, ST_RECOVER, __func__) == -1)
		return -1;
	if (sqlite3_changes(q->db) > 0)
		log_info("leases dropped", " rows=%d", sqlite3_changes(q->db));
	return 0;
}

/*
 * The multi-row statement of kind with 2^lg rows, reset, or NULL (logged).
 * Its bindings are not cleared: every use binds every parameter.
 */
static sqlite3_stmt *
chunk_get(struct sq *q, enum sq_chunk kind, int lg)
{
	sqlite3_stmt *st = q->chunks[kind][lg];
	const char *t, *src;
	size_t rows = (size_t)1 << lg, cap, len, i, p;
	char *sql;

	if (st != NULL) {
		sqlite3_reset(st);
		return st;
	}
	/* A "?d" of two bytes becomes "?" and at most three digits. */
	cap = strlen(chunk_sql[kind].head) + strlen(chunk_sql[kind].tail) +
	    rows * (3 * strlen(chunk_sql[kind].row) + 1) + 32;
	if ((sql = malloc(cap)) == NULL) {
		log_error("out of memory", " rows=%zu", rows);
		return NULL;
	}
	len = strlen(chunk_sql[kind].head);
	memcpy(sql, chunk_sql[kind].head, len);
	for (i = 0; i <= rows; i++) {
		/* rows times the row, then the tail. */
		src = i < rows ? chunk_sql[kind].row : chunk_sql[kind].tail;
		if (i > 0 && i < rows)
			sql[len++] = ',';
		for (t = src; *t != '\0'; t++) {
			sql[len++] = *t;
			if (*t != '?' || t[1] < '0' || t[1] > '9')
				continue;
			p = t[1] == '0'
			    ? rows * (size_t)chunk_sql[kind].ncols + 1
			    : i * (size_t)chunk_sql[kind].ncols +
				(size_t)(t[1] - '0');
			len += i64_put(sql + len, (int64_t)p);
			t++;
		}
	}
	sql[len] = '\0';
	if (sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
		NULL) != SQLITE_OK) {
		db_log(q, __func__, "prepare");
		sqlite3_finalize(st);
		free(sql);
		return NULL;
	}
	free(sql);
	q->chunks[kind][lg] = st;
	return st;
}

/* The largest lg <= SQ_CHUNK_LOG with 2^lg <= n (n > 0). */
static int
chunk_log(size_t n)
{
	int lg = SQ_CHUNK_LOG;

	while (((size_t)1 << lg) > n)
		lg--;
	return lg;
}

/*
 * 1 when the key is new (now recorded), 0 when seen, -1 on failure: the
 * upsert refreshes only a key older than the window, so sqlite3_changes()
 * tells new from seen in one statement.
 */
static int
mark_seen(struct sq *q, enum sq_stmt id, const char *source, const char *key,
    int64_t now_ms, int64_t after_ms)
{
	sqlite3_stmt *st;

	if ((st = stmt_get(q, id)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, after_ms);
	if (stmt_run(q, st, __func__, "seen") == -1)
		return -1;
	return sqlite3_changes(q->db) > 0;
}

/* r's window as a length (received_ms - dedupe_after_ms); -1 on overflow. */
static int
window_len(const struct nb_append *r, int64_t *len)
{
	if ((r->dedupe_after_ms < 0 &&
		r->received_ms > INT64_MAX + r->dedupe_after_ms) ||
	    (r->dedupe_after_ms > 0 &&
		r->received_ms < INT64_MIN + r->dedupe_after_ms))
		return -1;
	*len = r->received_ms - r->dedupe_after_ms;
	return 0;
}

/*
 * Records k[0..n) in multi-row statements of kind, in order, as long as
 * every key is new: *all is 1 when all were, 0 as soon as one was not (or
 * a window does not fit a statement), with the keys after it left out.
 */
static int
keys_batch(struct sq *q, enum sq_chunk kind, const struct sq_key *k, size_t n,
    int *all)
{
	sqlite3_stmt *st;
	int64_t w, w2;
	size_t i = 0, len, size, j;
	int lg;

	*all = 0;
	while (i < n) {
		if (window_len(k[i].r, &w) == -1)
			return 0;
		/* One statement takes keys of one window length only. */
		for (len = 1; i + len < n && len < SQ_CHUNK_MAX; len++)
			if (window_len(k[i + len].r, &w2) == -1 || w2 != w)
				break;
		lg = chunk_log(len);
		size = (size_t)1 << lg;
		if ((st = chunk_get(q, kind, lg)) == NULL)
			return -1;
		for (j = 0; j < size; j++) {
			sqlite3_bind_text(st, (int)(3 * j + 1),
			    k[i + j].r->source, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, (int)(3 * j + 2), k[i + j].key,
			    -1, SQLITE_STATIC);
			sqlite3_bind_int64(
			    st, (int)(3 * j + 3), k[i + j].r->received_ms);
		}
		sqlite3_bind_int64(st, (int)(3 * size + 1), w);
		if (stmt_run(q, st, __func__, "seen") == -1)
			return -1;
		if (sqlite3_changes64(q->db) != (sqlite3_int64)size)
			return 0;
		i += size;
	}
	*all = 1;
	return 0;
}

/*
 * Records the keys k[0..n) (kind's table; one is its one-row statement)
 * and sets their fresh exactly as one mark_seen() per key in order would.
 * Nearly every key is new, so they go in multi-row statements under a
 * savepoint; a statement that changed fewer rows than it has met a
 * duplicate without saying which, and then the savepoint is rolled back and
 * the keys go one by one.
 */
static int
keys_mark(struct sq *q, enum sq_chunk kind, enum sq_stmt one, struct sq_key *k,
    size_t n)
{
	size_t i;
	int all, fresh;

	if (n == 0)
		return 0;
	if (run_id(q, ST_SAVEPOINT, __func__) == -1 ||
	    keys_batch(q, kind, k, n, &all) == -1)
		return -1;
	if (!all && run_id(q, ST_ROLLBACK_SAVEPOINT, __func__) == -1)
		return -1;
	if (run_id(q, ST_RELEASE_SAVEPOINT, __func__) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (all) {
			k[i].fresh = 1;
			continue;
		}
		fresh = mark_seen(q, one, k[i].r->source, k[i].key,
		    k[i].r->received_ms, k[i].r->dedupe_after_ms);
		if (fresh == -1)
			return -1;
		k[i].fresh = fresh;
	}
	return 0;
}

/* Fails (logged) unless the last rowid the connection inserted is want. */
static int
seq_check(struct sq *q, int64_t want, const char *table)
{
	int64_t got = sqlite3_last_insert_rowid(q->db);

	if (got == want)
		return 0;
	log_error("seq mismatch", " table=%s expected=%" PRId64 " got=%" PRId64,
	    table, want, got);
	return -1;
}

/*
 * Stores rows[0..n) and their payloads in multi-row statements.  A row
 * named by its seq costs a lookup from the root of the table to prove the
 * seq unused, where a row left to take the table's next rowid lands after
 * the last one.  So the events rows take their seqs from AUTOINCREMENT,
 * which gives the rows of one statement consecutive seqs from one past the
 * last seq given, under the write lock; and the payloads take the
 * payloads table's next rowid whenever that is the same seq (the newest
 * row still has its payload: unless it was purged), else they name theirs.
 * The last seq of every statement is checked, so a payload can never be
 * filed under another row's seq.
 */
static int
rows_insert(struct sq *q, const struct sq_row *rows, size_t n)
{
	const struct sq_row *w;
	sqlite3_stmt *st;
	int64_t last, plast, want;
	size_t i = 0, size, j;
	int lg, p, dead, follow;

	if (n == 0)
		return 0;
	if ((st = stmt_get(q, ST_NEXT_SEQ)) == NULL)
		return -1;
	if (sqlite3_step(st) != SQLITE_ROW) {
		db_log(q, __func__, "next seq");
		sqlite3_reset(st);
		return -1;
	}
	last = sqlite3_column_int64(st, 0);
	plast = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if (last < 0 || (uint64_t)(INT64_MAX - last) < n) {
		log_error("seq exhausted", " last=%" PRId64, last);
		return -1;
	}
	follow = plast == last;
	while (i < n) {
		lg = chunk_log(n - i);
		size = (size_t)1 << lg;
		want = last + (int64_t)(i + size);
		/* seq NULL: AUTOINCREMENT's, and the row's registers line up
		 * with the statement's columns (fewer copies than leaving
		 * seq out). */
		if ((st = chunk_get(q, CH_EVENTS, lg)) == NULL)
			return -1;
		for (j = 0; j < size; j++) {
			w = &rows[i + j];
			dead = w->e->error != NULL;
			p = (int)(7 * j);
			sqlite3_bind_text(
			    st, p + 1, w->r->source, -1, SQLITE_STATIC);
			sqlite3_bind_text(
			    st, p + 2, w->e->id, -1, SQLITE_STATIC);
			sqlite3_bind_text(
			    st, p + 3, w->e->type, -1, SQLITE_STATIC);
			sqlite3_bind_int(
			    st, p + 4, dead ? NB_STATE_DEAD : NB_STATE_PENDING);
			sqlite3_bind_text(st, p + 5,
			    dead ? NB_REASON_QUARANTINED : NULL, -1,
			    SQLITE_STATIC);
			sqlite3_bind_text(
			    st, p + 6, w->e->error, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, p + 7, w->r->received_ms);
		}
		if (stmt_run(q, st, __func__, "insert") == -1 ||
		    seq_check(q, want, "events") == -1)
			return -1;
		st = chunk_get(q, follow ? CH_PAYLOADS_NEXT : CH_PAYLOADS, lg);
		if (st == NULL)
			return -1;
		for (j = 0; j < size; j++) {
			w = &rows[i + j];
			p = follow ? (int)j : (int)(2 * j + 1);
			if (!follow)
				sqlite3_bind_int64(
				    st, p, last + 1 + (int64_t)(i + j));
			/* A zero-length blob needs a non-NULL pointer to stay
			 * NOT NULL. */
			sqlite3_bind_blob64(st, p + 1,
			    w->e->raw != NULL ? w->e->raw : "",
			    w->e->raw != NULL ? w->e->rawlen : 0,
			    SQLITE_STATIC);
		}
		if (stmt_run(q, st, __func__, "insert payload") == -1 ||
		    (follow && seq_check(q, want, "payloads") == -1))
			return -1;
		i += size;
	}
	return 0;
}

/* Room for nkeys keys and nrows rows in q's scratch arrays. */
static int
scratch_reserve(struct sq *q, size_t nkeys, size_t nrows)
{
	struct sq_key *k;
	struct sq_row *r;

	if (nkeys > q->keycap) {
		if ((k = reallocarray(q->keys, nkeys, sizeof(*k))) == NULL)
			goto nomem;
		q->keys = k;
		q->keycap = nkeys;
	}
	if (nrows > q->rowcap) {
		if ((r = reallocarray(q->rows, nrows, sizeof(*r))) == NULL)
			goto nomem;
		q->rows = r;
		q->rowcap = nrows;
	}
	return 0;
nomem:
	log_error("out of memory", " keys=%zu rows=%zu", nkeys, nrows);
	return -1;
}

/*
 * A group is stored in three passes, each a few multi-row statements
 * rather than a statement per key or row: the webhook ids of all requests,
 * then the event ids of the new requests, then the rows of the new events.
 * Each table sees its keys in request order, so the outcome is that of
 * storing the requests one after the other.  A statement per row cost more
 * than the B-tree work it did: every statement starts its cursors from the
 * root, keeps a statement journal and ends with a halt, where in one
 * statement each insert lands next to the one before.
 */
static int
sq_append(void *state, struct nb_append *const *reqs, size_t n)
{
	struct sq *q = state;
	struct nb_append *r;
	const struct nb_event *e;
	size_t i, k, nkeys, nrows, total = 0;
	int rc = -1;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		r = reqs[i];
		r->accepted = r->duplicates = r->quarantined = 0;
		if (r->nevents > SIZE_MAX - total) {
			log_error("too many events", " requests=%zu", n);
			return -1;
		}
		total += r->nevents;
	}
	if (scratch_reserve(q, n > total ? n : total, total) == -1)
		return -1;
	if (tx_begin(q) == -1)
		return -1;
	nkeys = 0;
	for (i = 0; i < n; i++)
		if (reqs[i]->webhook_id != NULL)
			q->keys[nkeys++] =
			    (struct sq_key){reqs[i], reqs[i]->webhook_id, 0};
	if (keys_mark(q, CH_SEEN_REQUESTS, ST_SEEN_REQUEST, q->keys, nkeys) ==
	    -1)
		goto out;
	/* A request seen before stores nothing. */
	for (k = 0; k < nkeys; k++)
		if (!q->keys[k].fresh)
			q->keys[k].r->duplicates = (int)q->keys[k].r->nevents;
	/* An event without an id is never a duplicate. */
	nkeys = 0;
	for (i = 0; i < n; i++) {
		if ((r = reqs[i])->duplicates != 0)
			continue;
		for (k = 0; k < r->nevents; k++)
			if (r->events[k].id != NULL)
				q->keys[nkeys++] =
				    (struct sq_key){r, r->events[k].id, 0};
	}
	if (keys_mark(q, CH_SEEN_EVENTS, ST_SEEN_EVENT, q->keys, nkeys) == -1)
		goto out;
	/* The same walk again, now with each event's verdict. */
	nkeys = nrows = 0;
	for (i = 0; i < n; i++) {
		if ((r = reqs[i])->duplicates != 0)
			continue;
		for (k = 0; k < r->nevents; k++) {
			e = &r->events[k];
			if (e->id != NULL && !q->keys[nkeys++].fresh) {
				r->duplicates++;
				continue;
			}
			q->rows[nrows++] = (struct sq_row){r, e};
			if (e->error != NULL)
				r->quarantined++;
			else
				r->accepted++;
		}
	}
	if (rows_insert(q, q->rows, nrows) == -1)
		goto out;
	if (cap_check(q, cap_spare(q)) == -1)
		goto out;
	if (tx_commit(q) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
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
	const struct candidate *x = a, *y = b;

	return due_cmp(x->next_ms, x->seq, y->next_ms, y->seq);
}

/*
 * Collects up to limit due rows per source (cheap: seq and next_ms off the
 * partial index), outside any transaction.
 */
static int
claim_candidates(struct sq *q, const char *const *sources, size_t nsources,
    int64_t now_ms, size_t limit, struct candidate **out, size_t *n)
{
	struct candidate *c = NULL, *nc;
	sqlite3_stmt *st;
	size_t i, len = 0, cap = 0;
	int rc = -1, step;

	for (i = 0; i < nsources; i++) {
		if ((st = stmt_get(q, ST_CLAIM_CANDIDATES)) == NULL)
			goto out;
		sqlite3_bind_text(st, 1, sources[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now_ms);
		sqlite3_bind_int64(
		    st, 3, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			if (len == cap) {
				cap = cap == 0 ? 64 : cap * 2;
				nc = reallocarray(c, cap, sizeof(*c));
				if (nc == NULL) {
					log_error(
					    "out of memory", " rows=%zu", len);
					sqlite3_reset(st);
					goto out;
				}
				c = nc;
			}
			c[len].seq = sqlite3_column_int64(st, 0);
			c[len].next_ms = sqlite3_column_int64(st, 1);
			len++;
		}
		if (step != SQLITE_DONE) {
			db_log(q, __func__, "claim candidates");
			sqlite3_reset(st);
			goto out;
		}
		sqlite3_reset(st);
	}
	*out = c;
	*n = len;
	c = NULL;
	rc = 0;
out:
	free(c);
	return rc;
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

/* Orders v's rows by (next_ms, seq); next_ms[i] belongs to v->v[i]. */
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

static int
sq_claim(void *state, const char *const *sources, size_t nsources,
    int64_t now_ms, int64_t lease_until_ms, size_t limit,
    struct nb_stored_event **out, size_t *n)
{
	struct sq *q = state;
	struct candidate *c = NULL;
	struct nb_store_rows v = {0};
	int64_t *next = NULL, *nn;
	sqlite3_stmt *st;
	size_t nc = 0, ncap = 0;
	int rc = -1, step, in_tx = 0;

	*out = NULL;
	*n = 0;
	if (nsources == 0 || limit == 0)
		return 0;
	if (claim_candidates(q, sources, nsources, now_ms, limit, &c, &nc) ==
	    -1)
		goto out;
	if (nc == 0) {
		rc = 0;
		goto out;
	}
	qsort(c, nc, sizeof(*c), candidate_cmp);
	if (nc > limit)
		nc = limit;
	if (seqs_json(q, &c[0].seq, nc, sizeof(*c)) == -1)
		goto out;
	/* Leases need no fsync: see sync_set(). */
	if (tx_begin_sync(q, SYNC_NORMAL) == -1)
		goto out;
	in_tx = 1;
	/*
	 * The conditions are checked again under the write lock, since
	 * another claimer may have won a row since the candidates were read.
	 */
	if ((st = stmt_get(q, ST_CLAIM_READ)) == NULL)
		goto out;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_type(st, COL_PAYLOAD) == SQLITE_NULL) {
			log_error("payload missing", " seq=%" PRId64,
			    (int64_t)sqlite3_column_int64(st, 0));
			sqlite3_reset(st);
			goto out;
		}
		if (v.n == ncap) {
			ncap = ncap == 0 ? nc : ncap * 2;
			if ((nn = reallocarray(next, ncap, sizeof(*nn))) ==
			    NULL) {
				log_error("out of memory", " rows=%zu", v.n);
				sqlite3_reset(st);
				goto out;
			}
			next = nn;
		}
		next[v.n] = sqlite3_column_int64(st, COL_PAYLOAD + 1);
		if (rows_push(&v, st, 1) == -1) {
			sqlite3_reset(st);
			goto out;
		}
	}
	if (step != SQLITE_DONE) {
		db_log(q, __func__, "claim read");
		sqlite3_reset(st);
		goto out;
	}
	sqlite3_reset(st);
	if (v.n > 0) {
		/* The same list and conditions: the rows just read. */
		if ((st = stmt_get(q, ST_CLAIM_SET)) == NULL)
			goto out;
		sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, lease_until_ms);
		sqlite3_bind_int64(st, 3, now_ms);
		if (stmt_run(q, st, __func__, "claim") == -1)
			goto out;
		if (sqlite3_changes64(q->db) != (sqlite3_int64)v.n) {
			log_error("claim mismatch", " read=%zu leased=%" PRId64,
			    v.n, (int64_t)sqlite3_changes64(q->db));
			goto out;
		}
	}
	if (claimed_sort(&v, next) == -1)
		goto out;
	if (tx_commit(q) == -1)
		goto out;
	in_tx = 0;
	*out = v.v;
	*n = v.n;
	memset(&v, 0, sizeof(v));
	rc = 0;
out:
	if (in_tx)
		tx_rollback(q);
	nb_store_rows_clear(&v);
	free(next);
	free(c);
	return rc;
}

/*
 * The parameters of a set-based update: the seq list is ?1, then ?2 (an
 * integer or a string), ?3 and ?4, whichever the statement uses.
 */
struct per_row {
	enum sq_stmt id;
	int64_t i2, i4;
	const char *s2, *s3;
	int use_s2;
};

static void
per_row_bind(sqlite3_stmt *st, const struct per_row *p)
{
	if (p->use_s2)
		sqlite3_bind_text(st, 2, p->s2, -1, SQLITE_STATIC);
	else
		sqlite3_bind_int64(st, 2, p->i2);
	sqlite3_bind_text(st, 3, p->s3, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, p->i4);
}

/*
 * Runs p's set-based statement over seqs, in one transaction committed with
 * the synchronous level sync.
 */
static int
update_rows(struct sq *q, const int64_t *seqs, size_t n,
    const struct per_row *p, enum sq_sync sync, const char *fn)
{
	sqlite3_stmt *st;
	int rc = -1;

	if (n == 0)
		return 0;
	if (seqs_json(q, seqs, n, sizeof(*seqs)) == -1)
		return -1;
	if (tx_begin_sync(q, sync) == -1)
		return -1;
	if ((st = stmt_get(q, p->id)) == NULL)
		goto out;
	sqlite3_bind_text(st, 1, q->json, -1, SQLITE_STATIC);
	per_row_bind(st, p);
	if (stmt_run(q, st, fn, "update") == -1)
		goto out;
	if (tx_commit(q) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

static int
sq_extend(void *state, const int64_t *seqs, size_t n, int64_t lease_until_ms)
{
	struct per_row p = {.id = ST_EXTEND, .i2 = lease_until_ms};

	return update_rows(state, seqs, n, &p, SYNC_NORMAL, __func__);
}

static int
sq_delivered(void *state, const int64_t *seqs, size_t n, int64_t now_ms)
{
	struct per_row p = {.id = ST_DELIVERED, .i2 = now_ms};

	/* A lost mark only means one more send: see sync_set(). */
	return update_rows(state, seqs, n, &p, SYNC_NORMAL, __func__);
}

static int
sq_release(void *state, const int64_t *seqs, size_t n)
{
	struct per_row p = {.id = ST_RELEASE};

	return update_rows(state, seqs, n, &p, SYNC_NORMAL, __func__);
}

static int
sq_dead(void *state, const int64_t *seqs, size_t n, const char *reason,
    const char *error, int64_t now_ms)
{
	struct per_row p = {.id = ST_DEAD,
	    .use_s2 = 1,
	    .s2 = reason,
	    .s3 = error,
	    .i4 = now_ms};

	return update_rows(state, seqs, n, &p, SYNC_FULL, __func__);
}

static int
sq_retry(
    void *state, const struct nb_store_retry *rows, size_t n, const char *error)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	size_t i;
	int rc = -1;

	if (n == 0)
		return 0;
	if (tx_begin(q) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((st = stmt_get(q, ST_RETRY)) == NULL)
			goto out;
		sqlite3_bind_int64(st, 1, rows[i].seq);
		sqlite3_bind_int64(st, 2, rows[i].next_ms);
		sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
		if (stmt_run(q, st, __func__, "retry") == -1)
			goto out;
	}
	if (tx_commit(q) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

/* Appends the rows matching f to v. */
static int
list_into(
    struct sq *q, const struct nb_store_filter *f, struct nb_store_rows *v)
{
	sqlite3_stmt *st;
	int step;

	if ((st = stmt_get(q, ST_LIST)) == NULL)
		return -1;
	if (bind_filter(st, f) == -1)
		return 0;
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (rows_push(v, st, 1) == -1) {
			sqlite3_reset(st);
			return -1;
		}
	}
	if (step != SQLITE_DONE) {
		db_log(q, __func__, "list");
		sqlite3_reset(st);
		return -1;
	}
	sqlite3_reset(st);
	return 0;
}

static int
sq_list(void *state, const struct nb_store_filter *f,
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
sq_make_pending(
    void *state, int64_t seq, int64_t now_ms, const char *id, const char *type)
{
	struct sq *q = state;
	sqlite3_stmt *st;

	if ((st = stmt_get(q, ST_REPLAY_PENDING)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_int64(st, 2, now_ms);
	sqlite3_bind_text(st, 3, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, type, -1, SQLITE_STATIC);
	return stmt_run(q, st, __func__, "replay");
}

static int
sq_requarantine(void *state, int64_t seq, const char *error, int64_t now_ms)
{
	struct sq *q = state;
	sqlite3_stmt *st;

	if ((st = stmt_get(q, ST_REQUARANTINE)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, seq);
	sqlite3_bind_text(st, 2, error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	return stmt_run(q, st, __func__, "requarantine");
}

static int
sq_replay_begin(void *state, int dry_run)
{
	return dry_run ? 0 : tx_begin(state);
}

static int
sq_replay_commit(void *state)
{
	return tx_commit(state);
}

static void
sq_replay_rollback(void *state)
{
	tx_rollback(state);
}

static int
sq_purge(
    void *state, const struct nb_store_filter *f, int dry_run, size_t *purged)
{
	static const enum sq_stmt ids[] = {ST_PURGE_PAYLOADS, ST_PURGE};
	struct sq *q = state;
	sqlite3_stmt *st;
	int64_t count, seq;
	size_t i;
	int rc = -1;

	*purged = 0;
	/* A key that is no decimal seq matches no row. */
	if (f != NULL && f->key != NULL &&
	    nb_store_key_parse(f->key, &seq) == -1)
		return 0;
	if (dry_run) {
		if ((st = stmt_get(q, ST_PURGE_COUNT)) == NULL)
			return -1;
		if (bind_filter(st, f) == -1)
			return 0;
		if (stmt_int64(q, st, &count, __func__, "purge count") == -1)
			return -1;
		*purged = (size_t)count;
		return 0;
	}
	/*
	 * The payloads, then the rows, with the same filter in one durable
	 * transaction: both statements see the same rows under the lock.
	 */
	if (tx_begin(q) == -1)
		return -1;
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		if ((st = stmt_get(q, ids[i])) == NULL ||
		    bind_filter(st, f) == -1 ||
		    stmt_run(q, st, __func__, "purge") == -1)
			goto out;
	}
	count = sqlite3_changes64(q->db);
	if (tx_commit(q) == -1)
		goto out;
	*purged = (size_t)count;
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

static int
sq_stats(void *state, int64_t now_ms, struct nb_source_stats **out, size_t *n)
{
	struct sq *q = state;
	struct nb_source_stats *s = NULL, *ns;
	sqlite3_stmt *st;
	const unsigned char *name;
	size_t len = 0, cap = 0;
	int rc = -1, step;

	*out = NULL;
	*n = 0;
	if ((st = stmt_get(q, ST_STATS)) == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, now_ms);
	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((ns = reallocarray(s, cap, sizeof(*s))) == NULL) {
				log_error("out of memory", " sources=%zu", len);
				goto out;
			}
			s = ns;
		}
		memset(&s[len], 0, sizeof(s[len]));
		name = sqlite3_column_text(st, 0);
		snprintf(s[len].source, sizeof(s[len].source), "%s",
		    name != NULL ? (const char *)name : "");
		s[len].pending = sqlite3_column_int64(st, 1);
		s[len].inflight = sqlite3_column_int64(st, 2);
		s[len].delivered = sqlite3_column_int64(st, 3);
		s[len].dead = sqlite3_column_int64(st, 4);
		s[len].quarantined = sqlite3_column_int64(st, 5);
		s[len].oldest_pending_ms = sqlite3_column_int64(st, 6);
		len++;
	}
	if (step != SQLITE_DONE) {
		db_log(q, __func__, "stats");
		goto out;
	}
	*out = s;
	*n = len;
	s = NULL;
	rc = 0;
out:
	sqlite3_reset(st);
	free(s);
	return rc;
}

static int
sq_prune(void *state, int64_t dedupe_after_ms, int64_t delivered_before_ms)
{
	/* The payloads of delivered rows go first, while the rows say which. */
	static const enum sq_stmt ids[] = {ST_PRUNE_REQUESTS, ST_PRUNE_EVENTS,
	    ST_PRUNE_PAYLOADS, ST_PRUNE_DELIVERED};
	struct sq *q = state;
	sqlite3_stmt *st;
	size_t i;
	int rc = -1;

	if (tx_begin(q) == -1)
		return -1;
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		if ((st = stmt_get(q, ids[i])) == NULL)
			goto out;
		sqlite3_bind_int64(st, 1,
		    ids[i] == ST_PRUNE_PAYLOADS || ids[i] == ST_PRUNE_DELIVERED
			? delivered_before_ms
			: dedupe_after_ms);
		if (stmt_run(q, st, __func__, "prune") == -1)
			goto out;
	}
	if (tx_commit(q) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

static int
sq_probe(void *state)
{
	struct sq *q = state;
	sqlite3_stmt *st;
	int rc = -1;

	if (disk_check(q, SQ_PROBE_HEADROOM) == -1)
		return -1;
	if (tx_begin(q) == -1)
		return -1;
	if ((st = stmt_get(q, ST_PROBE)) == NULL)
		goto out;
	sqlite3_bind_int64(st, 1, nb_time_now_ms());
	if (stmt_run(q, st, __func__, "probe") == -1)
		goto out;
	/*
	 * Healthy only with room for more than a handful of requests on top
	 * of what appends leave free, so a store that is just full does not
	 * flap.
	 */
	if (cap_check(q, 2 * cap_spare(q)) == -1)
		goto out;
	if (tx_commit(q) == -1)
		goto out;
	rc = 0;
out:
	if (rc == -1)
		tx_rollback(q);
	return rc;
}

/*
 * A PASSIVE checkpoint: copies as much of the WAL as no reader still needs
 * and never waits for a lock.  SQLITE_BUSY means another connection is
 * checkpointing right now, which is as good.
 */
static int
sq_checkpoint(void *state)
{
	struct sq *q = state;
	int rc;

	rc = sqlite3_wal_checkpoint_v2(
	    q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
		db_log(q, __func__, "checkpoint");
		return -1;
	}
	return 0;
}

const struct nb_store_ops nb_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .recover = sq_recover,
    .append = sq_append,
    .claim = sq_claim,
    .extend = sq_extend,
    .delivered = sq_delivered,
    .retry = sq_retry,
    .release = sq_release,
    .dead = sq_dead,
    .list = sq_list,
    .replay_begin = sq_replay_begin,
    .replay_list = sq_list,
    .make_pending = sq_make_pending,
    .requarantine = sq_requarantine,
    .replay_commit = sq_replay_commit,
    .replay_rollback = sq_replay_rollback,
    .purge = sq_purge,
    .stats = sq_stats,
    .prune = sq_prune,
    .probe = sq_probe,
    .checkpoint = sq_checkpoint,
};
