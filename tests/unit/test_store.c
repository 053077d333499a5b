/* SPDX-License-Identifier: ISC */
/*
 * test_store: the SQLite store against real database files.
 *
 * Every test opens a fresh database in its own mkdtemp() folder, so WAL,
 * synchronous=FULL, migrations and the size cap run exactly as in the
 * daemon.  The backend-independent contract cases live in store_cases.c,
 * shared with test_store_pg.c; this file adds what only SQLite has
 * (recovery of a file used by one process, two connections on one file,
 * the size cap, the migration of a version 1 file and the payloads table
 * of version 2, checked with SQL on the file itself).  Times are injected
 * (small integers), never read from the clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "nudgebridge/store.h"
/* The plan test reads the backend's own statements. */
#include "../../src/store_sqlite.h"

/* The schema version this build writes. */
#define SCHEMA_LATEST 7

struct fixture {
	char dir[64];
	char path[128];
	struct nb_store_config cfg;
	struct nb_store *s;
};

/* SQLite needs no server: every case runs. */
#define STORE_NEED(fx) ((void)(fx))

/* The rows of the attempts table (attempt history's records). */
#define STORE_ATTEMPT_ROWS(fx) store_attempt_rows((fx)->path)
static int64_t store_attempt_rows(const char *path);

/* The model's rows and their payloads are all there, the file intact. */
#define STORE_CHECK_ROWS(fx, n)                                                \
	do {                                                                   \
		sqlite3 *db_ = raw_open((fx)->path);                           \
                                                                               \
		assert_int_equal(                                              \
		    raw_int(db_, "SELECT count(*) FROM payloads"), (n));       \
		assert_int_equal(raw_int(db_,                                  \
				     "SELECT count(*) FROM"                    \
				     " pragma_integrity_check"                 \
				     " WHERE integrity_check <> 'ok'"),        \
		    0);                                                        \
		sqlite3_close(db_);                                            \
	} while (0)

static sqlite3 *raw_open(const char *path);
static int64_t raw_int(sqlite3 *db, const char *sql);

#include "store_cases.c"

static int
setup(void **state)
{
	struct fixture *fx;

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	testlib_tmpdir(fx->dir, sizeof(fx->dir), "store");
	snprintf(fx->path, sizeof(fx->path), "%s/nb.db", fx->dir);
	fx->cfg.driver = testlib_unconst("sqlite");
	fx->cfg.path = fx->path;
	fx->cfg.lease_s = 30;
	fx->s = open_store(fx);
	*state = fx;
	return 0;
}

