/* SPDX-License-Identifier: ISC */
/*
 * test_store_pg: the PostgreSQL store against a real server.
 *
 * NB_TEST_PG_DSN names a database (tests/pg.sh starts a throw-away
 * cluster); without it every test is skipped, saying why.  Each test runs
 * in a fresh schema of its own (PGOPTIONS sets the search_path of every
 * connection the store opens), so migrations run from scratch every time.
 * The contract cases are store_cases.c, shared with test_store.c (SQLite),
 * so both backends answer the same; the rest is what only a shared server
 * has: a group the server refuses, concurrent opens,
 * two instances receiving one webhook at once, concurrent claims, a lease
 * taken over by another instance, and a connection killed under the store.
 * Times are injected (small integers), never read from the clock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "nudgebridge/store.h"
/* The plan test reads the backend's own statements. */
#include "../../src/store_pg.h"

/* The schema version this build writes. */
#define SCHEMA_LATEST	6
#define SCHEMA_LATEST_S "6"

struct fixture {
	PGconn *admin;
	char schema[64];
	char dsn[512]; /* the server's, naming this fixture's connections */
	struct nb_store_config cfg;
	struct nb_store *s;
};

/* Every test starts with this: no server named, nothing to test. */
#define STORE_NEED(fx)                                                         \
	do {                                                                   \
		if ((fx)->s == NULL)                                           \
			skip();                                                \
	} while (0)

/* The model's rows are all there, none twice. */
#define STORE_CHECK_ROWS(fx, n)                                                \
	assert_int_equal(                                                      \
	    admin_int((fx)->admin, "SELECT count(DISTINCT seq) FROM events"),  \
	    (n))

static int64_t admin_int(PGconn *c, const char *sql);

/* The rows of the attempts table (attempt history's records). */
#define STORE_ATTEMPT_ROWS(fx)                                                 \
	admin_int((fx)->admin, "SELECT count(*) FROM attempts")

#include "store_cases.c"

static int64_t
admin_int(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	int64_t v;

	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
		fail_msg("%s: %s", sql, PQerrorMessage(c));
	v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return v;
}

static int
setup(void **state)
{
	struct fixture *fx;
	const char *dsn;

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	*state = fx;
	dsn = testlib_pg_schema(
	    &fx->admin, fx->schema, sizeof(fx->schema), "nbt");
	if (dsn == NULL)
		return 0;
	/*
	 * The store's connections carry the schema's name: test_reconnect
	 * ends those only, never those of the tests that share the server.
	 */
	if (strncmp(dsn, "postgres", 8) == 0)
		snprintf(fx->dsn, sizeof(fx->dsn), "%s%capplication_name=%s",
		    dsn, strchr(dsn, '?') != NULL ? '&' : '?', fx->schema);
	else
		snprintf(fx->dsn, sizeof(fx->dsn), "%s application_name=%s",
		    dsn, fx->schema);
	fx->cfg.driver = testlib_unconst("postgres");
	fx->cfg.dsn = fx->dsn;
	fx->cfg.lease_s = 30;
	fx->s = open_store(fx);
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	nb_store_close(fx->s);
	testlib_pg_drop(fx->admin, fx->schema);
	free(fx);
	return 0;
}

/* Number of claimable rows of acme at now (claimed and released again). */
static size_t
claimable(struct nb_store *s, int64_t now)
{
	const char *acme[] = {"acme"};
	struct nb_stored_event *rows = NULL;
	int64_t seqs[64];
	size_t i, n = 0;

	assert_int_equal(
	    nb_store_claim(s, acme, 1, now, now + 1, 64, &rows, &n), 0);
	for (i = 0; i < n; i++)
		seqs[i] = rows[i].seq;
	nb_stored_events_free(rows, n);
	assert_int_equal(nb_store_release(s, seqs, n, NULL), 0);
	return n;
}

static void *
open_thread(void *arg)
{
	struct fixture *fx = arg;
	struct nb_store *s = NULL;
	char err[256];

	if (nb_store_open(&s, &fx->cfg, err, sizeof(err)) != 0)
		return NULL;
	return s;
}

