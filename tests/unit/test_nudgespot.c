/* SPDX-License-Identifier: ISC */
/*
 * test_nudgespot: body shapes, the per-event rules, and the two parse paths.
 *
 * One table maps whole bodies to nb_nudgespot_parse() results; another maps
 * single events to the rule they break (NULL when valid) and to the id and
 * type the parser keeps.  Event variants are written as the valid base
 * event followed by an overriding key: jansson keeps the last of duplicate
 * keys, so "{BASE,\"id\":null}" is the base event without an id.  The
 * differential test runs the direct path and the jansson path over the fuzz
 * corpus, hand-made bodies and deterministic mutations of them, requires
 * identical results, and requires the direct path to decide the common
 * valid bodies.
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

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/schema.h"
#include "testlib.h"

#define ID   "\"id\":\"evt_1\""
#define TYPE "\"type\":\"email.opened\""
#define AT   "\"occurred_at\":\"2026-11-28T09:59:58.123Z\""
#define SUB  "\"subscriber\":{\"uid\":\"u_42\"}"
#define BASE ID "," TYPE "," AT "," SUB
#define EV   "{" BASE "}"
#define FULL                                                                   \
	"{\"id\":\"evt_01JD8Z3Q4W5E6R7T8Y9U0I1O2P\",\"type\":\"email."         \
	"clicked\","                                                           \
	"\"occurred_at\":\"2026-11-28T09:59:58.123Z\","                        \
	"\"subscriber\":{\"uid\":\"u_42\",\"email\":\"ada@example.com\"},"     \
	"\"message\":{\"id\":\"msg_77\",\"subject\":\"Welcome aboard\","       \
	"\"campaign_id\":\"cmp_9\",\"campaign_name\":\"Onboarding\"},"         \
	"\"link\":{\"id\":\"lnk_3\",\"url\":\"https://example.com/pricing\"}," \
	"\"bounce\":{\"type\":\"hard\",\"reason\":\"550 5.1.1 user "           \
	"unknown\"},\"list\":{\"id\":\"lst_1\",\"name\":\"Newsletter\"},"      \
	"\"client\":{\"ip\":\"203.0.113.9\",\"user_agent\":\"Mozilla/5.0 "     \
	"(X11; Linux x86_64)\"},\"properties\":{\"any\":\"extra\","            \
	"\"fields\":1}}"

struct body_case {
	const char *name;
	const char *body;
	size_t len; /* 0: strlen(body) */
	enum nb_nudgespot_result want;
	size_t nevents;
};

