/* SPDX-License-Identifier: ISC */
/*
 * test_priv: the descriptor limit and the cases of nb_priv_drop() that do
 * not change who we are (the drop itself is tested as root by
 * tests/integration/test_privilege.py).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/resource.h>

#include <string.h>
#include <unistd.h>

#include "nudgebridge/log.h"
#include "nudgebridge/priv.h"

static void
test_raise_nofile(void **state)
{
	struct rlimit rl;
	size_t n = 0;

	(void)state;
	assert_int_equal(nb_priv_raise_nofile(&n), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	assert_int_equal((size_t)rl.rlim_cur, n);
	assert_true(rl.rlim_cur == rl.rlim_max || rl.rlim_cur == (1u << 20));
	/* A second call is a no-op. */
	assert_int_equal(nb_priv_raise_nofile(&n), 0);
	assert_int_equal((size_t)rl.rlim_cur, n);
}

static void
test_drop_without_user(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(nb_priv_drop(NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(err, "");
}

static void
test_drop_unknown_user(void **state)
{
	char err[256] = "";

	(void)state;
	assert_int_equal(
	    nb_priv_drop("nb-no-such-user-xyz", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "user: no account named"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raise_nofile),
	    cmocka_unit_test(test_drop_without_user),
	    cmocka_unit_test(test_drop_unknown_user),
	};

	nb_log_init(NB_LOG_ERROR, NB_LOG_LOGFMT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
