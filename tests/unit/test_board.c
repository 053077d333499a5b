/* SPDX-License-Identifier: ISC */
/*
 * test_board: snapshots come back on the asking base with the store's queue
 * figures and the paused sources; requests that arrive while a read runs
 * share the one read that starts after it (and never get the older one);
 * a cancelled request is never answered.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "nudgebridge/board.h"
#include "nudgebridge/config.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/store.h"
#include "testlib.h"

#define SEC1 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define NASK 6

struct fixture {
	char dir[64];
	struct nb_config *cfg;
	struct event_base *base;
};

/* The paused function: read number n reports status n; it may hold. */
static atomic_int reads;
static atomic_int holding; /* 1: the next read waits for release */
static atomic_int held;	   /* a read is waiting */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;

static size_t
paused_fn(void *arg, struct nb_paused *out, size_t max)
{
	int n = atomic_fetch_add(&reads, 1) + 1;

	(void)arg;
	pthread_mutex_lock(&hold_lock);
	if (atomic_load(&holding)) {
		atomic_store(&held, 1);
		while (atomic_load(&holding))
			pthread_cond_wait(&hold_cond, &hold_lock);
	}
	pthread_mutex_unlock(&hold_lock);
	if (max == 0)
		return 1;
	memset(&out[0], 0, sizeof(out[0]));
	snprintf(out[0].source, sizeof(out[0].source), "beta");
	out[0].status = n;
	return 1;
}

static void
release(void)
{
	pthread_mutex_lock(&hold_lock);
	atomic_store(&holding, 0);
	pthread_cond_broadcast(&hold_cond);
	pthread_mutex_unlock(&hold_lock);
}

struct answer {
	struct fixture *fx;
	int calls;
	int read; /* the read that served it */
	int queues_ok;
	size_t nqueues;
	int64_t pending;
	int *left;
};

static void
answer_cb(const struct nb_board_snapshot *snap, void *arg)
{
	struct answer *a = arg;

	a->calls++;
	assert_non_null(snap);
	a->queues_ok = snap->queues_ok;
	a->nqueues = snap->nqueues;
	if (snap->nqueues > 0) {
		assert_string_equal(snap->queues[0].source, "acme");
		a->pending = snap->queues[0].pending;
	}
	assert_int_equal(snap->npaused, 1);
	assert_string_equal(snap->paused[0].source, "beta");
	a->read = snap->paused[0].status;
	if (--*a->left == 0)
		event_base_loopbreak(a->fx->base);
}

static int
setup(void **state)
{
	struct fixture *fx;
	char text[512], err[256];

	assert_non_null(fx = calloc(1, sizeof(*fx)));
	testlib_tmpdir(fx->dir, sizeof(fx->dir), "board");
	snprintf(text, sizeof(text),
	    "{\"store\":{\"driver\":\"sqlite\",\"path\":\"nb.db\"},"
	    "\"sources\":[{\"name\":\"acme\",\"signing_secrets\":[\"" SEC1
	    "\"],\"write_key\":\"wk\"}]}");
	assert_int_equal(
	    nb_config_load_json(&fx->cfg, text, fx->dir, err, sizeof(err)), 0);
	assert_non_null(fx->base = event_base_new());
	atomic_store(&reads, 0);
	atomic_store(&holding, 0);
	atomic_store(&held, 0);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	event_base_free(fx->base);
	nb_config_unref(fx->cfg);
	testlib_rmdir_db(fx->dir);
	free(fx);
	return 0;
}

