/* SPDX-License-Identifier: ISC */
/*
 * test_commit: group commit against a real SQLite file.
 *
 * The test thread plays the HTTP front end: it owns the event_base, submits
 * from it and runs the loop until the completions came back.  Grouping is
 * checked with the committer's transaction counter and the metrics; the
 * size cap (store.max_size_bytes) provokes failing commits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <sqlite3.h>

#include "nudgebridge/commit.h"
#include "nudgebridge/metrics.h"
#include "nudgebridge/metrics_page.h"
#include "nudgebridge/nudgespot.h"
#include "testlib.h"

#define NREQ 200

struct fixture {
	char dir[64];
	char path[128];
	struct nb_store_config cfg;
	struct event_base *base;
	pthread_t main_thread;
};

/* One submitted request and what its callback saw. */
struct slot {
	struct fixture *fx;
	struct nb_event ev;
	char id[32];
	struct nb_append req;
	int calls;
	int rc;
	int on_base_thread;
};

static int completed;
static int target;
static atomic_int notified;
static atomic_int notified_off_base;
static struct fixture *current;

static int
setup(void **state)
{
	struct fixture *fx;

	fx = calloc(1, sizeof(*fx));
	assert_non_null(fx);
	testlib_tmpdir(fx->dir, sizeof(fx->dir), "commit");
	snprintf(fx->path, sizeof(fx->path), "%s/nb.db", fx->dir);
	fx->cfg.driver = testlib_unconst("sqlite");
	fx->cfg.path = fx->path;
	fx->cfg.lease_s = 30;
	fx->base = event_base_new();
	assert_non_null(fx->base);
	fx->main_thread = pthread_self();
	completed = 0;
	target = 0;
	atomic_store(&notified, 0);
	atomic_store(&notified_off_base, 0);
	current = fx;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	event_base_free(fx->base);
	testlib_rmdir_db(fx->dir);
	free(fx);
	return 0;
}

static void
done_cb(struct nb_append *req, int rc, void *arg)
{
	struct slot *s = arg;

	assert_ptr_equal(req, &s->req);
	s->calls++;
	s->rc = rc;
	s->on_base_thread = pthread_equal(pthread_self(), s->fx->main_thread);
	if (++completed == target)
		event_base_loopbreak(s->fx->base);
}

static void
notify_cb(void *arg)
{
	struct fixture *fx = arg;

	atomic_fetch_add(&notified, 1);
	if (!pthread_equal(pthread_self(), fx->main_thread))
		atomic_fetch_add(&notified_off_base, 1);
}

static void
slot_init(
    struct slot *s, struct fixture *fx, const char *raw, size_t rawlen, int i)
{
	memset(s, 0, sizeof(*s));
	s->fx = fx;
	s->rc = 42;
	snprintf(s->id, sizeof(s->id), "evt_%d", i);
	s->ev.id = s->id;
	s->ev.type = testlib_unconst("email.sent");
	s->ev.raw = testlib_unconst(raw);
	s->ev.rawlen = rawlen;
	s->req.source = "acme";
	s->req.webhook_id = s->id;
	s->req.events = &s->ev;
	s->req.nevents = 1;
	s->req.received_ms = 1000000;
	s->req.dedupe_after_ms = 0;
}

/* Runs base until target completions arrived or 10 s passed. */
static void
run_until_done(struct fixture *fx, int n)
{
	struct timeval tv = {10, 0};

	target = n;
	if (completed >= n)
		return;
	event_base_loopexit(fx->base, &tv);
	event_base_dispatch(fx->base);
	assert_int_equal(completed, n);
}

static struct nb_commit *
committer(struct fixture *fx, struct nb_metrics *m)
{
	struct nb_commit *c;
	char err[256] = "";

	c = nb_commit_new(fx->base, &fx->cfg, m, err, sizeof(err));
	if (c == NULL)
		fail_msg("nb_commit_new: %s", err);
	return c;
}

static size_t
pending_rows(struct fixture *fx)
{
	struct nb_store *s = NULL;
	struct nb_stored_event *rows = NULL;
	struct nb_store_filter f;
	char err[256];
	size_t n = 0;

	fx->cfg.max_size_bytes = 0;
	assert_int_equal(nb_store_open(&s, &fx->cfg, err, sizeof(err)), 0);
	memset(&f, 0, sizeof(f));
	f.states = NB_STATE_MASK_PENDING;
	assert_int_equal(nb_store_list(s, &f, &rows, &n), 0);
	nb_stored_events_free(rows, n);
	nb_store_close(s);
	return n;
}

