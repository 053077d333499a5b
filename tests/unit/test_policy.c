/* SPDX-License-Identifier: ISC */
/*
 * test_policy: the deliverer's rules as tables: outcome by status, the
 * backoff schedule (moved here from test_deliver), Retry-After and
 * X-RateLimit-Reset as Segment's libraries read them, which wait an answer
 * asks for, and the largest message that fits a batch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include <curl/curl.h>
#include <sodium.h>

#include "nudgebridge/policy.h"

static void
test_outcome(void **state)
{
	static const struct {
		long status;
		enum nb_policy_outcome want;
	} cases[] = {
	    {200, NB_POLICY_DELIVERED},
	    {204, NB_POLICY_DELIVERED},
	    {299, NB_POLICY_DELIVERED},
	    {0, NB_POLICY_RETRY},
	    {100, NB_POLICY_RETRY},
	    {301, NB_POLICY_RETRY},
	    {400, NB_POLICY_BISECT},
	    {401, NB_POLICY_PAUSE},
	    {403, NB_POLICY_PAUSE},
	    {404, NB_POLICY_RETRY},
	    {408, NB_POLICY_RETRY},
	    {413, NB_POLICY_RETRY},
	    {429, NB_POLICY_RETRY},
	    {500, NB_POLICY_RETRY},
	    {503, NB_POLICY_RETRY},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (nb_policy_outcome(cases[i].status) != cases[i].want)
			fail_msg("status %ld", cases[i].status);
}

static void
test_backoff(void **state)
{
	static const struct {
		int initial, max, attempts;
		int64_t retry_after, lo, hi;
	} cases[] = {
	    {500, 60000, 1, 0, 250, 500}, {500, 60000, 2, 0, 500, 1000},
	    {500, 60000, 3, 0, 1000, 2000}, {500, 60000, 7, 0, 16000, 32000},
	    {500, 60000, 8, 0, 30000, 60000},  /* 64000 capped */
	    {500, 60000, 40, 0, 30000, 60000}, /* no overflow */
	    {500, 60000, 1000, 0, 30000, 60000},
	    {500, 60000, 1, 5000, 5000, 5000}, /* Retry-After floor */
	    {500, 60000, 1, 100, 250, 500},    /* floor below jitter */
	    {500, 60000, 8, 90000, 90000, 90000}, {100, 100, 5, 0, 50, 100},
	    {1000, 400, 1, 0, 200, 400}, /* cap below initial */
	};
	struct nb_retry_config r;
	int64_t v, seen_lo, seen_hi;
	size_t i;
	int k;

	(void)state;
	memset(&r, 0, sizeof(r));
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r.initial_ms = cases[i].initial;
		r.max_ms = cases[i].max;
		seen_lo = INT64_MAX;
		seen_hi = INT64_MIN;
		for (k = 0; k < 300; k++) {
			v = nb_policy_backoff_ms(
			    &r, cases[i].attempts, cases[i].retry_after);
			if (v < cases[i].lo || v > cases[i].hi)
				fail_msg("case %zu: %lld not in [%lld, %lld]",
				    i, (long long)v, (long long)cases[i].lo,
				    (long long)cases[i].hi);
			if (v < seen_lo)
				seen_lo = v;
			if (v > seen_hi)
				seen_hi = v;
		}
		/* Jitter is real: a wide range is not one constant. */
		if (cases[i].hi - cases[i].lo >= 100)
			assert_true(seen_hi - seen_lo >= 10);
	}
}

/* 2026-11-28T10:00:00Z */
#define NOW_MS 1795860000000LL

