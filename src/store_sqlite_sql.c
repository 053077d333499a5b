/* SPDX-License-Identifier: ISC */
/*
 * store_sqlite_sql: every SQL text of the SQLite backend in one place.
 *
 * The schema and its migrations (PRAGMA user_version counts them), the
 * index tuning applied on every open, the statements the connection
 * prepares once and reuses (sq_stmt_sql, by enum sq_stmt) and the
 * multi-row statements of an append (sq_chunk_sql).  Only text: the files
 * that run them say why each is shaped the way it is where it matters to
 * their code; the comments here say what the database does with them.
 */
#include "store_schema.h"
#include "store_sqlite.h"

/* The dialect's words for store_schema.h: every integer is 64-bit. */
#define SQ_ID	 "INTEGER PRIMARY KEY AUTOINCREMENT"
#define SQ_KEYED " WITHOUT ROWID"

#define STR_(x)	    #x
#define STR(x)	    STR_(x)
#define ERRORS_KEPT STR(NB_STORE_ERRORS_KEPT)
#define SHIFT	    STR(SQ_PEOPLE_SHIFT)

/*
 * The person index entries of the rows of events where w holds: bucket,
 * kind (0 the address, 1 the uid), key, seq, in the order of the index.
 */
#define PEOPLE_OF(w)                                                           \
	"SELECT seq >> " SHIFT ", 0, email_key, seq FROM events WHERE " w      \
	" AND email_key IS NOT NULL UNION ALL SELECT seq >> " SHIFT            \
	", 1, uid_key, seq FROM events WHERE " w " AND uid_key IS NOT NULL"

/* The rules' numbers are written into the SQL below as they are. */
_Static_assert(NB_SEGMENT_RULE_LEGACY == 0 && NB_SEGMENT_RULE_CURRENT == 1,
    "msgid_rule values in the SQL");

/*
 * The columns of events before and after version 2 moved the payload out
 * (the same but for it), and a dedupe table: a key per source, when it was
 * last seen, and the index the prune walks.
 */
#define EVENTS_HEAD                                                            \
	" seq INTEGER PRIMARY KEY AUTOINCREMENT,"                              \
	" source TEXT NOT NULL,"                                               \
	" event_id TEXT,"                                                      \
	" type TEXT,"
#define EVENTS_TAIL                                                            \
	" state INTEGER NOT NULL,"                                             \
	" reason TEXT,"                                                        \
	" error TEXT,"                                                         \
	" attempts INTEGER NOT NULL DEFAULT 0,"                                \
	" received_ms INTEGER NOT NULL,"                                       \
	" age_base_ms INTEGER NOT NULL,"                                       \
	" next_ms INTEGER NOT NULL,"                                           \
	" lease_ms INTEGER NOT NULL DEFAULT 0,"                                \
	" updated_ms INTEGER NOT NULL);"
#define EVENTS_V1_COLS EVENTS_HEAD " payload BLOB NOT NULL," EVENTS_TAIL
#define EVENTS_V2_COLS EVENTS_HEAD EVENTS_TAIL
#define SEEN_TABLE(t, key)                                                     \
	"CREATE TABLE " t " ("                                                 \
	" source TEXT NOT NULL,"                                               \
	" " key " TEXT NOT NULL,"                                              \
	" seen_ms INTEGER NOT NULL,"                                           \
	" PRIMARY KEY (source, " key ")) WITHOUT ROWID;"                       \
	"CREATE INDEX " t "_ms ON " t " (seen_ms);"

