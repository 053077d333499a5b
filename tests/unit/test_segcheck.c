/* SPDX-License-Identifier: ISC */
/*
 * test_segcheck: Segment's own checks, as a table of messages, then the
 * property that matters: every message the mapper produces passes them.
 * The property runs over the fuzz corpora (tests/fuzz/corpus/nudgespot and
 * .../segment: each file, and each element of a file that is an array) and
 * over generated events with random identities, types, names and
 * properties, mapped under three sources (anonymous id from the address,
 * from its SHA-256, and event-name overrides that need escaping).  Each
 * message is also checked by a jansson reference of the same rules, so
 * the one-pass scanner is held to a real JSON parser.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/lane.h"
#include "nudgebridge/segcheck.h"

#define RANDOM_EVENTS 4000

static const struct {
	const char *msg;
	enum nb_segcheck_result want;
} cases[] = {
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":"
     "\"m\",\"properties\":{}}",
	NB_SEGCHECK_OK},
    {" { \"type\" : \"track\" , \"event\" : \"E\" , \"anonymousId\" : "
     "\"a\" , \"messageId\" : \"m\" , \"properties\" : { \"x\" : [1,{}]"
     "} } \n",
	NB_SEGCHECK_OK},
    /* Nested brackets and quotes inside strings are skipped. */
    {"{\"type\":\"track\",\"event\":\"}{][\\\"\",\"userId\":\"u\","
     "\"messageId\":\"m\",\"properties\":{\"a\":\"}\",\"b\":{\"c\":"
     "\"]\"}},\"context\":{\"traits\":{\"type\":1}}}",
	NB_SEGCHECK_OK},
    /* Escaped names are names. */
    {"{\"\\u0074ype\":\"track\",\"event\":\"E\",\"userId\":\"u\","
     "\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_OK},
    /* The last of two members counts. */
    {"{\"type\":\"track\",\"event\":\"\",\"event\":\"E\",\"userId\":\"u\","
     "\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_OK},
    {"{\"type\":\"track\",\"event\":\"E\",\"event\":\"\",\"userId\":\"u\","
     "\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_EVENT},
    {"", NB_SEGCHECK_NOT_OBJECT},
    {"[]", NB_SEGCHECK_NOT_OBJECT},
    {"\"track\"", NB_SEGCHECK_NOT_OBJECT},
    {"{\"type\":\"track\"", NB_SEGCHECK_NOT_OBJECT},
    {"{\"type\":\"track\"} x", NB_SEGCHECK_NOT_OBJECT},
    {"{\"type\":\"tra", NB_SEGCHECK_NOT_OBJECT},
    {"{\"type\":,}", NB_SEGCHECK_NOT_OBJECT},
    {"{\"type\":\"a\\x\"}", NB_SEGCHECK_NOT_OBJECT},
    {"{\"type\":\"a\nb\"}", NB_SEGCHECK_TYPE}, /* left to Segment */
    {"{\"properties\":{\"a\":1}", NB_SEGCHECK_NOT_OBJECT},
    {"{}", NB_SEGCHECK_TYPE},
    {"{\"type\":\"identify\",\"event\":\"E\",\"userId\":\"u\","
     "\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_TYPE},
    {"{\"type\":1,\"event\":\"E\",\"userId\":\"u\",\"messageId\":\"m\","
     "\"properties\":{}}",
	NB_SEGCHECK_TYPE},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\","
     "\"properties\":{}}",
	NB_SEGCHECK_MESSAGE_ID},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":"
     "\"\",\"properties\":{}}",
	NB_SEGCHECK_MESSAGE_ID},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":7,"
     "\"properties\":{}}",
	NB_SEGCHECK_MESSAGE_ID},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":"
     "\"nb-0123456789012345678901234567890123456789012345678901234567890123"
     "4567890123456789012345678901234567\",\"properties\":{}}",
	NB_SEGCHECK_MESSAGE_ID}, /* 101 characters */
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":"
     "\"nb-0123456789012345678901234567890123456789012345678901234567890123"
     "456789012345678901234567890123456\",\"properties\":{}}",
	NB_SEGCHECK_OK}, /* 100 */
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":"
     "\"\xc3\xa9\xc3\xa9\\u00e9\",\"properties\":{}}",
	NB_SEGCHECK_OK},
    {"{\"type\":\"track\",\"userId\":\"u\",\"messageId\":\"m\","
     "\"properties\":{}}",
	NB_SEGCHECK_EVENT},
    {"{\"type\":\"track\",\"event\":\"\",\"userId\":\"u\",\"messageId\":"
     "\"m\",\"properties\":{}}",
	NB_SEGCHECK_EVENT},
    {"{\"type\":\"track\",\"event\":null,\"userId\":\"u\",\"messageId\":"
     "\"m\",\"properties\":{}}",
	NB_SEGCHECK_EVENT},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":"
     "\"m\"}",
	NB_SEGCHECK_PROPERTIES},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":"
     "\"m\",\"properties\":[]}",
	NB_SEGCHECK_PROPERTIES},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"u\",\"messageId\":"
     "\"m\",\"properties\":null}",
	NB_SEGCHECK_PROPERTIES},
    {"{\"type\":\"track\",\"event\":\"E\",\"messageId\":\"m\","
     "\"properties\":{}}",
	NB_SEGCHECK_IDENTITY},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":null,\"anonymousId\":"
     "\"a\",\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_OK},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"\",\"anonymousId\":"
     "\"a\",\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_OK},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":\"\",\"messageId\":"
     "\"m\",\"properties\":{}}",
	NB_SEGCHECK_IDENTITY},
    {"{\"type\":\"track\",\"event\":\"E\",\"anonymousId\":\"\","
     "\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_IDENTITY},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":5,\"anonymousId\":"
     "\"a\",\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_IDENTITY},
    {"{\"type\":\"track\",\"event\":\"E\",\"userId\":null,\"anonymousId\":"
     "{},\"messageId\":\"m\",\"properties\":{}}",
	NB_SEGCHECK_IDENTITY},
};

