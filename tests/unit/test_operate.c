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
 * selection of keys in steps, and dry runs that list their keys; and
 * section 8's operations on the same core: a search by person newest
 * first with its string cursor, one event with its attempt history, an
 * erase with its audit entry and the audit's pages.
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
#include "nudgebridge/person.h"
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

/* Section 8's parameters: who takes what, persons, limits, defaults. */
static void
test_section8_grammar(void **state)
{
	static const struct {
		enum nb_operate_op op;
		const char *json;
		const char *needle; /* NULL: accepted */
	} cases[] = {
	    {NB_OPERATE_SEARCH, "{\"email\":\"Ada@Example.com\",\"uid\":\"u\"}",
		NULL},
	    {NB_OPERATE_SEARCH,
		"{\"limit\":1000,\"after\":7,\"state\":\"dead\"}", NULL},
	    {NB_OPERATE_SEARCH, "{\"limit\":1001}",
		"limit: must be an integer "
		"from 1 to 1000"},
	    {NB_OPERATE_SEARCH, "{\"email\":\"\"}", "email"},
	    {NB_OPERATE_SEARCH, "{\"uid\":\"a\\u0001b\"}", "uid"},
	    {NB_OPERATE_SEARCH, "{\"uid\":\"a\\u0000b\"}", "uid"},
	    {NB_OPERATE_SEARCH, "{\"uid\":5}", "uid"},
	    {NB_OPERATE_SEARCH, "{\"dry_run\":true}",
		"dry_run: not a parameter of search"},
	    {NB_OPERATE_SEARCH, "{\"keys\":[\"1\"]}", "keys: not a parameter"},
	    {NB_OPERATE_LIST, "{\"email\":\"a@b\"}", "email: not a parameter"},
	    {NB_OPERATE_EVENT, "{\"key\":\"1\"}", NULL},
	    {NB_OPERATE_EVENT, "{\"state\":\"dead\"}",
		"state: not a parameter"},
	    {NB_OPERATE_ERASE, "{\"email\":\"a@b\",\"dry_run\":true}", NULL},
	    {NB_OPERATE_ERASE, "{\"uid\":\"u_1\"}", NULL},
	    {NB_OPERATE_ERASE, "{}", "give one of email and uid"},
	    {NB_OPERATE_ERASE, "{\"email\":\"a@b\",\"uid\":\"u\"}",
		"give one of email and uid"},
	    {NB_OPERATE_ERASE, "{\"email\":\"a@b\",\"source\":\"x\"}",
		"source: not a parameter of erase"},
	    {NB_OPERATE_AUDIT, "{\"limit\":1000,\"after\":3}", NULL},
	    {NB_OPERATE_AUDIT, "{\"limit\":1001}", "limit"},
	    {NB_OPERATE_AUDIT, "{\"email\":\"a@b\"}", "email: not a parameter"},
	};
	struct nb_operate_query q;
	json_t *obj;
	char err[256];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_non_null(
		    obj = json_loads(cases[i].json, JSON_ALLOW_NUL, NULL));
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
		/* Never the value: it may be an address. */
		assert_null(strstr(err, "Ada@"));
	}
	/* A search looks at every state unless told; a person is kept. */
	assert_non_null(
	    obj = json_loads("{\"email\":\"Ada@Example.com\"}", 0, NULL));
	assert_int_equal(0,
	    nb_operate_query_parse(
		&q, NB_OPERATE_SEARCH, obj, NOW_MS, err, sizeof(err)));
	assert_int_equal(ALL_STATES, q.filter.states);
	assert_string_equal("Ada@Example.com", q.filter.email);
	nb_operate_query_clear(&q);
	assert_int_equal(0,
	    nb_operate_query_parse(
		&q, NB_OPERATE_SHOW, NULL, NOW_MS, err, sizeof(err)));
	assert_int_equal(ALL_STATES, q.filter.states);
	json_decref(obj);
	/* From a query string too: the cursor as digits, text as UTF-8. */
	assert_non_null(obj = nb_operate_params_query(
			    "uid=u_1&after=12&limit=3", err, sizeof(err)));
	assert_int_equal(0,
	    nb_operate_query_parse(
		&q, NB_OPERATE_SEARCH, obj, NOW_MS, err, sizeof(err)));
	assert_int_equal(12, q.filter.after_seq);
	assert_int_equal(3, q.filter.limit);
	assert_string_equal("u_1", q.filter.uid);
	nb_operate_query_clear(&q);
	json_decref(obj);
	assert_null(nb_operate_params_query("uid=%ff", err, sizeof(err)));
	assert_non_null(strstr(err, "uid: not valid UTF-8"));
}

