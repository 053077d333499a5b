/* SPDX-License-Identifier: ISC */
/*
 * test_nasty: hostile input through the four parsers that see it first.
 *
 * Four tables, one per entry point: nb_nudgespot_parse() (bodies),
 * nb_sig_verify() (the three signature headers), nb_config_source_name_valid()
 * (the {source} of the URL) and nb_segment_track() (stored event text).  The
 * nasty cases are the usual suspects: nesting 100,000 levels deep, numbers
 * beyond 64 bits, invalid UTF-8, NUL raw and escaped, duplicate keys,
 * 10,000 signature entries, a 1 MiB signature header, odd source names,
 * CR/LF inside values and timestamps at the int64 limits.  Each row states
 * the outcome the contract implies, not merely "does not crash"; the
 * sanitizer build runs the same tables.  Large inputs are built at run
 * time by small generators; the jansson behaviour the body table pins is
 * written above parse_cases.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "nudgebridge/config.h"
#include "nudgebridge/nudgespot.h"
#include "nudgebridge/schema.h"
#include "nudgebridge/segment.h"
#include "nudgebridge/sig.h"

#define DEEP 100000

/* Events in single-quoted JSON (see mk()); extra goes before the '}'. */
#define EVB(id, extra)                                                         \
	"{'id':" id ",'type':'email.opened',"                                  \
	"'occurred_at':'2026-11-28T09:59:58.123Z',"                            \
	"'subscriber':{'uid':'u_1','email':'ada@example.com'}" extra "}"
#define EV(extra) EVB("'evt_1'", extra)

#define R_ID	"id: must be 1..128 printable ASCII characters"
#define R_TYPE	"type: must be 1..64 characters without control characters"
#define R_TIME	"occurred_at: not an RFC 3339 date-time"
#define R_UID	"subscriber.uid: must be non-empty without control characters"
#define R_EMAIL "subscriber.email: must be non-empty without control characters"

/* A growable byte buffer for the generators. */
struct buf {
	char *p;
	size_t len;
	size_t cap;
};

static void
put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
puts_n(struct buf *b, const char *s, size_t times)
{
	size_t i, n = strlen(s);

	for (i = 0; i < times; i++)
		put(b, s, n);
}

/* Copies len bytes of s, single quotes turned into double quotes. */
static char *
mk(const char *s, size_t len)
{
	char *out = malloc(len + 1);
	size_t i;

	assert_non_null(out);
	for (i = 0; i < len; i++)
		out[i] = s[i] == '\'' ? '"' : s[i];
	out[len] = '\0';
	return out;
}

/* nb_nudgespot_parse() */

static char *
gen_deep_arrays(size_t *len)
{
	struct buf b = {0};

	puts_n(&b, "[", DEEP);
	puts_n(&b, "]", DEEP);
	*len = b.len;
	return b.p;
}

static char *
gen_deep_objects(size_t *len)
{
	struct buf b = {0};

	puts_n(&b, "{\"a\":", DEEP);
	put(&b, "1", 1);
	puts_n(&b, "}", DEEP);
	*len = b.len;
	return b.p;
}

static char *
gen_deep_unclosed(size_t *len)
{
	struct buf b = {0};

	puts_n(&b, "[{\"a\":", DEEP);
	*len = b.len;
	return b.p;
}

/* A valid event whose properties nest DEEP levels. */
static char *
gen_deep_properties(size_t *len)
{
	struct buf b = {0};
	static const char head[] = EV(",'properties':");
	char *h = mk(head, sizeof(head) - 2); /* without the closing '}' */

	put(&b, h, strlen(h));
	free(h);
	puts_n(&b, "{\"a\":", DEEP);
	put(&b, "1", 1);
	puts_n(&b, "}", DEEP + 1);
	*len = b.len;
	return b.p;
}

/* A valid event with 10,000 free-form properties. */
static char *
gen_many_properties(size_t *len)
{
	struct buf b = {0};
	static const char head[] = EV(",'properties':{");
	char *h = mk(head, sizeof(head) - 2);
	char kv[32];
	int i, n;

	put(&b, h, strlen(h));
	free(h);
	for (i = 0; i < 10000; i++) {
		n = snprintf(
		    kv, sizeof(kv), "%s\"k%d\":%d", i ? "," : "", i, i);
		assert_true(n > 0 && (size_t)n < sizeof(kv));
		put(&b, kv, (size_t)n);
	}
	put(&b, "}}", 2);
	*len = b.len;
	return b.p;
}

/* 1000 copies of the event: the maximum, accepted. */
static char *
gen_1000_events(size_t *len)
{
	struct buf b = {0};
	static const char ev[] = EV("");
	char *e = mk(ev, sizeof(ev) - 1);
	int i;

	put(&b, "[", 1);
	for (i = 0; i < NB_NUDGESPOT_MAX_EVENTS; i++) {
		if (i > 0)
			put(&b, ",", 1);
		put(&b, e, strlen(e));
	}
	put(&b, "]", 1);
	free(e);
	*len = b.len;
	return b.p;
}