/* Migrations: sq_migrations[i] takes the schema from version i to i + 1. */
const char *const sq_migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE events (" EVENTS_V1_COLS
    "CREATE INDEX events_due ON events (source, next_ms, seq)"
    " WHERE state = 0;"
    "CREATE INDEX events_state ON events (state, received_ms);"
    "CREATE INDEX events_source_id ON events (source, event_id);" SEEN_TABLE(
	"seen_requests", "webhook_id") SEEN_TABLE("seen_events",
	"event_id") "CREATE TABLE meta ("
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
    "CREATE TABLE events_v2 (" EVENTS_V2_COLS
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
    /*
     * 3: counters instead of scans.  counters holds per source what
     * nb_store_stats() used to count with a GROUP BY over every row; every
     * transaction that changes rows changes them too (see sq_commit()).
     * They are built once here from the rows as they are (the totals
     * start from what is stored).  recent_errors keeps the latest errors
     * per source, at most NB_STORE_ERRORS_KEPT, in place of the admin's
     * row scans.  The two gauges read indexes: events_pending_age the
     * oldest pending received_ms of a source, events_lease its live
     * leases (which replaces events_leased for recovery too).
     */
    "CREATE TABLE counters ("
    " source TEXT PRIMARY KEY,"
    " pending INTEGER NOT NULL DEFAULT 0,"
    " delivered INTEGER NOT NULL DEFAULT 0,"
    " dead INTEGER NOT NULL DEFAULT 0,"
    " quarantined INTEGER NOT NULL DEFAULT 0,"
    " received_total INTEGER NOT NULL DEFAULT 0,"
    " delivered_total INTEGER NOT NULL DEFAULT 0,"
    " dead_total INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "INSERT INTO counters SELECT source, sum(state = 0), sum(state = 1),"
    " sum(state = 2),"
    " sum(state = 2 AND reason IS '" NB_REASON_QUARANTINED "'),"
    " count(*), sum(state = 1), sum(state = 2)"
    " FROM events GROUP BY source;"
    "CREATE TABLE recent_errors ("
    " source TEXT NOT NULL,"
    " error TEXT NOT NULL,"
    " count INTEGER NOT NULL,"
    " last_ms INTEGER NOT NULL,"
    " state INTEGER NOT NULL,"
    " reason TEXT,"
    " PRIMARY KEY (source, error)) WITHOUT ROWID;"
    /* max() makes state and reason those of the newest row. */
    "INSERT INTO recent_errors SELECT source, error, count(*),"
    " max(updated_ms), state, reason FROM events"
    " WHERE error IS NOT NULL AND error <> '' GROUP BY source, error;"
    "DELETE FROM recent_errors WHERE (source, error) IN"
    " (SELECT source, error FROM (SELECT source, error, row_number()"
    " OVER (PARTITION BY source ORDER BY last_ms DESC) AS n"
    " FROM recent_errors) WHERE n > " ERRORS_KEPT ");"
    "DROP INDEX IF EXISTS events_leased;"
    "CREATE INDEX events_lease ON events (source, lease_ms)"
    " WHERE lease_ms <> 0;"
    "CREATE INDEX events_pending_age ON events (source, received_ms)"
    " WHERE state = 0;"
    /* The operators' lists of dead letters walk this in seq order. */
    "CREATE INDEX events_dead ON events (seq) WHERE state = 2;",
    /*
     * 4: the install identity in the messageId.  install holds the store's
     * install id (sq_open() writes it when missing); every row says by
     * which messageId rule it is sent: the rows stored before get the
     * default, the legacy rule, and keep their messageId; the append
     * writes the current rule.  ADD COLUMN with a constant default
     * rewrites no row.
     */
    "ALTER TABLE events ADD COLUMN msgid_rule INTEGER NOT NULL"
    " DEFAULT 0;"
    "CREATE TABLE install ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " install_id TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL);",
    /*
     * 5: the alerts (store_alert.h).  activity holds when each source
     * (fp '') and each of its keys last verified a request; alert_lease
     * names the one instance that evaluates; alert_reports what each
     * instance alone sees (its paused sources); alert_state one row per
     * condition and source; alert_outbox the notifications, claimed
     * under a lease.  All grow with the sources and the notifications of
     * the last days, never with the events.
     */
    NB_SCHEMA_ALERTS("INTEGER", "INTEGER", SQ_ID, SQ_KEYED)
    /* The dead letters stored before alerts existed are not new. */
    "INSERT INTO alert_state SELECT 'dead_letters', source, 0, 0, 0,"
    " dead_total, 0, 0, 0, '', '', '{}' FROM counters;",
    /*
     * 6: find and forget.  Each row gets the index keys of its person
     * (person.h; computed from the payloads of the rows already stored
     * when this migration runs, see sq_backfill_keys()), the attempt that
     * delivered it (last_attempt) and the time an erase flagged it while
     * a deliverer held it (erase_ms): a flagged row is never claimed.
     * ADD COLUMN rewrites nothing: old rows read NULL.  attempts holds
     * one row per batch attempt; attempt_links ties a row to its failed
     * attempts (its first NB_STORE_ATTEMPTS_KEPT and its latest) and, once
     * replayed, to the attempt that had delivered it.  erase_epoch counts
     * the erasures that changed rows; audit keeps every erasure.
     */
    "ALTER TABLE events ADD COLUMN email_key INTEGER;"
    "ALTER TABLE events ADD COLUMN uid_key INTEGER;"
    "ALTER TABLE events ADD COLUMN last_attempt INTEGER;"
    "ALTER TABLE events ADD COLUMN erase_ms INTEGER;"
    "CREATE INDEX events_email ON events (email_key)"
    " WHERE email_key IS NOT NULL;"
    "CREATE INDEX events_uid ON events (uid_key) WHERE uid_key IS NOT NULL;"
    /* attempts, attempt_links, erase_epoch and audit: store_schema.h */
    NB_SCHEMA_HISTORY("INTEGER", "INTEGER", SQ_ID, SQ_KEYED),
    /*
     * 7: the person index folded late.  The two indexes of version 6 put
     * each event's entries at a random place of a large B-tree, a page
     * written per event and commit.  people holds the same entries filed
     * by bucket (seq >> SQ_PEOPLE_SHIFT) first, so that the fold, which
     * adds the rows appended since people_fold.folded some time after
     * their append (store_sqlite_people.c), only writes the pages
     * of the newest bucket; the rows after folded are searched in events
     * itself.  The keys stay in events, unindexed.  The entries of the
     * rows stored are made here, all rows folded.
     */
    "CREATE TABLE people ("
    " bucket INTEGER NOT NULL,"
    " kind INTEGER NOT NULL,"
    " hash INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " PRIMARY KEY (bucket, kind, hash, seq)) WITHOUT ROWID;"
    /* clang-format off */
    "INSERT INTO people (bucket, kind, hash, seq) "
    PEOPLE_OF("1") " ORDER BY 1, 2, 3, 4;"
    "CREATE TABLE people_fold ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " folded INTEGER NOT NULL);"
    "INSERT INTO people_fold (id, folded)"
    " SELECT 1, coalesce(max(seq), 0) FROM events;"
    "DROP INDEX IF EXISTS events_email;"
    "DROP INDEX IF EXISTS events_uid;",
    /* clang-format on */
};
const int sq_schema_latest =
    (int)(sizeof(sq_migrations) / sizeof(sq_migrations[0]));

