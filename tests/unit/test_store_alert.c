/* SPDX-License-Identifier: ISC */
/*
 * test_store_alert: the alert tables on both backends.
 *
 * Every case runs on a fresh SQLite file and, when NB_TEST_PG_DSN names a
 * server (tests/pg.sh), on a fresh PostgreSQL schema too, with two
 * connections standing for two instances.  Checked: activity figures only
 * move forward; one evaluator at a time, taken over once its lease runs
 * out; an evaluator that lost the lease writes nothing; reports are per
 * instance; a notification is claimed by one instance at a time, a
 * "resolved" never before its "firing", a retry waits for its time, a
 * claim that ran out goes to another instance and the first can no longer
 * finish it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "nudgebridge/activity.h"
#include "nudgebridge/store.h"
#include "nudgebridge/store_alert.h"
#include "testlib.h"
/* The migration test builds a version 3 store with the backends' DDL. */
#include "../../src/store_pg.h"
#include "../../src/store_sqlite.h"

struct fixture {
	int pg;
	char dir[64];
	char path[128];
	PGconn *admin;
	char schema[64];
	struct nb_store_config cfg;
	struct nb_store *a, *b; /* two instances */
};

static struct nb_store *
open_store(struct fixture *fx)
{
	struct nb_store *s = NULL;
	char err[256];

	if (nb_store_open(&s, &fx->cfg, err, sizeof(err)) != 0)
		fail_msg("nb_store_open: %s", err);
	return s;
}

static int
setup_sqlite(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/nb-stal-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/nb.db", fx->dir);
	fx->cfg.driver = testlib_unconst("sqlite");
	fx->cfg.path = fx->path;
	fx->cfg.lease_s = 30;
	fx->a = open_store(fx);
	fx->b = open_store(fx);
	*state = fx;
	return 0;
}

static int
setup_pg(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *dsn;

	assert_non_null(fx);
	*state = fx;
	fx->pg = 1;
	dsn = testlib_pg_schema(
	    &fx->admin, fx->schema, sizeof(fx->schema), "nbal");
	if (dsn == NULL)
		return 0;
	fx->cfg.driver = testlib_unconst("postgres");
	fx->cfg.dsn = testlib_unconst(dsn);
	fx->cfg.lease_s = 30;
	fx->a = open_store(fx);
	fx->b = open_store(fx);
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char sql[160];

	nb_store_close(fx->a);
	nb_store_close(fx->b);
	testlib_pg_drop(fx->admin, fx->schema);
	if (!fx->pg) {
		snprintf(sql, sizeof(sql), "%s-wal", fx->path);
		unlink(sql);
		snprintf(sql, sizeof(sql), "%s-shm", fx->path);
		unlink(sql);
		unlink(fx->path);
		rmdir(fx->dir);
	}
	free(fx);
	return 0;
}

#define NEED(fx)                                                               \
	do {                                                                   \
		if ((fx)->a == NULL)                                           \
			skip();                                                \
	} while (0)

/* One beat of owner at now, lease for 5 s; returns whether it leads. */
static int
beat(struct nb_store *s, const char *owner, int64_t now,
    const struct nb_activity_row *act, size_t nact,
    const struct nb_alert_report *rep, size_t nrep)
{
	struct nb_alert_beat b;
	int leader = -1;

	memset(&b, 0, sizeof(b));
	b.owner = owner;
	b.now_ms = now;
	b.lease_until_ms = now + 5000;
	b.act = act;
	b.nact = nact;
	b.rep = rep;
	b.nrep = nrep;
	assert_int_equal(nb_store_alert_beat(s, &b, &leader), 0);
	assert_true(leader == 0 || leader == 1);
	return leader;
}

static int64_t
figure(struct nb_store *s, const char *source, const char *fp)
{
	struct nb_activity_row *rows;
	size_t n, i;
	int64_t v = -1;

	assert_int_equal(nb_store_activity(s, &rows, &n), 0);
	for (i = 0; i < n; i++)
		if (strcmp(rows[i].source, source) == 0 &&
		    strcmp(rows[i].fp, fp) == 0)
			v = rows[i].ms;
	free(rows);
	return v;
}

