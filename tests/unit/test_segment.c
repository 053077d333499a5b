/* SPDX-License-Identifier: ISC */
/*
 * Unit tests for segment: golden Track messages for every row of the
 * contract's table, identity modes, property precedence, absent inputs,
 * timestamp normalisation, messageIds of both rules (legacy and install)
 * and the contract's full example.
 * Expected messages are JSON literals (single quotes become double quotes)
 * compared with json_equal(); messageIds were computed independently
 * (Python hashlib) so a wrong hash input is caught.  A differential test
 * holds the direct Track encoder to the jansson path, byte for byte, over
 * the segment and nudgespot fuzz corpora and tables of hand-made events
 * that reach each of its branches (string scanning eight bytes at a time,
 * duplicate keys, whitespace inside free-form values, timestamps copied or
 * reformatted, escaped event names, long names and addresses).
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
#include "nudgebridge/segment.h"
#include "testlib.h"

#define MSGID_EVT1                                                             \
	"nb-a6134578990c931ceb7241203a2462000b969e00dbd7ae333480babffdf27fbd"
#define MSGID_CONTRACT                                                         \
	"nb-f7854a8e39723f20f293433928e6e6e12b2b7611456fedc6614243d92e9f3dee"
/* The install rule's, for INSTALL_A (Python hashlib, see the cases). */
#define INSTALL_A "0123456789abcdef0123456789abcdef"
#define INSTALL_B "fedcba9876543210fedcba9876543210"
#define MSGID1_EVT1                                                            \
	"nb1-01a290df88309b95a55e4e6f4c003e0b04c9a0d7d23ad689dbdbc1cd45561f4a"
#define MSGID1_CONTRACT                                                        \
	"nb1-2bee4cc5b247e1d94376b594ef27987ea0a9085031b39a0a76c0327ebedcf682"
#define SHA_ADA                                                                \
	"b5fc85e55755f9e0d030a10ab4429b6b2944855f9a0d60077fe832becbc41d72"

#define TS "2026-11-28T09:59:58.123Z"
#define CTX                                                                    \
	"'integration':{'name':'nudgespot','version':'1.0.0'},"                \
	"'library':{'name':'nudgebridge','version':'" NB_VERSION "'}"
#define SUB "'subscriber':{'uid':'u_42','email':'ada@example.com'}"

static char acme[] = "acme";
static struct nb_source src_email = {
    .name = acme, .mapping = {.anon = NB_SEGMENT_ANON_EMAIL}};
static struct nb_source src_sha = {
    .name = acme, .mapping = {.anon = NB_SEGMENT_ANON_SHA256}};
static struct nb_source src_override = {
    .name = acme, .mapping = {.anon = NB_SEGMENT_ANON_EMAIL}};
/* Longer than the direct path's one-call messageId buffer takes. */
static char long_name[600];
static struct nb_source src_long = {
    .name = long_name, .mapping = {.anon = NB_SEGMENT_ANON_SHA256}};

/* The install of INSTALL_A, set up once. */
static struct nb_segment_install install_a;

/* The golden messages below carry messageIds of the legacy rule. */
static struct nb_segment_origin
legacy(const struct nb_source *src)
{
	struct nb_segment_origin o = {src->name, NB_SEGMENT_RULE_LEGACY, NULL};

	return o;
}

static struct nb_segment_origin
installed(const struct nb_source *src)
{
	struct nb_segment_origin o = {
	    src->name, NB_SEGMENT_RULE_INSTALL, &install_a};

	return o;
}

/* Maps event (single-quoted JSON) under src and compares with want. */
static void
check(const struct nb_source *src, const char *event, const char *want)
{
	char *ev = testlib_dq(event), *w = testlib_dq(want), *got_text,
	     *want_text;
	json_t *got, *exp;
	json_error_t je;
	const char *err = NULL;
	struct nb_segment_origin o = legacy(src);

	exp = json_loads(w, 0, &je);
	if (exp == NULL)
		fail_msg("bad expected JSON: %s: %s", je.text, w);
	got = nb_segment_track(&src->mapping, &o, ev, strlen(ev), &err);
	if (got == NULL)
		fail_msg("no message (%s) for %s", err ? err : "?", ev);
	if (!json_equal(got, exp)) {
		got_text = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
		want_text = json_dumps(exp, JSON_COMPACT | JSON_SORT_KEYS);
		fail_msg("mismatch for %s\n got: %s\nwant: %s", ev, got_text,
		    want_text);
	}
	json_decref(got);
	json_decref(exp);
	free(ev);
	free(w);
}

static void
check_fails(const char *event, const char *why)
{
	char *ev = testlib_dq(event);
	const char *err = NULL;
	char *text = (char *)1;
	size_t len = 1;
	struct nb_segment_origin o = installed(&src_email);

	assert_null(
	    nb_segment_track(&src_email.mapping, &o, ev, strlen(ev), &err));
	assert_non_null(err);
	if (strstr(err, why) == NULL)
		fail_msg("error '%s' lacks '%s' for %s", err, why, ev);
	assert_null(
	    nb_segment_track(&src_email.mapping, &o, ev, strlen(ev), NULL));
	assert_int_equal(nb_segment_track_text(&src_email.mapping, &o, ev,
			     strlen(ev), &text, &len, &err),
	    -1);
	assert_null(text);
	free(ev);
}