/*
 * The backfill of version 4 (sq_backfill_keys()): the payloads of a chunk
 * of rows after a seq, then the keys of one row.
 */
const char sq_backfill_read[] =
    "SELECT p.seq, p.payload FROM payloads AS p WHERE p.seq > ?1"
    " ORDER BY p.seq LIMIT ?2";
const char sq_backfill_write[] =
    "UPDATE events SET email_key = ?2, uid_key = ?3 WHERE seq = ?1";

/*
 * Index tuning, applied on every open after the migrations.  Indexes are
 * not part of the schema version: a build without these statements works
 * on a store that has them, and the other way round, only slower.
 *
 * - events_leased (up to version 2; events_lease since) made start-up
 *   recovery visit only leased rows instead of every pending one.
 * - events_delivered serves the retention prune; it replaces events_state,
 *   which every delivered mark had to move an entry of and which misled the
 *   planner into scanning all pending rows for lease and delivery updates.
 * - events_source_id served no query (the operator filter on an id cannot
 *   use it) yet cost every append a random B-tree insert.
 */
const char sq_index_tuning[] =
    "CREATE INDEX IF NOT EXISTS events_delivered ON events (updated_ms)"
    " WHERE state = 1;"
    "DROP INDEX IF EXISTS events_state;"
    "DROP INDEX IF EXISTS events_source_id;";

/*
 * The columns of events that sq_rows_push() reads, payload aside, each
 * prefixed with t ("" or a table alias and a dot).
 */
#define EVENT_COLS_OF(t)                                                       \
	t "seq, " t "source, " t "event_id, " t "type, " t "state, " t         \
	  "reason, " t "error, " t "attempts, " t "received_ms, " t            \
	  "age_base_ms, " t "updated_ms, " t "msgid_rule"
#define EVENT_COLS   EVENT_COLS_OF("")
#define EVENT_COLS_E EVENT_COLS_OF("e.")

/*
 * The operator lists walk an index in seq order from a keyset cursor and
 * return every row they look at, at most ?11 (-1: no bound), with hit
 * saying whether it matches the filter, so a page costs at most ?11 rows
 * however selective the filter (see sq_list()).  ?1 seq (the key), ?2
 * source, ?3 type, ?4 reason, ?5 id (NULL: any), ?6 since, ?7 until (0:
 * unbounded), ?8 state mask, ?9 and ?10 the seqs the page lies between
 * (both excluded), ?12 whether to read the payloads of the hits, ?13 and
 * ?14 the person's keys (NULL: any); a person is found through the index
 * of its key.
 */
#define LIST_HIT                                                               \
	"((?2 IS NULL OR source = ?2) AND (?3 IS NULL OR type = ?3)"           \
	" AND (?4 IS NULL OR reason = ?4) AND (?5 IS NULL OR event_id = ?5)"   \
	" AND (?6 = 0 OR received_ms >= ?6) AND (?7 = 0 OR received_ms <= ?7)" \
	" AND ((?8 >> state) & 1) = 1"                                         \
	" AND (?13 IS NULL OR email_key = ?13) AND (?14 IS NULL OR uid_key = " \
	"?14))"
#define LIST_SELECT                                                            \
	"SELECT " EVENT_COLS ", CASE WHEN ?12 AND " LIST_HIT                   \
	" THEN (SELECT payload FROM payloads AS p WHERE p.seq = events.seq)"   \
	" END, " LIST_HIT " FROM events"