static void
test_activity(void **state)
{
	struct fixture *fx = *state;
	struct nb_activity_row r[2] = {
	    {"acme", "", 1000}, {"acme", "0a1b2c3d", 1000}};

	NEED(fx);
	beat(fx->a, "a", 100, r, 2, NULL, 0);
	assert_int_equal(figure(fx->b, "acme", ""), 1000);
	assert_int_equal(figure(fx->b, "acme", "0a1b2c3d"), 1000);
	/* Another instance with an older figure moves nothing back. */
	r[0].ms = 500;
	beat(fx->b, "b", 200, r, 1, NULL, 0);
	assert_int_equal(figure(fx->a, "acme", ""), 1000);
	r[0].ms = 2000;
	beat(fx->b, "b", 300, r, 1, NULL, 0);
	assert_int_equal(figure(fx->a, "acme", ""), 2000);
	assert_int_equal(figure(fx->a, "acme", "0a1b2c3d"), 1000);
	assert_int_equal(figure(fx->a, "beta", ""), -1);
}

static void
test_lease(void **state)
{
	struct fixture *fx = *state;

	NEED(fx);
	assert_int_equal(beat(fx->a, "a", 1000, NULL, 0, NULL, 0), 1);
	assert_int_equal(beat(fx->b, "b", 2000, NULL, 0, NULL, 0), 0);
	/* A renews; B still waits. */
	assert_int_equal(beat(fx->a, "a", 3000, NULL, 0, NULL, 0), 1);
	assert_int_equal(beat(fx->b, "b", 7999, NULL, 0, NULL, 0), 0);
	/* A stops beating: B takes over once the lease ran out. */
	assert_int_equal(beat(fx->b, "b", 8001, NULL, 0, NULL, 0), 1);
	assert_int_equal(beat(fx->a, "a", 9000, NULL, 0, NULL, 0), 0);
}

static void
test_reports(void **state)
{
	struct fixture *fx = *state;
	struct nb_alert_report rep = {.kind = NB_ALERT_SOURCE_PAUSED,
	    .source = "acme",
	    .status = 401,
	    .text = "Segment answered 401",
	    .seen_ms = 1000};
	struct nb_alert_view v;

	NEED(fx);
	beat(fx->a, "a", 1000, NULL, 0, &rep, 1);
	beat(fx->b, "b", 1000, NULL, 0, NULL, 0);
	assert_int_equal(nb_store_alert_read(fx->b, 0, &v), 0);
	assert_int_equal(v.nrep, 1);
	assert_int_equal(v.rep[0].kind, NB_ALERT_SOURCE_PAUSED);
	assert_string_equal(v.rep[0].source, "acme");
	assert_int_equal(v.rep[0].status, 401);
	assert_string_equal(v.rep[0].text, "Segment answered 401");
	nb_alert_view_clear(&v);
	/* Reports older than asked for are not read. */
	assert_int_equal(nb_store_alert_read(fx->b, 1001, &v), 0);
	assert_int_equal(v.nrep, 0);
	nb_alert_view_clear(&v);
	/* A beat replaces the owner's reports. */
	beat(fx->a, "a", 2000, NULL, 0, NULL, 0);
	assert_int_equal(nb_store_alert_read(fx->b, 0, &v), 0);
	assert_int_equal(v.nrep, 0);
	nb_alert_view_clear(&v);
}

static void
state_init(struct nb_alert_state *st, enum nb_alert_kind k, const char *src,
    int firing)
{
	memset(st, 0, sizeof(*st));
	st->kind = k;
	snprintf(st->source, sizeof(st->source), "%s", src);
	st->firing = firing;
	st->started_ms = 1500;
	st->mark = 7;
	snprintf(st->summary, sizeof(st->summary), "summary of %s", src);
	snprintf(st->details, sizeof(st->details), "{\"n\":1}");
}

static void
note_init(
    struct nb_alert_note *n, const char *id, const char *src, int resolved)
{
	memset(n, 0, sizeof(*n));
	snprintf(n->msg_id, sizeof(n->msg_id), "%s", id);
	n->kind = NB_ALERT_DEAD_LETTERS;
	snprintf(n->source, sizeof(n->source), "%s", src);
	n->resolved = resolved;
	n->body = testlib_unconst(
	    resolved ? "{\"status\":\"resolved\"}" : "{\"status\":\"firing\"}");
}

/* apply as owner at now; returns *applied. */
static int
apply(struct nb_store *s, const char *owner, int64_t now,
    const struct nb_alert_state *st, size_t nst,
    const struct nb_alert_note *notes, size_t nnotes)
{
	struct nb_alert_apply ap;
	int applied = -1;

	memset(&ap, 0, sizeof(ap));
	ap.owner = owner;
	ap.now_ms = now;
	ap.lease_until_ms = now + 5000;
	ap.st = st;
	ap.nst = nst;
	ap.notes = notes;
	ap.nnotes = nnotes;
	assert_int_equal(nb_store_alert_apply(s, &ap, &applied), 0);
	return applied;
}

