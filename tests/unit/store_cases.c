/* SPDX-License-Identifier: ISC */
/*
 * store_cases: the store contract cases every backend must pass.
 *
 * Not a test program of its own: test_store.c (SQLite) and test_store_pg.c
 * (PostgreSQL) each include cmocka, define struct fixture (with at least
 * cfg and s, the open store), a STORE_NEED(fx) statement that skips the
 * case when the backend is unavailable, and setup/teardown that open a
 * fresh, empty store; then they #include this file and list
 * STORE_CASES(setup, teardown) in their cmocka table.  So both backends run
 * the same assertions; a case only one backend can run (size caps,
 * concurrency on a shared server) stays in that backend's file.  Times are
 * injected (small integers), never read from the clock.
 */
#ifndef NB_STORE_CASES_C
#define NB_STORE_CASES_C

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/store.h"
#include "testlib.h"

/* The dedupe window of req(). */
#define WINDOW 1000
#define ALL                                                                    \
	(NB_STATE_MASK_PENDING | NB_STATE_MASK_DELIVERED | NB_STATE_MASK_DEAD)

static struct nb_store *
open_store(struct fixture *fx)
{
	struct nb_store *s = NULL;
	char err[256] = "";

	if (nb_store_open(&s, &fx->cfg, err, sizeof(err)) != 0)
		fail_msg("nb_store_open: %s", err);
	return s;
}

static struct nb_event
ev(const char *id, const char *type, const char *raw, const char *error)
{
	struct nb_event e;

	memset(&e, 0, sizeof(e));
	e.id = testlib_unconst(id);
	e.type = testlib_unconst(type);
	e.raw = testlib_unconst(raw);
	e.rawlen = strlen(raw);
	e.error = error;
	return e;
}

static struct nb_append
req(const char *source, const char *webhook_id, const struct nb_event *events,
    size_t n, int64_t received_ms)
{
	struct nb_append r;

	memset(&r, 0, sizeof(r));
	r.source = source;
	r.webhook_id = webhook_id;
	r.events = events;
	r.nevents = n;
	r.received_ms = received_ms;
	r.dedupe_after_ms = received_ms - WINDOW;
	return r;
}

static int
append1(struct nb_store *s, struct nb_append *r)
{
	struct nb_append *p = r;

	return nb_store_append(s, &p, 1);
}

static void
assert_counts(const struct nb_append *r, int acc, int dup, int quar)
{
	assert_int_equal(r->accepted, acc);
	assert_int_equal(r->duplicates, dup);
	assert_int_equal(r->quarantined, quar);
}

/* Number of rows in the given states (mask) for source (NULL: all). */
static size_t
count(struct nb_store *s, unsigned states, const char *source)
{
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	size_t n = 0;

	memset(&f, 0, sizeof(f));
	f.states = states;
	f.source = source;
	assert_int_equal(nb_store_list(s, &f, &rows, &n), 0);
	nb_stored_events_free(rows, n);
	return n;
}

/* The one row with key-less lookup by event id; the caller frees. */
static struct nb_stored_event *
by_id(struct nb_store *s, const char *id)
{
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	size_t n = 0;

	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.id = id;
	assert_int_equal(nb_store_list(s, &f, &rows, &n), 0);
	assert_int_equal(n, 1);
	return rows;
}

/* Appends one pending event per id, all received at t. */
static void
add(struct nb_store *s, const char *source, const char *id, int64_t t)
{
	struct nb_event e = ev(id, "email.sent", "{\"id\":\"x\"}", NULL);
	struct nb_append r = req(source, NULL, &e, 1, t);

	assert_int_equal(append1(s, &r), 0);
	assert_int_equal(r.accepted, 1);
}

static int64_t
seq_of(struct nb_store *s, const char *id)
{
	struct nb_stored_event *row = by_id(s, id);
	int64_t seq = row->seq;

	nb_stored_events_free(row, 1);
	return seq;
}

/*
 * Rows for the filter table: 6 dead letters of two sources and reasons,
 * plus one pending and one delivered.
 */
static void
add_filter_rows(struct nb_store *s, int64_t *seqs)
{
	static const struct {
		const char *source, *id, *type, *reason;
		int64_t t;
	} rows[] = {
	    {"acme", "d1", "email.opened", NB_REASON_MAX_AGE, 1000},
	    {"acme", "d2", "email.clicked", NB_REASON_REJECTED, 2000},
	    {"beta", "d3", "email.opened", NB_REASON_MAX_AGE, 3000},
	    {"beta", "d4", "email.sent", NB_REASON_TOO_LARGE, 4000},
	    {"acme", "d5", "email.opened", NB_REASON_MAX_ATTEMPTS, 5000},
	    {"acme", "d6", "email.opened", NB_REASON_MAX_AGE, 6000},
	    {"acme", "p1", "email.opened", NULL, 7000},
	    {"acme", "v1", "email.opened", NULL, 8000},
	};
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct nb_event e = ev(rows[i].id, rows[i].type, "{}", NULL);
		struct nb_append r =
		    req(rows[i].source, NULL, &e, 1, rows[i].t);

		assert_int_equal(append1(s, &r), 0);
		seqs[i] = seq_of(s, rows[i].id);
		if (rows[i].reason != NULL)
			assert_int_equal(nb_store_dead(s, &seqs[i], 1,
					     rows[i].reason, "err", 9000, NULL),
			    0);
	}
	assert_int_equal(nb_store_delivered(s, &seqs[7], 1, 9000, NULL), 0);
}

/* Revalidation stub: raw containing "fixed" is now valid. */
static const char *
revalidate_stub(const char *raw, size_t len, char **id, char **type)
{
	assert_int_equal(strlen(raw), len);
	if (strstr(raw, "fixed") == NULL)
		return "id: still missing";
	*id = strdup("evt_fixed");
	*type = strdup("email.opened");
	return NULL;
}

static void
test_group_atomic(void **state)
{
	struct fixture *fx = *state;
	struct nb_event e1[] = {ev("a", "t", "{}", NULL)};
	struct nb_event e2[] = {
	    ev("a", "t", "{}", NULL), ev("b", "t", "{}", NULL)};
	struct nb_append r1 = req("acme", "wh_1", e1, 1, 100);
	struct nb_append r2 = req("acme", "wh_2", e2, 2, 100);
	struct nb_append r3 = req("acme", "wh_1", e1, 1, 100);
	struct nb_append *group[] = {&r1, &r2, &r3};

	STORE_NEED(fx);
	assert_int_equal(nb_store_append(fx->s, group, 3), 0);
	assert_counts(&r1, 1, 0, 0);
	assert_counts(&r2, 1, 1, 0);
	assert_counts(&r3, 0, 1, 0);
	assert_int_equal(count(fx->s, NB_STATE_MASK_PENDING, NULL), 2);
	assert_int_equal(nb_store_append(fx->s, group, 0), 0);
	assert_int_equal(nb_store_probe(fx->s), 0);
}