static void
test_retry_after(void **state)
{
	static const struct {
		const char *v;
		int64_t want;
	} cases[] = {
	    {"1", 1000},
	    {" 30\r\n", 30000},
	    {"\t0\r\n", 0},
	    {"86400", 86400000},
	    {"86401", NB_POLICY_WAIT_MAX_MS},
	    {"99999999999999999999", NB_POLICY_WAIT_MAX_MS}, /* saturates */
	    {"-5", 0},
	    {"1.5", 0},
	    {"5s", 0},
	    {"", 0},
	    {"\r\n", 0},
	    {"Sat, 28 Nov 2026 10:00:10 GMT\r\n", 10000},
	    {"Sat, 28 Nov 2026 09:59:00 GMT", 0}, /* past */
	    {"Sun, 29 Nov 2026 10:00:01 GMT", NB_POLICY_WAIT_MAX_MS},
	    {"tomorrow", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (nb_policy_retry_after_ms(cases[i].v, strlen(cases[i].v),
			NOW_MS) != cases[i].want)
			fail_msg("Retry-After \"%s\": %lld, want %lld",
			    cases[i].v,
			    (long long)nb_policy_retry_after_ms(
				cases[i].v, strlen(cases[i].v), NOW_MS),
			    (long long)cases[i].want);
	assert_int_equal(nb_policy_retry_after_ms(NULL, 0, NOW_MS), 0);
}

static void
test_ratelimit_reset(void **state)
{
	static const struct {
		const char *v;
		int64_t want;
	} cases[] = {
	    {"2", 2000},
	    {" 2\r\n", 2000},
	    {"0", 0},
	    {"0.25", 250},
	    {"1.5", 1500},
	    {"1.23456", 1234},
	    {"86400", 86400000},
	    {"86401", NB_POLICY_WAIT_MAX_MS},
	    {"1000000000", NB_POLICY_WAIT_MAX_MS}, /* not above: seconds */
	    {"1795860005", 5000},		   /* a Unix time: 5 s away */
	    {"1795860005.5", 5500},
	    {"1795859999", 0}, /* a Unix time in the past */
	    {"99999999999999999999999", NB_POLICY_WAIT_MAX_MS},
	    {"-1", 0},
	    {"1.", 0},
	    {".5", 0},
	    {"2s", 0},
	    {"1e3", 0},
	    {"", 0},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (nb_policy_ratelimit_reset_ms(cases[i].v, strlen(cases[i].v),
			NOW_MS) != cases[i].want)
			fail_msg("X-RateLimit-Reset \"%s\": %lld, want %lld",
			    cases[i].v,
			    (long long)nb_policy_ratelimit_reset_ms(
				cases[i].v, strlen(cases[i].v), NOW_MS),
			    (long long)cases[i].want);
}

static void
test_wait(void **state)
{
	(void)state;
	/* Retry-After first, whatever the status. */
	assert_int_equal(nb_policy_wait_ms(429, 3000, 7000), 3000);
	assert_int_equal(nb_policy_wait_ms(503, 3000, 7000), 3000);
	/* X-RateLimit-Reset only on a 429. */
	assert_int_equal(nb_policy_wait_ms(429, 0, 7000), 7000);
	assert_int_equal(nb_policy_wait_ms(503, 0, 7000), 0);
	assert_int_equal(nb_policy_wait_ms(0, 0, 0), 0);
}

static void
test_message_limit(void **state)
{
	struct nb_segment_config sc;

	(void)state;
	memset(&sc, 0, sizeof(sc));
	sc.max_message_bytes = 32000;
	sc.max_batch_bytes = 500000;
	assert_int_equal(nb_policy_message_limit(&sc, 48), 32000);
	sc.max_batch_bytes = 1000;
	assert_int_equal(nb_policy_message_limit(&sc, 48), 952);
	sc.max_batch_bytes = 40;
	assert_int_equal(nb_policy_message_limit(&sc, 48), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_outcome),
	    cmocka_unit_test(test_backoff),
	    cmocka_unit_test(test_retry_after),
	    cmocka_unit_test(test_ratelimit_reset),
	    cmocka_unit_test(test_wait),
	    cmocka_unit_test(test_message_limit),
	};

	if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