/* One pending event of source acme in the store. */
static void
store_one_event(struct fixture *fx)
{
	static const char body[] =
	    "{\"id\":\"evt_1\",\"type\":\"email.opened\","
	    "\"occurred_at\":\"2026-11-28T09:59:58Z\","
	    "\"subscriber\":{\"uid\":\"u_1\"}}";
	struct nb_payload pl;
	struct nb_append app, *reqs[1] = {&app};
	struct nb_store *st = NULL;
	char err[256];

	memset(&pl, 0, sizeof(pl));
	memset(&app, 0, sizeof(app));
	assert_int_equal(
	    nb_nudgespot_parse(&pl, body, sizeof(body) - 1), NB_NUDGESPOT_OK);
	assert_int_equal(
	    nb_store_open(&st, &fx->cfg->store, err, sizeof(err)), 0);
	app.source = "acme";
	app.webhook_id = "msg_1";
	app.events = pl.events;
	app.nevents = pl.nevents;
	app.received_ms = 1000;
	assert_int_equal(nb_store_append(st, reqs, 1), 0);
	assert_int_equal(app.accepted, 1);
	nb_store_close(st);
	nb_nudgespot_clear(&pl);
}

static void
test_snapshot(void **state)
{
	struct fixture *fx = *state;
	struct nb_board *b;
	struct answer a;
	int left = 1;

	store_one_event(fx);
	assert_non_null(b = nb_board_new(fx->cfg, paused_fn, NULL));
	assert_int_equal(nb_board_start(b), 0);
	memset(&a, 0, sizeof(a));
	a.fx = fx;
	a.left = &left;
	assert_non_null(nb_board_ask(b, fx->base, answer_cb, &a));
	event_base_dispatch(fx->base);
	assert_int_equal(a.calls, 1);
	assert_true(a.queues_ok);
	assert_int_equal(a.nqueues, 1);
	assert_int_equal(a.pending, 1);
	assert_int_equal(a.read, 1);
	nb_board_free(b);
}

/*
 * While read 1 runs, five more requests come: they are served together by
 * read 2, which started after them, never by read 1.
 */
static void
test_coalescing(void **state)
{
	struct fixture *fx = *state;
	struct answer a[NASK];
	struct nb_board *b;
	int left = NASK, i;

	memset(a, 0, sizeof(a));
	assert_non_null(b = nb_board_new(fx->cfg, paused_fn, NULL));
	assert_int_equal(nb_board_start(b), 0);
	atomic_store(&holding, 1);
	for (i = 0; i < NASK; i++) {
		a[i].fx = fx;
		a[i].left = &left;
	}
	assert_non_null(nb_board_ask(b, fx->base, answer_cb, &a[0]));
	while (!atomic_load(&held))
		usleep(1000);
	for (i = 1; i < NASK; i++)
		assert_non_null(nb_board_ask(b, fx->base, answer_cb, &a[i]));
	release();
	event_base_dispatch(fx->base);
	assert_int_equal(a[0].read, 1);
	for (i = 0; i < NASK; i++)
		assert_int_equal(a[i].calls, 1);
	for (i = 1; i < NASK; i++)
		assert_int_equal(a[i].read, 2);
	assert_int_equal(atomic_load(&reads), 2);
	nb_board_free(b);
}

static void
test_cancel(void **state)
{
	struct fixture *fx = *state;
	struct nb_board_wait *w;
	struct nb_board *b;
	struct answer a;
	int left = 1;

	memset(&a, 0, sizeof(a));
	a.fx = fx;
	a.left = &left;
	assert_non_null(b = nb_board_new(fx->cfg, paused_fn, NULL));
	assert_int_equal(nb_board_start(b), 0);
	assert_non_null(w = nb_board_ask(b, fx->base, answer_cb, &a));
	/* Let the read finish and activate the request, then cancel it. */
	while (atomic_load(&reads) == 0)
		usleep(1000);
	usleep(20000);
	nb_board_cancel(w);
	event_base_loop(fx->base, EVLOOP_NONBLOCK);
	assert_int_equal(a.calls, 0);
	nb_board_stop(b);
	nb_board_stop(b); /* idempotent */
	assert_int_equal(nb_board_paused(b, NULL, 0), 0);
	nb_board_free(b);
	nb_board_cancel(NULL);
	nb_board_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_snapshot, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_coalescing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
	};

	if (evthread_use_pthreads() == -1)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
