/* SPDX-License-Identifier: ISC */
/*
 * test_fleet: the share of the fleet-wide budgets.
 *
 * The share rule in a table (a newcomer waits, a lapsed instance takes
 * nothing, 1/N otherwise); a store one process owns (SQLite: the whole
 * budget at once, this instance alone in the list); and, with
 * NB_TEST_PG_DSN, two instances on one PostgreSQL schema beating with an
 * injected monotonic clock: the second one's arrival halves the first's
 * share only once it waited its turn, an instance back from a lapse waits
 * again, and a clean leave gives the share back at the next beat.
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
#include <sodium.h>

#include "nudgebridge/fleet.h"
#include "nudgebridge/store.h"
#include "testlib.h"

#define LEASE 2000 /* ms: a beat every 500 ms */

static void
test_share_rule(void **state)
{
	static const struct {
		int64_t mono, last_ok, joined;
		size_t live;
		double want;
	} cases[] = {
	    {5000, 0, 0, 1, 0},	      /* never beat */
	    {5900, 5000, 6000, 1, 0}, /* waiting to be counted */
	    {6000, 5000, 6000, 1, 1}, /* counted */
	    {6000, 5000, 0, 4, 0.25}, /* one of four */
	    {6499, 5000, 0, 2, 0.5},  /* lease - beat not yet gone */
	    {6500, 5000, 0, 2, 0},    /* the others may count it out */
	    {9000, 5000, 0, 2, 0},    /* long silent */
	    {6000, 5000, 0, 0, 0},    /* no list */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (nb_fleet_share(cases[i].mono, cases[i].last_ok,
			cases[i].joined, LEASE, 500,
			cases[i].live) != cases[i].want)
			fail_msg("case %zu: share %g, want %g", i,
			    nb_fleet_share(cases[i].mono, cases[i].last_ok,
				cases[i].joined, LEASE, 500, cases[i].live),
			    cases[i].want);
}

/* The beat period is a quarter of the lease, within its bounds. */
static void
test_beat_period(void **state)
{
	struct nb_fleet *f;

	(void)state;
	assert_non_null(f = nb_fleet_new(1, 30000));
	assert_int_equal(nb_fleet_beat_ms(f), NB_FLEET_BEAT_MAX_MS);
	nb_fleet_free(f);
	assert_non_null(f = nb_fleet_new(1, 2000));
	assert_int_equal(nb_fleet_beat_ms(f), 500);
	nb_fleet_free(f);
	assert_non_null(f = nb_fleet_new(1, 200));
	assert_int_equal(nb_fleet_beat_ms(f), NB_FLEET_BEAT_MIN_MS);
	nb_fleet_free(f);
	nb_fleet_free(NULL);
}

/* SQLite: the whole budget from the first tick, one instance listed. */
static void
test_not_shared(void **state)
{
	struct nb_store_config cfg;
	struct nb_store_instance out[2];
	struct nb_fleet_status st;
	struct nb_store *s = NULL;
	struct nb_fleet *f;
	char dir[] = "/tmp/nb-fleet-XXXXXX", path[64], err[256];

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/nb.db", dir);
	memset(&cfg, 0, sizeof(cfg));
	cfg.driver = (char *)(uintptr_t) "sqlite";
	cfg.path = path;
	cfg.lease_s = 30;
	if (nb_store_open(&s, &cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	assert_non_null(f = nb_fleet_new(nb_store_shared(s), 30000));
	assert_true(nb_fleet_tick(f, s, 1000, 1700000000000) == 1);
	assert_int_equal(nb_fleet_snapshot(f, out, 2, &st), 1);
	assert_int_equal(st.shared, 0);
	assert_int_equal(st.live, 1);
	assert_true(st.share == 1);
	assert_string_equal(out[0].id, st.self);
	assert_int_equal(strlen(st.self), 32);
	assert_int_equal(out[0].pid, (int64_t)getpid());
	assert_int_equal(out[0].started_ms, 1700000000000);
	assert_true(nb_fleet_tick(f, s, 2000, 1700000001000) == 1);
	assert_int_equal(nb_fleet_snapshot(f, out, 2, &st), 1);
	assert_int_equal(out[0].started_ms, 1700000000000);
	assert_int_equal(out[0].beat_ms, 1700000001000);
	nb_fleet_leave(f, s);
	nb_fleet_free(f);
	nb_store_close(s);
	snprintf(path, sizeof(path), "%s/nb.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/nb.db-shm", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/nb.db", dir);
	unlink(path);
	rmdir(dir);
}

/* PostgreSQL: a schema of its own, two connections. */
struct pgfx {
	PGconn *admin;
	char schema[64];
	struct nb_store_config cfg;
	struct nb_store *s1, *s2;
};

static struct nb_store *
pg_open(struct pgfx *fx)
{
	struct nb_store *s = NULL;
	char err[256];

	if (nb_store_open(&s, &fx->cfg, err, sizeof(err)) == -1)
		fail_msg("%s", err);
	return s;
}

static int
pg_setup(struct pgfx *fx)
{
	const char *dsn;

	memset(fx, 0, sizeof(*fx));
	dsn = testlib_pg_schema(
	    &fx->admin, fx->schema, sizeof(fx->schema), "nbf");
	if (dsn == NULL)
		return -1;
	fx->cfg.driver = testlib_unconst("postgres");
	fx->cfg.dsn = testlib_unconst(dsn);
	fx->cfg.lease_s = LEASE / 1000;
	fx->s1 = pg_open(fx);
	fx->s2 = pg_open(fx);
	return 0;
}

static void
pg_teardown(struct pgfx *fx)
{
	nb_store_close(fx->s1);
	nb_store_close(fx->s2);
	testlib_pg_drop(fx->admin, fx->schema);
}

static double
share_of(struct nb_fleet *f, size_t *live)
{
	struct nb_store_instance out[NB_FLEET_LIST_MAX];
	struct nb_fleet_status st;

	(void)nb_fleet_snapshot(f, out, NB_FLEET_LIST_MAX, &st);
	*live = st.live;
	return st.share;
}

/*
 * Two instances, clocks injected (each its own, as on two hosts; the
 * database judges liveness by its own clock, which runs for real).
 */
static void
test_two_instances(void **state)
{
	struct pgfx fx;
	struct nb_fleet *a, *b;
	int64_t t = 100000, beat;
	size_t live;

	(void)state;
	if (pg_setup(&fx) == -1)
		skip();
	assert_non_null(a = nb_fleet_new(nb_store_shared(fx.s1), LEASE));
	assert_non_null(b = nb_fleet_new(nb_store_shared(fx.s2), LEASE));
	beat = nb_fleet_beat_ms(a);
	assert_int_equal(beat, 500);

	/* a alone: nothing until two beats after it registered. */
	assert_true(nb_fleet_tick(a, fx.s1, t, 0) == 0);
	assert_true(nb_fleet_tick(a, fx.s1, t + beat, 0) == 0);
	assert_true(nb_fleet_tick(a, fx.s1, t + 2 * beat, 0) == 1);
	assert_true(share_of(a, &live) == 1);
	assert_int_equal(live, 1);

	/* b arrives: it waits its turn, a halves at its next beat. */
	assert_true(nb_fleet_tick(b, fx.s2, t, 0) == 0);
	assert_true(nb_fleet_tick(a, fx.s1, t + 3 * beat, 0) == 0.5);
	assert_true(nb_fleet_tick(b, fx.s2, t + beat, 0) == 0);
	assert_true(nb_fleet_tick(b, fx.s2, t + 2 * beat, 0) == 0.5);
	/* A tick between beats reads nothing and keeps the share. */
	assert_true(nb_fleet_tick(a, fx.s1, t + 3 * beat + 1, 0) == 0.5);

	/*
	 * a's ticks stop for longer than the lease minus a beat: it takes
	 * nothing, and when it beats again it waits as a newcomer would.
	 */
	assert_true(nb_fleet_tick(a, fx.s1, t + 7 * beat, 0) == 0);
	assert_true(share_of(a, &live) == 0);
	assert_true(nb_fleet_tick(a, fx.s1, t + 8 * beat, 0) == 0);
	assert_true(nb_fleet_tick(a, fx.s1, t + 9 * beat, 0) == 0.5);

	/* b stops cleanly: a takes the whole budget at its next beat. */
	nb_fleet_leave(b, fx.s2);
	assert_true(nb_fleet_tick(a, fx.s1, t + 10 * beat, 0) == 1);
	assert_true(share_of(a, &live) == 1);
	assert_int_equal(live, 1);
	nb_fleet_free(a);
	nb_fleet_free(b);
	pg_teardown(&fx);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_share_rule),
	    cmocka_unit_test(test_beat_period),
	    cmocka_unit_test(test_not_shared),
	    cmocka_unit_test(test_two_instances),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
