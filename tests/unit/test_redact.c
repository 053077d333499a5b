/* SPDX-License-Identifier: ISC */
/*
 * test_redact: credentials in every form they come back in, as a table:
 * the write key itself, its base64 and HTTP Basic forms (standard and
 * URL-safe), Authorization values in headers and in JSON, Bearer and
 * Basic tokens, JWTs, a secret cut off at the end of a truncated answer;
 * and the rest of the text kept, printable, within the output size.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <sodium.h>

#include "nudgebridge/redact.h"

#define WK "wk_live_Zx9+/Qq" /* a write key with base64-unsafe bytes */

static void
test_table(void **state)
{
	static const struct {
		const char *in;
		int truncated;
		const char *want;
	} cases[] = {
	    {"{\"error\":\"bad message\"}", 0, "{\"error\":\"bad message\"}"},
	    {"key " WK " rejected", 0, "key *** rejected"},
	    {WK WK, 0, "***"},
	    /* base64("wk_live_Zx9+/Qq:") and base64(WK), both variants. */
	    {"auth d2tfbGl2ZV9aeDkrL1FxOg== bad", 0, "auth *** bad"},
	    {"u d2tfbGl2ZV9aeDkrL1Fx end", 0, "u *** end"},
	    {"u d2tfbGl2ZV9aeDkrL1FxOg end", 0, "u *** end"},
	    {"u d2tfbGl2ZV9aeDkrL1FxOg== end", 0, "u *** end"},
	    {"x d2tfbGl2ZV9aeDkrL1FxOg", 0, "x ***"},
	    {"url d2tfbGl2ZV9aeDkrL1FxOg_x", 0, "url ***_x"},
	    {"Authorization: Basic c29tZXRoaW5nOg==\r\nnext", 0,
		"Authorization: ***??next"},
	    {"{\"headers\":{\"authorization\":\"Bearer abc.def\"},\"x\":1}", 0,
		"{\"headers\":{\"authorization\":\"***\"},\"x\":1}"},
	    {"AUTHORIZATION = 'token xyz', ok", 0, "AUTHORIZATION = '***', ok"},
	    {"authorization without a value", 0,
		"authorization without a value"},
	    {"got bearer tok_123-abc.DEF~ then", 0, "got bearer *** then"},
	    {"Basic   Zm9vOmJhcg== x", 0, "Basic   *** x"},
	    {"jwt eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJjIn0.c2lnbmF0dXJl; x", 0,
		"jwt ***; x"},
	    {"not a jwt eyJ alone", 0, "not a jwt eyJ alone"},
	    {"cut off at wk_live_Z", 1, "cut off at ***"},
	    {"cut off at wk_live_Z", 0, "cut off at wk_live_Z"},
	    {"ends with wk", 1, "ends with wk"}, /* 2 bytes: too short */
	    {"tab\there\x01\x7f\xc3\xa9", 0, "tab?here????"},
	};
	const char *secrets[] = {WK, NULL, ""};
	char out[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(
		    nb_redact(cases[i].in, strlen(cases[i].in),
			cases[i].truncated, secrets, 3, out, sizeof(out)),
		    0);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, out,
			    cases[i].want);
	}
}

static void
test_bounds(void **state)
{
	const char *secrets[] = {WK};
	char out[8];

	(void)state;
	/* Cut at outlen - 1, never in the middle of the mark. */
	assert_int_equal(nb_redact("abcdefghijk", 11, 0, NULL, 0, out, 8), 0);
	assert_string_equal(out, "abcdefg");
	assert_int_equal(
	    nb_redact("abcde" WK, 5 + strlen(WK), 0, secrets, 1, out, 8), 0);
	assert_string_equal(out, "abcde");
	/* NUL bytes inside the input are shown, not an end. */
	assert_int_equal(nb_redact("a\0b", 3, 0, NULL, 0, out, 8), 0);
	assert_string_equal(out, "a?b");
	assert_int_equal(nb_redact("", 0, 0, NULL, 0, out, 8), 0);
	assert_string_equal(out, "");
	assert_int_equal(nb_redact("x", 1, 0, NULL, 0, out, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_bounds),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