static void
test_claim_order_and_leases(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	const char *both[] = {"acme", "beta"};
	struct nb_stored_event *rows = NULL;
	struct nb_store_retry rt;
	size_t n = 0;

	STORE_NEED(fx);
	add(fx->s, "acme", "a1", 100);
	add(fx->s, "beta", "b1", 110);
	add(fx->s, "acme", "a2", 120);
	add(fx->s, "acme", "a3", 130);

	/* a1 is retried: due at 500, after the others. */
	rt.seq = seq_of(fx->s, "a1");
	rt.next_ms = 500;
	assert_int_equal(nb_store_retry(fx->s, &rt, 1, "HTTP 500", NULL), 0);

	/* Nothing of an unnamed source, nothing for limit 0 / no source. */
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 0, 1000, 2000, 10, &rows, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 1000, 2000, 0, &rows, &n), 0);
	assert_int_equal(n, 0);

	/* At 300 a1 is not due; order is next_ms then seq across sources. */
	assert_int_equal(
	    nb_store_claim(fx->s, both, 2, 300, 1000, 2, &rows, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].id, "b1");
	assert_string_equal(rows[1].id, "a2");
	assert_int_equal(rows[0].state, NB_STATE_PENDING);
	assert_string_equal(rows[0].raw, "{\"id\":\"x\"}");
	nb_stored_events_free(rows, n);

	assert_int_equal(
	    nb_store_claim(fx->s, both, 2, 600, 1000, 10, &rows, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].id, "a3");
	assert_string_equal(rows[1].id, "a1");
	assert_int_equal(rows[1].attempts, 1);
	assert_string_equal(rows[1].error, "HTTP 500");
	nb_stored_events_free(rows, n);

	/* Everything leased until 1000. */
	assert_int_equal(
	    nb_store_claim(fx->s, both, 2, 999, 2000, 10, &rows, &n), 0);
	assert_int_equal(n, 0);
	assert_null(rows);

	/* Extending a2's lease keeps it off the next claim. */
	{
		int64_t a2 = seq_of(fx->s, "a2");

		assert_int_equal(nb_store_extend(fx->s, &a2, 1, 5000), 0);
	}
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 1000, 3000, 10, &rows, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(rows[0].id, "a3");
	assert_string_equal(rows[1].id, "a1");
	nb_stored_events_free(rows, n);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 5000, 6000, 10, &rows, &n), 0);
	assert_int_equal(n, 3);
	nb_stored_events_free(rows, n);
}

static void
test_transitions(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_stored_event *rows = NULL, *row;
	struct nb_store_retry rt[2];
	int64_t s1, s2, s3;
	size_t n = 0;

	STORE_NEED(fx);
	add(fx->s, "acme", "e1", 100);
	add(fx->s, "acme", "e2", 100);
	add(fx->s, "acme", "e3", 100);
	s1 = seq_of(fx->s, "e1");
	s2 = seq_of(fx->s, "e2");
	s3 = seq_of(fx->s, "e3");
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 10000, 10, &rows, &n), 0);
	assert_int_equal(n, 3);
	nb_stored_events_free(rows, n);

	/* Delivered: out of the queue for good. */
	assert_int_equal(nb_store_delivered(fx->s, &s1, 1, 300, NULL), 0);
	row = by_id(fx->s, "e1");
	assert_int_equal(row->state, NB_STATE_DELIVERED);
	assert_int_equal(row->updated_ms, 300);
	nb_stored_events_free(row, 1);

	/* Retry twice: attempts count, lease dropped, due at next_ms. */
	rt[0].seq = s2;
	rt[0].next_ms = 400;
	assert_int_equal(nb_store_retry(fx->s, rt, 1, "timeout", NULL), 0);
	rt[0].next_ms = 450;
	assert_int_equal(nb_store_retry(fx->s, rt, 1, "HTTP 503", NULL), 0);
	row = by_id(fx->s, "e2");
	assert_int_equal(row->attempts, 2);
	assert_string_equal(row->error, "HTTP 503");
	assert_int_equal(row->state, NB_STATE_PENDING);
	nb_stored_events_free(row, 1);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 449, 10000, 10, &rows, &n), 0);
	assert_int_equal(n, 0);

	/* Release: claimable at once, no attempt counted. */
	assert_int_equal(nb_store_release(fx->s, &s3, 1, NULL), 0);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 449, 10000, 10, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(rows[0].seq, s3);
	assert_int_equal(rows[0].attempts, 0);
	nb_stored_events_free(rows, n);

	/* Dead: reason and error kept, out of the queue. */
	assert_int_equal(nb_store_dead(fx->s, &s3, 1, NB_REASON_TOO_LARGE,
			     "message over 32000 bytes", 500, NULL),
	    0);
	row = by_id(fx->s, "e3");
	assert_int_equal(row->state, NB_STATE_DEAD);
	assert_string_equal(row->reason, NB_REASON_TOO_LARGE);
	assert_string_equal(row->error, "message over 32000 bytes");
	assert_int_equal(row->updated_ms, 500);
	nb_stored_events_free(row, 1);
	assert_int_equal(
	    nb_store_dead(fx->s, &s2, 1, NB_REASON_MAX_AGE, NULL, 600, NULL),
	    0);
	row = by_id(fx->s, "e2");
	assert_null(row->error);
	assert_int_equal(row->attempts, 2);
	nb_stored_events_free(row, 1);

	/* Only pending rows change state: a delivered row stays. */
	assert_int_equal(
	    nb_store_dead(fx->s, &s1, 1, NB_REASON_MAX_AGE, NULL, 700, NULL),
	    0);
	row = by_id(fx->s, "e1");
	assert_int_equal(row->state, NB_STATE_DELIVERED);
	nb_stored_events_free(row, 1);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 100000, 200000, 10, &rows, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(nb_store_delivered(fx->s, NULL, 0, 1, NULL), 0);
}

