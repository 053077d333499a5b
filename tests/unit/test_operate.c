/* SPDX-License-Identifier: ISC */
/*
 * test_operate: the operate core that the admin API and the CLI share.
 *
 * The grammar: the same parameters arrive as JSON bodies (admin
 * replay/purge), as query parameters (admin list) and from the command
 * line (through the text form).  The tables check every key, the
 * durations and times of since/until against a fixed clock, the state
 * masks, which operation takes which key, and that every bad input is
 * refused with a message naming the key.  The operations run against a
 * real SQLite store in a mkdtemp() folder: show with and without a
 * configured source, a page and a whole listing, replay and purge of a
 * filter in bounded windows that leave rows stored later alone, a
 * selection of keys in steps, and dry runs that list their keys.
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

#include "nudgebridge/config.h"
#include "nudgebridge/operate.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"
#include "testlib.h"

/* 2026-11-28T10:00:00Z */
#define NOW_MS 1795860000000LL

#define ALL_STATES                                                             \
	(NB_STATE_MASK_DEAD | NB_STATE_MASK_DELIVERED | NB_STATE_MASK_PENDING)

struct good_case {
	const char *json;
	const char *source, *type, *reason, *id, *key;
	int64_t since_ms, until_ms;
	unsigned states;
	size_t limit;
	int64_t after;
	int dry_run;
};

static const struct good_case good[] = {
    {"{}", NULL, NULL, NULL, NULL, NULL, 0, 0, NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"source\":\"acme\",\"type\":\"email.opened\"}", "acme", "email.opened",
	NULL, NULL, NULL, 0, 0, NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"reason\":\"quarantined\",\"id\":\"evt_1\",\"key\":\"k1\"}", NULL, NULL,
	"quarantined", "evt_1", "k1", 0, 0, NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"reason\":\"too_large\"}", NULL, NULL, "too_large", NULL, NULL, 0, 0,
	NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"reason\":\"rejected_by_segment\"}", NULL, NULL, "rejected_by_segment",
	NULL, NULL, 0, 0, NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"reason\":\"max_attempts\"}", NULL, NULL, "max_attempts", NULL, NULL, 0,
	0, NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"reason\":\"max_age\"}", NULL, NULL, "max_age", NULL, NULL, 0, 0,
	NB_STATE_MASK_DEAD, 0, 0, 0},
    /* Durations ago and RFC 3339 times. */
    {"{\"since\":\"90m\"}", NULL, NULL, NULL, NULL, NULL, NOW_MS - 90 * 60000LL,
	0, NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"since\":\"7d\",\"until\":\"2h\"}", NULL, NULL, NULL, NULL, NULL,
	NOW_MS - 7 * 86400000LL, NOW_MS - 2 * 3600000LL, NB_STATE_MASK_DEAD, 0,
	0, 0},
    {"{\"since\":\"30s\"}", NULL, NULL, NULL, NULL, NULL, NOW_MS - 30000, 0,
	NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"until\":\"2026-11-28T09:59:58.123Z\"}", NULL, NULL, NULL, NULL, NULL,
	0, 1795859998123LL, NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"since\":\"2026-11-28T10:59:58+01:00\"}", NULL, NULL, NULL, NULL, NULL,
	1795859998000LL, 0, NB_STATE_MASK_DEAD, 0, 0, 0},
    /* States. */
    {"{\"state\":\"dead\"}", NULL, NULL, NULL, NULL, NULL, 0, 0,
	NB_STATE_MASK_DEAD, 0, 0, 0},
    {"{\"state\":\"delivered\"}", NULL, NULL, NULL, NULL, NULL, 0, 0,
	NB_STATE_MASK_DELIVERED, 0, 0, 0},
    {"{\"state\":\"pending\"}", NULL, NULL, NULL, NULL, NULL, 0, 0,
	NB_STATE_MASK_PENDING, 0, 0, 0},
    {"{\"state\":\"all\"}", NULL, NULL, NULL, NULL, NULL, 0, 0, ALL_STATES, 0,
	0, 0},
    /* Paging, limits, dry run; null means absent. */
    {"{\"limit\":1,\"after\":42}", NULL, NULL, NULL, NULL, NULL, 0, 0,
	NB_STATE_MASK_DEAD, 1, 42, 0},
    {"{\"limit\":10000}", NULL, NULL, NULL, NULL, NULL, 0, 0,
	NB_STATE_MASK_DEAD, 10000, 0, 0},
    {"{\"dry_run\":true,\"source\":null,\"since\":null}", NULL, NULL, NULL,
	NULL, NULL, 0, 0, NB_STATE_MASK_DEAD, 0, 0, 1},
    {"{\"dry_run\":false}", NULL, NULL, NULL, NULL, NULL, 0, 0,
	NB_STATE_MASK_DEAD, 0, 0, 0},
};