static void
test_open_schema(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_config cfg;
	struct nb_store *s = (struct nb_store *)1, *other;
	pthread_t th[4];
	void *got[4];
	char sql[192], err[256];
	int v = -1, i;

	STORE_NEED(fx);
	cfg = fx->cfg;
	assert_int_equal(nb_store_schema_version(fx->s, &v), 0);
	assert_int_equal(v, SCHEMA_LATEST);
	/* Recovery keeps other instances' leases: nothing to do. */
	assert_int_equal(nb_store_recover(fx->s), 0);

	cfg.dsn = NULL;
	assert_int_equal(nb_store_open(&s, &cfg, err, sizeof(err)), -1);
	assert_null(s);
	assert_string_equal(err, "store.dsn: missing");
	cfg.dsn = testlib_unconst("postgresql://nobody@127.0.0.1:1/none");
	assert_int_equal(nb_store_open(&s, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "store.dsn: cannot connect"));

	/* Opening an up-to-date schema again changes nothing. */
	other = open_store(fx);
	assert_int_equal(nb_store_schema_version(other, &v), 0);
	assert_int_equal(v, SCHEMA_LATEST);
	nb_store_close(other);

	/* Instances starting together on an empty schema: the advisory lock
	 * lets one migrate while the others wait, and all open. */
	nb_store_close(fx->s);
	fx->s = NULL;
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE; CREATE SCHEMA %s",
	    fx->schema, fx->schema);
	testlib_pg_exec(fx->admin, sql);
	for (i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&th[i], NULL, open_thread, fx), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(pthread_join(th[i], &got[i]), 0);
	/* One of them made the install id; all of them read it. */
	for (i = 0; i < 4; i++) {
		assert_non_null(got[i]);
		assert_int_equal(nb_store_schema_version(got[i], &v), 0);
		assert_int_equal(v, SCHEMA_LATEST);
		assert_string_equal(
		    nb_store_install_id(got[i]), nb_store_install_id(got[0]));
	}
	assert_int_equal(
	    admin_int(fx->admin, "SELECT count(*) FROM install"), 1);
	for (i = 0; i < 4; i++)
		nb_store_close(got[i]);

	/* A schema from a newer build is refused. */
	testlib_pg_exec(fx->admin, "UPDATE schema_version SET version = 99");
	assert_int_equal(nb_store_open(&s, &fx->cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "schema version 99"));
	testlib_pg_exec(
	    fx->admin, "UPDATE schema_version SET version = " SCHEMA_LATEST_S);
	fx->s = open_store(fx);
}

/*
 * Version 1 rows, as the builds before version 2 wrote them (the payload
 * inside events): pending, pending leased and retried, delivered with a
 * payload larger than a page, dead, quarantined without id, and a row
 * purged since (seq 7, never to come back).
 */
static const char v1_rows[] =
    "INSERT INTO events (source, event_id, type, payload, state, reason,"
    " error, attempts, received_ms, age_base_ms, next_ms, lease_ms,"
    " updated_ms, lease_owner) VALUES"
    " ('acme', 'evt_p1', 'email.sent', '\\x7b7d', 0, NULL, NULL, 0,"
    " 1000, 1000, 1000, 0, 1000, NULL),"
    " ('acme', 'evt_p2', 'email.opened', decode(repeat('61', 600), 'hex'),"
    " 0, NULL, 'HTTP 503', 2, 1100, 1100, 5000, 90000, 1100, 'old/1'),"
    " ('beta', 'evt_v1', 'email.sent', decode(repeat('62', 20000), 'hex'),"
    " 1, NULL, NULL, 0, 1200, 1200, 1200, 0, 2000, NULL),"
    " ('acme', 'evt_x1', 'email.clicked', '\\x7b7d', 2, 'max_attempts',"
    " 'HTTP 500', 10, 1300, 1250, 1300, 0, 3000, NULL),"
    " ('acme', NULL, 'email.sent', '\\x', 2, 'quarantined',"
    " 'id: missing', 0, 1400, 1400, 1400, 0, 1400, NULL),"
    " ('beta', 'evt_q2', NULL, '\\x7b7d', 2, 'quarantined',"
    " 'type: missing', 0, 1500, 1500, 1500, 0, 1500, NULL),"
    " ('acme', 'evt_gone', 'email.sent', '\\x7b7d', 2, 'too_large', 'big',"
    " 0, 1600, 1600, 1600, 0, 1600, NULL);"
    "DELETE FROM events WHERE seq = 7;"
    "INSERT INTO seen_events VALUES ('acme', 'evt_p1', 1000);"
    "INSERT INTO seen_requests VALUES ('acme', 'wh_old', 1000);"
    "CREATE TABLE schema_version (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " version INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1, 1)";

/*
 * A version 1 database comes out of nb_store_open() at the latest version
 * with every row, field and payload intact, the payloads in their table
 * and gone from events, the leases, dedupe keys and seq high-water mark
 * kept, and the counters counted from the rows.
 */