static void
test_list_filters(void **state)
{
	struct fixture *fx = *state;
	int64_t seqs[8];
	char key[NB_STORE_KEY_MAX];
	struct {
		struct nb_store_filter f;
		const char *want; /* ids, space separated */
	} cases[] = {
	    {{0}, "d1 d2 d3 d4 d5 d6"},
	    {{.source = "beta"}, "d3 d4"},
	    {{.type = "email.opened"}, "d1 d3 d5 d6"},
	    {{.reason = NB_REASON_MAX_AGE}, "d1 d3 d6"},
	    {{.id = "d4"}, "d4"},
	    {{.id = "nope"}, ""},
	    {{.since_ms = 2000}, "d2 d3 d4 d5 d6"},
	    {{.until_ms = 3000}, "d1 d2 d3"},
	    {{.since_ms = 2000, .until_ms = 4000}, "d2 d3 d4"},
	    {{.states = NB_STATE_MASK_PENDING}, "p1"},
	    {{.states = NB_STATE_MASK_DELIVERED}, "v1"},
	    {{.states = ALL, .since_ms = 6000}, "d6 p1 v1"},
	    {{.source = "acme",
		 .reason = NB_REASON_MAX_AGE,
		 .type = "email.opened"},
		"d1 d6"},
	    {{.limit = 2}, "d1 d2"},
	    {{.limit = 2, .after_seq = 0}, "d1 d2"},
	    {{.key = "abc"}, ""},
	    {{.key = "-1"}, ""},
	    {{.key = "0"}, ""},
	    {{.key = "99999999999999999999"}, ""},
	    {{.key = key}, "d4"},
	    {{.key = key, .source = "acme"}, ""},
	};
	size_t i, j, n;

	STORE_NEED(fx);
	add_filter_rows(fx->s, seqs);
	snprintf(key, sizeof(key), "%lld", (long long)seqs[3]);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct nb_stored_event *rows = NULL;
		char got[128] = "";
		size_t len = 0;

		assert_int_equal(
		    nb_store_list(fx->s, &cases[i].f, &rows, &n), 0);
		for (j = 0; j < n; j++)
			len += (size_t)snprintf(got + len, sizeof(got) - len,
			    "%s%s", j ? " " : "", rows[j].id);
		if (strcmp(got, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, got,
			    cases[i].want);
		nb_stored_events_free(rows, n);
	}

	/* Paging: limit 2 after the last seq of each page. */
	{
		struct nb_store_filter f = {.limit = 2};
		struct nb_stored_event *rows = NULL;
		size_t pages = 0, total = 0;

		for (;;) {
			assert_int_equal(
			    nb_store_list(fx->s, &f, &rows, &n), 0);
			if (n == 0)
				break;
			assert_true(rows[0].seq > f.after_seq);
			f.after_seq = rows[n - 1].seq;
			total += n;
			pages++;
			nb_stored_events_free(rows, n);
		}
		assert_int_equal(pages, 3);
		assert_int_equal(total, 6);
	}
	/* A page that starts after a given seq. */
	{
		struct nb_store_filter f = {.limit = 4, .after_seq = seqs[1]};
		struct nb_stored_event *rows = NULL;

		assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
		assert_int_equal(n, 4);
		assert_string_equal(rows[0].id, "d3");
		nb_stored_events_free(rows, n);
	}
	/* A NULL filter lists dead letters. */
	{
		struct nb_stored_event *rows = NULL;

		assert_int_equal(nb_store_list(fx->s, NULL, &rows, &n), 0);
		assert_int_equal(n, 6);
		nb_stored_events_free(rows, n);
	}
}

/* One page of f; the ids found, space separated, into got. */
static int64_t
page(struct nb_store *s, const struct nb_store_filter *f, char *got,
    size_t gotlen)
{
	struct nb_stored_event *rows = NULL;
	size_t n = 0, i, len = 0;
	int64_t next = -1;

	got[0] = '\0';
	assert_int_equal(nb_store_list_page(s, f, &rows, &n, &next), 0);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(
		    got + len, gotlen - len, "%s%s", i ? " " : "", rows[i].id);
	nb_stored_events_free(rows, n);
	return next;
}

/*
 * Pages look at no more rows than max_scan, whatever the filter: a filter
 * that matches only the last rows walks there in bounded steps, each with
 * a cursor and no rows.  Newest first walks the other way with before_seq.
 */
static void
test_list_pages(void **state)
{
	enum { N = 250 };
	struct fixture *fx = *state;
	struct nb_store_filter f;
	struct nb_event e[N];
	struct nb_append r;
	char ids[N][8], got[256], key[NB_STORE_KEY_MAX];
	int64_t first, next, seqs[8];
	size_t i;

	STORE_NEED(fx);
	for (i = 0; i < N; i++) {
		snprintf(ids[i], sizeof(ids[i]), "a%zu", i);
		e[i] = ev(ids[i], "t", "{}", NULL);
	}
	r = req("acme", NULL, e, N, 100);
	assert_int_equal(append1(fx->s, &r), 0);
	first = seq_of(fx->s, "a0");
	add(fx->s, "beta", "b1", 200);
	add(fx->s, "beta", "b2", 200);

	memset(&f, 0, sizeof(f));
	f.states = NB_STATE_MASK_PENDING;
	f.source = "beta";
	f.limit = 10;
	f.max_scan = 100;
	next = page(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "");
	assert_int_equal(next, first + 99);
	f.after_seq = next;
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), first + 199);
	assert_string_equal(got, "");
	f.after_seq = first + 199;
	/* The rest fits the scan: the rows run out, no cursor. */
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), 0);
	assert_string_equal(got, "b1 b2");
	/* The limit ends a page at its last row. */
	f.limit = 1;
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), first + N);
	assert_string_equal(got, "b1");

	/* Newest first, then on below the cursor. */
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.newest_first = 1;
	f.limit = 2;
	next = page(fx->s, &f, got, sizeof(got));
	assert_string_equal(got, "b2 b1");
	assert_int_equal(next, first + N);
	f.before_seq = next;
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), first + N - 2);
	assert_string_equal(got, "a249 a248");
	/* Between two cursors; a key on its own. */
	f.after_seq = first + 245;
	f.limit = 0;
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), 0);
	assert_string_equal(got, "a249 a248 a247 a246");
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.newest_first = 1;
	snprintf(key, sizeof(key), "%lld", (long long)(first + 3));
	f.key = key;
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), 0);
	assert_string_equal(got, "a3");

	/* Dead letters through their index, both ways. */
	add_filter_rows(fx->s, seqs);
	memset(&f, 0, sizeof(f));
	f.limit = 3;
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), seqs[2]);
	assert_string_equal(got, "d1 d2 d3");
	f.newest_first = 1;
	f.limit = 0;
	f.max_scan = 2;
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), seqs[4]);
	assert_string_equal(got, "d6 d5");
	f.before_seq = seqs[4];
	f.source = "beta";
	assert_int_equal(page(fx->s, &f, got, sizeof(got)), seqs[2]);
	assert_string_equal(got, "d4 d3");
	/* nb_store_list() goes on by itself past any bound of its own. */
	assert_int_equal(count(fx->s, NB_STATE_MASK_PENDING, "beta"), 2);
}