static void
check_good(const struct good_case *c, const struct nb_operate_query *q)
{
	testlib_assert_str(c->source, q->filter.source);
	testlib_assert_str(c->type, q->filter.type);
	testlib_assert_str(c->reason, q->filter.reason);
	testlib_assert_str(c->id, q->filter.id);
	testlib_assert_str(c->key, q->filter.key);
	assert_int_equal(c->since_ms, q->filter.since_ms);
	assert_int_equal(c->until_ms, q->filter.until_ms);
	assert_int_equal(c->states, q->filter.states);
	assert_int_equal(c->limit, q->filter.limit);
	assert_int_equal(c->after, q->filter.after_seq);
	assert_int_equal(c->dry_run, q->dry_run);
}

static void
test_json_good(void **state)
{
	struct nb_operate_query q;
	json_t *obj;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		obj = json_loads(good[i].json, 0, NULL);
		assert_non_null(obj);
		err[0] = '\0';
		if (nb_operate_query_parse(&q, NB_OPERATE_REPLAY, obj, NOW_MS,
			err, sizeof(err)) != 0)
			fail_msg("%s: %s", good[i].json, err);
		check_good(&good[i], &q);
		nb_operate_query_clear(&q);
		json_decref(obj);
	}
}

static void
test_json_null_is_all_dead(void **state)
{
	struct nb_operate_query q;
	char err[64];

	(void)state;
	assert_int_equal(0,
	    nb_operate_query_parse(
		&q, NB_OPERATE_LIST, NULL, NOW_MS, err, sizeof(err)));
	assert_int_equal(NB_STATE_MASK_DEAD, q.filter.states);
	assert_null(q.filter.source);
	assert_int_equal(0, q.filter.limit);
	nb_operate_query_clear(&q);
}

struct bad_case {
	const char *json;
	const char *needle; /* must appear in the message */
};

static const struct bad_case bad[] = {
    {"{\"sauce\":\"acme\"}", "sauce"},
    {"{\"dryrun\":true}", "dryrun"},
    {"{\"reason\":\"lost\"}", "reason"},
    {"{\"reason\":\"Quarantined\"}", "reason"},
    {"{\"reason\":5}", "reason"},
    {"{\"since\":\"yesterday\"}", "since"},
    {"{\"since\":\"-5m\"}", "since"},
    {"{\"until\":\"2026-13-01T00:00:00Z\"}", "until"},
    {"{\"until\":12345}", "until"},
    {"{\"state\":\"gone\"}", "state"},
    {"{\"limit\":0}", "limit"},
    {"{\"limit\":10001}", "limit"},
    {"{\"limit\":\"5\"}", "limit"},
    {"{\"after\":-1}", "after"},
    {"{\"dry_run\":\"yes\"}", "dry_run"},
    {"{\"source\":\"\"}", "source"},
    {"{\"source\":[\"a\"]}", "source"},
    {"[]", "object"},
    {"\"acme\"", "object"},
};

static void
test_json_bad(void **state)
{
	struct nb_operate_query q;
	json_t *obj;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		obj = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
		assert_non_null(obj);
		err[0] = '\0';
		if (nb_operate_query_parse(&q, NB_OPERATE_PURGE, obj, NOW_MS,
			err, sizeof(err)) != -1)
			fail_msg("%s: accepted", bad[i].json);
		if (strstr(err, bad[i].needle) == NULL)
			fail_msg("%s: message '%s' lacks '%s'", bad[i].json,
			    err, bad[i].needle);
		/* A refused query holds nothing. */
		assert_null(q.filter.source);
		assert_null(q.strings[0]);
		json_decref(obj);
	}
}

struct kv_case {
	const char *query;
	int ok;
	const char *needle; /* ok: the source; else in the message */
	int64_t since_ms;
	size_t limit;
	int64_t after;
	int dry_run;
	unsigned states;
};