/*
 * The same rules over a jansson tree: the reference the scanner is held
 * to.  jansson keeps the last of duplicate names, as the scanner does.
 */
static enum nb_segcheck_result
reference(const char *msg, size_t len)
{
	json_t *m =
	    json_loadb(msg, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	json_t *id, *user, *anon, *first;
	enum nb_segcheck_result r = NB_SEGCHECK_OK;

	if (!json_is_object(m)) {
		r = NB_SEGCHECK_NOT_OBJECT;
		goto out;
	}
	id = json_object_get(m, "messageId");
	user = json_object_get(m, "userId");
	anon = json_object_get(m, "anonymousId");
	first = user != NULL && !json_is_null(user) ? user : anon;
	if (!json_is_string(json_object_get(m, "type")) ||
	    strcmp(json_string_value(json_object_get(m, "type")), "track") != 0)
		r = NB_SEGCHECK_TYPE;
	else if (!json_is_string(id) || json_string_length(id) == 0 ||
	    json_string_length(id) > NB_SEGCHECK_MESSAGE_ID_MAX)
		r = NB_SEGCHECK_MESSAGE_ID;
	else if (!json_is_string(json_object_get(m, "event")) ||
	    json_string_length(json_object_get(m, "event")) == 0)
		r = NB_SEGCHECK_EVENT;
	else if (!json_is_object(json_object_get(m, "properties")))
		r = NB_SEGCHECK_PROPERTIES;
	else if (!json_is_string(first) ||
	    ((!json_is_string(user) || json_string_length(user) == 0) &&
		(!json_is_string(anon) || json_string_length(anon) == 0)))
		r = NB_SEGCHECK_IDENTITY;
out:
	json_decref(m);
	return r;
}

static void
test_table(void **state)
{
	enum nb_segcheck_result got, ref;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		got = nb_segcheck_message(cases[i].msg, strlen(cases[i].msg));
		if (got != cases[i].want)
			fail_msg("case %zu: %s, want %s", i,
			    nb_segcheck_result_str(got),
			    nb_segcheck_result_str(cases[i].want));
		/* Where jansson can read it, it agrees. */
		ref = reference(cases[i].msg, strlen(cases[i].msg));
		if (ref != NB_SEGCHECK_NOT_OBJECT && ref != got)
			fail_msg("case %zu: the reference disagrees", i);
	}
	assert_int_equal(nb_segcheck_message(NULL, 0), NB_SEGCHECK_NOT_OBJECT);
	assert_string_equal(nb_segcheck_result_str(NB_SEGCHECK_EVENT),
	    "event: must be a non-empty string");
}

/* The property. */

static struct nb_config *cfg;
static size_t mapped;
/* Rows stored now: the install rule (its messageId is the longer). */
static struct nb_segment_install install;

