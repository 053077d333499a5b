/* SPDX-License-Identifier: ISC */
/*
 * test_person: the index keys, the match and the audit digest, as tables:
 * an address in any ASCII case is one key and matches, a uid only as
 * given; a member that breaks its rule (control characters, not a string,
 * a subscriber that is not an object) has no key and matches nothing; the
 * keys of stored text are the parser's; the digest is SHA-256 of the
 * lower-cased address (checked against a known value).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <sodium.h>

#include "nudgebridge/nudgespot.h"
#include "nudgebridge/person.h"

static void
test_keys(void **state)
{
	char longer[600];
	char upper[600];
	size_t i;

	(void)state;
	assert_int_equal(nb_person_key_email("Ada@Example.COM", 15),
	    nb_person_key_email("ada@example.com", 15));
	assert_int_not_equal(nb_person_key_email("ada@example.com", 15),
	    nb_person_key_email("ada@example.co", 14));
	assert_int_not_equal(
	    nb_person_key_uid("U_1", 3), nb_person_key_uid("u_1", 3));
	/* An address and a uid that are the same string differ. */
	assert_int_not_equal(nb_person_key_uid("ada@example.com", 15),
	    nb_person_key_email("ada@example.com", 15));
	assert_int_not_equal(nb_person_key_email("", 0), 0);
	/* Long addresses (hashed in chunks) fold case too. */
	for (i = 0; i < sizeof(longer); i++) {
		longer[i] = (char)('a' + i % 26);
		upper[i] = (char)('A' + i % 26);
	}
	assert_int_equal(nb_person_key_email(longer, sizeof(longer)),
	    nb_person_key_email(upper, sizeof(upper)));
	assert_int_not_equal(nb_person_key_email(longer, sizeof(longer)),
	    nb_person_key_email(longer, sizeof(longer) - 1));
	/* Non-ASCII letters are compared as bytes. */
	assert_int_not_equal(nb_person_key_email("\xc3\xa9@x", 4),
	    nb_person_key_email("\xc3\x89@x", 4));
}

static void
test_match(void **state)
{
	static const struct {
		const char *raw;
		const char *email, *uid;
		int hit;
	} cases[] = {
	    {"{\"subscriber\":{\"email\":\"Ada@Example.com\"}}",
		"ada@EXAMPLE.com", NULL, 1},
	    {"{\"subscriber\":{\"email\":\"ada@example.com\"}}",
		"ada@example.co", NULL, 0},
	    {"{\"subscriber\":{\"uid\":\"u_1\"}}", NULL, "u_1", 1},
	    {"{\"subscriber\":{\"uid\":\"u_1\"}}", NULL, "U_1", 0},
	    {"{\"subscriber\":{\"uid\":\"u_1\",\"email\":\"a@b\"}}", "a@b",
		NULL, 1},
	    /* Escapes are decoded as the parser decodes them. */
	    {"{\"subscriber\":{\"email\":\"ada\\u0040example.com\"}}",
		"ada@example.com", NULL, 1},
	    /* A broken rule is no address, no uid. */
	    {"{\"subscriber\":{\"email\":\"ada@example.com\\n\"}}",
		"ada@example.com\n", NULL, 0},
	    {"{\"subscriber\":{\"uid\":42}}", NULL, "42", 0},
	    {"{\"subscriber\":\"ada@example.com\"}", "ada@example.com", NULL,
		0},
	    {"{\"email\":\"ada@example.com\"}", "ada@example.com", NULL, 0},
	    {"not json", "ada@example.com", NULL, 0},
	    {"[{\"subscriber\":{\"uid\":\"u\"}}]", NULL, "u", 0},
	};
	struct nb_person p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p.email = cases[i].email;
		p.uid = cases[i].uid;
		if (nb_person_match(&p, cases[i].raw, strlen(cases[i].raw)) !=
		    cases[i].hit)
			fail_msg("case %zu: %s", i, cases[i].raw);
	}
}

/* The keys of stored text are those the parser computed. */
static void
test_keys_of(void **state)
{
	static const char *const bodies[] = {
	    "{\"id\":\"e\",\"type\":\"t\",\"occurred_at\":"
	    "\"2026-11-28T09:59:58Z\",\"subscriber\":{\"uid\":\"u_42\","
	    "\"email\":\"Ada@Example.com\"}}",
	    "{\"id\":\"e\",\"subscriber\":{\"email\":\"ada\\u0040x.org\"}}",
	    "{\"id\":\"e\",\"subscriber\":{\"uid\":\"\"}}",
	    "{\"id\":\"e\",\"subscriber\":{\"uid\":\"u\\u0001\"}}",
	    "{\"id\":\"e\"}",
	};
	struct nb_payload p;
	int64_t ek, uk;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(
		    nb_nudgespot_parse(&p, bodies[i], strlen(bodies[i])),
		    NB_NUDGESPOT_OK);
		nb_person_keys_of(
		    p.events[0].raw, p.events[0].rawlen, &ek, &uk);
		assert_int_equal(ek, p.events[0].email_key);
		assert_int_equal(uk, p.events[0].uid_key);
		nb_nudgespot_clear(&p);
	}
	nb_person_keys_of(bodies[0], strlen(bodies[0]), &ek, &uk);
	assert_int_equal(ek, nb_person_key_email("ada@example.com", 15));
	assert_int_equal(uk, nb_person_key_uid("u_42", 4));
	nb_person_keys_of(bodies[2], strlen(bodies[2]), &ek, &uk);
	assert_int_equal(uk, 0);
	nb_person_keys_of(bodies[3], strlen(bodies[3]), &ek, &uk);
	assert_int_equal(uk, 0);
}

#define UID_DIGEST                                                             \
	"98de45ac415e9b4a497194b8d6004e4a54cb94180c57417226810e5d9745dfc1"

static void
test_digest(void **state)
{
	struct nb_person p = {"Ada@Example.COM", NULL};
	char out[NB_PERSON_DIGEST_LEN];

	(void)state;
	/* sha256("ada@example.com") */
	nb_person_digest(&p, out);
	assert_string_equal(out,
	    "b5fc85e55755f9e0d030a10ab4429b6b2944855f9a0d60077fe832becbc41d72");
	/* A uid as given: sha256("U_1") */
	p.email = NULL;
	p.uid = "U_1";
	nb_person_digest(&p, out);
	assert_string_equal(out, UID_DIGEST);
}

static void
test_value_valid(void **state)
{
	(void)state;
	assert_int_equal(nb_person_value_valid("ada@example.com"), 0);
	assert_int_equal(nb_person_value_valid("\xc3\xa9"), 0);
	assert_int_equal(nb_person_value_valid(""), -1);
	assert_int_equal(nb_person_value_valid(NULL), -1);
	assert_int_equal(nb_person_value_valid("a\tb"), -1);
	assert_int_equal(nb_person_value_valid("a\x7f"), -1);
	assert_int_equal(nb_person_value_valid("\xc3"), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_keys_of),
	    cmocka_unit_test(test_digest),
	    cmocka_unit_test(test_value_valid),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