static const struct kv_case kvs[] = {
    {"", 1, NULL, 0, 0, 0, 0, NB_STATE_MASK_DEAD},
    {"source=acme&since=90m&limit=5&after=7&dry_run=true", 1, "acme",
	NOW_MS - 5400000LL, 5, 7, 1, NB_STATE_MASK_DEAD},
    {"source=acme&state=all&dry_run=0", 1, "acme", 0, 0, 0, 0, ALL_STATES},
    {"since=2026-11-28T09%3A00%3A00Z", 1, NULL, 1795856400000LL, 0, 0, 0,
	NB_STATE_MASK_DEAD},
    {"reason=nope", 0, "reason", 0, 0, 0, 0, 0},
    {"since=yesterday", 0, "since", 0, 0, 0, 0, 0},
    {"bogus=1", 0, "bogus", 0, 0, 0, 0, 0},
    {"limit=abc", 0, "limit", 0, 0, 0, 0, 0},
    {"limit=5x", 0, "limit", 0, 0, 0, 0, 0},
    {"limit=0", 0, "limit", 0, 0, 0, 0, 0},
    {"dry_run=maybe", 0, "dry_run", 0, 0, 0, 0, 0},
    {"source=a&source=b", 0, "source", 0, 0, 0, 0, 0},
    {"keys=1", 0, "keys", 0, 0, 0, 0, 0},
};

static void
test_kv(void **state)
{
	struct nb_operate_query q;
	json_t *params;
	char err[256];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(kvs) / sizeof(kvs[0]); i++) {
		err[0] = '\0';
		params =
		    nb_operate_params_query(kvs[i].query, err, sizeof(err));
		rc = params == NULL
		    ? -1
		    : nb_operate_query_parse(&q, NB_OPERATE_LIST, params,
			  NOW_MS, err, sizeof(err));
		json_decref(params);
		if (kvs[i].ok) {
			if (rc != 0)
				fail_msg("%s: %s", kvs[i].query, err);
			testlib_assert_str(kvs[i].needle, q.filter.source);
			assert_int_equal(kvs[i].since_ms, q.filter.since_ms);
			assert_int_equal(kvs[i].limit, q.filter.limit);
			assert_int_equal(kvs[i].after, q.filter.after_seq);
			assert_int_equal(kvs[i].dry_run, q.dry_run);
			assert_int_equal(kvs[i].states, q.filter.states);
			nb_operate_query_clear(&q);
		} else {
			if (rc != -1)
				fail_msg("%s: accepted", kvs[i].query);
			if (strstr(err, kvs[i].needle) == NULL)
				fail_msg("%s: message '%s' lacks '%s'",
				    kvs[i].query, err, kvs[i].needle);
		}
	}
}

static void
test_event_json_shape(void **state)
{
	static char raw[] = "{\"type\":\"email.opened\",\"x\":[1,2]}";
	struct nb_stored_event ev;
	json_t *j, *p;

	(void)state;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.key, sizeof(ev.key), "q000000000000002a");
	ev.source = (char *)(uintptr_t) "acme";
	ev.id = NULL;
	ev.type = (char *)(uintptr_t) "email.opened";
	ev.raw = raw;
	ev.rawlen = strlen(raw);
	ev.state = NB_STATE_DEAD;
	ev.reason = (char *)(uintptr_t)NB_REASON_QUARANTINED;
	ev.error = NULL;
	ev.attempts = 3;
	ev.received_ms = 1795859998123LL;
	ev.updated_ms = 1795860000000LL;

	j = nb_operate_event_json(&ev, 0);
	assert_non_null(j);
	assert_string_equal(
	    "q000000000000002a", json_string_value(json_object_get(j, "key")));
	assert_true(json_is_null(json_object_get(j, "id")));
	assert_string_equal(
	    "acme", json_string_value(json_object_get(j, "source")));
	assert_string_equal(
	    "email.opened", json_string_value(json_object_get(j, "type")));
	assert_string_equal(
	    "quarantined", json_string_value(json_object_get(j, "reason")));
	/* error is always a string, empty when unknown. */
	assert_string_equal("", json_string_value(json_object_get(j, "error")));
	assert_string_equal(
	    "dead", json_string_value(json_object_get(j, "state")));
	assert_int_equal(3, json_integer_value(json_object_get(j, "attempts")));
	assert_string_equal("2026-11-28T09:59:58.123Z",
	    json_string_value(json_object_get(j, "received_at")));
	assert_string_equal("2026-11-28T10:00:00.000Z",
	    json_string_value(json_object_get(j, "updated_at")));
	assert_null(json_object_get(j, "payload"));
	json_decref(j);

	/* With detail: the payload is the stored object itself. */
	ev.id = (char *)(uintptr_t) "evt_1";
	ev.error = (char *)(uintptr_t) "id: missing";
	ev.state = NB_STATE_PENDING;
	ev.reason = NULL;
	j = nb_operate_event_json(&ev, 1);
	assert_non_null(j);
	assert_string_equal(
	    "evt_1", json_string_value(json_object_get(j, "id")));
	assert_string_equal(
	    "id: missing", json_string_value(json_object_get(j, "error")));
	assert_string_equal(
	    "pending", json_string_value(json_object_get(j, "state")));
	assert_true(json_is_null(json_object_get(j, "reason")));
	p = json_object_get(j, "payload");
	assert_true(json_is_object(p));
	assert_string_equal(
	    "email.opened", json_string_value(json_object_get(p, "type")));
	assert_int_equal(2, json_array_size(json_object_get(p, "x")));
	json_decref(j);
}