static int64_t
store_attempt_rows(const char *path)
{
	sqlite3 *db = raw_open(path);
	int64_t n = raw_int(db, "SELECT count(*) FROM attempts");

	sqlite3_close(db);
	return n;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	nb_store_close(fx->s);
	testlib_unlink_db(fx->path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static struct nb_store *
open_store_cfg(const struct nb_store_config *cfg)
{
	struct nb_store *s = NULL;
	char err[256] = "";

	if (nb_store_open(&s, cfg, err, sizeof(err)) != 0)
		fail_msg("nb_store_open: %s", err);
	return s;
}

/* A second connection straight to the file, for SQL the store has not. */
static sqlite3 *
raw_open(const char *path)
{
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void
raw_exec(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg != NULL ? msg : "?");
}

/*
 * A released schema (sq_migrations[0..version), which never change) in a
 * new file, its transaction open for the rows of the release.
 */
static sqlite3 *
raw_schema(const char *path, int version)
{
	sqlite3 *db = raw_open(path);
	int v;

	raw_exec(db, "PRAGMA journal_mode = WAL");
	raw_exec(db, "BEGIN");
	for (v = 0; v < version; v++)
		raw_exec(db, sq_migrations[v]);
	return db;
}

static int64_t
raw_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void
test_open_schema(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_config cfg = fx->cfg;
	struct nb_store *s = (struct nb_store *)1;
	char err[256];
	int v = -1;

	assert_int_equal(nb_store_schema_version(fx->s, &v), 0);
	assert_int_equal(v, SCHEMA_LATEST);

	cfg.driver = testlib_unconst("postgres");
	assert_int_equal(nb_store_open(&s, &cfg, err, sizeof(err)), -1);
	assert_null(s);
	assert_string_equal(err, "store.dsn: missing");
	cfg.driver = testlib_unconst("mysql");
	assert_int_equal(nb_store_open(&s, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "store.driver"));
	cfg.driver = testlib_unconst("sqlite");
	cfg.path = testlib_unconst("/nonexistent-dir/x/nb.db");
	assert_int_equal(nb_store_open(&s, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "store.path"));
	nb_store_close(NULL);
}

/*
 * Schema version 1 exactly as the builds before version 2 created it, and
 * the index tuning those builds applied on every open.
 */
static const char v1_schema[] =
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
    " probe_ms INTEGER NOT NULL);";
static const char v1_index_tuning[] =
    "CREATE INDEX IF NOT EXISTS events_leased ON events (seq)"
    " WHERE lease_ms <> 0;"
    "CREATE INDEX IF NOT EXISTS events_delivered ON events (updated_ms)"
    " WHERE state = 1;"
    "DROP INDEX IF EXISTS events_state;"
    "DROP INDEX IF EXISTS events_source_id;";

/* A version 1 row; payload NULL means a payload of plen generated bytes. */
struct v1_row {
	int64_t seq;
	const char *source, *id, *type, *payload;
	size_t plen;
	int state;
	const char *reason, *error;
	int attempts;
	int64_t received_ms, age_base_ms, next_ms, lease_ms, updated_ms;
};

static const struct v1_row v1_rows[] = {
    /* pending */
    {1, "acme", "evt_p1", "email.sent",
	"{\"id\":\"evt_p1\",\"subscriber\":{\"uid\":\"u_9\","
	"\"email\":\"Ada@Example.com\"}}",
	0, 0, NULL, NULL, 0, 1000, 1000, 1000, 0, 1000},
    /* pending, retried twice, leased when the old build stopped */
    {2, "acme", "evt_p2", "email.opened", NULL, 600, 0, NULL, "HTTP 503", 2,
	1100, 1100, 5000, 90000, 1100},
    /* delivered, a payload larger than a page */
    {3, "beta", "evt_v1", "email.sent", NULL, 20000, 1, NULL, NULL, 0, 1200,
	1200, 1200, 0, 2000},
    /* dead */
    {4, "acme", "evt_x1", "email.clicked", NULL, 900, 2, NB_REASON_MAX_ATTEMPTS,
	"HTTP 500", 10, 1300, 1250, 1300, 0, 3000},
    /* quarantined without an id */
    {5, "acme", NULL, "email.sent",
	"{\"type\":\"email.sent\",\"subscriber\":{\"email\":"
	"\"ada@example.com\"}}",
	0, 2, NB_REASON_QUARANTINED, "id: missing", 0, 1400, 1400, 1400, 0,
	1400},
    /* quarantined with an id, no type, empty payload */
    {6, "beta", "evt_q2", NULL, "", 0, 2, NB_REASON_QUARANTINED,
	"type: missing", 0, 1500, 1500, 1500, 0, 1500},
    /* purged by the old build: its seq must never come back */
    {7, "acme", "evt_gone", "email.sent", "{}", 0, 2, NB_REASON_TOO_LARGE,
	"big", 0, 1600, 1600, 1600, 0, 1600},
};
#define V1_ROWS (sizeof(v1_rows) / sizeof(v1_rows[0]))
#define V1_KEPT (V1_ROWS - 1) /* row 7 is deleted */

/* The payload of v1_rows[i] into buf (at least 20001 bytes); its length. */
static size_t
v1_payload(size_t i, char *buf)
{
	const struct v1_row *r = &v1_rows[i];
	size_t k;

	if (r->payload != NULL) {
		memcpy(buf, r->payload, strlen(r->payload) + 1);
		return strlen(r->payload);
	}
	buf[0] = '"';
	for (k = 1; k < r->plen - 1; k++)
		buf[k] = (char)('a' + (k * 11 + i * 5) % 26);
	buf[r->plen - 1] = '"';
	buf[r->plen] = '\0';
	return r->plen;
}

/* Writes a version 1 store at path, as the old builds left it. */
static void
v1_build(const char *path, int tuned)
{
	static char buf[20001];
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *st = NULL;
	size_t i, len;

	raw_exec(db, "PRAGMA journal_mode = WAL");
	raw_exec(db, "BEGIN");
	raw_exec(db, v1_schema);
	if (tuned)
		raw_exec(db, v1_index_tuning);
	assert_int_equal(
	    sqlite3_prepare_v2(db,
		"INSERT INTO events (seq, source, event_id, type, payload,"
		" state, reason, error, attempts, received_ms, age_base_ms,"
		" next_ms, lease_ms, updated_ms) VALUES (?1, ?2, ?3, ?4, ?5,"
		" ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
		-1, &st, NULL),
	    SQLITE_OK);
	for (i = 0; i < V1_ROWS; i++) {
		const struct v1_row *r = &v1_rows[i];

		len = v1_payload(i, buf);
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, r->seq);
		sqlite3_bind_text(st, 2, r->source, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, r->type, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 5, buf, (int)len, SQLITE_TRANSIENT);
		sqlite3_bind_int(st, 6, r->state);
		sqlite3_bind_text(st, 7, r->reason, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, r->error, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 9, r->attempts);
		sqlite3_bind_int64(st, 10, r->received_ms);
		sqlite3_bind_int64(st, 11, r->age_base_ms);
		sqlite3_bind_int64(st, 12, r->next_ms);
		sqlite3_bind_int64(st, 13, r->lease_ms);
		sqlite3_bind_int64(st, 14, r->updated_ms);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	}
	sqlite3_finalize(st);
	raw_exec(db,
	    "DELETE FROM events WHERE seq = 7;"
	    "INSERT INTO seen_events VALUES ('acme', 'evt_p1', 1000);"
	    "INSERT INTO seen_requests VALUES ('acme', 'wh_old', 1000);"
	    "PRAGMA user_version = 1;"
	    "COMMIT");
	/* A zero-length blob must still be a blob, not NULL. */
	assert_int_equal(
	    raw_int(db, "SELECT count(*) FROM events WHERE payload IS NULL"),
	    0);
	sqlite3_close(db);
}

static void
assert_v1_row(const struct nb_stored_event *row, size_t i)
{
	static char buf[20001];
	const struct v1_row *r = &v1_rows[i];
	size_t len = v1_payload(i, buf);

	assert_int_equal(row->seq, r->seq);
	assert_string_equal(row->source, r->source);
	if (r->id == NULL)
		assert_null(row->id);
	else
		assert_string_equal(row->id, r->id);
	if (r->type == NULL)
		assert_null(row->type);
	else
		assert_string_equal(row->type, r->type);
	assert_int_equal(row->rawlen, len);
	assert_memory_equal(row->raw, buf, len);
	assert_int_equal(row->raw[len], '\0');
	assert_int_equal(row->state, r->state);
	if (r->reason == NULL)
		assert_null(row->reason);
	else
		assert_string_equal(row->reason, r->reason);
	if (r->error == NULL)
		assert_null(row->error);
	else
		assert_string_equal(row->error, r->error);
	assert_int_equal(row->attempts, r->attempts);
	assert_int_equal(row->received_ms, r->received_ms);
	assert_int_equal(row->age_base_ms, r->age_base_ms);
	assert_int_equal(row->updated_ms, r->updated_ms);
	/* Stored before install ids: they keep the legacy messageId. */
	assert_int_equal(row->rule, NB_SEGMENT_RULE_LEGACY);
}

/*
 * Version 3 builds the counters and recent errors from the rows a file
 * holds: those of v1_rows (row 2 still leased), as if counted.
 */
static void
assert_v1_counters(struct nb_store *s)
{
	struct nb_source_stats *st = NULL;
	struct nb_store_error *e = NULL;
	size_t n = 0;

	assert_int_equal(nb_store_stats(s, 10000, &st, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(st[0].source, "acme");
	assert_int_equal(st[0].pending, 2);
	assert_int_equal(st[0].inflight, 1);
	assert_int_equal(st[0].delivered, 0);
	assert_int_equal(st[0].dead, 2);
	assert_int_equal(st[0].quarantined, 1);
	assert_int_equal(st[0].oldest_pending_ms, 1000);
	assert_int_equal(st[0].received_total, 4);
	assert_int_equal(st[0].delivered_total, 0);
	assert_int_equal(st[0].dead_total, 2);
	assert_string_equal(st[1].source, "beta");
	assert_int_equal(st[1].pending, 0);
	assert_int_equal(st[1].delivered, 1);
	assert_int_equal(st[1].dead, 1);
	assert_int_equal(st[1].quarantined, 1);
	assert_int_equal(st[1].oldest_pending_ms, 0);
	assert_int_equal(st[1].received_total, 2);
	assert_int_equal(st[1].delivered_total, 1);
	assert_int_equal(st[1].dead_total, 1);
	free(st);
	assert_int_equal(nb_store_errors(s, 0, 5, &e, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(e[0].error, "HTTP 500");
	assert_string_equal(e[0].reason, NB_REASON_MAX_ATTEMPTS);
	assert_int_equal(e[0].last_ms, 3000);
	assert_string_equal(e[1].error, "id: missing");
	assert_string_equal(e[2].error, "HTTP 503");
	assert_int_equal(e[2].state, NB_STATE_PENDING);
	assert_null(e[2].reason);
	assert_string_equal(e[3].source, "beta");
	assert_string_equal(e[3].error, "type: missing");
	assert_int_equal(e[3].count, 1);
	nb_store_errors_free(e, n);
}

/*
 * A version 1 file (with and without the index tuning of later version 1
 * builds) comes out of nb_store_open() at version 2 with every row, every
 * field and every payload intact, its leases, dedupe keys and seq
 * high-water mark kept, and nothing of the payload left in events.
 */
static void
test_migrate_v1(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_store_config cfg = fx->cfg;
	struct nb_store *s;
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	struct nb_event e;
	struct nb_append r;
	char path[160], install[NB_SEGMENT_INSTALL_ID_LEN + 1];
	sqlite3 *db;
	size_t i, n = 0;
	int tuned, v = 0;

	for (tuned = 0; tuned < 2; tuned++) {
		snprintf(path, sizeof(path), "%s/v1-%d.db", fx->dir, tuned);
		v1_build(path, tuned);
		cfg.path = path;
		s = open_store_cfg(&cfg);
		assert_int_equal(nb_store_schema_version(s, &v), 0);
		assert_int_equal(v, SCHEMA_LATEST);

		memset(&f, 0, sizeof(f));
		f.states = ALL;
		assert_int_equal(nb_store_list(s, &f, &rows, &n), 0);
		assert_int_equal(n, V1_KEPT);
		for (i = 0; i < n; i++)
			assert_v1_row(&rows[i], i);
		nb_stored_events_free(rows, n);
		assert_v1_counters(s);
		/* The rows stored before version 4 are found by person. */
		f.email = "ADA@example.COM";
		assert_int_equal(nb_store_list(s, &f, &rows, &n), 0);
		assert_int_equal(n, 2);
		assert_int_equal(rows[0].seq, 1);
		assert_int_equal(rows[1].seq, 5);
		nb_stored_events_free(rows, n);
		f.email = NULL;
		f.uid = "u_9";
		assert_int_equal(nb_store_list(s, &f, &rows, &n), 0);
		assert_int_equal(n, 1);
		nb_stored_events_free(rows, n);

		/* The file itself: payloads moved, the column gone. */
		db = raw_open(path);
		assert_int_equal(
		    raw_int(db, "PRAGMA user_version"), SCHEMA_LATEST);
		assert_int_equal(raw_int(db,
				     "SELECT count(*) FROM"
				     " pragma_table_info('events')"
				     " WHERE name = 'payload'"),
		    0);
		assert_int_equal(
		    raw_int(db, "SELECT count(*) FROM payloads"), V1_KEPT);
		assert_int_equal(raw_int(db,
				     "SELECT count(*) FROM payloads"
				     " WHERE seq NOT IN"
				     " (SELECT seq FROM events)"),
		    0);
		/* events rebuilt: the v1 indexes gone, the v2 and v3 ones
		 * made (events_lease replaces events_leased). */
		assert_int_equal(raw_int(db,
				     "SELECT count(*) FROM sqlite_schema"
				     " WHERE tbl_name = 'events_v2'"),
		    0);
		assert_int_equal(raw_int(db,
				     "SELECT count(*) FROM sqlite_schema"
				     " WHERE type = 'index' AND"
				     " tbl_name = 'events' AND name IN"
				     " ('events_due', 'events_lease',"
				     " 'events_pending_age', 'events_dead',"
				     " 'events_delivered')"),
		    5);
		/*
		 * Version 6: the keys computed; version 7: the person
		 * indexes of version 6 gone, their entries in people.
		 */
		assert_int_equal(raw_int(db,
				     "SELECT count(*) FROM sqlite_schema"
				     " WHERE type = 'index' AND"
				     " tbl_name = 'events' AND name IN"
				     " ('events_email', 'events_uid')"),
		    0);
		assert_int_equal(raw_int(db,
				     "SELECT count(*) FROM sqlite_schema"
				     " WHERE type = 'index' AND"
				     " tbl_name = 'events'"),
		    5);
		assert_int_equal(raw_int(db,
				     "SELECT (SELECT count(*) FROM people) -"
				     " (SELECT count(email_key) +"
				     " count(uid_key) FROM events)"),
		    0);
		assert_int_equal(raw_int(db,
				     "SELECT folded = (SELECT max(seq)"
				     " FROM events) FROM people_fold"),
		    1);
		assert_int_equal(raw_int(db,
				     "SELECT count(*) FROM events"
				     " WHERE email_key IS NOT NULL"),
		    2);
		assert_int_equal(raw_int(db,
				     "SELECT count(*) FROM"
				     " pragma_integrity_check"
				     " WHERE integrity_check <> 'ok'"),
		    0);
		sqlite3_close(db);

		/* The old lease holds until recovery drops it. */
		assert_int_equal(
		    nb_store_claim(s, acme, 1, 10000, 100000, 10, &rows, &n),
		    0);
		assert_int_equal(n, 1);
		assert_v1_row(&rows[0], 0);
		nb_stored_events_free(rows, n);
		/* Recovery drops every lease, the new one of row 1 too. */
		assert_int_equal(nb_store_recover(s), 0);
		assert_int_equal(
		    nb_store_claim(s, acme, 1, 10000, 200000, 10, &rows, &n),
		    0);
		assert_int_equal(n, 2);
		assert_v1_row(&rows[0], 0);
		assert_v1_row(&rows[1], 1);
		nb_stored_events_free(rows, n);

		/* Dedupe keys survive; a new row gets a seq never used. */
		e = ev("evt_p1", "email.sent", "{}", NULL);
		r = req("acme", "wh_new", &e, 1, 1500);
		assert_int_equal(append1(s, &r), 0);
		assert_counts(&r, 0, 1, 0);
		r = req("acme", "wh_old", &e, 1, 1500);
		assert_int_equal(append1(s, &r), 0);
		assert_counts(&r, 0, 1, 0);
		e = ev("evt_new", "email.sent", "{\"id\":\"evt_new\"}", NULL);
		r = req("acme", "wh_new2", &e, 1, 1500);
		assert_int_equal(append1(s, &r), 0);
		assert_counts(&r, 1, 0, 0);
		assert_int_equal(seq_of(s, "evt_new"), 8);
		/* Stored after the upgrade: the install rule. */
		rows = by_id(s, "evt_new");
		assert_int_equal(rows[0].rule, NB_SEGMENT_RULE_CURRENT);
		nb_stored_events_free(rows, 1);
		snprintf(
		    install, sizeof(install), "%s", nb_store_install_id(s));
		nb_store_close(s);

		/* A second open finds the latest version and changes
		 * nothing, the install id included. */
		s = open_store_cfg(&cfg);
		assert_int_equal(nb_store_schema_version(s, &v), 0);
		assert_int_equal(v, SCHEMA_LATEST);
		assert_int_equal(count(s, ALL, NULL), V1_KEPT + 1);
		assert_string_equal(nb_store_install_id(s), install);
		rows = by_id(s, "evt_p1");
		assert_int_equal(rows[0].rule, NB_SEGMENT_RULE_LEGACY);
		nb_stored_events_free(rows, 1);
		nb_store_close(s);
		testlib_unlink_db(path);
	}
}

/*
 * A version 3 file, the previous release's: its schema is exactly
 * sq_migrations[0..2] (released migrations never change), its rows as
 * that release's append wrote them.  After the upgrade those rows keep
 * the legacy messageId rule, new rows get the install rule, and the file
 * has an install id that a reopen, a copy of the file (a backup restored
 * elsewhere) and a second connection all read back unchanged; another
 * store has another one, and a damaged one is refused.
 */
static void
test_migrate_v3(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_config cfg = fx->cfg;
	struct nb_stored_event *row;
	struct nb_store *s, *copy;
	char path[160], bak[160], install[NB_SEGMENT_INSTALL_ID_LEN + 1];
	char sql[512], err[256];
	sqlite3 *db;
	int v, i;

	snprintf(path, sizeof(path), "%s/v3.db", fx->dir);
	db = raw_schema(path, 3);
	for (i = 1; i <= 3; i++) {
		snprintf(sql, sizeof(sql),
		    "INSERT INTO events (seq, source, event_id, type, state,"
		    " reason, error, attempts, received_ms, age_base_ms,"
		    " next_ms, lease_ms, updated_ms) VALUES (NULL, 'acme',"
		    " 'old_%d', 'email.sent', %d, %s, NULL, 0, 1000, 1000,"
		    " 1000, 0, 1000);"
		    "INSERT INTO payloads (seq, payload) VALUES (%d, '{}')",
		    i, i == 3 ? 2 : 0, i == 3 ? "'max_attempts'" : "NULL", i);
		raw_exec(db, sql);
	}
	raw_exec(db, "PRAGMA user_version = 3; COMMIT");
	sqlite3_close(db);

	cfg.path = path;
	s = open_store_cfg(&cfg);
	assert_int_equal(nb_store_schema_version(s, &v), 0);
	assert_int_equal(v, SCHEMA_LATEST);
	for (i = 1; i <= 3; i++) {
		snprintf(sql, sizeof(sql), "old_%d", i);
		row = by_id(s, sql);
		assert_int_equal(row->rule, NB_SEGMENT_RULE_LEGACY);
		nb_stored_events_free(row, 1);
	}
	add(s, "acme", "new_1", 2000);
	row = by_id(s, "new_1");
	assert_int_equal(row->rule, NB_SEGMENT_RULE_CURRENT);
	nb_stored_events_free(row, 1);
	snprintf(install, sizeof(install), "%s", nb_store_install_id(s));
	assert_string_not_equal(install, nb_store_install_id(fx->s));
	db = raw_open(path);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM install"), 1);
	assert_int_equal(raw_int(db,
			     "SELECT count(*) FROM events"
			     " WHERE msgid_rule = 0"),
	    3);
	/* A backup: the file copied whole (VACUUM INTO, as docs say). */
	snprintf(bak, sizeof(bak), "%s/restored.db", fx->dir);
	snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", bak);
	raw_exec(db, sql);
	sqlite3_close(db);
	nb_store_close(s);

	s = open_store_cfg(&cfg);
	assert_string_equal(nb_store_install_id(s), install);
	cfg.path = bak;
	copy = open_store_cfg(&cfg);
	assert_string_equal(nb_store_install_id(copy), install);
	row = by_id(copy, "old_1");
	assert_int_equal(row->rule, NB_SEGMENT_RULE_LEGACY);
	nb_stored_events_free(row, 1);
	nb_store_close(copy);
	nb_store_close(s);

	/* A damaged id makes no messageId: the store is refused. */
	db = raw_open(bak);
	raw_exec(db, "UPDATE install SET install_id = 'not hex'");
	sqlite3_close(db);
	copy = NULL;
	assert_int_equal(nb_store_open(&copy, &cfg, err, sizeof(err)), -1);
	assert_null(copy);
	assert_non_null(strstr(err, "install id"));
	testlib_unlink_db(bak);
	testlib_unlink_db(path);
}

/*
 * Every events row has its payload and no payload outlives its row: after
 * appends (one refused by the size cap), prune and purge the two tables
 * hold the same seqs.
 */
static void
test_payloads_follow_rows(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_event e[4] = {
	    ev("a", "t", "{\"id\":\"a\"}", NULL),
	    ev("b", "t", "{\"id\":\"b\"}", NULL),
	    ev("c", "t", "{\"id\":\"c\"}", NULL),
	    ev("q", NULL, "{\"id\":\"q\"}", "type: missing"),
	};
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	struct nb_append r;
	struct nb_store *capped;
	int64_t seqs[3];
	size_t i, n = 0, purged;
	sqlite3 *db;

	r = req("acme", "wh_1", e, 4, 100);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 3, 0, 1);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < n; i++)
		seqs[i] = rows[i].seq;
	nb_stored_events_free(rows, n);
	assert_int_equal(nb_store_delivered(fx->s, seqs, 2, 300, NULL), 0);

	db = raw_open(fx->path);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM payloads"), 4);
	assert_int_equal(nb_store_prune(fx->s, 0, 1000), 0);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM payloads"), 2);
	memset(&f, 0, sizeof(f));
	f.states = NB_STATE_MASK_DEAD;
	assert_int_equal(nb_store_purge(fx->s, &f, 1, &purged), 0);
	assert_int_equal(purged, 1);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM payloads"), 2);
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 1);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM payloads"), 1);
	assert_int_equal(raw_int(db, "SELECT seq FROM payloads"), seqs[2]);
	/* A key that names no row purges nothing. */
	f.key = "x1";
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 0);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM payloads"), 1);

	/* An append the size cap refuses leaves no payload either. */
	fx->cfg.max_size_bytes = 4096;
	capped = open_store(fx);
	r = req("acme", "wh_2", &e[0], 1, 2000);
	r.dedupe_after_ms = 1500;
	assert_int_equal(append1(capped, &r), -1);
	nb_store_close(capped);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM payloads"), 1);
	assert_int_equal(raw_int(db, "SELECT count(*) FROM events"), 1);
	sqlite3_close(db);
}

/*
 * A row whose payload is gone (a damaged file) fails the claim, which then
 * leases nothing; the operator still sees the row (empty payload) and can
 * purge it, and the queue moves again.
 */
static void
test_missing_payload(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	char key[NB_STORE_KEY_MAX];
	size_t n = 0, purged;
	int64_t lost;
	sqlite3 *db;

	add(fx->s, "acme", "a", 100);
	add(fx->s, "acme", "b", 100);
	lost = seq_of(fx->s, "a");
	db = raw_open(fx->path);
	raw_exec(db,
	    "DELETE FROM payloads WHERE seq ="
	    " (SELECT min(seq) FROM events)");
	sqlite3_close(db);

	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 100000, 10, &rows, &n), -1);
	assert_null(rows);
	assert_int_equal(n, 0);

	memset(&f, 0, sizeof(f));
	f.states = NB_STATE_MASK_PENDING;
	assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rows[0].seq, lost);
	assert_int_equal(rows[0].rawlen, 0);
	assert_string_equal(rows[0].raw, "");
	nb_stored_events_free(rows, n);

	snprintf(key, sizeof(key), "%lld", (long long)lost);
	f.key = key;
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 1);
	/* Claimed at the same time: the failed claim leased nothing. */
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].id, "b");
	assert_string_equal(rows[0].raw, "{\"id\":\"x\"}");
	nb_stored_events_free(rows, n);
}