static void
test_grouping(void **state)
{
	struct fixture *fx = *state;
	struct slot *slots;
	struct nb_metrics *m;
	struct nb_commit *c;
	struct evbuffer *out;
	char want[96], *text;
	uint64_t tx;
	int i;

	slots = calloc(NREQ, sizeof(*slots));
	assert_non_null(slots);
	assert_non_null(m = nb_metrics_new());
	c = committer(fx, m);
	nb_commit_set_notify(c, notify_cb, fx);
	assert_int_equal(nb_commit_healthy(c), 1);
	for (i = 0; i < NREQ; i++) {
		slot_init(&slots[i], fx, "{\"id\":1}", 8, i);
		assert_int_equal(
		    nb_commit_submit(c, &slots[i].req, done_cb, &slots[i]), 0);
	}
	/* Nothing runs on the submitter's thread before the loop does. */
	for (i = 0; i < NREQ; i++)
		assert_int_equal(slots[i].calls, 0);
	run_until_done(fx, NREQ);
	for (i = 0; i < NREQ; i++) {
		assert_int_equal(slots[i].calls, 1);
		assert_int_equal(slots[i].rc, 0);
		assert_true(slots[i].on_base_thread);
		assert_int_equal(slots[i].req.accepted, 1);
	}
	tx = nb_commit_transactions(c);
	assert_true(tx >= 1);
	assert_true(tx < NREQ);
	nb_commit_free(c);

	/* One notification per commit that stored events, off base. */
	assert_int_equal(atomic_load(&notified), (int)tx);
	assert_int_equal(atomic_load(&notified_off_base), (int)tx);
	assert_int_equal(pending_rows(fx), NREQ);

	out = evbuffer_new();
	assert_non_null(out);
	assert_int_equal(nb_metrics_render(m, NULL, 0, out), 0);
	evbuffer_add(out, "", 1);
	text = (char *)evbuffer_pullup(out, -1);
	snprintf(want, sizeof(want),
	    "nudgebridge_store_commit_events_count %llu\n",
	    (unsigned long long)tx);
	assert_non_null(strstr(text, want));
	assert_non_null(
	    strstr(text, "nudgebridge_store_commit_events_sum 200\n"));
	evbuffer_free(out);
	nb_metrics_free(m);
	free(slots);
}

static void
test_duplicates_in_one_group(void **state)
{
	struct fixture *fx = *state;
	struct slot s[3];
	struct nb_commit *c = committer(fx, NULL);
	int i;

	for (i = 0; i < 3; i++) {
		slot_init(&s[i], fx, "{}", 2, 7);
		assert_int_equal(
		    nb_commit_submit(c, &s[i].req, done_cb, &s[i]), 0);
	}
	run_until_done(fx, 3);
	assert_int_equal(s[0].req.accepted, 1);
	for (i = 1; i < 3; i++) {
		assert_int_equal(s[i].rc, 0);
		assert_int_equal(s[i].req.accepted, 0);
		assert_int_equal(s[i].req.duplicates, 1);
	}
	nb_commit_free(c);
	assert_int_equal(pending_rows(fx), 1);
}

/* Polls healthy from base until it is 1 or the deadline passes. */
static void
health_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nb_commit *c = arg;

	(void)fd;
	(void)what;
	if (nb_commit_healthy(c))
		event_base_loopbreak(current->base);
}

static int
wait_healthy(struct fixture *fx, struct nb_commit *c, int seconds)
{
	struct timeval every = {0, 50000}, limit = {seconds, 0};
	struct event *ev;

	ev = event_new(fx->base, -1, EV_PERSIST, health_cb, c);
	assert_non_null(ev);
	event_add(ev, &every);
	event_base_loopexit(fx->base, &limit);
	event_base_dispatch(fx->base);
	event_free(ev);
	return nb_commit_healthy(c);
}