static void
test_migrate_v1(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_source_stats *st = NULL;
	struct nb_stored_event *rows = NULL;
	struct nb_store_filter f;
	struct nb_event e;
	struct nb_append r;
	char sql[256];
	size_t n = 0, i;
	int v = 0;

	STORE_NEED(fx);
	nb_store_close(fx->s);
	fx->s = NULL;
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE; CREATE SCHEMA %s",
	    fx->schema, fx->schema);
	testlib_pg_exec(fx->admin, sql);
	testlib_pg_exec(fx->admin, pgs_migrations[0]);
	testlib_pg_exec(fx->admin, v1_rows);
	fx->s = open_store(fx);
	assert_int_equal(nb_store_schema_version(fx->s, &v), 0);
	assert_int_equal(v, SCHEMA_LATEST);

	memset(&f, 0, sizeof(f));
	f.states = ALL;
	assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
	assert_int_equal(n, 6);
	assert_int_equal(rows[0].seq, 1);
	assert_string_equal(rows[0].raw, "{}");
	assert_int_equal(rows[1].rawlen, 600);
	assert_int_equal(rows[1].raw[599], 'a');
	assert_int_equal(rows[1].attempts, 2);
	assert_string_equal(rows[1].error, "HTTP 503");
	assert_int_equal(rows[2].rawlen, 20000);
	assert_int_equal(rows[2].state, NB_STATE_DELIVERED);
	assert_int_equal(rows[2].updated_ms, 2000);
	assert_string_equal(rows[3].reason, NB_REASON_MAX_ATTEMPTS);
	assert_int_equal(rows[3].age_base_ms, 1250);
	assert_null(rows[4].id);
	assert_int_equal(rows[4].rawlen, 0);
	assert_null(rows[5].type);
	/* Stored before install ids: they keep the legacy messageId. */
	for (i = 0; i < n; i++)
		assert_int_equal(rows[i].rule, NB_SEGMENT_RULE_LEGACY);
	nb_stored_events_free(rows, n);

	/* The table itself: payloads moved, the column gone. */
	assert_int_equal(
	    admin_int(fx->admin, "SELECT count(*) FROM payloads"), 6);
	assert_int_equal(admin_int(fx->admin,
			     "SELECT count(*) FROM information_schema.columns"
			     " WHERE table_schema = current_schema()"
			     " AND table_name = 'events'"
			     " AND column_name = 'payload'"),
	    0);
	/* The counters, as if counted. */
	assert_int_equal(nb_store_stats(fx->s, 10000, &st, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(st[0].pending, 2);
	assert_int_equal(st[0].inflight, 1);
	assert_int_equal(st[0].dead, 2);
	assert_int_equal(st[0].quarantined, 1);
	assert_int_equal(st[0].oldest_pending_ms, 1000);
	assert_int_equal(st[0].received_total, 4);
	assert_int_equal(st[1].delivered, 1);
	assert_int_equal(st[1].quarantined, 1);
	free(st);

	/* The old lease holds; dedupe keys survive; seqs go on past 7. */
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 10000, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(rows[0].id, "evt_p1");
	nb_stored_events_free(rows, n);
	e = ev("evt_p1", "email.sent", "{}", NULL);
	r = req("acme", "wh_old", &e, 1, 1500);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 1, 0);
	r = req("acme", "wh_new", &e, 1, 1500);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 1, 0);
	e = ev("evt_new", "email.sent", "{\"id\":\"evt_new\"}", NULL);
	r = req("acme", "wh_new2", &e, 1, 1500);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 1, 0, 0);
	assert_int_equal(seq_of(fx->s, "evt_new"), 8);
	rows = by_id(fx->s, "evt_new");
	assert_int_equal(rows[0].rule, NB_SEGMENT_RULE_CURRENT);
	nb_stored_events_free(rows, 1);
	assert_int_equal(admin_int(fx->admin,
			     "SELECT count(*) FROM events"
			     " WHERE msgid_rule = 0"),
	    6);
}

/* A group the server refuses stores nothing, not even dedupe keys. */
static void
test_group_refused(void **state)
{
	struct fixture *fx = *state;
	struct nb_event e1[] = {ev("a", "t", "{}", NULL)};
	/* Not UTF-8: the server refuses the text, failing the group. */
	struct nb_event bad[] = {ev("z", "\xff\xfe", "{}", NULL)};
	struct nb_append r1 = req("acme", "wh_1", e1, 1, 100);
	struct nb_append rb = req("acme", "wh_b", bad, 1, 100);
	struct nb_append *failing[] = {&r1, &rb};

	STORE_NEED(fx);
	assert_int_equal(nb_store_append(fx->s, failing, 2), -1);
	assert_int_equal(count(fx->s, ALL, NULL), 0);
	/* The connection is fine after the failure, the keys are free. */
	assert_int_equal(nb_store_probe(fx->s), 0);
	r1 = req("acme", "wh_1", e1, 1, 100);
	assert_int_equal(append1(fx->s, &r1), 0);
	assert_counts(&r1, 1, 0, 0);
}