/*
 * Every statement that answers an operator or a scraper (sq_reads) finds
 * its rows through an index: EXPLAIN QUERY PLAN must not show a SCAN of
 * events or payloads (nor of an index of theirs, which is as long), only
 * SEARCHes and scans of the small tables (counters, recent_errors).
 */
static void
test_read_plans(void **state)
{
	struct fixture *fx = *state;
	sqlite3 *db = raw_open(fx->path);
	sqlite3_stmt *st;
	const char *detail;
	char sql[4096], plan[4096];
	int64_t seqs[8];
	size_t i, len;
	int bad;

	add_filter_rows(fx->s, seqs);
	for (i = 0; i < sq_nreads; i++) {
		snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s",
		    sq_stmt_sql[sq_reads[i]]);
		assert_int_equal(
		    sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
		bad = 0;
		len = 0;
		plan[0] = '\0';
		while (sqlite3_step(st) == SQLITE_ROW) {
			detail = (const char *)sqlite3_column_text(st, 3);
			len += (size_t)snprintf(plan + len,
			    len < sizeof(plan) ? sizeof(plan) - len : 0,
			    "  %s\n", detail);
			if (strncmp(detail, "SCAN events", 11) == 0 ||
			    strncmp(detail, "SCAN payloads", 13) == 0 ||
			    strncmp(detail, "SCAN e ", 7) == 0 ||
			    strncmp(detail, "SCAN p ", 7) == 0)
				bad = 1;
		}
		sqlite3_finalize(st);
		if (bad)
			fail_msg("statement %d scans a table:\n%s\n%s",
			    (int)sq_reads[i], sq_stmt_sql[sq_reads[i]], plan);
	}
	sqlite3_close(db);
}