/* The one list of reasons: the grammar takes each and names each. */
static void
test_reasons(void **state)
{
	static const char *const reasons[] = {NB_STORE_REASONS};
	struct nb_operate_query q;
	json_t *obj;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
		assert_non_null(obj = json_pack("{s:s}", "reason", reasons[i]));
		assert_int_equal(0,
		    nb_operate_query_parse(
			&q, NB_OPERATE_LIST, obj, NOW_MS, err, sizeof(err)));
		nb_operate_query_clear(&q);
		json_decref(obj);
	}
	assert_non_null(obj = json_pack("{s:s}", "reason", "lost"));
	assert_int_equal(-1,
	    nb_operate_query_parse(
		&q, NB_OPERATE_LIST, obj, NOW_MS, err, sizeof(err)));
	json_decref(obj);
	assert_string_equal("reason: must be one of quarantined, too_large, "
			    "rejected_by_segment, max_attempts, max_age, "
			    "invalid_for_segment",
	    err);
}

static void
test_op_names(void **state)
{
	static const char *const names[NB_OPERATE_NOPS] = {"list", "show",
	    "replay", "purge", "search", "event", "erase", "audit"};
	int op;

	(void)state;
	for (op = 0; op < NB_OPERATE_NOPS; op++) {
		assert_string_equal(names[op], nb_operate_op_str(op));
		/* Only the erase waits: its faces give it a thread. */
		assert_int_equal(op == NB_OPERATE_ERASE, nb_operate_blocks(op));
	}
	assert_string_equal("unknown", nb_operate_op_str(NB_OPERATE_NOPS));
	assert_int_equal(0, nb_operate_blocks(NB_OPERATE_NOPS));
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

/*
 * Stores one event of source whose subscriber is uid (and email, may be
 * NULL), with the person keys the parser would compute; its key.
 */
static int64_t
store_person(
    struct fixture *fx, const char *source, const char *uid, const char *email)
{
	char id[24], raw[256];
	struct nb_event e;
	struct nb_append r, *p = &r;

	snprintf(id, sizeof(id), "evt_%d", fx->serial++);
	snprintf(raw, sizeof(raw),
	    "{\"id\":\"%s\",\"type\":\"email.opened\",\"occurred_at\":"
	    "\"2026-11-28T09:59:58Z\",\"subscriber\":{\"uid\":\"%s\"%s%s%s}}",
	    id, uid, email != NULL ? ",\"email\":\"" : "",
	    email != NULL ? email : "", email != NULL ? "\"" : "");
	memset(&e, 0, sizeof(e));
	e.id = id;
	e.type = testlib_unconst("email.opened");
	e.raw = raw;
	e.rawlen = strlen(raw);
	nb_person_keys_of(raw, e.rawlen, &e.email_key, &e.uid_key);
	memset(&r, 0, sizeof(r));
	r.source = source;
	r.events = &e;
	r.nevents = 1;
	r.received_ms = NOW_MS;
	assert_int_equal(0, nb_store_append(fx->s, &p, 1));
	assert_int_equal(1, r.accepted);
	return fx->serial;
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

/* The keys of a page's events, joined by ','. */
static void
page_keys(const json_t *ans, char *out, size_t len)
{
	const json_t *e;
	size_t i, off = 0;

	out[0] = '\0';
	json_array_foreach(json_object_get(ans, "events"), i, e) off +=
	    (size_t)snprintf(out + off, len - off, "%s%s", i > 0 ? "," : "",
		json_string_value(json_object_get(e, "key")));
}

/* A search by person, newest first; its cursor is a string. */
static void
test_search(void **state)
{
	struct fixture *fx = *state;
	char keys[256], json[128];
	const char *next;
	json_t *ans;
	int i;

	for (i = 0; i < 6; i++)
		store_person(fx, i % 2 ? "acme" : "beta", i < 5 ? "u_1" : "u_2",
		    i == 2 ? "Ada@Example.com" : NULL);
	store_events(fx, "acme", 2, 1);
	/* The default: every state, newest first, fifty at most. */
	assert_int_equal(
	    NB_OPERATE_OK, run(fx, NB_OPERATE_SEARCH, "{}", 1, &ans));
	page_keys(ans, keys, sizeof(keys));
	assert_string_equal("8,7,6,5,4,3,2,1", keys);
	assert_true(json_is_null(json_object_get(ans, "next")));
	assert_null(json_object_get(ans, "next_after"));
	json_decref(ans);
	/* A page of a person, and the cursor to the rest of them. */
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_SEARCH, "{\"uid\":\"u_1\",\"limit\":2}", 1,
		&ans));
	page_keys(ans, keys, sizeof(keys));
	assert_string_equal("5,4", keys);
	assert_non_null(next = json_string_value(json_object_get(ans, "next")));
	snprintf(json, sizeof(json),
	    "{\"uid\":\"u_1\",\"limit\":5,\"after\":%s}", next);
	json_decref(ans);
	assert_int_equal(
	    NB_OPERATE_OK, run(fx, NB_OPERATE_SEARCH, json, 1, &ans));
	page_keys(ans, keys, sizeof(keys));
	assert_string_equal("3,2,1", keys);
	assert_true(json_is_null(json_object_get(ans, "next")));
	json_decref(ans);
	/* The address in any case; filters combine. */
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_SEARCH,
		"{\"email\":\"ADA@example.com\",\"source\":\"beta\"}", 0,
		&ans));
	page_keys(ans, keys, sizeof(keys));
	assert_string_equal("3", keys);
	json_decref(ans);
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_SEARCH, "{\"state\":\"dead\"}", 0, &ans));
	page_keys(ans, keys, sizeof(keys));
	assert_string_equal("8,7", keys);
	json_decref(ans);
}