/* An id of 129 printable characters (one too many). */
static char *
gen_long_id(size_t *len)
{
	struct buf b = {0};
	static const char tail[] = ",'type':'email.opened',"
				   "'occurred_at':'2026-11-28T09:59:58Z',"
				   "'subscriber':{'uid':'u'}}";
	char *t = mk(tail, sizeof(tail) - 1);

	put(&b, "{\"id\":\"", 7);
	puts_n(&b, "x", NB_SCHEMA_ID_MAX + 1);
	put(&b, "\"", 1);
	put(&b, t, strlen(t));
	free(t);
	*len = b.len;
	return b.p;
}

struct parse_case {
	const char *name;
	const char *body; /* single-quoted JSON, or NULL: gen */
	size_t len;	  /* 0: strlen(body) */
	char *(*gen)(size_t *len);
	enum nb_nudgespot_result want;
	size_t nevents;
	const char *error; /* rule broken by event 0 (NULL: valid) */
	const char *id;	   /* id kept for event 0 (NULL: none) */
};

#define LIT(s) s, sizeof(s) - 1, NULL

/*
 * Documented behaviour pinned here: jansson keeps the last of duplicate
 * keys (the parse flags do not include JSON_REJECT_DUPLICATES), so a body
 * with "id" twice is the event with the second id; integers beyond int64
 * and reals beyond double make the whole body invalid_json (jansson
 * refuses them), as does nesting past jansson's depth limit (2048); NUL is
 * refused raw and in keys but allowed as \u0000 in string values, where the
 * event rules quarantine it in id/type/uid/email and pass it through
 * elsewhere.
 */