/*
 * A replay and a purge work in chunks, each a transaction of its own: a
 * failure in the second chunk (a trigger refuses one row) leaves the first
 * chunk done and the rest as it was, and the next call goes on from there.
 */
static void
test_chunked_changes(void **state)
{
	enum { N = NB_STORE_CHUNK + 500 };
	struct fixture *fx = *state;
	struct nb_store_filter f;
	int64_t *seqs = add_dead(fx->s, "c", N);
	char sql[256];
	size_t rep, req_, purged;
	sqlite3 *db;

	db = raw_open(fx->path);
	snprintf(sql, sizeof(sql),
	    "CREATE TRIGGER refuse BEFORE UPDATE ON events"
	    " WHEN old.seq = %lld BEGIN SELECT RAISE(ABORT, 'refused'); END",
	    (long long)seqs[NB_STORE_CHUNK + 10]);
	raw_exec(db, sql);
	memset(&f, 0, sizeof(f));
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 300, NULL, &rep, &req_), -1);
	assert_int_equal(
	    count(fx->s, NB_STATE_MASK_PENDING, NULL), NB_STORE_CHUNK);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), 500);
	raw_exec(db, "DROP TRIGGER refuse");
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 300, NULL, &rep, &req_), 0);
	assert_int_equal(rep, 500);
	assert_int_equal(count(fx->s, NB_STATE_MASK_PENDING, NULL), N);

	/* The same for a purge. */
	snprintf(sql, sizeof(sql),
	    "CREATE TRIGGER refuse BEFORE DELETE ON events"
	    " WHEN old.seq = %lld BEGIN SELECT RAISE(ABORT, 'refused'); END",
	    (long long)seqs[NB_STORE_CHUNK + 10]);
	raw_exec(db, sql);
	f.states = NB_STATE_MASK_PENDING;
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), -1);
	assert_int_equal(count(fx->s, NB_STATE_MASK_PENDING, NULL), 500);
	raw_exec(db, "DROP TRIGGER refuse");
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 500);
	assert_int_equal(count(fx->s, ALL, NULL), 0);
	sqlite3_close(db);
	free(seqs);
}