static void
test_types(void **state)
{
	static const struct {
		const char *type;
		const char *extra; /* more event fields */
		const char *event; /* expected Segment event */
		const char *props; /* expected properties members */
		const char *ctx;   /* expected extra context members */
	} cases[] = {
	    {"email.sent", "", "Email Sent", "", ""},
	    {"email.delivered", ",'message':{'id':'msg_77'}", "Email Delivered",
		"'email_id':'msg_77'", ""},
	    {"email.opened",
		",'message':{'id':'m','subject':'S'},'client':{'ip':"
		"'203.0.113.9','user_agent':'UA/1'}",
		"Email Opened", "'email_id':'m','email_subject':'S'",
		",'ip':'203.0.113.9','userAgent':'UA/1'"},
	    {"email.clicked",
		",'link':{'id':'lnk_3','url':'https://example.com/p'}",
		"Email Link Clicked",
		"'link_id':'lnk_3','link_url':'https://example.com/p'", ""},
	    {"email.bounced",
		",'bounce':{'type':'hard','reason':'550 unknown'}",
		"Email Bounced",
		"'bounce_type':'hard','bounce_reason':'550 unknown'", ""},
	    {"email.spam_reported",
		",'message':{'campaign_id':'c9','campaign_name':'Onb'}",
		"Email Marked as Spam",
		"'campaign_id':'c9','campaign_name':'Onb'", ""},
	    {"email.unsubscribed", ",'list':{'id':'lst_1','name':'News'}",
		"Unsubscribed", "'list_id':'lst_1','list_name':'News'", ""},
	    {"email.dropped", ",'properties':{'reason':'suppressed'}",
		"Email Dropped", "'reason':'suppressed'", ""},
	    {"email.deferred", ",'client':{'ip':'::1'}", "Email Deferred", "",
		",'ip':'::1'"},
	    /* Unknown types keep their name; mapping ignores the type. */
	    {"sms.sent", ",'bounce':{'type':'soft'}", "sms.sent",
		"'bounce_type':'soft'", ""},
	    {"email.opened", ",'bounce':{'reason':'r'},'link':{'id':'l'}",
		"Email Opened", "'link_id':'l','bounce_reason':'r'", ""},
	};
	char ev[1024], want[2048];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_true(
		    snprintf(ev, sizeof(ev),
			"{'id':'evt_1','type':'%s','occurred_at':'" TS "'," SUB
			"%s}",
			cases[i].type, cases[i].extra) < (int)sizeof(ev));
		assert_true(snprintf(want, sizeof(want),
				"{'type':'track','event':'%s','userId':'u_42',"
				"'messageId':'" MSGID_EVT1 "','timestamp':'" TS
				"','properties':{%s},'context':{" CTX
				",'traits':{'email':'ada@example.com'}%s},"
				"'integrations':{'Nudgespot':false}}",
				cases[i].event, cases[i].props,
				cases[i].ctx) < (int)sizeof(want));
		check(&src_email, ev, want);
	}
}

static void
test_overridden_name(void **state)
{
	(void)state;
	check(&src_override,
	    "{'id':'evt_1','type':'email.unsubscribed','occurred_at':'" TS
	    "'," SUB "}",
	    "{'type':'track','event':'Email Unsubscribed','userId':'u_42',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "',"
	    "'properties':{},'context':{" CTX
	    ",'traits':{'email':'ada@example.com'}},"
	    "'integrations':{'Nudgespot':false}}");
	check(&src_override,
	    "{'id':'evt_1','type':'custom.x','occurred_at':'" TS "'," SUB "}",
	    "{'type':'track','event':'Custom X','userId':'u_42',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "',"
	    "'properties':{},'context':{" CTX
	    ",'traits':{'email':'ada@example.com'}},"
	    "'integrations':{'Nudgespot':false}}");
	/* Other types of the same source keep the contract's names. */
	check(&src_override,
	    "{'id':'evt_1','type':'email.sent','occurred_at':'" TS "'," SUB "}",
	    "{'type':'track','event':'Email Sent','userId':'u_42',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "',"
	    "'properties':{},'context':{" CTX
	    ",'traits':{'email':'ada@example.com'}},"
	    "'integrations':{'Nudgespot':false}}");
}

static void
test_identity(void **state)
{
	(void)state;
	/* uid wins over the address in both modes. */
	check(&src_sha,
	    "{'id':'evt_1','type':'email.sent','occurred_at':'" TS "'," SUB "}",
	    "{'type':'track','event':'Email Sent','userId':'u_42',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "','properties':{},"
	    "'context':{" CTX ",'traits':{'email':'ada@example.com'}},"
	    "'integrations':{'Nudgespot':false}}");
	/* Email only: the address itself, as received. */
	check(&src_email,
	    "{'id':'evt_1','type':'email.sent','occurred_at':'" TS "',"
	    "'subscriber':{'email':'Ada@Example.COM'}}",
	    "{'type':'track','event':'Email Sent','anonymousId':"
	    "'Ada@Example.COM','messageId':'" MSGID_EVT1 "','timestamp':'" TS
	    "','properties':{},'context':{" CTX
	    ",'traits':{'email':'Ada@Example.COM'}},"
	    "'integrations':{'Nudgespot':false}}");
	/* sha256: hash of the lower-cased address; traits keep it as is. */
	check(&src_sha,
	    "{'id':'evt_1','type':'email.sent','occurred_at':'" TS "',"
	    "'subscriber':{'uid':null,'email':'Ada@Example.COM'}}",
	    "{'type':'track','event':'Email Sent','anonymousId':'" SHA_ADA "',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "','properties':{},"
	    "'context':{" CTX ",'traits':{'email':'Ada@Example.COM'}},"
	    "'integrations':{'Nudgespot':false}}");
	/* uid only: no traits at all. */
	check(&src_sha,
	    "{'id':'evt_1','type':'email.sent','occurred_at':'" TS "',"
	    "'subscriber':{'uid':'u_1','email':''}}",
	    "{'type':'track','event':'Email "
	    "Sent','userId':'u_1','messageId':'" MSGID_EVT1 "','timestamp':'" TS
	    "','properties':{},'context':{" CTX "},"
	    "'integrations':{'Nudgespot':false}}");
	/* An empty uid is absent: fall back to the address. */
	check(&src_email,
	    "{'id':'evt_1','type':'email.sent','occurred_at':'" TS "',"
	    "'subscriber':{'uid':'','email':'a@b.c'}}",
	    "{'type':'track','event':'Email Sent','anonymousId':'a@b.c',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "','properties':{},"
	    "'context':{" CTX ",'traits':{'email':'a@b.c'}},"
	    "'integrations':{'Nudgespot':false}}");
	check_fails("{'id':'evt_1','type':'email.sent','occurred_at':'" TS "',"
		    "'subscriber':{'uid':'','email':null}}",
	    "neither subscriber.uid nor subscriber.email");
	check_fails("{'id':'evt_1','type':'email.sent','occurred_at':'" TS "'}",
	    "neither");
}