static void
test_replay(void **state)
{
	struct fixture *fx = *state;
	struct nb_event q[] = {
	    ev(NULL, NULL, "{\"fixed\":1}", "id: missing"),
	    ev(NULL, NULL, "{\"broken\":1}", "id: missing"),
	};
	struct nb_append r = req("acme", "wh_q", q, 2, 50);
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL, *row;
	size_t n = 0, rep, req_;
	int64_t seqs[8];

	STORE_NEED(fx);
	add_filter_rows(fx->s, seqs);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 0, 2);

	/* Dry run: counts only. */
	memset(&f, 0, sizeof(f));
	f.reason = NB_REASON_MAX_AGE;
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 1, 20000, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, 3);
	assert_int_equal(req_, 0);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), 8);

	/* For real: max_age rows become pending, attempts and clock reset. */
	assert_int_equal(
	    nb_store_retry(
		fx->s, &(struct nb_store_retry){seqs[7], 1}, 1, "x", NULL),
	    0); /* delivered row: not pending, unchanged */
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 20000, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, 3);
	row = by_id(fx->s, "d1");
	assert_int_equal(row->state, NB_STATE_PENDING);
	assert_null(row->reason);
	assert_null(row->error);
	assert_int_equal(row->attempts, 0);
	assert_int_equal(row->age_base_ms, 20000);
	assert_int_equal(row->received_ms, 1000);
	assert_int_equal(row->seq, seqs[0]);
	nb_stored_events_free(row, 1);
	{
		const char *src[] = {"acme", "beta"};

		assert_int_equal(
		    nb_store_claim(fx->s, src, 2, 20000, 30000, 10, &rows, &n),
		    0);
		/* p1 plus the three replayed rows. */
		assert_int_equal(n, 4);
		nb_stored_events_free(rows, n);
	}

	/* Pending rows are skipped even when the mask names them. */
	memset(&f, 0, sizeof(f));
	f.states = NB_STATE_MASK_PENDING;
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 21000, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, 0);

	/* Delivered rows replay when asked for. */
	f.states = NB_STATE_MASK_DELIVERED;
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 21000, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, 1);
	row = by_id(fx->s, "v1");
	assert_int_equal(row->state, NB_STATE_PENDING);
	nb_stored_events_free(row, 1);

	/* Quarantined: one now valid, one still broken. Dry run first. */
	memset(&f, 0, sizeof(f));
	f.reason = NB_REASON_QUARANTINED;
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 1, 22000, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, 1);
	assert_int_equal(req_, 1);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), 5);
	/* Without a revalidation function quarantined rows stay put. */
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 22000, NULL, &rep, &req_), 0);
	assert_int_equal(rep + req_, 0);
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 22000, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, 1);
	assert_int_equal(req_, 1);
	row = by_id(fx->s, "evt_fixed");
	assert_int_equal(row->state, NB_STATE_PENDING);
	assert_string_equal(row->type, "email.opened");
	assert_string_equal(row->raw, "{\"fixed\":1}");
	nb_stored_events_free(row, 1);
	assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
	assert_int_equal(n, 1);
	assert_null(rows[0].id);
	assert_string_equal(rows[0].error, "id: still missing");
	assert_int_equal(rows[0].updated_ms, 22000);
	assert_int_equal(rows[0].state, NB_STATE_DEAD);
	nb_stored_events_free(rows, n);

	/* A non-numeric key replays nothing; limit bounds the count. */
	memset(&f, 0, sizeof(f));
	f.key = "x1";
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 23000, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep + req_, 0);
	memset(&f, 0, sizeof(f));
	f.limit = 1;
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 23000, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, 1);
}

/*
 * A replay larger than one listing round (store.c lists 1000 rows at a
 * time), with a limit that ends inside the second round.
 */
/*
 * Stores n events "<prefix>i" in one request and dead-letters them (max_age);
 * returns their seqs in order (the caller frees them).
 */
static int64_t *
add_dead(struct nb_store *s, const char *prefix, size_t n)
{
	struct nb_stored_event *rows = NULL;
	struct nb_store_filter f;
	struct nb_append r;
	struct nb_event *e;
	int64_t *seqs;
	char(*ids)[32];
	size_t i, got = 0;

	e = calloc(n, sizeof(*e));
	ids = calloc(n, sizeof(*ids));
	seqs = calloc(n, sizeof(*seqs));
	assert_true(e != NULL && ids != NULL && seqs != NULL);
	for (i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s%zu", prefix, i);
		e[i] = ev(ids[i], "t", "{}", NULL);
	}
	r = req("acme", NULL, e, n, 100);
	assert_int_equal(append1(s, &r), 0);
	assert_counts(&r, (int)n, 0, 0);
	memset(&f, 0, sizeof(f));
	f.states = NB_STATE_MASK_PENDING;
	f.source = "acme";
	assert_int_equal(nb_store_list(s, &f, &rows, &got), 0);
	assert_int_equal(got, n);
	for (i = 0; i < n; i++)
		seqs[i] = rows[i].seq;
	nb_stored_events_free(rows, got);
	assert_int_equal(
	    nb_store_dead(s, seqs, n, NB_REASON_MAX_AGE, NULL, 200, NULL), 0);
	free(ids);
	free(e);
	return seqs;
}