/* The permission bits of path, or -1 when it does not exist. */
static int
mode_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (int)(sb.st_mode & 07777) : -1;
}

/* Opens cfg's store with stderr in a file; what was logged goes to out. */
static struct nb_store *
open_logged(const struct nb_store_config *cfg, char *out, size_t outlen)
{
	char log[160];
	struct nb_store *s;
	int fd, saved;
	ssize_t n;

	snprintf(log, sizeof(log), "%s.log", cfg->path);
	fd = open(log, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	s = open_store_cfg(cfg);
	assert_true(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(log);
	return s;
}

/*
 * The database, -wal and -shm are made 0600 whatever the umask (they hold
 * addresses and IPs); an existing file open to others is left as it is,
 * with a warning.
 */
static void
test_file_modes(void **state)
{
	static const mode_t masks[] = {022, 0, 0277};
	struct fixture *fx = *state;
	struct nb_store_config cfg = fx->cfg;
	struct nb_store *s;
	char path[160], side[200], out[4096];
	mode_t old;
	size_t i;

	for (i = 0; i < sizeof(masks) / sizeof(masks[0]); i++) {
		snprintf(path, sizeof(path), "%s/m%zu.db", fx->dir, i);
		cfg.path = path;
		old = umask(masks[i]);
		s = open_store_cfg(&cfg);
		umask(old);
		add(s, "acme", "a", 100); /* the WAL has frames now */
		assert_int_equal(mode_of(path), 0600);
		snprintf(side, sizeof(side), "%s-wal", path);
		assert_int_equal(mode_of(side), 0600);
		snprintf(side, sizeof(side), "%s-shm", path);
		assert_int_equal(mode_of(side), 0600);
		nb_store_close(s);
		testlib_unlink_db(path);
	}

	/* An operator's file, wider: warned about, not changed. */
	snprintf(path, sizeof(path), "%s/wide.db", fx->dir);
	cfg.path = path;
	nb_store_close(open_store_cfg(&cfg));
	assert_int_equal(chmod(path, 0644), 0);
	s = open_logged(&cfg, out, sizeof(out));
	assert_non_null(strstr(out, "msg=\"store file readable by others\""));
	assert_non_null(strstr(out, "mode=0644"));
	assert_int_equal(mode_of(path), 0644);
	nb_store_close(s);
	/* Private again: nothing to say. */
	assert_int_equal(chmod(path, 0600), 0);
	snprintf(side, sizeof(side), "%s-wal", path);
	chmod(side, 0600);
	snprintf(side, sizeof(side), "%s-shm", path);
	chmod(side, 0600);
	s = open_logged(&cfg, out, sizeof(out));
	assert_null(strstr(out, "readable by others"));
	nb_store_close(s);
	testlib_unlink_db(path);
}

/* A file one process owns: no table of instances to beat in. */
static void
test_not_shared(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_instance self, out[1];
	size_t n = 1, live = 1;

	memset(&self, 0, sizeof(self));
	assert_int_equal(nb_store_shared(fx->s), 0);
	assert_int_equal(
	    nb_store_beat(fx->s, &self, 1000, out, 1, &n, &live), -1);
	assert_int_equal(n, 0);
	assert_int_equal(live, 0);
	assert_int_equal(nb_store_leave(fx->s, "x"), 0);
}

static void
test_recover_and_reopen(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_stored_event *rows = NULL;
	size_t n;
	int v = 0;

	add(fx->s, "acme", "a", 100);
	add(fx->s, "acme", "b", 100);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 2);
	nb_stored_events_free(rows, n);

	/* "Crash": close and reopen; the rows are still leased... */
	nb_store_close(fx->s);
	fx->s = open_store(fx);
	assert_int_equal(nb_store_schema_version(fx->s, &v), 0);
	assert_int_equal(v, SCHEMA_LATEST);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 300, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 0);
	/* ...until recovery drops every lease. */
	assert_int_equal(nb_store_recover(fx->s), 0);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 300, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].id, "a");
	nb_stored_events_free(rows, n);
}