static const struct body_case bodies[] = {
    {"object", EV, 0, NB_NUDGESPOT_OK, 1},
    {"full example", FULL, 0, NB_NUDGESPOT_OK, 1},
    {"array of one", "[" EV "]", 0, NB_NUDGESPOT_OK, 1},
    {"array of three", "[" EV "," EV ",{}]", 0, NB_NUDGESPOT_OK, 3},
    {"empty object", "{}", 0, NB_NUDGESPOT_OK, 1},
    {"whitespace", " \n\t[ {} ]\r\n", 0, NB_NUDGESPOT_OK, 1},
    {"not json", "not json", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"empty body", "", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"truncated", "{\"id\":", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"trailing", "{} {}", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"trailing comma", "[{},]", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"single quotes", "{'id':'x'}", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"invalid utf8", "{\"id\":\"\xff\"}", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"overlong utf8", "{\"id\":\"\xc0\xaf\"}", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"truncated utf8", "{\"type\":\"\xc3\"}", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"utf8 surrogate", "{\"id\":\"\xed\xa0\x80\"}", 0,
	NB_NUDGESPOT_INVALID_JSON, 0},
    {"lone surrogate escape", "{\"id\":\"\\ud800\"}", 0,
	NB_NUDGESPOT_INVALID_JSON, 0},
    {"raw NUL", "{}\0", 3, NB_NUDGESPOT_INVALID_JSON, 0},
    {"raw NUL in string", "{\"id\":\"a\0b\"}", 12, NB_NUDGESPOT_INVALID_JSON,
	0},
    {"escaped NUL in value", "{\"id\":\"a\\u0000b\"}", 0, NB_NUDGESPOT_OK, 1},
    {"escaped NUL in key", "{\"a\\u0000b\":1}", 0, NB_NUDGESPOT_INVALID_JSON,
	0},
    {"huge integer", "{\"properties\":{\"n\":123456789012345678901234}}", 0,
	NB_NUDGESPOT_INVALID_JSON, 0},
    {"huge real", "{\"properties\":{\"n\":1e999}}", 0,
	NB_NUDGESPOT_INVALID_JSON, 0},
    {"bom", "\xef\xbb\xbf{}", 0, NB_NUDGESPOT_INVALID_JSON, 0},
    {"empty array", "[]", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
    {"array of number", "[1]", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
    {"array with number", "[" EV ",1]", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
    {"array with null", "[" EV ",null]", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
    {"nested array", "[[" EV "]]", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
    {"number", "42", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
    {"string", "\"event\"", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
    {"null", "null", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
    {"true", "true", 0, NB_NUDGESPOT_INVALID_PAYLOAD, 0},
};

static void
test_bodies(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		const struct body_case *c = &bodies[i];
		struct nb_payload p;
		enum nb_nudgespot_result r;

		memset(&p, 0xa5, sizeof(p));
		r = nb_nudgespot_parse(
		    &p, c->body, c->len != 0 ? c->len : strlen(c->body));
		if (r != c->want)
			fail_msg("%s: got %s, want %s", c->name,
			    nb_nudgespot_result_str(r),
			    nb_nudgespot_result_str(c->want));
		assert_int_equal(p.nevents, c->nevents);
		if (r != NB_NUDGESPOT_OK)
			assert_null(p.events);
		nb_nudgespot_clear(&p);
		assert_null(p.events);
		assert_int_equal(p.nevents, 0);
	}
}

static void
test_deep_nesting(void **state)
{
	size_t depth = 5000, i;
	char *s = malloc(2 * depth + 32), *q;
	struct nb_payload p;

	(void)state;
	assert_non_null(s);
	memcpy(s, "{\"properties\":", 14);
	q = s + 14;
	for (i = 0; i < depth; i++)
		*q++ = '[';
	for (i = 0; i < depth; i++)
		*q++ = ']';
	*q++ = '}';
	assert_int_equal(nb_nudgespot_parse(&p, s, (size_t)(q - s)),
	    NB_NUDGESPOT_INVALID_JSON);
	free(s);
}

/* "[EV,EV,...]" with n events, each with a distinct id. */
static char *
many_events(size_t n, size_t *len)
{
	size_t cap = n * 160 + 2, i;
	char *s = malloc(cap);
	size_t off = 0;

	assert_non_null(s);
	s[off++] = '[';
	for (i = 0; i < n; i++) {
		int w = snprintf(s + off, cap - off,
		    "%s{\"id\":\"evt_%zu\"," TYPE "," AT "," SUB "}",
		    i == 0 ? "" : ",", i);

		assert_true(w > 0 && (size_t)w < cap - off);
		off += (size_t)w;
	}
	s[off++] = ']';
	*len = off;
	return s;
}

static void
test_event_count_limit(void **state)
{
	struct nb_payload p;
	size_t len;
	char *s;

	(void)state;
	s = many_events(NB_NUDGESPOT_MAX_EVENTS, &len);
	assert_int_equal(nb_nudgespot_parse(&p, s, len), NB_NUDGESPOT_OK);
	assert_int_equal(p.nevents, 1000);
	assert_string_equal(p.events[999].id, "evt_999");
	assert_null(p.events[999].error);
	nb_nudgespot_clear(&p);
	free(s);
	s = many_events(NB_NUDGESPOT_MAX_EVENTS + 1, &len);
	assert_int_equal(
	    nb_nudgespot_parse(&p, s, len), NB_NUDGESPOT_INVALID_PAYLOAD);
	assert_int_equal(p.nevents, 0);
	free(s);
}

struct event_case {
	const char *json;
	const char *error; /* NULL: valid */
	const char *id;	   /* id kept by the parser, NULL if none */
	const char *type;  /* type kept by the parser, NULL if none */
};

#define MSG_NOT_STR(k) "message." k ": must be a string"

static const struct event_case events[] = {
    {EV, NULL, "evt_1", "email.opened"},
    {FULL, NULL, "evt_01JD8Z3Q4W5E6R7T8Y9U0I1O2P", "email.clicked"},
    {"[]", "event: must be an object", NULL, NULL},
    /* id */
    {"{" TYPE "," AT "," SUB "}", "id: missing", NULL, "email.opened"},
    {"{" BASE ",\"id\":null}", "id: missing", NULL, "email.opened"},
    {"{" BASE ",\"id\":42}", "id: must be a string", NULL, "email.opened"},
    {"{" BASE ",\"id\":[\"a\"]}", "id: must be a string", NULL, "email.opened"},
    {"{" BASE ",\"id\":\"\"}", "id: must be 1..128 printable ASCII characters",
	NULL, "email.opened"},
    {"{" BASE ",\"id\":\"evt 1\"}",
	"id: must be 1..128 printable ASCII characters", NULL, "email.opened"},
    {"{" BASE ",\"id\":\"evt\\u0001\"}",
	"id: must be 1..128 printable ASCII characters", NULL, "email.opened"},
    {"{" BASE ",\"id\":\"evt\\u0000\"}",
	"id: must be 1..128 printable ASCII characters", NULL, "email.opened"},
    {"{" BASE ",\"id\":\"evt\\u007f\"}",
	"id: must be 1..128 printable ASCII characters", NULL, "email.opened"},
    {"{" BASE ",\"id\":\"\xc3\xa9vt\"}",
	"id: must be 1..128 printable ASCII characters", NULL, "email.opened"},
    {"{" BASE ",\"id\":\"!~\"}", NULL, "!~", "email.opened"},
    /* type */
    {"{" ID "," AT "," SUB "}", "type: missing", "evt_1", NULL},
    {"{" BASE ",\"type\":null}", "type: missing", "evt_1", NULL},
    {"{" BASE ",\"type\":true}", "type: must be a string", "evt_1", NULL},
    {"{" BASE ",\"type\":\"\"}",
	"type: must be 1..64 characters without control characters", "evt_1",
	NULL},
    {"{" BASE ",\"type\":\"email\\u0001opened\"}",
	"type: must be 1..64 characters without control characters", "evt_1",
	NULL},
    {"{" BASE ",\"type\":\"email\\nopened\"}",
	"type: must be 1..64 characters without control characters", "evt_1",
	NULL},
    {"{" BASE ",\"type\":\"email\\u007f\"}",
	"type: must be 1..64 characters without control characters", "evt_1",
	NULL},
    {"{" BASE ",\"type\":\"custom event with spaces\"}", NULL, "evt_1",
	"custom event with spaces"},
    /* 64 characters, 65 characters, 64 two-byte characters. */
    {"{" BASE ",\"type\":\"0123456789012345678901234567890123456789012345678"
     "901234567890123\"}",
	NULL, "evt_1",
	"0123456789012345678901234567890123456789012345678901234567890123"},
    {"{" BASE ",\"type\":\"0123456789012345678901234567890123456789012345678"
     "9012345678901234\"}",
	"type: must be 1..64 characters without control characters", "evt_1",
	NULL},
    /* occurred_at */
    {"{" ID "," TYPE "," SUB "}", "occurred_at: missing", "evt_1",
	"email.opened"},
    {"{" BASE ",\"occurred_at\":null}", "occurred_at: missing", "evt_1",
	"email.opened"},
    {"{" BASE ",\"occurred_at\":1795859998}", "occurred_at: must be a string",
	"evt_1", "email.opened"},
    {"{" BASE ",\"occurred_at\":\"2026-11-28\"}",
	"occurred_at: not an RFC 3339 date-time", "evt_1", "email.opened"},
    {"{" BASE ",\"occurred_at\":\"2026-02-29T00:00:00Z\"}",
	"occurred_at: not an RFC 3339 date-time", "evt_1", "email.opened"},
    {"{" BASE ",\"occurred_at\":\"2026-11-28T09:59:58\"}",
	"occurred_at: not an RFC 3339 date-time", "evt_1", "email.opened"},
    {"{" BASE ",\"occurred_at\":\"2026-11-28T09:59:58Z\\u0000\"}",
	"occurred_at: not an RFC 3339 date-time", "evt_1", "email.opened"},
    {"{" BASE ",\"occurred_at\":\"2026-11-27T23:59:58.1239-10:00\"}", NULL,
	"evt_1", "email.opened"},
    /* subscriber */
    {"{" ID "," TYPE "," AT "}", "subscriber: missing", "evt_1",
	"email.opened"},
    {"{" BASE ",\"subscriber\":null}", "subscriber: missing", "evt_1",
	"email.opened"},
    {"{" BASE ",\"subscriber\":\"u_42\"}", "subscriber: must be an object",
	"evt_1", "email.opened"},
    {"{" BASE ",\"subscriber\":{}}", "subscriber: needs uid or email", "evt_1",
	"email.opened"},
    {"{" BASE ",\"subscriber\":{\"uid\":null,\"email\":null}}",
	"subscriber: needs uid or email", "evt_1", "email.opened"},
    {"{" BASE ",\"subscriber\":{\"name\":\"Ada\"}}",
	"subscriber: needs uid or email", "evt_1", "email.opened"},
    {"{" BASE ",\"subscriber\":{\"email\":\"ada@example.com\"}}", NULL, "evt_1",
	"email.opened"},
    {"{" BASE ",\"subscriber\":{\"uid\":null,\"email\":\"a@b.c\"}}", NULL,
	"evt_1", "email.opened"},
    {"{" BASE ",\"subscriber\":{\"uid\":42}}",
	"subscriber.uid: must be a string", "evt_1", "email.opened"},
    {"{" BASE ",\"subscriber\":{\"uid\":\"\"}}",
	"subscriber.uid: must be non-empty without control characters", "evt_1",
	"email.opened"},
    {"{" BASE ",\"subscriber\":{\"uid\":\"u\\u0001\"}}",
	"subscriber.uid: must be non-empty without control characters", "evt_1",
	"email.opened"},
    {"{" BASE ",\"subscriber\":{\"uid\":\"u\\u0000\",\"email\":\"a@b.c\"}}",
	"subscriber.uid: must be non-empty without control characters", "evt_1",
	"email.opened"},
    {"{" BASE ",\"subscriber\":{\"uid\":\"u_1\",\"email\":false}}",
	"subscriber.email: must be a string", "evt_1", "email.opened"},
    {"{" BASE ",\"subscriber\":{\"email\":\"a@b.c\\u001f\"}}",
	"subscriber.email: must be non-empty without control characters",
	"evt_1", "email.opened"},
    {"{" BASE ",\"subscriber\":{\"email\":\"\"}}",
	"subscriber.email: must be non-empty without control characters",
	"evt_1", "email.opened"},
    {"{" BASE ",\"subscriber\":{\"uid\":\"\xc3\xa9t\xc3\xa9\"}}", NULL, "evt_1",
	"email.opened"},
    /* Optional objects and their leaves. */
    {"{" BASE ",\"message\":null,\"link\":null,\"bounce\":null,\"list\":null,"
     "\"client\":null,\"properties\":null}",
	NULL, "evt_1", "email.opened"},
    {"{" BASE ",\"message\":{}}", NULL, "evt_1", "email.opened"},
    {"{" BASE ",\"message\":\"hi\"}", "message: must be an object", "evt_1",
	"email.opened"},
    {"{" BASE ",\"message\":[]}", "message: must be an object", "evt_1",
	"email.opened"},
    {"{" BASE ",\"message\":{\"id\":7}}", MSG_NOT_STR("id"), "evt_1",
	"email.opened"},
    {"{" BASE ",\"message\":{\"subject\":1}}", MSG_NOT_STR("subject"), "evt_1",
	"email.opened"},
    {"{" BASE ",\"message\":{\"campaign_id\":{}}}", MSG_NOT_STR("campaign_id"),
	"evt_1", "email.opened"},
    {"{" BASE ",\"message\":{\"campaign_name\":[]}}",
	MSG_NOT_STR("campaign_name"), "evt_1", "email.opened"},
    {"{" BASE ",\"message\":{\"subject\":null,\"extra\":5}}", NULL, "evt_1",
	"email.opened"},
    {"{" BASE ",\"link\":1}", "link: must be an object", "evt_1",
	"email.opened"},
    {"{" BASE ",\"link\":{\"id\":true}}", "link.id: must be a string", "evt_1",
	"email.opened"},
    {"{" BASE ",\"link\":{\"url\":1.5}}", "link.url: must be a string", "evt_1",
	"email.opened"},
    {"{" BASE ",\"bounce\":true}", "bounce: must be an object", "evt_1",
	"email.opened"},
    {"{" BASE ",\"bounce\":{\"type\":5}}", "bounce.type: must be a string",
	"evt_1", "email.opened"},
    {"{" BASE ",\"bounce\":{\"reason\":[\"x\"]}}",
	"bounce.reason: must be a string", "evt_1", "email.opened"},
    {"{" BASE ",\"list\":\"lst_1\"}", "list: must be an object", "evt_1",
	"email.opened"},
    {"{" BASE ",\"list\":{\"id\":1}}", "list.id: must be a string", "evt_1",
	"email.opened"},
    {"{" BASE ",\"list\":{\"name\":false}}", "list.name: must be a string",
	"evt_1", "email.opened"},
    {"{" BASE ",\"client\":0}", "client: must be an object", "evt_1",
	"email.opened"},
    {"{" BASE ",\"client\":{\"ip\":203}}", "client.ip: must be a string",
	"evt_1", "email.opened"},
    {"{" BASE ",\"client\":{\"user_agent\":{}}}",
	"client.user_agent: must be a string", "evt_1", "email.opened"},
    {"{" BASE ",\"properties\":[1]}", "properties: must be an object", "evt_1",
	"email.opened"},
    {"{" BASE ",\"properties\":\"x\"}", "properties: must be an object",
	"evt_1", "email.opened"},
    {"{" BASE ",\"properties\":{\"deep\":{\"a\":[1,null,{\"b\":true}]}}}", NULL,
	"evt_1", "email.opened"},
    /* Unknown keys anywhere are ignored. */
    {"{" BASE ",\"unknown\":{\"x\":1},\"version\":2,\"id_extra\":null}", NULL,
	"evt_1", "email.opened"},
    /* The first broken rule wins. */
    {"{\"id\":1,\"type\":2}", "id: must be a string", NULL, NULL},
    {"{\"id\":\"e\",\"type\":2}", "type: must be a string", "e", NULL},
    {"{" BASE ",\"message\":1,\"link\":1}", "message: must be an object",
	"evt_1", "email.opened"},
};

static void
test_events(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		const struct event_case *c = &events[i];
		json_error_t err;
		json_t *ev;
		const char *got;
		struct nb_payload p;

		ev =
		    json_loads(c->json, JSON_ALLOW_NUL | JSON_DECODE_ANY, &err);
		if (ev == NULL)
			fail_msg("case %zu: bad test JSON: %s", i, err.text);
		got = nb_nudgespot_validate(ev);
		json_decref(ev);
		if ((got == NULL) != (c->error == NULL) ||
		    (got != NULL && strcmp(got, c->error) != 0))
			fail_msg("case %zu %s: got \"%s\", want \"%s\"", i,
			    c->json, got ? got : "(valid)",
			    c->error ? c->error : "(valid)");
		if (c->json[0] != '{')
			continue;
		/* Through the parser: same verdict, id/type kept. */
		assert_int_equal(
		    nb_nudgespot_parse(&p, c->json, strlen(c->json)),
		    NB_NUDGESPOT_OK);
		assert_int_equal(p.nevents, 1);
		assert_ptr_equal(p.events[0].error, got);
		if (c->id == NULL)
			assert_null(p.events[0].id);
		else
			assert_string_equal(p.events[0].id, c->id);
		if (c->type != NULL)
			assert_string_equal(p.events[0].type, c->type);
		else if (c->error != NULL && strncmp(c->error, "type:", 5) == 0)
			assert_null(p.events[0].type);
		nb_nudgespot_clear(&p);
	}
}

static void
test_id_length(void **state)
{
	char body[512], id[NB_SCHEMA_ID_MAX + 2];
	struct nb_payload p;

	(void)state;
	memset(id, 'x', NB_SCHEMA_ID_MAX);
	id[NB_SCHEMA_ID_MAX] = '\0';
	snprintf(
	    body, sizeof(body), "{\"id\":\"%s\"," TYPE "," AT "," SUB "}", id);
	assert_int_equal(
	    nb_nudgespot_parse(&p, body, strlen(body)), NB_NUDGESPOT_OK);
	assert_null(p.events[0].error);
	assert_string_equal(p.events[0].id, id);
	nb_nudgespot_clear(&p);

	id[NB_SCHEMA_ID_MAX] = 'x';
	id[NB_SCHEMA_ID_MAX + 1] = '\0';
	snprintf(
	    body, sizeof(body), "{\"id\":\"%s\"," TYPE "," AT "," SUB "}", id);
	assert_int_equal(
	    nb_nudgespot_parse(&p, body, strlen(body)), NB_NUDGESPOT_OK);
	assert_string_equal(
	    p.events[0].error, "id: must be 1..128 printable ASCII characters");
	assert_null(p.events[0].id);
	assert_string_equal(p.events[0].type, "email.opened");
	nb_nudgespot_clear(&p);
}

static void
test_utf8_type(void **state)
{
	/* 64 x U+00E9 is 128 bytes but 64 characters: valid. */
	char body[512], type[200];
	struct nb_payload p;
	size_t i;

	(void)state;
	for (i = 0; i < 64; i++) {
		type[2 * i] = '\xc3';
		type[2 * i + 1] = '\xa9';
	}
	type[128] = '\0';
	snprintf(body, sizeof(body), "{" ID "," AT "," SUB ",\"type\":\"%s\"}",
	    type);
	assert_int_equal(
	    nb_nudgespot_parse(&p, body, strlen(body)), NB_NUDGESPOT_OK);
	assert_null(p.events[0].error);
	assert_string_equal(p.events[0].type, type);
	nb_nudgespot_clear(&p);
	/* 65 of them: too long. */
	type[128] = '\xc3';
	type[129] = '\xa9';
	type[130] = '\0';
	snprintf(body, sizeof(body), "{" ID "," AT "," SUB ",\"type\":\"%s\"}",
	    type);
	assert_int_equal(
	    nb_nudgespot_parse(&p, body, strlen(body)), NB_NUDGESPOT_OK);
	assert_string_equal(p.events[0].error,
	    "type: must be 1..64 characters without control characters");
	assert_null(p.events[0].type);
	nb_nudgespot_clear(&p);
}

static void
test_raw(void **state)
{
	const char *body = "[ {\"b\" : 1 , \"a\" : \"\xc3\xa9\\u00e9\\/\" ,"
			   " \"c\":[ ]} , {\"id\":\"a\\u0000b\"} ]";
	struct nb_payload p;

	(void)state;
	assert_int_equal(
	    nb_nudgespot_parse(&p, body, strlen(body)), NB_NUDGESPOT_OK);
	assert_int_equal(p.nevents, 2);
	/* Compact; key order, escapes as written and UTF-8 kept. */
	assert_string_equal(
	    p.events[0].raw, "{\"b\":1,\"a\":\"\xc3\xa9\\u00e9\\/\",\"c\":[]}");
	assert_int_equal(p.events[0].rawlen, strlen(p.events[0].raw));
	assert_string_equal(p.events[0].error, "id: missing");
	/* NUL stays escaped, so raw is one C string. */
	assert_string_equal(p.events[1].raw, "{\"id\":\"a\\u0000b\"}");
	assert_int_equal(p.events[1].rawlen, strlen(p.events[1].raw));
	assert_null(p.events[1].id);
	nb_nudgespot_clear(&p);
	nb_nudgespot_clear(&p);
	nb_nudgespot_clear(NULL);
}

/*
 * The stored text is the byte range of each event without whitespace
 * between tokens, whatever the strings hold, and it parses back to the
 * event jansson saw.
 */
static void
test_raw_slices(void **state)
{
	static const struct {
		const char *name;
		const char *body;
		size_t n;
		const char *raw[3];
	} cases[] = {
	    {"single, whitespace dropped",
		" \r\n\t{ \"id\" : \"x y\\\" \" ,\n\"z\":[ 1 , 2 ] }\n ", 1,
		{"{\"id\":\"x y\\\" \",\"z\":[1,2]}"}},
	    {"single, compact", "{\"id\":\"x\"}", 1, {"{\"id\":\"x\"}"}},
	    {"brackets and quotes in strings",
		"[{\"a\":\"}]\\\"{[,\"},{\"b\":\"\\\\\"},\n{\"c\":{\"d\":[1,{}]"
		"}}]",
		3,
		{"{\"a\":\"}]\\\"{[,\"}", "{\"b\":\"\\\\\"}",
		    "{\"c\":{\"d\":[1,{}]}}"}},
	    {"nested arrays and empty objects", "[{},{\"x\":[[],[{}]]}]", 2,
		{"{}", "{\"x\":[[],[{}]]}"}},
	};
	struct nb_payload p;
	json_t *whole, *back;
	size_t i, j;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *body = cases[i].body;

		print_message("case: %s\n", cases[i].name);
		assert_int_equal(nb_nudgespot_parse(&p, body, strlen(body)),
		    NB_NUDGESPOT_OK);
		assert_int_equal(p.nevents, cases[i].n);
		whole = json_loadb(body, strlen(body), JSON_DECODE_ANY, NULL);
		assert_non_null(whole);
		for (j = 0; j < cases[i].n; j++) {
			assert_string_equal(p.events[j].raw, cases[i].raw[j]);
			assert_int_equal(
			    p.events[j].rawlen, strlen(p.events[j].raw));
			back = json_loadb(
			    p.events[j].raw, p.events[j].rawlen, 0, NULL);
			assert_non_null(back);
			assert_true(json_equal(back,
			    json_is_array(whole) ? json_array_get(whole, j)
						 : whole));
			json_decref(back);
		}
		json_decref(whole);
		nb_nudgespot_clear(&p);
	}
}

static void
test_revalidate(void **state)
{
	char *id = (char *)1, *type = (char *)1;
	const char *err;

	(void)state;
	err = nb_nudgespot_revalidate(EV, strlen(EV), &id, &type);
	assert_null(err);
	assert_string_equal(id, "evt_1");
	assert_string_equal(type, "email.opened");
	free(id);
	free(type);

	id = (char *)1;
	type = (char *)1;
	err = nb_nudgespot_revalidate("{" BASE ",\"link\":{\"url\":1}}",
	    strlen("{" BASE ",\"link\":{\"url\":1}}"), &id, &type);
	assert_string_equal(err, "link.url: must be a string");
	assert_null(id);
	assert_null(type);

	err = nb_nudgespot_revalidate("{\"id\":\"a\\u0000b\"}",
	    strlen("{\"id\":\"a\\u0000b\"}"), NULL, NULL);
	assert_string_equal(
	    err, "id: must be 1..128 printable ASCII characters");
	assert_string_equal(nb_nudgespot_revalidate("{", 1, NULL, NULL),
	    "event: not valid JSON");
	assert_string_equal(
	    nb_nudgespot_revalidate("[" EV "]", strlen("[" EV "]"), NULL, NULL),
	    "event: must be an object");
	/* Valid, and the caller does not want the names. */
	assert_null(nb_nudgespot_revalidate(FULL, strlen(FULL), NULL, NULL));
}

/*
 * The direct path against the jansson path.  Every input goes through
 * nb_nudgespot_parse_direct(), nb_nudgespot_parse_tree() and
 * nb_nudgespot_parse(): when the direct path decides, the jansson path must
 * say NB_NUDGESPOT_OK with identical events; when it declines it must leave
 * *out empty; and nb_nudgespot_parse() must always give what the jansson
 * path gives.
 */
#define RICH                                                                   \
	"{\"id\":\"evt_9\",\"type\":\"email.opened \xc3\xa9\xe2\x82\xac"       \
	"\xf0\x9f\x98\x80\",\"occurred_at\":\"2026-11-28T09:59:58+01:00\","    \
	"\"subscriber\":{\"uid\":\"\xc3\xa9t\xc3\xa9\",\"email\":\"a@b.c\"},"  \
	"\"message\":{\"subject\":\"Hi \\\"there\\\" \\u00e9 \\ud83d\\ude00 "  \
	"\\n\\t\\/\\\\ \\u0000 \\b\\f\\r \xf4\x8f\xbf\xbf\x7f\",\"id\":null,"  \
	"\"campaign_name\":\"\\uD83D\\uDE00\\uFFFF\"},\"link\":{},"            \
	"\"properties\":{\"n\":-12,\"big\":999999999999999999,\"r\":-0.5e-10," \
	"\"z\":0,\"m\":-0,\"e\":1E+2,\"f\":12.25,\"g\":3e280,\"deep\":{\"a\":" \
	"[1,[2,[3,{\"b\":[true,false,null,\"\\u0000\"]}]]]},\"\":\"empty "     \
	"key\",\"id\":\"\\u0041\",\"message\":{\"id\":1}},\"unknown\":[{"      \
	"\"id\":"                                                              \
	"7},{\"id\":7}]}"

struct diff_stats {
	size_t inputs;
	size_t direct;
};

static int
same_str(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
same_payload(const struct nb_payload *a, const struct nb_payload *b,
    const char *what, const char *which)
{
	size_t i;

	if (a->nevents != b->nevents)
		fail_msg("%s: %s: %zu events, jansson path %zu", what, which,
		    a->nevents, b->nevents);
	for (i = 0; i < a->nevents; i++) {
		const struct nb_event *x = &a->events[i], *y = &b->events[i];

		if (x->rawlen != y->rawlen ||
		    memcmp(x->raw, y->raw, x->rawlen + 1) != 0)
			fail_msg("%s: %s: event %zu raw \"%s\", jansson path "
				 "\"%s\"",
			    what, which, i, x->raw, y->raw);
		if (!same_str(x->id, y->id) || !same_str(x->type, y->type))
			fail_msg("%s: %s: event %zu id/type %s/%s, jansson "
				 "path %s/%s",
			    what, which, i, x->id ? x->id : "(null)",
			    x->type ? x->type : "(null)",
			    y->id ? y->id : "(null)",
			    y->type ? y->type : "(null)");
		if (!same_str(x->error, y->error))
			fail_msg("%s: %s: event %zu error \"%s\", jansson path "
				 "\"%s\"",
			    what, which, i, x->error ? x->error : "(valid)",
			    y->error ? y->error : "(valid)");
		/* The person keys too: search and erasure rely on them. */
		if (x->email_key != y->email_key || x->uid_key != y->uid_key)
			fail_msg("%s: %s: event %zu person keys differ from "
				 "the jansson path's",
			    what, which, i);
	}
}

/* Holds the paths to agreement on one body; 1 if the direct path decided. */
static int
check_paths(
    struct diff_stats *st, const char *body, size_t len, const char *what)
{
	struct nb_payload d, t, c;
	enum nb_nudgespot_result rt, rc;
	int decided;

	memset(&d, 0xa5, sizeof(d));
	decided = nb_nudgespot_parse_direct(&d, body, len) == 0;
	rt = nb_nudgespot_parse_tree(&t, body, len);
	rc = nb_nudgespot_parse(&c, body, len);
	if (decided) {
		if (rt != NB_NUDGESPOT_OK)
			fail_msg(
			    "%s: direct path decided, jansson path says %s",
			    what, nb_nudgespot_result_str(rt));
		same_payload(&d, &t, what, "direct");
	} else if (d.events != NULL || d.nevents != 0) {
		fail_msg("%s: direct path declined but filled *out", what);
	}
	if (rc != rt)
		fail_msg("%s: nb_nudgespot_parse says %s, jansson path %s",
		    what, nb_nudgespot_result_str(rc),
		    nb_nudgespot_result_str(rt));
	same_payload(&c, &t, what, "nb_nudgespot_parse");
	nb_nudgespot_clear(&d);
	nb_nudgespot_clear(&t);
	nb_nudgespot_clear(&c);
	st->inputs++;
	st->direct += (size_t)decided;
	return decided;
}

/* s with white space of every kind around every token. */
static char *
spaced(const char *s)
{
	static const char ws[] = " \n\t\r";
	size_t len = strlen(s), o = 0, i, k = 0;
	char *out = malloc(5 * len + 8);
	int in_str = 0;

	assert_non_null(out);
	out[o++] = '\n';
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (in_str) {
			out[o++] = c;
			if (c == '\\')
				out[o++] = s[++i];
			else if (c == '"')
				in_str = 0;
			continue;
		}
		if (strchr("{}[]:,", c) != NULL) {
			out[o++] = ws[k++ % 4];
			out[o++] = c;
			out[o++] = ws[k++ % 4];
			out[o++] = ws[k++ % 4];
			continue;
		}
		out[o++] = c;
		in_str = c == '"';
	}
	out[o++] = ' ';
	out[o] = '\0';
	return out;
}

/* The base event with depth objects nested in its properties. */
static char *
nested(size_t depth)
{
	static const char head[] = "{" BASE ",\"properties\":";
	char *s = malloc(sizeof(head) + 6 * depth + 8), *q;
	size_t i;

	assert_non_null(s);
	memcpy(s, head, sizeof(head) - 1);
	q = s + sizeof(head) - 1;
	for (i = 0; i < depth; i++) {
		memcpy(q, "{\"a\":", 5);
		q += 5;
	}
	*q++ = '1';
	for (i = 0; i < depth; i++)
		*q++ = '}';
	*q++ = '}';
	*q = '\0';
	return s;
}

/* Valid bodies the direct path must decide. */
static const char *const decided_bodies[] = {
    EV,
    FULL,
    RICH,
    "{}",
    "[" EV "]",
    "[" EV "," FULL "," RICH ",{}]",
    "{" ID "," TYPE "," AT ",\"subscriber\":{\"uid\":null,\"email\":\"a@b\"},"
    "\"message\":null,\"link\":null,\"bounce\":null,\"list\":null,"
    "\"client\":null,\"properties\":null}",
    "{" ID "," TYPE "," AT "," SUB ",\"properties\":{\"subscriber\":1,"
    "\"id\":2,\"id\":3},\"message\":{\"x\":{\"id\":1},\"x\":2}}",
    "{" ID "," TYPE "," AT "," SUB ",\"message\":{\"subject\":\"\\u0000\","
    "\"id\":\"\\ud83d\\ude00\"},\"client\":{\"user_agent\":\"\\\"\"}}",
    "{\"id\":\"\xc3\xa9\"," TYPE "}",
    "{" ID ",\"type\":\"\x7f\"}",
    "{" ID ",\"type\":\"x\"," AT ",\"subscriber\":{\"uid\":\"\x7f\"}}",
    "{" ID "," TYPE ",\"occurred_at\":\"2026-02-29T00:00:00Z\"}",
    "{" ID "," TYPE "," AT ",\"subscriber\":[{\"uid\":\"x\"}]}",
    "{" ID "," TYPE "," AT "," SUB ",\"bounce\":{\"type\":1e5}}",
    "{" ID "," TYPE "," AT "," SUB ",\"list\":{\"name\":-0.0}}",
    "{" ID "," TYPE "," AT "," SUB ",\"properties\":[]}",
    " [ {} , { } ] ",
};

/* Bodies the direct path must leave to jansson. */
#define LIT(s)                                                                 \
	{                                                                      \
		(s), sizeof(s) - 1                                             \
	}
static const struct {
	const char *body;
	size_t len;
} declined_bodies[] = {
    LIT("{\"id\":\"a\\u0041\"}"), /* escape in a rule's string */
    LIT("{\"type\":\"\\n\"}"),
    LIT("{" ID "," TYPE "," AT ",\"subscriber\":{\"email\":\"\\u0061\"}}"),
    LIT("{\"i\\u0064\":\"x\"}"),	      /* escape in a key */
    LIT("{\"properties\":{\"a\\u0000\":1}}"), /* NUL in a key */
    LIT("{" BASE ",\"id\":\"y\"}"),	      /* duplicate known key */
    LIT("{" BASE ",\"subscriber\":{\"uid\":\"a\",\"uid\":null}}"),
    LIT("{\"message\":{\"id\":\"a\",\"id\":1}}"),
    LIT("{\"properties\":{\"n\":1234567890123456789}}"), /* 19 digits */
    LIT("{\"properties\":{\"n\":1e300}}"),
    LIT("{\"properties\":{\"n\":1e-999}}"),
    LIT("{\"properties\":{\"n\":1\0}}"), /* NUL jansson skips */
    LIT("{\"a\":\"\\ud800\"}"),
    LIT("{\"a\":\"\\udc00\"}"),
    LIT("{\"a\":\"\\ud800\\u0041\"}"),
    LIT("{\"a\":\"\xed\xa0\x80\"}"),
    LIT("{\"a\":\"\xc0\xaf\"}"),
    LIT("{\"a\":\"\xf4\x90\x80\x80\"}"),
    LIT("{\"a\":\"\t\"}"),
    LIT("{\"a\":01}"),
    LIT("{\"a\":1.}"),
    LIT("{\"a\":-}"),
    LIT("{\"a\":tru}"),
    LIT("{\"a\":nullx}"),
    LIT("[]"),
    LIT("[{},1]"),
    LIT("[{},]"),
    LIT("42"),
    LIT("{} {}"),
    LIT("\xef\xbb\xbf{}"),
    LIT(""),
};

static void
check_decided(struct diff_stats *st, const char *body, const char *what)
{
	if (!check_paths(st, body, strlen(body), what))
		fail_msg(
		    "%s: the direct path declined a plain valid body", what);
}

/* Every byte change below is one of these, or a random byte. */
static const char *const splices[] = {"{", "}", "[", "]", ":", ",", "\"", "\\",
    " ", "\n", "0", "9", "-", ".", "e", "u", "\\u0000", "\\ud83d", "\\ude00",
    "\\u00e9", "\"id\":1,", "\"id\":\"x\",", "\"uid\":\"u\",",
    "\"subscriber\":{},", "null", "true", "1e999", "12345678901234567890",
    "\xc3\xa9", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "\xff", "\x7f", "\x01"};

/* One to three random edits of body (len bytes) into out; its length. */
static size_t
mutate(uint64_t *rng, const char *body, size_t len, char *out, size_t cap)
{
	size_t n = len, edits = 1 + testlib_xorshift(rng) % 3, e, at, k, sl;
	const char *s;

	memcpy(out, body, len);
	for (e = 0; e < edits; e++) {
		at = n == 0 ? 0 : testlib_xorshift(rng) % (n + 1);
		switch (testlib_xorshift(rng) % 5) {
		case 0: /* replace a byte */
			if (at < n)
				out[at] = (char)(testlib_xorshift(rng) & 0xff);
			break;
		case 1: /* insert a splice */
			s = splices[testlib_xorshift(rng) %
			    (sizeof(splices) / sizeof(splices[0]))];
			sl = strlen(s);
			if (n + sl > cap)
				break;
			memmove(out + at + sl, out + at, n - at);
			memcpy(out + at, s, sl);
			n += sl;
			break;
		case 2: /* delete a few bytes */
			k = 1 + testlib_xorshift(rng) % 4;
			if (at + k <= n) {
				memmove(out + at, out + at + k, n - at - k);
				n -= k;
			}
			break;
		case 3: /* truncate */
			n = at;
			break;
		default: /* replace a byte by a splice's first byte */
			if (at < n)
				out[at] = splices[testlib_xorshift(rng) %
				    (sizeof(splices) / sizeof(splices[0]))][0];
			break;
		}
	}
	return n;
}

/* Reads a corpus file whole; *len gets its size. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

#define MUTATIONS_PER_SEED 400
#define SEED_MAX	   4096 /* larger bodies are not mutated */

static void
test_paths_agree(void **state)
{
	struct diff_stats st = {0, 0}, hand = {0, 0}, dumped = {0, 0};
	char what[512], path[1024], *seeds[512], *body, *mut, *txt;
	size_t seedlen[512], nseeds = 0, i, k, len, mlen;
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	struct dirent *de;
	json_t *ev;
	DIR *dir;

	(void)state;
	/* Hand-made bodies the direct path must decide, and spaced out. */
	for (i = 0; i < sizeof(decided_bodies) / sizeof(decided_bodies[0]);
	     i++) {
		snprintf(what, sizeof(what), "decided body %zu", i);
		check_decided(&hand, decided_bodies[i], what);
		body = spaced(decided_bodies[i]);
		snprintf(what, sizeof(what), "spaced decided body %zu", i);
		check_decided(&hand, body, what);
		seeds[nseeds] = body;
		seedlen[nseeds++] = strlen(body);
		seeds[nseeds] = strdup(decided_bodies[i]);
		assert_non_null(seeds[nseeds]);
		seedlen[nseeds] = strlen(seeds[nseeds]);
		nseeds++;
	}
	body = nested(30);
	check_decided(&hand, body, "30 nested objects");
	free(body);
	body = nested(40);
	if (check_paths(&st, body, strlen(body), "40 nested objects"))
		fail_msg("40 nested objects: decided");
	free(body);
	body = many_events(1, &len);
	check_paths(&hand, body, len, "array of 1");
	free(body);
	body = many_events(NB_NUDGESPOT_MAX_EVENTS, &len);
	if (!check_paths(&hand, body, len, "array of 1000"))
		fail_msg("array of 1000: declined");
	free(body);
	body = many_events(NB_NUDGESPOT_MAX_EVENTS + 1, &len);
	if (check_paths(&st, body, len, "array of 1001"))
		fail_msg("array of 1001: decided");
	free(body);

	/* Bodies it must leave to jansson. */
	for (i = 0; i < sizeof(declined_bodies) / sizeof(declined_bodies[0]);
	     i++) {
		const char *b = declined_bodies[i].body;

		len = declined_bodies[i].len;
		snprintf(what, sizeof(what), "declined body %zu", i);
		if (check_paths(&st, b, len, what))
			fail_msg("%s: decided", what);
	}

	/*
	 * The rule table: as written (duplicate keys, so mostly declined),
	 * and as jansson writes it back (no duplicates, escapes only where
	 * a string needs them): every such event without a backslash must
	 * be decided, whatever rule it breaks.
	 */
	for (i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
		snprintf(what, sizeof(what), "event case %zu", i);
		check_paths(&st, events[i].json, strlen(events[i].json), what);
		ev = json_loads(
		    events[i].json, JSON_ALLOW_NUL | JSON_DECODE_ANY, NULL);
		assert_non_null(ev);
		txt = json_dumps(ev, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(ev);
		assert_non_null(txt);
		snprintf(what, sizeof(what), "event case %zu dumped", i);
		if (check_paths(&dumped, txt, strlen(txt), what) == 0 &&
		    txt[0] == '{' && strchr(txt, '\\') == NULL)
			fail_msg("%s: the direct path declined %s", what, txt);
		seeds[nseeds] = txt;
		seedlen[nseeds++] = strlen(txt);
	}
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(what, sizeof(what), "body case %s", bodies[i].name);
		check_paths(&st, bodies[i].body,
		    bodies[i].len != 0 ? bodies[i].len : strlen(bodies[i].body),
		    what);
	}

	/* The fuzz corpus; its smaller files also seed the mutations. */
	dir = opendir(NB_TEST_FUZZ_CORPUS "/nudgespot");
	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s",
		    NB_TEST_FUZZ_CORPUS "/nudgespot", de->d_name);
		body = slurp(path, &len);
		snprintf(what, sizeof(what), "corpus %s", de->d_name);
		check_paths(&st, body, len, what);
		if (len <= SEED_MAX && nseeds < 512) {
			seeds[nseeds] = body;
			seedlen[nseeds++] = len;
		} else {
			free(body);
		}
	}
	closedir(dir);

	/* Deterministic mutations of every seed. */
	mut = malloc(2 * SEED_MAX + 1024);
	assert_non_null(mut);
	for (i = 0; i < nseeds; i++) {
		for (k = 0; k < MUTATIONS_PER_SEED; k++) {
			mlen = mutate(&rng, seeds[i], seedlen[i], mut,
			    2 * SEED_MAX + 1024);
			snprintf(
			    what, sizeof(what), "seed %zu mutation %zu", i, k);
			check_paths(&st, mut, mlen, what);
		}
		free(seeds[i]);
	}
	free(mut);

	print_message("hand-made valid: %zu of %zu decided directly; rule "
		      "table as jansson writes it: %zu of %zu; all other "
		      "inputs: %zu of %zu\n",
	    hand.direct, hand.inputs, dumped.direct, dumped.inputs, st.direct,
	    st.inputs);
	assert_int_equal(hand.direct, hand.inputs);
	/* Most rule breakers need no escape in the strings the rules read. */
	assert_true(dumped.direct * 10 >= dumped.inputs * 8);
	/* Mutations leave many bodies valid: some must stay direct. */
	assert_true(st.direct * 20 >= st.inputs);
}

static void
test_result_str(void **state)
{
	(void)state;
	assert_string_equal(nb_nudgespot_result_str(NB_NUDGESPOT_OK), "ok");
	assert_string_equal(
	    nb_nudgespot_result_str(NB_NUDGESPOT_INVALID_JSON), "invalid_json");
	assert_string_equal(
	    nb_nudgespot_result_str(NB_NUDGESPOT_INVALID_PAYLOAD),
	    "invalid_payload");
	assert_string_equal(
	    nb_nudgespot_result_str(NB_NUDGESPOT_NOMEM), "nomem");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bodies),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_event_count_limit),
	    cmocka_unit_test(test_events),
	    cmocka_unit_test(test_id_length),
	    cmocka_unit_test(test_utf8_type),
	    cmocka_unit_test(test_raw),
	    cmocka_unit_test(test_raw_slices),
	    cmocka_unit_test(test_revalidate),
	    cmocka_unit_test(test_result_str),
	    cmocka_unit_test(test_paths_agree),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