/* One event: the row, its stored object, its Track message, its tries. */
static void
test_event(void **state)
{
	static const char *const acme[] = {"acme"};
	struct fixture *fx = *state;
	struct nb_store_attempt att = {
	    NOW_MS, NOW_MS + 42, 503, "segment: 503", 1, 0};
	struct nb_store_retry retry = {1, NOW_MS};
	struct nb_stored_event *rows = NULL;
	const json_t *a;
	json_t *ans;
	size_t n = 0;

	store_person(fx, "acme", "u_1", NULL);
	store_person(fx, "gone", "u_1", NULL);
	assert_int_equal(0,
	    nb_store_claim(
		fx->s, acme, 1, NOW_MS, NOW_MS + 30000, 10, &rows, &n));
	assert_int_equal(1, n);
	nb_stored_events_free(rows, n);
	assert_int_equal(0, nb_store_retry(fx->s, &retry, 1, att.error, &att));
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_EVENT, "{\"key\":\"1\"}", 0, &ans));
	assert_int_equal(1, count(ans, "tries"));
	assert_string_equal("u_1",
	    json_string_value(json_object_get(
		json_object_get(json_object_get(ans, "event"), "subscriber"),
		"uid")));
	assert_string_equal("u_1",
	    json_string_value(
		json_object_get(json_object_get(ans, "track"), "userId")));
	assert_null(json_object_get(ans, "track_error"));
	assert_int_equal(1, json_array_size(json_object_get(ans, "attempts")));
	a = json_array_get(json_object_get(ans, "attempts"), 0);
	assert_int_equal(503, count(a, "status"));
	assert_string_equal(
	    "segment: 503", json_string_value(json_object_get(a, "error")));
	assert_int_equal(1, count(a, "batch_size"));
	assert_int_equal(42, count(a, "latency_ms"));
	assert_string_equal("2026-11-28T10:00:00.000Z",
	    json_string_value(json_object_get(a, "at")));
	json_decref(ans);
	/* A source gone from the configuration, no attempt yet. */
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_EVENT, "{\"key\":\"2\"}", 0, &ans));
	assert_true(json_is_null(json_object_get(ans, "track")));
	assert_string_equal("source not configured",
	    json_string_value(json_object_get(ans, "track_error")));
	assert_int_equal(0, json_array_size(json_object_get(ans, "attempts")));
	json_decref(ans);
	assert_int_equal(NB_OPERATE_NOT_FOUND,
	    run(fx, NB_OPERATE_EVENT, "{\"key\":\"3\"}", 0, &ans));
	assert_int_equal(
	    NB_OPERATE_INVALID, run(fx, NB_OPERATE_EVENT, "{}", 0, &ans));
}

