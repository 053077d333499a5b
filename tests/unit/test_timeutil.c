/* SPDX-License-Identifier: ISC */
/*
 * test_timeutil: RFC 3339 parsing, ISO formatting and "since" arguments.
 *
 * Known instants come from date(1) -u; the tables cover offsets crossing
 * midnight and the year, fraction truncation, leap years and every field's
 * range.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "nudgebridge/timeutil.h"

struct valid_case {
	const char *in;
	int64_t ms;
};

static const struct valid_case valid[] = {
    {"1970-01-01T00:00:00Z", 0},
    {"1970-01-01T00:00:00.000Z", 0},
    {"2026-11-28T09:59:58.123Z", 1795859998123LL},
    {"2026-11-28T09:59:58Z", 1795859998000LL},
    {"2026-11-28T10:59:58+01:00", 1795859998000LL},
    {"2026-11-28t09:59:58z", 1795859998000LL},
    {"2026-11-28 09:59:58Z", 1795859998000LL},
    /* Fractions of any length, truncated to ms. */
    {"2026-11-28T09:59:58.1239Z", 1795859998123LL},
    {"2026-11-28T09:59:58.1Z", 1795859998100LL},
    {"2026-11-28T09:59:58.12Z", 1795859998120LL},
    {"2026-11-28T09:59:58.999999999999999999999Z", 1795859998999LL},
    /* Negative offset crossing midnight into the next UTC day. */
    {"2026-11-27T22:30:00-11:30", 1795860000000LL},
    /* Positive offset crossing midnight and the year backwards. */
    {"2027-01-01T01:00:00+02:00", 1798758000000LL},
    {"2026-11-28T09:59:58-00:00", 1795859998000LL},
    {"2026-11-28T09:59:58+23:59", 1795773658000LL},
    /* Leap days. */
    {"2024-02-29T00:00:00Z", 1709164800000LL},
    {"2000-02-29T12:00:00Z", 951825600000LL},
    /* Leap second: counted as the next minute's first second. */
    {"2016-12-31T23:59:60Z", 1483228800000LL},
    /* Before the epoch and the range ends. */
    {"1969-12-31T23:59:59.999Z", -1},
    {"0000-01-01T00:00:00Z", -62167219200000LL},
    {"9999-12-31T23:59:59.999Z", 253402300799999LL},
    {"1600-02-29T00:00:00Z", -11670998400000LL},
};

static const char *const invalid[] = {
    "",
    "2026",
    "2026-11-28",
    "2026-11-28T09:59Z",
    "2026-11-28T09:59:58",	/* no offset */
    "2026-11-28T09:59:58.Z",	/* empty fraction */
    "2026-11-28T09:59:58,123Z", /* comma fraction */
    "2026-11-28T09:59:58.123",
    "2026-11-28T09:59:58+01",
    "2026-11-28T09:59:58+0100",
    "2026-11-28T09:59:58+24:00",
    "2026-11-28T09:59:58+01:60",
    "2026-13-01T00:00:00Z",
    "2026-00-01T00:00:00Z",
    "2026-11-00T00:00:00Z",
    "2026-11-31T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "2026-02-29T00:00:00Z", /* not a leap year */
    "1900-02-29T00:00:00Z", /* century, not a leap year */
    "2024-02-30T00:00:00Z",
    "2026-11-28T24:00:00Z",
    "2026-11-28T23:60:00Z",
    "2026-11-28T23:59:61Z",
    "2026-11-28X09:59:58Z",
    "2026-11-28T09:59:58Zjunk",
    "2026-11-28T09:59:58Z ",
    " 2026-11-28T09:59:58Z",
    "26-11-28T09:59:58Z",
    "20261-11-28T09:59:58Z",
    "-001-11-28T09:59:58Z",
    "+2026-11-28T09:59:58Z",
    "2026-1-28T09:59:58Z",
    "2026-11-28T9:59:58Z",
    "2026-11-28T09:59:5Z",
    "2O26-11-28T09:59:58Z",
    "2026/11/28T09:59:58Z",
    "2026-11-28T09:59:58.12a3Z",
    "2026-11-28T09:59:58ZZ",
    "1795859998",
};

static void
test_parse_valid(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		int64_t ms = 42;

		if (nb_time_parse_rfc3339(
			valid[i].in, strlen(valid[i].in), &ms) != 0)
			fail_msg("rejected valid time %s", valid[i].in);
		if (ms != valid[i].ms)
			fail_msg("%s: got %lld, want %lld", valid[i].in,
			    (long long)ms, (long long)valid[i].ms);
	}
}

