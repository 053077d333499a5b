/* SPDX-License-Identifier: ISC */
/*
 * test_alert: the alert conditions as a state machine, and their bodies.
 *
 * Each table row is one evaluation: the instant, the one observation the
 * condition depends on, and what must come of it (the notification due,
 * whether the condition then fires).  A case runs its rows in order on
 * one state, as the alert thread does across evaluations (and restarts:
 * the state is what the store keeps).  The bodies are checked against the
 * contract's shape, and the Slack form against its markup rules.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "nudgebridge/alert.h"

#define NONE (-1) /* the figure could not be read */

struct row {
	int64_t t;	 /* now, ms */
	int64_t v;	 /* the observation: see observe() */
	int64_t start;	 /* source_silent: start-up, when not 0 */
	const char *why; /* dead_letters: main reason */
	enum nb_alert_notify want;
	int firing;
};

struct alert_case {
	const char *name;
	enum nb_alert_kind kind;
	int64_t silent_after_ms;
	const struct row *rows;
	int64_t mark; /* a stored state's (known) when not 0 */
};

static const struct nb_alert_params params = {
    .repeat_ms = 10000,
    .backlog_age_ms = 600000,
    .store_unavailable_ms = 30000,
    .pause_grace_ms = 5000,
};

/* Paused: v is when it was last seen paused (0: never). */
static const struct row paused_rows[] = {
    {0, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {1000, 1000, 0, NULL, NB_ALERT_FIRING, 1},
    {2000, 2000, 0, NULL, NB_ALERT_QUIET, 1},
    /* A lane between two pauses: unseen for less than the grace. */
    {6000, 2000, 0, NULL, NB_ALERT_QUIET, 1},
    {7001, 2000, 0, NULL, NB_ALERT_RESOLVED, 0},
    {8000, 2000, 0, NULL, NB_ALERT_QUIET, 0},
    {9000, 9000, 0, NULL, NB_ALERT_FIRING, 1},
    /*
     * Reported by no instance (a lane trying again at the end of its
     * pause): the state remembers when it was last seen, for the grace.
     */
    {10000, 10000, 0, NULL, NB_ALERT_QUIET, 1},
    {13000, 0, 0, NULL, NB_ALERT_QUIET, 1},
    {15001, 0, 0, NULL, NB_ALERT_RESOLVED, 0},
    {-1, 0, 0, NULL, 0, 0},
};

/*
 * Dead letters: v is the store's monotonic dead-letter total; the state
 * starts where the store's migration put it (mark 5, see dead_mark).
 */
static const struct row dead_rows[] = {
    {0, 5, 0, NULL, NB_ALERT_QUIET, 0},
    {500, NONE, 0, NULL, NB_ALERT_QUIET, 0},
    {1000, 6, 0, "quarantined", NB_ALERT_FIRING, 1},
    /* More within repeat_s: counted, not told. */
    {2000, 8, 0, "max_age", NB_ALERT_QUIET, 1},
    {5000, 8, 0, NULL, NB_ALERT_QUIET, 1},
    /* repeat_s after the first: one more, with the two new ones. */
    {11000, 8, 0, NULL, NB_ALERT_FIRING, 1},
    {15000, 8, 0, NULL, NB_ALERT_QUIET, 1},
    /* A repeat_s with none new since the last: resolved. */
    {21000, 8, 0, NULL, NB_ALERT_RESOLVED, 0},
    {22000, 9, 0, "too_large", NB_ALERT_FIRING, 1},
    {-1, 0, 0, NULL, 0, 0},
};

/* A total that went down (another store) is a new baseline, not news. */
static const struct row dead_reset_rows[] = {
    {0, 50, 0, NULL, NB_ALERT_QUIET, 0},
    {1000, 3, 0, NULL, NB_ALERT_QUIET, 0},
    {2000, 4, 0, "max_attempts", NB_ALERT_FIRING, 1},
    {-1, 0, 0, NULL, 0, 0},
};

/*
 * A source without a state (it came after the store got the alert
 * tables): every dead letter it has is new, even those stored before the
 * first evaluation.
 */
static const struct row dead_new_rows[] = {
    {0, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {1000, 2, 0, "quarantined", NB_ALERT_FIRING, 1},
    {-1, 0, 0, NULL, 0, 0},
};
static const struct row dead_first_rows[] = {
    {0, 3, 0, "quarantined", NB_ALERT_FIRING, 1},
    {-1, 0, 0, NULL, 0, 0},
};

/* Backlog: v is the oldest pending event's receipt (0: none pending). */
static const struct row backlog_rows[] = {
    {1000000, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {1000000, 500000, 0, NULL, NB_ALERT_QUIET, 0},
    {1100001, 500000, 0, NULL, NB_ALERT_FIRING, 1},
    {1200000, NONE, 0, NULL, NB_ALERT_QUIET, 1},
    {1300000, 500000, 0, NULL, NB_ALERT_QUIET, 1},
    {1300500, 0, 0, NULL, NB_ALERT_RESOLVED, 0},
    {-1, 0, 0, NULL, 0, 0},
};

/*
 * Silent (60 s): v is the last verified request (0: none yet), counted
 * from start-up (start) when none came.
 */
static const struct row silent_rows[] = {
    {30000, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {60000, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {61000, 0, 0, NULL, NB_ALERT_FIRING, 1},
    {70000, NONE, 0, NULL, NB_ALERT_QUIET, 1},
    /* A restart moves start-up: still firing, not told again. */
    {80000, 0, 75000, NULL, NB_ALERT_QUIET, 1},
    {200000, 0, 75000, NULL, NB_ALERT_QUIET, 1},
    /* The next verified request resolves it. */
    {201000, 200500, 75000, NULL, NB_ALERT_RESOLVED, 0},
    {260000, 200500, 75000, NULL, NB_ALERT_QUIET, 0},
    {261000, 200500, 75000, NULL, NB_ALERT_FIRING, 1},
    {-1, 0, 0, NULL, 0, 0},
};

/* Silent for a source that has it off: never. */
static const struct row silent_off_rows[] = {
    {0, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {10000000, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {-1, 0, 0, NULL, 0, 0},
};

/* Store: v is when commits began to fail (0: they work). */
static const struct row store_rows[] = {
    {1000, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {20000, 1000, 0, NULL, NB_ALERT_QUIET, 0},
    {31000, 1000, 0, NULL, NB_ALERT_QUIET, 0},
    {31001, 1000, 0, NULL, NB_ALERT_FIRING, 1},
    {40000, 1000, 0, NULL, NB_ALERT_QUIET, 1},
    {41000, 0, 0, NULL, NB_ALERT_RESOLVED, 0},
    {42000, 0, 0, NULL, NB_ALERT_QUIET, 0},
    {-1, 0, 0, NULL, 0, 0},
};

static const struct alert_case cases[] = {
    {"paused", NB_ALERT_SOURCE_PAUSED, 0, paused_rows, 0},
    {"dead", NB_ALERT_DEAD_LETTERS, 0, dead_rows, 5},
    {"dead_reset", NB_ALERT_DEAD_LETTERS, 0, dead_reset_rows, 50},
    {"dead_new", NB_ALERT_DEAD_LETTERS, 0, dead_new_rows, 0},
    {"dead_first", NB_ALERT_DEAD_LETTERS, 0, dead_first_rows, 0},
    {"backlog", NB_ALERT_BACKLOG_AGE, 0, backlog_rows, 0},
    {"silent", NB_ALERT_SOURCE_SILENT, 60000, silent_rows, 0},
    {"silent_off", NB_ALERT_SOURCE_SILENT, 0, silent_off_rows, 0},
    {"store", NB_ALERT_STORE_UNAVAILABLE, 0, store_rows, 0},
};

static void
observe(const struct alert_case *c, const struct row *r, struct nb_alert_obs *o)
{
	memset(o, 0, sizeof(*o));
	o->now_ms = r->t;
	o->start_ms = r->start;
	o->have_queue = r->v != NONE;
	o->have_received = r->v != NONE;
	o->silent_after_ms = c->silent_after_ms;
	o->dead_reason = r->why;
	switch (c->kind) {
	case NB_ALERT_SOURCE_PAUSED:
		o->paused_seen_ms = r->v;
		o->paused_status = 401;
		o->paused_text = "Segment answered 401";
		break;
	case NB_ALERT_DEAD_LETTERS:
		o->dead_total = r->v;
		break;
	case NB_ALERT_BACKLOG_AGE:
		o->oldest_pending_ms = r->v == NONE ? 0 : r->v;
		o->pending = 3;
		break;
	case NB_ALERT_SOURCE_SILENT:
		o->last_received_ms = r->v == NONE ? 0 : r->v;
		break;
	default:
		o->store_bad_since_ms = r->v;
		break;
	}
}

static void
test_table(void **state)
{
	const struct alert_case *c;
	enum nb_alert_notify got;
	struct nb_alert_state st;
	struct nb_alert_obs o;
	size_t i, j;
	int changed;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = &cases[i];
		memset(&st, 0, sizeof(st));
		st.kind = c->kind;
		snprintf(st.source, sizeof(st.source), "acme");
		st.mark = c->mark;
		st.known = c->mark != 0;
		for (j = 0; c->rows[j].t != -1; j++) {
			observe(c, &c->rows[j], &o);
			changed = 0;
			got = nb_alert_step(&st, &o, &params, &changed);
			if (got != c->rows[j].want ||
			    st.firing != c->rows[j].firing)
				fail_msg(
				    "case %s row %zu: notify %d firing %d, "
				    "want %d and %d",
				    c->name, j, (int)got, st.firing,
				    (int)c->rows[j].want, c->rows[j].firing);
			/* What is told is what is stored. */
			if (c->rows[j].want != NB_ALERT_QUIET && !changed)
				fail_msg("case %s row %zu: told, not stored",
				    c->name, j);
		}
	}
}

/* The counts and reasons told by the dead_letters rows. */
static void
test_dead_details(void **state)
{
	static const int64_t counts[] = {1, 2, 1};
	static const char *const reasons[] = {
	    "quarantined", "max_age", "too_large"};
	struct nb_alert_state st;
	struct nb_alert_obs o;
	json_t *d;
	size_t j, told = 0;
	int changed;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.kind = NB_ALERT_DEAD_LETTERS;
	snprintf(st.source, sizeof(st.source), "acme");
	st.mark = 5;
	st.known = 1;
	for (j = 0; dead_rows[j].t != -1; j++) {
		observe(&cases[1], &dead_rows[j], &o);
		if (nb_alert_step(&st, &o, &params, &changed) !=
		    NB_ALERT_FIRING)
			continue;
		assert_non_null(d = json_loads(st.details, 0, NULL));
		assert_int_equal(
		    json_integer_value(json_object_get(d, "count")),
		    counts[told]);
		assert_string_equal(
		    json_string_value(json_object_get(d, "reason")),
		    reasons[told]);
		assert_non_null(strstr(st.summary, reasons[told]));
		json_decref(d);
		told++;
	}
	assert_int_equal(told, 3);
}

static void
test_body(void **state)
{
	struct nb_alert_state st;
	json_t *b;
	char *text;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.kind = NB_ALERT_SOURCE_PAUSED;
	snprintf(st.source, sizeof(st.source), "acme");
	snprintf(st.summary, sizeof(st.summary), "Delivery of acme is paused");
	snprintf(st.details, sizeof(st.details), "{\"status\":401}");
	st.started_ms = 1764324000123LL;
	st.resolved_ms = 1764324060000LL;

	assert_int_equal(nb_alert_body(&st, NB_ALERT_FIRING, &text), 0);
	assert_non_null(b = json_loads(text, 0, NULL));
	assert_string_equal(
	    json_string_value(json_object_get(b, "alert")), "source_paused");
	assert_string_equal(
	    json_string_value(json_object_get(b, "status")), "firing");
	assert_string_equal(
	    json_string_value(json_object_get(b, "source")), "acme");
	assert_string_equal(json_string_value(json_object_get(b, "summary")),
	    "Delivery of acme is paused");
	assert_string_equal(json_string_value(json_object_get(b, "started_at")),
	    "2025-11-28T10:00:00.123Z");
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(b, "details"), "status")),
	    401);
	assert_null(json_object_get(b, "resolved_at"));
	json_decref(b);
	free(text);

	assert_int_equal(nb_alert_body(&st, NB_ALERT_RESOLVED, &text), 0);
	assert_non_null(b = json_loads(text, 0, NULL));
	assert_string_equal(
	    json_string_value(json_object_get(b, "status")), "resolved");
	assert_string_equal(
	    json_string_value(json_object_get(b, "resolved_at")),
	    "2025-11-28T10:01:00.000Z");
	json_decref(b);
	free(text);

	/* The instance's condition has no source. */
	st.kind = NB_ALERT_STORE_UNAVAILABLE;
	st.source[0] = '\0';
	snprintf(st.details, sizeof(st.details), "not json");
	assert_int_equal(nb_alert_body(&st, NB_ALERT_FIRING, &text), 0);
	assert_non_null(b = json_loads(text, 0, NULL));
	assert_true(json_is_null(json_object_get(b, "source")));
	assert_true(json_is_object(json_object_get(b, "details")));
	json_decref(b);
	free(text);
}

static void
test_slack(void **state)
{
	struct nb_alert_state st;
	char *body, *slack;
	json_t *s;
	const char *t;

	(void)state;
	memset(&st, 0, sizeof(st));
	st.kind = NB_ALERT_SOURCE_PAUSED;
	snprintf(st.source, sizeof(st.source), "acme");
	snprintf(st.summary, sizeof(st.summary), "a <b> & c");
	snprintf(st.details, sizeof(st.details), "{}");
	assert_int_equal(nb_alert_body(&st, NB_ALERT_FIRING, &body), 0);
	assert_int_equal(nb_alert_slack(body, &slack), 0);
	assert_non_null(s = json_loads(slack, 0, NULL));
	assert_int_equal(json_object_size(s), 1);
	assert_non_null(t = json_string_value(json_object_get(s, "text")));
	assert_non_null(
	    strstr(t, "[FIRING] source_paused: a &lt;b&gt; &amp; c"));
	json_decref(s);
	free(slack);
	free(body);
	assert_int_equal(nb_alert_slack("not json", &slack), -1);
	assert_null(slack);
}

static void
test_names(void **state)
{
	enum nb_alert_kind k;
	int i;

	(void)state;
	for (i = 0; i < NB_ALERT_KINDS; i++) {
		assert_int_equal(
		    nb_alert_parse(nb_alert_name((enum nb_alert_kind)i), &k),
		    0);
		assert_int_equal((int)k, i);
	}
	assert_int_equal(nb_alert_parse("nope", &k), -1);
	assert_string_equal(nb_alert_name(NB_ALERT_KINDS), "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_dead_details),
	    cmocka_unit_test(test_body),
	    cmocka_unit_test(test_slack),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