static void
test_properties_precedence(void **state)
{
	(void)state;
	check(&src_email,
	    "{'id':'evt_1','type':'email.clicked','occurred_at':'" TS "'," SUB
	    ",'message':{'id':'msg_77'},'list':{'name':'N'},"
	    "'properties':{'email_id':'evil','list_name':'evil2',"
	    "'link_url':'free','n':1,'b':true,'z':null,"
	    "'nested':{'a':[1,{'b':2}]}}}",
	    "{'type':'track','event':'Email Link Clicked','userId':'u_42',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "',"
	    "'properties':{'email_id':'msg_77','list_name':'N',"
	    "'link_url':'free','n':1,'b':true,'z':null,"
	    "'nested':{'a':[1,{'b':2}]}},"
	    "'context':{" CTX ",'traits':{'email':'ada@example.com'}},"
	    "'integrations':{'Nudgespot':false}}");
}

static void
test_absent_inputs(void **state)
{
	(void)state;
	check(&src_email,
	    "{'id':'evt_1','type':'email.bounced','occurred_at':'" TS "'," SUB
	    ",'message':{'id':null,'subject':'','campaign_id':7,"
	    "'campaign_name':{}},'link':null,'bounce':{'type':'',"
	    "'reason':null},'list':[],'client':{'ip':'','user_agent':null},"
	    "'properties':null,'unknown_top':{'x':1}}",
	    "{'type':'track','event':'Email Bounced','userId':'u_42',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "',"
	    "'properties':{},'context':{" CTX
	    ",'traits':{'email':'ada@example.com'}},"
	    "'integrations':{'Nudgespot':false}}");
	check(&src_email,
	    "{'id':'evt_1','type':'email.bounced','occurred_at':'" TS "'," SUB
	    ",'properties':[1,2]}",
	    "{'type':'track','event':'Email Bounced','userId':'u_42',"
	    "'messageId':'" MSGID_EVT1 "','timestamp':'" TS "',"
	    "'properties':{},'context':{" CTX
	    ",'traits':{'email':'ada@example.com'}},"
	    "'integrations':{'Nudgespot':false}}");
}

static void
test_timestamps(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"2026-11-28T09:59:58.123Z", "2026-11-28T09:59:58.123Z"},
	    {"2026-11-28T09:59:58Z", "2026-11-28T09:59:58.000Z"},
	    {"2026-11-28T10:59:58.123456+01:00", "2026-11-28T09:59:58.123Z"},
	    {"2026-11-28T09:59:58.123999999Z", "2026-11-28T09:59:58.123Z"},
	    {"2026-11-28t04:29:58.9-05:30", "2026-11-28T09:59:58.900Z"},
	    {"2026-12-31T23:30:00-01:00", "2027-01-01T00:30:00.000Z"},
	    {"2026-11-28T09:59:58.1z", "2026-11-28T09:59:58.100Z"},
	};
	char ev[512], want[1024];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(ev, sizeof(ev),
		    "{'id':'evt_1','type':'x','occurred_at':'%s'," SUB "}",
		    cases[i].in);
		snprintf(want, sizeof(want),
		    "{'type':'track','event':'x','userId':'u_42',"
		    "'messageId':'" MSGID_EVT1 "','timestamp':'%s',"
		    "'properties':{},'context':{" CTX
		    ",'traits':{'email':'ada@example.com'}},"
		    "'integrations':{'Nudgespot':false}}",
		    cases[i].out);
		check(&src_email, ev, want);
	}
	check_fails("{'id':'evt_1','type':'x','occurred_at':'yesterday'," SUB
		    "}",
	    "occurred_at");
	check_fails("{'id':'evt_1','type':'x','occurred_at':1764324000," SUB
		    "}",
	    "occurred_at");
}

static void
test_bad_input(void **state)
{
	(void)state;
	check_fails("not json", "not a JSON object");
	check_fails("[{}]", "not a JSON object");
	check_fails("{'type':'x','occurred_at':'" TS "'," SUB "}", "id");
	check_fails(
	    "{'id':'','type':'x','occurred_at':'" TS "'," SUB "}", "id");
	check_fails("{'id':'e','occurred_at':'" TS "'," SUB "}", "type");
	check_fails(
	    "{'id':'e','type':5,'occurred_at':'" TS "'," SUB "}", "type");
	check_fails("{'id':'e\\u0000f','type':'x','occurred_at':'" TS "'," SUB
		    "}",
	    "id");
	/* rawlen is honoured: the text need not be NUL-terminated. */
	{
		const char *ev = "{\"id\":\"evt_1\",\"type\":\"x\","
				 "\"occurred_at\":\"" TS "\","
				 "\"subscriber\":{\"uid\":\"u\"}}garbage";
		struct nb_segment_origin o = installed(&src_email);
		json_t *m = nb_segment_track(&src_email.mapping, &o, ev,
		    strlen(ev) - strlen("garbage"), NULL);

		assert_non_null(m);
		json_decref(m);
		assert_null(nb_segment_track(
		    &src_email.mapping, &o, ev, strlen(ev), NULL));
	}
}

/* The messageId of (source, id) under rule; -1 when it cannot be made. */
static int
msgid(enum nb_segment_rule rule, const struct nb_segment_install *in,
    const char *source, const char *id, char out[NB_SEGMENT_MSGID_LEN])
{
	struct nb_segment_origin o = {source, rule, in};

	return nb_segment_message_id(&o, id, out);
}

/*
 * The legacy rule: what rows stored before the install id keep, so its
 * outputs are frozen (values from Python's hashlib).
 */
static void
test_message_id(void **state)
{
	char a[NB_SEGMENT_MSGID_LEN], b[NB_SEGMENT_MSGID_LEN];
	const enum nb_segment_rule L = NB_SEGMENT_RULE_LEGACY;

	(void)state;
	assert_int_equal(msgid(L, NULL, "acme", "evt_1", a), 0);
	assert_string_equal(a, MSGID_EVT1);
	/* The install is no input of the legacy rule. */
	assert_int_equal(msgid(L, &install_a, "acme", "evt_1", b), 0);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 67);
	assert_true(strlen(a) <= 100);
	assert_int_equal(
	    msgid(L, NULL, "acme", "evt_01JD8Z3Q4W5E6R7T8Y9U0I1O2P", a), 0);
	assert_string_equal(a, MSGID_CONTRACT);
	assert_int_equal(msgid(L, NULL, "a", "bc", a), 0);
	assert_int_equal(msgid(L, NULL, "ab", "c", b), 0);
	assert_string_not_equal(a, b);
	assert_string_equal(a,
	    "nb-40bb547d936bbd31318ee37ac8799e7ecbb22eda2651"
	    "f65e3214bffb8ce97bb4");
	assert_string_equal(b,
	    "nb-6c032e631d39a14d85aff7e319546af701e26c97b57c"
	    "a95fbfe9c6ba855f67bf");
	assert_int_equal(msgid(L, NULL, "acme", "evt_2", a), 0);
	assert_int_equal(msgid(L, NULL, "beta", "evt_1", b), 0);
	assert_string_not_equal(a, MSGID_EVT1);
	assert_string_not_equal(b, MSGID_EVT1);
}