static void
test_replay_rounds(void **state)
{
	enum { N = 2100, LIMIT = 1500 };
	struct fixture *fx = *state;
	struct nb_stored_event *rows = NULL;
	struct nb_store_filter f;
	int64_t *seqs;
	char ids[2][16];
	size_t rep, req_;

	STORE_NEED(fx);
	seqs = add_dead(fx->s, "r", N);

	memset(&f, 0, sizeof(f));
	f.limit = LIMIT;
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 1, 300, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, LIMIT);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), N);
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 300, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, LIMIT);
	assert_int_equal(req_, 0);
	assert_int_equal(count(fx->s, NB_STATE_MASK_PENDING, NULL), LIMIT);
	/* Oldest first: the first LIMIT seqs went back to pending. */
	snprintf(ids[0], sizeof(ids[0]), "r%d", LIMIT - 1);
	snprintf(ids[1], sizeof(ids[1]), "r%d", LIMIT);
	rows = by_id(fx->s, ids[0]);
	assert_int_equal(rows->state, NB_STATE_PENDING);
	nb_stored_events_free(rows, 1);
	rows = by_id(fx->s, ids[1]);
	assert_int_equal(rows->state, NB_STATE_DEAD);
	nb_stored_events_free(rows, 1);

	memset(&f, 0, sizeof(f));
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 400, revalidate_stub, &rep, &req_),
	    0);
	assert_int_equal(rep, N - LIMIT);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), 0);
	assert_int_equal(count(fx->s, NB_STATE_MASK_PENDING, NULL), N);
	free(seqs);
}

static void
test_purge(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_filter f;
	int64_t seqs[8];
	size_t n;

	STORE_NEED(fx);
	add_filter_rows(fx->s, seqs);
	memset(&f, 0, sizeof(f));
	f.source = "acme";
	assert_int_equal(nb_store_purge(fx->s, &f, 1, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), 6);
	f.limit = 1;
	assert_int_equal(nb_store_purge(fx->s, &f, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &n), 0);
	assert_int_equal(n, 1);
	f.limit = 0;
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), 2);
	/* Pending and delivered rows stay unless the mask names them. */
	assert_int_equal(count(fx->s, ALL, NULL), 4);
	f.key = "nope";
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &n), 0);
	assert_int_equal(n, 0);
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(count(fx->s, ALL, NULL),
	    0); /* Keys are never reused after a purge. */
	add(fx->s, "acme", "new", 100);
	assert_true(seq_of(fx->s, "new") > seqs[7]);
}

static void
test_stats(void **state)
{
	struct fixture *fx = *state;
	struct nb_event q = ev(NULL, NULL, "{}", "id: missing");
	struct nb_append r = req("beta", "wh_q", &q, 1, 50);
	struct nb_source_stats *st = NULL;
	struct nb_stored_event *rows = NULL;
	const char *acme[] = {"acme"};
	int64_t seqs[8];
	size_t n;

	STORE_NEED(fx);
	assert_int_equal(nb_store_stats(fx->s, 0, &st, &n), 0);
	assert_int_equal(n, 0);
	free(st);

	add_filter_rows(fx->s, seqs);
	add(fx->s, "acme", "p2", 7500);
	add(fx->s, "Zeta", "z1", 7500); /* bytewise: before "acme" */
	assert_int_equal(append1(fx->s, &r), 0);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 10000, 20000, 1, &rows, &n), 0);
	assert_int_equal(n, 1);
	nb_stored_events_free(rows, n);

	assert_int_equal(nb_store_stats(fx->s, 15000, &st, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(st[0].source, "Zeta");
	assert_string_equal(st[1].source, "acme");
	assert_int_equal(st[1].pending, 2);
	assert_int_equal(st[1].inflight, 1);
	assert_int_equal(st[1].delivered, 1);
	assert_int_equal(st[1].dead, 4);
	assert_int_equal(st[1].quarantined, 0);
	assert_int_equal(st[1].oldest_pending_ms, 7000);
	assert_string_equal(st[2].source, "beta");
	assert_int_equal(st[2].pending, 0);
	assert_int_equal(st[2].dead, 3);
	assert_int_equal(st[2].quarantined, 1);
	assert_int_equal(st[2].oldest_pending_ms, 0);
	/* The running totals. */
	assert_int_equal(st[0].received_total, 1);
	assert_int_equal(st[1].received_total, 7);
	assert_int_equal(st[1].delivered_total, 1);
	assert_int_equal(st[1].dead_total, 4);
	assert_int_equal(st[2].received_total, 3);
	assert_int_equal(st[2].delivered_total, 0);
	assert_int_equal(st[2].dead_total, 3);
	free(st);
	assert_int_equal(nb_store_stats(fx->s, 20000, &st, &n), 0);
	assert_int_equal(st[1].inflight, 0);
	free(st);
}

/* Totals outlive the rows; a source without rows is listed by stats_all. */
static void
test_totals(void **state)
{
	struct fixture *fx = *state;
	struct nb_source_stats *st = NULL;
	struct nb_store_filter f;
	int64_t seqs[8];
	size_t n, purged;

	STORE_NEED(fx);
	add_filter_rows(fx->s, seqs);
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.source = "beta";
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 2);
	assert_int_equal(nb_store_stats(fx->s, 0, &st, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(st[0].source, "acme");
	free(st);
	assert_int_equal(nb_store_stats_all(fx->s, 0, &st, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(st[1].source, "beta");
	assert_int_equal(st[1].pending + st[1].delivered + st[1].dead, 0);
	assert_int_equal(st[1].received_total, 2);
	assert_int_equal(st[1].dead_total, 2);
	free(st);
	/* The delivered row pruned: the gauge drops, the total stays. */
	assert_int_equal(nb_store_prune(fx->s, 0, 9001), 0);
	assert_int_equal(nb_store_stats(fx->s, 0, &st, &n), 0);
	assert_int_equal(st[0].delivered, 0);
	assert_int_equal(st[0].delivered_total, 1);
	assert_int_equal(st[0].received_total, 6);
	free(st);
}

/*
 * Recent errors: counted per source and text, the latest row's state and
 * reason, newest first, since a time, a few per source, bounded.
 */
static void
test_errors(void **state)
{
	struct fixture *fx = *state;
	struct nb_event q[] = {
	    ev(NULL, NULL, "{}", "id: missing"),
	    ev(NULL, NULL, "{}", "id: missing"),
	};
	struct nb_append r = req("acme", "wh_q", q, 2, 100);
	struct nb_store_error *e = NULL;
	struct nb_store_retry rt;
	char err[32];
	int64_t seqs[8];
	size_t n, i;

	STORE_NEED(fx);
	assert_int_equal(append1(fx->s, &r), 0);
	add_filter_rows(fx->s, seqs); /* dead letters "err" at 9000 */
	add(fx->s, "acme", "x1", 9500);
	rt.seq = seq_of(fx->s, "x1");
	rt.next_ms = 9600;
	assert_int_equal(nb_store_retry(fx->s, &rt, 1, "HTTP 503", NULL), 0);

	assert_int_equal(nb_store_errors(fx->s, 0, 5, &e, &n), 0);
	assert_int_equal(n, 4);
	/* The retry happened now (wall clock): the newest. */
	assert_string_equal(e[0].source, "acme");
	assert_string_equal(e[0].error, "HTTP 503");
	assert_int_equal(e[0].state, NB_STATE_PENDING);
	assert_null(e[0].reason);
	assert_int_equal(e[0].count, 1);
	assert_string_equal(e[1].error, "err");
	assert_int_equal(e[1].count, 4);
	assert_int_equal(e[1].last_ms, 9000);
	assert_int_equal(e[1].state, NB_STATE_DEAD);
	assert_string_equal(e[2].error, "id: missing");
	assert_int_equal(e[2].count, 2);
	assert_int_equal(e[2].last_ms, 100);
	assert_string_equal(e[2].reason, NB_REASON_QUARANTINED);
	assert_string_equal(e[3].source, "beta");
	assert_int_equal(e[3].count, 2);
	nb_store_errors_free(e, n);
	/* Since a time; at most per_source of each. */
	assert_int_equal(nb_store_errors(fx->s, 200, 1, &e, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(e[0].error, "HTTP 503");
	assert_string_equal(e[1].source, "beta");
	nb_store_errors_free(e, n);
	assert_int_equal(nb_store_errors(fx->s, 0, 0, &e, &n), 0);
	assert_int_equal(n, 0);
	/* A source keeps its newest NB_STORE_ERRORS_KEPT. */
	for (i = 0; i < NB_STORE_ERRORS_KEPT + 8; i++) {
		snprintf(err, sizeof(err), "segment: %zu", i);
		add(fx->s, "beta", err, 10000 + (int64_t)i);
		seqs[0] = seq_of(fx->s, err);
		assert_int_equal(
		    nb_store_dead(fx->s, seqs, 1, NB_REASON_REJECTED, err,
			10000 + (int64_t)i, NULL),
		    0);
	}
	assert_int_equal(nb_store_errors(fx->s, 0, 1000, &e, &n), 0);
	for (i = 0; i < n && strcmp(e[i].source, "beta") != 0; i++)
		;
	assert_int_equal(n - i, NB_STORE_ERRORS_KEPT);
	assert_string_equal(e[i].error, "segment: 39");
	nb_store_errors_free(e, n);
}

static void
test_prune(void **state)
{
	struct fixture *fx = *state;
	struct nb_event e = ev("a", "t", "{}", NULL);
	struct nb_append r;
	int64_t seqs[8];

	STORE_NEED(fx);
	add_filter_rows(fx->s, seqs); /* v1 delivered at 9000 */

	/* The dedupe key of "a" (seen at 100) is forgotten by prune even
	 * though the request below still lies within its window. */
	r = req("acme", "wh_p", &e, 1, 100);
	r.dedupe_after_ms = 0;
	assert_int_equal(append1(fx->s, &r), 0);
	r.webhook_id = "wh_p2";
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 1, 0);

	assert_int_equal(nb_store_prune(fx->s, 101, 8999), 0);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DELIVERED, NULL), 1);
	r.webhook_id = "wh_p";
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 1, 0, 0);

	assert_int_equal(nb_store_prune(fx->s, 0, 9001), 0);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DELIVERED, NULL), 0);
	/* Dead letters and pending rows are never pruned. */
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), 6);
	assert_int_equal(count(fx->s, NB_STATE_MASK_PENDING, NULL), 3);
}