static void
test_clear_zeroed(void **state)
{
	struct nb_operate_query q;

	(void)state;
	memset(&q, 0, sizeof(q));
	nb_operate_query_clear(&q);
	nb_operate_query_clear(NULL);
}

/* Which operation takes which key, and what no single key can check. */
static void
test_ops_and_selections(void **state)
{
	static const struct {
		enum nb_operate_op op;
		const char *json;
		const char *needle; /* NULL: accepted */
	} cases[] = {
	    {NB_OPERATE_REPLAY, "{\"keys\":[\"1\",\"2\"]}", NULL},
	    {NB_OPERATE_PURGE, "{\"keys\":[\"1\"],\"source\":\"a\"}", NULL},
	    {NB_OPERATE_LIST, "{\"keys\":[\"1\"]}", "keys: not a parameter"},
	    {NB_OPERATE_SHOW, "{\"return_keys\":true}", "return_keys"},
	    {NB_OPERATE_REPLAY, "{\"keys\":[]}", "keys: must be an array"},
	    {NB_OPERATE_REPLAY, "{\"keys\":\"1\"}", "keys: must be an array"},
	    {NB_OPERATE_REPLAY, "{\"keys\":[1]}", "keys[0]"},
	    {NB_OPERATE_REPLAY, "{\"keys\":[\"1\",\"\"]}", "keys[1]"},
	    {NB_OPERATE_REPLAY, "{\"keys\":[\"1\"],\"key\":\"1\"}",
		"key or keys"},
	    {NB_OPERATE_REPLAY, "{\"return_keys\":true}", "only with dry_run"},
	    {NB_OPERATE_PURGE, "{\"return_keys\":true,\"dry_run\":true}", NULL},
	    {NB_OPERATE_PURGE,
		"{\"return_keys\":true,\"dry_run\":true,\"keys\":[\"1\"]}",
		"not with keys"},
	};
	struct nb_operate_query q;
	json_t *obj;
	char err[256];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_non_null(obj = json_loads(cases[i].json, 0, NULL));
		err[0] = '\0';
		rc = nb_operate_query_parse(
		    &q, cases[i].op, obj, NOW_MS, err, sizeof(err));
		json_decref(obj);
		if (cases[i].needle == NULL) {
			if (rc != 0)
				fail_msg("%s: %s", cases[i].json, err);
			nb_operate_query_clear(&q);
			continue;
		}
		if (rc != -1)
			fail_msg("%s: accepted", cases[i].json);
		if (strstr(err, cases[i].needle) == NULL)
			fail_msg("%s: message '%s' lacks '%s'", cases[i].json,
			    err, cases[i].needle);
		assert_null(q.keys);
	}
	/* A thousand keys fit, one more does not. */
	assert_non_null(obj = json_array());
	for (i = 0; i < NB_OPERATE_MAX_KEYS; i++)
		json_array_append_new(obj, json_string("7"));
	obj = json_pack("{s:o}", "keys", obj);
	assert_int_equal(0,
	    nb_operate_query_parse(
		&q, NB_OPERATE_PURGE, obj, NOW_MS, err, sizeof(err)));
	assert_int_equal(NB_OPERATE_MAX_KEYS, q.nkeys);
	assert_string_equal("7", q.keys[NB_OPERATE_MAX_KEYS - 1]);
	nb_operate_query_clear(&q);
	json_array_append_new(json_object_get(obj, "keys"), json_string("7"));
	assert_int_equal(-1,
	    nb_operate_query_parse(
		&q, NB_OPERATE_PURGE, obj, NOW_MS, err, sizeof(err)));
	json_decref(obj);
}