static void
test_two_connections(void **state)
{
	struct fixture *fx = *state;
	struct nb_store *other = open_store(fx);
	struct nb_event e = ev("a", "t", "{}", NULL);
	struct nb_append r = req("acme", "wh_1", &e, 1, 100);

	/* A write on one connection is visible and deduped on the other. */
	add(fx->s, "acme", "x", 100);
	assert_int_equal(count(other, NB_STATE_MASK_PENDING, NULL), 1);
	assert_int_equal(append1(other, &r), 0);
	assert_counts(&r, 1, 0, 0);
	r.webhook_id = "wh_2";
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 1, 0);
	assert_int_equal(count(fx->s, NB_STATE_MASK_PENDING, NULL), 2);
	nb_store_close(other);
}

static void
test_size_cap(void **state)
{
	struct fixture *fx = *state;
	struct nb_store *capped;
	struct nb_event small = ev("s", "t", "{\"id\":\"s\"}", NULL);
	struct nb_event big;
	struct nb_append r1, r2;
	struct nb_append *group[2] = {&r1, &r2};
	char *raw;
	size_t rawlen = 2 * 1024 * 1024;

	raw = malloc(rawlen + 1);
	assert_non_null(raw);
	memset(raw, 'x', rawlen);
	raw[rawlen] = '\0';
	big = ev("big", "t", raw, NULL);

	/* A cap below what the schema takes: nothing commits. */
	fx->cfg.max_size_bytes = 4096;
	capped = open_store(fx);
	r1 = req("acme", "wh_1", &small, 1, 100);
	assert_int_equal(append1(capped, &r1), -1);
	assert_int_equal(nb_store_probe(capped), -1);
	nb_store_close(capped);
	assert_int_equal(count(fx->s, ALL, NULL), 0);

	/* 1 MiB: small events fit, a 2 MiB one does not, and a group with
	 * both stores neither. */
	fx->cfg.max_size_bytes = 1024 * 1024;
	capped = open_store(fx);
	assert_int_equal(nb_store_probe(capped), 0);
	r1 = req("acme", "wh_1", &small, 1, 100);
	r2 = req("acme", "wh_2", &big, 1, 100);
	assert_int_equal(nb_store_append(capped, group, 2), -1);
	assert_int_equal(count(fx->s, ALL, NULL), 0);
	assert_int_equal(append1(capped, &r2), -1);
	assert_int_equal(append1(capped, &r1), 0);
	assert_counts(&r1, 1, 0, 0);
	/* The failed requests left no dedupe keys behind. */
	r2 = req("acme", "wh_2", &small, 1, 100);
	small.id = testlib_unconst("s2");
	assert_int_equal(append1(capped, &r2), 0);
	assert_counts(&r2, 1, 0, 0);
	assert_int_equal(nb_store_probe(capped), 0);
	nb_store_close(capped);
	assert_int_equal(count(fx->s, ALL, NULL), 2);

	/* Without a cap the big one goes in. */
	r2 = req("acme", "wh_3", &big, 1, 100);
	assert_int_equal(append1(fx->s, &r2), 0);
	assert_counts(&r2, 1, 0, 0);
	assert_int_equal(nb_store_probe(fx->s), 0);
	free(raw);
}

static void
test_purge_makes_room(void **state)
{
	struct fixture *fx = *state;
	struct nb_store *capped;
	struct nb_store_filter f;
	struct nb_event e;
	struct nb_append r;
	char raw[8192], id[16];
	size_t purged;
	int i, stored = 0;

	memset(raw, 'x', sizeof(raw) - 1);
	raw[sizeof(raw) - 1] = '\0';
	fx->cfg.max_size_bytes = 256 * 1024;
	capped = open_store(fx);
	for (i = 0; i < 100; i++) {
		snprintf(id, sizeof(id), "e%d", i);
		e = ev(id, "t", raw, NULL);
		r = req("acme", NULL, &e, 1, 100);
		if (append1(capped, &r) == -1)
			break;
		stored++;
	}
	assert_true(stored > 5);
	assert_true(stored < 100);
	assert_int_equal(nb_store_probe(capped), -1);
	assert_int_equal(
	    count(capped, NB_STATE_MASK_PENDING, NULL), (size_t)stored);

	/* Deleted rows free pages: the probe and appends succeed again. */
	memset(&f, 0, sizeof(f));
	f.states = NB_STATE_MASK_PENDING;
	assert_int_equal(nb_store_purge(capped, &f, 0, &purged), 0);
	assert_int_equal(purged, (size_t)stored);
	assert_int_equal(nb_store_probe(capped), 0);
	e = ev("again", "t", raw, NULL);
	r = req("acme", NULL, &e, 1, 100);
	assert_int_equal(append1(capped, &r), 0);
	nb_store_close(capped);
}

/* 1 when the file at path holds needle (its bytes, anywhere). */
static int
file_holds(const char *path, const char *needle)
{
	static char buf[1 << 20];
	size_t n, i, len = strlen(needle), keep = 0;
	FILE *f;
	int found = 0;

	if ((f = fopen(path, "rb")) == NULL)
		return 0;
	/* Chunks overlap by len - 1 bytes, so no match is cut in two. */
	while ((n = fread(buf + keep, 1, sizeof(buf) - keep, f)) > 0) {
		n += keep;
		for (i = 0; i + len <= n && !found; i++)
			found = memcmp(buf + i, needle, len) == 0;
		if (found)
			break;
		keep = n >= len - 1 ? len - 1 : n;
		memmove(buf, buf + n - keep, keep);
	}
	fclose(f);
	return found;
}

/* 1 when the database, its -wal or its -shm holds needle. */
static int
db_holds(const char *path, const char *needle)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	char file[200];
	size_t i;

	for (i = 0; i < 3; i++) {
		snprintf(file, sizeof(file), "%s%s", path, suffixes[i]);
		if (file_holds(file, needle))
			return 1;
	}
	return 0;
}

/*
 * After an erase no byte of the address is left in the database files:
 * not in the payloads' pages (secure_delete zeroes what is freed), not in
 * the write-ahead log that held their older copies (truncated), also once
 * others' events were written after it.  The address is stored in mixed
 * case, in rows of every state, among many others, some with payloads
 * larger than a page.
 */