static int
setup(void **state)
{
	char err[256];

	(void)state;
	if (sodium_init() < 0 ||
	    nb_segment_install_init(
		&install, "0123456789abcdef0123456789abcdef") == -1)
		return -1;
	if (nb_config_load_json(&cfg,
		"{\"sources\":["
		"{\"name\":\"acme\",\"signing_secrets\":[\"whsec_"
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"],\"write_key\":\"k\"},"
		"{\"name\":\"beta\",\"signing_secrets\":[\"whsec_"
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"],\"write_key\":\"k\","
		"\"anonymous_id\":\"sha256\"},"
		"{\"name\":\"gamma\",\"signing_secrets\":[\"whsec_"
		"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"],\"write_key\":\"k\","
		"\"event_names\":{\"email.opened\":\"Say \\\"hi\\\" \\u00e9\","
		"\"t\":\" \",\"x\":\"\\\\\"}}]}",
		"/", err, sizeof(err)) == -1) {
		fprintf(stderr, "config: %s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	nb_config_unref(cfg);
	return 0;
}

/* Maps raw under every source; each message must pass both checks. */
static void
check_all(const char *raw, size_t len, const char *what)
{
	enum nb_segcheck_result r;
	const char *why;
	char *msg;
	size_t i, mlen;

	for (i = 0; i < cfg->nsources; i++) {
		struct nb_segment_origin o = {
		    cfg->sources[i].name, NB_SEGMENT_RULE_CURRENT, &install};

		msg = NULL;
		why = NULL;
		if (nb_lane_map_segment(&cfg->sources[i], &o, raw, len, &msg,
			&mlen, &why) == -1)
			continue;
		mapped++;
		if ((r = nb_segcheck_message(msg, mlen)) != NB_SEGCHECK_OK ||
		    reference(msg, mlen) != NB_SEGCHECK_OK)
			fail_msg("%s (source %s): %s\n%s", what,
			    cfg->sources[i].name, nb_segcheck_result_str(r),
			    msg);
		free(msg);
	}
}

static size_t
corpus(const char *name)
{
	char dir[512], path[1024];
	struct dirent *de;
	size_t files = 0, len, i;
	json_t *doc, *el;
	char *buf, *text;
	DIR *d;
	FILE *fp;
	int n;

	n = snprintf(dir, sizeof(dir), "%s/%s", NB_TEST_FUZZ_CORPUS, name);
	assert_true(n > 0 && (size_t)n < sizeof(dir));
	assert_non_null(d = opendir(dir));
	assert_non_null(buf = malloc(1 << 20));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_true(n > 0 && (size_t)n < sizeof(path));
		assert_non_null(fp = fopen(path, "rb"));
		len = fread(buf, 1, (1 << 20) - 1, fp);
		fclose(fp);
		buf[len] = '\0';
		check_all(buf, len, path);
		doc = json_loadb(buf, len, JSON_ALLOW_NUL, NULL);
		json_array_foreach(doc, i, el)
		{
			if ((text = json_dumps(el, JSON_COMPACT)) != NULL)
				check_all(text, strlen(text), path);
			free(text);
		}
		json_decref(doc);
		files++;
	}
	closedir(d);
	free(buf);
	return files;
}

static void
test_corpora(void **state)
{
	(void)state;
	mapped = 0;
	assert_true(corpus("nudgespot") > 0);
	assert_true(corpus("segment") > 0);
	/* The corpora hold valid events: the property was not vacuous. */
	assert_true(mapped > 50);
	printf("corpora: %zu messages checked\n", mapped);
}

/* A random string from an alphabet meant to hit escapes and UTF-8. */
static json_t *
random_string(size_t max)
{
	static const char *const bits[] = {"a", "Z", "0", " ", "\"", "\\", "/",
	    "\t", "\n", "\x01", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
	    "\xf0\x9f\x98\x80", "}", "]", "{", "@", "."};
	char s[256];
	size_t n = randombytes_uniform((uint32_t)max + 1), i, k = 0;

	for (i = 0; i < n && k + 5 < sizeof(s); i++) {
		const char *b =
		    bits[randombytes_uniform(sizeof(bits) / sizeof(bits[0]))];

		memcpy(s + k, b, strlen(b));
		k += strlen(b);
	}
	return json_stringn(s, k);
}

static json_t *
random_event(void)
{
	static const char *const types[] = {"email.opened", "email.clicked",
	    "email.unsubscribed", "t", "x", "custom.thing"};
	json_t *ev, *sub, *props, *key;
	char id[32];
	int i;

	(void)snprintf(id, sizeof(id), "evt_%u", randombytes_random());
	sub = json_object();
	if (randombytes_uniform(3) != 0)
		json_object_set_new(sub, "uid", random_string(20));
	if (randombytes_uniform(3) != 0 || json_object_size(sub) == 0)
		json_object_set_new(sub, "email", random_string(30));
	props = json_object();
	for (i = (int)randombytes_uniform(5); i > 0; i--) {
		key = random_string(8);
		json_object_set_new(
		    props, json_string_value(key), random_string(10));
		json_decref(key);
	}
	json_object_set_new(props, "userId", random_string(5));
	ev = json_pack("{s:s, s:s, s:s, s:o, s:o, s:{s:o, s:o}}", "id", id,
	    "type", types[randombytes_uniform(6)], "occurred_at",
	    "2026-11-28T10:59:58.123456+01:00", "subscriber", sub, "properties",
	    props, "message", "subject", random_string(12), "id",
	    random_string(4));
	return ev;
}

static void
test_random_events(void **state)
{
	json_t *ev;
	char *text;
	int i;

	(void)state;
	mapped = 0;
	for (i = 0; i < RANDOM_EVENTS; i++) {
		assert_non_null(ev = random_event());
		assert_non_null(text = json_dumps(ev, JSON_COMPACT));
		check_all(text, strlen(text), text);
		free(text);
		json_decref(ev);
	}
	assert_true(mapped > RANDOM_EVENTS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_corpora),
	    cmocka_unit_test(test_random_events),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
