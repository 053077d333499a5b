/* SPDX-License-Identifier: ISC */
/*
 * store_pg_sql: every SQL text of the PostgreSQL backend in one place.
 *
 * The schema and its migrations (the version is the row in
 * schema_version), and the statements each connection prepares once, by
 * enum pgs_stmt.  Version numbers mean what they mean for SQLite: 2 takes
 * the payloads out of events, 3 adds the counters.  Groups of rows travel
 * as binary array parameters (unnest), so a batch is one statement.
 * Several instances share the database, so every statement lets it
 * arbitrate (unique keys, SKIP LOCKED, lease owners); the files that run
 * them say why where it matters to their code.
 */
#include "store_pg.h"
#include "store_schema.h"

/* An id the database gives in order, for store_schema.h. */
#define PG_ID "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"

#define STR_(x)	    #x
#define STR(x)	    STR_(x)
#define ERRORS_KEPT STR(NB_STORE_ERRORS_KEPT)

/* The rules' numbers are written into the SQL below as they are. */
_Static_assert(NB_SEGMENT_RULE_LEGACY == 0 && NB_SEGMENT_RULE_CURRENT == 1,
    "msgid_rule values in the SQL");

/* The database's clock in ms: instances judge each other by one clock. */
#define NOW_MS "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

/* Migrations: pgs_migrations[i] takes the schema from version i to i + 1. */
const char *const pgs_migrations[] = {
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
     * 2: the payloads move out of events into a table of their own, as in
     * SQLite's version 2.  PostgreSQL writes a whole new row version on
     * every UPDATE, so with the payload inline every lease, extension and
     * delivered mark copied it (and logged it to the WAL).  DROP COLUMN
     * only marks the column dropped: rows written before keep its bytes
     * until they are next written (every pending row is, by its claim) or
     * deleted; VACUUM FULL events gives the space back at once.
     * events_state and events_source_id served no statement.
     */
    "CREATE TABLE payloads ("
    " seq BIGINT PRIMARY KEY,"
    " payload BYTEA NOT NULL);"
    "INSERT INTO payloads (seq, payload) SELECT seq, payload FROM events;"
    "ALTER TABLE events DROP COLUMN payload;"
    "DROP INDEX events_state;"
    "DROP INDEX events_source_id;",
    /*
     * 3: counters instead of scans, as SQLite's version 3, with one
     * difference: several instances write at once, so a counters row is
     * per source and per writer (slot: the backend pid of the connection
     * that writes it), and a transaction only ever updates its own
     * connection's rows.  Readers sum the slots; the prune folds the rows
     * of connections that are gone into slot 0, where this migration puts
     * what it counts from the rows as they are.  recent_errors is slotted
     * the same way.  The indexes are SQLite's: the gauges, the lists of
     * dead letters and the retention prune.
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
    " GROUP BY source, error) AS e WHERE n <= " ERRORS_KEPT ";"
    "CREATE INDEX events_lease ON events (source, lease_ms)"
    " WHERE lease_ms <> 0;"
    "CREATE INDEX events_pending_age ON events (source, received_ms)"
    " WHERE state = 0;"
    "CREATE INDEX events_dead ON events (seq) WHERE state = 2;"
    "CREATE INDEX events_delivered ON events (updated_ms) WHERE state = 1;",
    /*
     * 4: the install identity, as SQLite's version 4 (install, and the
     * messageId rule of each row: the rows stored before keep the legacy
     * rule; an instance of an older build still writing during a rolling
     * upgrade leaves the default, the rule it sends by).  ADD COLUMN with
     * a constant default rewrites no row.  instances is the fleet's table
     * of live bridge processes, for the shared rate budget: one row per
     * process, refreshed by its heartbeat, at the database's clock.
     */
    "ALTER TABLE events ADD COLUMN msgid_rule SMALLINT NOT NULL DEFAULT 0;"
    "CREATE TABLE install ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " install_id TEXT NOT NULL,"
    " created_ms BIGINT NOT NULL);"
    "CREATE TABLE instances ("
    " id TEXT PRIMARY KEY,"
    " host TEXT NOT NULL,"
    " pid BIGINT NOT NULL,"
    " started_ms BIGINT NOT NULL,"
    " beat_ms BIGINT NOT NULL);",
    /*
     * 5: the alerts, as SQLite's version 5 (store_alert.h).  Several
     * instances share them: the lease row names the one that evaluates,
     * reports are per instance (owner), and the outbox is claimed with
     * SKIP LOCKED and an owned lease, as events are.
     */
    NB_SCHEMA_ALERTS("BIGINT", "SMALLINT", PG_ID, "")
    /* The dead letters stored before alerts existed are not new. */
    "INSERT INTO alert_state SELECT 'dead_letters', source, 0, 0, 0,"
    " sum(dead_total), 0, 0, 0, '', '', '{}' FROM counters"
    " GROUP BY source;",
    /*
     * 6: find and forget, as SQLite's version 6, with one difference: the
     * person keys live in a table of their own (people, written once with
     * the row and deleted with it; the rows already stored get theirs
     * from pgs_backfill_keys()).  PostgreSQL writes a new row version on
     * every update, and an update that is not HOT (a claim's, a delivered
     * mark's: they change indexed columns) adds an entry to every index of
     * the table; two person indexes on events cost each event four more
     * random index inserts on its way out.  ADD COLUMN without a default
     * rewrites nothing.  The person indexes carry seq for the keyset
     * pages.
     */
    "ALTER TABLE events ADD COLUMN last_attempt BIGINT,"
    " ADD COLUMN erase_ms BIGINT;"
    "CREATE TABLE people ("
    " seq BIGINT PRIMARY KEY,"
    " email_key INTEGER,"
    " uid_key INTEGER);"
    "CREATE INDEX people_email ON people (email_key, seq)"
    " WHERE email_key IS NOT NULL;"
    "CREATE INDEX people_uid ON people (uid_key, seq)"
    " WHERE uid_key IS NOT NULL;" NB_SCHEMA_HISTORY(
	"BIGINT", "BOOLEAN", PG_ID, ""),
};
const int pgs_schema_latest =
    (int)(sizeof(pgs_migrations) / sizeof(pgs_migrations[0]));