static void
test_parse_invalid(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		int64_t ms = 42;

		if (nb_time_parse_rfc3339(
			invalid[i], strlen(invalid[i]), &ms) != -1)
			fail_msg("accepted invalid time \"%s\"", invalid[i]);
		assert_int_equal(ms, 42);
	}
}

static void
test_parse_uses_len(void **state)
{
	const char *s = "2026-11-28T09:59:58Zgarbage";
	char nul[] = "2026-11-28T09:59:58Z\0";
	int64_t ms;

	(void)state;
	/* The length bounds the input; no NUL terminator needed. */
	assert_int_equal(nb_time_parse_rfc3339(s, 20, &ms), 0);
	assert_int_equal(ms, 1795859998000LL);
	assert_int_equal(nb_time_parse_rfc3339(s, 19, &ms), -1);
	/* An embedded NUL inside the length is a bad byte. */
	assert_int_equal(nb_time_parse_rfc3339(nul, sizeof(nul), &ms), -1);
	assert_int_equal(nb_time_parse_rfc3339(NULL, 0, &ms), -1);
}

struct format_case {
	int64_t ms;
	const char *out;
};

static const struct format_case formats[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1795859998123LL, "2026-11-28T09:59:58.123Z"},
    {-1, "1969-12-31T23:59:59.999Z"},
    {951825600000LL, "2000-02-29T12:00:00.000Z"},
    {1709164800000LL, "2024-02-29T00:00:00.000Z"},
    {-62167219200000LL, "0000-01-01T00:00:00.000Z"},
    {253402300799999LL, "9999-12-31T23:59:59.999Z"},
    /* Clamped to the four-digit range. */
    {INT64_MAX, "9999-12-31T23:59:59.999Z"},
    {INT64_MIN, "0000-01-01T00:00:00.000Z"},
};

static void
test_format(void **state)
{
	char out[NB_TIME_ISO_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		nb_time_format_iso(formats[i].ms, out);
		assert_string_equal(out, formats[i].out);
	}
}

static void
test_roundtrip(void **state)
{
	char out[NB_TIME_ISO_LEN];
	int64_t ms, back;

	(void)state;
	/* Every day boundary over 5 centuries, plus an odd ms offset. */
	for (ms = -11670998400000LL; ms < 4102444800000LL;
	     ms += 86400000LL * 7 + 3600001LL) {
		nb_time_format_iso(ms, out);
		if (nb_time_parse_rfc3339(out, strlen(out), &back) != 0 ||
		    back != ms)
			fail_msg("roundtrip %lld -> %s", (long long)ms, out);
	}
}

struct when_case {
	const char *in;
	int rc;
	int64_t out;
};

#define NOW 1795859998123LL

static const struct when_case whens[] = {
    {"90s", 0, NOW - 90000LL},
    {"90m", 0, NOW - 5400000LL},
    {"2h", 0, NOW - 7200000LL},
    {"7d", 0, NOW - 604800000LL},
    {"1s", 0, NOW - 1000LL},
    {"2026-11-28T09:59:58.123Z", 0, 1795859998123LL},
    {"2026-11-28T10:59:58+01:00", 0, 1795859998000LL},
    {"0s", -1, 0},
    {"", -1, 0},
    {"s", -1, 0},
    {"7", -1, 0},
    {"7w", -1, 0},
    {"-7d", -1, 0},
    {"+7d", -1, 0},
    {" 7d", -1, 0},
    {"7d ", -1, 0},
    {"7.5h", -1, 0},
    {"7dd", -1, 0},
    {"99999999999999999999d", -1, 0},
    {"9223372036854775807s", -1, 0},
    {"2026-02-29T00:00:00Z", -1, 0},
};

static void
test_when(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(whens) / sizeof(whens[0]); i++) {
		int64_t out = 0;
		int rc = nb_time_parse_when(whens[i].in, NOW, &out);

		if (rc != whens[i].rc)
			fail_msg("\"%s\": rc %d, want %d", whens[i].in, rc,
			    whens[i].rc);
		if (rc == 0 && out != whens[i].out)
			fail_msg("\"%s\": got %lld, want %lld", whens[i].in,
			    (long long)out, (long long)whens[i].out);
	}
	assert_int_equal(nb_time_parse_when(NULL, NOW, &(int64_t){0}), -1);
}

static void
test_clocks(void **state)
{
	int64_t a, b;

	(void)state;
	/* After 2020-01-01 and monotonic never goes back. */
	assert_true(nb_time_now_ms() > 1577836800000LL);
	a = nb_time_mono_ms();
	b = nb_time_mono_ms();
	assert_true(b >= a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_valid),
	    cmocka_unit_test(test_parse_invalid),
	    cmocka_unit_test(test_parse_uses_len),
	    cmocka_unit_test(test_format),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_when),
	    cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