static void
test_erase_leaves_no_bytes(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_stored_event *rows = NULL;
	struct nb_store_erase e;
	struct nb_store_audit au;
	char id[32], other[64];
	int64_t seqs[600];
	size_t i, n = 0;

	for (i = 0; i < 600; i++) {
		snprintf(id, sizeof(id), "o%zu", i);
		snprintf(other, sizeof(other), "person%zu@example.net", i);
		if (i % 30 == 7) {
			snprintf(id, sizeof(id), "z%zu", i);
			seqs[i] = padd(fx->s, i % 2 ? "acme" : "beta", id,
			    "Zed.Erasure@Example.org", "uid-zed-erasure", 1000);
		} else
			seqs[i] = padd(fx->s, "acme", id, other, NULL, 1000);
	}
	/* Some delivered, some dead, some retried: rows rewritten. */
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 1000, 2000, 200, &rows, &n), 0);
	nb_stored_events_free(rows, n);
	assert_int_equal(nb_store_delivered(fx->s, seqs, 100, 1100, NULL), 0);
	assert_int_equal(nb_store_dead(fx->s, seqs + 100, 50,
			     NB_REASON_REJECTED, "segment: 400", 1100, NULL),
	    0);
	assert_true(db_holds(fx->path, "Zed.Erasure@Example.org"));

	memset(&e, 0, sizeof(e));
	e.who.email = "zed.erasure@example.org";
	e.now_ms = 5000;
	assert_int_equal(nb_store_erase(fx->s, &e, &au), 0);
	assert_int_equal(au.events, 20);
	assert_false(db_holds(fx->path, "Zed.Erasure@Example.org"));
	assert_false(db_holds(fx->path, "uid-zed-erasure"));
	/* Others' events written after it reuse the freed pages. */
	for (i = 0; i < 300; i++) {
		snprintf(id, sizeof(id), "n%zu", i);
		snprintf(other, sizeof(other), "late%zu@example.net", i);
		padd(fx->s, "acme", id, other, NULL, 6000);
	}
	assert_false(db_holds(fx->path, "Zed.Erasure@Example.org"));
	assert_false(db_holds(fx->path, "uid-zed-erasure"));
	assert_true(db_holds(fx->path, "late299@example.net"));
	assert_int_equal(count(fx->s, ALL, NULL), 580 + 300);
}

/* The next row appended gets seq next (AUTOINCREMENT's mark moved). */
static void
seq_jump(const char *path, int64_t next)
{
	sqlite3 *db = raw_open(path);
	char sql[128];

	snprintf(sql, sizeof(sql),
	    "UPDATE sqlite_sequence SET seq = %lld WHERE name = 'events'",
	    (long long)(next - 1));
	raw_exec(db, sql);
	sqlite3_close(db);
}

/* A figure off the file itself; ?1 is the key of ada@example.com. */
static int64_t
raw_count(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *st = NULL;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_bind_parameter_count(st) > 0)
		sqlite3_bind_int64(
		    st, 1, nb_person_key_email("ada@example.com", 15));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The ids of f's rows page by page (limit 1), joined by ','. */
static void
ids_paged(
    struct nb_store *s, struct nb_store_filter f, char *out, size_t outlen)
{
	struct nb_stored_event *rows = NULL;
	size_t n = 0, len = 0, pages = 0;
	int64_t next;

	f.limit = 1;
	f.max_scan = 2;
	out[0] = '\0';
	do {
		assert_int_equal(
		    nb_store_list_page(s, &f, &rows, &n, &next), 0);
		if (n == 1)
			len += (size_t)snprintf(out + len, outlen - len, "%s%s",
			    len > 0 ? "," : "", rows[0].id);
		nb_stored_events_free(rows, n);
		if (f.newest_first)
			f.before_seq = next;
		else
			f.after_seq = next;
		assert_true(++pages < 50);
	} while (next != 0);
}

/*
 * The person index folded late: a search reads the folded buckets and
 * the rows after the mark alike, in seq order both ways, page by page
 * across bucket boundaries and across the mark; an erase drops the
 * person's entries on both sides of it; the fold moves the mark by at
 * most the seqs asked.
 */
static void
test_people_fold(void **state)
{
	struct fixture *fx = *state;
	const int64_t b1 = (int64_t)1 << SQ_PEOPLE_SHIFT;
	struct nb_store_filter f;
	struct nb_store_erase e;
	struct nb_store_audit au;
	char got[256];
	int64_t s3, s4;

	padd(fx->s, "acme", "a1", "ada@example.com", "u_1", 100);
	padd(fx->s, "acme", "x1", "bob@example.com", "u_2", 110);
	seq_jump(fx->path, b1 - 1);
	assert_int_equal(
	    padd(fx->s, "acme", "a2", "Ada@example.com", NULL, 120), b1 - 1);
	s3 = padd(fx->s, "acme", "a3", "ada@example.com", "u_1", 130);
	assert_int_equal(s3, b1);
	assert_int_equal(nb_store_unfolded(fx->s), b1);
	assert_int_equal(nb_store_fold(fx->s, 1000000), 0);
	assert_int_equal(nb_store_unfolded(fx->s), 0);
	assert_int_equal(
	    raw_count(fx->path,
		"SELECT count(*) FROM people WHERE kind = 0 AND hash = ?1"),
	    3);
	/* Two buckets further: a4 folded, a5 and x2 not. */
	seq_jump(fx->path, 3 * b1 + 5);
	s4 = padd(fx->s, "acme", "a4", "ada@example.com", NULL, 140);
	padd(fx->s, "acme", "x2", "bob@example.com", NULL, 150);
	padd(fx->s, "acme", "a5", "ADA@example.com", "u_1", 160);
	assert_int_equal(nb_store_fold(fx->s, (size_t)(s4 - s3)), 0);
	assert_int_equal(nb_store_unfolded(fx->s), 2);
	assert_int_equal(
	    raw_count(fx->path, "SELECT folded FROM people_fold"), s4);

	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.email = "ada@example.com";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a1,a2,a3,a4,a5");
	ids_paged(fx->s, f, got, sizeof(got));
	assert_string_equal(got, "a1,a2,a3,a4,a5");
	f.newest_first = 1;
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a5,a4,a3,a2,a1");
	ids_paged(fx->s, f, got, sizeof(got));
	assert_string_equal(got, "a5,a4,a3,a2,a1");
	/* A cursor inside a bucket, and one inside the tail. */
	f.before_seq = b1;
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a2,a1");
	f.before_seq = 0;
	f.after_seq = s4;
	f.newest_first = 0;
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a5");
	f.after_seq = 0;
	f.email = NULL;
	f.uid = "u_1";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a1,a3,a5");
	f.email = "ada@example.com";
	f.newest_first = 1;
	ids_paged(fx->s, f, got, sizeof(got));
	assert_string_equal(got, "a5,a3,a1");

	/* The erase deletes Ada's entries, folded or not; Bob's stay. */
	memset(&e, 0, sizeof(e));
	e.who.email = "ada@example.com";
	e.actor = "cli";
	e.now_ms = 1000;
	assert_int_equal(nb_store_erase(fx->s, &e, &au), 0);
	assert_int_equal(au.events, 5);
	assert_int_equal(raw_count(fx->path,
			     "SELECT count(*) FROM people WHERE hash = ?1"
			     " OR seq NOT IN (SELECT seq FROM events)"),
	    0);
	assert_int_equal(nb_store_fold(fx->s, 1000000), 0);
	assert_int_equal(raw_count(fx->path, "SELECT count(*) FROM people"),
	    3); /* x1's two, x2's one */
	f.uid = NULL;
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "");
	f.email = "bob@example.com";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "x2,x1");
}