/* Operations on a real store. */

#define SEC1 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define RAW_OK                                                                 \
	"{\"id\":\"evt_%d\",\"type\":\"email.opened\",\"occurred_at\":"        \
	"\"2026-11-28T09:59:58Z\",\"subscriber\":{\"uid\":\"u_1\"}}"

struct fixture {
	char dir[64];
	struct nb_store *s;
	struct nb_config *cfg;
	struct nb_operate_env env;
	int serial;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char err[256];

	assert_non_null(fx);
	testlib_tmpdir(fx->dir, sizeof(fx->dir), "operate");
	fx->s = testlib_open_db(fx->dir);
	if (nb_config_load_json(&fx->cfg,
		"{\"store\":{\"driver\":\"sqlite\",\"path\":\"nb.db\"},"
		"\"sources\":[{\"name\":\"acme\",\"signing_secrets\":[\"" SEC1
		"\"],\"write_key\":\"wk\"}]}",
		fx->dir, err, sizeof(err)) == -1)
		fail_msg("config: %s", err);
	fx->env.store = fx->s;
	fx->env.cfg = fx->cfg;
	fx->env.face = "test";
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	nb_store_close(fx->s);
	nb_config_unref(fx->cfg);
	testlib_rmdir_db(fx->dir);
	free(fx);
	return 0;
}

/*
 * Stores n events of source in requests of up to 500: quarantined ones
 * (dead letters) when bad, else valid pending ones.
 */
static void
store_events(struct fixture *fx, const char *source, int n, int broken)
{
	struct nb_event *ev = calloc(500, sizeof(*ev));
	struct nb_append r, *p = &r;
	char ids[500][24], raws[500][160];
	int i, k;

	assert_non_null(ev);
	for (i = 0; i < n; i += k) {
		for (k = 0; k < 500 && i + k < n; k++) {
			snprintf(ids[k], sizeof(ids[k]), "evt_%d", fx->serial);
			snprintf(raws[k], sizeof(raws[k]),
			    broken ? "{\"id\":\"evt_%d\"}" : RAW_OK,
			    fx->serial);
			fx->serial++;
			ev[k].id = ids[k];
			ev[k].type = testlib_unconst("email.opened");
			ev[k].raw = raws[k];
			ev[k].rawlen = strlen(raws[k]);
			ev[k].error = broken ? "occurred_at: missing" : NULL;
		}
		memset(&r, 0, sizeof(r));
		r.source = source;
		r.events = ev;
		r.nevents = (size_t)k;
		r.received_ms = NOW_MS;
		assert_int_equal(0, nb_store_append(fx->s, &p, 1));
	}
	free(ev);
}

/* Runs op over the JSON parameters; the status, *ans the answer. */
static enum nb_operate_status
run(struct fixture *fx, enum nb_operate_op op, const char *json, int one_page,
    json_t **ans)
{
	struct nb_operate_query q;
	json_t *params = json_loads(json, 0, NULL);
	char err[256];
	enum nb_operate_status st;

	assert_non_null(params);
	if (nb_operate_query_parse(&q, op, params, NOW_MS, err, sizeof(err)) ==
	    -1)
		fail_msg("%s: %s", json, err);
	json_decref(params);
	q.one_page = one_page;
	st = nb_operate_run(&fx->env, op, &q, ans, err, sizeof(err));
	assert_null(q.keys); /* moved into the job */
	return st;
}

static json_int_t
count(const json_t *ans, const char *key)
{
	return json_integer_value(json_object_get(ans, key));
}