static void
test_failure_then_recovery(void **state)
{
	struct fixture *fx = *state;
	struct slot big, small, refused;
	struct nb_commit *c;
	size_t len = 2 * 1024 * 1024;
	char *raw;

	raw = malloc(len);
	assert_non_null(raw);
	memset(raw, 'x', len);
	/* Room for small requests, not for a 2 MiB event. */
	fx->cfg.max_size_bytes = 1024 * 1024;
	c = committer(fx, NULL);
	slot_init(&big, fx, raw, len, 1);
	assert_int_equal(nb_commit_submit(c, &big.req, done_cb, &big), 0);
	run_until_done(fx, 1);
	assert_int_equal(big.rc, -1);
	assert_int_equal(nb_commit_healthy(c), 0);

	/* Unhealthy: refused at once, the callback never runs. */
	slot_init(&refused, fx, "{}", 2, 2);
	assert_int_equal(
	    nb_commit_submit(c, &refused.req, done_cb, &refused), -1);

	/* The probe fits under the cap: healthy again within ~1 s. */
	assert_int_equal(wait_healthy(fx, c, 5), 1);
	slot_init(&small, fx, "{}", 2, 3);
	assert_int_equal(nb_commit_submit(c, &small.req, done_cb, &small), 0);
	run_until_done(fx, 2);
	assert_int_equal(small.rc, 0);
	assert_int_equal(small.req.accepted, 1);
	assert_int_equal(refused.calls, 0);
	nb_commit_free(c);
	assert_int_equal(pending_rows(fx), 1);
	free(raw);
}

static void
test_stays_unhealthy(void **state)
{
	struct fixture *fx = *state;
	struct slot s;
	struct nb_commit *c;

	/* Below what the schema takes: neither commits nor probes succeed. */
	fx->cfg.max_size_bytes = 4096;
	c = committer(fx, NULL);
	nb_commit_set_notify(c, notify_cb, fx);
	slot_init(&s, fx, "{}", 2, 1);
	assert_int_equal(nb_commit_submit(c, &s.req, done_cb, &s), 0);
	run_until_done(fx, 1);
	assert_int_equal(s.rc, -1);
	assert_int_equal(wait_healthy(fx, c, 2), 0);
	assert_int_equal(atomic_load(&notified), 0);
	nb_commit_free(c);
	assert_int_equal(pending_rows(fx), 0);
}

static void
test_free_runs_queued_callbacks(void **state)
{
	struct fixture *fx = *state;
	struct slot s[50];
	struct nb_commit *c = committer(fx, NULL);
	int i;

	for (i = 0; i < 50; i++) {
		slot_init(&s[i], fx, "{}", 2, i);
		assert_int_equal(
		    nb_commit_submit(c, &s[i].req, done_cb, &s[i]), 0);
	}
	/* The loop never runs: free commits and completes everything. */
	target = -1;
	nb_commit_free(c);
	for (i = 0; i < 50; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_int_equal(s[i].rc, 0);
		assert_true(s[i].on_base_thread);
	}
	assert_int_equal(pending_rows(fx), 50);
	nb_commit_free(NULL);
}