static void
test_apply(void **state)
{
	struct fixture *fx = *state;
	struct nb_alert_state st[2];
	struct nb_alert_view v;
	size_t i;

	NEED(fx);
	state_init(&st[0], NB_ALERT_DEAD_LETTERS, "acme", 1);
	state_init(&st[1], NB_ALERT_SOURCE_SILENT, "beta", 0);
	assert_int_equal(beat(fx->a, "a", 1000, NULL, 0, NULL, 0), 1);
	/* Not the evaluator: nothing written. */
	assert_int_equal(apply(fx->b, "b", 1100, st, 2, NULL, 0), 0);
	assert_int_equal(nb_store_alert_read(fx->b, 0, &v), 0);
	assert_int_equal(v.nst, 0);
	nb_alert_view_clear(&v);
	assert_int_equal(apply(fx->a, "a", 1200, st, 2, NULL, 0), 1);
	assert_int_equal(nb_store_alert_read(fx->b, 0, &v), 0);
	assert_int_equal(v.nst, 2);
	for (i = 0; i < v.nst; i++) {
		assert_true(v.st[i].known);
		assert_int_equal(v.st[i].mark, 7);
		assert_int_equal(v.st[i].started_ms, 1500);
		if (v.st[i].kind == NB_ALERT_DEAD_LETTERS) {
			assert_string_equal(v.st[i].source, "acme");
			assert_int_equal(v.st[i].firing, 1);
		} else {
			assert_string_equal(v.st[i].source, "beta");
			assert_int_equal(v.st[i].firing, 0);
		}
		assert_string_equal(v.st[i].details, "{\"n\":1}");
	}
	nb_alert_view_clear(&v);
	/* A replaced state, and an evaluator whose lease ran out. */
	st[0].firing = 0;
	assert_int_equal(apply(fx->a, "a", 1300, st, 1, NULL, 0), 1);
	assert_int_equal(apply(fx->a, "a", 7000, st, 1, NULL, 0), 0);
	assert_int_equal(nb_store_alert_read(fx->a, 0, &v), 0);
	for (i = 0; i < v.nst; i++)
		assert_int_equal(v.st[i].firing, 0);
	nb_alert_view_clear(&v);
}

/* Claims as owner at now; the notes go to *out, or are freed. */
static size_t
claim(struct nb_store *s, const char *owner, int64_t now,
    struct nb_alert_note **out)
{
	struct nb_alert_note *got = NULL;
	size_t n = 0;

	assert_int_equal(
	    nb_store_alert_claim(s, owner, now, now + 5000, 10, &got, &n), 0);
	if (out != NULL)
		*out = got;
	else
		nb_alert_notes_free(got, n);
	return n;
}

static void
test_outbox(void **state)
{
	struct fixture *fx = *state;
	struct nb_alert_note notes[3], *got;
	size_t n;

	NEED(fx);
	note_init(&notes[0], "m1", "acme", 0);
	note_init(&notes[1], "m2", "acme", 1);
	note_init(&notes[2], "m3", "beta", 0);
	assert_int_equal(beat(fx->a, "a", 1000, NULL, 0, NULL, 0), 1);
	assert_int_equal(apply(fx->a, "a", 1000, NULL, 0, notes, 3), 1);

	/* acme's "resolved" waits for its "firing". */
	assert_int_equal(n = claim(fx->a, "a", 1000, &got), 2);
	assert_string_equal(got[0].msg_id, "m1");
	assert_int_equal(got[0].resolved, 0);
	assert_string_equal(got[0].body, "{\"status\":\"firing\"}");
	assert_string_equal(got[0].source, "acme");
	assert_int_equal(got[0].kind, NB_ALERT_DEAD_LETTERS);
	assert_int_equal(got[0].created_ms, 1000);
	assert_string_equal(got[1].msg_id, "m3");
	/* Leased to a: b gets nothing. */
	assert_int_equal(claim(fx->b, "b", 1100, NULL), 0);
	assert_int_equal(nb_store_alert_finish(fx->a, "a", got[0].id,
			     NB_ALERT_SENT, 1200, 0, NULL),
	    0);
	assert_int_equal(nb_store_alert_finish(fx->a, "a", got[1].id,
			     NB_ALERT_RETRY, 1200, 3000, "HTTP 500"),
	    0);
	nb_alert_notes_free(got, n);

	/* Now the "resolved"; m3 waits for its retry time. */
	assert_int_equal(n = claim(fx->b, "b", 1300, &got), 1);
	assert_string_equal(got[0].msg_id, "m2");
	assert_int_equal(nb_store_alert_finish(fx->b, "b", got[0].id,
			     NB_ALERT_DROPPED, 1400, 0, "given up"),
	    0);
	nb_alert_notes_free(got, n);
	assert_int_equal(n = claim(fx->b, "b", 3000, &got), 1);
	assert_string_equal(got[0].msg_id, "m3");
	assert_int_equal(got[0].attempts, 1);
	nb_alert_notes_free(got, n);

	/* b's claim runs out: a takes m3, b can no longer finish it. */
	assert_int_equal(n = claim(fx->a, "a", 8001, &got), 1);
	assert_string_equal(got[0].msg_id, "m3");
	assert_int_equal(nb_store_alert_finish(fx->b, "b", got[0].id,
			     NB_ALERT_SENT, 8100, 0, NULL),
	    0);
	assert_int_equal(claim(fx->b, "b", 14000, NULL), 1);
	nb_alert_notes_free(got, n);
}

