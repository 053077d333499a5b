/* SPDX-License-Identifier: ISC */
/*
 * test_filter: drop_types parsed (sorted, repeats folded, bad entries
 * named by index) and applied: the listed types of valid events are taken
 * out in order, quarantined events never, whatever their type.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "nudgebridge/filter.h"
#include "nudgebridge/nudgespot.h"

static void
test_parse(void **state)
{
	struct nb_filter f;
	char err[160];
	json_t *v;

	(void)state;
	v = json_loads(
	    "[\"email.opened\",\"email.clicked\",\"email.opened\"]", 0, NULL);
	assert_int_equal(nb_filter_parse(&f, v, err, sizeof(err)), 0);
	assert_int_equal(f.ntypes, 2);
	assert_int_equal(f.set, 1);
	assert_true(nb_filter_drops(&f, "email.opened"));
	assert_true(nb_filter_drops(&f, "email.clicked"));
	assert_false(nb_filter_drops(&f, "email.sent"));
	assert_false(nb_filter_drops(&f, NULL));
	nb_filter_clear(&f);
	assert_false(nb_filter_drops(&f, "email.opened"));
	json_decref(v);

	v = json_loads("[]", 0, NULL);
	assert_int_equal(nb_filter_parse(&f, v, err, sizeof(err)), 0);
	assert_int_equal(f.ntypes, 0);
	assert_int_equal(f.set, 1);
	nb_filter_clear(&f);
	json_decref(v);

	v = json_loads("[\"email.opened\", 3]", 0, NULL);
	assert_int_equal(nb_filter_parse(&f, v, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "[1]"));
	json_decref(v);
	v = json_loads("[\"a\\u0001b\"]", 0, NULL);
	assert_int_equal(nb_filter_parse(&f, v, err, sizeof(err)), -1);
	json_decref(v);
	v = json_loads("[\"\"]", 0, NULL);
	assert_int_equal(nb_filter_parse(&f, v, err, sizeof(err)), -1);
	json_decref(v);
	v = json_loads("\"email.opened\"", JSON_DECODE_ANY, NULL);
	assert_int_equal(nb_filter_parse(&f, v, err, sizeof(err)), -1);
	json_decref(v);
}

static void
test_apply(void **state)
{
	static const char body[] =
	    "[{\"id\":\"1\",\"type\":\"email.opened\",\"occurred_at\":"
	    "\"2026-11-28T09:59:58Z\",\"subscriber\":{\"uid\":\"u\"}},"
	    "{\"id\":\"2\",\"type\":\"email.sent\",\"occurred_at\":"
	    "\"2026-11-28T09:59:58Z\",\"subscriber\":{\"uid\":\"u\"}},"
	    "{\"id\":\"3\",\"type\":\"email.opened\"},"
	    "{\"id\":\"4\",\"type\":\"email.opened\",\"occurred_at\":"
	    "\"2026-11-28T09:59:58Z\",\"subscriber\":{\"uid\":\"u\"}}]";
	struct nb_filter f;
	struct nb_payload p;
	char err[160];
	json_t *v;

	(void)state;
	v = json_loads("[\"email.opened\"]", 0, NULL);
	assert_int_equal(nb_filter_parse(&f, v, err, sizeof(err)), 0);
	json_decref(v);
	assert_int_equal(
	    nb_nudgespot_parse(&p, body, strlen(body)), NB_NUDGESPOT_OK);
	assert_int_equal(p.nevents, 4);
	/* 1 and 4 go; 3 is quarantined (no occurred_at): it stays. */
	assert_int_equal(nb_filter_apply(&f, &p), 2);
	assert_int_equal(p.nevents, 2);
	assert_string_equal(p.events[0].id, "2");
	assert_string_equal(p.events[1].id, "3");
	assert_non_null(p.events[1].error);
	/* Nothing left to drop. */
	assert_int_equal(nb_filter_apply(&f, &p), 0);
	nb_nudgespot_clear(&p);
	nb_filter_clear(&f);
	/* A zeroed filter drops nothing. */
	assert_int_equal(
	    nb_nudgespot_parse(&p, body, strlen(body)), NB_NUDGESPOT_OK);
	assert_int_equal(nb_filter_apply(&f, &p), 0);
	assert_int_equal(p.nevents, 4);
	nb_nudgespot_clear(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_apply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