/* Leases survive a restart; recovery leaves them; they run out. */
static void
test_restart_keeps_leases(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_stored_event *rows = NULL;
	size_t n;

	STORE_NEED(fx);
	add(fx->s, "acme", "a", 100);
	add(fx->s, "acme", "b", 100);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 30000, 10, &rows, &n), 0);
	assert_int_equal(n, 2);
	nb_stored_events_free(rows, n);
	nb_store_close(fx->s);
	fx->s = open_store(fx);
	assert_int_equal(nb_store_recover(fx->s), 0);
	assert_int_equal(claimable(fx->s, 29999), 0);
	assert_int_equal(claimable(fx->s, 30000), 2);
}

/* Two instances, one webhook, the same moment: stored once. */
struct appender {
	struct fixture *fx;
	pthread_barrier_t *barrier;
	int rounds;
	int accepted[64];
	int duplicates[64];
	int failed;
};

static void *
append_thread(void *arg)
{
	struct appender *a = arg;
	struct nb_store *s = open_thread(a->fx);
	struct nb_event e[3];
	struct nb_append r;
	char wh[32], ids[3][32];
	int i, k;

	for (i = 0; i < a->rounds; i++) {
		snprintf(wh, sizeof(wh), "wh_%d", i);
		for (k = 0; k < 3; k++) {
			snprintf(ids[k], sizeof(ids[k]), "evt_%d_%d", i, k);
			e[k] = ev(ids[k], "t", "{}", NULL);
		}
		r = req("acme", wh, e, 3, 1000 + i);
		pthread_barrier_wait(a->barrier);
		if (s == NULL || append1(s, &r) == -1) {
			a->failed++;
			continue;
		}
		a->accepted[i] = r.accepted;
		a->duplicates[i] = r.duplicates;
	}
	nb_store_close(s);
	return NULL;
}

static void
test_concurrent_same_webhook(void **state)
{
	struct fixture *fx = *state;
	pthread_barrier_t barrier;
	struct appender a[2];
	pthread_t th[2];
	int i, k, rounds = 40;

	STORE_NEED(fx);
	assert_int_equal(pthread_barrier_init(&barrier, NULL, 2), 0);
	for (k = 0; k < 2; k++) {
		memset(&a[k], 0, sizeof(a[k]));
		a[k].fx = fx;
		a[k].barrier = &barrier;
		a[k].rounds = rounds;
		assert_int_equal(
		    pthread_create(&th[k], NULL, append_thread, &a[k]), 0);
	}
	for (k = 0; k < 2; k++)
		assert_int_equal(pthread_join(th[k], NULL), 0);
	pthread_barrier_destroy(&barrier);
	assert_int_equal(a[0].failed + a[1].failed, 0);
	for (i = 0; i < rounds; i++) {
		/* Exactly one instance stored the request. */
		assert_int_equal(a[0].accepted[i] + a[1].accepted[i], 3);
		assert_int_equal(a[0].duplicates[i] + a[1].duplicates[i], 3);
		assert_true(a[0].accepted[i] == 0 || a[1].accepted[i] == 0);
	}
	assert_int_equal(count(fx->s, ALL, NULL), (size_t)rounds * 3);
}

/* Two instances draining one queue: every row exactly once. */
struct claimer {
	struct fixture *fx;
	int64_t *seqs;
	size_t n;
	int failed;
};

static void *
claim_thread(void *arg)
{
	struct claimer *c = arg;
	const char *src[] = {"acme", "beta"};
	struct nb_store *s = open_thread(c->fx);
	struct nb_stored_event *rows = NULL;
	size_t i, n;

	if (s == NULL) {
		c->failed = 1;
		return NULL;
	}
	for (;;) {
		if (nb_store_claim(s, src, 2, 100000, 200000, 7, &rows, &n) ==
		    -1) {
			c->failed = 1;
			break;
		}
		if (n == 0)
			break;
		for (i = 0; i < n; i++)
			c->seqs[c->n++] = rows[i].seq;
		nb_stored_events_free(rows, n);
	}
	nb_store_close(s);
	return NULL;
}

