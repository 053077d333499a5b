/* SPDX-License-Identifier: ISC */
/*
 * test_store: the SQLite store against real database files.
 *
 * Every test opens a fresh database in its own mkdtemp() folder, so WAL,
 * synchronous=FULL, migrations and the size cap run exactly as in the
 * daemon.  The backend-independent contract cases live in store_cases.c,
 * shared with test_store_pg.c; this file adds what only SQLite has
 * (recovery of a file used by one process, two connections on one file,
 * the size cap).  Times are injected (small integers), never read from the
 * clock.
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

#include "nudgebridge/store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct nb_store_config cfg;
	struct nb_store *s;
};

/* SQLite needs no server: every case runs. */
#define STORE_NEED(fx) ((void)(fx))

#include "store_cases.c"

static int
setup(void **state)
{
	struct fixture *fx;

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/nb-store-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/nb.db", fx->dir);
	fx->cfg.driver = unconst("sqlite");
	fx->cfg.path = fx->path;
	fx->cfg.lease_s = 30;
	fx->s = open_store(fx);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char p[160];

	nb_store_close(fx->s);
	unlink(fx->path);
	snprintf(p, sizeof(p), "%s-wal", fx->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", fx->path);
	unlink(p);
	rmdir(fx->dir);
	free(fx);
	return 0;
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
	assert_int_equal(v, 1);

	cfg.driver = unconst("postgres");
	assert_int_equal(nb_store_open(&s, &cfg, err, sizeof(err)), -1);
	assert_null(s);
	assert_string_equal(err, "store.dsn: missing");
	cfg.driver = unconst("mysql");
	assert_int_equal(nb_store_open(&s, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "store.driver"));
	cfg.driver = unconst("sqlite");
	cfg.path = unconst("/nonexistent-dir/x/nb.db");
	assert_int_equal(nb_store_open(&s, &cfg, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "store.path"));
	nb_store_close(NULL);
}

static void
test_dedupe_webhook_id(void **state)
{
	struct fixture *fx = *state;
	struct nb_event e[] = {
	    ev("a", "email.opened", "{\"id\":\"a\"}", NULL),
	    ev("b", "email.sent", "{\"id\":\"b\"}", NULL),
	};
	struct nb_append r;

	r = req("acme", "wh_1", e, 2, 10000);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 2, 0, 0);

	/* Same webhook id within the window: all duplicates, nothing new. */
	r = req("acme", "wh_1", e, 2, 10000 + WINDOW / 2);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 2, 0);
	assert_int_equal(count(fx->s, ALL, NULL), 2);

	/* Another source has its own keys. */
	r = req("other", "wh_1", e, 2, 10000 + WINDOW / 2);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 2, 0, 0);

	/* After the window the request and its events are new again. */
	r = req("acme", "wh_1", e, 2, 10000 + WINDOW + 1);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 2, 0, 0);
	assert_int_equal(count(fx->s, ALL, "acme"), 4);
}

static void
test_dedupe_event_id(void **state)
{
	struct fixture *fx = *state;
	struct nb_event e1[] = {ev("a", "t", "{\"id\":\"a\"}", NULL)};
	struct nb_event e2[] = {
	    ev("a", "t", "{\"id\":\"a\"}", NULL),
	    ev("c", "t", "{\"id\":\"c\"}", NULL),
	    ev("c", "t", "{\"id\":\"c\",\"again\":1}", NULL),
	};
	struct nb_append r;

	r = req("acme", "wh_1", e1, 1, 5000);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 1, 0, 0);

	/* a seen earlier, c twice in the same request. */
	r = req("acme", "wh_2", e2, 3, 5100);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 1, 2, 0);
	assert_int_equal(count(fx->s, ALL, NULL), 2);

	/* Without a webhook id, event dedupe still applies. */
	r = req("acme", NULL, e1, 1, 5200);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 1, 0);

	/* After the window a is accepted again (a new row). */
	r = req("acme", "wh_3", e1, 1, 5000 + WINDOW + 1);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 1, 0, 0);
	assert_int_equal(count(fx->s, ALL, NULL), 3);
}

static void
test_quarantine(void **state)
{
	struct fixture *fx = *state;
	struct nb_event e[] = {
	    ev("q1", NULL, "{\"id\":\"q1\"}", "type: missing"),
	    ev(NULL, "t", "{\"type\":\"t\"}", "id: missing"),
	    ev("ok", "t", "{\"id\":\"ok\"}", NULL),
	};
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	struct nb_append r;
	size_t n = 0;
	int64_t seq;

	r = req("acme", "wh_1", e, 3, 100);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 1, 0, 2);

	/* Again under a new webhook id: q1 and ok are duplicates, the
	 * id-less one is never a duplicate. */
	r = req("acme", "wh_2", e, 3, 200);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 2, 1);

	memset(&f, 0, sizeof(f));
	f.reason = NB_REASON_QUARANTINED;
	assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(rows[0].id, "q1");
	assert_null(rows[0].type);
	assert_string_equal(rows[0].error, "type: missing");
	assert_null(rows[1].id);
	assert_string_equal(rows[1].error, "id: missing");
	assert_string_equal(rows[1].raw, "{\"type\":\"t\"}");
	assert_int_equal(rows[1].rawlen, strlen("{\"type\":\"t\"}"));
	assert_null(rows[2].id);
	assert_int_equal(rows[2].received_ms, 200);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(rows[i].state, NB_STATE_DEAD);
		assert_string_equal(rows[i].reason, NB_REASON_QUARANTINED);
		assert_string_equal(rows[i].source, "acme");
		/* The key is the decimal seq and finds the row again. */
		assert_int_equal(strtoll(rows[i].key, NULL, 10), rows[i].seq);
	}
	seq = rows[1].seq;
	nb_stored_events_free(rows, n);

	f.reason = NULL;
	{
		char key[NB_STORE_KEY_MAX];

		snprintf(key, sizeof(key), "%lld", (long long)seq);
		f.key = key;
		assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
		assert_int_equal(n, 1);
		assert_int_equal(rows[0].seq, seq);
		nb_stored_events_free(rows, n);
	}
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
	assert_int_equal(v, 1);
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
	small.id = unconst("s2");
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_dedupe_webhook_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_dedupe_event_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown),
	    STORE_CASES(setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_recover_and_reopen, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_two_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_size_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_purge_makes_room, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