/* An erase answers with its audit entry; the audit pages newest first. */
static void
test_erase_and_audit(void **state)
{
	struct fixture *fx = *state;
	char json[128];
	const char *next;
	json_t *ans;

	store_person(fx, "acme", "u_1", "ada@example.com");
	store_person(fx, "acme", "u_2", "ada@example.com");
	store_person(fx, "acme", "u_3", "bob@example.com");
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_ERASE,
		"{\"email\":\"ADA@example.com\",\"dry_run\":true}", 0, &ans));
	assert_int_equal(2, count(ans, "erased"));
	assert_true(json_is_true(json_object_get(ans, "dry_run")));
	assert_string_equal(
	    "test", json_string_value(json_object_get(ans, "actor")));
	assert_string_equal(
	    "email", json_string_value(json_object_get(ans, "kind")));
	assert_null(json_object_get(ans, "id"));
	assert_int_equal(1, count(ans, "audit_id"));
	json_decref(ans);
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_ERASE, "{\"email\":\"ada@example.com\"}", 0,
		&ans));
	assert_int_equal(2, count(ans, "erased"));
	assert_int_equal(2, count(ans, "pending"));
	assert_true(json_is_true(json_object_get(ans, "complete")));
	json_decref(ans);
	assert_int_equal(NB_OPERATE_OK,
	    run(fx, NB_OPERATE_ERASE, "{\"uid\":\"u_3\"}", 0, &ans));
	json_decref(ans);
	assert_int_equal(
	    NB_OPERATE_OK, run(fx, NB_OPERATE_SEARCH, "{}", 0, &ans));
	assert_int_equal(0, json_array_size(json_object_get(ans, "events")));
	json_decref(ans);
	/* The audit: newest first, in pages, the last without a cursor. */
	assert_int_equal(
	    NB_OPERATE_OK, run(fx, NB_OPERATE_AUDIT, "{\"limit\":2}", 0, &ans));
	assert_int_equal(2, json_array_size(json_object_get(ans, "audit")));
	assert_int_equal(
	    3, count(json_array_get(json_object_get(ans, "audit"), 0), "id"));
	assert_string_equal("uid",
	    json_string_value(json_object_get(
		json_array_get(json_object_get(ans, "audit"), 0), "kind")));
	assert_non_null(next = json_string_value(json_object_get(ans, "next")));
	snprintf(json, sizeof(json), "{\"after\":%s}", next);
	json_decref(ans);
	assert_int_equal(
	    NB_OPERATE_OK, run(fx, NB_OPERATE_AUDIT, json, 0, &ans));
	assert_int_equal(1, json_array_size(json_object_get(ans, "audit")));
	assert_true(json_is_true(json_object_get(
	    json_array_get(json_object_get(ans, "audit"), 0), "dry_run")));
	assert_true(json_is_null(json_object_get(ans, "next")));
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
	    cmocka_unit_test(test_section8_grammar),
	    cmocka_unit_test(test_reasons),
	    cmocka_unit_test(test_op_names),
	    cmocka_unit_test_setup_teardown(test_show, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_windows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_search, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_event, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_erase_and_audit, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