/*
 * The install rule: SHA-256 over the install id padded with NULs to one
 * block, source, NUL, event id (values from Python's hashlib); the same
 * inputs give the same output, another install or the legacy rule another
 * one; at most 100 characters.
 */
static void
test_message_id_install(void **state)
{
	char a[NB_SEGMENT_MSGID_LEN], b[NB_SEGMENT_MSGID_LEN];
	const enum nb_segment_rule I = NB_SEGMENT_RULE_INSTALL;
	struct nb_segment_install other, bad;

	(void)state;
	assert_int_equal(msgid(I, &install_a, "acme", "evt_1", a), 0);
	assert_string_equal(a, MSGID1_EVT1);
	assert_int_equal(strlen(a), 68);
	assert_true(strlen(a) <= 100);
	assert_int_equal(msgid(I, &install_a, "acme", "evt_1", b), 0);
	assert_string_equal(a, b);
	assert_string_not_equal(a, MSGID_EVT1);
	assert_int_equal(
	    msgid(I, &install_a, "acme", "evt_01JD8Z3Q4W5E6R7T8Y9U0I1O2P", a),
	    0);
	assert_string_equal(a, MSGID1_CONTRACT);
	/* Another install, the same source name and event id. */
	assert_int_equal(nb_segment_install_init(&other, INSTALL_B), 0);
	assert_string_equal(other.id, INSTALL_B);
	assert_int_equal(msgid(I, &other, "acme", "evt_1", b), 0);
	assert_string_equal(b,
	    "nb1-8398cbfe913c35eb6a2933bad43cb51d21de3fa2632858a6018455a141"
	    "4fb741");
	assert_int_equal(msgid(I, &install_a, "a", "bc", a), 0);
	assert_int_equal(msgid(I, &install_a, "ab", "c", b), 0);
	assert_string_equal(a,
	    "nb1-5d92dfd97e893dbb7502086e7b66a3535f0621a484efe230d1800bba75"
	    "f32aa0");
	assert_string_equal(b,
	    "nb1-7cd4c6b6a6d49fffe7fad245f51ec9182994591d314e9880f77d0978b9"
	    "acb62e");
	/* No install, or a rule this build does not know: no messageId. */
	assert_int_equal(msgid(I, NULL, "acme", "evt_1", a), -1);
	assert_string_equal(a, "");
	assert_int_equal(
	    msgid((enum nb_segment_rule)7, &install_a, "acme", "evt_1", a), -1);
	/* Install ids are 32 lower-case hex digits. */
	memset(&bad, 0x5a, sizeof(bad));
	assert_int_equal(nb_segment_install_init(&bad, NULL), -1);
	assert_int_equal(nb_segment_install_init(&bad, ""), -1);
	assert_int_equal(
	    nb_segment_install_init(&bad, "0123456789abcdef0123456789abcde"),
	    -1);
	assert_int_equal(
	    nb_segment_install_init(&bad, "0123456789abcdef0123456789abcdef0"),
	    -1);
	assert_int_equal(
	    nb_segment_install_init(&bad, "0123456789ABCDEF0123456789abcdef"),
	    -1);
	assert_int_equal(
	    nb_segment_install_init(&bad, "0123456789abcdeg0123456789abcdef"),
	    -1);
	assert_int_equal(bad.id[0], 0x5a);
}

static char *
repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

/* Inputs around the size hashed in one call, and past it (streamed). */
static void
test_message_id_long(void **state)
{
	static const struct {
		char sc; /* source: sn times sc, or "acme" when sc is 0 */
		size_t sn;
		char ic; /* event id: in times ic */
		size_t in;
		const char *want;
	} cases[] = {
	    {0, 0, 'x', 600,
		"nb-022d1a0b837dcb0bf57aa27233ca36d236042c27dd98cf8d0636fc0518"
		"201e51"},
	    {'n', 600, 0, 0,
		"nb-6bd138b788211619f1e287338efadb5f05848610a5d8daa5d725ebdc86"
		"daf9d0"},
	    {'n', 63, 'e', 512,
		"nb-4eb6021203c2b368bccb4adbbb9e4a52a1a0e552582868e5b6c3fdbed9"
		"366a4d"},
	    {'n', 63, 'e', 513,
		"nb-51a5e453fb5552ca51b1153bb5e74997cb4e0cc5368f56742c7f1ddb63"
		"47a6c8"},
	};
	char out[NB_SEGMENT_MSGID_LEN], *id;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *src = cases[i].sc ? repeat(cases[i].sc, cases[i].sn)
					: strdup("acme");
		id = cases[i].ic ? repeat(cases[i].ic, cases[i].in)
				 : strdup("evt_1");

		assert_non_null(src);
		assert_non_null(id);
		assert_int_equal(
		    msgid(NB_SEGMENT_RULE_LEGACY, NULL, src, id, out), 0);
		assert_string_equal(out, cases[i].want);
		free(src);
		free(id);
	}
	/* The install rule streams every input after its first block. */
	id = repeat('x', 600);
	assert_int_equal(
	    msgid(NB_SEGMENT_RULE_INSTALL, &install_a, "acme", id, out), 0);
	assert_string_equal(out,
	    "nb1-cbc7820408d3ac6cecfea10f49a80b78ab8c7942354d48fbe85d941bad"
	    "717e1b");
	free(id);
	id = repeat('n', 600);
	assert_int_equal(
	    msgid(NB_SEGMENT_RULE_INSTALL, &install_a, id, "evt_1", out), 0);
	assert_string_equal(out,
	    "nb1-2fede58194a021362f712fce84a4d751438f61f679522328e1a75887f6"
	    "d67c5b");
	free(id);
}