/* The backfill of version 4: payloads after $1, then keys by arrays. */
const char pgs_backfill_read[] =
    "SELECT seq, payload FROM payloads WHERE seq > $1::bigint"
    " ORDER BY seq LIMIT $2::bigint";
const char pgs_backfill_write[] =
    "INSERT INTO people (seq, email_key, uid_key) SELECT seq, ek, uk"
    " FROM unnest($1::bigint[], $2::integer[], $3::integer[])"
    " AS u (seq, ek, uk) WHERE ek IS NOT NULL OR uk IS NOT NULL";

/*
 * A dedupe key counts as new when absent or older than the window, and
 * only new keys come back (their positions in the arrays).  $1 sources,
 * $2 keys, $3 received_ms of each, $4 the window as a length (the same for
 * every key of the statement), as in SQLite's chunk statements.  The keys
 * of one statement are distinct and go in (source, key) order, the same in
 * every instance, so two instances storing overlapping groups take the
 * row locks in one order.
 */
#define SEEN_UPSERT(table, column)                                             \
	"WITH k AS (SELECT * FROM unnest($1::text[], $2::text[],"              \
	" $3::bigint[]) WITH ORDINALITY AS k (source, key, seen, ord)),"       \
	" u AS (INSERT INTO " table " AS s (source, " column ", seen_ms)"      \
	" SELECT source, key, seen FROM k ORDER BY source, key"                \
	" ON CONFLICT (source, " column ") DO UPDATE"                          \
	" SET seen_ms = EXCLUDED.seen_ms WHERE s.seen_ms <"                    \
	" LEAST(EXCLUDED.seen_ms - $4::bigint, EXCLUDED.seen_ms)"              \
	" RETURNING s.source, s." column ")"                                   \
	" SELECT k.ord FROM k JOIN u ON u.source = k.source"                   \
	" AND u." column " = k.key"

/*
 * The rows an append keeps, with their payloads, in one statement: the
 * seqs come from the identity's sequence in array order (one nextval per
 * row as unnest yields it), so a group's rows are numbered as SQLite
 * numbers them.
 */
#define INSERT_ROWS                                                            \
	"WITH r AS (SELECT nextval('events_seq_seq') AS seq, r.*"              \
	" FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[],"        \
	" $5::smallint[], $6::text[], $7::bigint[], $8::integer[],"            \
	" $9::integer[]) WITH ORDINALITY"                                      \
	" AS r (source, event_id, type, payload, state, error, received_ms,"   \
	" email_key, uid_key, ord)),"                                          \
	" e AS (INSERT INTO events (seq, source, event_id, type, state,"       \
	" reason, error, attempts, received_ms, age_base_ms, next_ms,"         \
	" lease_ms, updated_ms, msgid_rule) OVERRIDING SYSTEM VALUE"           \
	" SELECT seq, source, event_id, type, state,"                          \
	" CASE WHEN state = 2 THEN '" NB_REASON_QUARANTINED "' END, error, 0," \
	" received_ms, received_ms, received_ms, 0, received_ms, 1"            \
	" FROM r ORDER BY ord),"                                               \
	" p AS (INSERT INTO payloads (seq, payload)"                           \
	" SELECT seq, payload FROM r ORDER BY ord),"                           \
	" k AS (INSERT INTO people (seq, email_key, uid_key)"                  \
	" SELECT seq, email_key, uid_key FROM r"                               \
	" WHERE email_key IS NOT NULL OR uid_key IS NOT NULL ORDER BY ord)"    \
	" SELECT count(*) FROM r"

/* The columns of a row read back, the payload fifth (see row_read()). */
#define EVENT_COLS(e, payload)                                                 \
	e "seq, " e "source, " e "event_id, " e "type, " payload ", " e        \
	  "state, " e "reason, " e "error, " e "attempts, " e                  \
	  "received_ms, " e "age_base_ms, " e "updated_ms, " e "msgid_rule"