/*
 * Fills raw (len bytes + NUL) with a JSON string whose bytes depend on tag,
 * so that a payload read back for the wrong row cannot match.
 */
static void
fill_payload(char *raw, size_t len, int tag)
{
	size_t i;

	assert_true(len >= 4);
	raw[0] = '"';
	for (i = 1; i < len - 1; i++)
		raw[i] = (char)('a' + (i * 7 + (size_t)tag * 13) % 26);
	raw[len - 1] = '"';
	raw[len] = '\0';
}

/* Asserts that rows[0..n) carry the payloads of payload_case(). */
static void
assert_payloads(const struct nb_stored_event *rows, size_t n,
    char raws[][20001], const size_t *lens, size_t nraws)
{
	size_t i, k;

	for (i = 0; i < n; i++) {
		assert_non_null(rows[i].id);
		k = (size_t)strtoul(rows[i].id + 1, NULL, 10);
		assert_true(k < nraws);
		assert_int_equal(rows[i].rawlen, lens[k]);
		assert_memory_equal(rows[i].raw, raws[k], lens[k]);
		assert_int_equal(rows[i].raw[rows[i].rawlen], '\0');
	}
}

/*
 * Every way out of the store hands back each row's own payload, byte for
 * byte, whatever its size (a few bytes, a typical event, one larger than a
 * database page): claim, list, replay, and purge and prune take the rows
 * with them.
 */
static void
test_payloads(void **state)
{
	static const size_t lens[] = {4, 600, 20000, 600, 1200, 4};
	static char raws[6][20001];
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_event e[6];
	struct nb_append r;
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	int64_t seqs[6];
	char ids[6][8];
	size_t i, n = 0, replayed = 0, requarantined = 0, purged = 0;

	STORE_NEED(fx);
	for (i = 0; i < 6; i++) {
		fill_payload(raws[i], lens[i], (int)i);
		snprintf(ids[i], sizeof(ids[i]), "e%zu", i);
		/* e5 is quarantined. */
		e[i] = ev(ids[i], "email.sent", raws[i],
		    i == 5 ? "type: missing" : NULL);
	}
	r = req("acme", "wh_pl", e, 6, 100);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 5, 0, 1);

	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 5);
	assert_payloads(rows, n, raws, lens, 6);
	for (i = 0; i < n; i++) {
		assert_string_equal(rows[i].id, ids[i]);
		seqs[i] = rows[i].seq;
	}
	nb_stored_events_free(rows, n);

	/* e0, e1 delivered, e2 dead, e3 retried, e4 released. */
	assert_int_equal(nb_store_delivered(fx->s, seqs, 2, 300, NULL), 0);
	assert_int_equal(nb_store_dead(fx->s, &seqs[2], 1, NB_REASON_TOO_LARGE,
			     "big", 300, NULL),
	    0);
	{
		struct nb_store_retry rt = {.seq = seqs[3], .next_ms = 400};

		assert_int_equal(nb_store_retry(fx->s, &rt, 1, "503", NULL), 0);
	}
	assert_int_equal(nb_store_release(fx->s, &seqs[4], 1, NULL), 0);

	memset(&f, 0, sizeof(f));
	f.states = ALL;
	assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
	assert_int_equal(n, 6);
	assert_payloads(rows, n, raws, lens, 6);
	nb_stored_events_free(rows, n);

	/* Replay the dead letters (e2, and e5 without a validator stays). */
	assert_int_equal(nb_store_replay(fx->s, NULL, 0, 500, NULL, &replayed,
			     &requarantined),
	    0);
	assert_int_equal(replayed, 1);
	assert_int_equal(requarantined, 0);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 600, 100000, 10, &rows, &n), 0);
	assert_int_equal(n, 3); /* e2, e3, e4 */
	assert_payloads(rows, n, raws, lens, 6);
	nb_stored_events_free(rows, n);

	/* Prune the delivered rows, purge the quarantined one. */
	assert_int_equal(nb_store_prune(fx->s, 0, 1000), 0);
	f.states = NB_STATE_MASK_DEAD;
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 1);
	f.states = ALL;
	assert_int_equal(nb_store_list(fx->s, &f, &rows, &n), 0);
	assert_int_equal(n, 3);
	assert_payloads(rows, n, raws, lens, 6);
	nb_stored_events_free(rows, n);
}