static void
test_recovers_leases(void **state)
{
	struct fixture *fx = *state;
	struct nb_store *s = NULL;
	struct nb_stored_event *rows = NULL;
	const char *acme[] = {"acme"};
	struct nb_event e;
	struct nb_append r, *rp = &r;
	struct nb_commit *c;
	char err[256];
	size_t n;

	assert_int_equal(nb_store_open(&s, &fx->cfg, err, sizeof(err)), 0);
	memset(&e, 0, sizeof(e));
	e.id = testlib_unconst("a");
	e.raw = testlib_unconst("{}");
	e.rawlen = 2;
	memset(&r, 0, sizeof(r));
	r.source = "acme";
	r.events = &e;
	r.nevents = 1;
	assert_int_equal(nb_store_append(s, &rp, 1), 0);
	assert_int_equal(
	    nb_store_claim(s, acme, 1, 0, INT64_MAX, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	nb_stored_events_free(rows, n);

	/* A new committer (a restart) drops the lease. */
	c = committer(fx, NULL);
	assert_int_equal(nb_store_claim(s, acme, 1, 0, 10, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	nb_stored_events_free(rows, n);
	nb_commit_free(c);
	nb_store_close(s);
}

static void
test_bad_config(void **state)
{
	struct fixture *fx = *state;
	char err[256] = "";

	fx->cfg.driver = testlib_unconst("mysql");
	assert_null(nb_commit_new(fx->base, &fx->cfg, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "store.driver"));
}

/* A second front-end thread with its own base and completion channel. */
struct side {
	struct fixture *fx;
	struct nb_commit *c;
	struct event_base *base;
	struct slot slots[NREQ / 2];
	pthread_t thread;
	int completed;
	int on_own_thread;
	int submit_failed;
};

static void
side_cb(struct nb_append *req, int rc, void *arg)
{
	struct slot *s = arg;
	struct side *sd = (struct side *)(void *)s->fx;

	(void)req;
	s->calls++;
	s->rc = rc;
	if (pthread_equal(pthread_self(), sd->thread))
		sd->on_own_thread++;
	if (++sd->completed == NREQ / 2)
		event_base_loopbreak(sd->base);
}

static void *
side_main(void *arg)
{
	struct side *sd = arg;
	struct nb_commit_chan *ch;
	struct timeval tv = {10, 0};
	int i;

	ch = nb_commit_attach(sd->c, sd->base);
	if (ch == NULL) {
		sd->submit_failed = 1;
		return NULL;
	}
	for (i = 0; i < NREQ / 2; i++) {
		slot_init(&sd->slots[i], sd->fx, "{\"id\":2}", 8, 1000 + i);
		/* side_cb finds the side through the slot's fixture pointer. */
		sd->slots[i].fx = (struct fixture *)(void *)sd;
		if (nb_commit_submit_on(
			ch, &sd->slots[i].req, side_cb, &sd->slots[i]) == -1)
			sd->submit_failed = 1;
	}
	event_base_loopexit(sd->base, &tv);
	event_base_dispatch(sd->base);
	return NULL;
}

/*
 * Requests submitted on an attached channel complete on that channel's
 * thread, those of the committer's own base on the main thread, in the
 * same transactions.
 */
static void
test_attach_two_threads(void **state)
{
	struct fixture *fx = *state;
	struct slot *slots;
	struct side *sd;
	int i;

	slots = calloc(NREQ / 2, sizeof(*slots));
	sd = calloc(1, sizeof(*sd));
	assert_non_null(slots);
	assert_non_null(sd);
	sd->fx = fx;
	sd->c = committer(fx, NULL);
	assert_non_null(sd->base = event_base_new());
	assert_int_equal(pthread_create(&sd->thread, NULL, side_main, sd), 0);
	for (i = 0; i < NREQ / 2; i++) {
		slot_init(&slots[i], fx, "{\"id\":1}", 8, i);
		assert_int_equal(
		    nb_commit_submit(sd->c, &slots[i].req, done_cb, &slots[i]),
		    0);
	}
	run_until_done(fx, NREQ / 2);
	assert_int_equal(pthread_join(sd->thread, NULL), 0);
	assert_int_equal(sd->submit_failed, 0);
	assert_int_equal(sd->completed, NREQ / 2);
	assert_int_equal(sd->on_own_thread, NREQ / 2);
	for (i = 0; i < NREQ / 2; i++) {
		assert_int_equal(slots[i].calls, 1);
		assert_int_equal(slots[i].rc, 0);
		assert_true(slots[i].on_base_thread);
		assert_int_equal(sd->slots[i].calls, 1);
		assert_int_equal(sd->slots[i].rc, 0);
		assert_int_equal(sd->slots[i].req.accepted, 1);
	}
	nb_commit_free(sd->c);
	event_base_free(sd->base);
	assert_int_equal(pending_rows(fx), NREQ);
	free(sd);
	free(slots);
}

/*
 * nb_commit_free() completes what was submitted on an attached channel
 * whose loop never ran, on the calling thread; detach frees an unused one.
 */
static void
test_attach_free_and_detach(void **state)
{
	struct fixture *fx = *state;
	struct nb_commit *c = committer(fx, NULL);
	struct event_base *b2, *b3;
	struct nb_commit_chan *ch, *unused;
	struct slot s[20];
	int i;

	assert_non_null(b2 = event_base_new());
	assert_non_null(b3 = event_base_new());
	assert_non_null(ch = nb_commit_attach(c, b2));
	assert_non_null(unused = nb_commit_attach(c, b3));
	nb_commit_detach(unused);
	event_base_free(b3);
	nb_commit_detach(NULL);
	for (i = 0; i < 20; i++) {
		slot_init(&s[i], fx, "{}", 2, i);
		assert_int_equal(
		    nb_commit_submit_on(ch, &s[i].req, done_cb, &s[i]), 0);
	}
	target = -1;
	nb_commit_free(c);
	for (i = 0; i < 20; i++) {
		assert_int_equal(s[i].calls, 1);
		assert_int_equal(s[i].rc, 0);
		assert_true(s[i].on_base_thread);
	}
	event_base_free(b2);
	assert_int_equal(pending_rows(fx), 20);
}

static off_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/*
 * The checkpointer copies committed rows from the WAL into the database
 * file while the committer runs: no connection commits 16,000 pages here,
 * so without it the file would not grow until the last connection closes.
 */
static void
test_checkpointer(void **state)
{
	struct fixture *fx = *state;
	struct nb_commit *c = committer(fx, NULL);
	struct timespec nap = {0, 20 * 1000 * 1000};
	struct slot *slots;
	char raw[600];
	off_t before;
	int i;

	memset(raw, 'x', sizeof(raw));
	raw[0] = '"';
	raw[sizeof(raw) - 1] = '"';
	assert_non_null(slots = calloc(NREQ, sizeof(*slots)));
	/* Let the migrations reach the file, then measure. */
	for (i = 0; i < 50 && file_size(fx->path) <= 0; i++)
		nanosleep(&nap, NULL);
	before = file_size(fx->path);
	assert_true(before > 0);
	for (i = 0; i < NREQ; i++) {
		slot_init(&slots[i], fx, raw, sizeof(raw), i);
		assert_int_equal(
		    nb_commit_submit(c, &slots[i].req, done_cb, &slots[i]), 0);
	}
	run_until_done(fx, NREQ);
	/* 200 rows of 600 bytes: well over 100 KB once copied. */
	for (i = 0; i < 250 && file_size(fx->path) < before + 100 * 1024; i++)
		nanosleep(&nap, NULL);
	assert_true(file_size(fx->path) >= before + 100 * 1024);
	nb_commit_free(c);
	assert_int_equal(pending_rows(fx), NREQ);
	free(slots);
}

/* The rows the person index still lacks, as a new connection reads them. */
static size_t
unfolded_rows(struct fixture *fx)
{
	struct nb_store *s = NULL;
	char err[256];
	size_t n;

	assert_int_equal(nb_store_open(&s, &fx->cfg, err, sizeof(err)), 0);
	n = nb_store_unfolded(s);
	nb_store_close(s);
	return n;
}

/*
 * Once idle, the writer folds the rows it appended into the person index
 * (nb_store_fold()) by itself, without a request to carry it.
 */
static void
test_fold_when_idle(void **state)
{
	struct fixture *fx = *state;
	struct nb_commit *c = committer(fx, NULL);
	struct timespec nap = {0, 20 * 1000 * 1000};
	struct slot *slots;
	int i;

	assert_non_null(slots = calloc(NREQ, sizeof(*slots)));
	for (i = 0; i < NREQ; i++) {
		slot_init(&slots[i], fx, "{}", 2, i);
		slots[i].ev.email_key = 1 + i % 7;
		assert_int_equal(
		    nb_commit_submit(c, &slots[i].req, done_cb, &slots[i]), 0);
	}
	run_until_done(fx, NREQ);
	for (i = 0; i < 250 && unfolded_rows(fx) > 0; i++)
		nanosleep(&nap, NULL);
	assert_int_equal(unfolded_rows(fx), 0);
	nb_commit_free(c);
	assert_int_equal(pending_rows(fx), NREQ);
	free(slots);
}

/*
 * Under unbroken load the writer never idles, so the idle fold never runs:
 * after each group it folds until fewer than commit.c's bound of 16,384
 * rows are left unfolded, so that a search reads few rows without the
 * index.  FOLD_REQS requests of FOLD_EVENTS events go in at once (the
 * queue holds them all, so it is never empty until the last group) and a
 * second thread samples the count on a read-only connection meanwhile:
 * at most the bound plus one group's rows (the fold runs between groups).
 * Without the fold under load it grows to nearly every row (48,000).
 */
#define FOLD_REQS   4000
#define FOLD_EVENTS 12
#define FOLD_BOUND  16384 /* NB_COMMIT_FOLD_BOUND in commit.c */
#define FOLD_MOST   (FOLD_BOUND + NB_COMMIT_MAX_GROUP * FOLD_EVENTS)

struct big {
	struct fixture *fx;
	struct nb_event ev[FOLD_EVENTS];
	char ids[FOLD_EVENTS][32];
	struct nb_append req;
	int rc;
};

struct sampler {
	const char *path;
	atomic_int stop;
	int64_t most;
	size_t samples;
};

static void
big_done(struct nb_append *req, int rc, void *arg)
{
	struct big *b = arg;

	(void)req;
	b->rc = rc;
	if (++completed == target)
		event_base_loopbreak(b->fx->base);
}

/*
 * Reads the count as the store computes it (rows after the fold mark), on a
 * read-only connection of its own: a WAL reader waits for no writer, and
 * each step reads the newest commit.
 */
static void *
sample_main(void *arg)
{
	struct sampler *sm = arg;
	struct timespec nap = {0, 1000 * 1000};
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	int64_t n;

	if (sqlite3_open_v2(sm->path, &db, SQLITE_OPEN_READONLY, NULL) !=
		SQLITE_OK ||
	    sqlite3_prepare_v2(db,
		"SELECT coalesce((SELECT max(seq) FROM events), 0) - folded"
		" FROM people_fold WHERE id = 1",
		-1, &st, NULL) != SQLITE_OK)
		goto out;
	while (!atomic_load(&sm->stop)) {
		if (sqlite3_step(st) == SQLITE_ROW) {
			n = sqlite3_column_int64(st, 0);
			if (n > sm->most)
				sm->most = n;
			sm->samples++;
		}
		sqlite3_reset(st);
		nanosleep(&nap, NULL);
	}
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return NULL;
}

static void
test_fold_under_load(void **state)
{
	struct fixture *fx = *state;
	struct sampler sm = {fx->path, 0, 0, 0};
	struct nb_commit *c;
	struct big *bigs;
	pthread_t t;
	int i, k;

	c = committer(fx, NULL);
	assert_non_null(bigs = calloc(FOLD_REQS, sizeof(*bigs)));
	for (i = 0; i < FOLD_REQS; i++) {
		bigs[i].fx = fx;
		bigs[i].rc = 42;
		for (k = 0; k < FOLD_EVENTS; k++) {
			snprintf(bigs[i].ids[k], sizeof(bigs[i].ids[k]),
			    "evt_%d_%d", i, k);
			bigs[i].ev[k].id = bigs[i].ids[k];
			bigs[i].ev[k].type = testlib_unconst("email.sent");
			bigs[i].ev[k].raw = testlib_unconst("{}");
			bigs[i].ev[k].rawlen = 2;
			bigs[i].ev[k].email_key = 1 + (i + k) % 7;
		}
		bigs[i].req.source = "acme";
		bigs[i].req.webhook_id = bigs[i].ids[0];
		bigs[i].req.events = bigs[i].ev;
		bigs[i].req.nevents = FOLD_EVENTS;
		bigs[i].req.received_ms = 1000000;
	}
	assert_int_equal(pthread_create(&t, NULL, sample_main, &sm), 0);
	for (i = 0; i < FOLD_REQS; i++)
		assert_int_equal(
		    nb_commit_submit(c, &bigs[i].req, big_done, &bigs[i]), 0);
	run_until_done(fx, FOLD_REQS);
	atomic_store(&sm.stop, 1);
	pthread_join(t, NULL);
	nb_commit_free(c);
	assert_int_equal(completed, FOLD_REQS);
	for (i = 0; i < FOLD_REQS; i++)
		assert_int_equal(bigs[i].rc, 0);
	assert_true(sm.samples > 0);
	if (sm.most > FOLD_MOST)
		fail_msg("%" PRId64 " rows unfolded under load (at most %d)",
		    sm.most, FOLD_MOST);
	free(bigs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_grouping, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_duplicates_in_one_group, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_failure_then_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_stays_unhealthy, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_free_runs_queued_callbacks, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_recovers_leases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_attach_two_threads, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_attach_free_and_detach, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpointer, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_fold_when_idle, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_fold_under_load, setup, teardown),
	};

	if (evthread_use_pthreads() != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