/*
 * SKIP LOCKED: a row another claimer is taking right now is left to it
 * rather than waited for; one that it took and committed fails the
 * re-checked lease condition.  The update rewrites the short events rows
 * only; the payloads come from their own table.  RETURNING has no order,
 * hence the outer sort.
 */
#define CLAIM                                                                  \
	"WITH c AS (UPDATE events SET lease_ms = $3::bigint,"                  \
	" lease_owner = $5::text WHERE seq IN (SELECT seq FROM events"         \
	" WHERE state = 0 AND source = ANY ($1::text[])"                       \
	" AND next_ms <= $2::bigint AND lease_ms <= $2::bigint"                \
	" AND erase_ms IS NULL"                                                \
	" ORDER BY next_ms, seq LIMIT $4::bigint FOR UPDATE SKIP LOCKED)"      \
	" RETURNING *)"                                                        \
	" SELECT " EVENT_COLS(                                                 \
	    "c.", "p.payload") " FROM c"                                       \
			       " LEFT JOIN payloads AS p ON p.seq = c.seq "    \
			       "ORDER BY c.next_ms, c.seq"

/*
 * Per session: READ COMMITTED whatever the server default, and a durable
 * COMMIT: synchronous_commit "off" becomes "on"; local, on, remote_write
 * and remote_apply all wait for at least the local WAL flush and stay.
 * And a plan per execution of the prepared statements (parsing is still
 * done once): a generic plan cannot see how many seqs an array holds nor
 * which rows a bound selects, and on a table not yet analyzed it picked
 * events_due, whose second column is seq, for "seq = ANY ($1)" and read
 * the whole index for each element (100 ms a delivered mark of 500 rows,
 * against 2 ms with the primary key).  And no JIT: the claim turns sorts
 * off (pgs_claim_plan), which adds a disable cost of 10^10 to the sort of
 * the rows it reads back, far past jit_above_cost, so on a server built
 * with LLVM (Debian's is) every claim of one row was compiled first: half
 * a second of the server's CPU on the deliverer's clock, against 0.2 ms.
 * No statement here is long enough to gain from JIT.
 */
const char pgs_session[] =
    "SET default_transaction_isolation TO 'read committed';"
    "SET jit TO off;"
    "SET plan_cache_mode TO force_custom_plan;"
    "SELECT set_config('synchronous_commit', 'on', false)"
    " WHERE current_setting('synchronous_commit') = 'off'";

/*
 * The claim's plan must not depend on statistics.  Read off events_due,
 * the claim costs its LIMIT's rows; but on a table the planner believes
 * small (never analyzed, or analyzed before a backlog grew: an outage is
 * exactly when both happen) it would rather take events_pending_age for
 * "source = ANY" and sort every pending row of the source to keep the
 * first 500, on each claim: a drain of N rows then costs N^2 / 500 (a
 * 100,000-event backlog drained at 14,000 events/s instead of 45,000).
 * events_due is the only path that gives the claim's order without a
 * sort, so the claim's transaction turns sorts off (set_config's is_local:
 * that transaction only, and unlike SET LOCAL no warning in the server's
 * log when the claim runs outside an explicit block); the sort of the 500
 * rows read back is the only one left, and any plan has it.
 */
const char pgs_claim_plan[] = "SELECT set_config('enable_sort', 'off', true)";

/*
 * The changes that move counters return what they changed, per source (and
 * state and reason for deletions), for the transaction's tally.  Lease
 * changes only touch rows this connection leased (or nobody did): an
 * instance whose lease ran out must not drop the lease of the one that took
 * the row over.
 */
#define PER_SOURCE " SELECT source, count(*) FROM c GROUP BY source"
#define MINE	   "(lease_owner IS NULL OR lease_owner = $3::text)"

/*
 * The operator lists, as SQLite's (see store_sqlite_sql.c): every row a
 * page looks at, at most $11 (NULL: no bound), in seq order between $9 and
 * $10 (a key narrows them to its seq), with hit last; $1 key, $2 source,
 * $3 type, $4 reason, $5 id (NULL: any), $6 since, $7 until (0:
 * unbounded), $8 state mask, $12 whether to read the payloads of the hits.
 * A person's lists walk its key in people (LIST_PERSON) and take $13 and
 * $14 too, the keys (NULL: any).
 */
#define LIST_HIT                                                               \
	"coalesce(($1::bigint IS NULL OR events.seq = $1::bigint)"             \
	" AND ($2::text IS NULL OR source = $2::text)"                         \
	" AND ($3::text IS NULL OR type = $3::text)"                           \
	" AND ($4::text IS NULL OR reason = $4::text)"                         \
	" AND ($5::text IS NULL OR event_id = $5::text)"                       \
	" AND ($6::bigint = 0 OR received_ms >= $6::bigint)"                   \
	" AND ($7::bigint = 0 OR received_ms <= $7::bigint)"                   \
	" AND (($8::integer >> state) & 1) = 1, false)"