static void
test_dedupe_webhook_id(void **state)
{
	struct fixture *fx = *state;
	struct nb_event e[] = {
	    ev("a", "email.opened", "{\"id\":\"a\"}", NULL),
	    ev("b", "email.sent", "{\"id\":\"b\"}", NULL),
	};
	struct nb_event noid = ev(NULL, NULL, "{}", "id: missing");
	struct nb_append r;

	STORE_NEED(fx);
	r = req("acme", "wh_1", e, 2, 10000);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 2, 0, 0);

	/* Same webhook id within the window: all duplicates, nothing new,
	 * even events that carry no id of their own. */
	r = req("acme", "wh_1", e, 2, 10000 + WINDOW / 2);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 2, 0);
	r = req("acme", "wh_1", &noid, 1, 10000 + WINDOW / 2);
	assert_int_equal(append1(fx->s, &r), 0);
	assert_counts(&r, 0, 1, 0);
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

	STORE_NEED(fx);
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
	static const char bin[] = "{\"x\":\"\xc3\xa9\\u0000\"}";
	struct nb_event e[] = {
	    ev("q1", NULL, "{\"id\":\"q1\"}", "type: missing"),
	    ev(NULL, "t", "{\"type\":\"t\"}", "id: missing"),
	    ev("ok", "t", bin, NULL),
	};
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	struct nb_append r;
	size_t n = 0;
	int64_t seq;

	STORE_NEED(fx);
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

	/* Payload bytes come back exactly (UTF-8, an escaped NUL). */
	rows = by_id(fx->s, "ok");
	assert_int_equal(rows->rawlen, strlen(bin));
	assert_memory_equal(rows->raw, bin, strlen(bin));
	assert_int_equal(rows->raw[rows->rawlen], '\0');
	nb_stored_events_free(rows, 1);
}

/* Groups larger than one pipeline batch keep their per-request counts. */
static void
test_large_group(void **state)
{
	struct fixture *fx = *state;
	enum { NREQ = 200, UNIQUE = 130 };
	static struct nb_event e[NREQ][2];
	static struct nb_append r[NREQ];
	static char wh[NREQ][16], id[NREQ][16];
	struct nb_append *group[NREQ];
	size_t i;

	STORE_NEED(fx);
	for (i = 0; i < NREQ; i++) {
		/* Requests UNIQUE.. repeat the webhook ids of 0..; every
		 * third one repeats an event id of the request before. */
		snprintf(wh[i], sizeof(wh[i]), "wh_%zu", i % UNIQUE);
		snprintf(id[i], sizeof(id[i]), "e_%zu", i % 3 == 2 ? i - 1 : i);
		e[i][0] = ev(id[i], "t", "{}", NULL);
		e[i][1] = ev(NULL, NULL, "{}", "id: missing");
		/* The last one without webhook id: its key batch flushes
		 * after the loop. */
		r[i] = req("acme", i == NREQ - 1 ? NULL : wh[i], e[i], 2, 100);
		group[i] = &r[i];
	}
	assert_int_equal(nb_store_append(fx->s, group, NREQ), 0);
	for (i = 0; i < NREQ; i++) {
		if (i == NREQ - 1)
			assert_counts(&r[i], 1, 0, 1);
		else if (i >= UNIQUE)
			assert_counts(&r[i], 0, 2, 0);
		else if (i % 3 == 2)
			assert_counts(&r[i], 0, 1, 1);
		else
			assert_counts(&r[i], 1, 0, 1);
	}
	assert_int_equal(
	    count(fx->s, NB_STATE_MASK_PENDING, NULL), UNIQUE - UNIQUE / 3 + 1);
	assert_int_equal(count(fx->s, NB_STATE_MASK_DEAD, NULL), UNIQUE + 1);
}

/* Appends n events "<tag>-i" (raw {"t":"<tag>-i"}) in one group. */
static void
add_group(struct nb_store *s, const char *tag, size_t n, int64_t t)
{
	struct nb_event e[70];
	struct nb_append r;
	char ids[70][32], raws[70][48];
	size_t i;

	assert_true(n <= 70);
	for (i = 0; i < n; i++) {
		snprintf(ids[i], sizeof(ids[i]), "%s-%zu", tag, i);
		snprintf(raws[i], sizeof(raws[i]), "{\"t\":\"%s\"}", ids[i]);
		e[i] = ev(ids[i], "email.sent", raws[i], NULL);
	}
	r = req("acme", NULL, e, n, t);
	assert_int_equal(append1(s, &r), 0);
	assert_counts(&r, (int)n, 0, 0);
}

/* Each row from first_seq on is "<tag>-i" with its own payload. */
static void
assert_group(struct nb_store *s, const char *tag, size_t n, int64_t first_seq)
{
	struct nb_store_filter f;
	struct nb_stored_event *rows = NULL;
	char id[32], raw[48];
	size_t i, got = 0;

	memset(&f, 0, sizeof(f));
	f.states = ALL;
	f.after_seq = first_seq - 1;
	f.limit = n;
	assert_int_equal(nb_store_list(s, &f, &rows, &got), 0);
	assert_int_equal(got, n);
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%s-%zu", tag, i);
		snprintf(raw, sizeof(raw), "{\"t\":\"%s\"}", id);
		assert_int_equal(rows[i].seq, first_seq + (int64_t)i);
		assert_string_equal(rows[i].id, id);
		assert_string_equal(rows[i].raw, raw);
	}
	nb_stored_events_free(rows, got);
}