static int
cmp_seq(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
test_concurrent_claims(void **state)
{
	struct fixture *fx = *state;
	enum { ROWS = 300 };
	struct nb_event e[ROWS];
	struct nb_append r1, r2;
	struct nb_append *group[] = {&r1, &r2};
	struct claimer c[2];
	pthread_t th[2];
	int64_t all[2 * ROWS];
	size_t i, total;

	STORE_NEED(fx);
	for (i = 0; i < ROWS; i++)
		e[i] = ev(NULL, "t", "{}", NULL);
	r1 = req("acme", "wh_a", e, ROWS / 2, 100);
	r2 = req("beta", "wh_b", e + ROWS / 2, ROWS / 2, 100);
	assert_int_equal(nb_store_append(fx->s, group, 2), 0);
	for (i = 0; i < 2; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		c[i].fx = fx;
		c[i].seqs = all + i * ROWS;
		assert_int_equal(
		    pthread_create(&th[i], NULL, claim_thread, &c[i]), 0);
	}
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	assert_int_equal(c[0].failed + c[1].failed, 0);
	total = c[0].n + c[1].n;
	assert_int_equal(total, ROWS);
	memmove(all + c[0].n, all + ROWS, c[1].n * sizeof(all[0]));
	qsort(all, total, sizeof(all[0]), cmp_seq);
	for (i = 1; i < total; i++)
		assert_true(all[i] > all[i - 1]);
}

/* An instance whose lease ran out cannot undo the next owner's lease. */
static void
test_lease_takeover(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_store *b;
	struct nb_stored_event *rows = NULL, *row;
	struct nb_store_retry rt;
	int64_t seq;
	size_t n;

	STORE_NEED(fx);
	b = open_store(fx);
	add(fx->s, "acme", "x", 100);
	seq = seq_of(fx->s, "x");
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 1000, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	nb_stored_events_free(rows, n);
	/* B sees the lease until it runs out, then takes the row over. */
	assert_int_equal(
	    nb_store_claim(b, acme, 1, 999, 5000, 10, &rows, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    nb_store_claim(b, acme, 1, 1000, 5000, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, seq);
	nb_stored_events_free(rows, n);

	/* A's late release, extend and retry leave B's lease alone. */
	assert_int_equal(nb_store_release(fx->s, &seq, 1, NULL), 0);
	assert_int_equal(nb_store_extend(fx->s, &seq, 1, 100000), 0);
	rt.seq = seq;
	rt.next_ms = 0;
	assert_int_equal(nb_store_retry(fx->s, &rt, 1, "late", NULL), 0);
	assert_int_equal(claimable(fx->s, 4999), 0);
	row = by_id(fx->s, "x");
	assert_int_equal(row->attempts, 0);
	assert_null(row->error);
	nb_stored_events_free(row, 1);
	/* B's own extend works; its delivery ends the row. */
	assert_int_equal(nb_store_extend(b, &seq, 1, 8000), 0);
	assert_int_equal(claimable(fx->s, 7999), 0);
	assert_int_equal(nb_store_delivered(b, &seq, 1, 7000, NULL), 0);
	assert_int_equal(claimable(fx->s, 9000), 0);
	nb_store_close(b);
}

/*
 * Each connection counts in a slot of its own (its backend pid), so two
 * instances never wait on one counters row; the prune folds the slots of
 * connections that are gone into slot 0, and the sums stay the same.
 */
static void
test_counter_slots(void **state)
{
	struct fixture *fx = *state;
	struct nb_source_stats *st = NULL;
	struct nb_store *b;
	char sql[256];
	size_t n;
	int tries;

	STORE_NEED(fx);
	b = open_store(fx);
	add(fx->s, "acme", "a1", 100);
	add(b, "acme", "b1", 100);
	add(b, "acme", "b2", 100);
	assert_int_equal(admin_int(fx->admin,
			     "SELECT count(*) FROM counters"
			     " WHERE source = 'acme'"),
	    2);
	nb_store_close(b);
	/* Wait until the server has let the closed connection go. */
	for (tries = 0; tries < 500; tries++) {
		snprintf(sql, sizeof(sql),
		    "SELECT count(*) FROM counters WHERE source = 'acme'"
		    " AND slot <> 0"
		    " AND slot NOT IN (SELECT pid FROM pg_stat_activity)");
		if (admin_int(fx->admin, sql) == 1)
			break;
		usleep(10000);
	}
	assert_int_equal(admin_int(fx->admin, sql), 1);
	assert_int_equal(nb_store_prune(fx->s, 0, 0), 0);
	/* Two rows still: this connection's slot and slot 0 (b's, folded). */
	assert_int_equal(admin_int(fx->admin,
			     "SELECT count(*) FROM counters"
			     " WHERE source = 'acme' AND slot = 0"
			     " AND pending = 2 AND received_total = 2"),
	    1);
	assert_int_equal(admin_int(fx->admin, sql), 0);
	assert_int_equal(nb_store_stats(fx->s, 0, &st, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].pending, 3);
	assert_int_equal(st[0].received_total, 3);
	free(st);
}

/*
 * 1 when a node of an EXPLAIN (FORMAT JSON) plan may read events or
 * payloads without a bound: a sequential scan, an index read without an
 * index condition (a bitmap heap scan's is its recheck), or a range read (no
 * equality in its condition) that no Limit above bounds, or whose rows a Filter
 * thins out below that Limit (then the Limit counts the rows kept, not the rows
 * read).
 */
static int
plan_scans(const json_t *node, int limited)
{
	const char *rel, *type, *cond;
	json_t *kids, *kid;
	size_t i;

	rel = json_string_value(json_object_get(node, "Relation Name"));
	type = json_string_value(json_object_get(node, "Node Type"));
	cond = json_string_value(json_object_get(node, "Index Cond"));
	/* A bitmap heap scan reads the pages its index scan below found. */
	if (cond == NULL)
		cond = json_string_value(json_object_get(node, "Recheck Cond"));
	if (type != NULL && strcmp(type, "Limit") == 0)
		limited = 1;
	if (rel != NULL && type != NULL &&
	    (strcmp(rel, "events") == 0 || strcmp(rel, "payloads") == 0)) {
		if (strcmp(type, "Seq Scan") == 0 || cond == NULL)
			return 1;
		if (strstr(cond, " = ") == NULL &&
		    (!limited || json_object_get(node, "Filter") != NULL))
			return 1;
	}
	kids = json_object_get(node, "Plans");
	json_array_foreach(kids, i, kid) if (plan_scans(kid, limited)) return 1;
	return 0;
}

/* Sample arguments of the read statements. */
static const char *
read_args(enum pgs_stmt id)
{
	switch (id) {
	case PS_STATS:
		return "(15000)";
	case PS_ERRORS:
		return "(0, 5)";
	case PS_LIST_ASC:
	case PS_LIST_DESC:
	case PS_LIST_DEAD_ASC:
	case PS_LIST_DEAD_DESC:
		return "(NULL, NULL, NULL, NULL, NULL, 0, 0, 4, 0,"
		       " 9223372036854775807, 1000, true)";
	case PS_LIST_EMAIL_ASC:
	case PS_LIST_EMAIL_DESC:
		return "(NULL, NULL, NULL, NULL, NULL, 0, 0, 7, 0,"
		       " 9223372036854775807, 1000, true, 42, NULL)";
	case PS_LIST_UID_ASC:
	case PS_LIST_UID_DESC:
		return "(NULL, NULL, NULL, NULL, NULL, 0, 0, 7, 0,"
		       " 9223372036854775807, 1000, true, NULL, 42)";
	case PS_ATTEMPTS:
		return "(3)";
	case PS_EPOCH:
		return "";
	case PS_SENDABLE:
		return "('{1,2,3}')";
	case PS_AUDIT_LIST:
		return "(9223372036854775807, 100)";
	default:
		return NULL;
	}
}

/* Runs EXPLAIN on one read statement; fails on a full read of events. */
static void
plan_check(struct fixture *fx, enum pgs_stmt id)
{
	char sql[8192];
	const char *args = read_args(id);
	PGresult *res;
	json_t *plan;

	if (args == NULL)
		fail_msg("no sample arguments for statement %d", (int)id);
	snprintf(sql, sizeof(sql), "PREPARE r%d AS %s", (int)id, pgs_sql[id]);
	testlib_pg_exec(fx->admin, sql);
	snprintf(sql, sizeof(sql), "EXPLAIN (FORMAT JSON) EXECUTE r%d%s",
	    (int)id, args);
	res = PQexec(fx->admin, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", sql, PQerrorMessage(fx->admin));
	plan = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	assert_non_null(plan);
	if (plan_scans(json_object_get(json_array_get(plan, 0), "Plan"), 0))
		fail_msg("statement %d scans a table:\n%s\n%s", (int)id,
		    pgs_sql[id], PQgetvalue(res, 0, 0));
	json_decref(plan);
	PQclear(res);
}

/*
 * Every statement that answers an operator or a scraper (pgs_reads) finds
 * its rows through an index, even when the planner would rather scan a
 * table this small: with enable_seqscan off, no plan node may read events
 * or payloads without a bound (see plan_scans()).
 */
static void
test_read_plans(void **state)
{
	struct fixture *fx = *state;
	int64_t seqs[8];
	size_t i;

	STORE_NEED(fx);
	add_filter_rows(fx->s, seqs);
	testlib_pg_exec(fx->admin, "SET enable_seqscan = off");
	for (i = 0; i < pgs_nreads; i++)
		plan_check(fx, pgs_reads[i]);
	testlib_pg_exec(fx->admin, "RESET enable_seqscan");
}

/*
 * Whether the server compiles the claim (prepared as "claim") before it
 * runs it: EXPLAIN ANALYZE shows a "JIT" entry then.  In a transaction
 * rolled back, with the claim's own plan setting, as the store runs it.
 */
static int
claim_compiled(struct fixture *fx)
{
	PGresult *res;
	json_t *plan;
	int jit;

	testlib_pg_exec(fx->admin, "BEGIN");
	testlib_pg_exec(fx->admin, pgs_claim_plan);
	res = PQexec(fx->admin,
	    "EXPLAIN (ANALYZE, FORMAT JSON)"
	    " EXECUTE claim('{acme}', 0, 1, 1, 'x')");
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("EXPLAIN claim: %s", PQerrorMessage(fx->admin));
	plan = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	assert_non_null(plan);
	jit = json_object_get(json_array_get(plan, 0), "JIT") != NULL;
	json_decref(plan);
	PQclear(res);
	testlib_pg_exec(fx->admin, "ROLLBACK");
	return jit;
}

/*
 * A claim is never compiled in the store's session (see pgs_session): its
 * sorts turned off put its cost far past jit_above_cost, and the compile
 * took half a second of the server's CPU per claim of one row.  On a
 * server that has JIT, the same claim is compiled without the setting,
 * which shows the check can fail.
 */
static void
test_claim_not_compiled(void **state)
{
	struct fixture *fx = *state;
	char sql[4096];

	STORE_NEED(fx);
	snprintf(sql, sizeof(sql), "PREPARE claim AS %s", pgs_sql[PS_CLAIM]);
	testlib_pg_exec(fx->admin, sql);
	testlib_pg_exec(fx->admin, pgs_session);
	assert_false(claim_compiled(fx));
	if (admin_int(fx->admin, "SELECT pg_jit_available()::int") == 1) {
		testlib_pg_exec(fx->admin, "SET jit TO on");
		assert_true(claim_compiled(fx));
	}
	testlib_pg_exec(fx->admin, "DEALLOCATE claim; RESET ALL");
}

/* Ends the store's connections (not the fixture's admin one). */
static void
drop_store_conns(struct fixture *fx)
{
	PGresult *res;
	char sql[256];

	snprintf(sql, sizeof(sql),
	    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
	    " WHERE application_name = '%s' AND pid <> pg_backend_pid()",
	    fx->schema);
	res = PQexec(fx->admin, sql);
	assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
	assert_true(PQntuples(res) >= 1);
	PQclear(res);
}

/*
 * The server drops the connection: the next write notices, reconnects and
 * runs again, so the sender never sees the dropped idle connection; the
 * next read is sent again on a new connection, so neither does an
 * operator or a scraper.
 */
static void
test_reconnect(void **state)
{
	struct fixture *fx = *state;
	struct nb_event e = ev("a", "t", "{}", NULL);
	struct nb_append r = req("acme", "wh_1", &e, 1, 100);
	struct nb_source_stats *st = NULL;
	size_t n = 0;

	STORE_NEED(fx);
	assert_int_equal(nb_store_probe(fx->s), 0);
	drop_store_conns(fx);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 1, 0, 0);
	drop_store_conns(fx);
	assert_int_equal(count(fx->s, ALL, NULL), 1);
	drop_store_conns(fx);
	assert_int_equal(nb_store_stats(fx->s, 200, &st, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(st[0].pending, 1);
	free(st);
}

static struct nb_store_instance
instance(const char *id, const char *host, int64_t pid)
{
	struct nb_store_instance in;

	memset(&in, 0, sizeof(in));
	snprintf(in.id, sizeof(in.id), "%s", id);
	snprintf(in.host, sizeof(in.host), "%s", host);
	in.pid = pid;
	return in;
}

/*
 * The table of live instances: each connection registers and refreshes
 * its own row at the database's clock (started_ms kept, beat_ms moving),
 * lists the live ones oldest first with their exact number even when the
 * list is cut, never lists one silent for longer than the lease, forgets
 * one silent for NB_STORE_FORGET_LEASES leases, and a leaving instance is
 * gone from the next beat of the others.
 */
static void
test_instances(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_instance a = instance("aaaa", "host-a", 11);
	struct nb_store_instance b = instance("bbbb", "host-b", 22);
	struct nb_store_instance out[4];
	struct nb_store *other;
	int64_t started;
	size_t n, live;

	STORE_NEED(fx);
	assert_int_equal(nb_store_shared(fx->s), 1);
	other = open_store(fx);
	assert_int_equal(nb_store_beat(fx->s, &a, 5000, out, 4, &n, &live), 0);
	assert_int_equal(n, 1);
	assert_int_equal(live, 1);
	assert_string_equal(out[0].id, "aaaa");
	assert_string_equal(out[0].host, "host-a");
	assert_int_equal(out[0].pid, 11);
	assert_true(a.started_ms > 0);
	assert_int_equal(a.beat_ms, a.started_ms);
	started = a.started_ms;
	usleep(20000);
	assert_int_equal(nb_store_beat(other, &b, 5000, out, 4, &n, &live), 0);
	assert_int_equal(live, 2);
	assert_string_equal(out[0].id, "aaaa");
	assert_string_equal(out[1].id, "bbbb");
	assert_int_equal(nb_store_beat(fx->s, &a, 5000, out, 1, &n, &live), 0);
	assert_int_equal(n, 1);
	assert_int_equal(live, 2);
	assert_int_equal(a.started_ms, started);
	assert_true(a.beat_ms >= started + 20);

	/* Silent for more than the lease: not live; for ten: forgotten. */
	testlib_pg_exec(fx->admin,
	    "INSERT INTO instances VALUES ('stale', 'h', 1, 0,"
	    " (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 6000),"
	    " ('gone', 'h', 2, 0,"
	    " (extract(epoch FROM clock_timestamp()) * 1000)::bigint - 60000)");
	assert_int_equal(nb_store_beat(fx->s, &a, 5000, out, 4, &n, &live), 0);
	assert_int_equal(live, 2);
	assert_int_equal(admin_int(fx->admin,
			     "SELECT count(*) FROM instances"
			     " WHERE id IN ('stale', 'gone')"),
	    1);

	/* b leaves: a's next beat counts a alone. */
	assert_int_equal(nb_store_leave(other, "bbbb"), 0);
	assert_int_equal(nb_store_beat(fx->s, &a, 5000, out, 4, &n, &live), 0);
	assert_int_equal(live, 1);
	assert_string_equal(out[0].id, "aaaa");
	nb_store_close(other);
}

/* The times VACUUM ran on the fixture's table rel (0 if never). */
static int64_t
vacuums(struct fixture *fx, const char *rel)
{
	char sql[256];

	snprintf(sql, sizeof(sql),
	    "SELECT coalesce(sum(vacuum_count), 0) FROM pg_stat_user_tables"
	    " WHERE schemaname = '%s' AND relname = '%s'",
	    fx->schema, rel);
	return admin_int(fx->admin, sql);
}

/*
 * An erase vacuums what it deleted from (the rows' space marked free, see
 * docs/storage.md), and leaves no row of the person in any table it
 * touched; others' rows stay.
 */
static void
test_erase_vacuums(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_erase e;
	struct nb_store_audit au;
	size_t i;
	int tries;

	STORE_NEED(fx);
	for (i = 0; i < 10; i++) {
		char id[16];

		snprintf(id, sizeof(id), "z%zu", i);
		padd(fx->s, "acme", id, "zed@example.org", NULL, 100);
		snprintf(id, sizeof(id), "o%zu", i);
		padd(fx->s, "acme", id, "other@example.org", NULL, 100);
	}
	memset(&e, 0, sizeof(e));
	e.who.email = "ZED@example.org";
	e.now_ms = 1000;
	assert_int_equal(nb_store_erase(fx->s, &e, &au), 0);
	assert_int_equal(au.events, 10);
	assert_int_equal(admin_int(fx->admin,
			     "SELECT count(*) FROM payloads WHERE"
			     " position('zed@example.org' in"
			     " convert_from(payload, 'UTF8')) > 0"),
	    0);
	assert_int_equal(
	    admin_int(fx->admin, "SELECT count(*) FROM events"), 10);
	/* The statistics of a VACUUM come in as soon as it ended. */
	for (tries = 0; tries < 50 &&
	     (vacuums(fx, "events") == 0 || vacuums(fx, "payloads") == 0);
	     tries++)
		usleep(100000);
	assert_true(vacuums(fx, "events") > 0);
	assert_true(vacuums(fx, "payloads") > 0);
	assert_true(vacuums(fx, "attempt_links") > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_schema, setup, teardown),
	    STORE_CASES(setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrate_v1, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_instances, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_group_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_restart_keeps_leases, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_concurrent_same_webhook, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_concurrent_claims, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_lease_takeover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_plans, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_claim_not_compiled, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_erase_vacuums, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_counter_slots, setup, teardown),
	};

	if (getenv("NB_TEST_PG_DSN") == NULL ||
	    getenv("NB_TEST_PG_DSN")[0] == '\0')
		printf("test_store_pg: NB_TEST_PG_DSN is not set, skipping "
		       "(start a server with: eval \"$(tests/pg.sh)\")\n");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