#define LIST_RANGE " seq > ?9 AND seq < ?10"
#define PEOPLE_HIT "(e.seq IS NOT NULL AND " LIST_HIT ")"
#define PEOPLE_SELECT                                                          \
	"SELECT " EVENT_COLS_E ", CASE WHEN ?12 AND " PEOPLE_HIT               \
	" THEN (SELECT payload FROM payloads AS p WHERE p.seq = x.seq)"        \
	" END, " PEOPLE_HIT ", x.seq FROM people AS x"                         \
	" LEFT JOIN events AS e ON e.seq = x.seq"                              \
	" WHERE x.bucket = ?15 AND x.kind = ?16 AND x.hash = ?17"              \
	" AND x.seq > ?9 AND x.seq < ?10"
/* The rows with the key of the walk: the address when given. */
#define PEOPLE_TAIL " AND iif(?13 IS NULL, uid_key = ?14, email_key = ?13)"

const char *const sq_stmt_sql[ST_COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_PAGE_COUNT] = "PRAGMA page_count",
    [ST_FREELIST_COUNT] = "PRAGMA freelist_count",
    [ST_USER_VERSION] = "PRAGMA user_version",
    /* The install id: made once, read on every open. */
    [ST_INSTALL_ADD] = "INSERT INTO install (id, install_id, created_ms)"
		       " VALUES (1, ?1, ?2) ON CONFLICT (id) DO NOTHING",
    [ST_INSTALL_GET] = "SELECT install_id FROM install WHERE id = 1",
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
     * never reused); then the last seq in payloads.  See rows_insert() in
     * store_sqlite_append.c.
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
		      " AND e.lease_ms <= ?2 AND e.erase_ms IS NULL",
    [ST_CLAIM_SET] = "UPDATE OR FAIL events SET lease_ms = ?2"
		     " WHERE seq IN (SELECT value FROM json_each(?1))"
		     " AND +state = 0 AND next_ms <= ?3 AND lease_ms <= ?3"
		     " AND erase_ms IS NULL",
    [ST_EXTEND] = "UPDATE OR FAIL events SET lease_ms = ?2"
		  " WHERE seq IN (SELECT value FROM json_each(?1))"
		  " AND +state = 0",
    /* The attempt that delivered the rows, in the same row write. */
    [ST_DELIVERED] =
	"UPDATE OR FAIL events SET state = 1, lease_ms = 0,"
	" updated_ms = ?2, last_attempt = coalesce(?3, last_attempt)"
	" WHERE seq IN (SELECT value FROM json_each(?1))"
	" AND +state = 0",
    /*
     * The sources of the rows DELIVERED or DEAD are about to change, for
     * the counters: read before in the same transaction, which costs a
     * third of what a RETURNING clause on the update does.
     */
    [ST_MARK_SOURCES] = "SELECT source FROM events"
			" WHERE seq IN (SELECT value FROM json_each(?1))"
			" AND +state = 0",
    [ST_RETRY] = "UPDATE events SET attempts = attempts + 1, error = ?3,"
		 " next_ms = ?2, lease_ms = 0"
		 " WHERE seq = ?1 AND state = 0 RETURNING source",
    [ST_RELEASE] = "UPDATE OR FAIL events SET lease_ms = 0"
		   " WHERE seq IN (SELECT value FROM json_each(?1))"
		   " AND +state = 0",
    [ST_DEAD] = "UPDATE OR FAIL events SET state = 2, reason = ?2, error = ?3,"
		" lease_ms = 0, updated_ms = ?4"
		" WHERE seq IN (SELECT value FROM json_each(?1))"
		" AND +state = 0",
    /* Only leased rows, off the partial index events_lease. */
    [ST_RECOVER] = "UPDATE events SET lease_ms = 0"
		   " WHERE lease_ms <> 0 AND +state = 0",
    /* A key, then the primary key, then the index of dead letters. */
    [ST_LIST_KEY] = LIST_SELECT " WHERE seq = ?1 AND" LIST_RANGE,
    [ST_LIST_ASC] = LIST_SELECT " WHERE" LIST_RANGE " ORDER BY seq LIMIT ?11",
    [ST_LIST_DESC] =
	LIST_SELECT " WHERE" LIST_RANGE " ORDER BY seq DESC LIMIT ?11",
    [ST_LIST_DEAD_ASC] =
	LIST_SELECT " INDEXED BY events_dead"
		    " WHERE state = 2 AND" LIST_RANGE " ORDER BY seq LIMIT ?11",
    [ST_LIST_DEAD_DESC] = LIST_SELECT " INDEXED BY events_dead"
				      " WHERE state = 2 AND" LIST_RANGE
				      " ORDER BY seq DESC LIMIT ?11",
    /*
     * A person (store_sqlite_people.c): where the index ends (the mark
     * folded, the oldest bucket, the newest row); the folded rows one
     * bucket per statement, ?15 the bucket, ?16 the kind, ?17 the key,
     * an entry whose row is gone a row looked at and no hit, its seq in
     * column 14; then the rows after folded, a range of the primary key.
     */
    [ST_PEOPLE_STATE] = "SELECT folded, (SELECT min(bucket) FROM people),"
			" coalesce((SELECT max(seq) FROM events), 0)"
			" FROM people_fold WHERE id = 1",
    [ST_PEOPLE_ASC] = PEOPLE_SELECT " ORDER BY x.seq LIMIT ?11",
    [ST_PEOPLE_DESC] = PEOPLE_SELECT " ORDER BY x.seq DESC LIMIT ?11",
    [ST_PEOPLE_TAIL_ASC] =
	LIST_SELECT " WHERE" LIST_RANGE PEOPLE_TAIL " ORDER BY seq LIMIT ?11",
    [ST_PEOPLE_TAIL_DESC] = LIST_SELECT " WHERE" LIST_RANGE PEOPLE_TAIL
					" ORDER BY seq DESC LIMIT ?11",
    /* The rows after ?1 up to ?2, in seq order, then the mark moves on. */
    [ST_PEOPLE_FOLD] =
	"INSERT OR FAIL INTO people (bucket, kind, hash, seq) " PEOPLE_OF(
	    "seq > ?1 AND seq <= ?2"),
    [ST_PEOPLE_FOLDED] = "UPDATE people_fold SET folded = ?1 WHERE id = 1",
    /*
     * The entries of rows a purge or an erase deletes, read first; one
     * SELECT, as a UNION would make the planner scan people.
     */
    [ST_PEOPLE_FORGET] =
	"DELETE FROM people WHERE (bucket, kind, hash, seq) IN"
	" (SELECT e.seq >> " SHIFT ", k.value,"
	" iif(k.value = 0, e.email_key, e.uid_key), e.seq"
	" FROM json_each(?1) AS j CROSS JOIN events AS e ON e.seq = j.value"
	" CROSS JOIN json_each('[0,1]') AS k)",
    /*
     * ?1 entries of the buckets below the oldest row's, oldest first:
     * all they hold are entries of rows gone.
     */
    [ST_PEOPLE_PRUNE] =
	"DELETE FROM people WHERE (bucket, kind, hash, seq) IN"
	" (SELECT bucket, kind, hash, seq FROM people"
	" WHERE bucket < (coalesce((SELECT min(seq) FROM events),"
	" (SELECT folded + 1 FROM people_fold)) >> " SHIFT ")"
	" ORDER BY bucket, kind, hash, seq LIMIT ?1)",
    /*
     * A replay changes a row only while it is as the replay read it (?5
     * its state, ?6 its reason), and says so in sqlite3_changes().
     */
    [ST_REPLAY_PENDING] =
	"UPDATE events SET state = 0, reason = NULL, error = NULL,"
	" attempts = 0, next_ms = ?2, age_base_ms = ?2, lease_ms = 0,"
	" last_attempt = NULL,"
	" updated_ms = ?2, event_id = coalesce(?3, event_id),"
	" type = coalesce(?4, type)"
	" WHERE seq = ?1 AND state = ?5 AND reason IS ?6 AND state <> 0",
    [ST_REQUARANTINE] = "UPDATE events SET error = ?2, updated_ms = ?3"
			" WHERE seq = ?1 AND state = 2"
			" AND reason = '" NB_REASON_QUARANTINED "'",
    /* A purge deletes the payloads first, in the same transaction. */
    [ST_PURGE_PAYLOADS] = "DELETE FROM payloads"
			  " WHERE seq IN (SELECT value FROM json_each(?1))",
    [ST_PURGE] = "DELETE FROM events"
		 " WHERE seq IN (SELECT value FROM json_each(?1))"
		 " RETURNING source, state, reason",
    /*
     * O(sources): the counters, then per source the oldest pending row
     * (the first entry of events_pending_age) and the live leases (a range
     * of events_lease, which holds only leased rows).
     */
    [ST_STATS] = "SELECT c.source, c.pending, c.delivered, c.dead,"
		 " c.quarantined, c.received_total, c.delivered_total,"
		 " c.dead_total,"
		 " coalesce((SELECT min(received_ms) FROM events"
		 " WHERE source = c.source AND state = 0), 0),"
		 " (SELECT count(*) FROM events WHERE source = c.source"
		 " AND lease_ms <> 0 AND lease_ms > ?1)"
		 " FROM counters AS c ORDER BY c.source",
    [ST_COUNT_ADD] =
	"INSERT INTO counters (source, pending, delivered,"
	" dead, quarantined, received_total, delivered_total,"
	" dead_total) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
	" ON CONFLICT (source) DO UPDATE SET"
	" pending = pending + excluded.pending,"
	" delivered = delivered + excluded.delivered,"
	" dead = dead + excluded.dead,"
	" quarantined = quarantined + excluded.quarantined,"
	" received_total = received_total + excluded.received_total,"
	" delivered_total = delivered_total"
	" + excluded.delivered_total,"
	" dead_total = dead_total + excluded.dead_total",
    [ST_ERROR_ADD] = "INSERT INTO recent_errors (source, error, count,"
		     " last_ms, state, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
		     " ON CONFLICT (source, error) DO UPDATE SET"
		     " count = count + excluded.count,"
		     " state = iif(excluded.last_ms >= last_ms,"
		     " excluded.state, state),"
		     " reason = iif(excluded.last_ms >= last_ms,"
		     " excluded.reason, reason),"
		     " last_ms = max(last_ms, excluded.last_ms)",
    /* A source keeps its newest ?2 errors. */
    [ST_ERROR_TRIM] = "DELETE FROM recent_errors WHERE source = ?1"
		      " AND error NOT IN (SELECT error FROM recent_errors"
		      " WHERE source = ?1 ORDER BY last_ms DESC LIMIT ?2)",
    /* The newest ?2 errors per source since ?1: the table is bounded. */
    [ST_ERRORS] = "SELECT source, error, reason, state, count, last_ms"
		  " FROM (SELECT *, row_number() OVER (PARTITION BY source"
		  " ORDER BY last_ms DESC) AS n FROM recent_errors"
		  " WHERE last_ms >= ?1) WHERE n <= ?2"
		  " ORDER BY source, last_ms DESC",
    /*
     * The prune takes ?2 of each at a time, oldest first, off the indexes
     * on their times.  The two delivered statements pick the same rows:
     * the index orders ties by seq.
     */
    [ST_PRUNE_REQUESTS] =
	"DELETE FROM seen_requests WHERE (source, webhook_id) IN"
	" (SELECT source, webhook_id FROM seen_requests WHERE seen_ms < ?1"
	" ORDER BY seen_ms LIMIT ?2)",
    [ST_PRUNE_EVENTS] =
	"DELETE FROM seen_events WHERE (source, event_id) IN"
	" (SELECT source, event_id FROM seen_events WHERE seen_ms < ?1"
	" ORDER BY seen_ms LIMIT ?2)",
    [ST_PRUNE_PAYLOADS] = "DELETE FROM payloads WHERE seq IN"
			  " (SELECT seq FROM events"
			  " WHERE state = 1 AND updated_ms < ?1"
			  " ORDER BY updated_ms LIMIT ?2)",
    [ST_PRUNE_DELIVERED] = "DELETE FROM events WHERE seq IN"
			   " (SELECT seq FROM events"
			   " WHERE state = 1 AND updated_ms < ?1"
			   " ORDER BY updated_ms LIMIT ?2)"
			   " RETURNING source",
    /*
     * Attempt history.  A failure links the rows it failed (those still
     * stored) after dropping, from a row with more than ?2 links, its
     * newest, so a row keeps its first ?2 failures and its latest.  Links
     * go with their rows; a failed attempt no link holds any more goes
     * then (?1: the attempts whose links went), a delivering one with the
     * retention prune.  A replay links the attempt that had delivered
     * the row before the row forgets it.
     */
    [ST_ATTEMPT_ADD] = "INSERT INTO attempts (at_ms, end_ms, status, error,"
		       " batch_size) VALUES (?1, ?2, ?3, ?4, ?5)",
    [ST_LINK_TRIM] = "DELETE FROM attempt_links WHERE (seq, attempt) IN"
		     " (SELECT seq, max(attempt) FROM attempt_links"
		     " WHERE seq IN (SELECT value FROM json_each(?1))"
		     " GROUP BY seq HAVING count(*) > ?2) RETURNING attempt",
    [ST_LINK_ADD] = "INSERT OR IGNORE INTO attempt_links (seq, attempt)"
		    " SELECT seq, ?2 FROM events"
		    " WHERE seq IN (SELECT value FROM json_each(?1))",
    [ST_LINK_LAST] = "INSERT OR IGNORE INTO attempt_links (seq, attempt)"
		     " SELECT seq, last_attempt FROM events"
		     " WHERE seq = ?1 AND last_attempt IS NOT NULL",
    [ST_LINKS_DROP] = "DELETE FROM attempt_links"
		      " WHERE seq IN (SELECT value FROM json_each(?1))"
		      " RETURNING attempt",
    [ST_ATTEMPTS_ORPHAN] = "DELETE FROM attempts"
			   " WHERE id IN (SELECT value FROM json_each(?1))"
			   " AND status NOT BETWEEN 200 AND 299"
			   " AND NOT EXISTS (SELECT 1 FROM attempt_links AS l"
			   " WHERE l.attempt = attempts.id)",
    /* The kept attempts of a row, oldest first. */
    [ST_ATTEMPTS] = "SELECT id, at_ms, end_ms, status, error, batch_size"
		    " FROM attempts WHERE id IN"
		    " (SELECT attempt FROM attempt_links WHERE seq = ?1"
		    " UNION SELECT last_attempt FROM events WHERE seq = ?1)"
		    " ORDER BY id",
    /* The links of the rows the prune takes next (see ST_PRUNE_PAYLOADS). */
    [ST_PRUNE_LINKS] = "DELETE FROM attempt_links WHERE seq IN"
		       " (SELECT seq FROM events"
		       " WHERE state = 1 AND updated_ms < ?1"
		       " ORDER BY updated_ms LIMIT ?2) RETURNING attempt",
    /*
     * Delivering attempts that ended before the retention cutoff: the
     * rows they delivered went before them (a row's delivery time is its
     * attempt's end), and a replayed row still holds its by a link.
     */
    [ST_PRUNE_ATTEMPTS] =
	"DELETE FROM attempts WHERE id IN (SELECT a.id FROM attempts AS a"
	" WHERE a.status BETWEEN 200 AND 299 AND a.end_ms < ?1"
	" AND NOT EXISTS (SELECT 1 FROM attempt_links AS l"
	" WHERE l.attempt = a.id) ORDER BY a.end_ms LIMIT ?2)",
    /*
     * Erasure (see nb_store_erase()).  Of a chunk of a person's rows ?1,
     * those pending with a live lease at ?2 are flagged (or were, by an
     * erase before), the others deleted like a purge; the epoch moves.
     */
    [ST_EPOCH] = "SELECT epoch FROM erase_epoch WHERE id = 1",
    [ST_EPOCH_BUMP] = "UPDATE erase_epoch SET epoch = epoch + 1 WHERE id = 1",
    [ST_ERASE_FLAG] = "UPDATE events SET erase_ms = ?2"
		      " WHERE seq IN (SELECT value FROM json_each(?1))"
		      " AND +state = 0 AND lease_ms > ?2 AND erase_ms IS NULL",
    [ST_ERASE_HELD] = "SELECT j.key FROM json_each(?1) AS j"
		      " CROSS JOIN events AS e ON e.seq = j.value"
		      " WHERE e.state = 0 AND e.lease_ms > ?2",
    /* j.key is the row's place in ?1, here and above. */
    [ST_SENDABLE] = "SELECT j.key FROM json_each(?1) AS j"
		    " CROSS JOIN events AS e ON e.seq = j.value"
		    " WHERE e.state = 0 AND e.erase_ms IS NULL",
    [ST_AUDIT_ADD] = "INSERT INTO audit (at_ms, actor, kind, subject,"
		     " dry_run, complete, events, pending, delivered, dead)"
		     " VALUES (?1, ?2, ?3, ?4, ?5, ?10, ?6, ?7, ?8, ?9)",
    [ST_AUDIT_LIST] = "SELECT id, at_ms, actor, kind, subject, dry_run,"
		      " events, pending, delivered, dead, complete FROM audit"
		      " WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
    [ST_SECURE_DELETE] = "PRAGMA secure_delete",
    [ST_PROBE] = "INSERT INTO meta (id, probe_ms) VALUES (1, ?1)"
		 " ON CONFLICT (id) DO UPDATE SET probe_ms = excluded.probe_ms",
    [ST_SYNC_FULL] = "PRAGMA synchronous = FULL",
    [ST_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
    /* The alerts (store_sqlite_alert.c); figures only move forward. */
    [ST_AL_ACTIVITY_PUT] =
	"INSERT INTO activity (source, fp, last_ms) VALUES (?1, ?2, ?3)"
	" ON CONFLICT (source, fp) DO UPDATE"
	" SET last_ms = max(last_ms, excluded.last_ms)",
    [ST_AL_ACTIVITY] = "SELECT source, fp, last_ms FROM activity",
    [ST_AL_REPORTS_CLEAR] = "DELETE FROM alert_reports WHERE owner = ?1",
    [ST_AL_REPORT_PUT] = "INSERT OR REPLACE INTO alert_reports (owner,"
			 " alert, source, status, text, seen_ms)"
			 " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_AL_REPORTS] = "SELECT alert, source, status, text, seen_ms"
		      " FROM alert_reports WHERE seen_ms >= ?1",
    /* Taken when free, run out (before ?2) or already the owner's. */
    [ST_AL_LEAD] = "INSERT INTO alert_lease (id, owner, until_ms)"
		   " VALUES (1, ?1, ?3) ON CONFLICT (id) DO UPDATE"
		   " SET owner = excluded.owner, until_ms = excluded.until_ms"
		   " WHERE alert_lease.owner = excluded.owner"
		   " OR alert_lease.until_ms < ?2",
    [ST_AL_RENEW] = "UPDATE alert_lease SET until_ms = ?3"
		    " WHERE id = 1 AND owner = ?1 AND until_ms >= ?2",
    [ST_AL_STATES] = "SELECT alert, source, firing, started_ms, resolved_ms,"
		     " mark, pending, notified_ms, changed_ms, text, summary,"
		     " details FROM alert_state",
    [ST_AL_STATE_PUT] =
	"INSERT OR REPLACE INTO alert_state (alert, source, firing,"
	" started_ms, resolved_ms, mark, pending, notified_ms, changed_ms,"
	" text, summary, details) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,"
	" ?10, ?11, ?12)",
    [ST_AL_NOTE_ADD] = "INSERT INTO alert_outbox (msg_id, alert, source,"
		       " resolved, body, created_ms, next_ms)"
		       " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    [ST_AL_PRUNE_OUTBOX] = "DELETE FROM alert_outbox"
			   " WHERE done <> 0 AND done_ms < ?1",
    [ST_AL_PRUNE_REPORTS] = "DELETE FROM alert_reports WHERE seen_ms < ?1",
    /*
     * The oldest due notifications whose condition has no older one still
     * open, off alert_outbox_open: "resolved" never overtakes "firing".
     */
    [ST_AL_CLAIM] =
	"UPDATE alert_outbox SET lease_owner = ?1, lease_ms = ?3"
	" WHERE id IN (SELECT id FROM alert_outbox AS o"
	" WHERE done = 0 AND next_ms <= ?2 AND lease_ms <= ?2"
	" AND NOT EXISTS (SELECT 1 FROM alert_outbox AS p WHERE p.done = 0"
	" AND p.alert = o.alert AND p.source = o.source AND p.id < o.id)"
	" ORDER BY id LIMIT ?4)"
	" RETURNING id, msg_id, alert, source, resolved, body, attempts,"
	" created_ms",
    [ST_AL_DONE] = "UPDATE alert_outbox SET done = ?3, done_ms = ?4,"
		   " lease_ms = 0, error = ?5"
		   " WHERE id = ?1 AND lease_owner = ?2 AND done = 0",
    [ST_AL_RETRY] = "UPDATE alert_outbox SET attempts = attempts + 1,"
		    " next_ms = ?3, lease_ms = 0, error = ?4"
		    " WHERE id = ?1 AND lease_owner = ?2 AND done = 0",
};