/*
 * A purge of the newest rows leaves the payloads table behind the last
 * seq given: the next appends take seqs past the purged ones (never
 * reused), and each payload still lands under its own row's seq.
 */
static void
test_append_after_purge(void **state)
{
	struct fixture *fx = *state;
	struct nb_store_filter f;
	char key[NB_STORE_KEY_MAX];
	size_t purged;
	int64_t first;

	STORE_NEED(fx);
	add_group(fx->s, "a", 3, 100);
	first = seq_of(fx->s, "a-0");
	assert_group(fx->s, "a", 3, first);

	memset(&f, 0, sizeof(f));
	f.states = ALL;
	snprintf(key, sizeof(key), "%lld", (long long)(first + 2));
	f.key = key;
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 1);
	add_group(fx->s, "b", 70, 200);
	assert_group(fx->s, "b", 70, first + 3);
	add_group(fx->s, "c", 5, 300);
	assert_group(fx->s, "c", 5, first + 73);

	/* Everything purged: the seqs still go on. */
	memset(&f, 0, sizeof(f));
	f.states = ALL;
	assert_int_equal(nb_store_purge(fx->s, &f, 0, &purged), 0);
	assert_int_equal(purged, 77);
	add_group(fx->s, "d", 2, 400);
	assert_group(fx->s, "d", 2, first + 78);
	assert_int_equal(count(fx->s, ALL, NULL), 2);
}

/*
 * The install id: 32 lower-case hex digits, the same on another connection
 * and after a reopen.  Rows stored now carry the current messageId rule in
 * lists and claims, and keep it through a dead letter and a replay.
 */
static void
test_install_and_rule(void **state)
{
	struct fixture *fx = *state;
	const char *acme[] = {"acme"};
	struct nb_segment_install in;
	struct nb_stored_event *rows = NULL, *row;
	struct nb_store_filter f;
	struct nb_store *other;
	char id[NB_SEGMENT_INSTALL_ID_LEN + 1];
	size_t n = 0, done, req_;
	int64_t seq;

	STORE_NEED(fx);
	snprintf(id, sizeof(id), "%s", nb_store_install_id(fx->s));
	assert_int_equal(strlen(id), NB_SEGMENT_INSTALL_ID_LEN);
	assert_int_equal(nb_segment_install_init(&in, id), 0);
	other = open_store(fx);
	assert_string_equal(nb_store_install_id(other), id);
	nb_store_close(other);
	nb_store_close(fx->s);
	fx->s = open_store(fx);
	assert_string_equal(nb_store_install_id(fx->s), id);

	add(fx->s, "acme", "r1", 100);
	add(fx->s, "acme", "r2", 100);
	row = by_id(fx->s, "r1");
	assert_int_equal(row->rule, NB_SEGMENT_RULE_CURRENT);
	seq = row->seq;
	nb_stored_events_free(row, 1);
	assert_int_equal(
	    nb_store_claim(fx->s, acme, 1, 200, 1000, 10, &rows, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rows[0].rule, NB_SEGMENT_RULE_CURRENT);
	assert_int_equal(rows[1].rule, NB_SEGMENT_RULE_CURRENT);
	nb_stored_events_free(rows, n);
	assert_int_equal(nb_store_dead(fx->s, &seq, 1, NB_REASON_MAX_ATTEMPTS,
			     "x", 300, NULL),
	    0);
	memset(&f, 0, sizeof(f));
	assert_int_equal(
	    nb_store_replay(fx->s, &f, 0, 400, NULL, &done, &req_), 0);
	assert_int_equal(done, 1);
	row = by_id(fx->s, "r1");
	assert_int_equal(row->state, NB_STATE_PENDING);
	assert_int_equal(row->rule, NB_SEGMENT_RULE_CURRENT);
	nb_stored_events_free(row, 1);
}

/* The shared cases, for the cmocka table of each backend. */
#define STORE_CASES(setup, teardown)                                           \
	cmocka_unit_test_setup_teardown(test_group_atomic, setup, teardown),   \
	    cmocka_unit_test_setup_teardown(                                   \
		test_claim_order_and_leases, setup, teardown),                 \
	    cmocka_unit_test_setup_teardown(                                   \
		test_transitions, setup, teardown),                            \
	    cmocka_unit_test_setup_teardown(                                   \
		test_list_filters, setup, teardown),                           \
	    cmocka_unit_test_setup_teardown(test_list_pages, setup, teardown), \
	    cmocka_unit_test_setup_teardown(test_replay, setup, teardown),     \
	    cmocka_unit_test_setup_teardown(                                   \
		test_replay_rounds, setup, teardown),                          \
	    cmocka_unit_test_setup_teardown(test_purge, setup, teardown),      \
	    cmocka_unit_test_setup_teardown(test_stats, setup, teardown),      \
	    cmocka_unit_test_setup_teardown(test_totals, setup, teardown),     \
	    cmocka_unit_test_setup_teardown(test_errors, setup, teardown),     \
	    cmocka_unit_test_setup_teardown(test_prune, setup, teardown),      \
	    cmocka_unit_test_setup_teardown(test_payloads, setup, teardown),   \
	    cmocka_unit_test_setup_teardown(                                   \
		test_dedupe_webhook_id, setup, teardown),                      \
	    cmocka_unit_test_setup_teardown(                                   \
		test_dedupe_event_id, setup, teardown),                        \
	    cmocka_unit_test_setup_teardown(test_quarantine, setup, teardown), \
	    cmocka_unit_test_setup_teardown(                                   \
		test_large_group, setup, teardown),                            \
	    cmocka_unit_test_setup_teardown(                                   \
		test_append_after_purge, setup, teardown),                     \
	    cmocka_unit_test_setup_teardown(                                   \
		test_group_model, setup, teardown),                            \
	    cmocka_unit_test_setup_teardown(                                   \
		test_counter_model, setup, teardown),                          \
	    cmocka_unit_test_setup_teardown(                                   \
		test_install_and_rule, setup, teardown),                       \
	    cmocka_unit_test_setup_teardown(                                   \
		test_person_search, setup, teardown),                          \
	    cmocka_unit_test_setup_teardown(                                   \
		test_attempt_history, setup, teardown),                        \
	    cmocka_unit_test_setup_teardown(                                   \
		test_attempt_housekeeping, setup, teardown),                   \
	    cmocka_unit_test_setup_teardown(test_erase, setup, teardown)

#include "store_model.c"
#include "store_find_cases.c"

#endif
