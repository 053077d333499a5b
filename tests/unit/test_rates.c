/* SPDX-License-Identifier: ISC */
/*
 * test_rates: per-minute rates from the store's running totals.
 *
 * A real SQLite store in a mkdtemp() folder supplies the totals; the
 * clock is injected.  Checks the first minute (growth since the first
 * sample), a steady window (samples every few seconds), sparse reads
 * (scaled to one window), sources the store did not know yet, and that
 * reads closer than the sampling step do not crowd the ring out.
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

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/rates.h"
#include "nudgebridge/store.h"
#include "testlib.h"

struct fixture {
	char dir[64];
	struct nb_store *s;
	struct nb_rates *r;
	int serial;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	testlib_tmpdir(fx->dir, sizeof(fx->dir), "rates");
	fx->s = testlib_open_db(fx->dir);
	assert_non_null(fx->r = nb_rates_new());
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	nb_rates_free(fx->r);
	nb_store_close(fx->s);
	testlib_rmdir_db(fx->dir);
	free(fx);
	return 0;
}

/* Stores n events of source, delivers d of them. */
static void
add(struct fixture *fx, const char *source, int n, int d)
{
	const char *src[] = {source};
	struct nb_stored_event *rows = NULL;
	struct nb_event e;
	struct nb_append r, *p = &r;
	int64_t seqs[64];
	char id[32];
	size_t i, got = 0;

	assert_true(n <= 64);
	for (i = 0; i < (size_t)n; i++) {
		snprintf(id, sizeof(id), "e%d", fx->serial++);
		memset(&e, 0, sizeof(e));
		e.id = id;
		e.type = testlib_unconst("email.sent");
		e.raw = testlib_unconst("{}");
		e.rawlen = 2;
		memset(&r, 0, sizeof(r));
		r.source = source;
		r.events = &e;
		r.nevents = 1;
		r.received_ms = 1;
		assert_int_equal(nb_store_append(fx->s, &p, 1), 0);
	}
	if (d == 0)
		return;
	assert_int_equal(
	    nb_store_claim(fx->s, src, 1, 1000, 2000, (size_t)d, &rows, &got),
	    0);
	for (i = 0; i < got; i++)
		seqs[i] = rows[i].seq;
	nb_stored_events_free(rows, got);
	assert_int_equal(nb_store_delivered(fx->s, seqs, got, 1000, NULL), 0);
}

static void
assert_rates(struct fixture *fx, const char *source, int64_t now,
    int64_t received, int64_t delivered)
{
	int64_t r, d;

	assert_int_equal(nb_rates_update(fx->r, fx->s, now), 0);
	nb_rates_get(fx->r, source, &r, &d);
	if (r != received || d != delivered)
		fail_msg("%s at %lld: got %lld/%lld, want %lld/%lld", source,
		    (long long)now, (long long)r, (long long)d,
		    (long long)received, (long long)delivered);
}

static void
test_first_minute(void **state)
{
	struct fixture *fx = *state;

	add(fx, "old", 5, 0); /* before the first sample: not counted */
	assert_rates(fx, "acme", 0, 0, 0);
	add(fx, "acme", 4, 3);
	add(fx, "old", 2, 0);
	assert_rates(fx, "acme", 1000, 4, 3);
	assert_rates(fx, "old", 1000, 2, 0);
	assert_rates(fx, "nobody", 1000, 0, 0);
	/* Many reads within the step: still since the first sample. */
	add(fx, "acme", 1, 0);
	assert_rates(fx, "acme", 1500, 5, 3);
	assert_rates(fx, "acme", 2000, 5, 3);
}

static void
test_steady_window(void **state)
{
	struct fixture *fx = *state;
	int64_t t;

	/* One event a second, a read every second, for two minutes. */
	assert_rates(fx, "acme", 0, 0, 0);
	for (t = 1000; t <= 120000; t += 1000) {
		add(fx, "acme", 1, 1);
		assert_int_equal(nb_rates_update(fx->r, fx->s, t), 0);
	}
	/* The newest sample at least a minute old is 60..65 s back. */
	{
		int64_t r, d;

		nb_rates_get(fx->r, "acme", &r, &d);
		assert_true(r >= 55 && r <= 60);
		assert_int_equal(r, d);
	}
}

static void
test_sparse_reads(void **state)
{
	struct fixture *fx = *state;

	assert_rates(fx, "acme", 0, 0, 0);
	add(fx, "acme", 40, 20);
	/* The last sample is four minutes old: a quarter per minute. */
	assert_rates(fx, "acme", 240000, 10, 5);
	add(fx, "acme", 6, 0);
	/* Now the sample of four minutes ago is the newest a window old. */
	assert_rates(fx, "acme", 250000, 11, 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_first_minute, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_steady_window, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_sparse_reads, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