/*
 * The retention prune drops the buckets wholly below the oldest row
 * stored, and only those: their entries are all of rows gone.
 */
static void
test_people_prune(void **state)
{
	struct fixture *fx = *state;
	const int64_t b1 = (int64_t)1 << SQ_PEOPLE_SHIFT;
	struct nb_store_filter f;
	int64_t seqs[3];
	char got[128];

	seqs[0] = padd(fx->s, "acme", "a1", "ada@example.com", "u_1", 100);
	seqs[1] = padd(fx->s, "acme", "a2", "ada@example.com", NULL, 100);
	seq_jump(fx->path, 2 * b1);
	seqs[2] = padd(fx->s, "acme", "a3", "ada@example.com", NULL, 100);
	padd(fx->s, "acme", "a4", "ada@example.com", NULL, 100);
	assert_int_equal(nb_store_fold(fx->s, 1000000), 0);
	assert_int_equal(nb_store_delivered(fx->s, seqs, 3, 200, NULL), 0);
	assert_int_equal(nb_store_prune(fx->s, 0, 300), 0);
	/* Bucket 0 went; bucket 2 stays, a3's entry too: a4 is in it. */
	assert_int_equal(raw_count(fx->path, "SELECT count(*) FROM people"), 2);
	assert_int_equal(
	    raw_count(fx->path, "SELECT min(bucket) FROM people"), 2);
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.email = "ada@example.com";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a4");
}

/*
 * A crash between append and fold loses nothing: a writer killed with
 * rows folded and rows not leaves a store whose search finds them all,
 * and the next fold indexes the rest.  The statements of the fold's
 * deletes search people rather than scan it.
 */
static void
test_people_crash(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_filter f;
	struct nb_store *s;
	char got[256], sql[1024], plan[1024];
	sqlite3_stmt *st;
	sqlite3 *db;
	pid_t pid;
	int status;

	nb_store_close(fx->s);
	fx->s = NULL;
	if ((pid = fork()) == 0) {
		s = open_store_cfg(&fx->cfg);
		padd(s, "acme", "a1", "ada@example.com", NULL, 100);
		padd(s, "acme", "a2", "ada@example.com", NULL, 100);
		if (nb_store_fold(s, 1) != 0)
			_exit(2);
		padd(s, "acme", "a3", "ada@example.com", NULL, 100);
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	assert_true(pid > 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	fx->s = open_store_cfg(&fx->cfg);
	assert_int_equal(raw_count(fx->path,
			     "SELECT folded FROM people_fold"
			     ""),
	    1);
	assert_int_equal(nb_store_unfolded(fx->s), 2);
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.email = "ada@example.com";
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a1,a2,a3");
	assert_int_equal(nb_store_fold(fx->s, 1000), 0);
	assert_int_equal(nb_store_unfolded(fx->s), 0);
	ids_of(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "a1,a2,a3");

	db = raw_open(fx->path);
	snprintf(sql, sizeof(sql), "EXPLAIN QUERY PLAN %s",
	    sq_stmt_sql[ST_PEOPLE_FORGET]);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	plan[0] = '\0';
	while (sqlite3_step(st) == SQLITE_ROW)
		snprintf(plan + strlen(plan), sizeof(plan) - strlen(plan),
		    "%s;", (const char *)sqlite3_column_text(st, 3));
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (strstr(plan, "SCAN people") != NULL)
		fail_msg("forget scans people: %s", plan);
}

/*
 * A version 6 file, the previous release's (sq_migrations[0..5]), with
 * the person indexes on events: the upgrade files every row's keys into
 * people, all folded, and drops the two indexes; a search finds the old
 * rows and the new ones, an erase forgets them.
 */
static void
test_migrate_v6(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_config cfg = fx->cfg;
	struct nb_store_filter f;
	struct nb_store_erase e;
	struct nb_store_audit au;
	struct nb_store *s;
	char path[160], sql[512], got[256];
	sqlite3 *db;
	int v, i;

	snprintf(path, sizeof(path), "%s/v6.db", fx->dir);
	db = raw_schema(path, 6);
	for (i = 1; i <= 4; i++) {
		snprintf(sql, sizeof(sql),
		    "INSERT INTO events (seq, source, event_id, type, state,"
		    " attempts, received_ms, age_base_ms, next_ms, lease_ms,"
		    " updated_ms, msgid_rule, email_key, uid_key) VALUES (NULL,"
		    " 'acme', 'old_%d', 'email.sent', 0, 0, 1000, 1000, 1000, "
		    "0,"
		    " 1000, 1, %lld, %s);"
		    "INSERT INTO payloads (seq, payload) VALUES (%d,"
		    " '{\"subscriber\":{\"email\":\"%s\",\"uid\":\"u_%d\"}}')",
		    i,
		    (long long)nb_person_key_email(
			i % 2 ? "ada@example.com" : "bob@example.com", 15),
		    i == 4 ? "NULL" : "1", i,
		    i % 2 ? "ada@example.com" : "bob@example.com", i);
		raw_exec(db, sql);
	}
	raw_exec(db, "PRAGMA user_version = 6; COMMIT");
	assert_int_equal(raw_int(db,
			     "SELECT count(*) FROM sqlite_schema"
			     " WHERE name IN ('events_email', 'events_uid')"),
	    2);
	sqlite3_close(db);

	cfg.path = path;
	s = open_store_cfg(&cfg);
	assert_int_equal(nb_store_schema_version(s, &v), 0);
	assert_int_equal(v, SCHEMA_LATEST);
	assert_int_equal(nb_store_unfolded(s), 0);
	assert_int_equal(raw_count(path, "SELECT count(*) FROM people"), 7);
	assert_int_equal(raw_count(path, "SELECT folded FROM people_fold"), 4);
	assert_int_equal(raw_count(path,
			     "SELECT count(*) FROM sqlite_schema WHERE name IN"
			     " ('events_email', 'events_uid')"),
	    0);
	padd(s, "acme", "new_1", "ada@example.com", NULL, 2000);
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.email = "ada@example.com";
	ids_of(s, &f, got, sizeof(got));
	assert_string_equal(got, "old_1,old_3,new_1");
	memset(&e, 0, sizeof(e));
	e.who.email = "ada@example.com";
	e.actor = "cli";
	e.now_ms = 3000;
	assert_int_equal(nb_store_erase(s, &e, &au), 0);
	assert_int_equal(au.events, 3);
	assert_int_equal(
	    raw_count(path, "SELECT count(*) FROM people WHERE hash = ?1"), 0);
	ids_of(s, &f, got, sizeof(got));
	assert_string_equal(got, "");
	f.email = "bob@example.com";
	ids_of(s, &f, got, sizeof(got));
	assert_string_equal(got, "old_2,old_4");
	nb_store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_schema, setup, teardown),
	    STORE_CASES(setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_plans, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_chunked_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_recover_and_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_two_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_size_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_purge_makes_room, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_v3, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_shared, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_payloads_follow_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_missing_payload, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_erase_leaves_no_bytes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_people_fold, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_people_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_people_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_v6, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