static const char contract_event[] =
    "{\n"
    "  \"id\": \"evt_01JD8Z3Q4W5E6R7T8Y9U0I1O2P\",\n"
    "  \"type\": \"email.clicked\",\n"
    "  \"occurred_at\": \"2026-11-28T09:59:58.123Z\",\n"
    "  \"subscriber\": { \"uid\": \"u_42\", \"email\": \"ada@example.com\" },\n"
    "  \"message\": { \"id\": \"msg_77\", \"subject\": \"Welcome aboard\", "
    "\"campaign_id\": \"cmp_9\", \"campaign_name\": \"Onboarding\" },\n"
    "  \"link\": { \"id\": \"lnk_3\", \"url\": \"https://example.com/pricing\" "
    "},\n"
    "  \"bounce\": { \"type\": \"hard\", \"reason\": \"550 5.1.1 user "
    "unknown\" },\n"
    "  \"list\": { \"id\": \"lst_1\", \"name\": \"Newsletter\" },\n"
    "  \"client\": { \"ip\": \"203.0.113.9\", \"user_agent\": \"Mozilla/5.0 "
    "(X11; Linux x86_64)\" },\n"
    "  \"properties\": { \"any\": \"extra\", \"fields\": 1 }\n"
    "}\n";

static const char contract_message[] =
    "{\n"
    "  \"type\": \"track\",\n"
    "  \"event\": \"Email Link Clicked\",\n"
    "  \"userId\": \"u_42\",\n"
    "  \"messageId\": \"" MSGID_CONTRACT "\",\n"
    "  \"timestamp\": \"2026-11-28T09:59:58.123Z\",\n"
    "  \"properties\": {\n"
    "    \"email_id\": \"msg_77\", \"email_subject\": \"Welcome aboard\",\n"
    "    \"campaign_id\": \"cmp_9\", \"campaign_name\": \"Onboarding\",\n"
    "    \"link_id\": \"lnk_3\", \"link_url\": "
    "\"https://example.com/pricing\",\n"
    "    \"bounce_type\": \"hard\", \"bounce_reason\": \"550 5.1.1 user "
    "unknown\",\n"
    "    \"list_id\": \"lst_1\", \"list_name\": \"Newsletter\",\n"
    "    \"any\": \"extra\", \"fields\": 1\n"
    "  },\n"
    "  \"context\": {\n"
    "    \"integration\": { \"name\": \"nudgespot\", \"version\": \"1.0.0\" "
    "},\n"
    "    \"library\": { \"name\": \"nudgebridge\", \"version\": \"" NB_VERSION
    "\" },\n"
    "    \"traits\": { \"email\": \"ada@example.com\" },\n"
    "    \"ip\": \"203.0.113.9\",\n"
    "    \"userAgent\": \"Mozilla/5.0 (X11; Linux x86_64)\"\n"
    "  },\n"
    "  \"integrations\": { \"Nudgespot\": false }\n"
    "}\n";

/* The contract's example under both rules: only the messageId differs. */
static void
test_contract_example(void **state)
{
	struct nb_segment_origin orgs[2] = {
	    legacy(&src_email), installed(&src_email)};
	const char *ids[2] = {MSGID_CONTRACT, MSGID1_CONTRACT};
	json_t *got, *want, *reparsed;
	char *text = NULL, *wtext;
	size_t len = 0, k;
	const char *err = NULL;

	(void)state;
	for (k = 0; k < 2; k++) {
		want = json_loads(contract_message, 0, NULL);
		assert_non_null(want);
		assert_int_equal(
		    json_object_set_new(want, "messageId", json_string(ids[k])),
		    0);
		got = nb_segment_track(&src_email.mapping, &orgs[k],
		    contract_event, strlen(contract_event), &err);
		assert_non_null(got);
		assert_true(json_equal(got, want));
		json_decref(got);

		/* The text form: compact, same content, contract key order. */
		assert_int_equal(nb_segment_track_text(&src_email.mapping,
				     &orgs[k], contract_event,
				     strlen(contract_event), &text, &len, &err),
		    0);
		assert_int_equal(len, strlen(text));
		assert_null(strchr(text, '\n'));
		assert_non_null(reparsed = json_loads(text, 0, NULL));
		assert_true(json_equal(reparsed, want));
		wtext = json_dumps(want, JSON_COMPACT);
		assert_string_equal(text, wtext);
		assert_true(
		    strncmp(text, "{\"type\":\"track\",\"event\":", 24) == 0);
		free(wtext);
		free(text);
		json_decref(reparsed);
		json_decref(want);
	}
}

/* "\u0000" inside free-form properties survives the mapping. */
static void
test_nul_in_properties(void **state)
{
	const char *ev = "{\"id\":\"evt_1\",\"type\":\"x\",\"occurred_at\":"
			 "\"" TS "\",\"subscriber\":{\"uid\":\"u\"},"
			 "\"properties\":{\"k\":\"a\\u0000b\"}}";
	char *text = NULL;
	size_t len = 0;
	struct nb_segment_origin o = installed(&src_email);

	(void)state;
	assert_int_equal(nb_segment_track_text(&src_email.mapping, &o, ev,
			     strlen(ev), &text, &len, NULL),
	    0);
	assert_non_null(strstr(text, "\"k\":\"a\\u0000b\""));
	free(text);
}

/*
 * Differential check of one input under src: when the direct encoder takes
 * it, the jansson path (nb_segment_track() dumped compactly) must accept it
 * too and write the same bytes; whatever path nb_segment_track_text()
 * takes, it must agree with the jansson path.  Returns 1 when the direct
 * encoder took the input.
 */
