/* SPDX-License-Identifier: ISC */
/*
 * test_dlq: the operators' filter grammar and the event JSON shape.
 *
 * The same filters arrive as JSON bodies (admin replay/purge), as query
 * parameters (admin list) and from the command line (through the JSON
 * form).  The tables check every key, the durations and times of
 * since/until against a fixed clock, the state masks, and that every bad
 * input (unknown key, bad reason, bad time, out-of-range limit, wrong type)
 * is refused with a message naming the key.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "nudgebridge/dlq.h"
#include "nudgebridge/store.h"
#include "nudgebridge/timeutil.h"

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
assert_str_or_null(const char *want, const char *got)
{
	if (want == NULL)
		assert_null(got);
	else {
		assert_non_null(got);
		assert_string_equal(want, got);
	}
}

static void
check_good(const struct good_case *c, const struct nb_dlq_query *q)
{
	assert_str_or_null(c->source, q->filter.source);
	assert_str_or_null(c->type, q->filter.type);
	assert_str_or_null(c->reason, q->filter.reason);
	assert_str_or_null(c->id, q->filter.id);
	assert_str_or_null(c->key, q->filter.key);
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
	struct nb_dlq_query q;
	json_t *obj;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		obj = json_loads(good[i].json, 0, NULL);
		assert_non_null(obj);
		err[0] = '\0';
		if (nb_dlq_query_from_json(&q, obj, NOW_MS, err, sizeof(err)) !=
		    0)
			fail_msg("%s: %s", good[i].json, err);
		check_good(&good[i], &q);
		nb_dlq_query_clear(&q);
		json_decref(obj);
	}
}

static void
test_json_null_is_all_dead(void **state)
{
	struct nb_dlq_query q;
	char err[64];

	(void)state;
	assert_int_equal(
	    0, nb_dlq_query_from_json(&q, NULL, NOW_MS, err, sizeof(err)));
	assert_int_equal(NB_STATE_MASK_DEAD, q.filter.states);
	assert_null(q.filter.source);
	assert_int_equal(0, q.filter.limit);
	nb_dlq_query_clear(&q);
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
	struct nb_dlq_query q;
	json_t *obj;
	char err[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		obj = json_loads(bad[i].json, JSON_DECODE_ANY, NULL);
		assert_non_null(obj);
		err[0] = '\0';
		if (nb_dlq_query_from_json(&q, obj, NOW_MS, err, sizeof(err)) !=
		    -1)
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
};

static void
test_kv(void **state)
{
	struct evkeyvalq kv;
	struct nb_dlq_query q;
	char err[256];
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(kvs) / sizeof(kvs[0]); i++) {
		TAILQ_INIT(&kv);
		assert_int_equal(0, evhttp_parse_query_str(kvs[i].query, &kv));
		err[0] = '\0';
		rc = nb_dlq_query_from_kv(&q, &kv, NOW_MS, err, sizeof(err));
		if (kvs[i].ok) {
			if (rc != 0)
				fail_msg("%s: %s", kvs[i].query, err);
			assert_str_or_null(kvs[i].needle, q.filter.source);
			assert_int_equal(kvs[i].since_ms, q.filter.since_ms);
			assert_int_equal(kvs[i].limit, q.filter.limit);
			assert_int_equal(kvs[i].after, q.filter.after_seq);
			assert_int_equal(kvs[i].dry_run, q.dry_run);
			assert_int_equal(kvs[i].states, q.filter.states);
			nb_dlq_query_clear(&q);
		} else {
			if (rc != -1)
				fail_msg("%s: accepted", kvs[i].query);
			if (strstr(err, kvs[i].needle) == NULL)
				fail_msg("%s: message '%s' lacks '%s'",
				    kvs[i].query, err, kvs[i].needle);
		}
		evhttp_clear_headers(&kv);
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

	j = nb_dlq_event_json(&ev, 0);
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
	j = nb_dlq_event_json(&ev, 1);
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
	struct nb_dlq_query q;

	(void)state;
	memset(&q, 0, sizeof(q));
	nb_dlq_query_clear(&q);
	nb_dlq_query_clear(NULL);
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