static const struct parse_case parse_cases[] = {
    /* Nesting: jansson stops at its depth limit, the body is not JSON. */
    {"100,000 nested arrays", NULL, 0, gen_deep_arrays,
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"100,000 nested objects", NULL, 0, gen_deep_objects,
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"100,000 unclosed levels", NULL, 0, gen_deep_unclosed,
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"100,000 levels in properties", NULL, 0, gen_deep_properties,
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"10,000 properties", NULL, 0, gen_many_properties, NB_NUDGESPOT_OK, 1,
	NULL, "evt_1"},
    {"1000 events", NULL, 0, gen_1000_events, NB_NUDGESPOT_OK, 1000, NULL,
	"evt_1"},
    /* Numbers. */
    {"int64 max and min",
	LIT(EV(",'properties':{'a':9223372036854775807,"
	       "'b':-9223372036854775808}")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_1"},
    {"integer 2^63", LIT(EV(",'properties':{'a':9223372036854775808}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"integer of 400 digits",
	LIT(EV(",'properties':{'a':1"
	       "0000000000000000000000000000000000000000000000000000000000000"
	       "0000000000000000000000000000000000000000000000000000000000000"
	       "0000000000000000000000000000000000000000000000000000000000000"
	       "0000000000000000000000000000000000000000000000000000000000000"
	       "0000000000000000000000000000000000000000000000000000000000000"
	       "0000000000000000000000000000000000000000000000000000000000000"
	       "0000000000000000000000000000000000}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"real 1e400", LIT(EV(",'properties':{'a':1e400}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"real 1e-400 and -0.0", LIT(EV(",'properties':{'a':1e-400,'b':-0.0}")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_1"},
    {"number as id", LIT(EVB("1e400", "")), NB_NUDGESPOT_INVALID_JSON, 0, NULL,
	NULL},
    {"integer id", LIT(EVB("42", "")), NB_NUDGESPOT_OK, 1,
	"id: must be a string", NULL},
    /* UTF-8. */
    {"invalid UTF-8 byte", LIT(EV(",'properties':{'a':'\xff'}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"truncated sequence", LIT(EV(",'properties':{'a':'\xe2\x82'}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"overlong slash", LIT(EV(",'properties':{'a':'\xc0\xaf'}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"encoded surrogate", LIT(EV(",'properties':{'a':'\xed\xa0\x80'}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"beyond U+10FFFF", LIT(EV(",'properties':{'a':'\xf4\x90\x80\x80'}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"invalid UTF-8 in a key", LIT(EV(",'\xc3\x28':1")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"lone surrogate escape", LIT(EV(",'properties':{'a':'\\ud800'}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"escaped surrogate pair", LIT(EV(",'properties':{'a':'\\ud83d\\ude00'}")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_1"},
    {"BOM", LIT("\xef\xbb\xbf" EV("")), NB_NUDGESPOT_INVALID_JSON, 0, NULL,
	NULL},
    {"UTF-8 id", LIT(EVB("'\xc3\xa9v\xc3\xa9nement'", "")), NB_NUDGESPOT_OK, 1,
	R_ID, NULL},
    /* NUL. */
    {"raw NUL in a value", LIT(EV(",'properties':{'a':'x\0y'}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"raw NUL after the body", LIT(EV("") "\0"), NB_NUDGESPOT_INVALID_JSON, 0,
	NULL, NULL},
    {"escaped NUL in a key", LIT(EV(",'a\\u0000b':1")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"escaped NUL in id", LIT(EVB("'evt\\u0000x'", "")), NB_NUDGESPOT_OK, 1,
	R_ID, NULL},
    {"escaped NUL in type", LIT(EV(",'type':'email\\u0000'")), NB_NUDGESPOT_OK,
	1, R_TYPE, "evt_1"},
    {"escaped NUL in uid",
	LIT(EV(",'subscriber':{'uid':'u\\u0000','email':'a@b'}")),
	NB_NUDGESPOT_OK, 1, R_UID, "evt_1"},
    {"escaped NUL in a property", LIT(EV(",'properties':{'a':'\\u0000'}")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_1"},
    /* Duplicate keys: the last one wins. */
    {"id twice", LIT(EV(",'id':'evt_2'")), NB_NUDGESPOT_OK, 1, NULL, "evt_2"},
    {"valid id, then invalid", LIT(EV(",'id':''")), NB_NUDGESPOT_OK, 1, R_ID,
	NULL},
    {"invalid id, then valid", LIT(EVB("'evt\\n'", ",'id':'evt_3'")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_3"},
    {"subscriber twice, then null", LIT(EV(",'subscriber':null")),
	NB_NUDGESPOT_OK, 1, "subscriber: missing", "evt_1"},
    {"id 10 times",
	LIT(EV(",'id':'a','id':'b','id':'c','id':'d','id':'e',"
	       "'id':'f','id':'g','id':'h','id':'i','id':'j'")),
	NB_NUDGESPOT_OK, 1, NULL, "j"},
    /* CR and LF in values. */
    {"CRLF in id", LIT(EVB("'evt\\r\\nX-Injected: 1'", "")), NB_NUDGESPOT_OK, 1,
	R_ID, NULL},
    {"CRLF in type", LIT(EV(",'type':'email.opened\\r\\n'")), NB_NUDGESPOT_OK,
	1, R_TYPE, "evt_1"},
    {"CRLF in email", LIT(EV(",'subscriber':{'email':'a@b\\r\\nBcc: c@d'}")),
	NB_NUDGESPOT_OK, 1, R_EMAIL, "evt_1"},
    {"CRLF in subject",
	LIT(EV(",'message':{'subject':'Hi\\r\\nX-Injected: 1'}")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_1"},
    {"raw CR in a string", LIT(EV(",'message':{'subject':'a\rb'}")),
	NB_NUDGESPOT_INVALID_JSON, 0, NULL, NULL},
    {"id of 129 characters", NULL, 0, gen_long_id, NB_NUDGESPOT_OK, 1, R_ID,
	NULL},
    /* Times at and beyond the limits. */
    {"year 9999", LIT(EV(",'occurred_at':'9999-12-31T23:59:59.999Z'")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_1"},
    {"year 0000", LIT(EV(",'occurred_at':'0000-01-01T00:00:00Z'")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_1"},
    {"year 10000", LIT(EV(",'occurred_at':'10000-01-01T00:00:00Z'")),
	NB_NUDGESPOT_OK, 1, R_TIME, "evt_1"},
    {"negative year", LIT(EV(",'occurred_at':'-0001-01-01T00:00:00Z'")),
	NB_NUDGESPOT_OK, 1, R_TIME, "evt_1"},
    {"INT64_MAX as time", LIT(EV(",'occurred_at':'9223372036854775807'")),
	NB_NUDGESPOT_OK, 1, R_TIME, "evt_1"},
    {"INT64_MIN as time", LIT(EV(",'occurred_at':'-9223372036854775808'")),
	NB_NUDGESPOT_OK, 1, R_TIME, "evt_1"},
    {"integer time", LIT(EV(",'occurred_at':9223372036854775807")),
	NB_NUDGESPOT_OK, 1, "occurred_at: must be a string", "evt_1"},
    {"200 fraction digits",
	LIT(EV(
	    ",'occurred_at':'2026-11-28T09:59:58."
	    "9999999999999999999999999999999999999999999999999999999999999999"
	    "9999999999999999999999999999999999999999999999999999999999999999"
	    "999999999999999999999999999999999999999999999999999999999999999"
	    "99999999Z'")),
	NB_NUDGESPOT_OK, 1, NULL, "evt_1"},
    {"offset +99:99", LIT(EV(",'occurred_at':'2026-11-28T09:59:58+99:99'")),
	NB_NUDGESPOT_OK, 1, R_TIME, "evt_1"},
    {"time with CRLF", LIT(EV(",'occurred_at':'2026-11-28T09:59:58Z\\r\\n'")),
	NB_NUDGESPOT_OK, 1, R_TIME, "evt_1"},
};

static void
test_parse(void **state)
{
	const struct parse_case *c;
	struct nb_payload p;
	enum nb_nudgespot_result r;
	const struct nb_event *e;
	char *body;
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		c = &parse_cases[i];
		if (c->gen != NULL) {
			body = c->gen(&len);
		} else {
			len = c->len;
			body = mk(c->body, len);
		}
		memset(&p, 0, sizeof(p));
		r = nb_nudgespot_parse(&p, body, len);
		if (r != c->want)
			fail_msg("%s: got %s, want %s", c->name,
			    nb_nudgespot_result_str(r),
			    nb_nudgespot_result_str(c->want));
		if (r != NB_NUDGESPOT_OK) {
			assert_null(p.events);
			assert_int_equal(p.nevents, 0);
			free(body);
			continue;
		}
		if (p.nevents != c->nevents)
			fail_msg("%s: %zu events, want %zu", c->name, p.nevents,
			    c->nevents);
		e = &p.events[0];
		if ((c->error == NULL) != (e->error == NULL) ||
		    (c->error != NULL && strcmp(c->error, e->error) != 0))
			fail_msg("%s: error \"%s\", want \"%s\"", c->name,
			    e->error ? e->error : "(none)",
			    c->error ? c->error : "(none)");
		if ((c->id == NULL) != (e->id == NULL) ||
		    (c->id != NULL && strcmp(c->id, e->id) != 0))
			fail_msg("%s: id \"%s\", want \"%s\"", c->name,
			    e->id ? e->id : "(none)", c->id ? c->id : "(none)");
		/* What the store keeps is compact JSON without a raw NUL. */
		assert_int_equal(strlen(e->raw), e->rawlen);
		nb_nudgespot_clear(&p);
		free(body);
	}
}

/* nb_sig_verify() */

#define SECRET	 "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VEC_ID	 "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VEC_TS	 "1614265330"
#define VEC_NOW	 1614265330
#define VEC_BODY "{\"test\": 2432232314}"
#define VEC_SIG	 "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define JUNK_V1	 "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define MIB	 (1024 * 1024)

/* n junk entries, the valid one at position at (1-based; 0: none), more. */
static char *
sig_list(size_t n, size_t at, const char *junk)
{
	struct buf b = {0};
	size_t i;

	for (i = 1; i <= n; i++) {
		if (i > 1)
			put(&b, " ", 1);
		if (i == at)
			put(&b, VEC_SIG, strlen(VEC_SIG));
		else
			put(&b, junk, strlen(junk));
	}
	return b.p;
}

static char *
sig_fill(const char *head, int c, size_t n)
{
	struct buf b = {0};

	put(&b, head, strlen(head));
	while (b.len < n) {
		char ch = (char)c;
		put(&b, &ch, 1);
	}
	return b.p;
}

static char *
gen_10000_junk_then_valid(void)
{
	return sig_list(10001, 10001, JUNK_V1);
}

static char *
gen_valid_then_9999_junk(void)
{
	return sig_list(10000, 1, JUNK_V1);
}

static char *
gen_valid_at_16(void)
{
	return sig_list(10000, 16, JUNK_V1);
}

static char *
gen_valid_at_17(void)
{
	return sig_list(10000, 17, JUNK_V1);
}

static char *
gen_10000_garbled(void)
{
	return sig_list(10000, 0, "v1,!!");
}

static char *
gen_10000_garbled_then_valid(void)
{
	return sig_list(10001, 10001, "v1,!!");
}

static char *
gen_10000_unknown_versions(void)
{
	return sig_list(10000, 0, "v2,abc");
}

static char *
gen_10000_v1a(void)
{
	return sig_list(10000, 0,
	    "v1a,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAA==");
}

static char *
gen_mib_base64(void)
{
	return sig_fill("v1,", 'A', MIB);
}

static char *
gen_mib_spaces(void)
{
	return sig_fill("", ' ', MIB);
}

static char *
gen_mib_commas(void)
{
	return sig_fill("v1", ',', MIB);
}

static char *
gen_mib_version(void)
{
	return sig_fill("", 'v', MIB);
}

static char *
gen_mib_id(void)
{
	return sig_fill("msg_", 'a', MIB);
}

static char *
gen_mib_ts(void)
{
	return sig_fill("1", '0', MIB);
}

struct sig_case {
	const char *name;
	const char *id;
	const char *ts;
	const char *sig;
	char *(*gen_id)(void);
	char *(*gen_ts)(void);
	char *(*gen_sig)(void);
	int64_t tolerance;
	enum nb_sig_result want;
};

#define VEC   VEC_ID, VEC_TS
#define NOGEN NULL, NULL, NULL
#define TOL   300
#define SIGC(name, id, ts, sig, want)                                          \
	{                                                                      \
		name, id, ts, sig, NOGEN, TOL, want                            \
	}
#define SIGG(name, gen, want)                                                  \
	{                                                                      \
		name, VEC, NULL, NULL, NULL, gen, TOL, want                    \
	}

static const struct sig_case sig_cases[] = {
    SIGC("the published vector", VEC_ID, VEC_TS, VEC_SIG, NB_SIG_OK),
    /* Timestamps at the integer limits. */
    SIGC("INT64_MAX", VEC_ID, "9223372036854775807", VEC_SIG, NB_SIG_STALE),
    SIGC("INT64_MAX + 1", VEC_ID, "9223372036854775808", VEC_SIG,
	NB_SIG_MALFORMED),
    SIGC(
	"INT64_MIN", VEC_ID, "-9223372036854775808", VEC_SIG, NB_SIG_MALFORMED),
    SIGC("UINT64_MAX", VEC_ID, "18446744073709551615", VEC_SIG,
	NB_SIG_MALFORMED),
    SIGC("zero", VEC_ID, "0", VEC_SIG, NB_SIG_STALE),
    SIGC("-0", VEC_ID, "-0", VEC_SIG, NB_SIG_MALFORMED),
    SIGC("+1", VEC_ID, "+1", VEC_SIG, NB_SIG_MALFORMED),
    SIGC("+ on the vector", VEC_ID, "+" VEC_TS, VEC_SIG, NB_SIG_MALFORMED),
    SIGC("leading zero", VEC_ID, "0" VEC_TS, VEC_SIG, NB_SIG_MISMATCH),
    SIGC("leading space", VEC_ID, " " VEC_TS, VEC_SIG, NB_SIG_MALFORMED),
    SIGC("trailing CRLF", VEC_ID, VEC_TS "\r\n", VEC_SIG, NB_SIG_MALFORMED),
    SIGC("hex", VEC_ID, "0x60376a72", VEC_SIG, NB_SIG_MALFORMED),
    SIGC("fraction", VEC_ID, VEC_TS ".0", VEC_SIG, NB_SIG_MALFORMED),
    SIGC("exponent", VEC_ID, "1.6e9", VEC_SIG, NB_SIG_MALFORMED),
    SIGC("empty", VEC_ID, "", VEC_SIG, NB_SIG_MISSING),
    {"INT64_MAX, widest tolerance", VEC_ID, "9223372036854775807", VEC_SIG,
	NOGEN, INT64_MAX, NB_SIG_MISMATCH},
    {"zero, widest tolerance", VEC_ID, "0", VEC_SIG, NOGEN, INT64_MAX,
	NB_SIG_MISMATCH},
    /* Ids. */
    SIGC("CRLF in id", VEC_ID "\r\nX: 1", VEC_TS, VEC_SIG, NB_SIG_MALFORMED),
    SIGC("space in id", "msg 1", VEC_TS, VEC_SIG, NB_SIG_MALFORMED),
    SIGC("UTF-8 id", "msg_\xc3\xa9", VEC_TS, VEC_SIG, NB_SIG_MALFORMED),
    SIGC("empty id", "", VEC_TS, VEC_SIG, NB_SIG_MISSING),
    {"1 MiB id", NULL, VEC_TS, VEC_SIG, gen_mib_id, NULL, NULL, TOL,
	NB_SIG_MALFORMED},
    {"1 MiB timestamp", VEC_ID, NULL, VEC_SIG, NULL, gen_mib_ts, NULL, TOL,
	NB_SIG_MALFORMED},
    /* Entries. */
    SIGC("CRLF after the entry", VEC_ID, VEC_TS, VEC_SIG "\r\n",
	NB_SIG_MALFORMED),
    /* Only spaces separate entries: "a\r\nb" is one garbled entry. */
    SIGC("CRLF between entries", VEC_ID, VEC_TS, JUNK_V1 "\r\n" VEC_SIG,
	NB_SIG_MALFORMED),
    SIGC("tab between entries", VEC_ID, VEC_TS, JUNK_V1 "\t" VEC_SIG,
	NB_SIG_MALFORMED),
    SIGC("many spaces around", VEC_ID, VEC_TS, "     " VEC_SIG "     ",
	NB_SIG_OK),
    SIGC("NUL-truncated entry", VEC_ID, VEC_TS, "v1,g0hM9SsE+OTPJTGt\0",
	NB_SIG_MALFORMED),
    SIGC("only spaces", VEC_ID, VEC_TS, "   ", NB_SIG_MALFORMED),
    SIGC("comma only", VEC_ID, VEC_TS, ",", NB_SIG_MALFORMED),
    SIGC("version only", VEC_ID, VEC_TS, "v1,", NB_SIG_MALFORMED),
    SIGC("unknown version only", VEC_ID, VEC_TS, "v9,abc", NB_SIG_MISMATCH),
    SIGC("uppercase version", VEC_ID, VEC_TS,
	"V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", NB_SIG_MISMATCH),
    SIGC("url-safe alphabet", VEC_ID, VEC_TS,
	"v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=", NB_SIG_MALFORMED),
    SIGC("truncated MAC", VEC_ID, VEC_TS,
	"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE", NB_SIG_OK),
    SIGC("extra byte", VEC_ID, VEC_TS,
	"v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OEA", NB_SIG_MALFORMED),
    /* 10,000 entries: only the first NB_SIG_MAX_ENTRIES count. */
    SIGG("10,000 wrong, then the valid one", gen_10000_junk_then_valid,
	NB_SIG_MISMATCH),
    SIGG(
	"the valid one, then 9,999 wrong", gen_valid_then_9999_junk, NB_SIG_OK),
    SIGG("the valid one as entry 16", gen_valid_at_16, NB_SIG_OK),
    SIGG("the valid one as entry 17", gen_valid_at_17, NB_SIG_MISMATCH),
    SIGG("10,000 garbled", gen_10000_garbled, NB_SIG_MALFORMED),
    SIGG("10,000 garbled, then the valid one", gen_10000_garbled_then_valid,
	NB_SIG_MALFORMED),
    SIGG(
	"10,000 unknown versions", gen_10000_unknown_versions, NB_SIG_MISMATCH),
    SIGG("10,000 wrong Ed25519 entries", gen_10000_v1a, NB_SIG_MISMATCH),
    /* 1 MiB headers. */
    SIGG("1 MiB of base64", gen_mib_base64, NB_SIG_MALFORMED),
    SIGG("1 MiB of spaces", gen_mib_spaces, NB_SIG_MALFORMED),
    SIGG("1 MiB of commas", gen_mib_commas, NB_SIG_MALFORMED),
    SIGG("1 MiB version name", gen_mib_version, NB_SIG_MALFORMED),
};

static void
test_sig(void **state)
{
	const struct sig_case *c;
	struct nb_keyring *keys;
	struct nb_sig_headers h;
	enum nb_sig_result r;
	char *gid, *gts, *gsig;
	size_t i, bad = 0;

	(void)state;
	assert_true(sodium_init() >= 0);
	assert_non_null(keys = nb_sig_keyring_new());
	assert_int_equal(nb_sig_keyring_add_secret(keys, SECRET), 0);
	for (i = 0; i < sizeof(sig_cases) / sizeof(sig_cases[0]); i++) {
		c = &sig_cases[i];
		gid = c->gen_id ? c->gen_id() : NULL;
		gts = c->gen_ts ? c->gen_ts() : NULL;
		gsig = c->gen_sig ? c->gen_sig() : NULL;
		h.id = gid ? gid : c->id;
		h.timestamp = gts ? gts : c->ts;
		h.signature = gsig ? gsig : c->sig;
		r = nb_sig_verify(keys, &h, (const unsigned char *)VEC_BODY,
		    strlen(VEC_BODY), VEC_NOW, c->tolerance);
		if (r != c->want) {
			print_error("%s: got %s, want %s\n", c->name,
			    nb_sig_result_str(r), nb_sig_result_str(c->want));
			bad++;
		}
		free(gid);
		free(gts);
		free(gsig);
	}
	nb_sig_keyring_free(keys);
	assert_int_equal(bad, 0);
}

/* A body with raw NUL bytes and CRLF is signed and verified byte for byte. */
static void
test_sig_binary_body(void **state)
{
	static const unsigned char body[] = "{\"a\":\"x\0y\r\n\"}\0\xff";
	struct nb_keyring *keys;
	struct nb_sig_headers h = {VEC_ID, VEC_TS, NULL};
	char sig[NB_SIG_ENTRY_MAX];

	(void)state;
	assert_true(sodium_init() >= 0);
	assert_non_null(keys = nb_sig_keyring_new());
	assert_int_equal(nb_sig_keyring_add_secret(keys, SECRET), 0);
	assert_int_equal(nb_sig_sign_hmac(SECRET, VEC_ID, VEC_NOW, body,
			     sizeof(body) - 1, sig, sizeof(sig)),
	    0);
	h.signature = sig;
	assert_int_equal(
	    nb_sig_verify(keys, &h, body, sizeof(body) - 1, VEC_NOW, 300),
	    NB_SIG_OK);
	/* Stopping at the first NUL (a C-string bug) would not verify. */
	assert_int_equal(
	    nb_sig_verify(keys, &h, body, 6, VEC_NOW, 300), NB_SIG_MISMATCH);
	assert_int_equal(
	    nb_sig_verify(keys, &h, body, sizeof(body) - 2, VEC_NOW, 300),
	    NB_SIG_MISMATCH);
	nb_sig_keyring_free(keys);
}

/* nb_config_source_name_valid() */

struct name_case {
	const char *name;
	int valid;
};

static const struct name_case name_cases[] = {
    {"acme", 1},
    {"a", 1},
    {"0", 1},
    {"a_-9", 1},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 1},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0},
    {"", 0},
    {"../x", 0},
    {"..", 0},
    {".", 0},
    {"%2e%2e", 0},
    {"..%2fx", 0},
    {"acme/", 0},
    {"a/b", 0},
    {"a\\b", 0},
    {"ACME", 0},
    {"Acme", 0},
    {"a b", 0},
    {" acme", 0},
    {"acme ", 0},
    {"_acme", 0},
    {"-acme", 0},
    {"a.b", 0},
    {"a+b", 0},
    {"acme\r\n", 0},
    {"acme\t", 0},
    {"\xc3\xbc", 0},
    {"\xc3\xbc"
     "ber",
	0},
    {"acme\xff", 0},
    {"a\xcc\x81", 0},
    {"acme%00", 0},
    {"acme;", 0},
    {"acme?x=1", 0},
};

static void
test_source_names(void **state)
{
	size_t i;
	char *big;

	(void)state;
	for (i = 0; i < sizeof(name_cases) / sizeof(name_cases[0]); i++) {
		if (nb_config_source_name_valid(name_cases[i].name) !=
		    name_cases[i].valid)
			fail_msg("\"%s\": want %s", name_cases[i].name,
			    name_cases[i].valid ? "valid" : "invalid");
	}
	/* A C string ends at the NUL: "acme\0../x" is the name "acme". */
	assert_int_equal(nb_config_source_name_valid("acme\0../x"), 1);
	assert_non_null(big = malloc(MIB));
	memset(big, 'a', MIB - 1);
	big[MIB - 1] = '\0';
	assert_int_equal(nb_config_source_name_valid(big), 0);
	free(big);
}

/* nb_segment_track() */

static char acme[] = "acme";
/* The messageId is not what these cases look at: the legacy rule. */
static const struct nb_segment_origin acme_origin = {
    acme, NB_SEGMENT_RULE_LEGACY, NULL};

struct track_case {
	const char *name;
	const char *raw; /* single-quoted JSON; NULL: gen */
	size_t len;	 /* 0: strlen */
	char *(*gen)(size_t *len);
	int sha; /* anonymous_id sha256 */
	const char *key;
	const char *sub;  /* key inside key (NULL: key itself) */
	const char *want; /* string value; NULL: no message expected */
};

#define TRK(name, raw, key, sub, want)                                         \
	{                                                                      \
		name, raw, sizeof(raw) - 1, NULL, 0, key, sub, want            \
	}
#define TRK_FAIL(name, raw)                                                    \
	{                                                                      \
		name, raw, sizeof(raw) - 1, NULL, 0, NULL, NULL, NULL          \
	}

static const struct track_case track_cases[] = {
    TRK("year 9999", EV(",'occurred_at':'9999-12-31T23:59:59.999Z'"),
	"timestamp", NULL, "9999-12-31T23:59:59.999Z"),
    TRK("year 0000", EV(",'occurred_at':'0000-01-01T00:00:00Z'"), "timestamp",
	NULL, "0000-01-01T00:00:00.000Z"),
    TRK("offset across the year",
	EV(",'occurred_at':'2026-12-31T23:30:00-23:59'"), "timestamp", NULL,
	"2027-01-01T23:29:00.000Z"),
    TRK("offset across a leap day",
	EV(",'occurred_at':'2028-02-29T00:10:00+01:00'"), "timestamp", NULL,
	"2028-02-28T23:10:00.000Z"),
    TRK("200 fraction digits truncated",
	EV(",'occurred_at':'2026-11-28T09:59:58.9999999999999999999999999"
	   "999999999999999999999999999999999999999999999999999999999999999"
	   "999999999999999999999999999999999999999999999999999999999999999"
	   "9999999999999999999999999999999999999999Z'"),
	"timestamp", NULL, "2026-11-28T09:59:58.999Z"),
    TRK("CRLF in subject kept", EV(",'message':{'subject':'a\\r\\nb: c'}"),
	"properties", "email_subject", "a\r\nb: c"),
    TRK("mapped keys win over properties",
	EV(",'message':{'id':'m'},'properties':{'email_id':'evil'}"),
	"properties", "email_id", "m"),
    TRK("duplicate key: last wins", EV(",'message':{'id':'a','id':'b'}"),
	"properties", "email_id", "b"),
    TRK("duplicate uid: last wins", EV(",'subscriber':{'uid':'u1','uid':'u2'}"),
	"userId", NULL, "u2"),
    TRK("UTF-8 uid", EV(",'subscriber':{'uid':'\xc3\xbc\xe2\x82\xac'}"),
	"userId", NULL, "\xc3\xbc\xe2\x82\xac"),
    TRK("properties free-form text",
	EV(",'properties':{'any':'\\u2028\\u2029'}"), "properties", "any",
	"\xe2\x80\xa8\xe2\x80\xa9"),
    TRK_FAIL("invalid UTF-8", EV(",'properties':{'a':'\xff'}")),
    TRK_FAIL(
	"integer beyond int64", EV(",'properties':{'a':99999999999999999999}")),
    TRK_FAIL("real overflow", EV(",'properties':{'a':-1e400}")),
    TRK_FAIL("truncated", "{'id':'evt_1','type':"),
    TRK_FAIL("raw NUL", EV(",'properties':{'a':'\0'}")),
    {"100,000 nested arrays", NULL, 0, gen_deep_arrays, 0, NULL, NULL, NULL},
    {"100,000 levels in properties", NULL, 0, gen_deep_properties, 0, NULL,
	NULL, NULL},
    {"10,000 properties", NULL, 0, gen_many_properties, 0, "properties",
	"k9999", NULL},
};

static const char *
track_value(const json_t *m, const char *key, const char *sub)
{
	const json_t *v = json_object_get(m, key);

	if (sub != NULL)
		v = json_object_get(v, sub);
	return json_string_value(v);
}

static void
test_track(void **state)
{
	const struct track_case *c;
	struct nb_source src = {
	    .name = acme, .mapping = {.anon = NB_SEGMENT_ANON_EMAIL}};
	const char *err, *got;
	json_t *m;
	char *raw;
	size_t i, len;

	(void)state;
	assert_true(sodium_init() >= 0);
	for (i = 0; i < sizeof(track_cases) / sizeof(track_cases[0]); i++) {
		c = &track_cases[i];
		if (c->gen != NULL) {
			raw = c->gen(&len);
		} else {
			len = c->len;
			raw = mk(c->raw, len);
		}
		src.mapping.anon =
		    c->sha ? NB_SEGMENT_ANON_SHA256 : NB_SEGMENT_ANON_EMAIL;
		err = NULL;
		m = nb_segment_track(
		    &src.mapping, &acme_origin, raw, len, &err);
		if (c->key == NULL) {
			if (m != NULL)
				fail_msg("%s: mapped, want a refusal", c->name);
			if (err == NULL)
				fail_msg(
				    "%s: refused without a reason", c->name);
			free(raw);
			continue;
		}
		if (m == NULL)
			fail_msg("%s: refused (%s)", c->name, err ? err : "?");
		if (c->want == NULL) {
			/* Present, whatever its value. */
			if (json_object_get(
				json_object_get(m, c->key), c->sub) == NULL)
				fail_msg("%s: %s.%s missing", c->name, c->key,
				    c->sub);
		} else {
			got = track_value(m, c->key, c->sub);
			if (got == NULL || strcmp(got, c->want) != 0)
				fail_msg("%s: %s%s%s is \"%s\", want \"%s\"",
				    c->name, c->key, c->sub ? "." : "",
				    c->sub ? c->sub : "", got ? got : "(none)",
				    c->want);
		}
		json_decref(m);
		free(raw);
	}
}

/* \u0000 survives the mapping as a string with a NUL, length intact. */
static void
test_track_escaped_nul(void **state)
{
	static const char raw[] = EV(",'properties':{'a':'x\\u0000y'}");
	struct nb_source src = {
	    .name = acme, .mapping = {.anon = NB_SEGMENT_ANON_EMAIL}};
	char *text = mk(raw, sizeof(raw) - 1), *out = NULL;
	const json_t *a;
	size_t outlen = 0;
	json_t *m;

	(void)state;
	assert_non_null(m = nb_segment_track(&src.mapping, &acme_origin, text,
			    strlen(text), NULL));
	a = json_object_get(json_object_get(m, "properties"), "a");
	assert_int_equal(json_string_length(a), 3);
	assert_memory_equal(json_string_value(a), "x\0y", 3);
	json_decref(m);
	assert_int_equal(nb_segment_track_text(&src.mapping, &acme_origin, text,
			     strlen(text), &out, &outlen, NULL),
	    0);
	assert_int_equal(strlen(out), outlen);
	assert_non_null(strstr(out, "x\\u0000y"));
	free(out);
	free(text);
}

/*
 * anonymous_id sha256 lower-cases ASCII only: "\xc3\x80DA@EXAMPLE.COM"
 * hashes as "\xc3\x80da@example.com".
 */
static void
test_track_sha_unicode(void **state)
{
	static const char raw[] = "{'id':'e','type':'email.sent','occurred_at':"
				  "'2026-11-28T09:59:58Z',"
				  "'subscriber':{'email':'\xc3\x80"
				  "DA@EXAMPLE.COM'}}";
	static const char lower[] = "\xc3\x80"
				    "da@example.com";
	struct nb_source src = {
	    .name = acme, .mapping = {.anon = NB_SEGMENT_ANON_SHA256}};
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[2 * crypto_hash_sha256_BYTES + 1];
	char *text = mk(raw, sizeof(raw) - 1);
	json_t *m;

	(void)state;
	assert_true(sodium_init() >= 0);
	crypto_hash_sha256(h, (const unsigned char *)lower, sizeof(lower) - 1);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	assert_non_null(m = nb_segment_track(&src.mapping, &acme_origin, text,
			    strlen(text), NULL));
	assert_string_equal(
	    json_string_value(json_object_get(m, "anonymousId")), hex);
	json_decref(m);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_sig),
	    cmocka_unit_test(test_sig_binary_body),
	    cmocka_unit_test(test_source_names),
	    cmocka_unit_test(test_track),
	    cmocka_unit_test(test_track_escaped_nul),
	    cmocka_unit_test(test_track_sha_unicode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