#define LIST(where, order)                                                     \
	"SELECT " EVENT_COLS("",                                               \
	    "CASE WHEN $12::boolean AND " LIST_HIT                             \
	    " THEN (SELECT payload FROM payloads AS p"                         \
	    " WHERE p.seq = events.seq) END") ", " LIST_HIT                    \
					      " FROM events WHERE " where      \
					      "seq > $9::bigint AND seq < "    \
					      "$10::bigint"                    \
					      " ORDER BY seq " order           \
					      " LIMIT $11::bigint"
#define LIST_HIT_PERSON                                                        \
	"(" LIST_HIT                                                           \
	" AND ($13::integer IS NULL OR pp.email_key = $13::integer)"           \
	" AND ($14::integer IS NULL OR pp.uid_key = $14::integer))"
#define LIST_PERSON(key, order)                                                \
	"SELECT " EVENT_COLS("events.",                                        \
	    "CASE WHEN $12::boolean AND " LIST_HIT_PERSON                      \
	    " THEN (SELECT payload FROM payloads AS p"                         \
	    " WHERE p.seq = events.seq) END") ", " LIST_HIT_PERSON             \
					      " FROM people AS pp JOIN "       \
					      "events ON events.seq = pp.seq"  \
					      " WHERE pp." key                 \
					      " AND pp.seq > $9::bigint AND "  \
					      "pp.seq < $10::bigint"           \
					      " ORDER BY pp.seq " order        \
					      " LIMIT $11::bigint"

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

/* The latest occurrence's state and reason win. */
#define ERROR_MERGE                                                            \
	" ON CONFLICT (source, error, slot)"                                   \
	" DO UPDATE SET count = recent_errors.count + EXCLUDED.count,"         \
	" state = CASE WHEN EXCLUDED.last_ms >= recent_errors.last_ms"         \
	" THEN EXCLUDED.state ELSE recent_errors.state END,"                   \
	" reason = CASE WHEN EXCLUDED.last_ms >= recent_errors.last_ms"        \
	" THEN EXCLUDED.reason ELSE recent_errors.reason END,"                 \
	" last_ms = GREATEST(recent_errors.last_ms, EXCLUDED.last_ms)"

/*
 * The failed attempts whose links l deleted and no other link holds: one
 * statement sees the links as they were, so the others are those of rows
 * not in gone.
 */
#define ORPHANS(gone)                                                          \
	" o AS (DELETE FROM attempts AS a WHERE a.id IN"                       \
	" (SELECT attempt FROM l) AND a.status NOT BETWEEN 200 AND 299"        \
	" AND NOT EXISTS (SELECT 1 FROM attempt_links AS x"                    \
	" WHERE x.attempt = a.id AND x.seq NOT IN " gone "))"

/* The slots whose connection is gone. */
#define GONE                                                                   \
	" slot <> 0 AND slot NOT IN (SELECT pid FROM pg_stat_activity"         \
	" WHERE pid IS NOT NULL)"

