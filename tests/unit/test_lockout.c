/* SPDX-License-Identifier: ISC */
/*
 * test_lockout: failed admin authentications counted per address.
 *
 * With an injected clock: the failure past the limit locks one address
 * for a window and no other; a window without enough failures starts
 * afresh; IPv6 clients count by their /64 and IPv4-mapped addresses as
 * IPv4; the table never holds more than NB_LOCKOUT_SLOTS addresses and
 * forgets the one whose last failure is oldest first.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdio.h>
#include <string.h>

#include "nudgebridge/lockout.h"

static const struct sockaddr *
v4(struct sockaddr_in *sin, const char *ip)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	assert_int_equal(1, inet_pton(AF_INET, ip, &sin->sin_addr));
	return (const struct sockaddr *)sin;
}

static const struct sockaddr *
v6(struct sockaddr_in6 *sin6, const char *ip)
{
	memset(sin6, 0, sizeof(*sin6));
	sin6->sin6_family = AF_INET6;
	assert_int_equal(1, inet_pton(AF_INET6, ip, &sin6->sin6_addr));
	return (const struct sockaddr *)sin6;
}

/* n failures of sa at now; the lockout the last one answered. */
static int64_t
fail_n(struct nb_lockout *l, const struct sockaddr *sa, int n, int64_t now)
{
	int64_t w = 0;
	int i;

	for (i = 0; i < n; i++)
		w = nb_lockout_fail(l, sa, now);
	return w;
}

static void
test_per_address(void **state)
{
	struct nb_lockout *l = nb_lockout_new();
	struct sockaddr_in a, b;
	const struct sockaddr *sa = v4(&a, "127.0.0.2");
	const struct sockaddr *sb = v4(&b, "127.0.0.1");

	(void)state;
	assert_non_null(l);
	assert_int_equal(0, fail_n(l, sa, NB_LOCKOUT_FAILS, 1000));
	assert_int_equal(0, nb_lockout_wait(l, sa, 1000));
	assert_int_equal(NB_LOCKOUT_WINDOW_MS, nb_lockout_fail(l, sa, 1500));
	assert_int_equal(
	    NB_LOCKOUT_WINDOW_MS - 500, nb_lockout_wait(l, sa, 2000));
	/* Another client is not touched, and neither is one without address. */
	assert_int_equal(0, nb_lockout_wait(l, sb, 2000));
	assert_int_equal(0, nb_lockout_wait(l, NULL, 2000));
	assert_int_equal(0, nb_lockout_fail(l, sb, 2000));
	/* The lockout ends with its window; a new window counts afresh. */
	assert_int_equal(
	    0, nb_lockout_wait(l, sa, 1500 + NB_LOCKOUT_WINDOW_MS));
	assert_int_equal(0, fail_n(l, sa, NB_LOCKOUT_FAILS, 20000));
	nb_lockout_clear(l);
	assert_int_equal(0, nb_lockout_count(l));
	nb_lockout_free(l);
	nb_lockout_free(NULL);
}

static void
test_windows(void **state)
{
	struct nb_lockout *l = nb_lockout_new();
	struct sockaddr_in a;
	const struct sockaddr *sa = v4(&a, "10.0.0.1");

	(void)state;
	/* Slow guessing never locks: each window starts over. */
	assert_int_equal(0, fail_n(l, sa, NB_LOCKOUT_FAILS, 0));
	assert_int_equal(
	    0, fail_n(l, sa, NB_LOCKOUT_FAILS, NB_LOCKOUT_WINDOW_MS));
	assert_int_equal(
	    0, fail_n(l, sa, NB_LOCKOUT_FAILS, 2 * NB_LOCKOUT_WINDOW_MS));
	assert_true(nb_lockout_fail(l, sa, 2 * NB_LOCKOUT_WINDOW_MS + 1) > 0);
	nb_lockout_free(l);
}

static void
test_ipv6_prefix(void **state)
{
	struct nb_lockout *l = nb_lockout_new();
	struct sockaddr_in6 a, b, c;
	struct sockaddr_in d;

	(void)state;
	fail_n(l, v6(&a, "2001:db8:1:2::1"), NB_LOCKOUT_FAILS + 1, 0);
	/* The same /64: the same client. */
	assert_true(nb_lockout_wait(l, v6(&b, "2001:db8:1:2:ffff::9"), 1) > 0);
	assert_int_equal(0, nb_lockout_wait(l, v6(&c, "2001:db8:1:3::1"), 1));
	/* IPv4-mapped IPv6 is the IPv4 address. */
	fail_n(l, v4(&d, "192.0.2.7"), NB_LOCKOUT_FAILS + 1, 0);
	assert_true(nb_lockout_wait(l, v6(&c, "::ffff:192.0.2.7"), 1) > 0);
	assert_int_equal(0, nb_lockout_wait(l, v6(&c, "::ffff:192.0.2.8"), 1));
	assert_int_equal(2, nb_lockout_count(l));
	nb_lockout_free(l);
}

static void
test_bounded(void **state)
{
	struct nb_lockout *l = nb_lockout_new();
	struct sockaddr_in a;
	char ip[32];
	int i;

	(void)state;
	/* The first address locked, then 3,000 others each fail once. */
	fail_n(l, v4(&a, "10.9.9.9"), NB_LOCKOUT_FAILS + 1, 0);
	for (i = 0; i < NB_LOCKOUT_SLOTS - 1; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 256, i % 256);
		nb_lockout_fail(l, v4(&a, ip), 1 + i);
	}
	assert_int_equal(NB_LOCKOUT_SLOTS, nb_lockout_count(l));
	assert_true(nb_lockout_wait(l, v4(&a, "10.9.9.9"), 5000) > 0);
	for (i = 0; i < 3000; i++) {
		snprintf(ip, sizeof(ip), "10.2.%d.%d", i / 256, i % 256);
		nb_lockout_fail(l, v4(&a, ip), 6000 + i);
	}
	assert_int_equal(NB_LOCKOUT_SLOTS, nb_lockout_count(l));
	/* The oldest went first. */
	assert_int_equal(0, nb_lockout_wait(l, v4(&a, "10.9.9.9"), 9000));
	nb_lockout_free(l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_per_address),
	    cmocka_unit_test(test_windows),
	    cmocka_unit_test(test_ipv6_prefix),
	    cmocka_unit_test(test_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