static int
differ_one(const struct nb_source *src, const struct nb_segment_origin *o,
    const char *raw, size_t len, const char *what)
{
	char *direct = NULL, *slow = NULL, *text = NULL;
	size_t dlen = 0, tlen = 0;
	const char *err = NULL;
	json_t *m;
	int took;

	took = nb_segment_track_text_direct(
		   &src->mapping, o, raw, len, &direct, &dlen) == 0;
	if ((m = nb_segment_track(&src->mapping, o, raw, len, &err)) != NULL) {
		slow = json_dumps(m, JSON_COMPACT);
		assert_non_null(slow);
		json_decref(m);
	}
	if (took) {
		if (slow == NULL)
			fail_msg("%s (anon %d, rule %d): direct encoder took "
				 "what the jansson path refuses (%s)",
			    what, (int)src->mapping.anon, (int)o->rule,
			    err != NULL ? err : "?");
		if (dlen != strlen(direct) || strcmp(direct, slow) != 0)
			fail_msg("%s (anon %d, rule %d):\n direct: "
				 "%s\njansson: %s",
			    what, (int)src->mapping.anon, (int)o->rule, direct,
			    slow);
	}
	if (nb_segment_track_text(
		&src->mapping, o, raw, len, &text, &tlen, NULL) == 0) {
		assert_non_null(slow);
		assert_int_equal(tlen, strlen(slow));
		assert_string_equal(text, slow);
	} else {
		assert_null(slow);
		assert_null(text);
	}
	free(text);
	free(direct);
	free(slow);
	return took;
}

/* differ_one() under both messageId rules; they must agree on taking. */
static int
differ(
    const struct nb_source *src, const char *raw, size_t len, const char *what)
{
	struct nb_segment_origin l = legacy(src), i = installed(src);
	int took = differ_one(src, &l, raw, len, what);

	assert_int_equal(differ_one(src, &i, raw, len, what), took);
	return took;
}

/*
 * Both anonymous_id modes, a source with overridden event names and one
 * with a long name: NSRCS sources.
 */
#define NSRCS 4

static int
differ_all(const char *raw, size_t len, const char *what)
{
	const struct nb_source *srcs[NSRCS] = {
	    &src_email, &src_sha, &src_override, &src_long};
	size_t i;
	int took = 0;

	for (i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++)
		took += differ(srcs[i], raw, len, what);
	return took;
}

static void
test_direct_matches_jansson_table(void **state)
{
	static const struct {
		const char *extra; /* more members of the event */
		int direct;	   /* the direct encoder must take it */
	} cases[] = {
	    {"", 1},
	    {",'properties':{}", 1},
	    {",'properties':{'a':{},'b':[],'c':{'d':{'e':[1,{}]}}}", 1},
	    {",'properties':{'n':0,'m':-12,'big':9223372036854775807,"
	     "'small':-9223372036854775808}",
		1},
	    {",'properties':{'t':true,'f':false,'z':null,'s':''}", 1},
	    {",'properties':{'u':'\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80'}", 1},
	    {",'properties':{'\xc3\xa9':'k\xc3\xa9y'}", 1},
	    {",'properties':{'email_id':'free','list':['a',1,null]}", 1},
	    {",'message':{'id':'m1','subject':'Hi'},'link':{'url':'u'}", 1},
	    {",'client':{'ip':'203.0.113.9','user_agent':'UA/1'}", 1},
	    {",'client':{}", 1},
	    {",'message':{},'link':{},'campaign':{}", 1},
	    /* Whitespace inside free-form values: written compact. */
	    {",'properties':{'a': { 'b' : [ 1 , 2 ] , 'c':{ } },"
	     "'d':[ {'e':1},[ ] ],'f':{'g':[1,{'h':null}]},'i':\t'j' }",
		1},
	    {",'properties':{\n'a':{'b':{'c':[1,\r\n2]}}}", 1},
	    /* Strings across the eight-byte steps of the scanner. */
	    {",'properties':{'s7':'abcdefg','s8':'abcdefgh','s9':'abcdefghi',"
	     "'s16':'abcdefghijklmnop','u':'abcdefg\xc3\xa9hijklmno"
	     "\xf0\x9f\x98\x80rstuvwxyz\xe2\x82\xac','t':'\x7f~ /0123456789'}",
		1},
	    {",'client':{'ip':'2001:db8:0:0:0:0:0:1','user_agent':"
	     "'Mozilla/5.0 (X11; Linux x86_64) \xc3\xa9\xc3\xa9'},"
	     "'link':{'url':'https://example.com/a/b/c?utm_source=x&y=z'}",
		1},
	    /* Keys alike in length and first and last byte, all distinct. */
	    {",'properties':{'axb':1,'ayb':2,'a':3,'':4,'ab':5,'ba':6}", 1},
	    {",'message':{'ids':'x','i':'y','Id':'z','campaign_idx':'c',"
	     "'subject':'s'},'list':{'nam':'n','names':'m','iD':'i'}",
		1},
	    /* Unknown top-level keys as long as known ones. */
	    {",'ix':1,'typo':2,'lisp':3,'bounces':4,'clienT':5,'messages':6,"
	     "'subscribex':7,'propertiez':8,'occurred_az':9,'lint':{'id':'l'}",
		1},
	    /* Second-level objects that are not objects, leaves that are not
	       non-empty strings. */
	    {",'message':['id'],'link':'x','bounce':null,'list':7,'client':"
	     "true",
		1},
	    {",'message':{'id':1,'subject':'','campaign_id':{},"
	     "'campaign_name':[]},'client':{'ip':null,'user_agent':false},"
	     "'bounce':{'type':'t','reason':{'r':'x'}}",
		1},
	    /* Free-form keys named like mapped properties that are absent. */
	    {",'properties':{'link_id':'free','bounce_type':'p','list_id':1},"
	     "'link':{'url':'u'},'list':{'id':'l'}",
		1},
	    {",'properties':{'n':{'x':1,'x':2}}", 0},
	    {",'message':{'id':'a','id':'b'}", 0},
	    {",'list':{'name':'a','id':'1','name':'b'}", 0},
	    {",'id':'evt_again'", 0},
	    {",'properties':{'s':'abcdefghij\\u0041'}", 0},
	    {",'properties':{'s':'abcdefghijk\x01'}", 0},
	    {",'properties':{'s':'abcdefghijk\x7f\xc3('}", 0},
	    {",'properties':{'s':'abcdefghijk\xed\xa0\x80'}", 0},
	    {",'properties':{'s':'abcdefghijklmnopqrstuvw", 0},
	    /* What the direct encoder leaves to jansson, or may. */
	    {",'properties':{'q':'a\\\"b\\\\c\\/d'}", 0},
	    {",'properties':{'c':'\\b\\f\\n\\r\\t\\u0001\\u001f'}", 0},
	    {",'properties':{'u':'\\u00e9\\ud83d\\ude00'}", 0},
	    {",'properties':{'r':1.5,'e':1e3,'E':-2.5E-3}", 0},
	    {",'properties':{'z':-0}", 0},
	    {",'properties':{'d':1,'d':2}", 0},
	    {",'properties':{'huge':123456789012345678901234567890}", 0},
	    {",'properties':[1,2]", 0},
	    {",'properties':'flat'", 0},
	    {",'properties':{'deep':[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	     "1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
		0},
	};
	static const char *const heads[] = {
	    "{'id':'evt_1','type':'email.opened','occurred_at':'" TS "',"
	    "'subscriber':{'uid':'u_42','email':'Ada@Example.COM'}",
	    "{'id':'evt_2','type':'email.unsubscribed','occurred_at':"
	    "'2026-11-28T10:59:58+01:00','subscriber':{'email':'ada@x.io'}",
	    "{'id':'evt_3','type':'custom.x','occurred_at':"
	    "'2026-11-28T09:59:58Z','subscriber':{'uid':'u'}",
	    "{ 'id' : 'evt_4' , 'type':'email.sent','occurred_at':'" TS "',"
	    "'subscriber':{'uid':'u','email':''}",
	};
	char what[64];
	size_t i, h;
	int took;

	(void)state;
	for (h = 0; h < sizeof(heads) / sizeof(heads[0]); h++) {
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			char buf[1024], *ev;
			int len;

			len = snprintf(buf, sizeof(buf), "%s%s}", heads[h],
			    cases[i].extra);
			assert_true(len > 0 && (size_t)len < sizeof(buf));
			ev = testlib_dq(buf);
			snprintf(what, sizeof(what), "head %zu case %zu", h, i);
			took = differ_all(ev, strlen(ev), what);
			if (cases[i].direct && took != NSRCS)
				fail_msg("%s: the direct encoder declined: %s",
				    what, ev);
			free(ev);
		}
	}
}