static void
test_show(void **state)
{
	struct fixture *fx = *state;
	json_t *ans;
	const json_t *t;

	store_events(fx, "acme", 1, 0);
	store_events(fx, "gone", 1, 0);
	store_events(fx, "acme", 1, 1);
	/* A configured source: the Track message. */
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_SHOW, "{\"key\":\"1\"}", 0, &ans));
	assert_string_equal(
	    "pending", json_string_value(json_object_get(ans, "state")));
	t = json_object_get(ans, "track");
	assert_true(json_is_object(t));
	assert_string_equal(
	    "Email Opened", json_string_value(json_object_get(t, "event")));
	assert_null(json_object_get(ans, "track_error"));
	assert_true(json_is_object(json_object_get(ans, "payload")));
	json_decref(ans);
	/* The source is gone from the configuration: say so. */
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_SHOW, "{\"key\":\"2\"}", 0, &ans));
	assert_true(json_is_null(json_object_get(ans, "track")));
	assert_string_equal("source not configured",
	    json_string_value(json_object_get(ans, "track_error")));
	json_decref(ans);
	/* Quarantined: the broken rule. */
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_SHOW, "{\"key\":\"3\"}", 0, &ans));
	assert_true(json_is_null(json_object_get(ans, "track")));
	assert_non_null(json_string_value(json_object_get(ans, "track_error")));
	json_decref(ans);
	/* An explicit state filters; no key, no event. */
	assert_int_equal(NB_OPERATE_NOT_FOUND,
	    run(fx, NB_OPERATE_SHOW, "{\"key\":\"1\",\"state\":\"dead\"}", 0,
		&ans));
	assert_null(ans);
	assert_int_equal(NB_OPERATE_NOT_FOUND,
	    run(fx, NB_OPERATE_SHOW, "{\"key\":\"99\"}", 0, &ans));
	assert_int_equal(NB_OPERATE_NOT_FOUND,
	    run(fx, NB_OPERATE_SHOW,
		"{\"key\":\"123456789012345678901234567890123\"}", 0, &ans));
	assert_int_equal(
	    NB_OPERATE_INVALID, run(fx, NB_OPERATE_SHOW, "{}", 0, &ans));
}

static void
test_list(void **state)
{
	struct fixture *fx = *state;
	json_t *ans;

	store_events(fx, "acme", 5, 1);
	store_events(fx, "beta", 2, 1);
	store_events(fx, "acme", 3, 0);
	/* One page: the limit, and where to go on. */
	assert_int_equal(
	    NB_OPERATE_OK, run(fx, NB_OPERATE_LIST, "{\"limit\":2}", 1, &ans));
	assert_int_equal(2, json_array_size(json_object_get(ans, "events")));
	assert_int_equal(2, count(ans, "next_after"));
	json_decref(ans);
	assert_int_equal(
	    NB_OPERATE_OK, run(fx, NB_OPERATE_LIST, "{\"after\":6}", 1, &ans));
	assert_int_equal(1, json_array_size(json_object_get(ans, "events")));
	assert_true(json_is_null(json_object_get(ans, "next_after")));
	json_decref(ans);
	/* The whole listing, with filters and a limit. */
	assert_int_equal(
	    NB_OPERATE_OK, run(fx, NB_OPERATE_LIST, "{}", 0, &ans));
	assert_int_equal(7, json_array_size(json_object_get(ans, "events")));
	assert_true(json_is_null(json_object_get(ans, "next_after")));
	json_decref(ans);
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_LIST,
		"{\"source\":\"acme\",\"state\":\"all\",\"limit\":7}", 0,
		&ans));
	assert_int_equal(7, json_array_size(json_object_get(ans, "events")));
	assert_string_equal("8",
	    json_string_value(json_object_get(
		json_array_get(json_object_get(ans, "events"), 5), "key")));
	json_decref(ans);
}

/* Steps of op over json until done; the answer. */
static json_t *
steps(struct fixture *fx, enum nb_operate_op op, const char *json,
    size_t *nsteps, void (*between)(struct fixture *))
{
	struct nb_operate_query q;
	struct nb_operate_job *j = NULL;
	json_t *params = json_loads(json, 0, NULL), *ans;
	char err[256];
	int done = 0;

	assert_int_equal(0,
	    nb_operate_query_parse(&q, op, params, NOW_MS, err, sizeof(err)));
	json_decref(params);
	assert_int_equal(NB_OPERATE_OK,
	    nb_operate_begin(&j, &fx->env, op, &q, err, sizeof(err)));
	assert_null(nb_operate_answer(j));
	for (*nsteps = 0; !done; (*nsteps)++) {
		if (nb_operate_step(j, &done, err, sizeof(err)) !=
		    NB_OPERATE_OK)
			fail_msg("step %zu: %s", *nsteps, err);
		if (*nsteps == 0 && between != NULL)
			between(fx);
	}
	assert_non_null(ans = nb_operate_answer(j));
	nb_operate_free(j);
	return ans;
}