static void
test_prune(void **state)
{
	struct fixture *fx = *state;
	struct nb_alert_report rep = {.kind = NB_ALERT_SOURCE_PAUSED,
	    .source = "acme",
	    .status = 403,
	    .seen_ms = 1000};
	struct nb_alert_apply ap;
	struct nb_alert_view v;
	int applied = 0;

	NEED(fx);
	beat(fx->b, "b", 1000, NULL, 0, &rep, 1);
	assert_int_equal(beat(fx->a, "a", 1000, NULL, 0, NULL, 0), 0);
	assert_int_equal(beat(fx->a, "a", 9000, NULL, 0, NULL, 0), 1);
	memset(&ap, 0, sizeof(ap));
	ap.owner = "a";
	ap.now_ms = 9000;
	ap.lease_until_ms = 14000;
	ap.prune_before_ms = 2000;
	assert_int_equal(nb_store_alert_apply(fx->a, &ap, &applied), 0);
	assert_int_equal(applied, 1);
	assert_int_equal(nb_store_alert_read(fx->a, 0, &v), 0);
	assert_int_equal(v.nrep, 0);
	nb_alert_view_clear(&v);
}

/*
 * A store that had dead letters before it got the alert tables: they are
 * counted as told (mark), so an upgrade alerts about none of them.
 */
static void
test_migration_baseline(void **state)
{
	struct fixture *fx = *state;
	struct nb_alert_view v;
	struct nb_store *s;
	sqlite3 *db;
	char sql[256];
	int i;

	NEED(fx);
	nb_store_close(fx->a);
	nb_store_close(fx->b);
	fx->a = fx->b = NULL;
	if (fx->pg) {
		snprintf(sql, sizeof(sql),
		    "DROP SCHEMA %s CASCADE; CREATE SCHEMA %s; SET search_path "
		    "= %s",
		    fx->schema, fx->schema, fx->schema);
		testlib_pg_exec(fx->admin, sql);
		for (i = 0; i < 3; i++)
			testlib_pg_exec(fx->admin, pgs_migrations[i]);
		testlib_pg_exec(fx->admin,
		    "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK "
		    "(id = 1), version INTEGER NOT NULL);"
		    "INSERT INTO schema_version VALUES (1, 3);"
		    "INSERT INTO counters (source, slot, dead_total) VALUES "
		    "('acme', 0, 4), ('acme', 77, 3), ('beta', 0, 0)");
	} else {
		unlink(fx->path);
		assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
		for (i = 0; i < 3; i++)
			assert_int_equal(sqlite3_exec(db, sq_migrations[i],
					     NULL, NULL, NULL),
			    SQLITE_OK);
		assert_int_equal(
		    sqlite3_exec(db,
			"PRAGMA user_version = 3;"
			"INSERT INTO counters (source, dead_total) VALUES "
			"('acme', 7), ('beta', 0)",
			NULL, NULL, NULL),
		    SQLITE_OK);
		sqlite3_close(db);
	}
	s = open_store(fx);
	assert_int_equal(nb_store_alert_read(s, 0, &v), 0);
	assert_int_equal(v.nst, 2);
	for (i = 0; i < (int)v.nst; i++) {
		assert_int_equal(v.st[i].kind, NB_ALERT_DEAD_LETTERS);
		assert_int_equal(v.st[i].firing, 0);
		assert_int_equal(
		    v.st[i].mark, strcmp(v.st[i].source, "acme") == 0 ? 7 : 0);
	}
	nb_alert_view_clear(&v);
	fx->a = s;
}

#define BOTH(fn)                                                               \
	cmocka_unit_test_setup_teardown(fn, setup_sqlite, teardown),           \
	    cmocka_unit_test_setup_teardown(fn, setup_pg, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(test_activity),
	    BOTH(test_lease),
	    BOTH(test_reports),
	    BOTH(test_apply),
	    BOTH(test_outbox),
	    BOTH(test_prune),
	    BOTH(test_migration_baseline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
