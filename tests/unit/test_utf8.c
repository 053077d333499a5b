/* SPDX-License-Identifier: ISC */
/*
 * test_utf8: nb_utf8_len() against jansson's rule, sequence by sequence.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "nudgebridge/utf8.h"

static const struct {
	const char *bytes;
	size_t len;
	size_t want;
} cases[] = {
    {"a", 1, 1},
    {"\x7f", 1, 1},
    {"\xc3\xa9", 2, 2},		/* U+00E9 */
    {"\xdf\xbf", 2, 2},		/* U+07FF */
    {"\xe0\xa0\x80", 3, 3},	/* U+0800 */
    {"\xe2\x82\xac", 3, 3},	/* U+20AC */
    {"\xed\x9f\xbf", 3, 3},	/* U+D7FF, below the surrogates */
    {"\xee\x80\x80", 3, 3},	/* U+E000, above them */
    {"\xf0\x90\x80\x80", 4, 4}, /* U+10000 */
    {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF */
    {"\x80", 1, 0},		/* stray continuation */
    {"\xbf", 1, 0},
    {"\xc0\xaf", 2, 0}, /* overlong '/' */
    {"\xc1\xbf", 2, 0},
    {"\xe0\x9f\xbf", 3, 0},	/* overlong U+07FF */
    {"\xf0\x8f\xbf\xbf", 4, 0}, /* overlong U+FFFF */
    {"\xed\xa0\x80", 3, 0},	/* U+D800 */
    {"\xed\xbf\xbf", 3, 0},	/* U+DFFF */
    {"\xf4\x90\x80\x80", 4, 0}, /* U+110000 */
    {"\xf5\x80\x80\x80", 4, 0},
    {"\xff", 1, 0},
    {"\xc3", 1, 0}, /* cut short */
    {"\xe2\x82", 2, 0},
    {"\xf0\x90\x80", 3, 0},
    {"\xc3\x28", 2, 0}, /* not a continuation */
    {"\xe2\x28\xac", 3, 0},
    {"\xf0\x90\x28\x80", 4, 0},
};

static void
test_table(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const unsigned char *p = (const unsigned char *)cases[i].bytes;

		if (nb_utf8_len(p, p + cases[i].len) != cases[i].want)
			fail_msg("case %zu: got %zu, want %zu", i,
			    nb_utf8_len(p, p + cases[i].len), cases[i].want);
	}
}

/* The end bounds the read: a valid sequence one byte past end is cut. */
static void
test_end_bounds(void **state)
{
	const unsigned char euro[] = "\xe2\x82\xac";

	(void)state;
	assert_int_equal(nb_utf8_len(euro, euro + 3), 3);
	assert_int_equal(nb_utf8_len(euro, euro + 2), 0);
	assert_int_equal(nb_utf8_len(euro, euro + 1), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_end_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