static void
more_dead(struct fixture *fx)
{
	store_events(fx, "acme", 10, 1);
}

/*
 * A filter is walked in windows of NB_STORE_CHUNK_SCAN keys, each a step
 * of its own, up to the newest row stored when the walk began.
 */
static void
test_windows(void **state)
{
	struct fixture *fx = *state;
	int n = 2 * NB_STORE_CHUNK_SCAN + 500;
	size_t nsteps;
	json_t *ans, *keys;

	store_events(fx, "acme", n, 1);
	ans = steps(fx, NB_OPERATE_REPLAY,
	    "{\"dry_run\":true,\"return_keys\":true}", &nsteps, NULL);
	assert_int_equal(3, nsteps);
	assert_int_equal(n, count(ans, "replayed"));
	assert_int_equal(n, count(ans, "requarantined"));
	keys = json_object_get(ans, "keys");
	assert_int_equal(NB_OPERATE_MAX_KEYS, json_array_size(keys));
	assert_string_equal("1", json_string_value(json_array_get(keys, 0)));
	assert_true(json_is_true(json_object_get(ans, "keys_truncated")));
	json_decref(ans);
	/* A limit ends the walk early; after starts it later. */
	ans = steps(fx, NB_OPERATE_PURGE, "{\"dry_run\":true,\"limit\":5000}",
	    &nsteps, NULL);
	assert_int_equal(1, nsteps);
	assert_int_equal(5000, count(ans, "purged"));
	json_decref(ans);
	ans = steps(fx, NB_OPERATE_PURGE, "{\"dry_run\":true,\"after\":20000}",
	    &nsteps, NULL);
	assert_int_equal(1, nsteps);
	assert_int_equal(500, count(ans, "purged"));
	json_decref(ans);
	/* Dead letters stored while it runs are left alone. */
	ans = steps(fx, NB_OPERATE_PURGE, "{}", &nsteps, more_dead);
	assert_int_equal(3, nsteps);
	assert_int_equal(n, count(ans, "purged"));
	assert_null(json_object_get(ans, "keys"));
	json_decref(ans);
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_PURGE, "{\"dry_run\":true}", 0, &ans));
	assert_int_equal(10, count(ans, "purged"));
	json_decref(ans);
}

/* A selection goes a few dozen keys a step; filters apply to each. */
static void
test_keys(void **state)
{
	struct fixture *fx = *state;
	char json[2048];
	size_t nsteps, off, i;
	json_t *ans;

	store_events(fx, "acme", 100, 1);
	store_events(fx, "beta", 20, 1);
	off = (size_t)snprintf(json, sizeof(json), "{\"keys\":[");
	for (i = 1; i <= 120; i++)
		off += (size_t)snprintf(json + off, sizeof(json) - off,
		    "%s\"%zu\"", i > 1 ? "," : "", i);
	snprintf(json + off, sizeof(json) - off, ",\"777\"]}");
	ans = steps(fx, NB_OPERATE_PURGE, json, &nsteps, NULL);
	assert_int_equal(3, nsteps);
	assert_int_equal(120, count(ans, "purged"));
	json_decref(ans);
	store_events(fx, "acme", 2, 1);
	ans = steps(fx, NB_OPERATE_REPLAY,
	    "{\"keys\":[\"121\",\"122\"],\"source\":\"beta\"}", &nsteps, NULL);
	assert_int_equal(0, count(ans, "replayed"));
	json_decref(ans);
	/* A dry run of a small filter lists exactly its keys. */
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_REPLAY,
		"{\"dry_run\":true,\"return_keys\":true}", 0, &ans));
	assert_int_equal(2, count(ans, "replayed"));
	assert_int_equal(2, json_array_size(json_object_get(ans, "keys")));
	assert_string_equal("122",
	    json_string_value(json_array_get(json_object_get(ans, "keys"), 1)));
	assert_true(json_is_false(json_object_get(ans, "keys_truncated")));
	json_decref(ans);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_good),
	    cmocka_unit_test(test_json_null_is_all_dead),
	    cmocka_unit_test(test_json_bad),
	    cmocka_unit_test(test_kv),
	    cmocka_unit_test(test_event_json_shape),
	    cmocka_unit_test(test_clear_zeroed),
	    cmocka_unit_test(test_ops_and_selections),
	    cmocka_unit_test_setup_teardown(test_show, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_windows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