/* The concatenation of the NULL-terminated parts, through testlib_dq(). */
static char *
event_of(const char *part, ...)
{
	va_list ap;
	const char *p;
	size_t len = 0;
	char *buf, *ev;

	va_start(ap, part);
	for (p = part; p != NULL; p = va_arg(ap, const char *))
		len += strlen(p);
	va_end(ap);
	assert_non_null(buf = malloc(len + 1));
	buf[0] = '\0';
	len = 0;
	va_start(ap, part);
	for (p = part; p != NULL; p = va_arg(ap, const char *)) {
		memcpy(buf + len, p, strlen(p) + 1);
		len += strlen(p);
	}
	va_end(ap);
	ev = testlib_dq(buf);
	free(buf);
	return ev;
}

/*
 * occurred_at either copied (already the canonical form) or reformatted;
 * each valid one must be taken by the direct encoder.
 */
static void
test_direct_timestamps(void **state)
{
	static const struct {
		const char *at;
		int valid;
	} cases[] = {
	    {"2026-11-28T09:59:58.123Z", 1},
	    {"2026-11-28T09:59:58.000Z", 1},
	    {"2026-12-31T23:59:60.000Z", 1}, /* leap second: next minute */
	    {"2026-12-31T23:59:60.999Z", 1},
	    {"2026-11-28t09:59:58.123Z", 1},
	    {"2026-11-28T09:59:58.123z", 1},
	    {"2026-11-28 09:59:58.123Z", 1},
	    {"2026-11-28T09:59:58.12Z", 1},
	    {"2026-11-28T09:59:58.1234Z", 1},
	    {"2026-11-28T09:59:58Z", 1},
	    {"2026-11-28T09:59:58.123+00:00", 1},
	    {"2026-11-28T10:59:58.123+01:00", 1},
	    {"2024-02-29T00:00:00.000Z", 1},
	    {"0000-01-01T00:00:00.000Z", 1},
	    {"0000-01-01T00:00:00.000+01:00", 1},
	    {"9999-12-31T23:59:59.999Z", 1},
	    {"9999-12-31T23:59:59.999-01:00", 1},
	    {"2026-02-29T09:59:58.123Z", 0},
	    {"2026-11-28T24:00:00.000Z", 0},
	    {"2026-11-28T09:59:61.000Z", 0},
	    {"2026-11-28T09:59:58.123X", 0},
	    {"2026-11-28X09:59:58.123Z", 0},
	    {"2026-11-28T09:59:58.Z", 0},
	    {"", 0},
	};
	size_t i;
	char *ev;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ev = event_of(
		    "{'id':'evt_1','type':'email.sent','occurred_at':'",
		    cases[i].at, "'," SUB "}", NULL);
		if (differ_all(ev, strlen(ev), cases[i].at) !=
		    (cases[i].valid ? NSRCS : 0))
			fail_msg("direct encoder and %s: %s",
			    cases[i].valid ? "valid" : "invalid", ev);
		free(ev);
	}
}

/* Event names from the source's table, escaped as jansson escapes them. */
static void
test_direct_event_names(void **state)
{
	static const char *const types[] = {"custom.q", "custom.x",
	    "email.unsubscribed", "email.opened", "\xc3\xa9.x/y", "t",
	    "a b c d e f g h i j k l m n o p"};
	size_t i;
	char *ev;

	(void)state;
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		ev = event_of("{'id':'evt_1','type':'", types[i],
		    "','occurred_at':'" TS "'," SUB "}", NULL);
		if (differ_all(ev, strlen(ev), types[i]) != NSRCS)
			fail_msg("the direct encoder declined %s", ev);
		free(ev);
	}
}