const char *const pgs_sql[PS_COUNT] = {
    [PS_SEEN_REQUESTS] = SEEN_UPSERT("seen_requests", "webhook_id"),
    [PS_SEEN_EVENTS] = SEEN_UPSERT("seen_events", "event_id"),
    [PS_INSERT] = INSERT_ROWS,
    [PS_CLAIM] = CLAIM,
    [PS_EXTEND] = "UPDATE events SET lease_ms = $2::bigint"
		  " WHERE seq = ANY ($1::bigint[]) AND state = 0 AND " MINE,
    [PS_RELEASE] = "UPDATE events SET lease_ms = 0, lease_owner = NULL"
		   " WHERE seq = ANY ($1::bigint[]) AND state = 0"
		   " AND (lease_owner IS NULL OR lease_owner = $2::text)",
    /*
     * The attempt that delivered the rows ($3..$7; $3 NULL: none, $8 one
     * recorded before) goes in with the mark, in one statement.
     */
    [PS_DELIVERED] =
	"WITH a AS (INSERT INTO attempts (at_ms, end_ms, status, error,"
	" batch_size) SELECT $3::bigint, $4::bigint, $5::integer, $6::text,"
	" $7::integer WHERE $3::bigint IS NOT NULL AND $8::bigint IS NULL"
	" RETURNING id),"
	" c AS (UPDATE events SET state = 1, lease_ms = 0,"
	" lease_owner = NULL, updated_ms = $2::bigint, last_attempt ="
	" coalesce($8::bigint, (SELECT id FROM a), last_attempt)"
	" WHERE seq = ANY ($1::bigint[]) AND state = 0"
	" RETURNING source)" PER_SOURCE,
    [PS_DEAD] = "WITH c AS (UPDATE events SET state = 2, reason = $2::text,"
		" error = $3::text, lease_ms = 0, lease_owner = NULL,"
		" updated_ms = $4::bigint"
		" WHERE seq = ANY ($1::bigint[]) AND state = 0"
		" RETURNING source)" PER_SOURCE,
    [PS_RETRY] = "WITH c AS (UPDATE events AS e SET attempts = e.attempts + 1,"
		 " error = $4::text, next_ms = r.next_ms, lease_ms = 0,"
		 " lease_owner = NULL"
		 " FROM unnest($1::bigint[], $2::bigint[]) AS r (seq, next_ms)"
		 " WHERE e.seq = r.seq AND e.state = 0"
		 " AND (e.lease_owner IS NULL OR e.lease_owner = $3::text)"
		 " RETURNING e.source)" PER_SOURCE,
    /*
     * A replay changes a row only while it is as the replay read it ($5
     * its state, $6 its reason): another instance may have changed it.
     */
    [PS_REPLAY_PENDING] =
	"UPDATE events SET state = 0, reason = NULL, error = NULL,"
	" attempts = 0, next_ms = $2::bigint, age_base_ms = $2::bigint,"
	" lease_ms = 0, lease_owner = NULL, updated_ms = $2::bigint,"
	" last_attempt = NULL, event_id = coalesce($3::text, event_id),"
	" type = coalesce($4::text, type) WHERE seq = $1::bigint"
	" AND state = $5::smallint AND reason IS NOT DISTINCT FROM $6::text"
	" AND state <> 0",
    [PS_REQUARANTINE] =
	"UPDATE events SET error = $2::text,"
	" updated_ms = $3::bigint WHERE seq = $1::bigint"
	" AND state = 2 AND reason = '" NB_REASON_QUARANTINED "'",
    [PS_PURGE] =
	"WITH c AS (DELETE FROM events WHERE seq = ANY ($1::bigint[])"
	" RETURNING seq, source, state, reason),"
	" p AS (DELETE FROM payloads WHERE seq IN (SELECT seq FROM c)),"
	" k AS (DELETE FROM people WHERE seq IN (SELECT seq FROM c))"
	" SELECT source, count(*), state, reason FROM c"
	" GROUP BY source, state, reason",
    /* The primary key, or the index of dead letters; either way. */
    [PS_LIST_ASC] = LIST("", "ASC"),
    [PS_LIST_DESC] = LIST("", "DESC"),
    [PS_LIST_DEAD_ASC] = LIST("state = 2 AND ", "ASC"),
    [PS_LIST_DEAD_DESC] = LIST("state = 2 AND ", "DESC"),
    /* A person: the index of its key. */
    [PS_LIST_EMAIL_ASC] = LIST_PERSON("email_key = $13::integer", "ASC"),
    [PS_LIST_EMAIL_DESC] = LIST_PERSON("email_key = $13::integer", "DESC"),
    [PS_LIST_UID_ASC] = LIST_PERSON("uid_key = $14::integer", "ASC"),
    [PS_LIST_UID_DESC] = LIST_PERSON("uid_key = $14::integer", "DESC"),
    /*
     * Attempt history, as SQLite's (see store_sqlite_sql.c): a failure
     * links the rows still stored ($1) to its attempt ($2) after dropping
     * the newest link of a row that has more than $3; links go with their
     * rows ($1), and the failed attempts they held with them.
     */
    [PS_ATTEMPT_ADD] = "INSERT INTO attempts (at_ms, end_ms, status, error,"
		       " batch_size) VALUES ($1::bigint, $2::bigint,"
		       " $3::integer, $4::text, $5::integer) RETURNING id",
    [PS_LINK_ADD] =
	"WITH s AS (SELECT seq FROM events WHERE seq = ANY ($1::bigint[])),"
	" l AS (DELETE FROM attempt_links AS t USING (SELECT seq,"
	" max(attempt) AS m FROM attempt_links WHERE seq IN (SELECT seq FROM s)"
	" GROUP BY seq HAVING count(*) > $3::bigint) AS x"
	" WHERE t.seq = x.seq AND t.attempt = x.m RETURNING t.seq, t.attempt),"
	" k AS (INSERT INTO attempt_links (seq, attempt)"
	" SELECT seq, $2::bigint FROM s ON CONFLICT DO NOTHING)"
	" DELETE FROM attempts AS a WHERE a.id IN (SELECT attempt FROM l)"
	" AND a.status NOT BETWEEN 200 AND 299"
	" AND NOT EXISTS (SELECT 1 FROM attempt_links AS x"
	" WHERE x.attempt = a.id"
	" AND (x.seq, x.attempt) NOT IN (SELECT seq, attempt FROM l))",
    [PS_LINK_LAST] = "INSERT INTO attempt_links (seq, attempt)"
		     " SELECT seq, last_attempt FROM events"
		     " WHERE seq = $1::bigint AND last_attempt IS NOT NULL"
		     " ON CONFLICT DO NOTHING",
    [PS_LINKS_DROP] =
	"WITH l AS (DELETE FROM attempt_links"
	" WHERE seq = ANY ($1::bigint[]) RETURNING attempt)," ORPHANS(
	    "(SELECT unnest($1::bigint[]))") " SELECT count(*) FROM l",
    [PS_ATTEMPTS] = "SELECT id, at_ms, end_ms, status, error, batch_size"
		    " FROM attempts WHERE id IN"
		    " (SELECT attempt FROM attempt_links WHERE seq = $1::bigint"
		    " UNION SELECT last_attempt FROM events"
		    " WHERE seq = $1::bigint) ORDER BY id",
    [PS_PRUNE_ATTEMPTS] =
	"DELETE FROM attempts WHERE id IN (SELECT a.id FROM attempts AS a"
	" WHERE a.status BETWEEN 200 AND 299 AND a.end_ms < $1::bigint"
	" AND NOT EXISTS (SELECT 1 FROM attempt_links AS l"
	" WHERE l.attempt = a.id) ORDER BY a.end_ms LIMIT $2::bigint)",
    /*
     * Erasure: the rows of a chunk are locked first (a claim skips them
     * then), the held ones flagged; each row comes back with whether it is
     * held and whether this statement flagged it.
     */
    [PS_EPOCH] = "SELECT epoch FROM erase_epoch WHERE id = 1",
    [PS_EPOCH_BUMP] = "UPDATE erase_epoch SET epoch = epoch + 1 WHERE id = 1",
    [PS_ERASE_FLAG] =
	"WITH j AS (SELECT seq, state = 0 AND lease_ms > $2::bigint AS held,"
	" erase_ms IS NULL AS fresh FROM events WHERE seq = ANY ($1::bigint[])"
	" FOR UPDATE),"
	" f AS (UPDATE events AS e SET erase_ms = $2::bigint FROM j"
	" WHERE e.seq = j.seq AND j.held AND j.fresh RETURNING e.seq)"
	" SELECT seq, held::integer, (held AND fresh)::integer FROM j",
    /*
     * seq = ANY keeps the planner on the primary key; "state + 0" keeps it
     * off events_due (state = 0), which it would read in full, as SQLite's
     * "+state" does.
     */
    [PS_SENDABLE] = "SELECT u.i FROM unnest($1::bigint[]) WITH ORDINALITY"
		    " AS u (seq, i) JOIN events AS e ON e.seq = u.seq"
		    " WHERE e.seq = ANY ($1::bigint[]) AND e.state + 0 = 0"
		    " AND e.erase_ms IS NULL",
    [PS_AUDIT_ADD] = "INSERT INTO audit (at_ms, actor, kind, subject,"
		     " dry_run, events, pending, delivered, dead, complete)"
		     " VALUES ($1::bigint, $2::text, $3::text, $4::text,"
		     " $5::boolean, $6::bigint, $7::bigint, $8::bigint,"
		     " $9::bigint, $10::boolean)"
		     " RETURNING id",
    [PS_AUDIT_LIST] = "SELECT id, at_ms, actor, kind, subject,"
		      " dry_run::integer, events, pending, delivered, dead,"
		      " complete::integer"
		      " FROM audit WHERE id < $1::bigint ORDER BY id DESC"
		      " LIMIT $2::bigint",
    /* The prune takes $2 of each at a time, oldest first. */
    [PS_PRUNE_REQUESTS] =
	"DELETE FROM seen_requests WHERE (source, webhook_id) IN"
	" (SELECT source, webhook_id FROM seen_requests"
	" WHERE seen_ms < $1::bigint ORDER BY seen_ms LIMIT $2::bigint)",
    [PS_PRUNE_EVENTS] =
	"DELETE FROM seen_events WHERE (source, event_id) IN"
	" (SELECT source, event_id FROM seen_events"
	" WHERE seen_ms < $1::bigint ORDER BY seen_ms LIMIT $2::bigint)",
    [PS_PRUNE_DELIVERED] =
	"WITH c AS (DELETE FROM events WHERE seq IN (SELECT seq FROM events"
	" WHERE state = 1 AND updated_ms < $1::bigint"
	" ORDER BY updated_ms LIMIT $2::bigint) RETURNING seq, source),"
	" p AS (DELETE FROM payloads WHERE seq IN (SELECT seq FROM c)),"
	" k AS (DELETE FROM people WHERE seq IN (SELECT seq FROM c)),"
	" l AS (DELETE FROM attempt_links WHERE seq IN (SELECT seq FROM c)"
	" RETURNING attempt)," ORPHANS("(SELECT seq FROM c)") PER_SOURCE,
    [PS_PROBE] = "INSERT INTO meta (id, probe_ms) VALUES (1, $1::bigint)"
		 " ON CONFLICT (id) DO UPDATE SET probe_ms = EXCLUDED.probe_ms",
    /*
     * O(sources): the summed slots, then per source the oldest pending row
     * (the first entry of events_pending_age) and the live leases (a range
     * of events_lease, which holds only leased rows).  Sorted bytewise
     * like SQLite, whatever the database's collation.
     */
    [PS_STATS] =
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
	" ORDER BY c.source COLLATE \"C\"",
    /* The newest $2 errors per source since $1, slots merged. */
    [PS_ERRORS] =
	"SELECT source, error, reason, state, count, last_ms FROM"
	" (SELECT source, error, sum(count) AS count, max(last_ms) AS last_ms,"
	" (array_agg(state ORDER BY last_ms DESC))[1] AS state,"
	" (array_agg(reason ORDER BY last_ms DESC))[1] AS reason,"
	" row_number() OVER (PARTITION BY source"
	" ORDER BY max(last_ms) DESC) AS n"
	" FROM recent_errors GROUP BY source, error"
	" HAVING max(last_ms) >= $1::bigint) AS e"
	" WHERE n <= $2::bigint ORDER BY source COLLATE \"C\", last_ms DESC",
    [PS_COUNT_ADD] =
	"INSERT INTO counters (source, slot, pending, delivered, dead,"
	" quarantined, received_total, delivered_total, dead_total)"
	" VALUES ($1::text, $2::integer, $3::bigint, $4::bigint, $5::bigint,"
	" $6::bigint, $7::bigint, $8::bigint, $9::bigint)" COUNT_MERGE,
    [PS_ERROR_ADD] =
	"INSERT INTO recent_errors (source, error, slot, count, last_ms, state,"
	" reason) VALUES ($1::text, $2::text, $3::integer, $4::bigint,"
	" $5::bigint, $6::smallint, $7::text)" ERROR_MERGE,
    /* A slot keeps the newest $3 errors of a source. */
    [PS_ERROR_TRIM] =
	"DELETE FROM recent_errors WHERE source = $1::text"
	" AND slot = $2::integer AND error NOT IN (SELECT error"
	" FROM recent_errors WHERE source = $1::text AND slot = $2::integer"
	" ORDER BY last_ms DESC LIMIT $3::bigint)",
    [PS_FOLD_COUNTS] =
	"WITH gone AS (DELETE FROM counters WHERE" GONE " RETURNING *)"
	" INSERT INTO counters (source, slot, pending, delivered, dead,"
	" quarantined, received_total, delivered_total, dead_total)"
	" SELECT source, 0, sum(pending), sum(delivered), sum(dead),"
	" sum(quarantined), sum(received_total), sum(delivered_total),"
	" sum(dead_total) FROM gone GROUP BY source" COUNT_MERGE,
    [PS_FOLD_ERRORS] =
	"WITH gone AS (DELETE FROM recent_errors WHERE" GONE " RETURNING *)"
	" INSERT INTO recent_errors (source, error, slot, count, last_ms,"
	" state, reason) SELECT source, error, 0, sum(count), max(last_ms),"
	" (array_agg(state ORDER BY last_ms DESC))[1],"
	" (array_agg(reason ORDER BY last_ms DESC))[1]"
	" FROM gone GROUP BY source, error" ERROR_MERGE,
    /* Slot 0 keeps the newest few errors of each source. */
    [PS_FOLD_TRIM] =
	"DELETE FROM recent_errors AS r USING (SELECT source, error,"
	" row_number() OVER (PARTITION BY source ORDER BY last_ms DESC) AS n"
	" FROM recent_errors WHERE slot = 0) AS k"
	" WHERE r.slot = 0 AND r.source = k.source AND r.error = k.error"
	" AND k.n > $1::bigint",
    [PS_SCHEMA_VERSION] = "SELECT version FROM schema_version WHERE id = 1",
    /*
     * The heartbeat, three statements in one pipeline: PS_BEAT registers
     * or refreshes an instance ($1 id, $2 host, $3 pid), PS_FORGET
     * deletes those silent for more than $1 ms, PS_LIVE lists those whose
     * heartbeat is at most $1 ms old ($2 of them at most, each with their
     * number).  NOW_MS is evaluated per statement, on the server.
     */
    /* One reading of the clock: a first beat starts when it beats. */
    [PS_BEAT] =
	"INSERT INTO instances AS i (id, host, pid, started_ms,"
	" beat_ms) SELECT $1::text, $2::text, $3::bigint, t.ms, t.ms"
	" FROM (SELECT " NOW_MS " AS ms) AS t ON CONFLICT (id) DO UPDATE"
	" SET beat_ms = EXCLUDED.beat_ms"
	" RETURNING i.started_ms, i.beat_ms",
    [PS_FORGET] =
	"DELETE FROM instances WHERE beat_ms < " NOW_MS " - $1::bigint",
    [PS_LIVE] = "SELECT id, host, pid, started_ms, beat_ms, count(*) OVER ()"
		" FROM instances WHERE beat_ms >= " NOW_MS " - $1::bigint"
		" ORDER BY started_ms, id LIMIT $2::bigint",
    [PS_LEAVE] = "DELETE FROM instances WHERE id = $1::text",
    [PS_INSTALL_ADD] = "INSERT INTO install (id, install_id, created_ms)"
		       " VALUES (1, $1::text, $2::bigint)"
		       " ON CONFLICT (id) DO NOTHING",
    [PS_INSTALL_GET] = "SELECT install_id FROM install WHERE id = 1",
    /*
     * The alerts (store_pg_alert.c).  A beat's figures come as arrays, in
     * (source, fp) order so two instances lock the rows in one order.
     */
    [PS_AL_ACTIVITY_PUT] =
	"INSERT INTO activity AS a (source, fp, last_ms)"
	" SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])"
	" AS r (source, fp, last_ms) ORDER BY source, fp"
	" ON CONFLICT (source, fp) DO UPDATE"
	" SET last_ms = GREATEST(a.last_ms, EXCLUDED.last_ms)",
    [PS_AL_ACTIVITY] = "SELECT source, fp, last_ms FROM activity",
    [PS_AL_REPORTS_CLEAR] = "DELETE FROM alert_reports WHERE owner = $1",
    [PS_AL_REPORT_PUT] = "INSERT INTO alert_reports (owner, alert, source,"
			 " status, text, seen_ms)"
			 " VALUES ($1, $2, $3, $4, $5, $6)"
			 " ON CONFLICT (owner, alert, source) DO UPDATE"
			 " SET status = EXCLUDED.status, text = EXCLUDED.text,"
			 " seen_ms = EXCLUDED.seen_ms",
    [PS_AL_REPORTS] = "SELECT alert, source, status, text, seen_ms"
		      " FROM alert_reports WHERE seen_ms >= $1",
    [PS_AL_LEAD] = "INSERT INTO alert_lease AS l (id, owner, until_ms)"
		   " VALUES (1, $1, $3) ON CONFLICT (id) DO UPDATE"
		   " SET owner = EXCLUDED.owner, until_ms = EXCLUDED.until_ms"
		   " WHERE l.owner = EXCLUDED.owner OR l.until_ms < $2",
    [PS_AL_RENEW] = "UPDATE alert_lease SET until_ms = $3"
		    " WHERE id = 1 AND owner = $1 AND until_ms >= $2",
    [PS_AL_STATES] = "SELECT alert, source, firing, started_ms, resolved_ms,"
		     " mark, pending, notified_ms, changed_ms, text, summary,"
		     " details FROM alert_state",
    [PS_AL_STATE_PUT] =
	"INSERT INTO alert_state (alert, source, firing, started_ms,"
	" resolved_ms, mark, pending, notified_ms, changed_ms, text, summary,"
	" details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
	" ON CONFLICT (alert, source) DO UPDATE SET firing = EXCLUDED.firing,"
	" started_ms = EXCLUDED.started_ms,"
	" resolved_ms = EXCLUDED.resolved_ms, mark = EXCLUDED.mark,"
	" pending = EXCLUDED.pending, notified_ms = EXCLUDED.notified_ms,"
	" changed_ms = EXCLUDED.changed_ms, text = EXCLUDED.text,"
	" summary = EXCLUDED.summary, details = EXCLUDED.details",
    [PS_AL_NOTE_ADD] = "INSERT INTO alert_outbox (msg_id, alert, source,"
		       " resolved, body, created_ms, next_ms)"
		       " VALUES ($1, $2, $3, $4, $5, $6, $6)",
    [PS_AL_PRUNE_OUTBOX] = "DELETE FROM alert_outbox"
			   " WHERE done <> 0 AND done_ms < $1",
    [PS_AL_PRUNE_REPORTS] = "DELETE FROM alert_reports WHERE seen_ms < $1",
    /*
     * As SQLite's, with SKIP LOCKED: a notification another instance is
     * claiming right now is left to it; one it claimed and committed
     * fails the lease condition, and so does every later one of the
     * same condition (NOT EXISTS sees the first still open).
     */
    [PS_AL_CLAIM] =
	"UPDATE alert_outbox SET lease_owner = $1, lease_ms = $3::bigint"
	" WHERE id IN (SELECT id FROM alert_outbox AS o"
	" WHERE done = 0 AND next_ms <= $2::bigint AND lease_ms <= $2::bigint"
	" AND NOT EXISTS (SELECT 1 FROM alert_outbox AS p WHERE p.done = 0"
	" AND p.alert = o.alert AND p.source = o.source AND p.id < o.id)"
	" ORDER BY id LIMIT $4::bigint FOR UPDATE SKIP LOCKED)"
	" RETURNING id, msg_id, alert, source, resolved, body, attempts,"
	" created_ms",
    [PS_AL_DONE] = "UPDATE alert_outbox SET done = $3, done_ms = $4,"
		   " lease_ms = 0, error = $5"
		   " WHERE id = $1 AND lease_owner = $2 AND done = 0",
    [PS_AL_RETRY] = "UPDATE alert_outbox SET attempts = attempts + 1,"
		    " next_ms = $3, lease_ms = 0, error = $4"
		    " WHERE id = $1 AND lease_owner = $2 AND done = 0",
};

const enum pgs_stmt pgs_reads[] = {PS_STATS, PS_ERRORS, PS_LIST_ASC,
    PS_LIST_DESC, PS_LIST_DEAD_ASC, PS_LIST_DEAD_DESC, PS_LIST_EMAIL_ASC,
    PS_LIST_EMAIL_DESC, PS_LIST_UID_ASC, PS_LIST_UID_DESC, PS_ATTEMPTS,
    PS_EPOCH, PS_SENDABLE, PS_AUDIT_LIST};
const size_t pgs_nreads = sizeof(pgs_reads) / sizeof(pgs_reads[0]);