/*
 * The multi-row statements of an append (struct sq_chunk_sql).  All are
 * OR FAIL, without a statement journal, like the set-based updates: a
 * failed append rolls back its whole transaction.
 *
 * The seen_* upserts are those of ST_SEEN_REQUEST and ST_SEEN_EVENT with
 * the window given as its length: ?0 is received_ms - dedupe_after_ms,
 * the same for every row of the statement, so that the key is refreshed
 * exactly when it is older than min(dedupe_after_ms, received_ms) of its
 * own row.  Rows run in order, each seeing the keys of the rows before.
 */
const struct sq_chunk_sql sq_chunk_sql[CH_COUNT] = {
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
		   " age_base_ms, next_ms, lease_ms, updated_ms, email_key,"
		   " uid_key, msgid_rule) VALUES ",
	"(NULL,?1,?2,?3,?4,?5,?6,0,?7,?7,?7,0,?7,?8,?9,1)", 9, ""},
    [CH_PAYLOADS] = {"INSERT OR FAIL INTO payloads (seq, payload) VALUES ",
	"(?1,?2)", 2, ""},
    /* The payloads table's own next rowid, see rows_insert(). */
    [CH_PAYLOADS_NEXT] = {"INSERT OR FAIL INTO payloads (seq, payload)"
			  " VALUES ",
	"(NULL,?1)", 1, ""},
};

const enum sq_stmt sq_reads[] = {ST_STATS, ST_ERRORS, ST_LIST_KEY, ST_LIST_ASC,
    ST_LIST_DESC, ST_LIST_DEAD_ASC, ST_LIST_DEAD_DESC, ST_PEOPLE_STATE,
    ST_PEOPLE_ASC, ST_PEOPLE_DESC, ST_PEOPLE_TAIL_ASC, ST_PEOPLE_TAIL_DESC,
    ST_ATTEMPTS, ST_EPOCH, ST_SENDABLE, ST_AUDIT_LIST};
const size_t sq_nreads = sizeof(sq_reads) / sizeof(sq_reads[0]);