/* Ids, types and addresses at and past the direct encoder's limits. */
static void
test_direct_long_strings(void **state)
{
	char *a511 = repeat('a', 511), *a512 = repeat('a', 512);
	char *m1024 = repeat('m', 1024), *m1025 = repeat('m', 1025);
	char *ev;

	(void)state;
	ev = event_of("{'id':'", a511, "','type':'", a511,
	    "','occurred_at':'" TS "'," SUB "}", NULL);
	assert_int_equal(differ_all(ev, strlen(ev), "511"), NSRCS);
	free(ev);
	ev = event_of("{'id':'", a512,
	    "','type':'x','occurred_at':'" TS "'," SUB "}", NULL);
	assert_int_equal(differ_all(ev, strlen(ev), "id 512"), 0);
	free(ev);
	ev = event_of("{'id':'e','type':'", a512,
	    "','occurred_at':'" TS "'," SUB "}", NULL);
	assert_int_equal(differ_all(ev, strlen(ev), "type 512"), 0);
	free(ev);
	/* An address to hash: up to 1024 bytes in sha256 mode. */
	ev = event_of("{'id':'e','type':'x','occurred_at':'" TS
		      "','subscriber':{'email':'",
	    m1024, "'}}", NULL);
	assert_int_equal(differ_all(ev, strlen(ev), "email 1024"), NSRCS);
	free(ev);
	ev = event_of("{'id':'e','type':'x','occurred_at':'" TS
		      "','subscriber':{'email':'",
	    m1025, "'}}", NULL);
	/* Only the two sources that send the address itself. */
	assert_int_equal(differ_all(ev, strlen(ev), "email 1025"), 2);
	free(ev);
	/* With a uid the address is not hashed. */
	ev = event_of("{'id':'e','type':'x','occurred_at':'" TS
		      "','subscriber':{'uid':'u','email':'",
	    m1025, "'}}", NULL);
	assert_int_equal(differ_all(ev, strlen(ev), "uid, email 1025"), NSRCS);
	free(ev);
	free(a511);
	free(a512);
	free(m1024);
	free(m1025);
}

/* n members 'k0':0,'k1':1,... into buf. */
static void
members_of(char *buf, size_t cap, size_t n)
{
	size_t i, off = 0;
	int w;

	buf[0] = '\0';
	for (i = 0; i < n; i++) {
		w = snprintf(buf + off, cap - off, "%s'k%zu':%zu",
		    i > 0 ? "," : "", i, i);
		assert_true(w > 0 && (size_t)w < cap - off);
		off += (size_t)w;
	}
}

/* Objects up to the direct encoder's width, and one member more. */
static void
test_direct_wide_objects(void **state)
{
	char members[64 * 16], *ev;
	size_t n;

	(void)state;
	for (n = 63; n <= 65; n++) {
		members_of(members, sizeof(members), n);
		ev = event_of("{'id':'e','type':'x','occurred_at':'" TS "'," SUB
			      ",'properties':{",
		    members, "}}", NULL);
		assert_int_equal(
		    differ_all(ev, strlen(ev), "wide"), n <= 64 ? NSRCS : 0);
		free(ev);
		/* The top level: its four members and n - 4 more. */
		members_of(members, sizeof(members), n - 4);
		ev = event_of("{'id':'e','type':'x','occurred_at':'" TS "'," SUB
			      ",",
		    members, "}", NULL);
		assert_int_equal(differ_all(ev, strlen(ev), "wide top"),
		    n <= 64 ? NSRCS : 0);
		free(ev);
	}
}

/* Differential check of every file of one fuzz corpus; returns the count. */
static size_t
differ_corpus(const char *name, size_t *took)
{
	char dir[512], path[1024];
	struct dirent *de;
	size_t files = 0, len;
	DIR *d;
	FILE *fp;
	char *buf;
	json_t *doc, *el;
	size_t i;
	int n;

	n = snprintf(dir, sizeof(dir), "%s/%s", NB_TEST_FUZZ_CORPUS, name);
	assert_true(n > 0 && (size_t)n < sizeof(dir));
	if ((d = opendir(dir)) == NULL)
		fail_msg("cannot open %s", dir);
	assert_non_null(buf = malloc(1 << 20));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		n = snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		assert_true(n > 0 && (size_t)n < sizeof(path));
		assert_non_null(fp = fopen(path, "rb"));
		len = fread(buf, 1, (1 << 20) - 1, fp);
		assert_int_equal(ferror(fp), 0);
		fclose(fp);
		buf[len] = '\0';
		*took += (size_t)differ_all(buf, len, path);
		/* A webhook body: each event of the array as stored. */
		doc = json_loadb(buf, len, JSON_ALLOW_NUL, NULL);
		json_array_foreach(doc, i, el)
		{
			char *text = json_dumps(el, JSON_COMPACT);

			if (text != NULL)
				*took += (size_t)differ_all(
				    text, strlen(text), path);
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
test_direct_matches_jansson_corpus(void **state)
{
	size_t took = 0;

	(void)state;
	assert_true(differ_corpus("segment", &took) > 0);
	assert_true(differ_corpus("nudgespot", &took) > 0);
	/* The corpora hold valid events: the direct encoder must see some. */
	assert_true(took > 0);
	printf("direct encoder took %zu corpus inputs\n", took);
}

static int
setup(void **state)
{
	(void)state;
	if (sodium_init() < 0 ||
	    nb_segment_install_init(&install_a, INSTALL_A) == -1)
		return -1;
	src_override.mapping.event_names = json_pack("{s:s,s:s,s:s,s:s}",
	    "email.unsubscribed", "Email Unsubscribed", "custom.x", "Custom X",
	    "custom.q", "Say \"hi\"\n\t\x01\x1f\x7f \xc3\xa9 \\ / \b\f\r",
	    "email.opened", "Opened \xf0\x9f\x98\x80");
	memset(long_name, 'n', sizeof(long_name) - 1);
	src_long.mapping.event_names = json_object();
	return src_override.mapping.event_names == NULL ||
		src_long.mapping.event_names == NULL
	    ? -1
	    : 0;
}

static int
teardown(void **state)
{
	(void)state;
	json_decref(src_override.mapping.event_names);
	json_decref(src_long.mapping.event_names);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_overridden_name),
	    cmocka_unit_test(test_identity),
	    cmocka_unit_test(test_properties_precedence),
	    cmocka_unit_test(test_absent_inputs),
	    cmocka_unit_test(test_timestamps),
	    cmocka_unit_test(test_bad_input),
	    cmocka_unit_test(test_message_id),
	    cmocka_unit_test(test_message_id_install),
	    cmocka_unit_test(test_message_id_long),
	    cmocka_unit_test(test_contract_example),
	    cmocka_unit_test(test_nul_in_properties),
	    cmocka_unit_test(test_direct_matches_jansson_table),
	    cmocka_unit_test(test_direct_timestamps),
	    cmocka_unit_test(test_direct_event_names),
	    cmocka_unit_test(test_direct_long_strings),
	    cmocka_unit_test(test_direct_wide_objects),
	    cmocka_unit_test(test_direct_matches_jansson_corpus),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
